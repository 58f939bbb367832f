#!/usr/bin/env python3
"""Prints the last `cargo bench -p toolwire-benches --bench framing` run as Markdown tables.

For each benchmark: median time, MiB/s (criterion's Throughput::Bytes), frames/s (1 / median
time) and the speed relative to the group's baseline (serde_json for codec groups, the cobs
crate for COBS groups): baseline time / this time, so 2.00x means twice as fast as the baseline.

Usage: python3 benches/summarize.py [target/criterion]
"""

import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")
BASELINES = ("serde_json", "cobs")


def load():
    rows = []
    for dirpath, _dirs, files in os.walk(ROOT):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        throughput = bench.get("throughput") or {}
        rows.append({
            "group": bench["group_id"],
            "function": bench["function_id"],
            "size": bench.get("value_str") or "",
            "bytes": throughput.get("Bytes"),
            "ns": est["median"]["point_estimate"],
        })
    return rows


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main():
    rows = load()
    if not rows:
        sys.exit(f"no criterion results under {ROOT}")
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    kind_order = ["register", "execute-small", "execute-4k", "result"]

    def group_key(g):
        op, _, kind = g.partition("/")
        kind_rank = kind_order.index(kind) if kind in kind_order else len(kind_order)
        return (op not in ("decode", "encode"), op != "decode", kind_rank, g)

    print("| benchmark | implementation | frame | median time | MiB/s | frames/s | vs baseline |")
    print("|---|---|---|---:|---:|---:|---:|")
    for g in sorted(groups, key=group_key):
        members = groups[g]
        base = next((r for b in BASELINES for r in members if r["function"] == b), None)
        for r in sorted(members, key=lambda r: r["ns"]):
            mibs = f"{r['bytes'] / (r['ns'] * 1e-9) / 2**20:,.0f}" if r["bytes"] else ""
            per_s = 1e9 / r["ns"]
            if g.startswith("cobs"):
                # One iteration is the whole stream of frames.
                frames = int(g.split("/")[1].split("-")[0])
                per_s *= frames
            ratio = f"{base['ns'] / r['ns']:.2f}x" if base else ""
            print(f"| {g} | {r['function']} | {r['size']} | {fmt_time(r['ns'])} | {mibs} | "
                  f"{per_s:,.0f} | {ratio} |")


main()
