//! One error type for the whole core. Each variant names the argument that was wrong and
//! the value that made it wrong, so the Python side can raise a typed exception that a user
//! can act on without reading Rust.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A value is out of its domain (a negative size, k larger than n, a bad name, ...).
    #[error("invalid value for `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// Two arguments disagree in length or shape.
    #[error("length mismatch: `{name}` has {got} elements, expected {expected}")]
    LengthMismatch {
        name: &'static str,
        got: usize,
        expected: usize,
    },

    /// NaN or infinity where a finite number is required.
    #[error("`{name}` must be finite, found {value} at index {index}")]
    NonFinite {
        name: &'static str,
        index: usize,
        value: f64,
    },

    /// A cooperative work budget ran out (input too large, too many steps).
    #[error("budget exceeded: {0}")]
    BudgetExceeded(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument {
        name,
        reason: reason.into(),
    }
}

pub(crate) fn check_len(name: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(CoreError::LengthMismatch {
            name,
            got,
            expected,
        })
    }
}

/// Rejects NaN and infinities; the index points at the first offender.
pub fn check_finite(name: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(CoreError::NonFinite {
            name,
            index,
            value: values[index] as f64,
        }),
    }
}

/// Log-probabilities of sampled tokens: NaN and +inf are refused, and so is any value above 0
/// (a probability above 1); -inf (probability 0) is allowed. The index points at the first
/// offender.
pub fn check_logprobs(name: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|&v| v.is_nan() || v > 0.0) {
        None => Ok(()),
        Some(index) => {
            let value = values[index];
            if value.is_nan() || value.is_infinite() {
                Err(CoreError::NonFinite {
                    name,
                    index,
                    value: value as f64,
                })
            } else {
                Err(invalid(
                    name,
                    format!("log-probabilities must be <= 0, found {value} at index {index}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_refuse_nan_inf_and_positive() {
        assert!(check_logprobs("lp", &[0.0, -1.5, f32::NEG_INFINITY]).is_ok());
        assert!(matches!(
            check_logprobs("lp", &[-1.0, f32::NAN]),
            Err(CoreError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            check_logprobs("lp", &[f32::INFINITY]),
            Err(CoreError::NonFinite { index: 0, .. })
        ));
        let e = check_logprobs("lp", &[-0.1, -0.2, 1e-3]).unwrap_err();
        assert!(e.to_string().contains("index 2"), "{e}");
    }
}
