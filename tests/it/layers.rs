//! The layers only point down: a module names (`crate::x`, `super::…::x`, `use crate::{x, …}`)
//! only modules of its own layer or of the layers below it. Code and tests alike; comments and
//! string literals are not code and are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, top first: each names the top-level modules of `src/lib.rs` it holds. A new
/// module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    // The command line: parses arguments, calls the workflow, turns outcomes into exit codes.
    ("cli", &["cli"]),
    // The operator's workflow around plan and apply, and the tools the command line calls.
    (
        "workflow",
        &["workflow", "safe", "progress", "sandbox", "synthetic"],
    ),
    // The executors: apply runs a plan, shutdown stops and starts guests.
    ("apply", &["apply", "shutdown"]),
    ("plan", &["plan"]),
    ("discover", &["discover"]),
    ("kinds", &["kinds"]),
    ("runner", &["runner", "interrupt"]),
    // Leaves: they name nothing above them.
    (
        "leaf",
        &["spec", "diag", "dot", "version", "clock", "systemd"],
    ),
];

/// Upward references still allowed: (a file's path prefix, the module it may name). Each is
/// a debt with a reason; an entry that matches nothing fails the test, so it goes when the
/// debt is paid.
const ALLOWED: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust source as tokens with their line: identifiers, `::` and punctuation. Comments (doc
/// comments too), string, byte-string and raw-string literals, char literals and lifetimes
/// are dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                // An escaped char literal: '\n', '\'', '\u{1b}'.
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or a label: its name is no path.
                i += 1;
                while ident_char(at(i)) {
                    i += 1;
                }
            }
        } else if ident_char(ch) {
            let start = i;
            while ident_char(at(i)) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings and byte strings: r"…", r#"…"#, br"…", b"…", c"…".
            let prefix = matches!(word.as_str(), "r" | "br" | "cr" | "b" | "c");
            if prefix && (at(i) == '"' || (word.ends_with('r') && at(i) == '#')) {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                if at(i) != '"' {
                    // `r#ident`: a raw identifier.
                    let s = i;
                    while ident_char(at(i)) {
                        i += 1;
                    }
                    out.push((Tok::Ident(c[s..i].iter().collect()), line));
                    continue;
                }
                i += 1;
                let raw = word.ends_with('r');
                loop {
                    if i >= c.len() {
                        break;
                    }
                    if c[i] == '\n' {
                        line += 1;
                    }
                    if !raw && c[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
            } else if word == "b" && at(i) == '\'' {
                // A byte literal: b'x', b'\''.
                i += if at(i + 1) == '\\' { 4 } else { 3 };
                while at(i - 1) != '\'' && i < c.len() {
                    i += 1;
                }
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// The module path of a source file: `src/plan/storage/teardown.rs` is plan::storage::teardown.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .skip(1)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules a file names, each with the line where it does.
fn named_modules(src: &str, module: &[String]) -> Vec<(String, usize)> {
    let toks = tokens(src);
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let is = |k: usize, t: &Tok| toks.get(k).map(|(x, _)| x) == Some(t);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) and the brace depth each was opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut k = 0;
    while k < toks.len() {
        let line = toks[k].1;
        match &toks[k].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" && is(k + 2, &Tok::Punct('{')) => {
                if let Some(name) = ident(k + 1) {
                    inline.push((name.to_string(), depth));
                }
            }
            Tok::Ident(w) if (w == "crate" || w == "super") && is(k + 1, &Tok::Path) => {
                // `$crate` is a macro's own crate, not this path.
                let in_macro = k > 0 && is(k - 1, &Tok::Punct('$'));
                // Resolve to the crate root, or to a module inside this file's top-level one.
                let mut here: Vec<String> = module.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut j = k;
                let at_root = if w == "crate" {
                    j += 2;
                    true
                } else {
                    while ident(j) == Some("super") && is(j + 1, &Tok::Path) {
                        here.pop();
                        j += 2;
                    }
                    here.is_empty()
                };
                if at_root && !in_macro {
                    if let Some(m) = ident(j) {
                        found.push((m.to_string(), line));
                    } else if is(j, &Tok::Punct('{')) {
                        // `use crate::{a, b::c, d as e}`: the first name of each element.
                        let mut d = 0;
                        let mut first = true;
                        let mut n = j;
                        while n < toks.len() {
                            match &toks[n].0 {
                                Tok::Punct('{') => {
                                    d += 1;
                                    first = d == 1;
                                }
                                Tok::Punct('}') => {
                                    d -= 1;
                                    if d == 0 {
                                        break;
                                    }
                                }
                                Tok::Punct(',') if d == 1 => first = true,
                                Tok::Ident(m) if d == 1 && first => {
                                    found.push((m.clone(), toks[n].1));
                                    first = false;
                                }
                                _ => {}
                            }
                            n += 1;
                        }
                        k = n + 1;
                        continue;
                    }
                }
                k = j;
                continue;
            }
            _ => {}
        }
        k += 1;
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let mods: Vec<String> = named_declared(&lib);
    assert!(mods.len() > 10, "{mods:?}");
    for m in &mods {
        assert!(
            layer_of(m).is_some(),
            "src/lib.rs declares `{m}`: place it in a layer of tests/it/layers.rs"
        );
    }
    for (_, ms) in LAYERS {
        for m in *ms {
            assert!(
                mods.contains(&m.to_string()),
                "no module `{m}` in src/lib.rs"
            );
        }
    }
}

/// The modules `src/lib.rs` declares (`pub mod x;`).
fn named_declared(lib: &str) -> Vec<String> {
    let t: Vec<Tok> = tokens(lib).into_iter().map(|(t, _)| t).collect();
    t.windows(3)
        .filter_map(|w| match w {
            [Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')] if m == "mod" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_module_names_a_layer_above_it() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    assert!(files.len() > 40);
    let mut violations = Vec::new();
    let mut allowance_used: BTreeMap<usize, usize> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap();
        let module = module_of(rel);
        // lib.rs and main.rs are the crate roots: above every layer.
        let Some(top) = module.first().map(String::as_str) else {
            continue;
        };
        let Some(own) = layer_of(top) else {
            violations.push(format!("{}: module `{top}` has no layer", rel.display()));
            continue;
        };
        let src = std::fs::read_to_string(f).unwrap();
        for (named, line) in named_modules(&src, &module) {
            let Some(theirs) = layer_of(&named) else {
                continue;
            };
            if theirs >= own {
                continue;
            }
            let rel_s = rel.to_string_lossy();
            if let Some(a) = ALLOWED
                .iter()
                .position(|(p, m)| rel_s.starts_with(p) && *m == named)
            {
                *allowance_used.entry(a).or_default() += 1;
                continue;
            }
            violations.push(format!(
                "{}:{line}: `{top}` ({} layer) names `{named}` ({} layer, above it)",
                rel.display(),
                LAYERS[own].0,
                LAYERS[theirs].0
            ));
        }
    }
    for (a, (p, m)) in ALLOWED.iter().enumerate() {
        if !allowance_used.contains_key(&a) {
            violations.push(format!(
                "the allowance ({p:?}, {m:?}) is no longer used: remove it from tests/it/layers.rs"
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "imports that go up a layer:\n{}",
        violations.join("\n")
    );
}

/// The scanner itself: what is code counts, comments and literals do not.
#[test]
fn the_scanner_reads_paths_not_comments_or_strings() {
    let src = r####"
//! crate::cli in a doc comment
/// crate::workflow
/* crate::apply /* nested crate::plan */ still crate::cli */
use crate::{diag, kinds::{guest, lvm as l}, spec::types::*};
use crate::runner::Runner;
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::cli";
    let _ = r#"crate::cli "quoted" "#;
    let _ = b"crate::cli";
    let _ = '"'; let _ = '\''; let _ = b'"';
    crate::discover::discover(x);
    '{'
}
macro_rules! m { () => { $crate::cli::main() }; }
mod tests {
    use super::*;
    fn g() { super::super::plan::plan_host(); }
}
"####;
    let found: Vec<(String, usize)> = named_modules(src, &["kinds".into()]);
    assert_eq!(
        found,
        [
            ("diag".to_string(), 5),
            ("kinds".into(), 5),
            ("spec".into(), 5),
            ("runner".into(), 6),
            ("discover".into(), 12),
            ("plan".into(), 18),
        ]
    );
    // From a file one level down, one `super` stays inside its own module.
    let inner = named_modules(
        "use super::x; use super::super::cli;",
        &["plan".into(), "storage".into()],
    );
    assert_eq!(inner, [("cli".to_string(), 1)]);
}
