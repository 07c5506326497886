//! Making text from other people safe to show on a terminal or in a log
//! line: control, escape, bidirectional, line-separator and invisible
//! characters are never passed through raw. The rule lives in
//! [`protocol::escape`] (one helper for the server's logs and every
//! client); this module is where front ends find it.

pub use protocol::escape::{Escaped, escape_json, escape_line, needs_escape};

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert!(matches!(escape_line("plain text ✓"), Cow::Borrowed(_)));
        assert_eq!(escape_line("red\x1b[31m"), "red\\u{001B}[31m");
        assert_eq!(escape_line("a\nb"), "a\\nb");
        assert_eq!(escape_line("evil\u{202E}txt"), "evil\\u{202E}txt");
        assert_eq!(escape_line("c1\u{9b}"), "c1\\u{009B}");
        assert_eq!(escape_line("forged\u{2028}line"), "forged\\u{2028}line");
        assert_eq!(escape_line("zero\u{200B}width"), "zero\\u{200B}width");
    }
}
