//! Printing answers: aligned tables for people, JSON for scripts (`--output json`).

use std::io::Write;

use clap::ValueEnum;
use serde_json::Value;

/// How to print answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned tables.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// A table: a header row and rows of cells.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, columns padded to their widest cell.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = r.get(i).map_or("", String::as_str);
                    format!("{c:<w$}", w = width[i])
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = String::new();
        out.push_str(&line(&self.header));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// Prints `json` as JSON, or `table()` as a table.
pub fn print(format: Format, json: &Value, table: impl FnOnce() -> String) {
    match format {
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(json)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        )),
        Format::Table => emit(&table()),
    }
}

/// Writes `text` to standard output. When the reader has gone away (`| head -1`), there is
/// nobody left to tell anything: the process ends at once with status 0, as a command whose
/// output was cut short on purpose. Any other failure to write is an error (status 1).
pub fn emit(text: &str) {
    match write_to(&mut std::io::stdout().lock(), text) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `print!` through [`emit`], so a closed pipe ends the command quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}
pub(crate) use out;

/// `println!` through [`emit`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;

fn write_to(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A progress bar style from `template`, which may use `{rate}`: items per second as a whole
/// number with thousands separators (`16,401/s`; indicatif's own `{per_sec}` prints four
/// decimals).
pub fn progress_style(template: &str) -> Result<indicatif::ProgressStyle, String> {
    Ok(indicatif::ProgressStyle::with_template(template)
        .map_err(|e| format!("progress bar template: {e}"))?
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", whole(state.per_sec()));
            },
        ))
}

/// A non-negative amount rounded to a whole number, with thousands separators.
pub fn whole(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An optional number as a cell.
pub fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Bytes in human units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_bytes_read_well() {
        let mut t = Table::new(&["ID", "ROLE"]);
        t.row(vec!["1".into(), "leader".into()]);
        t.row(vec!["22".into(), "follower".into()]);
        assert_eq!(t.render(), "ID  ROLE\n1   leader\n22  follower\n");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn rates_print_as_whole_numbers_with_separators() {
        assert_eq!(whole(16_400.872_2), "16,401");
        assert_eq!(whole(999.4), "999");
        assert_eq!(whole(1_234_567.0), "1,234,567");
        assert_eq!(whole(0.0), "0");
        assert_eq!(whole(-3.0), "0");
    }

    #[test]
    fn the_progress_style_knows_the_rate_key() {
        assert!(progress_style("{bar:10} {pos}/{len} {rate}").is_ok());
    }
}
