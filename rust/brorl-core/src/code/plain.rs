//! Plain data: the only values that cross the sandbox boundary (see `py/codec.py` for the
//! wire layout), and the exact comparison of a `call` test's returned value with the
//! expected one. Integers are kept exactly (any size, as canonical hex digits); a tolerance
//! applies only where the expected value is a float.

use std::collections::HashMap;

/// A value made of Python's plain builtin types.
#[derive(Clone, Debug, PartialEq)]
pub enum Plain {
    None,
    Bool(bool),
    /// Canonical lowercase hex, `-` for negatives, no leading zeros (`0` for zero).
    Int(String),
    Float(f64),
    /// UTF-8 (with lone surrogates kept as Python's `surrogatepass` writes them).
    Str(Vec<u8>),
    Bytes(Vec<u8>),
    List(Vec<Plain>),
    Tuple(Vec<Plain>),
    Set(Vec<Plain>),
    Dict(Vec<(Plain, Plain)>),
}

const MAX_DEPTH: usize = 100;

/// Canonical hex of an integer given as hex digits with an optional sign.
fn canon_hex(neg: bool, digits: &str) -> String {
    let d = digits.trim_start_matches('0');
    if d.is_empty() {
        "0".into()
    } else if neg {
        format!("-{d}")
    } else {
        d.into()
    }
}

/// Hex of a decimal integer text (`-?[0-9]+`), exact at any size.
pub fn decimal_to_hex(text: &str) -> Option<String> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Little-endian base 2^32 limbs, times 10 plus digit.
    let mut limbs: Vec<u32> = vec![0];
    for b in digits.bytes() {
        let mut carry = u64::from(b - b'0');
        for l in limbs.iter_mut() {
            let v = u64::from(*l) * 10 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut hex = String::new();
    for (i, l) in limbs.iter().rev().enumerate() {
        if i == 0 {
            hex.push_str(&format!("{l:x}"));
        } else {
            hex.push_str(&format!("{l:08x}"));
        }
    }
    Some(canon_hex(neg, &hex))
}

impl Plain {
    /// An integer from its (decimal) value.
    pub fn int(v: i128) -> Plain {
        let hex = format!("{:x}", v.unsigned_abs());
        Plain::Int(canon_hex(v < 0, &hex))
    }

    /// An integer from hex digits with an optional leading `-`.
    pub fn int_hex(text: &str) -> Option<Plain> {
        let (neg, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Plain::Int(canon_hex(neg, &digits.to_ascii_lowercase())))
    }

    pub fn str(s: &str) -> Plain {
        Plain::Str(s.as_bytes().to_vec())
    }

    /// The value of a JSON text, with integers kept exactly at any size.
    pub fn from_json(text: &str) -> Result<Plain, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(v)
    }

    /// Parses one value of the wire format; `Err` on anything malformed.
    pub fn decode(data: &[u8]) -> Result<Plain, String> {
        let mut d = Decoder { b: data, i: 0 };
        let v = d.value(0)?;
        if d.i != data.len() {
            return Err("trailing bytes".into());
        }
        Ok(v)
    }

    /// Parses one value at the start of `data`; returns it and the bytes it took.
    pub fn decode_prefix(data: &[u8]) -> Result<(Plain, usize), String> {
        let mut d = Decoder { b: data, i: 0 };
        let v = d.value(0)?;
        Ok((v, d.i))
    }

    /// The wire encoding (canonical for ints; sets and dicts in stored order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Plain::None => out.push(b'N'),
            Plain::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
            Plain::Int(h) => {
                out.push(b'i');
                out.extend_from_slice(h.as_bytes());
                out.push(b';');
            }
            Plain::Float(f) => {
                out.push(b'f');
                out.extend_from_slice(&f.to_le_bytes());
            }
            Plain::Str(s) | Plain::Bytes(s) => {
                out.push(if matches!(self, Plain::Str(_)) {
                    b's'
                } else {
                    b'b'
                });
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            Plain::List(v) | Plain::Tuple(v) | Plain::Set(v) => {
                out.push(match self {
                    Plain::List(_) => b'l',
                    Plain::Tuple(_) => b't',
                    _ => b'S',
                });
                out.extend_from_slice(format!("{}:", v.len()).as_bytes());
                for x in v {
                    x.encode(out);
                }
            }
            Plain::Dict(v) => {
                out.extend_from_slice(format!("d{}:", v.len()).as_bytes());
                for (k, x) in v {
                    k.encode(out);
                    x.encode(out);
                }
            }
        }
    }

    /// The exact-type key of a set item or dict key: its encoding, with the items of a nested
    /// set (a frozenset) in a canonical order, since equal sets may be stored in any order.
    fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.key_into(&mut out);
        out
    }

    fn key_into(&self, out: &mut Vec<u8>) {
        match self {
            Plain::Set(items) => {
                let mut keys: Vec<Vec<u8>> = items.iter().map(Plain::key).collect();
                keys.sort();
                out.extend_from_slice(format!("S{}:", keys.len()).as_bytes());
                for k in keys {
                    out.extend_from_slice(&k);
                }
            }
            Plain::List(items) | Plain::Tuple(items) => {
                out.push(if matches!(self, Plain::List(_)) {
                    b'l'
                } else {
                    b't'
                });
                out.extend_from_slice(format!("{}:", items.len()).as_bytes());
                for x in items {
                    x.key_into(out);
                }
            }
            other => other.encode(out),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Plain::Float(f) => Some(*f),
            Plain::Int(h) => {
                let (neg, d) = match h.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, h.as_str()),
                };
                let mut v = 0f64;
                for c in d.chars() {
                    v = v * 16.0 + f64::from(c.to_digit(16)?);
                }
                Some(if neg { -v } else { v })
            }
            _ => None,
        }
    }
}

/// Whether a `call` test's returned value `got` equals `want`: exact for every type, with
/// two rules for data that came from JSON: a list equals a tuple with equal items, and where
/// `want` is a float, `got` (a float or an int) may differ by `tol` relative to
/// `max(1, |want|)`. An int never equals a float expectation's neighbour when `want` is an
/// int, and `True` is not `1`.
pub fn matches(got: &Plain, want: &Plain, tol: f64) -> bool {
    use Plain::*;
    match (got, want) {
        (Float(_) | Int(_), Float(w)) => {
            let g = got.as_f64().unwrap_or(f64::NAN);
            g == *w || (g.is_finite() && w.is_finite() && (g - w).abs() <= tol * w.abs().max(1.0))
        }
        (Int(a), Int(b)) => a == b,
        (List(a) | Tuple(a), List(b) | Tuple(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y, tol))
        }
        (Set(a), Set(b)) => {
            let keys: HashMap<Vec<u8>, ()> = a.iter().map(|x| (x.key(), ())).collect();
            a.len() == b.len()
                && keys.len() == a.len()
                && b.iter().all(|y| keys.contains_key(&y.key()))
        }
        (Dict(a), Dict(b)) => {
            let by_key: HashMap<Vec<u8>, &Plain> = a.iter().map(|(k, v)| (k.key(), v)).collect();
            a.len() == b.len()
                && by_key.len() == a.len()
                && b.iter()
                    .all(|(k, y)| by_key.get(&k.key()).is_some_and(|x| matches(x, y, tol)))
        }
        (Float(_), _) | (_, Float(_)) => false,
        _ => got == want,
    }
}

/// Hex of an integral, finite float, exactly (`1e25` is `0x84595161401484a000000`).
fn integral_float_hex(f: f64) -> String {
    if f.abs() < 9007199254740992.0 {
        return canon_hex(f < 0.0, &format!("{:x}", f.abs() as u64));
    }
    // |f| >= 2^53: mantissa x 2^e with e > 0, written as (mantissa << e % 4) then e / 4 zeros.
    let bits = f.to_bits();
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let e = ((bits >> 52) & 0x7ff) as u32 - 1075;
    let digits = format!("{:x}{}", mantissa << (e % 4), "0".repeat((e / 4) as usize));
    canon_hex(f < 0.0, &digits)
}

/// A number as Python compares it: `True` is `1`, an integral float is its integer.
enum Number {
    Int(String),
    Float(f64),
}

fn number(v: &Plain) -> Option<Number> {
    match v {
        Plain::Bool(b) => Some(Number::Int(if *b { "1" } else { "0" }.into())),
        Plain::Int(h) => Some(Number::Int(h.clone())),
        Plain::Float(f) if f.is_finite() && f.fract() == 0.0 => {
            Some(Number::Int(integral_float_hex(*f)))
        }
        Plain::Float(f) => Some(Number::Float(*f)),
        _ => None,
    }
}

/// The hash-and-equality class of a set item or dict key under Python's `==` (`1`, `1.0` and
/// `True` are one key); None for a key that equals nothing, not even itself (NaN: two NaN
/// objects are never the same key).
fn python_key(v: &Plain, out: &mut Vec<u8>) -> Option<()> {
    match (number(v), v) {
        (Some(Number::Int(h)), _) => {
            out.push(b'i');
            out.extend_from_slice(h.as_bytes());
            out.push(b';');
        }
        (Some(Number::Float(f)), _) if f.is_nan() => return None,
        (Some(Number::Float(f)), _) => {
            out.push(b'f');
            out.extend_from_slice(&f.to_le_bytes());
        }
        (None, Plain::Tuple(items)) => {
            out.extend_from_slice(format!("t{}:", items.len()).as_bytes());
            for x in items {
                python_key(x, out)?;
            }
        }
        (None, Plain::Set(items)) => {
            // a frozenset (the only hashable set): its items' classes in a canonical order
            let mut keys = python_keys(items.iter())?;
            keys.sort();
            keys.dedup();
            if keys.len() != items.len() {
                return None; // duplicate items: no set Python could hold
            }
            out.extend_from_slice(format!("S{}:", keys.len()).as_bytes());
            for k in keys {
                out.extend_from_slice(&k);
            }
        }
        (None, other) => other.encode(out),
    }
    Some(())
}

fn python_keys<'a>(items: impl Iterator<Item = &'a Plain>) -> Option<Vec<Vec<u8>>> {
    items
        .map(|x| {
            let mut k = Vec::new();
            python_key(x, &mut k).map(|_| k)
        })
        .collect()
}

/// Whether `got == want` in Python, for plain data: numbers by value across `bool`, `int` and
/// `float` (exactly: `10**25 != 1e25`; NaN equals nothing), a list never equals a tuple, sets
/// and dicts by their keys' classes (`{1: "a"} == {1.0: "a"}`). Used for humaneval tests read
/// as literal assertions, where the test itself would have compared with `==`.
pub fn python_eq(got: &Plain, want: &Plain) -> bool {
    use Plain::*;
    if let (Some(a), Some(b)) = (number(got), number(want)) {
        return match (a, b) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y,
            _ => false, // an integer never equals a non-integral float (or inf, NaN)
        };
    }
    match (got, want) {
        (List(a), List(b)) | (Tuple(a), Tuple(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| python_eq(x, y))
        }
        (Set(a), Set(b)) => {
            let (Some(ka), Some(kb)) = (python_keys(a.iter()), python_keys(b.iter())) else {
                return false;
            };
            let have: std::collections::HashSet<&Vec<u8>> = ka.iter().collect();
            a.len() == b.len() && have.len() == a.len() && kb.iter().all(|k| have.contains(k))
        }
        (Dict(a), Dict(b)) => {
            let (Some(ka), Some(kb)) = (
                python_keys(a.iter().map(|(k, _)| k)),
                python_keys(b.iter().map(|(k, _)| k)),
            ) else {
                return false;
            };
            let by_key: HashMap<&Vec<u8>, &Plain> =
                ka.iter().zip(a.iter().map(|(_, v)| v)).collect();
            a.len() == b.len()
                && by_key.len() == a.len()
                && kb
                    .iter()
                    .zip(b.iter().map(|(_, v)| v))
                    .all(|(k, y)| by_key.get(k).is_some_and(|x| python_eq(x, y)))
        }
        (None, None) => true,
        (Str(a), Str(b)) | (Bytes(a), Bytes(b)) => a == b,
        _ => false,
    }
}

/// Whether a plain value is true in Python's sense (`bool(value)`).
pub fn truthy(v: &Plain) -> bool {
    match v {
        Plain::None => false,
        Plain::Bool(b) => *b,
        Plain::Int(h) => h != "0",
        Plain::Float(f) => *f != 0.0,
        Plain::Str(x) | Plain::Bytes(x) => !x.is_empty(),
        Plain::List(x) | Plain::Tuple(x) | Plain::Set(x) => !x.is_empty(),
        Plain::Dict(x) => !x.is_empty(),
    }
}

struct Decoder<'a> {
    b: &'a [u8],
    i: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let c = *self.b.get(self.i).ok_or("truncated")?;
        self.i += 1;
        Ok(c)
    }

    fn until(&mut self, sep: u8) -> Result<&[u8], String> {
        let rest = &self.b[self.i..];
        let n = rest.iter().position(|c| *c == sep).ok_or("truncated")?;
        self.i += n + 1;
        Ok(&rest[..n])
    }

    fn count(&mut self) -> Result<usize, String> {
        let d = self.until(b':')?;
        if d.is_empty() || d.len() > 12 || !d.iter().all(u8::is_ascii_digit) {
            return Err("bad length".into());
        }
        Ok(std::str::from_utf8(d)
            .expect("digits")
            .parse()
            .expect("digits"))
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        if n > self.b.len() - self.i {
            return Err("truncated".into());
        }
        let v = self.b[self.i..self.i + n].to_vec();
        self.i += n;
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Plain, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        Ok(match self.byte()? {
            b'N' => Plain::None,
            b'T' => Plain::Bool(true),
            b'F' => Plain::Bool(false),
            b'i' => {
                let d = self.until(b';')?;
                let text = std::str::from_utf8(d).map_err(|_| "bad int")?;
                Plain::int_hex(text).ok_or("bad int")?
            }
            b'f' => {
                let raw = self.take(8)?;
                Plain::Float(f64::from_le_bytes(raw.try_into().expect("8 bytes")))
            }
            b's' => {
                let n = self.count()?;
                Plain::Str(self.take(n)?)
            }
            b'b' => {
                let n = self.count()?;
                Plain::Bytes(self.take(n)?)
            }
            // `Z` is a frozenset: equal to the set of its items in Python, so a set here
            tag @ (b'l' | b't' | b'S' | b'Z' | b'd') => {
                let n = self.count()?;
                if n > self.b.len() - self.i {
                    return Err("bad count".into());
                }
                if tag == b'd' {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = self.value(depth + 1)?;
                        let v = self.value(depth + 1)?;
                        items.push((k, v));
                    }
                    Plain::Dict(items)
                } else {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.value(depth + 1)?);
                    }
                    match tag {
                        b'l' => Plain::List(items),
                        b't' => Plain::Tuple(items),
                        _ => Plain::Set(items),
                    }
                }
            }
            _ => return Err("bad tag".into()),
        })
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &str, v: Plain) -> Result<Plain, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("unexpected character at {}", self.i))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Plain, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.lit("null", Plain::None),
            Some(b't') => self.lit("true", Plain::Bool(true)),
            Some(b'f') => self.lit("false", Plain::Bool(false)),
            Some(b'"') => {
                // serde_json handles escapes; the span is found here.
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    self.i += if self.s[self.i] == b'\\' { 2 } else { 1 };
                }
                self.i += 1;
                let span = self.s.get(start..self.i).ok_or("unterminated string")?;
                let s: String = serde_json::from_slice(span).map_err(|e| e.to_string())?;
                Ok(Plain::Str(s.into_bytes()))
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Plain::List(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Plain::List(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Plain::Dict(items));
                }
                loop {
                    self.ws();
                    let k = self.value(depth + 1)?;
                    if !matches!(k, Plain::Str(_)) {
                        return Err(format!("object key at {} is not a string", self.i));
                    }
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(format!("expected : at {}", self.i));
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Plain::Dict(items));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
                if let Some(h) = decimal_to_hex(text) {
                    return Ok(Plain::Int(h));
                }
                match serde_json::from_str::<f64>(text) {
                    Ok(f) => Ok(Plain::Float(f)),
                    Err(_) => Err(format!("bad number {text:?} at {start}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn python_eq_numbers_across_types() {
        let int = |t: &str| Plain::from_json(t).unwrap();
        assert!(python_eq(&Plain::Bool(true), &int("1")));
        assert!(python_eq(&Plain::Float(1.0), &Plain::Bool(true)));
        assert!(python_eq(&Plain::Float(-0.0), &int("0")));
        assert!(python_eq(
            &Plain::Float(1e25),
            &int("10000000000000000905969664")
        ));
        assert!(!python_eq(
            &Plain::Float(1e25),
            &int("10000000000000000000000000")
        ));
        assert!(!python_eq(
            &Plain::Float(9007199254740992.0),
            &int("9007199254740993")
        ));
        assert!(!python_eq(&Plain::Float(f64::NAN), &Plain::Float(f64::NAN)));
        assert!(python_eq(
            &Plain::Float(f64::INFINITY),
            &Plain::Float(f64::INFINITY)
        ));
        assert!(!python_eq(&Plain::Float(0.5), &int("0")));
        assert_eq!(integral_float_hex(-2f64.powi(64)), "-10000000000000000");
    }

    #[test]
    fn python_eq_containers() {
        let p = |t: &str| Plain::from_json(t).unwrap();
        assert!(!python_eq(&Plain::Tuple(vec![p("1")]), &p("[1]")));
        // {1: "a"} == {1.0: "a"} == {True: "a"}
        let d = |k: Plain| Plain::Dict(vec![(k, Plain::str("a"))]);
        assert!(python_eq(&d(Plain::Float(1.0)), &d(p("1"))));
        assert!(python_eq(&d(Plain::Bool(true)), &d(p("1"))));
        // a set written with a repeated key (only a forged record can hold one) equals nothing
        let forged = Plain::Set(vec![p("1"), Plain::Float(1.0)]);
        assert!(!python_eq(&forged, &Plain::Set(vec![p("1"), p("2")])));
        let nan_key = Plain::Set(vec![Plain::Float(f64::NAN)]);
        assert!(!python_eq(&nan_key, &nan_key));
        assert!(!python_eq(&Plain::str("a"), &Plain::Bytes(b"a".to_vec())));
        assert!(truthy(&Plain::Float(f64::NAN)) && !truthy(&Plain::Float(-0.0)));
    }

    #[test]
    fn big_integers_are_exact() {
        let a = Plain::from_json("10000000000000000000012345").unwrap();
        let b = Plain::from_json("10000000000000000000000000").unwrap();
        assert_ne!(a, b);
        assert!(!matches(&a, &b, 1e-6));
        assert_eq!(decimal_to_hex("-255").unwrap(), "-ff");
        assert_eq!(decimal_to_hex("0000").unwrap(), "0");
        assert_eq!(Plain::decode(b"i-00ff;").unwrap(), Plain::Int("-ff".into()));
    }

    #[test]
    fn tolerance_only_where_the_expectation_is_a_float() {
        let (i3, f3) = (Plain::int(3), Plain::Float(3.0000001));
        assert!(matches(&i3, &f3, 1e-6)); // an int answer to a float question, close enough
        assert!(!matches(&f3, &i3, 1e-6)); // a float answer to an int question: never
        assert!(!matches(&Plain::Float(3.0), &i3, 1e-6));
        assert!(!matches(&Plain::Bool(true), &Plain::int(1), 0.0));
        assert!(matches(
            &Plain::Tuple(vec![Plain::int(1)]),
            &Plain::List(vec![Plain::int(1)]),
            0.0
        ));
        assert!(!matches(
            &Plain::Float(f64::NAN),
            &Plain::Float(f64::NAN),
            1.0
        ));
    }

    #[test]
    fn malformed_wire_data_is_refused() {
        for bad in [
            &b"s5:abc"[..],
            b"l99999:",
            b"i12",
            b"ix;",
            b"q",
            b"f1234",
            b"N1",
        ] {
            assert!(Plain::decode(bad).is_err(), "{bad:?}");
        }
        let mut nested = vec![b'l'; 0];
        for _ in 0..200 {
            nested.extend_from_slice(b"l1:");
        }
        nested.push(b'N');
        assert!(Plain::decode(&nested).is_err());
    }

    fn arb_plain() -> impl Strategy<Value = Plain> {
        let leaf = prop_oneof![
            Just(Plain::None),
            any::<bool>().prop_map(Plain::Bool),
            any::<i64>().prop_map(|v| Plain::int(v.into())),
            (-1e9f64..1e9).prop_map(Plain::Float),
            "[a-z]{0,5}".prop_map(|s| Plain::str(&s)),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Plain::List),
                prop::collection::vec(inner, 0..4).prop_map(Plain::Tuple),
            ]
        })
    }

    proptest! {
        /// Encoding then decoding gives the value back, and a value matches itself.
        #[test]
        fn roundtrip(v in arb_plain()) {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            let back = Plain::decode(&buf).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert!(matches(&back, &v, 0.0));
        }

        /// Decimal -> hex agrees with i128 formatting.
        #[test]
        fn decimal_hex(v in any::<i128>()) {
            prop_assert_eq!(decimal_to_hex(&v.to_string()).unwrap(), match Plain::int(v) {
                Plain::Int(h) => h, _ => unreachable!() });
        }
    }
}
