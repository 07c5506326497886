//! Rendering events as lines: plain text for people, JSON lines for
//! programs. Other people's text never reaches the terminal raw: plain
//! lines show control, bidi, line-separator and invisible characters as
//! visible `\u{XXXX}` escapes; JSON lines carry them as JSON `\u` escapes,
//! so a JSON reader gets the original text and a tool that splits on
//! Unicode line breaks (U+2028/2029) still sees one event per line.

use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use client_core::display::{escape_json, escape_line};
use client_core::{DisconnectReason, Event, Trust};
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
        Self { style, server, editor: Mutex::new(None), notes_to_editor: false }
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

    /// The server address as typed.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The JSON object for an event.
    pub fn json(&self, event: &Event) -> Value {
        let now = rfc3339(SystemTime::now());
        match event {
            Event::Connected { me, users, fingerprint, trust, limits } => json!({
                "event": "connected", "time": now, "server": self.server, "me": me, "users": users,
                "fingerprint": fingerprint.to_string(),
                "trust": match trust { Trust::Explicit => "explicit", Trust::Known => "known", Trust::FirstUse => "first_use" },
                "max_message_bytes": limits.max_message_bytes,
            }),
            Event::Message { from, text, time } => {
                json!({"event": "message", "time": rfc3339(*time), "from": from, "text": text})
            }
            Event::Joined(u) => json!({"event": "joined", "time": now, "user": u}),
            Event::Left(u) => json!({"event": "left", "time": now, "user": u}),
            Event::Users(users) => json!({"event": "users", "time": now, "users": users}),
            Event::Notice(text) => json!({"event": "notice", "time": now, "text": text}),
            Event::Acked(id) => json!({"event": "acked", "time": now, "id": id}),
            Event::Rejected { id, reason, detail } => {
                json!({"event": "rejected", "time": now, "id": id, "reason": enum_str(reason), "detail": detail})
            }
            Event::VoiceJoined => json!({"event": "voice_joined", "time": now}),
            Event::VoiceUsers(users) => json!({"event": "voice_users", "time": now, "users": users}),
            Event::Talking { user, talking } => {
                json!({"event": "talking", "time": now, "user": user, "talking": talking})
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
            Event::Disconnected { reason, unacked } => json!({
                "event": "disconnected", "time": now, "reason": reason_tag(reason), "detail": reason.to_string(),
                "unacked": unacked, "exit_code": exit_code(reason),
            }),
        }
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
            Event::Connected { me, users, .. } => format!(
                "* connected to {} as {}; {} here: {}",
                escape_line(&self.server),
                escape_line(me),
                users.len(),
                list(users)
            ),
            Event::Message { from, text, time } => {
                format!("[{}] <{}> {}", clock(*time), escape_line(from), escape_line(text))
            }
            Event::Joined(u) => format!("* {} joined", escape_line(u)),
            Event::Left(u) => format!("* {} left", escape_line(u)),
            Event::Users(users) => format!("* {} here: {}", users.len(), list(users)),
            Event::Notice(text) => format!("* notice: {}", escape_line(text)),
            Event::VoiceJoined => "* you joined voice".to_owned(),
            Event::VoiceUsers(users) => format!("* in voice ({}): {}", users.len(), list(users)),
            Event::Talking { user, talking: true } => format!("* {} is talking", escape_line(user)),
            Event::Talking { user, talking: false } => format!("* {} stopped talking", escape_line(user)),
            Event::VoiceLeft(_) => "* you left voice".to_owned(),
            Event::VoiceFallback(detail) => format!("* voice: {}", escape_line(detail)),
            Event::Reconnecting { reason, attempt, delay } => format!(
                "* {}; reconnecting in {:.1} s (try {attempt})",
                escape_line(&reason.to_string()),
                delay.as_secs_f64()
            ),
            Event::Acked(_)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Text with every kind of character a terminal or a line splitter
    /// would obey.
    const HOSTILE: &str = "a\u{1b}[2J\u{2028}fake line\u{2029}\u{202E}rev\u{200B}\u{2060}\u{FEFF}\u{85}z\nnext";

    #[test]
    fn plain_and_json_lines_never_carry_line_breaks_or_invisibles_raw() {
        let p = Printer::new(Style::Plain, "h:1".into());
        let events = [
            Event::Message { from: "bob\u{2028}x".into(), text: HOSTILE.into(), time: SystemTime::now() },
            Event::Joined(HOSTILE.into()),
            Event::Notice(HOSTILE.into()),
            Event::Users(vec![HOSTILE.into()]),
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
}
