#!/usr/bin/env bash
# Screenshots of client-iced under Xvfb, connected to a real server (the
# shipped config.toml, in a scratch directory) with client-cli users chatting
# in rooms and privately, one talking in voice (espeak-ng speech), a long
# name and a few hundred users in the list. Writes docs/screenshots/*.png:
#   connect.png, trust.png, chat.png (1024x700, the window's default size:
#   rooms with unread counts, stored lines muted), connect-800x600.png (with
#   an error under the form), changed-800x600.png (a changed server identity
#   refused), chat-800x600.png, chat-1920x1080.png, settings.png,
#   history.png (older lines paged in), dm.png (a private conversation)
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

cargo build -p server -p client-cli -p client-iced --bins
BIN=$ROOT/target/debug
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

# Waits up to 60 s for FILE to contain TEXT.
wait_for() {
    for _ in $(seq 600); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

# The server, on a free port, from the shipped config (its history in
# $T/data). Every user of this demo comes from 127.0.0.1; a join delivers
# the last 8 stored lines, so older ones page in.
cp tests/fixtures/test_identity.pem "$T/server_identity.pem"
chmod 600 "$T/server_identity.pem"
sed -e 's/^max_clients_per_address = [0-9]*/max_clients_per_address = 1000/' \
    -e 's/^max_handshakes_per_address = [0-9]*/max_handshakes_per_address = 1000/' \
    -e 's/^history_on_join = [0-9]*/history_on_join = 8/' config.toml >"$T/config.toml"
(cd "$T" && exec "$BIN/server" --config config.toml --bind 127.0.0.1:0 >server.log 2>&1) &
PIDS+=($!)
wait_for "$T/server.log" "Server identity: "
ADDR=$(grep -m1 -o 'listening on [0-9.:]*' "$T/server.log" | awk '{print $3}')
FP=$(grep -m1 'Server identity: ' "$T/server.log" | awk '{print $3}')
KEY=$(cat "$T/server.key")
export HOME=$T/home CHATROOM_KEY=$KEY
mkdir -p "$HOME"
cli() { "$BIN/client-cli" --server "$ADDR" --fingerprint "$FP" "$@"; }

# Two people chatting through FIFOs, in #general and #dev.
for u in alice bob; do
    mkfifo "$T/$u.in"
    cli --user "$u" --room general --room dev <"$T/$u.in" >"$T/$u.out" 2>&1 &
    PIDS+=($!)
    exec {fd}>"$T/$u.in"
    eval "${u}_fd=$fd"
done
wait_for "$T/alice.out" "connected to"
wait_for "$T/bob.out" "connected to"
say() { echo "$2" >&"$1"; }

# What was said before dana came: stored, shown to her as history.
for line in "alice:morning! standup in 10" "bob:coffee first" "alice:release notes are in the wiki" \
    "bob:the deb builds on Debian 12 now" "alice:nice. anyone seen the flaky voice test?" \
    "bob:fixed on main, it was the jitter test's clock" "alice:great, thanks bob" \
    "bob:lunch at 12:30?" "alice:sure" "bob:I'll book a table" "alice:see you there" \
    "bob:back, that was good" "alice:rooms are merged on main" "bob:history too: scroll up to see it"; do
    who=${line%%:*}
    eval "fd=\${${who}_fd}"
    say "$fd" "${line#*:}"
    # Seen by the other one: stored, in order.
    [ "$who" = alice ] && other=bob || other=alice
    wait_for "$T/$other.out" "${line#*:}"
done

# A crowd, and one long name (after the two, who must not wait behind
# it for their handshakes).
for i in $(seq -f "%03g" 1 "$USERS"); do
    cli --user "listener-$i" --listen >/dev/null 2>&1 &
    PIDS+=($!)
done
cli --user "Bartholomew Featherstonehaugh-II" --listen >/dev/null 2>&1 &
PIDS+=($!)

# Someone talking in voice: a minute of speech.
espeak-ng -v en-us -s 150 -w "$T/raw.wav" "$(for _ in 1 2 3 4 5 6; do
    printf 'Hello everyone, this is Carol speaking in the voice channel. The weather is nice today and the build is green. '
done)"
sox "$T/raw.wav" -r 48000 -c 1 "$T/speech.wav"
cli --user carol --voice --input "$T/speech.wav" --output null --duration 120 >"$T/carol.out" 2>&1 &
PIDS+=($!)
wait_for "$T/carol.out" "you joined voice"

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
say "$alice_fd" "morning dana! did you try the new build?"
xdotool type --delay 20 "hi everyone, dana here from the desktop client"
xdotool key Return
wait_for "$T/alice.out" "<dana>"
say "$alice_fd" "welcome dana! Here is a long message to see how the log wraps it: the quick brown fox jumps over the lazy dog, again and again, until the line is far wider than any reasonable window and has to wrap onto a second line."
say "$bob_fd" "ünïcödé ✓ text renders fine; carol is talking in voice right now"
# dana joins #dev (typed; she stays in #general), where news waits for her,
# one line mentioning her; bob writes to her privately.
xdotool type --delay 20 "/join dev"
xdotool key Return
wait_for "$T/alice.out" "dana joined #dev"
say "$alice_fd" "/room dev"
say "$alice_fd" "@dana can you review the GUI branch?"
say "$alice_fd" "no rush, after lunch is fine"
say "$bob_fd" "/room dev"
say "$bob_fd" "CI is green again"
say "$bob_fd" "/msg dana psst: cake in the kitchen"
wait_for "$T/alice.out" "CI is green again"
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
xdotool key Escape
xdotool windowsize --sync "$WID" 1024 700
sleep 1

# History: "Load older messages" at the top of #general's log pages in the
# lines before the last 8.
xdotool mousemove --window "$WID" "${OLDER_X:-482}" "${OLDER_Y:-70}" click 1
shot history.png 3

# A private conversation: bob, under Private in the room list.
xdotool mousemove --window "$WID" "${DM_X:-60}" "${DM_Y:-207}" click 1
sleep 1
xdotool type --delay 20 "on my way! chocolate?"
xdotool key Return
wait_for "$T/bob.out" "on my way"
say "$bob_fd" "/msg dana lemon. I saved you a slice"
shot dm.png 2
