//! Criterion benchmarks of the server's hot paths live in `benches/`
//! (`cargo bench -p chatroom-bench`); `run.sh` next to this crate runs the
//! load generator against our server, murmurd and the floor. This library
//! holds what the benchmarks share.

use actix::prelude::*;
use server::messages::ToSession;

/// Stands in for an actor the benchmarked one talks to (a session's
/// mailbox, the roster): takes its messages and does nothing.
#[derive(Debug)]
pub struct Ignore;

impl Actor for Ignore {
    type Context = Context<Self>;
}

impl Handler<ToSession> for Ignore {
    type Result = ();
    fn handle(&mut self, _: ToSession, _: &mut Context<Self>) {}
}
