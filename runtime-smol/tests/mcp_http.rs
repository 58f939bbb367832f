//! MCP's Streamable HTTP transport at the gateway's `/mcp`, over real loopback sockets with
//! requests written by hand: the rules of the transport (Accept, Origin, sessions, protocol
//! version, DELETE, bounds), resumption of a cut stream with `Last-Event-ID`, cancellation, and
//! tokens; and the stateless revision 2026-07-28 (a call's asks as input requests across
//! requests, a call cancelled when its response is closed or nobody comes back with input,
//! `subscriptions/listen`). (The official SDKs run whole sessions over it in cli/tests/mcp.rs
//! and cli/tests/mcp_2026.rs, and the conformance suite in cli/tests/mcp_conformance.rs.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use toolwire_core::frame::AskKind;
use toolwire_smol::gateway::{Acl, TokenSpec};
use toolwire_smol::node::{HostNode, NodeOptions, Tool};
use toolwire_smol::{Gateway, GatewayConfig};

/// A response head, and a body read as it comes (chunked or not).
struct Conn {
    s: TcpStream,
    raw: Vec<u8>,
    status: u16,
    head: String,
    chunked: bool,
    /// Body bytes decoded so far and not consumed.
    body: Vec<u8>,
    done: bool,
}

impl Conn {
    /// Sends `method /mcp` with `headers` (each `Name: value`) and `body`; reads the head.
    async fn open(addr: &str, method: &str, headers: &[&str], body: &str) -> Conn {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} /mcp HTTP/1.1\r\nHost: {addr}\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut c = Conn {
            s,
            raw: vec![],
            status: 0,
            head: String::new(),
            chunked: false,
            body: vec![],
            done: false,
        };
        let end = loop {
            if let Some(i) = c.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(
                c.fill().await,
                "the connection closed before a response head"
            );
        };
        c.head = String::from_utf8_lossy(&c.raw[..end]).into_owned();
        c.raw.drain(..end + 4);
        c.status = c.head.split(' ').nth(1).unwrap().parse().unwrap();
        c.chunked = c
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        c
    }

    /// Reads more bytes, within 10 s; false at the end of the connection.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let n = within(Duration::from_secs(10), self.s.read(&mut buf))
            .await
            .expect("bytes within 10 s")
            .unwrap_or(0);
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Decodes what `raw` holds of the body; false once the body has ended.
    fn decode(&mut self) {
        if !self.chunked {
            let len: Option<usize> = self.header("content-length").and_then(|v| v.parse().ok());
            self.body.append(&mut self.raw);
            if len == Some(self.body.len()) || len == Some(0) {
                self.done = true;
            }
            return;
        }
        while let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.raw[..i]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                self.done = true;
                return;
            }
            if self.raw.len() < i + 2 + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[i + 2..i + 2 + size]);
            self.raw.drain(..i + 2 + size + 2);
        }
    }

    /// The whole body.
    async fn text(mut self) -> String {
        loop {
            self.decode();
            if self.done || !self.fill().await {
                self.decode();
                return String::from_utf8(self.body).unwrap();
            }
        }
    }

    async fn json(self) -> Value {
        let t = self.text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
    }

    /// The next server-sent event (its id and its data as JSON), skipping comments; `None` at
    /// the end of the stream.
    async fn event(&mut self) -> Option<(String, Value)> {
        loop {
            self.decode();
            if let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let ev = String::from_utf8(self.body.drain(..i + 2).collect()).unwrap();
                let (mut id, mut data) = (None, None);
                for line in ev.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        // An empty one is a priming event: nothing to read.
                        if !v.trim().is_empty() {
                            data = Some(serde_json::from_str(v.trim()).unwrap());
                        }
                    }
                }
                match (id, data) {
                    // 2026-07-28 streams have no event ids.
                    (id, Some(data)) => return Some((id.unwrap_or_default(), data)),
                    _ => continue, // a keep-alive comment
                }
            }
            if self.done || !self.fill().await {
                return None;
            }
        }
    }
}

async fn within<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

const ACCEPT: &str = "Accept: application/json, text/event-stream";
const JSON: &str = "Content-Type: application/json";

fn authority(ws: &str) -> String {
    ws.trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned()
}

fn init_body() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string()
}

/// Opens a session (initialize, initialized); its id.
async fn open_session(addr: &str, extra: &[&str]) -> String {
    let mut h = vec![ACCEPT, JSON];
    h.extend_from_slice(extra);
    let c = Conn::open(addr, "POST", &h, &init_body()).await;
    assert_eq!(c.status, 200, "{}", c.head);
    let sid = c.header("mcp-session-id").expect("a session id").to_owned();
    let v = c.json().await;
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let session = format!("Mcp-Session-Id: {sid}");
    let mut h2 = vec![ACCEPT, JSON, session.as_str()];
    h2.extend_from_slice(extra);
    let c = Conn::open(addr, "POST", &h2, &note).await;
    assert_eq!(c.status, 202);
    sid
}

/// A node `n` with `slow` (five progress reports, 150 ms apart, then `{"done":5}`) and `echo`.
fn slow_node(opts: NodeOptions) -> HostNode {
    HostNode::new(opts)
        .tool(Tool::new(
            "slow",
            "reports progress five times",
            json!({"type": "object"}),
            |ctx, _args| async move {
                for i in 1..=5 {
                    ctx.progress(i, Some(5), None, None).await;
                    smol::Timer::after(Duration::from_millis(150)).await;
                }
                Ok(json!({"done": 5}))
            },
        ))
        .tool(Tool::new(
            "echo",
            "returns its arguments",
            json!({"type": "object"}),
            |_ctx, args| async move { Ok(args) },
        ))
}

async fn setup(cfg: GatewayConfig) -> (Gateway, String, smol::Task<()>) {
    let (gw, ws, _) = gateway(cfg).await;
    let node = spawn_node(&ws, slow_node(NodeOptions::new("n")));
    assert!(gw.wait_for_node("n", Duration::from_secs(10)).await);
    (gw, authority(&ws), node)
}

#[test]
fn the_transport_rules_hold() {
    smol::block_on(async {
        let (_gw, addr, _node) = setup(GatewayConfig::default()).await;
        let init = init_body();
        // Accept must list both kinds; the body must be JSON.
        let c = Conn::open(&addr, "POST", &["Accept: application/json", JSON], &init).await;
        assert_eq!(c.status, 406);
        let c = Conn::open(&addr, "POST", &[ACCEPT, "Content-Type: text/plain"], &init).await;
        assert_eq!(c.status, 415);
        // A page elsewhere may not drive it (DNS rebinding); loopback origins may.
        let c = Conn::open(
            &addr,
            "POST",
            &[ACCEPT, JSON, "Origin: http://evil.example"],
            &init,
        )
        .await;
        assert_eq!(c.status, 403);
        assert_eq!(c.json().await["error"]["code"], -32600);
        let sid = open_session(&addr, &["Origin: http://localhost:6274"]).await;
        assert!(
            sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sid}"
        );

        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
        let session = format!("Mcp-Session-Id: {sid}");
        // Without a session, 400; an unknown one, 404.
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON], &ping).await;
        assert_eq!(c.status, 400);
        let c = Conn::open(
            &addr,
            "POST",
            &[ACCEPT, JSON, "Mcp-Session-Id: 00ff"],
            &ping,
        )
        .await;
        assert_eq!(c.status, 404);
        // A known version header or none is fine; another is 400.
        let v = "MCP-Protocol-Version: 2025-11-25";
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session, v], &ping).await;
        assert_eq!(c.status, 200);
        assert_eq!(
            c.header("content-type"),
            Some("application/json"),
            "a ping is answered with JSON"
        );
        assert_eq!(
            c.json().await,
            json!({"jsonrpc": "2.0", "id": 1, "result": {}})
        );
        let bad = "MCP-Protocol-Version: 1999-01-01";
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session, bad], &ping).await;
        assert_eq!(c.status, 400);
        // A batch, or garbage: a JSON-RPC error with 400.
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], "[]").await;
        assert_eq!(c.status, 400);
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], "{nope").await;
        assert_eq!(
            (c.status, c.json().await["error"]["code"].clone()),
            (400, json!(-32700))
        );
        // A tools/call is an event stream: its response, with an event id.
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "n__echo", "arguments": {"x": 1}}})
        .to_string();
        let mut c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], &call).await;
        assert_eq!(c.header("content-type"), Some("text/event-stream"));
        let (id, msg) = c.event().await.expect("the response");
        assert!(id.contains('-'), "{id}");
        assert_eq!(msg["id"], 2);
        assert_eq!(msg["result"]["structuredContent"], json!({"x": 1}));
        assert!(
            c.event().await.is_none(),
            "the stream ends with the response"
        );
        // GET needs text/event-stream; other methods are 405.
        let c = Conn::open(&addr, "GET", &["Accept: application/json", &session], "").await;
        assert_eq!(c.status, 406);
        let c = Conn::open(&addr, "PUT", &[ACCEPT, &session], "").await;
        assert_eq!(
            (c.status, c.header("allow")),
            (405, Some("POST, GET, DELETE"))
        );
        // DELETE ends the session.
        let c = Conn::open(&addr, "DELETE", &[&session], "").await;
        assert_eq!(c.status, 204);
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], &ping).await;
        assert_eq!(c.status, 404);
    });
}

#[test]
fn a_cut_stream_resumes_with_last_event_id_and_the_call_runs_on() {
    smol::block_on(async {
        let (gw, addr, _node) = setup(GatewayConfig::default()).await;
        let sid = open_session(&addr, &[]).await;
        let session = format!("Mcp-Session-Id: {sid}");
        let call = json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call",
            "params": {"name": "n__slow", "arguments": {}, "_meta": {"progressToken": "p"}}})
        .to_string();
        let mut c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], &call).await;
        let (first, msg) = c.event().await.expect("a first progress");
        assert_eq!(msg["method"], "notifications/progress");
        assert_eq!(msg["params"]["progress"], 1);
        // The client goes away; the call goes on.
        drop(c);
        smol::Timer::after(Duration::from_millis(200)).await;
        assert_eq!(gw.node("n").map(|n| n.in_flight), Some(1), "still running");
        let last = format!("Last-Event-ID: {first}");
        let mut c = Conn::open(
            &addr,
            "GET",
            &["Accept: text/event-stream", &session, &last],
            "",
        )
        .await;
        assert_eq!(c.status, 200, "{}", c.head);
        let mut progress = vec![1];
        let mut response = None;
        while let Some((_, msg)) = c.event().await {
            match msg["method"].as_str() {
                Some("notifications/progress") => {
                    progress.push(msg["params"]["progress"].as_u64().unwrap());
                }
                _ => response = Some(msg),
            }
        }
        assert_eq!(progress, [1, 2, 3, 4, 5], "nothing lost, nothing twice");
        let response = response.expect("the response after the progress");
        assert_eq!(response["id"], "slow-1");
        assert_eq!(response["result"]["structuredContent"], json!({"done": 5}));
        // A stream id this server never gave is 404; a malformed one 400.
        let c = Conn::open(
            &addr,
            "GET",
            &[
                "Accept: text/event-stream",
                &session,
                "Last-Event-ID: 999-1",
            ],
            "",
        )
        .await;
        assert_eq!(c.status, 404);
        let c = Conn::open(
            &addr,
            "GET",
            &["Accept: text/event-stream", &session, "Last-Event-ID: x"],
            "",
        )
        .await;
        assert_eq!(c.status, 400);
    });
}

#[test]
fn cancelled_stops_the_call_on_the_node_and_its_stream() {
    smol::block_on(async {
        let (gw, addr, _node) = setup(GatewayConfig::default()).await;
        let sid = open_session(&addr, &[]).await;
        let session = format!("Mcp-Session-Id: {sid}");
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "n__slow", "arguments": {}, "_meta": {"progressToken": 1}}})
        .to_string();
        let mut c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], &call).await;
        assert!(c.event().await.is_some(), "a first progress");
        assert_eq!(gw.node("n").map(|n| n.in_flight), Some(1));
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 7, "reason": "enough"}})
        .to_string();
        let r = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session], &cancel).await;
        assert_eq!(r.status, 202);
        // The stream ends without a response; the node stops.
        while let Some((_, msg)) = c.event().await {
            assert_eq!(
                msg["method"], "notifications/progress",
                "no response: {msg}"
            );
        }
        assert!(
            wait_until(Duration::from_secs(5), || gw
                .node("n")
                .is_some_and(|n| n.in_flight == 0))
            .await,
            "the node's call was cancelled"
        );
    });
}

#[test]
fn sessions_belong_to_their_token_and_are_bounded() {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        let mut narrow = TokenSpec::any("narrow");
        narrow.acl = Acl {
            allow: vec!["n/echo".into()],
            deny: vec![],
        };
        cfg.tokens = vec![TokenSpec::any("full"), narrow];
        cfg.http.mcp.max_sessions = 2;
        let (gw, ws, _) = gateway(cfg).await;
        let mut opts = NodeOptions::new("n");
        opts.token = Some("full".into());
        let _node = spawn_node(&ws, slow_node(opts));
        assert!(gw.wait_for_node("n", Duration::from_secs(10)).await);
        let addr = authority(&ws);
        // No token: 401.
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON], &init_body()).await;
        assert_eq!(c.status, 401);
        let sid = open_session(&addr, &["Authorization: Bearer narrow"]).await;
        let session = format!("Mcp-Session-Id: {sid}");
        // The token's ACL holds: echo yes, slow no (a tool error the model sees).
        let call = |id: u32, tool: &str| {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": format!("n__{tool}"), "arguments": {}}})
            .to_string()
        };
        let auth = "Authorization: Bearer narrow";
        let mut c = Conn::open(
            &addr,
            "POST",
            &[ACCEPT, JSON, &session, auth],
            &call(1, "echo"),
        )
        .await;
        let (_, r) = c.event().await.unwrap();
        assert!(r["result"].get("isError").is_none(), "{r}");
        let mut c = Conn::open(
            &addr,
            "POST",
            &[ACCEPT, JSON, &session, auth],
            &call(2, "slow"),
        )
        .await;
        let (_, r) = c.event().await.unwrap();
        assert_eq!(r["result"]["isError"], true, "{r}");
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("-32006"),
            "{r}"
        );
        // Another token cannot use the session.
        let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string();
        let other = "Authorization: Bearer full";
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, &session, other], &ping).await;
        assert_eq!(c.status, 404);
        // Two sessions at most: the third is 503 while both are fresh.
        open_session(&addr, &[other]).await;
        let c = Conn::open(&addr, "POST", &[ACCEPT, JSON, other], &init_body()).await;
        assert_eq!(c.status, 503);
        assert!(c.header("retry-after").is_some());
        // Ending one makes room.
        let c = Conn::open(&addr, "DELETE", &[&session, auth], "").await;
        assert_eq!(c.status, 204);
        open_session(&addr, &[other]).await;
    });
}

/// The headers of a 2026-07-28 request for `method` (naming `name`, for a call).
fn modern_headers(method: &str, name: Option<&str>) -> Vec<String> {
    let mut h = vec![
        ACCEPT.to_owned(),
        JSON.to_owned(),
        "MCP-Protocol-Version: 2026-07-28".to_owned(),
        format!("Mcp-Method: {method}"),
    ];
    if let Some(n) = name {
        h.push(format!("Mcp-Name: {n}"));
    }
    h
}

/// A 2026-07-28 request: `params` with `_meta` (version and `caps`) added.
fn modern_body(id: u64, method: &str, mut params: Value, caps: Value) -> String {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn modern(addr: &str, id: u64, method: &str, params: Value, caps: Value) -> Conn {
    let name = params["name"].as_str().map(str::to_owned);
    let h = modern_headers(method, name.as_deref());
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    Conn::open(addr, "POST", &h, &modern_body(id, method, params, caps)).await
}

/// A node `asker` whose `valve` asks permission and whose `name` asks for input, each
/// returning the answer (and counting the calls that end).
fn asking_node(ended: std::sync::Arc<std::sync::atomic::AtomicU32>) -> HostNode {
    let e2 = ended.clone();
    HostNode::new(NodeOptions::new("asker"))
        .tool(Tool::new(
            "valve",
            "asks before it opens",
            json!({"type": "object"}),
            move |ctx, _| {
                let ended = ended.clone();
                async move {
                    let r = ctx.ask(AskKind::Permission, "Open valve 3?", None).await;
                    ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(json!({"allowed": r?}))
                }
            },
        ))
        .tool(Tool::new(
            "name",
            "asks a name",
            json!({"type": "object"}),
            move |ctx, _| {
                let ended = e2.clone();
                async move {
                    let schema = json!({"type": "string"});
                    let r = ctx.ask(AskKind::Input, "Your name?", Some(schema)).await;
                    ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(json!({"name": r?}))
                }
            },
        ))
}

#[test]
fn stateless_asks_round_trip_and_a_state_is_bound_to_its_call() {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        cfg.http.mcp.options.bare_names = true;
        let (gw, ws, _) = gateway(cfg).await;
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let _node = spawn_node(&ws, asking_node(ended.clone()));
        assert!(gw.wait_for_node("asker", Duration::from_secs(10)).await);
        let addr = authority(&ws);
        let caps = json!({"elicitation": {}});
        // Discovery, then a listing, answered on their own: no session.
        let c = modern(&addr, 1, "server/discover", json!({}), caps.clone()).await;
        assert_eq!(c.status, 200);
        assert!(c.header("mcp-session-id").is_none());
        let v = c.json().await;
        assert_eq!(v["result"]["supportedVersions"], json!(["2026-07-28"]));
        let v = modern(&addr, 2, "tools/list", json!({}), caps.clone())
            .await
            .json()
            .await;
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["name", "valve"]);
        assert_eq!(v["result"]["resultType"], "complete");
        // A permission: the first round asks, a yes/no form.
        let call = json!({"name": "valve", "arguments": {}});
        let v = modern(&addr, 3, "tools/call", call.clone(), caps.clone())
            .await
            .json()
            .await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "input_required", "{v}");
        let ask = &r["inputRequests"]["ask-1"];
        assert_eq!(ask["method"], "elicitation/create");
        assert_eq!(ask["params"]["message"], "Open valve 3?");
        assert_eq!(
            ask["params"]["requestedSchema"]["properties"]["allow"]["type"],
            "boolean"
        );
        let state = r["requestState"].as_str().unwrap().to_owned();
        // The state is this call's: another tool's call with it is refused, and the call goes
        // on waiting.
        let mut other = json!({"name": "name", "arguments": {}, "requestState": state,
            "inputResponses": {"ask-1": {"action": "accept", "content": {"allow": true}}}});
        let c = modern(&addr, 4, "tools/call", other.clone(), caps.clone()).await;
        assert_eq!(c.status, 400);
        assert_eq!(c.json().await["error"]["code"], -32602);
        // So is the same tool with other arguments.
        other["name"] = json!("valve");
        other["arguments"] = json!({"valve": 4});
        let c = modern(&addr, 4, "tools/call", other.clone(), caps.clone()).await;
        assert_eq!(c.json().await["error"]["code"], -32602, "other arguments");
        other["arguments"] = json!({});
        // An answer of the wrong shape is refused too, with a new state to answer under.
        other["inputResponses"]["ask-1"] = json!(12345);
        let c = modern(&addr, 5, "tools/call", other.clone(), caps.clone()).await;
        assert_eq!(c.status, 400);
        let v = c.json().await;
        assert_eq!(v["error"]["code"], -32602, "{v}");
        let state = v["error"]["data"]["requestState"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            ended.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "still waiting"
        );
        // Declined: the tool hears `false`.
        let again = json!({"name": "valve", "arguments": {}, "requestState": state,
            "inputResponses": {"ask-1": {"action": "decline"}}});
        let v = modern(&addr, 6, "tools/call", again.clone(), caps.clone())
            .await
            .json()
            .await;
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
        assert_eq!(v["result"]["structuredContent"], json!({"allowed": false}));
        // A state is good once.
        let c = modern(&addr, 7, "tools/call", again, caps.clone()).await;
        assert_eq!(c.json().await["error"]["code"], -32602);
        // An input that is not an object is asked as the field `value`, and answered so.
        let v = modern(
            &addr,
            8,
            "tools/call",
            json!({"name": "name", "arguments": {}}),
            caps.clone(),
        )
        .await
        .json()
        .await;
        let state = v["result"]["requestState"].as_str().unwrap().to_owned();
        let schema = &v["result"]["inputRequests"]["ask-1"]["params"]["requestedSchema"];
        assert_eq!(schema["properties"]["value"]["type"], "string", "{v}");
        let answer = json!({"name": "name", "arguments": {}, "requestState": state,
            "inputResponses": {"ask-1": {"action": "accept", "content": {"value": "Ada"}}}});
        let v = modern(&addr, 9, "tools/call", answer, caps.clone())
            .await
            .json()
            .await;
        assert_eq!(v["result"]["structuredContent"], json!({"name": "Ada"}));
        // Without the capability the ask is declined at once, and the failed call says what
        // was missing.
        let c = modern(
            &addr,
            10,
            "tools/call",
            json!({"name": "name", "arguments": {}}),
            json!({}),
        )
        .await;
        assert_eq!(c.status, 400);
        let v = c.json().await;
        assert_eq!(v["error"]["code"], -32021, "{v}");
        assert_eq!(
            v["error"]["data"]["requiredCapabilities"],
            json!({"elicitation": {}})
        );
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 3);
    });
}

/// A node `many`: `three` asks three things at once (two under the same input key), `five`
/// asks five at once and says how many were answered and how many declined.
fn many_asks_node() -> HostNode {
    let colour = |n: u32| {
        let schema = json!({"type": "object", "properties": {"colour": {"type": "string"}},
            "x-mcp-input-key": "colour"});
        (format!("Colour {n}?"), schema)
    };
    HostNode::new(NodeOptions::new("many"))
        .tool(Tool::new(
            "three",
            "asks two colours and a permission at once",
            json!({"type": "object"}),
            move |ctx, _| async move {
                let (p1, s1) = colour(1);
                let (p2, s2) = colour(2);
                let a = ctx.ask(AskKind::Input, &p1, Some(s1));
                let b = ctx.ask(AskKind::Input, &p2, Some(s2));
                let c = ctx.ask(AskKind::Permission, "Paint?", None);
                let ((a, b), c) = smol::future::zip(smol::future::zip(a, b), c).await;
                Ok(json!({"first": a?["colour"], "second": b?["colour"], "paint": c?}))
            },
        ))
        .tool(Tool::new(
            "five",
            "asks five permissions at once",
            json!({"type": "object"}),
            |ctx, _| async move {
                let prompts: Vec<String> = (1..=5).map(|i| format!("May I {i}?")).collect();
                let asks = prompts
                    .iter()
                    .map(|p| ctx.ask(AskKind::Permission, p, None));
                let all = futures_util::future::join_all(asks).await;
                let declined = all
                    .iter()
                    .filter(|r| r.as_ref().is_err_and(|e| e.code == -32013))
                    .count();
                let answered = all.iter().filter(|r| r.is_ok()).count();
                Ok(json!({"answered": answered, "declined": declined}))
            },
        ))
}

#[test]
fn asks_open_at_once_go_in_one_round_and_a_partial_answer_leaves_the_rest() {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        cfg.http.mcp.options.bare_names = true;
        let (gw, ws, _) = gateway(cfg).await;
        let _node = spawn_node(&ws, many_asks_node());
        assert!(gw.wait_for_node("many", Duration::from_secs(10)).await);
        let addr = authority(&ws);
        let caps = json!({"elicitation": {}});
        let call = json!({"name": "three", "arguments": {}});
        let v = modern(&addr, 1, "tools/call", call.clone(), caps.clone())
            .await
            .json()
            .await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "input_required", "{v}");
        let keys: Vec<&String> = r["inputRequests"].as_object().unwrap().keys().collect();
        // A key two open asks share gets a suffix; the ask without one is ask-<n>.
        assert_eq!(keys, ["ask-3", "colour", "colour-2"], "{v}");
        let message = |k: &str| r["inputRequests"][k]["params"]["message"].clone();
        assert_eq!(
            [message("colour"), message("colour-2"), message("ask-3")],
            [json!("Colour 1?"), json!("Colour 2?"), json!("Paint?")]
        );
        // One answered: the next round asks only the other two.
        let mut next = call.clone();
        next["requestState"] = r["requestState"].clone();
        next["inputResponses"] =
            json!({"colour": {"action": "accept", "content": {"colour": "red"}}});
        let v = modern(&addr, 2, "tools/call", next.clone(), caps.clone())
            .await
            .json()
            .await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "input_required", "{v}");
        let keys: Vec<&String> = r["inputRequests"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ask-3", "colour-2"], "{v}");
        next["requestState"] = r["requestState"].clone();
        next["inputResponses"] = json!({
            "colour-2": {"action": "accept", "content": {"colour": "blue"}},
            "ask-3": {"action": "accept", "content": {"allow": true}}});
        let v = modern(&addr, 3, "tools/call", next, caps.clone())
            .await
            .json()
            .await;
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
        assert_eq!(
            v["result"]["structuredContent"],
            json!({"first": "red", "second": "blue", "paint": true})
        );
        // Five at once: four wait for the client (as many as a call may have open), the fifth
        // is declined at once.
        let call = json!({"name": "five", "arguments": {}});
        let v = modern(&addr, 4, "tools/call", call.clone(), caps.clone())
            .await
            .json()
            .await;
        let r = &v["result"];
        let requests = r["inputRequests"].as_object().expect("input requests");
        assert_eq!(requests.len(), 4, "{v}");
        let mut next = call;
        next["requestState"] = r["requestState"].clone();
        next["inputResponses"] = requests
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    json!({"action": "accept", "content": {"allow": true}}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let v = modern(&addr, 5, "tools/call", next, caps)
            .await
            .json()
            .await;
        assert_eq!(
            v["result"]["structuredContent"],
            json!({"answered": 4, "declined": 1}),
            "{v}"
        );
        assert_eq!(gw.node("many").map(|n| n.in_flight), Some(0));
    });
}

#[test]
fn a_stateless_call_ends_when_its_response_is_closed_or_nobody_comes_back() {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        cfg.http.mcp.options.bare_names = true;
        cfg.http.mcp.input_wait = Duration::from_millis(300);
        let (gw, ws, _) = gateway(cfg).await;
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let _a = spawn_node(&ws, asking_node(ended.clone()));
        let _n = spawn_node(&ws, slow_node(NodeOptions::new("n")));
        assert!(gw.wait_for_node("asker", Duration::from_secs(10)).await);
        assert!(gw.wait_for_node("n", Duration::from_secs(10)).await);
        let addr = authority(&ws);
        let in_flight = |id: &str| gw.node(id).map(|n| n.in_flight);
        // Progress comes as an event stream; closing it cancels the call on the node.
        let params = json!({"name": "slow", "arguments": {}, "_meta": {"progressToken": "p"}});
        let mut c = modern(&addr, 1, "tools/call", params, json!({})).await;
        assert_eq!(c.status, 200);
        assert!(
            c.header("content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        let (_, first) = c.event().await.expect("a progress event");
        assert_eq!(first["method"], "notifications/progress");
        assert_eq!(first["params"]["progressToken"], "p");
        assert_eq!(in_flight("n"), Some(1));
        drop(c);
        assert!(
            wait_until(Duration::from_secs(5), || in_flight("n") == Some(0)).await,
            "closing the response cancelled the call"
        );
        // A call waiting for input nobody gives is cancelled after input_wait.
        let v = modern(
            &addr,
            2,
            "tools/call",
            json!({"name": "valve", "arguments": {}}),
            json!({"elicitation": {}}),
        )
        .await
        .json()
        .await;
        assert_eq!(v["result"]["resultType"], "input_required", "{v}");
        assert_eq!(in_flight("asker"), Some(1));
        assert!(
            wait_until(Duration::from_secs(5), || in_flight("asker") == Some(0)).await,
            "the waiting call was cancelled"
        );
        let state = v["result"]["requestState"].as_str().unwrap();
        let late = json!({"name": "valve", "arguments": {}, "requestState": state,
            "inputResponses": {"ask-1": {"action": "accept", "content": {"allow": true}}}});
        let c = modern(&addr, 3, "tools/call", late, json!({"elicitation": {}})).await;
        assert_eq!(c.json().await["error"]["code"], -32602, "expired");
    });
}

#[test]
fn subscriptions_listen_tells_when_the_tools_change() {
    smol::block_on(async {
        let (gw, addr, _node) = setup(GatewayConfig::default()).await;
        let params =
            json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true}});
        let mut c = modern(&addr, 41, "subscriptions/listen", params, json!({})).await;
        assert_eq!(c.status, 200);
        let (_, ack) = c.event().await.expect("the acknowledgement");
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        // Only what can change here is honoured.
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true})
        );
        assert_eq!(
            ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            41
        );
        let ws = format!("ws://{addr}");
        let _other = spawn_node(&ws, slow_node(NodeOptions::new("m")));
        assert!(gw.wait_for_node("m", Duration::from_secs(10)).await);
        let (_, changed) = c.event().await.expect("a change");
        assert_eq!(changed["method"], "notifications/tools/list_changed");
        assert_eq!(
            changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            41
        );
        // The old revision's GET has no place here.
        let h = modern_headers("tools/list", None);
        let h: Vec<&str> = h.iter().map(String::as_str).collect();
        let c = Conn::open(&addr, "GET", &h, "").await;
        assert_eq!(c.status, 405);
    });
}
