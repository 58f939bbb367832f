//! toolwire next to jsonrpsee (WebSocket) and tarpc (TCP, JSON and bincode), the same echo call,
//! in one run, with the ratios of the performance targets.
//!
//! ```sh
//! cargo run --release --manifest-path benches/peers/Cargo.toml            # 3 rounds, ~6 min
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --quick # seconds; CI runs this
//! ```
//!
//! The binary re-executes itself as child processes, because smol reads `SMOL_THREADS` once,
//! when its global executor starts: toolwire's scenarios (`toolwire_benches::e2e`, with their
//! raw smol baselines) run once with smol's default thread count (one, as the CLI runs) and
//! once with `SMOL_THREADS=2`, and the peers run in a third process on a tokio runtime with 2
//! workers. Each round runs the three children one after another, in an order that rotates
//! from round to round; the table gives the median over the rounds and the range, and every
//! ratio is taken within one round, then its median reported.
//!
//! Options: `--quick` (one round, 40 ms per figure), `--rounds N`, `--secs S` (per figure).

mod report;
mod rivals;

use std::process::Command;
use std::time::Duration;

use report::{Fig, Mode};
use toolwire_benches::e2e::{Setup, Transport, encoding_name, frame_size};
use toolwire_core::Encoding;

/// Which child process this is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Child {
    /// toolwire and the raw smol echoes, with `SMOL_THREADS` as the parent set it.
    Toolwire,
    /// jsonrpsee, tarpc and the raw tokio echo on a 2-worker tokio runtime.
    Peers,
}

/// Label of the smol thread setting this process runs with.
fn smol_threads() -> String {
    match std::env::var("SMOL_THREADS") {
        Ok(n) => format!("smol {n}"),
        Err(_) => "smol 1 (default)".into(),
    }
}

/// Prints one figure for the parent to collect.
fn emit(
    system: &str,
    path: &str,
    mode: Mode,
    threads: &str,
    calls: f64,
    p50: Option<f64>,
    p99: Option<f64>,
) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x}"));
    println!(
        "fig\t{system}\t{path}\t{}\t{threads}\t{calls}\t{}\t{}",
        mode.key(),
        f(p50),
        f(p99)
    );
}

fn run_toolwire(d: Duration) {
    let threads = smol_threads();
    smol::block_on(async {
        let mut setup = Setup::start().await;
        for transport in [Transport::Ws, Transport::Tcp] {
            for enc in [Encoding::Json, Encoding::Postcard] {
                let id = setup.add_echo_node(transport, enc).await;
                let size = frame_size(enc);
                let path = format!("{}/{}", transport.name(), encoding_name(enc));
                let raw_path = format!("{} {size} B", transport.name());
                // Raw and ours alternate, as in the e2e binary.
                let raw = setup.raw(transport, size, 1, d).await;
                emit(
                    "raw",
                    &raw_path,
                    Mode::Seq,
                    &threads,
                    raw.calls_per_s,
                    raw.p50_us,
                    raw.p99_us,
                );
                let m = setup.sequential(&id, d).await;
                emit(
                    "toolwire",
                    &path,
                    Mode::Seq,
                    &threads,
                    m.calls_per_s,
                    m.p50_us,
                    m.p99_us,
                );
                for k in [1, 16, 128] {
                    let m = setup.pipelined(std::slice::from_ref(&id), k, d).await;
                    emit(
                        "toolwire",
                        &path,
                        Mode::InFlight(k),
                        &threads,
                        m.calls_per_s,
                        None,
                        None,
                    );
                    let raw = setup.raw(transport, size, k, d).await;
                    emit(
                        "raw",
                        &raw_path,
                        Mode::InFlight(k),
                        &threads,
                        raw.calls_per_s,
                        None,
                        None,
                    );
                }
            }
        }
    });
}

fn run_peers(d: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let threads = "tokio 2";
    rt.block_on(async {
        let out = |system: &str, path: &str, figs: Vec<rivals::Figure>| {
            for f in figs {
                let mode = if f.k == 0 {
                    Mode::Seq
                } else {
                    Mode::InFlight(f.k)
                };
                emit(
                    system,
                    path,
                    mode,
                    threads,
                    f.calls_per_s,
                    f.p50_us,
                    f.p99_us,
                );
            }
        };
        out("jsonrpsee", "ws", rivals::jsonrpsee(d).await);
        out(
            "tarpc-json",
            "tcp",
            rivals::tarpc(rivals::Codec::Json, d).await,
        );
        out(
            "tarpc-bincode",
            "tcp",
            rivals::tarpc(rivals::Codec::Bincode, d).await,
        );
        let size = frame_size(Encoding::Json);
        out(
            "raw-tokio",
            &format!("tcp {size} B"),
            rivals::raw_tcp(size, d).await,
        );
    });
}

/// Runs one child and returns its figures, tagged with `round`.
fn child(which: Child, smol2: bool, quick_secs: f64, round: usize) -> Vec<Fig> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .arg(if which == Child::Toolwire {
            "toolwire"
        } else {
            "peers"
        })
        .arg("--secs")
        .arg(quick_secs.to_string());
    if smol2 {
        cmd.env("SMOL_THREADS", "2");
    } else {
        cmd.env_remove("SMOL_THREADS");
    }
    let out = cmd.output().expect("spawn child");
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("child failed: {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| Fig::parse(l, round))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let secs: f64 = value("--secs")
        .map(|s| s.parse().expect("--secs S"))
        .unwrap_or(if quick { 0.04 } else { 1.0 });
    let d = Duration::from_secs_f64(secs);
    match value("--child").as_deref() {
        Some("toolwire") => return run_toolwire(d),
        Some("peers") => return run_peers(d),
        Some(other) => panic!("unknown child {other}"),
        None => {}
    }
    let rounds: usize = value("--rounds")
        .map(|s| s.parse().expect("--rounds N"))
        .unwrap_or(if quick { 1 } else { 3 });
    let load_before = report::load_average();
    let started = std::time::SystemTime::now();
    let order = [
        (Child::Toolwire, false),
        (Child::Toolwire, true),
        (Child::Peers, false),
    ];
    let mut figs = vec![];
    for round in 0..rounds {
        for i in 0..order.len() {
            let (which, smol2) = order[(i + round) % order.len()];
            eprintln!(
                "round {}/{rounds}: {}",
                round + 1,
                match (which, smol2) {
                    (Child::Peers, _) => "peers (tokio, 2 workers)",
                    (_, false) => "toolwire (smol default threads)",
                    (_, true) => "toolwire (SMOL_THREADS=2)",
                }
            );
            figs.extend(child(which, smol2, secs, round));
        }
    }
    let meta = report::Meta {
        started,
        rounds,
        secs,
        load_before,
        load_after: report::load_average(),
        json_frame: frame_size(Encoding::Json),
        postcard_frame: frame_size(Encoding::Postcard),
    };
    print!("{}", report::render(&meta, &figs));
}
