//! The one place where Rust errors become Python exceptions, and where heavy work leaves the
//! interpreter. The exception classes live in `brorl/errors.py` (so they can subclass both
//! `BrorlError` and `ValueError`); this module looks them up once and raises them.

use std::panic::{catch_unwind, AssertUnwindSafe};

use brorl_core::CoreError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || py.import("brorl.errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// Raises the named class from `brorl.errors` with `message`.
pub fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match exception_class(py, class) {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(e) => e,
    }
}

pub fn to_py(py: Python<'_>, err: CoreError) -> PyErr {
    let class = match err {
        CoreError::InvalidArgument { .. } | CoreError::LengthMismatch { .. } => {
            "InvalidArgumentError"
        }
        CoreError::NonFinite { .. } => "NonFiniteError",
        CoreError::BudgetExceeded(_) => "BudgetExceededError",
    };
    raise(py, class, err.to_string())
}

/// Runs `work` with the GIL released, turning a core error into its Python exception and a
/// panic into `brorl.errors.InternalError` instead of tearing down the interpreter.
pub fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> brorl_core::Result<T> + Send,
{
    let outcome = py.detach(move || catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(raise(
                py,
                "InternalError",
                format!("internal error in brorl's Rust core (please report): {what}"),
            ))
        }
    }
}

/// Maps a core error raised while holding the GIL.
pub fn core<T>(py: Python<'_>, r: brorl_core::Result<T>) -> PyResult<T> {
    r.map_err(|e| to_py(py, e))
}
