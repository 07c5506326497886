//! A lossy UDP proxy for voice tests: clients send to its front port (the
//! server advertises it as `voice_public_port`), it forwards both ways with
//! loss (random or bursty, Gilbert-Elliott) and jitter. Deterministic for a
//! given seed; stops when dropped.

use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::loss::Loss;
use crate::loss::{Channel, Rng};

struct Delayed {
    due: Instant,
    seq: u64,
    to_client: Option<SocketAddr>,
    upstream: Option<Arc<UdpSocket>>,
    bytes: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due && self.seq == o.seq
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.due.cmp(&self.due).then(o.seq.cmp(&self.seq))
    }
}

/// The proxy.
pub struct LossyProxy {
    front: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Packets dropped on purpose.
    pub dropped: Arc<AtomicU64>,
    /// Packets forwarded.
    pub forwarded: Arc<AtomicU64>,
}

impl LossyProxy {
    /// Binds the front socket on loopback (its port goes in the server config).
    pub fn bind() -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind proxy");
        front.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        Self {
            front: Arc::new(front),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            dropped: Arc::new(AtomicU64::new(0)),
            forwarded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The front port.
    pub fn port(&self) -> u16 {
        self.front.local_addr().expect("addr").port()
    }

    /// Starts forwarding to `upstream` with `loss` each way and up to
    /// `jitter_ms` of random extra delay.
    pub fn start(&mut self, upstream: SocketAddr, loss: Loss, jitter_ms: u64, seed: u64) {
        let queue: Arc<(Mutex<BinaryHeap<Delayed>>, Condvar)> =
            Arc::new((Mutex::new(BinaryHeap::new()), Condvar::new()));
        let chan = |s| Arc::new(Mutex::new(Channel::new(loss, s)));
        let (up_chan, down_chan) = (chan(seed), chan(seed.rotate_left(17) ^ 0x9E37_79B9));
        let jitter_rng = Arc::new(Mutex::new(Rng::new(seed ^ 0xDEAD_BEEF)));
        let counter = Arc::new(AtomicU64::new(0));
        let schedule = {
            let (queue, jitter_rng, counter, dropped) =
                (queue.clone(), jitter_rng.clone(), counter.clone(), self.dropped.clone());
            move |chan: &Mutex<Channel>,
                  bytes: Vec<u8>,
                  to_client: Option<SocketAddr>,
                  upstream: Option<Arc<UdpSocket>>| {
                if chan.lock().expect("chan").drop_next() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let extra = (jitter_rng.lock().expect("rng").uniform() * jitter_ms as f64) as u64;
                let d = Delayed {
                    due: Instant::now() + Duration::from_millis(extra),
                    seq: counter.fetch_add(1, Ordering::Relaxed),
                    to_client,
                    upstream,
                    bytes,
                };
                queue.0.lock().expect("queue").push(d);
                queue.1.notify_one();
            }
        };
        let schedule = Arc::new(schedule);
        // Client -> proxy -> server, one upstream socket per client.
        {
            let (front, stop, schedule, up_chan, down_chan) =
                (self.front.clone(), self.stop.clone(), schedule.clone(), up_chan.clone(), down_chan.clone());
            let mut threads_stop = Vec::new();
            self.threads.push(std::thread::spawn(move || {
                let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else { continue };
                    let up = clients
                        .entry(from)
                        .or_insert_with(|| {
                            let s = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
                            s.connect(upstream).expect("connect upstream");
                            s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
                            let s = Arc::new(s);
                            let (s2, stop2, schedule2, down2) =
                                (s.clone(), stop.clone(), schedule.clone(), down_chan.clone());
                            threads_stop.push(std::thread::spawn(move || {
                                let mut b = [0u8; 2048];
                                while !stop2.load(Ordering::SeqCst) {
                                    if let Ok(n) = s2.recv(&mut b) {
                                        schedule2(&down2, b[..n].to_vec(), Some(from), None);
                                    }
                                }
                            }));
                            s
                        })
                        .clone();
                    schedule(&up_chan, buf[..n].to_vec(), None, Some(up));
                }
                for t in threads_stop {
                    let _ = t.join();
                }
            }));
        }
        // The delay line.
        {
            let (front, stop, forwarded) = (self.front.clone(), self.stop.clone(), self.forwarded.clone());
            self.threads.push(std::thread::spawn(move || {
                let (lock, cv) = &*queue;
                let mut q = lock.lock().expect("queue");
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    match q.peek() {
                        Some(d) if d.due <= now => {
                            let Some(d) = q.pop() else { continue };
                            let _ = match (&d.to_client, &d.upstream) {
                                (Some(c), _) => front.send_to(&d.bytes, c),
                                (None, Some(u)) => u.send(&d.bytes),
                                _ => Ok(0),
                            };
                            forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(d) => {
                            let wait = d.due - now;
                            q = cv.wait_timeout(q, wait).expect("wait").0;
                        }
                        None => q = cv.wait_timeout(q, Duration::from_millis(50)).expect("wait").0,
                    }
                }
            }));
        }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
