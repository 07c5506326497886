//! Account passwords: from the environment for scripts, or typed at the
//! controlling terminal with echo off (never through the line editor, so
//! never in its history, and never a flag, which `ps` would show).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};

use anyhow::{Context as _, anyhow, bail};
use client_core::command::Input;
use client_core::{Secret, check_account_password};
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

/// The account password for logging in and `--register` / `/register`.
pub const ACCOUNT_PASSWORD_ENV: &str = "CHATROOM_ACCOUNT_PASSWORD";
/// The new account password for `/password` when stdin is not a terminal.
pub const NEW_ACCOUNT_PASSWORD_ENV: &str = "CHATROOM_NEW_ACCOUNT_PASSWORD";

/// The variable's value, if set and not empty.
pub fn from_env(var: &str) -> Option<Secret> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).map(Secret::from)
}

/// Reads one line from the controlling terminal with echo off, after
/// `prompt` (written to the terminal, not to stdout).
///
/// # Errors
///
/// No controlling terminal, or it cannot be read (end of input included).
pub fn read_hidden(prompt: &str) -> anyhow::Result<Secret> {
    let tty = File::options().read(true).write(true).open("/dev/tty").context("no terminal to ask on")?;
    let saved = tcgetattr(&tty).context("the terminal")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL | LocalFlags::ICANON);
    (&tty).write_all(prompt.as_bytes()).context("the terminal")?;
    (&tty).flush().context("the terminal")?;
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).context("the terminal")?;
    let mut line = String::new();
    let read = BufReader::new(&tty).read_line(&mut line);
    // Echo comes back whatever happened.
    let _ = tcsetattr(&tty, SetArg::TCSAFLUSH, &saved);
    if read.context("the terminal")? == 0 {
        bail!("no password typed (end of input)");
    }
    Ok(Secret::from(trim_line_end(line)))
}

/// A line without its line ending.
fn trim_line_end(mut line: String) -> String {
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    line
}

/// A new account password typed twice (the same both times, and within
/// the server's rules).
///
/// # Errors
///
/// The two differ, the rules are broken, or the terminal cannot be read.
pub fn read_new(prompt: &str) -> anyhow::Result<Secret> {
    let first = read_hidden(prompt)?;
    check_account_password(&first)?;
    let again = read_hidden("Again, to confirm: ")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// A new account password from `var` (checked against the rules), or
/// typed twice when `interactive`.
///
/// # Errors
///
/// Neither, or the password breaks the rules.
pub fn new_password(var: &str, interactive: bool, prompt: &str) -> anyhow::Result<Secret> {
    match from_env(var) {
        Some(p) => {
            check_account_password(&p).with_context(|| var.to_owned())?;
            Ok(p)
        }
        None if interactive => read_new(prompt),
        None => Err(anyhow!("no account password: set {var} (stdin is not a terminal to ask on)")),
    }
}

/// The current account password from [`ACCOUNT_PASSWORD_ENV`], or typed
/// once when `interactive`.
///
/// # Errors
///
/// Neither.
pub fn current_password(interactive: bool, prompt: &str) -> anyhow::Result<Secret> {
    match from_env(ACCOUNT_PASSWORD_ENV) {
        Some(p) => Ok(p),
        None if interactive => read_hidden(prompt),
        None => Err(anyhow!("no account password: set {ACCOUNT_PASSWORD_ENV} (stdin is not a terminal to ask on)")),
    }
}

/// An account request with its passwords, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// `/register`.
    Register(Secret),
    /// `/password`: the current one (`None` after a reset code) and the new.
    Password {
        /// The current password.
        old: Option<Secret>,
        /// The new one.
        new: Secret,
    },
    /// `/unregister`.
    Unregister(Secret),
}

/// The passwords `/register`, `/password` or `/unregister` need: typed at
/// the terminal when `interactive`, otherwise from the environment
/// ([`ACCOUNT_PASSWORD_ENV`], and [`NEW_ACCOUNT_PASSWORD_ENV`] for the new
/// one of `/password`). `None` for any other input.
pub fn ask(input: &Input<'_>, interactive: bool) -> Option<anyhow::Result<AccountChange>> {
    Some(match input {
        Input::Register => new_password(ACCOUNT_PASSWORD_ENV, interactive, "New account password for this name: ")
            .map(AccountChange::Register),
        Input::Password => {
            let old = if interactive {
                read_hidden("Current account password (empty after a reset code): ")
                    .map(|p| Some(p).filter(|p| !p.expose().is_empty()))
            } else {
                Ok(from_env(ACCOUNT_PASSWORD_ENV))
            };
            old.and_then(|old| {
                let new = new_password(NEW_ACCOUNT_PASSWORD_ENV, interactive, "New account password: ")?;
                Ok(AccountChange::Password { old, new })
            })
        }
        Input::Unregister => {
            current_password(interactive, "Account password, to give this name back: ").map(AccountChange::Unregister)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_not_part_of_the_password() {
        assert_eq!(trim_line_end("pass word\r\n".into()), "pass word");
        assert_eq!(trim_line_end("pass word\n".into()), "pass word");
        assert_eq!(trim_line_end(" spaced ".into()), " spaced ", "spaces are kept");
    }
}
