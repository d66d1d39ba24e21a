//! The code verifier: untrusted Python run against unit tests in a Rust-managed sandbox.
//!
//! Reward = fraction of tests passed (or all-or-nothing), and 0 after a compile error or when
//! the whole run exceeds `total_timeout_s` (the ProRL rule). Samples run on a pool of warm
//! workers (`pool`), each a clean template process inside the envelope built by `sandbox`;
//! every process of a sample is a fresh fork of a template that never handled any sample's
//! data, with a fresh `/tmp` and `/dev/shm`, its own IPC namespace, rlimits, and a memory cgroup
//! over the whole sample where the kernel allows (`cgroup`). Every verdict is decided here
//! (`run`): `stdio` and `call` outputs are compared with expected values that never enter the
//! sandbox (`compare`, `plain`); `humaneval` runs the tests in a process of their own that
//! talks to the program's process in plain data only, and only that test process holds the
//! channel its verdict is read from.

pub mod cgroup;
pub mod compare;
pub mod extract;
pub mod native;
pub mod plain;
pub mod pool;
mod run;
pub mod sandbox;
pub mod seccomp;
pub mod worker;

use std::time::Instant;

pub use extract::extract_code;
pub use plain::Plain;
pub use pool::{default_workers, Isolation, Pool, SandboxConfig};

/// Errors of the code verifier (kept apart from `CoreError`, which others match on).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CodeError {
    #[error("invalid {name}={value}: expected {expected}")]
    InvalidArgument {
        name: String,
        value: String,
        expected: String,
    },
    #[error("code sandbox unavailable: {0}")]
    Sandbox(String),
}

impl CodeError {
    pub fn invalid(name: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        let mut value = value.to_string();
        if value.len() > 80 {
            value.truncate(value.char_indices().nth(77).map_or(value.len(), |(i, _)| i));
            value.push_str("...");
        }
        Self::InvalidArgument {
            name: name.into(),
            value,
            expected: expected.into(),
        }
    }
}

/// The outcome of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestStatus {
    Passed,
    WrongAnswer,
    RuntimeError,
    Timeout,
    MemoryExceeded,
    CompileError,
}

impl TestStatus {
    pub const NAMES: [&'static str; 6] = [
        "passed",
        "wrong_answer",
        "runtime_error",
        "timeout",
        "memory_exceeded",
        "compile_error",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One `stdio` test: the program reads `input` on stdin and must print `output`.
#[derive(Clone, Debug)]
pub struct StdioCase {
    pub input: String,
    pub output: String,
}

/// One `call` test: `entry_point(*args)` (or `**args` for an object) must return `expected`.
#[derive(Clone, Debug)]
pub struct CallCase {
    /// The arguments as JSON text (a list, or an object of keyword arguments), passed to the
    /// sample as written so integers of any size stay exact.
    pub args: String,
    pub expected: Plain,
}

impl CallCase {
    /// A case from the JSON text of its arguments and expected value (`name` for messages).
    pub fn from_json(name: &str, args: &str, expected: &str) -> Result<Self, CodeError> {
        match serde_json::from_str::<serde_json::Value>(args) {
            Ok(v) if v.is_array() || v.is_object() => {}
            Ok(_) => {
                return Err(CodeError::invalid(
                    &format!("{name}.args"),
                    args,
                    "a JSON list or object",
                ))
            }
            Err(e) => {
                return Err(CodeError::invalid(
                    &format!("{name}.args"),
                    args,
                    &format!("JSON ({e})"),
                ))
            }
        }
        let expected = Plain::from_json(expected).map_err(|e| {
            CodeError::invalid(
                &format!("{name}.expected"),
                expected,
                &format!("JSON ({e})"),
            )
        })?;
        Ok(Self {
            args: args.to_string(),
            expected,
        })
    }
}

/// What one literal assertion of a humaneval test checks of the returned value.
#[derive(Clone, Debug)]
pub enum LiteralCheck {
    /// `== expected`, with Python's equality on plain data (`plain::python_eq`).
    Eq(Plain),
    /// `is None`, `is True`, `is False`.
    Is(Plain),
    /// `assert candidate(...)`: the value is true in Python's sense.
    Truthy,
    /// `assert not candidate(...)`.
    Falsy,
}

/// One call of a humaneval test made only of literal assertions: the arguments as JSON text
/// (as a `call` test's) and what the returned value must satisfy.
#[derive(Clone, Debug)]
pub struct LiteralCall {
    pub args: String,
    pub check: LiteralCheck,
}

impl LiteralCheck {
    /// Whether the returned value `got` passes.
    pub fn holds(&self, got: &Plain) -> bool {
        match self {
            Self::Eq(want) => plain::python_eq(got, want),
            Self::Is(want) => got == want,
            Self::Truthy => plain::truthy(got),
            Self::Falsy => !plain::truthy(got),
        }
    }
}

/// The tests of one sample, by kind.
#[derive(Clone, Debug)]
pub enum CodeTests {
    /// HumanEval/MBPP style: `source` defines `check(candidate)`; one test. `check` runs in a
    /// process of its own after the trusted `prompt` (when given; helpers that tests use,
    /// such as HumanEval's `poly`), with `candidate` a proxy to the program's process.
    HumanEval {
        source: String,
        entry_point: String,
        prompt: Option<String>,
        /// The test read as calls when it is only literal assertions (`assert
        /// candidate(<literals>) == <literal>`, read by brorl's Python side): then no test
        /// process runs; the program answers the calls in one process and brorl compares.
        literal_calls: Option<Vec<LiteralCall>>,
    },
    /// APPS/CodeContests style; `float_tol` lets tokens whose expected text is a float
    /// literal differ by that (relative); integer tokens compare exactly.
    Stdio {
        cases: Vec<StdioCase>,
        float_tol: Option<f64>,
    },
    /// LiveCodeBench functional style; a returned number may differ by `float_tol` where the
    /// expected value is a float; everything else compares exactly.
    Call {
        cases: Vec<CallCase>,
        entry_point: String,
        float_tol: f64,
    },
}

impl CodeTests {
    pub fn len(&self) -> usize {
        match self {
            Self::HumanEval { .. } => 1,
            Self::Stdio { cases, .. } => cases.len(),
            Self::Call { cases, .. } => cases.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the test outcomes become one reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewardMode {
    /// passed / total.
    Fraction,
    /// 1 if every test passed, else 0.
    All,
}

impl RewardMode {
    pub fn parse(name: &str) -> Result<Self, CodeError> {
        match name {
            "fraction" => Ok(Self::Fraction),
            "all" => Ok(Self::All),
            _ => Err(CodeError::invalid(
                "reward",
                name,
                "\"fraction\" or \"all\"",
            )),
        }
    }
}

/// Resource limits of one sample.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock limit of one test (the CPU limit follows it).
    pub timeout_s: f64,
    /// Wall-clock limit of the whole sample; exceeding it gives reward 0.
    pub total_timeout_s: f64,
    /// Memory of the whole sample: every process, memory file and tmpfs file it makes
    /// (a memory cgroup), or per process (RLIMIT_AS) where no cgroup can be made.
    pub memory_mb: u64,
    /// Processes and threads of the sample's uid (RLIMIT_NPROC).
    pub nproc: u64,
    /// Largest file the sample may write (RLIMIT_FSIZE); stdout and stderr are memory files
    /// under the same limit.
    pub fsize_mb: u64,
    /// Open files (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Size of each sample's private `/tmp` (and its inode count is capped) in MiB.
    pub tmpfs_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_s: 3.0,
            total_timeout_s: 5.0,
            memory_mb: 1024,
            nproc: 64,
            fsize_mb: 16,
            nofile: 256,
            tmpfs_mb: 64,
        }
    }
}

/// One program and its tests.
#[derive(Clone, Debug)]
pub struct CodeRequest {
    pub program: String,
    pub tests: CodeTests,
    pub limits: Limits,
    pub reward: RewardMode,
}

/// The verdict on one program.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeResult {
    pub passed: usize,
    pub total: usize,
    pub reward: f64,
    pub statuses: Vec<TestStatus>,
    /// Excerpts (first 4 KiB) of the first run's stdout and stderr, for diagnosis only.
    pub stdout: String,
    pub stderr: String,
    /// A compile error message, or why the sandbox gave up on the sample.
    pub error: Option<String>,
    pub elapsed_s: f64,
    /// How the sample was contained: "namespaces" or "basic", then the kind of memory limit
    /// ("cgroup2 memory.max", "cgroup1 memory.limit_in_bytes" or "rlimit_as").
    pub sandbox: String,
}

fn positive(name: &str, v: f64) -> Result<(), CodeError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(CodeError::invalid(name, v, "a finite number > 0"))
    }
}

fn identifier(name: &str, v: &str) -> Result<(), CodeError> {
    let ok = !v.is_empty()
        && v.split('.').count() <= 2
        && v.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(CodeError::invalid(
            name,
            v,
            "a Python identifier (or Class.method)",
        ))
    }
}

impl CodeRequest {
    /// Checks every field; the message names the field and the value.
    pub fn validate(&self) -> Result<(), CodeError> {
        let l = &self.limits;
        positive("timeout_s", l.timeout_s)?;
        positive("total_timeout_s", l.total_timeout_s)?;
        if l.timeout_s > 3600.0 || l.total_timeout_s > 3600.0 {
            return Err(CodeError::invalid(
                "timeout_s",
                l.timeout_s.max(l.total_timeout_s),
                "at most 3600",
            ));
        }
        if l.memory_mb < 64 {
            return Err(CodeError::invalid("memory_mb", l.memory_mb, "at least 64"));
        }
        if l.nproc == 0 || l.nofile < 16 || l.fsize_mb == 0 || l.tmpfs_mb == 0 {
            return Err(CodeError::invalid(
                "limits",
                format!("{l:?}"),
                "nproc >= 1, nofile >= 16, fsize_mb >= 1, tmpfs_mb >= 1",
            ));
        }
        if self.tests.is_empty() {
            return Err(CodeError::invalid("tests", "[]", "at least one test"));
        }
        match &self.tests {
            CodeTests::HumanEval { entry_point, .. } => identifier("entry_point", entry_point),
            CodeTests::Call {
                entry_point,
                cases,
                float_tol,
            } => {
                identifier("entry_point", entry_point)?;
                if !(float_tol.is_finite() && *float_tol >= 0.0) {
                    return Err(CodeError::invalid(
                        "float_tol",
                        float_tol,
                        "a finite number >= 0",
                    ));
                }
                match cases
                    .iter()
                    .position(|c| !c.args.trim_start().starts_with(['[', '{']))
                {
                    Some(i) => Err(CodeError::invalid(
                        &format!("tests[{i}].args"),
                        &cases[i].args,
                        "a JSON list or object",
                    )),
                    None => Ok(()),
                }
            }
            CodeTests::Stdio { float_tol, .. } => match float_tol {
                Some(t) if !(t.is_finite() && *t >= 0.0) => {
                    Err(CodeError::invalid("float_tol", t, "a finite number >= 0"))
                }
                _ => Ok(()),
            },
        }
    }
}

pub(crate) fn reward_of(mode: RewardMode, passed: usize, total: usize) -> f64 {
    match mode {
        RewardMode::Fraction => passed as f64 / total as f64,
        RewardMode::All => f64::from(u8::from(passed == total)),
    }
}

fn failed_result(
    req: &CodeRequest,
    status: TestStatus,
    error: String,
    start: Instant,
) -> CodeResult {
    let total = req.tests.len();
    CodeResult {
        passed: 0,
        total,
        reward: 0.0,
        statuses: vec![status; total],
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
        elapsed_s: start.elapsed().as_secs_f64(),
        sandbox: String::new(),
    }
}

/// Verifies one program on a worker of `pool`.
pub fn verify(pool: &Pool, req: &CodeRequest) -> Result<CodeResult, CodeError> {
    req.validate()?;
    let start = Instant::now();
    Ok(conclude(
        req,
        pool.with_worker(|w| run::execute(w, req, start))?,
        start,
    ))
}

/// The verdict, or a failure from how the worker failed (it has been replaced).
fn conclude(
    req: &CodeRequest,
    out: Result<CodeResult, worker::WorkerError>,
    start: Instant,
) -> CodeResult {
    match out {
        Ok(r) => r,
        Err(worker::WorkerError::Timeout) => failed_result(
            req,
            TestStatus::Timeout,
            "the worker did not answer in time and was replaced".into(),
            start,
        ),
        Err(worker::WorkerError::Lost(why) | worker::WorkerError::Unsent(why)) => failed_result(
            req,
            TestStatus::RuntimeError,
            format!("the worker was lost and replaced: {why}"),
            start,
        ),
    }
}

/// Verifies many programs with up to `workers` running at once; results in input order. All
/// requests are checked before any runs.
pub fn verify_batch(
    pool: &Pool,
    reqs: &[CodeRequest],
    workers: usize,
) -> Result<Vec<CodeResult>, CodeError> {
    for (i, r) in reqs.iter().enumerate() {
        r.validate().map_err(|e| match e {
            CodeError::InvalidArgument {
                name,
                value,
                expected,
            } => CodeError::InvalidArgument {
                name: format!("items[{i}].{name}"),
                value,
                expected,
            },
            other => other,
        })?;
    }
    pool.map(reqs, workers, |w, r| {
        let start = Instant::now();
        run::execute(w, r, start).map(|res| (res, start))
    })
    .into_iter()
    .zip(reqs)
    .map(|(out, r)| {
        out.map(|o| match o {
            Ok((res, _)) => res,
            Err(e) => conclude(r, Err(e), Instant::now()),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests;
