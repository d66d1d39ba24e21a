//! Sequence-level advantage estimators. One function per estimator, each a few lines that can
//! be checked against its equation. Statistics are accumulated in f64 and the result is f32.

use std::str::FromStr;

use crate::error::{check_finite, check_len, invalid, CoreError, Result};
use crate::groups::{group_offsets, mean_std};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    /// ProRLv2 / BroRL default: a = r - mean_group(r); A = (a - mean_batch(a)) / (std_batch(a) + eps).
    ReinforcePpBaseline,
    /// A = (r - mean_group(r)) / (std_group(r) + eps).
    Grpo,
    /// A = r - mean_group(r) (no std normalisation, Dr. GRPO).
    DrGrpo,
    /// Leave-one-out baseline: A = r - (sum_group(r) - r) / (n_group - 1).
    Rloo,
    /// A = (r - mean_batch(r)) / (std_batch(r) + eps), no group baseline.
    ReinforcePp,
}

impl Estimator {
    pub const NAMES: [&'static str; 5] = [
        "reinforce_pp_baseline",
        "grpo",
        "dr_grpo",
        "rloo",
        "reinforce_pp",
    ];
}

impl FromStr for Estimator {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "reinforce_pp_baseline" => Self::ReinforcePpBaseline,
            "grpo" => Self::Grpo,
            "dr_grpo" => Self::DrGrpo,
            "rloo" => Self::Rloo,
            "reinforce_pp" => Self::ReinforcePp,
            other => {
                return Err(invalid(
                    "estimator",
                    format!(
                        "unknown estimator {other:?}; choose one of {:?}",
                        Self::NAMES
                    ),
                ))
            }
        })
    }
}

fn group_baseline(rewards: &[f32], offsets: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rewards.len());
    for w in offsets.windows(2) {
        let g = &rewards[w[0]..w[1]];
        let (m, _) = mean_std(g);
        out.extend(g.iter().map(|&r| r as f64 - m));
    }
    out
}

fn batch_whiten(values: &[f64], eps: f64) -> Vec<f32> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n < 2 {
        0.0
    } else {
        (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
    };
    values
        .iter()
        .map(|v| ((v - mean) / (std + eps)) as f32)
        .collect()
}

/// Advantages for `rewards` laid out as consecutive groups of `group_sizes`.
pub fn compute_advantages(
    rewards: &[f32],
    group_sizes: &[i64],
    estimator: Estimator,
    eps: f64,
) -> Result<Vec<f32>> {
    check_finite("rewards", rewards)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(invalid(
            "eps",
            format!("must be finite and >= 0, got {eps}"),
        ));
    }
    let offsets = group_offsets(group_sizes, rewards.len())?;
    Ok(match estimator {
        Estimator::ReinforcePpBaseline => batch_whiten(&group_baseline(rewards, &offsets), eps),
        Estimator::DrGrpo => group_baseline(rewards, &offsets)
            .into_iter()
            .map(|a| a as f32)
            .collect(),
        Estimator::ReinforcePp => {
            batch_whiten(&rewards.iter().map(|&r| r as f64).collect::<Vec<_>>(), eps)
        }
        Estimator::Grpo => {
            let mut out = Vec::with_capacity(rewards.len());
            for w in offsets.windows(2) {
                let g = &rewards[w[0]..w[1]];
                let (m, s) = mean_std(g);
                out.extend(g.iter().map(|&r| ((r as f64 - m) / (s + eps)) as f32));
            }
            out
        }
        Estimator::Rloo => {
            let mut out = Vec::with_capacity(rewards.len());
            for w in offsets.windows(2) {
                let g = &rewards[w[0]..w[1]];
                let n = g.len();
                if n < 2 {
                    // No other rollout to form a baseline from.
                    out.push(0.0);
                    continue;
                }
                let sum: f64 = g.iter().map(|&r| r as f64).sum();
                out.extend(
                    g.iter()
                        .map(|&r| (r as f64 - (sum - r as f64) / (n - 1) as f64) as f32),
                );
            }
            out
        }
    })
}

/// Token-level generalised advantage estimation over ragged responses.
/// `offsets` has one more entry than there are responses; the value after the last token of a
/// response is 0 (the episode ends with the response). Returns (advantages, returns).
pub fn compute_gae(
    token_rewards: &[f32],
    values: &[f32],
    offsets: &[i64],
    gamma: f64,
    lam: f64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_finite("token_rewards", token_rewards)?;
    check_finite("values", values)?;
    check_len("values", values.len(), token_rewards.len())?;
    for (name, v) in [("gamma", gamma), ("lam", lam)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(name, format!("must lie in [0, 1], got {v}")));
        }
    }
    let bounds = crate::ragged::check_offsets(offsets, token_rewards.len())?;
    let mut adv = vec![0f32; values.len()];
    let mut ret = vec![0f32; values.len()];
    for w in bounds.windows(2) {
        let mut next_value = 0.0f64;
        let mut running = 0.0f64;
        for t in (w[0]..w[1]).rev() {
            let v = values[t] as f64;
            let delta = token_rewards[t] as f64 + gamma * next_value - v;
            running = delta + gamma * lam * running;
            adv[t] = running as f32;
            ret[t] = (running + v) as f32;
            next_value = v;
        }
    }
    Ok((adv, ret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singleton_groups_get_zero() {
        for e in Estimator::NAMES {
            let est: Estimator = e.parse().unwrap();
            let a = compute_advantages(&[0.5], &[1], est, 1e-6).unwrap();
            assert_eq!(a, vec![0.0], "{e}");
        }
    }

    #[test]
    fn rloo_hand_computed() {
        let a = compute_advantages(&[1.0, 0.0, 0.0], &[3], Estimator::Rloo, 0.0).unwrap();
        assert_eq!(a, vec![1.0, -0.5, -0.5]);
    }

    #[test]
    fn rejects_nan_and_unknown() {
        assert!(matches!(
            compute_advantages(&[1.0, f32::NAN], &[2], Estimator::Grpo, 1e-6),
            Err(CoreError::NonFinite { index: 1, .. })
        ));
        assert!("ppo".parse::<Estimator>().is_err());
    }

    #[test]
    fn gae_single_step() {
        let (a, r) = compute_gae(&[1.0], &[0.25], &[0, 1], 0.9, 0.95).unwrap();
        assert_eq!(a, vec![0.75]);
        assert_eq!(r, vec![1.0]);
    }
}
