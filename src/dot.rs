//! Graphviz DOT text: the one place that quotes text for it. Spec and host strings are hostile
//! input here as everywhere: every label, tooltip and title goes through [`quoted`], so no
//! string can end its quoted string, start a statement of its own, or reach Graphviz's own
//! escapes (`\N`, `\G`, `\l`) or entities (`&lt;`). Identifiers of nodes and clusters are never
//! made of spec strings: the renderers number them.

/// `s` as a DOT quoted string, quotes included, that Graphviz shows as `s`: `"` and `\`
/// escaped, `&` written as an entity (Graphviz decodes entities in labels), each line break
/// a centred line break (`\n`), and every other control character shown as its escape
/// (`\u{1b}`), never passed on.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                // `\u{1b}` as text: its backslash is escaped like any other.
                for e in c.escape_default() {
                    if e == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(e);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as a tooltip (`, tooltip="…"`, to append to a statement's attributes), or nothing when
/// it holds a backslash: Graphviz (2.43) reads a tooltip's backslashes twice over, so no
/// escaping shows a backslash as written there (`\\N` becomes the node's name). A label shows
/// the same text right; the tooltip is only a convenience.
pub fn tooltip(s: &str) -> String {
    if s.contains('\\') {
        String::new()
    } else {
        format!(", tooltip={}", quoted(s))
    }
}

/// `s` folded into lines of at most about `width` characters, at spaces (a word longer than
/// `width` stays whole): long labels make wide pictures. Existing line breaks are kept.
pub fn wrap(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut len = 0;
        for (j, word) in line.split(' ').enumerate() {
            let w = word.chars().count();
            if j > 0 {
                if len > 0 && len + 1 + w > width {
                    out.push('\n');
                    len = 0;
                } else {
                    out.push(' ');
                    len += 1;
                }
            }
            out.push_str(word);
            len += w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Graphviz shows for a quoted string: the DOT lexer's `\"`, then the label's own
    /// escapes (`\\`, `\n`, `\l`) and entities (`&amp;`). Panics where Graphviz would read a
    /// different string than `quoted` meant: an unescaped quote inside, a lone backslash.
    fn shown(q: &str) -> String {
        let inner = q
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .expect("quoted");
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            match c {
                '"' => panic!("unescaped quote in {q}"),
                '\\' => match it.next() {
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    Some('n') | Some('l') => out.push('\n'),
                    other => panic!("a Graphviz escape \\{other:?} in {q}"),
                },
                c => out.push(c),
            }
        }
        // Every `&` starts `&amp;`: no other entity reaches Graphviz.
        assert!(
            out.match_indices('&')
                .all(|(i, _)| out[i..].starts_with("&amp;")),
            "{q}"
        );
        out.replace("&amp;", "&")
    }

    #[test]
    fn a_quoted_string_shows_its_text_and_nothing_escapes_it() {
        for s in [
            "plain",
            "a \"quoted\" name",
            "ends with a backslash \\",
            "\\\"",
            "\\\\\"] ; x [label=\"pwned\"",
            "two\nlines",
            "\\N \\G \\l \\E",
            "&lt;script&gt; &amp; &#34;",
            "}; digraph { a -> b",
        ] {
            let q = quoted(s);
            assert_eq!(shown(&q), s, "{q}");
            assert!(!q.chars().any(char::is_control), "{q:?}");
        }
    }

    #[test]
    fn control_characters_are_shown_as_escapes() {
        let q = quoted("esc\u{1b}[2K cr\r tab\t nul\0 del\u{7f} c1\u{9b}");
        assert!(!q.chars().any(char::is_control), "{q:?}");
        assert_eq!(
            shown(&q),
            "esc\\u{1b}[2K cr\\r tab\\t nul\\u{0} del\\u{7f} c1\\u{9b}"
        );
    }

    #[test]
    fn a_tooltip_with_a_backslash_is_left_out() {
        assert_eq!(tooltip("a \"b\"\nc"), ", tooltip=\"a \\\"b\\\"\\nc\"");
        assert_eq!(tooltip("a\\N"), "");
    }

    #[test]
    fn wrapping_folds_at_spaces() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("a-very-long-word x", 4), "a-very-long-word\nx");
        assert_eq!(wrap("x\ny z", 3), "x\ny z");
    }
}
