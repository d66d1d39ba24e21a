//! Packs rollouts into micro-batches under a token budget, balanced across data-parallel ranks.
//!
//! Two goals: (1) no micro-batch exceeds `max_tokens`, so N=512 never needs every sequence in
//! memory at once; (2) every rank gets nearly the same number of tokens and exactly the same
//! number of micro-batches, because ranks step their optimizer together and the slowest rank
//! sets the pace.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::error::{invalid, Result};

/// rank -> micro-batch -> rollout indices.
pub type Packing = Vec<Vec<Vec<usize>>>;

/// `lengths[i]` is the number of tokens rollout i occupies (prompt + response).
pub fn pack_microbatches(lengths: &[i64], max_tokens: i64, n_ranks: usize) -> Result<Packing> {
    if n_ranks == 0 {
        return Err(invalid("n_ranks", "must be >= 1, got 0"));
    }
    if max_tokens < 1 {
        return Err(invalid(
            "max_tokens",
            format!("must be >= 1, got {max_tokens}"),
        ));
    }
    for (i, &l) in lengths.iter().enumerate() {
        if l < 0 {
            return Err(invalid(
                "lengths",
                format!("rollout {i} has negative length {l}"),
            ));
        }
        if l > max_tokens {
            return Err(invalid(
                "max_tokens",
                format!("{max_tokens} is smaller than rollout {i} ({l} tokens); raise the budget"),
            ));
        }
    }
    // Longest first: the classic LPT / best-fit-decreasing order.
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (Reverse(lengths[i]), i));

    // 1. Ranks: give each rollout to the rank with the fewest tokens so far.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> =
        (0..n_ranks).map(|r| Reverse((0, r))).collect();
    let mut per_rank: Vec<Vec<usize>> = vec![Vec::new(); n_ranks];
    for &i in &order {
        let Reverse((load, r)) = heap.pop().expect("n_ranks >= 1");
        per_rank[r].push(i);
        heap.push(Reverse((load + lengths[i], r)));
    }

    // 2. Micro-batches within a rank: best fit (tightest bin that still has room).
    let mut packing: Packing = per_rank
        .iter()
        .map(|items| best_fit(items, lengths, max_tokens))
        .collect();

    // 3. Same number of micro-batches on every rank.
    let target = packing.iter().map(Vec::len).max().unwrap_or(0);
    for bins in &mut packing {
        equalize(bins, target);
    }
    Ok(packing)
}

fn best_fit(items: &[usize], lengths: &[i64], cap: i64) -> Vec<Vec<usize>> {
    let mut bins: Vec<Vec<usize>> = Vec::new();
    // (remaining capacity, bin id)
    let mut free: BTreeSet<(i64, usize)> = BTreeSet::new();
    for &i in items {
        let l = lengths[i];
        let found = free.range((l, 0)..).next().copied();
        match found {
            Some((rem, b)) => {
                free.remove(&(rem, b));
                bins[b].push(i);
                free.insert((rem - l, b));
            }
            None => {
                bins.push(vec![i]);
                free.insert((cap - l, bins.len() - 1));
            }
        }
    }
    bins
}

/// Splits the fullest micro-batches (by item count) until there are `target` of them;
/// where nothing is left to split, appends empty micro-batches.
fn equalize(bins: &mut Vec<Vec<usize>>, target: usize) {
    while bins.len() < target {
        let (idx, count) = bins
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.len()))
            .max_by_key(|&(i, c)| (c, Reverse(i)))
            .unwrap_or((0, 0));
        if count < 2 {
            bins.push(Vec::new());
            continue;
        }
        let taken = std::mem::take(&mut bins[idx]);
        let (a, b): (Vec<_>, Vec<_>) = taken.iter().enumerate().partition(|(k, _)| k % 2 == 0);
        bins[idx] = a.into_iter().map(|(_, &v)| v).collect();
        bins.push(b.into_iter().map(|(_, &v)| v).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respects_budget_and_covers_everything() {
        let lengths: Vec<i64> = (0..1000).map(|i| (i * 37 % 500 + 1) as i64).collect();
        let p = pack_microbatches(&lengths, 2048, 3).unwrap();
        let mut seen = vec![false; lengths.len()];
        let n_mb = p[0].len();
        for rank in &p {
            assert_eq!(rank.len(), n_mb);
            for mb in rank {
                assert!(mb.iter().map(|&i| lengths[i]).sum::<i64>() <= 2048);
                for &i in mb {
                    assert!(!seen[i]);
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        let loads: Vec<i64> = p
            .iter()
            .map(|r| r.iter().flatten().map(|&i| lengths[i]).sum())
            .collect();
        let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(hi - lo <= 500, "{loads:?}");
    }

    #[test]
    fn too_long_is_an_error() {
        assert!(pack_microbatches(&[10, 3000], 2048, 1).is_err());
        assert!(pack_microbatches(&[10], 2048, 0).is_err());
    }
}
