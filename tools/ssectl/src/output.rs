//! Printing answers: a table or YAML for people, JSON or YAML for scripts.

use serde_json::Value;

use crate::cli::Format;

/// A table: its column headers and rows of cells.
pub struct Table {
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// Rows, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

/// Standard output went away while printing: the reader of a pipe stopped (`ssectl tail |
/// head`). `main` ends quietly on it, as Unix tools do, rather than reporting an error.
#[derive(Debug, thiserror::Error)]
#[error("standard output is closed")]
pub struct StdoutClosed;

/// Prints `text` to standard output, flushed (a tail's lines show as they come). `print!`
/// panics on a closed pipe; this returns [`StdoutClosed`] instead.
pub fn say(text: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Prints `value` as JSON, or as YAML for people.
pub fn document(fmt: Format, value: &Value) -> anyhow::Result<()> {
    match fmt {
        Format::Json => say(format_args!("{}\n", serde_json::to_string_pretty(value)?)),
        Format::Text | Format::Yaml => say(format_args!("{}", serde_yaml_ng::to_string(value)?)),
    }
}

/// Prints `value` as JSON or YAML, or `table` for people.
pub fn listing(fmt: Format, value: &Value, table: &Table) -> anyhow::Result<()> {
    match fmt {
        Format::Json | Format::Yaml => document(fmt, value)?,
        Format::Text => say(format_args!("{}", render(table)))?,
    }
    Ok(())
}

/// The table's text: left-aligned columns two spaces apart.
fn render(t: &Table) -> String {
    let mut widths: Vec<usize> = t.headers.iter().map(|h| h.len()).collect();
    for r in &t.rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(t.headers.clone());
    for r in &t.rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let t = Table {
            headers: vec!["NAME", "STATE"],
            rows: vec![vec!["a-long-name".into(), "Connected".into()]],
        };
        assert_eq!(render(&t), "NAME         STATE\na-long-name  Connected\n");
    }
}
