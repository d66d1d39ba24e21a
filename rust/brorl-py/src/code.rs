//! Python face of the code verifier (`brorl_core::code`): converts arguments, runs the
//! sandboxed work with the GIL released, maps `CodeError` to `brorl.errors` classes.

use std::path::PathBuf;
use std::sync::Arc;

use brorl_core::code::{
    self as core_code, CallCase, CodeError, CodeRequest, CodeTests, Isolation, Limits, LiteralCall,
    LiteralCheck, Plain, Pool, RewardMode, SandboxConfig, StdioCase,
};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};

use crate::arrays::{py_str, text, utf8};
use crate::errors::{detached, raise};

fn code_err(py: Python<'_>, e: CodeError) -> PyErr {
    let class = match e {
        CodeError::InvalidArgument { .. } => "InvalidArgumentError",
        CodeError::Sandbox(_) => "SandboxUnavailableError",
    };
    raise(py, class, e.to_string())
}

fn type_err(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    let got = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    raise(
        py,
        "BrorlTypeError",
        format!("{name} must be {expected}, got {got}"),
    )
}

/// The verdict on one program: `passed` of `total` tests, the `reward`, one status per test
/// (passed / wrong_answer / runtime_error / timeout / memory_exceeded / compile_error) and
/// excerpts of stdout/stderr for diagnosis.
#[pyclass(frozen, module = "brorl._core", get_all)]
pub struct CodeResult {
    pub passed: usize,
    pub total: usize,
    pub reward: f64,
    pub statuses: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub elapsed_s: f64,
    /// How the sample was contained: "namespaces" or "basic", and the memory limit kind.
    pub sandbox: String,
}

#[pymethods]
impl CodeResult {
    fn __repr__(&self) -> String {
        format!(
            "CodeResult(passed={}, total={}, reward={}, statuses={:?}, error={:?})",
            self.passed, self.total, self.reward, self.statuses, self.error
        )
    }
}

impl From<core_code::CodeResult> for CodeResult {
    fn from(r: core_code::CodeResult) -> Self {
        Self {
            passed: r.passed,
            total: r.total,
            reward: r.reward,
            statuses: r.statuses.iter().map(|s| s.as_str().to_string()).collect(),
            stdout: r.stdout,
            stderr: r.stderr,
            error: r.error,
            elapsed_s: r.elapsed_s,
            sandbox: r.sandbox,
        }
    }
}

/// The last fenced code block in `language` (or untagged), else the whole text when it has
/// no fence; None when there is no code: an empty (or blank) response, or fences but none in
/// that language. `verify_code(None, ...)` scores such a response 0 without running it.
#[pyfunction]
#[pyo3(signature = (response, language = "python"))]
pub fn extract_code(
    py: Python<'_>,
    response: &Bound<'_, PyAny>,
    language: &str,
) -> PyResult<Option<String>> {
    let response = utf8(py, "response", py_str(py, "response", response)?)?;
    Ok(core_code::extract_code(response, language))
}

fn str_item(py: Python<'_>, d: &Bound<'_, PyDict>, key: &str, name: &str) -> PyResult<String> {
    match d.get_item(key)? {
        Some(v) => {
            let what = format!("{name}[{key:?}]");
            let s = v
                .cast::<PyString>()
                .map_err(|_| type_err(py, &what, &v, "a str"))?;
            Ok(utf8(py, &what, s)?.to_string())
        }
        None => Err(raise(
            py,
            "InvalidArgumentError",
            format!("{name} has no {key:?} key"),
        )),
    }
}

fn to_json(py: Python<'_>, v: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    let dumps = py.import("json")?.getattr("dumps")?;
    dumps
        .call1((v,))
        .and_then(|s| s.extract::<String>())
        .map_err(|e| {
            raise(
                py,
                "InvalidArgumentError",
                format!("{name} is not JSON-serializable: {e}"),
            )
        })
}

/// An expected value as plain data, exactly (ints of any size; exact builtin types only).
fn to_plain(py: Python<'_>, v: &Bound<'_, PyAny>, name: &str, depth: usize) -> PyResult<Plain> {
    let bad = |why: &str| raise(py, "InvalidArgumentError", format!("{name}: {why}"));
    if depth > 100 {
        return Err(bad("nested too deeply"));
    }
    if v.is_none() {
        return Ok(Plain::None);
    }
    if v.is_exact_instance_of::<PyBool>() {
        return Ok(Plain::Bool(v.extract()?));
    }
    if v.is_exact_instance_of::<PyInt>() {
        let hex: String = v.call_method1("__format__", ("x",))?.extract()?;
        return Plain::int_hex(&hex).ok_or_else(|| bad("bad int"));
    }
    if v.is_exact_instance_of::<PyFloat>() {
        return Ok(Plain::Float(v.extract()?));
    }
    if v.is_exact_instance_of::<PyString>() {
        let s: String = v
            .extract()
            .map_err(|_| bad("a str that is not valid UTF-8"))?;
        return Ok(Plain::Str(s.into_bytes()));
    }
    if v.is_exact_instance_of::<PyBytes>() {
        return Ok(Plain::Bytes(v.extract()?));
    }
    let items = |v: &Bound<'_, PyAny>| -> PyResult<Vec<Plain>> {
        v.try_iter()?
            .map(|x| to_plain(py, &x?, name, depth + 1))
            .collect()
    };
    if v.is_exact_instance_of::<PyList>() {
        return Ok(Plain::List(items(v)?));
    }
    if v.is_exact_instance_of::<PyTuple>() {
        return Ok(Plain::Tuple(items(v)?));
    }
    if v.is_exact_instance_of::<PySet>() || v.is_exact_instance_of::<PyFrozenSet>() {
        return Ok(Plain::Set(items(v)?));
    }
    if let Ok(d) = v.cast_exact::<PyDict>() {
        let mut out = Vec::new();
        for (k, x) in d.iter() {
            out.push((
                to_plain(py, &k, name, depth + 1)?,
                to_plain(py, &x, name, depth + 1)?,
            ));
        }
        return Ok(Plain::Dict(out));
    }
    let t = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(bad(&format!(
        "a value of type {t} is not plain data (None, bool, int, float, str, bytes, list, tuple, set, dict)"
    )))
}

fn case_dicts<'py>(
    py: Python<'py>,
    tests: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    if tests.is_instance_of::<PyString>()
        || !tests.is_instance_of::<PyList>() && tests.len().is_err()
    {
        return Err(type_err(
            py,
            "tests",
            tests,
            "a list of dicts for this kind",
        ));
    }
    let mut out = Vec::new();
    for (i, item) in tests.try_iter()?.enumerate() {
        let item = item?;
        let d = item.cast_into::<PyDict>().map_err(|e| {
            type_err(
                py,
                &format!("tests[{i}]"),
                e.into_inner().as_any(),
                "a dict",
            )
        })?;
        out.push(d);
    }
    Ok(out)
}

/// A humaneval test read as literal calls by `brorl._literal_tests` (None: the test is more
/// than literal assertions, and runs in a test process of its own).
fn literal_calls(
    py: Python<'_>,
    source: &str,
    entry_point: &str,
    prompt: Option<&str>,
) -> PyResult<Option<Vec<LiteralCall>>> {
    let read = py
        .import("brorl._literal_tests")?
        .getattr("literal_calls")?
        .call1((source, entry_point, prompt))?;
    if read.is_none() {
        return Ok(None);
    }
    let mut calls = Vec::new();
    for item in read.try_iter()? {
        let (args, check, expected): (String, String, Bound<'_, PyAny>) = item?.extract()?;
        let plain = |v: &Bound<'_, PyAny>| to_plain(py, v, "a literal test's expected value", 0);
        let check = match check.as_str() {
            "eq" => LiteralCheck::Eq(plain(&expected)?),
            "is" => LiteralCheck::Is(plain(&expected)?),
            "truthy" => LiteralCheck::Truthy,
            _ => LiteralCheck::Falsy,
        };
        calls.push(LiteralCall { args, check });
    }
    Ok(Some(calls))
}

/// Builds the core request from Python arguments (under the GIL).
#[allow(clippy::too_many_arguments)]
fn build_request(
    py: Python<'_>,
    program: Option<&Bound<'_, PyAny>>,
    tests: &Bound<'_, PyAny>,
    kind: &str,
    entry_point: Option<String>,
    timeout_s: f64,
    total_timeout_s: f64,
    memory_mb: i64,
    reward: &str,
    float_tol: Option<f64>,
    prompt: Option<String>,
    literal_tests: bool,
) -> PyResult<CodeRequest> {
    // None: the response had no code (see `extract_code`); checked like the rest, never run.
    let program = match program {
        None => String::new(),
        Some(p) => utf8(
            py,
            "program",
            p.cast::<PyString>()
                .map_err(|_| type_err(py, "program", p, "a str (or None for no program)"))?,
        )?
        .to_string(),
    };
    let need_entry = |entry: Option<String>| {
        entry.ok_or_else(|| {
            raise(
                py,
                "InvalidArgumentError",
                format!("entry_point is required for kind={kind:?}"),
            )
        })
    };
    let tests = match kind {
        "humaneval" => {
            let source = utf8(
                py,
                "tests",
                tests.cast::<PyString>().map_err(|_| {
                    type_err(
                        py,
                        "tests",
                        tests,
                        "the test source (a str) for kind='humaneval'",
                    )
                })?,
            )?
            .to_string();
            let entry_point = need_entry(entry_point)?;
            let literal_calls = if literal_tests {
                literal_calls(py, &source, &entry_point, prompt.as_deref())?
            } else {
                None
            };
            CodeTests::HumanEval {
                source,
                entry_point,
                prompt,
                literal_calls,
            }
        }
        "stdio" => {
            let mut cases = Vec::new();
            for (i, d) in case_dicts(py, tests)?.iter().enumerate() {
                let name = format!("tests[{i}]");
                cases.push(StdioCase {
                    input: str_item(py, d, "input", &name)?,
                    output: str_item(py, d, "output", &name)?,
                });
            }
            CodeTests::Stdio { cases, float_tol }
        }
        "call" => {
            let mut cases = Vec::new();
            for (i, d) in case_dicts(py, tests)?.iter().enumerate() {
                let name = format!("tests[{i}]");
                let get = |key: &str| -> PyResult<Bound<'_, PyAny>> {
                    d.get_item(key)?.ok_or_else(|| {
                        raise(
                            py,
                            "InvalidArgumentError",
                            format!("{name} has no {key:?} key"),
                        )
                    })
                };
                let args = to_json(py, &get("args")?, &format!("{name}[\"args\"]"))?;
                let mut case =
                    CallCase::from_json(&name, &args, "null").map_err(|e| code_err(py, e))?;
                case.expected =
                    to_plain(py, &get("expected")?, &format!("{name}[\"expected\"]"), 0)?;
                cases.push(case);
            }
            CodeTests::Call {
                cases,
                entry_point: need_entry(entry_point)?,
                float_tol: float_tol.unwrap_or(1e-6),
            }
        }
        other => {
            return Err(code_err(
                py,
                CodeError::invalid("kind", other, "one of humaneval, stdio, call"),
            ));
        }
    };
    if memory_mb < 0 {
        return Err(code_err(
            py,
            CodeError::invalid("memory_mb", memory_mb, "at least 64"),
        ));
    }
    let limits = Limits {
        timeout_s,
        total_timeout_s,
        memory_mb: memory_mb as u64,
        ..Limits::default()
    };
    let reward = RewardMode::parse(reward).map_err(|e| code_err(py, e))?;
    Ok(CodeRequest {
        program,
        tests,
        limits,
        reward,
    })
}

/// The sandbox configuration for this interpreter: the worker runs the real interpreter
/// binary behind `sys.executable` (a virtual environment's `python` is a symlink that may live
/// anywhere), with its base prefixes and the environment's site-packages bound read-only at
/// their own paths in the sandbox's root, and those site-packages on the samples' `sys.path`.
fn sandbox_config(py: Python<'_>, isolation: &str) -> PyResult<SandboxConfig> {
    let sys = py.import("sys")?;
    let executable: String = sys.getattr("executable")?.extract()?;
    if executable.is_empty() {
        return Err(raise(
            py,
            "SandboxUnavailableError",
            "sys.executable is empty: no interpreter to run samples".into(),
        ));
    }
    let real = std::fs::canonicalize(&executable).unwrap_or_else(|_| PathBuf::from(&executable));
    let mut cfg = SandboxConfig::new(real.to_string_lossy().into_owned());
    cfg.isolation = Isolation::parse(isolation).map_err(|e| code_err(py, e))?;
    for attr in ["base_prefix", "base_exec_prefix"] {
        let dir = PathBuf::from(sys.getattr(attr)?.extract::<String>()?);
        cfg.expose.push(std::fs::canonicalize(&dir).unwrap_or(dir));
    }
    if let Some(dir) = real.parent() {
        cfg.expose.push(dir.to_path_buf());
    }
    cfg.expose.sort();
    cfg.expose.dedup();
    // The environment's package directories: site's own, and those put on sys.path some other
    // way (PYTHONPATH); never other sys.path entries, which may be a checkout.
    let mut site: Vec<String> = py
        .import("site")?
        .call_method0("getsitepackages")?
        .extract()?;
    let path: Vec<String> = sys.getattr("path")?.extract()?;
    site.extend(path.into_iter().filter(|p| {
        let name = std::path::Path::new(p).file_name().and_then(|n| n.to_str());
        matches!(name, Some("site-packages" | "dist-packages"))
    }));
    site.dedup();
    for dir in site {
        let dir = PathBuf::from(dir);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        if dir.is_dir() && !cfg.site.contains(&dir) {
            cfg.site.push(dir);
        }
    }
    Ok(cfg)
}

fn workers_arg(py: Python<'_>, workers: Option<i64>) -> PyResult<usize> {
    match workers {
        None => Ok(core_code::default_workers()),
        Some(w) if (1..=256).contains(&w) => Ok(w as usize),
        Some(w) => Err(code_err(
            py,
            CodeError::invalid("workers", w, "an int in 1..=256"),
        )),
    }
}

fn pool(py: Python<'_>, isolation: &str, workers: usize) -> PyResult<Arc<Pool>> {
    let cfg = sandbox_config(py, isolation)?;
    Ok(Pool::shared(&cfg, workers))
}

/// A `str` argument (kind, reward, isolation, entry_point), checked and named.
fn str_arg(py: Python<'_>, name: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    text(py, name, v)
}

fn opt_str_arg(
    py: Python<'_>,
    name: &str,
    v: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<String>> {
    v.filter(|v| !v.is_none())
        .map(|v| str_arg(py, name, v))
        .transpose()
}

/// A request whose program is None is scored without running: no code, no reward.
fn no_program(req: &CodeRequest) -> CodeResult {
    let total = req.tests.len();
    CodeResult {
        passed: 0,
        total,
        reward: 0.0,
        statuses: vec![core_code::TestStatus::CompileError.as_str().to_string(); total],
        stdout: String::new(),
        stderr: String::new(),
        error: Some(
            "no program: `program` is None (extract_code found no code in the response)".into(),
        ),
        elapsed_s: 0.0,
        sandbox: "none".into(),
    }
}

/// When every failure is a runtime error with no message and `entry_point` names nothing the
/// program defines, say so in `error` (the harness only sees the failed lookup).
fn explain_entry_point(
    py: Python<'_>,
    r: &mut CodeResult,
    program: &str,
    entry_point: Option<&str>,
) -> PyResult<()> {
    let Some(entry) = entry_point else {
        return Ok(());
    };
    let runtime = core_code::TestStatus::RuntimeError.as_str();
    if r.error.is_some() || !r.statuses.iter().any(|s| s == runtime) {
        return Ok(());
    }
    let why: Option<String> = py
        .import("brorl._entry_point")?
        .call_method1("entry_point_problem", (program, entry))?
        .extract()?;
    r.error = why;
    Ok(())
}

/// Runs `program` against `tests` in the sandbox; see the README section "Code verifier".
#[pyfunction]
#[pyo3(signature = (program, tests, *, kind, entry_point = None, timeout_s = 3.0,
    total_timeout_s = 5.0, memory_mb = 1024, reward = "fraction", float_tol = None,
    isolation = "auto", prompt = None, literal_tests = true))]
#[allow(clippy::too_many_arguments)]
pub fn verify_code(
    py: Python<'_>,
    program: Option<&Bound<'_, PyAny>>,
    tests: &Bound<'_, PyAny>,
    kind: &Bound<'_, PyAny>,
    entry_point: Option<&Bound<'_, PyAny>>,
    timeout_s: f64,
    total_timeout_s: f64,
    memory_mb: i64,
    reward: &str,
    float_tol: Option<f64>,
    isolation: &str,
    prompt: Option<String>,
    literal_tests: bool,
) -> PyResult<CodeResult> {
    let entry = opt_str_arg(py, "entry_point", entry_point)?;
    let program = program.filter(|p| !p.is_none());
    let req = build_request(
        py,
        program,
        tests,
        &str_arg(py, "kind", kind)?,
        entry.clone(),
        timeout_s,
        total_timeout_s,
        memory_mb,
        reward,
        float_tol,
        prompt,
        literal_tests,
    )?;
    if program.is_none() {
        return Ok(no_program(&req));
    }
    let pool = pool(py, isolation, core_code::default_workers())?;
    let out = detached(py, || Ok(core_code::verify(&pool, &req)))?;
    let mut r = out.map(CodeResult::from).map_err(|e| code_err(py, e))?;
    explain_entry_point(py, &mut r, &req.program, entry.as_deref())?;
    Ok(r)
}

/// One item of `verify_code_batch`: its request, its entry point (for diagnosis) and whether
/// it has a program at all.
struct Item {
    req: CodeRequest,
    entry_point: Option<String>,
    has_program: bool,
}

fn item_request(py: Python<'_>, i: usize, item: &Bound<'_, PyAny>) -> PyResult<Item> {
    let d = item.cast::<PyDict>().map_err(|_| {
        type_err(
            py,
            &format!("items[{i}]"),
            item,
            "a dict of verify_code arguments",
        )
    })?;
    let known = [
        "program",
        "tests",
        "kind",
        "entry_point",
        "timeout_s",
        "total_timeout_s",
        "memory_mb",
        "reward",
        "float_tol",
        "prompt",
        "literal_tests",
    ];
    for key in d.keys() {
        let k = text(py, &format!("items[{i}] key"), &key)?;
        if !known.contains(&k.as_str()) {
            return Err(raise(
                py,
                "InvalidArgumentError",
                format!("items[{i}] has unknown key {k:?}; expected some of {known:?}"),
            ));
        }
    }
    let req = |key: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(key)?.ok_or_else(|| {
            raise(
                py,
                "InvalidArgumentError",
                format!("items[{i}] has no {key:?} key"),
            )
        })
    };
    let opt = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        Ok(d.get_item(key)?.filter(|v| !v.is_none()))
    };
    let named = |key: &str| format!("items[{i}][{key:?}]");
    let number = |key: &str, default: f64| -> PyResult<f64> {
        opt(key)?.map_or(Ok(default), |v| {
            v.extract()
                .map_err(|_| type_err(py, &named(key), &v, "a number"))
        })
    };
    let kind = str_arg(py, &named("kind"), &req("kind")?)?;
    let entry = opt_str_arg(py, &named("entry_point"), opt("entry_point")?.as_ref())?;
    let memory_mb: i64 = opt("memory_mb")?.map_or(Ok(1024), |v| {
        v.extract()
            .map_err(|_| type_err(py, &named("memory_mb"), &v, "an int"))
    })?;
    let reward = opt_str_arg(py, &named("reward"), opt("reward")?.as_ref())?
        .unwrap_or_else(|| "fraction".to_string());
    let float_tol = opt("float_tol")?
        .map(|v| {
            v.extract()
                .map_err(|_| type_err(py, &named("float_tol"), &v, "a number"))
        })
        .transpose()?;
    if d.get_item("program")?.is_none() {
        req("program")?; // a missing key is an error; an explicit None means "no program"
    }
    let program = opt("program")?;
    let prompt = opt_str_arg(py, &named("prompt"), opt("prompt")?.as_ref())?;
    let literal_tests = opt("literal_tests")?.map_or(Ok(true), |v| {
        v.cast::<PyBool>()
            .map(|b| b.is_true())
            .map_err(|_| type_err(py, &named("literal_tests"), &v, "a bool"))
    })?;
    let built = build_request(
        py,
        program.as_ref(),
        &req("tests")?,
        &kind,
        entry.clone(),
        number("timeout_s", 3.0)?,
        number("total_timeout_s", 5.0)?,
        memory_mb,
        &reward,
        float_tol,
        prompt,
        literal_tests,
    )
    .map_err(|e| {
        let msg = e.value(py).to_string();
        let class = e
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        // brorl's own error classes get the item's index; anything else (a bug surfacing as a
        // builtin exception) stays as it was raised
        if !e.get_type(py).module().is_ok_and(|m| m == "brorl.errors") {
            return e;
        }
        raise(py, &class, format!("items[{i}]: {msg}"))
    })?;
    Ok(Item {
        req: built,
        entry_point: entry,
        has_program: program.is_some(),
    })
}

/// Verifies many programs at once on up to `workers` sandboxed workers (default: one per
/// CPU), with the GIL released; `items` are dicts of `verify_code` arguments.
#[pyfunction]
#[pyo3(signature = (items, *, workers = None, isolation = "auto"))]
pub fn verify_code_batch(
    py: Python<'_>,
    items: &Bound<'_, PyAny>,
    workers: Option<i64>,
    isolation: &str,
) -> PyResult<Vec<CodeResult>> {
    let workers = workers_arg(py, workers)?;
    if items.is_instance_of::<PyString>() || items.is_instance_of::<PyDict>() {
        return Err(type_err(py, "items", items, "a sequence of dicts"));
    }
    let mut parsed = Vec::new();
    for (i, item) in items
        .try_iter()
        .map_err(|_| type_err(py, "items", items, "a sequence of dicts"))?
        .enumerate()
    {
        parsed.push(item_request(py, i, &item?)?);
    }
    // Only programs run; items without one are scored 0 in place.
    let mut reqs = Vec::new();
    let mut slots = Vec::with_capacity(parsed.len());
    for it in parsed {
        if it.has_program {
            slots.push(Err(it.entry_point));
            reqs.push(it.req);
        } else {
            slots.push(Ok(no_program(&it.req)));
        }
    }
    let pool = pool(py, isolation, workers)?;
    let ran = detached(py, || Ok(core_code::verify_batch(&pool, &reqs, workers)))?
        .map_err(|e| code_err(py, e))?;
    let mut ran = reqs.iter().zip(ran.into_iter().map(CodeResult::from));
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Ok(r) => out.push(r),
            Err(entry) => {
                let (req, mut r) = ran.next().ok_or_else(|| {
                    raise(py, "InternalError", "a code verdict is missing".into())
                })?;
                explain_entry_point(py, &mut r, &req.program, entry.as_deref())?;
                out.push(r);
            }
        }
    }
    Ok(out)
}
