//! Interactive mode, when stdin and stdout are both a terminal: a line
//! editor (rustyline) on its own thread, so an incoming message is printed
//! above the prompt and the half-typed line is redrawn intact; input
//! history (Up/Down, Ctrl-R) and Tab completion of commands and names.
//! Rooms complete after `#`.
//!
//! Pipes never come here: as a filter the output is exactly what it is
//! without the editor ([`crate::line::pump_stdin`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use client_core::Event;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use tokio::sync::mpsc;

use client_core::command::{COMMANDS, Input, parse};

use crate::password::{self, AccountChange};

/// Lines kept in the input history (this session only: nothing typed is
/// written to disk).
const HISTORY: usize = 1000;

/// What the editor read.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    /// A line (Enter).
    Line(String),
    /// `/register`, `/password` or `/unregister`, with the passwords asked
    /// for at the terminal with echo off (never through the editor, so
    /// never in its history), or why they are missing.
    Account(Result<AccountChange, String>),
    /// Ctrl-C: leave politely (a second Ctrl-C, now a signal, exits at once).
    Interrupted,
    /// Ctrl-D on an empty line: leave politely, as at the end of a pipe.
    Eof,
}

/// The names of people and rooms, for completion; kept current from the
/// events.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<Mutex<Known>>);

/// What completes.
#[derive(Debug, Default)]
struct Known {
    users: BTreeSet<String>,
    /// Rooms as shown: `#general`.
    rooms: BTreeSet<String>,
}

impl Names {
    /// Follows the roster and our rooms in `event`.
    pub fn apply(&self, event: &Event) {
        let Ok(mut known) = self.0.lock() else { return };
        match event {
            Event::Connected { users, .. } | Event::Users { room: None, users, .. } => {
                known.users = users.iter().cloned().collect();
            }
            Event::Joined { user, .. } => {
                known.users.insert(user.clone());
            }
            Event::Left { user, room: None } => {
                known.users.remove(user);
            }
            Event::RoomJoined { room, users, .. } => {
                known.rooms.insert(format!("#{room}"));
                known.users.extend(users.iter().cloned());
            }
            Event::RoomLeft { room } => {
                known.rooms.remove(&format!("#{room}"));
            }
            Event::Rooms(rooms) => known.rooms.extend(rooms.iter().map(|r| format!("#{}", r.name))),
            _ => {}
        }
    }

    /// Names starting with `prefix`, ignoring case, sorted.
    fn starting_with(&self, prefix: &str) -> Vec<String> {
        let lower = prefix.to_lowercase();
        let Ok(known) = self.0.lock() else { return Vec::new() };
        let names = if prefix.starts_with('#') { &known.rooms } else { &known.users };
        names.iter().filter(|n| n.to_lowercase().starts_with(&lower)).cloned().collect()
    }
}

/// Tab completion: a `/command` at the start of the line, otherwise the
/// name under the cursor (`name: ` at the start of a line, as in IRC).
#[derive(Debug)]
struct Completion {
    names: Names,
}

impl Completion {
    /// Where the word under the cursor starts, and its candidates.
    fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let pair = |s: String, suffix: &str| Pair { display: s.clone(), replacement: s + suffix };
        if start == 0 && (word.starts_with('/') || word.starts_with('!')) {
            let found = COMMANDS.iter().filter(|c| c.starts_with(word)).map(|c| pair((*c).to_owned(), " "));
            return (start, found.collect());
        }
        if word.is_empty() {
            return (start, Vec::new());
        }
        let suffix = if start == 0 { ": " } else { " " };
        (start, self.names.starting_with(word).into_iter().map(|n| pair(n, suffix)).collect())
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// The editor's thread, waiting for [`Terminal::start`].
#[derive(Debug)]
pub struct Terminal {
    start: std::sync::mpsc::Sender<String>,
    /// The editor holds the terminal raw (inside `readline`).
    reading: Arc<AtomicBool>,
    /// The terminal as it was before, to put back if the session ends
    /// while the editor is reading.
    saved: Option<nix::sys::termios::Termios>,
}

/// Starts the editor's thread; returns its handle, the printer for output
/// (which keeps the prompt intact) and the lines typed.
///
/// # Errors
///
/// When the terminal cannot be set up (the caller then reads stdin plainly).
pub fn spawn(
    names: Names,
) -> std::io::Result<(Terminal, Box<dyn rustyline::ExternalPrinter + Send>, mpsc::Receiver<Typed>)> {
    let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (start_tx, start_rx) = std::sync::mpsc::channel::<String>();
    let (lines_tx, lines_rx) = mpsc::channel(16);
    let reading = Arc::new(AtomicBool::new(false));
    let reading2 = reading.clone();
    std::thread::Builder::new().name("line-editor".into()).spawn(move || {
        let config = Config::builder()
            .max_history_size(HISTORY)
            .and_then(|b| b.history_ignore_dups(true))
            .map(|b| b.history_ignore_space(true).auto_add_history(true).completion_type(CompletionType::List).build());
        let editor = config.map_err(std::io::Error::other).and_then(|config| {
            let mut rl = Editor::<Completion, DefaultHistory>::with_config(config).map_err(std::io::Error::other)?;
            rl.set_helper(Some(Completion { names }));
            let printer = rl.create_external_printer().map_err(std::io::Error::other)?;
            Ok((rl, printer))
        });
        let mut rl = match editor {
            Ok((rl, printer)) => {
                let _ = ready_tx.send(Ok(Box::new(printer) as Box<dyn rustyline::ExternalPrinter + Send>));
                rl
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let Ok(prompt) = start_rx.recv() else { return };
        read_lines(&mut rl, &prompt, &reading2, &lines_tx);
    })?;
    let printer = ready_rx.recv().map_err(|_| std::io::Error::other("the line editor did not start"))??;
    Ok((Terminal { start: start_tx, reading, saved }, printer, lines_rx))
}

fn read_lines(
    rl: &mut Editor<Completion, DefaultHistory>,
    prompt: &str,
    reading: &AtomicBool,
    lines: &mpsc::Sender<Typed>,
) {
    loop {
        reading.store(true, Ordering::SeqCst);
        let read = rl.readline(prompt);
        reading.store(false, Ordering::SeqCst);
        let typed = match read {
            // The editor has let go of the terminal: ask here, before it
            // reads again.
            Ok(line) => match password::ask(&parse(&line), true) {
                Some(change) => Typed::Account(change.map_err(|e| format!("{e:#}"))),
                None => Typed::Line(line),
            },
            Err(ReadlineError::Interrupted) => Typed::Interrupted,
            Err(ReadlineError::Eof) => Typed::Eof,
            Err(e) => {
                eprintln!("client-cli: cannot read the terminal: {e}");
                Typed::Eof
            }
        };
        // After a quit the editor stops reading, so the terminal is back
        // to normal while the client waits for its acknowledgements.
        let last = !matches!(&typed, Typed::Account(_)) && !matches!(&typed, Typed::Line(l) if parse(l) != Input::Quit);
        if lines.blocking_send(typed).is_err() || last {
            return;
        }
    }
}

impl Terminal {
    /// Shows the prompt and starts reading.
    pub fn start(&self, prompt: String) {
        let _ = self.start.send(prompt);
    }

    /// Puts the terminal back as it was if the editor still holds it (the
    /// session ended while a line was being typed); call before exiting.
    pub fn restore(&self) {
        if !self.reading.load(Ordering::SeqCst) {
            return;
        }
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSADRAIN, t);
        }
        // The prompt's line is left as it was; the shell's starts below.
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(names: &[&str]) -> Completion {
        let n = Names::default();
        let users: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        n.apply(&Event::Users { room: None, total: users.len() as u32, users });
        Completion { names: n }
    }

    fn replacements(c: &Completion, line: &str) -> (usize, Vec<String>) {
        let (start, found) = c.candidates(line, line.len());
        (start, found.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_commands_and_names() {
        let c = completion(&["alice", "Albert", "bob"]);
        assert_eq!(replacements(&c, "/w"), (0, vec!["/who ".to_owned()]));
        assert_eq!(replacements(&c, "/q"), (0, vec!["/quit ".to_owned()]));
        assert_eq!(replacements(&c, "bo"), (0, vec!["bob: ".to_owned()]));
        assert_eq!(replacements(&c, "hi AL"), (3, vec!["Albert ".to_owned(), "alice ".to_owned()]));
        assert_eq!(replacements(&c, "hi "), (3, Vec::<String>::new()));
        // A slash inside the line is text, not a command.
        assert_eq!(replacements(&c, "see /w"), (4, Vec::<String>::new()));
    }

    #[test]
    fn names_follow_the_roster() {
        let c = completion(&["alice"]);
        c.names.apply(&Event::Joined { user: "carol".into(), room: Some("general".into()) });
        assert_eq!(replacements(&c, "ca").1, ["carol: "]);
        c.names.apply(&Event::Left { user: "carol".into(), room: None });
        assert!(replacements(&c, "ca").1.is_empty());
        c.names.apply(&Event::RoomJoined {
            room: "dev".into(),
            topic: String::new(),
            users: vec!["dora".into()],
            users_total: 1,
            voice: false,
            history: false,
        });
        assert_eq!(replacements(&c, "/join #d").1, ["#dev "]);
        assert_eq!(replacements(&c, "do").1, ["dora: "]);
        c.names.apply(&Event::RoomLeft { room: "dev".into() });
        assert!(replacements(&c, "/join #d").1.is_empty());
    }
}
