//! Finding the answer a model gave inside its response. Every scan here is a single linear
//! pass over the bytes, so a 1 MB response costs about a millisecond.

/// A `\boxed{...}` or `\fbox{...}` span: `start..end` covers the command, `inner` its content.
struct Boxed {
    start: usize,
    end: usize,
    inner: (usize, usize),
}

/// The answer in `response`: the last `\boxed{}`/`\fbox{}` (adjacent boxes joined as a
/// list; a "Final Answer:" or `#### 42` line written after the last box wins), else the last
/// `<answer>...</answer>`, else the text after the last "final answer is"/"final answer:" or
/// `####`, whichever is later, else (when `fallback` is set) the text after the last "answer
/// is", "Answer:" (or "option is", "choice is"), else the last complete
/// math span (`$...$`, `$$...$$`, `\(...\)`, `\[...\]`) or a number written after it.
pub fn extract_answer(response: &str, fallback: bool) -> Option<String> {
    if let Some(tail) = after_thinking(response) {
        if let Some(a) = extract_in(tail, fallback) {
            return Some(a);
        }
    }
    extract_in(response, fallback)
}

/// The text after a closed reasoning block (`<think>...</think> answer`), if any: a box drafted
/// while thinking must not outrank the answer given after it ("... \boxed{3}</think> The
/// answer is 4"). Without an answer there, the whole response is read.
pub fn after_thinking(response: &str) -> Option<&str> {
    let k = response.rfind("</think>")?;
    let tail = &response[k + "</think>".len()..];
    (!tail.trim().is_empty()).then_some(tail)
}

fn extract_in(response: &str, fallback: bool) -> Option<String> {
    extract_marked(response).or_else(|| {
        if fallback {
            extract_unmarked(response)
        } else {
            None
        }
    })
}

/// The answer behind an explicit marker (box, answer tag, "final answer"), if any.
pub fn extract_marked(response: &str) -> Option<String> {
    let bs = boxes(response);
    if let Some(last) = bs.last() {
        // "\boxed{200} ... \boxed{255} ... Final Answer: The final answer is $10,455$."
        if let Some(ans) = final_marker(&response[last.end..]) {
            return Some(ans);
        }
        return Some(boxed_answer_of(response, &bs));
    }
    if let Some(ans) = answer_tag(response) {
        return Some(ans);
    }
    final_marker(response)
}

/// The answer after the last closing marker: "final answer ..." or GSM8K's `#### 42` line,
/// whichever is written later. Both state the answer the response ends on, so they outrank
/// "the answer is" in the reasoning before them ("The answer is 41.\n#### 42" is 42).
fn final_marker(s: &str) -> Option<String> {
    match (final_answer_phrase(s), hash_answer_line(s)) {
        (Some((at, a)), Some((hash_at, h))) => Some(if hash_at > at { h } else { a }),
        (Some((_, a)), None) | (None, Some((_, a))) => Some(a),
        (None, None) => None,
    }
}

/// GSM8K's final-answer line, `#### 42` (its byte offset and the answer): the last line that
/// starts with exactly four `#` and holds an answer. A Markdown heading (`#### Step 1: Solve`,
/// `#### Verification`) is no answer: its words set it apart, so a line with a word of three
/// or more letters outside math is skipped.
fn hash_answer_line(s: &str) -> Option<(usize, String)> {
    let mut end = s.len();
    while let Some(at) = s[..end].rfind("####") {
        end = at;
        // Only spaces between the line start and the marker (a bounded look back, so a line of
        // `#### #### ...` stays linear).
        let before = s[..at].trim_end_matches([' ', '\t']);
        let at_line_start = before.is_empty() || before.ends_with('\n');
        let rest = &s[at + 4..];
        if !at_line_start || rest.starts_with('#') || (at > 0 && s.as_bytes()[at - 1] == b'#') {
            continue;
        }
        let line = rest.lines().next().unwrap_or("").trim();
        if line.is_empty() || prose_words(line) > 0 {
            continue;
        }
        if let Some(a) = phrase_at(s, at + 4) {
            return Some((at, a));
        }
    }
    None
}

/// Without a marker: "the answer is X", else the last complete math span, or a standalone
/// number written after it ("the volume of $ABCD$ is 120"), else the last standalone number.
pub fn extract_unmarked(response: &str) -> Option<String> {
    let window = tail_window(response);
    if let Some(a) = last_answer_phrase(window) {
        return Some(a);
    }
    let span = last_math_span(window);
    let tail = match &span {
        Some((_, end, _)) => &window[*end..],
        None => response,
    };
    if let Some(n) = last_number_in(tail) {
        return Some(n.to_string());
    }
    span.map(|(_, _, inner)| inner)
}

/// The prose fallbacks read the end of a response only (the answer is stated last), so a long
/// response costs no more than a short one.
const TAIL_BYTES: usize = 4 * 1024;

/// The last `TAIL_BYTES` (4 KiB) or so of `s`, starting after a blank line where there is one (display
/// math cannot hold a blank line, so no `$$`/`\[` block is cut in half), else at a line start
/// (inline math never crosses a line).
fn tail_window(s: &str) -> &str {
    if s.len() <= TAIL_BYTES {
        return s;
    }
    let mut cut = s.len() - TAIL_BYTES;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    let w = &s[cut..];
    if let Some(k) = w.find("\n\n") {
        return &w[k + 2..];
    }
    match w.find('\n') {
        Some(k) => &w[k + 1..],
        None => w,
    }
}

/// The boxes of a gold answer as one list when it has several with little text between them
/// (`\boxed{1} papers and \boxed{2} bins`, `\boxed{35} ++ \boxed{4}`); None otherwise, also
/// when the boxes repeat one answer or prose separates them.
pub fn all_boxes(s: &str) -> Option<String> {
    let bs = boxes(s);
    if bs.len() < 2 {
        return None;
    }
    let short_gap = |gap: &str| {
        gap.split_whitespace()
            .filter(|w| w.chars().any(|c| c.is_alphabetic()))
            .count()
            <= 3
    };
    if !bs.windows(2).all(|w| short_gap(&s[w[0].end..w[1].start])) {
        return None;
    }
    let parts: Vec<&str> = bs.iter().map(|b| s[b.inner.0..b.inner.1].trim()).collect();
    if parts.iter().all(|p| *p == parts[0]) {
        return None;
    }
    Some(parts.join(", "))
}

/// The contents of the last `k` boxes of `s` joined as a list, when it has at least `k`.
pub fn last_boxes(s: &str, k: usize) -> Option<String> {
    let bs = boxes(s);
    if k < 2 || bs.len() < k {
        return None;
    }
    let parts: Vec<&str> = bs[bs.len() - k..]
        .iter()
        .map(|b| s[b.inner.0..b.inner.1].trim())
        .collect();
    Some(parts.join(", "))
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
                // An empty box holds no answer ("put it in \boxed{}" echoed from the prompt, a
                // stray `\boxed{}` after the answer): it must not hide the boxes before it.
                Some(close) if s[j + 1..close].trim().is_empty() => i = close + 1,
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
    if bs.is_empty() {
        return None;
    }
    Some(boxed_answer_of(s, &bs))
}

fn boxed_answer_of(s: &str, bs: &[Boxed]) -> String {
    let last = bs.len() - 1;
    let mut first = last;
    while first > 0 && is_list_gap(&s[bs[first - 1].end..bs[first].start]) {
        first -= 1;
    }
    let parts: Vec<&str> = bs[first..=last]
        .iter()
        .map(|bx| s[bx.inner.0..bx.inner.1].trim())
        .collect();
    parts.join(", ")
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
    if let Some(b) = boxed_answer(body) {
        return Some(b);
    }
    Some(phrase_in_tag(body).unwrap_or_else(|| body.to_string()))
}

/// An answer marker inside the answer tag ("<answer>The answer is 42</answer>",
/// "<answer>Answer: 42</answer>", "<answer>#### 42</answer>") gives what it introduces. Only
/// the markers count here: a number merely mentioned in a sentence is not taken
/// ("<answer>It is not 42</answer>" stays a sentence).
fn phrase_in_tag(body: &str) -> Option<String> {
    final_marker(body).or_else(|| last_answer_phrase(body))
}

/// The answer after the last "final answer" (its byte offset and the cleaned text).
fn final_answer_phrase(s: &str) -> Option<(usize, String)> {
    let at = rfind_ascii_ci(s, "final answer")?;
    phrase_at(s, at + "final answer".len()).map(|a| (at, a))
}

/// Prose that introduces an answer: "the answer is 42", the answer lines many prompts ask for
/// ("Answer: C", "**Answer:** 42", "**Answer**: 42"), and for multiple choice "the correct
/// option is (A)", "the right choice is C". The last one written wins; after "option is" or
/// "choice is" only a choice label counts ("another option is to substitute" is not an answer).
/// The flag says whether any answer may follow the phrase.
const ANSWER_PHRASES: [(&str, bool); 5] = [
    ("answer is", true),
    ("answer:", true),
    ("answer**:", true),
    ("option is", false),
    ("choice is", false),
];

fn last_answer_phrase(s: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets aligned with `s`.
    let lower = s.to_ascii_lowercase();
    let mut found: Vec<(usize, &str, bool)> = ANSWER_PHRASES
        .iter()
        .filter_map(|&(m, any)| lower.rfind(m).map(|at| (at, m, any)))
        .collect();
    found.sort_by_key(|&(at, _, _)| std::cmp::Reverse(at));
    for (at, marker, any) in found {
        let Some(a) = phrase_at(s, at + marker.len()) else {
            continue;
        };
        if any || is_choice_label(&a) {
            return Some(a);
        }
    }
    None
}

/// "A", "(b)", "$\text{(C)}$", "**D**", "3": one letter or a short number, in any of the
/// usual wrappings.
fn is_choice_label(a: &str) -> bool {
    let mut t = a.trim_matches(|c: char| c == '$' || c == '*' || c == '.' || c.is_whitespace());
    for wrap in ["\\textbf{", "\\text{", "\\mathrm{"] {
        if let Some(inner) = t.strip_prefix(wrap).and_then(|r| r.strip_suffix('}')) {
            t = inner.trim();
        }
    }
    let t = t
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(t)
        .trim();
    let t = t.strip_suffix(')').unwrap_or(t);
    (t.len() == 1 && t.chars().all(|c| c.is_ascii_alphabetic()))
        || (!t.is_empty() && t.len() <= 3 && t.chars().all(|c| c.is_ascii_digit()))
}

fn rfind_ascii_ci(s: &str, marker: &str) -> Option<usize> {
    // ASCII lowercasing keeps byte offsets aligned with `s`.
    s.to_ascii_lowercase().rfind(marker)
}

/// The answer in the rest of the line from `from`: "Final Answer: x", "**Final Answer**: x",
/// "final answer is x", "The final answer is $x$. I hope it is correct.", or a sentence
/// ("The volume of $ABCD$ is 120", "Jane started Sphere 3 hours ago").
fn phrase_at(s: &str, from: usize) -> Option<String> {
    let mut rest = &s[from..];
    if let Some(bold) = bold_answer(rest) {
        return Some(bold);
    }
    let filler = |c: char| c == '*' || c == ':' || c == '=' || c.is_whitespace();
    rest = rest.trim_start_matches(filler);
    if let Some(r) = rest.strip_prefix("is") {
        rest = r.trim_start_matches(filler);
    }
    let line = rest.lines().next().unwrap_or("");
    // A closing tag ends it too ("The answer is 3</think>").
    let line = line.split("</").next().unwrap_or("");
    // A sentence ends at ". " (a decimal point is followed by a digit, not a space).
    let line = match line.find(". ") {
        Some(k) => &line[..k],
        None => line,
    };
    // Markdown bold around the answer ("The answer is **42**.") is no part of it.
    let line = line.trim().trim_end_matches(['.', '*']).trim();
    if line.is_empty() {
        return None;
    }
    if let Some(b) = boxed_answer(line) {
        return Some(b);
    }
    let plain = line
        .trim_matches('$')
        .trim_start_matches("\\(")
        .trim_end_matches("\\)")
        .trim();
    if !is_prose(plain) {
        return (!plain.is_empty()).then(|| plain.to_string());
    }
    // A sentence: what follows its last " is ", else its last math span or standalone number.
    if let Some(k) = line.rfind(" is ") {
        let tail = line[k + 4..].trim();
        if !tail.is_empty() && !is_prose(tail.trim_matches('$')) {
            return Some(tail.trim_matches('$').trim().to_string());
        }
    }
    let span = last_math_span(line);
    let tail = match &span {
        Some((_, end, _)) => &line[*end..],
        None => line,
    };
    if let Some(n) = last_number_in(tail) {
        return Some(n.to_string());
    }
    span.map(|(_, _, inner)| inner)
}

/// Markdown bold that opens the answer ("The answer is **42** apples", "is **(B)**."): the
/// text between the `**` pair, so the words after it are no part of the answer. A `**` with a
/// space after it closes the marker's own bold instead ("**Answer:** 42").
fn bold_answer(rest: &str) -> Option<String> {
    let t = rest.trim_start_matches([':', '=', ' ', '\t']);
    let t = t.strip_prefix("is").map_or(t, str::trim_start);
    let inner = t.strip_prefix("**")?;
    if inner.starts_with(|c: char| c.is_whitespace() || c == '*' || c == ':') {
        return None;
    }
    let line = inner.lines().next().unwrap_or("");
    let close = line.find("**")?;
    let a = line[..close].trim().trim_end_matches('.').trim();
    let a = a.trim_matches('$').trim();
    (a.chars().any(char::is_alphanumeric) && !is_prose(a)).then(|| a.to_string())
}

/// Two or more words of at least three letters outside math delimiters and commands: prose.
fn is_prose(s: &str) -> bool {
    prose_words(s) >= 2
}

/// The number of words of at least three letters outside math delimiters and commands.
fn prose_words(s: &str) -> usize {
    let mut words = 0;
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_math = false;
    while i < b.len() {
        let c = b[i];
        if c == b'$' {
            in_math = !in_math;
            i += 1;
        } else if c == b'\\' {
            // A command name is not a word; `\text{...}` content is.
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            i = j.max(i + 1);
        } else if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            if !in_math && j - i >= 3 {
                words += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    words
}

/// The last complete math span: `$$...$$`, `\[...\]` (may span lines), `$...$`, `\(...\)`
/// (one line). `\$` is an escaped dollar, and a `$` before a number whose next `$` is again
/// before a number (or that has no partner) is a currency sign, not a delimiter. Returns
/// (start, end, trimmed inner text).
pub fn last_math_span(s: &str) -> Option<(usize, usize, String)> {
    let b = s.as_bytes();
    let mut best: Option<(usize, usize, usize, usize)> = None;
    let mut i = 0;
    // Where a search for a closer (`\]`, `\)`, `$$`) last failed: an opener before that point
    // fails too, so no stretch of text is searched twice (`\[` repeated 100,000 times).
    let mut no_close = [0usize; 3];
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                let close: &[u8] = match b[i + 1] {
                    b'(' => b"\\)",
                    b'[' => b"\\]",
                    _ => {
                        i += 2;
                        continue;
                    }
                };
                let inline = b[i + 1] == b'(';
                let from = i + 2;
                let kind = usize::from(inline);
                if from < no_close[kind] {
                    i = from;
                    continue;
                }
                match find_bytes(b, from, close, inline) {
                    Ok(k) => {
                        best = Some((i, k + 2, from, k));
                        i = k + 2;
                    }
                    Err(stop) => {
                        no_close[kind] = stop;
                        i = from;
                    }
                }
            }
            b'$' => {
                let display = b.get(i + 1) == Some(&b'$');
                if display {
                    let from = i + 2;
                    if from < no_close[2] {
                        i = from;
                        continue;
                    }
                    match find_bytes(b, from, b"$$", false) {
                        Ok(k) => {
                            best = Some((i, k + 2, from, k));
                            i = k + 2;
                        }
                        Err(stop) => {
                            no_close[2] = stop;
                            i = from;
                        }
                    }
                    continue;
                }
                let from = i + 1;
                let close = next_dollar(b, from);
                let currency = b.get(from).is_some_and(u8::is_ascii_digit)
                    && close.is_none_or(|k| b.get(k + 1).is_some_and(u8::is_ascii_digit));
                match close {
                    Some(k) if !currency && !b[from..k].contains(&b'\n') => {
                        best = Some((i, k + 1, from, k));
                        i = k + 1;
                    }
                    _ => i = from,
                }
            }
            _ => i += 1,
        }
    }
    let (start, end, a, z) = best?;
    let inner = s[a..z].trim();
    (!inner.is_empty()).then(|| (start, end, inner.to_string()))
}

/// The next `$` at or after `from` that is not escaped and not part of `$$`.
fn next_dollar(b: &[u8], from: usize) -> Option<usize> {
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 2,
            b'$' => return Some(k),
            _ => k += 1,
        }
    }
    None
}

/// The first `pat` at or after `from` (skipping escaped characters); `one_line` stops at `\n`.
/// On failure, the position where the search stopped: every later start before it fails too.
fn find_bytes(b: &[u8], from: usize, pat: &[u8], one_line: bool) -> Result<usize, usize> {
    let mut k = from;
    while k + pat.len() <= b.len() {
        if b[k..].starts_with(pat) {
            return Ok(k);
        }
        if one_line && b[k] == b'\n' {
            return Err(k);
        }
        k += if b[k] == b'\\' && pat[0] != b'\\' {
            2
        } else {
            1
        };
    }
    Err(b.len())
}

/// The last standalone number written in `s` (`-1,234.5`, `3/4`, `.5`): not part of a word or
/// a name (`AZYUK2A`, `x_2`), and not alone inside broken math delimiters (`$ \n 9 \n $`).
pub fn last_number_in(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut upto = b.len();
    loop {
        let last_digit = b[..upto].iter().rposition(|c| c.is_ascii_digit())?;
        let (start, end) = number_around(b, last_digit);
        let glued = start > 0
            && matches!(b[start - 1], b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'\\' | b'^' | b'{');
        // `2^{10}`, `2x`, `3\sqrt2`, `4(x+1)`: the number is a piece of an expression.
        let next = b.get(end).copied();
        let after = b.get(end + 1).copied();
        let piece = match next {
            // `30^\circ` is a number of degrees.
            Some(b'^') => {
                let rest = &b[end + 1..];
                !(rest.starts_with(b"\\circ") || rest.starts_with(b"{\\circ}"))
            }
            Some(b'_' | b'{' | b'(' | b'[') => true,
            // `3\sqrt2`, `2\pi` but not `17\text{ cm}`, `5\%` or `9\)`.
            Some(b'\\') => {
                let name: &[u8] = &b[end + 1..];
                let len = name.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                let name = &name[..len];
                len > 0
                    && !name.starts_with(b"text")
                    && !name.starts_with(b"math")
                    && !matches!(name, b"mbox" | b"quad" | b"qquad" | b"right" | b"end")
            }
            Some(c) if b"xyznkabtci".contains(&c) => {
                !after.is_some_and(|d| d.is_ascii_alphabetic())
            }
            _ => false,
        };
        let glued = glued || piece;
        if !glued && !in_broken_delimiters(b, start, end) {
            return Some(&s[start..end]);
        }
        upto = start;
    }
}

fn number_around(b: &[u8], last_digit: usize) -> (usize, usize) {
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
    (start, end)
}

/// `$ \n 9 \n $` or `\( \n 9 \n \)`: an inline span broken over lines holds no answer.
fn in_broken_delimiters(b: &[u8], start: usize, end: usize) -> bool {
    let before = b[..start].iter().rposition(|c| !c.is_ascii_whitespace());
    let after = b[end..]
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .map(|k| end + k);
    let (Some(p), Some(q)) = (before, after) else {
        return false;
    };
    let newline = b[p..q].contains(&b'\n');
    let opens = b[p] == b'$' || (b[p] == b'(' && p > 0 && b[p - 1] == b'\\');
    let closes = b[q] == b'$' || (b[q] == b'\\' && b.get(q + 1) == Some(&b')'));
    newline && opens && closes
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
    fn empty_boxes_hold_no_answer() {
        let x = |r: &str| extract_answer(r, true);
        assert_eq!(x("so \\boxed{3}. \\boxed{ }").as_deref(), Some("3"));
        assert_eq!(x("\\boxed{3}\\boxed{}").as_deref(), Some("3"));
        assert_eq!(
            x("Put the answer in \\boxed{}. So the answer is 3.").as_deref(),
            Some("3")
        );
        assert_eq!(x("\\boxed{}"), None);
    }

    #[test]
    fn the_answer_after_thinking_wins() {
        let x = |r: &str| extract_answer(r, true);
        assert_eq!(
            x("<think>so \\boxed{3}</think> The answer is 4.").as_deref(),
            Some("4")
        );
        assert_eq!(
            x("<think>\\boxed{3}</think>\\boxed{4}").as_deref(),
            Some("4")
        );
        // Nothing after the reasoning: it is read as a whole.
        assert_eq!(x("<think>so \\boxed{3}</think>\n").as_deref(), Some("3"));
        assert_eq!(x("<think>The answer is 3</think>").as_deref(), Some("3"));
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
    fn prose_without_markers() {
        let x = |r: &str| extract_answer(r, true);
        assert_eq!(x("AZYUK2A"), None);
        assert_eq!(
            x("Therefore $x \\geq 5$ is the solution.").as_deref(),
            Some("x \\geq 5")
        );
        assert_eq!(x("Answer \\( (9+1) \\)").as_deref(), Some("(9+1)"));
        assert_eq!(x("Answer \\[ \n 9 \n \\]").as_deref(), Some("9"));
        assert_eq!(x("Answer $ \n 9 \n $"), None);
        assert_eq!(x("so $10,200 + $255 = $10,455.").as_deref(), Some("10,455"));
        assert_eq!(x("the volume of $ABCD$ is 120.").as_deref(), Some("120"));
        assert_eq!(x("So the answer is 42.").as_deref(), Some("42"));
        assert_eq!(x("The correct option is (A)").as_deref(), Some("(A)"));
        assert_eq!(x("Hence the right Choice is C.").as_deref(), Some("C"));
        // the last phrase written wins, whichever it is
        assert_eq!(
            x("The answer is 5. No: the correct option is (B)").as_deref(),
            Some("(B)")
        );
        assert_eq!(
            x("One option is 5, but the answer is 7.").as_deref(),
            Some("7")
        );
        // after "option is" only a choice label: otherwise the usual fallbacks
        assert_eq!(
            x("So x = 12. Another option is to substitute back.").as_deref(),
            Some("12")
        );
        assert_eq!(
            x("The best choice is $\\text{(D)}$.").as_deref(),
            Some("\\text{(D)}")
        );
        assert_eq!(x("it comes to 2^{10} in all"), None);
        assert_eq!(x("it simplifies to 2x"), None);
        assert_eq!(x("it is 1,000.99m² or 3 cm").as_deref(), Some("3"));
        assert_eq!(x("it is 1,000.99m²").as_deref(), Some("1,000.99"));
        assert_eq!(x("it is 17\\text{ cm} long").as_deref(), Some("17"));
        assert_eq!(x("it is 3\\sqrt2"), None);
        assert_eq!(x("angle ABC is 30^\\circ").as_deref(), Some("30"));
        assert_eq!(
            x("Final Answer: The largest $n$ is 34. I hope it is correct.").as_deref(),
            Some("34")
        );
        assert_eq!(
            x("\\boxed{200} then \\boxed{255}. Final Answer: The final answer is $10,455$.")
                .as_deref(),
            Some("10,455")
        );
    }

    #[test]
    fn hash_lines_and_answer_lines() {
        let x = |r: &str| extract_answer(r, true);
        // GSM8K's `####` line is the final answer: it outranks "the answer is" before it, a
        // number after it, and a box before it.
        assert_eq!(x("The answer is 41.\n#### 42").as_deref(), Some("42"));
        assert_eq!(
            x("#### 42\nNote that 43 is not possible.").as_deref(),
            Some("42")
        );
        assert_eq!(x("\\boxed{40}\n#### 42").as_deref(), Some("42"));
        assert_eq!(x("#### 42\n\\boxed{40}").as_deref(), Some("40"));
        assert_eq!(x("#### C").as_deref(), Some("C"));
        assert_eq!(x("#### $1,000").as_deref(), Some("1,000"));
        // A Markdown heading is no answer line.
        assert_eq!(
            x("\\boxed{5}\n\n#### Verification\nCheck: 2+3=5.").as_deref(),
            Some("5")
        );
        assert_eq!(
            x("#### Step 1\n2+3 = 5\n#### Step 2\nSo the answer is 5.").as_deref(),
            Some("5")
        );
        // "Answer:" lines, with or without Markdown bold.
        assert_eq!(x("Answer: C").as_deref(), Some("C"));
        assert_eq!(x("**Answer:** (C)").as_deref(), Some("(C)"));
        assert_eq!(x("**Answer**: C").as_deref(), Some("C"));
        assert_eq!(x("**Answer: C**").as_deref(), Some("C"));
        assert_eq!(
            x("Answer: 42. Note that 43 is not possible.").as_deref(),
            Some("42")
        );
        assert_eq!(x("The answer is **42** apples.").as_deref(), Some("42"));
        assert_eq!(x("The answer is 2**10").as_deref(), Some("2**10"));
        // A box still outranks a later "Answer:" line (only a final marker overrides it).
        assert_eq!(x("\\boxed{42} Answer: 43").as_deref(), Some("42"));
        // Markers inside the answer tag; a bare sentence there stays as written.
        assert_eq!(
            x("<answer> The answer is 42 </answer>").as_deref(),
            Some("42")
        );
        assert_eq!(x("<answer>#### 42</answer>").as_deref(), Some("42"));
        assert_eq!(
            x("<answer>It is not 42</answer>").as_deref(),
            Some("It is not 42")
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
