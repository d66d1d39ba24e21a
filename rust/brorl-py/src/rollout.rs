//! `RolloutBatch`: the rollouts of one training step, ragged, held as NumPy arrays that the
//! Rust core reads in place. Columns come back to Python as the very same arrays (no copy).

use std::collections::HashSet;

use brorl_core::{advantages as core_adv, groups, packing, ragged};
use numpy::{Element, PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{as_array1, not_contiguous};
use crate::errors::{core, detached, raise};

#[pyclass(module = "brorl._core")]
pub struct RolloutBatch {
    prompt_index: Py<PyArray1<i64>>,
    token_ids: Py<PyArray1<i32>>,
    offsets: Py<PyArray1<i64>>,
    logprobs: Option<Py<PyArray1<f32>>>,
    rewards: Option<Py<PyArray1<f32>>>,
    truncated: Py<PyArray1<bool>>,
    group_sizes: Vec<i64>,
    n_tokens: usize,
}

/// The words `from_lists` accepts in `finish_reasons` (vLLM's); only "length" means truncated.
pub const FINISH_REASONS: [&str; 3] = ["stop", "length", "abort"];

fn invalid(py: Python<'_>, msg: String) -> PyErr {
    raise(py, "InvalidArgumentError", msg)
}

/// Sizes of the runs of equal prompt indices; each prompt's rollouts must be consecutive.
fn runs(py: Python<'_>, prompt_index: &[i64]) -> PyResult<Vec<i64>> {
    let mut sizes = Vec::new();
    let mut seen = HashSet::new();
    let mut i = 0;
    while i < prompt_index.len() {
        let p = prompt_index[i];
        if !seen.insert(p) {
            return Err(invalid(
                py,
                format!(
                    "`prompt_index`: the rollouts of prompt {p} must be consecutive, \
                     but it appears again at position {i}"
                ),
            ));
        }
        let start = i;
        while i < prompt_index.len() && prompt_index[i] == p {
            i += 1;
        }
        sizes.push((i - start) as i64);
    }
    Ok(sizes)
}

/// Log-probs from the user (not those of a batch already built, which were checked then).
fn checked_logprobs<'py>(
    py: Python<'py>,
    lp: Option<Bound<'py, PyArray1<f32>>>,
) -> PyResult<Option<Bound<'py, PyArray1<f32>>>> {
    if let Some(a) = &lp {
        let r = a.readonly();
        core(
            py,
            brorl_core::error::check_logprobs("logprobs", slice_of(py, "logprobs", &r)?),
        )?;
    }
    Ok(lp)
}

fn slice_of<'a, T: Element>(
    py: Python<'_>,
    name: &str,
    a: &'a numpy::PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(not_contiguous(py, name))
}

impl RolloutBatch {
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        prompt_index: Bound<'_, PyArray1<i64>>,
        token_ids: Bound<'_, PyArray1<i32>>,
        offsets: Bound<'_, PyArray1<i64>>,
        logprobs: Option<Bound<'_, PyArray1<f32>>>,
        rewards: Option<Bound<'_, PyArray1<f32>>>,
        truncated: Option<Bound<'_, PyArray1<bool>>>,
    ) -> PyResult<Self> {
        let n = prompt_index.len();
        let n_tokens = token_ids.len();
        let off = offsets.readonly();
        let off_s = slice_of(py, "offsets", &off)?;
        if off_s.len() != n + 1 {
            return Err(invalid(
                py,
                format!(
                    "`offsets` must have n_rollouts + 1 = {} entries, got {}",
                    n + 1,
                    off_s.len()
                ),
            ));
        }
        core(py, ragged::check_offsets(off_s, n_tokens))?;
        if let Some(lp) = &logprobs {
            if lp.len() != n_tokens {
                return Err(invalid(
                    py,
                    format!(
                        "`logprobs` has {} entries, expected one per token ({n_tokens})",
                        lp.len()
                    ),
                ));
            }
        }
        if let Some(r) = &rewards {
            if r.len() != n {
                return Err(invalid(
                    py,
                    format!(
                        "`rewards` has {} entries, expected one per rollout ({n})",
                        r.len()
                    ),
                ));
            }
            let rv = r.readonly();
            core(
                py,
                brorl_core::error::check_finite("rewards", slice_of(py, "rewards", &rv)?),
            )?;
        }
        let truncated = match truncated {
            Some(t) if t.len() != n => {
                return Err(invalid(
                    py,
                    format!(
                        "`truncated` has {} entries, expected one per rollout ({n})",
                        t.len()
                    ),
                ))
            }
            Some(t) => t,
            None => PyArray1::from_vec(py, vec![false; n]),
        };
        let pi = prompt_index.readonly();
        let group_sizes = runs(py, slice_of(py, "prompt_index", &pi)?)?;
        Ok(Self {
            prompt_index: prompt_index.clone().unbind(),
            token_ids: token_ids.unbind(),
            offsets: offsets.clone().unbind(),
            logprobs: logprobs.map(Bound::unbind),
            rewards: rewards.map(Bound::unbind),
            truncated: truncated.unbind(),
            group_sizes,
            n_tokens,
        })
    }

    fn rewards_slice<'py>(&self, py: Python<'py>) -> PyResult<numpy::PyReadonlyArray1<'py, f32>> {
        match &self.rewards {
            Some(r) => Ok(r.bind(py).readonly()),
            None => Err(raise(
                py,
                "MissingRewardsError",
                "this RolloutBatch has no rewards yet; call set_rewards() first".to_string(),
            )),
        }
    }

    /// A new batch holding the rollouts `indices` (in that order).
    fn take(&self, py: Python<'_>, indices: &[usize]) -> PyResult<Self> {
        let off = self.offsets.bind(py).readonly();
        let bounds: Vec<usize> = slice_of(py, "offsets", &off)?
            .iter()
            .map(|&o| o as usize)
            .collect();
        let new_bounds = ragged::gathered_offsets(&bounds, indices);
        let tok = self.token_ids.bind(py).readonly();
        let tok_s = slice_of(py, "token_ids", &tok)?;
        let lp = self.logprobs.as_ref().map(|a| a.bind(py).readonly());
        let lp_s = match &lp {
            Some(a) => Some(slice_of(py, "logprobs", a)?),
            None => None,
        };
        let (new_tok, new_lp) = detached(py, || {
            let t = ragged::gather_tokens(tok_s, &bounds, indices, &new_bounds);
            let l = lp_s.map(|l| ragged::gather_tokens(l, &bounds, indices, &new_bounds));
            Ok((t, l))
        })?;
        let pick = |a: &Py<PyArray1<i64>>| -> PyResult<Vec<i64>> {
            let r = a.bind(py).readonly();
            let s = slice_of(py, "prompt_index", &r)?;
            Ok(indices.iter().map(|&i| s[i]).collect())
        };
        let prompt_index = pick(&self.prompt_index)?;
        let tr = self.truncated.bind(py).readonly();
        let tr_s = slice_of(py, "truncated", &tr)?;
        let truncated: Vec<bool> = indices.iter().map(|&i| tr_s[i]).collect();
        let rewards = match &self.rewards {
            Some(r) => {
                let rv = r.bind(py).readonly();
                let s = slice_of(py, "rewards", &rv)?;
                Some(PyArray1::from_vec(
                    py,
                    indices.iter().map(|&i| s[i]).collect(),
                ))
            }
            None => None,
        };
        Self::build(
            py,
            PyArray1::from_vec(py, prompt_index),
            PyArray1::from_vec(py, new_tok),
            PyArray1::from_vec(py, new_bounds.iter().map(|&b| b as i64).collect()),
            new_lp.map(|l| PyArray1::from_vec(py, l)),
            rewards,
            Some(PyArray1::from_vec(py, truncated)),
        )
    }
}

#[pymethods]
impl RolloutBatch {
    #[new]
    #[pyo3(signature = (prompt_index, token_ids, offsets, logprobs = None, rewards = None, truncated = None))]
    fn new(
        py: Python<'_>,
        prompt_index: &Bound<'_, PyAny>,
        token_ids: &Bound<'_, PyAny>,
        offsets: &Bound<'_, PyAny>,
        logprobs: Option<&Bound<'_, PyAny>>,
        rewards: Option<&Bound<'_, PyAny>>,
        truncated: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Self::build(
            py,
            as_array1(py, "prompt_index", prompt_index, "int64")?,
            as_array1(py, "token_ids", token_ids, "int32")?,
            as_array1(py, "offsets", offsets, "int64")?,
            checked_logprobs(
                py,
                logprobs
                    .map(|a| as_array1(py, "logprobs", a, "float32"))
                    .transpose()?,
            )?,
            rewards
                .map(|a| as_array1(py, "rewards", a, "float32"))
                .transpose()?,
            truncated
                .map(|a| as_array1(py, "truncated", a, "bool"))
                .transpose()?,
        )
    }

    /// Builds a batch from per-rollout Python lists, as an engine returns them.
    /// `finish_reasons` uses vLLM's words: "length" (cut off at the token limit) sets
    /// `truncated`; "stop" (end-of-sequence or a stop string), "abort" and None do not; any
    /// other value is refused, so a misspelling cannot hide truncation.
    #[staticmethod]
    #[pyo3(signature = (prompt_index, token_ids, logprobs = None, rewards = None, finish_reasons = None))]
    fn from_lists(
        py: Python<'_>,
        prompt_index: &Bound<'_, PyAny>,
        token_ids: &Bound<'_, PyList>,
        logprobs: Option<&Bound<'_, PyList>>,
        rewards: Option<&Bound<'_, PyAny>>,
        finish_reasons: Option<Vec<Option<String>>>,
    ) -> PyResult<Self> {
        let n = token_ids.len();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0i64);
        let mut flat: Vec<i32> = Vec::new();
        for (i, item) in token_ids.iter().enumerate() {
            let ids: Vec<i32> = item.extract().map_err(|e| {
                invalid(py, format!("`token_ids[{i}]` must be a list of ints: {e}"))
            })?;
            flat.extend_from_slice(&ids);
            offsets.push(flat.len() as i64);
        }
        let lp = match logprobs {
            None => None,
            Some(list) => {
                if list.len() != n {
                    return Err(invalid(
                        py,
                        format!("`logprobs` has {} rows, `token_ids` has {n}", list.len()),
                    ));
                }
                let mut out: Vec<f32> = Vec::with_capacity(flat.len());
                for (i, item) in list.iter().enumerate() {
                    let row: Vec<f32> = item.extract().map_err(|e| {
                        invalid(py, format!("`logprobs[{i}]` must be a list of floats: {e}"))
                    })?;
                    let want = (offsets[i + 1] - offsets[i]) as usize;
                    if row.len() != want {
                        return Err(invalid(
                            py,
                            format!("`logprobs[{i}]` has {} values for {want} tokens", row.len()),
                        ));
                    }
                    out.extend_from_slice(&row);
                }
                Some(PyArray1::from_vec(py, out))
            }
        };
        let truncated = match finish_reasons {
            None => None,
            Some(fr) if fr.len() != n => {
                return Err(invalid(
                    py,
                    format!("`finish_reasons` has {} entries, expected {n}", fr.len()),
                ))
            }
            Some(fr) => {
                for (i, r) in fr.iter().enumerate() {
                    if let Some(r) = r.as_deref() {
                        if !FINISH_REASONS.contains(&r) {
                            return Err(invalid(
                                py,
                                format!(
                                    "`finish_reasons[{i}]` is {r:?}; expected one of \
                                     {FINISH_REASONS:?} or None"
                                ),
                            ));
                        }
                    }
                }
                Some(PyArray1::from_vec(
                    py,
                    fr.iter().map(|r| r.as_deref() == Some("length")).collect(),
                ))
            }
        };
        Self::build(
            py,
            as_array1(py, "prompt_index", prompt_index, "int64")?,
            PyArray1::from_vec(py, flat),
            PyArray1::from_vec(py, offsets),
            checked_logprobs(py, lp)?,
            rewards
                .map(|a| as_array1(py, "rewards", a, "float32"))
                .transpose()?,
            truncated,
        )
    }

    /// Concatenates batches (e.g. a refill after dynamic-sampling filtering).
    #[staticmethod]
    fn concat(py: Python<'_>, batches: Vec<PyRef<'_, RolloutBatch>>) -> PyResult<Self> {
        if batches.is_empty() {
            return Err(invalid(py, "`batches` must not be empty".to_string()));
        }
        let has_lp = batches[0].logprobs.is_some();
        let has_r = batches[0].rewards.is_some();
        // A column some inputs lack cannot be concatenated; dropping it would lose data silently.
        for (i, b) in batches.iter().enumerate().skip(1) {
            for (column, first, this) in [
                ("logprobs", has_lp, b.logprobs.is_some()),
                ("rewards", has_r, b.rewards.is_some()),
            ] {
                if first != this {
                    let (with, without) = if first { (0, i) } else { (i, 0) };
                    return Err(invalid(
                        py,
                        format!(
                            "`batches[{without}]` has no {column} but `batches[{with}]` has; \
                             give every batch {column} (or none) before concat"
                        ),
                    ));
                }
            }
        }
        let mut prompt_index = Vec::new();
        let mut tokens = Vec::new();
        let mut offsets = vec![0i64];
        let mut logprobs = Vec::new();
        let mut rewards = Vec::new();
        let mut truncated = Vec::new();
        for b in &batches {
            let base = *offsets.last().unwrap();
            let pi = b.prompt_index.bind(py).readonly();
            prompt_index.extend_from_slice(slice_of(py, "prompt_index", &pi)?);
            let t = b.token_ids.bind(py).readonly();
            tokens.extend_from_slice(slice_of(py, "token_ids", &t)?);
            let o = b.offsets.bind(py).readonly();
            offsets.extend(slice_of(py, "offsets", &o)?[1..].iter().map(|x| x + base));
            if has_lp {
                let l = b.logprobs.as_ref().unwrap().bind(py).readonly();
                logprobs.extend_from_slice(slice_of(py, "logprobs", &l)?);
            }
            if has_r {
                let r = b.rewards.as_ref().unwrap().bind(py).readonly();
                rewards.extend_from_slice(slice_of(py, "rewards", &r)?);
            }
            let tr = b.truncated.bind(py).readonly();
            truncated.extend_from_slice(slice_of(py, "truncated", &tr)?);
        }
        Self::build(
            py,
            PyArray1::from_vec(py, prompt_index),
            PyArray1::from_vec(py, tokens),
            PyArray1::from_vec(py, offsets),
            has_lp.then(|| PyArray1::from_vec(py, logprobs)),
            has_r.then(|| PyArray1::from_vec(py, rewards)),
            Some(PyArray1::from_vec(py, truncated)),
        )
    }

    #[getter]
    fn prompt_index<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.prompt_index.bind(py).clone()
    }
    #[getter]
    fn token_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        self.token_ids.bind(py).clone()
    }
    #[getter]
    fn offsets<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.offsets.bind(py).clone()
    }
    #[getter]
    fn logprobs<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<f32>>> {
        self.logprobs.as_ref().map(|a| a.bind(py).clone())
    }
    #[getter]
    fn rewards<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<f32>>> {
        self.rewards.as_ref().map(|a| a.bind(py).clone())
    }
    #[getter]
    fn truncated<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        self.truncated.bind(py).clone()
    }
    #[getter]
    fn group_sizes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_slice(py, &self.group_sizes)
    }
    #[getter]
    fn n_rollouts(&self, py: Python<'_>) -> usize {
        self.prompt_index.bind(py).len()
    }
    #[getter]
    fn n_groups(&self) -> usize {
        self.group_sizes.len()
    }
    #[getter]
    fn n_tokens(&self) -> usize {
        self.n_tokens
    }
    /// Tokens in each response.
    #[getter]
    fn response_lengths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let o = self.offsets.bind(py).readonly();
        let s = slice_of(py, "offsets", &o)?;
        Ok(PyArray1::from_vec(
            py,
            s.windows(2).map(|w| w[1] - w[0]).collect(),
        ))
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.n_rollouts(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "RolloutBatch(n_groups={}, n_rollouts={}, n_tokens={}, rewards={}, logprobs={})",
            self.group_sizes.len(),
            self.n_rollouts(py),
            self.n_tokens,
            if self.rewards.is_some() {
                "set"
            } else {
                "unset"
            },
            if self.logprobs.is_some() {
                "set"
            } else {
                "unset"
            },
        )
    }

    /// Sets the per-rollout rewards (finite, one per rollout).
    fn set_rewards(&mut self, py: Python<'_>, rewards: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = as_array1::<f32>(py, "rewards", rewards, "float32")?;
        let n = self.n_rollouts(py);
        if r.len() != n {
            return Err(invalid(
                py,
                format!(
                    "`rewards` has {} entries, expected one per rollout ({n})",
                    r.len()
                ),
            ));
        }
        {
            let rv = r.readonly();
            core(
                py,
                brorl_core::error::check_finite("rewards", slice_of(py, "rewards", &rv)?),
            )?;
        }
        self.rewards = Some(r.unbind());
        Ok(())
    }

    /// Per-group statistics as a dict of arrays: size, mean, std (ddof=1), n_correct,
    /// pass_rate, solved_all, solved_none. A rollout is correct when reward >= threshold.
    #[pyo3(signature = (threshold = 1.0))]
    fn group_stats<'py>(&self, py: Python<'py>, threshold: f32) -> PyResult<Bound<'py, PyDict>> {
        let r = self.rewards_slice(py)?;
        let rs = slice_of(py, "rewards", &r)?;
        let sizes = &self.group_sizes;
        let s = detached(py, || groups::group_stats(rs, sizes, threshold))?;
        let d = PyDict::new(py);
        d.set_item("size", PyArray1::from_vec(py, s.size))?;
        d.set_item("mean", PyArray1::from_vec(py, s.mean))?;
        d.set_item("std", PyArray1::from_vec(py, s.std))?;
        d.set_item("n_correct", PyArray1::from_vec(py, s.n_correct))?;
        d.set_item("pass_rate", PyArray1::from_vec(py, s.pass_rate))?;
        d.set_item("solved_all", PyArray1::from_vec(py, s.solved_all))?;
        d.set_item("solved_none", PyArray1::from_vec(py, s.solved_none))?;
        Ok(d)
    }

    /// Unbiased pass@k per group (k <= every group's size).
    #[pyo3(signature = (k, threshold = 1.0))]
    fn pass_at_k<'py>(
        &self,
        py: Python<'py>,
        k: i64,
        threshold: f32,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let r = self.rewards_slice(py)?;
        let rs = slice_of(py, "rewards", &r)?;
        let sizes = &self.group_sizes;
        let out = detached(py, || {
            let s = groups::group_stats(rs, sizes, threshold)?;
            groups::pass_at_k(sizes, &s.n_correct, k)
        })?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// DAPO dynamic sampling mask: True for groups whose rewards are not all equal.
    fn varied_groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let r = self.rewards_slice(py)?;
        let rs = slice_of(py, "rewards", &r)?;
        let sizes = &self.group_sizes;
        let out = detached(py, || groups::varied_groups(rs, sizes))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// A new batch with only the groups where `mask` is True (default: `varied_groups()`).
    #[pyo3(signature = (mask = None))]
    fn filter_groups(&self, py: Python<'_>, mask: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mask: Vec<bool> = match mask {
            Some(m) => {
                let a = as_array1::<bool>(py, "mask", m, "bool")?;
                let r = a.readonly();
                slice_of(py, "mask", &r)?.to_vec()
            }
            None => self.varied_groups(py)?.readonly().as_slice()?.to_vec(),
        };
        if mask.len() != self.group_sizes.len() {
            return Err(invalid(
                py,
                format!(
                    "`mask` has {} entries, expected one per group ({})",
                    mask.len(),
                    self.group_sizes.len()
                ),
            ));
        }
        let mut indices = Vec::new();
        let mut start = 0usize;
        for (&keep, &size) in mask.iter().zip(&self.group_sizes) {
            let end = start + size as usize;
            if keep {
                indices.extend(start..end);
            }
            start = end;
        }
        self.take(py, &indices)
    }

    /// Per-rollout advantages from the batch's rewards and groups.
    #[pyo3(signature = (estimator = "reinforce_pp_baseline", eps = 1e-6))]
    fn advantages<'py>(
        &self,
        py: Python<'py>,
        estimator: &str,
        eps: f64,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let est: core_adv::Estimator = core(py, estimator.parse())?;
        let r = self.rewards_slice(py)?;
        let rs = slice_of(py, "rewards", &r)?;
        let sizes = &self.group_sizes;
        let out = detached(py, || core_adv::compute_advantages(rs, sizes, est, eps))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Repeats one value per rollout over that rollout's tokens (flat, aligned with token_ids).
    fn broadcast_to_tokens<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let v = as_array1::<f32>(py, "values", values, "float32")?;
        let vr = v.readonly();
        let vs = slice_of(py, "values", &vr)?;
        let o = self.offsets.bind(py).readonly();
        let os = slice_of(py, "offsets", &o)?;
        let n_tokens = self.n_tokens;
        let out = detached(py, || ragged::broadcast(vs, os, n_tokens))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Sequence-level values broadcast to a right-padded [n_rollouts, width] matrix, with the
    /// response mask (True on real tokens). `width` defaults to the longest response.
    #[pyo3(signature = (values, width = None))]
    fn padded_token_values<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
        width: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let v = as_array1::<f32>(py, "values", values, "float32")?;
        let vr = v.readonly();
        let vs = slice_of(py, "values", &vr)?;
        let o = self.offsets.bind(py).readonly();
        let os = slice_of(py, "offsets", &o)?;
        let n_tokens = self.n_tokens;
        let n = os.len() - 1;
        let (vals, mask, w) = detached(py, || {
            let flat = ragged::broadcast(vs, os, n_tokens)?;
            ragged::to_padded(&flat, os, width)
        })?;
        let shape = [n, w];
        Ok((
            PyArray1::from_vec(py, vals).reshape(shape)?.into_any(),
            PyArray1::from_vec(py, mask).reshape(shape)?.into_any(),
        ))
    }

    /// Micro-batches of rollout indices, per data-parallel rank: each micro-batch holds at
    /// most `max_tokens` tokens (response + `prompt_lengths`), ranks get near-equal token
    /// counts and the same number of micro-batches. Returns list[rank][micro_batch] -> array.
    #[pyo3(signature = (max_tokens, n_ranks = 1, prompt_lengths = None))]
    fn pack<'py>(
        &self,
        py: Python<'py>,
        max_tokens: i64,
        n_ranks: usize,
        prompt_lengths: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyArray1<i64>>>>> {
        let o = self.offsets.bind(py).readonly();
        let os = slice_of(py, "offsets", &o)?;
        let mut lengths: Vec<i64> = os.windows(2).map(|w| w[1] - w[0]).collect();
        if let Some(pl) = prompt_lengths {
            let a = as_array1::<i64>(py, "prompt_lengths", pl, "int64")?;
            let r = a.readonly();
            let s = slice_of(py, "prompt_lengths", &r)?;
            if s.len() != lengths.len() {
                return Err(invalid(
                    py,
                    format!(
                        "`prompt_lengths` has {} entries, expected one per rollout ({})",
                        s.len(),
                        lengths.len()
                    ),
                ));
            }
            lengths.iter_mut().zip(s).for_each(|(l, p)| *l += p);
        }
        let packed = detached(py, || {
            packing::pack_microbatches(&lengths, max_tokens, n_ranks)
        })?;
        Ok(packed
            .into_iter()
            .map(|rank| {
                rank.into_iter()
                    .map(|mb| PyArray1::from_vec(py, mb.into_iter().map(|i| i as i64).collect()))
                    .collect()
            })
            .collect())
    }
}
