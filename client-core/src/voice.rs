//! The voice engine of one voice join: three threads around one UDP socket.
//!
//! - **send**: capture ring → 48 kHz mono → [`SendPipeline`] (echo
//!   cancellation against the mix's reference frames that have started
//!   playing by then, [`reference`]) → seal → UDP;
//!   keepalives (padded, see [`voice::KEEPALIVE_PAD`]) while silent; applies
//!   loss feedback to the encoder.
//! - **receive**: UDP → open (replay window) → the speaker's jitter buffer;
//!   the relay's address challenge is echoed at once from this socket (the
//!   one it reached), which proves our address ([`voice::path`]).
//! - **mix**: every 20 ms, each speaker's next frame (decoded, recovered by
//!   redundancy or FEC, or concealed) → mix → limiter → playback ring; loss
//!   reports for the speakers and talking indicators go to the connection;
//!   with echo cancellation on, each mixed frame also goes to the send
//!   thread as the reference, stamped with when it reaches the device.
//!
//! None of these is a real-time audio callback (those only copy to and from
//! the rings), so they may lock the speakers table, which only they share.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::crypto::SessionKeys;
use protocol::message::ClientMessage;
use protocol::voice::{self, Direction, Kind, VoiceOpener, VoiceSealer};
use tokio::sync::mpsc;

use crate::audio::aec::reference::{self, Feed, Tap};
use crate::audio::decoder::Decoder;
use crate::audio::device::{Capture, Input, Output, Playback, open_capture_or_fallback, open_playback_or_fallback};
use crate::audio::jitter::{JitterBuffer, JitterStats, Play};
use crate::audio::mixer::{Limiter, add};
use crate::audio::pipeline::{PushToTalk, SendConfig, SendPipeline};
use crate::audio::resample::{Resampler, Upsampler};
use crate::audio::room::{self, Room};
use crate::audio::{AudioError, FRAME, RATE};
use crate::client::Event;
use crate::link::{LinkError, Outbound};

/// How often the send thread looks for captured audio.
const SEND_POLL: Duration = Duration::from_millis(1);

/// How often listeners report the loss they see to each speaker.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Keepalives go this often (instead of every
/// [`voice::path::KEEPALIVE_INTERVAL`]) while our address may be unproven:
/// for [`PROBE_AT_JOIN`] after joining and [`PROBE_AFTER_CHALLENGE`] after
/// answering a challenge. A lost keepalive, challenge or echo then costs
/// 100 ms of the room's voice instead of 500 (measured: with 10 % loss each
/// way, half of the runs missed the first 0.3-0.4 s of speech at 500 ms).
const PROBE_INTERVAL: Duration = voice::path::CHALLENGE_INTERVAL;
/// See [`PROBE_INTERVAL`].
const PROBE_AT_JOIN: Duration = Duration::from_secs(2);
/// See [`PROBE_INTERVAL`].
const PROBE_AFTER_CHALLENGE: Duration = Duration::from_secs(1);

/// What a voice join uses.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceOptions {
    /// Microphone or WAV file.
    pub input: Input,
    /// Speakers, WAV file, or nowhere.
    pub output: Output,
    /// Send pipeline settings.
    pub send: SendConfig,
    /// A push-to-talk key; `None` uses voice activation.
    pub push_to_talk: Option<PushToTalk>,
    /// Mute, deafen and the input meter, shared with the front end.
    pub controls: VoiceControls,
    /// A test room instead of an acoustic path: the input hears the
    /// output's echo through it ([`room`]); `input` and `output` must then
    /// be WAV files or `null`.
    pub room: Option<Room>,
}

/// Live switches and meters of a voice join, shared with a front end
/// (cheap to clone; every clone is the same set). Only atomics: reading or
/// setting them never blocks the audio threads.
#[derive(Debug, Clone, Default)]
pub struct VoiceControls(Arc<ControlsInner>);

#[derive(Debug, Default)]
struct ControlsInner {
    muted: AtomicBool,
    deafened: AtomicBool,
    transmitting: AtomicBool,
    level: AtomicU32,
    speech: AtomicU32,
}

impl VoiceControls {
    /// Unmuted, undeafened, silent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mutes (`true`) or unmutes the microphone: nothing is sent while muted.
    pub fn set_muted(&self, muted: bool) {
        self.0.muted.store(muted, Ordering::Relaxed);
    }

    /// Whether the microphone is muted.
    pub fn muted(&self) -> bool {
        self.0.muted.load(Ordering::Relaxed)
    }

    /// Deafens (`true`): the room is not played (the front end usually
    /// mutes too, as other clients do).
    pub fn set_deafened(&self, deafened: bool) {
        self.0.deafened.store(deafened, Ordering::Relaxed);
    }

    /// Whether playback is silenced.
    pub fn deafened(&self) -> bool {
        self.0.deafened.load(Ordering::Relaxed)
    }

    /// Whether our last frame was sent (gate open, not muted).
    pub fn transmitting(&self) -> bool {
        self.0.transmitting.load(Ordering::Relaxed)
    }

    /// RMS level of the last captured frame after noise suppression, 0..1.
    pub fn input_level(&self) -> f32 {
        f32::from_bits(self.0.level.load(Ordering::Relaxed))
    }

    /// Speech probability of the last captured frame, 0..1 (what the voice
    /// activation threshold is compared with).
    pub fn speech_probability(&self) -> f32 {
        f32::from_bits(self.0.speech.load(Ordering::Relaxed))
    }

    fn meter(&self, level: f32, speech: f32, transmitting: bool) {
        self.0.level.store(level.to_bits(), Ordering::Relaxed);
        self.0.speech.store(speech.to_bits(), Ordering::Relaxed);
        self.0.transmitting.store(transmitting, Ordering::Relaxed);
    }
}

impl PartialEq for VoiceControls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for VoiceOptions {
    fn default() -> Self {
        Self {
            input: Input::Device(None),
            output: Output::Device(None),
            send: SendConfig::default(),
            push_to_talk: None,
            controls: VoiceControls::default(),
            room: None,
        }
    }
}

/// Counters a user can see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VoiceStats {
    /// Voice packets sent.
    pub sent: u64,
    /// Voice packets received.
    pub received: u64,
    /// Frames whose primary copy was lost.
    pub lost: u64,
    /// Lost frames filled from a redundant copy.
    pub recovered_redundancy: u64,
    /// Lost frames recovered by Opus in-band FEC.
    pub recovered_fec: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Frames that arrived too late to play, or were skipped to cut delay.
    pub late: u64,
    /// Deepest jitter buffer right now, in 20 ms frames.
    pub jitter_depth: u64,
    /// Longest playout delay (after a packet is due) a jitter buffer aims
    /// for right now, among the speakers heard in the last 30 s, ms.
    pub playout_delay_ms: u64,
    /// Earlier frames repeated in each packet we send right now (loss
    /// protection for our listeners).
    pub repeats: u64,
    /// Packets dropped as forged or replayed.
    pub dropped: u64,
    /// Round-trip time to the server (TCP ping every 2 s in voice), µs.
    pub rtt_us: u64,
    /// Echo cancellation: the echo return loss enhancement it estimates, dB
    /// (0 while it is off).
    pub echo_erle_db: u64,
    /// Echo cancellation: the speaker-to-microphone delay it found, ms.
    pub echo_delay_ms: u64,
}

impl VoiceStats {
    /// Adds one speaker's jitter-buffer counters.
    fn add_jitter(&mut self, j: &JitterStats) {
        self.lost += j.missing;
        self.recovered_redundancy += j.recovered_red;
        self.recovered_fec += j.recovered_fec;
        self.concealed += j.concealed;
        self.late += j.late + j.skipped;
    }
}

/// What the engine tells the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EngineEvent {
    Talking(u32, bool),
    InputEnded,
    Report { speaker: u32, loss_permille: u16, burst_x10: u16 },
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    depth: AtomicU64,
    delay_ms: AtomicU64,
    repeats: AtomicU64,
    echo_erle_db: AtomicU64,
    echo_delay_ms: AtomicU64,
    /// Address challenges answered.
    challenges: AtomicU64,
    /// Counters of speakers forgotten since.
    retired: Mutex<VoiceStats>,
}

struct Speaker {
    jb: JitterBuffer,
    decoder: Decoder,
    talking: bool,
    last_heard: Instant,
}

/// A speaker not heard from for this long is forgotten (its decoder freed).
const FORGET_AFTER: Duration = Duration::from_secs(30);

type Speakers = Arc<Mutex<HashMap<u32, Speaker>>>;

/// A running voice join. Dropping it stops the threads.
pub(crate) struct Engine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    socket: Arc<UdpSocket>,
    sealer: Arc<Mutex<VoiceSealer>>,
    voice_id: u32,
    /// The newest loss report for our stream: a count of reports (so a
    /// repeated report is applied again), loss and burst.
    feedback: Arc<AtomicU64>,
    counters: Arc<Counters>,
    speakers: Speakers,
    gains: Arc<Mutex<HashMap<u32, f32>>>,
}

/// Opened audio endpoints, waiting for the server to confirm the join.
pub(crate) struct Devices {
    capture: Capture,
    playback: Playback,
    /// What is played can be heard by what captures: a microphone and
    /// speakers, or the test room (not WAV files or `null`).
    echo_path: bool,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices").finish_non_exhaustive()
    }
}

impl Devices {
    /// Opens the input and output of `options` (before asking the server,
    /// so a missing sound card never shows up as a join and a leave).
    /// The default devices give way to none when they cannot be opened (no
    /// sound card); the notes say so, one line each.
    pub(crate) fn open(options: &VoiceOptions) -> Result<(Self, Vec<String>), AudioError> {
        if let Some(r) = options.room {
            let (capture, playback) = room::open(r, &options.input, &options.output)?;
            return Ok((Self { capture, playback, echo_path: true }, Vec::new()));
        }
        let (capture, input_note) = open_capture_or_fallback(&options.input)?;
        let (playback, output_note) = open_playback_or_fallback(&options.output)?;
        let echo_path = matches!(options.input, Input::Device(_))
            && matches!(options.output, Output::Device(_))
            && input_note.is_none()
            && output_note.is_none();
        Ok((Self { capture, playback, echo_path }, input_note.into_iter().chain(output_note).collect()))
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("voice_id", &self.voice_id).finish_non_exhaustive()
    }
}

/// Why a voice engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The send pipeline (codec) failed to start.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// No UDP socket could be opened.
    #[error("cannot open a UDP socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The UDP socket could not be aimed at the server.
    #[error("cannot reach {server} over UDP: {source}")]
    Connect {
        /// The server's voice address.
        server: SocketAddr,
        /// What the socket said.
        source: std::io::Error,
    },
    /// The UDP socket refused a setting.
    #[error("cannot set up the UDP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// One of the engine's threads did not start.
    #[error("cannot start {name}: {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// What the system said.
        source: std::io::Error,
    },
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, EngineError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| EngineError::Thread { name: name.into(), source })
}

impl Engine {
    /// Opens the devices and the socket and starts the threads.
    pub(crate) fn start(
        server: SocketAddr,
        voice_id: u32,
        keys: ([u8; 32], [u8; 32]),
        devices: Devices,
        options: &VoiceOptions,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) -> Result<Self, EngineError> {
        let Devices { capture, playback, echo_path } = devices;
        let any =
            if server.is_ipv6() { IpAddr::from(Ipv6Addr::UNSPECIFIED) } else { IpAddr::from(Ipv4Addr::UNSPECIFIED) };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(EngineError::Bind)?;
        socket.connect(server).map_err(|source| EngineError::Connect { server, source })?;
        socket.set_read_timeout(Some(Duration::from_millis(100))).map_err(EngineError::Socket)?;
        // Echo cancellation only where there is an echo to cancel.
        let aec = options.send.aec && echo_path;
        let send_config = SendConfig { aec, ..options.send };
        let (tap, feed) = if aec {
            let (tap, feed) = reference::channel();
            (Some(tap), Some(feed))
        } else {
            (None, None)
        };
        // Built before any thread starts: if one fails to start, dropping
        // the engine stops and joins those already running.
        let mut engine = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            socket: Arc::new(socket),
            sealer: Arc::new(Mutex::new(VoiceSealer::new(&keys.0, Direction::Up))),
            voice_id,
            feedback: Arc::new(AtomicU64::new(0)),
            counters: Arc::new(Counters::default()),
            speakers: Arc::new(Mutex::new(HashMap::new())),
            gains: Arc::new(Mutex::new(HashMap::new())),
        };
        {
            let (controls, push_to_talk) = (options.controls.clone(), options.push_to_talk.clone());
            // The pipeline is built on its own thread (the echo canceller
            // cannot move between threads), which says whether it could.
            let (built_tx, built_rx) = std::sync::mpsc::channel();
            let (stop, socket, sealer, feedback, counters, events) = (
                engine.stop.clone(),
                engine.socket.clone(),
                engine.sealer.clone(),
                engine.feedback.clone(),
                engine.counters.clone(),
                events.clone(),
            );
            engine.threads.push(spawn("voice-send", move || {
                let mut pipeline = match SendPipeline::new(send_config) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = built_tx.send(Err(e));
                        return;
                    }
                };
                pipeline.set_push_to_talk(push_to_talk);
                counters.repeats.store(pipeline.protection().redundancy as u64, Ordering::Relaxed);
                let _ = built_tx.send(Ok(()));
                let shared = SendShared {
                    socket: &socket,
                    sealer: &sealer,
                    stop: &stop,
                    feedback: &feedback,
                    counters: &counters,
                };
                send_loop(capture, pipeline, feed, voice_id, &shared, &controls, &events);
            })?);
            built_rx.recv().map_err(|_| AudioError::Codec("the send pipeline did not start".into()))??;
        }
        {
            let (stop, socket, sealer, counters, speakers) = (
                engine.stop.clone(),
                engine.socket.clone(),
                engine.sealer.clone(),
                engine.counters.clone(),
                engine.speakers.clone(),
            );
            let opener = VoiceOpener::new(&keys.1, Direction::Down);
            engine.threads.push(spawn("voice-recv", move || {
                let shared =
                    RecvShared { socket: &socket, sealer: &sealer, voice_id, stop: &stop, counters: &counters };
                recv_loop(opener, &shared, &speakers);
            })?);
        }
        {
            let (stop, speakers, counters, gains, controls) = (
                engine.stop.clone(),
                engine.speakers.clone(),
                engine.counters.clone(),
                engine.gains.clone(),
                options.controls.clone(),
            );
            engine.threads.push(spawn("voice-mix", move || {
                mix_loop(playback, tap, &speakers, &gains, &controls, &stop, &counters, &events);
            })?);
        }
        Ok(engine)
    }

    /// Sets a speaker's playback gain (1.0 = as sent; 0 mutes them).
    pub(crate) fn set_gain(&self, voice_id: u32, gain: f32) {
        if let Ok(mut g) = self.gains.lock() {
            g.insert(voice_id, gain.clamp(0.0, 4.0));
        }
    }

    /// Applies a loss report for our stream.
    pub(crate) fn feedback(&self, loss_permille: u16, burst_x10: u16) {
        // One writer (the connection task): load and store do not race.
        let count = (self.feedback.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
        self.feedback.store((count << 32) | (u64::from(loss_permille) << 16) | u64::from(burst_x10), Ordering::Relaxed);
    }

    /// Current counters.
    pub(crate) fn stats(&self) -> VoiceStats {
        // Counters of forgotten speakers, then the live ones.
        let mut s = self.counters.retired.lock().map(|r| *r).unwrap_or_default();
        s.sent = self.counters.sent.load(Ordering::Relaxed);
        s.received = self.counters.received.load(Ordering::Relaxed);
        s.dropped = self.counters.dropped.load(Ordering::Relaxed);
        s.jitter_depth = self.counters.depth.load(Ordering::Relaxed);
        s.playout_delay_ms = self.counters.delay_ms.load(Ordering::Relaxed);
        s.repeats = self.counters.repeats.load(Ordering::Relaxed);
        s.echo_erle_db = self.counters.echo_erle_db.load(Ordering::Relaxed);
        s.echo_delay_ms = self.counters.echo_delay_ms.load(Ordering::Relaxed);
        if let Ok(speakers) = self.speakers.lock() {
            for sp in speakers.values() {
                s.add_jitter(&sp.jb.stats);
            }
        }
        s
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the send thread shares with the engine.
#[derive(Clone, Copy)]
struct SendShared<'a> {
    socket: &'a UdpSocket,
    sealer: &'a Mutex<VoiceSealer>,
    stop: &'a AtomicBool,
    feedback: &'a AtomicU64,
    counters: &'a Counters,
}

fn send_loop(
    mut capture: Capture,
    mut pipeline: SendPipeline,
    mut reference: Option<Feed>,
    voice_id: u32,
    shared: &SendShared<'_>,
    controls: &VoiceControls,
    events: &mpsc::UnboundedSender<EngineEvent>,
) {
    let SendShared { socket, sealer, stop, feedback, counters } = *shared;
    let Ok(mut resampler) = Resampler::new(capture.rate, RATE, capture.channels) else { return };
    let mut raw = Vec::with_capacity(4096);
    let mut mono: Vec<f32> = Vec::with_capacity(4 * FRAME);
    let (mut body, mut pkt) = (Vec::new(), Vec::new());
    let mut last_send: Option<Instant> = None;
    let mut probe_until = Instant::now() + PROBE_AT_JOIN;
    let mut challenges_seen = 0;
    let mut applied_feedback = 0;
    let mut ended_told = false;
    while !stop.load(Ordering::SeqCst) {
        raw.clear();
        while let Ok(s) = capture.ring.pop() {
            raw.push(s);
            if raw.len() >= 4096 {
                break;
            }
        }
        resampler.process(&raw, &mut mono);
        // The newest sample was captured about now (the ring was drained):
        // when the oldest one waiting here was captured.
        let oldest = Instant::now().checked_sub(samples_to_duration(mono.len())).unwrap_or_else(Instant::now);
        let mut framed = 0;
        let fb = feedback.load(Ordering::Relaxed);
        if fb != applied_feedback {
            applied_feedback = fb;
            let _ = pipeline.set_feedback((fb >> 16) as u16, fb as u16);
            counters.repeats.store(pipeline.protection().redundancy as u64, Ordering::Relaxed);
        }
        while mono.len() >= FRAME {
            let frame: Vec<f32> = mono.drain(..FRAME).collect();
            framed += FRAME;
            if let Some(feed) = &mut reference {
                // Everything that started playing before this frame's end
                // (its echo may be in it) goes to the canceller first.
                feed.due(oldest + samples_to_duration(framed), |played| pipeline.play(played));
            }
            pipeline.set_muted(controls.muted());
            let Ok(packets) = pipeline.process(&frame) else { continue };
            controls.meter(pipeline.level, pipeline.speech_prob, !packets.is_empty());
            if let Some(m) = pipeline.echo_metrics() {
                counters.echo_erle_db.store(m.erle_db.max(0.0).round() as u64, Ordering::Relaxed);
                counters.echo_delay_ms.store(u64::try_from(m.delay_ms).unwrap_or(0), Ordering::Relaxed);
            }
            for out in packets {
                let frames: Vec<&[u8]> = out.frames.iter().map(Vec::as_slice).collect();
                // Our encoder never uses in-band FEC (see `audio::pipeline`).
                voice::encode_voice_body(out.seq, false, &frames, &mut body);
                if let Ok(mut s) = sealer.lock() {
                    s.seal(Kind::Voice, voice_id, &body, &mut pkt);
                }
                if socket.send(&pkt).is_ok() {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                last_send = Some(Instant::now());
            }
        }
        let challenges = counters.challenges.load(Ordering::Relaxed);
        if challenges != challenges_seen {
            challenges_seen = challenges;
            probe_until = Instant::now() + PROBE_AFTER_CHALLENGE;
        }
        let interval = if Instant::now() < probe_until { PROBE_INTERVAL } else { voice::path::KEEPALIVE_INTERVAL };
        if last_send.is_none_or(|t| t.elapsed() >= interval) {
            // Padded: the relay's challenge to an unproven address is never
            // larger than the packet that draws it.
            if let Ok(mut s) = sealer.lock() {
                s.seal(Kind::Keepalive, voice_id, &[0; voice::KEEPALIVE_PAD], &mut pkt);
            }
            let _ = socket.send(&pkt);
            last_send = Some(Instant::now());
        }
        if !ended_told && capture.ended.load(Ordering::SeqCst) && capture.ring.is_empty() && mono.len() < FRAME {
            ended_told = true;
            let _ = events.send(EngineEvent::InputEnded);
        }
        if raw.is_empty() {
            // Short: how long a frame waits here is jitter the listeners'
            // buffers must absorb (5 ms measured worse than 1 ms).
            std::thread::sleep(SEND_POLL);
        }
    }
}

/// What the receive thread shares with the engine.
#[derive(Clone, Copy)]
struct RecvShared<'a> {
    socket: &'a UdpSocket,
    sealer: &'a Mutex<VoiceSealer>,
    voice_id: u32,
    stop: &'a AtomicBool,
    counters: &'a Counters,
}

fn recv_loop(mut opener: VoiceOpener, shared: &RecvShared<'_>, speakers: &Speakers) {
    let RecvShared { socket, sealer, voice_id, stop, counters } = *shared;
    let mut buf = vec![0u8; 1500];
    let mut body = Vec::with_capacity(1500);
    let mut proof = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let Ok(header) = opener.open(&buf[..n], &mut body) else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if header.kind == Kind::Challenge {
            // Echoed from the socket it reached: that proves our address.
            if let Ok(mut s) = sealer.lock() {
                s.seal(Kind::Proof, voice_id, &body, &mut proof);
            }
            let _ = socket.send(&proof);
            counters.challenges.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if header.kind != Kind::Voice {
            continue;
        }
        let Some(vb) = voice::decode_voice_body(&body) else { continue };
        counters.received.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let Ok(mut map) = speakers.lock() else { return };
        let entry = match map.entry(header.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(decoder) = Decoder::new() else { continue };
                v.insert(Speaker { jb: JitterBuffer::new(), decoder, talking: false, last_heard: now })
            }
        };
        entry.last_heard = now;
        entry.jb.push(vb.seq, vb.fec, &vb.frames, now);
    }
}

/// How long `n` samples at the pipeline's rate last.
fn samples_to_duration(n: usize) -> Duration {
    Duration::from_secs_f64(n as f64 / f64::from(RATE))
}

#[allow(clippy::too_many_arguments)]
fn mix_loop(
    mut playback: Playback,
    mut reference: Option<Tap>,
    speakers: &Speakers,
    gains: &Mutex<HashMap<u32, f32>>,
    controls: &VoiceControls,
    stop: &AtomicBool,
    counters: &Counters,
    events: &mpsc::UnboundedSender<EngineEvent>,
) {
    let Ok(mut up) = Upsampler::new(playback.rate, playback.channels) else { return };
    let mut limiter = Limiter::default();
    let (mut mix, mut frame, mut out) = (vec![0.0f32; FRAME], vec![0.0f32; FRAME], Vec::with_capacity(4 * FRAME));
    let start = Instant::now();
    let mut tick: u32 = 0;
    let mut last_report = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        tick += 1;
        let due = start + Duration::from_millis(20) * tick;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = Instant::now();
        mix.fill(0.0);
        let report = now.duration_since(last_report) >= REPORT_EVERY;
        {
            let Ok(mut map) = speakers.lock() else { return };
            let (mut depth, mut delay) = (0, 0.0f64);
            for (id, sp) in map.iter_mut() {
                let play = sp.jb.pop(now);
                let talking = !matches!(play, Play::Idle);
                sp.decoder.play(&play, &mut frame);
                if talking {
                    let gain = gains.lock().ok().and_then(|g| g.get(id).copied()).unwrap_or(1.0);
                    add(&mut mix, &frame, gain);
                }
                if talking != sp.talking {
                    sp.talking = talking;
                    let _ = events.send(EngineEvent::Talking(*id, talking));
                }
                depth = depth.max(sp.jb.depth());
                delay = delay.max(sp.jb.delay_ms());
                if report && let Some((loss_permille, burst_x10)) = sp.jb.take_report() {
                    let _ = events.send(EngineEvent::Report { speaker: *id, loss_permille, burst_x10 });
                }
            }
            counters.depth.store(depth as u64, Ordering::Relaxed);
            counters.delay_ms.store(delay.round() as u64, Ordering::Relaxed);
            map.retain(|_, sp| {
                let keep = sp.talking || now.duration_since(sp.last_heard) < FORGET_AFTER;
                if !keep && let Ok(mut r) = counters.retired.lock() {
                    r.add_jitter(&sp.jb.stats);
                }
                keep
            });
        }
        if report {
            last_report = now;
        }
        if controls.deafened() {
            mix.fill(0.0);
        }
        limiter.process(&mut mix);
        out.clear();
        up.process(&mix, &mut out);
        // What is queued ahead of this frame plays first.
        let queued = playback.ring.buffer().capacity() - playback.ring.slots();
        let starts = Instant::now()
            + Duration::from_secs_f64(queued as f64 / f64::from(playback.rate) / f64::from(playback.channels.max(1)));
        let mut whole = true;
        for s in &out {
            if playback.ring.push(*s).is_err() {
                whole = false;
                break;
            }
        }
        if whole && let Some(tap) = &mut reference {
            // The reference is exactly what was played, at the pipeline's
            // rate (the device gets it resampled).
            tap.played(&mix, starts);
        }
    }
}

/// Voice on one connection: the join asked for, the engine once the
/// server said yes, who is who, and the gains to apply.
#[derive(Debug, Default)]
pub(crate) struct Voice {
    /// Devices opened, waiting for the server's [`ServerMessage::VoiceJoined`].
    ///
    /// [`ServerMessage::VoiceJoined`]: protocol::message::ServerMessage::VoiceJoined
    pub(crate) pending: Option<(VoiceOptions, Devices)>,
    /// The running engine.
    pub(crate) engine: Option<Engine>,
    /// Voice ids to names.
    pub(crate) names: HashMap<u32, String>,
    /// Voice ids heard talking before any list named them.
    pub(crate) unnamed_talkers: std::collections::HashSet<u32>,
    /// Playback gains by name.
    pub(crate) gains: HashMap<String, f32>,
    /// When the last ping went (for the round-trip time).
    pub(crate) ping_sent: Option<Instant>,
    /// The last round-trip time measured, in µs.
    pub(crate) rtt_us: u64,
}

impl Voice {
    /// Opens the devices and asks the server to join the voice of `room`
    /// (`None`: the server's choice; a device failure is reported as
    /// [`Event::VoiceError`]; only a dead connection is an error).
    pub(crate) async fn join(
        &mut self,
        out: &mut impl Outbound,
        options: VoiceOptions,
        room: Option<String>,
        events: &mpsc::Sender<Event>,
    ) -> Result<bool, LinkError> {
        // Opening devices reads files and talks to the sound system: off
        // the async threads.
        let opened = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || Devices::open(&options)).await
        };
        match opened.unwrap_or_else(|e| Err(AudioError::Device(e.to_string()))) {
            Ok((devices, notes)) => {
                for note in notes {
                    let _ = events.send(Event::VoiceFallback(note)).await;
                }
                self.pending = Some((options, devices));
                out.send(&ClientMessage::VoiceJoin { room }).await.map(|()| true)
            }
            Err(e) => {
                let _ = events.send(Event::VoiceError(e.to_string())).await;
                Ok(false)
            }
        }
    }

    /// The server took us into the voice of `room`: starts the engine
    /// towards `server` (its address, the UDP port it named) with the keys
    /// of this `epoch`. `None` if no join was asked for.
    pub(crate) fn on_joined(
        &mut self,
        server: SocketAddr,
        keys: &SessionKeys,
        voice_id: u32,
        epoch: u32,
        room: String,
        engine_tx: &mpsc::UnboundedSender<EngineEvent>,
    ) -> Option<Event> {
        let (options, devices) = self.pending.take()?;
        self.engine = None;
        let keys = protocol::voice::voice_keys(keys, epoch);
        match Engine::start(server, voice_id, keys, devices, &options, engine_tx.clone()) {
            Ok(engine) => {
                self.engine = Some(engine);
                self.apply_gains();
                Some(Event::VoiceJoined { room })
            }
            Err(e) => Some(Event::VoiceError(e.to_string())),
        }
    }

    /// Sets and applies one user's playback gain.
    pub(crate) fn set_gain(&mut self, user: String, gain: f32) {
        self.gains.insert(user, gain);
        self.apply_gains();
    }

    /// Applies the gains to the speakers present.
    pub(crate) fn apply_gains(&self) {
        let Some(engine) = &self.engine else { return };
        for (id, name) in &self.names {
            if let Some(g) = self.gains.get(name) {
                engine.set_gain(*id, *g);
            }
        }
    }

    /// The engine's counters with the round-trip time.
    pub(crate) fn stats(&self) -> Option<VoiceStats> {
        let mut s = self.engine.as_ref()?.stats();
        s.rtt_us = self.rtt_us;
        Some(s)
    }

    /// Stops the engine (or forgets a join not answered yet); its last
    /// counters.
    pub(crate) fn stop(&mut self) -> Option<VoiceStats> {
        let stats = self.stats();
        // Stopping joins the engine's threads: off the async threads.
        if let Some(engine) = self.engine.take() {
            tokio::task::spawn_blocking(move || drop(engine));
        }
        self.pending = None;
        stats
    }
}
