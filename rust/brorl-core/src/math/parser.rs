//! Tokens into an expression tree: a recursive-descent parser whose recursion depth is capped
//! (`Limits::max_depth`), so 10,000 nested braces fail fast instead of overflowing the stack.
//!
//! Precedence, loosest first: list (`,`) < relation (`=`, `<`, `\in`; chains) and ratio (`:`)
//! < union (`\cup`) < sum (`+ - \pm`) < product (`\cdot`, `/`, juxtaposition) < sign < power
//! < postfix (`!`, `%`) < atom.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use super::ast::{Constant, Fail, Func, Literal, Node};
use super::budget::{Budget, Limits};
use super::lexer::{lex, LexMode, NumLit, Tok};

/// Parses one answer string. Fails on anything outside the supported grammar.
pub fn parse(s: &str, mode: LexMode, limits: &Limits, budget: &mut Budget) -> Result<Node, Fail> {
    let toks = lex(s, mode, limits, budget)?;
    if toks.is_empty() {
        return Err(Fail::Unparseable);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        abs_depth: 0,
        limits,
        budget,
    };
    let items = p.items()?;
    if p.pos != p.toks.len() || items.is_empty() {
        return Err(Fail::Unparseable);
    }
    Ok(list_or_single(items))
}

fn list_or_single(mut items: Vec<Node>) -> Node {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Node::List(items)
    }
}

/// The exact value of a literal; decimal exponents are capped like digit counts.
pub fn literal(n: &NumLit, limits: &Limits) -> Result<Literal, Fail> {
    if n.exp.unsigned_abs() > limits.max_digits as u64 {
        return Err(Fail::Budget);
    }
    let digits = format!("{}{}", n.int, n.frac);
    let mantissa: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().map_err(|_| Fail::Unparseable)?
    };
    let shift = n.exp - n.frac.len() as i64;
    let ten = BigInt::from(10u8);
    let value = if shift >= 0 {
        BigRational::from_integer(mantissa * num_traits::pow(ten.clone(), shift as usize))
    } else {
        BigRational::new(mantissa, num_traits::pow(ten.clone(), (-shift) as usize))
    };
    if !n.repeat.is_empty() {
        // 0.1\overline{6} = 0.1 + 6 / (10^1 · (10^1 − 1)): exact, so no precision rule.
        let rep: BigInt = n.repeat.parse().map_err(|_| Fail::Unparseable)?;
        let scale = num_traits::pow(ten.clone(), n.frac.len())
            * (num_traits::pow(ten, n.repeat.len()) - BigInt::one());
        return Ok(Literal {
            value: value + BigRational::new(rep, scale),
            decimals: 0,
            significant: 0,
        });
    }
    let significant = digits.trim_start_matches('0').len() as u32;
    Ok(Literal {
        value,
        decimals: (-shift).max(0) as u32,
        significant,
    })
}

fn is_int_lit(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Num(n))
            if n.frac.is_empty() && n.exp == 0 && n.repeat.is_empty() && !n.int.is_empty() =>
        {
            Some(n.int.as_str())
        }
        _ => None,
    }
}

fn big(s: &str) -> BigInt {
    s.parse().unwrap_or_else(|_| BigInt::zero())
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    abs_depth: usize,
    limits: &'a Limits,
    budget: &'a mut Budget,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok) -> Result<(), Fail> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(Fail::Unparseable)
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        self.budget.tick(1)?;
        if self.depth > self.limits.max_depth {
            return Err(Fail::Budget);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn at_closer(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(
                Tok::RParen
                    | Tok::RBrack
                    | Tok::RBrace
                    | Tok::RSet
                    | Tok::End(_)
                    | Tok::RowSep
                    | Tok::Amp
                    | Tok::RFloor
                    | Tok::RCeil
            )
        )
    }

    /// Comma-separated items up to a closing token (which is not consumed).
    fn items(&mut self) -> Result<Vec<Node>, Fail> {
        let mut out = Vec::new();
        loop {
            while self.eat(&Tok::Comma) {}
            if self.at_closer() {
                break;
            }
            out.push(self.relation()?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Ok(out)
    }

    fn relation(&mut self) -> Result<Node, Fail> {
        let first = self.ratio()?;
        let mut items = vec![first];
        let mut ops = Vec::new();
        while let Some(Tok::Rel(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            ops.push(op);
            items.push(self.ratio()?);
        }
        if ops.is_empty() {
            Ok(items.pop().expect("one item"))
        } else {
            Ok(Node::Rel(items, ops))
        }
    }

    /// `a : b : c` (a ratio, also on either side of a relation: `V_1 : V_2 = 11 : 21`).
    fn ratio(&mut self) -> Result<Node, Fail> {
        let first = self.union()?;
        if self.peek() != Some(&Tok::Colon) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Colon) {
            parts.push(self.union()?);
        }
        Ok(Node::Ratio(parts))
    }

    fn union(&mut self) -> Result<Node, Fail> {
        let first = self.additive()?;
        if self.peek() == Some(&Tok::Cap) {
            return Err(Fail::Unparseable);
        }
        if self.peek() != Some(&Tok::Cup) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Cup) {
            parts.push(self.additive()?);
        }
        Ok(Node::Union(parts))
    }

    fn additive(&mut self) -> Result<Node, Fail> {
        let mut terms = vec![self.term()?];
        loop {
            self.budget.tick(1)?;
            match self.peek() {
                Some(Tok::Plus) => {
                    self.pos += 1;
                    terms.push(self.term()?);
                }
                Some(Tok::Minus) => {
                    self.pos += 1;
                    terms.push(Node::Neg(Box::new(self.term()?)));
                }
                Some(Tok::Pm | Tok::Mp) => {
                    self.pos += 1;
                    let rhs = self.term()?;
                    let lhs = sum(std::mem::take(&mut terms));
                    terms.push(Node::PlusMinus(Box::new(lhs), Box::new(rhs)));
                }
                _ => break,
            }
        }
        Ok(sum(terms))
    }

    fn starts_atom(&self, t: Option<&Tok>) -> bool {
        match t {
            Some(
                Tok::Num(_)
                | Tok::Ident(_)
                | Tok::Cmd(_)
                | Tok::LParen
                | Tok::LBrace
                | Tok::LFloor
                | Tok::LCeil
                | Tok::Begin(_),
            ) => true,
            Some(Tok::Bar) => self.abs_depth == 0,
            _ => false,
        }
    }

    fn term(&mut self) -> Result<Node, Fail> {
        let mut acc = self.unary()?;
        // Leading words annotate what follows (`\text{area } 5`): keep the quantity.
        while matches!(&acc, Node::Text(t) if !changes_meaning(t))
            && (self.starts_atom(self.peek())
                || matches!(self.peek(), Some(Tok::Minus | Tok::Plus)))
        {
            acc = self.unary()?;
        }
        // After a dropped annotation a juxtaposed quantity is not a factor: `3 \text{ apples and }
        // 4` is two answers, not 12.
        let mut annotated = false;
        loop {
            self.budget.tick(1)?;
            match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    acc = mul(acc, rhs);
                }
                Some(Tok::Slash) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    acc = Node::Div(Box::new(acc), Box::new(rhs));
                }
                // A word after a quantity annotates it (`10 \text{ apples}`).
                Some(Tok::Text(t)) if !matches!(acc, Node::Text(_)) && !changes_meaning(t) => {
                    self.pos += 1;
                    annotated = true;
                }
                t if self.starts_atom(t) && !annotated => {
                    let rhs = self.power()?;
                    acc = mul(acc, rhs);
                }
                _ => break,
            }
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<Node, Fail> {
        self.enter()?;
        let r = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                self.unary().map(|n| Node::Neg(Box::new(n)))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()
            }
            Some(Tok::Pm | Tok::Mp) => {
                self.pos += 1;
                self.unary()
                    .map(|n| Node::PlusMinus(Box::new(Node::Num(Literal::int(0))), Box::new(n)))
            }
            _ => self.power(),
        };
        self.leave();
        r
    }

    fn power(&mut self) -> Result<Node, Fail> {
        let base = self.postfix()?;
        if self.eat(&Tok::Caret) {
            let e = self.exponent()?;
            let mut node = Node::Pow(Box::new(base), Box::new(e));
            while self.eat(&Tok::Bang) {
                node = Node::Factorial(Box::new(node));
            }
            return Ok(node);
        }
        Ok(base)
    }

    /// The exponent after `^`: a braced group, a signed atom, or a whole number (`2^10` is
    /// 1024 in plain-text answers). Right-associative.
    fn exponent(&mut self) -> Result<Node, Fail> {
        self.enter()?;
        let r = (|| {
            let b = match self.peek() {
                Some(Tok::Minus) => {
                    self.pos += 1;
                    Node::Neg(Box::new(self.exponent()?))
                }
                Some(Tok::Plus) => {
                    self.pos += 1;
                    self.exponent()?
                }
                Some(Tok::LBrace) => self.arg()?,
                _ => self.atom()?,
            };
            if self.eat(&Tok::Caret) {
                return Ok(Node::Pow(Box::new(b), Box::new(self.exponent()?)));
            }
            Ok(b)
        })();
        self.leave();
        r
    }

    fn postfix(&mut self) -> Result<Node, Fail> {
        let mut a = self.atom()?;
        loop {
            match self.peek() {
                Some(Tok::Bang) => {
                    self.pos += 1;
                    a = Node::Factorial(Box::new(a));
                }
                Some(Tok::Percent) => {
                    self.pos += 1;
                    a = Node::Percent(Box::new(a));
                }
                _ => return Ok(a),
            }
        }
    }

    /// A LaTeX macro argument: `{...}`, one digit of a number (`\frac12`), or one atom.
    fn arg(&mut self) -> Result<Node, Fail> {
        self.enter()?;
        let r = (|| match self.peek() {
            Some(Tok::LBrace) => {
                self.pos += 1;
                let items = self.items()?;
                self.expect(&Tok::RBrace)?;
                if items.is_empty() {
                    return Err(Fail::Unparseable);
                }
                Ok(list_or_single(items))
            }
            Some(Tok::Num(n))
                if n.frac.is_empty() && n.exp == 0 && n.repeat.is_empty() && n.int.len() > 1 =>
            {
                let digit = n.int[..1].to_string();
                let rest = n.int[1..].to_string();
                self.toks[self.pos] = Tok::Num(NumLit {
                    int: rest,
                    frac: String::new(),
                    exp: 0,
                    repeat: String::new(),
                });
                Ok(Node::Num(Literal {
                    value: BigRational::from_integer(big(&digit)),
                    decimals: 0,
                    significant: 1,
                }))
            }
            _ => self.atom(),
        })();
        self.leave();
        r
    }

    fn atom(&mut self) -> Result<Node, Fail> {
        self.enter()?;
        let r = self.atom_inner();
        self.leave();
        r
    }

    fn atom_inner(&mut self) -> Result<Node, Fail> {
        let Some(tok) = self.peek().cloned() else {
            return Err(Fail::Unparseable);
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => self.number(n),
            Tok::Ident(name) => self.identifier(name),
            Tok::Cmd(name) => self.command(&name),
            Tok::LParen | Tok::LBrack => self.bracket(tok == Tok::LBrack),
            Tok::LBrace => {
                let items = self.items()?;
                self.expect(&Tok::RBrace)?;
                // Plain braces group (`{1,3}` prints as "1, 3"): a list, as without them.
                match items.len() {
                    0 => Err(Fail::Unparseable),
                    1 => Ok(list_or_single(items)),
                    _ => Ok(Node::List(items)),
                }
            }
            Tok::LSet => {
                let items = self.items()?;
                self.expect(&Tok::RSet)?;
                Ok(Node::Set(items))
            }
            Tok::Bar => {
                self.abs_depth += 1;
                let inner = self.additive();
                self.abs_depth -= 1;
                let inner = inner?;
                self.expect(&Tok::Bar)?;
                Ok(Node::Func(Func::Abs, Box::new(inner)))
            }
            Tok::LFloor | Tok::LCeil => {
                let inner = self.additive()?;
                let (close, f) = if tok == Tok::LFloor {
                    (Tok::RFloor, Func::Floor)
                } else {
                    (Tok::RCeil, Func::Ceil)
                };
                self.expect(&close)?;
                Ok(Node::Func(f, Box::new(inner)))
            }
            Tok::Begin(env) => self.matrix(&env),
            Tok::Text(t) => Ok(Node::Text(t)),
            Tok::EmptySet => Ok(Node::Set(Vec::new())),
            _ => Err(Fail::Unparseable),
        }
    }

    fn number(&mut self, n: NumLit) -> Result<Node, Fail> {
        let lit = literal(&n, self.limits)?;
        let is_int = n.frac.is_empty() && n.exp == 0 && n.repeat.is_empty() && !n.int.is_empty();
        if !is_int {
            return Ok(Node::Num(lit));
        }
        // `204_5`: a numeral in base 5.
        if self.peek() == Some(&Tok::Underscore) {
            self.pos += 1;
            let base = match self.peek().cloned() {
                Some(Tok::Num(b)) => {
                    self.pos += 1;
                    b
                }
                Some(Tok::LBrace) => {
                    self.pos += 1;
                    let b = match self.peek().cloned() {
                        Some(Tok::Num(b)) => b,
                        _ => return Err(Fail::Unparseable),
                    };
                    self.pos += 1;
                    self.expect(&Tok::RBrace)?;
                    b
                }
                _ => return Err(Fail::Unparseable),
            };
            let base: u32 = base.int.parse().map_err(|_| Fail::Unparseable)?;
            if !(2..=36).contains(&base)
                || !n
                    .int
                    .chars()
                    .all(|c| c.to_digit(10).is_some_and(|d| d < base))
            {
                return Err(Fail::Unparseable);
            }
            let v = BigInt::parse_bytes(n.int.as_bytes(), base).ok_or(Fail::Unparseable)?;
            return Ok(Node::Num(Literal {
                value: BigRational::from_integer(v),
                decimals: 0,
                significant: 0,
            }));
        }
        // Mixed numbers: `4 4/9`, `4\frac{4}{9}`, `4\frac49`.
        let whole = BigRational::from_integer(big(&n.int));
        let mixed = if let (Some(a), Some(Tok::Slash), Some(b)) = (
            is_int_lit(self.peek()),
            self.peek_at(1),
            is_int_lit(self.peek_at(2)),
        ) {
            Some((big(a), big(b), 3))
        } else if self.peek() == Some(&Tok::Cmd("frac".into())) {
            match (self.peek_at(1), self.peek_at(2), self.peek_at(3)) {
                (Some(Tok::LBrace), a, Some(Tok::RBrace)) if is_int_lit(a).is_some() => {
                    match (
                        self.peek_at(4),
                        is_int_lit(self.peek_at(5)),
                        self.peek_at(6),
                    ) {
                        (Some(Tok::LBrace), Some(b), Some(Tok::RBrace)) => {
                            Some((big(is_int_lit(a).unwrap_or("0")), big(b), 7))
                        }
                        _ => None,
                    }
                }
                (a, _, _) => match is_int_lit(a) {
                    Some(ab) if ab.len() == 2 => Some((big(&ab[..1]), big(&ab[1..]), 2)),
                    _ => None,
                },
            }
        } else {
            None
        };
        if let Some((num, den, used)) = mixed {
            if den.is_zero() {
                return Err(Fail::Unparseable);
            }
            self.pos += used;
            return Ok(Node::Num(Literal {
                value: whole + BigRational::new(num, den),
                decimals: 0,
                significant: 0,
            }));
        }
        Ok(Node::Num(lit))
    }

    fn identifier(&mut self, name: String) -> Result<Node, Fail> {
        if self.peek() == Some(&Tok::Underscore) {
            self.pos += 1;
            let sub = self.subscript_text()?;
            return Ok(Node::Sym(format!("{name}_{sub}")));
        }
        Ok(match name.as_str() {
            "e" => Node::Const(Constant::E),
            "i" => Node::Const(Constant::I),
            _ => Node::Sym(name),
        })
    }

    /// A subscript as a name part: `x_1`, `a_{n+1}`.
    fn subscript_text(&mut self) -> Result<String, Fail> {
        let one = |t: &Tok| -> Option<String> {
            match t {
                Tok::Num(n) => Some(format!("{}.{}e{}", n.int, n.frac, n.exp)),
                Tok::Ident(s) | Tok::Cmd(s) | Tok::Text(s) => Some(s.clone()),
                Tok::Plus => Some("+".into()),
                Tok::Minus => Some("-".into()),
                Tok::Comma => Some(",".into()),
                _ => None,
            }
        };
        match self.peek().cloned() {
            Some(Tok::LBrace) => {
                self.pos += 1;
                let mut parts = Vec::new();
                while self.peek() != Some(&Tok::RBrace) {
                    let t = self.peek().ok_or(Fail::Unparseable)?;
                    parts.push(one(t).ok_or(Fail::Unparseable)?);
                    self.pos += 1;
                }
                self.pos += 1;
                // `x_{1}` names what `x_1` does; longer subscripts keep their token boundaries.
                Ok(if parts.len() == 1 {
                    parts.remove(0)
                } else {
                    parts.iter().map(|p| format!("{p} ")).collect()
                })
            }
            Some(t) => {
                self.pos += 1;
                one(&t).ok_or(Fail::Unparseable)
            }
            None => Err(Fail::Unparseable),
        }
    }

    fn command(&mut self, name: &str) -> Result<Node, Fail> {
        match name {
            "pi" => Ok(Node::Const(Constant::Pi)),
            "infty" => Ok(Node::Const(Constant::Inf)),
            "reals" => Ok(Node::Interval {
                lo: Box::new(Node::Neg(Box::new(Node::Const(Constant::Inf)))),
                hi: Box::new(Node::Const(Constant::Inf)),
                lo_closed: false,
                hi_closed: false,
            }),
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Ok(Node::Div(Box::new(a), Box::new(b)))
            }
            "sqrt" => {
                let index = if self.eat(&Tok::LBrack) {
                    let i = self.additive()?;
                    self.expect(&Tok::RBrack)?;
                    i
                } else {
                    Node::Num(Literal::int(2))
                };
                let x = self.arg()?;
                Ok(Node::Root(Box::new(index), Box::new(x)))
            }
            "binom" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Ok(Node::Binom(Box::new(a), Box::new(b)))
            }
            "sum" => {
                // `\sum_{k=0}^{n-1} body`: the body is the product term that follows.
                self.expect(&Tok::Underscore)?;
                let Node::Rel(items, ops) = self.arg()? else {
                    return Err(Fail::Unparseable);
                };
                let (Some(Node::Sym(var)), [super::ast::RelOp::Eq]) =
                    (items.first(), ops.as_slice())
                else {
                    return Err(Fail::Unparseable);
                };
                let (var, lo) = (var.clone(), items[1].clone());
                self.expect(&Tok::Caret)?;
                let hi = self.arg()?;
                let body = self.term()?;
                Ok(Node::Sum(var, Box::new(lo), Box::new(hi), Box::new(body)))
            }
            "log" | "lg" => {
                let base = if self.eat(&Tok::Underscore) {
                    self.arg()?
                } else {
                    Node::Num(Literal::int(10))
                };
                let power = self.function_power()?;
                let x = self.function_argument()?;
                let node = Node::Log(Box::new(base), Box::new(x));
                Ok(apply_power(node, power))
            }
            _ => {
                let mut f = Func::from_name(name).ok_or(Fail::Unparseable)?;
                let mut power = self.function_power()?;
                if let Some(Node::Neg(inner)) = &power {
                    if matches!(&**inner, Node::Num(l) if l.value.is_one()) {
                        f = f.inverse().ok_or(Fail::Unparseable)?;
                        power = None;
                    }
                }
                let x = self.function_argument()?;
                Ok(apply_power(Node::Func(f, Box::new(x)), power))
            }
        }
    }

    /// `\sin^2 x`: the power written between a function name and its argument.
    fn function_power(&mut self) -> Result<Option<Node>, Fail> {
        if self.eat(&Tok::Caret) {
            Ok(Some(self.exponent()?))
        } else {
            Ok(None)
        }
    }

    /// `\sin(x)`, `\sin{x}`, or `\sin 2x` (a product of powers up to the next function).
    fn function_argument(&mut self) -> Result<Node, Fail> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.bracket(false)
            }
            Some(Tok::LBrace) => self.arg(),
            _ => {
                let mut acc = self.power()?;
                loop {
                    let next = self.peek();
                    let is_func = matches!(next, Some(Tok::Cmd(c)) if c != "pi" && c != "infty" && c != "frac" && c != "sqrt");
                    if is_func || !self.starts_atom(next) || next == Some(&Tok::LParen) {
                        break;
                    }
                    let rhs = self.power()?;
                    acc = mul(acc, rhs);
                }
                Ok(acc)
            }
        }
    }

    /// After `(` or `[`: a group, a tuple, or an interval, by the brackets and item count.
    fn bracket(&mut self, open_square: bool) -> Result<Node, Fail> {
        let saved = self.abs_depth;
        self.abs_depth = 0;
        let items = self.items();
        self.abs_depth = saved;
        let mut items = items?;
        let close_square = match self.peek() {
            Some(Tok::RParen) => false,
            Some(Tok::RBrack) => true,
            _ => return Err(Fail::Unparseable),
        };
        self.pos += 1;
        match items.len() {
            0 => Err(Fail::Unparseable),
            1 if open_square == close_square => Ok(items.pop().expect("one item")),
            1 => Err(Fail::Unparseable),
            // A pair with an infinite end is an interval even in round brackets.
            2 if open_square || close_square || items.iter().any(is_infinite) => {
                let hi = items.pop().expect("two items");
                let lo = items.pop().expect("two items");
                Ok(Node::Interval {
                    lo: Box::new(lo),
                    hi: Box::new(hi),
                    lo_closed: open_square,
                    hi_closed: close_square,
                })
            }
            _ => Ok(Node::Tuple(items)),
        }
    }

    fn matrix(&mut self, env: &str) -> Result<Node, Fail> {
        if !matches!(
            env,
            "pmatrix" | "bmatrix" | "Bmatrix" | "matrix" | "smallmatrix" | "array"
        ) {
            return Err(Fail::Unparseable);
        }
        let mut rows: Vec<Vec<Node>> = vec![Vec::new()];
        loop {
            self.budget.tick(1)?;
            match self.peek() {
                Some(Tok::End(e)) if e == env => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::RowSep) => {
                    self.pos += 1;
                    rows.push(Vec::new());
                }
                Some(Tok::Amp) => self.pos += 1,
                None | Some(Tok::End(_)) => return Err(Fail::Unparseable),
                _ => {
                    let cell = self.relation()?;
                    rows.last_mut().expect("a row").push(cell);
                }
            }
        }
        rows.retain(|r| !r.is_empty());
        let width = rows.first().map_or(0, Vec::len);
        if width == 0 || rows.iter().any(|r| r.len() != width) {
            return Err(Fail::Unparseable);
        }
        Ok(Node::Matrix(rows))
    }
}

/// Words that negate or bound the quantity beside them (`\text{not } 3`, `3 \text{ or more}`,
/// `\text{at least } 3`), offer another value (`3 \text{ (or 4)}`), scale it (`5 \text{
/// million}`) or flip its sign (`\text{negative } 5`): such a phrase is not an annotation to
/// drop, so the answer is not the bare number. `3 \text{ more apples}` (the answer to "how many
/// more") stays an annotation.
fn changes_meaning(text: &str) -> bool {
    const WORDS: [&str; 18] = [
        "not",
        "no",
        "nor",
        "never",
        "none",
        "cannot",
        "except",
        "excluding",
        "but",
        "least",
        "most",
        "than",
        "exceeds",
        "wrong",
        "incorrect",
        "false",
        "impossible",
        "neither",
    ];
    // Another value offered beside the first (`3 \text{ (or 4)}`, `3 \text{ or more}`; a bare
    // `\text{ or }` between two values is a list separator, read before this), or a bound without
    // "than" (`\text{under } 5`, `\text{almost } 5`).
    const HEDGES_AND_BOUNDS: [&str; 13] = [
        "or",
        "either",
        "over",
        "under",
        "below",
        "above",
        "beyond",
        "almost",
        "nearly",
        "within",
        "without",
        "exceed",
        "exceeding",
    ];
    // Scale and sign words: `5 \text{ million}` is not 5, `\text{negative } 5` is not 5.
    const SCALES_AND_SIGNS: [&str; 33] = [
        "dozen",
        "dozens",
        "lakh",
        "crore",
        "pi",
        "halves",
        "thirds",
        "quarters",
        "fourths",
        "fifths",
        "sixths",
        "sevenths",
        "eighths",
        "ninths",
        "tenths",
        "hundredths",
        "thousandths",
        "millionths",
        "billionths",
        "hundred",
        "hundreds",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "billions",
        "trillion",
        "trillions",
        "half",
        "negative",
        "minus",
        "plus",
    ];
    // A number inside the words is another quantity (`3 \text{ (or 4)}`), never an annotation.
    if text.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphabetic() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    words.iter().any(|w| {
        WORDS.contains(&w.as_str())
            || HEDGES_AND_BOUNDS.contains(&w.as_str())
            || SCALES_AND_SIGNS.contains(&w.as_str())
            || w.ends_with("n't")
    }) || words.windows(2).any(|p| p == ["up", "to"])
        // `5 \text{ squared}` is 25; `5 \text{ units squared}` is an area of 5
        || matches!(words.first().map(String::as_str), Some("squared" | "cubed"))
}

fn is_infinite(n: &Node) -> bool {
    match n {
        Node::Const(Constant::Inf) => true,
        Node::Neg(a) => is_infinite(a),
        _ => false,
    }
}

fn sum(mut terms: Vec<Node>) -> Node {
    if terms.len() == 1 {
        terms.pop().expect("one term")
    } else {
        Node::Add(terms)
    }
}

fn mul(acc: Node, rhs: Node) -> Node {
    match acc {
        Node::Mul(mut v) => {
            v.push(rhs);
            Node::Mul(v)
        }
        a => Node::Mul(vec![a, rhs]),
    }
}

fn apply_power(node: Node, power: Option<Node>) -> Node {
    match power {
        Some(p) => Node::Pow(Box::new(node), Box::new(p)),
        None => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, Fail> {
        let mut b = Budget::new(1_000_000);
        parse(s, LexMode::STANDARD, &Limits::default(), &mut b)
    }

    fn int_q(v: i64) -> BigRational {
        BigRational::from_integer(v.into())
    }

    fn int(v: i64) -> Node {
        Node::Num(Literal::int(v))
    }

    #[test]
    fn fractions_and_mixed_numbers() {
        let Node::Div(a, b) = p("\\frac12").unwrap() else {
            panic!()
        };
        assert!(
            matches!((*a, *b), (Node::Num(x), Node::Num(y)) if x.value == int_q(1) && y.value == int_q(2))
        );
        let Node::Num(l) = p("4 4/9").unwrap() else {
            panic!()
        };
        assert_eq!(l.value, BigRational::new(40.into(), 9.into()));
        let Node::Num(l) = p("2\\frac{1}{2}").unwrap() else {
            panic!()
        };
        assert_eq!(l.value, BigRational::new(5.into(), 2.into()));
    }

    #[test]
    fn bases_and_brackets() {
        assert_eq!(p("204_5").unwrap(), int(54));
        assert!(p("208_5").is_err());
        assert!(matches!(
            p("[0,9)").unwrap(),
            Node::Interval {
                lo_closed: true,
                hi_closed: false,
                ..
            }
        ));
        assert!(matches!(p("(3,2)").unwrap(), Node::Tuple(v) if v.len() == 2));
        assert!(matches!(p("\\{1,2\\}").unwrap(), Node::Set(v) if v.len() == 2));
        assert!(matches!(p("1, 2").unwrap(), Node::List(v) if v.len() == 2));
    }

    #[test]
    fn functions_and_powers() {
        assert!(matches!(p("\\tan^2 y + 1").unwrap(), Node::Add(_)));
        assert!(matches!(
            p("\\sin^{-1} x").unwrap(),
            Node::Func(Func::Asin, _)
        ));
        assert!(matches!(p("5^{5^{5^{5^5}}}").unwrap(), Node::Pow(..)));
    }

    #[test]
    fn words_that_change_the_value_are_kept() {
        let value = |s: &str| match p(s) {
            Ok(Node::Num(l)) => l.value.to_integer().to_string(),
            other => format!("{other:?}"),
        };
        // Annotations are dropped...
        assert_eq!(value("3 \\text{ apples}"), "3");
        assert_eq!(value("\\text{area } 3"), "3");
        assert_eq!(value("3 \\text{ more apples}"), "3");
        // ...but not negations or bounds, and words do not join two quantities into a product.
        for s in [
            "\\text{not } 3",
            "\\text{at least } 3",
            "3 \\text{ or more}",
            "\\text{No solution, not } 3",
            "3 \\text{ isn't right}",
            "3 \\text{ apples and } 4",
            "3 \\text{ (or 4)}",
            "5 \\text{ million}",
            "5 \\text{ thousand}",
            "\\text{negative } 5",
            "\\text{minus } 5",
            "\\text{almost } 5",
            "\\text{under } 5",
            "5 \\text{ and a half}",
        ] {
            assert!(value(s) != "3" && value(s) != "12", "{s}");
        }
    }

    #[test]
    fn one_token_subscripts_need_no_braces() {
        assert_eq!(p("x_{1}"), p("x_1"));
        assert_eq!(p("a_{n}"), p("a_n"));
        assert_ne!(p("x_{1}"), p("x_2"));
        assert_ne!(p("a_{n+1}"), p("a_n"));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let s = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
        assert_eq!(p(&s), Err(Fail::Budget));
        let s = format!("{}1", "-".repeat(10_000));
        assert_eq!(p(&s), Err(Fail::Budget));
        assert_eq!(p("(1"), Err(Fail::Unparseable));
    }
}
