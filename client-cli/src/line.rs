//! Text mode: stdin lines become messages (to the current room) and
//! commands, events become stdout lines.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};

use client_core::command::{HELP, Input as Line, parse};
use client_core::rooms::Rooms;
use client_core::{Client, ClientError, Target};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::output::Printer;
use crate::password::{self, AccountChange};
use crate::term::Typed;

/// Messages a `/history` without a number asks for.
const HISTORY_PAGE: u32 = 50;

/// What acting on input lines needs: the client, the printer, and the
/// rooms (where lines go, where paging back starts).
#[derive(Debug, Clone)]
pub struct Input {
    /// The connection.
    pub client: Client,
    /// Notes and local refusals.
    pub printer: Arc<Printer>,
    /// The rooms, kept current by the event loop.
    pub state: Arc<Mutex<Rooms>>,
}

/// Reads stdin until EOF or a quit command, sending each line; then asks
/// the client to quit once everything is acknowledged. A line that is not
/// UTF-8, too large or holds control characters is refused with a note and
/// the rest goes on. (On a terminal, [`crate::term`] reads instead.)
pub async fn pump_stdin(input: Input) {
    let (client, printer) = (&input.client, &input.printer);
    if std::io::stdin().is_terminal() {
        printer.note("client-cli: type a message and press Enter; /help for commands");
    }
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut raw = Vec::new();
    let mut number = 0u64;
    loop {
        raw.clear();
        match stdin.read_until(b'\n', &mut raw).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                printer.note(&format!("client-cli: cannot read stdin: {e}"));
                break;
            }
        }
        number += 1;
        let Ok(line) = std::str::from_utf8(&raw) else {
            printer.refused_locally("invalid", &format!("input line {number} is not valid UTF-8"));
            continue;
        };
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        match handle(&input, line).await {
            Flow::Go => {}
            Flow::Quit => break,
            Flow::Ended => return,
        }
    }
    let _ = client.quit().await;
}

/// Acts on the lines the terminal's editor reads (see [`crate::term`]);
/// Ctrl-C and Ctrl-D leave politely, as `/quit` does. `quitting` is set
/// once leaving has begun (a second Ctrl-C then exits at once).
pub async fn pump_typed(
    input: Input,
    mut typed: tokio::sync::mpsc::Receiver<Typed>,
    quitting: Arc<std::sync::atomic::AtomicBool>,
) {
    let (client, printer) = (&input.client, &input.printer);
    printer.note("client-cli: type a message and press Enter; Tab completes names and /commands; /help");
    while let Some(t) = typed.recv().await {
        match t {
            Typed::Line(line) => match handle(&input, &line).await {
                Flow::Go => continue,
                Flow::Quit => break,
                Flow::Ended => return,
            },
            Typed::Account(Ok(change)) => match outcome(printer, account(client, change).await) {
                Flow::Ended => return,
                Flow::Go | Flow::Quit => continue,
            },
            Typed::Account(Err(why)) => printer.note(&format!("client-cli: {why}")),
            Typed::Interrupted => {
                printer.note("client-cli: leaving (press Ctrl-C again to exit at once)");
                break;
            }
            Typed::Eof => break,
        }
    }
    quitting.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = client.quit().await;
}

/// What to do after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Go,
    /// The user asked to leave.
    Quit,
    /// The connection has ended: stop reading.
    Ended,
}

/// Our latest message where our lines go.
fn last_own(state: &Mutex<Rooms>) -> Option<u64> {
    let s = state.lock().ok()?;
    s.last_own(s.current()?)
}

/// Sends an account request with its passwords.
async fn account(client: &Client, change: AccountChange) -> Result<(), ClientError> {
    match change {
        AccountChange::Register(password) => client.register(password).await,
        AccountChange::Password { old, new } => client.change_password(old, new).await,
        AccountChange::Unregister(password) => client.unregister(password).await,
    }
}

/// Acts on one input line (line endings already trimmed).
pub async fn handle(input: &Input, line: &str) -> Flow {
    let Input { client, printer, state } = input;
    let current = || state.lock().ok().and_then(|s| s.current().cloned());
    let parsed = parse(line);
    // Without the editor: asked on the terminal if stdin is one (no read
    // of stdin is under way while a line is handled), else from the
    // environment.
    if matches!(parsed, Line::Register | Line::Password | Line::Unregister) {
        let (owned, interactive) = (line.to_owned(), std::io::stdin().is_terminal());
        let asked = tokio::task::spawn_blocking(move || password::ask(&parse(&owned), interactive)).await;
        return match asked {
            Ok(Some(Ok(change))) => outcome(printer, account(client, change).await),
            Ok(Some(Err(e))) => {
                printer.note(&format!("client-cli: {e:#}"));
                Flow::Go
            }
            Ok(None) => Flow::Go,
            Err(e) => {
                printer.note(&format!("client-cli: {e}"));
                Flow::Go
            }
        };
    }
    let result = match parsed {
        Line::Say(text) => match current() {
            Some(target) => client.say(target, text).await.map(|_| ()),
            None => client.send(text).await.map(|_| ()),
        },
        Line::Msg { to, text } => client.say(Target::User(to), text).await.map(|_| ()),
        Line::Edit { id, text } => match id.or_else(|| last_own(state)) {
            Some(id) => client.edit(id, text).await.map(|_| ()),
            None => {
                printer.note("client-cli: nothing of yours to edit here; /edit ID TEXT names one");
                Ok(())
            }
        },
        Line::Delete(id) => match id.or_else(|| last_own(state)) {
            Some(id) => client.delete(id).await.map(|_| ()),
            None => {
                printer.note("client-cli: nothing of yours to delete here; /delete ID names one");
                Ok(())
            }
        },
        Line::Who(room) => client.who_in(room).await,
        // Lines go to the room joined from now on (as on IRC); a refusal
        // gives the current room back (`Rooms` handles `join_refused`).
        Line::Join(room) => {
            let joined = client.join(room.clone()).await;
            if joined.is_ok()
                && let Ok(mut s) = state.lock()
            {
                s.set_current(Target::Room(room));
            }
            joined
        }
        Line::Part(room) => client.part(room).await,
        Line::Rooms => client.rooms().await,
        Line::Room(room) => {
            let Ok(mut s) = state.lock() else { return Flow::Go };
            // A room being joined is fine (`/join x` then `/room x` in a
            // script): the server takes the join before the lines.
            let name = s.room(&room).map_or(room, |r| r.name.clone());
            if s.room(&name).is_none() {
                printer.note(&format!("client-cli: you are not in #{name} (yet): /join {name}"));
            }
            s.set_current(Target::Room(name));
            Ok(())
        }
        Line::History(n) if matches!(current(), Some(Target::User(_))) => {
            let Some(Target::User(with)) = current() else { return Flow::Go };
            let before = state.lock().ok().and_then(|s| s.conversation(&with).and_then(|c| c.log.oldest()));
            client.private_history(with, before, n.unwrap_or(HISTORY_PAGE)).await
        }
        Line::History(n) => {
            let page = match current() {
                Some(Target::Room(room)) => {
                    let before = state.lock().ok().and_then(|s| s.room(&room).and_then(|r| r.oldest()));
                    Some((room, before))
                }
                _ => None,
            };
            match page {
                Some((room, before)) => client.history(room, before, n.unwrap_or(HISTORY_PAGE)).await,
                None => {
                    printer.note("client-cli: /history pages the current room; /room ROOM first");
                    Ok(())
                }
            }
        }
        // Each further page starts before the oldest message held.
        Line::PrivateHistory { with, count } => {
            let before = state.lock().ok().and_then(|s| s.conversation(&with).and_then(|c| c.log.oldest()));
            client.private_history(with, before, count.unwrap_or(HISTORY_PAGE)).await
        }
        Line::Moderate(action) => client.moderate(action).await,
        Line::ModerateRoom { room, request } => match room.or_else(|| match current() {
            Some(Target::Room(r)) => Some(r),
            _ => None,
        }) {
            Some(room) => client.moderate(request.into_action(room)).await,
            None => {
                printer.note("client-cli: which room? name it (#ROOM) or /room ROOM first");
                Ok(())
            }
        },
        // Asked for above.
        Line::Register | Line::Password | Line::Unregister => Ok(()),
        Line::Quit => return Flow::Quit,
        Line::Help => {
            printer.note(HELP);
            Ok(())
        }
        Line::Nothing => Ok(()),
        Line::Usage { problem, usage } => {
            printer.note(&format!("client-cli: usage: {usage} ({problem})"));
            Ok(())
        }
        Line::Unknown(cmd) => {
            printer.note(&format!("client-cli: unknown command {cmd:?}; {HELP}"));
            Ok(())
        }
    };
    outcome(printer, result)
}

/// What a command's result means for reading on.
fn outcome(printer: &Printer, result: Result<(), ClientError>) -> Flow {
    match result {
        Ok(()) => Flow::Go,
        Err(ClientError::NotConnected) => Flow::Ended,
        Err(e @ ClientError::TooLarge { .. }) => {
            printer.refused_locally("too_large", &e.to_string());
            Flow::Go
        }
        Err(e) => {
            printer.refused_locally("invalid", &e.to_string());
            Flow::Go
        }
    }
}
