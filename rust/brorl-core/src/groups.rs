//! Per-prompt group statistics. A batch holds consecutive groups (one per prompt) whose sizes
//! are given by `sizes`; every function here works on that layout.

use crate::error::{check_finite, check_len, invalid, Result};

/// Start offsets of each group plus the end (`sizes.len() + 1` entries). Sizes must be >= 1:
/// an empty group has no statistics and would silently shift every later group.
pub fn group_offsets(sizes: &[i64], n_items: usize) -> Result<Vec<usize>> {
    let mut offsets = Vec::with_capacity(sizes.len() + 1);
    let mut acc: usize = 0;
    offsets.push(0);
    for (i, &s) in sizes.iter().enumerate() {
        if s < 1 {
            return Err(invalid(
                "group_sizes",
                format!("every group needs at least one rollout, group {i} has size {s}"),
            ));
        }
        acc += s as usize;
        offsets.push(acc);
    }
    if acc != n_items {
        return Err(invalid(
            "group_sizes",
            format!("group sizes sum to {acc} but there are {n_items} rollouts"),
        ));
    }
    Ok(offsets)
}

/// Mean and unbiased (ddof = 1) standard deviation in f64; the std of fewer than two values is 0.
pub fn mean_std(values: &[f32]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let ss = values
        .iter()
        .map(|&v| {
            let d = v as f64 - mean;
            d * d
        })
        .sum::<f64>();
    (mean, (ss / (n - 1) as f64).sqrt())
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub size: Vec<i64>,
    pub mean: Vec<f32>,
    /// Unbiased (ddof = 1); 0 for a group of one.
    pub std: Vec<f32>,
    /// Number of rollouts with reward >= threshold.
    pub n_correct: Vec<i64>,
    pub pass_rate: Vec<f32>,
    pub solved_all: Vec<bool>,
    pub solved_none: Vec<bool>,
}

/// Statistics of each group; a rollout counts as correct when `reward >= threshold`.
pub fn group_stats(rewards: &[f32], sizes: &[i64], threshold: f32) -> Result<GroupStats> {
    check_finite("rewards", rewards)?;
    if !threshold.is_finite() {
        return Err(invalid(
            "threshold",
            format!("must be finite, got {threshold}"),
        ));
    }
    let offsets = group_offsets(sizes, rewards.len())?;
    let g = sizes.len();
    let mut out = GroupStats {
        size: sizes.to_vec(),
        mean: Vec::with_capacity(g),
        std: Vec::with_capacity(g),
        n_correct: Vec::with_capacity(g),
        pass_rate: Vec::with_capacity(g),
        solved_all: Vec::with_capacity(g),
        solved_none: Vec::with_capacity(g),
    };
    for w in offsets.windows(2) {
        let group = &rewards[w[0]..w[1]];
        let (m, s) = mean_std(group);
        let c = group.iter().filter(|&&r| r >= threshold).count();
        out.mean.push(m as f32);
        out.std.push(s as f32);
        out.n_correct.push(c as i64);
        out.pass_rate.push(c as f32 / group.len() as f32);
        out.solved_all.push(c == group.len());
        out.solved_none.push(c == 0);
    }
    Ok(out)
}

/// Unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), evaluated as the product
/// 1 - prod_{i=n-c+1}^{n} (1 - k/i), which stays exact-ish for n in the thousands where the
/// binomials overflow.
pub fn pass_at_k_one(n: u64, c: u64, k: u64) -> f64 {
    if n - c < k {
        return 1.0;
    }
    let mut prod = 1.0f64;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// pass@k for every group, from its size and number of correct rollouts.
pub fn pass_at_k(sizes: &[i64], n_correct: &[i64], k: i64) -> Result<Vec<f64>> {
    check_len("n_correct", n_correct.len(), sizes.len())?;
    if k < 1 {
        return Err(invalid("k", format!("must be >= 1, got {k}")));
    }
    sizes
        .iter()
        .zip(n_correct)
        .enumerate()
        .map(|(i, (&n, &c))| {
            if n < 1 || c < 0 || c > n {
                return Err(invalid(
                    "n_correct",
                    format!("group {i}: {c} correct out of {n} rollouts is impossible"),
                ));
            }
            if k > n {
                return Err(invalid(
                    "k",
                    format!("k={k} exceeds the {n} rollouts of group {i}"),
                ));
            }
            Ok(pass_at_k_one(n as u64, c as u64, k as u64))
        })
        .collect()
}

/// DAPO dynamic sampling: keep the groups whose rewards are not all equal (a group where
/// every rollout scored the same has zero advantage everywhere and teaches nothing).
pub fn varied_groups(rewards: &[f32], sizes: &[i64]) -> Result<Vec<bool>> {
    check_finite("rewards", rewards)?;
    let offsets = group_offsets(sizes, rewards.len())?;
    Ok(offsets
        .windows(2)
        .map(|w| {
            let g = &rewards[w[0]..w[1]];
            g.iter().any(|&r| r != g[0])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_binomials() {
        // n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
        assert!((pass_at_k_one(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k_one(5, 0, 3), 0.0);
        assert_eq!(pass_at_k_one(5, 5, 1), 1.0);
        assert!((pass_at_k_one(10, 3, 1) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn stats_and_filter() {
        let r = [1.0, 0.0, 1.0, 1.0, 1.0, 0.5];
        let s = group_stats(&r, &[3, 2, 1], 1.0).unwrap();
        assert_eq!(s.n_correct, vec![2, 2, 0]);
        assert_eq!(s.solved_all, vec![false, true, false]);
        assert_eq!(s.std[2], 0.0);
        assert_eq!(
            varied_groups(&r, &[3, 2, 1]).unwrap(),
            vec![true, false, false]
        );
        assert!(group_stats(&r, &[3, 2], 1.0).is_err());
        assert!(group_stats(&[f32::NAN], &[1], 1.0).is_err());
    }
}
