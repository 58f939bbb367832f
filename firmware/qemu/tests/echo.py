#!/usr/bin/env python3
"""Host-side check of the QEMU board layer (python3 stdlib only).

Boots firmware under QEMU (lm3s6965evb) with UART0 on a loopback TCP socket and checks:

  1. echo firmware, host silent until the firmware has booted (UART FIFO on): round trips/s
     for single bytes and 64-byte messages; 10,000 bytes sent in varied chunk sizes come back
     complete and in order;
  2. echo firmware, host sending from the moment it connects (UART stays in one-byte mode):
     the same 10,000-byte check, and round trips/s in that mode;
  3. echo firmware: QEMU's host CPU use while the firmware idles (the executor sleeps in WFI);
  4. timecheck firmware: 1 s of embassy time is ~1 s of wall-clock time.

Usage: tests/echo.py [--echo ELF] [--timecheck ELF] [--skip-build]
By default it builds both binaries with `cargo build --release` in firmware/qemu first.
Exits non-zero on any failure; QEMU is always killed; every wait is bounded.
Ends with a line 'N passed, N failed'.
"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(CRATE))
QEMU_UART = os.path.join(REPO, "scripts", "qemu-uart.sh")
RELEASE = os.path.join(CRATE, "target", "thumbv7m-none-eabi", "release")

CONNECT_TIMEOUT = 10.0  # QEMU start-up
IO_TIMEOUT = 10.0  # any single wait for echoed data
BOOT_GRACE = 0.2  # silence after connecting, for the firmware to boot (it needs ~1 ms)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qemu:
    """QEMU running ELF with UART0 on 127.0.0.1:<port>; a context manager that always kills it."""

    def __init__(self, elf):
        self.elf = elf
        self.proc = None
        self.sock = None

    def __enter__(self):
        for _attempt in range(3):
            port = free_port()
            self.proc = subprocess.Popen(
                [QEMU_UART, self.elf, str(port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
                    break
                except OSError:
                    time.sleep(0.05)
            if self.sock is not None:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.settimeout(IO_TIMEOUT)
                return self
            self.kill()  # port taken or QEMU failed: try another port
        raise RuntimeError("could not start QEMU / connect to its UART socket")

    def kill(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def output(self):
        """QEMU's stdout/stderr (semihosting) once it has exited or been killed."""
        if self.proc is None or self.proc.stdout is None:
            return ""
        try:
            return self.proc.stdout.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def cpu_seconds(self):
        """utime+stime of the QEMU process, in seconds (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc):
        self.kill()
        return False


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"UART socket closed after {len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


def check_bulk(q, total=10_000, seed=1234):
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(total))
    sizes = []
    left = total
    while left:
        n = min(left, rng.choice([1, 2, 3, 7, 16, 17, 63, 64, 65, 127, 128, 129, 255, 500, 1024]))
        sizes.append(n)
        left -= n
    sent_err = []

    def sender():
        try:
            off = 0
            for n in sizes:
                q.sock.sendall(data[off : off + n])
                off += n
                if rng.random() < 0.1:
                    time.sleep(0.001)
        except OSError as e:  # reported by the main thread
            sent_err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    start = time.monotonic()
    t.start()
    got = recv_exact(q.sock, total)
    elapsed = time.monotonic() - start
    t.join(timeout=IO_TIMEOUT)
    if sent_err:
        raise sent_err[0]
    if got != data:
        first = next(i for i in range(total) if got[i] != data[i])
        raise AssertionError(f"echo mismatch at byte {first}: got {got[first]:#x}, want {data[first]:#x}")
    return len(sizes), elapsed


def round_trips(q, size, seconds=2.0, max_count=100_000):
    msg = bytes((i * 7 + 3) & 0xFF for i in range(size))
    count = 0
    start = time.monotonic()
    deadline = start + seconds
    while count < max_count and time.monotonic() < deadline:
        q.sock.sendall(msg)
        if recv_exact(q.sock, size) != msg:
            raise AssertionError(f"{size}-byte round trip {count}: wrong data")
        count += 1
    return count / (time.monotonic() - start), count


def idle_cpu(q, seconds=1.0):
    c0, t0 = q.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (q.cpu_seconds() - c0) / (time.monotonic() - t0)


def check_time(q):
    """timecheck firmware prints 'T <embassy ms>' lines; compare with the host's clock."""
    samples = []
    buf = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        chunk = q.sock.recv(256)
        now = time.monotonic()
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip()
            if line.startswith(b"T "):
                samples.append((now, int(line[2:])))
            elif line == b"DONE":
                deadline = 0
    if len(samples) < 3:
        raise AssertionError(f"timecheck: only {len(samples)} samples")
    (w0, f0), (w1, f1) = samples[0], samples[-1]
    ratio = ((f1 - f0) / 1000.0) / (w1 - w0)
    return ratio, (f1 - f0) / 1000.0, w1 - w0, len(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--echo", default=os.path.join(RELEASE, "echo"))
    ap.add_argument("--timecheck", default=os.path.join(RELEASE, "timecheck"))
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()

    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=CRATE, check=True, timeout=900)

    passed = failed = 0

    def result(name, ok, detail):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def show_output(q):
        q.kill()
        for line in q.output().splitlines():
            if "QEMU waiting for connection" not in line:
                print(f"       firmware: {line}")

    # 1. The host stays silent until the firmware has booted, as a host that waits for the device
    #    to speak first would: the firmware switches its UART FIFO on (fast mode).
    with Qemu(args.echo) as q:
        time.sleep(BOOT_GRACE)
        for size in (1, 64):
            try:
                rate, n = round_trips(q, size)
                result(f"{size}-byte round trips", True, f"{rate:,.0f} round trips/s ({n} in ~2 s)")
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                result(f"{size}-byte round trips", False, repr(e))
        try:
            chunks, secs = check_bulk(q)
            result("bulk echo", True, f"10000 bytes in {chunks} chunks echoed in order ({10000 / secs:,.0f} B/s)")
        except Exception as e:  # noqa: BLE001
            result("bulk echo", False, repr(e))
        try:
            cpu = idle_cpu(q)
            # A spinning vCPU uses ~100% of a host core; a sleeping one a few percent (1 kHz tick).
            result("idle host CPU", cpu < 0.25, f"QEMU used {cpu * 100:.1f}% of a core while the firmware idled")
        except Exception as e:  # noqa: BLE001
            result("idle host CPU", False, repr(e))
        show_output(q)

    # 2. The host sends from the moment QEMU accepts the connection, while the firmware boots: no
    #    byte may be lost; the UART stays in one-byte mode (slower).
    with Qemu(args.echo) as q:
        try:
            chunks, secs = check_bulk(q, seed=99)
            result("bulk echo from connect", True, f"10000 bytes in {chunks} chunks echoed in order ({10000 / secs:,.0f} B/s)")
        except Exception as e:  # noqa: BLE001
            result("bulk echo from connect", False, repr(e))
        for size in (1, 64):
            try:
                rate, n = round_trips(q, size, seconds=1.0)
                result(f"{size}-byte round trips, one-byte mode", True, f"{rate:,.0f} round trips/s ({n} in ~1 s)")
            except Exception as e:  # noqa: BLE001
                result(f"{size}-byte round trips, one-byte mode", False, repr(e))
        show_output(q)

    if os.path.exists(args.timecheck):
        with Qemu(args.timecheck) as q:
            try:
                ratio, fw, wall, n = check_time(q)
                ok = 0.95 < ratio < 1.05
                result("embassy time vs wall clock", ok, f"{fw:.3f} s embassy over {wall:.3f} s wall (ratio {ratio:.4f}, {n} samples)")
            except Exception as e:  # noqa: BLE001
                result("embassy time vs wall clock", False, repr(e))
            show_output(q)
    else:
        result("embassy time vs wall clock", False, f"missing {args.timecheck}")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
