#!/usr/bin/env bash
# Load benchmarks on loopback: our server, murmurd and the one-write floor,
# one right after the other, so that every comparison is a ratio from one run.
#
#   bench/run.sh build                  release build of server + loadgen, the floor tools, murmurd's loadgen
#   bench/run.sh text N S RATE [DUR]    ours: N clients, S senders, RATE msgs/s each (HISTORY=off: `general` keeps none)
#   bench/run.sh rooms N K S RATE [DUR] ours: N clients in rooms of K, S senders, RATE msgs/s each (history on)
#   bench/run.sh history                text 100 10 10 with history on, then off, one after the other
#   bench/run.sh voice N K [DUR]        ours: N listeners + K speakers at 50 packets/s
#   bench/run.sh connect M [C]          ours: M clients connect, C in flight; memory per idle client
#   bench/run.sh broadcast M            ours: M clients connected, one message to all
#   bench/run.sh murmur text|voice|connect ARGS   the same workload on murmurd (../shared/bench-mumble)
#   bench/run.sh floor text N MSGS GAP_US | floor voice N ROUNDS MM GAP_US
#   bench/run.sh compare [REPS]         the BENCHMARKS.md table: each workload on ours, murmurd, floor
#   bench/run.sh sweep                  highest deliveries/s with p99 < 100 ms, ours and murmurd (≈ 8 min)
#   bench/run.sh rsa                    one RSA-2048 signature (the connection ceiling: 2 cores ÷ it)
# THREADS=2 gives our load generator two threads (default 1).
#
# Results: JSON lines appended to $OUT (default /tmp/chatroom-bench/results.jsonl);
# bench/summarize.py turns them into the tables of BENCHMARKS.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${WORK:-/tmp/chatroom-bench}
OUT=${OUT:-$WORK/results.jsonl}
MUMBLE=${MUMBLE:-$ROOT/../shared/bench-mumble}
FLOOR=${FLOOR:-$ROOT/../shared/bench-floor}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
mkdir -p "$WORK"
# Clients and server sockets: 10,000 clients need 20,000 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

build() {
  (cd "$ROOT" && cargo build --release --locked -p server -p loadgen)
  gcc -O2 -o "$WORK/floor" "$FLOOR/floor.c"
  gcc -O2 -o "$WORK/ufloor" "$FLOOR/ufloor.c"
  if [ -x "$MUMBLE/bench.sh" ] && command -v murmurd >/dev/null; then OUT=$OUT "$MUMBLE/bench.sh" build; fi
}

# A fresh server process in $WORK/server (its key and identity are made once and kept).
start_server() {
  stop_server
  local d=$WORK/server
  mkdir -p "$d"
  cp "$HERE/bench.toml" "$d/config.toml"
  # Every run starts with an empty store.
  rm -rf "$d/data"
  if [ "${HISTORY:-on}" = off ]; then printf '\n[[rooms]]\nname = "general"\nhistory = false\n' >>"$d/config.toml"; fi
  [ -f "$d/server.key" ] || (cd "$d" && "$BIN/server" -c config.toml gen-key >/dev/null)
  (cd "$d" && exec "$BIN/server" -c config.toml >"$d/server.log" 2>&1) &
  echo $! >"$d/server.pid"
  for _ in $(seq 1 100); do
    grep -q "listening on" "$d/server.log" 2>/dev/null && break
    sleep 0.1
  done
  PID=$(cat "$d/server.pid")
}

stop_server() {
  local p=$WORK/server/server.pid
  if [ -f "$p" ]; then
    kill "$(cat "$p")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$p")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$p")" 2>/dev/null || true
    rm -f "$p"
  fi
}

lg() {
  timeout 400 "$BIN/loadgen" --server 127.0.0.1:7979 --key-file "$WORK/server/server.key" --server-pid "$PID" --threads "${THREADS:-1}" \
    --out "$OUT" --tag "${TAG:-}" "$@"
}

text()      { start_server; lg text --clients "$1" --senders "$2" --rate "$3" --duration "${4:-15}"; stop_server; }
rooms()     { start_server; lg --room-size "$2" text --clients "$1" --senders "$3" --rate "$4" --duration "${5:-15}"; stop_server; }
history()   { TAG=hist-on text 100 10 10 15; HISTORY=off TAG=hist-off text 100 10 10 15; }
voice()     { start_server; lg voice --listeners "$1" --speakers "$2" --duration "${3:-15}"; stop_server; }
connect()   { start_server; lg --concurrency "${2:-32}" connect --clients "$1"; stop_server; }
broadcast() { start_server; lg --concurrency 32 --max-wall 900 connect --clients "$1" --broadcast --settle 5; stop_server; }

murmur() {
  local w=$1; shift
  [ -x "$MUMBLE/bench.sh" ] || { echo "no murmurd benchmark at $MUMBLE" >&2; return 1; }
  case $w in
    text) TAG=${TAG:-} OUT=$OUT "$MUMBLE/bench.sh" text "$@" ;;
    voice) TAG=${TAG:-} OUT=$OUT "$MUMBLE/bench.sh" voice "$1" "$2" udp "${3:-15}" ;;
    connect) TAG=${TAG:-} OUT=$OUT "$MUMBLE/bench.sh" connect "$@" ;;
  esac
}

# The floors print one line; it becomes a JSON line too.
floor() {
  local w=$1; shift
  local line
  case $w in
    text)
      line=$("$WORK/floor" "$@")
      echo "$line"
      python3 - "$line" "${TAG:-}" "$@" >>"$OUT" <<'PY'
import json, re, sys
line, tag, n, msgs, gap = sys.argv[1:6]
us = float(re.search(r"writer ([0-9.]+) us/delivery", line).group(1))
print(json.dumps({"server_impl": "floor", "workload": "text", "tag": tag, "clients": int(n), "messages": int(msgs),
                  "gap_us": int(gap), "server_us_per_delivery": us}))
PY
      ;;
    voice)
      line=$("$WORK/ufloor" "$@" | tail -1)
      echo "$line"
      python3 - "$line" "${TAG:-}" "$@" >>"$OUT" <<'PY'
import json, re, sys
line, tag, n, rounds, mm, gap = sys.argv[1:7]
us = float(re.search(r"sender ([0-9.]+) us/datagram", line).group(1))
print(json.dumps({"server_impl": "floor", "workload": "voice", "tag": tag, "listeners": int(n), "rounds": int(rounds),
                  "call": "sendmmsg" if mm == "1" else "sendto", "gap_us": int(gap), "server_us_per_delivery": us}))
PY
      ;;
  esac
}

# RSA-2048 signatures per second on one core (the connect ceiling is 2 cores ÷ one signature).
rsa() {
  local line
  line=$(cd "$ROOT" && cargo bench --locked -p chatroom-bench --bench handshake -- 'server sign' 2>/dev/null | grep -E 'time:' | head -1 || true)
  echo "rsa sign: $line"
}

compare() {
  local reps=${1:-1}
  for r in $(seq 1 "$reps"); do
    TAG=t100 text 100 10 10 15;   TAG=t100 murmur text 100 10 10 15;   TAG=t100 floor text 100 1000 10000
    TAG=t500 text 500 10 10 15;   TAG=t500 murmur text 500 10 10 15;   TAG=t500 floor text 500 600 10000
    TAG=v100 voice 100 5 15;      TAG=v100 murmur voice 100 5 15;      TAG=v100 floor voice 100 1250 1 4000
    TAG=c1000 connect 1000 32;    TAG=c1000 murmur connect 1000 32
  done
}

sweep() {
  for rate in 100 200 400 800 1600; do
    TAG=sweep text 100 10 "$rate" 10
    TAG=sweep murmur text 100 10 "$rate" 10
  done
  # Past 1.6 M deliveries/s one load generator thread is the limit.
  for rate in 1600 2000 2400; do
    TAG=sweep2t THREADS=2 text 100 10 "$rate" 10
    TAG=sweep2t murmur text 100 10 "$rate" 10
  done
}

cmd=${1:-}; shift || true
trap stop_server EXIT
case "$cmd" in
  build|text|rooms|history|voice|connect|broadcast|murmur|floor|compare|sweep|rsa) "$cmd" "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 1 ;;
esac
