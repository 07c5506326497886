//! Making text that came from a peer safe to show: on a terminal, in a log
//! line, or in a JSON line read by another program.
//!
//! One rule, used by the server for its logs and by every client for what
//! it prints: a character that could move the cursor, change colours,
//! reorder the text around it (bidirectional controls), start a new line for
//! a tool that splits on Unicode line breaks (U+2028/2029, U+0085) or hide
//! in plain sight (zero-width and other invisible characters) never passes
//! through raw. [`escape_line`] and [`Escaped`] write it as a visible
//! `\u{XXXX}` (newline and carriage return as `\n` and `\r`); [`escape_json`]
//! writes it as a JSON `\uXXXX` escape, so a JSON reader still gets the
//! original text back.
//!
//! Tabs pass: they move nothing but the column. Backslashes pass too, so
//! ordinary text is shown as typed; an escape is therefore a display form,
//! not a reversible encoding (the JSON form is the reversible one).

use std::borrow::Cow;
use std::fmt;

/// Bidirectional formatting characters that can make text display in a
/// different order than it is stored (the "Trojan Source" set: embeddings,
/// overrides, isolates) plus the directional marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that end a line for some reader although they are not a
/// newline: U+0085 (NEL), U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR
/// (and the ASCII vertical tab and form feed, which are controls anyway).
pub fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{0085}' | '\u{2028}' | '\u{2029}' | '\u{000B}' | '\u{000C}')
}

/// Characters that show nothing (or a blank) and so let one text pass for
/// another: Unicode's Default_Ignorable_Code_Point set (soft hyphen,
/// zero-width spaces and joiners, word joiner, invisible operators, Hangul
/// fillers, variation selectors, BOM, tags, musical formatting symbols and
/// the rest; DerivedCoreProperties.txt, unchanged in its ranges since
/// Unicode 6.3) plus the interlinear annotation characters U+FFF9–FFFB and
/// U+2800 BRAILLE PATTERN BLANK, which renders as a space.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}' | '\u{2800}')
}

/// Whether `c` must be escaped before it reaches a terminal or a log: any
/// control character but tab, a bidirectional control, a line separator, or
/// an invisible character.
pub fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi_control(c) || is_line_separator(c) || is_invisible(c)
}

/// Writes one character the way [`escape_line`] does.
fn write_escaped(c: char, f: &mut impl fmt::Write) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        c if needs_escape(c) => write!(f, "\\u{{{:04X}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

/// `text` on one line and harmless: newline as `\n`, carriage return as
/// `\r`, and every other character of [`needs_escape`] as `\u{XXXX}`.
/// Borrows when there is nothing to escape.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        // Writing into a String cannot fail.
        let _ = write_escaped(c, &mut out);
    }
    Cow::Owned(out)
}

/// Displays a peer's string as [`escape_line`] would, without allocating:
/// for log values (`"user" => %Escaped(&name)`) and `format!` arguments.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            write_escaped(c, f)?;
        }
        Ok(())
    }
}

/// Displays any `Display` value (an error that quotes a peer's bytes, say)
/// escaped as [`Escaped`] does, without formatting it into a string first.
#[derive(Debug, Clone, Copy)]
pub struct EscapedDisplay<T>(pub T);

impl<T: fmt::Display> fmt::Display for EscapedDisplay<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Escapes what the inner value writes, character by character.
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                s.chars().try_for_each(|c| write_escaped(c, self.0))
            }
        }
        fmt::write(&mut Escaping(f), format_args!("{}", self.0))
    }
}

/// A serialized JSON text with every character of [`needs_escape`] written
/// as a JSON `\uXXXX` escape (a surrogate pair above U+FFFF). Such
/// characters can only stand inside JSON strings, so the result parses to
/// the same value; it just never carries them raw (serde_json escapes only
/// U+0000–001F itself). Borrows when there is nothing to escape.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_value_is_escaped_like_a_string() {
        let err = format!("unknown type {:?}", "x\u{1b}[2J\ny\u{2028}");
        assert_eq!(EscapedDisplay(&err).to_string(), Escaped(&err).to_string());
        assert!(!EscapedDisplay(&err).to_string().contains('\u{1b}'));
    }

    /// Every kind the issue named: what a terminal obeys, what reorders,
    /// what splits a line for Unicode-aware tools, what is invisible.
    const HOSTILE: &[char] = &[
        '\u{1B}',
        '\u{7F}',
        '\u{9B}',
        '\u{85}',
        '\u{0B}',
        '\u{0C}',
        '\u{202E}',
        '\u{2066}',
        '\u{200F}',
        '\u{061C}',
        '\u{2028}',
        '\u{2029}',
        '\u{200B}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{2800}',
        '\u{FFF9}',
        '\u{1D173}',
        '\u{E0041}',
        '\u{FE0F}',
        '\u{3164}',
    ];

    #[test]
    fn escapes_what_a_terminal_or_line_splitter_would_obey() {
        assert!(matches!(escape_line("plain text ✓ tab\there ünï 李"), Cow::Borrowed(_)));
        assert_eq!(escape_line("red\x1b[31m"), "red\\u{001B}[31m");
        assert_eq!(escape_line("a\nb\rc"), "a\\nb\\rc");
        assert_eq!(escape_line("evil\u{202E}txt"), "evil\\u{202E}txt");
        assert_eq!(escape_line("c1\u{9b}"), "c1\\u{009B}");
        assert_eq!(escape_line("one\u{2028}two\u{2029}"), "one\\u{2028}two\\u{2029}");
        assert_eq!(escape_line("ali\u{200B}ce\u{1D173}"), "ali\\u{200B}ce\\u{1D173}");
        for &c in HOSTILE {
            let shown = escape_line(&format!("x{c}y")).into_owned();
            assert!(shown.is_ascii(), "{:04X} passed raw: {shown:?}", u32::from(c));
            assert_eq!(Escaped(&format!("x{c}y")).to_string(), shown);
        }
    }

    #[test]
    fn json_escapes_keep_the_text_and_never_carry_it_raw() {
        let text: String = HOSTILE.iter().copied().chain(['"', '\\', 'é', '\t', '\n']).collect();
        let raw = serde_json::json!({ "text": text }).to_string();
        let safe = escape_json(&raw);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        assert!(safe.contains("\\u2028") && safe.contains("\\udb40\\udc41"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back["text"], text.as_str());
        assert!(matches!(escape_json(r#"{"a":"b é"}"#), Cow::Borrowed(_)));
    }
}
