//! Pulling the program out of a model response: the last fenced code block in the requested
//! language (or untagged), else the whole text when it has no fence at all.

/// Other names models write after the opening fence for the same language.
fn aliases(language: &str) -> Vec<String> {
    let lang = language.trim().to_ascii_lowercase();
    let extra: &[&str] = match lang.as_str() {
        "python" | "py" | "python3" => &["python", "py", "python3", "py3"],
        "cpp" | "c++" => &["cpp", "c++", "cc", "cxx"],
        "javascript" | "js" => &["javascript", "js"],
        _ => &[],
    };
    let mut out: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    out.push(lang);
    out
}

struct Fence {
    ch: char,
    len: usize,
    info: String,
}

/// A line opening (or closing) a fence: up to 3 spaces, then 3+ backticks or tildes.
fn fence_of(line: &str) -> Option<Fence> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = rest.chars().take_while(|&c| c == ch).count();
    if len < 3 {
        return None;
    }
    let info = rest[len..].trim();
    if ch == '`' && info.contains('`') {
        return None;
    }
    let word = info.split_whitespace().next().unwrap_or("");
    Some(Fence {
        ch,
        len,
        info: word.trim_matches(['{', '}', '.']).to_ascii_lowercase(),
    })
}

/// The last fenced block tagged `language` (or untagged); the whole text when there is no
/// fence; `None` when there are fences but none in that language, or nothing but whitespace.
/// An unclosed last fence runs to the end of the text (a truncated response).
pub fn extract_code(response: &str, language: &str) -> Option<String> {
    let wanted = aliases(language);
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open: Option<(Fence, Vec<&str>)> = None;
    for line in response.lines() {
        match open.take() {
            None => {
                if let Some(f) = fence_of(line) {
                    open = Some((f, Vec::new()));
                }
            }
            Some((f, mut body)) => {
                let closes = fence_of(line)
                    .is_some_and(|c| c.ch == f.ch && c.len >= f.len && c.info.is_empty());
                if closes {
                    blocks.push((f.info, body.join("\n")));
                } else {
                    body.push(line);
                    open = Some((f, body));
                }
            }
        }
    }
    if let Some((f, body)) = open {
        blocks.push((f.info, body.join("\n")));
    }
    if blocks.is_empty() {
        return (!response.trim().is_empty()).then(|| response.to_string());
    }
    blocks
        .into_iter()
        .rev()
        .find(|(info, _)| info.is_empty() || wanted.iter().any(|w| w == info))
        .map(|(_, body)| body + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_python_block_wins() {
        let r = "Try:\n```python\nx = 1\n```\nBetter:\n```py\nx = 2\n```\ndone";
        assert_eq!(extract_code(r, "python").as_deref(), Some("x = 2\n"));
    }

    #[test]
    fn other_language_blocks_are_skipped() {
        let r = "```python\na = 1\n```\n```bash\nls\n```";
        assert_eq!(extract_code(r, "python").as_deref(), Some("a = 1\n"));
        assert_eq!(extract_code("```bash\nls\n```", "python"), None);
    }

    #[test]
    fn untagged_and_tilde_fences() {
        assert_eq!(
            extract_code("~~~\nprint(1)\n~~~", "python").as_deref(),
            Some("print(1)\n")
        );
        assert_eq!(
            extract_code("````\na\n```\nb\n````", "python").as_deref(),
            Some("a\n```\nb\n")
        );
    }

    #[test]
    fn no_fence_is_whole_text_and_unclosed_runs_to_end() {
        assert_eq!(
            extract_code("print(3)", "python").as_deref(),
            Some("print(3)")
        );
        assert_eq!(extract_code("  \n", "python"), None);
        assert_eq!(
            extract_code("```python\nx = 1\ny", "python").as_deref(),
            Some("x = 1\ny\n")
        );
    }
}
