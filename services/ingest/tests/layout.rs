//! The shape of ingest's source (#21, "split by concept"): the files that did three or four jobs
//! are split into one file per concept, and no non-test function is over 80 lines, so a newcomer
//! reads each concept in one place and each function on one screen.

use std::path::{Path, PathBuf};

/// The longest a non-test function may be, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;

/// Functions over the limit that other points of #21 split (typed settings and the main helper
/// reshape `lib.rs::run`; the contract point moves `routing.rs::plan`'s subject rules). Remove an
/// entry once its function is short.
const NOT_YET: &[(&str, &str)] = &[("lib.rs", "run"), ("routing.rs", "plan")];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, except test-only `tests.rs` files.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The name of the function a line declares, if it does (qualifiers like `pub(crate) async`
/// before `fn`).
fn fn_name(trimmed: &str) -> Option<&str> {
    let mut rest = trimmed;
    loop {
        if let Some(r) = rest.strip_prefix("fn ") {
            let end = r.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            return Some(&r[..end]);
        }
        let word = rest.split_whitespace().next()?;
        let qualifier = word == "pub"
            || word.starts_with("pub(")
            || ["async", "const", "unsafe", "extern", "\"C\""].contains(&word);
        if !qualifier {
            return None;
        }
        rest = rest[word.len()..].trim_start();
    }
}

/// The line index of the `}` at `indent` closing the block opened at or after `from`.
fn closing(lines: &[&str], from: usize, indent: &str) -> Option<usize> {
    let close = format!("{indent}}}");
    (from..lines.len()).find(|&k| lines[k] == close)
}

/// Each non-test function of a rustfmt-formatted file: (name, lines). Relies on rustfmt putting
/// a body's closing brace alone on a line at the indentation of its `fn` (`cargo fmt` is
/// checked), and skips `#[cfg(test)]` modules.
fn functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed == "#[cfg(test)]"
            && let Some(next) = lines.get(i + 1)
            && next.trim_start().starts_with("mod ")
            && next.ends_with('{')
        {
            i = closing(&lines, i + 1, indent).unwrap_or(lines.len());
            continue;
        }
        if let Some(name) = fn_name(trimmed) {
            // A declaration without a body (a trait's) ends with `;` before any `{`.
            let body =
                (i..lines.len()).find(|&k| lines[k].ends_with('{') || lines[k].ends_with(';'));
            let one_line = trimmed.contains('{') && trimmed.ends_with('}');
            if !one_line
                && let Some(open) = body.filter(|&k| lines[k].ends_with('{'))
                && let Some(end) = closing(&lines, open, indent)
            {
                out.push((name.to_string(), end - i + 1));
            }
        }
        i += 1;
    }
    out
}

#[test]
fn no_function_of_ingest_is_over_80_lines() {
    let root = src();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut long = Vec::new();
    let mut measured = 0;
    for path in files {
        let file = path
            .strip_prefix(&root)
            .expect("under src")
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).expect("readable source");
        for (name, lines) in functions(&text) {
            measured += 1;
            let known = NOT_YET.iter().any(|&(f, n)| f == file && n == name);
            if lines > MAX_FN_LINES && !known {
                long.push(format!("{file}::{name} is {lines} lines"));
            }
        }
    }
    // The measure itself works: it found ingest's functions.
    assert!(measured > 300, "only {measured} functions found");
    assert!(long.is_empty(), "over {MAX_FN_LINES} lines: {long:#?}");
}

#[test]
fn the_measure_counts_bodies_and_skips_tests_and_declarations() {
    let text = "\
fn short() {
    let x = 1;
}

pub(crate) async fn longer(
    a: u8,
) -> u8 {
    if a > 0 {
        a
    } else {
        0
    }
}

trait T {
    fn declared(&self);
    fn defaulted(&self) {}
}

#[cfg(test)]
mod tests {
    fn helper() {
        let y = 2;
    }
}
";
    assert_eq!(
        functions(text),
        [("short".to_string(), 3), ("longer".to_string(), 9)]
    );
}

#[test]
fn the_files_that_did_several_jobs_are_split_by_concept() {
    let root = src();
    for (module, parts) in [
        ("forward", &["window", "router", "session"][..]),
        ("resources", &["model", "doc", "validate", "load"][..]),
        ("status", &["live", "adr"][..]),
    ] {
        for part in parts {
            let file = root.join(module).join(format!("{part}.rs"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }
}
