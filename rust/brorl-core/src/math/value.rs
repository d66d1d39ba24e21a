//! Evaluating a scalar expression: exactly (big rationals) as long as every operation stays
//! rational and within the size caps, and as a complex `f64` from the first operation that
//! does not (irrational roots, π, trig, huge powers). Exact results make comparisons of
//! rational answers and rational-function identities exact; the complex fallback handles the
//! rest at bounded precision.

use std::collections::HashMap;

use num_bigint::BigInt;
use num_complex::Complex64;
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

use super::ast::{Constant, Func, Node};
use super::budget::{Budget, Exceeded, Limits};

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Exact(BigRational),
    Approx(Complex64),
}

/// Why an expression has no value at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalErr {
    /// Division by zero, a pole, overflow to infinity, or NaN: skip this point.
    Undefined,
    /// Not a scalar expression we can evaluate (text, a set, an unknown symbol).
    Unsupported,
    Budget,
}

impl From<Exceeded> for EvalErr {
    fn from(_: Exceeded) -> Self {
        EvalErr::Budget
    }
}

pub fn to_f64(r: &BigRational) -> f64 {
    // `ToPrimitive` on big rationals is exact-ish and handles huge parts without overflowing
    // to NaN (it scales before dividing).
    r.to_f64().unwrap_or(f64::NAN)
}

impl Val {
    pub fn approx(&self) -> Complex64 {
        match self {
            Val::Exact(r) => Complex64::new(to_f64(r), 0.0),
            Val::Approx(c) => *c,
        }
    }

    fn checked(c: Complex64) -> Result<Val, EvalErr> {
        if c.re.is_finite() && c.im.is_finite() {
            Ok(Val::Approx(c))
        } else {
            Err(EvalErr::Undefined)
        }
    }

    /// `checked` for a result that cannot be zero (a product of nonzero factors, a power of a
    /// nonzero base, `e^z`): a zero there is `f64` underflow, not a value. Read as 0 it made
    /// `10^{-10^{10}}` equal to 0 and to `2 \cdot 10^{-10^{10}}`; undefined, it is left to
    /// the high-precision pass, which does not accept what it cannot tell apart.
    fn checked_nonzero(c: Complex64) -> Result<Val, EvalErr> {
        if c.norm() == 0.0 {
            return Err(EvalErr::Undefined);
        }
        Val::checked(c)
    }

    pub fn is_zero(&self) -> bool {
        match self {
            Val::Exact(r) => r.is_zero(),
            Val::Approx(c) => c.norm() == 0.0,
        }
    }
}

/// Bits of a rational's numerator plus denominator: the size measure the caps use.
fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

pub struct Evaluator<'a> {
    pub env: &'a HashMap<String, Val>,
    pub limits: &'a Limits,
    pub budget: &'a mut Budget,
}

impl Evaluator<'_> {
    fn exact(&mut self, r: BigRational) -> Result<Val, EvalErr> {
        let b = bits(&r);
        // Big-rational work (a gcd per operation) grows with the square of the size: charge
        // for it, so many mid-sized operations exhaust the budget as quickly as few huge ones.
        let words = b / 64;
        self.budget.tick(1 + words + words * words / 32)?;
        if b > self.limits.max_bits {
            let c = Complex64::new(to_f64(&r), 0.0);
            return if r.is_zero() {
                Val::checked(c)
            } else {
                Val::checked_nonzero(c)
            };
        }
        Ok(Val::Exact(r))
    }

    pub fn eval(&mut self, n: &Node) -> Result<Val, EvalErr> {
        self.budget.tick(1)?;
        match n {
            Node::Num(l) => Ok(Val::Exact(l.value.clone())),
            Node::Sym(s) => self.env.get(s).cloned().ok_or(EvalErr::Unsupported),
            Node::Const(c) => match c {
                Constant::Pi => Ok(Val::Approx(Complex64::new(std::f64::consts::PI, 0.0))),
                Constant::E => Ok(Val::Approx(Complex64::new(std::f64::consts::E, 0.0))),
                Constant::I => Ok(Val::Approx(Complex64::new(0.0, 1.0))),
                Constant::Inf => Err(EvalErr::Unsupported),
            },
            Node::Add(v) => {
                let mut acc = Val::Exact(BigRational::zero());
                for t in v {
                    let x = self.eval(t)?;
                    acc = self.add(acc, x)?;
                }
                Ok(acc)
            }
            Node::Mul(v) => {
                let mut acc = Val::Exact(BigRational::from_integer(1.into()));
                for t in v {
                    let x = self.eval(t)?;
                    acc = self.mul(acc, x)?;
                }
                Ok(acc)
            }
            Node::Neg(a) => Ok(match self.eval(a)? {
                Val::Exact(r) => Val::Exact(-r),
                Val::Approx(c) => Val::Approx(-c),
            }),
            Node::Div(a, b) => {
                let x = self.eval(a)?;
                let y = self.eval(b)?;
                self.div(x, y)
            }
            Node::Percent(a) => {
                let x = self.eval(a)?;
                self.div(x, Val::Exact(BigRational::from_integer(100.into())))
            }
            Node::Pow(a, b) => {
                let x = self.eval(a)?;
                let y = self.eval(b)?;
                self.pow(x, y)
            }
            Node::Root(k, a) => {
                let k = self.eval(k)?;
                let x = self.eval(a)?;
                self.root(x, k)
            }
            Node::Func(f, a) => {
                let x = self.eval(a)?;
                self.func(*f, x)
            }
            Node::Log(b, a) => {
                let base = self.eval(b)?.approx();
                let x = self.eval(a)?.approx();
                Val::checked(x.ln() / base.ln())
            }
            Node::Factorial(a) => {
                let x = self.eval(a)?;
                let n = small_nonneg_int(&x).ok_or(EvalErr::Unsupported)?;
                if n > 3000 {
                    return Err(EvalErr::Budget);
                }
                let mut acc = BigInt::from(1u8);
                for k in 2..=n {
                    self.budget.tick(1 + acc.bits() / 64)?;
                    acc *= k;
                }
                self.exact(BigRational::from_integer(acc))
            }
            Node::Binom(a, b) => {
                let n = self.eval(a)?;
                let k = small_nonneg_int(&self.eval(b)?).ok_or(EvalErr::Unsupported)?;
                // n(n-1)...(n-k+1)/k! works for any n (a variable at a rational point too).
                let k = match small_nonneg_int(&n) {
                    Some(ni) if k > ni => return Ok(Val::Exact(BigRational::zero())),
                    Some(ni) => k.min(ni - k),
                    None => k,
                };
                if k > 10_000 {
                    return Err(EvalErr::Budget);
                }
                let mut acc = Val::Exact(BigRational::from_integer(1.into()));
                for j in 0..k {
                    let j = BigRational::from_integer(j.into());
                    let term = self.add(n.clone(), Val::Exact(-j.clone()))?;
                    let term =
                        self.div(term, Val::Exact(j + BigRational::from_integer(1.into())))?;
                    acc = self.mul(acc, term)?;
                }
                Ok(acc)
            }
            Node::Sum(var, lo, hi, body) => self.sum(var, lo, hi, body),
            _ => Err(EvalErr::Unsupported),
        }
    }

    /// A sum with integer bounds is added up. A sum with symbolic bounds cannot be; it is evaluated as a fixed, generic
    /// mix of its bounds and of its body at fixed values of the index. Two sums get the same
    /// value at every point exactly when their bounds agree and their bodies agree as
    /// functions of the index (so `F_k F_{n-k-1}` and `F_{n-k-1} F_k` do), and a sum never
    /// agrees with an expression without one, which cannot reproduce the mix.
    fn sum(&mut self, var: &str, lo: &Node, hi: &Node, body: &Node) -> Result<Val, EvalErr> {
        let lo = self.eval(lo)?;
        let hi = self.eval(hi)?;
        let at = |k: (i64, i64), ev: &mut Self| -> Result<Val, EvalErr> {
            let mut env = ev.env.clone();
            env.insert(
                var.to_string(),
                Val::Exact(BigRational::new(k.0.into(), k.1.into())),
            );
            Evaluator {
                env: &env,
                limits: ev.limits,
                budget: ev.budget,
            }
            .eval(body)
        };
        // Integer bounds a short way apart: add the terms up.
        if let (Some(a), Some(b)) = (small_int(&lo), small_int(&hi)) {
            if b < a {
                return Ok(Val::Exact(BigRational::zero()));
            }
            if b - a <= 1_000 {
                let mut acc = Val::Exact(BigRational::zero());
                for k in a..=b {
                    let t = at((k, 1), self)?;
                    acc = self.add(acc, t)?;
                }
                return Ok(acc);
            }
        }
        let b1 = at((7, 3), self)?;
        let b2 = at((-5, 11), self)?;
        let q = |n: i64, d: i64| Val::Exact(BigRational::new(n.into(), d.into()));
        let mut acc = self.mul(b1.clone(), q(1_000_003, 977))?;
        let t = self.mul(b2.clone(), q(-2_000_029, 1_361))?;
        acc = self.add(acc, t)?;
        let t = self.mul(b1, b2)?;
        let t = self.mul(t, q(3_001, 7_919))?;
        acc = self.add(acc, t)?;
        let t = self.mul(lo.clone(), q(40_009, 113))?;
        acc = self.add(acc, t)?;
        let t = self.mul(hi.clone(), q(-70_001, 331))?;
        acc = self.add(acc, t)?;
        let t = self.mul(lo, hi)?;
        let t = self.mul(t, q(9_007, 5_003))?;
        self.add(acc, t)
    }

    fn add(&mut self, a: Val, b: Val) -> Result<Val, EvalErr> {
        match (a, b) {
            (Val::Exact(x), Val::Exact(y)) => self.exact(x + y),
            (a, b) => Val::checked(a.approx() + b.approx()),
        }
    }

    fn mul(&mut self, a: Val, b: Val) -> Result<Val, EvalErr> {
        match (a, b) {
            (Val::Exact(x), Val::Exact(y)) => self.exact(x * y),
            (a, b) if a.is_zero() || b.is_zero() => Val::checked(a.approx() * b.approx()),
            (a, b) => Val::checked_nonzero(a.approx() * b.approx()),
        }
    }

    fn div(&mut self, a: Val, b: Val) -> Result<Val, EvalErr> {
        if b.is_zero() {
            return Err(EvalErr::Undefined);
        }
        match (a, b) {
            (Val::Exact(x), Val::Exact(y)) => self.exact(x / y),
            (a, b) if a.is_zero() => Val::checked(a.approx() / b.approx()),
            (a, b) => Val::checked_nonzero(a.approx() / b.approx()),
        }
    }

    fn pow(&mut self, a: Val, b: Val) -> Result<Val, EvalErr> {
        if let (Val::Exact(x), Val::Exact(y)) = (&a, &b) {
            if let Some(v) = self.exact_pow(x, y)? {
                return Ok(v);
            }
        }
        let (x, y) = (a.approx(), b.approx());
        if x.norm() == 0.0 {
            return if y.re > 0.0 {
                Ok(Val::Approx(Complex64::new(0.0, 0.0)))
            } else {
                Err(EvalErr::Undefined)
            };
        }
        // A real base to a real power stays real where the real answer exists
        // (`(-8)^{1/3}` is read as -2, the way answers mean it). The base is not zero here, so
        // neither is the power.
        if x.im == 0.0 && y.im == 0.0 {
            if x.re > 0.0 || y.re.fract() == 0.0 {
                return Val::checked_nonzero(Complex64::new(x.re.powf(y.re), 0.0));
            }
            // A negative base to an exact p/q with odd q has a real value, the one `\sqrt[q]{}`
            // gives (`root` below): `(x^2-2)^{1/3}` must equal `\sqrt[3]{x^2-2}` where x^2 < 2,
            // not be the principal complex root there.
            if let Val::Exact(e) = &b {
                if e.denom().is_odd() {
                    let mag = (-x.re).powf(y.re);
                    let sign = if e.numer().is_odd() { -1.0 } else { 1.0 };
                    return Val::checked_nonzero(Complex64::new(sign * mag, 0.0));
                }
            }
        }
        Val::checked_nonzero(x.powc(y))
    }

    /// `x^y` exactly when y is an integer, or a fraction p/q whose q-th root is exact.
    fn exact_pow(&mut self, x: &BigRational, y: &BigRational) -> Result<Option<Val>, EvalErr> {
        let (Some(p), Some(q)) = (y.numer().to_i64(), y.denom().to_u32()) else {
            return Ok(None);
        };
        if q > 64 || p.unsigned_abs() > self.limits.max_bits {
            return Ok(None);
        }
        let base = if q == 1 {
            x.clone()
        } else {
            match exact_root(x, q) {
                Some(r) => r,
                None => return Ok(None),
            }
        };
        let size = bits(&base).saturating_mul(p.unsigned_abs());
        if size > self.limits.max_bits {
            return Ok(None);
        }
        if base.is_zero() && p < 0 {
            return Err(EvalErr::Undefined);
        }
        self.budget.tick(1 + size / 64)?;
        // Powers of a reduced fraction stay reduced: raise both parts, no gcd needed.
        let e = p.unsigned_abs() as usize;
        let (n, d) = (base.numer().pow(e as u32), base.denom().pow(e as u32));
        let r = if p < 0 {
            BigRational::new(d, n)
        } else {
            BigRational::new_raw(n, d)
        };
        Ok(Some(self.exact(r)?))
    }

    fn root(&mut self, x: Val, k: Val) -> Result<Val, EvalErr> {
        if let (Val::Exact(r), Some(n)) = (&x, small_nonneg_int(&k)) {
            if (2..=64).contains(&n) {
                if let Some(v) = exact_root(r, n as u32) {
                    return self.exact(v);
                }
                let xf = to_f64(r);
                // Odd roots of negative reals are real.
                if xf < 0.0 && n % 2 == 1 {
                    return Val::checked(Complex64::new(-(-xf).powf(1.0 / n as f64), 0.0));
                }
            }
        }
        if k.is_zero() {
            return Err(EvalErr::Undefined);
        }
        let inv = self.div(Val::Exact(BigRational::from_integer(1.into())), k)?;
        self.pow(x, inv)
    }

    fn func(&mut self, f: Func, x: Val) -> Result<Val, EvalErr> {
        if let Val::Exact(r) = &x {
            match f {
                Func::Abs => return Ok(Val::Exact(r.abs())),
                Func::Floor => return Ok(Val::Exact(r.floor())),
                Func::Ceil => return Ok(Val::Exact(r.ceil())),
                Func::Sin | Func::Tan | Func::Asin | Func::Atan | Func::Sinh | Func::Tanh
                    if r.is_zero() =>
                {
                    return Ok(Val::Exact(BigRational::zero()))
                }
                Func::Cos | Func::Cosh | Func::Exp if r.is_zero() => {
                    return Ok(Val::Exact(BigRational::from_integer(1.into())))
                }
                Func::Ln if *r == BigRational::from_integer(1.into()) => {
                    return Ok(Val::Exact(BigRational::zero()))
                }
                _ => {}
            }
        }
        let z = x.approx();
        let one = Complex64::new(1.0, 0.0);
        let v = match f {
            Func::Sin => z.sin(),
            Func::Cos => z.cos(),
            Func::Tan => z.tan(),
            Func::Sec => one / z.cos(),
            Func::Csc => one / z.sin(),
            Func::Cot => one / z.tan(),
            Func::Asin => z.asin(),
            Func::Acos => z.acos(),
            Func::Atan => z.atan(),
            Func::Sinh => z.sinh(),
            Func::Cosh => z.cosh(),
            Func::Tanh => z.tanh(),
            Func::Ln => {
                if z.norm() == 0.0 {
                    return Err(EvalErr::Undefined);
                }
                z.ln()
            }
            // e^z is never zero: a zero is underflow (`e^{-1000}`).
            Func::Exp => return Val::checked_nonzero(z.exp()),
            Func::Abs => Complex64::new(z.norm(), 0.0),
            Func::Floor | Func::Ceil => {
                if z.im != 0.0 {
                    return Err(EvalErr::Undefined);
                }
                let r = if f == Func::Floor {
                    z.re.floor()
                } else {
                    z.re.ceil()
                };
                Complex64::new(r, 0.0)
            }
        };
        Val::checked(v)
    }
}

fn small_nonneg_int(v: &Val) -> Option<u64> {
    match v {
        Val::Exact(r) if r.is_integer() && !r.is_negative() => r.numer().to_u64(),
        _ => None,
    }
}

/// The exact q-th root of a rational, if it is rational (real roots only: odd q for negatives).
pub fn exact_root(x: &BigRational, q: u32) -> Option<BigRational> {
    if q == 1 {
        return Some(x.clone());
    }
    let neg = x.is_negative();
    if neg && q % 2 == 0 {
        return None;
    }
    let n = x.numer().abs();
    let d = x.denom().clone();
    let rn = n.nth_root(q);
    let rd = d.nth_root(q);
    if num_traits::pow(rn.clone(), q as usize) != n || num_traits::pow(rd.clone(), q as usize) != d
    {
        return None;
    }
    let r = BigRational::new(rn, rd);
    Some(if neg { -r } else { r })
}

/// An exact integer value that fits an `i64` comfortably.
fn small_int(v: &Val) -> Option<i64> {
    match v {
        Val::Exact(r) if r.is_integer() => {
            let n = r.to_integer();
            i64::try_from(&n).ok().filter(|x| x.abs() < 1 << 40)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::lexer::LexMode;
    use crate::math::parser::parse;

    fn ev(s: &str) -> Result<Val, EvalErr> {
        let limits = Limits::default();
        let mut b = Budget::new(1_000_000);
        let n = parse(s, LexMode::STANDARD, &limits, &mut b).unwrap();
        let env = HashMap::new();
        Evaluator {
            env: &env,
            limits: &limits,
            budget: &mut b,
        }
        .eval(&n)
    }

    fn q(n: i64, d: i64) -> Val {
        Val::Exact(BigRational::new(n.into(), d.into()))
    }

    #[test]
    fn exact_arithmetic() {
        assert_eq!(ev("\\frac{1}{3}+\\frac{1}{6}").unwrap(), q(1, 2));
        assert_eq!(ev("\\sqrt{\\frac{9}{4}}").unwrap(), q(3, 2));
        assert_eq!(ev("8^{2/3}").unwrap(), q(4, 1));
        assert_eq!(ev("\\sqrt[3]{-8}").unwrap(), q(-2, 1));
        assert_eq!(ev("\\binom{5}{2}").unwrap(), q(10, 1));
        assert_eq!(ev("5!").unwrap(), q(120, 1));
        assert_eq!(ev("2^{-2}").unwrap(), q(1, 4));
    }

    #[test]
    fn approximate_fallback() {
        let v = ev("\\sqrt{2}").unwrap().approx();
        assert!((v.re - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(ev("\\frac{1}{0}"), Err(EvalErr::Undefined));
        // An odd root of a negative that is not exact stays real, as `\sqrt[3]{}` does.
        let v = ev("(-2)^{2/3}").unwrap().approx();
        assert!(v.im == 0.0 && (v.re - 4f64.cbrt()).abs() < 1e-15, "{v}");
        let v = ev("(-2)^{1/3}").unwrap().approx();
        assert!(v.im == 0.0 && (v.re + 2f64.cbrt()).abs() < 1e-15, "{v}");
        assert_eq!(ev("(-2)^{1/3}").unwrap(), ev("\\sqrt[3]{-2}").unwrap());
        // A power tower leaves the exact range and overflows: undefined, quickly.
        assert_eq!(ev("5^{5^{5^{5^5}}}"), Err(EvalErr::Undefined));
    }

    #[test]
    fn underflow_is_no_zero() {
        // A nonzero power, product or exponential that f64 rounds to 0 has no value here.
        for s in [
            "10^{-10^{10}}",
            "2^{-2^{64}}",
            "e^{-1000}",
            "\\pi^{-400} \\cdot \\pi^{-400}",
        ] {
            assert_eq!(ev(s), Err(EvalErr::Undefined), "{s}");
        }
        // True zeros stay zero.
        assert!(ev("0 \\cdot \\pi").unwrap().is_zero());
        assert!(ev("0^{\\pi}").unwrap().is_zero());
    }
}
