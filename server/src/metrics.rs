//! Prometheus metrics: one [`Metrics`] handle shared by the actors, and the
//! opt-in scrape listener (`metrics_bind`, off by default).
//!
//! Counters are `prometheus-client` atomics: an increment is one relaxed
//! atomic add, taken without a lock, so the hot paths (fan-out, voice
//! relay) pay nothing more. Labelled counters (handshake outcomes, voice
//! drop reasons) are looked up once here, not per event. Gauges of state
//! the actors own (users, voice members, queue depths) are read when
//! scraped, through a [`Snapshot`] the roster answers, so nothing is
//! counted twice or drifts.
//!
//! The scrape listener speaks just enough HTTP/1.1 for Prometheus:
//! `GET /metrics` answers the OpenMetrics text that `prometheus-client`
//! encodes; anything else is a 404. It logs nothing from the request.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use slog::{Logger, debug, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A label set of one `(name, value)` pair.
type Label = [(&'static str, &'static str); 1];

/// How a connection's way in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in.
    Ok,
    /// Failed the pre-shared key check (or sent a first frame no client hello has).
    WrongKey,
    /// Wrong or missing server password.
    BadPassword,
    /// Told to retry later (the login gate, password back-off).
    RateLimited,
    /// Refused for another reason (name taken, server full, version…).
    Refused,
}

impl Outcome {
    /// Every outcome, for the labels a scrape always shows.
    const ALL: [Outcome; 5] =
        [Outcome::Ok, Outcome::WrongKey, Outcome::BadPassword, Outcome::RateLimited, Outcome::Refused];

    /// The `outcome` label's value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::WrongKey => "wrong_key",
            Outcome::BadPassword => "bad_password",
            Outcome::RateLimited => "rate_limited",
            Outcome::Refused => "refused",
        }
    }
}

/// Why the voice relay dropped a packet (the `reason` label).
pub const VOICE_DROP_REASONS: [&str; 7] =
    ["malformed", "unknown_id", "forged", "replayed", "unproven_address", "over_rate", "send_buffer_full"];

/// The server's metrics. Cheap to share (`Arc<Metrics>`); every field is a
/// handle onto the registered atomic.
pub struct Metrics {
    registry: Registry,
    /// Chat messages accepted and broadcast.
    pub messages: Counter,
    /// Chat messages queued for a recipient (one per recipient).
    pub deliveries: Counter,
    /// TCP bytes read from clients (frames, as on the wire).
    pub bytes_received: Counter,
    /// TCP bytes written to clients.
    pub bytes_sent: Counter,
    handshakes: [Counter; 5],
    kicks: Family<[(&'static str, String); 1], Counter>,
    /// Authentic voice packets received from speakers.
    pub voice_received: Counter,
    /// Voice packets sent to listeners (one per listener and packet).
    pub voice_relayed: Counter,
    voice_dropped: [Counter; 7],
    /// Seconds from queuing a message's write (a room with history, a
    /// private message between accounts, an edit or delete) to the store's
    /// answer: group commit and fdatasync included.
    pub store_writes: Histogram,
    users: Gauge,
    voice_members: Gauge,
    rooms: Gauge,
    queued: Gauge,
    queued_max: Gauge,
    connections: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("messages", &self.messages.get()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all at zero, registered under the `chatroom` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("chatroom");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let users = gauge(&mut r, "users", "Users logged in");
        let voice_members = gauge(&mut r, "voice_members", "Users in voice");
        let rooms = gauge(&mut r, "rooms", "Rooms");
        let connections = gauge(&mut r, "connections", "TCP connections open (logged in or not)");
        let queued = gauge(&mut r, "outbound_queued", "Messages queued for all sessions, not yet written");
        let queued_max = gauge(&mut r, "outbound_queue_max", "Deepest outbound queue of one session");
        let messages = counter(&mut r, "messages", "Chat messages accepted and broadcast");
        let deliveries = counter(&mut r, "deliveries", "Chat messages queued for a recipient");
        let bytes_received = counter(&mut r, "received_bytes", "TCP bytes read from clients");
        let bytes_sent = counter(&mut r, "sent_bytes", "TCP bytes written to clients");
        let handshakes_family = Family::<Label, Counter>::default();
        r.register("handshakes", "Connections by how their way in ended", handshakes_family.clone());
        let handshakes = Outcome::ALL.map(|o| handshakes_family.get_or_create_owned(&[("outcome", o.label())]));
        let kicks = Family::<[(&'static str, String); 1], Counter>::default();
        r.register("kicks", "Sessions ended for cause, by cause", kicks.clone());
        {
            use protocol::message::DisconnectCause as C;
            for cause in
                [C::Flooding, C::SlowReader, C::IdleTimeout, C::ProtocolViolation, C::Kicked, C::Banned, C::KeyRevoked]
            {
                kicks.get_or_create_owned(&[("cause", snake_case(&format!("{cause:?}")))]);
            }
        }
        // 0.5 ms to 4 s.
        let store_writes = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        r.register(
            "store_write_seconds",
            "Time from queuing a message's write to the store's answer (durable or failed)",
            store_writes.clone(),
        );
        let voice_received = counter(&mut r, "voice_received_packets", "Authentic voice packets from speakers");
        let voice_relayed = counter(&mut r, "voice_relayed_packets", "Voice packets sent to listeners");
        let dropped_family = Family::<Label, Counter>::default();
        r.register("voice_dropped_packets", "Voice packets dropped, by reason", dropped_family.clone());
        let voice_dropped = VOICE_DROP_REASONS.map(|reason| dropped_family.get_or_create_owned(&[("reason", reason)]));
        Self {
            registry: r,
            messages,
            deliveries,
            bytes_received,
            bytes_sent,
            handshakes,
            kicks,
            voice_received,
            voice_relayed,
            voice_dropped,
            store_writes,
            users,
            voice_members,
            rooms,
            queued,
            queued_max,
            connections,
        }
    }

    /// Counts one connection's way in ending with `outcome`.
    pub fn handshake(&self, outcome: Outcome) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.handshakes[i].inc();
    }

    /// How many ways in ended with `outcome`.
    pub fn handshakes(&self, outcome: Outcome) -> u64 {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.handshakes[i].get()
    }

    /// Counts a session ended for `cause` (rare, so the label is made here:
    /// `SlowReader` becomes `slow_reader`).
    pub fn kick(&self, cause: impl fmt::Debug) {
        let label = snake_case(&format!("{cause:?}"));
        self.kicks.get_or_create(&[("cause", label)]).inc();
    }

    /// Counts voice packets dropped for `reason` (one of [`VOICE_DROP_REASONS`]).
    pub fn voice_dropped(&self, reason: &str, n: u64) {
        if let Some(i) = VOICE_DROP_REASONS.iter().position(|r| *r == reason) {
            self.voice_dropped[i].inc_by(n);
        }
    }

    /// Sets the gauges read at scrape time.
    pub fn set_snapshot(&self, s: Snapshot, connections: usize) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.users.set(g(s.users));
        self.voice_members.set(g(s.voice_members));
        self.rooms.set(g(s.rooms));
        self.queued.set(g(s.queued));
        self.queued_max.set(g(s.queued_max));
        self.connections.set(g(connections));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a `String` cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `SlowReader` → `slow_reader`.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().take_while(|c| c.is_ascii_alphanumeric()).enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// State the roster owns, read at scrape time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Users logged in.
    pub users: usize,
    /// Users in voice.
    pub voice_members: usize,
    /// Messages queued for all sessions.
    pub queued: usize,
    /// The deepest one session's queue.
    pub queued_max: usize,
    /// Rooms.
    pub rooms: usize,
}

/// Asks the roster for a [`Snapshot`].
#[derive(Debug, Message)]
#[rtype(result = "Snapshot")]
pub struct TakeSnapshot;

/// Asks the voice relay to add what it counted to the metrics.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish;

/// Whom a scrape asks for fresh figures.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The roster: users, voice members, queue depths.
    pub roster: Recipient<TakeSnapshot>,
    /// The voice relay: packets relayed and dropped.
    pub relay: Option<Recipient<Publish>>,
    /// Connections open.
    pub open: Arc<AtomicUsize>,
}

/// Longest a scrape request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until the task is dropped. Before
/// each answer it refreshes the figures from `sources`.
pub async fn serve(log: Logger, listener: TcpListener, metrics: Arc<Metrics>, sources: Sources) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(log, "metrics: accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (log, metrics, sources) = (log.clone(), metrics.clone(), sources.clone());
        actix_rt::spawn(async move {
            if let Err(e) = answer(stream, &metrics, &sources).await {
                debug!(log, "metrics: scrape failed"; "error" => %e);
            }
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, metrics: &Metrics, sources: &Sources) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    let (status, content_type, body) = match route(&head) {
        Route::Metrics => {
            if let Some(relay) = &sources.relay {
                let _ = relay.send(Publish).await;
            }
            if let Ok(snapshot) = sources.roster.send(TakeSnapshot).await {
                metrics.set_snapshot(snapshot, sources.open.load(Ordering::Relaxed));
            }
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.encode())
        }
        Route::NotFound => ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics\n".to_owned()),
        Route::BadMethod => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET only\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(response.as_bytes()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "reader too slow"))??;
    let _ = stream.shutdown().await;
    Ok(())
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
}

/// Routes on the request line alone.
fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => Route::Metrics,
        (b"GET", _) => Route::NotFound,
        _ => Route::BadMethod,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b""), Route::BadMethod);
    }

    #[test]
    fn encodes_counters_with_their_labels() {
        let m = Metrics::new();
        m.messages.inc_by(3);
        m.handshake(Outcome::WrongKey);
        m.handshake(Outcome::Ok);
        m.handshake(Outcome::Ok);
        m.kick(protocol::message::DisconnectCause::SlowReader);
        m.voice_dropped("forged", 2);
        m.set_snapshot(Snapshot { users: 2, voice_members: 1, queued: 5, queued_max: 4, rooms: 1 }, 3);
        let text = m.encode();
        for line in [
            "chatroom_messages_total 3",
            "chatroom_handshakes_total{outcome=\"ok\"} 2",
            "chatroom_handshakes_total{outcome=\"wrong_key\"} 1",
            "chatroom_handshakes_total{outcome=\"rate_limited\"} 0",
            "chatroom_kicks_total{cause=\"slow_reader\"} 1",
            "chatroom_kicks_total{cause=\"flooding\"} 0",
            "chatroom_voice_dropped_packets_total{reason=\"forged\"} 2",
            "chatroom_users 2",
            "chatroom_outbound_queue_max 4",
            "chatroom_connections 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn causes_become_snake_case_labels() {
        assert_eq!(snake_case("SlowReader"), "slow_reader");
        assert_eq!(snake_case("Flooding"), "flooding");
        assert_eq!(snake_case("ProtocolViolation { x: 1 }"), "protocol_violation");
    }
}
