//! Criterion benches of the per-step bookkeeping kernels at the paper's BroRL step
//! (128 prompts x 512 rollouts = 65,536) and a larger one (512 x 4,096). Throughput is in
//! rollouts per second (tokens per second for the token-level kernels).

use brorl_core::advantages::{compute_advantages, Estimator};
use brorl_core::groups::{group_stats, varied_groups};
use brorl_core::packing::pack_microbatches;
use brorl_core::ragged::{broadcast, gather_tokens, gathered_offsets};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

struct Step {
    rewards: Vec<f32>,
    sizes: Vec<i64>,
    lengths: Vec<i64>,
}

/// Deterministic pseudo-random step: a xorshift generator keeps the bench free of extra crates.
fn make_step(prompts: usize, n: usize, mean_len: i64) -> Step {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rewards = Vec::with_capacity(prompts * n);
    for _ in 0..prompts {
        let p = (next() % 5) as f64 / 4.0;
        for _ in 0..n {
            rewards.push(((next() % 1000) as f64 / 1000.0 < p) as i32 as f32);
        }
    }
    let lengths = (0..prompts * n)
        .map(|_| mean_len / 2 + (next() % mean_len as u64) as i64)
        .collect();
    Step {
        rewards,
        sizes: vec![n as i64; prompts],
        lengths,
    }
}

fn shapes() -> [(usize, usize); 2] {
    [(128, 512), (512, 4096)]
}

fn bench_group_level(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_level");
    g.sample_size(20);
    for (prompts, n) in shapes() {
        let s = make_step(prompts, n, 8);
        let id = format!("{prompts}x{n}");
        g.throughput(Throughput::Elements((prompts * n) as u64));
        for est in Estimator::NAMES {
            let e: Estimator = est.parse().unwrap();
            g.bench_with_input(BenchmarkId::new(est, &id), &s, |b, s| {
                b.iter(|| compute_advantages(black_box(&s.rewards), &s.sizes, e, 1e-6).unwrap())
            });
        }
        g.bench_with_input(BenchmarkId::new("group_stats", &id), &s, |b, s| {
            b.iter(|| group_stats(black_box(&s.rewards), &s.sizes, 1.0).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("varied_groups", &id), &s, |b, s| {
            b.iter(|| varied_groups(black_box(&s.rewards), &s.sizes).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("pack_16k_8ranks", &id), &s, |b, s| {
            let lengths: Vec<i64> = s.lengths.iter().map(|l| l * 125).collect();
            b.iter(|| pack_microbatches(black_box(&lengths), 16_384, 8).unwrap())
        });
    }
    g.finish();
}

fn bench_token_level(c: &mut Criterion) {
    let mut g = c.benchmark_group("token_level");
    g.sample_size(10);
    // 65,536 rollouts of ~1,000 tokens: the BroRL step's tokens (256 MB per f32 column).
    let s = make_step(128, 512, 1000);
    let mut offsets = vec![0i64];
    for l in &s.lengths {
        offsets.push(offsets.last().unwrap() + l);
    }
    let n_tokens = *offsets.last().unwrap() as usize;
    let adv =
        compute_advantages(&s.rewards, &s.sizes, Estimator::ReinforcePpBaseline, 1e-6).unwrap();
    let tokens: Vec<i32> = (0..n_tokens as i32).collect();
    let bounds: Vec<usize> = offsets.iter().map(|&o| o as usize).collect();
    let keep = varied_groups(&s.rewards, &s.sizes).unwrap();
    let indices: Vec<usize> = (0..s.rewards.len()).filter(|&i| keep[i / 512]).collect();
    let new_bounds = gathered_offsets(&bounds, &indices);
    g.throughput(Throughput::Elements(n_tokens as u64));
    g.bench_function("broadcast_65k_rollouts", |b| {
        b.iter(|| broadcast(black_box(&adv), &offsets, n_tokens).unwrap())
    });
    g.bench_function("filter_gather_65k_rollouts", |b| {
        b.iter(|| gather_tokens(black_box(&tokens), &bounds, &indices, &new_bounds))
    });
    g.finish();
}

criterion_group!(benches, bench_group_level, bench_token_level);
criterion_main!(benches);
