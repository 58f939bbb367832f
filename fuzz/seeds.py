#!/usr/bin/env python3
"""Writes the committed seed corpus: fuzz/corpus/<target>/seed-*.

Byte-level targets get real frames: JSON-RPC text, postcard encoded by hand (the layout of
core/src/codec.rs: tag, id, variant index, fields in declaration order, varints), COBS streams.

Targets whose input is `Arbitrary` get bytes laid out the way arbitrary 1.5 reads them (see
`Arb` below), so each seed is a known script: a full handshake, calls, progress, timeouts. If
arbitrary's layout changes, the seeds still work as plain inputs but decode to other scripts;
`cargo fuzz fmt TARGET fuzz/corpus/TARGET/seed-x` shows what a seed decodes to.

Run from anywhere: python3 fuzz/seeds.py
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------------------------------
# postcard


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pc_str(s):
    b = s.encode()
    return varint(len(b)) + b


pc_json = pc_str  # raw JSON text travels as a byte string


def pc_opt(v, f):
    return b"\x00" if v is None else b"\x01" + f(v)


def pc_bool(b):
    return b"\x01" if b else b"\x00"


def pc_i32(n):
    return varint(((n << 1) ^ (n >> 31)) & 0xFFFFFFFF)


def pc_id(i):
    if i is None:
        return varint(2)
    if isinstance(i, int):
        return varint(0) + varint(i)
    return varint(1) + pc_str(i)


def pc_list(items):
    body = b"".join(items)
    return varint(len(body)) + body


def pc_tool(name, desc, schema, out_schema=None, ann=(False, False, False)):
    return (pc_str(name) + pc_str(desc) + pc_json(schema) + pc_opt(out_schema, pc_json)
            + b"".join(pc_bool(a) for a in ann))


REQ = {"hello": 0, "register": 1, "unregister": 2, "execute": 3, "ask": 4, "ping": 5,
       "nodes.list": 6, "tools.list": 7, "tools.resolve": 8, "tools.call": 9, "tools.scope": 10,
       "rules.set": 11, "rules.list": 12, "tools.call+": 13, "results.read": 14}
NOTE = {"cancel": 0, "progress": 1, "goodbye": 2, "tools.changed": 3, "log": 4}


def pc_request(id_, method, body=b""):
    return b"\x00" + pc_id(id_) + varint(REQ[method]) + body


def pc_notification(method, body):
    return b"\x01" + varint(NOTE[method]) + body


def pc_result(id_, body):
    return b"\x02" + pc_id(id_) + body


def pc_error(id_, code, message, data=None):
    return b"\x03" + pc_id(id_) + pc_i32(code) + pc_str(message) + pc_opt(data, pc_json)


# ------------------------------------------------------------------------------------------
# COBS


def cobs(payload):
    out = bytearray([0])
    code_at, code = 0, 1
    for b in payload:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    out.append(0)
    return bytes(out)


# ------------------------------------------------------------------------------------------
# arbitrary 1.5's layout
#
# Integers: little-endian, in order. bool: one byte, low bit. Option/Result: a bool, then the
# value. Enum: a u32 `x`, variant `(x * count) >> 32`. Vec: each element preceded by a `true`
# byte, then a `false` byte (in the last position, "take rest": elements until the data ends).
# String: its bytes in order, its length as one byte taken from the *end* of the data (inputs
# up to 256 bytes; the seeds stay below that), or in the last position all remaining bytes.


class Arb:
    def __init__(self):
        self.front = bytearray()
        self.back = bytearray()  # length bytes, in the order they are read

    def done(self):
        data = bytes(self.front) + bytes(reversed(self.back))
        if self.back:
            assert len(data) <= 256, f"seed with strings is {len(data)} bytes (max 256)"
        return data

    def u8(self, v):
        self.front += struct.pack("<B", v)

    def u16(self, v):
        self.front += struct.pack("<H", v)

    def u32(self, v):
        self.front += struct.pack("<I", v)

    def u64(self, v):
        self.front += struct.pack("<Q", v)

    def i64(self, v):
        self.front += struct.pack("<q", v)

    def bool(self, b):
        self.u8(1 if b else 0)

    def variant(self, i, count):
        x = (i * 2**32 + count - 1) // count
        assert (x * count) >> 32 == i and x < 2**32
        self.u32(x)

    def opt(self, v, f):
        self.bool(v is not None)
        if v is not None:
            f(v)

    def vec(self, items, f, rest=False):
        for it in items:
            self.bool(True)
            f(it)
        if not rest:
            self.bool(False)

    def string(self, s, rest=False):
        b = s.encode()
        if not rest:
            assert len(b) < 256
            self.back.append(len(b))
        self.front += b


# JsonTree: Null, Bool, Int, Num, Str, Arr, Obj
def tree(a, v):
    if v is None:
        a.variant(0, 7)
    elif isinstance(v, bool):
        a.variant(1, 7)
        a.bool(v)
    elif isinstance(v, int):
        a.variant(2, 7)
        a.i64(v)
    elif isinstance(v, float):
        # Num { neg, int, frac, exp }: written as int.frac
        a.variant(3, 7)
        a.bool(v < 0)
        whole, frac = str(abs(v)).split(".")
        a.u64(int(whole))
        a.opt(int(frac), a.u32)
        a.opt(None, None)
    elif isinstance(v, str):
        a.variant(4, 7)
        jstring(a, v)
    elif isinstance(v, list):
        a.variant(5, 7)
        a.vec(v, lambda x: tree(a, x))
    else:
        a.variant(6, 7)
        members(a, v)


def jstring(a, s, escape_mask=0, short_mask=0):
    a.string(s)
    a.u64(escape_mask)
    a.u64(short_mask)


def members(a, obj):
    def member(kv):
        jstring(a, kv[0])
        tree(a, kv[1])

    a.vec(list(obj.items()), member)


def arb_id(a, i):
    # ArbId: Num(u64), Str(String)
    if isinstance(i, int):
        a.variant(0, 2)
        a.u64(i)
    else:
        a.variant(1, 2)
        a.string(i)


def arb_error(a, code, message, data=None):
    a.u32(code & 0xFFFFFFFF)
    a.string(message)
    a.opt(data, lambda d: tree(a, d))


# ------------------------------------------------------------------------------------------
# Seeds: JSON frames


def j(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


EXECUTE = j({"jsonrpc": "2.0", "id": 7, "method": "execute",
             "params": {"tool": "read_sensor", "arguments": {"channel": 2}, "deadline_ms": 5000}})
HELLO = j({"jsonrpc": "2.0", "id": 0, "method": "hello",
           "params": {"min_version": 1, "max_version": 1, "role": "node", "id": "dev-1",
                      "token": "s3cret", "encodings": {"json": True, "postcard": True},
                      "max_frame": 4096, "max_in_flight": 2}})
REGISTER = ('{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":['
            '{"name":"read_sensor","description":"Reads a channel \\"quoted\\" \\u00e9",'
            '"input_schema":{"type":"object","properties":{"channel":{"type":"integer"}}},'
            '"output_schema":{"type":"number"},"annotations":{"read_only":true,"idempotent":true}},'
            '{"name":"blink","description":"","input_schema":{}}]}}')
WELCOME = j({"jsonrpc": "2.0", "id": 0, "result": {"version": 1, "encoding": "postcard",
                                                    "max_frame": 65536, "max_in_flight": 2,
                                                    "heartbeat_ms": 10000, "gateway": "gw"}})
RESULT = '{"jsonrpc":"2.0","id":7,"result":{"celsius":21.5,"raw":[1,-2,3e2],"ok":true,"note":null}}'
ERROR = j({"jsonrpc": "2.0", "id": "c-1", "error": {"code": -32003, "message": "timeout",
                                                    "data": {"after_ms": 5000}}})
PROGRESS = ('{"jsonrpc":"2.0","method":"progress","params":{"id":7,"progress":1,"total":4,'
            '"message":"caf\\u00e9 \\ud83d\\ude00 \\n\\t\\/","partial":[0.5]}}')
CANCEL = '{ "jsonrpc" : "2.0" , "method" : "cancel" , "params" : { "id" : "c-1" , "reason" : "user" } }\n'
CALL_PARAMS_FIRST = ('{"params":{"node":"dev-1","tool":"blink","arguments":{"times":3}},'
                     '"x-extra":{"ignored":[true,false]},"method":"tools.call","id":"req-9","jsonrpc":"2.0"}')
ASK = j({"jsonrpc": "2.0", "id": 3, "method": "ask",
         "params": {"call": 7, "kind": "input", "prompt": "Which channel?",
                    "schema": {"type": "integer"}}})
GOODBYE = j({"jsonrpc": "2.0", "method": "goodbye", "params": {"reason": "shutdown"}})
TOOLS_CHANGED = j({"jsonrpc": "2.0", "method": "tools.changed", "params": {"node": "dev-1"}})
SCOPE = j({"jsonrpc": "2.0", "id": 4, "method": "tools.scope",
           "params": {"tools": ["dev-*/read_*", "echo"]}})
RULES = j({"jsonrpc": "2.0", "id": 5, "method": "rules.set", "params": {"rules": [
    {"tool": "valve", "kind": "permission", "prompt": "Drain*", "decision": "forward"},
    {"tool": "*/valve", "kind": "input", "decision": "allow", "answer": {"litres": 2}}]}})
RULES_LIST = j({"jsonrpc": "2.0", "id": 6, "method": "rules.list", "params": {}})
CALL_WITH = j({"jsonrpc": "2.0", "id": "c2", "method": "tools.call", "params": {
    "node": "dev-1", "tool": "fs_read", "arguments": {"path": "log"}, "cache": False,
    "max_result_bytes": 16}})
LOG = j({"jsonrpc": "2.0", "method": "log",
         "params": {"id": 7, "level": "warning", "message": "valve 2 slow to close"}})
READ_RESULT = j({"jsonrpc": "2.0", "id": 6, "method": "results.read",
                 "params": {"handle": "r1", "offset": 16, "length": 64}})
BATCH = '[{"jsonrpc":"2.0","id":1,"method":"ping"}]'
TRUNCATED = EXECUTE[:-9]
BAD_SURROGATE = '{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}'

for name, text in [("execute", EXECUTE), ("hello", HELLO), ("register", REGISTER),
                   ("welcome", WELCOME), ("result", RESULT), ("error", ERROR),
                   ("progress", PROGRESS), ("cancel", CANCEL), ("call-params-first", CALL_PARAMS_FIRST),
                   ("ask", ASK), ("goodbye", GOODBYE), ("tools-changed", TOOLS_CHANGED), ("batch", BATCH), ("truncated", TRUNCATED),
                   ("lone-surrogate", BAD_SURROGATE), ("tools-scope", SCOPE), ("rules-set", RULES),
                   ("rules-list", RULES_LIST), ("tools-call-with", CALL_WITH),
                   ("results-read", READ_RESULT), ("log", LOG)]:
    write("decode_json", name, text)

# ------------------------------------------------------------------------------------------
# Seeds: postcard frames

PC_EXECUTE = pc_request(7, "execute", pc_str("read_sensor") + pc_json('{"channel":2}')
                        + pc_opt(5000, varint))
PC_HELLO = pc_request(0, "hello", varint(1) + varint(1) + varint(0) + pc_str("dev-1")
                      + pc_opt("s3cret", pc_str) + pc_bool(True) + pc_bool(True)
                      + varint(4096) + varint(2))
PC_REGISTER = pc_request(1, "register", pc_list([
    pc_tool("read_sensor", "Reads a channel", '{"type":"object"}', '{"type":"number"}',
            (True, False, True)),
    pc_tool("blink", "", "{}"),
]))
PC_WELCOME = pc_result(0, varint(1) + varint(1) + varint(65536) + varint(2) + varint(10000)
                       + pc_str("gw"))
PC_RESULT = pc_result(7, pc_json('{"celsius":21.5}'))
PC_ERROR = pc_error("c-1", -32003, "timeout", '{"after_ms":5000}')
PC_PROGRESS = pc_notification("progress", pc_id(7) + varint(1) + pc_opt(4, varint)
                              + pc_opt("café 😀\n", pc_str) + pc_opt("[0.5]", pc_json))
PC_CANCEL = pc_notification("cancel", pc_id("c-1") + pc_opt("user", pc_str))
PC_CALL = pc_request("req-9", "tools.call", pc_str("dev-1") + pc_str("blink")
                     + pc_json('{"times":3}') + pc_opt(None, varint))
PC_PING = pc_request(5, "ping")
PC_SCOPE = pc_request(4, "tools.scope", pc_list([pc_str("dev-*/read_*"), pc_str("echo")]))
# rule: tool, kind?, prompt?, decision, answer?
PC_RULES = pc_request(5, "rules.set", pc_list([
    pc_str("valve") + pc_opt(0, varint) + pc_opt("Drain*", pc_str) + varint(2) + pc_opt(None, pc_json),
    pc_str("*/valve") + pc_opt(1, varint) + pc_opt(None, pc_str) + varint(0)
    + pc_opt('{"litres":2}', pc_json),
]))
PC_RULES_LIST = pc_request(6, "rules.list")
# tools.call with options: node, tool, arguments, deadline_ms?, cache?, max_result_bytes?
PC_CALL_WITH = pc_request("c2", "tools.call+", pc_str("dev-1") + pc_str("fs_read")
                          + pc_json('{"path":"log"}') + pc_opt(None, varint)
                          + pc_opt(False, pc_bool) + pc_opt(16, varint))
# log: id?, level (warning = 3), message, data?
PC_LOG = pc_notification("log", pc_opt(7, lambda n: pc_id(n)) + varint(3)
                         + pc_str("valve 2 slow to close") + pc_opt(None, pc_json))
PC_READ_RESULT = pc_request(6, "results.read", pc_str("r1") + varint(16) + pc_opt(64, varint))
PC_TOOLS_CHANGED = pc_notification("tools.changed", pc_str("dev-1"))
PC_BAD_JSON = pc_request(7, "execute", pc_str("x") + pc_json('{"a":01}') + pc_opt(None, varint))

for name, data in [("execute", PC_EXECUTE), ("hello", PC_HELLO), ("register", PC_REGISTER),
                   ("welcome", PC_WELCOME), ("result", PC_RESULT), ("error", PC_ERROR),
                   ("progress", PC_PROGRESS), ("cancel", PC_CANCEL), ("call", PC_CALL),
                   ("ping", PC_PING), ("tools-changed", PC_TOOLS_CHANGED), ("bad-json", PC_BAD_JSON),
                   ("tools-scope", PC_SCOPE), ("rules-set", PC_RULES), ("rules-list", PC_RULES_LIST),
                   ("tools-call-with", PC_CALL_WITH), ("results-read", PC_READ_RESULT),
                   ("log", PC_LOG)]:
    write("decode_postcard", name, data)

# ------------------------------------------------------------------------------------------
# Seeds: JSON texts for the differential target

for name, text in [
    ("execute", EXECUTE),
    ("progress-escapes", PROGRESS),
    ("numbers", "[0,-0,1.5e10,-2E-3,1e+2,123456789012345678901234567890,0.000001]"),
    ("nested", ' {"a":[[[{"b":[{}]}]]],"c":"\\u0000\\u001f\\u007f\\u2028"} \r\n'),
    ("scalars", '"\\uD834\\uDD1E"'),
    ("leading-zero", "[01]"),
    ("trailing-comma", '{"a":1,}'),
    ("lone-low-surrogate", '["\\udc00"]'),
    ("control-char", '"a\tb"'),
    ("bom", "\ufeff{}"),
]:
    write("json_differential", name, text)

# ------------------------------------------------------------------------------------------
# Seeds: deframer_chunks
# Input { capacity: u16 (buffer is capacity % 600 + 1), stream: Vec<u8>, chunks: Vec<u8>,
#         payloads: Vec<Vec<u8>> }


def deframer_seed(capacity, stream, chunks, payloads):
    a = Arb()
    a.u16(capacity - 1)
    a.vec(stream, a.u8)
    a.vec(chunks, a.u8)
    a.vec(payloads, lambda p: a.vec(p, a.u8), rest=True)
    return a.done()


two_frames_and_garbage = (cobs(PC_EXECUTE) + cobs(EXECUTE.encode())
                          + b"\x05ab\x00" + b"\x13garbage\xff\x00\x01\x02")
write("deframer_chunks", "two-frames-garbage",
      deframer_seed(256, two_frames_and_garbage, [3, 1, 17, 0, 64], [PC_RESULT, b"hi\x00there"]))
oversize = cobs(bytes(range(1, 40))) + cobs(b"ok") + b"\x00\x00"
write("deframer_chunks", "oversize-then-ok",
      deframer_seed(16, oversize, [1, 2, 5], [bytes(range(1, 20)), b"ok", b"\x00", b""]))
long_block = bytes((i % 255) + 1 for i in range(300))
write("deframer_chunks", "long-blocks",
      deframer_seed(599, cobs(long_block) + cobs(b"\x00" * 5), [254, 1, 255],
                    [long_block[:254], long_block[:254] + b"\x00"]))

# ------------------------------------------------------------------------------------------
# Seeds: gateway_sm
# Action variants, in declaration order.
GW = ["Raw", "Hello", "Register", "Unregister", "Response", "Progress", "Ask", "Notify",
      "Request", "Advance", "AdvanceToDeadline", "Call", "Cancel", "Accept", "Refuse", "Answer",
      "GwRequest", "Respond", "Shutdown", "Transmit", "Events", "TransportClosed", "ReplyBuf",
      "CallMany"]


def gw_action(a, name):
    a.bool(True)  # another element of `actions`
    a.variant(GW.index(name), len(GW))


def gw_config(a, auth, json_, postcard, prefer_postcard, max_in_flight, heartbeat, handshake,
              strict):
    a.u8(auth)
    a.bool(json_)
    a.bool(postcard)
    a.bool(prefer_postcard)
    a.u16(max_in_flight)
    a.u16(heartbeat)
    a.u16(handshake)
    a.u8(32)  # max_depth
    a.bool(strict)


def arb_hello(a, token=None, json_=True, postcard=True, max_in_flight=2):
    a.u16(1)
    a.u16(1)
    a.bool(False)  # node
    a.string("dev-1")
    a.opt(token, a.string)
    a.bool(json_)
    a.bool(postcard)
    a.u32(4096)
    a.u16(max_in_flight)


def gw_hello(a, postcard, good_token, max_in_flight=2):
    gw_action(a, "Hello")
    arb_id(a, 0)
    arb_hello(a, max_in_flight=max_in_flight)
    a.bool(postcard)
    a.bool(good_token)
    a.bool(True)  # sane


def gw_register(a, tools):
    # tools: [(name index, schema)]; names: echo, slow, a.b-c_d, bad name, "", x"y
    gw_action(a, "Register")
    arb_id(a, 1)

    def tool(t):
        a.u8(t[0])
        tree(a, t[1])
        a.opt(None, None)

    a.vec(tools, tool)


def gw_call(a, tool, args, deadline):
    gw_action(a, "Call")
    a.u8(tool)
    members(a, args)
    a.opt(deadline, a.u16)
    a.u16(2047)


def gw_seed_json():
    a = Arb()
    gw_config(a, 0, True, True, False, 4, 1000, 5000, True)
    gw_hello(a, False, False)
    gw_register(a, [(0, {}), (3, {})])
    gw_call(a, 0, {"x": 41}, 500)
    gw_action(a, "Progress")
    a.u8(0)
    a.u64(1)
    a.opt(2, a.u64)
    a.opt("half", a.string)
    a.opt(None, None)
    gw_action(a, "Response")
    a.u8(0)
    a.bool(True)
    tree(a, 42)
    gw_call(a, 0, {}, 100)
    gw_action(a, "AdvanceToDeadline")
    gw_action(a, "Advance")
    a.u16(3000)
    return a.done()


def gw_seed_postcard():
    a = Arb()
    gw_config(a, 1, True, True, True, 8, 0, 5000, False)  # token auth, postcard
    gw_hello(a, True, True)
    gw_register(a, [(1, {"type": "object"})])
    gw_call(a, 1, {}, None)
    gw_action(a, "Ask")
    arb_id(a, "q1")
    a.u8(0)  # the call
    a.u8(1)  # input
    a.string("Which?")
    a.opt(None, None)
    gw_action(a, "Answer")
    a.u8(0)
    a.bool(True)
    tree(a, 3)
    gw_action(a, "Cancel")
    a.u8(0)
    gw_action(a, "Transmit")
    gw_action(a, "Events")
    gw_action(a, "TransportClosed")
    return a.done()


def gw_seed_deferred():
    a = Arb()
    gw_config(a, 2, True, False, False, 2, 50, 100, True)  # deferred, JSON only
    gw_hello(a, False, False)
    gw_action(a, "Accept")
    a.u16(16)  # too small: retried at the size asked for
    gw_register(a, [(0, {})])
    gw_call(a, 0, {}, 20)
    gw_call(a, 0, {}, None)
    gw_action(a, "GwRequest")
    a.variant(5, 10)  # ArbRequest::Ping
    gw_action(a, "Response")
    a.u8(2)
    a.bool(False)
    arb_error(a, -32601, "no")
    gw_action(a, "Advance")
    a.u16(60)
    gw_action(a, "Transmit")
    gw_action(a, "Advance")
    a.u16(200)
    return a.done()


def gw_seed_burst():
    # Eight calls expire at the instant a ping is due: eight cancels and a ping to send at once.
    a = Arb()
    gw_config(a, 0, True, True, True, 8, 1000, 5000, True)
    gw_hello(a, True, False, max_in_flight=8)
    gw_register(a, [(0, {})])
    gw_action(a, "CallMany")
    a.u8(8)
    a.u16(1000)
    gw_action(a, "Advance")
    a.u16(1000)
    return a.done()


write("gateway_sm", "burst-timeout", gw_seed_burst())
write("gateway_sm", "json-session", gw_seed_json())
write("gateway_sm", "postcard-token-ask-cancel", gw_seed_postcard())
write("gateway_sm", "deferred-ping-timeout", gw_seed_deferred())

# ------------------------------------------------------------------------------------------
# Seeds: node_sm
NODE = ["Raw", "Welcome", "RegisterAck", "Execute", "ExecuteAgain", "Ping", "Cancel", "Notify",
        "Request", "AskAnswer", "Advance", "AdvanceToDeadline", "Finish", "Progress", "Ask",
        "Shutdown", "Transmit", "Events", "ReplyBuf"]


def node_action(a, name):
    a.bool(True)  # another element of `actions`
    a.variant(NODE.index(name), len(NODE))


def node_config(a, hello_postcard, strict):
    a.opt(None, None)  # token
    a.bool(True)
    a.bool(True)
    a.bool(hello_postcard)
    a.u32(4096)
    a.u16(5000)
    a.u8(32)
    a.bool(strict)


def node_handshake(a, postcard, heartbeat):
    node_action(a, "Transmit")
    node_action(a, "Welcome")
    a.u8(0)
    a.opt(None, None)  # version 1
    a.bool(postcard)
    a.u32(512)
    a.u16(2)
    a.u16(heartbeat)
    a.string("gw")
    a.opt(None, None)
    node_action(a, "Transmit")
    node_action(a, "RegisterAck")
    a.u8(1)
    a.vec([0, 1, 2], a.u8)
    a.vec([], None)
    a.opt(None, None)


def node_execute(a, id_, tool, args, deadline):
    node_action(a, "Execute")
    arb_id(a, id_)
    a.u8(tool)
    members(a, args)
    a.opt(deadline, a.u16)


def node_seed_json():
    a = Arb()
    node_config(a, False, True)
    node_handshake(a, False, 1000)
    node_execute(a, 7, 1, {"channel": 2}, 500)
    node_action(a, "Progress")
    a.u8(0)
    a.u64(1)
    a.opt(2, a.u64)
    a.opt(None, None)
    a.opt(None, None)
    a.u16(512)
    node_action(a, "Ask")
    a.u8(0)
    a.u8(0)  # permission
    a.string("ok?")
    a.opt(None, None)
    a.u16(512)
    node_action(a, "AskAnswer")
    a.u8(0)
    a.bool(True)
    tree(a, True)
    node_action(a, "Finish")
    a.u8(0)
    a.bool(True)
    tree(a, 21.5)
    a.u16(512)
    node_execute(a, "c-1", 0, {}, 50)
    node_action(a, "Advance")
    a.u16(100)
    return a.done()


def node_seed_postcard():
    a = Arb()
    node_config(a, True, False)
    node_handshake(a, True, 0)
    node_execute(a, 1, 2, {}, None)
    node_execute(a, 2, 0, {"a": [1]}, None)
    node_action(a, "ExecuteAgain")
    a.u8(0)
    a.u8(0)
    node_action(a, "Cancel")
    a.u8(1)
    node_action(a, "Ping")
    arb_id(a, 9)
    node_action(a, "Finish")
    a.u8(1)
    a.bool(False)
    arb_error(a, -32014, "tool failed")
    a.u16(100)
    node_action(a, "Events")
    return a.done()


write("node_sm", "json-session", node_seed_json())
write("node_sm", "postcard-cancel-reuse", node_seed_postcard())

# ------------------------------------------------------------------------------------------
# Seeds: roundtrip
# Frame: Request { id, request }, Notification(..), Result { id, result }, Error { id, error }.
# ArbRequest variants: Hello, Register, Unregister, Execute, Ask, Ping, ListNodes, ListTools,
# Resolve, Call. ArbResult: Json, Empty, Welcome, RegisterAck, NodesPage, ToolsPage, Resolved.


def rt_execute():
    a = Arb()
    a.variant(0, 4)
    arb_id(a, 7)
    a.variant(3, 10)
    a.string("read_sensor")
    members(a, {"channel": 2, "label": "caf\u00e9 \"q\"\n"})
    a.opt(5000, a.u32)
    return a.done()


def rt_register():
    a = Arb()
    a.variant(0, 4)
    arb_id(a, "r-1")
    a.variant(1, 10)

    def tool(t):
        a.string(t)
        a.string("does " + t)
        members(a, {"type": "object"})
        a.opt({}, lambda o: members(a, o))
        a.bool(True)
        a.bool(False)
        a.bool(True)

    a.vec(["echo", "blink"], tool, rest=True)
    return a.done()


def rt_progress():
    a = Arb()
    a.variant(1, 4)
    a.variant(1, 4)  # Progress (of Cancel, Progress, Goodbye, ToolsChanged)
    a.variant(0, 2)  # AnyId::Id
    arb_id(a, 7)
    a.u64(3)
    a.opt(10, a.u64)
    a.opt("\u00e9\U0001F600\t", a.string)
    a.opt([0.5, None], lambda v: tree(a, v))
    return a.done()


def rt_tools_page():
    a = Arb()
    a.variant(2, 4)
    a.variant(0, 2)  # AnyId::Id
    arb_id(a, 4)
    a.variant(5, 7)

    def entry(e):
        a.string(e[0])
        a.string(e[1])
        a.string("")
        members(a, {})
        a.opt(None, None)
        a.bool(False)
        a.bool(False)
        a.bool(False)

    a.vec([("dev-1", "echo"), ("dev-2", "blink")], entry)
    a.opt("next", a.string)
    return a.done()


def rt_error():
    a = Arb()
    a.variant(3, 4)
    a.variant(1, 2)  # AnyId::Null
    arb_error(a, -32700, "parse error", {"at": 12})
    return a.done()


write("roundtrip", "execute", rt_execute())
write("roundtrip", "register", rt_register())
write("roundtrip", "progress", rt_progress())
write("roundtrip", "tools-page", rt_tools_page())
write("roundtrip", "error-null-id", rt_error())

# ------------------------------------------------------------------------------------------
# Seeds: router_sm

RT = ["Open", "Close", "Raw", "NodeHello", "CtrlHello", "Register", "Unregister", "NodeResult",
      "NodeProgress", "NodeAsk", "CtrlCall", "CtrlCancel", "CtrlList", "CtrlAnswer", "Ping",
      "LocalCall", "LocalCancel", "LocalAnswer", "Advance", "AdvanceToDeadline", "Shutdown"]


def rt_action(a, name):
    a.bool(True)  # another element of `actions`
    a.variant(RT.index(name), len(RT))


def rt_config(a, heartbeat, deadline, rate, tokens, max_connections, max_frame):
    a.u16(heartbeat)
    a.u16(deadline)
    a.opt(rate, lambda r: (a.u8(r[0]), a.u8(r[1])))
    a.bool(tokens)
    a.u8(max_connections)
    a.u16(max_frame)


def rt_node_hello(a, conn, node, postcard, token, max_in_flight=2):
    # node: n0, n1, n-2; token: node-secret, ctl-secret, wrong, none (3)
    rt_action(a, "NodeHello")
    a.u8(conn)
    a.u8(node)
    a.bool(postcard)
    a.u8(token)
    a.u8(max_in_flight)


def rt_ctrl_hello(a, conn, postcard, token, max_frame=4096):
    rt_action(a, "CtrlHello")
    a.u8(conn)
    a.bool(postcard)
    a.u8(token)
    a.u16(max_frame)


def rt_register(a, conn, tools):
    # tools: [(name, schema)]; names t0, t1, t.2, "bad name"; schemas {}, object, x-refuse
    rt_action(a, "Register")
    a.u8(conn)
    a.vec(tools, lambda t: (a.u8(t[0]), a.u8(t[1])))


def rt_ctrl_call(a, conn, id_, node, tool, args, deadline):
    rt_action(a, "CtrlCall")
    a.u8(conn)
    a.u16(id_)
    a.u8(node)
    a.u8(tool)
    members(a, args)
    a.opt(deadline, a.u16)


def rt_node_result(a, conn, to, value):
    rt_action(a, "NodeResult")
    a.u8(conn)
    a.u8(to)
    a.bool(True)
    tree(a, value)


def rt_local_call(a, node, tool, args, deadline):
    rt_action(a, "LocalCall")
    a.u8(node)
    a.u8(tool)
    members(a, args)
    a.opt(deadline, a.u16)


def rt_seed_json():
    a = Arb()
    rt_config(a, 1000, 500, None, False, 6, 4096)
    rt_action(a, "Open")
    rt_action(a, "Open")
    rt_node_hello(a, 0, 0, False, 3)
    rt_register(a, 0, [(0, 0), (1, 1), (3, 0), (2, 2)])
    rt_ctrl_hello(a, 1, False, 3)
    rt_ctrl_call(a, 1, 5, 0, 0, {"x": 1}, 300)
    rt_action(a, "NodeProgress")
    a.u8(0)
    a.u8(0)
    a.u64(1)
    a.opt(None, None)
    rt_node_result(a, 0, 0, 42)
    rt_ctrl_call(a, 1, 6, 0, 1, {}, 100)
    rt_action(a, "AdvanceToDeadline")
    rt_local_call(a, 0, 0, {}, None)
    rt_action(a, "LocalCancel")
    a.u8(0)
    rt_local_call(a, 0, 1, {}, 50)
    rt_action(a, "Advance")
    a.u16(3000)
    return a.done()


def rt_seed_mixed():
    # A postcard node and a JSON controller with tokens: an ask relayed and answered,
    # listings, a cancel, the controller leaving mid-call.
    a = Arb()
    rt_config(a, 0, 2000, (2, 3), True, 6, 2048)
    rt_action(a, "Open")
    rt_action(a, "Open")
    rt_node_hello(a, 0, 1, True, 0)
    rt_register(a, 0, [(0, 1), (1, 1)])
    rt_ctrl_hello(a, 1, False, 1)
    rt_ctrl_call(a, 1, 9, 1, 0, {}, None)
    rt_action(a, "NodeAsk")
    a.u8(0)
    a.u8(0)
    a.u16(3)
    a.string("Which?")
    rt_action(a, "CtrlAnswer")
    a.u8(1)
    a.u8(0)
    a.bool(True)
    tree(a, True)
    for kind in range(3):
        rt_action(a, "CtrlList")
        a.u8(1)
        a.u16(20 + kind)
        a.u8(kind)
        a.opt(None, None)
        a.opt(1, a.u8)
        a.opt(None, None)
    rt_action(a, "CtrlCancel")
    a.u8(1)
    a.u16(9)
    rt_ctrl_call(a, 1, 10, 1, 1, {}, None)
    rt_action(a, "Close")
    a.u8(1)
    return a.done()


def rt_seed_replace():
    # The same node id twice, a local call with an ask answered locally, then shutdown.
    a = Arb()
    rt_config(a, 100, 1000, None, False, 6, 4096)
    rt_action(a, "Open")
    rt_action(a, "Open")
    rt_node_hello(a, 0, 2, False, 3)
    rt_register(a, 0, [(0, 0)])
    rt_local_call(a, 2, 0, {}, None)
    rt_action(a, "NodeAsk")
    a.u8(0)
    a.u8(0)
    a.u16(1)
    a.string("ok?")
    rt_action(a, "LocalAnswer")
    a.u8(0)
    a.opt(None, None)
    rt_node_hello(a, 1, 2, True, 3)
    rt_register(a, 1, [(0, 0)])
    rt_local_call(a, 2, 0, {}, None)
    rt_action(a, "Advance")
    a.u16(250)
    rt_action(a, "Shutdown")
    return a.done()


write("router_sm", "json-session", rt_seed_json())
write("router_sm", "postcard-node-json-controller", rt_seed_mixed())
write("router_sm", "replace-ask-shutdown", rt_seed_replace())
