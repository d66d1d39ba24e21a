//! The expression tree that answers parse into, and the failure kinds shared by the stages.

use num_bigint::BigInt;
use num_rational::BigRational;

/// Why a stage gave up: the input is not something we can read, or a cap/budget was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    Unparseable,
    Budget,
}

impl From<super::budget::Exceeded> for Fail {
    fn from(_: super::budget::Exceeded) -> Self {
        Fail::Budget
    }
}

/// Comparison and membership operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

/// Named constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constant {
    Pi,
    E,
    I,
    Inf,
}

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
    Abs,
    Floor,
    Ceil,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "sec" => Func::Sec,
            "csc" => Func::Csc,
            "cot" => Func::Cot,
            "arcsin" => Func::Asin,
            "arccos" => Func::Acos,
            "arctan" => Func::Atan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            "ln" => Func::Ln,
            "exp" => Func::Exp,
            _ => return None,
        })
    }

    /// `\sin^{-1}` means arcsin.
    pub fn inverse(self) -> Option<Func> {
        Some(match self {
            Func::Sin => Func::Asin,
            Func::Cos => Func::Acos,
            Func::Tan => Func::Atan,
            _ => return None,
        })
    }
}

/// A numeric literal as written: its exact value plus what the precision rule needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub value: BigRational,
    /// Digits written after the decimal point (0 for integers and fractions).
    pub decimals: u32,
    /// Significant digits written (leading zeros excluded).
    pub significant: u32,
}

impl Literal {
    pub fn int(v: i64) -> Literal {
        Literal {
            value: BigRational::from_integer(BigInt::from(v)),
            decimals: 0,
            significant: 0,
        }
    }
}

/// An answer's expression tree. Sizes are bounded by the parser's node cap.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Num(Literal),
    Sym(String),
    Const(Constant),
    Add(Vec<Node>),
    Mul(Vec<Node>),
    Neg(Box<Node>),
    Div(Box<Node>, Box<Node>),
    Pow(Box<Node>, Box<Node>),
    Func(Func, Box<Node>),
    /// `Root(index, radicand)`.
    Root(Box<Node>, Box<Node>),
    /// `Log(base, argument)`; the parser gives `\log` without a base the base 10.
    Log(Box<Node>, Box<Node>),
    Binom(Box<Node>, Box<Node>),
    Factorial(Box<Node>),
    Percent(Box<Node>),
    /// `a ± b`: the two values a + b and a - b.
    PlusMinus(Box<Node>, Box<Node>),
    Text(String),
    /// A chain `n0 op0 n1 op1 n2 ...` (`ops.len() == items.len() - 1`).
    Rel(Vec<Node>, Vec<RelOp>),
    /// Comma-separated answers without brackets: order does not matter.
    List(Vec<Node>),
    Set(Vec<Node>),
    /// `(a, b, ...)`: ordered; a pair in round brackets may also be an open interval.
    Tuple(Vec<Node>),
    Interval {
        lo: Box<Node>,
        hi: Box<Node>,
        lo_closed: bool,
        hi_closed: bool,
    },
    Union(Vec<Node>),
    Matrix(Vec<Vec<Node>>),
    Ratio(Vec<Node>),
    /// `\sum_{var=lo}^{hi} body`.
    Sum(String, Box<Node>, Box<Node>, Box<Node>),
}

impl Node {
    pub fn is_relation(&self) -> bool {
        matches!(self, Node::Rel(..))
    }

    /// Whether the tree contains a `±` anywhere.
    pub fn has_plus_minus(&self) -> bool {
        let mut found = false;
        self.walk(&mut |n| found |= matches!(n, Node::PlusMinus(..)));
        found
    }

    /// Calls `f` on every node (pre-order).
    pub fn walk(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        match self {
            Node::Num(_) | Node::Sym(_) | Node::Const(_) | Node::Text(_) => {}
            Node::Add(v)
            | Node::Mul(v)
            | Node::List(v)
            | Node::Set(v)
            | Node::Tuple(v)
            | Node::Union(v)
            | Node::Ratio(v)
            | Node::Rel(v, _) => v.iter().for_each(|n| n.walk(f)),
            Node::Neg(a) | Node::Func(_, a) | Node::Factorial(a) | Node::Percent(a) => a.walk(f),
            Node::Div(a, b)
            | Node::Pow(a, b)
            | Node::Root(a, b)
            | Node::Log(a, b)
            | Node::Binom(a, b)
            | Node::PlusMinus(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Node::Interval { lo, hi, .. } => {
                lo.walk(f);
                hi.walk(f);
            }
            Node::Matrix(rows) => rows.iter().flatten().for_each(|n| n.walk(f)),
            Node::Sum(_, lo, hi, body) => {
                lo.walk(f);
                hi.walk(f);
                body.walk(f);
            }
        }
    }

    /// Free symbol names, sorted and deduplicated.
    pub fn symbols(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Sym(s) = n {
                out.push(s.clone());
            }
        });
        out.sort();
        out.dedup();
        out
    }
}
