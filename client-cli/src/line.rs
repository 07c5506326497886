//! Text mode: stdin lines become messages, events become stdout lines.

use std::io::IsTerminal as _;

use client_core::{Client, ClientError};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::output::Printer;
use crate::term::Typed;

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Send this text.
    Say(&'a str),
    /// Leave (`/quit`, the seed's `!DISCONNECT`).
    Quit,
    /// List users.
    Who,
    /// Show the commands.
    Help,
    /// Nothing to do (an empty line).
    Nothing,
    /// A `/command` we do not know.
    Unknown(&'a str),
}

/// Help text for `/help`.
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
    match line.strip_prefix('/').map(str::trim) {
        None => Input::Say(line),
        Some("quit" | "exit") => Input::Quit,
        Some("who") => Input::Who,
        Some("help") => Input::Help,
        Some(_) => Input::Unknown(line),
    }
}

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

/// The commands, for completion.
pub const COMMANDS: [&str; 4] = ["/who", "/quit", "/help", "!DISCONNECT"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_escapes() {
        assert_eq!(parse("hello"), Input::Say("hello"));
        assert_eq!(parse("//quit is a command"), Input::Say("/quit is a command"));
        assert_eq!(parse("//slash at the end"), Input::Say("/slash at the end"));
        assert_eq!(parse("//"), Input::Say("/"));
        assert_eq!(parse("/quit"), Input::Quit);
        assert_eq!(parse("!DISCONNECT"), Input::Quit);
        assert_eq!(parse("/who"), Input::Who);
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/frobnicate"), Input::Unknown("/frobnicate"));
        assert_eq!(parse("   "), Input::Nothing);
        assert_eq!(parse("not /a command"), Input::Say("not /a command"));
    }
}
