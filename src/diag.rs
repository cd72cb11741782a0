//! Diagnostics: errors and warnings that point at file:line:column, show the offending
//! source line, and carry a hint. Rendered for people (text) or for CI annotations (JSON).

use serde::Serialize;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// A byte range in one of the loaded source files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub file: u32,
    pub start: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
    /// Other places that explain the error (the first definition of a duplicate, the
    /// members of a cycle…).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code: "error",
            message: message.into(),
            span: None,
            hint: None,
            related: Vec::new(),
        }
    }
    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
    pub fn related(mut self, span: Span, note: impl Into<String>) -> Self {
        self.related.push((span, note.into()));
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// One loaded source: its display label (`specs/dom0.yaml @ 1a2b3c4`) and text.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as the user knows it (relative to the repository root when loaded from git).
    pub path: String,
    pub text: String,
    line_starts: OnceLock<Vec<usize>>,
}

impl SourceFile {
    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let starts = self.line_starts();
        let line = match starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    pub fn line_text(&self, line: usize) -> &str {
        let starts = self.line_starts();
        let Some(&start) = starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = starts.get(line).map(|e| e - 1).unwrap_or(self.text.len());
        self.text
            .get(start..end.max(start))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// Byte offset of a 1-based line and column (characters); clamps to the text.
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return off
                + l.char_indices()
                    .nth(col.saturating_sub(1))
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        off += l.len();
    }
    text.len()
}

#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: impl Into<String>, text: String) -> u32 {
        self.files.push(SourceFile {
            path: path.into(),
            text,
            line_starts: OnceLock::new(),
        });
        (self.files.len() - 1) as u32
    }

    pub fn get(&self, file: u32) -> Option<&SourceFile> {
        self.files.get(file as usize)
    }

    /// The source text a span covers.
    pub fn text(&self, span: Span) -> &str {
        self.get(span.file)
            .and_then(|f| {
                f.text
                    .get(span.start as usize..(span.start + span.len) as usize)
            })
            .unwrap_or("")
    }

    pub fn locate(&self, span: Span) -> Option<Location> {
        let f = self.get(span.file)?;
        let (line, column) = f.line_col(span.start as usize);
        Some(Location {
            file: f.path.clone(),
            line,
            column,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

/// When to colour output (`--color`): auto (a terminal, and NO_COLOR unset), always or never.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn enabled(self, stream_is_tty: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    pub fn stderr(self) -> Style {
        use std::io::IsTerminal;
        Style {
            color: self.enabled(std::io::stderr().is_terminal()),
        }
    }
}

/// A string as it may reach a terminal: control characters (ESC, CR, the other C0 and C1
/// codes, DEL) are shown escaped (`\u{1b}`), so that a spec or host string cannot move the
/// cursor, recolour or hide lines of a plan or a diagnostic. Tabs and newlines are escaped too:
/// every caller prints one value on one line.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn paint(style: Style, code: &str, s: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// Human rendering, in the style of rustc: header, location, source line, caret, hint.
pub fn render(d: &Diagnostic, sources: &Sources, style: Style) -> String {
    let mut out = String::new();
    let (word, colour) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let _ = writeln!(
        out,
        "{}{} {}",
        paint(style, colour, &format!("{word}[{}]", d.code)),
        paint(style, "1", ":"),
        paint(style, "1", &visible(&d.message))
    );
    if let Some(span) = d.span {
        snippet(&mut out, sources, span, None, style);
    }
    for (span, note) in &d.related {
        snippet(&mut out, sources, *span, Some(note), style);
    }
    if let Some(h) = &d.hint {
        let width = d
            .span
            .and_then(|s| sources.locate(s))
            .map(|l| l.line.to_string().len())
            .unwrap_or(1);
        let _ = writeln!(
            out,
            "{:width$} = {} {}",
            "",
            paint(style, "1;36", "hint:"),
            visible(h)
        );
    }
    out
}

fn snippet(out: &mut String, sources: &Sources, span: Span, note: Option<&str>, style: Style) {
    let Some(f) = sources.get(span.file) else {
        return;
    };
    let (line, col) = f.line_col(span.start as usize);
    // Show at most ~100 characters of a long line, around the column; the header keeps the
    // real column.
    let full = f.line_text(line);
    let (text, caret_col) = if full.chars().count() > 120 {
        let skip = col.saturating_sub(40);
        let shown: String = full.chars().skip(skip).take(100).collect();
        let lead = if skip > 0 { "…" } else { "" };
        (
            std::borrow::Cow::Owned(format!("{lead}{shown}…")),
            col - skip + lead.chars().count(),
        )
    } else {
        (std::borrow::Cow::Borrowed(full), col)
    };
    let text: &str = &text;
    let width = line.to_string().len();
    let bar = paint(style, "1;34", "|");
    let _ = writeln!(
        out,
        "{:width$}{} {}:{line}:{col}",
        "",
        paint(style, "1;34", "-->"),
        f.path
    );
    let _ = writeln!(out, "{:width$} {bar}", "");
    let _ = writeln!(
        out,
        "{} {bar} {}",
        paint(style, "1;34", &line.to_string()),
        visible(&text.replace('\t', " "))
    );
    let covered = sources.text(span);
    let caret_len = covered
        .lines()
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        .clamp(1, text.chars().count().saturating_sub(caret_col - 1).max(1));
    let _ = writeln!(
        out,
        "{:width$} {bar} {:pad$}{}{}",
        "",
        "",
        paint(style, "1;31", &"^".repeat(caret_len)),
        note.map(|n| format!(" {}", visible(n))).unwrap_or_default(),
        pad = caret_col - 1
    );
}

/// One diagnostic as JSON, for CI annotations.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<JsonRelated>,
}

#[derive(Debug, Serialize)]
pub struct JsonRelated {
    #[serde(flatten)]
    pub location: Option<Location>,
    pub note: String,
}

pub fn to_json(d: &Diagnostic, sources: &Sources) -> JsonDiagnostic {
    let location = d.span.and_then(|s| sources.locate(s));
    let source_line = location.as_ref().and_then(|l| {
        d.span
            .and_then(|s| sources.get(s.file))
            .map(|f| f.line_text(l.line).to_string())
    });
    JsonDiagnostic {
        severity: d.severity,
        code: d.code,
        message: d.message.clone(),
        location,
        source_line,
        hint: d.hint.clone(),
        related: d
            .related
            .iter()
            .map(|(s, n)| JsonRelated {
                location: sources.locate(*s),
                note: n.clone(),
            })
            .collect(),
    }
}

/// "did you mean" for a misspelt name among candidates.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
