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

/// Prints `value` as JSON, or as YAML for people.
pub fn document(fmt: Format, value: &Value) -> anyhow::Result<()> {
    match fmt {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Text | Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
    }
    Ok(())
}

/// Prints `value` as JSON or YAML, or `table` for people.
pub fn listing(fmt: Format, value: &Value, table: &Table) -> anyhow::Result<()> {
    match fmt {
        Format::Json | Format::Yaml => document(fmt, value)?,
        Format::Text => print!("{}", render(table)),
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
