//! Judging `stdio` outputs in the parent, where the sample cannot reach (the return values of
//! `call` tests are compared in `plain`).

fn numbers_close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Whether an expected stdout token is a float literal (so a tolerance may apply to it): it
/// parses as a finite number and is not an integer literal.
fn is_float_literal(token: &str) -> bool {
    let digits = token.strip_prefix(['-', '+']).unwrap_or(token);
    let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    !integer
        && token.bytes().any(|b| b.is_ascii_digit())
        && token.parse::<f64>().is_ok_and(f64::is_finite)
}

fn tokens_equal(got: &str, want: &str, tol: Option<f64>) -> bool {
    if got == want {
        return true;
    }
    match tol {
        Some(t) if is_float_literal(want) => match (got.parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.is_finite() && numbers_close(a, b, t),
            _ => false,
        },
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
/// trailing blank lines; with `tol`, a whitespace-separated token whose expected text is a
/// float literal (`0.5`, `1e-3`; not `12`) may differ by `tol` relative to `max(1, |want|)`.
/// Integer tokens always compare exactly, as text, at any size.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn integers_are_exact_even_with_a_tolerance() {
        assert!(!stdout_matches("1000000700", "1000000000", Some(1e-6)));
        assert!(!stdout_matches(
            "100000000000000000000012345",
            "100000000000000000000000000",
            Some(1e-6)
        ));
        assert!(!stdout_matches("3.0", "3", Some(1e-6)));
        assert!(stdout_matches("3.0000001", "3.0", Some(1e-6)));
        assert!(stdout_matches("3", "3.0", Some(1e-6)));
        assert!(stdout_matches("1e-9", "0.000000001", Some(1e-6)));
    }
}
