//! Argument conversion: anything array-like becomes a C-contiguous NumPy array of the right
//! dtype (no copy when it already is one), so the core always sees plain slices.

use numpy::{Element, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::raise;

/// `numpy.ascontiguousarray(obj, dtype=dtype)`, checked to be one-dimensional.
pub fn as_array1<'py, T: Element>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    dtype: &str,
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    let arr = np
        .call_method("ascontiguousarray", (obj,), Some(&kwargs))
        .map_err(|e| {
            raise(
                py,
                "InvalidArgumentError",
                format!("`{name}` cannot be read as a {dtype} array: {e}"),
            )
        })?;
    if let Ok(a) = arr.cast::<PyArray1<T>>() {
        return Ok(a.clone());
    }
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    Err(raise(
        py,
        "InvalidArgumentError",
        format!("`{name}` must be one-dimensional, got {ndim} dimensions"),
    ))
}

/// Maps numpy's "not contiguous" error onto brorl's error type, naming the argument.
pub fn not_contiguous<'a>(
    py: Python<'a>,
    name: &str,
) -> impl FnOnce(numpy::AsSliceError) -> PyErr + 'a {
    let name = name.to_string();
    move |e| raise(py, "InvalidArgumentError", format!("`{name}`: {e}"))
}
