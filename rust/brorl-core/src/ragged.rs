//! Ragged token storage: one flat array of tokens per column plus `offsets` (n + 1 entries) that
//! mark where each rollout's response starts and ends. The heavy loops are parallel over
//! contiguous blocks of rollouts so each thread writes one disjoint slice of the output.

use rayon::prelude::*;

use crate::error::{check_len, invalid, Result};

/// Below this many tokens the work is too small to be worth waking the thread pool.
const PARALLEL_MIN_TOKENS: usize = 1 << 16;
/// Rollouts per parallel block: large enough to amortise scheduling, small enough to balance.
const BLOCK_ROLLOUTS: usize = 256;

/// A zero-filled vector for large token columns. Zeroed memory of this size comes straight
/// from the kernel untouched, so we can ask for transparent huge pages before the first write:
/// otherwise first-touch page faults (one per 4 KiB) cost more than the copy itself.
pub fn zeroed<T: Copy + Default>(n: usize) -> Vec<T> {
    // `vec![default; n]` for the numeric and bool types used here allocates zeroed memory
    // (calloc), so no page has been touched yet when we advise.
    let mut v = vec![T::default(); n];
    advise_huge_pages(v.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the allocation; MADV_HUGEPAGE only changes how the
        // kernel backs those pages, never their contents. Failure is harmless (a hint).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

/// Validates offsets (start at 0, never decrease, end at `n_tokens`) and returns them as usize.
pub fn check_offsets(offsets: &[i64], n_tokens: usize) -> Result<Vec<usize>> {
    if offsets.is_empty() {
        return Err(invalid("offsets", "needs at least one entry (0)"));
    }
    if offsets[0] != 0 {
        return Err(invalid(
            "offsets",
            format!("must start at 0, starts at {}", offsets[0]),
        ));
    }
    let mut out = Vec::with_capacity(offsets.len());
    let mut prev = 0i64;
    for (i, &o) in offsets.iter().enumerate() {
        if o < prev {
            return Err(invalid(
                "offsets",
                format!(
                    "must not decrease: offsets[{i}] = {o} < offsets[{}] = {prev}",
                    i - 1
                ),
            ));
        }
        prev = o;
        out.push(o as usize);
    }
    if prev as usize != n_tokens {
        return Err(invalid(
            "offsets",
            format!("last offset is {prev} but there are {n_tokens} tokens"),
        ));
    }
    Ok(out)
}

/// Splits `out` into consecutive mutable blocks, each covering `BLOCK_ROLLOUTS` rollouts
/// whose lengths are given by the prefix sums `new_offsets`.
fn blocks<'a, T>(mut out: &'a mut [T], new_offsets: &[usize]) -> Vec<(usize, &'a mut [T])> {
    let n = new_offsets.len() - 1;
    let mut res = Vec::with_capacity(n / BLOCK_ROLLOUTS + 1);
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK_ROLLOUTS).min(n);
        let len = new_offsets[end] - new_offsets[start];
        let (head, tail) = std::mem::take(&mut out).split_at_mut(len);
        res.push((start, head));
        out = tail;
        start = end;
    }
    res
}

/// Repeats `per_rollout[i]` over every token of rollout i (sequence -> token broadcast).
pub fn broadcast<T: Copy + Send + Sync + Default>(
    per_rollout: &[T],
    offsets: &[i64],
    n_tokens: usize,
) -> Result<Vec<T>> {
    let bounds = check_offsets(offsets, n_tokens)?;
    check_len("values", per_rollout.len(), bounds.len() - 1)?;
    let mut out = zeroed::<T>(n_tokens);
    let n = per_rollout.len();
    let fill = |(first, block): (usize, &mut [T])| {
        let base = bounds[first];
        for i in first..(first + BLOCK_ROLLOUTS).min(n) {
            block[bounds[i] - base..bounds[i + 1] - base].fill(per_rollout[i]);
        }
    };
    let parts = blocks(&mut out, &bounds);
    if n_tokens >= PARALLEL_MIN_TOKENS {
        parts.into_par_iter().for_each(fill);
    } else {
        parts.into_iter().for_each(fill);
    }
    Ok(out)
}

/// Offsets of the selected rollouts laid end to end.
pub fn gathered_offsets(bounds: &[usize], indices: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(indices.len() + 1);
    out.push(0);
    let mut acc = 0;
    for &i in indices {
        acc += bounds[i + 1] - bounds[i];
        out.push(acc);
    }
    out
}

/// Copies the tokens of the rollouts in `indices` (in that order) into a new flat array.
/// `bounds` are validated offsets of `data`; indices must be in range.
pub fn gather_tokens<T: Copy + Send + Sync + Default>(
    data: &[T],
    bounds: &[usize],
    indices: &[usize],
    new_bounds: &[usize],
) -> Vec<T> {
    let total = *new_bounds.last().unwrap_or(&0);
    let mut out = zeroed::<T>(total);
    let copy = |(first, block): (usize, &mut [T])| {
        let base = new_bounds[first];
        let end = (first + BLOCK_ROLLOUTS).min(indices.len());
        for (j, &src) in indices[first..end].iter().enumerate() {
            let d0 = new_bounds[first + j] - base;
            let d1 = new_bounds[first + j + 1] - base;
            block[d0..d1].copy_from_slice(&data[bounds[src]..bounds[src + 1]]);
        }
    };
    let parts = blocks(&mut out, new_bounds);
    if total >= PARALLEL_MIN_TOKENS {
        parts.into_par_iter().for_each(copy);
    } else {
        parts.into_iter().for_each(copy);
    }
    out
}

/// Right-pads ragged per-token values into a dense row-major [n, width] matrix plus a mask
/// (1 where a real token sits). `width` defaults to the longest response.
pub fn to_padded<T: Copy + Send + Sync + Default>(
    data: &[T],
    offsets: &[i64],
    width: Option<usize>,
) -> Result<(Vec<T>, Vec<bool>, usize)> {
    let bounds = check_offsets(offsets, data.len())?;
    let n = bounds.len() - 1;
    let longest = bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let width = width.unwrap_or(longest);
    if width < longest {
        return Err(invalid(
            "width",
            format!("{width} is shorter than the longest response ({longest} tokens)"),
        ));
    }
    let mut values = zeroed::<T>(n * width);
    let mut mask = vec![false; n * width];
    values
        .par_chunks_mut(width.max(1))
        .zip(mask.par_chunks_mut(width.max(1)))
        .enumerate()
        .for_each(|(i, (row, mrow))| {
            let src = &data[bounds[i]..bounds[i + 1]];
            row[..src.len()].copy_from_slice(src);
            mrow[..src.len()].iter_mut().for_each(|m| *m = true);
        });
    Ok((values, mask, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_small_and_empty_rows() {
        let out = broadcast(&[1.0f32, 2.0, 3.0], &[0, 2, 2, 5], 5).unwrap();
        assert_eq!(out, vec![1.0, 1.0, 3.0, 3.0, 3.0]);
    }

    #[test]
    fn broadcast_parallel_matches_serial() {
        let n = 3000;
        let mut offs = vec![0i64];
        for i in 0..n {
            offs.push(offs[i] + (i % 97) as i64);
        }
        let total = *offs.last().unwrap() as usize;
        let vals: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let out = broadcast(&vals, &offs, total).unwrap();
        for i in 0..n {
            for t in offs[i]..offs[i + 1] {
                assert_eq!(out[t as usize], i as f32);
            }
        }
    }

    #[test]
    fn gather_reorders() {
        let data = [1, 2, 3, 4, 5, 6];
        let bounds = [0usize, 1, 3, 6];
        let idx = [2usize, 0];
        let nb = gathered_offsets(&bounds, &idx);
        assert_eq!(nb, vec![0, 3, 4]);
        assert_eq!(gather_tokens(&data, &bounds, &idx, &nb), vec![4, 5, 6, 1]);
    }

    #[test]
    fn padded() {
        let (v, m, w) = to_padded(&[1i32, 2, 3], &[0, 1, 3], None).unwrap();
        assert_eq!(w, 2);
        assert_eq!(v, vec![1, 0, 2, 3]);
        assert_eq!(m, vec![true, false, true, true]);
        assert!(to_padded(&[1i32], &[0, 2], None).is_err());
    }
}
