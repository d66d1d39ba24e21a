//! Python face of the math verifier (`brorl_core::math`). Strings are borrowed from the Python
//! objects (no copies) and the batch runs on a rayon pool with the GIL released.

use brorl_core::math::{self, MathError, Options, Status};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::arrays::{py_str, utf8};
use crate::errors::{detached, raise};

fn options(last_number: bool) -> Options {
    Options {
        last_number_fallback: last_number,
        ..Options::default()
    }
}

fn math_error(py: Python<'_>, e: MathError) -> PyErr {
    let class = match e {
        MathError::LengthMismatch { .. } | MathError::BadThreads(_) => "InvalidArgumentError",
        MathError::Pool { .. } => "InternalError",
    };
    raise(py, class, e.to_string())
}

/// The items of a sequence of `str`, kept alive so their UTF-8 can be borrowed.
fn strings<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyString>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(raise(
            py,
            "BrorlTypeError",
            format!("`{name}` must be a sequence of str, not a single str"),
        ));
    }
    let iter = obj.try_iter().map_err(|_| {
        raise(
            py,
            "BrorlTypeError",
            format!(
                "`{name}` must be a sequence of str, got {}",
                obj.get_type().name().map_or("?".into(), |n| n.to_string())
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let s = item.cast_into::<PyString>().map_err(|e| {
            let ty = e
                .into_inner()
                .get_type()
                .name()
                .map_or("?".into(), |n| n.to_string());
            raise(
                py,
                "BrorlTypeError",
                format!("`{name}[{i}]` must be str, got {ty}"),
            )
        })?;
        out.push(s);
    }
    Ok(out)
}

fn borrowed<'a>(
    py: Python<'_>,
    name: &str,
    items: &'a [Bound<'_, PyString>],
) -> PyResult<Vec<&'a str>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| utf8(py, &format!("{name}[{i}]"), s))
        .collect()
}

fn threads_arg(py: Python<'_>, threads: Option<i64>) -> PyResult<Option<usize>> {
    match threads {
        None => Ok(None),
        Some(t) if t >= 1 => Ok(Some(t as usize)),
        Some(t) => Err(raise(
            py,
            "InvalidArgumentError",
            format!("`threads` must be at least 1 (or None), got {t}"),
        )),
    }
}

fn batch(
    py: Python<'_>,
    golds: &Bound<'_, PyAny>,
    responses: &Bound<'_, PyAny>,
    threads: Option<i64>,
    last_number: bool,
) -> PyResult<Vec<Status>> {
    let threads = threads_arg(py, threads)?;
    let g = strings(py, "golds", golds)?;
    let r = strings(py, "responses", responses)?;
    let (gs, rs) = (borrowed(py, "golds", &g)?, borrowed(py, "responses", &r)?);
    let opts = options(last_number);
    let out = detached(py, || Ok(math::verify_batch(&gs, &rs, &opts, threads)))?;
    out.map_err(|e| math_error(py, e))
}

/// The answer a model gave in `response`, or None. With `last_number`, a response without a
/// box, answer tag or "final answer" falls back to "answer is ...", the last complete math span
/// or a standalone number after it.
#[pyfunction]
#[pyo3(signature = (response, *, last_number = true))]
pub fn extract_answer(
    py: Python<'_>,
    response: &Bound<'_, PyAny>,
    last_number: bool,
) -> PyResult<Option<String>> {
    let response = utf8(py, "response", py_str(py, "response", response)?)?;
    detached(py, || Ok(math::extract_answer(response, last_number)))
}

/// Whether `response` (a whole model response or a bare answer) matches `gold`.
#[pyfunction]
#[pyo3(signature = (gold, response, *, last_number = true))]
pub fn verify_math(
    py: Python<'_>,
    gold: &Bound<'_, PyAny>,
    response: &Bound<'_, PyAny>,
    last_number: bool,
) -> PyResult<bool> {
    let (g, r) = (py_str(py, "gold", gold)?, py_str(py, "response", response)?);
    let (gold, response) = (utf8(py, "gold", g)?, utf8(py, "response", r)?);
    let opts = options(last_number);
    detached(py, || Ok(math::verify(gold, response, &opts).is_correct()))
}

/// The verdict for one pair as a status name (see `MATH_STATUSES`).
#[pyfunction]
#[pyo3(signature = (gold, response, *, last_number = true))]
pub fn verify_math_status(
    py: Python<'_>,
    gold: &Bound<'_, PyAny>,
    response: &Bound<'_, PyAny>,
    last_number: bool,
) -> PyResult<&'static str> {
    let (g, r) = (py_str(py, "gold", gold)?, py_str(py, "response", response)?);
    let (gold, response) = (utf8(py, "gold", g)?, utf8(py, "response", r)?);
    let opts = options(last_number);
    detached(py, || Ok(math::verify(gold, response, &opts).as_str()))
}

/// One bool per pair, verified in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (golds, responses, *, threads = None, last_number = true))]
pub fn verify_math_batch<'py>(
    py: Python<'py>,
    golds: &Bound<'py, PyAny>,
    responses: &Bound<'py, PyAny>,
    threads: Option<i64>,
    last_number: bool,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let out = batch(py, golds, responses, threads, last_number)?;
    Ok(PyArray1::from_vec(
        py,
        out.into_iter().map(Status::is_correct).collect(),
    ))
}

/// One status code per pair (`MATH_STATUSES[code]` is its name), for diagnostics.
#[pyfunction]
#[pyo3(signature = (golds, responses, *, threads = None, last_number = true))]
pub fn verify_math_batch_status<'py>(
    py: Python<'py>,
    golds: &Bound<'py, PyAny>,
    responses: &Bound<'py, PyAny>,
    threads: Option<i64>,
    last_number: bool,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let out = batch(py, golds, responses, threads, last_number)?;
    Ok(PyArray1::from_vec(
        py,
        out.into_iter().map(Status::code).collect(),
    ))
}
