"""The gateway's HTTP face driven by third-party clients: httpx for the REST API, and
prometheus_client's OpenMetrics parser for /metrics (run by tests/http_interop.rs).

    python http_client.py BASE_URL TOKEN RATE_LIMITED_BASE_URL

BASE_URL is a gateway with one node, `host`, offering the demo device's tools, on which nobody
else calls tools; RATE_LIMITED_BASE_URL the same on a gateway started with `--rate 0.1` (a bucket
of one call, refilled every ten seconds). TOKEN is accepted by both. Every request the script
makes is tallied, so the counters /metrics reports are checked against exactly what was done.
Prints PASS last when every check held; any failed check raises, and the exit status is
non-zero.
"""

import collections
import sys

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

DEMO_TOOLS = ["echo", "read_sensor", "sample", "set_led", "uptime"]
CALL = "/v1/nodes/{node}/tools/{tool}/call"


class Tally:
    """An httpx client that counts its responses by route pattern and status, as the gateway's
    toolwire_http_responses_total does."""

    def __init__(self, base, token):
        self.client = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,  # loopback only: no proxy from the environment
        )
        self.responses = collections.Counter()

    def request(self, route, method, path, **kw):
        r = self.client.request(method, path, **kw)
        self.responses[(route, str(r.status_code))] += 1
        return r

    def get(self, route, path, **kw):
        return self.request(route, "GET", path, **kw)

    def call(self, tool, args, node="host", **kw):
        path = f"/v1/nodes/{node}/tools/{tool}/call"
        return self.request(CALL, "POST", path, json=args, **kw)

    def close(self):
        self.client.close()


def expect_error(r, status, code):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]


def scrape(t):
    """GET /metrics, parsed by prometheus_client: {family name: family}."""
    r = t.get("/metrics", "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    # The OpenMetrics parser is strict: it raises on anything malformed, or a missing `# EOF`.
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    return families


def http_responses(families):
    """toolwire_http_responses_total as a Counter of (route, status)."""
    got = collections.Counter()
    if "toolwire_http_responses" not in families:
        return got  # no response yet
    for s in families["toolwire_http_responses"].samples:
        if s.name == "toolwire_http_responses_total":
            got[(s.labels["route"], s.labels["status"])] += s.value
    return got


def value(families, name, sample=None, **labels):
    """The one sample of family `name` (sample name `sample`, default the family's) with
    exactly these labels."""
    sample = sample or name
    found = [
        s.value
        for s in families[name].samples
        if s.name == sample and s.labels == labels
    ]
    assert len(found) == 1, f"{sample}{labels}: {found} in {families[name].samples}"
    return found[0]


def main():
    base, token, rate_base = sys.argv[1:4]

    t = Tally(base, token)
    # Where the counters start: the test's harness polled for the node to be up (GET
    # /v1/nodes/host) and made no call.
    before = http_responses(scrape(t))
    assert all(route != CALL for route, _ in before), before

    # Health needs no token; every /v1 route and /metrics does.
    r = httpx.get(f"{base}/healthz", timeout=10.0, trust_env=False)
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
    t.responses[("/healthz", "200")] += 1
    r = httpx.get(f"{base}/metrics", timeout=10.0, trust_env=False)
    expect_error(r, 401, -32006)
    assert r.headers["www-authenticate"].lower().startswith("bearer"), r.headers
    t.responses[("/metrics", "401")] += 1

    # Nodes.
    r = t.get("/v1/nodes", "/v1/nodes")
    assert r.status_code == 200, r.text
    nodes = r.json()["nodes"]
    assert [n["id"] for n in nodes] == ["host"], nodes
    assert nodes[0]["tools"] == len(DEMO_TOOLS), nodes
    assert nodes[0]["in_flight"] == 0, nodes
    r = t.get("/v1/nodes/{node}", "/v1/nodes/host")
    assert r.status_code == 200 and r.json() == nodes[0], r.text
    expect_error(t.get("/v1/nodes/{node}", "/v1/nodes/nowhere"), 404, -32011)

    # Page through every tool one at a time, following next_cursor until it is null.
    seen = []
    cursor = None
    pages = 0
    for _ in range(len(DEMO_TOOLS) + 2):  # bounded: one page per tool, and a margin
        params = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        r = t.get("/v1/tools", "/v1/tools", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert set(page) == {"tools", "next_cursor"}, page
        assert len(page["tools"]) == 1, page
        seen += [(x["node"], x["name"]) for x in page["tools"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == f"{seen[-1][0]}/{seen[-1][1]}", page
    else:
        raise AssertionError(f"next_cursor never became null after {pages} pages: {seen}")
    # Every tool once, in the documented order (by node, then name).
    assert seen == [("host", name) for name in DEMO_TOOLS], seen
    assert pages == len(DEMO_TOOLS), pages
    # One big page says the same.
    r = t.get("/v1/tools", "/v1/tools", params={"limit": 1000})
    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
    assert [x["name"] for x in r.json()["tools"]] == DEMO_TOOLS, r.text
    # A prefix filters; a limit out of range is refused.
    r = t.get("/v1/tools", "/v1/tools", params={"prefix": "se"})
    assert [x["name"] for x in r.json()["tools"]] == ["set_led"], r.text
    expect_error(t.get("/v1/tools", "/v1/tools", params={"limit": 0}), 400, -32602)

    # Resolve a tool to the nodes that offer it.
    r = t.get("/v1/tools/{tool}", "/v1/tools/echo")
    assert r.status_code == 200 and r.json() == {"tool": "echo", "nodes": ["host"]}, r.text
    expect_error(t.get("/v1/tools/{tool}", "/v1/tools/no_such_tool"), 404, -32001)

    # A tool's schema.
    r = t.get("/v1/nodes/{node}/tools/{tool}", "/v1/nodes/host/tools/echo")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["node"], echo["name"]) == ("host", "echo"), echo
    schema = echo["input_schema"]
    assert schema["type"] == "object" and schema["required"] == ["text"], schema
    assert schema["properties"]["text"] == {"type": "string", "maxLength": 64}, schema
    assert echo["annotations"]["read_only"] is True, echo
    expect_error(
        t.get("/v1/nodes/{node}/tools/{tool}", "/v1/nodes/host/tools/nope"), 404, -32001
    )

    # Calls. Answered by the node: OK_CALLS echoes, and one whose text fits the schema's 64
    # characters but not the device's 64 bytes (the node refuses it: -32002 from the node).
    ok_calls = 4
    for i in range(ok_calls):
        r = t.call("echo", {"text": f"hello {i}"})
        assert r.status_code == 200, r.text
        assert r.json() == {"text": f"hello {i}"}, r.text
    r = t.call("echo", {"text": "é" * 40})
    expect_error(r, 400, -32002)
    node_refused = 1
    # Refused by the gateway against the tool's schema: never reach the node.
    schema_breaking = [{"text": 5}, {}, {"text": "x", "extra": 1}, {"text": "y" * 65}]
    for args in schema_breaking:
        err = expect_error(t.call("echo", args), 400, -32002)
        assert "data" in err and "path" in err["data"], err
    # A tool the node does not have, and a node that is not there.
    expect_error(t.call("no_such_tool", {}), 404, -32001)
    expect_error(t.call("echo", {"text": "x"}, node="nowhere"), 404, -32011)

    families = scrape(t)
    # The scrape's own response is counted after it was rendered, so not in it: take it out
    # of the tally, and check it on a second scrape below.
    t.responses[("/metrics", "200")] -= 1

    # Calls that ended, for host/echo, by outcome: exactly those that reached the node.
    calls = families["toolwire_calls"]
    assert calls.type == "counter", calls
    by = collections.Counter()
    for s in calls.samples:
        if s.name == "toolwire_calls_total":
            by[(s.labels["node"], s.labels["tool"], s.labels["outcome"])] += s.value
    assert dict(by) == {
        ("host", "echo", "ok"): ok_calls,
        ("host", "echo", "invalid_arguments"): node_refused,
    }, dict(by)
    assert value(families, "toolwire_schema_rejections", "toolwire_schema_rejections_total") == len(
        schema_breaking
    )
    assert value(families, "toolwire_rate_limited", "toolwire_rate_limited_total") == 0
    assert value(families, "toolwire_nodes") == 1
    assert value(families, "toolwire_calls_in_flight") == 0
    for cls in ["malformed", "refused_full", "cut_off", "late_answer"]:
        assert value(
            families, "toolwire_rejected_input", "toolwire_rejected_input_total", **{"class": cls}
        ) == 0, cls

    # The latency histogram times the calls that reached the node, the same calls as above.
    h = families["toolwire_call_duration_seconds"]
    assert h.type == "histogram", h
    reached = ok_calls + node_refused
    count = value(families, h.name, h.name + "_count")
    assert count == reached, (count, reached)
    assert count == sum(by.values())
    assert value(families, h.name, h.name + "_sum") > 0
    buckets = sorted(
        (float(s.labels["le"]), s.value) for s in h.samples if s.name == h.name + "_bucket"
    )
    assert buckets[-1] == (float("inf"), count), buckets
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets

    # Frames went both ways (the node's hello and tools, the calls and their results).
    for name in ["frames_in", "frames_out", "bytes_in", "bytes_out"]:
        v = value(families, f"toolwire_{name}", f"toolwire_{name}_total")
        assert v >= reached, (name, v)

    # HTTP responses by route and status: exactly what this script received since `before`.
    got = http_responses(families)
    got.subtract(before)
    got = +got  # without the zeros
    want = +t.responses
    assert dict(got) == dict(want), f"\n got {sorted(got.items())}\nwant {sorted(want.items())}"
    assert got[(CALL, "200")] == ok_calls and got[(CALL, "400")] == node_refused + len(
        schema_breaking
    ), got
    # The next scrape shows the previous one.
    again = http_responses(scrape(t))
    assert again[("/metrics", "200")] == before[("/metrics", "200")] + 2, again
    t.close()

    # The rate-limited gateway: a bucket of one call. The first call spends it; the next are
    # refused with 429 and -32007 (Retry-After given) without reaching the node.
    rl = Tally(rate_base, token)
    r = rl.call("echo", {"text": "first"})
    assert r.status_code == 200 and r.json() == {"text": "first"}, r.text
    refused = 3
    for _ in range(refused):
        r = rl.call("echo", {"text": "again"})
        expect_error(r, 429, -32007)
        assert r.headers["retry-after"] == "1", r.headers
    # The schema is checked before the rate: a breaking call is still a 400, and spends nothing.
    expect_error(rl.call("echo", {"text": 1}), 400, -32002)
    families = scrape(rl)
    assert value(families, "toolwire_rate_limited", "toolwire_rate_limited_total") == refused
    assert value(families, "toolwire_schema_rejections", "toolwire_schema_rejections_total") == 1
    assert (
        value(families, "toolwire_calls", "toolwire_calls_total", node="host", tool="echo", outcome="ok")
        == 1
    )
    assert value(
        families, "toolwire_call_duration_seconds", "toolwire_call_duration_seconds_count"
    ) == 1
    assert value(
        families, "toolwire_http_responses", "toolwire_http_responses_total", route=CALL, status="429"
    ) == refused
    rl.close()
    print("PASS")


if __name__ == "__main__":
    main()
