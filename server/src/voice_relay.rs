//! The `VoiceRelay` actor: owns the UDP socket, authenticates every voice
//! packet, and re-encrypts it for each other voice member.
//!
//! Each member may send at most 120 packets/s from its proven address, and
//! the relay authenticates at most 20 packets/s for it from any other
//! address (checked before the cryptography, so a flood of forged packets
//! carrying a known id cannot starve the others).
//!
//! It learns a member's address only from an authenticated packet, and
//! moves it only when the member echoes, from the new address, a challenge
//! sent over its TCP session (so a replayed or spoofed packet cannot
//! redirect a stream). Nothing unauthenticated ever gets a reply. A full
//! socket send buffer drops voice rather than queueing it. The member table
//! is fed by the roster.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use protocol::crypto::random_bytes;
use protocol::rate::TokenBucket;
use protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use slog::{Logger, debug, info};
use tokio::net::UdpSocket;

use crate::batch_send::{self, Batch};
use crate::messages::{AddressChallenge, RelayAdd, RelayRemove};
use crate::metrics::{Metrics, Publish};

/// Counters of what the relay dropped and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed in (authenticated voice).
    pub voice_in: u64,
    /// Packets sent out.
    pub sent: u64,
    /// Malformed or oversized packets.
    pub malformed: u64,
    /// Packets for an unknown voice id.
    pub unknown: u64,
    /// Packets that failed authentication.
    pub forged: u64,
    /// Replayed packets.
    pub replayed: u64,
    /// Authentic packets from an address not (yet) proven.
    pub unproven: u64,
    /// Packets over a member's rate (from its address or from elsewhere).
    pub over_rate: u64,
    /// Sends dropped because the socket was full.
    pub send_full: u64,
}

struct Member {
    opener: VoiceOpener,
    sealer: VoiceSealer,
    addr: Option<SocketAddr>,
    challenge: Option<(SocketAddr, [u8; 16], Instant)>,
    /// Packets from the proven address (50 voice packets/s plus keepalives
    /// in normal use).
    rate: TokenBucket,
    /// Packets from any other address, checked *before* authentication so a
    /// flood of forged packets with a known id costs little.
    stranger_rate: TokenBucket,
}

/// Packets per second a member may send from its proven address.
const MEMBER_RATE: f64 = 120.0;
/// Packets per second the relay authenticates for a member from elsewhere.
const STRANGER_RATE: f64 = 20.0;

/// The relay.
pub struct VoiceRelay {
    log: Logger,
    socket: Arc<UdpSocket>,
    roster: Recipient<AddressChallenge>,
    members: HashMap<u32, Member>,
    body: Vec<u8>,
    out: Vec<u8>,
    batch: Batch,
    stats: RelayStats,
    logged: RelayStats,
    /// Where the stats are published, and what was published so far.
    metrics: Arc<Metrics>,
    published: RelayStats,
}

impl std::fmt::Debug for VoiceRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceRelay").field("members", &self.members.len()).field("stats", &self.stats).finish()
    }
}

/// A received datagram.
type Datagram = io::Result<(Vec<u8>, SocketAddr)>;

impl VoiceRelay {
    /// A relay on `socket`, asking `roster` to deliver address challenges.
    pub fn new(log: Logger, socket: UdpSocket, roster: Recipient<AddressChallenge>) -> Self {
        Self {
            log,
            socket: Arc::new(socket),
            roster,
            members: HashMap::new(),
            body: Vec::with_capacity(voice::MAX_PACKET),
            out: Vec::with_capacity(voice::MAX_PACKET),
            batch: Batch::default(),
            stats: RelayStats::default(),
            logged: RelayStats::default(),
            metrics: Arc::default(),
            published: RelayStats::default(),
        }
    }

    /// Publishes the relay's counters into `metrics` (by default, metrics
    /// nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Adds what the relay counted since the last call to the metrics (at
    /// each scrape): the packet path itself only bumps its own plain counters.
    pub fn publish(&mut self) {
        let (s, p, m) = (self.stats, self.published, &self.metrics);
        m.voice_received.inc_by(s.voice_in - p.voice_in);
        m.voice_relayed.inc_by(s.sent - p.sent);
        for (reason, now, before) in [
            ("malformed", s.malformed, p.malformed),
            ("unknown_id", s.unknown, p.unknown),
            ("forged", s.forged, p.forged),
            ("replayed", s.replayed, p.replayed),
            ("unproven_address", s.unproven, p.unproven),
            ("over_rate", s.over_rate, p.over_rate),
            ("send_buffer_full", s.send_full, p.send_full),
        ] {
            if now > before {
                m.voice_dropped(reason, now - before);
            }
        }
        self.published = s;
    }

    /// Adds a voice member with this join's keys (its address is learnt
    /// from its first authentic packet).
    pub fn add_member(&mut self, voice_id: u32, up_key: &[u8; 32], down_key: &[u8; 32]) {
        self.members.insert(
            voice_id,
            Member {
                opener: VoiceOpener::new(up_key, Direction::Up),
                sealer: VoiceSealer::new(down_key, Direction::Down),
                addr: None,
                challenge: None,
                rate: TokenBucket::new(MEMBER_RATE, 60, Instant::now()),
                stranger_rate: TokenBucket::new(STRANGER_RATE, 20, Instant::now()),
            },
        );
    }

    /// What the relay has counted.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Handles one datagram from `from`: authenticates it and, if it is
    /// voice, relays it to every other member.
    pub fn on_packet(&mut self, packet: &[u8], from: SocketAddr) {
        let Some(header) = voice::Header::parse(packet) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(member) = self.members.get_mut(&header.id) else {
            self.stats.unknown += 1;
            return;
        };
        let now = Instant::now();
        let bucket = if member.addr == Some(from) { &mut member.rate } else { &mut member.stranger_rate };
        if bucket.take(now).is_err() {
            self.stats.over_rate += 1;
            return;
        }
        match member.opener.open(packet, &mut self.body) {
            Ok(_) => {}
            Err(voice::Drop::Forged) => return self.stats.forged += 1,
            Err(voice::Drop::Replayed) => return self.stats.replayed += 1,
            Err(voice::Drop::Malformed) => return self.stats.malformed += 1,
        }
        match member.addr {
            None => member.addr = Some(from),
            Some(known) if known == from => {}
            Some(_) => {
                self.stats.unproven += 1;
                let proven = header.kind == Kind::Proof
                    && member.challenge.is_some_and(|(addr, c, _)| addr == from && self.body == c);
                if proven {
                    debug!(self.log, "voice address moved"; "voice_id" => header.id, "addr" => %from);
                    member.addr = Some(from);
                    member.challenge = None;
                } else if member
                    .challenge
                    .is_none_or(|(addr, _, at)| addr != from || at.elapsed() > Duration::from_secs(1))
                {
                    let challenge = random_bytes::<16>();
                    member.challenge = Some((from, challenge, Instant::now()));
                    self.roster.do_send(AddressChallenge { voice_id: header.id, challenge });
                }
                return;
            }
        }
        if header.kind != Kind::Voice || voice::decode_voice_body(&self.body).is_none() {
            return;
        }
        self.stats.voice_in += 1;
        let speaker = header.id;
        // One sealed copy per listener, all sent in one system call.
        self.batch.clear();
        for (id, m) in &mut self.members {
            let Some(addr) = m.addr else { continue };
            if *id == speaker {
                continue;
            }
            m.sealer.seal(Kind::Voice, speaker, &self.body, &mut self.out);
            self.batch.push(addr, |b| b.extend_from_slice(&self.out));
        }
        let sent = batch_send::send(&self.socket, &self.batch);
        self.stats.sent += sent as u64;
        self.stats.send_full += (self.batch.len() - sent) as u64;
    }
}

impl Actor for VoiceRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.clone();
        let packets = futures_util::stream::unfold(socket, |s| async move {
            let mut buf = vec![0u8; 1500];
            let r = s.recv_from(&mut buf).await.map(|(n, from)| {
                buf.truncate(n);
                (buf, from)
            });
            Some((r, s))
        });
        ctx.add_stream(packets);
        ctx.run_interval(Duration::from_secs(10), |act, _| {
            if act.stats != act.logged {
                let s = act.stats;
                debug!(act.log, "voice relay"; "in" => s.voice_in, "sent" => s.sent, "malformed" => s.malformed,
                    "unknown" => s.unknown, "forged" => s.forged, "replayed" => s.replayed,
                    "unproven" => s.unproven, "over_rate" => s.over_rate, "send_full" => s.send_full);
                act.logged = s;
            }
        });
    }
}

impl StreamHandler<Datagram> for VoiceRelay {
    fn handle(&mut self, item: Datagram, _: &mut Context<Self>) {
        // Errors (ICMP port unreachable surfacing as ECONNREFUSED) are ignored.
        if let Ok((packet, from)) = item {
            self.on_packet(&packet, from);
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Publish> for VoiceRelay {
    type Result = ();
    fn handle(&mut self, _: Publish, _: &mut Context<Self>) {
        self.publish();
    }
}

impl Handler<RelayAdd> for VoiceRelay {
    type Result = ();
    fn handle(&mut self, msg: RelayAdd, _: &mut Context<Self>) {
        info!(self.log, "voice member added"; "voice_id" => msg.voice_id, "members" => self.members.len() + 1);
        self.add_member(msg.voice_id, &msg.up_key, &msg.down_key);
    }
}

impl Handler<RelayRemove> for VoiceRelay {
    type Result = ();
    fn handle(&mut self, msg: RelayRemove, _: &mut Context<Self>) {
        if self.members.remove(&msg.voice_id).is_some() {
            info!(self.log, "voice member removed"; "voice_id" => msg.voice_id, "members" => self.members.len());
        }
    }
}
