//! What a user types, parsed once for every front end: a chat line, or a
//! `/command` (`//` at the start sends a line that begins with `/`;
//! `!DISCONNECT`, the original app's word, leaves).
//!
//! Arguments are words separated by spaces; one that holds spaces (names
//! may) is written in double quotes, with `\"` and `\\` inside them:
//! `/msg "Bart F" hi` takes `Bart F` as its first argument and leaves
//! `hi` as the rest of the line. [`arguments`] applies that rule for the
//! commands that take arguments.

use thiserror::Error;

/// What one input line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Send this text.
    Say(&'a str),
    /// Leave (`/quit`, `/exit`, `!DISCONNECT`).
    Quit,
    /// List users (`/who`).
    Who,
    /// Show the commands (`/help`).
    Help,
    /// Nothing to do (an empty or blank line).
    Nothing,
    /// A `/command` nobody knows (the whole line).
    Unknown(&'a str),
}

/// The commands, for help and completion.
pub const COMMANDS: [&str; 4] = ["/who", "/quit", "/help", "!DISCONNECT"];

/// One line of help for the commands.
pub const HELP: &str =
    "commands: /who (list users), /quit or !DISCONNECT (leave), /help; start a line with // to send a leading /";

/// Parses one line (line endings already trimmed).
pub fn parse(line: &str) -> Input<'_> {
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    if line.starts_with("//") {
        return Input::Say(&line[1..]);
    }
    if line.trim() == "!DISCONNECT" {
        return Input::Quit;
    }
    let Some(command) = line.strip_prefix('/') else { return Input::Say(line) };
    let name = command.split_whitespace().next().unwrap_or("");
    match name.to_ascii_lowercase().as_str() {
        "quit" | "exit" => Input::Quit,
        "who" => Input::Who,
        "help" => Input::Help,
        _ => Input::Unknown(line),
    }
}

/// A command's arguments that do not follow the quoting rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgumentError {
    /// Fewer arguments than the command takes.
    #[error("{wanted} argument(s) needed, {got} given")]
    Missing {
        /// How many the command takes.
        wanted: usize,
        /// How many there were.
        got: usize,
    },
    /// A quote was opened and never closed.
    #[error("a quoted argument is not closed")]
    Unclosed,
}

/// Takes `n` arguments off the front of `rest` (the text after a command's
/// name), quoted ones unquoted; returns them and the rest of the line
/// (leading spaces dropped, otherwise as typed).
///
/// # Errors
///
/// [`ArgumentError::Missing`] when there are fewer than `n`;
/// [`ArgumentError::Unclosed`] for an open quote.
pub fn arguments(rest: &str, n: usize) -> Result<(Vec<String>, &str), ArgumentError> {
    let mut args = Vec::with_capacity(n);
    let mut s = rest.trim_start();
    while args.len() < n {
        if s.is_empty() {
            return Err(ArgumentError::Missing { wanted: n, got: args.len() });
        }
        if let Some(quoted) = s.strip_prefix('"') {
            let mut arg = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\'))) => arg.push(e),
                        Some((_, other)) => {
                            arg.push('\\');
                            arg.push(other);
                        }
                        None => arg.push('\\'),
                    },
                    other => arg.push(other),
                }
            }
            let end = end.ok_or(ArgumentError::Unclosed)?;
            args.push(arg);
            s = quoted[end..].trim_start();
        } else {
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            args.push(s[..end].to_owned());
            s = s[end..].trim_start();
        }
    }
    Ok((args, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_commands_and_escapes() {
        assert_eq!(parse("hello"), Input::Say("hello"));
        assert_eq!(parse("  "), Input::Nothing);
        assert_eq!(parse("//quit is a command"), Input::Say("/quit is a command"));
        assert_eq!(parse("//slash at the end"), Input::Say("/slash at the end"));
        assert_eq!(parse("//"), Input::Say("/"));
        assert_eq!(parse("/quit"), Input::Quit);
        assert_eq!(parse("/QUIT "), Input::Quit);
        assert_eq!(parse("/exit"), Input::Quit);
        assert_eq!(parse(" !DISCONNECT "), Input::Quit);
        assert_eq!(parse("/who"), Input::Who);
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/frobnicate now"), Input::Unknown("/frobnicate now"));
        assert_eq!(parse("not /a command"), Input::Say("not /a command"));
    }

    #[test]
    fn quoted_arguments_hold_spaces() {
        assert_eq!(arguments(r#""Bart F" hi there"#, 1), Ok((vec!["Bart F".to_owned()], "hi there")));
        assert_eq!(arguments("bob  hi", 1), Ok((vec!["bob".to_owned()], "hi")));
        assert_eq!(arguments(r#"a "b \"c\" \\ d" rest"#, 2), Ok((vec!["a".into(), r#"b "c" \ d"#.into()], "rest")));
        assert_eq!(arguments("only", 2), Err(ArgumentError::Missing { wanted: 2, got: 1 }));
        assert_eq!(arguments(r#""open"#, 1), Err(ArgumentError::Unclosed));
        assert_eq!(arguments("", 0), Ok((vec![], "")));
        assert_eq!(arguments(r#""""#, 1), Ok((vec![String::new()], "")));
    }
}
