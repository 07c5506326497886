//! A TCP forwarder between a client and the server whose links a test can
//! freeze (stop forwarding server → client) and cut on the client's side
//! only, so the server still believes the old connection is alive — what a
//! Wi-Fi drop looks like from the server. It can also delay both directions
//! (a client far away) and flip a bit in what the client sends next (a
//! frame altered on the way).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Link {
    client: TcpStream,
    /// Kept open after a cut, so the server sees nothing.
    _upstream: TcpStream,
    frozen: Arc<AtomicBool>,
    corrupt: Arc<AtomicBool>,
}

/// The forwarder; dropping it leaves its threads to die with their sockets.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<Link>>>,
}

/// What a pump does to what it forwards.
#[derive(Default)]
struct Shape {
    /// Swallow everything while set.
    frozen: Option<Arc<AtomicBool>>,
    /// Flip a bit in the next chunk, once, when set.
    corrupt: Option<Arc<AtomicBool>>,
    /// Deliver each chunk this long after it was read.
    delay: Duration,
    /// Pass the end of the stream on (the server closing is seen by the
    /// client; a cut on the client's side is not seen by the server).
    pass_close: bool,
}

fn pump(mut from: TcpStream, to: TcpStream, shape: Shape) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let (delay, pass_close) = (shape.delay, shape.pass_close);
    // The writer keeps each chunk until it is due: a link far away, with
    // its bandwidth untouched.
    std::thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        if pass_close {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // While frozen, what the server sends is swallowed (a lost ack).
        if shape.frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            continue;
        }
        if shape.corrupt.as_ref().is_some_and(|c| c.swap(false, Ordering::SeqCst)) {
            // The last byte of a chunk is inside a frame's body (past its
            // length prefix) unless the chunk is one bare prefix.
            buf[n - 1] ^= 0x01;
        }
        if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

impl TcpProxy {
    /// Forwards every connection on a fresh loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        Self::start_delayed(upstream, Duration::ZERO)
    }

    /// As [`TcpProxy::start`], delaying each direction by `delay`.
    pub fn start_delayed(upstream: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let links: Arc<Mutex<Vec<Link>>> = Arc::new(Mutex::new(Vec::new()));
        let l2 = links.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(10)) else { continue };
                let _ = up.set_nodelay(true);
                let _ = client.set_nodelay(true);
                let frozen = Arc::new(AtomicBool::new(false));
                let corrupt = Arc::new(AtomicBool::new(false));
                let (c1, c2, u1, u2) = match (client.try_clone(), client.try_clone(), up.try_clone(), up.try_clone()) {
                    (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
                    _ => continue,
                };
                let up_shape = Shape { corrupt: Some(corrupt.clone()), delay, ..Shape::default() };
                let down_shape = Shape { frozen: Some(frozen.clone()), delay, pass_close: true, ..Shape::default() };
                std::thread::spawn(move || pump(c1, u1, up_shape));
                std::thread::spawn(move || pump(u2, c2, down_shape));
                l2.lock().expect("links").push(Link { client, _upstream: up, frozen, corrupt });
            }
        });
        Self { addr, links }
    }

    /// Stops forwarding server → client on every link so far.
    pub fn freeze(&self) {
        for l in self.links.lock().expect("links").iter() {
            l.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Closes the client side of every link so far; the server side stays
    /// open and silent.
    pub fn cut_clients(&self) {
        for l in self.links.lock().expect("links").iter() {
            let _ = l.client.shutdown(Shutdown::Both);
        }
    }

    /// Flips one bit in the next chunk each link so far forwards to the
    /// server.
    pub fn corrupt_next_upstream(&self) {
        for l in self.links.lock().expect("links").iter() {
            l.corrupt.store(true, Ordering::SeqCst);
        }
    }

    /// Links accepted so far.
    pub fn links(&self) -> usize {
        self.links.lock().expect("links").len()
    }
}
