#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine with Rust:
# installs the system packages the build needs when they are missing, builds
# the binaries once, then runs unit, protocol and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v kill >/dev/null 2>&1 || need+=(procps)
# Voice: cmake builds the bundled libopus; cpal's ALSA backend needs its headers.
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev)
# client-cli's line editor is tested on a real terminal, inside tmux.
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# The Debian packages' test checks the systemd unit offline (no systemd runs).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "test.sh: installing ${need[*]}" >&2
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: Rust (cargo) is required: https://rustup.rs" >&2
  exit 1
fi

# One build of the binaries the end-to-end tests start, then the tests, in
# the same profile and target directory (dependencies are built once).
# Benches are timing loops, not tests: `cargo bench` runs them (the
# chatroom-bench package holds nothing else, so it is left out here).
SECONDS=0
cargo build --locked --workspace --bins
built=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast --workspace --exclude chatroom-bench --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "$passed passed, $failed failed (binaries built in ${built} s; tests built and run in $((SECONDS - built)) s)"
exit "$status"
