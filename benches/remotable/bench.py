"""remotable-function 2.0.0 (PyPI), the Python tool gateway toolwire's issue 11 measures against
(P2): its gateway and one client in one asyncio process over loopback WebSocket, an `echo` tool
returning its arguments (the same ARGS as toolwire's e2e benchmark), sequential calls (p50, p99,
calls/s) and calls/s with 64 callers at once.

    python3 -m venv /tmp/rfvenv && /tmp/rfvenv/bin/pip install remotable-function==2.0.0
    /tmp/rfvenv/bin/python benches/remotable/bench.py [SECONDS]
"""

import asyncio
import logging
import statistics
import sys
import time

import remotable_function as rf
from remotable_function import Tool

ARGS = {"channel": 2, "label": "bench", "values": [1, 2, 3, 4]}


class Echo(Tool):
    name = "echo"
    description = "returns its arguments"

    async def execute(self, context=None, **kwargs):
        return kwargs


async def main(secs: float) -> None:
    logging.disable(logging.CRITICAL)
    gw = await rf.start_server(port=18765)
    client = await rf.connect_client("ws://127.0.0.1:18765", tools=[Echo()])
    cid, tool = None, None
    for _ in range(500):
        clients = gw.list_clients()
        if clients:
            cid = list(clients.keys())[0]
            names = [t["name"] for t in gw.list_tools(cid).get(cid, [])]
            # Registered under its namespace: "default.echo".
            tool = next((n for n in names if n.endswith("echo")), None)
            if tool:
                break
        await asyncio.sleep(0.01)
    assert tool is not None, "the client did not register its tool"

    async def call():
        """One call; its answer must be the arguments back."""
        r = await gw.call_tool(client_id=cid, tool=tool, args=ARGS)
        assert r == ARGS, r

    # Sequential.
    for _ in range(100):
        await call()
    lat = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        s = time.perf_counter()
        await call()
        lat.append((time.perf_counter() - s) * 1e6)
    elapsed = time.perf_counter() - t0
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99)]
    print(f"remotable-function ws sequential: {len(lat) / elapsed:,.0f} calls/s, p50 {p50:.0f} µs, p99 {p99:.0f} µs")

    # 64 callers at once.
    done = 0
    stop = False

    async def caller():
        nonlocal done
        while not stop:
            await call()
            done += 1

    tasks = [asyncio.create_task(caller()) for _ in range(64)]
    await asyncio.sleep(secs / 5)
    before, t0 = done, time.perf_counter()
    await asyncio.sleep(secs)
    rate = (done - before) / (time.perf_counter() - t0)
    stop = True
    await asyncio.gather(*tasks)
    print(f"remotable-function ws 64 in flight: {rate:,.0f} calls/s")
    await client.disconnect()
    await gw.stop()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
