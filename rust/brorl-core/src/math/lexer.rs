//! LaTeX (and plain-text math) into tokens. Presentation-only markup (`\left`, spacing, `$`,
//! `\displaystyle`, degree signs, currency, unit words) is dropped here so the parser only sees
//! mathematics. Numbers are read whole, including thousands separators, decimal commas (when
//! the mode allows) and scientific notation.

use super::ast::{Fail, RelOp};
use super::budget::{Budget, Limits};

/// A number as written: integer digits, fraction digits and a decimal exponent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumLit {
    pub int: String,
    pub frac: String,
    pub exp: i64,
    /// Repeating decimal digits (`0.1\overline{6}`), empty for a plain number.
    pub repeat: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Num(NumLit),
    /// A one-letter variable or a Greek letter's name.
    Ident(String),
    /// A command the parser interprets (`frac`, `sqrt`, `sin`, `pi`, `infty`, `binom`, `log`).
    Cmd(String),
    Begin(String),
    End(String),
    /// Text that is not markup or a unit: a word answer or an annotation.
    Text(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LSet,
    RSet,
    Bar,
    LFloor,
    RFloor,
    LCeil,
    RCeil,
    Plus,
    Minus,
    Pm,
    Mp,
    Star,
    Slash,
    Caret,
    Underscore,
    Bang,
    Percent,
    Comma,
    Colon,
    Amp,
    RowSep,
    Rel(RelOp),
    Cup,
    Cap,
    EmptySet,
}

/// How to read `1,234` and `3,5`: the same string can be a number or a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexMode {
    /// `1,234,567` is one number when every group after the first has three digits.
    pub thousands_comma: bool,
    /// `3,5` is three and a half.
    pub decimal_comma: bool,
}

impl LexMode {
    pub const STANDARD: LexMode = LexMode {
        thousands_comma: true,
        decimal_comma: false,
    };
    pub const LIST: LexMode = LexMode {
        thousands_comma: false,
        decimal_comma: false,
    };
    pub const DECIMAL_COMMA: LexMode = LexMode {
        thousands_comma: false,
        decimal_comma: true,
    };
}

const FUNCTIONS: [&str; 17] = [
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "ln", "log", "exp", "sqrt", "lg",
];

/// Number words up to twenty (`twelve`), by value.
const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

const GREEK: [&str; 32] = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Sigma",
    "Phi",
    "Omega",
];

/// Unit and currency words dropped after a number (`125 miles`, `10\text{ cm}^2`).
const UNITS: [&str; 74] = [
    "cm",
    "mm",
    "km",
    "m",
    "meter",
    "meters",
    "metre",
    "metres",
    "centimeter",
    "centimeters",
    "millimeter",
    "millimeters",
    "kilometer",
    "kilometers",
    "in",
    "inch",
    "inches",
    "ft",
    "foot",
    "feet",
    "yd",
    "yard",
    "yards",
    "mi",
    "mile",
    "miles",
    "mph",
    "kg",
    "g",
    "gram",
    "grams",
    "mg",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "oz",
    "ounce",
    "ounces",
    "l",
    "ml",
    "liter",
    "liters",
    "litre",
    "litres",
    "s",
    "sec",
    "second",
    "seconds",
    "min",
    "minute",
    "minutes",
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "year",
    "years",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "unit",
    "units",
    "sq",
    "square",
    "cubic",
    "degree",
    "degrees",
];

fn is_unit_phrase(text: &str, in_text: bool) -> bool {
    let mut any = false;
    for w in text.split(|c: char| c.is_whitespace() || c == '.') {
        if w.is_empty() {
            continue;
        }
        let lw = w.to_ascii_lowercase();
        // Outside `\text{}` one letter is a variable, and `in`/`min`/`sec` are too ambiguous.
        let ok = UNITS.contains(&lw.as_str())
            && (in_text || (lw.len() > 1 && !matches!(lw.as_str(), "in" | "min" | "sec")));
        if !ok {
            return false;
        }
        any = true;
    }
    any
}

struct Lexer<'a> {
    c: Vec<char>,
    i: usize,
    out: Vec<Tok>,
    mode: LexMode,
    limits: &'a Limits,
    budget: &'a mut Budget,
}

/// The ASCII character a full-width form stands for (U+FF01..=U+FF5E: "４２", "（Ａ）", "＋"),
/// a space for the ideographic space; any other character unchanged. Answers typed with a CJK
/// input method write digits and operators this way and mean the same values.
fn fold_fullwidth(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// The digit or sign a Unicode superscript (`²`, `⁻`) or subscript (`₅`) stands for.
fn script_char(c: char) -> Option<(char, char)> {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    if let Some(d) = SUP.iter().position(|&x| x == c) {
        return Some(('^', char::from(b'0' + d as u8)));
    }
    match c {
        '⁻' => Some(('^', '-')),
        '⁺' => Some(('^', '+')),
        '₀'..='₉' => Some(('_', char::from_u32(c as u32 - '₀' as u32 + '0' as u32)?)),
        _ => None,
    }
}

/// `½`, `¾`, ...: numerator and denominator of a Unicode vulgar fraction.
fn vulgar_fraction(c: char) -> Option<(u8, u8)> {
    Some(match c {
        '½' => (1, 2),
        '⅓' => (1, 3),
        '⅔' => (2, 3),
        '¼' => (1, 4),
        '¾' => (3, 4),
        '⅕' => (1, 5),
        '⅖' => (2, 5),
        '⅗' => (3, 5),
        '⅘' => (4, 5),
        '⅙' => (1, 6),
        '⅚' => (5, 6),
        '⅛' => (1, 8),
        '⅜' => (3, 8),
        '⅝' => (5, 8),
        '⅞' => (7, 8),
        _ => return None,
    })
}

/// The characters the lexer reads: full-width forms folded to ASCII, zero-width characters
/// (which a model or a copy-paste can slip between digits) removed, a run of superscript or
/// subscript digits spelled `^{..}` / `_{..}` (`3²` is 9, `x⁻¹` is 1/x, never `32` or `x-1`),
/// and a vulgar fraction spelled `\frac{1}{2}` (so `2½` is the mixed number 5/2).
fn unicode_forms(s: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars().map(fold_fullwidth).peekable();
    while let Some(c) = chars.next() {
        if matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
        ) {
            continue;
        }
        if let Some((mark, first)) = script_char(c) {
            out.extend([mark, '{', first]);
            while let Some((m, d)) = chars.peek().and_then(|&n| script_char(n)) {
                if m != mark {
                    break;
                }
                out.push(d);
                chars.next();
            }
            out.push('}');
            continue;
        }
        if let Some((n, d)) = vulgar_fraction(c) {
            out.extend(format!("\\frac{{{n}}}{{{d}}}").chars());
            continue;
        }
        out.push(c);
    }
    out
}

/// Tokenizes `s`. Fails with `Budget` past the token or digit caps.
pub fn lex(s: &str, mode: LexMode, limits: &Limits, budget: &mut Budget) -> Result<Vec<Tok>, Fail> {
    let mut lx = Lexer {
        c: unicode_forms(s),
        i: 0,
        out: Vec::new(),
        mode,
        limits,
        budget,
    };
    lx.run()?;
    let mut out = lx.out;
    infix_choose(&mut out, lx.budget)?;
    Ok(out)
}

/// `{n \choose k}` and `{a \over b}` (plain TeX's infix binomial and fraction) become
/// `\binom{n}{k}` and `\frac{a}{b}`: the braces around the command delimit its two sides (the
/// whole input when there are none, as in `n \choose k`).
fn infix_choose(toks: &mut Vec<Tok>, budget: &mut Budget) -> Result<(), Fail> {
    let infix = |t: &Tok| match t {
        Tok::Cmd(c) if c == "choose" => Some("binom"),
        Tok::Cmd(c) if c == "over" => Some("frac"),
        _ => None,
    };
    while let Some((k, name)) = toks
        .iter()
        .enumerate()
        .find_map(|(k, t)| Some((k, infix(t)?)))
    {
        budget.tick(toks.len() as u64)?; // each rewrite scans the tokens once
        let open = first_unmatched(
            toks[..k].iter().enumerate().rev(),
            &Tok::RBrace,
            &Tok::LBrace,
        );
        let close = first_unmatched(
            toks.iter().enumerate().skip(k + 1),
            &Tok::LBrace,
            &Tok::RBrace,
        );
        let (lo, hi) = match (open, close) {
            (Some(a), Some(b)) => (a + 1, b),
            (None, None) => (0, toks.len()),
            _ => return Err(Fail::Unparseable), // unbalanced braces around it
        };
        let mut prefix = vec![Tok::Cmd(name.into()), Tok::LBrace];
        prefix.extend(toks[lo..k].iter().cloned());
        prefix.extend([Tok::RBrace, Tok::LBrace]);
        prefix.extend(toks[k + 1..hi].iter().cloned());
        prefix.push(Tok::RBrace);
        toks.splice(lo..hi, prefix);
    }
    Ok(())
}

/// The index of the first `end` token not closed by a matching `nest` token, walking `toks`
/// in the order given (left to right for a closing brace, right to left for an opening one).
fn first_unmatched<'a>(
    toks: impl Iterator<Item = (usize, &'a Tok)>,
    nest: &Tok,
    end: &Tok,
) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks {
        if t == nest {
            depth += 1;
        } else if t == end {
            if depth == 0 {
                return Some(j);
            }
            depth -= 1;
        }
    }
    None
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn starts_with(&self, at: usize, pat: &str) -> bool {
        pat.chars()
            .enumerate()
            .all(|(k, p)| self.c.get(at + k) == Some(&p))
    }

    fn push(&mut self, t: Tok) -> Result<(), Fail> {
        if self.out.len() >= self.limits.max_nodes {
            return Err(Fail::Budget);
        }
        self.out.push(t);
        Ok(())
    }

    fn run(&mut self) -> Result<(), Fail> {
        while let Some(ch) = self.peek(0) {
            self.budget.tick(1)?;
            if ch.is_ascii_digit()
                || (ch == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
            {
                self.number()?;
                continue;
            }
            if ch.is_ascii_alphabetic() {
                self.word()?;
                continue;
            }
            self.i += 1;
            let t = match ch {
                '\\' => {
                    self.command()?;
                    continue;
                }
                // A period that does not start a number ends a sentence (`\boxed{5.}`).
                c if c.is_whitespace() || c == '$' || c == '~' || c == '.' => continue,
                '°' => {
                    self.degree_mark()?;
                    continue;
                }
                '{' => Tok::LBrace,
                '}' => Tok::RBrace,
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '[' => Tok::LBrack,
                ']' => Tok::RBrack,
                '|' => Tok::Bar,
                '+' => Tok::Plus,
                '-' | '−' | '–' => Tok::Minus,
                '*' | '×' | '·' | '⋅' => Tok::Star,
                '/' | '÷' => Tok::Slash,
                '^' => {
                    if self.degree_sign() {
                        self.degree_mark()?;
                        continue;
                    }
                    Tok::Caret
                }
                '_' => Tok::Underscore,
                '!' if self.peek(0) == Some('=') => {
                    self.i += 1;
                    Tok::Rel(RelOp::Ne)
                }
                '!' => Tok::Bang,
                '%' => Tok::Percent,
                ',' | ';' => Tok::Comma,
                ':' => Tok::Colon,
                '&' => Tok::Amp,
                '=' => Tok::Rel(RelOp::Eq),
                '<' if self.peek(0) == Some('=') => {
                    self.i += 1;
                    Tok::Rel(RelOp::Le)
                }
                '>' if self.peek(0) == Some('=') => {
                    self.i += 1;
                    Tok::Rel(RelOp::Ge)
                }
                '<' => Tok::Rel(RelOp::Lt),
                '>' => Tok::Rel(RelOp::Gt),
                '≤' => Tok::Rel(RelOp::Le),
                '≥' => Tok::Rel(RelOp::Ge),
                '≠' => Tok::Rel(RelOp::Ne),
                '∈' => Tok::Rel(RelOp::In),
                '±' => Tok::Pm,
                '∓' => Tok::Mp,
                '∪' => Tok::Cup,
                '∩' => Tok::Cap,
                '∅' => Tok::EmptySet,
                'π' => Tok::Cmd("pi".into()),
                '∞' => Tok::Cmd("infty".into()),
                '√' => Tok::Cmd("sqrt".into()),
                // A prime on a name is part of it (`f'(x)`, `y''` are derivatives, `A'` another
                // point); elsewhere (`5'`, feet or minutes) quotes and primes are dropped.
                '\'' | '′' if self.prime_on_name() => continue,
                '\'' | '"' | '`' | '′' => continue,
                '€' | '£' | '¥' => continue,
                _ => return Err(Fail::Unparseable),
            };
            self.push(t)?;
        }
        Ok(())
    }

    /// When the prime just read (at `i - 1`) follows a name with nothing between (`f'`, `y''`),
    /// marks the name primed and says so. A quoted letter (`'A'`) is no prime.
    fn prime_on_name(&mut self) -> bool {
        let is_quote = |c: char| matches!(c, '\'' | '′' | '`');
        let at = self.i - 1;
        let prev = if at >= 1 { self.c[at - 1] } else { ' ' };
        let quoted = at >= 2 && is_quote(self.c[at - 2]);
        match self.out.last_mut() {
            Some(Tok::Ident(name))
                if (prev.is_ascii_alphabetic() && !quoted)
                    || (is_quote(prev) && name.ends_with('\'')) =>
            {
                name.push('\'');
                true
            }
            _ => false,
        }
    }

    /// After `^`: `^\circ`, `^{\circ}`, `^{ \circ }` are degree signs, which we drop.
    fn degree_sign(&mut self) -> bool {
        let mut k = self.i;
        let braced = self.c.get(k) == Some(&'{');
        if braced {
            k += 1;
        }
        while self.c.get(k) == Some(&' ') {
            k += 1;
        }
        if !self.starts_with(k, "\\circ")
            || self.c.get(k + 5).is_some_and(|c| c.is_ascii_alphabetic())
        {
            return false;
        }
        k += 5;
        if braced {
            while self.c.get(k) == Some(&' ') {
                k += 1;
            }
            if self.c.get(k) != Some(&'}') {
                return false;
            }
            k += 1;
        }
        self.i = k;
        true
    }

    /// `(digits)` at `at`: the period of a repeating decimal when it follows the decimal point
    /// directly (`0.(3)` is 1/3, `1.(6)` is 5/3; read as a product it was `0 \cdot 3`, so it
    /// matched 0). After fraction digits (`0.1(6)`) the parentheses stay a product, as in
    /// plain-text arithmetic.
    fn paren_period_at(&self, at: usize) -> bool {
        if self.c.get(at) != Some(&'(') {
            return false;
        }
        let n = self.c[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        n > 0 && self.c.get(at + 1 + n) == Some(&')')
    }

    /// A degree mark just read (and dropped). On a number that is a trig function's whole
    /// argument (`\sin 30^\circ`, `\cos(45°)`, `\tan 60 \text{ degrees}`) it turns the
    /// number into radians, `(30 \cdot \pi / 180)`: read as 30 radians, `\sin 30^\circ`
    /// did not match `\frac12`. Elsewhere the mark is just dropped (`90^\circ` is 90, as
    /// answers in degrees mean it).
    fn degree_mark(&mut self) -> Result<(), Fail> {
        const TRIG: [&str; 6] = ["sin", "cos", "tan", "sec", "csc", "cot"];
        let n = self.out.len();
        let arg_at = match self.out.get(n.wrapping_sub(2)) {
            Some(Tok::LParen) => n.wrapping_sub(3),
            _ => n.wrapping_sub(2),
        };
        let on_trig_arg = matches!(self.out.last(), Some(Tok::Num(_)))
            && matches!(self.out.get(arg_at), Some(Tok::Cmd(f)) if TRIG.contains(&f.as_str()));
        if !on_trig_arg {
            return Ok(());
        }
        let Some(num) = self.out.pop() else {
            return Ok(());
        };
        let radians = [
            Tok::LParen,
            num,
            Tok::Star,
            Tok::Cmd("pi".into()),
            Tok::Slash,
            Tok::Num(NumLit {
                int: "180".into(),
                frac: String::new(),
                exp: 0,
                repeat: String::new(),
            }),
            Tok::RParen,
        ];
        for t in radians {
            self.push(t)?;
        }
        Ok(())
    }

    fn digits(&mut self) -> String {
        let mut d = String::new();
        while let Some(c) = self.peek(0).filter(char::is_ascii_digit) {
            d.push(c);
            self.i += 1;
        }
        d
    }

    /// Exactly three digits at `at`, not followed by a fourth.
    fn group3(&self, at: usize) -> bool {
        (0..3).all(|k| self.c.get(at + k).is_some_and(char::is_ascii_digit))
            && !self.c.get(at + 3).is_some_and(char::is_ascii_digit)
    }

    /// Length of a thousands separator at `i` (0 if none). `{,}`, `\,`, `\ ` and thin spaces
    /// are always separators; a plain space or comma only with three digits after it.
    fn separator_len(&self, first_group: bool) -> usize {
        let candidates: [(&str, bool); 9] = [
            // MATH writes `10,\!000` and `11,\! 111,\! 100`.
            (",\\! ", true),
            (",\\!", true),
            ("{,}", true),
            ("\\,", true),
            ("\\ ", true),
            ("\u{2009}", true),
            ("\u{202f}", true),
            (" ", true),
            (",", self.mode.thousands_comma),
        ];
        for (pat, allowed) in candidates {
            if allowed && self.starts_with(self.i, pat) {
                let n = pat.chars().count();
                // A plain space groups only a short leading group (`1 000`, not `2024 100`).
                if pat == " " && !first_group {
                    return 0;
                }
                if self.group3(self.i + n) {
                    return n;
                }
            }
        }
        0
    }

    fn number(&mut self) -> Result<(), Fail> {
        let mut int = self.digits();
        // No number is written `0,500`: a leading group of thousands never starts with 0.
        if int.len() <= 3 && !int.is_empty() && !int.starts_with('0') {
            let mut first = true;
            loop {
                let n = self.separator_len(first);
                if n == 0 {
                    break;
                }
                self.i += n;
                int.push_str(&self.digits());
                first = false;
            }
        }
        let mut frac = String::new();
        let point = match self.peek(0) {
            Some('.') => true,
            Some(',') => self.mode.decimal_comma,
            _ => false,
        };
        // The repeating digits' opener: `\overline{` or `\bar{` (`0.\bar{3}`), else 0.
        let overline_next = |lx: &Self, at: usize| {
            ["\\overline{", "\\bar{"]
                .iter()
                .find(|p| lx.starts_with(at, p))
                .map_or(0, |p| p.len())
        };
        // Only after a decimal point: in a list `1,(2)` is no period.
        let dot = self.peek(0) == Some('.');
        if point
            && (self.peek(1).is_some_and(|c| c.is_ascii_digit())
                || overline_next(self, self.i + 1) > 0
                || (dot && self.paren_period_at(self.i + 1)))
        {
            self.i += 1;
            frac = self.digits();
        }
        let mut repeat = String::new();
        let (opener, closer) = if dot && frac.is_empty() && self.paren_period_at(self.i) {
            (1, ')')
        } else {
            (overline_next(self, self.i), '}')
        };
        if opener > 0 && (point || !frac.is_empty()) {
            let save = self.i;
            self.i += opener;
            repeat = self.digits();
            if self.peek(0) == Some(closer) && !repeat.is_empty() {
                self.i += 1;
            } else {
                self.i = save;
                repeat.clear();
            }
        }
        let mut exp = 0i64;
        if matches!(self.peek(0), Some('e' | 'E')) {
            let (sign, k) = match self.peek(1) {
                Some('-') => (-1, 2),
                Some('+') => (1, 2),
                _ => (1, 1),
            };
            if self.peek(k).is_some_and(|c| c.is_ascii_digit()) {
                self.i += k;
                let d = self.digits();
                if d.len() > 6 {
                    return Err(Fail::Budget);
                }
                exp = sign * d.parse::<i64>().map_err(|_| Fail::Unparseable)?;
            }
        }
        if int.len() + frac.len() + repeat.len() > self.limits.max_digits {
            return Err(Fail::Budget);
        }
        self.push(Tok::Num(NumLit {
            int,
            frac,
            exp,
            repeat,
        }))
    }

    /// A run of ASCII letters outside a command: a function name, a keyword, a unit, a word, or
    /// single-letter variables (`xy` is x times y).
    fn word(&mut self) -> Result<(), Fail> {
        let start = self.i;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let w: String = self.c[start..self.i].iter().collect();
        let lw = w.to_ascii_lowercase();
        match lw.as_str() {
            "pi" => return self.push(Tok::Cmd("pi".into())),
            "inf" | "infty" | "infinity" => return self.push(Tok::Cmd("infty".into())),
            "and" | "or" => return self.push(Tok::Comma),
            "percent" => return self.push(Tok::Percent),
            "deg" | "degree" | "degrees" => return self.degree_mark(),
            // The answer "No" is a word, as "Yes" is, not the product N·o (it did not match a
            // gold `no` or `\text{No}`). `NO` stays two names (a segment, `\frac{NO}{BO}`).
            "no" if w != "NO" && w != "nO" => return self.push(Tok::Text(w)),
            _ => {}
        }
        if let Some(v) = NUMBER_WORDS.iter().position(|n| *n == lw) {
            return self.push(Tok::Num(NumLit {
                int: v.to_string(),
                frac: String::new(),
                exp: 0,
                repeat: String::new(),
            }));
        }
        if FUNCTIONS.contains(&lw.as_str()) && w == lw {
            return self.push(Tok::Cmd(lw));
        }
        if is_unit_phrase(&w, false) {
            self.skip_unit_power();
            return Ok(());
        }
        if w.len() >= 3 {
            // `ext{13}` (a `\text` whose backslash was lost) is no word we can read.
            if self.peek(0) == Some('{') {
                return Err(Fail::Unparseable);
            }
            return self.push(Tok::Text(w));
        }
        for ch in w.chars() {
            self.push(Tok::Ident(ch.to_string()))?;
        }
        Ok(())
    }

    /// `cm^2`, `\text{cm}^{3}`: the power belongs to the dropped unit.
    fn skip_unit_power(&mut self) {
        let mut k = self.i;
        while self.c.get(k) == Some(&' ') {
            k += 1;
        }
        if self.c.get(k) != Some(&'^') {
            return;
        }
        k += 1;
        if self.c.get(k).is_some_and(char::is_ascii_digit) {
            self.i = k + 1;
        } else if self.c.get(k) == Some(&'{')
            && self.c.get(k + 1).is_some_and(char::is_ascii_digit)
            && self.c.get(k + 2) == Some(&'}')
        {
            self.i = k + 3;
        }
    }

    /// The content of a `{...}` group starting at `i` (after spaces), advancing past it.
    fn brace_arg(&mut self) -> Option<String> {
        let mut k = self.i;
        while self.c.get(k) == Some(&' ') {
            k += 1;
        }
        if self.c.get(k) != Some(&'{') {
            return None;
        }
        let mut depth = 0usize;
        let mut j = k;
        while j < self.c.len() {
            match self.c[j] {
                '\\' => j += 1,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        let inner: String = self.c[k + 1..j].iter().collect();
                        self.i = j + 1;
                        return Some(inner);
                    }
                }
                _ => {}
            }
            j += 1;
        }
        None
    }

    /// Whether a superscript or subscript comes next (after spaces).
    fn script_follows(&self) -> bool {
        let mut k = self.i;
        while self.c.get(k) == Some(&' ') {
            k += 1;
        }
        matches!(self.c.get(k), Some('^' | '_'))
    }

    fn peek_brace_arg(&mut self) -> Option<String> {
        let save = self.i;
        let r = self.brace_arg();
        self.i = save;
        r
    }

    /// `\text{5 apples}`, `\textbf{12}`, `\text{1/2}`: a number written inside text is that
    /// number, and the words after it are read as `5 \text{ apples}` would be (so a hedge such
    /// as `\text{5 million}` or `\text{5 or 6}` still fails). Only a number that ends the text or
    /// is followed by a space or a percent sign: `\text{5:30}` or `\text{5-6}` stay text.
    fn text(&mut self, content: &str) -> Result<(), Fail> {
        let t: Vec<char> = content
            .trim()
            .trim_matches(|c| c == '~' || c == '$')
            .chars()
            .collect();
        let signed = usize::from(matches!(t.first(), Some('-' | '+')));
        let starts_number = match (t.get(signed), t.get(signed + 1)) {
            (Some(d), _) if d.is_ascii_digit() => true,
            (Some('.'), Some(d)) => d.is_ascii_digit(),
            _ => false,
        };
        if starts_number {
            let mut end = signed;
            while end < t.len() {
                let c = t[end];
                let between_digits = |k: usize| {
                    k > 0
                        && t[k - 1].is_ascii_digit()
                        && t.get(k + 1).is_some_and(|d| d.is_ascii_digit())
                };
                let leading_point = c == '.' && end == signed;
                if c.is_ascii_digit()
                    || leading_point
                    || (matches!(c, '.' | ',' | '/') && between_digits(end))
                {
                    end += 1;
                } else {
                    break;
                }
            }
            let rest: String = t[end..].iter().collect();
            // a full stop after the number ends the sentence: `\text{5.}`, `\text{5. }`
            let after_stop = rest.strip_prefix('.').unwrap_or(&rest);
            let ends_number = after_stop.is_empty()
                || after_stop.starts_with(char::is_whitespace)
                || rest.starts_with('%')
                || rest.starts_with("\\%");
            if ends_number {
                let saved_c = std::mem::replace(&mut self.c, t[..end].to_vec());
                let saved_i = std::mem::replace(&mut self.i, 0);
                let lexed = self.run();
                self.c = saved_c;
                self.i = saved_i;
                lexed?;
                return if rest.trim().is_empty() {
                    Ok(())
                } else {
                    self.text_words(&rest)
                };
            }
        }
        self.text_words(content)
    }

    fn text_words(&mut self, content: &str) -> Result<(), Fail> {
        let t = content.trim().trim_matches(|c| c == '~' || c == '$');
        let lt = t.to_ascii_lowercase();
        let bare = lt.trim_matches(|c: char| c == ',' || c == '.' || c.is_whitespace());
        if bare.is_empty() {
            return if lt.contains(',') {
                self.push(Tok::Comma)
            } else {
                Ok(())
            };
        }
        match bare {
            "and" | "or" => return self.push(Tok::Comma),
            "percent" | "%" | "\\%" => return self.push(Tok::Percent),
            "degree" | "degrees" | "\\circ" => return self.degree_mark(),
            _ => {}
        }
        if is_unit_phrase(bare, true) {
            self.skip_unit_power();
            return Ok(());
        }
        // `\text{three}` is three, as the bare word is.
        if let Some(v) = NUMBER_WORDS.iter().position(|n| *n == bare) {
            return self.push(Tok::Num(NumLit {
                int: v.to_string(),
                frac: String::new(),
                exp: 0,
                repeat: String::new(),
            }));
        }
        // `\text{e}`, `\text{A}`: one letter is that letter.
        if t.len() == 1 && t.as_bytes()[0].is_ascii_alphabetic() {
            return self.push(Tok::Ident(t.to_string()));
        }
        self.push(Tok::Text(t.to_string()))
    }

    fn command(&mut self) -> Result<(), Fail> {
        let Some(first) = self.peek(0) else {
            return Ok(());
        };
        if !first.is_ascii_alphabetic() {
            self.i += 1;
            let t = match first {
                '{' => Tok::LSet,
                '}' => Tok::RSet,
                '\\' => Tok::RowSep,
                '%' => Tok::Percent,
                '|' => Tok::Bar,
                // Spacing, `\$`, and display delimiters `\( \) \[ \]` carry no mathematics.
                _ => return Ok(()),
            };
            return self.push(t);
        }
        let start = self.i;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let mut name: String = self.c[start..self.i].iter().collect();
        // `\quadx_2`: a spacing command glued to the next name.
        for space in ["qquad", "quad"] {
            if name.len() > space.len() && name.starts_with(space) {
                self.i = start + space.len();
                name.truncate(space.len());
                break;
            }
        }
        let t = match name.as_str() {
            "frac" | "dfrac" | "tfrac" | "cfrac" => Tok::Cmd("frac".into()),
            "binom" | "dbinom" | "tbinom" => Tok::Cmd("binom".into()),
            "choose" => Tok::Cmd("choose".into()),
            "pi" | "infty" | "sqrt" => Tok::Cmd(name),
            n if FUNCTIONS.contains(&n) => Tok::Cmd(name),
            n if GREEK.contains(&n) => Tok::Ident(name),
            "cdot" | "times" | "ast" => Tok::Star,
            "div" => Tok::Slash,
            "pm" => Tok::Pm,
            "mp" => Tok::Mp,
            "le" | "leq" | "leqslant" => Tok::Rel(RelOp::Le),
            "ge" | "geq" | "geqslant" => Tok::Rel(RelOp::Ge),
            "lt" => Tok::Rel(RelOp::Lt),
            "gt" => Tok::Rel(RelOp::Gt),
            "ne" | "neq" => Tok::Rel(RelOp::Ne),
            "in" => Tok::Rel(RelOp::In),
            "approx" => Tok::Rel(RelOp::Eq),
            "lbrace" => Tok::LSet,
            "rbrace" => Tok::RSet,
            "langle" => Tok::LParen,
            "rangle" => Tok::RParen,
            "lbrack" => Tok::LBrack,
            "rbrack" => Tok::RBrack,
            "lvert" | "rvert" | "vert" => Tok::Bar,
            "lfloor" => Tok::LFloor,
            "rfloor" => Tok::RFloor,
            "lceil" => Tok::LCeil,
            "rceil" => Tok::RCeil,
            "cup" => Tok::Cup,
            "cap" => Tok::Cap,
            "emptyset" | "varnothing" => Tok::EmptySet,
            "left" | "right" | "big" | "Big" | "bigg" | "Bigg" | "bigl" | "bigr" | "Bigl"
            | "Bigr" | "biggl" | "biggr" | "Biggl" | "Biggr" | "displaystyle" | "textstyle"
            | "boxed" | "fbox" | "quad" | "qquad" | "limits" | "prime" | "dollar"
            | "mathdollar" | "rm" | "bf" | "it" | "enspace" | "thinspace" | "angle"
            | "measuredangle" | "triangle" | "overline" | "underline" => {
                // `\left.` is an invisible delimiter.
                if (name == "left" || name == "right") && self.peek(0) == Some('.') {
                    self.i += 1;
                }
                return Ok(());
            }
            "circ" | "degree" => return self.degree_mark(),
            // `0.333\ldots` is `0.333...`: an ellipsis right after a number is dropped as the
            // dots are (and the decimal rule decides it); elsewhere (`1 + \cdots + n`) it stays.
            "ldots" | "dots" | "cdots" if matches!(self.out.last(), Some(Tok::Num(_))) => {
                return Ok(());
            }
            // `\color{red} 5` and `\textcolor{red}{5}`: the colour says nothing; the value follows.
            "hspace" | "vspace" | "phantom" | "label" | "color" | "textcolor" => {
                self.brace_arg();
                return Ok(());
            }
            "text" | "textbf" | "textit" | "textrm" | "texttt" | "textsf" | "textup"
            | "textnormal" | "mbox" | "hbox" | "emph" => {
                let Some(content) = self.brace_arg() else {
                    return Err(Fail::Unparseable);
                };
                return self.text(&content);
            }
            "mathbb" => {
                // `\mathbb{R}` is the real line; other blackboard sets are not answers we compare.
                // A script on it names a different set (`\mathbb{R}^+`, `\mathbb{R}_{>0}`,
                // `\mathbb{R}^2`), which is not the real line either.
                return match self.brace_arg().as_deref().map(str::trim) {
                    Some("R") if !self.script_follows() => self.push(Tok::Cmd("reals".into())),
                    _ => Err(Fail::Unparseable),
                };
            }
            "mathrm" | "mathbf" | "mathit" | "mathsf" | "mathtt" | "boldsymbol" | "bm"
            | "operatorname" | "mathnormal" => {
                // Transparent, except a unit or a function name inside.
                if let Some(content) = self.peek_brace_arg() {
                    // `\mathrm{~cm}`: a tie before a unit is a space
                    let c = content.trim_matches(|ch: char| ch == '~' || ch.is_whitespace());
                    if is_unit_phrase(c, true) && !c.is_empty() && c != "e" && c != "i" {
                        self.brace_arg();
                        self.skip_unit_power();
                        return Ok(());
                    }
                    if FUNCTIONS.contains(&c) {
                        self.brace_arg();
                        return self.push(Tok::Cmd(c.to_string()));
                    }
                }
                return Ok(());
            }
            "begin" | "end" => {
                let Some(env) = self.brace_arg() else {
                    return Err(Fail::Unparseable);
                };
                let env = env.trim().trim_end_matches('*').to_string();
                if name == "begin" {
                    if env == "array" {
                        // Column spec `{cc}` says nothing about the values.
                        self.brace_arg();
                    }
                    Tok::Begin(env)
                } else {
                    Tok::End(env)
                }
            }
            _ => Tok::Cmd(name),
        };
        self.push(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str, mode: LexMode) -> Vec<Tok> {
        let mut b = Budget::new(1_000_000);
        lex(s, mode, &Limits::default(), &mut b).unwrap()
    }

    fn num(int: &str, frac: &str, exp: i64) -> Tok {
        Tok::Num(NumLit {
            int: int.into(),
            frac: frac.into(),
            exp,
            repeat: String::new(),
        })
    }

    #[test]
    fn thousands_and_decimals() {
        assert_eq!(
            toks("7,425,000", LexMode::STANDARD),
            vec![num("7425000", "", 0)]
        );
        assert_eq!(toks("1 000", LexMode::STANDARD), vec![num("1000", "", 0)]);
        assert_eq!(
            toks("1{,}000.5", LexMode::STANDARD),
            vec![num("1000", "5", 0)]
        );
        assert_eq!(
            toks("1,23", LexMode::STANDARD),
            vec![num("1", "", 0), Tok::Comma, num("23", "", 0)]
        );
        assert_eq!(toks("3,5", LexMode::DECIMAL_COMMA), vec![num("3", "5", 0)]);
        assert_eq!(toks(".5", LexMode::STANDARD), vec![num("", "5", 0)]);
        assert_eq!(toks("1.2e-3", LexMode::STANDARD), vec![num("1", "2", -3)]);
        assert_eq!(
            toks("0.333\\ldots", LexMode::STANDARD),
            toks("0.333...", LexMode::STANDARD)
        );
        assert_eq!(
            toks("0.1\\bar{6}", LexMode::STANDARD),
            toks("0.1\\overline{6}", LexMode::STANDARD)
        );
        assert_eq!(
            toks("0.\\bar{3}", LexMode::STANDARD),
            toks("0.\\overline{3}", LexMode::STANDARD)
        );
        // A period in parentheses right after the point; after fraction digits a product.
        assert_eq!(
            toks("1.(6)", LexMode::STANDARD),
            toks("1.\\overline{6}", LexMode::STANDARD)
        );
        assert_eq!(
            toks("0.1(6)", LexMode::STANDARD),
            vec![num("0", "1", 0), Tok::LParen, num("6", "", 0), Tok::RParen]
        );
    }

    #[test]
    fn infix_choose_becomes_binom() {
        let binom = toks("\\binom{4}{2}", LexMode::STANDARD);
        let mut grouped = vec![Tok::LBrace];
        grouped.extend(binom.clone());
        grouped.push(Tok::RBrace);
        assert_eq!(toks("{4 \\choose 2}", LexMode::STANDARD), grouped);
        assert_eq!(toks("4 \\choose 2", LexMode::STANDARD), binom);
        let mut nested = vec![Tok::LBrace];
        nested.extend(toks("\\binom{{n}}{{k}}", LexMode::STANDARD));
        nested.push(Tok::RBrace);
        assert_eq!(toks("{{n} \\choose {k}}", LexMode::STANDARD), nested);
        // `\over` the same way, as a fraction
        let frac = toks("\\frac{1}{2}", LexMode::STANDARD);
        assert_eq!(toks("1 \\over 2", LexMode::STANDARD), frac);
        let mut grouped = vec![Tok::LBrace];
        grouped.extend(toks("\\frac{x+1}{2}", LexMode::STANDARD));
        grouped.push(Tok::RBrace);
        assert_eq!(toks("{x+1 \\over 2}", LexMode::STANDARD), grouped);
    }

    #[test]
    fn unicode_scripts_fractions_and_zero_width_characters() {
        let std = LexMode::STANDARD;
        assert_eq!(toks("3²", std), toks("3^{2}", std));
        assert_eq!(toks("x⁻¹", std), toks("x^{-1}", std));
        assert_eq!(toks("10¹⁰", std), toks("10^{10}", std));
        assert_eq!(toks("x₁", std), toks("x_{1}", std));
        assert_eq!(toks("2½", std), toks("2\\frac{1}{2}", std));
        assert_eq!(toks("3\u{200B}4", std), toks("34", std));
    }

    #[test]
    fn primes_stay_on_names() {
        let std = LexMode::STANDARD;
        assert_eq!(toks("f'", std), vec![Tok::Ident("f'".into())]);
        assert_eq!(toks("y''", std), vec![Tok::Ident("y''".into())]);
        // A quoted letter and a prime after a number (feet, minutes) are not primes on a name.
        assert_eq!(toks("'A'", std), vec![Tok::Ident("A".into())]);
        assert_eq!(toks("5'", std), vec![num("5", "", 0)]);
    }

    #[test]
    fn only_the_bare_real_line_is_a_set() {
        let limits = Limits::default();
        let lex_ok = |s: &str| lex(s, LexMode::STANDARD, &limits, &mut Budget::new(10_000)).is_ok();
        assert!(lex_ok("\\mathbb{R}"));
        assert!(!lex_ok("\\mathbb{R}^+"));
        assert!(!lex_ok("\\mathbb{R}_{>0}"));
        assert!(!lex_ok("\\mathbb{R} ^2"));
    }

    #[test]
    fn fullwidth_forms_read_as_ascii() {
        assert_eq!(toks("４２", LexMode::STANDARD), vec![num("42", "", 0)]);
        assert_eq!(
            toks("\u{3000}４２．５", LexMode::STANDARD),
            toks("42.5", LexMode::STANDARD)
        );
        assert_eq!(
            toks("（１＋２）／３", LexMode::STANDARD),
            toks("(1+2)/3", LexMode::STANDARD)
        );
    }

    #[test]
    fn degrees_in_a_trig_argument_are_radians() {
        let radians = |n: &str| {
            vec![
                Tok::Cmd("sin".into()),
                Tok::LParen,
                num(n, "", 0),
                Tok::Star,
                Tok::Cmd("pi".into()),
                Tok::Slash,
                num("180", "", 0),
                Tok::RParen,
            ]
        };
        for s in [
            "\\sin 30^\\circ",
            "\\sin 30°",
            "\\sin30^{\\circ}",
            "sin 30 degrees",
        ] {
            assert_eq!(toks(s, LexMode::STANDARD), radians("30"), "{s}");
        }
        let mut paren = radians("45");
        paren.insert(1, Tok::LParen);
        paren.push(Tok::RParen);
        assert_eq!(toks("\\sin(45^\\circ)", LexMode::STANDARD), paren);
        // Elsewhere the mark is dropped.
        assert_eq!(toks("30^\\circ", LexMode::STANDARD), vec![num("30", "", 0)]);
    }

    #[test]
    fn no_is_a_word() {
        assert_eq!(toks("No", LexMode::STANDARD), vec![Tok::Text("No".into())]);
        assert_eq!(
            toks("NO", LexMode::STANDARD),
            vec![Tok::Ident("N".into()), Tok::Ident("O".into())]
        );
    }

    #[test]
    fn markup_and_units_dropped() {
        assert_eq!(
            toks("\\$1,000.99", LexMode::STANDARD),
            vec![num("1000", "99", 0)]
        );
        assert_eq!(
            toks("10\\text{ cm}^2", LexMode::STANDARD),
            vec![num("10", "", 0)]
        );
        assert_eq!(
            toks("125 miles", LexMode::STANDARD),
            vec![num("125", "", 0)]
        );
        assert_eq!(toks("90^\\circ", LexMode::STANDARD), vec![num("90", "", 0)]);
        assert_eq!(
            toks("\\text{Three}", LexMode::STANDARD),
            toks("three", LexMode::STANDARD)
        );
        assert_eq!(
            toks("\\left( x \\right)", LexMode::STANDARD),
            vec![Tok::LParen, Tok::Ident("x".into()), Tok::RParen]
        );
    }

    #[test]
    fn caps_hold() {
        let mut b = Budget::new(1_000_000);
        let long = "9".repeat(10_000);
        assert_eq!(
            lex(&long, LexMode::STANDARD, &Limits::default(), &mut b),
            Err(Fail::Budget)
        );
        let mut b = Budget::new(5);
        assert_eq!(
            lex("1+2+3+4+5", LexMode::STANDARD, &Limits::default(), &mut b),
            Err(Fail::Budget)
        );
    }
}
