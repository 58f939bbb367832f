#!/usr/bin/env python3
"""What permessage-deflate (RFC 7692) would save on a 1 MB `fs_read` result.

The frame measured is the one the gateway sends a JSON controller for `fs_read` of a ~1 MB
UTF-8 file: `{"jsonrpc":"2.0","id":1,"result":"<the file as a JSON string>"}`. It is
compressed as permessage-deflate does (raw DEFLATE, 15-bit window, no context takeover, so
one message alone), at zlib levels 1 and 6, by Python's zlib (the same DEFLATE as flate2).

Inputs, each cut to 1,000,000 bytes at a character boundary:
  source  the repository's Rust and Markdown files, concatenated (text a tool reads often)
  log     a synthetic service log: timestamps, levels, request ids, latencies
  random  base64 of random bytes (an already dense payload: the worst case)

Usage: python3 benches/compress/measure.py   (prints a Markdown table)
"""
import base64
import json
import os
import pathlib
import random
import time
import zlib

SIZE = 1_000_000
ROOT = pathlib.Path(__file__).resolve().parents[2]


def cut(text: str) -> str:
    b = text.encode()[:SIZE]
    return b.decode("utf-8", errors="ignore")


def source() -> str:
    parts = []
    for p in sorted(ROOT.rglob("*")):
        if "target" in p.parts or ".git" in p.parts or not p.is_file():
            continue
        if p.suffix in (".rs", ".md"):
            parts.append(p.read_text(errors="ignore"))
        if sum(map(len, parts)) > 2 * SIZE:
            break
    return cut("".join(parts) * 2)


def log() -> str:
    rng = random.Random(7)
    lines = []
    t = 1_764_547_200.0
    while sum(map(len, lines)) < SIZE + 200:
        t += rng.expovariate(50)
        level = rng.choice(["INFO"] * 8 + ["WARN", "ERROR"])
        lines.append(
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.{int(t % 1 * 1000):03d}Z "
            f"{level} gateway: call {rng.choice(['dev-1', 'dev-2', 'lab'])}/"
            f"{rng.choice(['read_sensor', 'set_led', 'sample'])} id={rng.getrandbits(48):012x} "
            f"took {rng.lognormvariate(1, 0.8):.2f} ms\n"
        )
    return cut("".join(lines))


def dense() -> str:
    return cut(base64.b64encode(random.Random(9).randbytes(SIZE)).decode())


def frame(text: str) -> bytes:
    return ('{"jsonrpc":"2.0","id":1,"result":' + json.dumps(text, ensure_ascii=False) + "}").encode()


def deflate(data: bytes, level: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    # RFC 7692 section 7.2.1: the sender drops the final 00 00 ff ff of the sync flush.
    return len(out) - 4, time.perf_counter() - t0


def main() -> None:
    print("| input | frame bytes | level 1 | saved | ms | level 6 | saved | ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, text in [("source", source()), ("log", log()), ("random", dense())]:
        f = frame(text)
        row = [name, f"{len(f):,}"]
        for level in (1, 6):
            n, secs = deflate(f, level)
            row += [f"{n:,}", f"{1 - n / len(f):.0%}", f"{secs * 1000:.0f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
