//! House rules checked on the source tree itself: no non-test function longer than
//! [`FUNCTION_LINES_MAX`] lines. A small lexer blanks comments, strings and character literals so
//! that braces can be matched; `#[cfg(test)]`, `#[test]` and `#[tokio::test]` items and files
//! named `tests.rs` do not count.

use std::path::{Path, PathBuf};

/// Longest a non-test function may be, from its `fn` line to its closing brace.
pub const FUNCTION_LINES_MAX: usize = 80;

/// A function of the tree and its length in lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// `path:line` of its `fn`.
    pub at: String,
    /// Its name.
    pub name: String,
    /// Lines from `fn` to the closing brace.
    pub lines: usize,
}

/// The repository's root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every non-test function of the `.rs` files under `dir`, longest first.
pub fn functions(dir: &Path) -> std::io::Result<Vec<Function>> {
    let mut found = Vec::new();
    for path in rust_files(dir)? {
        let text = std::fs::read_to_string(&path)?;
        found.extend(functions_of(&path.display().to_string(), &text));
    }
    found.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.at.cmp(&b.at)));
    Ok(found)
}

fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// The non-test functions of one file's `text`.
pub fn functions_of(path: &str, text: &str) -> Vec<Function> {
    let code = blank(text);
    let b = code.as_bytes();
    let tests = test_spans(&code);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = code[from..].find("fn ") {
        let at = from + off;
        from = at + 3;
        let word_start = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        if !word_start || tests.iter().any(|&(s, e)| s <= at && at < e) {
            continue;
        }
        let name: String = code[from..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = body_start(b, from) else {
            continue;
        };
        let close = matching(b, open);
        let line = |i: usize| code[..i].matches('\n').count() + 1;
        out.push(Function {
            at: format!("{path}:{}", line(at)),
            name,
            lines: line(close) - line(at) + 1,
        });
    }
    out
}

/// The `{` opening the body of the function whose signature starts at `i`; None for a
/// declaration without a body (`fn f();`).
fn body_start(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0i32;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'>') => i += 1,
            b'(' | b'<' | b'[' => depth += 1,
            b')' | b'>' | b']' => depth -= 1,
            b';' if depth == 0 => return None,
            b'{' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The `}` closing the `{` at `open` (the end of the text when unbalanced).
fn matching(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    b.len().saturating_sub(1)
}

/// Byte ranges of the items marked as tests.
fn test_spans(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut spans = Vec::new();
    for marker in ["#[cfg(test)]", "#[test]", "#[tokio::test"] {
        let mut from = 0;
        while let Some(off) = code[from..].find(marker) {
            let at = from + off;
            from = at + marker.len();
            let brace = code[from..].find('{').map(|o| from + o);
            let semi = code[from..].find(';').map(|o| from + o);
            match (brace, semi) {
                (Some(open), Some(s)) if s < open => spans.push((at, s)),
                (Some(open), _) => spans.push((at, matching(b, open))),
                _ => {}
            }
        }
    }
    spans
}

/// `text` with comments, string literals and character literals replaced by spaces (newlines
/// kept), so that what remains is code whose braces match.
fn blank(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |i: usize| i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    while i < c.len() {
        let end = if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            block_comment_end(&c, i)
        } else if let Some(end) = raw_string_end(&c, i).filter(|_| !ident(i)) {
            end
        } else if c[i] == '"' {
            quoted_end(&c, i, '"')
        } else if c[i] == '\'' && char_literal(&c, i) {
            quoted_end(&c, i, '\'')
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        };
        out.extend(
            c[i..end]
                .iter()
                .map(|&ch| if ch == '\n' { '\n' } else { ' ' }),
        );
        i = end;
    }
    out
}

fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    c.len()
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i`.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// The end of a `"…"` or `'…'` literal starting at `i` (escapes skipped).
fn quoted_end(c: &[char], i: usize, quote: char) -> usize {
    let mut j = i + 1;
    while j < c.len() && c[j] != quote {
        j += if c[j] == '\\' { 2 } else { 1 };
    }
    (j + 1).min(c.len())
}

/// Whether the `'` at `i` opens a character literal rather than a lifetime or label.
fn char_literal(c: &[char], i: usize) -> bool {
    matches!(
        (c.get(i + 1), c.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_functions_without_being_fooled_by_literals_or_tests() {
        let text = r##"
fn short() -> [u8; 2] {
    let s = "}}}"; let c = '}'; let r = r#"{"#; // }
    /* { */ [0, 1]
}
fn decl();
fn long<'a>(x: &'a str) -> Result<(), ()>
where
    (): Sized,
{
    let _ = x;

    Ok(())
}
#[cfg(test)]
mod tests {
    fn helper() {}
}
"##;
        let f = functions_of("f.rs", text);
        let got: Vec<(&str, usize)> = f.iter().map(|f| (f.name.as_str(), f.lines)).collect();
        assert_eq!(got, vec![("short", 4), ("long", 8)]);
    }
}
