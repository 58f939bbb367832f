//! End-to-end benchmark: gateway and nodes over loopback in one process, against the raw
//! transport in the same run.
//!
//! ```sh
//! SMOL_THREADS=2 cargo run --release -p toolwire-benches --bin e2e            # ~1 min
//! SMOL_THREADS=2 cargo run --release -p toolwire-benches --bin e2e -- --quick # a few seconds
//! ```
//!
//! Prints one table. Every call goes through the public API (`Gateway::call_raw`): argument
//! validation against the tool's JSON Schema, the gateway's connection task, the wire, the host
//! node's task, the tool (an echo), and back. Baselines: a raw WebSocket echo and a raw TCP
//! ping-pong carrying messages of the size of our `execute` frame, sequential and with the same
//! number of messages in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use toolwire_core::frame::Encodings;
use toolwire_smol::gateway::CallOptions;
use toolwire_smol::node::{HostNode, NodeOptions, Tool};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

/// Arguments of every call: a small object, as a sensor read or a GPIO set would carry.
const ARGS: &str = r#"{"channel":2,"label":"bench","values":[1,2,3,4]}"#;

struct Row {
    name: String,
    calls_per_s: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    baseline: Option<f64>,
    baseline_name: &'static str,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn gateway() -> (
    Gateway,
    String,
    String,
    Vec<toolwire_smol::gateway::Listener>,
) {
    let cfg = GatewayConfig {
        max_in_flight: 256,
        ..Default::default()
    };
    let gw = Gateway::new(cfg);
    let ws = gw
        .listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None)
        .await
        .unwrap();
    let tcp = gw
        .listen(&Endpoint::parse("tcp://127.0.0.1:0").unwrap(), None)
        .await
        .unwrap();
    let urls = (format!("ws://{}", ws.addr), format!("tcp://{}", tcp.addr));
    (gw, urls.0, urls.1, vec![ws, tcp])
}

fn echo_node(id: &str, json_only: bool) -> HostNode {
    let mut opts = NodeOptions::new(id);
    if json_only {
        opts.encodings = Encodings::JSON;
    }
    HostNode::new(opts).tool(Tool::new(
        "echo",
        "returns its arguments",
        json!({"type": "object"}),
        |_, v| async move { Ok(v) },
    ))
}

/// Sequential calls for `d`: calls/s and latency percentiles.
async fn sequential(gw: &Gateway, node: &str, d: Duration) -> (f64, f64, f64) {
    let mut lat = vec![];
    let start = Instant::now();
    while start.elapsed() < d {
        let t = Instant::now();
        gw.call_raw(node, "echo", ARGS, CallOptions::default())
            .await
            .expect("call");
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// `k` callers looping on `nodes` for `d`: total calls/s.
async fn pipelined(gw: &Gateway, nodes: &[String], k: usize, d: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for node in nodes {
        for _ in 0..k {
            let (gw, node, done, stop) = (gw.clone(), node.clone(), done.clone(), stop.clone());
            tasks.push(smol::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    gw.call_raw(&node, "echo", ARGS, CallOptions::default())
                        .await
                        .expect("call");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    // Warm up, then count over `d`.
    smol::Timer::after(d / 5).await;
    let before = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    smol::Timer::after(d).await;
    let n = done.load(Ordering::Relaxed) - before;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await;
    }
    rate
}

/// Raw WebSocket echo server; returns its URL.
async fn ws_echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    smol::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            smol::spawn(async move {
                let mut ws = async_tungstenite::accept_async(s).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    url
}

/// Raw WebSocket: `k` messages in flight for `d` (k = 1: sequential round trips).
async fn ws_raw(url: &str, size: usize, k: usize, d: Duration) -> (f64, f64) {
    let s = TcpStream::connect(url.trim_start_matches("ws://"))
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    let (mut ws, _) = async_tungstenite::client_async(url, s).await.unwrap();
    let msg = Message::Text("x".repeat(size).into());
    let mut lat = vec![];
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..k {
        ws.feed(msg.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    while start.elapsed() < d {
        let t = Instant::now();
        ws.next().await.unwrap().unwrap();
        ws.send(msg.clone()).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        n += 1;
    }
    lat.sort_by(f64::total_cmp);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        percentile(&lat, 0.5),
    )
}

async fn tcp_echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    smol::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            smol::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

/// Raw TCP ping-pong of `size`-byte messages, `k` in flight.
async fn tcp_raw(addr: &str, size: usize, k: usize, d: Duration) -> (f64, f64) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = vec![b'x'; size];
    let mut buf = vec![0u8; size];
    for _ in 0..k {
        s.write_all(&msg).await.unwrap();
    }
    let mut lat = vec![];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        let t = Instant::now();
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&msg).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        n += 1;
    }
    lat.sort_by(f64::total_cmp);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        percentile(&lat, 0.5),
    )
}

/// Size of the execute frame our calls send, in each encoding.
fn frame_size(json: bool) -> usize {
    use toolwire_core::frame::{Execute, Request};
    use toolwire_core::{Encoding, Id, Json, Str, codec};
    let ex = Request::Execute(Execute {
        tool: Str::new("echo"),
        arguments: Json::parse(ARGS.as_bytes()).unwrap(),
        deadline_ms: Some(30_000),
    });
    let mut buf = [0u8; 512];
    let enc = if json {
        Encoding::Json
    } else {
        Encoding::Postcard
    };
    codec::encode_request(enc, Id::Num(1000), &ex, &mut buf).unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let d = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    smol::block_on(async {
        let (gw, ws, tcp, _listeners) = gateway().await;
        let ws_echo = ws_echo_server().await;
        let tcp_echo = tcp_echo_server().await;
        let mut rows: Vec<Row> = vec![];
        let mut node_tasks = vec![];
        for (transport, url) in [("ws", &ws), ("tcp", &tcp)] {
            for json_only in [true, false] {
                let enc = if json_only { "json" } else { "postcard" };
                let id = format!("{transport}-{enc}");
                let ep = Endpoint::parse(url).unwrap();
                let node = echo_node(&id, json_only);
                node_tasks.push(smol::spawn(async move {
                    node.run(&ep, None).await;
                }));
                assert!(gw.wait_for_node(&id, Duration::from_secs(10)).await);
                let size = frame_size(json_only);
                let raw = |k: usize| {
                    let (ws_echo, tcp_echo) = (ws_echo.clone(), tcp_echo.clone());
                    async move {
                        if transport == "ws" {
                            ws_raw(&ws_echo, size, k, d).await
                        } else {
                            tcp_raw(&tcp_echo, size, k, d).await
                        }
                    }
                };
                let (raw_rate, raw_p50) = raw(1).await;
                let (rate, p50, p99) = sequential(&gw, &id, d).await;
                rows.push(Row {
                    name: format!("{transport}/{enc} sequential"),
                    calls_per_s: rate,
                    p50_us: Some(p50),
                    p99_us: Some(p99),
                    baseline: Some(p50 / raw_p50),
                    baseline_name: "ours p50 / raw echo p50 (aim ≤ 1.25)",
                });
                let _ = raw_rate;
                for k in [1usize, 16, 128] {
                    let rate = pipelined(&gw, std::slice::from_ref(&id), k, d).await;
                    let (raw_rate, _) = raw(k).await;
                    rows.push(Row {
                        name: format!("{transport}/{enc} {k} in flight"),
                        calls_per_s: rate,
                        p50_us: None,
                        p99_us: None,
                        baseline: Some(rate / raw_rate),
                        baseline_name: "ours / raw echo, same in flight",
                    });
                }
            }
        }
        // 64 nodes × 16 in flight, over WebSocket, postcard.
        let mut ids = vec![];
        for i in 0..64 {
            let id = format!("fleet-{i}");
            let ep = Endpoint::parse(&ws).unwrap();
            let node = echo_node(&id, false);
            node_tasks.push(smol::spawn(async move {
                node.run(&ep, None).await;
            }));
            ids.push(id);
        }
        for id in &ids {
            assert!(gw.wait_for_node(id, Duration::from_secs(20)).await);
        }
        let rate = pipelined(&gw, &ids, 16, d).await;
        let (raw_rate, _) = ws_raw(&ws_echo, frame_size(false), 16, d).await;
        rows.push(Row {
            name: "ws/postcard 64 nodes × 16 in flight".into(),
            calls_per_s: rate,
            p50_us: None,
            p99_us: None,
            baseline: Some(rate / raw_rate),
            baseline_name: "ours / one raw echo connection, 16 in flight",
        });

        println!(
            "execute frame: {} bytes JSON, {} bytes postcard; {} s per figure; SMOL_THREADS={}",
            frame_size(true),
            frame_size(false),
            d.as_secs_f64(),
            std::env::var("SMOL_THREADS").unwrap_or_else(|_| "1 (default)".into())
        );
        println!("| scenario | calls/s | p50 µs | p99 µs | ratio | baseline |");
        println!("|---|---:|---:|---:|---:|---|");
        let fmt = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into());
        for r in &rows {
            println!(
                "| {} | {:.0} | {} | {} | {} | {} |",
                r.name,
                r.calls_per_s,
                fmt(r.p50_us),
                fmt(r.p99_us),
                r.baseline.map(|b| format!("{b:.2}")).unwrap_or_default(),
                r.baseline_name
            );
        }
    });
}
