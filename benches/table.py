#!/usr/bin/env python3
"""Prints the README's Performance tables from one run: criterion's medians
(target/criterion/*/*/new/), the interleaved decode medians
(target/wsproto-bench/interleaved/*.tsv) and the end-to-end rows of benches/e2e.sh
(target/wsproto-bench/e2e.tsv), with ratios ours / best peer and the issue's targets.

    python3 benches/table.py [TARGET_DIR]

Ratios are speed ratios: above 1.00x we are faster (the best peer's median time divided by
ours, or our msgs/s divided by the best peer's).
"""

import json
import os
import statistics
import sys
from pathlib import Path

OURS = "wsproto"
PEERS = ["tungstenite", "fastwebsockets", "tokio-websockets", "sockudo-ws"]
IMPLS = [OURS] + PEERS

target = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target"))
results = {}  # group -> function -> (median ns, throughput bytes)
for bench in (target / "criterion").glob("*/*/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    throughput = (meta.get("throughput") or {}).get("Bytes")
    results.setdefault(meta["group_id"], {})[meta["function_id"]] = (
        estimates["median"]["point_estimate"],
        throughput,
    )

verdicts = []


def rate(ns, nbytes):
    per_sec = nbytes / (ns / 1e9)
    if per_sec >= 1 << 30:
        return f"{per_sec / (1 << 30):.2f} GiB/s"
    return f"{per_sec / (1 << 20):.0f} MiB/s"


def duration(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def best_peer(group):
    peers = [(group[p][0], p) for p in PEERS if p in group]
    return min(peers) if peers else (None, None)


def verdict_of(name, ratio, goal, what="x"):
    """The target cell for `ratio` against `goal`, and the same line for the summary."""
    ok = ratio >= goal
    shown = f"{goal:.0%}" if what == "%" else f"{goal:.2f}x"
    got = f"{ratio:.0%}" if what == "%" else f"{ratio:.2f}x"
    verdicts.append(f"{name}: {got} vs >= {shown}: {'met' if ok else 'MISSED'}")
    return f">= {shown} {'met' if ok else 'MISSED'}"


def peer_table(title, prefix, targets, extra=None):
    groups = sorted(g for g in results if g.startswith(prefix))
    if not groups:
        return
    print(f"### {title}\n")
    print("| case | " + " | ".join(IMPLS) + " | ours / best peer | target |")
    print("|---|" + "---|" * (len(IMPLS) + 2))
    for name in groups:
        group = results[name]
        if OURS not in group:
            continue
        cells = []
        for impl in IMPLS:
            if impl in group:
                ns, nbytes = group[impl]
                cells.append(rate(ns, nbytes) if nbytes else duration(ns))
            else:
                cells.append("n/a")
        peer_ns, peer = best_peer(group)
        ratio = peer_ns / group[OURS][0] if peer_ns else None
        goal = targets(name)
        verdict = ""
        if isinstance(goal, tuple):
            # Against one named peer rather than the best.
            goal, against = goal
            if against in group:
                ratio, peer = group[against][0] / group[OURS][0], against
        if goal and ratio is not None:
            verdict = verdict_of(name, ratio, goal)
        ratio_cell = f"{ratio:.2f}x ({peer})" if ratio else "n/a"
        case = name[len(prefix):]
        print(f"| {case} | " + " | ".join(cells) + f" | {ratio_cell} | {verdict} |")
        if extra:
            extra(name, group)
    print()


STREAMING = "wsproto-streaming"


def decode_extra(name, group):
    ours = group[OURS][0]
    if STREAMING in group:
        # Issue 18: streaming at least 1.3x the fastest peer's complete-message API, and at
        # least 90% of copying the stream through one 64 KiB buffer (masked binary).
        streamed = group[STREAMING][0]
        peer_ns, peer = best_peer(group)
        ratio = peer_ns / streamed
        verdict = verdict_of(f"{name} streaming", ratio, 1.3)
        print(f"| ↳ wsproto streaming (`Config::stream_messages`) | {rate(*group[STREAMING])} "
              f"| {ratio:.2f}x ({peer}) | | | | | {verdict} |")
        if "memcpy-64KiB-reads" in group and "binary" in name:
            share = group["memcpy-64KiB-reads"][0] / streamed
            verdict = verdict_of(f"{name} streaming", share, 0.9, "%")
            print(f"| ↳ streaming against memcpy through 64 KiB reads | | ours = {share:.0%} "
                  f"of memcpy | | | | | {verdict} |")
    if "memcpy-64KiB-reads" in group:
        share = group["memcpy-64KiB-reads"][0] / ours
        print(f"| ↳ memcpy of the stream, 64 KiB reads | {rate(*group['memcpy-64KiB-reads'])} "
              f"| ours = {share:.0%} of memcpy | | | | | |")
    if "copy-into-messages" in group:
        share = group["copy-into-messages"][0] / ours
        print(f"| ↳ each read copied into a message-sized buffer (and unmasked) | "
              f"{rate(*group['copy-into-messages'])} | ours = {share:.0%} of it | | | | | |")
    if "wsproto-same-bytes-as-binary" in group:
        binary = group["wsproto-same-bytes-as-binary"][0]
        print(f"| ↳ wsproto, same bytes as binary | {rate(*group['wsproto-same-bytes-as-binary'])} "
              f"| text validation = {(ours - binary) / ours:.0%} of our time | | | | | |")


def decode_target(name):
    """Issue 18: 16 B text 1.5x the fastest peer, 1 KiB 1.2x (both roles), large messages
    through the complete-message API 0.97x (the floor every fast peer sits on)."""
    if "16B" in name:
        return 1.5
    if "1KiB_x" in name:
        return 1.2
    return 0.97


def encode_target(name):
    return 1.2 if name == "encode_client_masked_16B" else None


print("## Performance\n")
print("Medians of one run on one machine; each cell is payload throughput "
      "(handshake: time per handshake).\n")
peer_table("Decode (complete messages, 64 KiB reads)", "decode_", decode_target, decode_extra)
# The same decode cases with the implementations taking turns (DECODE_INTERLEAVED=1): a slow
# spell of the shared machine lands on all of them alike, where criterion's sequential groups
# can catch one implementation in it.
interleaved = {}  # case -> name -> median seconds
for tsv in sorted((target / "wsproto-bench" / "interleaved").glob("*.tsv")):
    for line in tsv.read_text().splitlines():
        name, seconds, _ = line.split("\t")
        interleaved.setdefault(tsv.stem, {})[name] = float(seconds)
if interleaved:
    print("### Decode again, the implementations taking turns (median of 41 rounds each)\n")
    print("| case | ours / best peer | streaming / best peer | ours, streaming / memcpy "
          "through 64 KiB reads | target |")
    print("|---|---|---|---|---|")
    for case, times in sorted(interleaved.items()):
        peers = [(times[p], p) for p in PEERS if p in times]
        if OURS not in times or not peers:
            continue
        peer_s, peer = min(peers)
        ratio = peer_s / times[OURS]
        name = f"decode_{case} interleaved"
        verdict = verdict_of(name, ratio, decode_target(case))
        streamed = ""
        if STREAMING in times:
            s_ratio = peer_s / times[STREAMING]
            verdict += "; streaming " + verdict_of(f"{name} streaming", s_ratio, 1.3)
            streamed = f"{s_ratio:.2f}x"
        memcpy = ""
        if "memcpy-64KiB-reads" in times:
            ref = times["memcpy-64KiB-reads"]
            memcpy = f"{ref / times[OURS]:.0%}"
            if STREAMING in times:
                share = ref / times[STREAMING]
                memcpy += f", {share:.0%}"
                if "binary" in case:
                    verdict += "; vs memcpy " + verdict_of(f"{name} streaming", share, 0.9, "%")
        print(f"| {case} | {ratio:.2f}x ({peer}) | {streamed} | {memcpy} | {verdict} |")
    print()

peer_table("Encode (one message queued and written, per message)", "encode_", encode_target)
peer_table("Handshake (browser request parsed, 101 built)", "handshake_",
           lambda _: (1.2, "tokio-websockets"))

# Primitives: no peers, references side by side.
prims = sorted(g for g in results if g.startswith(("mask_", "utf8_")))
if prims:
    print("### Masking and UTF-8 validation alone\n")
    print("| case | implementation: throughput |")
    print("|---|---|")
    for name in prims:
        group = results[name]
        cells = ", ".join(f"{fn}: {rate(ns, b)}" for fn, (ns, b) in sorted(group.items()))
        print(f"| {name} | {cells} |")
    print()

deflate = sorted(g for g in results if g.startswith("deflate_"))
if deflate:
    print("### permessage-deflate echo (client + server in memory; no peer implements it)\n")
    print("| message | mode | echo throughput | time per echo |")
    print("|---|---|---|---|")
    for name in deflate:
        for fn, (ns, b) in sorted(results[name].items()):
            print(f"| {name[len('deflate_echo_'):]} | {fn} | {rate(ns, b)} | {duration(ns)} |")
    print()
    memory = target / "wsproto-bench" / "deflate_memory.tsv"
    if memory.exists():
        print("Heap per connection after two messages (allocator count, codec state included):\n")
        print("| mode | message | wire bytes, 2nd echo | server heap_size() | server holds | client holds |")
        print("|---|---|---|---|---|---|")
        for line in memory.read_text().splitlines():
            if line.startswith("#"):
                continue
            mode, msg, wire, sh, sheld, ch, cheld = line.split("\t")
            print(f"| {mode} | {msg} | {wire} | {sh} B | {sheld} B | {cheld} B |")
        print()

e2e = target / "wsproto-bench" / "e2e.tsv"
if e2e.exists():
    load, idle = {}, {}
    for line in e2e.read_text().splitlines():
        f = line.split("\t")
        if f[0] == "idle":
            idle[f[1]] = int(f[3]) if f[3].lstrip("-").isdigit() else None
        elif f[0] == "load":
            _, _, name, conns, size, mps, p50, p99, n, cpu = f
            load.setdefault((int(conns), int(size)), {}).setdefault(name, []).append(
                (float(mps), float(p50), float(p99), None if cpu == "-" else float(cpu)))
    if load:
        print("### End to end over loopback (medians over rounds)\n")
        print("| connections x size | " + " | ".join(IMPLS) + " | ours / best peer | target |")
        print("|---|" + "---|" * (len(IMPLS) + 2))
        goals = {(100, 16): 1.2, (10, 65536): 1.1}
        for key in sorted(load):
            runs = load[key]
            med = {n: [statistics.median(col) if None not in col else None
                       for col in zip(*rs)] for n, rs in runs.items()}
            cells = []
            for impl in IMPLS:
                if impl in med:
                    mps, p50, p99, cpu = med[impl]
                    cpu_s = f", {cpu:.1f} µs CPU/msg" if cpu is not None else ""
                    cells.append(f"{mps:,.0f} msg/s (p50 {p50:.0f} µs, p99 {p99:.0f} µs{cpu_s})")
                else:
                    cells.append("n/a")
            peers = [(med[p][0], p) for p in PEERS if p in med]
            best, peer = max(peers) if peers else (None, None)
            ratio = med[OURS][0] / best if best and OURS in med else None
            goal = goals.get(key)
            verdict = ""
            if goal and ratio is not None:
                ok = ratio >= goal
                verdict = f">= {goal:.1f}x {'met' if ok else 'MISSED'}"
                verdicts.append(f"echo {key[0]} x {key[1]} B: {ratio:.2f}x vs >= {goal:.1f}x: "
                                f"{'met' if ok else 'MISSED'}")
            ratio_cell = f"{ratio:.2f}x ({peer})" if ratio else "n/a"
            print(f"| {key[0]} x {key[1]} B | " + " | ".join(cells) + f" | {ratio_cell} | {verdict} |")
        print()
    if idle:
        print("### Memory of 1,000 idle connections (server RSS growth / 1,000)\n")
        print("| " + " | ".join(IMPLS) + " | target |")
        print("|" + "---|" * (len(IMPLS) + 1))
        # Bytes, not a rounded KB: issue 18's target is 2 KB, and 1,987 and 2,040 bytes both
        # round to 2.0.
        cells = [f"{idle[i]:,} B" if idle.get(i) is not None else "n/a" for i in IMPLS]
        ours = idle.get(OURS)
        verdict = ""
        if ours is not None:
            ok = ours <= 2000
            verdict = f"<= 2,000 B {'met' if ok else 'MISSED'}"
            verdicts.append(f"idle memory: {ours:,} B vs <= 2,000 B: {'met' if ok else 'MISSED'}")
        print("| " + " | ".join(cells) + f" | {verdict} |\n")

if verdicts:
    print("### Targets\n")
    for v in verdicts:
        print(f"- {v}")
