#!/usr/bin/env python3
"""Scores the whole voice pipeline as users hear it (the design's "Voice quality targets", quoted in the README).

Speech from espeak-ng goes through `client-cli --voice` (noise suppression
and voice activation on, the defaults), the server's relay and a second
`client-cli --voice` that records the room. A UDP proxy between the clients
and the relay applies loss both ways (random, or Gilbert-Elliott bursts with
a mean of 3 packets; --one-way: on the way down only) and, with --jitter MS,
random extra delay. The recording is aligned with the source and scored
with PESQ wide-band (ITU-T P.862.2). --seeds N repeats each link with N loss
patterns and gives the mean. --offline runs the loss_sim simulator
(tests/bin/loss_sim.rs) instead (simulated network and clock: fast and deterministic, for trying
choices; the figures in the README come from the real clients).

Echo cancellation (link "echo"): a far-end client plays speech into the
room; the near-end client (`--echo-room MS`: its input hears its own
playback through a synthetic room, direct path after MS ms at -6 dB)
is silent for 4 s, then talks over the far end. Reported: ERLE over the
last 2 s of far-end single talk, from what the far end receives with the
gate open and noise suppression off, against the same run with --no-aec;
and the double-talk score: PESQ-WB of the near end's speech as the far end
receives it (defaults: noise suppression and voice activation on), against
the clean near-end source, with and without echo cancellation. --offline
runs the same through tests/bin/echo_sim.rs (the send pipeline and the
room, no network, no clock). --echo-delay MS sets the room (default 100).

Usage: scripts/voice-quality.sh [LINK...] [--seeds N] [--jitter MS] [--one-way] [--offline] [--echo-delay MS]
       (sets up a venv with numpy, scipy, pesq)
For experiments: LOSS_SIM_ARGS adds flags to loss_sim (e.g. "--fixed 2"),
TALKER_ARGS to the talking client-cli (e.g. "--bitrate 21000").
"""
import json, os, random, select, signal, socket, subprocess, sys, tempfile, threading, time, wave

import numpy as np
from scipy.signal import resample_poly
from pesq import pesq

BIN = os.environ.get("CHATROOM_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "target", "debug"))


def read_wav(path):
    with wave.open(path) as w:
        assert w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768, w.getframerate()


class Proxy:
    """Lossy UDP proxy: one upstream socket per client address."""

    def __init__(self, loss, burst, jitter_ms, seed, one_way=False):
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.loss, self.burst, self.jitter = loss, burst, jitter_ms / 1000
        self.one_way = one_way
        self.rng = random.Random(seed)
        self.bad = {"up": False, "down": False}
        self.dropped = self.sent = 0
        self.stop = False
        self.queue = []
        self.lock = threading.Lock()

    def port(self):
        return self.front.getsockname()[1]

    def drop(self, direction):
        if self.loss <= 0 or (self.one_way and direction == "up"):
            return False
        if self.burst <= 1:
            return self.rng.random() < self.loss
        r = 1 / self.burst
        p = self.loss * r / (1 - self.loss)
        u = self.rng.random()
        self.bad[direction] = (u >= r) if self.bad[direction] else (u < p)
        return self.bad[direction]

    def schedule(self, direction, data, sock, addr):
        if self.drop(direction):
            self.dropped += 1
            return
        with self.lock:
            self.queue.append((time.monotonic() + self.rng.random() * self.jitter, data, sock, addr))

    def run(self, upstream):
        ups = {}
        def pump():
            while not self.stop:
                socks = [self.front] + list(ups.values())
                ready, _, _ = select.select(socks, [], [], 0.002)
                for s in ready:
                    data, addr = s.recvfrom(2048)
                    if s is self.front:
                        if addr not in ups:
                            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            u.bind(("127.0.0.1", 0))
                            u.connect(upstream)
                            ups[addr] = u
                        self.schedule("up", data, ups[addr], None)
                    else:
                        client = next(a for a, u in ups.items() if u is s)
                        self.schedule("down", data, self.front, client)
                now = time.monotonic()
                with self.lock:
                    due = [q for q in self.queue if q[0] <= now]
                    self.queue = [q for q in self.queue if q[0] > now]
                for _, data, sock, addr in due:
                    (sock.sendto(data, addr) if addr else sock.send(data))
                    self.sent += 1
        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()


def run_link(name, loss, burst, source48, workdir, jitter_ms, seed=1, one_way=False):
    proxy = Proxy(loss, burst, jitter_ms, seed, one_way)
    cfg = os.path.join(workdir, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nbind = "127.0.0.1:0"\nkey_file = "server.key"\nidentity_file = "identity.pem"\nvoice_public_port = {proxy.port()}\n')
    os.chmod(cfg, 0o600)
    srv = subprocess.Popen([os.path.join(BIN, "server"), "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = None
    for line in srv.stdout:
        if "listening on" in line:
            addr = line.split()[-1]
            break
    host, port = addr.rsplit(":", 1)
    proxy.run((host, int(port)))
    env = dict(os.environ, HOME=workdir)
    env["CHATROOM_KEY"] = open(os.path.join(workdir, "server.key")).read().strip()
    rec = os.path.join(workdir, f"{name}-rec.wav")
    cli = os.path.join(BIN, "client-cli")
    listener = subprocess.Popen([cli, "--server", addr, "--user", "listener", "--voice", "--json", "--input", "null", "--output", rec],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_listener = None
    for line in listener.stdout:
        if '"voice_joined"' in line:
            t_listener = joined_at(line)
            break
    talker = subprocess.run([cli, "--server", addr, "--user", "talker", "--voice", "--json", "--input", source48, "--output", "null"] + os.environ.get("TALKER_ARGS", "").split(),
                            env=env, capture_output=True, text=True, timeout=120)
    t_talker = next((joined_at(l) for l in talker.stdout.splitlines() if '"voice_joined"' in l), None)
    time.sleep(0.5)
    listener.send_signal(signal.SIGINT)
    out, err = listener.communicate(timeout=30)
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=30)
    proxy.stop = True
    counters = [l for l in err.splitlines() if "voice: sent" in l]
    # voice_stats every 2 s: what protection the talker sent with, what
    # playout delay the listener aimed for.
    repeats = [json.loads(l)["stats"]["repeats"] for l in talker.stdout.splitlines() if '"voice_stats"' in l]
    delays = [json.loads(l)["stats"]["playout_delay_ms"] for l in out.splitlines() if '"voice_stats"' in l]
    # The recording starts when the listener joined, the source when the
    # talker joined (both engines start right before the event is printed).
    offset = (t_talker - t_listener) if (t_talker and t_listener) else None
    detail = (counters[-1].split("voice: ")[1].split(";")[0] if counters else "?") + \
        f"; talker repeats {repeats}, listener delay {delays} ms"
    return rec, detail, proxy.dropped, offset


def start_server(workdir, name):
    cfg = os.path.join(workdir, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write('[server]\nbind = "127.0.0.1:0"\nkey_file = "server.key"\nidentity_file = "identity.pem"\n')
    os.chmod(cfg, 0o600)
    srv = subprocess.Popen([os.path.join(BIN, "server"), "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in srv.stdout:
        if "listening on" in line:
            return srv, line.split()[-1]
    raise RuntimeError("the server did not start")


def run_echo(near, far, workdir, delay_ms, near_args, tag):
    """The far end plays `far`; the near end plays `near` through the echo
    room. Returns what the far end recorded (the near end's stream) and the
    near end's counters line."""
    srv, addr = start_server(workdir, f"echo-{tag}")
    env = dict(os.environ, HOME=workdir)
    env["CHATROOM_KEY"] = open(os.path.join(workdir, "server.key")).read().strip()
    cli = os.path.join(BIN, "client-cli")
    rec = os.path.join(workdir, f"echo-{tag}-far-rec.wav")
    near_p = subprocess.Popen([cli, "--server", addr, "--user", "near", "--voice", "--input", near, "--output", "null",
                               "--echo-room", str(delay_ms)] + near_args,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in near_p.stdout:
        if "you joined voice" in line:
            break
    far_p = subprocess.Popen([cli, "--server", addr, "--user", "far", "--voice", "--input", far, "--output", rec],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, near_err = near_p.communicate(timeout=120)
    far_p.send_signal(signal.SIGINT)
    far_p.communicate(timeout=30)
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=30)
    counters = [l for l in near_err.splitlines() if "voice: sent" in l]
    return rec, (counters[-1].split("; ")[-1] if counters else "?")


def onset(src, rec):
    """Where `src` starts in `rec`, in samples (cross-correlation)."""
    n = len(src) + len(rec)
    xc = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(src, n)), n)
    return int(np.argmax(xc[: max(1, len(rec) - len(src) // 2)]))


def power_db(x):
    return 10 * np.log10(np.mean(np.square(x)) + 1e-20)


def echo_report(work, src_speech, far, args):
    """The echo cancellation figures (see the module's docs)."""
    lead = 4.0
    near = os.path.join(work, "near.wav")
    subprocess.run(["sox", src_speech, near, "pad", str(lead), "0"], check=True)
    speech, _ = read_wav(src_speech)
    print(f"echo room: direct path after {args.echo_delay} ms at -6 dB; {lead:.0f} s of far-end single talk, then double talk")
    if args.offline:
        sim = os.path.join(os.path.dirname(__file__), "..", "target", "release", "echo_sim")
        out = {}
        for tag, extra in [("aec", []), ("no-aec", ["--no-aec"])]:
            d = os.path.join(work, f"echo-sim-{tag}")
            line = subprocess.run([sim, near, far, d, "--delay", str(args.echo_delay)] + extra,
                                  check=True, capture_output=True, text=True).stdout.strip()
            rec, _ = read_wav(os.path.join(d, "received.wav"))
            trimmed = os.path.join(d, "double-talk.wav")
            write_wav(trimmed, rec[int(lead * 48000):])
            out[tag] = (score(src_speech, trimmed)[0], line)
        print(f"offline: {out['aec'][1]}; double talk PESQ-WB {out['aec'][0]:.2f} (without echo cancellation {out['no-aec'][0]:.2f})")
        return
    # ERLE: gate open, no noise suppression, so what the far end receives
    # is the canceller's output through Opus.
    powers, notes = {}, {}
    for tag, extra in [("aec", []), ("no-aec", ["--no-aec"])]:
        rec_path, note = run_echo(near, far, work, args.echo_delay, ["--vad-threshold", "0", "--no-denoise"] + extra, f"erle-{tag}")
        rec, _ = read_wav(rec_path)
        at = onset(speech, rec)
        powers[tag] = power_db(rec[max(0, at - 2 * 48000) : max(1, at - 4800)])
        notes[tag] = note
    erle = powers["no-aec"] - powers["aec"]
    print(f"real clients: ERLE {erle:.1f} dB over the last 2 s of single talk (echo {powers['no-aec']:.1f} dBFS, left {powers['aec']:.1f} dBFS; near end: {notes['aec']})")
    scores = {}
    for tag, extra in [("aec", []), ("no-aec", ["--no-aec"])]:
        rec_path, _ = run_echo(near, far, work, args.echo_delay, extra, f"dt-{tag}")
        rec, _ = read_wav(rec_path)
        trimmed = os.path.join(work, f"echo-dt-{tag}.wav")
        write_wav(trimmed, rec[max(0, onset(speech, rec) - 4800):])
        scores[tag] = score(src_speech, trimmed)[0]
    print(f"real clients: double talk PESQ-WB {scores['aec']:.2f} (without echo cancellation {scores['no-aec']:.2f})")


def write_wav(path, x):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())


def joined_at(line):
    from datetime import datetime
    t = json.loads(line)["time"]
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def score(source_path, rec_path):
    src, rate = read_wav(source_path)
    rec, rate2 = read_wav(rec_path)
    assert rate == rate2 == 48000
    n = len(src) + len(rec)
    xc = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(src, n)), n)
    lag = int(np.argmax(xc[: len(rec) - len(src) // 2]))
    aligned = rec[lag : lag + len(src)]
    aligned = np.pad(aligned, (0, len(src) - len(aligned)))
    ref16 = resample_poly(src, 1, 3)
    deg16 = resample_poly(aligned, 1, 3)
    return pesq(16000, ref16, deg16, "wb"), lag / 48


def main():
    work = tempfile.mkdtemp(prefix="voice-quality-")
    fixture = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "test_identity.pem")
    with open(fixture) as f, open(os.path.join(work, "identity.pem"), "w") as g:
        g.write(f.read())
    os.chmod(os.path.join(work, "identity.pem"), 0o600)
    text = ("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
            "It is easy to tell the depth of a well. These days a chicken leg is a rare dish.")
    raw = os.path.join(work, "speech-raw.wav")
    src = os.path.join(work, "speech.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-r", "48000", "-c", "1", "-b", "16", src, "norm", "-3"], check=True)
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("links", nargs="*", help="clean random-5 random-10 bursty-10 echo (default: all but echo)")
    ap.add_argument("--echo-delay", type=int, default=100, help="echo: the room's delay, ms (default 100)")
    ap.add_argument("--jitter", type=float, default=0.0, help="extra random delay per packet, ms (default 0)")
    ap.add_argument("--one-way", action="store_true",
                    help="loss on the way down (relay to listener) only, as in the design's libopus reference columns")
    ap.add_argument("--offline", action="store_true",
                    help="simulated network and clock (tests/bin/loss_sim.rs, release build): fast, "
                         "deterministic, for trying choices; the real clients decide")
    ap.add_argument("--seeds", type=int, default=1, help="runs per link with different loss patterns (their mean is the figure)")
    args = ap.parse_args()
    links = [("clean", 0.0, 1), ("random-5", 0.05, 1), ("random-10", 0.10, 1), ("bursty-10", 0.10, 3)]
    if "echo" in args.links:
        far_raw = os.path.join(work, "far-raw.wav")
        far = os.path.join(work, "far.wav")
        far_text = text + " Rice is often served in round bowls. The juice of lemons makes fine punch."
        subprocess.run(["espeak-ng", "-s", "150", "-w", far_raw, far_text], check=True)
        subprocess.run(["sox", far_raw, "-r", "48000", "-c", "1", "-b", "16", far, "norm", "-3"], check=True)
        near_raw = os.path.join(work, "near-raw.wav")
        near = os.path.join(work, "near-speech.wav")
        near_text = ("A large size in stockings is hard to sell. The boy was there when the sun rose. "
                     "A rod is used to catch pink salmon. The source of the huge river is the clear spring.")
        subprocess.run(["espeak-ng", "-v", "en+f3", "-s", "150", "-w", near_raw, near_text], check=True)
        subprocess.run(["sox", near_raw, "-r", "48000", "-c", "1", "-b", "16", near, "norm", "-3"], check=True)
        echo_report(work, near, far, args)
        if args.links == ["echo"]:
            return
    if args.links:
        links = [l for l in links if l[0] in args.links]
    print(f"jitter up to {args.jitter:.0f} ms per packet, loss applied {'on the way down only' if args.one_way else 'both ways'}")
    print(f"{'link':<10} {'PESQ-WB':>8} {'latency':>8}  counters (listener)")
    if args.offline:
        sim = os.path.join(os.path.dirname(__file__), "..", "target", "release", "loss_sim")
        for name, loss, burst in links:
            scores = []
            for seed in range(1, args.seeds + 1):
                rec = os.path.join(work, f"{name}-{seed}-sim.wav")
                cmd = [sim, src, rec, "--loss", str(loss), "--burst", str(burst), "--jitter", str(int(args.jitter)),
                       "--seed", str(seed)] + (["--one-way"] if args.one_way else [])
                cmd += os.environ.get("LOSS_SIM_ARGS", "").split()
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
                mos, delay = score(src, rec)
                scores.append(mos)
            print(f"{name:<10} {np.mean(scores):8.2f} {delay:6.0f}ms  {out}  (min {min(scores):.2f})", flush=True)
        return
    for name, loss, burst in links:
        scores = []
        for seed in range(1, args.seeds + 1):
            rec, counters, dropped, offset = run_link(name, loss, burst, src, work, args.jitter, seed, args.one_way)
            mos, delay = score(src, rec)
            scores.append(mos)
            # Capture-to-playback latency: where the source sits in the
            # recording, minus how much later the talker joined (±5 ms:
            # event timestamps).
            latency = f"{delay - offset * 1000:6.0f}ms" if offset is not None else "     ?"
            print(f"{name:<10} {mos:8.2f} {latency}  proxy dropped {dropped}; {counters}", flush=True)
        if args.seeds > 1:
            print(f"{name:<10} {np.mean(scores):8.2f}  mean of {args.seeds} (min {min(scores):.2f})", flush=True)


if __name__ == "__main__":
    main()
