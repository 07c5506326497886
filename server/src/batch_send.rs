//! Sending many datagrams, to different addresses, in one system call
//! (`sendmmsg` on Linux; one `sendto` each elsewhere). The voice relay
//! uses it for the copies of one packet it seals for every listener.

use std::net::SocketAddr;
use std::ops::Range;

use tokio::net::UdpSocket;

/// Datagrams to send: their bytes back to back in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    /// All datagrams' bytes.
    pub bytes: Vec<u8>,
    /// Each datagram: its range in `bytes` and where it goes.
    pub items: Vec<(Range<usize>, SocketAddr)>,
}

impl Batch {
    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    /// Adds a datagram for `to` whose bytes `fill` appends to the buffer.
    pub fn push(&mut self, to: SocketAddr, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        fill(&mut self.bytes);
        self.items.push((start..self.bytes.len(), to));
    }

    /// How many datagrams it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Sends every datagram of `batch` without waiting; returns how many went
/// out. Those the socket has no room for are dropped (voice is better late
/// never than late), as are those to an address the socket cannot reach.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn send(socket: &UdpSocket, batch: &Batch) -> usize {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    /// The kernel takes at most this many per call (UIO_MAXIOV).
    const MAX_PER_CALL: usize = 1024;

    let fd = socket.as_raw_fd();
    let mut sent = 0;
    let mut next = 0;
    while next < batch.items.len() {
        let chunk = &batch.items[next..(next + MAX_PER_CALL).min(batch.items.len())];
        let slices: Vec<[IoSlice<'_>; 1]> =
            chunk.iter().map(|(r, _)| [IoSlice::new(&batch.bytes[r.clone()])]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk.iter().map(|(_, a)| Some(SockaddrStorage::from(*a))).collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
        // Straight to the kernel, never waiting: a full socket drops voice
        // (tokio's write readiness is not involved; nothing awaits it).
        let result = sendmmsg(fd, &mut headers, &slices, &addrs, [], MsgFlags::MSG_DONTWAIT).map(Iterator::count);
        match result {
            Ok(n) if n > 0 => {
                sent += n;
                next += n;
            }
            // The socket buffer is full: the rest would fail too.
            Err(nix::errno::Errno::EAGAIN) => break,
            // The first datagram failed (an unreachable address): skip it.
            Ok(_) | Err(_) => next += 1,
        }
    }
    sent
}

/// Sends every datagram of `batch` without waiting; returns how many went
/// out (one `sendto` each on this system).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn send(socket: &UdpSocket, batch: &Batch) -> usize {
    batch.items.iter().filter(|(r, to)| socket.try_send_to(&batch.bytes[r.clone()], *to).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn every_datagram_reaches_its_own_address() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut receivers = Vec::new();
        for _ in 0..5 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        }
        let mut batch = Batch::default();
        for (i, r) in receivers.iter().enumerate() {
            let to = r.local_addr().expect("addr");
            batch.push(to, |b| b.extend_from_slice(format!("packet {i}").as_bytes()));
        }
        assert_eq!(batch.len(), 5);
        assert_eq!(send(&sender, &batch), 5);
        for (i, r) in receivers.iter().enumerate() {
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), r.recv(&mut buf))
                .await
                .expect("arrives")
                .expect("recv");
            assert_eq!(&buf[..n], format!("packet {i}").as_bytes());
        }
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(send(&sender, &batch), 0);
    }
}
