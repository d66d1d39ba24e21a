use brorl_core::advantages::{self as core_adv, Estimator};
use brorl_core::groups;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{as_array1, not_contiguous};
use crate::errors::{core, detached};

type ArrayPair<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

/// Sequence-level advantages; see `brorl.compute_advantages` for the formulas.
#[pyfunction]
#[pyo3(signature = (rewards, group_sizes, estimator = "reinforce_pp_baseline", eps = 1e-6))]
pub fn compute_advantages<'py>(
    py: Python<'py>,
    rewards: &Bound<'py, PyAny>,
    group_sizes: &Bound<'py, PyAny>,
    estimator: &str,
    eps: f64,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let est: Estimator = core(py, estimator.parse())?;
    let r = as_array1::<f32>(py, "rewards", rewards, "float32")?;
    let g = as_array1::<i64>(py, "group_sizes", group_sizes, "int64")?;
    let (rv, gv) = (r.readonly(), g.readonly());
    let rs = rv.as_slice().map_err(not_contiguous(py, "rewards"))?;
    let gs = gv.as_slice().map_err(not_contiguous(py, "group_sizes"))?;
    let out = detached(py, || core_adv::compute_advantages(rs, gs, est, eps))?;
    Ok(PyArray1::from_vec(py, out))
}

/// Token-level GAE over ragged responses; returns (advantages, returns).
#[pyfunction]
#[pyo3(signature = (token_rewards, values, offsets, gamma = 1.0, lam = 1.0))]
pub fn compute_gae<'py>(
    py: Python<'py>,
    token_rewards: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    gamma: f64,
    lam: f64,
) -> PyResult<ArrayPair<'py>> {
    let r = as_array1::<f32>(py, "token_rewards", token_rewards, "float32")?;
    let v = as_array1::<f32>(py, "values", values, "float32")?;
    let o = as_array1::<i64>(py, "offsets", offsets, "int64")?;
    let (rv, vv, ov) = (r.readonly(), v.readonly(), o.readonly());
    let rs = rv.as_slice().map_err(not_contiguous(py, "token_rewards"))?;
    let vs = vv.as_slice().map_err(not_contiguous(py, "values"))?;
    let os = ov.as_slice().map_err(not_contiguous(py, "offsets"))?;
    let (adv, ret) = detached(py, || core_adv::compute_gae(rs, vs, os, gamma, lam))?;
    Ok((PyArray1::from_vec(py, adv), PyArray1::from_vec(py, ret)))
}

/// Unbiased pass@k (Chen et al. 2021) per group from group sizes and correct counts.
#[pyfunction]
pub fn pass_at_k<'py>(
    py: Python<'py>,
    group_sizes: &Bound<'py, PyAny>,
    n_correct: &Bound<'py, PyAny>,
    k: i64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let g = as_array1::<i64>(py, "group_sizes", group_sizes, "int64")?;
    let c = as_array1::<i64>(py, "n_correct", n_correct, "int64")?;
    let (gv, cv) = (g.readonly(), c.readonly());
    let gs = gv.as_slice().map_err(not_contiguous(py, "group_sizes"))?;
    let cs = cv.as_slice().map_err(not_contiguous(py, "n_correct"))?;
    let out = core(py, groups::pass_at_k(gs, cs, k))?;
    Ok(PyArray1::from_vec(py, out))
}
