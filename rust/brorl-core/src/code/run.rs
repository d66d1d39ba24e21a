//! Running one request on a worker and judging it, all on this side of the sandbox: the
//! jobs and stdins are written into sealed memory files, outputs are read back from memory
//! files once every process of the run is gone, and every verdict is decided here (stdio and
//! call: by comparing with expected values that never enter the sandbox; humaneval: from the
//! test process's own channel, which the candidate process never holds).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::plain::{self, Plain};
use super::worker::{memfd, read_capped, sealed, stream_pair, Worker, WorkerError};
use super::{compare, CodeRequest, CodeResult, CodeTests, LiteralCall, LiteralCheck, TestStatus};

/// Largest output kept from one run: stdout of a stdio test, or all return values of a call
/// sample. Bounded anyway by the file-size limit (`fsize_mb`, 16 MiB by default).
const OUTPUT_CAP: usize = 1 << 30;
const EXCERPT: usize = 4096;

/// The descriptors of one sandboxed process of a run.
struct Proc {
    role: &'static str,
    stdin: File,
    stdout: File,
    stderr: File,
    job: File,
    result: File,
    chan: Option<OwnedFd>,
}

fn io_err(e: std::io::Error) -> WorkerError {
    WorkerError::Lost(format!("preparing a run: {e}"))
}

impl Proc {
    fn new(role: &'static str, job: &[u8], stdin: &[u8]) -> Result<Proc, WorkerError> {
        Ok(Proc {
            role,
            stdin: sealed(c"stdin", stdin).map_err(io_err)?,
            stdout: memfd(c"stdout", false).map_err(io_err)?,
            stderr: memfd(c"stderr", false).map_err(io_err)?,
            job: sealed(c"job", job).map_err(io_err)?,
            result: memfd(c"result", false).map_err(io_err)?,
            chan: None,
        })
    }

    fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![
            self.stdin.as_raw_fd(),
            self.stdout.as_raw_fd(),
            self.stderr.as_raw_fd(),
            self.job.as_raw_fd(),
            self.result.as_raw_fd(),
        ];
        if let Some(c) = &self.chan {
            v.push(c.as_raw_fd());
        }
        v
    }

    fn excerpt(f: &File) -> String {
        String::from_utf8_lossy(&read_capped(f, EXCERPT).0).into_owned()
    }
}

/// A sample process's job: per field present, `name size\n` then `size` bytes of UTF-8, read
/// by `read_job` in `py/harness_common.py` (cheaper to decode in a fresh fork than JSON).
fn job_bytes(fields: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        if let Some(v) = value {
            out.extend_from_slice(format!("{name} {}\n", v.len()).as_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
    out
}

/// What the template reported on one run, plus what the memory cgroup saw.
struct Ran {
    wstatus: Vec<Option<i32>>,
    timed_out: bool,
    oom: bool,
}

impl Ran {
    /// How a process that wrote no verdict ended.
    fn death(&self, i: usize) -> TestStatus {
        if self.timed_out {
            return TestStatus::Timeout;
        }
        if self.oom {
            return TestStatus::MemoryExceeded;
        }
        match self.wstatus.get(i).copied().flatten() {
            Some(w) if libc::WIFSIGNALED(w) && libc::WTERMSIG(w) == libc::SIGXCPU => {
                TestStatus::Timeout // RLIMIT_CPU (its hard limit, a second later, is rarely reached)
            }
            _ => TestStatus::RuntimeError,
        }
    }

    fn exit_code(&self, i: usize) -> Option<i32> {
        match self.wstatus.get(i).copied().flatten() {
            Some(w) if libc::WIFEXITED(w) => Some(libc::WEXITSTATUS(w)),
            _ => None,
        }
    }
}

/// A test process of brorl's own (`check_job`) and the candidate process (`cand_job`, the
/// program) joined by a socket, run together within `wall` seconds.
fn run_check_and_cand(
    w: &mut Worker,
    req: &CodeRequest,
    check_job: &[u8],
    cand_job: &[u8],
    wall: f64,
) -> Result<(Ran, [Proc; 2]), WorkerError> {
    let (a, b) = stream_pair().map_err(io_err)?;
    let mut check = Proc::new("check", check_job, b"")?;
    let mut cand = Proc::new("cand", cand_job, b"")?;
    check.chan = Some(a);
    cand.chan = Some(b);
    let mut procs = [check, cand];
    let ran = run_procs(w, req, &mut procs, wall)?;
    Ok((ran, procs))
}

fn run_procs(
    w: &mut Worker,
    req: &CodeRequest,
    procs: &mut [Proc],
    wall: f64,
) -> Result<Ran, WorkerError> {
    let l = &req.limits;
    let memory = l.memory_mb << 20;
    let rlimit_as = match w.cgroup.as_mut() {
        Some(cg) => match cg.set_limit(memory) {
            Ok(()) => Value::Null,
            Err(_) => memory.into(),
        },
        None => memory.into(),
    };
    let oom_before = w.cgroup.as_ref().map_or(0, |c| c.oom_kills());
    let header = json!({
        "procs": procs.iter().map(|p| json!({"role": p.role, "nfds": p.fds().len()})).collect::<Vec<_>>(),
        "wall": wall,
        "main": 0,
        "tmpfs_mb": l.tmpfs_mb,
        "limits": {
            "fsize": l.fsize_mb << 20,
            "nofile": l.nofile,
            "nproc": l.nproc,
            "as": rlimit_as,
        },
    });
    let fds: Vec<RawFd> = procs.iter().flat_map(Proc::fds).collect();
    let deadline = Instant::now() + Duration::from_secs_f64(wall + 10.0);
    let sent = w.send(header, &fds);
    for p in procs.iter_mut() {
        p.chan = None; // our copies of the channel: only the two processes may hold its ends
    }
    sent?;
    let reply = w.wait(deadline)?;
    let wstatus = reply
        .get("wstatus")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_i64().map(|x| x as i32)).collect())
        .unwrap_or_default();
    Ok(Ran {
        wstatus,
        timed_out: reply
            .get("timed_out")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        oom: w.cgroup.as_ref().map_or(0, |c| c.oom_kills()) > oom_before,
    })
}

/// The records a `call` or `cand` process wrote on its result channel.
#[derive(Default)]
struct Records {
    compile_error: Option<String>,
    tests: Vec<Option<Result<Plain, TestStatus>>>,
}

fn parse_records(data: &[u8], n: usize) -> Records {
    let mut out = Records {
        compile_error: None,
        tests: vec![None; n],
    };
    let mut i = 0;
    let number = |i: &mut usize, sep: u8| -> Option<usize> {
        let rest = data.get(*i..)?;
        let end = rest.iter().position(|c| *c == sep)?;
        let digits = std::str::from_utf8(&rest[..end]).ok()?;
        *i += end + 1;
        digits
            .parse()
            .ok()
            .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    while i < data.len() {
        let tag = data[i];
        i += 1;
        match tag {
            b'C' => {
                let Some(len) = number(&mut i, b':') else {
                    break;
                };
                let Some(text) = data.get(i..i + len) else {
                    break;
                };
                out.compile_error
                    .get_or_insert_with(|| String::from_utf8_lossy(text).into_owned());
                i += len;
            }
            b'R' => {
                let Some(idx) = number(&mut i, b':') else {
                    break;
                };
                let Ok((v, used)) = Plain::decode_prefix(&data[i..]) else {
                    break;
                };
                i += used;
                if let Some(slot @ None) = out.tests.get_mut(idx) {
                    *slot = Some(Ok(v));
                }
            }
            b'E' => {
                let Some(idx) = number(&mut i, b':') else {
                    break;
                };
                let Some(end) = data[i..].iter().position(|c| *c == b';') else {
                    break;
                };
                // A process can only claim a failure here: "passed" is not a word it has.
                let status = match &data[i..i + end] {
                    b"timeout" => TestStatus::Timeout,
                    b"memory_exceeded" => TestStatus::MemoryExceeded,
                    b"wrong_answer" => TestStatus::WrongAnswer,
                    _ => TestStatus::RuntimeError,
                };
                i += end + 1;
                if let Some(slot @ None) = out.tests.get_mut(idx) {
                    *slot = Some(Err(status));
                }
            }
            _ => break,
        }
    }
    out
}

/// A partial result: statuses so far plus what the sample showed.
struct Verdict {
    statuses: Vec<TestStatus>,
    compile_error: Option<String>,
    total_timed_out: bool,
    stdout: String,
    stderr: String,
}

fn humaneval(w: &mut Worker, req: &CodeRequest) -> Result<Verdict, WorkerError> {
    let CodeTests::HumanEval {
        source,
        entry_point,
        prompt,
        literal_calls,
    } = &req.tests
    else {
        unreachable!("humaneval request")
    };
    if let Some(calls) = literal_calls {
        return humaneval_literal(w, req, entry_point, calls);
    }
    let check_job = job_bytes(&[
        ("tests", Some(source)),
        ("entry", Some(entry_point)),
        ("prompt", prompt.as_deref()),
    ]);
    let cand_job = job_bytes(&[
        ("program", Some(&req.program)),
        ("entry", Some(entry_point)),
    ]);
    let wall = req.limits.timeout_s.min(req.limits.total_timeout_s);
    let (ran, [check, cand]) = run_check_and_cand(w, req, &check_job, &cand_job, wall)?;
    let records = parse_records(&read_capped(&cand.result, 1 << 16).0, 0);
    let verdict = read_capped(&check.result, 64).0;
    // Any process of the sample taken by the OOM killer means the sample went over its memory,
    // whatever the test process concluded.
    let status = if records.compile_error.is_some() {
        TestStatus::CompileError
    } else if ran.timed_out {
        TestStatus::Timeout
    } else if ran.oom {
        TestStatus::MemoryExceeded
    } else {
        match (&verdict[..], ran.exit_code(0)) {
            (b"passed", Some(0)) => TestStatus::Passed,
            (b"wrong_answer", _) => TestStatus::WrongAnswer,
            (b"memory_exceeded", _) => TestStatus::MemoryExceeded,
            _ if ran.oom => TestStatus::MemoryExceeded,
            (b"runtime_error", _) => TestStatus::RuntimeError,
            _ => ran.death(0),
        }
    };
    let mut stderr = Proc::excerpt(&cand.stderr);
    let test_err = Proc::excerpt(&check.stderr);
    if !test_err.is_empty() && status != TestStatus::Passed {
        stderr.push_str("\n[test process]\n");
        stderr.push_str(&test_err);
    }
    Ok(Verdict {
        statuses: vec![status],
        compile_error: records.compile_error,
        total_timed_out: false,
        stdout: Proc::excerpt(&cand.stdout),
        stderr,
    })
}

/// One process of the `call` harness (`py/harness_call.py`): `entry_point` called with each of
/// `args` (JSON texts) in order, `literal` saying per call whether only its truth matters,
/// within `wall` seconds. Returns how the run ended, the process (its outputs) and the records
/// it wrote.
fn run_call_harness<'a>(
    w: &mut Worker,
    req: &CodeRequest,
    entry_point: &str,
    args: impl ExactSizeIterator<Item = &'a String>,
    literal: &str,
    wall: f64,
) -> Result<(Ran, Proc, Records), WorkerError> {
    let n = args.len();
    let args = json!(args.collect::<Vec<_>>()).to_string();
    let job = job_bytes(&[
        ("program", Some(&req.program)),
        ("entry", Some(entry_point)),
        ("args", Some(&args)),
        ("literal", Some(literal)),
    ]);
    let mut procs = [Proc::new("call", &job, b"")?];
    let ran = run_procs(w, req, &mut procs, wall)?;
    let [p] = procs;
    let (data, _) = read_capped(&p.result, OUTPUT_CAP);
    let records = parse_records(&data, n);
    Ok((ran, p, records))
}

/// A humaneval test made only of literal assertions: the program answers its calls in one
/// process (the `call` harness), and the test's verdict is that of its first assertion that
/// does not hold, judged here. The same verdicts as the two-process run, one process fewer.
fn humaneval_literal(
    w: &mut Worker,
    req: &CodeRequest,
    entry_point: &str,
    calls: &[LiteralCall],
) -> Result<Verdict, WorkerError> {
    let wall = req.limits.timeout_s.min(req.limits.total_timeout_s);
    // Per call, whether only the returned value's truth matters (`t`): see `py/harness_call.py`.
    let literal: String = calls
        .iter()
        .map(|c| match c.check {
            LiteralCheck::Truthy | LiteralCheck::Falsy => 't',
            _ => 'v',
        })
        .collect();
    let args = calls.iter().map(|c| &c.args);
    let (ran, p, records) = run_call_harness(w, req, entry_point, args, &literal, wall)?;
    // The assertions in order: the first one that fails decides, as it ends `check`.
    let first_failure = records.tests.iter().zip(calls).find_map(|(r, c)| match r {
        Some(Ok(v)) if c.check.holds(v) => None,
        Some(Ok(_)) => Some(TestStatus::WrongAnswer),
        Some(Err(s)) => Some(*s),
        None if ran.timed_out => Some(TestStatus::Timeout),
        None => Some(ran.death(0)),
    });
    let status = if records.compile_error.is_some() {
        TestStatus::CompileError
    } else if ran.oom {
        TestStatus::MemoryExceeded
    } else {
        first_failure.unwrap_or(TestStatus::Passed)
    };
    Ok(Verdict {
        statuses: vec![status],
        compile_error: records.compile_error,
        total_timed_out: false,
        stdout: Proc::excerpt(&p.stdout),
        stderr: Proc::excerpt(&p.stderr),
    })
}

/// kind="call": two processes, as for humaneval. The candidate process runs the program and
/// answers calls; a test process of brorl's own (`drive_calls` in `py/harness_humaneval.py`)
/// sends each call's arguments, times each answer on its own clock (so the program cannot stretch
/// `timeout_s` by cancelling or catching its timer) and writes the returned values as plain data
/// on its own result channel; the expected values never enter the sandbox and are compared here.
fn call(w: &mut Worker, req: &CodeRequest) -> Result<Verdict, WorkerError> {
    let CodeTests::Call {
        cases,
        entry_point,
        float_tol,
    } = &req.tests
    else {
        unreachable!("call request")
    };
    let timeout = req.limits.timeout_s.to_string();
    let args = json!(cases.iter().map(|c| &c.args).collect::<Vec<_>>()).to_string();
    let driver_job = job_bytes(&[
        ("args", Some(&args)),
        ("entry", Some(entry_point)),
        ("timeout_s", Some(&timeout)),
    ]);
    let cand_job = job_bytes(&[
        ("program", Some(&req.program)),
        ("entry", Some(entry_point)),
        ("timeout_s", Some(&timeout)),
    ]);
    let (ran, [driver, cand]) =
        run_check_and_cand(w, req, &driver_job, &cand_job, req.limits.total_timeout_s)?;
    let compile_error = parse_records(&read_capped(&cand.result, 1 << 16).0, 0).compile_error;
    let records = parse_records(&read_capped(&driver.result, OUTPUT_CAP).0, cases.len());
    let statuses = if compile_error.is_some() {
        vec![TestStatus::CompileError; cases.len()]
    } else {
        records
            .tests
            .iter()
            .zip(cases)
            .map(|(r, case)| match r {
                _ if ran.oom => TestStatus::MemoryExceeded,
                Some(Ok(v)) if plain::matches(v, &case.expected, *float_tol) => TestStatus::Passed,
                Some(Ok(_)) => TestStatus::WrongAnswer,
                Some(Err(s)) => *s,
                None => ran.death(0),
            })
            .collect()
    };
    Ok(Verdict {
        statuses,
        compile_error,
        total_timed_out: ran.timed_out,
        stdout: Proc::excerpt(&cand.stdout),
        stderr: Proc::excerpt(&cand.stderr),
    })
}

fn stdio(w: &mut Worker, req: &CodeRequest, start: Instant) -> Result<Verdict, WorkerError> {
    let CodeTests::Stdio { cases, float_tol } = &req.tests else {
        unreachable!("stdio request")
    };
    let job = job_bytes(&[("program", Some(&req.program))]);
    let total = Duration::from_secs_f64(req.limits.total_timeout_s);
    let mut v = Verdict {
        statuses: Vec::new(),
        compile_error: None,
        total_timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
    };
    let mut excerpt_from_failure = false;
    for (i, case) in cases.iter().enumerate() {
        let left = total.saturating_sub(start.elapsed()).as_secs_f64();
        if left <= 0.0 {
            v.total_timed_out = true;
            v.statuses.push(TestStatus::Timeout);
            continue;
        }
        // One fresh process per test: each reads its own stdin from a clean start.
        let mut procs = [Proc::new("stdio", &job, case.input.as_bytes())?];
        let ran = run_procs(w, req, &mut procs, req.limits.timeout_s.min(left))?;
        let p = &procs[0];
        let records = parse_records(&read_capped(&p.result, 1 << 16).0, 0);
        let code = ran.exit_code(0);
        if i == 0 || (code != Some(0) && !excerpt_from_failure) {
            v.stdout = Proc::excerpt(&p.stdout);
            v.stderr = Proc::excerpt(&p.stderr);
            excerpt_from_failure = code != Some(0);
        }
        if let Some(e) = records.compile_error {
            v.compile_error = Some(e);
            v.statuses = vec![TestStatus::CompileError; cases.len()];
            return Ok(v);
        }
        if ran.timed_out && start.elapsed() >= total {
            v.total_timed_out = true;
        }
        let status = if ran.oom {
            TestStatus::MemoryExceeded
        } else if code == Some(0) && !ran.timed_out {
            let (out, truncated) = read_capped(&p.stdout, OUTPUT_CAP);
            // Bytes that are not UTF-8 are not the expected text (read lossily, they would
            // match an expected U+FFFD).
            let got = std::str::from_utf8(&out).ok();
            if !truncated
                && got.is_some_and(|g| compare::stdout_matches(g, &case.output, *float_tol))
            {
                TestStatus::Passed
            } else {
                TestStatus::WrongAnswer
            }
        } else if code == Some(102) {
            TestStatus::MemoryExceeded
        } else {
            ran.death(0)
        };
        v.statuses.push(status);
    }
    Ok(v)
}

/// Runs `req` on `w` and judges it.
pub fn execute(
    w: &mut Worker,
    req: &CodeRequest,
    start: Instant,
) -> Result<CodeResult, WorkerError> {
    let v = match &req.tests {
        CodeTests::HumanEval { .. } => humaneval(w, req)?,
        CodeTests::Call { .. } => call(w, req)?,
        CodeTests::Stdio { .. } => stdio(w, req, start)?,
    };
    let total = req.tests.len();
    let passed = v
        .statuses
        .iter()
        .filter(|s| **s == TestStatus::Passed)
        .count();
    let reward = if v.compile_error.is_some() || v.total_timed_out {
        0.0
    } else {
        super::reward_of(req.reward, passed, total)
    };
    let error = v.compile_error.or_else(|| {
        v.total_timed_out
            .then(|| format!("exceeded total_timeout_s={}", req.limits.total_timeout_s))
    });
    Ok(CodeResult {
        passed,
        total,
        reward,
        statuses: v.statuses,
        stdout: v.stdout,
        stderr: v.stderr,
        error,
        elapsed_s: start.elapsed().as_secs_f64(),
        sandbox: format!(
            "{}, {}",
            if w.namespaces() {
                "namespaces"
            } else {
                "basic"
            },
            super::cgroup::describe(w.cgroup.as_ref())
        ),
    })
}
