//! A session's writer task: seals what the session queues and writes it,
//! many frames per system call; a disconnect for cause (the "last word")
//! overtakes the queue; a stalled write ends the session.
//!
//! Sealing happens here, at write time, so skipping queued frames for the
//! last word keeps sequence numbers consecutive. What is queued when the
//! writer wakes is sealed as one [`protocol::message::ServerMessage::Batch`] frame (one
//! encryption per recipient per batch).

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use protocol::crypto::Sealer;
use protocol::frame::FrameCodec;
use protocol::message;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::listener::CountGuard;
use crate::messages::Outbound as Out;

/// The writer task reports why it stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WriterFailed(pub String);

/// Frames we send: the client takes up to 16 MiB, and nothing we seal
/// comes near it (a batch holds at most [`MAX_BATCH`] of messages).
const FRAMES: FrameCodec = FrameCodec::new(16 * 1024 * 1024);

/// Appends a plaintext handshake frame.
fn put_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    if FRAMES.encode_with(payload.len(), buf, |b| b.extend_from_slice(payload)).is_err() {
        debug_assert!(false, "handshake frame over the limit");
    }
}

/// Appends the frame sealing `message`, sealed straight into the buffer.
fn put_sealed(buf: &mut Vec<u8>, sealer: &mut Sealer, message: &[u8]) {
    if FRAMES.encode_with(Sealer::sealed_len(message.len()), buf, |b| sealer.seal_into(message, b)).is_err() {
        debug_assert!(false, "sealed frame over the limit");
    }
}

/// A write buffer larger than this is given back after the write, so an
/// idle session does not keep the memory of its largest burst.
const KEEP_BUFFER: usize = 4 * 1024;

/// Most plaintext sealed into one batch frame.
const MAX_BATCH: usize = 64 * 1024;

/// Messages waiting to be sealed together: one message goes as itself,
/// several as one [`protocol::message::ServerMessage::Batch`] frame (one encryption for all).
#[derive(Default)]
struct Pending {
    messages: Vec<Bytes>,
    bytes: usize,
    scratch: Vec<u8>,
}

impl Pending {
    /// Adds a message, sealing what waits first if the batch would grow too big.
    fn push(&mut self, m: Bytes, sealer: &mut Option<Box<Sealer>>, buf: &mut Vec<u8>) {
        if self.bytes + m.len() > MAX_BATCH {
            self.flush(sealer, buf);
        }
        self.bytes += m.len() + 1;
        self.messages.push(m);
    }

    /// Seals what waits into `buf`.
    fn flush(&mut self, sealer: &mut Option<Box<Sealer>>, buf: &mut Vec<u8>) {
        if let Some(s) = sealer {
            match self.messages.as_slice() {
                [] => {}
                [one] => put_sealed(buf, s, one),
                many => {
                    message::encode_batch(many.iter().map(|m| &m[..]), &mut self.scratch);
                    put_sealed(buf, s, &self.scratch);
                }
            }
        }
        self.messages.clear();
        self.bytes = 0;
        if self.scratch.capacity() > KEEP_BUFFER {
            self.scratch = Vec::new();
        }
    }
}

/// Seals and writes queued items, many per syscall, until the queue closes;
/// then shuts the socket down. A last word overtakes the queue. A stalled
/// write ends it.
pub(crate) async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Out>,
    mut last_word: oneshot::Receiver<Bytes>,
    timeout: Duration,
    failed: Recipient<WriterFailed>,
    open: Option<CountGuard>,
    sent: prometheus_client::metrics::counter::Counter,
) {
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    let mut pending = Pending::default();
    let mut sealer: Option<Box<Sealer>> = None;
    let mut last_word_pending = true;
    loop {
        buf.clear();
        tokio::select! {
            biased;
            word = &mut last_word, if last_word_pending => {
                last_word_pending = false;
                let Ok(word) = word else { continue };
                if let Some(s) = &mut sealer {
                    put_sealed(&mut buf, s, &word);
                    let _ = tokio::time::timeout(timeout, w.write_all(&buf)).await;
                }
                break;
            }
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                for item in batch.drain(..) {
                    match item {
                        Out::Raw(frame) => {
                            pending.flush(&mut sealer, &mut buf);
                            put_frame(&mut buf, &frame);
                        }
                        Out::StartSealing(s) => {
                            pending.flush(&mut sealer, &mut buf);
                            sealer = Some(s);
                        }
                        Out::Message(m) => pending.push(m, &mut sealer, &mut buf),
                    }
                }
                pending.flush(&mut sealer, &mut buf);
            }
        }
        match tokio::time::timeout(timeout, w.write_all(&buf)).await {
            Ok(Ok(())) => {
                sent.inc_by(buf.len() as u64);
            }
            Ok(Err(e)) => return failed.do_send(WriterFailed(format!("write failed: {e}"))),
            Err(_) => return failed.do_send(WriterFailed("write stalled; peer not reading".into())),
        }
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
        if batch.capacity() > 256 {
            batch = Vec::new();
        }
    }
    let _ = tokio::time::timeout(timeout, w.shutdown()).await;
    drop(open);
}
