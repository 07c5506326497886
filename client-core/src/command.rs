//! What a user types, parsed once for every front end: a chat line, or a
//! `/command` (`//` at the start sends a line that begins with `/`;
//! `!DISCONNECT`, the original app's word, leaves).
//!
//! Arguments are words separated by spaces; one that holds spaces (names
//! may) is written in double quotes, with `\"` and `\\` inside them:
//! `/msg "Bart F" hi` takes `Bart F` as its first argument and leaves
//! `hi` as the rest of the line. [`arguments`] applies that rule for the
//! commands that take arguments.

use protocol::message::ServerId;
use thiserror::Error;

/// What one input line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Send this text (to the current room or conversation).
    Say(&'a str),
    /// Leave (`/quit`, `/exit`, `!DISCONNECT`).
    Quit,
    /// List users (`/who`: everyone connected; `/who ROOM`: a room's members).
    Who(Option<String>),
    /// Join a room, creating it where allowed (`/join ROOM`).
    Join(String),
    /// Leave a room (`/part ROOM`).
    Part(String),
    /// Make a room where lines go (`/room ROOM`).
    Room(String),
    /// List every room (`/rooms`).
    Rooms,
    /// A private message (`/msg NAME TEXT`).
    Msg {
        /// To whom.
        to: String,
        /// The text.
        text: &'a str,
    },
    /// Page older messages of the current room (`/history [N]`).
    History(Option<u32>),
    /// Replace the text of one of our messages (`/edit [ID] TEXT`).
    Edit {
        /// The message's server id; `None`: our latest message where our
        /// lines go ([`crate::rooms::Rooms::last_own`]).
        id: Option<ServerId>,
        /// The new text.
        text: &'a str,
    },
    /// Delete one of our messages (`/delete [ID]`; `None`: our latest
    /// where our lines go).
    Delete(Option<ServerId>),
    /// Show the commands (`/help`).
    Help,
    /// Nothing to do (an empty or blank line).
    Nothing,
    /// A known command with arguments it does not take.
    Usage {
        /// What was wrong.
        problem: String,
        /// How the command is written.
        usage: &'static str,
    },
    /// A `/command` nobody knows (the whole line).
    Unknown(&'a str),
}

/// The commands, for help and completion.
pub const COMMANDS: [&str; 13] = [
    "/join",
    "/part",
    "/room",
    "/rooms",
    "/msg",
    "/history",
    "/who",
    "/edit",
    "/delete",
    "/quit",
    "/help",
    "!DISCONNECT",
    "/exit",
];

/// One line of help for the commands.
pub const HELP: &str = "commands: /join ROOM, /part ROOM, /room ROOM (where your lines go), /rooms, /msg NAME TEXT, \
/history [N] (older messages), /who [ROOM], /edit [ID] TEXT (your latest, or message ID), /delete [ID], /quit or !DISCONNECT (leave), /help; \
quote names with spaces (\"Bart F\"); start a line with // to send a leading /";

/// A room name as typed: one leading `#` dropped.
pub fn room_name(typed: &str) -> String {
    typed.strip_prefix('#').unwrap_or(typed).to_owned()
}

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
    let rest = command[name.len()..].trim_start();
    let usage = |usage: &'static str, problem: String| Input::Usage { problem, usage };
    // One argument (a room or a name), nothing after it.
    let one = |usage_text: &'static str| match arguments(rest, 1) {
        Ok((mut args, "")) => Ok(args.remove(0)),
        Ok((_, extra)) => Err(usage(usage_text, format!("unexpected {extra:?}"))),
        Err(e) => Err(usage(usage_text, e.to_string())),
    };
    let id = |text: &str, usage_text: &'static str| {
        text.parse::<ServerId>().map_err(|_| usage(usage_text, format!("{text:?} is not a message id")))
    };
    match name.to_ascii_lowercase().as_str() {
        "quit" | "exit" => Input::Quit,
        "help" => Input::Help,
        "rooms" => Input::Rooms,
        "who" if rest.is_empty() => Input::Who(None),
        "who" => one("/who [ROOM]").map_or_else(|e| e, |r| Input::Who(Some(room_name(&r)))),
        "join" => one("/join ROOM").map_or_else(|e| e, |r| Input::Join(room_name(&r))),
        "part" | "leave" => one("/part ROOM").map_or_else(|e| e, |r| Input::Part(room_name(&r))),
        "room" => one("/room ROOM").map_or_else(|e| e, |r| Input::Room(room_name(&r))),
        "history" if rest.is_empty() => Input::History(None),
        "history" => match rest.parse::<u32>() {
            Ok(n) if n > 0 => Input::History(Some(n)),
            _ => usage("/history [N]", format!("{rest:?} is not a positive number")),
        },
        "msg" => match arguments(rest, 1) {
            Ok((_, "")) => usage("/msg NAME TEXT", "no text".into()),
            Ok((mut args, text)) => Input::Msg { to: args.remove(0), text },
            Err(e) => usage("/msg NAME TEXT", e.to_string()),
        },
        // `/edit 42 new text` edits message 42; `/edit new text` our latest.
        "edit" => match rest.split_once(char::is_whitespace) {
            _ if rest.is_empty() => usage("/edit [ID] TEXT", "no text".into()),
            Some((n, text)) if n.parse::<ServerId>().is_ok() && !text.trim().is_empty() => {
                Input::Edit { id: n.parse().ok(), text: text.trim_start() }
            }
            None if rest.parse::<ServerId>().is_ok() => usage("/edit [ID] TEXT", "no text".into()),
            _ => Input::Edit { id: None, text: rest },
        },
        "delete" if rest.is_empty() => Input::Delete(None),
        "delete" => {
            one("/delete [ID]").and_then(|a| id(&a, "/delete [ID]")).map_or_else(|e| e, |n| Input::Delete(Some(n)))
        }
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
        assert_eq!(parse("/who"), Input::Who(None));
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/frobnicate now"), Input::Unknown("/frobnicate now"));
        assert_eq!(parse("not /a command"), Input::Say("not /a command"));
    }

    #[test]
    fn room_commands_take_a_room_with_or_without_its_hash() {
        assert_eq!(parse("/join #dev"), Input::Join("dev".into()));
        assert_eq!(parse("/join dev"), Input::Join("dev".into()));
        assert_eq!(parse("/JOIN ##x"), Input::Join("#x".into()), "one # only");
        assert_eq!(parse("/part #dev"), Input::Part("dev".into()));
        assert_eq!(parse("/room general"), Input::Room("general".into()));
        assert_eq!(parse("/rooms"), Input::Rooms);
        assert_eq!(parse("/who #dev"), Input::Who(Some("dev".into())));
        assert!(matches!(parse("/join"), Input::Usage { usage: "/join ROOM", .. }));
        assert!(matches!(parse("/join a b"), Input::Usage { usage: "/join ROOM", .. }));
    }

    #[test]
    fn messages_history_edits_and_deletes() {
        assert_eq!(parse("/msg bob hi there"), Input::Msg { to: "bob".into(), text: "hi there" });
        assert_eq!(parse(r#"/msg "Bart F" psst"#), Input::Msg { to: "Bart F".into(), text: "psst" });
        assert!(matches!(parse("/msg bob"), Input::Usage { usage: "/msg NAME TEXT", .. }));
        assert_eq!(parse("/history"), Input::History(None));
        assert_eq!(parse("/history 20"), Input::History(Some(20)));
        assert!(matches!(parse("/history lots"), Input::Usage { .. }));
        assert!(matches!(parse("/history 0"), Input::Usage { .. }));
        assert_eq!(parse("/edit 42 better words"), Input::Edit { id: Some(42), text: "better words" });
        assert_eq!(parse("/edit better words"), Input::Edit { id: None, text: "better words" }, "our latest");
        assert_eq!(parse("/edit 2 words"), Input::Edit { id: Some(2), text: "words" });
        assert!(matches!(parse("/edit 42"), Input::Usage { .. }));
        assert!(matches!(parse("/edit"), Input::Usage { .. }));
        assert_eq!(parse("/delete 42"), Input::Delete(Some(42)));
        assert_eq!(parse("/delete"), Input::Delete(None), "our latest");
        assert!(matches!(parse("/delete 4 2"), Input::Usage { .. }));
        assert!(matches!(parse("/delete x"), Input::Usage { usage: "/delete [ID]", .. }));
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
