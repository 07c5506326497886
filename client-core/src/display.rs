//! Making text from other people safe to show on a terminal or in a log
//! line: control, escape and bidirectional-override characters are never
//! passed through raw.

use std::borrow::Cow;

use protocol::message::is_bidi_control;

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi_control(c) || c == '\u{FEFF}'
}

/// `text` with newlines as `\n` and every other control, escape or bidi
/// character as `\u{XXXX}`, so it fits on one line and cannot move the
/// cursor, change colours or reorder what follows.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert!(matches!(escape_line("plain text ✓"), Cow::Borrowed(_)));
        assert_eq!(escape_line("red\x1b[31m"), "red\\u{001B}[31m");
        assert_eq!(escape_line("a\nb"), "a\\nb");
        assert_eq!(escape_line("evil\u{202E}txt"), "evil\\u{202E}txt");
        assert_eq!(escape_line("c1\u{9b}"), "c1\\u{009B}");
    }
}
