//! Account passwords: from the environment for scripts, or typed at the
//! controlling terminal with echo off (never through the line editor, so
//! never in its history, and never a flag, which `ps` would show).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use anyhow::{Context as _, anyhow, bail};
use client_core::command::Input;
use client_core::{Secret, check_account_password};
use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, Termios, tcgetattr, tcsetattr};

/// The account password for logging in and `--register` / `/register`.
pub const ACCOUNT_PASSWORD_ENV: &str = "CHATROOM_ACCOUNT_PASSWORD";
/// The new account password for `/password` when stdin is not a terminal.
pub const NEW_ACCOUNT_PASSWORD_ENV: &str = "CHATROOM_NEW_ACCOUNT_PASSWORD";

/// The variable's value, if set and not empty.
pub fn from_env(var: &str) -> Option<Secret> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).map(Secret::from)
}

/// Reads one line from the controlling terminal with echo off, after
/// `prompt` (written to the terminal, not to stdout). Echo comes back
/// however the prompt ends: Enter, Ctrl-C, end of input or a failed read.
///
/// # Errors
///
/// No controlling terminal, it cannot be read (end of input included), or
/// Ctrl-C was pressed.
pub fn read_hidden(prompt: &str) -> anyhow::Result<Secret> {
    let tty = File::options().read(true).write(true).open("/dev/tty").context("no terminal to ask on")?;
    read_hidden_from(&tty, prompt)
}

/// [`read_hidden`] on `tty`, any terminal.
fn read_hidden_from<T>(tty: T, prompt: &str) -> anyhow::Result<Secret>
where
    T: Read + Write + AsFd + Copy,
{
    let mut out = tty;
    out.write_all(prompt.as_bytes()).context("the terminal")?;
    out.flush().context("the terminal")?;
    let guard = HiddenInput::new(tty).context("the terminal")?;
    let mut typed = Typed::default();
    let mut input = tty;
    let mut byte = [0u8; 1];
    let step = loop {
        let n = match input.read(&mut byte) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("the terminal"),
        };
        if n == 0 {
            break Step::End;
        }
        match typed.key(byte[0]) {
            Step::More => {}
            step => break step,
        }
    };
    drop(guard);
    // Echo was off, so the Enter (or ^C) left the cursor on the prompt's line.
    let _ = out.write_all(b"\n");
    match step {
        Step::Done => Ok(Secret::from(typed.into_string()?)),
        Step::Cancelled => bail!("cancelled (Ctrl-C); nothing was sent"),
        Step::End | Step::More => bail!("no password typed (end of input)"),
    }
}

/// A terminal's settings as they were before a hidden prompt, put back
/// when this is dropped: echo comes back however the prompt ends (Enter,
/// Ctrl-C, end of input, a failed read, a panic).
///
/// While it lives the terminal does not echo, hands over each byte as it
/// is typed, and turns Ctrl-C into input instead of SIGINT: the prompt
/// sees it and returns, so no signal can end the process with echo off.
pub struct HiddenInput<T: AsFd> {
    tty: T,
    saved: Termios,
}

impl<T: AsFd> HiddenInput<T> {
    /// Saves `tty`'s settings and switches it to hidden input (type-ahead
    /// is discarded).
    ///
    /// # Errors
    ///
    /// `tty` is not a terminal, or its settings cannot be changed.
    pub fn new(tty: T) -> nix::Result<Self> {
        let saved = tcgetattr(tty.as_fd())?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
        quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        // Restored from here on, even if switching fails half way.
        let guard = Self { tty, saved };
        tcsetattr(guard.tty.as_fd(), SetArg::TCSAFLUSH, &quiet)?;
        Ok(guard)
    }
}

impl<T: AsFd> Drop for HiddenInput<T> {
    fn drop(&mut self) {
        // Nothing more to do if the terminal went away.
        let _ = tcsetattr(self.tty.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// What one typed byte made of the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Keep reading.
    More,
    /// Enter: the line is complete.
    Done,
    /// Ctrl-C.
    Cancelled,
    /// Ctrl-D on an empty line, or the terminal's end.
    End,
}

/// The bytes of a hidden line being typed, with the terminal's usual
/// editing keys (Backspace, Ctrl-U).
#[derive(Default)]
struct Typed(Vec<u8>);

impl Typed {
    /// Takes one byte.
    fn key(&mut self, byte: u8) -> Step {
        match byte {
            b'\r' | b'\n' => return Step::Done,
            0x03 => {
                self.0.clear();
                return Step::Cancelled;
            }
            0x04 if self.0.is_empty() => return Step::End,
            // Backspace: one character (UTF-8: its continuation bytes too).
            0x7f | 0x08 => {
                while let Some(b) = self.0.pop() {
                    if b & 0xC0 != 0x80 {
                        break;
                    }
                }
            }
            0x15 => self.0.clear(),
            b if b < 0x20 => {}
            b => self.0.push(b),
        }
        Step::More
    }

    /// The line typed.
    fn into_string(self) -> anyhow::Result<String> {
        String::from_utf8(self.0).map_err(|_| anyhow!("the password typed is not valid UTF-8"))
    }
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
    use nix::pty::openpty;

    fn typed(bytes: &[u8]) -> (Step, String) {
        let mut t = Typed::default();
        for &b in bytes {
            let step = t.key(b);
            if step != Step::More {
                return (step, String::from_utf8_lossy(&t.0).into_owned());
            }
        }
        (Step::More, String::from_utf8_lossy(&t.0).into_owned())
    }

    #[test]
    fn the_usual_editing_keys_work_and_line_endings_are_not_part_of_the_password() {
        assert_eq!(typed(b"pass word\r"), (Step::Done, "pass word".into()));
        assert_eq!(typed(b" spaced \n"), (Step::Done, " spaced ".into()), "spaces are kept");
        assert_eq!(
            typed("pässx\x7f\x7f\x7fss\n".as_bytes()),
            (Step::Done, "päss".into()),
            "backspace takes characters"
        );
        assert_eq!(typed(b"wrong\x15right\n"), (Step::Done, "right".into()), "Ctrl-U starts again");
        assert_eq!(typed(b"half\x03"), (Step::Cancelled, String::new()), "Ctrl-C cancels");
        assert_eq!(typed(b"\x04"), (Step::End, String::new()), "Ctrl-D on an empty line ends");
        assert_eq!(typed(b"a\x04b\n"), (Step::Done, "ab".into()), "Ctrl-D within a line is ignored");
    }

    /// A pseudo-terminal: (the side a user types into, the terminal).
    fn terminal() -> (File, File) {
        let pty = openpty(None, None).expect("a pseudo-terminal");
        (File::from(pty.master), File::from(pty.slave))
    }

    fn flags(tty: &File) -> LocalFlags {
        tcgetattr(tty).expect("the terminal's settings").local_flags
    }

    #[test]
    fn the_guard_switches_echo_and_signals_off_and_restores_them_when_dropped_or_unwound() {
        let (_user, tty) = terminal();
        let before = flags(&tty);
        assert!(before.contains(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG), "{before:?}");
        let guard = HiddenInput::new(&tty).expect("hidden input");
        let hidden = flags(&tty);
        assert!(!hidden.intersects(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG), "{hidden:?}");
        drop(guard);
        assert_eq!(flags(&tty), before);

        let unwound = std::panic::catch_unwind(|| {
            let _guard = HiddenInput::new(&tty).expect("hidden input");
            panic!("the prompt failed");
        });
        assert!(unwound.is_err());
        assert_eq!(flags(&tty), before, "restored while unwinding");
    }

    /// Types `bytes` on the user's side once `tty` hides its input (the
    /// guard flushes what was typed before), from another thread.
    fn type_once_hidden(mut user: File, tty: &File, bytes: &'static [u8]) -> std::thread::JoinHandle<File> {
        let tty = tty.try_clone().expect("the terminal again");
        std::thread::spawn(move || {
            while flags(&tty).contains(LocalFlags::ECHO) {
                std::thread::yield_now();
            }
            user.write_all(bytes).expect("typed");
            user
        })
    }

    #[test]
    fn ctrl_c_at_the_prompt_cancels_and_echo_comes_back() {
        let (user, tty) = terminal();
        let before = flags(&tty);
        let typing = type_once_hidden(user, &tty, b"half a pass\x03");
        let e = read_hidden_from(&tty, "Password: ").expect_err("cancelled");
        assert!(e.to_string().contains("cancelled"), "{e:#}");
        assert_eq!(flags(&tty), before);

        let user = typing.join().expect("the typing thread");
        let typing = type_once_hidden(user, &tty, b"pass word\r");
        let p = read_hidden_from(&tty, "Password: ").expect("a password");
        assert_eq!(p.expose(), "pass word");
        assert_eq!(flags(&tty), before);

        let user = typing.join().expect("the typing thread");
        let typing = type_once_hidden(user, &tty, b"\x04");
        let e = read_hidden_from(&tty, "Password: ").expect_err("end of input");
        assert!(e.to_string().contains("end of input"), "{e:#}");
        assert_eq!(flags(&tty), before);
        typing.join().expect("the typing thread");
    }
}
