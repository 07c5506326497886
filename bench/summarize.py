#!/usr/bin/env python3
"""Turns bench/run.sh's JSON lines into the tables of BENCHMARKS.md.

    python3 bench/summarize.py /tmp/chatroom-bench/results.jsonl

Lines of one tag (one workload run on our server, murmurd and the floor,
back to back) are compared with each other: ratios are taken per repeat
(the i-th run of each), then the median; figures are medians of repeats.
"""
import json
import statistics
import sys
from collections import defaultdict


def impl(d):
    return d.get("server_impl") or "murmurd"


def med(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(x, digits=2):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def paired_ratio(xs, ys, key):
    """Median over repeats of x/y, pairing the i-th run of each (one repeat
    runs them back to back)."""
    rs = [ratio(x.get(key), y.get(key)) for x, y in zip(xs, ys)]
    rs = [r for r in rs if r is not None]
    return statistics.median(rs) if rs else None


def main(path):
    groups = defaultdict(lambda: defaultdict(list))
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        # A sweep's points share a tag: the rate tells them apart (the floor
        # has no rate and goes with every point of its tag).
        rate = d.get("rate_per_sender") if d.get("workload") == "text" else None
        groups[(d.get("tag", ""), d.get("workload"), rate)][impl(d)].append(d)
    for (tag, workload, rate), by in list(groups.items()):
        if rate is None and set(by) == {"floor"}:
            others = [k for k in groups if k[0] == tag and k[1] == workload and k[2] is not None]
            for k in others:
                groups[k]["floor"].extend(by["floor"])
            if others:
                del groups[(tag, workload, rate)]

    print("| tag | workload | rate | runs | ours µs/delivery | murmurd µs/delivery | floor µs | ours ÷ murmurd "
          "| ours ÷ floor | ours p50 / p99 ms | murmurd p50 / p99 ms | ours / murmurd server CPU % | ours lost "
          "| deliveries/s ours / murmurd |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (tag, workload, rate), by in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2] or 0)):
        if workload not in ("text", "voice"):
            continue
        ours, mur, flo = by.get("socket-chatroom", []), by.get("murmurd", []), by.get("floor", [])
        o, m, f = med(ours, "server_us_per_delivery"), med(mur, "server_us_per_delivery"), med(flo, "server_us_per_delivery")
        clients = ours[0].get("clients", "") if ours else ""
        print(f"| {tag} | {workload} ({clients} clients) | {fmt(rate, 0) if rate else '–'} | {len(ours)} "
              f"| {fmt(o)} | {fmt(m)} | {fmt(f)} "
              f"| {fmt(paired_ratio(ours, mur, 'server_us_per_delivery'))} "
              f"| {fmt(paired_ratio(ours, flo, 'server_us_per_delivery'))} "
              f"| {fmt(med(ours, 'lat_p50_ms'))} / {fmt(med(ours, 'lat_p99_ms'))} "
              f"| {fmt(med(mur, 'lat_p50_ms'))} / {fmt(med(mur, 'lat_p99_ms'))} "
              f"| {fmt(med(ours, 'server_cpu_pct'), 0)} / {fmt(med(mur, 'server_cpu_pct'), 0)} "
              f"| {fmt(med(ours, 'lost'), 0)} "
              f"| {fmt(med(ours, 'deliveries_per_s'), 0)} / {fmt(med(mur, 'deliveries_per_s'), 0)} |")

    print()
    print("| tag | runs | ours conn/s | murmurd conn/s | ours ÷ murmurd | ours ms CPU/connect | murmurd ms CPU/connect "
          "| ours KiB/idle client | murmurd KiB/idle client | ours connect p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (tag, workload, _), by in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if workload != "connect":
            continue
        ours, mur = by.get("socket-chatroom", []), by.get("murmurd", [])
        oc, mc = med(ours, "conn_per_s"), med(mur, "conn_per_s")
        print(f"| {tag} | {len(ours)} | {fmt(oc, 0)} | {fmt(mc, 0)} | {fmt(paired_ratio(ours, mur, 'conn_per_s'))} "
              f"| {fmt(med(ours, 'server_ms_per_connect'))} | {fmt(med(mur, 'server_ms_per_connect'))} "
              f"| {fmt(med(ours, 'kib_per_client'), 1)} | {fmt(med(mur, 'kib_per_client'), 1)} "
              f"| {fmt(med(ours, 'connect_p50_ms'), 1)} / {fmt(med(ours, 'connect_p99_ms'), 1)} |")
        bc = [r for r in ours if "broadcast_p99_ms" in r]
        for r in bc:
            print(f"\nbroadcast to {r['broadcast_expected']:,}: delivered {r['broadcast_delivered']:,}, "
                  f"p50 {r['broadcast_p50_ms']} ms, p99 {r['broadcast_p99_ms']} ms, max {r['broadcast_max_ms']} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/chatroom-bench/results.jsonl")
