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
use protocol::moderation::{Action, Role, RoomSetting, parse_duration};
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
    /// Page our stored private conversation with an account
    /// (`/history @NAME [N]`).
    PrivateHistory {
        /// The other account.
        with: String,
        /// How many.
        count: Option<u32>,
    },
    /// Register the name we use (`/register`); the front end asks for the
    /// account password (never typed on the line).
    Register,
    /// Change our account password (`/password`); the front end asks for
    /// the current and the new one.
    Password,
    /// Give our registered name back (`/unregister`); the front end asks
    /// for the account password.
    Unregister,
    /// A moderation request, complete as typed (`/kick`, `/ban`, `/banip`,
    /// `/unban`, `/bans`, `/mute`, `/unmute`, `/mod`, `/unmod`, `/audit`).
    Moderate(Action),
    /// A moderation request about one room (`/topic`, `/room … set`,
    /// `/invite`, `/uninvite`): the room named, or (`None`) the current one.
    ModerateRoom {
        /// The room named (bare); `None`: where our lines go.
        room: Option<String>,
        /// What to do there.
        request: RoomRequest,
    },
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

/// What a room request does, once the room is known
/// ([`Input::ModerateRoom`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomRequest {
    /// Set the topic (empty: none).
    Topic(String),
    /// Change a setting.
    Set(RoomSetting),
    /// Put a name on the invite-only list (`remove`: take it off).
    Invite {
        /// The name.
        name: String,
        /// Take it off instead.
        remove: bool,
    },
}

impl RoomRequest {
    /// The request for `room`.
    pub fn into_action(self, room: String) -> Action {
        match self {
            Self::Topic(topic) => Action::Topic { room, topic },
            Self::Set(setting) => Action::RoomSet { room, setting },
            Self::Invite { name, remove } => Action::Invite { room, name, remove },
        }
    }
}

/// The commands, for help and completion.
pub const COMMANDS: [&str; 29] = [
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
    "/register",
    "/password",
    "/unregister",
    "/kick",
    "/ban",
    "/banip",
    "/unban",
    "/bans",
    "/mute",
    "/unmute",
    "/topic",
    "/invite",
    "/uninvite",
    "/mod",
    "/unmod",
    "/audit",
];

/// One line of help for the commands.
pub const HELP: &str = "commands: /join ROOM, /part ROOM, /room ROOM (where your lines go), /rooms, /msg NAME TEXT, \
/history [N] (older messages), /history @NAME [N] (stored private messages), /who [ROOM], /edit [ID] TEXT (your latest, or message ID), /delete [ID], \
/register, /password, /unregister (your account; the password is asked for), /quit or !DISCONNECT (leave), /help; \
moderators: /kick NAME [REASON], /ban NAME [DURATION] [REASON], /banip ADDRESS[/PREFIX] [DURATION] [REASON], /unban NAME|ADDRESS|#ID, /bans, \
/mute NAME [#ROOM] [DURATION] [REASON], /unmute NAME [#ROOM], /topic [#ROOM] TEXT, /room [#ROOM] set history|history_days|voice|invite_only VALUE, \
/invite NAME [#ROOM], /uninvite NAME [#ROOM], /mod NAME [#ROOM], /unmod NAME [#ROOM], /audit [N] (durations: 90s, 30m, 12h, 7d, 2w); \
quote names with spaces (\"Bart F\"); start a line with // to send a leading /";

/// A room name as typed: one leading `#` dropped.
pub fn room_name(typed: &str) -> String {
    protocol::message::bare_room(typed).to_owned()
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
        "room" => room_command(rest),
        "history" if rest.is_empty() => Input::History(None),
        "history" if rest.starts_with('@') => private_history(&rest[1..]),
        "history" => match rest.parse::<u32>() {
            Ok(n) if n > 0 => Input::History(Some(n)),
            _ => usage("/history [N] or /history @NAME [N]", format!("{rest:?} is not a positive number")),
        },
        "register" | "password" | "unregister" if !rest.is_empty() => usage(
            match name.to_ascii_lowercase().as_str() {
                "register" => "/register",
                "password" => "/password",
                _ => "/unregister",
            },
            "the password is asked for, never typed on the line".into(),
        ),
        "register" => Input::Register,
        "password" => Input::Password,
        "unregister" => Input::Unregister,
        "kick" => moderation(rest, "/kick NAME [REASON]", |mut a| {
            let name = a.word()?;
            Ok(Input::Moderate(Action::Kick { name, reason: a.reason() }))
        }),
        "ban" => moderation(rest, "/ban NAME [DURATION] [REASON]", |mut a| {
            let name = a.word()?;
            let duration_secs = a.duration();
            Ok(Input::Moderate(Action::Ban { name, duration_secs, reason: a.reason() }))
        }),
        "banip" => moderation(rest, "/banip ADDRESS[/PREFIX] [DURATION] [REASON]", |mut a| {
            let address = a.word()?;
            let duration_secs = a.duration();
            Ok(Input::Moderate(Action::BanIp { address, duration_secs, reason: a.reason() }))
        }),
        "unban" => {
            one("/unban NAME|ADDRESS|#ID").map_or_else(|e| e, |target| Input::Moderate(Action::Unban { target }))
        }
        "bans" if rest.is_empty() => Input::Moderate(Action::Bans),
        "bans" => usage("/bans", format!("unexpected {rest:?}")),
        "mute" => moderation(rest, "/mute NAME [#ROOM] [DURATION] [REASON]", |mut a| {
            let name = a.word()?;
            let room = a.room();
            let duration_secs = a.duration();
            Ok(Input::Moderate(Action::Mute { name, room, duration_secs, reason: a.reason() }))
        }),
        "unmute" => moderation(rest, "/unmute NAME [#ROOM]", |mut a| {
            let name = a.word()?;
            let room = a.last_room()?;
            Ok(Input::Moderate(Action::Unmute { name, room }))
        }),
        "mod" | "unmod" => {
            let revoke = name.eq_ignore_ascii_case("unmod");
            moderation(rest, if revoke { "/unmod NAME [#ROOM]" } else { "/mod NAME [#ROOM]" }, |mut a| {
                let (name, role) = (a.word()?, Role::Moderator);
                let room = a.last_room()?;
                Ok(Input::Moderate(if revoke {
                    Action::Revoke { name, role, room }
                } else {
                    Action::Grant { name, role, room }
                }))
            })
        }
        "invite" | "uninvite" => {
            let remove = name.eq_ignore_ascii_case("uninvite");
            moderation(rest, if remove { "/uninvite NAME [#ROOM]" } else { "/invite NAME [#ROOM]" }, |mut a| {
                let name = a.word()?;
                let room = a.last_room()?;
                Ok(Input::ModerateRoom { room, request: RoomRequest::Invite { name, remove } })
            })
        }
        "topic" => moderation(rest, "/topic [#ROOM] TEXT (\"\" clears it)", |mut a| {
            let room = a.room();
            let topic = match a.reason() {
                None => return Err("no text".into()),
                Some(t) if t == "\"\"" => String::new(),
                Some(t) => t,
            };
            Ok(Input::ModerateRoom { room, request: RoomRequest::Topic(topic) })
        }),
        "audit" if rest.is_empty() => Input::Moderate(Action::Audit { limit: None, before: None }),
        "audit" => match rest.parse::<u32>() {
            Ok(n) if n > 0 => Input::Moderate(Action::Audit { limit: Some(n), before: None }),
            _ => usage("/audit [N]", format!("{rest:?} is not a positive number")),
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

/// How `/room` is written.
const ROOM_USAGE: &str = "/room ROOM, or /room [#ROOM] set history|history_days|voice|invite_only VALUE";

/// `/room ROOM` (where lines go) or `/room [#ROOM] set SETTING VALUE`.
fn room_command(rest: &str) -> Input<'_> {
    let usage = |problem: String| Input::Usage { problem, usage: ROOM_USAGE };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (room, setting) = match words.as_slice() {
        [] => return usage("no room".into()),
        [room] => return Input::Room(room_name(room)),
        [set, setting @ ..] if set.eq_ignore_ascii_case("set") => (None, setting),
        [room, set, setting @ ..] if set.eq_ignore_ascii_case("set") => (Some(room_name(room)), setting),
        _ => return usage(format!("unexpected {rest:?}")),
    };
    let [name, value] = setting else { return usage("a setting and its value are needed".into()) };
    let on = || match value.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(usage(format!("{value:?} is not on or off"))),
    };
    let setting = match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "history" => on().map(RoomSetting::History),
        "history_days" => value
            .parse::<u32>()
            .map(RoomSetting::HistoryDays)
            .map_err(|_| usage(format!("{value:?} is not a number of days (0: keep everything)"))),
        "voice" => on().map(RoomSetting::Voice),
        "invite_only" => on().map(RoomSetting::InviteOnly),
        _ => Err(usage(format!("{name:?} is not a room setting"))),
    };
    setting.map_or_else(|e| e, |setting| Input::ModerateRoom { room, request: RoomRequest::Set(setting) })
}

/// `/history @NAME [N]` (the `@` already taken off).
fn private_history(rest: &str) -> Input<'_> {
    let usage = |problem: String| Input::Usage { problem, usage: "/history @NAME [N]" };
    match arguments(rest, 1) {
        Ok((mut args, "")) => Input::PrivateHistory { with: args.remove(0), count: None },
        Ok((mut args, n)) => match n.parse::<u32>() {
            Ok(n) if n > 0 => Input::PrivateHistory { with: args.remove(0), count: Some(n) },
            _ => usage(format!("{n:?} is not a positive number")),
        },
        Err(e) => usage(e.to_string()),
    }
}

/// Parses a moderation command's arguments with `parts`; a problem
/// becomes [`Input::Usage`] with `usage`.
fn moderation<'a>(
    rest: &'a str,
    usage: &'static str,
    parts: impl FnOnce(Words<'a>) -> Result<Input<'a>, String>,
) -> Input<'a> {
    parts(Words(rest.trim())).unwrap_or_else(|problem| Input::Usage { problem, usage })
}

/// A moderation command's arguments, taken off the front one by one.
struct Words<'a>(&'a str);

impl Words<'_> {
    /// The next word, as the quoting rule reads it; required.
    fn word(&mut self) -> Result<String, String> {
        let (mut args, rest) = arguments(self.0, 1).map_err(|e| e.to_string())?;
        self.0 = rest;
        Ok(args.remove(0))
    }

    /// The next word if it starts with `#`: a room.
    fn room(&mut self) -> Option<String> {
        if !self.0.starts_with('#') {
            return None;
        }
        let end = self.0.find(char::is_whitespace).unwrap_or(self.0.len());
        let room = room_name(&self.0[..end]);
        self.0 = self.0[end..].trim_start();
        Some(room)
    }

    /// An optional room, the last argument (its `#` optional).
    fn last_room(&mut self) -> Result<Option<String>, String> {
        match self.0 {
            "" => Ok(None),
            rest if rest.split_whitespace().count() == 1 => {
                self.0 = "";
                Ok(Some(room_name(rest)))
            }
            rest => Err(format!("unexpected {rest:?}")),
        }
    }

    /// The next word if it reads as a duration, in seconds (otherwise it
    /// starts the reason).
    fn duration(&mut self) -> Option<u64> {
        let end = self.0.find(char::is_whitespace).unwrap_or(self.0.len());
        let secs = parse_duration(&self.0[..end]).ok()?;
        self.0 = self.0[end..].trim_start();
        Some(secs)
    }

    /// The rest of the line, if any: a reason (or a topic).
    fn reason(self) -> Option<String> {
        Some(self.0.trim().to_owned()).filter(|r| !r.is_empty())
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

    #[test]
    fn account_commands_never_take_a_password_on_the_line() {
        assert_eq!(parse("/register"), Input::Register);
        assert_eq!(parse("/PASSWORD"), Input::Password);
        assert_eq!(parse("/unregister"), Input::Unregister);
        for line in ["/register hunter22", "/password old new", "/unregister hunter22"] {
            assert!(matches!(parse(line), Input::Usage { .. }), "{line}");
        }
    }

    #[test]
    fn kicks_and_bans_take_an_optional_duration_then_a_reason() {
        let kick = |name: &str, reason: Option<&str>| {
            Input::Moderate(Action::Kick { name: name.into(), reason: reason.map(Into::into) })
        };
        assert_eq!(parse("/kick bob"), kick("bob", None));
        assert_eq!(parse("/kick bob stop spamming"), kick("bob", Some("stop spamming")));
        assert_eq!(parse(r#"/kick "Bart F" rude"#), kick("Bart F", Some("rude")));
        assert!(matches!(parse("/kick"), Input::Usage { usage: "/kick NAME [REASON]", .. }));
        let ban = |duration_secs, reason: Option<&str>| {
            Input::Moderate(Action::Ban { name: "bob".into(), duration_secs, reason: reason.map(Into::into) })
        };
        assert_eq!(parse("/ban bob"), ban(None, None));
        assert_eq!(parse("/ban bob 7d"), ban(Some(604_800), None));
        assert_eq!(parse("/ban bob 2h flooding the room"), ban(Some(7200), Some("flooding the room")));
        assert_eq!(parse("/ban bob flooding"), ban(None, Some("flooding")), "not a duration: the reason");
        assert_eq!(parse("/ban bob 0m oops"), ban(None, Some("0m oops")), "a zero duration is no duration");
        assert_eq!(
            parse("/banip 2001:db8::1/48 1w abuse"),
            Input::Moderate(Action::BanIp {
                address: "2001:db8::1/48".into(),
                duration_secs: Some(604_800),
                reason: Some("abuse".into())
            })
        );
        assert_eq!(parse("/unban #12"), Input::Moderate(Action::Unban { target: "#12".into() }));
        assert_eq!(parse("/unban 203.0.113.0/24"), Input::Moderate(Action::Unban { target: "203.0.113.0/24".into() }));
        assert!(matches!(parse("/unban"), Input::Usage { .. }));
        assert_eq!(parse("/bans"), Input::Moderate(Action::Bans));
        assert!(matches!(parse("/bans all"), Input::Usage { .. }));
    }

    #[test]
    fn mutes_roles_and_audit() {
        assert_eq!(
            parse("/mute bob #dev 30m calm down"),
            Input::Moderate(Action::Mute {
                name: "bob".into(),
                room: Some("dev".into()),
                duration_secs: Some(1800),
                reason: Some("calm down".into())
            })
        );
        assert_eq!(
            parse("/mute bob shouting"),
            Input::Moderate(Action::Mute {
                name: "bob".into(),
                room: None,
                duration_secs: None,
                reason: Some("shouting".into())
            }),
            "no room: everywhere"
        );
        assert_eq!(parse("/unmute bob"), Input::Moderate(Action::Unmute { name: "bob".into(), room: None }));
        assert_eq!(
            parse("/unmute bob #dev"),
            Input::Moderate(Action::Unmute { name: "bob".into(), room: Some("dev".into()) })
        );
        assert!(matches!(parse("/unmute bob #dev extra"), Input::Usage { .. }));
        assert_eq!(
            parse("/mod carol dev"),
            Input::Moderate(Action::Grant { name: "carol".into(), role: Role::Moderator, room: Some("dev".into()) })
        );
        assert_eq!(
            parse("/unmod carol"),
            Input::Moderate(Action::Revoke { name: "carol".into(), role: Role::Moderator, room: None })
        );
        assert_eq!(parse("/audit"), Input::Moderate(Action::Audit { limit: None, before: None }));
        assert_eq!(parse("/audit 20"), Input::Moderate(Action::Audit { limit: Some(20), before: None }));
        assert!(matches!(parse("/audit lots"), Input::Usage { usage: "/audit [N]", .. }));
    }

    #[test]
    fn room_requests_name_a_room_or_leave_it_to_the_front_end() {
        assert_eq!(
            parse("/topic Release on Friday"),
            Input::ModerateRoom { room: None, request: RoomRequest::Topic("Release on Friday".into()) }
        );
        assert_eq!(
            parse("/topic #dev #1 priority: tests"),
            Input::ModerateRoom { room: Some("dev".into()), request: RoomRequest::Topic("#1 priority: tests".into()) }
        );
        assert_eq!(
            parse(r#"/topic #dev """#),
            Input::ModerateRoom { room: Some("dev".into()), request: RoomRequest::Topic(String::new()) }
        );
        assert!(matches!(parse("/topic #dev"), Input::Usage { .. }));
        assert_eq!(parse("/room dev"), Input::Room("dev".into()), "still where lines go");
        assert_eq!(
            parse("/room set history off"),
            Input::ModerateRoom { room: None, request: RoomRequest::Set(RoomSetting::History(false)) }
        );
        assert_eq!(
            parse("/room #dev set history_days 30"),
            Input::ModerateRoom { room: Some("dev".into()), request: RoomRequest::Set(RoomSetting::HistoryDays(30)) }
        );
        assert_eq!(
            parse("/room #dev SET invite-only on"),
            Input::ModerateRoom { room: Some("dev".into()), request: RoomRequest::Set(RoomSetting::InviteOnly(true)) }
        );
        assert!(matches!(parse("/room #dev set voice maybe"), Input::Usage { .. }));
        assert!(matches!(parse("/room #dev set colour blue"), Input::Usage { .. }));
        assert!(matches!(parse("/room set history"), Input::Usage { .. }));
        assert_eq!(
            parse("/invite erin #dev"),
            Input::ModerateRoom {
                room: Some("dev".into()),
                request: RoomRequest::Invite { name: "erin".into(), remove: false }
            }
        );
        let uninvite = parse("/uninvite erin");
        assert_eq!(
            uninvite,
            Input::ModerateRoom { room: None, request: RoomRequest::Invite { name: "erin".into(), remove: true } }
        );
        let Input::ModerateRoom { request, .. } = uninvite else { return };
        assert_eq!(
            request.into_action("ops".into()),
            Action::Invite { room: "ops".into(), name: "erin".into(), remove: true }
        );
    }

    #[test]
    fn private_history_names_the_account() {
        assert_eq!(parse("/history @bob"), Input::PrivateHistory { with: "bob".into(), count: None });
        assert_eq!(parse(r#"/history @"Bart F" 30"#), Input::PrivateHistory { with: "Bart F".into(), count: Some(30) });
        assert!(matches!(parse("/history @bob x"), Input::Usage { .. }));
        assert!(matches!(parse("/history @"), Input::Usage { .. }));
    }
}
