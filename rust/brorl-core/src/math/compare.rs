//! Deciding whether two parsed answers are equivalent, and the top-level `verify_pair`.
//!
//! Scalars are compared by value: exactly when both evaluate to rationals, otherwise as
//! complex `f64` with a relative tolerance. Expressions with variables are compared at
//! deterministic pseudo-random rational points (an identity of rational functions is then
//! decided by exact arithmetic at every point; others at bounded precision). Structured answers
//! (lists, sets, tuples, intervals, matrices, relations) are compared by their structure.

use std::collections::HashMap;

use num_bigint::BigInt;
use num_complex::Complex64;
use num_rational::BigRational;
use num_traits::{Signed, Zero};

use super::ast::{Constant, Fail, Func, Literal, Node, RelOp};
use super::budget::{Budget, Limits};
use super::extract::{after_thinking, all_boxes, extract_marked, extract_unmarked, last_boxes};
use super::lexer::{lex, LexMode, Tok};
use super::parser::parse;
use super::precise;
use super::value::{EvalErr, Evaluator, Val};
use super::{Options, Status};

/// Relative tolerance for comparing values that are not both exact.
const REL_TOL: f64 = 1e-9;
/// Looser tolerance at random points, where evaluation error accumulates (`\tan^2 y + 1`).
const POINT_TOL: f64 = 1e-8;
/// Values below this are zero when one side is approximate (catastrophic cancellation).
const ABS_TOL: f64 = 1e-12;
/// A decimal must show this many significant digits to be checked against an exact value.
const MIN_SIGNIFICANT: u32 = 3;
/// Collections larger than this are not compared element by element.
const MAX_ELEMENTS: usize = 64;
/// At most this many variables in one expression.
const MAX_SYMBOLS: usize = 8;
/// Points of an identity whose `f64` agreement is re-checked at high precision.
const CONFIRM_POINTS: usize = 2;
/// At most this many alternatives when expanding `±`.
const MAX_PM: usize = 16;

pub fn verify_pair(gold: &str, response: &str, opts: &Options) -> Status {
    let lim = &opts.limits;
    if response.len() > lim.max_response_bytes || gold.len() > lim.max_response_bytes {
        return Status::BudgetExceeded;
    }
    let mut budget = Budget::new(lim.max_steps);
    // Every box of a gold is part of it (`\boxed{35} ... \boxed{4}`).
    let gold = all_boxes(gold)
        .or_else(|| extract_marked(gold))
        .unwrap_or_else(|| gold.trim().to_string());
    let gold = assignment_groups(&normalize(&gold));
    if gold_is_blank(&gold) {
        return Status::Unparseable;
    }
    let answer = match find_answer(response, opts, &mut budget) {
        Some(a) => normalize(&after_last_implication(a)),
        None => return Status::NoAnswer,
    };
    if answer.len() > lim.max_answer_bytes || gold.len() > lim.max_answer_bytes {
        return Status::BudgetExceeded;
    }
    let status = decide(&gold, &answer, lim, &mut budget);
    if status != Status::Wrong && status != Status::Unparseable {
        return status;
    }
    // A gold of k parts against a response that boxed each part with text between the boxes
    // ("\boxed{(3, 3)} for part (a) and \boxed{(1, 1)}").
    let parts = gold_parts(&gold, lim, &mut budget);
    if parts >= 2 {
        if let Some(joined) = last_boxes(response, parts) {
            let joined = normalize(&joined);
            if joined != answer && decide(&gold, &joined, lim, &mut budget) == Status::Correct {
                return Status::Correct;
            }
        }
    }
    status
}

/// Whether `s` is one text command around a number and nothing else (`\text{13}`,
/// `$\textbf{ 1/2 }$`; not `\text{5 cm}`, a number with its unit).
fn text_wrapped_number(s: &str) -> bool {
    let t = s.trim().trim_matches('$').trim();
    let Some(rest) = [
        "\\textbf{",
        "\\textrm{",
        "\\textit{",
        "\\textup{",
        "\\text{",
        "\\mbox{",
    ]
    .iter()
    .find_map(|w| t.strip_prefix(w)) else {
        return false;
    };
    let Some(inner) = rest.strip_suffix('}') else {
        return false;
    };
    let mut depth = 0i32;
    for c in inner.chars() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if depth < 0 {
            return false; // the wrapper closes before the end: `\text{1} + \text{2}`
        }
    }
    let inner = inner.trim().trim_start_matches(['-', '+']);
    inner.chars().any(|c| c.is_ascii_digit())
        && inner
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '/'))
}

/// A gold with nothing in it (`\boxed{}`, `\text{ }`, `{}`, `$ $`): nothing matches it, or every
/// empty answer would be rewarded on a dataset's broken rows.
fn gold_is_blank(gold: &str) -> bool {
    const WRAPPERS: [&str; 16] = [
        "boxed",
        "fbox",
        "text",
        "textbf",
        "textit",
        "textrm",
        "mathrm",
        "mathbf",
        "mbox",
        "displaystyle",
        "left",
        "right",
        "quad",
        "qquad",
        "hspace",
        "emph",
    ];
    let c: Vec<char> = gold.chars().collect();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '\\' {
            let mut j = i + 1;
            while j < c.len() && c[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name: String = c[i + 1..j].iter().collect();
            if name.is_empty() {
                // `\,` `\;` `\!` `\ ` are spacing; `\{` (a set's brace) is content
                if c.get(j)
                    .is_some_and(|&d| matches!(d, ',' | ';' | '!' | ':' | ' '))
                {
                    i = j + 1;
                    continue;
                }
                return false;
            }
            if !WRAPPERS.contains(&name.as_str()) {
                return false; // `\emptyset`, `\pi`, `\infty` are answers
            }
            i = j;
            continue;
        }
        if !(c[i].is_whitespace() || matches!(c[i], '{' | '}' | '$' | '.' | '~')) {
            return false;
        }
        i += 1;
    }
    true
}

/// The number of top-level parts of a list gold (1 for anything else).
fn gold_parts(gold: &str, lim: &Limits, budget: &mut Budget) -> usize {
    match parse(gold, LexMode::STANDARD, lim, budget) {
        Ok(Node::List(v)) => v.len(),
        _ => 1,
    }
}

fn decide(gold: &str, answer: &str, lim: &Limits, budget: &mut Budget) -> Status {
    let (gs, as_) = (plain(gold), plain(answer));
    if !gs.is_empty() && gs == as_ {
        return Status::Correct;
    }
    // A gold written as text (`\text{13}`) is a word, not a number: only an answer written as
    // text matches it. The other way round, `\boxed{\text{5}}` states the number 5.
    if text_wrapped_number(gold) && !text_wrapped_number(answer) {
        return Status::Wrong;
    }
    let gold_choice = choice_letter(gold).or_else(|| paren_choice(gold));
    if let (Some(x), Some(y)) = (gold_choice, leading_choice(answer)) {
        return if x == y {
            Status::Correct
        } else {
            Status::Wrong
        };
    }
    let mut golds = Vec::new();
    match parse(gold, LexMode::STANDARD, lim, budget) {
        Ok(g) => golds.push(g),
        Err(Fail::Budget) => return Status::BudgetExceeded,
        Err(Fail::Unparseable) => return text_fallback(gold, answer),
    }
    // `1,22` or `0,111` as a whole gold is a decimal comma (not a thousands separator).
    if is_decimal_comma_number(gold) {
        if let Ok(g) = parse(gold, LexMode::DECIMAL_COMMA, lim, budget) {
            golds.push(g);
        }
    }
    let mut modes = vec![LexMode::STANDARD];
    // A comma between digits may be a list or a decimal comma, but `3,000` is three thousand
    // only: reading it also as `3.000` or as the list `3, 0` would let one answer hedge
    // between values a thousand apart.
    if has_digit_comma_digit(answer) && !has_thousands_grouping(answer) {
        modes.extend([LexMode::LIST, LexMode::DECIMAL_COMMA]);
    }
    let (mut parsed_any, mut over_budget) = (false, false);
    for mode in modes {
        match parse(answer, mode, lim, budget) {
            Ok(a) => {
                parsed_any = true;
                for g in &golds {
                    let mut cmp = Cmp {
                        limits: lim,
                        budget,
                    };
                    match cmp.equiv(g, &a) {
                        Ok(true) => return Status::Correct,
                        Ok(false) => {}
                        Err(_) => over_budget = true,
                    }
                }
            }
            Err(Fail::Budget) => over_budget = true,
            Err(Fail::Unparseable) => {}
        }
    }
    if over_budget {
        Status::BudgetExceeded
    } else if parsed_any {
        Status::Wrong
    } else {
        text_fallback(gold, answer)
    }
}

/// `1,22` or `0,111`: digits, one comma, digits, where the comma cannot be a thousands
/// separator (the group after it is not three digits, or the part before it is `0`).
fn is_decimal_comma_number(s: &str) -> bool {
    let s = s.trim().trim_start_matches('-');
    let Some((int, frac)) = s.split_once(',') else {
        return false;
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    digits(int) && digits(frac) && (frac.len() != 3 || int == "0")
}

/// LaTeX commands that a doubled backslash (`\\frac`, from escaped JSON or source) still
/// means; `\\` before anything else stays a row separator.
const DOUBLED_COMMANDS: [&str; 24] = [
    "frac", "dfrac", "tfrac", "sqrt", "le", "leq", "ge", "geq", "lt", "gt", "ne", "neq", "left",
    "right", "pi", "cdot", "times", "infty", "in", "cup", "text", "mathrm", "boxed", "approx",
];

/// Spelling fixes before parsing: a doubled backslash before a known command outside a
/// matrix, and an approximation after the exact value (`\frac{\sqrt3}{3} \approx 0.577`).
fn normalize(s: &str) -> String {
    let mut t = s.to_string();
    if t.contains("\\\\") && !t.contains("\\begin") && !t.contains('&') {
        let mut out = String::with_capacity(t.len());
        let mut rest = t.as_str();
        while let Some(k) = rest.find("\\\\") {
            out.push_str(&rest[..k]);
            let after = &rest[k + 2..];
            let name_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
            if name_len > 0 && DOUBLED_COMMANDS.contains(&&after[..name_len]) {
                out.push('\\');
            } else {
                out.push_str("\\\\");
            }
            rest = after;
        }
        out.push_str(rest);
        t = out;
    }
    for m in ["\\approx", "≈"] {
        if let Some(k) = t.find(m) {
            // `x \approx 11` states a value; `x = 1/3 \approx 0.33` gives the exact one first.
            let before = t[..k].trim().trim_matches('$').trim();
            let bare_name = before.len() <= 8
                && before
                    .bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && before
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'{' | b'}'));
            if !before.is_empty() && !bare_name {
                t.truncate(k);
            } else if before.is_empty() {
                // `\approx 3.14` on its own states the value.
                t.replace_range(..k + m.len(), "");
            }
        }
    }
    t
}

/// `p=5,q=2;p=7,q=2`: groups of assignments to the same names, separated by `;`, are the
/// tuples `(5,2),(7,2)`. Anything else is returned unchanged.
fn assignment_groups(s: &str) -> String {
    let body = s.trim().trim_matches('$');
    if !body.contains(';') {
        return s.to_string();
    }
    let mut names: Option<Vec<String>> = None;
    let mut tuples = Vec::new();
    for group in body.split(';') {
        let mut gnames = Vec::new();
        let mut values = Vec::new();
        for item in group.split(',') {
            let Some((l, r)) = item.split_once('=') else {
                return s.to_string();
            };
            let (l, r) = (l.trim(), r.trim());
            let is_name = !l.is_empty()
                && l.len() <= 8
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'{' || c == b'}')
                && l.as_bytes()[0].is_ascii_alphabetic();
            if !is_name || r.is_empty() || r.contains('=') {
                return s.to_string();
            }
            gnames.push(l.to_string());
            values.push(r.to_string());
        }
        match &names {
            None => names = Some(gnames),
            Some(n) if *n == gnames => {}
            Some(_) => return s.to_string(),
        }
        tuples.push(if values.len() == 1 {
            values.remove(0)
        } else {
            format!("({})", values.join(","))
        });
    }
    tuples.join(", ")
}

/// The answer in a response: an explicit marker, else the whole response when it is a bare
/// answer (parses, and is not prose), else the last number when the fallback is on.
fn find_answer(response: &str, opts: &Options, budget: &mut Budget) -> Option<String> {
    if let Some(tail) = after_thinking(response) {
        if let Some(a) = find_answer_in(tail, opts, budget) {
            return Some(a);
        }
    }
    find_answer_in(response, opts, budget)
}

fn find_answer_in(response: &str, opts: &Options, budget: &mut Budget) -> Option<String> {
    if let Some(a) = extract_marked(response) {
        return Some(a);
    }
    let r = response.trim();
    if r.is_empty() {
        return None;
    }
    if r.len() <= opts.limits.max_answer_bytes {
        let last_step = normalize(&after_last_implication(r.to_string()));
        if is_bare_answer(&last_step, &opts.limits, budget) {
            return Some(last_step);
        }
    }
    if opts.last_number_fallback {
        extract_unmarked(r)
    } else {
        None
    }
}

fn is_bare_answer(s: &str, limits: &Limits, budget: &mut Budget) -> bool {
    // A trial parse on its own small budget, so prose cannot eat the pair's budget.
    let mut trial = Budget::new(budget.left().min(20_000));
    let Ok(toks) = lex(s, LexMode::STANDARD, limits, &mut trial) else {
        return false;
    };
    let words = toks
        .iter()
        .filter(
            |t| matches!(t, Tok::Text(w) if w.chars().filter(|c| c.is_alphabetic()).count() >= 2),
        )
        .count();
    // One word is a word answer ("odd"); more words alongside other tokens are prose.
    if words > 0 && !(words == 1 && toks.len() == 1) {
        return false;
    }
    parse(s, LexMode::STANDARD, limits, &mut trial).is_ok()
}

/// `x^2 = 4 \\Rightarrow x = \\pm 2`: a derivation inside the box; the answer is its last step.
fn after_last_implication(a: String) -> String {
    let cut = [
        "\\Rightarrow",
        "\\implies",
        "\\Longrightarrow",
        "\\therefore",
    ]
    .iter()
    .filter_map(|m| a.rfind(m).map(|k| k + m.len()))
    .max();
    match cut {
        Some(k) if !a[k..].trim().is_empty() => a[k..].trim().to_string(),
        _ => a,
    }
}

/// Markup-insensitive spelling for the first, string-equality check.
fn plain(s: &str) -> String {
    let mut t = s.to_string();
    for (from, to) in [
        ("\\left", ""),
        ("\\right", ""),
        ("\\displaystyle", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\ ", ""),
        ("$", ""),
    ] {
        t = t.replace(from, to);
    }
    let t: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    t.trim_end_matches('.').to_string()
}

/// Text with the usual wrappers of a multiple-choice answer removed.
fn unwrap_choice(s: &str) -> String {
    let mut t = s.to_string();
    for w in [
        "\\textbf", "\\textrm", "\\text", "\\mathrm", "\\mathbf", "\\mbox",
    ] {
        t = t.replace(w, "");
    }
    t.chars()
        .filter(|c| !matches!(c, '{' | '}' | '$') && !c.is_whitespace())
        .collect()
}

/// A gold answer that is a multiple-choice letter: `C`, `(C)`, `\text{(C)}`, `\textbf{C}`.
fn choice_letter(gold: &str) -> Option<char> {
    let t = unwrap_choice(gold);
    let t = t.trim_end_matches('.');
    let t = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(t);
    let mut cs = t.chars();
    match (cs.next(), cs.next()) {
        (Some(c @ 'A'..='J'), None) => Some(c),
        _ => None,
    }
}

/// A gold that starts with a parenthesised choice and then shows its content: `(D) 12`.
fn paren_choice(gold: &str) -> Option<char> {
    let t = unwrap_choice(gold);
    let b: Vec<char> = t.chars().take(3).collect();
    match b.as_slice() {
        ['(', c @ 'A'..='J', ')'] => Some(*c),
        _ => None,
    }
}

/// The choice an answer starts with: `(C)`, `C)`, `\textbf{(C)} 5`, or just `C`. `'?'` (no
/// choice letter) when the answer goes on to name another choice (`(A) or (B)`, `(A)(B)`), so
/// a hedge over several options never matches the gold's.
fn leading_choice(answer: &str) -> Option<char> {
    let t = unwrap_choice(answer);
    let b: Vec<char> = t.chars().collect();
    let is_letter = |c: &char| ('A'..='J').contains(c);
    let (c, rest) = match b.as_slice() {
        ['(', c, ')', rest @ ..] if is_letter(c) => (*c, rest),
        [c, ')' | '.' | ':', rest @ ..] if is_letter(c) => (*c, rest),
        [c] if is_letter(c) => (*c, &[][..]),
        _ => return None,
    };
    Some(if names_another_choice(rest) { '?' } else { c })
}

/// Whether what follows a leading choice label names a choice again: a parenthesised label
/// anywhere (`(A) or (B)`, `(A)(B)`), or a label right after a separator (`A) or B)`, `(A), B`).
/// The content that follows a label (`(C) 5`, `(C) x^2`) names none.
fn names_another_choice(rest: &[char]) -> bool {
    let is_letter = |c: &char| ('A'..='J').contains(c);
    if rest
        .windows(3)
        .any(|w| w[0] == '(' && is_letter(&w[1]) && w[2] == ')')
    {
        return true;
    }
    let s: String = rest.iter().collect();
    let lower = s.to_ascii_lowercase();
    let after_sep = if let Some(x) = lower.strip_prefix("or").or(lower.strip_prefix("and")) {
        &s[s.len() - x.len()..]
    } else if let Some(x) = s.strip_prefix([',', '/', ';', '&']) {
        x
    } else {
        return false;
    };
    let mut cs = after_sep.chars();
    matches!(
        (cs.next(), cs.next()),
        (Some(c), None | Some(')' | '.' | ',' | ':')) if is_letter(&c)
    )
}

/// `3,5` can be a list, a decimal comma or (with three digits) a thousands separator.
fn has_digit_comma_digit(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit())
}

/// A number written with thousands separators: 1-3 digits not starting with `0`, then one or
/// more `,ddd` groups, with no digit or decimal point right before and no digit right after
/// (`3,000`, `12,345,678`, `1,000.5`; not `0,500`, `1,22`, `1,2345` or `3.5,000`).
fn has_thousands_grouping(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = 0;
    while i < b.len() {
        if !digit(i) || (i > 0 && (digit(i - 1) || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let mut j = i;
        while digit(j) {
            j += 1;
        }
        let lead_ok = j - i <= 3 && b[i] != b'0';
        let mut groups = 0;
        while lead_ok && b.get(j) == Some(&b',') && (1..=3).all(|k| digit(j + k)) && !digit(j + 4) {
            j += 4;
            groups += 1;
        }
        if groups > 0 {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

/// Lowercase words and digits only: how two word answers are compared.
pub fn text_key(s: &str) -> String {
    let mut t = s.to_string();
    for cmd in [
        "\\textbf", "\\textit", "\\textrm", "\\text", "\\mathrm", "\\mathbf", "\\mbox",
    ] {
        t = t.replace(cmd, " ");
    }
    let t: String = t
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// When a side does not parse, word answers can still match as words.
fn text_fallback(gold: &str, answer: &str) -> Status {
    let (g, a) = (text_key(gold), text_key(answer));
    // Only word answers match as words: `1 @` is not the number 1, and `\mathbb{R}^+` is not
    // `\mathbb{R}` (a math operator that the key would drop changes what is named).
    let operators = |s: &str| s.contains(['^', '_', '+', '=', '<', '>', '*', '/', '|']);
    if g.chars().any(char::is_alphabetic) && g == a && !operators(gold) && !operators(answer) {
        Status::Correct
    } else {
        Status::Unparseable
    }
}

/// A deterministic generator for evaluation points (SplitMix64), so verdicts are reproducible.
struct Points(u64);

impl Points {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A rational in (0, ~10) with a small denominator: generic enough that a nonzero rational
    /// function of low degree almost never vanishes there, small enough to stay cheap.
    fn rational(&mut self, negative: bool) -> BigRational {
        let n = (self.next() % 89 + 3) as i64;
        let d = (self.next() % 17 + 7) as i64;
        let r = BigRational::new(n.into(), d.into());
        if negative {
            -r
        } else {
            r
        }
    }
}

/// One side of an interval.
enum Bound<'n> {
    NegInf,
    PosInf,
    At(&'n Node, bool),
}

struct Interval<'n> {
    lo: Bound<'n>,
    hi: Bound<'n>,
}

fn inf_sign(n: &Node) -> Option<i8> {
    match n {
        Node::Const(Constant::Inf) => Some(1),
        Node::Neg(a) => inf_sign(a).map(|s| -s),
        _ => None,
    }
}

fn bound(n: &Node, closed: bool) -> Bound<'_> {
    match inf_sign(n) {
        Some(1) => Bound::PosInf,
        Some(_) => Bound::NegInf,
        None => Bound::At(n, closed),
    }
}

fn is_constant(n: &Node) -> bool {
    n.symbols().is_empty()
}

/// The right sides of `x = 3, y = 4` when every item assigns a plain name and no name repeats
/// (`x = 3, x = 4` is two solutions for one unknown).
fn values_of_distinct_names(items: &[Node]) -> Option<Vec<Node>> {
    if items.len() < 2 {
        return None;
    }
    let mut names: Vec<&Node> = Vec::new();
    let mut values = Vec::new();
    for n in items {
        let Node::Rel(v, ops) = n else {
            return None;
        };
        if ops.as_slice() != [RelOp::Eq] || !matches!(v[0], Node::Sym(_)) || names.contains(&&v[0])
        {
            return None;
        }
        names.push(&v[0]);
        values.push(v[1].clone());
    }
    Some(values)
}

/// A name on the left of an assignment: `x`, `a_n`, `(p, q)`, or a function value `f(x)`.
fn is_name(n: &Node) -> bool {
    match n {
        Node::Sym(_) => true,
        Node::Tuple(v) => v.iter().all(|x| matches!(x, Node::Sym(_))),
        Node::Mul(v) => {
            v.len() == 2
                && matches!(v[0], Node::Sym(_))
                && (matches!(v[1], Node::Sym(_))
                    || matches!(&v[1], Node::Tuple(t) if t.iter().all(|x| matches!(x, Node::Sym(_)))))
        }
        _ => false,
    }
}

/// The value an assignment-like relation gives (`x = 11`, `(p, q) = (3, 2)`, `f(x) = 2x+1`,
/// `x \in S`, `x = \frac12 = 0.5`, `\frac12 \approx 0.5`): its last item.
fn assignment_rhs(n: &Node) -> Option<&Node> {
    let Node::Rel(items, ops) = n else {
        return None;
    };
    if ops.len() == 1 && ops[0] == RelOp::In {
        return Some(&items[1]);
    }
    if !ops.iter().all(|o| *o == RelOp::Eq) {
        return None;
    }
    let named = is_name(&items[0]) && items[1..].iter().all(is_not_a_bare_name);
    // `m + n = 7`, `AB = 5`, `V_1 : V_2 = 11 : 21`: a statement of the value of what was
    // asked; `2 + 3 = 5`: a computation. `a + 3z = 0` is an equation, not a value.
    let last = items.last()?;
    let head = &items[..items.len() - 1];
    let stated =
        is_constant(last) && (is_named_quantity(&items[0]) || head.iter().all(is_constant));
    if named || stated {
        Some(last)
    } else {
        None
    }
}

/// What a question can ask the value of: a name (`x`, `f(x)`, `a_n`), a sum of plain names
/// (`m + n`), a product or quotient of them (`AB`, `\frac{NO}{BO}`), a ratio of them
/// (`A : B`), a function value at a constant (`f(2)`), or `|z|`.
fn is_named_quantity(n: &Node) -> bool {
    fn product_of_names(n: &Node) -> bool {
        match n {
            Node::Sym(_) => true,
            Node::Mul(v) => v.iter().all(|x| matches!(x, Node::Sym(_))),
            _ => false,
        }
    }
    match n {
        _ if is_name(n) => true,
        Node::Add(v) => v.len() >= 2 && v.iter().all(|x| matches!(x, Node::Sym(_))),
        Node::Mul(v) => {
            product_of_names(n)
                || (v.len() >= 2 && matches!(v[0], Node::Sym(_)) && v[1..].iter().all(is_constant))
        }
        Node::Div(a, b) => product_of_names(a) && product_of_names(b),
        Node::Ratio(v) => v.iter().all(product_of_names),
        Node::Func(Func::Abs, x) => is_name(x),
        _ => false,
    }
}

/// Largest matrix side that sums and products of matrices are worked out for.
const MAX_MATRIX_SIDE: usize = 8;

/// A sum or product of matrices (and scalars) worked out entry by entry into one matrix:
/// `\begin{pmatrix}1&2\\3&4\end{pmatrix} + \begin{pmatrix}5&6\\7&8\end{pmatrix}`. None when
/// `n` is no such expression or the shapes do not fit.
fn fold_matrices(n: &Node) -> Option<Node> {
    fn as_matrix(n: &Node) -> Option<Vec<Vec<Node>>> {
        match n {
            Node::Matrix(m) if m.len() <= MAX_MATRIX_SIDE && m[0].len() <= MAX_MATRIX_SIDE => {
                Some(m.clone())
            }
            Node::Neg(x) => as_matrix(x).map(|m| {
                m.into_iter()
                    .map(|r| r.into_iter().map(|e| Node::Neg(Box::new(e))).collect())
                    .collect()
            }),
            Node::Add(_) | Node::Mul(_) => match fold_matrices(n)? {
                Node::Matrix(m) => Some(m),
                _ => None,
            },
            _ => None,
        }
    }
    let has_matrix = |v: &[Node]| {
        v.iter().any(|x| {
            matches!(x, Node::Matrix(_))
                || matches!(x, Node::Neg(y) if matches!(**y, Node::Matrix(_)))
        })
    };
    match n {
        Node::Add(v) if has_matrix(v) => {
            let ms: Vec<Vec<Vec<Node>>> = v.iter().map(as_matrix).collect::<Option<_>>()?;
            let (r, c) = (ms[0].len(), ms[0][0].len());
            if ms
                .iter()
                .any(|m| m.len() != r || m.iter().any(|row| row.len() != c))
            {
                return None;
            }
            Some(Node::Matrix(
                (0..r)
                    .map(|i| {
                        (0..c)
                            .map(|j| Node::Add(ms.iter().map(|m| m[i][j].clone()).collect()))
                            .collect()
                    })
                    .collect(),
            ))
        }
        Node::Mul(v) if has_matrix(v) => {
            let mut acc: Option<Vec<Vec<Node>>> = None;
            let mut scalars: Vec<Node> = Vec::new();
            for x in v {
                if is_constant(x) && !matches!(x, Node::Matrix(_)) && as_matrix(x).is_none() {
                    scalars.push(x.clone());
                    continue;
                }
                let m = as_matrix(x)?;
                acc = Some(match acc {
                    None => m,
                    Some(a) => {
                        let (r, k, c) = (a.len(), a[0].len(), m[0].len());
                        if m.len() != k {
                            return None;
                        }
                        (0..r)
                            .map(|i| {
                                (0..c)
                                    .map(|j| {
                                        Node::Add(
                                            (0..k)
                                                .map(|t| {
                                                    Node::Mul(vec![
                                                        a[i][t].clone(),
                                                        m[t][j].clone(),
                                                    ])
                                                })
                                                .collect(),
                                        )
                                    })
                                    .collect()
                            })
                            .collect()
                    }
                });
            }
            let m = acc?;
            Some(Node::Matrix(
                m.into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|e| {
                                if scalars.is_empty() {
                                    e
                                } else {
                                    let mut f = scalars.clone();
                                    f.push(e);
                                    Node::Mul(f)
                                }
                            })
                            .collect()
                    })
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// `x = 5 + 5 + 1 = 11` is the assignment `x = 11`; `2 + 3 = 5` (all constant) is the value 5.
/// Other relations come back unchanged.
fn reduce_chain(n: &Node) -> Option<Node> {
    let Node::Rel(items, ops) = n else {
        return None;
    };
    if items.len() < 3 || !ops.iter().all(|o| *o == RelOp::Eq) {
        return None;
    }
    let last = items.last()?;
    let head = &items[..items.len() - 1];
    if let Some(target) = head.iter().rev().find(|x| is_name(x)) {
        if !is_constant(last) && !head.iter().all(|x| is_name(x) || is_constant(x)) {
            return None;
        }
        return Some(Node::Rel(
            vec![target.clone(), last.clone()],
            vec![RelOp::Eq],
        ));
    }
    if head.iter().all(is_constant) && is_constant(last) {
        return Some(last.clone());
    }
    None
}

/// Right-hand sides of a named assignment must not themselves be names (`x = y` is an equation).
fn is_not_a_bare_name(n: &Node) -> bool {
    !matches!(n, Node::Sym(_))
}

fn is_intervalish(n: &Node) -> bool {
    matches!(n, Node::Interval { .. } | Node::Union(_))
}

/// A one-variable inequality (or chain) with constant bounds as an interval.
fn inequality_interval(n: &Node) -> Option<Interval<'_>> {
    let Node::Rel(items, ops) = n else {
        return None;
    };
    let ascending = ops.iter().all(|o| matches!(o, RelOp::Lt | RelOp::Le));
    let descending = ops.iter().all(|o| matches!(o, RelOp::Gt | RelOp::Ge));
    if !(ascending || descending) || items.len() > 3 {
        return None;
    }
    let mut items: Vec<&Node> = items.iter().collect();
    let mut closed: Vec<bool> = ops
        .iter()
        .map(|o| matches!(o, RelOp::Le | RelOp::Ge))
        .collect();
    if descending {
        items.reverse();
        closed.reverse();
    }
    let var = items.iter().position(|x| is_name(x))?;
    if items
        .iter()
        .enumerate()
        .any(|(k, x)| k != var && !is_constant(x))
    {
        return None;
    }
    let lo = if var == 0 {
        Bound::NegInf
    } else {
        bound(items[var - 1], closed[var - 1])
    };
    let hi = if var + 1 == items.len() {
        Bound::PosInf
    } else {
        bound(items[var + 1], closed[var])
    };
    Some(Interval { lo, hi })
}

/// Intervals of an interval-like answer; a round pair counts as an open interval here.
fn intervals(n: &Node) -> Option<Vec<Interval<'_>>> {
    match n {
        Node::Interval {
            lo,
            hi,
            lo_closed,
            hi_closed,
        } => Some(vec![Interval {
            lo: bound(lo, *lo_closed),
            hi: bound(hi, *hi_closed),
        }]),
        Node::Tuple(v) if v.len() == 2 => Some(vec![Interval {
            lo: bound(&v[0], false),
            hi: bound(&v[1], false),
        }]),
        Node::Union(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(intervals(p)?);
            }
            Some(out)
        }
        Node::Rel(items, ops) if ops.len() == 1 && ops[0] == RelOp::In && is_name(&items[0]) => {
            intervals(&items[1])
        }
        Node::Rel(..) => inequality_interval(n).map(|i| vec![i]),
        // Alternatives joined by "or" are a union.
        Node::List(parts) => {
            let mut out = Vec::new();
            for p in parts {
                if !matches!(p, Node::Rel(..) | Node::Interval { .. }) {
                    return None;
                }
                out.extend(intervals(p)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// The ± expansion of `n` as one node: the single alternative, or a list of them.
fn plus_minus_alternatives(n: &Node) -> Node {
    let mut alts = expand_pm(n);
    if alts.len() == 1 {
        alts.pop().expect("one")
    } else {
        Node::List(alts)
    }
}

/// `±` expanded into its alternatives (lists and sets flatten them into elements).
fn expand_pm(n: &Node) -> Vec<Node> {
    fn cap(mut v: Vec<Node>) -> Vec<Node> {
        v.truncate(MAX_PM);
        v
    }
    fn product(parts: Vec<Vec<Node>>, build: &dyn Fn(Vec<Node>) -> Node) -> Vec<Node> {
        let mut acc: Vec<Vec<Node>> = vec![Vec::new()];
        for alts in parts {
            let mut next = Vec::new();
            for prefix in &acc {
                for a in &alts {
                    if next.len() >= MAX_PM {
                        break;
                    }
                    let mut p = prefix.clone();
                    p.push(a.clone());
                    next.push(p);
                }
            }
            acc = next;
        }
        acc.into_iter().map(build).collect()
    }
    match n {
        Node::PlusMinus(a, b) => {
            let mut out = Vec::new();
            for x in expand_pm(a) {
                for y in expand_pm(b) {
                    out.push(Node::Add(vec![x.clone(), y.clone()]));
                    out.push(Node::Add(vec![x.clone(), Node::Neg(Box::new(y))]));
                }
            }
            cap(out)
        }
        Node::List(v) | Node::Set(v) => {
            let flat: Vec<Node> = v.iter().flat_map(expand_pm).take(MAX_ELEMENTS).collect();
            vec![if matches!(n, Node::Set(_)) {
                Node::Set(flat)
            } else {
                Node::List(flat)
            }]
        }
        Node::Add(v) => product(v.iter().map(expand_pm).collect(), &|p| Node::Add(p)),
        Node::Mul(v) => product(v.iter().map(expand_pm).collect(), &|p| Node::Mul(p)),
        Node::Rel(v, ops) => {
            let ops = ops.clone();
            product(v.iter().map(expand_pm).collect(), &move |p| {
                Node::Rel(p, ops.clone())
            })
        }
        Node::Neg(a) => expand_pm(a)
            .into_iter()
            .map(|x| Node::Neg(Box::new(x)))
            .collect(),
        Node::Div(a, b) => product(vec![expand_pm(a), expand_pm(b)], &|mut p| {
            let d = p.pop().expect("two");
            Node::Div(Box::new(p.pop().expect("two")), Box::new(d))
        }),
        Node::Root(k, a) => expand_pm(a)
            .into_iter()
            .map(|x| Node::Root(k.clone(), Box::new(x)))
            .collect(),
        other => vec![other.clone()],
    }
}

/// A decimal literal as written (sign and percent included): value, decimals, significant digits.
fn decimal_literal(n: &Node) -> Option<(BigRational, u32, u32)> {
    match n {
        Node::Num(Literal {
            value,
            decimals,
            significant,
        }) if *decimals > 0 => Some((value.clone(), *decimals, *significant)),
        Node::Neg(a) => decimal_literal(a).map(|(v, d, s)| (-v, d, s)),
        Node::Percent(a) => decimal_literal(a)
            .map(|(v, d, s)| (v / BigRational::from_integer(100.into()), d + 2, s)),
        _ => None,
    }
}

fn strip_percent(n: &Node) -> Option<&Node> {
    match n {
        Node::Percent(a) => Some(a),
        _ => None,
    }
}

fn values_equal(a: &Val, b: &Val, tol: f64) -> bool {
    match (a, b) {
        (Val::Exact(x), Val::Exact(y)) => x == y,
        _ => close(a.approx(), b.approx(), tol),
    }
}

fn close(x: Complex64, y: Complex64, tol: f64) -> bool {
    let diff = (x - y).norm();
    diff <= ABS_TOL || diff <= tol * x.norm().max(y.norm())
}

/// The precision rule: a decimal with at least `MIN_SIGNIFICANT` significant digits matches
/// an exact value that cannot be written with that many decimals when it is that value
/// rounded (half away from zero) or truncated to its own number of decimals.
fn decimal_matches(x: &BigRational, decimals: u32, significant: u32, v: &Val) -> bool {
    if significant < MIN_SIGNIFICANT {
        return false;
    }
    let scale = BigRational::from_integer(num_traits::pow(BigInt::from(10u8), decimals as usize));
    let m = x * &scale;
    if !m.is_integer() {
        return false;
    }
    match v {
        Val::Exact(r) => {
            // A value with a finite decimal expansion must be written exactly (`1.41` is not
            // `1.414`); only 1/3-like values are approximated.
            let mut d = r.denom().clone();
            for p in [2u8, 5u8] {
                let p = BigInt::from(p);
                while (&d % &p).is_zero() {
                    d /= &p;
                }
            }
            if d == BigInt::from(1u8) {
                return false;
            }
            let t = r * &scale;
            if t.is_integer() {
                return false;
            }
            m == t.trunc() || m == t.round()
        }
        Val::Approx(c) => {
            // `f64` holds about 15 significant digits: past them it cannot tell the last one.
            if c.im.abs() > ABS_TOL || significant > 15 || decimals > 15 {
                return false;
            }
            let t = c.re * 10f64.powi(decimals as i32);
            let mf = super::value::to_f64(&m);
            // Within float noise of a rounding boundary either neighbour is accepted.
            let near = |k: f64| (mf - k).abs() < 0.5 && (t - k).abs() < 1.0 + 1e-9 * t.abs();
            near(t.trunc()) || near(t.round())
        }
    }
}

struct Cmp<'a> {
    limits: &'a Limits,
    budget: &'a mut Budget,
}

impl Cmp<'_> {
    fn equiv(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        self.budget.tick(1)?;
        if g.has_plus_minus() {
            let alt = plus_minus_alternatives(g);
            return if alt.has_plus_minus() {
                Ok(false)
            } else {
                self.equiv(&alt, a)
            };
        }
        if a.has_plus_minus() {
            let alt = plus_minus_alternatives(a);
            return if alt.has_plus_minus() {
                Ok(false)
            } else {
                self.equiv(g, &alt)
            };
        }
        if let Some(m) = fold_matrices(g) {
            return self.equiv(&m, a);
        }
        if let Some(m) = fold_matrices(a) {
            return self.equiv(g, &m);
        }
        if let Some(r) = reduce_chain(g) {
            return self.equiv(&r, a);
        }
        if let Some(r) = reduce_chain(a) {
            return self.equiv(g, &r);
        }
        if let Some(u) = self.abs_range(g)? {
            return self.equiv(&u, a);
        }
        if let Some(u) = self.abs_range(a)? {
            return self.equiv(g, &u);
        }
        if let Some(rhs) = assignment_rhs(g) {
            if !a.is_relation() {
                return self.equiv(rhs, a);
            }
        }
        if let Some(rhs) = assignment_rhs(a) {
            if !g.is_relation() {
                return self.equiv(g, rhs);
            }
        }
        match (g, a) {
            // `(1, 3)` against `1, 3`: the same items in the same order.
            (Node::Tuple(x), Node::List(y)) if x.len() == y.len() => self.ordered(x, y),
            // `x < 1 \text{ or } x > 3` against `(-\infty, 1) \cup (3, \infty)`.
            (Node::List(_), _) if is_intervalish(a) && intervals(g).is_some() => {
                self.interval_sets(g, a)
            }
            (_, Node::List(_)) if is_intervalish(g) && intervals(a).is_some() => {
                self.interval_sets(g, a)
            }
            (Node::List(_) | Node::Set(_), _) | (_, Node::List(_) | Node::Set(_)) => {
                self.collections(g, a)
            }
            (Node::Rel(..), Node::Rel(..)) => self.relations(g, a),
            _ if is_intervalish(g) || is_intervalish(a) => self.interval_sets(g, a),
            // `1 < x < 2` against `(1, 2)`: the pair is an open interval here.
            (Node::Rel(..), Node::Tuple(_)) | (Node::Tuple(_), Node::Rel(..))
                if inequality_interval(g).is_some() || inequality_interval(a).is_some() =>
            {
                self.interval_sets(g, a)
            }
            (Node::Rel(..), _) | (_, Node::Rel(..)) => Ok(false),
            (Node::Tuple(x), Node::Tuple(y)) => self.ordered(x, y),
            (Node::Matrix(x), Node::Matrix(y)) => {
                if x.len() != y.len() || x[0].len() != y[0].len() {
                    return Ok(false);
                }
                let xs: Vec<Node> = x.iter().flatten().cloned().collect();
                let ys: Vec<Node> = y.iter().flatten().cloned().collect();
                self.ordered(&xs, &ys)
            }
            (Node::Matrix(m), Node::Tuple(t)) | (Node::Tuple(t), Node::Matrix(m)) => {
                let flat: Vec<Node> = m.iter().flatten().cloned().collect();
                let is_vector = m.len() == 1 || m[0].len() == 1;
                Ok(is_vector && self.ordered(&flat, t)?)
            }
            (Node::Ratio(x), Node::Ratio(y)) => self.ratios(x, y),
            (Node::Ratio(x), s) | (s, Node::Ratio(x)) => {
                if x.len() != 2 {
                    return Ok(false);
                }
                let q = Node::Div(Box::new(x[0].clone()), Box::new(x[1].clone()));
                self.scalars(&q, s)
            }
            (Node::Text(x), Node::Text(y)) => Ok(text_key(x) == text_key(y)),
            (Node::Text(x), Node::Sym(y)) | (Node::Sym(y), Node::Text(x)) => {
                Ok(text_key(x) == text_key(y))
            }
            (Node::Text(_), _) | (_, Node::Text(_)) => Ok(false),
            (Node::Tuple(_) | Node::Matrix(_), _) | (_, Node::Tuple(_) | Node::Matrix(_)) => {
                Ok(false)
            }
            _ => self.scalars(g, a),
        }
    }

    fn ordered(&mut self, x: &[Node], y: &[Node]) -> Result<bool, EvalErr> {
        if x.len() != y.len() {
            return Ok(false);
        }
        for (p, q) in x.iter().zip(y) {
            if !self.equiv(p, q)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Lists and sets match as multisets; a lone answer matches a one-element collection.
    fn collections(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        fn elems(n: &Node) -> &[Node] {
            match n {
                Node::List(v) | Node::Set(v) => v,
                other => std::slice::from_ref(other),
            }
        }
        let (gs, mut as_) = (elems(g), elems(a));
        if gs.len() > MAX_ELEMENTS || as_.len() > MAX_ELEMENTS {
            return Err(EvalErr::Budget);
        }
        // `x = 3, y = 4` gives the values of different unknowns: bare values answer them in
        // that order (`3, 4`), not in any order (`4, 3` would swap x and y).
        if let Some(values) = values_of_distinct_names(gs) {
            if as_.len() == values.len() && !as_.iter().any(Node::is_relation) {
                return self.ordered(&values, as_);
            }
        }
        // A solution listed twice in a list of several (`(3,17,3,7)` repeated) is the same list.
        let deduped: Vec<Node>;
        if gs.len() >= 2 && as_.len() > gs.len() {
            let mut kept: Vec<Node> = Vec::new();
            for y in as_ {
                let mut seen = false;
                for k in &kept {
                    if self.equiv(k, y)? {
                        seen = true;
                        break;
                    }
                }
                if !seen {
                    kept.push(y.clone());
                }
            }
            deduped = kept;
            as_ = &deduped;
        }
        if gs.len() != as_.len() {
            return Ok(false);
        }
        let mut used = vec![false; as_.len()];
        'outer: for x in gs {
            for (k, y) in as_.iter().enumerate() {
                if !used[k] && self.equiv(x, y)? {
                    used[k] = true;
                    continue 'outer;
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// `1 \le |z| \le \frac32` (a positive constant lower bound) as the union
    /// `[-\frac32, -1] \cup [1, \frac32]`.
    fn abs_range(&mut self, n: &Node) -> Result<Option<Node>, EvalErr> {
        let Node::Rel(items, ops) = n else {
            return Ok(None);
        };
        if items.len() != 3 || !ops.iter().all(|o| matches!(o, RelOp::Lt | RelOp::Le)) {
            return Ok(None);
        }
        let (lo, mid, hi) = (&items[0], &items[1], &items[2]);
        let Node::Func(Func::Abs, inner) = mid else {
            return Ok(None);
        };
        if !is_name(inner) || !is_constant(lo) || !is_constant(hi) {
            return Ok(None);
        }
        let positive = match self.eval(lo, &HashMap::new()) {
            Ok(Val::Exact(r)) => r.is_positive(),
            Ok(Val::Approx(c)) => c.im.abs() <= ABS_TOL && c.re > 0.0,
            Err(EvalErr::Budget) => return Err(EvalErr::Budget),
            Err(_) => false,
        };
        if !positive {
            return Ok(None);
        }
        let (lc, hc) = (ops[0] == RelOp::Le, ops[1] == RelOp::Le);
        let neg = |x: &Node| Box::new(Node::Neg(Box::new(x.clone())));
        Ok(Some(Node::Union(vec![
            Node::Interval {
                lo: neg(hi),
                hi: neg(lo),
                lo_closed: hc,
                hi_closed: lc,
            },
            Node::Interval {
                lo: Box::new(lo.clone()),
                hi: Box::new(hi.clone()),
                lo_closed: lc,
                hi_closed: hc,
            },
        ])))
    }

    fn interval_sets(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        let (Some(gi), Some(ai)) = (intervals(g), intervals(a)) else {
            return Ok(false);
        };
        if gi.len() != ai.len() || gi.len() > MAX_ELEMENTS {
            return Ok(false);
        }
        let mut used = vec![false; ai.len()];
        'outer: for x in &gi {
            for (k, y) in ai.iter().enumerate() {
                if !used[k] && self.bound_eq(&x.lo, &y.lo)? && self.bound_eq(&x.hi, &y.hi)? {
                    used[k] = true;
                    continue 'outer;
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    fn bound_eq(&mut self, x: &Bound, y: &Bound) -> Result<bool, EvalErr> {
        match (x, y) {
            (Bound::NegInf, Bound::NegInf) | (Bound::PosInf, Bound::PosInf) => Ok(true),
            (Bound::At(p, c), Bound::At(q, d)) => Ok(c == d && self.scalars(p, q)?),
            _ => Ok(false),
        }
    }

    fn relations(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        if let (Some(gi), Some(ai)) = (inequality_interval(g), inequality_interval(a)) {
            return Ok(self.bound_eq(&gi.lo, &ai.lo)? && self.bound_eq(&gi.hi, &ai.hi)?);
        }
        // `x \in [-2, 7]` against `-2 \le x \le 7`, both ways.
        let is_in = |n: &Node| matches!(n, Node::Rel(_, o) if o.len() == 1 && o[0] == RelOp::In);
        if (is_in(g) || is_in(a)) && intervals(g).is_some() && intervals(a).is_some() {
            return self.interval_sets(g, a);
        }
        let (Node::Rel(gi, go), Node::Rel(ai, ao)) = (g, a) else {
            return Ok(false);
        };
        if go.len() != 1 || ao.len() != 1 {
            // Chains compare link by link.
            if go != ao || gi.len() != ai.len() {
                return Ok(false);
            }
            return self.ordered(gi, ai);
        }
        let normal = |items: &[Node], op: RelOp| -> (Node, RelOp) {
            let diff =
                |l: &Node, r: &Node| Node::Add(vec![l.clone(), Node::Neg(Box::new(r.clone()))]);
            match op {
                RelOp::Gt => (diff(&items[1], &items[0]), RelOp::Lt),
                RelOp::Ge => (diff(&items[1], &items[0]), RelOp::Le),
                op => (diff(&items[0], &items[1]), op),
            }
        };
        let (f, fo) = normal(gi, go[0]);
        let (h, ho) = normal(ai, ao[0]);
        if fo != ho || fo == RelOp::In {
            return Ok(false);
        }
        if g.symbols().is_empty() && a.symbols().is_empty() {
            return self.ordered(gi, ai);
        }
        // Same solution set: one side is a constant multiple of the other (positive for
        // inequalities, so the direction is kept).
        self.proportional(&f, &h, matches!(fo, RelOp::Lt | RelOp::Le))
    }

    fn ratios(&mut self, x: &[Node], y: &[Node]) -> Result<bool, EvalErr> {
        if x.len() != y.len() {
            return Ok(false);
        }
        // With a zero part (`12:00`, a time) proportionality says nothing: compare parts.
        let zero = |n: &Node| matches!(n, Node::Num(l) if l.value.is_zero());
        if x.iter().chain(y).any(zero) {
            return self.ordered(x, y);
        }
        for k in 1..x.len() {
            let l = Node::Mul(vec![x[k].clone(), y[0].clone()]);
            let r = Node::Mul(vec![y[k].clone(), x[0].clone()]);
            if !self.scalars(&l, &r)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn scalars(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        if let (Some(x), Some(y)) = (inf_sign(g), inf_sign(a)) {
            return Ok(x == y);
        }
        if inf_sign(g).is_some() || inf_sign(a).is_some() {
            return Ok(false);
        }
        if self.scalar_eq(g, a)? {
            return Ok(true);
        }
        // `28\%` also matches 28 (the number of percent).
        match (strip_percent(g), strip_percent(a)) {
            (Some(x), Some(y)) => self.scalar_eq(x, y),
            (Some(x), None) => self.scalar_eq(x, a),
            (None, Some(y)) => self.scalar_eq(g, y),
            (None, None) => Ok(false),
        }
    }

    fn eval(&mut self, n: &Node, env: &HashMap<String, Val>) -> Result<Val, EvalErr> {
        Evaluator {
            env,
            limits: self.limits,
            budget: self.budget,
        }
        .eval(n)
    }

    fn scalar_eq(&mut self, g: &Node, a: &Node) -> Result<bool, EvalErr> {
        let mut syms = g.symbols();
        syms.extend(a.symbols());
        syms.sort();
        syms.dedup();
        if syms.len() > MAX_SYMBOLS {
            return Ok(false);
        }
        if syms.is_empty() {
            let env = HashMap::new();
            // Past f64's range (`e^{3000}`) only the high-precision evaluation can compare.
            let beyond_f64 = |cmp: &mut Self| precise::agree(g, a, &env, cmp.budget) == Some(true);
            let vg = match self.eval(g, &env) {
                Ok(v) => v,
                Err(EvalErr::Budget) => return Err(EvalErr::Budget),
                Err(EvalErr::Undefined) => return Ok(beyond_f64(self)),
                Err(EvalErr::Unsupported) => return Ok(false),
            };
            let va = match self.eval(a, &env) {
                Ok(v) => v,
                Err(EvalErr::Budget) => return Err(EvalErr::Budget),
                Err(EvalErr::Undefined) => return Ok(beyond_f64(self)),
                Err(EvalErr::Unsupported) => return Ok(false),
            };
            if values_equal(&vg, &va, REL_TOL) {
                let both_exact = matches!((&vg, &va), (Val::Exact(_), Val::Exact(_)));
                // An f64 agreement is confirmed at high precision (`e^{25} + 3` is not `e^{25}`);
                // a difference found there still leaves the decimal rule below.
                if both_exact || precise::agree(g, a, &env, self.budget) != Some(false) {
                    return Ok(true);
                }
            }
            if let Some((x, d, s)) = decimal_literal(a) {
                if self.decimal_rounds(&x, d, s, g, &vg) {
                    return Ok(true);
                }
            }
            if let Some((x, d, s)) = decimal_literal(g) {
                return Ok(self.decimal_rounds(&x, d, s, a, &va));
            }
            return Ok(false);
        }
        self.identity(g, a, &syms)
    }

    /// The precision rule for the decimal `x` against the value `v` of `other`. An approximate
    /// value is decided at high precision, where `f64` cannot tell the 17th digit (so
    /// `3.1415926535897933` is not π, and 40 correct digits of √2 are √2).
    fn decimal_rounds(&mut self, x: &BigRational, d: u32, s: u32, other: &Node, v: &Val) -> bool {
        if s < MIN_SIGNIFICANT {
            return false;
        }
        if matches!(v, Val::Approx(c) if c.im.abs() <= ABS_TOL) {
            if let Some(ok) = precise::decimal_matches(other, x, d, self.budget) {
                return ok;
            }
        }
        decimal_matches(x, d, s, v)
    }

    /// Evaluates both sides at the same points; `check` decides each point (None: skip it).
    /// With `confirm`, the first points where approximate values agree are re-checked at high
    /// precision (`precise`), which overrules an `f64` agreement.
    fn at_points(
        &mut self,
        g: &Node,
        a: &Node,
        syms: &[String],
        confirm: bool,
        check: &mut dyn FnMut(&Val, &Val) -> Option<bool>,
    ) -> Result<bool, EvalErr> {
        let mut confirmed = 0;
        let mut rng = Points(0x0B0B_5EED);
        let needed = self.limits.max_points.clamp(1, 32);
        let (mut agreed, mut tries) = (0, 0);
        while agreed < needed && tries < 2 * needed {
            tries += 1;
            // Every third point is negative, so |x| and x (or √(x²) and x) differ.
            let negative = tries % 3 == 0;
            let env: HashMap<String, Val> = syms
                .iter()
                .map(|s| (s.clone(), Val::Exact(rng.rational(negative))))
                .collect();
            let vg = match self.eval(g, &env) {
                Ok(v) => v,
                Err(EvalErr::Undefined) => continue,
                Err(EvalErr::Budget) => return Err(EvalErr::Budget),
                Err(EvalErr::Unsupported) => return Ok(false),
            };
            let va = match self.eval(a, &env) {
                Ok(v) => v,
                Err(EvalErr::Undefined) => continue,
                Err(EvalErr::Budget) => return Err(EvalErr::Budget),
                Err(EvalErr::Unsupported) => return Ok(false),
            };
            // Off the real domain of either side (ln of a negative), a point says nothing.
            if negative && (vg.approx().im.abs() > ABS_TOL || va.approx().im.abs() > ABS_TOL) {
                continue;
            }
            match check(&vg, &va) {
                Some(true) => {
                    let approx = !matches!((&vg, &va), (Val::Exact(_), Val::Exact(_)));
                    if confirm && approx && confirmed < CONFIRM_POINTS {
                        confirmed += 1;
                        if precise::agree(g, a, &env, self.budget) == Some(false) {
                            return Ok(false);
                        }
                    }
                    agreed += 1
                }
                Some(false) => return Ok(false),
                None => {}
            }
        }
        Ok(agreed >= needed.min(3))
    }

    fn identity(&mut self, g: &Node, a: &Node, syms: &[String]) -> Result<bool, EvalErr> {
        self.at_points(g, a, syms, true, &mut |x, y| {
            Some(values_equal(x, y, POINT_TOL))
        })
    }

    /// `h = c·f` for one constant c ≠ 0 (c > 0 when `positive`).
    fn proportional(&mut self, f: &Node, h: &Node, positive: bool) -> Result<bool, EvalErr> {
        let mut syms = f.symbols();
        syms.extend(h.symbols());
        syms.sort();
        syms.dedup();
        if syms.len() > MAX_SYMBOLS {
            return Ok(false);
        }
        let mut ratio: Option<Val> = None;
        self.at_points(f, h, &syms, false, &mut |x, y| {
            match (x.is_zero(), y.is_zero()) {
                (true, true) => return None,
                (true, false) | (false, true) => return Some(false),
                _ => {}
            }
            let c = match (x, y) {
                (Val::Exact(p), Val::Exact(q)) => Val::Exact(q / p),
                _ => Val::Approx(y.approx() / x.approx()),
            };
            if let Some(r) = &ratio {
                return Some(values_equal(r, &c, POINT_TOL));
            }
            let ok = match &c {
                Val::Exact(r) => !positive || r.is_positive(),
                Val::Approx(z) => z.im.abs() <= ABS_TOL && (!positive || z.re > 0.0),
            };
            ratio = Some(c);
            Some(ok)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(g: &str, r: &str) -> Status {
        verify_pair(g, r, &Options::default())
    }

    #[test]
    fn basic_verdicts() {
        assert_eq!(v("\\frac{1}{2}", "0.5"), Status::Correct);
        assert_eq!(v("4", "4\\sqrt2"), Status::Wrong);
        assert_eq!(v("(0,9)", "[0,9)"), Status::Wrong);
        assert_eq!(v("x<1", "x>-1"), Status::Wrong);
        assert_eq!(v("\\text{13}", "13"), Status::Wrong);
        // A blank gold matches nothing, an empty box least of all.
        for blank in [
            "\\boxed{}",
            "\\boxed{ }",
            "\\text{}",
            "{}",
            "$ $",
            "\\boxed{\\text{ }}",
            "\\fbox{\\,}",
        ] {
            assert_eq!(
                v(blank, "The answer is \\boxed{}."),
                Status::Unparseable,
                "{blank}"
            );
            assert_eq!(v(blank, blank), Status::Unparseable, "{blank}");
            assert_eq!(v(blank, "\\boxed{42}"), Status::Unparseable, "{blank}");
        }
        assert_eq!(v("\\emptyset", "\\boxed{\\varnothing}"), Status::Correct);
        assert_eq!(v("\\{\\}", "\\boxed{\\emptyset}"), Status::Correct);
        assert_eq!(v("\\boxed{0}", "\\boxed{0}"), Status::Correct);
        assert_eq!(v("\\text{13}", "\\boxed{\\textbf{13}}"), Status::Correct);
        assert_eq!(v("\\text{5 cm}", "\\boxed{5}"), Status::Correct);
        assert_eq!(v("\\text{5 cm}", "\\boxed{5 \\text{ cm}}"), Status::Correct);
        assert_eq!(v("13", "\\boxed{\\text{13}}"), Status::Correct);
        assert_eq!(v("5", "\\boxed{\\text{5 apples}}"), Status::Correct);
        assert_ne!(v("5", "\\boxed{\\text{5 or 6}}"), Status::Correct);
        assert_ne!(v("5", "\\boxed{\\text{5 dozen}}"), Status::Correct);
        assert_eq!(v("5", "no digits here"), Status::NoAnswer);
        // A value given as an approximation with nothing before it.
        assert_eq!(v("\\sqrt2", "\\boxed{\\approx 1.414}"), Status::Correct);
        assert_eq!(v("\\sqrt2", "\\boxed{\\approx 1.42}"), Status::Wrong);
        // Values of different unknowns keep their order; solutions of one unknown need none.
        assert_eq!(v("x=3, y=4", "\\boxed{3, 4}"), Status::Correct);
        assert_eq!(v("x=3, y=4", "\\boxed{4, 3}"), Status::Wrong);
        assert_eq!(v("x=3, y=4", "\\boxed{y=4, x=3}"), Status::Correct);
        assert_eq!(v("x=3, x=4", "\\boxed{4, 3}"), Status::Correct);
    }

    /// A hedge over choices (`(A) or (B)`) never matches one of them; a label with its
    /// content does.
    #[test]
    fn a_hedge_over_choices_matches_none() {
        assert_eq!(v("A", "The answer is (A) or (B)"), Status::Wrong);
        assert_eq!(v("B", "The answer is (A) or (B)"), Status::Wrong);
        assert_eq!(v("A", "\\boxed{(A)(B)}"), Status::Wrong);
        assert_eq!(v("A", "\\boxed{A) or B)}"), Status::Wrong);
        assert_eq!(v("A", "\\boxed{(A), B}"), Status::Wrong);
        assert_eq!(v("A", "\\boxed{(A) 5}"), Status::Correct);
        assert_eq!(v("C", "\\boxed{\\textbf{(C)} 12}"), Status::Correct);
        assert_eq!(v("A", "\\boxed{(A) orange}"), Status::Correct);
    }

    /// Word answers compare by their words only when no math operator is dropped on the way.
    #[test]
    fn text_fallback_keeps_operators() {
        assert_eq!(
            v("\\mathbb{R}", "\\boxed{\\mathbb{R}^+}"),
            Status::Unparseable
        );
        assert_eq!(
            v("\\mathbb{R}", "\\boxed{\\mathbb{R}_{>0}}"),
            Status::Unparseable
        );
        assert_eq!(v("\\text{Tuesday}", "\\boxed{Tuesday}"), Status::Correct);
    }

    /// Tiny values are not zero, and decimals are held to their digits past `f64`'s 16.
    #[test]
    fn precision_past_f64() {
        assert_eq!(v("0", "e^{-100}"), Status::Wrong);
        assert_eq!(v("0", "\\pi \\cdot 10^{-50}"), Status::Wrong);
        assert_eq!(v("0", "\\sin(\\pi)"), Status::Correct);
        assert_eq!(v("\\pi", "3.1415926535897932"), Status::Correct);
        assert_eq!(v("\\pi", "3.1415926535897933"), Status::Wrong);
        assert_eq!(v("\\pi", "3.14159265358979323999"), Status::Wrong);
        assert_eq!(
            v("\\pi", "3.14159265358979323846264338327950288"),
            Status::Correct
        );
        assert_eq!(
            v("\\frac13", "0.333333333333333333333333333333333333"),
            Status::Correct
        );
        assert_eq!(v("\\sin(\\pi/6)", "0.499"), Status::Wrong);
        assert_eq!(v("x'", "x"), Status::Wrong);
        assert_eq!(v("f'(x)", "f(x)"), Status::Wrong);
        assert_eq!(v("x_1", "x_{1}"), Status::Correct);
    }

    /// One comma-grouped answer has one value: `3,000` is not also `3.000` or the list `3, 0`,
    /// so it cannot win for gold 3 and gold 3000 at once.
    #[test]
    fn thousands_grouping_is_not_also_a_decimal_comma_or_a_list() {
        for (gold, answer, want) in [
            ("3000", "\\boxed{3,000}", Status::Correct),
            ("3", "\\boxed{3,000}", Status::Wrong),
            ("3, 0", "\\boxed{3,000}", Status::Wrong),
            ("3.5", "3,500", Status::Wrong),
            ("3500", "3,500", Status::Correct),
            ("1234567", "1,234,567", Status::Correct),
            ("1.234", "1,234,567", Status::Wrong),
            ("1000.5", "1,000.5", Status::Correct),
            ("0.5", "0,500", Status::Correct),
            ("500", "0,500", Status::Wrong),
            ("1.5", "1,5", Status::Correct),
            ("1.22", "1,22", Status::Correct),
            ("1, 22", "1,22", Status::Correct),
            ("3000", "3{,}000", Status::Correct),
        ] {
            assert_eq!(v(gold, answer), want, "{gold} vs {answer}");
        }
        for (s, want) in [
            ("3,000", true),
            ("x = 12,345,678.", true),
            ("1,000.5", true),
            ("0,500", false),
            ("1,22", false),
            ("1,2345", false),
            ("3.5,000", false),
            ("10,4,2", false),
            ("(1,2)", false),
        ] {
            assert_eq!(has_thousands_grouping(s), want, "{s}");
        }
    }

    const PIECES: [&str; 24] = [
        "\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "^", "_", "12", "0.5", ",",
        "x", "\\pi", "+", "-", "=", "<", "\\infty", "\\boxed{", "\\text{",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Any token soup gets a status (no panic, no hang), in both roles.
        #[test]
        fn token_soup_never_panics(g in proptest::collection::vec(0usize..24, 0..20),
                                   r in proptest::collection::vec(0usize..24, 0..40)) {
            let g: String = g.into_iter().map(|k| PIECES[k]).collect();
            let r: String = r.into_iter().map(|k| PIECES[k]).collect();
            let _ = v(&g, &r);
            let _ = v(&r, &g);
        }

        #[test]
        fn arbitrary_text_never_panics(g in "\\PC{0,30}", r in "\\PC{0,80}") {
            let _ = v(&g, &r);
        }
    }

    #[test]
    fn formats_of_the_second_round() {
        // Repeating decimals in parentheses right after the point.
        assert_eq!(v("\\frac13", "\\boxed{0.(3)}"), Status::Correct);
        assert_eq!(v("0", "\\boxed{0.(3)}"), Status::Wrong);
        assert_eq!(v("6", "\\boxed{1.(6)}"), Status::Wrong);
        // Underflow is no zero, and two underflows are not equal.
        assert_eq!(v("0", "\\boxed{10^{-10^{10}}}"), Status::Wrong);
        assert_eq!(
            v("10^{-10^{10}}", "\\boxed{2 \\cdot 10^{-10^{10}}}"),
            Status::Wrong
        );
        assert_eq!(v("0", "\\boxed{e^{-1000}}"), Status::Wrong);
        // Degrees in a trig argument.
        assert_eq!(
            v("\\frac{\\sqrt3}{2}", "\\boxed{\\sin 60^\\circ}"),
            Status::Correct
        );
        assert_eq!(v("\\frac12", "\\boxed{\\sin 60^\\circ}"), Status::Wrong);
        assert_eq!(v("\\frac{\\pi}{6}", "\\boxed{30^\\circ}"), Status::Wrong);
        // GSM8K golds and responses.
        let gsm = "48/2 = <<48/2=24>>24 clips in May.\n#### 72";
        assert_eq!(v(gsm, "\\boxed{72}"), Status::Correct);
        assert_eq!(v(gsm, "\\boxed{24}"), Status::Wrong);
        assert_eq!(v("41", "The answer is 41.\n#### 42"), Status::Wrong);
        // Yes/no.
        assert_eq!(v("no", "\\boxed{No}"), Status::Correct);
        assert_eq!(v("\\text{no}", "No"), Status::Correct);
        assert_eq!(v("yes", "\\boxed{No}"), Status::Wrong);
    }

    #[test]
    fn budget_cases_are_quick() {
        assert_eq!(v("5", "5^{5^{5^{5^5}}}"), Status::Wrong);
        let deep = format!("\\boxed{{{}1{}}}", "{".repeat(10_000), "}".repeat(10_000));
        assert_eq!(v("1", &deep), Status::BudgetExceeded);
        let big = "1".repeat(1 << 21);
        assert_eq!(v("1", &big), Status::BudgetExceeded);
        // Unclosed delimiters by the hundred thousand: each stretch is searched once.
        for unit in ["\\[ ", "\\( ", "$$ ", "$1 ", "a2 ", "$ \n"] {
            let r = unit.repeat(200_000);
            assert_ne!(v("7", &r), Status::Correct);
        }
        // A periodic function of a huge argument: once seconds (π to 265,000 bits), now
        // undecided at once.
        for f in ["\\sin(10^{80000}\\pi)", "\\cos(2^{240000})"] {
            let t = std::time::Instant::now();
            assert_eq!(v(f, &format!("{f}+0")), Status::Wrong);
            assert!(t.elapsed().as_millis() < 500, "{f}: {:?}", t.elapsed());
        }
    }
}
