//! Finding the answer a model gave inside its response. Every scan here is a single linear
//! pass over the bytes, so a 1 MB response costs about a millisecond.

/// A `\boxed{...}` or `\fbox{...}` span: `start..end` covers the command, `inner` its content.
struct Boxed {
    start: usize,
    end: usize,
    inner: (usize, usize),
}

/// The answer in `response`: the last `\boxed{}`/`\fbox{}` (adjacent boxes joined as a
/// list), else the last `<answer>...</answer>`, else the text after the last "final answer
/// is"/"final answer:", else (when `last_number` is set) the last number in the text.
pub fn extract_answer(response: &str, last_number: bool) -> Option<String> {
    extract_marked(response).or_else(|| {
        if last_number {
            last_number_in(response).map(str::to_string)
        } else {
            None
        }
    })
}

/// The answer behind an explicit marker (box, answer tag, "final answer"), if any.
pub fn extract_marked(response: &str) -> Option<String> {
    if let Some(ans) = boxed_answer(response) {
        return Some(ans);
    }
    if let Some(ans) = answer_tag(response) {
        return Some(ans);
    }
    final_answer_phrase(response)
}

/// For every `{`, the index of its closing `}` (None when unclosed), in one pass with a stack,
/// so finding many boxes stays linear (a search per box would be quadratic on
/// `\boxed{\boxed{\boxed{...` without closing braces).
fn brace_pairs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut open = Vec::new();
    let mut pairs = Vec::new();
    let mut k = 0;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 1,
            b'{' => open.push(k),
            b'}' => {
                if let Some(o) = open.pop() {
                    pairs.push((o, k));
                }
            }
            _ => {}
        }
        k += 1;
    }
    pairs.sort_unstable();
    pairs
}

fn boxes(s: &str) -> Vec<Boxed> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut pairs: Option<Vec<(usize, usize)>> = None;
    let mut i = 0;
    while let Some(k) = s.get(i..).and_then(|r| r.find('\\')) {
        i += k;
        let rest = &s[i..];
        let cmd_len = if rest.starts_with("\\boxed") {
            6
        } else if rest.starts_with("\\fbox") {
            5
        } else {
            i += 1;
            continue;
        };
        let start = i;
        let mut j = i + cmd_len;
        // `\boxedfoo` is another command, not a box.
        if j < b.len() && b[j].is_ascii_alphabetic() {
            i = j;
            continue;
        }
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'{' {
            let pairs = pairs.get_or_insert_with(|| brace_pairs(b));
            let close = pairs
                .binary_search_by_key(&j, |p| p.0)
                .ok()
                .map(|k| pairs[k].1);
            match close {
                Some(close) => {
                    out.push(Boxed {
                        start,
                        end: close + 1,
                        inner: (j + 1, close),
                    });
                    i = close + 1;
                }
                None => i = j + 1,
            }
        } else {
            // `\boxed 5`: the argument is the next run of non-space characters.
            let k = j + s[j..]
                .find(|c: char| c.is_whitespace() || c == '$')
                .unwrap_or(s.len() - j);
            if k > j {
                out.push(Boxed {
                    start,
                    end: k,
                    inner: (j, k),
                });
            }
            i = if k > j {
                k
            } else {
                j + s[j..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    out
}

/// Text between two boxes that still makes them one list answer ("$\boxed{1}$ and $\boxed{2}$").
fn is_list_gap(gap: &str) -> bool {
    let mut g = gap.to_string();
    for sep in [
        "\\text{and}",
        "\\text{ and }",
        "\\text{ and}",
        "\\text{and }",
        "\\text{or}",
        "\\text{ or }",
        "\\quad",
        "\\qquad",
        "\\,",
        "\\;",
        "\\(",
        "\\)",
    ] {
        g = g.replace(sep, " ");
    }
    g.split(|c: char| c.is_whitespace() || c == ',' || c == '$' || c == ';')
        .all(|w| w.is_empty() || w == "and" || w == "or")
}

fn boxed_answer(s: &str) -> Option<String> {
    let bs = boxes(s);
    let last = bs.len().checked_sub(1)?;
    let mut first = last;
    while first > 0 && is_list_gap(&s[bs[first - 1].end..bs[first].start]) {
        first -= 1;
    }
    let parts: Vec<&str> = bs[first..=last]
        .iter()
        .map(|bx| s[bx.inner.0..bx.inner.1].trim())
        .collect();
    Some(parts.join(", "))
}

fn answer_tag(s: &str) -> Option<String> {
    let open = s.rfind("<answer>")?;
    let body = &s[open + "<answer>".len()..];
    let body = match body.find("</answer>") {
        Some(k) => &body[..k],
        None => body,
    };
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    Some(boxed_answer(body).unwrap_or_else(|| body.to_string()))
}

fn final_answer_phrase(s: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets aligned with `s`.
    let lower = s.to_ascii_lowercase();
    let at = lower.rfind("final answer")?;
    let mut rest = &s[at + "final answer".len()..];
    // "Final Answer: x", "**Final Answer**: x", "final answer is x", "final answer = x".
    let filler = |c: char| c == '*' || c == ':' || c == '=' || c.is_whitespace();
    rest = rest.trim_start_matches(filler);
    if let Some(r) = rest.strip_prefix("is") {
        rest = r.trim_start_matches(filler);
    }
    let line = rest.lines().next().unwrap_or("");
    // A sentence ends at ". " (a decimal point is followed by a digit, not a space).
    let line = match line.find(". ") {
        Some(k) => &line[..k],
        None => line,
    };
    let ans = line
        .trim()
        .trim_end_matches('.')
        .trim_matches('$')
        .trim_start_matches("\\(")
        .trim_end_matches("\\)")
        .trim();
    if ans.is_empty() {
        None
    } else {
        Some(ans.to_string())
    }
}

/// The last number written in `s` (`-1,234.5`, `3/4`, `.5`).
pub fn last_number_in(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let last_digit = b.iter().rposition(|c| c.is_ascii_digit())?;
    let is_num_byte = |c: u8| c.is_ascii_digit() || c == b'.' || c == b',' || c == b'/';
    let mut start = last_digit;
    while start > 0 && is_num_byte(b[start - 1]) {
        start -= 1;
    }
    let mut end = last_digit + 1;
    // Punctuation around the number (end of sentence, list comma) is not part of it.
    while start < last_digit
        && (matches!(b[start], b',' | b'/') || (b[start] == b'.' && !b[start + 1].is_ascii_digit()))
    {
        start += 1;
    }
    while end > start && matches!(b[end - 1], b'.' | b',' | b'/') {
        end -= 1;
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    Some(&s[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_box_wins() {
        let r = "first \\boxed{1} then \\boxed{\\frac{1}{2}}.";
        assert_eq!(extract_answer(r, true).as_deref(), Some("\\frac{1}{2}"));
    }

    #[test]
    fn adjacent_boxes_join() {
        let r = "so $\\boxed{1}$ and $\\boxed{2}$";
        assert_eq!(extract_answer(r, true).as_deref(), Some("1, 2"));
        let r = "\\boxed{1} is wrong, the answer is \\boxed{2}";
        assert_eq!(extract_answer(r, true).as_deref(), Some("2"));
    }

    #[test]
    fn nested_braces_and_fbox() {
        let r = "\\fbox{\\{1, \\{2\\}\\}} x";
        assert_eq!(extract_answer(r, true).as_deref(), Some("\\{1, \\{2\\}\\}"));
        assert_eq!(extract_answer("\\boxed{\\frac{a}{b}", false), None);
    }

    #[test]
    fn answer_tag_and_phrase() {
        assert_eq!(
            extract_answer("<think>2</think><answer> 7 </answer>", true).as_deref(),
            Some("7")
        );
        assert_eq!(
            extract_answer("So the final answer is $x = 3$. Done", true).as_deref(),
            Some("x = 3")
        );
    }

    #[test]
    fn last_number() {
        assert_eq!(last_number_in("it is 1,234.5."), Some("1,234.5"));
        assert_eq!(last_number_in("gives -3/4, ok"), Some("-3/4"));
        assert_eq!(extract_answer("no digits here", true), None);
        assert_eq!(extract_answer("7 apples", false), None);
    }
}
