//! The gateway's HTTP face over real loopback sockets: the REST API, streamed calls, cancel on
//! close, tokens and ACLs, the limits (body, head timeout, connections per source), malformed
//! HTTP, health, metrics, and WebSocket peers on the same port. Requests are written by hand
//! (raw HTTP/1.1), so that malformed and partial ones can be sent as well.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use smol::channel::{Sender, bounded};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use toolwire_smol::gateway::{Acl, GatewayEvent, TokenSpec};
use toolwire_smol::node::{HostNode, NodeOptions, Tool};
use toolwire_smol::{Gateway, GatewayConfig};

/// A response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn code(&self) -> i64 {
        self.json()["error"]["code"].as_i64().unwrap()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The `host:port` of a `ws://host:port/ws` URL.
fn authority(ws: &str) -> String {
    ws.trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned()
}

/// Sends `raw` and reads the whole response (the request says `Connection: close`, or the
/// server closes), within 10 s.
async fn exchange(addr: &str, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_reply(&mut s).await
}

async fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let read = async {
        let _ = s.read_to_end(&mut buf).await;
    };
    within(Duration::from_secs(10), read)
        .await
        .expect("the response ends within 10 s");
    parse(&buf)
}

fn parse(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn get(addr: &str, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    exchange(addr, raw.as_bytes()).await
}

async fn post(addr: &str, path: &str, body: &str, extra: &str) -> Reply {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, raw.as_bytes()).await
}

async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// A gateway with the demo device as node `dev` and a node `slow` whose `wait` tool reports
/// progress, then waits until cancelled (telling `started` and, when its future is dropped,
/// `dropped`).
async fn setup(cfg: GatewayConfig) -> (Gateway, String, Fixture) {
    let (gw, ws, tcp) = gateway(cfg).await;
    let (started, started_rx) = bounded(8);
    let (dropped, dropped_rx) = bounded(8);
    let wait = Tool::new(
        "wait",
        "Reports progress twice, then waits until cancelled",
        json!({"type": "object", "properties": {"ms": {"type": "integer"}}}),
        move |ctx, args| {
            let started = started.clone();
            let guard = Signal(dropped.clone());
            async move {
                let _guard = guard;
                ctx.progress(1, Some(2), Some("half"), None).await;
                ctx.progress(2, Some(2), Some("all"), None).await;
                let _ = started.try_send(());
                match args["ms"].as_u64() {
                    Some(ms) => smol::Timer::after(Duration::from_millis(ms)).await,
                    None => std::future::pending().await,
                };
                Ok(json!({"waited": true}))
            }
        },
    );
    let dev = spawn_device(&ws, NodeOptions::new("dev"));
    let slow = spawn_node(&ws, HostNode::new(NodeOptions::new("slow")).tool(wait));
    assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
    assert!(gw.wait_for_node("slow", Duration::from_secs(5)).await);
    let fixture = Fixture {
        tcp: tcp.trim_start_matches("tcp://").to_owned(),
        _nodes: vec![dev, slow],
        started: started_rx,
        dropped: dropped_rx,
    };
    (gw, authority(&ws), fixture)
}

struct Fixture {
    /// The TCP (COBS) listener's `host:port`.
    tcp: String,
    _nodes: Vec<smol::Task<()>>,
    started: smol::channel::Receiver<()>,
    dropped: smol::channel::Receiver<()>,
}

/// Sends on drop.
struct Signal(Sender<()>);

impl Drop for Signal {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

#[test]
fn the_rest_api_lists_nodes_and_tools_and_calls_a_tool() {
    smol::block_on(async {
        let (_gw, addr, _f) = setup(GatewayConfig::default()).await;
        let r = get(&addr, "/v1/nodes", None).await;
        assert_eq!(r.status, 200, "{r:?}");
        let ids: Vec<String> = r.json()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["dev", "slow"]);
        let r = get(&addr, "/v1/nodes/dev", None).await;
        assert_eq!(r.json()["id"], "dev");
        assert!(r.json()["tools"].as_u64().unwrap() >= 3);

        // The tools, one page at a time: every tool once, in order.
        let all = names(&get(&addr, "/v1/tools?limit=1000", None).await.json());
        assert!(all.contains(&"slow/wait".to_owned()), "{all:?}");
        assert_eq!(paged(&addr, 2, "").await, all);
        let r = get(&addr, "/v1/tools?cursor=garbage", None).await;
        assert_eq!((r.status, r.code()), (400, -32602));
        let r = get(&addr, "/v1/tools?limit=0", None).await;
        assert_eq!(r.status, 400);
        let r = get(&addr, "/v1/tools?prefix=wa", None).await.json();
        assert_eq!(r["tools"].as_array().unwrap().len(), 1);

        // One tool, and who offers it.
        let r = get(&addr, "/v1/nodes/slow/tools/wait", None).await;
        assert_eq!(
            r.json()["input_schema"]["properties"]["ms"]["type"],
            "integer"
        );
        let r = get(&addr, "/v1/tools/wait", None).await;
        assert_eq!(r.json(), json!({"tool": "wait", "nodes": ["slow"]}));
        let r = get(&addr, "/v1/tools/nothing", None).await;
        assert_eq!((r.status, r.code()), (404, -32001));
        let r = get(&addr, "/v1/nodes/ghost/tools", None).await;
        assert_eq!((r.status, r.code()), (404, -32011));

        // A call: arguments in, the result out.
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call?deadline_ms=5000",
            r#"{"ms":1}"#,
            "",
        )
        .await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"waited": true})),
            "{r:?}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        // Errors: the protocol's error object and a fitting status.
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call",
            r#"{"ms":"soon"}"#,
            "",
        )
        .await;
        assert_eq!((r.status, r.code()), (400, -32002), "{r:?}");
        let r = post(&addr, "/v1/nodes/slow/tools/wait/call", "[1]", "").await;
        assert_eq!((r.status, r.code()), (400, -32602));
        let r = post(&addr, "/v1/nodes/slow/tools/wait/call", "{", "").await;
        assert_eq!(r.status, 400);
        let r = post(&addr, "/v1/nodes/slow/tools/nope/call", "{}", "").await;
        assert_eq!((r.status, r.code()), (404, -32001));
        let r = post(&addr, "/v1/nodes/ghost/tools/wait/call", "{}", "").await;
        assert_eq!((r.status, r.code()), (404, -32011));
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call?deadline_ms=50",
            "{}",
            "",
        )
        .await;
        assert_eq!((r.status, r.code()), (504, -32003));
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call?deadline_ms=0",
            "{}",
            "",
        )
        .await;
        assert_eq!(r.status, 400);
        let r = exchange(
            &addr,
            b"POST /v1/nodes/slow/tools/wait/call HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await;
        assert_eq!(r.status, 415);
        let r = get(&addr, "/v1/nodes/slow/tools/wait/call", None).await;
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
        let r = get(&addr, "/v2/anything", None).await;
        assert_eq!(r.status, 404);
        // An empty body is `{}`; no Content-Type is taken as JSON.
        let r = exchange(
            &addr,
            b"POST /v1/nodes/dev/tools/uptime/call HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.json()["ms"].is_u64(), "{r:?}");
    });
}

#[test]
fn a_streamed_call_sends_its_progress_then_its_result() {
    smol::block_on(async {
        let (_gw, addr, _f) = setup(GatewayConfig::default()).await;
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call",
            r#"{"ms":20}"#,
            "Accept: text/event-stream\r\n",
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let events: Vec<(String, Value)> = r
            .body
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let ev = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
                let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                (ev.to_owned(), serde_json::from_str(data).unwrap())
            })
            .collect();
        assert_eq!(
            events,
            vec![
                (
                    "progress".into(),
                    json!({"progress": 1, "total": 2, "message": "half"})
                ),
                (
                    "progress".into(),
                    json!({"progress": 2, "total": 2, "message": "all"})
                ),
                ("result".into(), json!({"waited": true})),
            ]
        );
        // A quiet stream gets keep-alive comments (every 100 ms here) until its result.
        drop(_gw);
        let mut cfg = GatewayConfig::default();
        cfg.http.sse_keepalive = Duration::from_millis(100);
        let (_gw2, addr2, _f2) = setup(cfg).await;
        let r = post(
            &addr2,
            "/v1/nodes/slow/tools/wait/call",
            r#"{"ms":450}"#,
            "Accept: text/event-stream\r\n",
        )
        .await;
        let quiet = r.body.matches(": keep-alive\n\n").count();
        assert!(
            (2..=5).contains(&quiet),
            "{quiet} keep-alives in {:?}",
            r.body
        );
        assert!(
            r.body.trim_end().ends_with(r#"data: {"waited":true}"#),
            "{:?}",
            r.body
        );
        // A failure ends the stream with an `error` event.
        let r = post(
            &addr,
            "/v1/nodes/slow/tools/wait/call?deadline_ms=100",
            "{}",
            "Accept: text/event-stream\r\n",
        )
        .await;
        let last = r.body.trim_end().rsplit("\n\n").next().unwrap().to_owned();
        assert!(last.starts_with("event: error\ndata: "), "{last}");
        assert!(last.contains("-32003"), "{last}");
    });
}

/// Closing the request before the answer cancels the call on the node, streamed or not.
#[test]
fn closing_the_request_cancels_the_call_on_the_node() {
    smol::block_on(async {
        let (gw, addr, f) = setup(GatewayConfig::default()).await;
        let events = gw.events();
        for accept in ["", "Accept: text/event-stream\r\n"] {
            let body = "{}";
            let raw = format!(
                "POST /v1/nodes/slow/tools/wait/call HTTP/1.1\r\nHost: x\r\n{accept}\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            assert!(
                within(Duration::from_secs(5), f.started.recv())
                    .await
                    .is_some(),
                "the tool started"
            );
            assert_eq!(
                gw.nodes()
                    .iter()
                    .find(|n| n.id == "slow")
                    .unwrap()
                    .in_flight,
                1
            );
            drop(s);
            assert!(
                within(Duration::from_secs(5), f.dropped.recv())
                    .await
                    .is_some(),
                "the node dropped the call ({accept:?})"
            );
            let outcome = within(Duration::from_secs(5), async {
                loop {
                    if let Ok(GatewayEvent::CallFinished { tool, outcome, .. }) =
                        events.recv().await
                        && tool == "wait"
                    {
                        return outcome;
                    }
                }
            })
            .await;
            assert_eq!(outcome, Some(Err(-32004)));
            assert!(
                wait_until(Duration::from_secs(5), || gw
                    .nodes()
                    .iter()
                    .all(|n| n.in_flight == 0))
                .await
            );
        }
    });
}

#[test]
fn tokens_and_acls_apply_to_the_rest_api() {
    smol::block_on(async {
        let cfg = GatewayConfig {
            tokens: vec![
                TokenSpec::any("full"),
                TokenSpec {
                    token: "narrow".into(),
                    node: false,
                    controller: true,
                    acl: Acl {
                        allow: vec!["dev/uptime".into()],
                        deny: vec![],
                    },
                },
                TokenSpec {
                    token: "node-only".into(),
                    node: true,
                    controller: false,
                    acl: Acl::default(),
                },
            ],
            ..Default::default()
        };
        let (gw, ws, _) = gateway(cfg).await;
        let _dev = spawn_device(
            &ws,
            NodeOptions {
                token: Some("full".into()),
                ..NodeOptions::new("dev")
            },
        );
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        let addr = authority(&ws);
        let r = get(&addr, "/v1/nodes", None).await;
        assert_eq!((r.status, r.code()), (401, -32006));
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        let r = get(&addr, "/v1/nodes", Some("wrong")).await;
        assert_eq!(r.status, 401);
        let r = get(&addr, "/v1/nodes", Some("node-only")).await;
        assert_eq!((r.status, r.code()), (403, -32006));
        let r = get(&addr, "/metrics", None).await;
        assert_eq!(r.status, 401);
        assert_eq!(get(&addr, "/v1/nodes", Some("full")).await.status, 200);
        // Health and the API's description need no token.
        assert_eq!(get(&addr, "/healthz", None).await.status, 200);
        assert_eq!(get(&addr, "/readyz", None).await.status, 200);
        assert_eq!(get(&addr, "/openapi.json", None).await.status, 200);
        // The narrow token's ACL.
        let auth = "Authorization: Bearer narrow\r\n";
        let r = post(&addr, "/v1/nodes/dev/tools/uptime/call", "{}", auth).await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = post(
            &addr,
            "/v1/nodes/dev/tools/set_led/call",
            r#"{"led":0,"on":true}"#,
            auth,
        )
        .await;
        assert_eq!((r.status, r.code()), (403, -32006), "{r:?}");
        let r = post(
            &addr,
            "/v1/nodes/dev/tools/set_led/call",
            r#"{"led":0,"on":true}"#,
            "Authorization: bearer full\r\n",
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    });
}

#[test]
fn http_limits_hold_and_bad_http_disturbs_nothing_else() {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        cfg.http.max_body = 64;
        cfg.http.header_timeout = Duration::from_millis(300);
        cfg.http.max_per_source = 2;
        let (gw, addr, _f) = setup(cfg).await;

        // A body over the limit.
        let big = format!(r#"{{"ms":1,"pad":"{}"}}"#, "x".repeat(100));
        let r = post(&addr, "/v1/nodes/slow/tools/wait/call", &big, "").await;
        assert_eq!((r.status, r.code()), (413, -32008), "{r:?}");

        // Slowloris: half a head, then nothing. The gateway closes the connection.
        let mut slow = TcpStream::connect(&addr).await.unwrap();
        slow.write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let closed = within(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(closed.is_some(), "a head that never ends is cut off");
        // An idle keep-alive connection is closed after the same time.
        let mut idle = TcpStream::connect(&addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let closed = within(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
        assert!(closed.is_some(), "an idle connection is closed");

        // Malformed HTTP: 400, connection closed.
        let r = exchange(&addr, b"BLAH\x00\x01 / HTTP/9\r\n\r\n").await;
        assert_eq!(r.status, 400, "{r:?}");

        // Two keep-alive connections from this address are served; a third is refused 429.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut b = [0u8; 512];
            let n = s.read(&mut b).await.unwrap();
            assert!(b[..n].starts_with(b"HTTP/1.1 200"));
            held.push(s);
        }
        let r = get(&addr, "/healthz", None).await;
        assert_eq!((r.status, r.code()), (429, -32005), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"));
        // WebSocket peers do not count: a node still connects and is called.
        let extra = spawn_device(&format!("ws://{addr}/ws"), NodeOptions::new("extra"));
        assert!(gw.wait_for_node("extra", Duration::from_secs(5)).await);
        let v = gw
            .call("extra", "uptime", &json!({}), Default::default())
            .await
            .unwrap();
        assert!(v["ms"].is_u64());
        drop(held);
        // Once they close, the address may connect again.
        assert!(
            within(Duration::from_secs(5), async {
                loop {
                    if get(&addr, "/healthz", None).await.status == 200 {
                        return;
                    }
                    smol::Timer::after(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_some()
        );
        drop(extra);
    });
}

#[test]
fn websocket_peers_connect_on_ws_and_on_the_root_path() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let addr = authority(&ws);
        let _a = spawn_device(&format!("ws://{addr}/ws"), NodeOptions::new("a"));
        let _b = spawn_device(&format!("ws://{addr}"), NodeOptions::new("b"));
        assert!(gw.wait_for_node("a", Duration::from_secs(5)).await);
        assert!(gw.wait_for_node("b", Duration::from_secs(5)).await);
        // An upgrade elsewhere is just a request for that path.
        let r = exchange(
            &addr,
            b"GET /v1/nodes/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 404);
        // A bad upgrade on /ws.
        let r = exchange(
            &addr,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        assert_eq!(
            (r.status, r.header("sec-websocket-version")),
            (426, Some("13"))
        );
    });
}

#[test]
fn metrics_count_calls_and_readyz_follows_shutdown() {
    smol::block_on(async {
        let (gw, addr, f) = setup(GatewayConfig::default()).await;
        // Two stream frames the gateway skips: one not COBS (a block cut short by `0x00`), one
        // over the frame limit; then a WebSocket message over it (the socket is closed).
        let mut raw = TcpStream::connect(&f.tcp).await.unwrap();
        raw.write_all(&[0x05, 0x01, 0x00]).await.unwrap();
        raw.write_all(&vec![0x01; 70_000]).await.unwrap();
        raw.write_all(&[0x00]).await.unwrap();
        let ws = TcpStream::connect(&addr).await.unwrap();
        let (mut ws, _) = async_tungstenite::client_async(format!("ws://{addr}/ws"), ws)
            .await
            .unwrap();
        use futures_util::StreamExt;
        ws.send(async_tungstenite::tungstenite::Message::text(
            "x".repeat(70_000),
        ))
        .await
        .unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        // Skipped frames are counted as they are read, at the latest when their peer closes.
        drop(raw);
        let counted = within(Duration::from_secs(5), async {
            loop {
                let m = get(&addr, "/metrics", None).await.body;
                if m.contains(r#"toolwire_rejected_input_total{class="stream_frame_dropped"} 2"#) {
                    return;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(counted.is_some(), "two skipped stream frames counted");
        for _ in 0..3 {
            let r = post(&addr, "/v1/nodes/dev/tools/uptime/call", "{}", "").await;
            assert_eq!(r.status, 200);
        }
        let r = post(&addr, "/v1/nodes/slow/tools/wait/call", r#"{"ms":"x"}"#, "").await;
        assert_eq!(r.status, 400);
        let r = get(&addr, "/metrics", None).await;
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let m = &r.body;
        let value = |line: &str| -> f64 {
            m.lines()
                .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
                .unwrap_or_else(|| panic!("no `{line}` in\n{m}"))
        };
        assert_eq!(
            value(r#"toolwire_calls_total{node="dev",tool="uptime",outcome="ok"}"#),
            3.0
        );
        assert_eq!(value("toolwire_schema_rejections_total"), 1.0);
        assert_eq!(value("toolwire_nodes"), 2.0);
        assert_eq!(value("toolwire_calls_in_flight"), 0.0);
        assert_eq!(value("toolwire_call_duration_seconds_count"), 3.0);
        assert!(value("toolwire_frames_in_total") >= 3.0);
        assert!(value("toolwire_bytes_out_total") > 0.0);
        assert!(
            value(
                r#"toolwire_http_responses_total{route="/v1/nodes/{node}/tools/{tool}/call",status="200"}"#
            ) >= 3.0
        );
        assert!(m.trim_end().ends_with("# EOF"));
        assert_eq!(
            value(r#"toolwire_rejected_input_total{class="stream_frame_dropped"}"#),
            2.0
        );
        assert_eq!(
            value(r#"toolwire_rejected_input_total{class="malformed"}"#),
            0.0
        );
        assert_eq!(
            value(r#"toolwire_rejected_input_total{class="websocket_message_too_large"}"#),
            1.0
        );
        gw.shutdown();
        let r = get(&addr, "/readyz", None).await;
        assert_eq!(r.status, 503);
        assert_eq!(get(&addr, "/healthz", None).await.status, 200);
    });
}

/// `-32008` says whose frame was too small: arguments that do not fit the node's frame are the
/// caller's (`413`, refused before dispatch); a result too large for the gateway's frame is the
/// node's (`502`).
#[test]
fn too_large_is_the_callers_413_or_the_nodes_502() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig {
            max_frame: 2048,
            ..Default::default()
        })
        .await;
        let big = Tool::new(
            "big",
            "Returns 5,000 bytes",
            json!({"type": "object"}),
            |_, _| async { Ok(json!("x".repeat(5000))) },
        );
        let opts = NodeOptions {
            max_frame: 2048,
            ..NodeOptions::new("n")
        };
        let _n = spawn_node(&ws, HostNode::new(opts).tool(big));
        assert!(gw.wait_for_node("n", Duration::from_secs(5)).await);
        let addr = authority(&ws);
        let args = format!(r#"{{"pad":"{}"}}"#, "y".repeat(3000));
        let r = post(&addr, "/v1/nodes/n/tools/big/call", &args, "").await;
        assert_eq!((r.status, r.code()), (413, -32008), "{r:?}");
        let r = post(&addr, "/v1/nodes/n/tools/big/call", "{}", "").await;
        assert_eq!((r.status, r.code()), (502, -32008), "{r:?}");
        // Streamed, the refusal is a status too; the node's failure is the stream's last event.
        let sse = "Accept: text/event-stream\r\n";
        let r = post(&addr, "/v1/nodes/n/tools/big/call", &args, sse).await;
        assert_eq!((r.status, r.code()), (413, -32008), "{r:?}");
        let r = post(&addr, "/v1/nodes/n/tools/big/call", "{}", sse).await;
        assert_eq!(r.status, 200);
        assert!(
            r.body.contains("event: error\ndata: ") && r.body.contains("-32008"),
            "{r:?}"
        );
    });
}

async fn get_with(addr: &str, path: &str, extra: &str) -> Reply {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    exchange(addr, raw.as_bytes()).await
}

fn names(v: &Value) -> Vec<String> {
    v["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["node"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Every tool of `/v1/tools`, `limit` a page, following the cursors (at most 100 pages).
async fn paged(addr: &str, limit: usize, extra: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let r = get_with(addr, &format!("/v1/tools?limit={limit}{cursor}"), extra).await;
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        all.extend(names(&v));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    all
}

#[test]
fn the_toolwire_tools_header_narrows_one_request() {
    smol::block_on(async {
        let (_gw, addr, _f) = setup(GatewayConfig::default()).await;
        let all = names(&get(&addr, "/v1/tools?limit=1000", None).await.json());
        let dev: Vec<String> = all
            .iter()
            .filter(|t| t.starts_with("dev/"))
            .cloned()
            .collect();
        assert!(
            dev.len() >= 3 && all.contains(&"slow/wait".to_owned()),
            "{all:?}"
        );
        let only_dev = "Toolwire-Tools: dev/*\r\n";
        let r = get_with(&addr, "/v1/tools?limit=1000", only_dev).await;
        assert_eq!((r.status, names(&r.json())), (200, dev.clone()));
        // Paging walks the narrowed listing.
        assert_eq!(paged(&addr, 1, only_dev).await, dev);
        // Two headers and a list add up; blanks between commas are ignored.
        let both = "Toolwire-Tools: dev/*\r\nToolwire-Tools: , wait \r\n";
        let r = get_with(&addr, "/v1/tools?limit=1000", both).await;
        assert_eq!(names(&r.json()), all);
        let r = get_with(&addr, "/v1/nodes/slow/tools", only_dev).await;
        assert_eq!((r.status, r.json()["tools"].clone()), (200, json!([])));
        let r = get_with(&addr, "/v1/nodes/slow/tools/wait", only_dev).await;
        assert_eq!(r.status, 404, "{r:?}");
        let r = get_with(&addr, "/v1/tools/wait", only_dev).await;
        assert_eq!(r.status, 404, "{r:?}");
        let r = get_with(&addr, "/v1/tools/wait", "Toolwire-Tools: slow/w*\r\n").await;
        assert_eq!(r.json()["nodes"], json!(["slow"]), "{r:?}");
        // A call outside the set never reaches the node; inside it, it runs.
        let call = "/v1/nodes/slow/tools/wait/call";
        let r = post(&addr, call, r#"{"ms":1}"#, only_dev).await;
        assert_eq!((r.status, r.code()), (403, -32006), "{r:?}");
        assert!(r.body.contains("Toolwire-Tools"), "{r:?}");
        let r = post(&addr, call, r#"{"ms":1}"#, "Toolwire-Tools: */wait\r\n").await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"waited": true})),
            "{r:?}"
        );
        // A header that is not a tool set is refused, whatever the route.
        for bad in ["a/b/c", &"x".repeat(130)] {
            let h = format!("Toolwire-Tools: {bad}\r\n");
            let r = get_with(&addr, "/v1/tools", &h).await;
            assert_eq!((r.status, r.code()), (400, -32602), "{r:?}");
            let r = post(&addr, call, "{}", &h).await;
            assert_eq!((r.status, r.code()), (400, -32602), "{r:?}");
        }
    });
}

#[test]
fn the_result_cache_serves_rest_calls_and_no_cache_bypasses_it() {
    smol::block_on(async {
        let cfg = GatewayConfig {
            cache: Some(toolwire_smol::gateway::CacheConfig::new(
                toolwire_core::Duration::from_secs(60),
            )),
            ..GatewayConfig::default()
        };
        let (_gw, addr, _f) = setup(cfg).await;
        let call = "/v1/nodes/dev/tools/read_sensor/call";
        let first = post(&addr, call, r#"{"channel":1}"#, "").await;
        assert_eq!(first.status, 200, "{first:?}");
        let metric = |m: &str, name: &str| -> u64 {
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("toolwire_{name}_total ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {m}"))
        };
        // The same arguments, written otherwise: the kept result, without the node.
        let again = post(&addr, call, r#"{ "channel" : 1 }"#, "").await;
        assert_eq!(again.body, first.body);
        let m = get(&addr, "/metrics", None).await.body;
        assert_eq!(
            (metric(&m, "cache_hits"), metric(&m, "cache_misses")),
            (1, 1)
        );
        // `Cache-Control: no-cache` reaches the node; a tool not read-only is never kept.
        let fresh = post(
            &addr,
            call,
            r#"{"channel":1}"#,
            "Cache-Control: no-cache\r\n",
        )
        .await;
        assert_eq!(fresh.status, 200, "{fresh:?}");
        let led = "/v1/nodes/dev/tools/set_led/call";
        for _ in 0..2 {
            let r = post(&addr, led, r#"{"led":0,"on":true}"#, "").await;
            assert_eq!(r.status, 200, "{r:?}");
        }
        let m = get(&addr, "/metrics", None).await.body;
        assert_eq!(
            (metric(&m, "cache_hits"), metric(&m, "cache_misses")),
            (1, 2)
        );
    });
}

/// The value the `long` tool of [`budget_setup`] returns: some 20 KB of JSON text with
/// characters of one to four bytes, so that pages must be cut at character boundaries.
fn long_value() -> Value {
    json!({"text": "aé€😀".repeat(2000), "n": 2000})
}

/// A gateway with tokens `full` (every tool) and `narrow` (`n/small` only), and a node `n`
/// whose `long` tool returns [`long_value`] and `small` tool `{"ok": true}`.
async fn budget_setup() -> (Gateway, String, smol::Task<()>) {
    let cfg = GatewayConfig {
        tokens: vec![
            TokenSpec::any("full"),
            TokenSpec {
                token: "narrow".into(),
                node: false,
                controller: true,
                acl: Acl {
                    allow: vec!["n/small".into()],
                    deny: vec![],
                },
            },
        ],
        ..Default::default()
    };
    let (gw, ws, _) = gateway(cfg).await;
    let long = Tool::new(
        "long",
        "Returns some 20 KB",
        json!({"type": "object"}),
        |_, _| async { Ok(long_value()) },
    );
    let small = Tool::new(
        "small",
        "Returns a few bytes",
        json!({"type": "object"}),
        |_, _| async { Ok(json!({"ok": true})) },
    );
    let opts = NodeOptions {
        token: Some("full".into()),
        ..NodeOptions::new("n")
    };
    let node = spawn_node(&ws, HostNode::new(opts).tool(long).tool(small));
    assert!(gw.wait_for_node("n", Duration::from_secs(5)).await);
    (gw, authority(&ws), node)
}

const FULL: &str = "Authorization: Bearer full\r\n";

/// Reads a held result from `offset` to its end through `GET /v1/results/{handle}`, `length`
/// bytes a page (at most 1000 pages): the pages, in order.
async fn read_to_end(
    addr: &str,
    handle: &str,
    mut offset: u64,
    length: Option<u64>,
    total: u64,
) -> Vec<String> {
    let mut pages = vec![];
    for _ in 0..1000 {
        let len = length.map_or(String::new(), |l| format!("&length={l}"));
        let path = format!("/v1/results/{handle}?offset={offset}{len}");
        let r = get_with(addr, &path, FULL).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let v = r.json();
        assert_eq!(v["total_bytes"].as_u64(), Some(total), "{v}");
        let page = v["page"].as_str().unwrap().to_owned();
        assert!(!page.is_empty(), "a page always moves on: {v}");
        if let Some(l) = length {
            assert!(page.len() as u64 <= l, "{} bytes > {l}", page.len());
        }
        offset += page.len() as u64;
        pages.push(page);
        match v["next_offset"].as_u64() {
            Some(n) => assert_eq!(n, offset, "next_offset is where this page ends"),
            None => {
                assert!(v["next_offset"].is_null(), "{v}");
                assert_eq!(offset, total, "the last page ends the text");
                return pages;
            }
        }
    }
    panic!("paging did not end within 1000 pages");
}

#[test]
fn a_result_budget_holds_a_long_rest_result_to_page_through() {
    smol::block_on(async {
        let (_gw, addr, _node) = budget_setup().await;
        let text = serde_json::to_string(&long_value()).unwrap();
        assert!(text.len() > 15_000, "{}", text.len());
        let call = "/v1/nodes/n/tools/long/call";
        let budget = format!("{FULL}Toolwire-Max-Result-Bytes: 1000\r\n");
        let r = post(&addr, call, "{}", &budget).await;
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        let held = &v["held"];
        assert!(v.get("value").is_none(), "{v}");
        let handle = held["handle"].as_str().unwrap().to_owned();
        let total = held["total_bytes"].as_u64().unwrap();
        let first = held["page"].as_str().unwrap().to_owned();
        assert_eq!(total, text.len() as u64);
        assert!(first.len() <= 1000 && first.len() > 990, "{}", first.len());
        assert_eq!(held["next_offset"].as_u64(), Some(first.len() as u64));
        assert!(text.starts_with(&first));

        // From the envelope's next_offset, 1500 bytes a page: the pages add up to the text.
        let pages = read_to_end(&addr, &handle, first.len() as u64, Some(1500), total).await;
        assert!(pages.len() >= 10, "{} pages", pages.len());
        let joined = format!("{first}{}", pages.concat());
        assert_eq!(joined, text);
        assert_eq!(
            serde_json::from_str::<Value>(&joined).unwrap(),
            long_value()
        );
        // From 0 with the call's budget as the page length: the envelope's page comes first.
        let pages = read_to_end(&addr, &handle, 0, None, total).await;
        assert_eq!(pages[0], first);
        assert!(pages.iter().all(|p| p.len() <= 1000));
        assert_eq!(pages.concat(), text);

        // Streamed, the result event carries the envelope.
        let sse = format!("{budget}Accept: text/event-stream\r\n");
        let r = post(&addr, call, "{}", &sse).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            r.body.contains("event: result\ndata: {\"held\":{"),
            "{}",
            r.body
        );

        // Within the budget, the value itself; without a budget, the bare result as before.
        let small = "/v1/nodes/n/tools/small/call";
        let r = post(&addr, small, "{}", &budget).await;
        assert_eq!((r.status, r.json()), (200, json!({"value": {"ok": true}})));
        let r = post(&addr, small, "{}", FULL).await;
        assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
        let r = post(&addr, call, "{}", FULL).await;
        assert_eq!((r.status, r.json()), (200, long_value()));
        // Two results were held: the first call's and the streamed one's.
        let m = get(&addr, "/metrics", Some("full")).await.body;
        let held = m
            .lines()
            .find_map(|l| l.strip_prefix("toolwire_results_held_total "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        assert_eq!(held, Some(2), "{m}");
    });
}

#[test]
fn bad_budgets_and_reads_are_refused_and_acls_guard_held_results() {
    smol::block_on(async {
        let (_gw, addr, _node) = budget_setup().await;
        let call = "/v1/nodes/n/tools/long/call";
        // A budget that is not a whole number from 16 is refused before the call.
        for bad in [
            "abc",
            "15",
            "0",
            "-16",
            "+16",
            "16.0",
            "1e3",
            "",
            "4294967296",
        ] {
            let h = format!("{FULL}Toolwire-Max-Result-Bytes: {bad}\r\n");
            let r = post(&addr, call, "{}", &h).await;
            assert_eq!((r.status, r.code()), (400, -32602), "{bad:?}: {r:?}");
            let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(msg.contains("Toolwire-Max-Result-Bytes"), "{msg}");
        }
        let twice =
            format!("{FULL}Toolwire-Max-Result-Bytes: 100\r\nToolwire-Max-Result-Bytes: 200\r\n");
        let r = post(&addr, call, "{}", &twice).await;
        assert_eq!((r.status, r.code()), (400, -32602), "{r:?}");
        let r = post(
            &addr,
            call,
            "{}",
            &format!("{FULL}Toolwire-Max-Result-Bytes: 16\r\n"),
        )
        .await;
        assert_eq!(r.status, 200, "the least budget is 16: {r:?}");

        let r = post(
            &addr,
            call,
            "{}",
            &format!("{FULL}Toolwire-Max-Result-Bytes: 64\r\n"),
        )
        .await;
        let held = r.json()["held"].clone();
        let handle = held["handle"].as_str().unwrap().to_owned();
        let read = |q: String, extra: String| {
            let addr = addr.clone();
            let path = format!("/v1/results/{handle}{q}");
            async move { get_with(&addr, &path, &extra).await }
        };
        assert_eq!(read(String::new(), FULL.into()).await.status, 200);

        // Handles the gateway does not hold: 410, -32015.
        for h in ["r999999", "nonsense", &"r".repeat(300)] {
            let r = get_with(&addr, &format!("/v1/results/{h}"), FULL).await;
            assert_eq!((r.status, r.code()), (410, -32015), "{h}: {r:?}");
        }
        // Offsets that do not start a page, and lengths that are not one: 400, -32602.
        let text = serde_json::to_string(&long_value()).unwrap();
        let inside = (0..text.len())
            .find(|&i| !text.is_char_boundary(i))
            .unwrap();
        let past = text.len() + 1;
        for q in [
            format!("?offset={inside}"),
            format!("?offset={past}"),
            "?offset=abc".into(),
            "?offset=-1".into(),
            "?length=0".into(),
            "?length=x".into(),
        ] {
            let r = read(q.clone(), FULL.into()).await;
            assert_eq!((r.status, r.code()), (400, -32602), "{q}: {r:?}");
        }
        // The token's ACL must permit the result's tool; the tool set too.
        let r = read(String::new(), "Authorization: Bearer narrow\r\n".into()).await;
        assert_eq!((r.status, r.code()), (410, -32015), "{r:?}");
        assert!(
            !r.body.contains("aé€"),
            "nothing of the result leaks: {r:?}"
        );
        let r = read(String::new(), String::new()).await;
        assert_eq!((r.status, r.code()), (401, -32006), "{r:?}");
        let r = read(String::new(), format!("{FULL}Toolwire-Tools: n/small\r\n")).await;
        assert_eq!((r.status, r.code()), (410, -32015), "{r:?}");
        let r = read(String::new(), format!("{FULL}Toolwire-Tools: n/*\r\n")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["page"], held["page"]);
    });
}
