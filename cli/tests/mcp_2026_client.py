"""The official MCP Python SDK as a client of revision 2026-07-28 (stateless) at the gateway's `/mcp`.

Run by cli/tests/mcp_2026.rs, which starts a gateway (`tools/list` pages of 5) with the node `lab`
(18 tools, see there) and runs:

    mcp_2026_client.py MCP_URL

The SDK's `Client` in `mode="auto"` probes `server/discover` and adopts 2026-07-28 when offered;
there is no `initialize` and no session. Input requests of `input_required` results go to the
client's elicitation, sampling and roots callbacks, and the SDK retries the call with the answers.
A second client, pinned to 2026-07-28 (`mode="2026-07-28"`, no probe) and without callbacks,
declares none of those capabilities and gets `-32021` for a tool that needs sampling.

The script talks to the Rust test over its own stdout and stdin: a line `@@ REQUEST` asks the test
to look at or change the gateway (`in_flight lab`, `idle lab`, `add extra`) and the test answers
with one line. Other lines are log; `http: {...}` sums up every HTTP request the SDK made. Exit
status 0 and a last line `PASS` mean every check held; every wait is bounded.
"""

import json
import sys

import anyio
import httpx2
import mcp_types as types

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged

LAB_TOOLS = [f"lab__t{i:02}" for i in range(8)] + [
    f"lab__{t}" for t in ("greet", "measure", "count", "slow", "fail", "ask_name", "ask_valve",
                          "ask_model", "ask_roots", "ask_twice", "ask_together")]
VERSION = "2026-07-28"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


async def harness(request):
    """Asks the Rust test something about the gateway; returns its one-line answer."""
    print(f"@@ {request}", flush=True)
    with anyio.fail_after(20):
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if not line:
        raise AssertionError(f"the test went away while asked `{request}`")
    return line.strip()


def text_of(result):
    return " ".join(c.text for c in result.content if c.type == "text")


class HttpLog:
    """Every HTTP request the SDK makes (method, headers, JSON body, status), and whether a
    request or response named a session."""

    def __init__(self):
        self.requests = []
        self.session_ids = 0

    async def on_request(self, request):
        body = json.loads(request.content) if request.content else None
        self.requests.append({"request": request, "method": request.method,
                              "headers": dict(request.headers), "body": body, "status": None})
        if "mcp-session-id" in request.headers:
            self.session_ids += 1

    async def on_response(self, response):
        for r in self.requests:
            if r["request"] is response.request:
                r["status"] = response.status_code
        if "mcp-session-id" in response.headers:
            self.session_ids += 1

    def summary(self):
        posts = [r for r in self.requests if r["method"] == "POST"]
        requests = [r for r in posts if isinstance(r["body"], dict) and "id" in r["body"]]
        return {
            "posts": len(posts),
            "other_methods": sorted({r["method"] for r in self.requests if r["method"] != "POST"}),
            "versions": sorted({r["headers"].get("mcp-protocol-version", "none") for r in posts}),
            "session_ids": self.session_ids,
            # Requests only: a notification is not routed by its headers.
            "method_header_mismatches": sum(
                1 for r in requests if r["headers"].get("mcp-method") != r["body"].get("method")),
            # Notifications the SDK posted, with the status they were answered.
            "notifications": [f"{(r['body'] or {}).get('method')} {r['status']}"
                              for r in posts if r not in requests],
            "methods": list(dict.fromkeys((r["body"] or {}).get("method") for r in posts)),
            "retries_with_request_state": sum(
                1 for r in requests if "requestState" in (r["body"].get("params") or {})),
        }


async def main(url):
    http = HttpLog()
    elicited, sampled, rooted, logs = [], [], [], []

    async def on_elicit(ctx, params):
        props = params.requested_schema["properties"]
        elicited.append((ctx.request_id, params.message, sorted(props)))
        if params.message == "Open the valve?":
            return types.ElicitResult(action="decline")
        if "allow" in props:
            return types.ElicitResult(action="accept", content={"allow": True})
        if "colour" in props:
            return types.ElicitResult(action="accept", content={"colour": "teal"})
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def on_sample(ctx, params):
        sampled.append((ctx.request_id, params.messages[0].content.text, params.max_tokens, params.system_prompt))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="42"), model="toolwire-test-model")

    async def on_roots(ctx):
        rooted.append(ctx.request_id)
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def on_log(params):
        logs.append((params.level, params.logger, params.data))

    async def on_message(message):
        if isinstance(message, Exception):
            print(f"transport error: {message!r}", flush=True)

    timeout = httpx2.Timeout(30, read=120)
    hooks = {"request": [http.on_request], "response": [http.on_response]}
    async with httpx2.AsyncClient(timeout=timeout, event_hooks=hooks) as hc:
        client = Client(
            streamable_http_client(url, http_client=hc),
            mode="auto",
            read_timeout_seconds=20,
            elicitation_callback=on_elicit,
            sampling_callback=on_sample,
            list_roots_callback=on_roots,
            logging_callback=on_log,
            log_level="info",
            message_handler=on_message,
        )
        # The whole session is bounded; each step has its own, shorter bound inside.
        with anyio.fail_after(100):
            async with client:
                # A second client on the same HTTP client, with the version pinned (no probe)
                # and no callbacks: it declares no elicitation, sampling or roots.
                def bare():
                    return Client(streamable_http_client(url, http_client=hc), mode=VERSION, read_timeout_seconds=20)

                await session(client, bare, http, elicited, sampled, rooted, logs)
    summary = http.summary()
    print(f"http: {json.dumps(summary)}", flush=True)
    check(summary["session_ids"] == 0, "no request or response named a session")
    check(summary["other_methods"] == [], "every request was a POST (no GET stream, no DELETE)")
    print("PASS", flush=True)


async def session(client, bare, http, elicited, sampled, rooted, logs):
    # --- server/discover (mode="auto" probed it; nothing else went first)
    print(f"negotiated protocol version {client.protocol_version}", flush=True)
    check(client.protocol_version == VERSION, "the SDK adopted 2026-07-28 from server/discover")
    check(client.session.initialize_result is None, "no initialize result: there was no handshake")
    d = client.session.discover_result
    check(d is not None and d.supported_versions == [VERSION], f"discover: supportedVersions {d.supported_versions}")
    check(http.requests[0]["body"]["method"] == "server/discover" and len(http.requests) == 1,
          "the first and only request of the connect was server/discover")
    check(client.server_info is not None and client.server_info.name == "toolwire", "server info in _meta")
    caps = client.server_capabilities
    check(caps.tools is not None and caps.tools.list_changed is True, "tools capability with listChanged")
    check("toolwire gateway" in (client.instructions or ""), f"instructions: {client.instructions!r}")
    meta = http.requests[0]["body"]["params"]["_meta"]
    check(meta["io.modelcontextprotocol/protocolVersion"] == VERSION, "the probe says its version in _meta")
    sent_caps = meta["io.modelcontextprotocol/clientCapabilities"]
    check({"elicitation", "sampling", "roots"} <= set(sent_caps), f"and its capabilities: {sent_caps}")

    # --- tools/list, page by page
    tools, pages, cursor = [], [], None
    for _ in range(10):
        with anyio.fail_after(10):
            r = await client.list_tools(cursor=cursor)
        tools += r.tools
        pages.append(len(r.tools))
        cursor = r.next_cursor
        if cursor is None:
            break
    print(f"{len(tools)} tools in pages of {pages}", flush=True)
    check(pages == [5, 5, 5, 4], f"paged 5 at a time: {pages}")
    names = [t.name for t in tools]
    check(sorted(names) == sorted(LAB_TOOLS) and len(set(names)) == len(names), "every tool, once, named node__tool")
    by_name = {t.name: t for t in tools}
    greet = by_name["lab__greet"]
    check(greet.input_schema["required"] == ["name"] and greet.title == "greet on lab", "input schema and title")
    measure = by_name["lab__measure"]
    check(measure.output_schema["properties"]["volts"]["type"] == "number", "output schema passed through")
    check(measure.annotations.read_only_hint is True and measure.annotations.idempotent_hint is True,
          "read-only and idempotent hints")
    try:
        with anyio.fail_after(10):
            await client.list_tools(cursor="bogus")
        check(False, "a bogus cursor is refused")
    except MCPError as e:
        check(e.code == -32602, f"a bogus cursor is -32602 ({e.message})")

    # --- calls: text, structured content, routing
    with anyio.fail_after(10):
        r = await client.call_tool("lab__greet", {"name": "Grace"})
    check(not r.is_error and text_of(r) == "hello, Grace" and r.structured_content is None,
          f"a string result is its text: {text_of(r)!r}")
    with anyio.fail_after(10):
        r = await client.call_tool("lab__measure", {})
    check(r.structured_content == {"volts": 3.3} and json.loads(text_of(r)) == {"volts": 3.3},
          f"structured content and the same JSON as text: {r.structured_content}")
    with anyio.fail_after(10):
        r = await client.call_tool("lab__t03", {"x": 7})
    check(r.structured_content == {"tool": "t03", "x": 7}, "calls route to the right tool")

    # --- progress and log lines on the call's stream (logLevel info: the debug line stays out)
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    with anyio.fail_after(10):
        r = await client.call_tool("lab__count", {"n": 4}, progress_callback=on_progress)
    print(f"progress: {seen}; logs: {logs}", flush=True)
    check(seen == [(i, 4, f"step {i}") for i in range(1, 5)], "four progress notifications with total and message")
    check(r.structured_content == {"count": 4}, "the result after its progress")
    check(logs == [("info", "lab/count", "counting to 4")], f"the info line, not the debug one: {logs}")

    # --- failures
    with anyio.fail_after(10):
        r = await client.call_tool("lab__fail", {})
    check(r.is_error and "boom" in text_of(r), f"a failing tool is isError: {text_of(r)!r}")
    try:
        with anyio.fail_after(10):
            await client.call_tool("nope__nope", {})
        check(False, "an unknown tool is refused")
    except MCPError as e:
        check(e.code == -32602, f"an unknown tool is -32602 ({e.message})")

    # --- asks: input_required results, answered by the callbacks, retried by the SDK
    with anyio.fail_after(10):
        r = await client.call_tool("lab__ask_name", {})
    check(text_of(r) == "hello Ada", f"an input ask answered through elicitation: {text_of(r)!r}")
    check(elicited == [("ask-1", "Who is it?", ["name"])], f"one elicitation, key ask-1: {elicited}")
    with anyio.fail_after(10):
        r = await client.call_tool("lab__ask_valve", {})
    check(r.structured_content == {"opened": False}, f"a permission declined: {r.structured_content}")
    check(elicited[1][1:] == ("Open the valve?", ["allow"]), f"asked as a yes/no field: {elicited[1]}")
    with anyio.fail_after(10):
        r = await client.call_tool("lab__ask_model", {})
    check(text_of(r) == "the model said: 42", f"a sample answered by the sampling callback: {text_of(r)!r}")
    check(sampled == [("sum", "What is 6 times 7?", 64, "Answer with a number.")], f"the sampling request: {sampled}")
    with anyio.fail_after(10):
        r = await client.call_tool("lab__ask_roots", {})
    check(r.structured_content == {"roots": [{"uri": "file:///work/project", "name": "project"}]},
          f"roots answered by the roots callback: {r.structured_content}")
    check(rooted == ["roots"], f"one roots request, key roots: {rooted}")
    with anyio.fail_after(15):
        r = await client.call_tool("lab__ask_twice", {})
    check(r.structured_content == {"colour": "teal", "painted": True}, f"two rounds: {r.structured_content}")
    check([e[0] for e in elicited[2:]] == ["colour", "ask-2"], f"one input request a round: {elicited[2:]}")
    with anyio.fail_after(15):
        r = await client.call_tool("lab__ask_together", {})
    check(r.structured_content == {"colour": "teal", "roots": [{"uri": "file:///work/project", "name": "project"}]},
          f"two asks at once, one round: {r.structured_content}")
    check([e[0] for e in elicited[4:]] == ["shade"] and rooted[1:] == ["roots"],
          f"both input requests of the round answered: {elicited[4:]} {rooted}")

    # --- a client without the capabilities: the ask is declined and the call is -32021
    sent = len(http.requests)
    async with bare() as other:
        check(other.protocol_version == VERSION and len(http.requests) == sent, "a pinned client connects without a probe")
        try:
            with anyio.fail_after(10):
                await other.call_tool("lab__ask_model", {})
            check(False, "ask_model without sampling is refused")
        except MCPError as e:
            print(f"without sampling: {e.code} {e.message} {e.error.data}", flush=True)
            check(e.code == -32021 and e.error.data == {"requiredCapabilities": {"sampling": {}}},
                  "a missing capability is -32021 naming it")
    caps = http.requests[sent]["body"]["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    check(not {"elicitation", "sampling", "roots"} & set(caps), f"it declared none: {caps}")

    # --- cancel: closing the call's stream cancels it on the node
    started = anyio.Event()
    outcome = {}

    async def slow_progress(progress, total, message):
        started.set()

    async def slow_call(scopes):
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await client.call_tool("lab__slow", {}, progress_callback=slow_progress)
            outcome["finished"] = True
        outcome["cancelled"] = scope.cancelled_caught

    scopes = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_call, scopes)
        with anyio.fail_after(10):
            await started.wait()
        check(await harness("in_flight lab") == "1", "the slow call runs on lab")
        with anyio.fail_after(10):
            r = await client.call_tool("lab__t01", {"x": 1})
        check(r.structured_content == {"tool": "t01", "x": 1}, "another call meanwhile")
        scopes[0].cancel()
    check(outcome == {"cancelled": True}, f"the slow call was cancelled, not answered: {outcome}")
    check(await harness("idle lab") == "0", "the cancel reached the node: nothing in flight")

    # --- subscriptions/listen: a node comes, notifications/tools/list_changed
    with anyio.fail_after(30):
        async with client.listen(tools_list_changed=True) as sub:
            check(sub.honored.tools_list_changed is True, f"the listen is acknowledged: {sub.honored}")
            check(await harness("add extra") == "ok", "node extra connected")
            with anyio.fail_after(10):
                event = await sub.__anext__()
            check(isinstance(event, ToolsListChanged), f"tools list changed: {event!r}")
    with anyio.fail_after(10):
        r = await client.list_tools(cursor=None)
        names = [t.name for t in r.tools]
        cursor = r.next_cursor
        while cursor is not None:
            r = await client.list_tools(cursor=cursor)
            names += [t.name for t in r.tools]
            cursor = r.next_cursor
    check("extra__ping" in names and len(names) == len(LAB_TOOLS) + 1, "extra's tool is listed")
    with anyio.fail_after(10):
        r = await client.call_tool("extra__ping", {})
    check(text_of(r) == "pong", "and called")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
