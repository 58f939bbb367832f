"""Drives `toolwire mcp` with the official MCP Python SDK as a real MCP client over stdio.

Run by cli/tests/mcp.rs, which starts a gateway with nodes `dev-a`, `dev-b` (simulated
devices) and `lab` (57 tools, one of which always fails), then runs:

    mcp_client.py TOOLWIRE_BINARY GATEWAY_URL [--http MCP_URL]

With `--http`, the same session runs over MCP's Streamable HTTP transport at the gateway's own
`/mcp` endpoint (MCP_URL) instead of the stdio bridge; the budget session is left to the
bridge there (the gateway's `/mcp` takes its budget from the gateway's configuration, which
cli/tests/mcp.rs tests on its own).

The script talks to the Rust test over its own stdout and stdin: a line `@@ REQUEST` asks the
test to look at or change the gateway (`in_flight NODE`, `idle NODE`, `drop NODE`) and the test
answers with one line. Other lines are log. Exit status 0 and a last line `PASS` mean every
check held; every wait is bounded.

A second session runs the bridge with `--max-result-bytes 16`: results longer than that are
cut, with a note, and read on with the bridge's `toolwire_read_result` tool.
"""

import json
import re
import sys

import anyio
import contextlib

from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client

DEVICE_TOOLS = ["echo", "read_sensor", "sample", "set_led", "uptime"]
LAB_TOOLS = [f"t{i:02}" for i in range(55)] + ["fail", "measure"]
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
READ_TOOL = "toolwire_read_result"
# The note that ends a cut result or a page with more after it.
NOTE = re.compile(
    r"\n\[toolwire: (?:result truncated — )?bytes (\d+) to (\d+) of (\d+) shown\. "
    r"Read more with the tool toolwire_read_result and (\{.*\})\]$")


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


async def list_all(session):
    """Every tool, page by page; returns (tools, page sizes)."""
    tools, pages, cursor = [], [], None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        r = await session.list_tools(params=params)
        tools += r.tools
        pages.append(len(r.tools))
        cursor = r.next_cursor
        if cursor is None:
            return tools, pages
        if len(pages) >= 10:
            raise AssertionError("paging does not end")


def text_of(result):
    return " ".join(c.text for c in result.content if c.type == "text")


def split_note(text):
    """(page, None) or (page, (from, to, total, read-tool arguments)) for a text block."""
    m = NOTE.search(text)
    if m is None:
        return text, None
    return text[:m.start()], (int(m[1]), int(m[2]), int(m[3]), json.loads(m[4]))


async def budgeted(binary, url):
    """The bridge with a 16-byte result budget, through the SDK."""
    server = StdioServerParameters(command=binary, args=["mcp", "--gateway", url, "--max-result-bytes", "16"])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            with anyio.fail_after(10):
                await session.initialize()
                tools, _ = await list_all(session)
            names = [t.name for t in tools]
            check(names[-1] == READ_TOOL and names.count(READ_TOOL) == 1, "the read tool is listed last, once")
            check(all(t.output_schema is None for t in tools), "no output schemas under a budget")
            read_tool = tools[-1]
            check(read_tool.input_schema["required"] == ["handle", "offset"], "the read tool's arguments")
            check(read_tool.annotations.read_only_hint is True, "the read tool is read-only")

            # Small enough: as without a budget (structured content and all).
            with anyio.fail_after(10):
                r = await session.call_tool("lab__measure", {})
            check(not r.is_error and r.structured_content == {"volts": 3.3}, f"a short result is whole: {text_of(r)!r}")

            # Longer: the first 16 bytes at most, cut at a character boundary, then the note.
            said = "aé€😀" * 6
            whole = json.dumps({"text": said}, separators=(",", ":"), ensure_ascii=False)
            with anyio.fail_after(10):
                r = await session.call_tool("dev-a__echo", {"text": said})
            page, note = split_note(text_of(r))
            check(not r.is_error and note is not None, f"a long result is cut with a note: {text_of(r)!r}")
            check(r.structured_content is None, "a cut result has no structured content")
            start, end, total, args = note
            check(start == 0 and end == len(page.encode()) <= 16, f"the first page: {page!r}")
            check(total == len(whole.encode()), f"the note gives the whole length ({total})")
            pieces = [page]
            for _ in range(100):
                with anyio.fail_after(10):
                    r = await session.call_tool(READ_TOOL, args)
                check(not r.is_error, f"read {args}")
                page, note = split_note(text_of(r))
                check(0 < len(page.encode()) <= 16, f"a page of at most 16 bytes: {page!r}")
                pieces.append(page)
                if note is None:
                    break
                args = note[3]
            joined = "".join(pieces)
            check(json.loads(joined) == {"text": said}, f"the pieces add up: {joined!r}")
            check(joined == whole and len(pieces) >= 5, f"to the result's JSON text, in {len(pieces)} pieces")

            with anyio.fail_after(10):
                r = await session.call_tool(READ_TOOL, {"handle": "r999999", "offset": 0})
            check(r.is_error and "-32015" in text_of(r), f"a handle not held is isError: {text_of(r)!r}")


@contextlib.asynccontextmanager
async def transport(binary, url, http):
    """The bridge on stdio, or the gateway's `/mcp` over Streamable HTTP."""
    if http is None:
        server = StdioServerParameters(command=binary, args=["mcp", "--gateway", url, "--log", "info"])
        async with stdio_client(server) as streams:
            yield streams
    else:
        print(f"transport: streamable HTTP at {http}", flush=True)
        async with streamable_http_client(http) as streams:
            yield streams[0], streams[1]


async def main(binary, url, http):
    list_changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            print("notification: tools/list_changed", flush=True)
            list_changed.set()
        elif isinstance(message, Exception):
            print(f"transport error: {message!r}", flush=True)

    async with transport(binary, url, http) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            # --- initialize
            with anyio.fail_after(10):
                init = await session.initialize()
            print(f"negotiated protocol version {init.protocol_version}", flush=True)
            check(init.protocol_version == "2025-11-25", "the SDK's version is accepted as is")
            check(init.server_info.name == "toolwire", "server info")
            check(init.capabilities.tools is not None and init.capabilities.tools.list_changed,
                  "tools capability with listChanged")
            with anyio.fail_after(5):
                await session.send_ping()

            # --- tools/list: three nodes, two pages
            with anyio.fail_after(10):
                tools, pages = await list_all(session)
            names = [t.name for t in tools]
            expected = {f"{n}__{t}" for n in ("dev-a", "dev-b") for t in DEVICE_TOOLS}
            expected |= {f"lab__{t}" for t in LAB_TOOLS}
            print(f"{len(names)} tools in pages of {pages}", flush=True)
            check(pages == [50, len(expected) - 50], f"paged 50 at a time: {pages}")
            check(len(names) == len(set(names)), "no tool listed twice")
            check(set(names) == expected, "every node's tools, named node__tool")
            check(all(NAME.match(n) for n in names), "names follow MCP's tool-name rules")
            by_name = {t.name: t for t in tools}
            rs = by_name["dev-a__read_sensor"]
            check(rs.input_schema["properties"]["channel"]["maximum"] == 3, "input schema passed through")
            check(rs.title == "read_sensor on dev-a", "title names tool and node")
            check(rs.description.startswith("Read the temperature"), "description passed through")
            check(rs.annotations.read_only_hint is True and rs.annotations.idempotent_hint is True,
                  "read-only and idempotent hints")
            led = by_name["dev-b__set_led"].annotations
            check(led.read_only_hint is False and led.destructive_hint is False, "set_led: writes, not destructive")
            check(by_name["lab__measure"].output_schema["properties"]["volts"]["type"] == "number",
                  "output schema passed through")
            try:
                await session.list_tools(params=types.PaginatedRequestParams(cursor="bogus"))
                check(False, "a bogus cursor is refused")
            except MCPError as e:
                check(e.code == -32602, f"a bogus cursor is -32602 ({e.message})")

            # --- tools/call with structured content
            with anyio.fail_after(10):
                r = await session.call_tool("dev-a__read_sensor", {"channel": 2})
            check(not r.is_error, "read_sensor succeeds")
            check(r.structured_content["channel"] == 2 and r.structured_content["milli_c"] > 0,
                  f"structuredContent {r.structured_content}")
            check(json.loads(text_of(r)) == r.structured_content, "text content is the same JSON")
            with anyio.fail_after(10):
                r = await session.call_tool("lab__measure", {})
            check(r.structured_content == {"volts": 3.3}, "result checked against the output schema")
            with anyio.fail_after(10):
                r = await session.call_tool("lab__t07", {"x": 5})
            check(r.structured_content == {"tool": "t07", "x": 5}, "calls route to the right tool")

            # --- progress
            seen = []

            async def on_progress(progress, total, message):
                seen.append((progress, total, message))

            with anyio.fail_after(10):
                r = await session.call_tool(
                    "dev-b__sample", {"channel": 1, "count": 5, "interval_ms": 20},
                    progress_callback=on_progress)
            print(f"progress: {seen}", flush=True)
            check([p for p, _, _ in seen] == [1, 2, 3, 4, 5], "five progress notifications")
            check(all(t == 5 for _, t, _ in seen), "progress carries the total")
            check(r.structured_content["count"] == 5, "sample result after its progress")

            # --- a slow call does not block others; cancelling it stops it on the node
            started = anyio.Event()
            outcome = {}

            async def slow_progress(progress, total, message):
                started.set()

            async def slow_call(scope_ready):
                with anyio.CancelScope() as scope:
                    scope_ready(scope)
                    await session.call_tool(
                        "dev-a__sample", {"channel": 0, "count": 100, "interval_ms": 1000},
                        progress_callback=slow_progress)
                    outcome["finished"] = True
                outcome["cancelled"] = scope.cancelled_caught

            scopes = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call, scopes.append)
                with anyio.fail_after(10):
                    await started.wait()
                check(await harness("in_flight dev-a") == "1", "the slow call runs on dev-a")
                t0 = anyio.current_time()
                with anyio.fail_after(5):
                    await session.send_ping()
                    r = await session.call_tool("dev-b__uptime", {})
                elapsed = anyio.current_time() - t0
                check(not r.is_error and elapsed < 2, f"ping and another call meanwhile ({elapsed:.3f} s)")
                scopes[0].cancel()
            check(outcome == {"cancelled": True}, "the slow call was cancelled, not answered")
            check(await harness("idle dev-a") == "0", "cancel reached the node: nothing in flight")
            with anyio.fail_after(5):
                await session.send_ping()

            # --- failures are results with isError, unknown names are protocol errors
            with anyio.fail_after(10):
                r = await session.call_tool("lab__fail", {})
            check(r.is_error and "boom" in text_of(r), f"a failing tool is isError: {text_of(r)!r}")
            with anyio.fail_after(10):
                r = await session.call_tool("dev-a__read_sensor", {"channel": 9})
            check(r.is_error and "-32002" in text_of(r),
                  f"arguments refused by the schema are isError: {text_of(r)!r}")
            try:
                await session.call_tool("nope__nope", {})
                check(False, "an unknown tool is refused")
            except MCPError as e:
                check(e.code == -32602, f"an unknown tool is -32602 ({e.message})")

            # --- a node leaves: list_changed, and its tools are gone
            list_changed = anyio.Event()
            check(await harness("drop dev-b") == "ok", "dev-b dropped")
            with anyio.fail_after(10):
                await list_changed.wait()
            check(True, "notifications/tools/list_changed received")
            with anyio.fail_after(10):
                tools, _ = await list_all(session)
            names = {t.name for t in tools}
            check(not any(n.startswith("dev-b__") for n in names), "dev-b's tools are gone")
            check(len(names) == len(expected) - len(DEVICE_TOOLS), "the others remain")
            check(READ_TOOL not in names, "no read tool without a budget")
    if http is None:
        await budgeted(binary, url)
    print("PASS", flush=True)


if __name__ == "__main__":
    binary, url = sys.argv[1], sys.argv[2]
    http = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--http" else None
    anyio.run(main, binary, url, http)
