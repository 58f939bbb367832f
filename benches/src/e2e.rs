//! End-to-end measurement: a gateway and host nodes over loopback in one process, and the raw
//! transports they run on, in the same run.
//!
//! Used by `src/bin/e2e.rs` (toolwire against the raw transport) and by the `peers` binary in
//! `benches/peers/` (the same scenarios next to jsonrpsee and tarpc). Every call goes through
//! the public API (`Gateway::call_raw`): argument validation against the tool's JSON Schema, the
//! gateway's connection task, the wire, the host node's task, the tool (an echo), and back.
//! Baselines: a raw async-tungstenite WebSocket echo and a raw TCP ping-pong carrying messages
//! of the size of our `execute` frame, sequentially and with the same number of messages in
//! flight.
//!
//! Everything runs on smol's global executor, so `SMOL_THREADS` (read once, when the executor
//! starts) sets the thread count of the gateway, the nodes and the raw echoes alike.
//!
//! ```no_run
//! use std::time::Duration;
//! use toolwire_benches::e2e::{Setup, Transport};
//! use toolwire_core::Encoding;
//!
//! smol::block_on(async {
//!     let mut setup = Setup::start().await;
//!     let node = setup.add_echo_node(Transport::Ws, Encoding::Postcard).await;
//!     let m = setup.sequential(&node, Duration::from_secs(1)).await;
//!     println!("{}: p50 {:?} µs", m.scenario, m.p50_us);
//! });
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use smol::Task;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol_hyper::rt::FuturesIo;
use toolwire_core::Encoding;
use toolwire_core::frame::Encodings;
use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
use toolwire_smol::gateway::{CallOptions, Listener};
use toolwire_smol::node::{HostNode, NodeOptions, Tool};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

/// Arguments of every call: a small object, as a sensor read or a GPIO set would carry.
pub const ARGS: &str = r#"{"channel":2,"label":"bench","values":[1,2,3,4]}"#;

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// What was measured, e.g. `ws/postcard sequential` or `raw tcp 63 B, 16 in flight`.
    pub scenario: String,
    /// Completed calls (or round trips) per second over the measured time.
    pub calls_per_s: f64,
    /// Median latency of one call in µs; only for sequential calls.
    pub p50_us: Option<f64>,
    /// 99th percentile latency in µs; only for sequential calls.
    pub p99_us: Option<f64>,
}

/// The transport a node or a raw baseline runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket (`ws://`).
    Ws,
    /// TCP with COBS framing (`tcp://`).
    Tcp,
}

impl Transport {
    /// `"ws"` or `"tcp"`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Tcp => "tcp",
        }
    }
}

/// `"json"` or `"postcard"`.
pub fn encoding_name(enc: Encoding) -> &'static str {
    match enc {
        Encoding::Json => "json",
        Encoding::Postcard => "postcard",
    }
}

/// The value at fraction `p` (0..=1) of sorted samples; NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Warm-up before every figure: a fifth of its measuring time.
pub fn warm_up(d: Duration) -> Duration {
    d / 5
}

/// Awaits `call` back to back: for [`warm_up`]`(d)`, then measured for `d`. Runtime-agnostic
/// (it only awaits), so the peers' loops on tokio are the very same loop as ours.
pub async fn sequential_with<F, Fut>(scenario: String, d: Duration, mut call: F) -> Measurement
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let warm = Instant::now();
    while warm.elapsed() < warm_up(d) {
        call().await;
    }
    let mut lat = Vec::with_capacity(16_384);
    let start = Instant::now();
    while start.elapsed() < d {
        let t = Instant::now();
        call().await;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Measurement {
        scenario,
        calls_per_s: rate,
        p50_us: Some(percentile(&lat, 0.5)),
        p99_us: Some(percentile(&lat, 0.99)),
    }
}

/// Size of the `execute` frame our calls send, in each encoding (152 B JSON, 63 B postcard).
pub fn frame_size(enc: Encoding) -> usize {
    use toolwire_core::frame::{Execute, Request};
    use toolwire_core::{Id, Json, Str, codec};
    let ex = Request::Execute(Execute {
        tool: Str::new("echo"),
        arguments: Json::parse(ARGS.as_bytes()).unwrap(),
        deadline_ms: Some(30_000),
    });
    let mut buf = [0u8; 512];
    codec::encode_request(enc, Id::Num(1000), &ex, &mut buf).unwrap()
}

/// A gateway listening on WebSocket and TCP, its echo nodes, and the raw echo servers, all on
/// 127.0.0.1 and smol's global executor.
pub struct Setup {
    gw: Gateway,
    ws_url: String,
    tcp_url: String,
    ws_echo: String,
    tcp_echo: String,
    _listeners: Vec<Listener>,
    nodes: Vec<Task<()>>,
    ids: Vec<String>,
}

impl Setup {
    /// Starts the gateway (up to 256 calls in flight per node) and the raw echo servers.
    pub async fn start() -> Setup {
        let gw = Gateway::new(GatewayConfig {
            max_in_flight: 256,
            ..Default::default()
        });
        let ws = gw
            .listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None)
            .await
            .unwrap();
        let tcp = gw
            .listen(&Endpoint::parse("tcp://127.0.0.1:0").unwrap(), None)
            .await
            .unwrap();
        Setup {
            gw,
            ws_url: format!("ws://{}", ws.addr),
            tcp_url: format!("tcp://{}", tcp.addr),
            ws_echo: ws_echo_server().await,
            tcp_echo: tcp_echo_server().await,
            _listeners: vec![ws, tcp],
            nodes: vec![],
            ids: vec![],
        }
    }

    /// Connects a host node with one `echo` tool (it returns its arguments) over `transport`,
    /// offering only `enc` (postcard nodes offer JSON too and the hello picks postcard), and
    /// waits until it is registered. Returns its id: `{transport}-{encoding}` for the first
    /// node of a kind, then with a number appended.
    pub async fn add_echo_node(&mut self, transport: Transport, enc: Encoding) -> String {
        let mut id = format!("{}-{}", transport.name(), encoding_name(enc));
        if self.ids.contains(&id) {
            id = format!("{id}-{}", self.ids.len());
        }
        self.ids.push(id.clone());
        let url = match transport {
            Transport::Ws => &self.ws_url,
            Transport::Tcp => &self.tcp_url,
        };
        let ep = Endpoint::parse(url).unwrap();
        let node = echo_node(&id, enc == Encoding::Json);
        self.nodes.push(smol::spawn(async move {
            node.run(&ep, None).await;
        }));
        assert!(
            self.gw.wait_for_node(&id, Duration::from_secs(20)).await,
            "node {id} did not register"
        );
        id
    }

    /// Sequential calls to `node`'s echo for `d` (after a warm-up): calls/s and latency.
    pub async fn sequential(&self, node: &str, d: Duration) -> Measurement {
        let gw = &self.gw;
        sequential_with(
            format!("{} sequential", scenario(node)),
            d,
            move || async move {
                gw.call_raw(node, "echo", ARGS, CallOptions::default())
                    .await
                    .expect("call");
            },
        )
        .await
    }

    /// Sequential calls to `node`'s echo from a controller (`toolwire_smol::client::Client`)
    /// connected to the gateway over WebSocket: the controller's client, a second socket and
    /// the router's relay on top of [`Setup::sequential`].
    pub async fn controller_sequential(&self, node: &str, d: Duration) -> Measurement {
        let client = Client::connect(
            &Endpoint::parse(&format!("{}/ws", self.ws_url)).unwrap(),
            ClientOptions::default(),
        )
        .await
        .expect("controller connects");
        let args: Value = serde_json::from_str(ARGS).unwrap();
        let (client, args) = (&client, &args);
        sequential_with(
            format!("controller over ws/json → {} sequential", scenario(node)),
            d,
            move || async move {
                client
                    .call(node, "echo", args, ClientCallOptions::default())
                    .await
                    .expect("call");
            },
        )
        .await
    }

    /// Sequential REST calls to `node`'s echo (`POST /v1/nodes/{node}/tools/echo/call`) over
    /// one keep-alive HTTP/1.1 connection from hyper's client: the arguments serialized from a
    /// `serde_json::Value` and the result parsed into one, as a controller's are.
    pub async fn rest_sequential(&self, node: &str, d: Duration) -> Measurement {
        let addr = self.ws_url.trim_start_matches("ws://").to_owned();
        let tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(FuturesIo::new(tcp))
            .await
            .expect("HTTP handshake");
        let _conn = smol::spawn(conn);
        let send = smol::lock::Mutex::new(send);
        let path = format!("/v1/nodes/{node}/tools/echo/call");
        let args: Value = serde_json::from_str(ARGS).unwrap();
        let (send, path, args, addr) = (&send, &path, &args, &addr);
        sequential_with(
            format!("REST over HTTP/1.1 → {} sequential", scenario(node)),
            d,
            move || async move {
                let req = hyper::Request::post(path.as_str())
                    .header(hyper::header::HOST, addr.as_str())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(args.to_string())))
                    .unwrap();
                let sent = {
                    let mut send = send.lock().await;
                    send.ready().await.expect("connection ready");
                    send.send_request(req)
                };
                let resp = sent.await.expect("request");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                let v: Value = serde_json::from_slice(&body).expect("JSON result");
                assert!(v.is_object());
            },
        )
        .await
    }

    /// `k` spawned callers per node looping on calls to `nodes` for `d` (after a warm-up):
    /// total calls/s.
    pub async fn pipelined(&self, nodes: &[String], k: usize, d: Duration) -> Measurement {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = vec![];
        for node in nodes {
            for _ in 0..k {
                let (gw, node, done, stop) =
                    (self.gw.clone(), node.clone(), done.clone(), stop.clone());
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
        smol::Timer::after(warm_up(d)).await;
        let before = done.load(Ordering::Relaxed);
        let t0 = Instant::now();
        smol::Timer::after(d).await;
        let n = done.load(Ordering::Relaxed) - before;
        let rate = n as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await;
        }
        let who = match nodes {
            [one] => scenario(one),
            _ => format!("{} nodes", nodes.len()),
        };
        Measurement {
            scenario: format!("{who} {k} in flight"),
            calls_per_s: rate,
            p50_us: None,
            p99_us: None,
        }
    }

    /// The raw echo over `transport` with `size`-byte messages, `k` in flight on one
    /// connection, for `d` after a warm-up. With `k = 1` these are sequential round trips and
    /// the latency percentiles are set.
    pub async fn raw(
        &self,
        transport: Transport,
        size: usize,
        k: usize,
        d: Duration,
    ) -> Measurement {
        let lat = match transport {
            Transport::Ws => ws_raw(&self.ws_echo, size, k, d).await,
            Transport::Tcp => tcp_raw(&self.tcp_echo, size, k, d).await,
        };
        let (mode, p50, p99) = if k == 1 {
            (
                "sequential".to_string(),
                Some(percentile(&lat.sorted_us, 0.5)),
                Some(percentile(&lat.sorted_us, 0.99)),
            )
        } else {
            (format!("{k} in flight"), None, None)
        };
        Measurement {
            scenario: format!("raw {} {size} B {mode}", transport.name()),
            calls_per_s: lat.rate,
            p50_us: p50,
            p99_us: p99,
        }
    }
}

/// `ws-json` → `ws/json`.
fn scenario(node: &str) -> String {
    node.replacen('-', "/", 1)
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

struct RawRun {
    rate: f64,
    sorted_us: Vec<f64>,
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

/// Raw WebSocket: `k` messages in flight (k = 1: sequential round trips).
async fn ws_raw(url: &str, size: usize, k: usize, d: Duration) -> RawRun {
    let s = TcpStream::connect(url.trim_start_matches("ws://"))
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    let (mut ws, _) = async_tungstenite::client_async(url, s).await.unwrap();
    let msg = Message::Text("x".repeat(size).into());
    for _ in 0..k {
        ws.feed(msg.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    echo_loop(d, async || {
        ws.next().await.unwrap().unwrap();
        ws.send(msg.clone()).await.unwrap();
    })
    .await
}

/// A raw TCP echo server on 127.0.0.1 (TCP_NODELAY, each read written straight back); returns
/// its `host:port`.
pub async fn tcp_echo_server() -> String {
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
async fn tcp_raw(addr: &str, size: usize, k: usize, d: Duration) -> RawRun {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = vec![b'x'; size];
    let mut buf = vec![0u8; size];
    for _ in 0..k {
        s.write_all(&msg).await.unwrap();
    }
    echo_loop(d, async || {
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&msg).await.unwrap();
    })
    .await
}

/// Runs `round_trip` (take one echo back, send the next) for `d` after a warm-up; with `k`
/// messages already in flight, each latency is the time of one turn of that circulation.
async fn echo_loop(d: Duration, mut round_trip: impl AsyncFnMut()) -> RawRun {
    let mut lat = Vec::with_capacity(16_384);
    let warm = Instant::now();
    let mut start = warm;
    let mut measuring = false;
    loop {
        let now = Instant::now();
        if !measuring && now - warm >= warm_up(d) {
            measuring = true;
            start = now;
        }
        if measuring && now - start >= d {
            break;
        }
        round_trip().await;
        if measuring {
            lat.push(now.elapsed().as_secs_f64() * 1e6);
        }
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    RawRun {
        rate,
        sorted_us: lat,
    }
}
