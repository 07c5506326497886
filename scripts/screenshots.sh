#!/usr/bin/env bash
# Screenshots of client-iced under Xvfb, connected to a real server with
# client-cli users chatting, one talking in voice (espeak-ng speech), a long
# name and a few hundred users in the list. Writes docs/screenshots/*.png:
#   connect.png, trust.png, chat.png (1024x700, the window's default size),
#   connect-800x600.png (with an error under the form), changed-800x600.png
#   (a changed server identity refused), chat-800x600.png,
#   chat-1920x1080.png, settings.png
# Usage: scripts/screenshots.sh [USERS]   (default 200 listening users)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
USERS=${1:-200}
OUT=$ROOT/docs/screenshots

pkgs=()
for p in Xvfb:xvfb import:imagemagick xdotool:xdotool espeak-ng:espeak-ng sox:sox; do
    command -v "${p%%:*}" >/dev/null || pkgs+=("${p#*:}")
done
# What winit opens at run time on X11.
for lib in libX11.so.6 libXcursor.so.1 libXrandr.so.2 libXi.so.6 libX11-xcb.so.1 libxkbcommon-x11.so.0; do
    ldconfig -p | grep -q "$lib" || pkgs+=(libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0)
done
if ((${#pkgs[@]})); then
    apt-get update -q && apt-get install -y -q "${pkgs[@]}"
fi

cargo build --workspace --bins
BIN=$ROOT/target/debug
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

# Waits up to 30 s for FILE to contain TEXT.
wait_for() {
    for _ in $(seq 300); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

# The server, on a free port.
cp tests/fixtures/test_identity.pem "$T/identity.pem"
chmod 600 "$T/identity.pem"
cat >"$T/server.toml" <<EOF
[server]
bind = "127.0.0.1:0"
key_file = "server.key"
identity_file = "identity.pem"
# Every user of this demo comes from 127.0.0.1.
max_clients_per_address = 1000
max_handshakes_per_address = 1000
EOF
(cd "$T" && exec "$BIN/server" --config server.toml >server.log 2>&1) &
PIDS+=($!)
wait_for "$T/server.log" "Server identity: "
ADDR=$(grep -m1 -o 'listening on [0-9.:]*' "$T/server.log" | awk '{print $3}')
FP=$(grep -m1 'Server identity: ' "$T/server.log" | awk '{print $3}')
KEY=$(cat "$T/server.key")
export HOME=$T/home CHATROOM_KEY=$KEY
mkdir -p "$HOME"
cli() { "$BIN/client-cli" --server "$ADDR" --fingerprint "$FP" "$@"; }

# A crowd, and one long name.
for i in $(seq -f "%03g" 1 "$USERS"); do
    cli --user "listener-$i" --listen >/dev/null 2>&1 &
    PIDS+=($!)
done
cli --user "Bartholomew Featherstonehaugh-II" --listen >/dev/null 2>&1 &
PIDS+=($!)

# Two people chatting through FIFOs.
for u in alice bob; do
    mkfifo "$T/$u.in"
    cli --user "$u" <"$T/$u.in" >"$T/$u.out" 2>&1 &
    PIDS+=($!)
    exec {fd}>"$T/$u.in"
    eval "${u}_fd=$fd"
done
wait_for "$T/alice.out" "connected to"
wait_for "$T/bob.out" "connected to"

# Someone talking in voice: a minute of speech.
espeak-ng -v en-us -s 150 -w "$T/raw.wav" "$(for _ in 1 2 3 4 5 6; do
    printf 'Hello everyone, this is Carol speaking in the voice channel. The weather is nice today and the build is green. '
done)"
sox "$T/raw.wav" -r 48000 -c 1 "$T/speech.wav"
cli --user carol --voice --input "$T/speech.wav" --output null --duration 120 >"$T/carol.out" 2>&1 &
PIDS+=($!)
wait_for "$T/carol.out" "you joined voice"

say() { echo "$2" >&"$1"; }

Xvfb :77 -screen 0 1920x1080x24 >/dev/null 2>&1 &
PIDS+=($!)
export DISPLAY=:77
for _ in $(seq 100); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.1; done

gui_config() { # $1 = extra lines
    cat >"$T/gui.toml" <<EOF
[client]
server = "$ADDR"
user = "dana"
key = "$KEY"
input = "$T/speech.wav"
output = "null"
known_servers = "$T/gui-known-servers"
$1
EOF
    chmod 600 "$T/gui.toml"
}
start_gui() {
    "$BIN/client-iced" --config "$T/gui.toml" >"$T/gui.log" 2>&1 &
    GUI=$!
    PIDS+=($GUI)
    for _ in $(seq 100); do
        WID=$(xdotool search --name "Socket Chatroom" 2>/dev/null | head -1) && [ -n "$WID" ] && break
        sleep 0.1
    done
    xdotool windowfocus --sync "$WID"
    sleep 1
}
shot() { sleep "${2:-1}"; xdotool mousemove --window "$WID" 300 300; sleep 0.3; import -window "$WID" "$OUT/$1"; echo "wrote docs/screenshots/$1"; }
mkdir -p "$OUT"

# 1. The connect screen, filled from the config; 2. first contact.
gui_config ""
start_gui
shot connect.png
xdotool key Return
shot trust.png 3
kill "$GUI"

# 3. At 800x600, with an error under the form (a wrong key).
gui_config ""
sed -i "s|^key = .*|key = \"$(printf 'A%.0s' $(seq 43))=\"|" "$T/gui.toml"
start_gui
xdotool windowsize --sync "$WID" 800 600
xdotool key Return
shot connect-800x600.png 3
kill "$GUI"

# 4. A pinned server presenting another identity, at 800x600.
echo "$ADDR SHA256:$(printf 'A%.0s' $(seq 43))" >"$T/gui-known-servers"
gui_config ""
start_gui
xdotool windowsize --sync "$WID" 800 600
xdotool key Return
shot changed-800x600.png 3
kill "$GUI"
rm -f "$T/gui-known-servers"

# 5. The chat, with the identity pinned.
gui_config "fingerprint = \"$FP\""
start_gui
xdotool key Return
wait_for "$T/alice.out" "dana joined"
sleep 1
say "$alice_fd" "morning all! did anyone try the new build?"
say "$bob_fd" "yes, voice sounds much better with the jitter buffer"
xdotool type --delay 20 "hi everyone, dana here from the desktop client"
xdotool key Return
wait_for "$T/alice.out" "<dana>"
say "$alice_fd" "welcome dana! Here is a long message to see how the log wraps it: the quick brown fox jumps over the lazy dog, again and again, until the line is far wider than any reasonable window and has to wrap onto a second or even a third line."
say "$bob_fd" "ünïcödé ✓ text renders fine; carol is talking in voice right now"
# Connect Voice sits at the bottom right of the voice panel.
eval "$(xdotool getwindowgeometry --shell "$WID")"
xdotool mousemove --window "$WID" $((WIDTH - 127)) $((HEIGHT - 36)) click 1
shot chat.png 4
xdotool windowsize --sync "$WID" 800 600
shot chat-800x600.png 2
xdotool windowsize --sync "$WID" 1920 1080
shot chat-1920x1080.png 2
# Settings: the button left of Disconnect.
xdotool mousemove --window "$WID" $((1920 - 160)) 30 click 1
shot settings.png 3
