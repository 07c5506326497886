//! Text mode: stdin lines become messages, events become stdout lines.

use std::io::IsTerminal as _;

use client_core::{Client, ClientError};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::output::Printer;

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
/// the rest goes on.
pub async fn pump_stdin(client: Client, printer: std::sync::Arc<Printer>) {
    if std::io::stdin().is_terminal() {
        eprintln!("client-cli: type a message and press Enter; /help for commands");
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
                eprintln!("client-cli: cannot read stdin: {e}");
                break;
            }
        }
        number += 1;
        let Ok(line) = std::str::from_utf8(&raw) else {
            printer.refused_locally("invalid", &format!("input line {number} is not valid UTF-8"));
            continue;
        };
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        let result = match parse(line) {
            Input::Say(text) => client.send(text).await.map(|_| ()),
            Input::Who => client.who().await,
            Input::Quit => break,
            Input::Help => {
                eprintln!("{HELP}");
                Ok(())
            }
            Input::Nothing => Ok(()),
            Input::Unknown(cmd) => {
                eprintln!("client-cli: unknown command {cmd:?}; {HELP}");
                Ok(())
            }
        };
        match result {
            Ok(()) => {}
            Err(ClientError::NotConnected) => return,
            Err(e @ ClientError::TooLarge { .. }) => printer.refused_locally("too_large", &e.to_string()),
            Err(e) => printer.refused_locally("invalid", &e.to_string()),
        }
    }
    let _ = client.quit().await;
}

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
