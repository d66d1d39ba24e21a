//! `brorl._core`: the Python face of brorl-core. Converts arguments, releases the GIL for heavy
//! work (see `errors::detached`) and maps errors; no algorithm lives here.

mod advantages;
mod arrays;
mod code;
mod errors;
mod math;
mod rollout;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use super::*;

    #[pymodule_export]
    use advantages::{compute_advantages, compute_gae, pass_at_k};
    #[pymodule_export]
    use code::{extract_code, verify_code, verify_code_batch, CodeResult};
    #[pymodule_export]
    use math::{
        extract_answer, verify_math, verify_math_batch, verify_math_batch_status,
        verify_math_status,
    };
    #[pymodule_export]
    use rollout::RolloutBatch;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "ESTIMATORS",
            brorl_core::advantages::Estimator::NAMES.to_vec(),
        )?;
        m.add("MATH_STATUSES", brorl_core::math::Status::NAMES.to_vec())?;
        m.add("FINISH_REASONS", rollout::FINISH_REASONS.to_vec())?;
        m.add(
            "CODE_STATUSES",
            brorl_core::code::TestStatus::NAMES.to_vec(),
        )?;
        Ok(())
    }
}
