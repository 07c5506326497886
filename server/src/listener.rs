//! The `Listener` actor: accepts TCP connections and starts one `Session`
//! per connection on a pool of worker arbiters (one per core), capping the
//! connections still in the handshake.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{Logger, debug, warn};
use tokio::net::{TcpListener, TcpStream};

use crate::messages::ToSession;
use crate::roster::Roster;
use crate::session::{CountGuard, Session, SessionConfig};
use crate::signer::Signer;

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
    max_handshakes: usize,
    max_handshakes_per_address: usize,
    pending: Arc<AtomicUsize>,
    /// Pending handshakes per source address, and that address's recent
    /// connections (oldest first).
    by_ip: HashMap<IpAddr, PerAddress>,
    /// Recent connections, oldest first, for evicting stale handshakes.
    recent: VecDeque<(Instant, Recipient<ToSession>)>,
    open: Arc<AtomicUsize>,
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

/// One source address's handshakes.
#[derive(Default)]
struct PerAddress {
    pending: Arc<AtomicUsize>,
    recent: VecDeque<(Instant, Recipient<ToSession>)>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("next_id", &self.next_id).finish_non_exhaustive()
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
        max_handshakes: (usize, usize),
        open: Arc<AtomicUsize>,
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
            max_handshakes: max_handshakes.0,
            max_handshakes_per_address: max_handshakes.1,
            pending: Arc::new(AtomicUsize::new(0)),
            by_ip: HashMap::new(),
            recent: VecDeque::new(),
            open,
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
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
    fn handle(&mut self, item: io::Result<(TcpStream, SocketAddr)>, _: &mut Context<Self>) {
        let (stream, peer) = match item {
            Ok(x) => x,
            Err(e) => return warn!(self.log, "accept failed"; "error" => %e),
        };
        // Entries past the handshake deadline have logged in or are gone.
        let deadline = self.cfg.handshake_timeout;
        while self.recent.front().is_some_and(|(at, _)| at.elapsed() > deadline) {
            self.recent.pop_front();
        }
        // One address may only hold so many handshakes: beyond that its own
        // oldest gives way, so a flood from one place churns its own
        // connections and cannot push anyone else's out.
        if self.by_ip.len() > 4 * self.max_handshakes {
            self.by_ip.retain(|_, a| a.pending.load(Ordering::SeqCst) > 0);
        }
        let group = address_group(peer.ip());
        let here = self.by_ip.entry(group).or_default();
        while here.recent.front().is_some_and(|(at, _)| at.elapsed() > deadline) {
            here.recent.pop_front();
        }
        let over_address = here.pending.load(Ordering::SeqCst) >= self.max_handshakes_per_address;
        if over_address {
            debug!(self.log, "too many pending handshakes from one address; evicting its oldest"; "peer" => %peer);
            if let Some((_, oldest)) = here.recent.pop_front() {
                oldest.do_send(ToSession::Evict);
            }
        }
        let here_pending = here.pending.clone();
        if !over_address && self.pending.load(Ordering::SeqCst) >= self.max_handshakes {
            // Full: the oldest pending handshake gives way, so a flood of idle
            // connections cannot lock newcomers out.
            debug!(self.log, "too many pending handshakes; evicting the oldest"; "peer" => %peer);
            if let Some((_, oldest)) = self.recent.pop_front() {
                oldest.do_send(ToSession::Evict);
            }
        }
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let pending = vec![CountGuard::new(&self.pending), CountGuard::new(&here_pending)];
        let open = CountGuard::new(&self.open);
        let (log, cfg, roster, signer) = (self.log.clone(), self.cfg.clone(), self.roster.clone(), self.signer.clone());
        let build = move |_: &mut Context<Session>| {
            // Registers the socket with this worker's own reactor; a
            // failure leaves no stream and the session stops at once.
            let stream = TcpStream::from_std(std_stream).ok();
            Session::new(id, stream, &log, cfg, roster, signer, pending, open)
        };
        let addr = if self.workers.is_empty() {
            Session::create(build)
        } else {
            let worker = &self.workers[self.next_worker % self.workers.len()];
            self.next_worker += 1;
            Session::start_in_arbiter(worker, build)
        };
        let recipient: Recipient<ToSession> = addr.recipient();
        if let Some(a) = self.by_ip.get_mut(&group) {
            a.recent.push_back((Instant::now(), recipient.clone()));
        }
        self.recent.push_back((Instant::now(), recipient));
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
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
