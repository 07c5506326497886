//! A TCP forwarder between a client and the server whose links a test can
//! freeze (stop forwarding server → client) and cut on the client's side
//! only, so the server still believes the old connection is alive — what a
//! Wi-Fi drop looks like from the server.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Link {
    client: TcpStream,
    /// Kept open after a cut, so the server sees nothing.
    _upstream: TcpStream,
    frozen: Arc<AtomicBool>,
}

/// The forwarder; dropping it leaves its threads to die with their sockets.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<Link>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: Option<Arc<AtomicBool>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // While frozen, what the server sends is swallowed (a lost ack).
        if frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl TcpProxy {
    /// Forwards every connection on a fresh loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let links: Arc<Mutex<Vec<Link>>> = Arc::new(Mutex::new(Vec::new()));
        let l2 = links.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(10)) else { continue };
                let frozen = Arc::new(AtomicBool::new(false));
                let (c1, c2, u1, u2) = match (client.try_clone(), client.try_clone(), up.try_clone(), up.try_clone()) {
                    (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
                    _ => continue,
                };
                let f = frozen.clone();
                std::thread::spawn(move || pump(c1, u1, None));
                std::thread::spawn(move || pump(u2, c2, Some(f)));
                l2.lock().expect("links").push(Link { client, _upstream: up, frozen });
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

    /// Links accepted so far.
    pub fn links(&self) -> usize {
        self.links.lock().expect("links").len()
    }
}
