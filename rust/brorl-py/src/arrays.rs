//! Argument conversion: anything array-like becomes a C-contiguous NumPy array of the right
//! dtype (no copy when it already is one), so the core always sees plain slices. Conversions
//! that would change a value (a float token id, an id past int32, a uint64 past int64) are
//! refused, naming the argument: NumPy's own casts wrap or truncate without a word.
//! Strings are checked here too: a lone surrogate cannot become UTF-8.

use numpy::{Element, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::raise;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// The first element of `arr` outside `[lo, hi]` as (index, value), compared in Python so
/// that uint64 and int64 sources are both exact.
fn first_outside(
    py: Python<'_>,
    arr: &Bound<'_, PyAny>,
    lo: &Bound<'_, PyAny>,
    hi: &Bound<'_, PyAny>,
) -> PyResult<Option<(usize, String)>> {
    let np = py.import("numpy")?;
    let bad = np
        .call_method1("less", (arr, lo))?
        .call_method1("__or__", (np.call_method1("greater", (arr, hi))?,))?;
    if !bad.call_method0("any")?.extract::<bool>()? {
        return Ok(None);
    }
    let index: usize = np.call_method1("argmax", (bad,))?.extract()?;
    let value = arr.get_item(index)?.str()?.to_string();
    Ok(Some((index, value)))
}

/// Refuses sources whose values would change when cast to `dtype`.
fn check_lossless(py: Python<'_>, name: &str, src: &Bound<'_, PyAny>, dtype: &str) -> PyResult<()> {
    let size: usize = src.getattr("size")?.extract()?;
    if size == 0 {
        return Ok(()); // `[]` reads as float64; an empty column has nothing to lose
    }
    let src_dtype = src.getattr("dtype")?;
    let kind: String = src_dtype.getattr("kind")?.extract()?;
    let shown = src_dtype.str()?.to_string();
    let np = py.import("numpy")?;
    let target_int = dtype.starts_with("int");
    if target_int || dtype == "bool" {
        let ok_kind = if target_int { "iub" } else { "biu" };
        if !ok_kind.contains(kind.as_str()) {
            let what = if target_int { "integers" } else { "booleans" };
            return Err(raise(
                py,
                "BrorlTypeError",
                format!(
                    "`{name}` must hold {what}, got a {shown} array \
                     (a cast would change the values)"
                ),
            ));
        }
        if kind == "b" || src_dtype.eq(dtype)? {
            return Ok(());
        }
        let (lo, hi) = if target_int {
            let info = np.call_method1("iinfo", (dtype,))?;
            (info.getattr("min")?, info.getattr("max")?)
        } else {
            (
                0i64.into_pyobject(py)?.into_any(),
                1i64.into_pyobject(py)?.into_any(),
            )
        };
        if let Some((i, v)) = first_outside(py, src, &lo, &hi)? {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("`{name}[{i}]` = {v} does not fit {dtype} (range {lo} to {hi})"),
            ));
        }
    } else if !"fiu".contains(kind.as_str()) {
        return Err(raise(
            py,
            "BrorlTypeError",
            format!("`{name}` must hold real numbers, got a {shown} array"),
        ));
    }
    Ok(())
}

/// `numpy.ascontiguousarray(obj, dtype=dtype)`, checked to be one-dimensional and refused
/// when the cast would change a value.
pub fn as_array1<'py, T: Element>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    dtype: &str,
) -> PyResult<Bound<'py, PyArray1<T>>> {
    if let Ok(a) = obj.cast::<PyArray1<T>>() {
        if a.getattr("flags")?
            .getattr("c_contiguous")?
            .extract::<bool>()?
        {
            return Ok(a.clone()); // the common case: already right, no checks, no copy
        }
    }
    let np = py.import("numpy")?;
    let cannot = |e: PyErr| {
        raise(
            py,
            "InvalidArgumentError",
            format!("`{name}` cannot be read as a {dtype} array: {e}"),
        )
    };
    let src = np.call_method1("asarray", (obj,)).map_err(cannot)?;
    let ndim: usize = src.getattr("ndim")?.extract()?;
    if ndim != 1 {
        return Err(raise(
            py,
            "InvalidArgumentError",
            format!("`{name}` must be one-dimensional, got {ndim} dimensions"),
        ));
    }
    check_lossless(py, name, &src, dtype)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    let arr = np
        .call_method("ascontiguousarray", (&src,), Some(&kwargs))
        .map_err(cannot)?;
    Ok(arr.cast::<PyArray1<T>>()?.clone())
}

/// Maps numpy's "not contiguous" error onto brorl's error type, naming the argument.
pub fn not_contiguous<'a>(
    py: Python<'a>,
    name: &str,
) -> impl FnOnce(numpy::AsSliceError) -> PyErr + 'a {
    let name = name.to_string();
    move |e| raise(py, "InvalidArgumentError", format!("`{name}`: {e}"))
}

/// `obj` as a `str`, or a typed error naming the argument.
pub fn py_str<'a, 'py>(
    py: Python<'py>,
    name: &str,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyString>> {
    obj.cast::<PyString>().map_err(|_| {
        raise(
            py,
            "BrorlTypeError",
            format!("`{name}` must be str, got {}", type_name(obj)),
        )
    })
}

/// The UTF-8 of a Python `str`, borrowed; a lone surrogate (which UTF-8 cannot hold) is an
/// `InvalidArgumentError` naming the argument and the position.
pub fn utf8<'a>(py: Python<'_>, name: &str, s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    s.to_str().map_err(|e| {
        let at = e
            .value(py)
            .getattr("start")
            .and_then(|v| v.extract::<usize>())
            .map_or_else(|_| String::new(), |i| format!(" at index {i}"));
        raise(
            py,
            "InvalidArgumentError",
            format!(
                "`{name}` holds a lone surrogate{at}, which is not valid Unicode text \
                 (decode the bytes with errors='replace' first)"
            ),
        )
    })
}

/// `obj` as an owned `String`: type and Unicode checked, both errors naming the argument.
pub fn text(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(utf8(py, name, py_str(py, name, obj)?)?.to_string())
}
