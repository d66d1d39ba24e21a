//! Math answer verification: is a model's final answer equivalent to the reference answer?
//!
//! The pipeline is extraction (`extract`), a small LaTeX lexer (`lexer`) and parser (`parser`)
//! into an expression tree (`ast`), and a comparison (`compare`) that decides equivalence by
//! exact rational arithmetic where the expressions allow it and by evaluation at deterministic
//! pseudo-random points otherwise (`value`). Everything is bounded by construction: input
//! lengths, tree size, nesting depth, integer sizes and evaluation points are capped, and a
//! cooperative step budget (`budget`) is checked throughout, so no input can hang or exhaust
//! memory; the worst case is a quick `BudgetExceeded` or `Unparseable` status.

pub mod ast;
pub mod budget;
pub mod compare;
pub mod extract;
pub mod lexer;
pub mod parser;
pub mod precise;
pub mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

pub use budget::{Budget, Exceeded, Limits};
pub use extract::extract_answer;

/// Outcome of verifying one (gold, response) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    Correct = 0,
    Wrong = 1,
    /// The response holds no answer that could be extracted.
    NoAnswer = 2,
    /// The gold or the extracted answer could not be parsed (and did not match as text).
    Unparseable = 3,
    /// A size cap or the step budget was hit before a decision.
    BudgetExceeded = 4,
}

impl Status {
    /// Names in code order (`Status as u8` indexes this).
    pub const NAMES: [&'static str; 5] = [
        "correct",
        "wrong",
        "no_answer",
        "unparseable",
        "budget_exceeded",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn is_correct(self) -> bool {
        self == Status::Correct
    }
}

/// Errors for bad arguments to the batch API (the per-item path never errors: it has statuses).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MathError {
    #[error("`golds` has {golds} items but `responses` has {responses}")]
    LengthMismatch { golds: usize, responses: usize },
    #[error("`threads` must be at least 1, got {0}")]
    BadThreads(usize),
    #[error("could not start a thread pool with {threads} threads: {reason}")]
    Pool { threads: usize, reason: String },
}

/// Options of the verifier; `Default` is what `brorl.verify_math` uses.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// When the response has no `\boxed{}`, `<answer>` or "final answer", use the text after
    /// "answer is", else its last complete math span or a standalone number written after it.
    pub last_number_fallback: bool,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            last_number_fallback: true,
            limits: Limits::default(),
        }
    }
}

/// Verifies one pair. `response` may be a whole model response (the answer is extracted) or a
/// bare answer; `gold` may be wrapped in `\boxed{}` or `$...$`.
pub fn verify(gold: &str, response: &str, opts: &Options) -> Status {
    compare::verify_pair(gold, response, opts)
}

/// Verifies pairs in parallel; `threads = None` uses rayon's global pool.
pub fn verify_batch<G, R>(
    golds: &[G],
    responses: &[R],
    opts: &Options,
    threads: Option<usize>,
) -> Result<Vec<Status>, MathError>
where
    G: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    if golds.len() != responses.len() {
        return Err(MathError::LengthMismatch {
            golds: golds.len(),
            responses: responses.len(),
        });
    }
    let work = || -> Vec<Status> {
        golds
            .par_iter()
            .zip(responses.par_iter())
            .with_min_len(16)
            .map(|(g, r)| verify(g.as_ref(), r.as_ref(), opts))
            .collect()
    };
    match threads {
        None => Ok(work()),
        Some(0) => Err(MathError::BadThreads(0)),
        Some(n) => Ok(pool(n)?.install(work)),
    }
}

/// One cached pool per requested size: building a pool costs far more than verifying a pair.
fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, MathError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = pools.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = map.get(&threads) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("brorl-math-{i}"))
        .build()
        .map_err(|e| MathError::Pool {
            threads,
            reason: e.to_string(),
        })?;
    let p = Arc::new(p);
    map.insert(threads, p.clone());
    Ok(p)
}
