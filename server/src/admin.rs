//! The operator's admin interface: a Unix socket in `data_dir`
//! (`admin.sock`, mode 0600) that `server admin <command>` talks to on the
//! server's machine. There is no network admin port.
//!
//! Who may connect: the kernel says who the peer is (`SO_PEERCRED`); only
//! root and the server's own user are served, anyone else gets one refusal
//! line. The mode keeps other users from even connecting; the check holds
//! where the mode does not (a directory opened up by mistake).
//!
//! The exchange is JSON lines: one [`AdminRequest`] per line, one
//! [`AdminResponse`] per line back, on the same connection.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use protocol::moderation::{Action, DenyReason};
use serde::{Deserialize, Serialize};
use slog::{Logger, debug, info, warn};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use crate::accounts::hasher::{self, Hasher};
use crate::messages::{Asker, Denial, ModReply, ModReplyTo, ModRequest, Moderate, OperatorQuery};
use crate::roster::Roster;

/// The socket's file name inside the data directory.
pub const SOCKET_FILE: &str = "admin.sock";

/// Longest request line.
const MAX_LINE: usize = 64 * 1024;

/// How long a reset code works.
pub const RESET_CODE_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a quiet admin connection stays open.
const IDLE: Duration = Duration::from_secs(60);

/// One request to the running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// A moderation action, with every power.
    Act {
        /// The action.
        action: Action,
    },
    /// Everyone connected.
    Who,
    /// Every room.
    Rooms,
    /// Counts.
    Stats,
    /// A one-time reset code for an account (its password stops working).
    ResetPassword {
        /// The account.
        name: String,
    },
    /// A new invite link.
    Invite {
        /// Uses (`None`: unlimited).
        #[serde(default)]
        uses: Option<u32>,
        /// Lifetime in seconds (`None`: until revoked).
        #[serde(default)]
        expires_secs: Option<u64>,
        /// The room the link lands in.
        #[serde(default)]
        room: Option<String>,
        /// `HOST:PORT` for the link instead of `public_address`.
        #[serde(default)]
        address: Option<String>,
    },
    /// Every invite.
    Invites,
    /// End an invite and every key issued through it.
    RevokeInvite {
        /// Its number.
        id: u64,
    },
    /// Every issued key.
    Keys,
    /// End one issued key.
    RevokeKey {
        /// Its number.
        id: u64,
    },
    /// A new main key (written to the key file); the old one works for
    /// `key_grace_days` unless `now`; answered with a fresh invite link.
    RotateKey {
        /// End the old key at once.
        #[serde(default)]
        now: bool,
    },
}

/// What invite links and rotations need to know about this server.
#[derive(Debug, Clone)]
pub struct AdminContext {
    /// `HOST:PORT`s invite links name.
    pub addresses: Vec<String>,
    /// The server identity's fingerprint.
    pub fingerprint: protocol::crypto::Fingerprint,
    /// The key file (rotate-key writes it).
    pub key_file: PathBuf,
    /// How long the old main key keeps working after a rotation.
    pub key_grace: Duration,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether it was done.
    pub ok: bool,
    /// What came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ModReply>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Denial>,
    /// A reset code (for `reset_password`), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// An invite link (for `invite` and `rotate_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl AdminResponse {
    fn failed(reason: DenyReason, detail: impl Into<String>) -> Self {
        Self { ok: false, reply: None, error: Some(Denial { reason, detail: detail.into() }), code: None, link: None }
    }
}

/// Why the admin socket could not be set up, or reached.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Binding the socket failed.
    #[error("admin socket {path}: {source}")]
    Bind {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No server listens there.
    #[error("no server is running on the data directory {dir} (no admin socket at {socket}): {source}")]
    NoServer {
        /// The data directory.
        dir: PathBuf,
        /// The socket's path.
        socket: PathBuf,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The socket is there but this user may not open it.
    #[error("{socket}: permission denied: only root and the server's own user may administer it")]
    NotAllowed {
        /// The socket's path.
        socket: PathBuf,
    },
    /// Talking to the server failed.
    #[error("admin socket: {0}")]
    Io(#[from] std::io::Error),
    /// The server's answer was not understood.
    #[error("admin socket: unexpected answer: {0}")]
    Answer(String),
}

/// Binds the admin socket in `dir` (a stale one from an earlier run is
/// replaced: the caller holds the data directory's lock), mode 0600.
///
/// # Errors
///
/// [`AdminError::Bind`].
pub fn bind(dir: &Path) -> Result<std::os::unix::net::UnixListener, AdminError> {
    let path = dir.join(SOCKET_FILE);
    let fail = |source| AdminError::Bind { path: path.clone(), source };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(listener)
}

/// Serves the admin socket until the listener fails or `shutdown` flips.
pub async fn serve(
    listener: tokio::net::UnixListener,
    roster: Addr<Roster>,
    hasher: Addr<Hasher>,
    context: AdminContext,
    log: Logger,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let own = nix::unistd::geteuid().as_raw();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|down| *down) => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(log, "admin socket accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (roster, hasher, log, context) = (roster.clone(), hasher.clone(), log.clone(), context.clone());
        actix_rt::spawn(async move {
            if let Err(e) = connection(stream, own, roster, hasher, &context, &log).await {
                debug!(log, "admin connection ended"; "error" => %e);
            }
        });
    }
}

/// One admin connection: the peer's uid checked, then requests in turn.
async fn connection(
    stream: tokio::net::UnixStream,
    own: u32,
    roster: Addr<Roster>,
    hasher: Addr<Hasher>,
    context: &AdminContext,
    log: &Logger,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let line = |r: &AdminResponse| {
        let mut v = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        v.push(b'\n');
        v
    };
    if cred.uid() != 0 && cred.uid() != own {
        warn!(log, "admin socket: refused a user that is neither root nor the server's"; "uid" => cred.uid());
        let no = AdminResponse::failed(
            DenyReason::NotAllowed,
            format!("uid {} may not administer this server (only root and uid {own})", cred.uid()),
        );
        write.write_all(&line(&no)).await?;
        return Ok(());
    }
    let mut lines = tokio::io::BufReader::new(read);
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = match tokio::time::timeout(IDLE, (&mut lines).take(MAX_LINE as u64 + 1).read_line(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_LINE || !buf.ends_with('\n') {
            let no = AdminResponse::failed(DenyReason::Invalid, "request line too long");
            write.write_all(&line(&no)).await?;
            return Ok(());
        }
        let response = match serde_json::from_str::<AdminRequest>(buf.trim_end()) {
            Ok(req) => {
                info!(log, "admin request"; "uid" => cred.uid(), "request" => ?req);
                handle(req, &roster, &hasher, context, log).await
            }
            Err(e) => AdminResponse::failed(DenyReason::Invalid, format!("not a request: {e}")),
        };
        write.write_all(&line(&response)).await?;
    }
}

/// Asks the roster and waits for its answer.
async fn ask(roster: &Addr<Roster>, request: ModRequest) -> Result<ModReply, Denial> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    roster.do_send(Moderate { by: Asker::Operator, request, reply: ModReplyTo::Operator(tx) });
    rx.await.unwrap_or_else(|_| {
        Err(Denial { reason: DenyReason::StorageUnavailable, detail: "the server is shutting down".into() })
    })
}

/// An invite's link, from the roster's answer.
fn link(reply: &ModReply, addresses: &[String], context: &AdminContext) -> Option<String> {
    let ModReply::Invite { key, room, .. } = reply else { return None };
    let link = protocol::invite::InviteLink {
        addresses: addresses.to_vec(),
        key: key.0.clone(),
        fingerprint: context.fingerprint,
        room: room.clone(),
    };
    Some(link.to_string())
}

/// Carries out one request through the roster.
async fn handle(
    req: AdminRequest,
    roster: &Addr<Roster>,
    hasher: &Addr<Hasher>,
    context: &AdminContext,
    log: &Logger,
) -> AdminResponse {
    use crate::roster::KeyQuery;
    let answer = |r: Result<ModReply, Denial>, link: Option<String>| match r {
        Ok(reply) => AdminResponse { ok: true, reply: Some(reply), error: None, code: None, link },
        Err(denial) => AdminResponse { ok: false, reply: None, error: Some(denial), code: None, link: None },
    };
    let mut code = None;
    let request = match req {
        AdminRequest::Invite { uses, expires_secs, room, address } => {
            let addresses =
                address.map_or_else(|| context.addresses.clone(), |a| a.split(',').map(str::to_owned).collect());
            let r = ask(roster, ModRequest::Keys(KeyQuery::CreateInvite { uses, expires_secs, room })).await;
            let l = r.as_ref().ok().and_then(|reply| link(reply, &addresses, context));
            return answer(r.map(hide_key), l);
        }
        AdminRequest::Invites => ModRequest::Keys(KeyQuery::ListInvites),
        AdminRequest::RevokeInvite { id } => ModRequest::Keys(KeyQuery::RevokeInvite { id }),
        AdminRequest::Keys => ModRequest::Keys(KeyQuery::ListKeys),
        AdminRequest::RevokeKey { id } => ModRequest::Keys(KeyQuery::RevokeKey { id }),
        AdminRequest::RotateKey { now } => {
            // The store keeps the old key for its grace and the ring
            // switches; then the key file takes the new key, so a restart
            // keeps it.
            let new_key = protocol::crypto::Psk::generate();
            let grace_secs = (!now).then_some(context.key_grace.as_secs());
            let request = KeyQuery::RotateKey { new_key: crate::keyring::SecretText(new_key.clone()), grace_secs };
            let rotated = ask(roster, ModRequest::Keys(request)).await;
            let Ok(ModReply::Done { detail }) = rotated else { return answer(rotated, None) };
            if let Err(e) = crate::keys::write_secret(&context.key_file, &format!("{new_key}\n")) {
                warn!(log, "rotate-key: cannot write the key file"; "error" => %e);
                let detail = format!(
                    "the running server uses the new key, but the key file could not be written ({e}): \
                     fix it and run rotate-key again, or a restart goes back to the old key"
                );
                return AdminResponse::failed(DenyReason::StorageUnavailable, detail);
            }
            // A fresh invite for everyone who should come in with the new key.
            let expires_secs = Some(context.key_grace.as_secs().max(86_400));
            let fresh =
                ask(roster, ModRequest::Keys(KeyQuery::CreateInvite { uses: None, expires_secs, room: None })).await;
            let l = fresh.as_ref().ok().and_then(|reply| link(reply, &context.addresses, context));
            return answer(Ok(ModReply::Done { detail: format!("{detail}; a fresh invite follows") }), l);
        }
        AdminRequest::Act { action } => ModRequest::Act(action),
        AdminRequest::Who => ModRequest::Operator(OperatorQuery::Who),
        AdminRequest::Rooms => ModRequest::Operator(OperatorQuery::Rooms),
        AdminRequest::Stats => ModRequest::Operator(OperatorQuery::Stats),
        AdminRequest::ResetPassword { name } => {
            let fresh = reset_code();
            let Ok(Ok(code_phc)) = hasher.send(hasher::Hash(fresh.clone())).await else {
                return AdminResponse::failed(DenyReason::StorageUnavailable, "the code could not be hashed");
            };
            code = Some(fresh);
            let until_ms = crate::roster::now_ms().saturating_add(RESET_CODE_TTL.as_millis() as u64);
            ModRequest::Operator(OperatorQuery::ResetPassword { name, code_phc, until_ms })
        }
    };
    let mut response = answer(ask(roster, request).await, None);
    if response.ok {
        response.code = code.take();
    }
    response
}

/// An invite's key goes out in its link only.
fn hide_key(reply: ModReply) -> ModReply {
    match reply {
        ModReply::Invite { id, room, detail, .. } => ModReply::Invite { id, key: Default::default(), room, detail },
        other => other,
    }
}

/// A one-time reset code: 20 characters of an alphabet without look-alikes
/// (about 100 bits).
fn reset_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    protocol::crypto::random_bytes::<20>().iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// Sends one request to the server running on `dir` and returns its
/// answer (the client side of `server admin`).
///
/// # Errors
///
/// [`AdminError::NoServer`] when nothing listens there; [`AdminError::Io`]
/// or [`AdminError::Answer`] when the exchange fails.
pub fn request(dir: &Path, req: &AdminRequest) -> Result<AdminResponse, AdminError> {
    let socket = dir.join(SOCKET_FILE);
    let stream = std::os::unix::net::UnixStream::connect(&socket).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            AdminError::NotAllowed { socket: socket.clone() }
        } else {
            AdminError::NoServer { dir: dir.to_path_buf(), socket: socket.clone(), source }
        }
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Answer(e.to_string()))?;
    line.push(b'\n');
    // A refused caller's request may not be read at all: the server
    // answers and closes first, so a failed write may still have an answer.
    let written = out.write_all(&line);
    let mut answer = String::new();
    let read = BufReader::new(stream).take(MAX_LINE as u64 * 64).read_line(&mut answer);
    if answer.is_empty() {
        written?;
        read?;
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| AdminError::Answer(format!("{e}: {answer:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_written() {
        let req = AdminRequest::Act { action: Action::Kick { name: "bob".into(), reason: None } };
        let line = serde_json::to_string(&req).unwrap_or_default();
        assert_eq!(line, r#"{"op":"act","action":{"action":"kick","name":"bob"}}"#);
        assert_eq!(serde_json::from_str::<AdminRequest>(&line).ok(), Some(req));
        assert_eq!(serde_json::from_str::<AdminRequest>(r#"{"op":"who"}"#).ok(), Some(AdminRequest::Who));
    }

    #[test]
    fn reset_codes_are_long_and_unambiguous() {
        let c = reset_code();
        assert_eq!(c.len(), 20);
        assert!(c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit()));
        assert!(!c.contains(['l', 'o', 'i', '0', '1']));
        assert_ne!(c, reset_code());
    }
}
