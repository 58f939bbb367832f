//! End-to-end benchmark: gateway and nodes over loopback in one process, against the raw
//! transport in the same run.
//!
//! ```sh
//! SMOL_THREADS=2 cargo run --release -p toolwire-benches --bin e2e            # ~1 min
//! SMOL_THREADS=2 cargo run --release -p toolwire-benches --bin e2e -- --quick # a few seconds
//! ```
//!
//! Prints one table. The measurement itself is `toolwire_benches::e2e`: every call goes through
//! the public API (`Gateway::call_raw`), against a raw WebSocket echo and a raw TCP ping-pong
//! carrying messages of the size of our `execute` frame, sequential and with the same number of
//! messages in flight. The `peers` binary (`benches/peers/`) runs the same scenarios next to
//! jsonrpsee and tarpc.

use std::time::Duration;

use toolwire_benches::e2e::{Measurement, Setup, Transport, frame_size};
use toolwire_core::Encoding;

struct Row {
    m: Measurement,
    ratio: f64,
    baseline_name: &'static str,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let d = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    smol::block_on(async {
        let mut setup = Setup::start().await;
        let mut rows: Vec<Row> = vec![];
        for transport in [Transport::Ws, Transport::Tcp] {
            for enc in [Encoding::Json, Encoding::Postcard] {
                let id = setup.add_echo_node(transport, enc).await;
                let size = frame_size(enc);
                let raw = setup.raw(transport, size, 1, d).await;
                let m = setup.sequential(&id, d).await;
                rows.push(Row {
                    ratio: m.p50_us.unwrap() / raw.p50_us.unwrap(),
                    m,
                    baseline_name: "ours p50 / raw echo p50 (aim ≤ 1.25)",
                });
                if transport == Transport::Ws && enc == Encoding::Json {
                    // The same node through a controller's socket and through the REST API.
                    let base = rows.last().unwrap().m.p50_us.unwrap();
                    let c = setup.controller_sequential(&id, d).await;
                    let r = setup.rest_sequential(&id, d).await;
                    let (cp50, rp50) = (c.p50_us.unwrap(), r.p50_us.unwrap());
                    rows.push(Row {
                        ratio: cp50 / base,
                        m: c,
                        baseline_name: "controller p50 / in-process call p50",
                    });
                    rows.push(Row {
                        ratio: rp50 / cp50,
                        m: r,
                        baseline_name: "REST p50 / WebSocket controller p50",
                    });
                }
                for k in [1usize, 16, 128] {
                    let m = setup.pipelined(std::slice::from_ref(&id), k, d).await;
                    let raw = setup.raw(transport, size, k, d).await;
                    rows.push(Row {
                        ratio: m.calls_per_s / raw.calls_per_s,
                        m,
                        baseline_name: "ours / raw echo, same in flight",
                    });
                }
            }
        }
        // 64 nodes × 16 in flight, over WebSocket, postcard.
        let mut ids = vec![];
        for _ in 0..64 {
            ids.push(setup.add_echo_node(Transport::Ws, Encoding::Postcard).await);
        }
        let mut m = setup.pipelined(&ids, 16, d).await;
        m.scenario = "ws/postcard 64 nodes × 16 in flight".into();
        let raw = setup
            .raw(Transport::Ws, frame_size(Encoding::Postcard), 16, d)
            .await;
        rows.push(Row {
            ratio: m.calls_per_s / raw.calls_per_s,
            m,
            baseline_name: "ours / one raw echo connection, 16 in flight",
        });

        println!(
            "execute frame: {} bytes JSON, {} bytes postcard; {} s per figure; SMOL_THREADS={}",
            frame_size(Encoding::Json),
            frame_size(Encoding::Postcard),
            d.as_secs_f64(),
            std::env::var("SMOL_THREADS").unwrap_or_else(|_| "1 (default)".into())
        );
        println!("| scenario | calls/s | p50 µs | p99 µs | ratio | baseline |");
        println!("|---|---:|---:|---:|---:|---|");
        let fmt = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into());
        for r in &rows {
            println!(
                "| {} | {:.0} | {} | {} | {:.2} | {} |",
                r.m.scenario,
                r.m.calls_per_s,
                fmt(r.m.p50_us),
                fmt(r.m.p99_us),
                r.ratio,
                r.baseline_name
            );
        }
    });
}
