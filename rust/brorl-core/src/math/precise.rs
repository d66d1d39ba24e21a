//! High-precision confirmation of approximate equalities. When two values agree in `f64` but
//! are not both exact, the expressions are evaluated again at the same point with binary
//! floating point of several hundred bits (astro-float, pure Rust). A difference larger than
//! the rounding error of the largest intermediate value means the answers differ: this catches
//! what a relative `f64` tolerance cannot, e.g. `e^{25} + 3` against `e^{25}`.
//!
//! Only real values are handled; anything else (complex intermediates, factorials, unknown
//! nodes) returns `None` and the `f64` verdict stands.

use std::cell::RefCell;
use std::collections::HashMap;

use astro_float::{BigFloat, Consts, Radix, RoundingMode};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive};

use super::ast::{Constant, Func, Node};
use super::budget::Budget;
use super::value::Val;

const RM: RoundingMode = RoundingMode::ToEven;
/// Working precision of the first pass, in bits.
const BASE_BITS: usize = 192;
/// Bits of the working precision allowed to be lost to rounding before values count as equal.
const SLACK_BITS: i64 = 48;
/// Largest working precision a second pass may use.
const MAX_BITS: usize = 16384;

thread_local! {
    // The constants cache (π, e, ln 2) is expensive to fill; one per thread.
    static CONSTS: RefCell<Option<Consts>> = RefCell::new(Consts::new().ok());
}

struct Eval<'a> {
    p: usize,
    cc: &'a mut Consts,
    env: &'a HashMap<String, Val>,
    budget: &'a mut Budget,
    /// Largest binary exponent seen in any intermediate value (sets the rounding-error scale).
    max_exp: i64,
    exhausted: bool,
}

impl Eval<'_> {
    fn charge(&mut self, transcendental: bool) -> Option<()> {
        let w = (self.p / 64) as u64;
        let cost = 1 + w * w * if transcendental { 16 } else { 1 };
        if self.budget.tick(cost).is_err() {
            self.exhausted = true;
            return None;
        }
        Some(())
    }

    fn ok(&mut self, x: BigFloat) -> Option<BigFloat> {
        if x.is_nan() || x.is_inf() {
            return None;
        }
        if let Some(e) = x.exponent() {
            if !x.is_zero() {
                self.max_exp = self.max_exp.max(e as i64);
            }
        }
        Some(x)
    }

    fn big_int(&mut self, v: &BigInt) -> BigFloat {
        // Small integers (nearly all literals and evaluation points) skip decimal parsing.
        match v.magnitude().to_u64() {
            Some(m) => {
                let f = BigFloat::from_u64(m, self.p);
                if v.is_negative() {
                    f.neg()
                } else {
                    f
                }
            }
            None => BigFloat::parse(&v.to_string(), Radix::Dec, self.p, RM, self.cc),
        }
    }

    fn rational(&mut self, r: &BigRational) -> Option<BigFloat> {
        let n = self.big_int(r.numer());
        let q = if r.is_integer() {
            n
        } else {
            let d = self.big_int(r.denom());
            n.div(&d, self.p, RM)
        };
        self.ok(q)
    }

    fn int(&mut self, v: u64) -> BigFloat {
        BigFloat::from_u64(v, self.p)
    }

    fn eval(&mut self, n: &Node) -> Option<BigFloat> {
        self.charge(false)?;
        let p = self.p;
        let x = match n {
            Node::Num(l) => return self.rational(&l.value),
            Node::Sym(s) => match self.env.get(s)? {
                Val::Exact(r) => {
                    let r = r.clone();
                    return self.rational(&r);
                }
                Val::Approx(_) => return None,
            },
            Node::Const(Constant::Pi) => self.cc.pi(p, RM),
            Node::Const(Constant::E) => self.cc.e(p, RM),
            Node::Const(_) => return None,
            Node::Add(v) => {
                let mut acc = self.int(0);
                for t in v {
                    let y = self.eval(t)?;
                    acc = self.ok(acc.add(&y, p, RM))?;
                }
                acc
            }
            Node::Mul(v) => {
                let mut acc = self.int(1);
                for t in v {
                    let y = self.eval(t)?;
                    let product = acc.mul(&y, p, RM);
                    acc = if acc.is_zero() || y.is_zero() {
                        self.ok(product)?
                    } else {
                        self.ok(nonzero(product)?)?
                    };
                }
                acc
            }
            Node::Neg(a) => self.eval(a)?.neg(),
            Node::Div(a, b) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                if y.is_zero() {
                    return None;
                }
                if x.is_zero() {
                    return Some(x);
                }
                nonzero(x.div(&y, p, RM))?
            }
            Node::Percent(a) => {
                let x = self.eval(a)?;
                let h = self.int(100);
                x.div(&h, p, RM)
            }
            Node::Pow(a, b) => {
                // Integer literal exponents (`x^2`) by repeated multiplication, not exp/ln.
                let small = match &**b {
                    Node::Num(l) if l.value.is_integer() => l.value.numer().to_i64(),
                    Node::Neg(inner) => match &**inner {
                        Node::Num(l) if l.value.is_integer() => {
                            l.value.numer().to_i64().map(|v| -v)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(k) = small.filter(|k| k.unsigned_abs() <= 1 << 16) {
                    let x = self.eval(a)?;
                    self.charge(false)?;
                    let m = x.powi(k.unsigned_abs() as usize, p, RM);
                    if m.is_zero() && !x.is_zero() {
                        return None;
                    }
                    return if k >= 0 {
                        self.ok(m)
                    } else if m.is_zero() {
                        None
                    } else {
                        let one = self.int(1);
                        self.ok(one.div(&m, p, RM))
                    };
                }
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                self.charge(true)?;
                self.pow(x, y)?
            }
            Node::Root(k, a) => {
                let (k, x) = (self.eval(k)?, self.eval(a)?);
                self.charge(true)?;
                let two = self.int(2);
                if k.cmp(&two) == Some(0) {
                    // Square roots are by far the most common: use the direct routine.
                    if x.is_negative() {
                        return None;
                    }
                    return self.ok(x.sqrt(p, RM));
                }
                let one = self.int(1);
                let inv = one.div(&k, p, RM);
                if x.is_negative() {
                    // Odd roots of negatives are real (`\sqrt[3]{-8} = -2`).
                    let odd = k.int().cmp(&k) == Some(0) && is_odd(&k)?;
                    if !odd {
                        return None;
                    }
                    x.abs().pow(&inv, p, RM, self.cc).neg()
                } else if x.is_zero() {
                    x
                } else {
                    x.pow(&inv, p, RM, self.cc)
                }
            }
            Node::Func(f, a) => {
                let x = self.eval(a)?;
                self.charge(true)?;
                self.func(*f, x)?
            }
            Node::Log(b, a) => {
                let (b, x) = (self.eval(b)?, self.eval(a)?);
                self.charge(true)?;
                if !b.is_positive() || !x.is_positive() {
                    return None;
                }
                let lb = b.ln(p, RM, self.cc);
                if lb.is_zero() {
                    return None;
                }
                x.ln(p, RM, self.cc).div(&lb, p, RM)
            }
            _ => return None,
        };
        self.ok(x)
    }

    fn pow(&mut self, x: BigFloat, y: BigFloat) -> Option<BigFloat> {
        let p = self.p;
        if x.is_positive() {
            return nonzero(x.pow(&y, p, RM, self.cc));
        }
        // Zero or negative bases need an integer exponent for a real value.
        if y.int().cmp(&y) != Some(0) {
            return None;
        }
        if x.is_zero() {
            return if y.is_positive() { Some(x) } else { None };
        }
        let mag = nonzero(x.abs().pow(&y, p, RM, self.cc))?;
        Some(if is_odd(&y)? { mag.neg() } else { mag })
    }

    fn func(&mut self, f: Func, x: BigFloat) -> Option<BigFloat> {
        let p = self.p;
        // A periodic function of an argument whose units are past half the working precision
        // is decided by rounding, not by the argument, and reducing it (`\sin(10^{80000}\pi)`)
        // needs π to as many bits as the argument has: seconds. Undecided.
        let periodic = matches!(
            f,
            Func::Sin | Func::Cos | Func::Tan | Func::Sec | Func::Csc | Func::Cot
        );
        if periodic && x.exponent().is_some_and(|e| i64::from(e) > (p / 2) as i64) {
            return None;
        }
        let cc = &mut *self.cc;
        let one = BigFloat::from_u64(1, p);
        Some(match f {
            Func::Sin => x.sin(p, RM, cc),
            Func::Cos => x.cos(p, RM, cc),
            Func::Tan => x.tan(p, RM, cc),
            Func::Sec => one.div(&x.cos(p, RM, cc), p, RM),
            Func::Csc => one.div(&x.sin(p, RM, cc), p, RM),
            Func::Cot => one.div(&x.tan(p, RM, cc), p, RM),
            Func::Asin => x.asin(p, RM, cc),
            Func::Acos => x.acos(p, RM, cc),
            Func::Atan => x.atan(p, RM, cc),
            Func::Sinh => x.sinh(p, RM, cc),
            Func::Cosh => x.cosh(p, RM, cc),
            Func::Tanh => x.tanh(p, RM, cc),
            Func::Ln => {
                if !x.is_positive() {
                    return None;
                }
                x.ln(p, RM, cc)
            }
            Func::Exp => x.exp(p, RM, cc),
            Func::Abs => x.abs(),
            Func::Floor => x.floor(),
            Func::Ceil => x.ceil(),
        })
    }
}

/// Whether an integer-valued float is odd (None when it is too large to tell cheaply).
/// A power of a nonzero base or a product of nonzero factors that came out zero has left the
/// exponent range (`10^{-10^{10}}`): no value, rather than a 0 that equals every other such
/// underflow and 0 itself.
fn nonzero(x: BigFloat) -> Option<BigFloat> {
    (!x.is_zero()).then_some(x)
}

fn is_odd(k: &BigFloat) -> Option<bool> {
    let half = k.div(&BigFloat::from_u64(2, 128), 128, RM);
    let e = k.exponent()?;
    if e > 60 {
        return None;
    }
    Some(!half.fract().is_zero())
}

/// One evaluation of both sides at `p` bits.
struct Pass {
    /// The difference exceeds the rounding scale of the largest intermediate value.
    differ: bool,
    /// Largest binary exponent of any intermediate value.
    max_exp: i64,
    /// The difference of the two sides.
    d: BigFloat,
    /// Whether the difference is large beside the values themselves (more than 2^-(p/2) of the
    /// larger one), so that only the absolute rounding scale made it count as equal: `0`
    /// against `e^{-100}`, or `\sin\pi` (rounding noise) against `0`.
    relatively_large: bool,
}

/// Evaluates both sides at `p` bits.
fn differ_at(
    g: &Node,
    a: &Node,
    env: &HashMap<String, Val>,
    budget: &mut Budget,
    cc: &mut Consts,
    p: usize,
) -> Option<Pass> {
    let mut ev = Eval {
        p,
        cc,
        env,
        budget,
        max_exp: i64::MIN / 2,
        exhausted: false,
    };
    let x = ev.eval(g)?;
    let y = ev.eval(a)?;
    let d = x.sub(&y, p, RM);
    if d.is_nan() {
        return None;
    }
    let max_exp = ev.max_exp;
    if d.is_zero() {
        return Some(Pass {
            differ: false,
            max_exp,
            d,
            relatively_large: false,
        });
    }
    let de = d.exponent()? as i64;
    let mag = [&x, &y]
        .iter()
        .filter(|v| !v.is_zero())
        .filter_map(|v| v.exponent())
        .map(i64::from)
        .max()
        .unwrap_or(i64::MIN / 2);
    Some(Pass {
        // Rounding error is at most a few ulps of the largest intermediate value per operation.
        differ: de > max_exp - p as i64 + SLACK_BITS,
        max_exp,
        d,
        relatively_large: de > mag - (p / 2) as i64,
    })
}

/// Whether two differences computed at different precisions are the same number to 32 bits:
/// a real difference of the values stays put as the precision grows, rounding noise does not
/// (it shrinks with the precision).
fn same_difference(d1: &BigFloat, d2: &BigFloat, p: usize) -> bool {
    if d1.is_zero() || d2.is_zero() {
        return false;
    }
    let gap = d1.sub(d2, p, RM);
    match (gap.exponent(), d1.exponent()) {
        _ if gap.is_zero() => true,
        (Some(g), Some(e)) => i64::from(g) < i64::from(e) - 32,
        _ => false,
    }
}

/// Some(false) when the two expressions provably differ at this point at high precision,
/// Some(true) when they agree there, None when high precision cannot tell (not real-valued,
/// unsupported nodes, or budget).
pub fn agree(g: &Node, a: &Node, env: &HashMap<String, Val>, budget: &mut Budget) -> Option<bool> {
    CONSTS.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let cc = slot.as_mut()?;
        let mut pass = differ_at(g, a, env, budget, cc, BASE_BITS)?;
        let mut p = BASE_BITS;
        if pass.differ {
            return Some(false);
        }
        // Huge intermediates (e^{256}) swamp a small difference at the base precision: look
        // again with enough bits to see units.
        if pass.max_exp > 64 {
            p = BASE_BITS + pass.max_exp as usize;
            // Past the cap the units are below the rounding error (`1 + e^{2981}` rounds to
            // `e^{2981}`), so agreement there proves nothing.
            if p > MAX_BITS {
                return None;
            }
            pass = differ_at(g, a, env, budget, cc, p)?;
            if pass.differ {
                return Some(false);
            }
        }
        // Below the rounding scale of the intermediates, a difference as large as the values
        // may still be real (`e^{-100}` is no rounding noise beside `0`, though `e^{100}` was
        // computed on the way): at twice the precision a real difference stays the same.
        if pass.relatively_large {
            if 2 * p > MAX_BITS {
                return None;
            }
            let again = differ_at(g, a, env, budget, cc, 2 * p)?;
            if same_difference(&pass.d, &again.d, 2 * p) {
                return Some(false);
            }
        }
        Some(true)
    })
}

/// The decimal rule at high precision: whether the decimal `x` (with `decimals` places) is the
/// value of `n` rounded half away from zero or truncated to that many places. A value within
/// rounding error of a boundary between two such decimals has a finite decimal expansion
/// there, which must be written exactly, so it matches only when `x` is that value. None when
/// `n` cannot be evaluated here (complex, unsupported, budget, or past the precision cap).
pub fn decimal_matches(
    n: &Node,
    x: &BigRational,
    decimals: u32,
    budget: &mut Budget,
) -> Option<bool> {
    let scale = num_traits::pow(BigInt::from(10u8), decimals as usize);
    let m = x * BigRational::from_integer(scale.clone());
    if !m.is_integer() {
        return Some(false);
    }
    let m = m.to_integer();
    // log2(10) < 10/3: bits for the decimals, for the digits of the decimal, and headroom.
    let digit_bits = decimals as usize * 10 / 3 + 1;
    let need = BASE_BITS + digit_bits + m.bits() as usize;
    let env = HashMap::new();
    CONSTS.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let cc = slot.as_mut()?;
        let mut p = need;
        for _ in 0..2 {
            if p > MAX_BITS {
                return None;
            }
            let mut ev = Eval {
                p,
                cc: &mut *cc,
                env: &env,
                budget: &mut *budget,
                max_exp: i64::MIN / 2,
                exhausted: false,
            };
            let v = ev.eval(n)?;
            let max_exp = ev.max_exp;
            if max_exp > 64 && p == need {
                // Huge intermediates: evaluate again with bits to spare for them.
                p = need + max_exp as usize;
                continue;
            }
            let t = v.mul(&ev.big_int(&scale), p, RM);
            let mf = ev.big_int(&m);
            let mut e = t.sub(&mf, p, RM);
            if t.is_negative() {
                e = e.neg();
            }
            // Absolute error of t: rounding of the largest intermediate, scaled by 10^decimals.
            let err = max_exp.max(0) - p as i64 + SLACK_BITS + digit_bits as i64 + 1;
            let within =
                |z: &BigFloat| z.is_zero() || z.exponent().is_some_and(|k| i64::from(k) <= err);
            let one = BigFloat::from_u64(1, p);
            let half = one.div(&BigFloat::from_u64(2, p), p, RM);
            let to_one = e.sub(&one, p, RM);
            let to_half = e.add(&half, p, RM);
            if within(&e) {
                return Some(true);
            }
            if within(&to_one) || within(&to_half) {
                return Some(false);
            }
            // m is t rounded half away from zero (e in [-1/2, 1/2]) or truncated (e in [0, 1)).
            let above_minus_half = e.cmp(&half.neg()).is_some_and(|c| c > 0);
            let below_one = e.cmp(&one).is_some_and(|c| c < 0);
            return Some(above_minus_half && below_one);
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::budget::Limits;
    use crate::math::lexer::LexMode;
    use crate::math::parser::parse;

    fn agree_str(g: &str, a: &str) -> Option<bool> {
        let limits = Limits::default();
        let mut b = Budget::new(1_000_000);
        let g = parse(g, LexMode::STANDARD, &limits, &mut b).unwrap();
        let a = parse(a, LexMode::STANDARD, &limits, &mut b).unwrap();
        agree(&g, &a, &HashMap::new(), &mut b)
    }

    #[test]
    fn a_difference_that_stays_is_real() {
        // `e^{100}` on the way made `e^{-100}` look like rounding noise beside 0.
        assert_eq!(agree_str("0", "e^{-100}"), Some(false));
        assert_eq!(agree_str("0", "e^{-1000}"), Some(false));
        assert_eq!(agree_str("0", "\\pi \\cdot 10^{-50}"), Some(false));
        // Rounding noise shrinks with the precision: still equal.
        assert_eq!(agree_str("0", "\\sin(\\pi)"), Some(true));
        assert_eq!(agree_str("0", "\\cos(\\frac{\\pi}{2})"), Some(true));
    }

    #[test]
    fn decimals_are_checked_digit_for_digit() {
        let limits = Limits::default();
        let check = |g: &str, x: &str| {
            let mut b = Budget::new(1_000_000);
            let g = parse(g, LexMode::STANDARD, &limits, &mut b).unwrap();
            let (int, frac) = x.split_once('.').unwrap();
            let q = BigRational::new(
                format!("{int}{frac}").parse::<BigInt>().unwrap(),
                num_traits::pow(BigInt::from(10u8), frac.len()),
            );
            decimal_matches(&g, &q, frac.len() as u32, &mut b)
        };
        assert_eq!(check("\\pi", "3.1415926535897932"), Some(true)); // truncated
        assert_eq!(check("\\pi", "3.1415926535897933"), Some(false));
        assert_eq!(check("\\sqrt2", "1.41421356237309504880"), Some(true));
        assert_eq!(check("\\sqrt2", "1.41421356237309504881"), Some(false));
        assert_eq!(check("\\sqrt2", "1.414213562373095048802"), Some(true)); // rounded
        assert_eq!(check("\\sqrt2", "1.414213562373095048803"), Some(false));
        assert_eq!(check("-\\sqrt2", "-1.414"), Some(true));
        assert_eq!(check("-\\sqrt3", "-1.732"), Some(true)); // rounded (1.73205...)
        assert_eq!(check("-\\sqrt3", "-1.733"), Some(false));
        assert_eq!(check("-\\sqrt2", "-1.415"), Some(false));
        assert_eq!(check("-\\sqrt2", "-1.413"), Some(false));
        // At a boundary the value has a finite expansion there and needs it exactly.
        assert_eq!(check("\\sin(\\frac{\\pi}{6})", "0.499"), Some(false));
        assert_eq!(check("\\sin(\\frac{\\pi}{6})", "0.500"), Some(true));
        assert_eq!(check("\\sqrt{-1}", "1.000"), None);
    }

    #[test]
    fn sees_what_f64_cannot() {
        assert_eq!(agree_str("e^{25}", "e^{25} + 3"), Some(false));
        assert_eq!(agree_str("e^{256}", "3 + e^{256}"), Some(false));
        assert_eq!(agree_str("\\pi", "\\frac{355}{113}"), Some(false));
        assert_eq!(
            agree_str("\\sqrt{2}+\\sqrt{3}", "\\sqrt{5+2\\sqrt{6}}"),
            Some(true)
        );
        assert_eq!(agree_str("\\tan^2 1 + 1", "\\sec^2 1"), Some(true));
        assert_eq!(agree_str("\\sqrt[3]{-8}", "-2"), Some(true));
        assert_eq!(agree_str("\\sqrt{-1}", "i"), None);
        // Past f64 (e^{2981}) and past 4096 bits, units are still seen.
        assert_eq!(agree_str("e^{e^{8}}", "1 + e^{e^{8}}"), Some(false));
        assert_eq!(agree_str("e^{3000}", "e^{1500} e^{1500}"), Some(true));
        // Too large to see units within the precision cap: undecided, not equal.
        assert_eq!(agree_str("e^{20000}", "1 + e^{20000}"), None);
        assert_eq!(agree_str("e^{20000}", "e^{10000} e^{10000}"), None);
        // Periodic functions of arguments past half the precision are not evaluated.
        assert_eq!(agree_str("\\sin(2^{200})", "\\sin(2^{200})"), None);
        assert_eq!(agree_str("\\sin(2^{20})", "\\sin(2^{20}) + 0"), Some(true));
    }
}
