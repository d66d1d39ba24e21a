//! Criterion bench of the code sandbox: sandboxed executions per second on all cores, for a
//! trivial program and for one the size of a HumanEval problem (prompt + solution + a dozen
//! asserts). Each element is one full verification: fork of a warm worker, rlimits, fresh
//! working directory, run, judge, kill/reap, cleanup. Interpreter: `BRORL_BENCH_PYTHON`, else
//! `/usr/bin/python3`.
//!
//! `cargo bench -p brorl-core --bench code_verify`

use brorl_core::code::{
    default_workers, verify_batch, CodeRequest, CodeTests, Limits, Pool, RewardMode, SandboxConfig,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const TRIVIAL: &str = "def f(x):\n    return x\n";
const TRIVIAL_TESTS: &str = "def check(candidate):\n    assert candidate(1) == 1\n";

/// About the size of an average HumanEval problem: a docstring prompt, a solution with a
/// loop, and a check() with a dozen assertions.
const SIZED: &str = r#"from typing import List


def longest_run(numbers: List[int], limit: int) -> int:
    """Return the length of the longest contiguous run of numbers whose sum stays at or
    below limit. Numbers are non-negative.
    >>> longest_run([1, 2, 3], 3)
    2
    >>> longest_run([], 5)
    0
    >>> longest_run([4, 1, 1, 1, 5], 3)
    3
    """
    best = 0
    total = 0
    start = 0
    for end, value in enumerate(numbers):
        total += value
        while total > limit and start <= end:
            total -= numbers[start]
            start += 1
        best = max(best, end - start + 1)
    return best
"#;

const SIZED_TESTS: &str = r#"
METADATA = {'author': 'brorl', 'dataset': 'bench'}


def check(candidate):
    assert candidate([1, 2, 3], 3) == 2
    assert candidate([], 5) == 0
    assert candidate([4, 1, 1, 1, 5], 3) == 3
    assert candidate([5, 5, 5], 4) == 0
    assert candidate([0, 0, 0, 0], 0) == 4
    assert candidate([1] * 50, 10) == 10
    assert candidate(list(range(20)), 30) == 8
    assert candidate([2, 2, 2, 2], 100) == 4
    assert candidate([3, 1, 2, 1, 1], 4) == 3
    assert candidate([10, 1, 1, 10], 2) == 2
    assert candidate([1, 2, 1, 2, 1, 2], 3) == 2
    assert candidate([7], 7) == 1
"#;

fn request(program: &str, tests: &str, entry: &str) -> CodeRequest {
    CodeRequest {
        program: program.into(),
        tests: CodeTests::HumanEval {
            source: tests.into(),
            entry_point: entry.into(),
            prompt: None,
            literal_calls: None,
        },
        limits: Limits::default(),
        reward: RewardMode::Fraction,
    }
}

fn bench(c: &mut Criterion) {
    let python = std::env::var("BRORL_BENCH_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let workers = default_workers();
    let pool = Pool::new(SandboxConfig::new(python), workers);
    let cases = [
        ("trivial", request(TRIVIAL, TRIVIAL_TESTS, "f")),
        (
            "humaneval_sized",
            request(SIZED, SIZED_TESTS, "longest_run"),
        ),
    ];
    let batch = 8 * workers;
    let mut group = c.benchmark_group("code_verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    for (name, req) in &cases {
        let reqs = vec![req.clone(); batch];
        let warm = verify_batch(&pool, &reqs, workers).expect("sandbox works");
        assert!(
            warm.iter().all(|r| r.reward == 1.0),
            "{name}: {:?}",
            warm[0]
        );
        group.bench_function(*name, |b| {
            b.iter(|| black_box(verify_batch(&pool, &reqs, workers).expect("sandbox works")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
