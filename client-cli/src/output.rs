//! Rendering events as lines: plain text for people, JSON lines for
//! programs. Other people's text never reaches the terminal raw: plain
//! lines show control, bidi, line-separator and invisible characters as
//! visible `\u{XXXX}` escapes; JSON lines carry them as JSON `\u` escapes,
//! so a JSON reader gets the original text and a tool that splits on
//! Unicode line breaks (U+2028/2029) still sees one event per line.

use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, SecondsFormat, Utc};
use client_core::display::{escape_json, escape_line};
use client_core::rooms::name_key as protocol_name_key;
use client_core::{AuditEntry, BanEntry, DisconnectCause, DisconnectReason, Event, RefusalCode, Trust};
use serde_json::{Value, json};

/// Output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `[HH:MM:SS] <alice> text`, `* bob joined`, ...
    Plain,
    /// One JSON object per line (schema in the README).
    Json,
}

/// Exit code for a disconnect reason (see the README's table).
pub fn exit_code(reason: &DisconnectReason) -> u8 {
    match reason {
        DisconnectReason::Quit => 0,
        DisconnectReason::Refused { .. }
        | DisconnectReason::Busy { .. }
        | DisconnectReason::WrongKey
        | DisconnectReason::IssuedKeyRefused { .. }
        | DisconnectReason::VersionMismatch(_) => 3,
        DisconnectReason::IdentityMismatch { .. }
        | DisconnectReason::UnknownServer { .. }
        | DisconnectReason::BadServer(_) => 4,
        DisconnectReason::Local(_) => 2,
        DisconnectReason::ConnectFailed(_) | DisconnectReason::Lost(_) | DisconnectReason::ServerShutdown(_) => 5,
        DisconnectReason::Kicked { .. } => 6,
    }
}

fn reason_tag(reason: &DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Quit => "quit",
        DisconnectReason::Refused { .. } => "refused",
        DisconnectReason::Busy { .. } => "busy",
        DisconnectReason::WrongKey => "wrong_key",
        DisconnectReason::IssuedKeyRefused { .. } => "issued_key_refused",
        DisconnectReason::VersionMismatch(_) => "version_mismatch",
        DisconnectReason::IdentityMismatch { .. } => "identity_mismatch",
        DisconnectReason::UnknownServer { .. } => "unknown_server",
        DisconnectReason::BadServer(_) => "bad_server",
        DisconnectReason::ConnectFailed(_) => "connect_failed",
        DisconnectReason::Local(_) => "local_error",
        DisconnectReason::Lost(_) => "lost",
        DisconnectReason::ServerShutdown(_) => "server_shutdown",
        DisconnectReason::Kicked { .. } => "kicked",
    }
}

/// For a ban (a refusal or a disconnect): when it ends, in local time.
pub fn ban_end(reason: &DisconnectReason) -> Option<String> {
    match reason {
        DisconnectReason::Refused { code: RefusalCode::Banned, until_ms, .. }
        | DisconnectReason::Kicked { cause: DisconnectCause::Banned, until_ms, .. } => Some(match until_ms {
            Some(ms) => format!("the ban ends {}", local_time(*ms)),
            None => "the ban does not end by itself".to_owned(),
        }),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch as a local date and time.
fn local_time(ms: u64) -> String {
    DateTime::<Local>::from(UNIX_EPOCH + Duration::from_millis(ms)).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// One ban, in plain text.
fn ban_line(b: &BanEntry) -> String {
    client_core::display::ban_line(b, local_time)
}

/// One audit entry, in plain text.
fn audit_line(e: &AuditEntry) -> String {
    client_core::display::audit_line(e, local_time)
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn enum_str<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Writes events to stdout (and diagnostics to stderr); on a terminal
/// with the line editor, both go through the editor so that they appear
/// above the prompt and the line being typed stays intact.
pub struct Printer {
    style: Style,
    server: String,
    /// Our name once connected (our own private messages from history
    /// show whom they went to).
    me: Mutex<String>,
    editor: Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>>,
    /// stderr is the editor's terminal too.
    notes_to_editor: bool,
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer").field("style", &self.style).field("server", &self.server).finish_non_exhaustive()
    }
}

impl Printer {
    /// A printer for events from `server`.
    pub fn new(style: Style, server: String) -> Self {
        Self { style, server, me: Mutex::new(String::new()), editor: Mutex::new(None), notes_to_editor: false }
    }

    /// Prints through the line editor from now on (stderr notes too, when
    /// stderr is the same terminal).
    pub fn with_editor(mut self, editor: Box<dyn rustyline::ExternalPrinter + Send>) -> Self {
        self.editor = Mutex::new(Some(editor));
        self.notes_to_editor = std::io::stderr().is_terminal();
        self
    }

    /// Prints straight to stdout and stderr again (the editor has stopped).
    pub fn detach_editor(&self) {
        if let Ok(mut editor) = self.editor.lock() {
            *editor = None;
        }
    }

    /// Writes one line through the editor; `false` if there is none.
    fn to_editor(&self, line: &str) -> bool {
        let Ok(mut editor) = self.editor.lock() else { return false };
        editor.as_mut().is_some_and(|e| e.print(format!("{line}\n")).is_ok())
    }

    /// One line of output (an event).
    fn out(&self, line: &str) {
        if !self.to_editor(line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// One diagnostic line: stderr (through the editor on a terminal).
    pub fn note(&self, line: &str) {
        if !(self.notes_to_editor && self.to_editor(line)) {
            eprintln!("{line}");
        }
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.lock().is_ok_and(|me| !me.is_empty() && protocol_name_key(&me) == protocol_name_key(name))
    }

    /// The server address as typed.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The JSON object for an event.
    pub fn json(&self, event: &Event) -> Value {
        let now = rfc3339(SystemTime::now());
        let mut v = match event {
            Event::Connected { me, users, users_total, rooms, fingerprint, trust, limits, registered, roles } => {
                json!({
                    "event": "connected", "time": now, "server": self.server, "me": me, "users": users,
                    "users_total": users_total, "rooms": rooms,
                    "fingerprint": fingerprint.to_string(),
                    "trust": match trust { Trust::Explicit => "explicit", Trust::Known => "known", Trust::FirstUse => "first_use" },
                    "max_message_bytes": limits.max_message_bytes,
                    "registered": registered, "roles": enum_str(roles),
                })
            }
            Event::Done { action, detail } => json!({"event": "done", "time": now, "action": action, "detail": detail}),
            Event::Denied { action, reason, detail } => json!({
                "event": "denied", "time": now, "action": action, "reason": enum_str(reason), "detail": detail,
            }),
            Event::Bans(bans) => json!({"event": "bans", "time": now, "bans": enum_str(bans)}),
            Event::Audit { entries, more } => {
                json!({"event": "audit", "time": now, "entries": enum_str(entries), "more": more})
            }
            Event::Topic { room, topic, by } => {
                json!({"event": "topic", "time": now, "room": room, "topic": topic, "by": by})
            }
            Event::PrivateHistoryEnd { with, more } => {
                json!({"event": "history_end", "time": now, "with": with, "more": more})
            }
            Event::Message { id, from, text, time, room, to, history, edited } => {
                let mut v = json!({"event": "message", "time": rfc3339(*time), "id": id, "from": from, "text": text});
                match room {
                    Some(room) => v["room"] = json!(room),
                    None => {
                        v["dm"] = json!(true);
                        v["to"] = json!(to);
                    }
                }
                if *history {
                    v["history"] = json!(true);
                }
                if *edited {
                    v["edited"] = json!(true);
                }
                v
            }
            Event::Joined { user, room } => json!({"event": "joined", "time": now, "user": user, "room": room}),
            Event::Left { user, room } => json!({"event": "left", "time": now, "user": user, "room": room}),
            Event::Users { room, users, total } => {
                json!({"event": "users", "time": now, "room": room, "users": users, "users_total": total})
            }
            Event::RoomJoined { room, topic, users, users_total, voice, history } => json!({
                "event": "room_joined", "time": now, "room": room, "topic": topic, "users": users,
                "users_total": users_total, "voice": voice, "history": history,
            }),
            Event::JoinRefused { room, reason, detail } => json!({
                "event": "join_refused", "time": now, "room": room, "reason": enum_str(reason), "detail": detail,
            }),
            Event::RoomLeft { room } => json!({"event": "room_left", "time": now, "room": room}),
            Event::Rooms(rooms) => {
                let rooms: Vec<Value> = rooms
                    .iter()
                    .map(|r| {
                        json!({"name": r.name, "topic": r.topic, "members": r.members, "voice": r.voice,
                               "history": r.history})
                    })
                    .collect();
                json!({"event": "rooms", "time": now, "rooms": rooms})
            }
            Event::HistoryEnd { room, more, .. } => {
                json!({"event": "history_end", "time": now, "room": room, "more": more})
            }
            Event::Edited { id, room, to, from, text } => {
                let mut v = json!({"event": "edited", "time": now, "id": id, "from": from, "text": text});
                place(&mut v, room.as_ref(), to.as_ref());
                v
            }
            Event::Deleted { id, room, to } => {
                let mut v = json!({"event": "deleted", "time": now, "id": id});
                place(&mut v, room.as_ref(), to.as_ref());
                v
            }
            Event::Notice(text) => json!({"event": "notice", "time": now, "text": text}),
            Event::KeyIssued { id, stored: Ok(file) } => {
                json!({"event": "key_issued", "time": now, "id": id, "file": file.display().to_string()})
            }
            Event::KeyIssued { id, stored: Err(e) } => {
                json!({"event": "key_issued", "time": now, "id": id, "error": e})
            }
            Event::Acked { id, server_id, .. } => {
                let mut v = json!({"event": "acked", "time": now, "id": id});
                if let Some(s) = server_id {
                    v["server_id"] = json!(s);
                }
                v
            }
            Event::Rejected { id, reason, detail } => {
                json!({"event": "rejected", "time": now, "id": id, "reason": enum_str(reason), "detail": detail})
            }
            Event::VoiceJoined { room } => json!({"event": "voice_joined", "time": now, "room": room}),
            Event::VoiceUsers { room, users } => {
                json!({"event": "voice_users", "time": now, "room": room, "users": users})
            }
            Event::Talking { room, user, talking } => {
                json!({"event": "talking", "time": now, "room": room, "user": user, "talking": talking})
            }
            Event::VoiceStats(stats) => json!({"event": "voice_stats", "time": now, "stats": stats}),
            Event::VoiceInputEnded => json!({"event": "voice_input_ended", "time": now}),
            Event::VoiceLeft(stats) => json!({"event": "voice_left", "time": now, "stats": stats}),
            Event::VoiceError(detail) => json!({"event": "voice_error", "time": now, "detail": detail}),
            Event::VoiceFallback(detail) => json!({"event": "voice_fallback", "time": now, "detail": detail}),
            Event::Reconnecting { reason, attempt, delay } => json!({
                "event": "reconnecting", "time": now, "reason": reason_tag(reason), "detail": reason.to_string(),
                "attempt": attempt, "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            }),
            Event::Disconnected { reason, unacked } => {
                let mut v = json!({
                    "event": "disconnected", "time": now, "reason": reason_tag(reason), "detail": reason.to_string(),
                    "unacked": unacked, "exit_code": exit_code(reason),
                });
                // Why a refusal or an end for cause, and until when a ban lasts.
                let until = match reason {
                    DisconnectReason::Refused { code, until_ms, .. } => {
                        v["code"] = enum_str(code);
                        *until_ms
                    }
                    DisconnectReason::Kicked { cause, until_ms, .. } => {
                        v["cause"] = enum_str(cause);
                        *until_ms
                    }
                    DisconnectReason::IssuedKeyRefused { file } => {
                        v["file"] = json!(file.as_ref().map(|f| f.display().to_string()));
                        None
                    }
                    _ => None,
                };
                if let Some(ms) = until {
                    v["until_ms"] = json!(ms);
                    v["until"] = json!(rfc3339(UNIX_EPOCH + Duration::from_millis(ms)));
                }
                v
            }
        };
        // A room absent on the wire is absent here too (not `null`).
        if let Some(o) = v.as_object_mut()
            && o.get("room").is_some_and(Value::is_null)
        {
            o.remove("room");
        }
        v
    }

    /// The JSON line for an event on stdout: [`Printer::json`] with every
    /// character a terminal or line splitter would obey as a JSON escape.
    pub fn json_line(&self, event: &Event) -> String {
        escape_json(&self.json(event).to_string()).into_owned()
    }

    /// The plain line for an event on stdout, if it has one.
    pub fn plain(&self, event: &Event) -> Option<String> {
        let clock = |t: SystemTime| DateTime::<Local>::from(t).format("%H:%M:%S").to_string();
        Some(match event {
            Event::Connected { me, users, users_total, rooms, .. } => format!(
                "* connected to {} as {}; {} here: {}{}",
                escape_line(&self.server),
                escape_line(me),
                users_total.max(&(users.len() as u32)),
                list(users),
                if rooms.is_empty() { String::new() } else { format!("; in {}", room_list(rooms)) }
            ),
            Event::Message { from, text, time, room, to, history, edited, .. } => {
                let mark = if *history { "~ " } else { "" };
                let edited = if *edited { " (edited)" } else { "" };
                let (from, text) = (escape_line(from), escape_line(text));
                match (room, to) {
                    (Some(room), _) => {
                        format!("{mark}[{}] #{} <{from}> {text}{edited}", clock(*time), escape_line(room))
                    }
                    (None, Some(to)) if self.is_me(&from) => {
                        format!("{mark}[{}] *{from} -> {}* {text}{edited}", clock(*time), escape_line(to))
                    }
                    (None, _) => format!("{mark}[{}] *{from}* {text}{edited}", clock(*time)),
                }
            }
            Event::Joined { user, room } => format!("* {} joined{}", escape_line(user), in_room(room.as_deref())),
            Event::Left { user, room } => format!("* {} left{}", escape_line(user), in_room(room.as_deref())),
            Event::Users { room: None, users, total } => {
                format!("* {} here: {}", total.max(&(users.len() as u32)), list(users))
            }
            Event::Users { room: Some(room), users, total } => {
                format!("* {} in #{}: {}", total.max(&(users.len() as u32)), escape_line(room), list(users))
            }
            Event::RoomJoined { room, topic, users, users_total, .. } => format!(
                "* you are in #{}{}; {} here: {}",
                escape_line(room),
                if topic.is_empty() { String::new() } else { format!(" ({})", escape_line(topic)) },
                users_total.max(&(users.len() as u32)),
                list(users)
            ),
            Event::JoinRefused { room, detail, .. } => {
                format!("* cannot join #{}: {}", escape_line(room), escape_line(detail))
            }
            Event::RoomLeft { room } => format!("* you left #{}", escape_line(room)),
            Event::Rooms(rooms) => {
                let each: Vec<String> = rooms
                    .iter()
                    .map(|r| {
                        let mut flags = vec![format!("{} here", r.members)];
                        if r.voice {
                            flags.push("voice".into());
                        }
                        if r.history {
                            flags.push("history".into());
                        }
                        let topic =
                            if r.topic.is_empty() { String::new() } else { format!(" {}", escape_line(&r.topic)) };
                        format!("#{} ({}){topic}", escape_line(&r.name), flags.join(", "))
                    })
                    .collect();
                format!("* {} rooms: {}", rooms.len(), each.join("; "))
            }
            Event::HistoryEnd { room, more, older } => format!(
                "~ #{}: end of history{}",
                escape_line(room),
                if *more && *older { " (older: /history)" } else { "" }
            ),
            Event::Edited { id, room, from, text, .. } => format!(
                "* {} edited {}{id}: {}",
                escape_line(from),
                room.as_deref().map(|r| format!("#{} ", escape_line(r))).unwrap_or_default(),
                escape_line(text)
            ),
            Event::Deleted { id, room, .. } => format!(
                "* message {id}{} was deleted",
                room.as_deref().map(|r| format!(" in #{}", escape_line(r))).unwrap_or_default()
            ),
            Event::Notice(text) => format!("* notice: {}", escape_line(text)),
            Event::KeyIssued { id, stored: Ok(file) } => format!(
                "* the server issued you a key of your own ({id}), kept in {}: later connections use it",
                escape_line(&file.display().to_string())
            ),
            Event::KeyIssued { id, stored: Err(e) } => format!(
                "* the server issued you a key of your own ({id}), but it cannot be kept ({}): \
                 only this run's reconnections use it",
                escape_line(e)
            ),
            Event::Done { action, detail } => format!("* done ({}): {}", escape_line(action), escape_line(detail)),
            Event::Denied { action, detail, .. } => {
                format!("* denied ({}): {}", escape_line(action), escape_line(detail))
            }
            Event::Bans(bans) if bans.is_empty() => "* no bans".to_owned(),
            // One line per event, as for rooms.
            Event::Bans(bans) => {
                format!("* {} bans: {}", bans.len(), bans.iter().map(ban_line).collect::<Vec<_>>().join("; "))
            }
            Event::Audit { entries, more } => format!(
                "* audit log, newest first ({} entries{}): {}",
                entries.len(),
                if *more { "; older ones remain" } else { "" },
                entries.iter().map(audit_line).collect::<Vec<_>>().join("; ")
            ),
            Event::Topic { room, topic, by } if topic.is_empty() => {
                format!("* {} cleared the topic of #{}", escape_line(by), escape_line(room))
            }
            Event::Topic { room, topic, by } => {
                format!("* {} set the topic of #{}: {}", escape_line(by), escape_line(room), escape_line(topic))
            }
            Event::PrivateHistoryEnd { with, more } => format!(
                "~ {}: end of stored private messages{}",
                escape_line(with),
                if *more { format!(" (older: /history @{})", escape_line(with)) } else { String::new() }
            ),
            Event::VoiceJoined { room } => format!("* you joined voice in #{}", escape_line(room)),
            Event::VoiceUsers { room, users } => {
                format!("* voice in #{} ({}): {}", escape_line(room), users.len(), list(users))
            }
            Event::Talking { user, talking: true, room } => {
                format!("* {} is talking in #{}", escape_line(user), escape_line(room))
            }
            Event::Talking { user, talking: false, room } => {
                format!("* {} stopped talking in #{}", escape_line(user), escape_line(room))
            }
            Event::VoiceLeft(_) => "* you left voice".to_owned(),
            Event::VoiceFallback(detail) => format!("* voice: {}", escape_line(detail)),
            Event::Reconnecting { reason, attempt, delay } => format!(
                "* {}; reconnecting in {:.1} s (try {attempt})",
                escape_line(&reason.to_string()),
                delay.as_secs_f64()
            ),
            Event::Acked { .. }
            | Event::Rejected { .. }
            | Event::Disconnected { .. }
            | Event::VoiceStats(_)
            | Event::VoiceInputEnded
            | Event::VoiceError(_) => return None,
        })
    }

    /// Reports a line refused before sending (too large, control
    /// characters, not UTF-8): stderr, and a `rejected` event in JSON mode.
    pub fn refused_locally(&self, reason: &str, detail: &str) {
        self.note(&format!("client-cli: line not sent: {}", escape_line(detail)));
        if self.style == Style::Json {
            let v = json!({"event": "rejected", "time": rfc3339(SystemTime::now()), "id": null, "reason": reason, "detail": detail});
            self.out(&escape_json(&v.to_string()));
        }
    }

    /// Prints an event; diagnostics go to stderr.
    pub fn print(&self, event: &Event) {
        if let Event::Connected { me, .. } = event
            && let Ok(mut mine) = self.me.lock()
        {
            mine.clone_from(me);
        }
        match self.style {
            Style::Json => self.out(&self.json_line(event)),
            Style::Plain => {
                if let Some(line) = self.plain(event) {
                    self.out(&line);
                }
            }
        }
        match event {
            Event::Rejected { id, detail, .. } if self.style == Style::Plain => {
                self.note(&format!("client-cli: message #{id} not sent: {}", escape_line(detail)));
            }
            Event::VoiceError(detail) => self.note(&format!("client-cli: voice: {}", escape_line(detail))),
            Event::VoiceLeft(s) => self.note(&format!(
                "client-cli: voice: sent {} received {} lost {} recovered {} (repeat {}, FEC {}) concealed {} late {} \
                 dropped {}; repeating {} frames, playout delay {} ms; echo cancellation {}",
                s.sent,
                s.received,
                s.lost,
                s.recovered_redundancy + s.recovered_fec,
                s.recovered_redundancy,
                s.recovered_fec,
                s.concealed,
                s.late,
                s.dropped,
                s.repeats,
                s.playout_delay_ms,
                if s.echo_delay_ms > 0 || s.echo_erle_db > 0 {
                    format!("ERLE {} dB, delay {} ms", s.echo_erle_db, s.echo_delay_ms)
                } else {
                    "off or idle".to_owned()
                }
            )),
            Event::Disconnected { reason, unacked } => {
                if !matches!(reason, DisconnectReason::Quit) {
                    self.note(&format!("client-cli: {}", escape_line(&reason.to_string())));
                }
                if let Some(end) = ban_end(reason) {
                    self.note(&format!("client-cli: {end}"));
                }
                if *unacked > 0 {
                    self.note(&format!("client-cli: {unacked} of your messages were not acknowledged by the server"));
                }
            }
            _ => {}
        }
    }
}

fn list(users: &[String]) -> String {
    users.iter().map(|u| escape_line(u).into_owned()).collect::<Vec<_>>().join(", ")
}

fn room_list(rooms: &[String]) -> String {
    rooms.iter().map(|r| format!("#{}", escape_line(r))).collect::<Vec<_>>().join(", ")
}

/// ` #room` after a presence line, if it names one.
fn in_room(room: Option<&str>) -> String {
    room.map(|r| format!(" #{}", escape_line(r))).unwrap_or_default()
}

/// Where an edit or deletion happened: `room`, or `dm: true` (with `to`).
fn place(v: &mut Value, room: Option<&String>, to: Option<&String>) {
    match room {
        Some(room) => v["room"] = json!(room),
        None => {
            v["dm"] = json!(true);
            if let Some(to) = to {
                v["to"] = json!(to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_core::BanKind;

    #[test]
    fn a_voice_fallback_is_one_line_in_either_style() {
        let event = Event::VoiceFallback("no speakers (no device); the room is not played (output null)".into());
        let printer = Printer::new(Style::Plain, "h:1".into());
        assert_eq!(
            printer.plain(&event).as_deref(),
            Some("* voice: no speakers (no device); the room is not played (output null)")
        );
        let json = printer.json(&event);
        assert_eq!(
            (json["event"].as_str(), json["detail"].as_str()),
            (Some("voice_fallback"), Some("no speakers (no device); the room is not played (output null)"))
        );
    }

    fn message(room: Option<&str>, text: &str, history: bool) -> Event {
        Event::Message {
            id: 42,
            from: "bob\u{2028}x".into(),
            text: text.into(),
            time: SystemTime::now(),
            room: room.map(Into::into),
            to: room.is_none().then(|| "me".into()),
            history,
            edited: false,
        }
    }

    #[test]
    fn messages_name_their_room_or_say_they_are_private() {
        let p = Printer::new(Style::Plain, "h:1".into());
        let line = p.plain(&message(Some("general"), "hi", false)).expect("a line");
        assert!(line.starts_with('[') && line.ends_with("] #general <bob\\u{2028}x> hi"), "{line}");
        let line = p.plain(&message(None, "psst", false)).expect("a line");
        assert!(line.ends_with("] *bob\\u{2028}x* psst"), "{line}");
        let line = p.plain(&message(Some("general"), "old", true)).expect("a line");
        assert!(line.starts_with("~ ["), "history is marked: {line}");

        let room = p.json(&message(Some("general"), "hi", false));
        assert_eq!((room["id"].as_u64(), room["room"].as_str()), (Some(42), Some("general")));
        assert!(room.get("dm").is_none() && room.get("history").is_none() && room.get("to").is_none());
        let dm = p.json(&message(None, "psst", true));
        assert_eq!(
            (dm["dm"].as_bool(), dm["to"].as_str(), dm["history"].as_bool()),
            (Some(true), Some("me"), Some(true))
        );
        assert!(dm.get("room").is_none(), "a private message has no room: {dm}");
    }

    #[test]
    fn new_json_events_carry_their_fields() {
        let p = Printer::new(Style::Json, "h:1".into());
        let acked = p.json(&Event::Acked { id: 3, server_id: Some(99), sent: None });
        assert_eq!((acked["event"].as_str(), acked["server_id"].as_u64()), (Some("acked"), Some(99)));
        let left = p.json(&Event::Left { user: "ann".into(), room: None });
        assert!(left.get("room").is_none(), "{left}");
        let info = client_core::RoomInfo {
            name: "dev".into(),
            topic: "code".into(),
            members: 3,
            voice: true,
            history: false,
            voice_users: vec![],
        };
        let rooms = p.json(&Event::Rooms(vec![info]));
        assert_eq!(
            rooms["rooms"],
            json!([{"name": "dev", "topic": "code", "members": 3, "voice": true, "history": false}])
        );
        let end = p.json(&Event::HistoryEnd { room: "dev".into(), more: true, older: true });
        assert_eq!((end["room"].as_str(), end["more"].as_bool()), (Some("dev"), Some(true)));
        let deleted = p.json(&Event::Deleted { id: 7, room: None, to: Some("ann".into()) });
        assert_eq!((deleted["id"].as_u64(), deleted["dm"].as_bool()), (Some(7), Some(true)));
        let rejected =
            p.json(&Event::Rejected { id: 4, reason: client_core::NackReason::NoSuchUser, detail: "nobody".into() });
        assert_eq!(rejected["reason"].as_str(), Some("no_such_user"));
        let talking = p.json(&Event::Talking { room: "dev".into(), user: "ann".into(), talking: true });
        assert_eq!(talking["room"].as_str(), Some("dev"));
    }

    /// Text with every kind of character a terminal or a line splitter
    /// would obey.
    const HOSTILE: &str = "a\u{1b}[2J\u{2028}fake line\u{2029}\u{202E}rev\u{200B}\u{2060}\u{FEFF}\u{85}z\nnext";

    #[test]
    fn plain_and_json_lines_never_carry_line_breaks_or_invisibles_raw() {
        let p = Printer::new(Style::Plain, "h:1".into());
        let events = [
            message(Some("general"), HOSTILE, false),
            Event::Joined { user: HOSTILE.into(), room: Some(HOSTILE.into()) },
            Event::Notice(HOSTILE.into()),
            Event::Users { room: Some(HOSTILE.into()), users: vec![HOSTILE.into()], total: 1 },
            Event::Edited { id: 1, room: None, to: Some(HOSTILE.into()), from: HOSTILE.into(), text: HOSTILE.into() },
            Event::RoomJoined {
                room: "r".into(),
                topic: HOSTILE.into(),
                users: vec![HOSTILE.into()],
                users_total: 1,
                voice: false,
                history: false,
            },
        ];
        for e in &events {
            let plain = p.plain(e).expect("has a line");
            assert!(!plain.chars().any(client_core::display::needs_escape), "{plain:?}");
            assert!(plain.contains("\\u{2028}fake line"), "{plain:?}");
            let line = p.json_line(e);
            assert!(!line.chars().any(client_core::display::needs_escape), "{line:?}");
            assert_eq!(line.lines().count(), 1);
            let mut v: Value = serde_json::from_str(&line).expect("JSON");
            let mut original = p.json(e);
            for o in [&mut v, &mut original] {
                o.as_object_mut().expect("an object").remove("time");
            }
            assert_eq!(v, original, "a JSON reader gets the original text back");
        }
        let line = p.json_line(&events[0]);
        assert!(line.contains("\\u2028fake line\\u2029\\u202e"), "{line}");
    }

    #[test]
    fn account_and_moderation_events_in_either_style() {
        use client_core::{DenyReason, Role, RoleGrant};
        let p = Printer::new(Style::Json, "h:1".into());
        let done = p.json(&Event::Done { action: "register".into(), detail: "bob is registered".into() });
        assert_eq!(
            done,
            json!({"event": "done", "time": done["time"], "action": "register", "detail": "bob is registered"})
        );
        let denied = p.json(&Event::Denied {
            action: "kick".into(),
            reason: DenyReason::NotAllowed,
            detail: "not a moderator".into(),
        });
        assert_eq!((denied["event"].as_str(), denied["reason"].as_str()), (Some("denied"), Some("not_allowed")));
        let ban = BanEntry {
            id: 3,
            kind: BanKind::Address,
            target: "203.0.113.0/24".into(),
            reason: "spam".into(),
            by: "mod".into(),
            since_ms: 1000,
            until_ms: None,
        };
        let bans = p.json(&Event::Bans(vec![ban.clone()]));
        assert_eq!(
            bans["bans"],
            json!([{"id": 3, "kind": "address", "target": "203.0.113.0/24", "reason": "spam", "by": "mod", "since_ms": 1000}])
        );
        let entry = AuditEntry {
            id: 9,
            ts_ms: 1000,
            actor: "mod".into(),
            action: "mute".into(),
            target: "bob".into(),
            room: Some("dev".into()),
            reason: "shouting".into(),
            detail: "30m".into(),
        };
        let audit = p.json(&Event::Audit { entries: vec![entry.clone()], more: true });
        assert_eq!((audit["entries"][0]["action"].as_str(), audit["more"].as_bool()), (Some("mute"), Some(true)));
        let topic = p.json(&Event::Topic { room: "dev".into(), topic: "ship".into(), by: "mod".into() });
        assert_eq!((topic["event"].as_str(), topic["by"].as_str()), (Some("topic"), Some("mod")));
        let end = p.json(&Event::PrivateHistoryEnd { with: "ann".into(), more: false });
        assert_eq!(
            (end["event"].as_str(), end["with"].as_str(), end.get("room")),
            (Some("history_end"), Some("ann"), None)
        );
        let connected = p.json(&Event::Connected {
            me: "me".into(),
            users: vec![],
            users_total: 1,
            rooms: vec![],
            fingerprint: client_core::Fingerprint::of_der(b"x"),
            trust: Trust::Known,
            limits: client_core::Limits {
                max_message_bytes: 4096,
                rate_per_sec: 10,
                burst: 5,
                keepalive_secs: 30,
                idle_timeout_secs: 90,
            },
            registered: true,
            roles: vec![RoleGrant { role: Role::Moderator, room: Some("dev".into()) }],
        });
        assert_eq!(
            (&connected["registered"], &connected["roles"]),
            (&json!(true), &json!([{"role": "moderator", "room": "dev"}]))
        );

        let plain = Printer::new(Style::Plain, "h:1".into());
        let line = plain.plain(&Event::Bans(vec![ban])).expect("a line");
        assert!(
            line.starts_with("* 1 bans: #3 address 203.0.113.0/24 by mod since ") && line.ends_with(", no end: spam"),
            "{line}"
        );
        let line = plain.plain(&Event::Audit { entries: vec![entry], more: false }).expect("a line");
        assert!(line.contains(" mod mute bob 30m in #dev: shouting"), "{line}");
        assert_eq!(
            plain.plain(&Event::Topic { room: "dev".into(), topic: String::new(), by: "mod".into() }).as_deref(),
            Some("* mod cleared the topic of #dev")
        );
    }

    #[test]
    fn kicks_and_bans_end_with_the_kicked_code_and_refusals_with_three() {
        let p = Printer::new(Style::Json, "h:1".into());
        let banned = DisconnectReason::Kicked {
            cause: DisconnectCause::Banned,
            detail: "banned by mod: spam".into(),
            until_ms: Some(86_400_000),
        };
        let v = p.json(&Event::Disconnected { reason: banned.clone(), unacked: 0 });
        assert_eq!(
            (v["reason"].as_str(), v["cause"].as_str(), v["exit_code"].as_u64(), v["until_ms"].as_u64()),
            (Some("kicked"), Some("banned"), Some(6), Some(86_400_000))
        );
        assert_eq!(v["until"].as_str(), Some("1970-01-02T00:00:00.000Z"));
        assert!(ban_end(&banned).is_some_and(|t| t.starts_with("the ban ends 1970-01-0")));
        let kicked =
            DisconnectReason::Kicked { cause: DisconnectCause::Kicked, detail: "by mod".into(), until_ms: None };
        assert_eq!((exit_code(&kicked), ban_end(&kicked)), (6, None));
        assert_eq!(kicked.to_string(), "kicked: by mod");
        for code in [RefusalCode::AccountPassword, RefusalCode::Banned] {
            let refused = DisconnectReason::Refused { code, reason: "no".into(), until_ms: None };
            assert_eq!(exit_code(&refused), 3);
            let v = p.json(&Event::Disconnected { reason: refused, unacked: 0 });
            assert_eq!(v["code"], enum_str(&code));
            assert!(v.get("until").is_none());
        }
        let forever = DisconnectReason::Refused { code: RefusalCode::Banned, reason: "banned".into(), until_ms: None };
        assert_eq!(ban_end(&forever).as_deref(), Some("the ban does not end by itself"));
    }

    #[test]
    fn issued_keys_and_revoked_invites_show_in_both_styles() {
        let json = Printer::new(Style::Json, "h:1".into());
        let plain = Printer::new(Style::Plain, "h:1".into());
        let kept = Event::KeyIssued { id: "0123456789abcdef".into(), stored: Ok("/d/keys/h_1-00000000.key".into()) };
        let v = json.json(&kept);
        assert_eq!(
            (v["event"].as_str(), v["id"].as_str(), v["file"].as_str(), v.get("error")),
            (Some("key_issued"), Some("0123456789abcdef"), Some("/d/keys/h_1-00000000.key"), None)
        );
        let line = plain.plain(&kept).expect("a line");
        assert!(line.contains("(0123456789abcdef), kept in /d/keys/h_1-00000000.key"), "{line}");
        let lost = Event::KeyIssued { id: "0123456789abcdef".into(), stored: Err("no room".into()) };
        let v = json.json(&lost);
        assert_eq!((v["error"].as_str(), v.get("file")), (Some("no room"), None));
        assert!(plain.plain(&lost).is_some_and(|l| l.contains("cannot be kept (no room)")));

        let revoked = DisconnectReason::Kicked {
            cause: DisconnectCause::KeyRevoked,
            detail: "invite 3 revoked".into(),
            until_ms: None,
        };
        let v = json.json(&Event::Disconnected { reason: revoked.clone(), unacked: 0 });
        assert_eq!(
            (v["reason"].as_str(), v["cause"].as_str(), v["exit_code"].as_u64()),
            (Some("kicked"), Some("key_revoked"), Some(6))
        );
        assert!(revoked.to_string().starts_with("your invite was revoked; ask for a new one"), "{revoked}");

        let refused = DisconnectReason::IssuedKeyRefused { file: Some("/d/keys/h_1-00000000.key".into()) };
        let v = json.json(&Event::Disconnected { reason: refused.clone(), unacked: 0 });
        assert_eq!(
            (v["reason"].as_str(), v["file"].as_str(), v["exit_code"].as_u64()),
            (Some("issued_key_refused"), Some("/d/keys/h_1-00000000.key"), Some(3))
        );
        assert!(refused.to_string().contains("kept in /d/keys/h_1-00000000.key, was refused (probably revoked)"));
    }
}
