#!/usr/bin/env bash
# Scores voice quality (PESQ-WB) on a clean, 5 %, 10 % and bursty link;
# with `echo`, echo cancellation (ERLE and the double-talk score).
# Needs espeak-ng and sox (apt) and Python's numpy, scipy and pesq (a venv).
set -euo pipefail
cd "$(dirname "$0")/.."
for p in espeak-ng sox; do command -v "$p" >/dev/null || { apt-get install -y "$p" || sudo apt-get install -y "$p"; }; done
venv="${VOICE_VENV:-target/voice-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q numpy scipy pesq
cargo build --locked --workspace --bins
[[ " $* " == *" --offline "* ]] && cargo build --locked --release -p socket-chatroom-tests --bin loss_sim --bin echo_sim
exec "$venv/bin/python" scripts/voice_quality.py "$@"
