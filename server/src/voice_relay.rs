//! The `VoiceRelay` actor: owns the UDP socket, authenticates every voice
//! packet, and re-encrypts it for each other voice member.
//!
//! Every packet is authenticated (and replay-checked) before anything else
//! is done for it, so a keyless flood carrying a member's voice id costs
//! one AEAD check per packet and touches none of the member's state. Each
//! member may then have at most 120 authentic packets/s taken.
//!
//! Addresses are proven by return routability
//! ([`protocol::voice::path`]): an authentic packet from an address the
//! member has not proven draws one challenge, sealed under the member's
//! down key and sent there over UDP (never larger than the packet that drew
//! it), and the relay sends to that address only after the member echoes
//! the challenge from it. A proven address silent for a few keepalive
//! intervals is no longer sent to. So a replayed or forged-source packet
//! cannot redirect a stream or aim it at a third party, and nothing
//! unauthenticated ever gets a reply. Voice from an authentic packet is
//! relayed whatever address it came from (it goes only to proven
//! addresses). A full socket send buffer drops voice rather than queueing
//! it. The member table is fed by the roster.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use protocol::crypto::random_bytes;
use protocol::rate::TokenBucket;
use protocol::voice::path::{PathCheck, PathVerdict};
use protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use slog::{Logger, debug, info};
use tokio::net::UdpSocket;

use crate::batch_send::{self, Batch};
use crate::messages::{RelayAdd, RelayRemove};
use crate::metrics::{Metrics, Publish};

/// Counters of what the relay dropped and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed in (authenticated voice).
    pub voice_in: u64,
    /// Packets sent out (relayed voice and challenges).
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
    /// Address challenges sent.
    pub challenges: u64,
    /// Addresses proven by an echoed challenge.
    pub moved: u64,
    /// Authentic packets over a member's rate.
    pub over_rate: u64,
    /// Sends dropped because the socket was full.
    pub send_full: u64,
}

struct Member {
    /// The room whose voice it is in: voice goes only to the same room's members.
    channel: u32,
    opener: VoiceOpener,
    sealer: VoiceSealer,
    /// Where the member may be sent to (return routability).
    path: PathCheck,
    /// Authentic packets (50 voice packets/s plus keepalives in normal use).
    rate: TokenBucket,
}

/// Authentic packets per second a member may have taken.
const MEMBER_RATE: f64 = 120.0;

/// The relay.
pub struct VoiceRelay {
    log: Logger,
    socket: Arc<UdpSocket>,
    members: HashMap<u32, Member>,
    /// Voice ids per room (`Member::channel`).
    channels: HashMap<u32, Vec<u32>>,
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
    /// A relay on `socket`.
    pub fn new(log: Logger, socket: UdpSocket) -> Self {
        Self {
            log,
            socket: Arc::new(socket),
            members: HashMap::new(),
            channels: HashMap::new(),
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

    /// Adds a voice member of room `channel` with this join's keys (no
    /// address yet: it must prove one).
    pub fn add_member(&mut self, voice_id: u32, channel: u32, up_key: &[u8; 32], down_key: &[u8; 32]) {
        self.remove_member(voice_id);
        self.channels.entry(channel).or_default().push(voice_id);
        self.members.insert(
            voice_id,
            Member {
                channel,
                opener: VoiceOpener::new(up_key, Direction::Up),
                sealer: VoiceSealer::new(down_key, Direction::Down),
                path: PathCheck::new(),
                rate: TokenBucket::new(MEMBER_RATE, 60, Instant::now()),
            },
        );
    }

    /// Forgets a voice member; whether it was one.
    pub fn remove_member(&mut self, voice_id: u32) -> bool {
        let Some(m) = self.members.remove(&voice_id) else { return false };
        if let Some(ids) = self.channels.get_mut(&m.channel) {
            ids.retain(|id| *id != voice_id);
            if ids.is_empty() {
                self.channels.remove(&m.channel);
            }
        }
        true
    }

    /// What the relay has counted.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Handles one datagram from `from`: authenticates it, challenges an
    /// unproven address, and relays voice to every other member.
    pub fn on_packet(&mut self, packet: &[u8], from: SocketAddr) {
        let Some(header) = voice::Header::parse(packet) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(member) = self.members.get_mut(&header.id) else {
            self.stats.unknown += 1;
            return;
        };
        // Authentication first: nothing below runs for a packet without
        // the member's key, so a keyless flood changes no member's state.
        match member.opener.open(packet, &mut self.body) {
            Ok(_) => {}
            Err(voice::DropReason::Forged) => return self.stats.forged += 1,
            Err(voice::DropReason::Replayed) => return self.stats.replayed += 1,
            Err(voice::DropReason::Malformed) => return self.stats.malformed += 1,
        }
        let now = Instant::now();
        if member.rate.take(now).is_err() {
            self.stats.over_rate += 1;
            return;
        }
        match member.path.on_authentic(from, header.kind, &self.body, packet.len(), now, random_bytes) {
            PathVerdict::Proven => {}
            PathVerdict::Moved => {
                debug!(self.log, "voice address proven"; "voice_id" => header.id, "addr" => %from);
                self.stats.moved += 1;
                return;
            }
            PathVerdict::Challenge(challenge) => {
                self.stats.unproven += 1;
                // Sealed for the member alone, with its down counter; no
                // larger than the packet that drew it (`PathCheck`).
                member.sealer.seal(Kind::Challenge, header.id, &challenge, &mut self.out);
                debug_assert!(self.out.len() <= packet.len());
                self.batch.clear();
                self.batch.push(from, |b| b.extend_from_slice(&self.out));
                if batch_send::send(&self.socket, &self.batch) == 1 {
                    self.stats.challenges += 1;
                    self.stats.sent += 1;
                } else {
                    self.stats.send_full += 1;
                }
            }
            PathVerdict::Unproven => self.stats.unproven += 1,
        }
        if header.kind != Kind::Voice || voice::decode_voice_body(&self.body).is_none() {
            return;
        }
        self.stats.voice_in += 1;
        let speaker = header.id;
        let channel = member.channel;
        // One sealed copy per listener of the speaker's room with a proven
        // address, all sent in one system call.
        self.batch.clear();
        for id in self.channels.get(&channel).map_or(&[][..], Vec::as_slice) {
            if *id == speaker {
                continue;
            }
            let Some(m) = self.members.get_mut(id) else { continue };
            let Some(addr) = m.path.destination(now) else { continue };
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
                    "unproven" => s.unproven, "challenges" => s.challenges, "moved" => s.moved,
                    "over_rate" => s.over_rate, "send_full" => s.send_full);
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
        self.add_member(msg.voice_id, msg.channel, &msg.up_key, &msg.down_key);
    }
}

impl Handler<RelayRemove> for VoiceRelay {
    type Result = ();
    fn handle(&mut self, msg: RelayRemove, _: &mut Context<Self>) {
        if self.remove_member(msg.voice_id) {
            info!(self.log, "voice member removed"; "voice_id" => msg.voice_id, "members" => self.members.len());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::UdpSocket as StdSocket;

    use super::*;

    const ID: u32 = 0x5EC0_0001;
    const UP: [u8; 32] = [1; 32];
    const DOWN: [u8; 32] = [2; 32];

    /// A relay with one member, on loopback, and the member's sealer.
    fn relay() -> (actix_rt::SystemRunner, VoiceRelay, VoiceSealer) {
        let system = actix_rt::System::new();
        let mut relay = system.block_on(async {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            VoiceRelay::new(Logger::root(slog::Discard, slog::o!()), socket)
        });
        relay.add_member(ID, 1, &UP, &DOWN);
        (system, relay, VoiceSealer::new(&UP, Direction::Up))
    }

    fn socket() -> (StdSocket, SocketAddr) {
        let s = StdSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let a = s.local_addr().expect("addr");
        (s, a)
    }

    fn keepalive(sealer: &mut VoiceSealer) -> Vec<u8> {
        let mut pkt = Vec::new();
        sealer.seal(Kind::Keepalive, ID, &[0; voice::KEEPALIVE_PAD], &mut pkt);
        pkt
    }

    #[test]
    fn an_authentic_packet_from_an_unproven_address_draws_one_sealed_challenge() {
        let (_system, mut relay, mut sealer) = relay();
        let (victim, at) = socket();
        let pkt = keepalive(&mut sealer);
        relay.on_packet(&pkt, at);
        let mut buf = [0u8; 2048];
        let n = victim.recv(&mut buf).expect("a challenge");
        assert!(n <= pkt.len());
        let mut body = Vec::new();
        let h = VoiceOpener::new(&DOWN, Direction::Down).open(&buf[..n], &mut body).expect("sealed down");
        assert_eq!((h.kind, h.id, body.len()), (Kind::Challenge, ID, voice::CHALLENGE_LEN));
        let s = relay.stats();
        assert_eq!((s.challenges, s.sent, s.moved), (1, 1, 0));
        // The same packet again (a replay) gets nothing.
        relay.on_packet(&pkt, at);
        assert_eq!((relay.stats().replayed, relay.stats().challenges), (1, 1));
        // The echo from there proves it.
        let mut proof = Vec::new();
        sealer.seal(Kind::Proof, ID, &body, &mut proof);
        relay.on_packet(&proof, at);
        assert_eq!(relay.stats().moved, 1);
    }

    #[test]
    fn keyless_packets_are_dropped_before_any_state_or_budget_is_touched() {
        let (_system, mut relay, mut sealer) = relay();
        let (_s, from) = socket();
        // Far more than the member's budget, all without the key.
        for i in 0..1000u64 {
            let mut pkt = vec![Kind::Keepalive as u8];
            pkt.extend_from_slice(&ID.to_be_bytes());
            pkt.extend_from_slice(&i.to_be_bytes());
            pkt.extend_from_slice(&[0x5A; 32]);
            relay.on_packet(&pkt, from);
        }
        let s = relay.stats();
        assert_eq!((s.forged, s.over_rate, s.challenges, s.sent), (1000, 0, 0, 0));
        // The member is still challenged at once.
        let (real, at) = socket();
        relay.on_packet(&keepalive(&mut sealer), at);
        let mut buf = [0u8; 2048];
        assert!(real.recv(&mut buf).is_ok(), "the member's own packet was not answered");
    }

    #[test]
    fn voice_goes_only_to_proven_addresses() {
        let (_system, mut relay, mut speaker) = relay();
        const LISTENER: u32 = 7;
        relay.add_member(LISTENER, 1, &[3; 32], &[4; 32]);
        let mut listener = VoiceSealer::new(&[3; 32], Direction::Up);
        let (l_sock, l_at) = socket();
        let mut ka = Vec::new();
        listener.seal(Kind::Keepalive, LISTENER, &[0; voice::KEEPALIVE_PAD], &mut ka);
        relay.on_packet(&ka, l_at);
        let mut buf = [0u8; 2048];
        let n = l_sock.recv(&mut buf).expect("a challenge");
        let mut opener = VoiceOpener::new(&[4; 32], Direction::Down);
        let mut challenge = Vec::new();
        opener.open(&buf[..n], &mut challenge).expect("opens");
        // Voice before the echo goes nowhere.
        let (mut body, mut pkt) = (Vec::new(), Vec::new());
        voice::encode_voice_body(0, false, &[b"early"], &mut body);
        speaker.seal(Kind::Voice, ID, &body, &mut pkt);
        relay.on_packet(&pkt, socket().1);
        assert_eq!((relay.stats().voice_in, relay.stats().sent), (1, 1), "only the challenge went out");
        // After it, the listener gets the speaker's voice, counters continuing.
        let mut proof = Vec::new();
        listener.seal(Kind::Proof, LISTENER, &challenge, &mut proof);
        relay.on_packet(&proof, l_at);
        voice::encode_voice_body(1, false, &[b"heard"], &mut body);
        speaker.seal(Kind::Voice, ID, &body, &mut pkt);
        relay.on_packet(&pkt, socket().1);
        let n = l_sock.recv(&mut buf).expect("voice");
        let mut got = Vec::new();
        let h = opener.open(&buf[..n], &mut got).expect("opens");
        assert_eq!((h.kind, h.id, h.counter), (Kind::Voice, ID, 1));
        assert_eq!(voice::decode_voice_body(&got).expect("voice").frames, vec![&b"heard"[..]]);
    }
}
