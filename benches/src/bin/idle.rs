//! Gateway memory per idle node: N nodes connect over TCP or WebSocket, say hello and register
//! one tool, and stay idle; the gateway process's resident memory grows by this much per node.
//!
//! ```sh
//! cargo run --release -p toolwire-benches --bin idle -- 2000        # TCP
//! cargo run --release -p toolwire-benches --bin idle -- 2000 ws     # WebSocket
//! ```
//!
//! The nodes are plain blocking sockets in a child process (this binary run with `--nodes`), so
//! the figure is the gateway's alone. Linux only (reads `/proc/self/status`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite;
use toolwire_core::stream::{encode_frame, max_encoded_len};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn frame(json: &str) -> Vec<u8> {
    let mut out = vec![0u8; max_encoded_len(json.len())];
    let n = encode_frame(json.as_bytes(), &mut out).expect("encode");
    out.truncate(n);
    out
}

fn hello(i: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"hello","params":{{"min_version":1,"max_version":1,"role":"node","id":"n{i}","encodings":{{"json":true,"postcard":false}},"max_frame":65536,"max_in_flight":4}}}}"#
    )
}

const REGISTER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"echo","description":"Returns its arguments.","input_schema":{"type":"object"}}]}}"#;

/// A node on its own socket, idle once registered.
enum Idle {
    Tcp(#[allow(dead_code)] TcpStream),
    Ws(#[allow(dead_code)] Box<tungstenite::WebSocket<TcpStream>>),
}

fn ws_node(addr: &str, i: usize) -> Idle {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    // The nodes live in this process: a small read buffer keeps their share of the figure small
    // (tungstenite's default is 128 KiB each).
    let cfg = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(256);
    let (mut ws, _) =
        tungstenite::client::client_with_config(format!("ws://{addr}/"), s, Some(cfg))
            .expect("upgrade");
    for f in [hello(i), REGISTER.to_owned()] {
        ws.send(tungstenite::Message::text(f)).expect("send");
    }
    // Welcome and register ack.
    for _ in 0..2 {
        let m = ws.read().expect("read");
        assert!(m.is_text(), "gateway closed node {i}: {m:?}");
    }
    Idle::Ws(Box::new(ws))
}

fn node(addr: &str, i: usize) -> Idle {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let mut bytes = frame(&hello(i));
    bytes.extend(frame(REGISTER));
    s.write_all(&bytes).expect("write");
    // Welcome and register ack: two frames, each ending in 0x00.
    let (mut zeros, mut buf) = (0, [0u8; 4096]);
    while zeros < 2 {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "gateway closed node {i}");
        zeros += buf[..n].iter().filter(|&&b| b == 0).count();
    }
    Idle::Tcp(s)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--nodes") {
        return run_nodes(&args[1..]);
    }
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let scheme = if args.get(1).map(String::as_str) == Some("ws") {
        "ws"
    } else {
        "tcp"
    };
    let gw = Gateway::new(GatewayConfig {
        max_nodes: n + 16,
        ..Default::default()
    });
    let listener = smol::block_on(gw.listen(
        &Endpoint::parse(&format!("{scheme}://127.0.0.1:0")).unwrap(),
        None,
    ))
    .expect("listen");
    let addr = listener.addr.to_string();
    // The nodes live in a child process (this binary with `--nodes`), so that the figure is the
    // gateway's alone.
    let spawn_nodes = |from: usize, to: usize| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--nodes", &addr, &from.to_string(), &to.to_string(), scheme])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node process");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .expect("node process output");
        assert_eq!(line.trim(), "ready", "node process failed");
        child
    };
    let wait = |want: usize| {
        let until = Instant::now() + Duration::from_secs(60);
        while gw.nodes().iter().filter(|s| s.tools == 1).count() < want {
            assert!(Instant::now() < until, "nodes did not register");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut first = spawn_nodes(0, 1);
    wait(1);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let started = Instant::now();
    let mut rest = spawn_nodes(1, n + 1);
    wait(n + 1);
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    println!(
        "{n} idle {scheme} nodes: gateway RSS +{} KiB, {:.1} KiB per node; connected and registered in {:.2} s",
        after - before,
        (after - before) as f64 / n as f64,
        elapsed.as_secs_f64()
    );
    for c in [&mut first, &mut rest] {
        drop(c.stdin.take());
        let _ = c.wait();
    }
}

/// `--nodes ADDR FROM TO SCHEME`: connects nodes FROM..TO, says "ready", holds them until
/// stdin closes.
fn run_nodes(args: &[String]) {
    let (addr, from, to, scheme) = (
        &args[0],
        args[1].parse::<usize>().unwrap(),
        args[2].parse::<usize>().unwrap(),
        args[3].as_str(),
    );
    let connect: fn(&str, usize) -> Idle = if scheme == "ws" { ws_node } else { node };
    let nodes: Vec<Idle> = (from..to).map(|i| connect(addr, i)).collect();
    println!("ready");
    let mut sink = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
    drop(nodes);
}
