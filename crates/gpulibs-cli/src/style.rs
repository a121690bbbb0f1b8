//! Terminal styling: colour only when a person is looking at a terminal that wants it.

use std::io::IsTerminal;

/// When to colour output, as `--color` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal, `NO_COLOR` is unset or empty, and `TERM` is not `dumb`.
    Auto,
    Always,
    Never,
}

/// Whether output is decorated. Copy it around; it is a flag, not a writer.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// For what goes to stdout.
    pub fn new(choice: ColorChoice) -> Self {
        Self::for_stream(choice, std::io::stdout().is_terminal())
    }

    /// For what goes to stderr (errors, logs, ONNX Runtime's lines): the same rules, asked of
    /// stderr, so `gpulibs … 2>log` writes no escapes into the log.
    pub fn for_stderr(choice: ColorChoice) -> Self {
        Self::for_stream(choice, std::io::stderr().is_terminal())
    }

    fn for_stream(choice: ColorChoice, terminal: bool) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                // https://no-color.org: any non-empty value disables colour.
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                !no_color && !dumb && terminal
            }
        };
        Self { color }
    }

    pub fn plain() -> Self {
        Self { color: false }
    }

    pub fn color(self) -> bool {
        self.color
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// Cells of a table, each with the style to apply after padding (so colour codes never break
/// alignment).
pub struct Cell {
    text: String,
    paint: fn(Style, &str) -> String,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            paint: |_, t| t.to_string(),
        }
    }
    pub fn styled(text: impl Into<String>, paint: fn(Style, &str) -> String) -> Self {
        Self {
            text: text.into(),
            paint,
        }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Self {
        Cell::new(text)
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(style: Style, rows: &[Vec<Cell>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.text.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let last = c + 1 == row.len();
            let padded = if last {
                cell.text.clone()
            } else {
                format!("{:width$}  ", cell.text, width = widths[c])
            };
            // Paint only the text, not the padding, so underlines and backgrounds stay tidy.
            let pad = padded.len() - cell.text.len();
            line.push_str(&(cell.paint)(style, &cell.text));
            line.push_str(&" ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Bytes for people: `81.6 GiB`, `512 MiB`, `940 B`; the one formatter of the libraries.
pub use gpulibs_plan::human_bytes as bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims() {
        let rows = vec![
            vec![Cell::new("a"), Cell::new("long cell"), Cell::new("x")],
            vec![Cell::new("bbb"), Cell::new("c"), Cell::new("")],
        ];
        assert_eq!(table(Style::plain(), &rows), "a    long cell  x\nbbb  c\n");
    }

    #[test]
    fn colour_does_not_change_alignment() {
        let rows = vec![
            vec![Cell::styled("ok", Style::good), Cell::new("1")],
            vec![Cell::new("fail"), Cell::new("2")],
        ];
        let coloured = table(Style { color: true }, &rows);
        let first = coloured.lines().next().unwrap();
        assert_eq!(first, "\x1b[32mok\x1b[0m    1");
    }

    #[test]
    fn byte_sizes() {
        let cases = [
            (0, "0 B"),
            (940, "940 B"),
            (4 << 30, "4.0 GiB"),
            (85_520_809_984, "79.6 GiB"),
            (284 << 20, "284 MiB"),
        ];
        for (n, want) in cases {
            assert_eq!(bytes(n), want, "{n}");
        }
    }
}
