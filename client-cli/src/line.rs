//! Text mode: stdin lines become messages, events become stdout lines.

use std::io::IsTerminal as _;

use client_core::command::{HELP, Input, parse};
use client_core::{Client, ClientError};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::output::Printer;
use crate::term::Typed;

/// Reads stdin until EOF or a quit command, sending each line; then asks
/// the client to quit once everything is acknowledged. A line that is not
/// UTF-8, too large or holds control characters is refused with a note and
/// the rest goes on. (On a terminal, [`crate::term`] reads instead.)
pub async fn pump_stdin(client: Client, printer: std::sync::Arc<Printer>) {
    if std::io::stdin().is_terminal() {
        printer.note("client-cli: type a message and press Enter; /help for commands");
    }
    let mut input = BufReader::new(tokio::io::stdin());
    let mut raw = Vec::new();
    let mut number = 0u64;
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw).await {
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
        match handle(&client, &printer, line).await {
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
    client: Client,
    printer: std::sync::Arc<Printer>,
    mut typed: tokio::sync::mpsc::Receiver<Typed>,
    quitting: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    printer.note("client-cli: type a message and press Enter; Tab completes names and /commands; /help");
    while let Some(t) = typed.recv().await {
        match t {
            Typed::Line(line) => match handle(&client, &printer, &line).await {
                Flow::Go => continue,
                Flow::Quit => break,
                Flow::Ended => return,
            },
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

/// Acts on one input line (line endings already trimmed).
pub async fn handle(client: &Client, printer: &Printer, line: &str) -> Flow {
    let result = match parse(line) {
        Input::Say(text) => client.send(text).await.map(|_| ()),
        Input::Who => client.who().await,
        Input::Quit => return Flow::Quit,
        Input::Help => {
            printer.note(HELP);
            Ok(())
        }
        Input::Nothing => Ok(()),
        Input::Unknown(cmd) => {
            printer.note(&format!("client-cli: unknown command {cmd:?}; {HELP}"));
            Ok(())
        }
    };
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
