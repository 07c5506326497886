//! Criterion benchmarks of the server's hot paths live in `benches/`
//! (`cargo bench -p chatroom-bench`); `run.sh` next to this crate runs the
//! load generator against our server, murmurd and the floor.
