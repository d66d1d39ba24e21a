//! End-to-end tests of the sandbox with a real interpreter (`BRORL_TEST_PYTHON`, else
//! `/usr/bin/python3`); skipped with a message when neither exists. The containment cases
//! live in tests/test_code_verify.py; these keep `cargo test` honest about the basics.

use super::*;

fn python() -> Option<String> {
    let p = std::env::var("BRORL_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    if std::path::Path::new(&p).exists() {
        Some(p)
    } else {
        eprintln!("skipping: no Python at {p}");
        None
    }
}

fn pool(isolation: Isolation) -> Option<Pool> {
    let mut cfg = SandboxConfig::new(python()?);
    cfg.isolation = isolation;
    Some(Pool::new(cfg, 2))
}

fn humaneval(program: &str) -> CodeRequest {
    CodeRequest {
        program: program.into(),
        tests: CodeTests::HumanEval {
            source: "def check(f):\n    assert f(2) == 4\n    assert f(3) == 6\n".into(),
            entry_point: "double".into(),
            prompt: None,
            literal_calls: None,
        },
        limits: Limits {
            timeout_s: 2.0,
            ..Limits::default()
        },
        reward: RewardMode::Fraction,
    }
}

#[test]
fn humaneval_statuses_and_forgeries() {
    let Some(p) = pool(Isolation::Auto) else {
        return;
    };
    let cases = [
        ("def double(x):\n    return 2 * x\n", TestStatus::Passed),
        (
            "def double(x):\n    return x + 2\n",
            TestStatus::WrongAnswer,
        ),
        ("def double(x):\n    return x +\n", TestStatus::CompileError),
        (
            "import sys\nsys.exit(0)\ndef double(x):\n    return 0\n",
            TestStatus::RuntimeError,
        ),
        ("import os\nos._exit(0)\n", TestStatus::RuntimeError),
        (
            "def double(x):\n    raise SystemExit(0)\n",
            TestStatus::RuntimeError,
        ),
        (
            "def double(x):\n    while True: pass\n",
            TestStatus::Timeout,
        ),
        (
            "def double(x):\n    return bytearray(1 << 34)\n",
            TestStatus::MemoryExceeded,
        ),
    ];
    let reqs: Vec<CodeRequest> = cases
        .iter()
        .map(|(prog, want)| {
            let mut r = humaneval(prog);
            if *want == TestStatus::MemoryExceeded {
                // Filling the memory limit page by page can take over 2 s on a loaded 2-core
                // machine: the clock must not win the race this case is about.
                r.limits.timeout_s = 20.0;
                r.limits.total_timeout_s = 30.0;
            }
            r
        })
        .collect();
    let results = verify_batch(&p, &reqs, 2).unwrap();
    for ((prog, want), got) in cases.iter().zip(&results) {
        assert_eq!(got.statuses, vec![*want], "{prog}: {got:?}");
        assert_eq!(
            got.reward,
            f64::from(u8::from(*want == TestStatus::Passed)),
            "{prog}"
        );
    }
}

#[test]
fn stdio_and_call_are_judged_in_the_parent() {
    let Some(p) = pool(Isolation::Auto) else {
        return;
    };
    let cases = vec![
        StdioCase {
            input: "1 2\n".into(),
            output: "3\n".into(),
        },
        StdioCase {
            input: "5 5\n".into(),
            output: "10".into(),
        },
        StdioCase {
            input: "0 0\n".into(),
            output: "1\n".into(),
        },
    ];
    let req = CodeRequest {
        program: "a, b = map(int, input().split())\nprint(a + b, '  ')\n".into(),
        tests: CodeTests::Stdio {
            cases,
            float_tol: None,
        },
        limits: Limits::default(),
        reward: RewardMode::Fraction,
    };
    let r = verify(&p, &req).unwrap();
    assert_eq!(
        r.statuses,
        [
            TestStatus::Passed,
            TestStatus::Passed,
            TestStatus::WrongAnswer
        ]
    );
    assert!((r.reward - 2.0 / 3.0).abs() < 1e-12);

    let call = |args: &str, expected: &str| CallCase::from_json("t", args, expected).unwrap();
    let req = CodeRequest {
        program: "def f(a, b):\n    return [a / b, a // b]\n".into(),
        tests: CodeTests::Call {
            cases: vec![
                call("[1, 3]", "[0.3333333333, 0]"),
                call(r#"{"a": 4, "b": 2}"#, "[2.0, 2]"),
                call("[1, 0]", "null"),
                call("[1, 1]", "[1.0, 2]"),
                call(
                    "[100000000000000000000000, 1]",
                    "[1e23, 100000000000000000000000]",
                ),
                call(
                    "[100000000000000000000000, 1]",
                    "[1e23, 100000000000000000000001]",
                ),
            ],
            entry_point: "f".into(),
            float_tol: 1e-6,
        },
        limits: Limits::default(),
        reward: RewardMode::All,
    };
    let r = verify(&p, &req).unwrap();
    use TestStatus::*;
    assert_eq!(
        r.statuses,
        [
            Passed,
            Passed,
            RuntimeError,
            WrongAnswer,
            Passed,
            WrongAnswer
        ]
    );
    assert_eq!((r.passed, r.reward), (3, 0.0));
}

#[test]
fn basic_isolation_denies_network_sockets() {
    let Some(p) = pool(Isolation::Basic) else {
        return;
    };
    let prog = "import socket\ndef double(x):\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n    return 2 * x\n";
    let r = verify(&p, &humaneval(prog)).unwrap();
    assert_eq!(r.statuses, [TestStatus::RuntimeError], "{r:?}");
    let unix = "import socket\ndef double(x):\n    socket.socket(socket.AF_UNIX).close()\n    return 2 * x\n";
    assert_eq!(
        verify(&p, &humaneval(unix)).unwrap().statuses,
        [TestStatus::Passed]
    );
}

#[test]
fn bad_arguments_name_the_field() {
    let Some(p) = pool(Isolation::Auto) else {
        return;
    };
    let mut req = humaneval("");
    req.limits.timeout_s = -1.0;
    let e = verify(&p, &req).unwrap_err().to_string();
    assert!(e.contains("timeout_s=-1"), "{e}");
    let mut req = humaneval("");
    req.tests = CodeTests::HumanEval {
        source: String::new(),
        entry_point: "1x".into(),
        prompt: None,
        literal_calls: None,
    };
    assert!(verify(&p, &req)
        .unwrap_err()
        .to_string()
        .contains("entry_point=1x"));
}

#[test]
fn a_worker_that_died_while_idle_is_replaced_without_failing_the_sample() {
    let Some(p) = pool(Isolation::Auto) else {
        return;
    };
    let good = humaneval("def double(x):\n    return 2 * x\n");
    assert_eq!(verify(&p, &good).unwrap().statuses, [TestStatus::Passed]);
    let pids = p.idle_worker_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: killing our own idle worker (and with it its namespace).
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(verify(&p, &good).unwrap().statuses, [TestStatus::Passed]);
    assert_ne!(p.idle_worker_pids(), pids);
}
