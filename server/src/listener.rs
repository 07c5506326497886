//! The `Listener` actor: accepts TCP connections, starts one `Session` per
//! connection on a pool of worker arbiters (one per core), and keeps the
//! [`Gate`] that bounds the connections not yet logged in: sessions ask it
//! before they cost a signature or check a password, and tell it when they
//! log in or close.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{Logger, debug, info, warn};
use tokio::net::{TcpListener, TcpStream};

use crate::gate::{Backoff, ConnId, Gate, GateConfig, Hold};
use crate::messages::{
    AccountAttempt, AccountChecked, Authorize, GateHandle, PasswordAttempt, PasswordChecked, Release, ToSession,
};
use crate::roster::Roster;
use crate::session::{Session, SessionConfig};
use crate::signer::Signer;

/// The connections whose sockets are still open: counted (for metrics) and
/// awaited at shutdown. Every connection holds a [`CountGuard`] until its
/// socket is closed; the receiver [`OpenConnections::new`] returns yields
/// `None` once this handle and every guard are gone — a completion channel,
/// nothing polled.
#[derive(Debug, Clone)]
pub struct OpenConnections {
    count: Arc<AtomicUsize>,
    done: tokio::sync::mpsc::Sender<()>,
}

impl OpenConnections {
    /// No connection yet, and the receiver that learns when all are closed.
    pub fn new() -> (Self, tokio::sync::mpsc::Receiver<()>) {
        let (done, all_closed) = tokio::sync::mpsc::channel(1);
        (Self { count: Arc::new(AtomicUsize::new(0)), done }, all_closed)
    }

    /// The number of open connections, shared.
    pub fn count(&self) -> Arc<AtomicUsize> {
        self.count.clone()
    }

    /// One more open connection, until the guard is dropped.
    pub fn guard(&self) -> CountGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        CountGuard { count: self.count.clone(), _done: self.done.clone() }
    }
}

/// One open connection (see [`OpenConnections`]).
#[derive(Debug)]
pub struct CountGuard {
    count: Arc<AtomicUsize>,
    _done: tokio::sync::mpsc::Sender<()>,
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections.
pub struct Listener {
    log: Logger,
    listener: Option<TcpListener>,
    cfg: Arc<SessionConfig>,
    roster: Addr<Roster>,
    signer: Addr<Signer>,
    workers: Vec<ArbiterHandle>,
    next_worker: usize,
    next_id: u64,
    gate: Gate,
    /// The sessions the gate holds, to close the ones it pushes out.
    sessions: HashMap<ConnId, Recipient<ToSession>>,
    open: OpenConnections,
}

/// The "address" the per-address caps count: an IPv4 address, or an IPv6
/// /64 (one host usually holds a whole /64); IPv4-mapped IPv6 counts as IPv4.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !0xFFFF_FFFF_FFFF_FFFFu128)),
        },
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("next_id", &self.next_id).field("gate", &self.gate.counts()).finish()
    }
}

impl Listener {
    /// A listener on an already bound socket.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Logger,
        listener: TcpListener,
        cfg: Arc<SessionConfig>,
        roster: Addr<Roster>,
        signer: Addr<Signer>,
        workers: Vec<ArbiterHandle>,
        gate: GateConfig,
        open: OpenConnections,
    ) -> Self {
        Self {
            log,
            listener: Some(listener),
            cfg,
            roster,
            signer,
            workers,
            next_worker: 0,
            next_id: 1,
            gate: Gate::new(gate),
            sessions: HashMap::new(),
            open,
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Sessions ask the gate through this mailbox: it must not be the
        // bottleneck of a connection flood.
        ctx.set_mailbox_capacity(4096);
        let Some(listener) = self.listener.take() else {
            return ctx.stop();
        };
        let accepts = futures_util::stream::unfold(listener, |l| async move {
            let r = l.accept().await;
            if r.is_err() {
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some((r, l))
        });
        ctx.add_stream(accepts);
    }
}

impl StreamHandler<io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, item: io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        let (stream, peer) = match item {
            Ok(x) => x,
            Err(e) => return warn!(self.log, "accept failed"; "error" => %e),
        };
        let id = self.next_id;
        self.next_id += 1;
        let group = address_group(peer.ip());
        for victim in self.gate.admit(id, group) {
            if victim == id {
                // Every place is held by a login in progress: this one goes.
                debug!(self.log, "no place for a new connection; closing it"; "peer" => %peer);
                return;
            }
            debug!(self.log, "too many connections waiting for their key check; one gives way";
                "session" => victim, "for" => id);
            if let Some(s) = self.sessions.remove(&victim) {
                s.do_send(ToSession::Evict);
            }
        }
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else {
            self.gate.release(id);
            return;
        };
        let open = self.open.guard();
        let me = ctx.address();
        let gate = GateHandle {
            id,
            group,
            authorize: me.clone().recipient(),
            password: me.clone().recipient(),
            password_checked: me.clone().recipient(),
            account: me.clone().recipient(),
            account_checked: me.clone().recipient(),
            release: me.recipient(),
        };
        let (log, cfg, roster, signer) = (self.log.clone(), self.cfg.clone(), self.roster.clone(), self.signer.clone());
        let build = move |_: &mut Context<Session>| {
            // Registers the socket with this worker's own reactor; a
            // failure leaves no stream and the session stops at once.
            let stream = TcpStream::from_std(std_stream).ok();
            Session::new(id, stream, &log, cfg, roster, signer, gate, open)
        };
        let addr = if self.workers.is_empty() {
            Session::create(build)
        } else {
            let worker = &self.workers[self.next_worker % self.workers.len()];
            self.next_worker += 1;
            Session::start_in_arbiter(worker, build)
        };
        self.sessions.insert(id, addr.recipient());
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Authorize> for Listener {
    type Result = MessageResult<Authorize>;
    fn handle(&mut self, msg: Authorize, _: &mut Context<Self>) -> Self::Result {
        let r = match self.gate.authorize(msg.id, Instant::now()) {
            Ok(pushed) => {
                if let Some(victim) = pushed {
                    debug!(self.log, "logins in progress full; the address holding the most gives way";
                        "session" => victim, "for" => msg.id);
                    if let Some(s) = self.sessions.remove(&victim) {
                        s.do_send(ToSession::Evict);
                    }
                }
                Ok(())
            }
            Err(e) => {
                if let Hold::RetryAfter(wait) = e {
                    debug!(self.log, "key holder asked to wait"; "session" => msg.id, "retry_after_ms" => wait.as_millis());
                }
                Err(e)
            }
        };
        MessageResult(r)
    }
}

impl Handler<Release> for Listener {
    type Result = ();
    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        self.gate.release(msg.0);
        self.sessions.remove(&msg.0);
    }
}

impl Handler<PasswordAttempt> for Listener {
    type Result = MessageResult<PasswordAttempt>;
    fn handle(&mut self, msg: PasswordAttempt, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.gate.password_attempt(msg.0, Instant::now()))
    }
}

impl Handler<PasswordChecked> for Listener {
    type Result = ();
    fn handle(&mut self, msg: PasswordChecked, _: &mut Context<Self>) {
        match self.gate.password_checked(msg.group, msg.right, Instant::now()) {
            // Once per address and window at info; the rest at debug.
            Backoff::Started(wait) => {
                info!(self.log, "wrong passwords from one address; it now waits between tries";
                    "address" => %msg.group, "wait_ms" => wait.as_millis());
            }
            Backoff::Extended(wait) => {
                debug!(self.log, "wrong passwords: longer wait"; "address" => %msg.group, "wait_ms" => wait.as_millis());
            }
            Backoff::None => {}
        }
    }
}

impl Handler<AccountAttempt> for Listener {
    type Result = MessageResult<AccountAttempt>;
    fn handle(&mut self, msg: AccountAttempt, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.gate.account_attempt(msg.group, &msg.account, Instant::now()))
    }
}

impl Handler<AccountChecked> for Listener {
    type Result = ();
    fn handle(&mut self, msg: AccountChecked, _: &mut Context<Self>) {
        if let Backoff::Started(wait) = self.gate.account_checked(msg.group, &msg.account, msg.right, Instant::now()) {
            info!(self.log, "wrong account passwords from one address; it now waits between tries";
                "address" => %msg.group, "wait_ms" => wait.as_millis());
        }
    }
}

/// Stop accepting connections (shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Handler<StopAccepting> for Listener {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_group(a), address_group(b));
        assert_ne!(address_group(a), address_group(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(address_group(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }
}
