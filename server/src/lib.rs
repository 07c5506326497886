//! The Socket Chatroom server's actors and what they share; the `server`
//! binary wires them together.
//!
//! - [`config`]: the `[server]` table of `config.toml`.
//! - [`keys`]: the key files (pre-shared key, RSA identity).
//! - [`keyring`]: every key a client may connect with (main, invites,
//!   issued keys; sans-IO).
//! - [`gate`]: who may wait, cost a signature or try a password (sans-IO).
//! - [`listener`]: accepts connections, starts sessions, keeps the gate.
//! - [`session`]: one actor per connection.
//! - [`writer`]: a session's writer task (sealing, batching, the last word).
//! - [`run`]: the whole server on bound sockets, until told to stop
//!   (the binary and in-process tests start it).
//! - [`rules`]: a session's rate, flood and settled-id rules (sans-IO).
//! - [`roster`]: who is here; text and presence fan-out.
//! - [`signer`]: RSA signing on worker threads.
//! - [`voice_relay`]: the UDP voice relay.
//! - [`batch_send`]: many datagrams in one system call.
//! - [`messages`]: messages between actors.
//! - [`metrics`]: Prometheus counters and the opt-in scrape listener.
//! - [`archive`]: history and rooms kept across restarts (SQLite).
//! - [`accounts`]: accounts, roles, bans and mutes (sans-IO), and the
//!   password hashing pool.
//! - [`admin`]: the operator's Unix socket (`server admin …`).

pub mod accounts;
pub mod admin;
pub mod archive;
pub mod batch_send;
pub mod config;
pub mod gate;
pub mod keyring;
pub mod keys;
pub mod listener;
pub mod messages;
pub mod metrics;
pub mod rooms;
pub mod roster;
pub mod rules;
pub mod run;
pub mod session;
pub mod signer;
pub mod voice_relay;
pub mod writer;

#[cfg(test)]
mod tests {
    /// Issue 13 item 12: `-v` works in release builds too. slog drops
    /// records above a compile-time maximum before any runtime filter sees
    /// them (Info in release, Debug in debug builds, unless features say
    /// otherwise); the workspace raises it to Trace in every profile.
    #[test]
    fn verbose_records_survive_in_every_profile() {
        let max = slog::__slog_static_max_level();
        assert!(max.accepts(slog::Level::Debug) && max.accepts(slog::Level::Trace), "compile-time maximum {max:?}");
    }
}
