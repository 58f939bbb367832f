//! Gateway memory per idle node: N nodes connect over TCP, say hello and register one tool, and
//! stay idle; the gateway process's resident memory grows by this much per node.
//!
//! ```sh
//! cargo run --release -p toolwire-benches --bin idle -- 2000
//! ```
//!
//! The nodes are plain blocking sockets on this process's main thread (their user-space memory
//! is a few hundred bytes each: the figure is the gateway's). Linux only (reads
//! `/proc/self/status`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

fn node(addr: &str, i: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let hello = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"hello","params":{{"min_version":1,"max_version":1,"role":"node","id":"n{i}","encodings":{{"json":true,"postcard":false}},"max_frame":65536,"max_in_flight":4}}}}"#
    );
    let register = r#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"echo","description":"Returns its arguments.","input_schema":{"type":"object"}}]}}"#;
    let mut bytes = frame(&hello);
    bytes.extend(frame(register));
    s.write_all(&bytes).expect("write");
    // Welcome and register ack: two frames, each ending in 0x00.
    let (mut zeros, mut buf) = (0, [0u8; 4096]);
    while zeros < 2 {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "gateway closed node {i}");
        zeros += buf[..n].iter().filter(|&&b| b == 0).count();
    }
    s
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let gw = Gateway::new(GatewayConfig {
        max_nodes: n + 16,
        ..Default::default()
    });
    let listener = smol::block_on(gw.listen(&Endpoint::parse("tcp://127.0.0.1:0").unwrap(), None))
        .expect("listen");
    let addr = listener.addr.to_string();
    let mut nodes = vec![node(&addr, 0)];
    let wait = |want: usize| {
        let until = Instant::now() + Duration::from_secs(30);
        while gw.nodes().iter().filter(|s| s.tools == 1).count() < want {
            assert!(Instant::now() < until, "nodes did not register");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait(1);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let started = Instant::now();
    for i in 1..=n {
        nodes.push(node(&addr, i));
    }
    wait(n + 1);
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    println!(
        "{n} idle TCP nodes: gateway RSS +{} KiB, {:.1} KiB per node; connected and registered in {:.2} s",
        after - before,
        (after - before) as f64 / n as f64,
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
}
