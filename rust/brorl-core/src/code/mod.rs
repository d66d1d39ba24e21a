//! The code verifier: untrusted Python run against unit tests in a Rust-managed sandbox.
//!
//! Reward = fraction of tests passed (or all-or-nothing), and 0 after a compile error or when
//! the whole run exceeds `total_timeout_s` (the ProRL rule). Samples run on a pool of warm
//! Python workers (`pool`), each inside the envelope built by `sandbox`; every sample is a
//! fresh fork of its worker with CPU, address-space, process, file-size, open-file and core
//! limits, its own process group, a fresh working directory and capped output. The verdict
//! comes from data the program cannot forge: for `stdio` and `call` the expected outputs
//! never enter the sandbox and are compared here; for `humaneval` the harness reports on a
//! dedicated descriptor with a per-run nonce, and stdout is never read as a signal.

pub mod compare;
pub mod extract;
pub mod pool;
pub mod sandbox;
pub mod seccomp;
pub mod worker;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use extract::extract_code;
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

    fn from_worker(s: &str) -> Self {
        match s {
            "passed" => Self::Passed,
            "wrong_answer" => Self::WrongAnswer,
            "timeout" => Self::Timeout,
            "memory_exceeded" => Self::MemoryExceeded,
            "compile_error" => Self::CompileError,
            _ => Self::RuntimeError,
        }
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
    pub args: Value,
    pub expected: Value,
}

impl CallCase {
    /// A case from the JSON text of its arguments and expected value (`name` for messages).
    pub fn from_json(name: &str, args: &str, expected: &str) -> Result<Self, CodeError> {
        let parse = |field: &str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| {
                CodeError::invalid(&format!("{name}.{field}"), text, &format!("JSON ({e})"))
            })
        };
        Ok(Self {
            args: parse("args", args)?,
            expected: parse("expected", expected)?,
        })
    }
}

/// The tests of one sample, by kind.
#[derive(Clone, Debug)]
pub enum CodeTests {
    /// HumanEval/MBPP style: `source` defines `check(candidate)`; one test.
    HumanEval { source: String, entry_point: String },
    /// APPS/CodeContests style; `float_tol` lets numeric tokens differ by that (relative).
    Stdio {
        cases: Vec<StdioCase>,
        float_tol: Option<f64>,
    },
    /// LiveCodeBench functional style; float return values may differ by `float_tol`.
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
    /// Address-space limit (RLIMIT_AS).
    pub memory_mb: u64,
    /// Processes and threads of the sample's uid (RLIMIT_NPROC).
    pub nproc: u64,
    /// Largest file the sample may write (RLIMIT_FSIZE); stdout and stderr are memory files
    /// under the same limit.
    pub fsize_mb: u64,
    /// Open files (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Bytes of stdout kept per test (the rest is dropped, and flags a `stdio` test as wrong);
    /// stdio raises it to fit the expected output.
    pub output_cap: usize,
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
            output_cap: 1 << 16,
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
        if l.nproc == 0 || l.nofile < 16 || l.fsize_mb == 0 {
            return Err(CodeError::invalid(
                "limits",
                format!("{l:?}"),
                "nproc >= 1, nofile >= 16, fsize_mb >= 1",
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
                    .position(|c| !(c.args.is_array() || c.args.is_object()))
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

    /// The request as the worker sees it: expected outputs are left out on purpose.
    fn to_worker(&self) -> Value {
        let l = &self.limits;
        let mut req = json!({
            "program": self.program,
            "timeout_s": l.timeout_s,
            "total_timeout_s": l.total_timeout_s,
            "memory_bytes": l.memory_mb << 20,
            "nproc": l.nproc,
            "fsize_bytes": l.fsize_mb << 20,
            "nofile": l.nofile,
            "out_cap": l.output_cap,
            "err_cap": 4096,
        });
        let m = req.as_object_mut().expect("object");
        match &self.tests {
            CodeTests::HumanEval {
                source,
                entry_point,
            } => {
                m.insert("kind".into(), "humaneval".into());
                m.insert("tests".into(), source.clone().into());
                m.insert("entry_point".into(), entry_point.clone().into());
            }
            CodeTests::Stdio { cases, .. } => {
                let longest = cases.iter().map(|c| c.output.len()).max().unwrap_or(0);
                m.insert("kind".into(), "stdio".into());
                m.insert(
                    "inputs".into(),
                    cases.iter().map(|c| c.input.clone()).collect(),
                );
                m.insert(
                    "out_cap".into(),
                    l.output_cap.max(2 * longest + 4096).into(),
                );
            }
            CodeTests::Call {
                cases, entry_point, ..
            } => {
                m.insert("kind".into(), "call".into());
                m.insert(
                    "args".into(),
                    cases.iter().map(|c| c.args.to_string()).collect(),
                );
                m.insert("entry_point".into(), entry_point.clone().into());
            }
        }
        req
    }

    /// How long the parent waits for the worker before killing it: the sample's own limit
    /// plus room for forking and cleaning up each test.
    fn budget(&self) -> Duration {
        let per_test = 0.25 * self.tests.len() as f64;
        Duration::from_secs_f64(self.limits.total_timeout_s + per_test + 10.0)
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Judges one test from the worker's report on it.
fn judge(tests: &CodeTests, i: usize, report: &Value) -> TestStatus {
    let status = report
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("runtime_error");
    let value = report
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (status, tests) {
        ("exited", CodeTests::Stdio { cases, float_tol }) => {
            let truncated = report
                .get("truncated")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !truncated && compare::stdout_matches(value, &cases[i].output, *float_tol) {
                TestStatus::Passed
            } else {
                TestStatus::WrongAnswer
            }
        }
        (
            "returned",
            CodeTests::Call {
                cases, float_tol, ..
            },
        ) => match serde_json::from_str::<Value>(value) {
            Ok(got) if compare::json_matches(&got, &cases[i].expected, *float_tol) => {
                TestStatus::Passed
            }
            _ => TestStatus::WrongAnswer,
        },
        ("passed", CodeTests::HumanEval { .. }) => TestStatus::Passed,
        (s, _) => TestStatus::from_worker(s),
    }
}

fn reward_of(mode: RewardMode, passed: usize, total: usize) -> f64 {
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
    }
}

/// Turns the worker's answer into the verdict.
fn finish(req: &CodeRequest, resp: &Value, start: Instant) -> CodeResult {
    if let Some(e) = resp.get("internal_error") {
        return failed_result(
            req,
            TestStatus::RuntimeError,
            format!("worker error: {e}"),
            start,
        );
    }
    let total = req.tests.len();
    let reports = resp
        .get("tests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<TestStatus> = (0..total)
        .map(|i| {
            reports
                .get(i)
                .map_or(TestStatus::RuntimeError, |r| judge(&req.tests, i, r))
        })
        .collect();
    let passed = statuses
        .iter()
        .filter(|s| **s == TestStatus::Passed)
        .count();
    let compile_error = resp
        .get("compile_error")
        .and_then(Value::as_str)
        .map(str::to_string);
    let over_time = resp
        .get("total_timed_out")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reward = if compile_error.is_some() || over_time {
        0.0
    } else {
        reward_of(req.reward, passed, total)
    };
    let error = compile_error.or_else(|| {
        over_time.then(|| format!("exceeded total_timeout_s={}", req.limits.total_timeout_s))
    });
    CodeResult {
        passed,
        total,
        reward,
        statuses,
        stdout: str_field(resp, "stdout"),
        stderr: str_field(resp, "stderr"),
        error,
        elapsed_s: resp
            .get("elapsed")
            .and_then(Value::as_f64)
            .unwrap_or_else(|| start.elapsed().as_secs_f64()),
    }
}

/// Verifies one program on a worker of `pool`.
pub fn verify(pool: &Pool, req: &CodeRequest) -> Result<CodeResult, CodeError> {
    req.validate()?;
    let start = Instant::now();
    Ok(conclude(
        req,
        pool.run(&req.to_worker(), start + req.budget())?,
        start,
    ))
}

/// The verdict from the worker's answer, or from how the worker failed.
fn conclude(
    req: &CodeRequest,
    out: Result<Value, worker::WorkerError>,
    start: Instant,
) -> CodeResult {
    match out {
        Ok(resp) => finish(req, &resp, start),
        Err(worker::WorkerError::Timeout) => failed_result(
            req,
            TestStatus::Timeout,
            "the worker did not answer in time and was killed".into(),
            start,
        ),
        Err(worker::WorkerError::Lost(why)) => failed_result(
            req,
            TestStatus::RuntimeError,
            format!("the worker was lost: {why}"),
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
    let start = Instant::now();
    let work: Vec<(Value, Duration)> = reqs.iter().map(|r| (r.to_worker(), r.budget())).collect();
    pool.run_many(&work, workers)
        .into_iter()
        .zip(reqs)
        .map(|(out, r)| out.map(|o| conclude(r, o, start)))
        .collect()
}

#[cfg(test)]
mod tests;
