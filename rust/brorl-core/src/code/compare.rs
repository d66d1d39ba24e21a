//! Judging outputs in the parent, where the sample cannot reach: stdout of `stdio` tests and
//! JSON return values of `call` tests.

use serde_json::Value;

fn numbers_close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * b.abs().max(1.0)
}

fn tokens_equal(got: &str, want: &str, tol: Option<f64>) -> bool {
    if got == want {
        return true;
    }
    match (tol, got.parse::<f64>(), want.parse::<f64>()) {
        (Some(t), Ok(a), Ok(b)) => a.is_finite() && b.is_finite() && numbers_close(a, b, t),
        _ => false,
    }
}

/// Lines with trailing whitespace removed, without the trailing empty lines.
fn normalized_lines(s: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Whether `got` matches `want` line by line, ignoring trailing whitespace on each line and
/// trailing blank lines; with `tol`, whitespace-separated tokens that both parse as numbers
/// may differ by `tol` relative to `max(1, |want|)`.
pub fn stdout_matches(got: &str, want: &str, tol: Option<f64>) -> bool {
    let (g, w) = (normalized_lines(got), normalized_lines(want));
    if g.len() != w.len() {
        return false;
    }
    g.iter().zip(&w).all(|(gl, wl)| {
        if gl == wl {
            return true;
        }
        if tol.is_none() {
            return false;
        }
        let (gt, wt): (Vec<&str>, Vec<&str>) = (
            gl.split_whitespace().collect(),
            wl.split_whitespace().collect(),
        );
        gt.len() == wt.len() && gt.iter().zip(&wt).all(|(a, b)| tokens_equal(a, b, tol))
    })
}

/// JSON equality where two numbers of which at least one is a float may differ by `tol`
/// (relative to `max(1, |want|)`); integers compare exactly.
pub fn json_matches(got: &Value, want: &Value, tol: f64) -> bool {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            if a.is_f64() || b.is_f64() {
                match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => numbers_close(x, y, tol),
                    _ => false,
                }
            } else {
                a == b
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_matches(x, y, tol))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| json_matches(x, y, tol)))
        }
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// Trailing whitespace on any line and trailing blank lines never change the verdict;
        /// changing one visible character always does.
        #[test]
        fn whitespace_invariance(
            lines in prop::collection::vec("[a-z0-9 ]{0,8}[a-z0-9]", 1..6),
            pads in prop::collection::vec("[ \t]{0,3}", 6),
            blank in 0usize..3,
            flip in 0usize..6,
        ) {
            let want = lines.join("\n");
            let mut got: Vec<String> =
                lines.iter().zip(&pads).map(|(l, p)| format!("{l}{p}")).collect();
            got.extend(std::iter::repeat_n(String::new(), blank));
            let got = got.join("\n");
            prop_assert!(stdout_matches(&got, &want, None));
            prop_assert!(stdout_matches(&got, &want, Some(1e-9)));
            let i = flip % lines.len();
            let mut changed = lines.clone();
            changed[i].push('#');
            prop_assert!(!stdout_matches(&changed.join("\n"), &want, None));
        }
    }

    #[test]
    fn trailing_whitespace_and_blank_lines_are_ignored() {
        assert!(stdout_matches("1 2  \n3\n\n\n", "1 2\n3", None));
        assert!(!stdout_matches("1  2\n3", "1 2\n3", None));
        assert!(!stdout_matches("1\n2", "1\n2\n3", None));
        assert!(!stdout_matches("", "0", None));
    }

    #[test]
    fn numbers_with_tolerance() {
        assert!(stdout_matches("0.3333333", "0.33333333333", Some(1e-6)));
        assert!(!stdout_matches("0.3333333", "0.33333333333", None));
        assert!(!stdout_matches("0.34", "0.33", Some(1e-6)));
        assert!(stdout_matches("nan", "nan", Some(1e-6))); // equal text is equal
        assert!(!stdout_matches("inf", "1e400", Some(1e-6)));
    }

    #[test]
    fn json_numbers() {
        assert!(json_matches(&json!([1, 2.0000001]), &json!([1, 2.0]), 1e-6));
        assert!(!json_matches(&json!([1, 2]), &json!([1, 3]), 1e-6));
        assert!(!json_matches(
            &json!({"a": 1}),
            &json!({"a": 1, "b": 2}),
            1e-6
        ));
        assert!(json_matches(
            &json!({"a": [true, null, "x"]}),
            &json!({"a": [true, null, "x"]}),
            0.0
        ));
        assert!(!json_matches(&json!(true), &json!(1), 1e-6));
    }
}
