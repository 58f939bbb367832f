//! Calls through the gateway to a host node's `echo` tool, in one process, for profilers:
//! instructions and system calls per call (run with N and with 0, subtract, divide) do not
//! depend on the machine's load the way timings do.
//!
//! `call_loop TRANSPORT ENCODING N [K]`: N calls, sequential, or from K tasks at once (K calls
//! in flight on the node's one connection). `TRANSPORT` `raw` is the baseline: N round trips of
//! a 152-byte message (our JSON `execute` frame's size) over a raw TCP ping-pong in the same
//! process (the e2e benchmark's raw echo), K in flight; `ENCODING` is ignored.
//!
//! ```sh
//! cargo build --profile profiling -p toolwire-benches --example call_loop
//! B=target/profiling/examples/call_loop
//! SMOL_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/tmp/cl.out $B tcp json 2000
//! SMOL_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/tmp/cl0.out $B tcp json 0
//! callgrind_annotate /tmp/cl.out | head -60
//! SMOL_THREADS=1 strace -f -c -o /tmp/sc.txt $B tcp json 20000 128   # system calls, 128 in flight
//! ```

use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use serde_json::json;
use toolwire_core::frame::Encodings;
use toolwire_smol::gateway::CallOptions;
use toolwire_smol::node::{HostNode, NodeOptions, Tool};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

const ARGS: &str = r#"{"channel":2,"label":"bench","values":[1,2,3,4]}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let transport = args.next().unwrap_or_else(|| "tcp".into());
    let encoding = args.next().unwrap_or_else(|| "json".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let k: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    if transport == "raw" {
        smol::block_on(raw_echo(n, k));
        return;
    }
    smol::block_on(async {
        // As the e2e benchmark: up to 256 calls in flight per node (the default is 32).
        let gw = Gateway::new(GatewayConfig {
            max_in_flight: 256,
            ..Default::default()
        });
        let listener = gw
            .listen(
                &Endpoint::parse(&format!("{transport}://127.0.0.1:0")).unwrap(),
                None,
            )
            .await
            .expect("listen");
        let ep = Endpoint::parse(&format!("{transport}://{}", listener.addr)).unwrap();
        let mut opts = NodeOptions::new("n");
        if encoding == "json" {
            opts.encodings = Encodings::JSON;
        }
        let node = HostNode::new(opts).tool(Tool::new(
            "echo",
            "returns its arguments",
            json!({"type": "object"}),
            |_, v| async move { Ok(v) },
        ));
        let _node = smol::spawn(async move { node.run(&ep, None).await });
        assert!(gw.wait_for_node("n", Duration::from_secs(10)).await);
        // Warm-up: the same for every N, so that it subtracts out.
        for _ in 0..100 {
            gw.call_raw("n", "echo", ARGS, CallOptions::default())
                .await
                .expect("call");
        }
        if k == 1 {
            for _ in 0..n {
                gw.call_raw("n", "echo", ARGS, CallOptions::default())
                    .await
                    .expect("call");
            }
            return;
        }
        let callers: Vec<_> = (0..k)
            .map(|i| {
                let gw = gw.clone();
                // N calls in all, spread over the K callers.
                let mine = n / k + usize::from(i < n % k);
                smol::spawn(async move {
                    for _ in 0..mine {
                        gw.call_raw("n", "echo", ARGS, CallOptions::default())
                            .await
                            .expect("call");
                    }
                })
            })
            .collect();
        for c in callers {
            c.await;
        }
    });
}

/// `n` round trips of a 152-byte message over loopback TCP to an echo task, `k` in flight (the
/// e2e benchmark's raw TCP ping-pong, counted instead of timed).
async fn raw_echo(n: usize, k: usize) {
    let addr = toolwire_benches::e2e::tcp_echo_server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [b'x'; 152];
    let mut buf = [0u8; 152];
    // Warm-up as for calls: 100 round trips.
    for _ in 0..k {
        s.write_all(&msg).await.unwrap();
    }
    for _ in 0..100 + n {
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&msg).await.unwrap();
    }
}
