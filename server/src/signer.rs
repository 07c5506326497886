//! RSA signing on a pool of worker threads (an actix `SyncArbiter`), so a
//! burst of handshakes never stalls the sessions that are already chatting.

use actix::prelude::*;
use protocol::crypto::Identity;

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
        MessageResult(self.identity.sign(&msg.0))
    }
}
