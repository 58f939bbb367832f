//! The hostile-input catalogue (SECURITY.md) against a real gateway on loopback: each input, the
//! documented answer, whether the connection goes on, and that memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use toolwire_core::ErrorCode;
use toolwire_core::stream::{Deframed, Deframer, encode_frame};
use toolwire_smol::client::{Client, ClientOptions};
use toolwire_smol::gateway::{Acl, CallOptions, TokenSpec};
use toolwire_smol::node::NodeOptions;
use toolwire_smol::{Endpoint, GatewayConfig};

/// One row of a table: name, frame, and the expected error code and id (`None`: no answer).
type Case = (&'static str, Vec<u8>, Option<(i64, Value)>);

/// A raw peer on the TCP listener: COBS frames by hand.
struct Raw {
    s: TcpStream,
    d: Deframer<Vec<u8>>,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(url: &str) -> Raw {
        let addr = url.trim_start_matches("tcp://");
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw {
            s,
            d: Deframer::new(vec![0u8; 1 << 20]),
            buf: vec![],
        }
    }
    fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }
    fn send(&mut self, frame: &[u8]) {
        let mut out = vec![0u8; frame.len() + frame.len() / 254 + 2];
        let n = encode_frame(frame, &mut out).unwrap();
        self.s.write_all(&out[..n]).unwrap();
    }
    fn send_json(&mut self, v: &Value) {
        self.send(v.to_string().as_bytes());
    }
    /// The next frame as JSON, skipping pings (answering them); `None` on close or timeout.
    fn recv(&mut self) -> Option<Value> {
        loop {
            while !self.buf.is_empty() {
                let (used, out) = self.d.push(&self.buf);
                let frame = match out {
                    Deframed::Frame(f) => Some(f.to_vec()),
                    _ => None,
                };
                self.buf.drain(..used);
                if let Some(f) = frame {
                    let v: Value = serde_json::from_slice(&f).unwrap();
                    if v["method"] == "ping" {
                        self.send_json(&json!({"jsonrpc":"2.0","id":v["id"],"result":{}}));
                        continue;
                    }
                    return Some(v);
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
    fn hello_node(&mut self, id: &str) {
        self.send_json(&json!({"jsonrpc":"2.0","id":0,"method":"hello","params":{
            "min_version":1,"max_version":1,"role":"node","id":id,
            "encodings":{"json":true},"max_frame":65536,"max_in_flight":4}}));
        let w = self.recv().expect("welcome");
        assert_eq!(w["result"]["encoding"], "json", "{w}");
    }
    /// Sends a ping and expects its answer: the connection is alive and in step.
    fn alive(&mut self, id: u64) -> bool {
        self.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"ping"}));
        matches!(self.recv(), Some(v) if v["id"] == id && v["result"] == json!({}))
    }
    fn closed(&mut self) -> bool {
        self.recv().is_none()
    }
}

fn err_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn malformed_frames_are_answered_and_the_connection_goes_on() {
    smol::block_on(async {
        let (_gw, _ws, tcp) = gateway(GatewayConfig::default()).await;
        let mut p = Raw::connect(&tcp);
        p.hello_node("n1");
        let deep = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{{\"a\":{}1{}}}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        let cases: Vec<Case> = vec![
            (
                "malformed JSON",
                b"{\"jsonrpc\":\"2.0\",\"id\":1,".to_vec(),
                Some((-32700, Value::Null)),
            ),
            (
                "wrong jsonrpc version",
                br#"{"jsonrpc":"1.0","id":2,"method":"ping"}"#.to_vec(),
                Some((-32600, json!(2))),
            ),
            (
                "id of wrong type",
                br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#.to_vec(),
                Some((-32600, Value::Null)),
            ),
            (
                "unknown method",
                br#"{"jsonrpc":"2.0","id":"u","method":"rm_rf"}"#.to_vec(),
                Some((-32601, json!("u"))),
            ),
            (
                "unknown notification",
                br#"{"jsonrpc":"2.0","method":"rm_rf"}"#.to_vec(),
                None,
            ),
            (
                "bad notification",
                br#"{"jsonrpc":"2.0","method":"progress","params":{}}"#.to_vec(),
                None,
            ),
            (
                "deep nesting",
                deep.into_bytes(),
                Some((-32700, Value::Null)),
            ),
            (
                "invalid UTF-8",
                b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"p\xc3\x28\"}".to_vec(),
                Some((-32700, Value::Null)),
            ),
            (
                "batch",
                br#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#.to_vec(),
                Some((-32600, Value::Null)),
            ),
            (
                "result for an id never issued",
                br#"{"jsonrpc":"2.0","id":99999,"result":{}}"#.to_vec(),
                None,
            ),
            (
                "postcard garbage after JSON was agreed",
                vec![0, 0, 7, 99],
                Some((-32700, Value::Null)),
            ),
        ];
        for (i, (name, frame, expect)) in cases.into_iter().enumerate() {
            p.send(&frame);
            if let Some((code, id)) = expect {
                let r = p
                    .recv()
                    .unwrap_or_else(|| panic!("{name}: connection closed"));
                assert_eq!(err_code(&r), code, "{name}: {r}");
                assert_eq!(r["id"], id, "{name}: {r}");
            }
            assert!(p.alive(1000 + i as u64), "{name}: connection did not go on");
        }
    });
}

#[test]
fn stream_garbage_truncation_and_oversize_frames() {
    smol::block_on(async {
        let (_gw, _ws, tcp) = gateway(GatewayConfig {
            max_frame: 4096,
            ..Default::default()
        })
        .await;
        let mut p = Raw::connect(&tcp);
        p.hello_node("n1");
        // Line noise, then a delimiter: dropped, resynchronised.
        p.send_raw(&[0x13, 0x37, 0xff, 0xfe, 0x42, 0x00]).unwrap();
        assert!(p.alive(1));
        // A truncated frame (a delimiter inside a COBS block).
        p.send_raw(&[0x20, b'{', b'"', 0x00]).unwrap();
        assert!(p.alive(2));
        // Oversized frames, far beyond max_frame: dropped as they arrive, never buffered.
        let before = rss_kib();
        let chunk = vec![0x01u8; 1 << 20]; // COBS code bytes 0x01: 1 MiB of "zero" bytes decoded
        for _ in 0..64 {
            p.send_raw(&chunk).unwrap();
        }
        p.send_raw(&[0x00]).unwrap();
        assert!(p.alive(3), "connection did not survive a 64 MiB frame");
        let grown = rss_kib().saturating_sub(before);
        assert!(
            grown < 16 * 1024,
            "memory grew by {grown} KiB while dropping a 64 MiB frame"
        );
    });
}

#[test]
fn a_sender_that_never_finishes_is_cut_off_in_bounded_time() {
    smol::block_on(async {
        let cfg = GatewayConfig {
            handshake_timeout: Duration::from_millis(300),
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        };
        let (_gw, _ws, tcp) = gateway(cfg).await;
        // Before hello: half a frame, then silence → closed at the handshake timeout.
        let mut p = Raw::connect(&tcp);
        p.send_raw(b"\x7f{\"jsonrpc\":\"2.0\",").unwrap();
        let t0 = Instant::now();
        assert!(p.closed());
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        // After hello: a frame that never ends, trickled byte by byte, does not count as life:
        // closed after three heartbeat intervals.
        let mut p = Raw::connect(&tcp);
        p.hello_node("slowloris");
        let t0 = Instant::now();
        let mut closed = false;
        p.send_raw(&[0xff]).unwrap();
        while t0.elapsed() < Duration::from_secs(5) {
            if p.send_raw(b"x").is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            closed,
            "a never-ending frame kept the connection open for 5 s"
        );
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    });
}

#[test]
fn connection_flood_is_capped() {
    smol::block_on(async {
        let (gw, _ws, tcp) = gateway(GatewayConfig {
            max_handshakes: 8,
            ..Default::default()
        })
        .await;
        let mut held: Vec<Raw> = (0..8).map(|_| Raw::connect(&tcp)).collect();
        std::thread::sleep(Duration::from_millis(100));
        // Beyond the cap: accepted and closed at once, without a byte read.
        let mut extra = Raw::connect(&tcp);
        assert!(extra.closed());
        held.clear();
        // Capacity comes back.
        assert!(
            wait_until(Duration::from_secs(3), || {
                let mut p = Raw::connect(&tcp);
                p.send_json(&json!({"jsonrpc":"2.0","id":0,"method":"hello","params":{
                "min_version":1,"max_version":1,"role":"controller","id":"c",
                "encodings":{"json":true},"max_frame":65536,"max_in_flight":0}}));
                p.recv().is_some()
            })
            .await
        );
        drop(gw);
    });
}

#[test]
fn register_floods() {
    smol::block_on(async {
        let (gw, _ws, tcp) = gateway(GatewayConfig::default()).await;
        let mut p = Raw::connect(&tcp);
        p.hello_node("flood");
        let tool = |n: usize| json!({"name": format!("t{n}"), "description": "", "input_schema": {"type":"object"}});
        // More tools in one frame than a node may have: refused whole.
        let many: Vec<Value> = (0..300).map(tool).collect();
        p.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"register","params":{"tools": many}}));
        assert_eq!(err_code(&p.recv().unwrap()), -32602);
        // Duplicates, bad names, bad schemas, schemas that do not compile: refused one by one.
        let mixed = json!([
            tool(1), tool(1),
            {"name": "bad name", "description": "", "input_schema": {}},
            {"name": "arr", "description": "", "input_schema": [1]},
            {"name": "uncompilable", "description": "", "input_schema": {"type": 12}},
        ]);
        p.send_json(&json!({"jsonrpc":"2.0","id":2,"method":"register","params":{"tools": mixed}}));
        let ack = p.recv().unwrap();
        assert_eq!(ack["result"]["accepted"], json!(["t1"]), "{ack}");
        let reasons: Vec<&str> = ack["result"]["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            reasons,
            vec!["duplicate", "bad_name", "bad_schema", "bad_schema"]
        );
        // Filling the table in several frames: the 257th tool is `too_many`.
        for chunk in 0..2 {
            let tools: Vec<Value> = (100 + chunk * 128..100 + (chunk + 1) * 128)
                .map(tool)
                .collect();
            p.send_json(&json!({"jsonrpc":"2.0","id":3 + chunk,"method":"register","params":{"tools": tools}}));
            let ack = p.recv().unwrap();
            let rejected = ack["result"]["rejected"].as_array().unwrap();
            if chunk == 1 {
                assert_eq!(rejected.len(), 1, "{ack}");
                assert_eq!(rejected[0]["reason"], "too_many");
            }
        }
        assert_eq!(gw.tools(None, Some("flood")).len(), 256);
        // A schema larger than the frame limit never arrives whole: dropped, connection goes on.
        let huge = "x".repeat(70 * 1024);
        p.send_json(
            &json!({"jsonrpc":"2.0","id":9,"method":"register","params":{"tools":[
            {"name":"huge","description": huge,"input_schema":{}}]}}),
        );
        assert!(p.alive(10));
    });
}

#[test]
fn late_and_unsolicited_results_are_dropped() {
    smol::block_on(async {
        let (gw, _ws, tcp) = gateway(GatewayConfig::default()).await;
        let mut p = Raw::connect(&tcp);
        p.hello_node("late");
        p.send_json(
            &json!({"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[
            {"name":"slow","description":"","input_schema":{"type":"object"}}]}}),
        );
        p.recv().unwrap();
        // The gateway calls; the caller gives up; the node answers after the cancel.
        let gw2 = gw.clone();
        let call = smol::spawn(async move {
            gw2.call(
                "late",
                "slow",
                &json!({}),
                CallOptions {
                    timeout: Some(Duration::from_millis(100)),
                    ..Default::default()
                },
            )
            .await
        });
        let exec = p.recv().unwrap();
        assert_eq!(exec["method"], "execute");
        let e = call.await.unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Timeout));
        let cancel = p.recv().unwrap();
        assert_eq!(
            (cancel["method"].as_str(), &cancel["params"]["id"]),
            (Some("cancel"), &exec["id"])
        );
        p.send_json(&json!({"jsonrpc":"2.0","id":exec["id"],"result":"too late"}));
        p.send_json(&json!({"jsonrpc":"2.0","id":123456,"result":"never asked"}));
        p.send_json(
            &json!({"jsonrpc":"2.0","method":"progress","params":{"id":424242,"progress":1}}),
        );
        assert!(p.alive(7));
        // The node still serves new calls normally.
        let gw3 = gw.clone();
        let call = smol::spawn(async move {
            gw3.call("late", "slow", &json!({}), CallOptions::default())
                .await
        });
        let exec = p.recv().unwrap();
        p.send_json(&json!({"jsonrpc":"2.0","id":exec["id"],"result":"fresh"}));
        assert_eq!(call.await.unwrap(), json!("fresh"));
    });
}

#[test]
fn controller_token_acl() {
    smol::block_on(async {
        let cfg = GatewayConfig {
            tokens: vec![
                TokenSpec::any("admin"),
                TokenSpec {
                    token: "ro".into(),
                    node: false,
                    controller: true,
                    acl: Acl {
                        allow: vec!["*".into()],
                        deny: vec!["set_*".into()],
                    },
                },
            ],
            ..Default::default()
        };
        let (gw, ws, _) = gateway(cfg).await;
        let mut opts = NodeOptions::new("dev");
        opts.token = Some("admin".into());
        let _n = spawn_device(&ws, opts);
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        let c = Client::connect(
            &Endpoint::parse(&ws).unwrap(),
            ClientOptions {
                token: Some("ro".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        c.call("dev", "uptime", &json!({}), Default::default())
            .await
            .unwrap();
        let e = c
            .call(
                "dev",
                "set_led",
                &json!({"led": 0, "on": true}),
                Default::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Unauthorized));
        assert!(e.message.contains("dev/set_led"), "{e}");
    });
}

/// A WebSocket message over `max_frame` cannot be skipped the way a stream frame is (the
/// WebSocket layer refuses it before reading it): the gateway closes with code 1009, "message
/// too big", so the peer can tell it from a network failure. A message within the limit on a
/// fresh connection is still served.
#[test]
fn oversized_websocket_message_closes_with_1009() {
    use async_tungstenite::tungstenite::Message;
    use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use futures_util::StreamExt;
    smol::block_on(async {
        let (_gw, ws, _tcp) = gateway(GatewayConfig {
            max_frame: 4096,
            ..Default::default()
        })
        .await;
        let addr = ws
            .trim_start_matches("ws://")
            .trim_end_matches("/ws")
            .to_owned();
        let open = || async {
            let tcp = smol::net::TcpStream::connect(&addr).await.unwrap();
            async_tungstenite::client_async(ws.as_str(), tcp)
                .await
                .unwrap()
                .0
        };
        let mut c = open().await;
        c.send(Message::text("x".repeat(10_000))).await.unwrap();
        let closed = smol::future::or(
            async {
                while let Some(m) = c.next().await {
                    if let Ok(Message::Close(f)) = m {
                        return f.map(|f| f.code);
                    }
                }
                None
            },
            async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            },
        )
        .await;
        assert_eq!(closed, Some(CloseCode::Size));
        // Within the limit: a ping after hello is answered.
        let mut c = open().await;
        let hello = r#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"controller","id":"c","encodings":{"json":true,"postcard":false},"max_frame":65536,"max_in_flight":4}}"#;
        c.send(Message::text(hello)).await.unwrap();
        let welcome = c.next().await.unwrap().unwrap();
        assert!(
            welcome.to_text().unwrap().contains("\"result\""),
            "{welcome}"
        );
    });
}
