//! Math verifier throughput (pairs/s) by answer kind, single-threaded, and the batch API.
//! Run: `cargo bench -p brorl-core --bench math_verify`.

use std::hint::black_box;

use brorl_core::math::{verify, verify_batch, Options, Status};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// (gold, response) pairs per kind; responses are short model-style endings with a box.
fn cases() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "numbers",
            vec![
                ("42", "so the total is \\boxed{42}."),
                ("7,425,000", "The answer is \\boxed{7425000}"),
                ("0.25", "\\boxed{.25}"),
                ("1000", "\\boxed{1{,}001}"),
            ],
        ),
        (
            "fractions",
            vec![
                ("\\frac{3}{4}", "Thus \\boxed{\\dfrac{3}{4}}"),
                ("\\frac13", "\\boxed{0.3333}"),
                ("4\\frac{4}{9}", "\\boxed{\\frac{40}{9}}"),
                ("\\frac{2}{5}", "\\boxed{\\frac{4}{9}}"),
            ],
        ),
        (
            "symbolic",
            vec![
                ("\\frac{x+2}{7}", "\\boxed{\\frac{x}{7}+\\frac27}"),
                ("\\sec^2 y", "\\boxed{\\tan^2 y + 1}"),
                ("3\\sqrt{13}", "\\boxed{\\sqrt{117}}"),
                ("(x+1)^2", "\\boxed{x^2+2x+2}"),
            ],
        ),
        (
            "sets",
            vec![
                ("\\{1, 2, 3\\}", "\\boxed{\\{3, 1, 2\\}}"),
                (
                    "(-\\infty, 1) \\cup (3, \\infty)",
                    "\\boxed{(3,\\infty)\\cup(-\\infty,1)}",
                ),
                ("(1,2), (3,4)", "\\boxed{(3,4), (1,2)}"),
                ("[0, 9)", "\\boxed{(0,9)}"),
            ],
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let opts = Options::default();
    let mut group = c.benchmark_group("math_verify");
    for (kind, pairs) in cases() {
        // Fail loudly if a case stopped parsing: a benchmark of errors measures nothing.
        for (g, r) in &pairs {
            let s = verify(g, r, &opts);
            assert!(
                matches!(s, Status::Correct | Status::Wrong),
                "{kind}: {g} vs {r} gave {s:?}"
            );
        }
        group.throughput(Throughput::Elements(pairs.len() as u64));
        group.bench_function(kind, |b| {
            b.iter(|| {
                for (g, r) in &pairs {
                    black_box(verify(black_box(g), black_box(r), &opts));
                }
            })
        });
    }
    let all: Vec<(&str, &str)> = cases().into_iter().flat_map(|(_, p)| p).collect();
    let golds: Vec<&str> = all.iter().cycle().take(4096).map(|p| p.0).collect();
    let responses: Vec<&str> = all.iter().cycle().take(4096).map(|p| p.1).collect();
    group.throughput(Throughput::Elements(golds.len() as u64));
    group.sample_size(10);
    for threads in [1usize, 2] {
        group.bench_function(format!("batch_4096_threads_{threads}"), |b| {
            b.iter(|| verify_batch(&golds, &responses, &opts, Some(threads)).expect("batch"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
