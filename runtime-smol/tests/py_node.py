"""A toolwire node written from PROTOCOL.md alone, with the `websockets` package.

It speaks JSON-RPC over WebSocket text messages: hello and register exactly as PROTOCOL.md's
examples show, then serves `execute` (tools `add` and `count`), `ping` and `cancel`.
Usage: py_node.py ws://HOST:PORT NODE_ID
"""

import json
import sys

from websockets.sync.client import connect

url, node_id = sys.argv[1], sys.argv[2]

HELLO = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "hello",
    "params": {
        "min_version": 1,
        "max_version": 1,
        "role": "node",
        "id": node_id,
        "encodings": {"json": True},
        "max_frame": 65536,
        "max_in_flight": 4,
    },
}

REGISTER = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "register",
    "params": {
        "tools": [
            {
                "name": "add",
                "description": "Add two integers.",
                "input_schema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
                "annotations": {"read_only": True, "idempotent": True},
            },
            {
                "name": "count",
                "description": "Count to n, reporting progress.",
                "input_schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 10}},
                    "required": ["n"],
                },
            },
        ]
    },
}


def send(ws, msg):
    ws.send(json.dumps(msg, separators=(",", ":")))


with connect(url) as ws:
    send(ws, HELLO)
    welcome = json.loads(ws.recv())
    assert welcome["id"] == 0 and welcome["result"]["version"] == 1, welcome
    assert welcome["result"]["encoding"] == "json", welcome
    send(ws, REGISTER)
    ack = json.loads(ws.recv())
    assert ack["id"] == 1 and sorted(ack["result"]["accepted"]) == ["add", "count"], ack
    print("READY", flush=True)
    for text in ws:
        msg = json.loads(text)
        method = msg.get("method")
        if method == "ping":
            send(ws, {"jsonrpc": "2.0", "id": msg["id"], "result": {}})
        elif method == "execute":
            p = msg["params"]
            if p["tool"] == "add":
                a = p["arguments"]
                send(ws, {"jsonrpc": "2.0", "id": msg["id"], "result": {"sum": a["a"] + a["b"]}})
            elif p["tool"] == "count":
                n = p["arguments"]["n"]
                for i in range(1, n + 1):
                    send(ws, {"jsonrpc": "2.0", "method": "progress",
                              "params": {"id": msg["id"], "progress": i, "total": n}})
                send(ws, {"jsonrpc": "2.0", "id": msg["id"], "result": n})
            else:
                send(ws, {"jsonrpc": "2.0", "id": msg["id"],
                          "error": {"code": -32001, "message": "no such tool"}})
        elif method in ("cancel", "goodbye"):
            pass
