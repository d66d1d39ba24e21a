//! Size caps and the cooperative per-item step budget. Every loop in the verifier ticks the
//! budget, so total work per pair is bounded by `Limits::max_steps` plus constant factors.

/// Caps that bound the work of verifying one pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longer responses are not scanned at all (status `BudgetExceeded`).
    pub max_response_bytes: usize,
    /// Longer extracted answers (or golds) are not parsed.
    pub max_answer_bytes: usize,
    /// Maximum number of tokens/tree nodes of one parsed answer.
    pub max_nodes: usize,
    /// Maximum nesting depth of brackets, braces and operators.
    pub max_depth: usize,
    /// Maximum digits of one numeric literal.
    pub max_digits: usize,
    /// Maximum bits of any exact integer (numerator or denominator) built while evaluating.
    pub max_bits: u64,
    /// Evaluation points used to test a symbolic identity.
    pub max_points: usize,
    /// Cooperative work units per pair.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_response_bytes: 1 << 20,
            max_answer_bytes: 4096,
            max_nodes: 2048,
            max_depth: 100,
            max_digits: 512,
            max_bits: 16_384,
            max_points: 6,
            max_steps: 200_000,
        }
    }
}

/// The budget ran out (or a cap was hit); the pair's status becomes `BudgetExceeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded;

/// A countdown of work units, shared by every stage of one verification.
#[derive(Debug)]
pub struct Budget {
    left: u64,
}

impl Budget {
    pub fn new(steps: u64) -> Self {
        Budget { left: steps }
    }

    /// Spends `n` units; fails once the budget is exhausted.
    #[inline]
    pub fn tick(&mut self, n: u64) -> Result<(), Exceeded> {
        if self.left < n {
            self.left = 0;
            return Err(Exceeded);
        }
        self.left -= n;
        Ok(())
    }

    pub fn left(&self) -> u64 {
        self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out() {
        let mut b = Budget::new(3);
        assert!(b.tick(2).is_ok());
        assert_eq!(b.tick(2), Err(Exceeded));
        assert_eq!(b.left(), 0);
        assert_eq!(b.tick(1), Err(Exceeded));
    }
}
