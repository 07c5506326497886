//! RSA signing on a pool of worker threads (an actix `SyncArbiter`), so a
//! burst of handshakes never stalls the sessions that are already chatting.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use protocol::crypto::Identity;

/// RSA signatures made since the process started (reported at shutdown:
/// what an unauthenticated flood could make the server spend).
pub static SIGNATURES: AtomicU64 = AtomicU64::new(0);

/// Signs handshake transcripts with the server identity.
#[derive(Debug)]
pub struct Signer {
    identity: Identity,
}

impl Signer {
    /// A signer for `identity`.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

impl Actor for Signer {
    type Context = SyncContext<Self>;
}

/// Sign this transcript.
#[derive(Debug, Message)]
#[rtype(result = "Vec<u8>")]
pub struct Sign(pub Vec<u8>);

impl Handler<Sign> for Signer {
    type Result = MessageResult<Sign>;
    fn handle(&mut self, msg: Sign, _: &mut SyncContext<Self>) -> Self::Result {
        SIGNATURES.fetch_add(1, Ordering::Relaxed);
        MessageResult(self.identity.sign(&msg.0))
    }
}
