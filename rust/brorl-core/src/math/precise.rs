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
                    acc = self.ok(acc.mul(&y, p, RM))?;
                }
                acc
            }
            Node::Neg(a) => self.eval(a)?.neg(),
            Node::Div(a, b) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                if y.is_zero() {
                    return None;
                }
                x.div(&y, p, RM)
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
            return Some(x.pow(&y, p, RM, self.cc));
        }
        // Zero or negative bases need an integer exponent for a real value.
        if y.int().cmp(&y) != Some(0) {
            return None;
        }
        if x.is_zero() {
            return if y.is_positive() { Some(x) } else { None };
        }
        let mag = x.abs().pow(&y, p, RM, self.cc);
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
fn is_odd(k: &BigFloat) -> Option<bool> {
    let half = k.div(&BigFloat::from_u64(2, 128), 128, RM);
    let e = k.exponent()?;
    if e > 60 {
        return None;
    }
    Some(!half.fract().is_zero())
}

/// Evaluates both sides at `p` bits; Some((difference exceeds the rounding scale, max exponent)).
fn differ_at(
    g: &Node,
    a: &Node,
    env: &HashMap<String, Val>,
    budget: &mut Budget,
    cc: &mut Consts,
    p: usize,
) -> Option<(bool, i64)> {
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
        return Some((false, max_exp));
    }
    let de = d.exponent()? as i64;
    // Rounding error is at most a few ulps of the largest intermediate value per operation.
    Some((de > max_exp - p as i64 + SLACK_BITS, max_exp))
}

/// Some(false) when the two expressions provably differ at this point at high precision,
/// Some(true) when they agree there, None when high precision cannot tell (not real-valued,
/// unsupported nodes, or budget).
pub fn agree(g: &Node, a: &Node, env: &HashMap<String, Val>, budget: &mut Budget) -> Option<bool> {
    CONSTS.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let cc = slot.as_mut()?;
        let (differ, max_exp) = differ_at(g, a, env, budget, cc, BASE_BITS)?;
        if differ {
            return Some(false);
        }
        // Huge intermediates (e^{256}) swamp a small difference at the base precision: look
        // again with enough bits to see units.
        if max_exp > 64 {
            let p = BASE_BITS + max_exp as usize;
            // Past the cap the units are below the rounding error (`1 + e^{2981}` rounds to
            // `e^{2981}`), so agreement there proves nothing.
            if p > MAX_BITS {
                return None;
            }
            let (differ, _) = differ_at(g, a, env, budget, cc, p)?;
            return Some(!differ);
        }
        Some(true)
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
