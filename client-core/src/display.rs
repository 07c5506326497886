//! Making text from other people safe to show on a terminal or in a log
//! line: control, escape, bidirectional, line-separator and invisible
//! characters are never passed through raw. The rule lives in
//! [`protocol::escape`] (one helper for the server's logs and every
//! client); this module is where front ends find it, with the one-line
//! forms of a ban and an audit entry both front ends show.

pub use protocol::escape::{Escaped, escape_json, escape_line, needs_escape};
use protocol::moderation::{AuditEntry, BanEntry, BanKind};

/// One ban in words, escaped: `#3 address 203.0.113.0/24 by mod since
/// TIME, until TIME: reason` (`no end` for a ban until lifted). `time`
/// shows a Unix time in ms as the front end shows times.
pub fn ban_line(b: &BanEntry, time: impl Fn(u64) -> String) -> String {
    let kind = match b.kind {
        BanKind::Name => "name",
        BanKind::Address => "address",
    };
    let until = b.until_ms.map_or_else(|| "no end".to_owned(), |u| format!("until {}", time(u)));
    let reason = if b.reason.is_empty() { String::new() } else { format!(": {}", escape_line(&b.reason)) };
    format!(
        "#{} {kind} {} by {} since {}, {until}{reason}",
        b.id,
        escape_line(&b.target),
        escape_line(&b.by),
        time(b.since_ms)
    )
}

/// One audit entry in words, escaped: `#7 TIME mod mute bob 30m in #dev:
/// reason`.
pub fn audit_line(e: &AuditEntry, time: impl Fn(u64) -> String) -> String {
    let mut line = format!("#{} {} {} {}", e.id, time(e.ts_ms), escape_line(&e.actor), escape_line(&e.action));
    for part in [&e.target, &e.detail] {
        if !part.is_empty() {
            line.push(' ');
            line.push_str(&escape_line(part));
        }
    }
    if let Some(room) = &e.room {
        line.push_str(&format!(" in #{}", escape_line(room)));
    }
    if !e.reason.is_empty() {
        line.push_str(&format!(": {}", escape_line(&e.reason)));
    }
    line
}

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
