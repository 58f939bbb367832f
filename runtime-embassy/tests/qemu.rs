//! End to end through an emulated UART, against the real gateway: builds `firmware/qemu` (the
//! `node` binary: the demo tools on `toolwire-embassy`), boots it in QEMU (`lm3s6965evb`) with
//! UART0 on a loopback TCP port, and has a `toolwire_smol::Gateway` dial that port (a serial line
//! bridged to TCP: the gateway connects, the node still says hello first).
//!
//! Each device build variant the README lists runs the same checks: both encodings (the
//! default build; the smol gateway prefers postcard, so the session is postcard), postcard only,
//! and JSON only (the session is JSON). The variants are built into target directories of their
//! own and run one at a time (the concurrency check measures time).
//!
//! Fails (never skips) when `qemu-system-arm` is missing: `scripts/install-qemu.sh` installs it.
//! QEMU is killed when the test ends, however it ends. The calls/s figures are printed
//! (`cargo test -p toolwire-embassy --test qemu -- --nocapture` shows them).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smol::Task;
use smol::channel::{Receiver, unbounded};
use smol::future::FutureExt;
use toolwire_core::ErrorCode;
use toolwire_smol::gateway::{GatewayEvent, NodeSummary, Progress};
use toolwire_smol::{CallError, CallOptions, Endpoint, Gateway, GatewayConfig};

const T: Duration = Duration::from_secs(10);
const NODE: &str = "qemu-1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime-embassy is inside the repository")
        .to_path_buf()
}

/// A device build of `firmware/qemu`: its cargo features and the encoding the gateway agrees on.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// `None`: the default features (both encodings), in the default target directory.
    features: Option<&'static str>,
    encoding: toolwire_core::Encoding,
}

const BOTH: Variant = Variant {
    features: None,
    encoding: toolwire_core::Encoding::Postcard,
};
const POSTCARD: Variant = Variant {
    features: Some("postcard"),
    encoding: toolwire_core::Encoding::Postcard,
};
const JSON: Variant = Variant {
    features: Some("json"),
    encoding: toolwire_core::Encoding::Json,
};

/// Builds the firmware in its own workspace through `scripts/build-firmware.sh`, the build the
/// footprint budgets measure (same flags, same target directory, so the ELF tested here is the
/// one measured there). A variant with features of its own builds with only those, into
/// `target/<features>/`.
fn build_firmware(variant: Variant) -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/build-firmware.sh"))
        .arg("qemu")
        .arg(variant.features.unwrap_or(""))
        .args(["--bin", "node"]);
    let status = cmd.status().expect("run scripts/build-firmware.sh");
    assert!(status.success(), "firmware build failed");
    let mut target = repo().join("firmware/qemu/target");
    if let Some(features) = variant.features {
        target = target.join(features);
    }
    let elf = target.join("thumbv7m-none-eabi/release/node");
    assert!(elf.exists(), "{} missing", elf.display());
    elf
}

/// QEMU running the firmware; killed on drop. Its output (semihosting: boot line, panics) goes
/// to a log file, printed if the test fails.
struct Qemu {
    child: Child,
    log: PathBuf,
}

impl Qemu {
    fn start(elf: &Path, port: u16) -> Qemu {
        let version = Command::new("qemu-system-arm").arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "qemu-system-arm is missing: run scripts/install-qemu.sh"
        );
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("qemu-node-{port}.log"));
        let out = File::create(&log).expect("log file");
        let child = Command::new(repo().join("scripts/qemu-uart.sh"))
            .arg(elf)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start scripts/qemu-uart.sh");
        Qemu { child, log }
    }

    /// Has the gateway dial the emulated UART (QEMU starts the guest once a client is
    /// connected); returns the task serving the connection.
    async fn dial(&mut self, gw: &Gateway, port: u16) -> Task<()> {
        let ep = Endpoint::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(task) = gw.dial(&ep, None).await {
                return task;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("QEMU exited early ({status}): {}", self.output());
            }
            assert!(Instant::now() < until, "QEMU did not listen on {port}");
            smol::Timer::after(Duration::from_millis(50)).await;
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("QEMU output:\n{}", self.output());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn opts() -> CallOptions {
    CallOptions {
        timeout: Some(T),
        ..CallOptions::default()
    }
}

async fn call(gw: &Gateway, tool: &str, args: Value) -> Result<Value, CallError> {
    gw.call(NODE, tool, &args, opts()).await
}

/// What a channel holds now.
fn drain<T>(rx: &Receiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Calls the gateway has in flight on the node.
fn in_flight(gw: &Gateway) -> usize {
    let nodes = gw.nodes();
    let node = nodes.iter().find(|n| n.id == NODE);
    node.unwrap_or_else(|| panic!("{NODE} not connected: {nodes:?}"))
        .in_flight
}

/// Polls `f` every 10 ms until it holds or `T` passes.
async fn eventually(f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + T;
    while !f() {
        if Instant::now() > until {
            return false;
        }
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    true
}

fn check_listing(gw: &Gateway, encoding: toolwire_core::Encoding) {
    assert_eq!(
        gw.nodes(),
        [NodeSummary {
            id: NODE.into(),
            tools: 5,
            in_flight: 0,
            encoding,
        }]
    );
    let tools = gw.tools(None, Some(NODE));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["echo", "read_sensor", "sample", "set_led", "uptime"]
    );
    let sensor = &tools[1];
    assert_eq!(sensor.input_schema["properties"]["channel"]["maximum"], 3);
    assert!(sensor.annotations.read_only);
    assert!(!tools[3].annotations.read_only, "set_led changes state");
    assert_eq!(gw.tools(Some("s"), None).len(), 2);
}

async fn check_tools(gw: &Gateway) {
    for ch in 0..4 {
        let r = call(gw, "read_sensor", json!({ "channel": ch }))
            .await
            .unwrap();
        assert_eq!(r["channel"], ch, "{r}");
        let v = r["milli_c"].as_i64().unwrap_or_else(|| panic!("{r}"));
        let centre = 20_000 + 500 * ch;
        assert!((centre - 100..=centre + 100).contains(&v), "{r}");
    }
    assert_eq!(
        call(gw, "set_led", json!({"led": 3, "on": true})).await,
        Ok(json!({"led": 3, "on": true}))
    );
    let ms = |r: Value| r["ms"].as_u64().unwrap_or_else(|| panic!("{r}"));
    let a = ms(call(gw, "uptime", json!({})).await.unwrap());
    smol::Timer::after(Duration::from_millis(50)).await;
    let b = ms(call(gw, "uptime", json!({})).await.unwrap());
    // QEMU's clock runs behind the host's when the machine is loaded: it must move, not keep pace.
    assert!(b > a, "uptime {a} then {b}");
    let text = "hello \u{e9} \"qemu\"";
    assert_eq!(
        call(gw, "echo", json!({ "text": text })).await,
        Ok(json!({ "text": text }))
    );
}

/// A call reporting progress: five samples, progress 1..=5 of 5, then the mean.
async fn check_progress(gw: &Gateway) {
    let (ptx, prx) = unbounded();
    let o = CallOptions {
        progress: Some(ptx),
        ..opts()
    };
    let args = json!({"channel": 1, "count": 5, "interval_ms": 10});
    let r = gw.call(NODE, "sample", &args, o).await.unwrap();
    assert_eq!((&r["channel"], &r["count"]), (&json!(1), &json!(5)), "{r}");
    let mean = r["mean_milli_c"].as_i64().unwrap();
    assert!((20_400..=20_600).contains(&mean), "{r}");
    let seen = drain(&prx);
    let expected: Vec<Progress> = (1..=5)
        .map(|i| Progress {
            progress: i,
            total: Some(5),
            message: Some("sampling".into()),
            partial: None,
        })
        .collect();
    assert_eq!(seen, expected);
}

/// Bad arguments, refused on either side. Both answer `-32002`; only the device's refusal was
/// dispatched (a `CallFinished` event), and each says who refused.
async fn check_bad_arguments(gw: &Gateway) {
    let events = gw.events();
    // Outside the schema (channel ≤ 3): the gateway refuses; nothing reaches the device.
    let e = call(gw, "read_sensor", json!({"channel": 9}))
        .await
        .unwrap_err();
    assert_eq!(e.known(), Some(ErrorCode::InvalidArguments), "{e}");
    assert!(
        e.message.starts_with("arguments rejected by the schema"),
        "{e}"
    );
    assert_eq!(e.data, Some(json!({"path": "/channel"})));
    // Inside the schema, refused by the device: 33 × "é" is 33 characters (the schema's
    // maxLength counts characters: 64) but 66 bytes, more than the device's 64-byte buffer.
    let e = call(gw, "echo", json!({ "text": "\u{e9}".repeat(33) }))
        .await
        .unwrap_err();
    assert_eq!(e.known(), Some(ErrorCode::InvalidArguments), "{e}");
    assert_eq!(e.message, "arguments do not match the schema");
    let dispatched: Vec<(String, Result<(), i32>)> = drain(&events)
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::CallFinished { tool, outcome, .. } => Some((tool, outcome)),
            _ => None,
        })
        .collect();
    let code = ErrorCode::InvalidArguments.code();
    assert_eq!(dispatched, [("echo".to_string(), Err(code))]);
}

/// Two 100 ms calls side by side (the device runs two at once), and a third at the same time
/// refused by the gateway: the device announced two calls in flight.
async fn check_concurrency(gw: &Gateway) {
    let args = json!({"channel": 3, "count": 3, "interval_ms": 50});
    let start = Instant::now();
    let (a, b) = smol::future::zip(
        call(gw, "sample", args.clone()),
        call(gw, "sample", args.clone()),
    )
    .await;
    let took = start.elapsed();
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    // Each call sleeps 3 × 50 ms on the device: one after the other they take at least 300 ms,
    // side by side about 150. The bound leaves room for an emulator on a loaded machine.
    assert!(took < Duration::from_millis(280), "took {took:?}");

    let three = [0, 1, 2].map(|_| call(gw, "sample", args.clone()));
    let [a, b, c] = three;
    let ((a, b), c) = smol::future::zip(smol::future::zip(a, b), c).await;
    let busy = [&a, &b, &c]
        .iter()
        .filter(|r| matches!(r, Err(e) if e.known() == Some(ErrorCode::Busy)))
        .count();
    let ok = [&a, &b, &c].iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, busy), (2, 1), "{a:?} {b:?} {c:?}");
}

/// Cancels, both ways: a deadline that passes, and a caller that gives up (drops the call).
/// The device must stop the call: both of its call slots are used right after.
async fn check_cancel(gw: &Gateway) {
    let long = json!({"channel": 0, "count": 100, "interval_ms": 100});

    let (ptx, prx) = unbounded();
    let o = CallOptions {
        timeout: Some(Duration::from_millis(350)),
        progress: Some(ptx),
        ..CallOptions::default()
    };
    let start = Instant::now();
    let e = gw.call(NODE, "sample", &long, o).await.unwrap_err();
    assert_eq!(e.known(), Some(ErrorCode::Timeout), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let seen = drain(&prx).len();
    assert!((1..=5).contains(&seen), "{seen} progress reports in 350 ms");
    assert_eq!(in_flight(gw), 0);
    assert!(call(gw, "uptime", json!({})).await.is_ok());
    check_concurrency(gw).await;

    let (ptx, prx) = unbounded();
    let o = CallOptions {
        progress: Some(ptx),
        ..opts()
    };
    let outcome = async { Some(gw.call(NODE, "sample", &long, o).await) }
        .or(async {
            prx.recv().await.unwrap();
            assert_eq!(in_flight(gw), 1);
            None
        })
        .await;
    assert!(outcome.is_none(), "{outcome:?}");
    assert!(eventually(|| in_flight(gw) == 0).await);
    assert!(call(gw, "uptime", json!({})).await.is_ok());
    check_concurrency(gw).await;
}

/// Sequential calls per second over ~2 s.
async fn rate(gw: &Gateway, tool: &str, args: Value) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(2) {
        call(gw, tool, args.clone()).await.unwrap();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// One variant at a time: builds compete for the machine's cores, and the concurrency check
/// measures time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn node_firmware_in_qemu() {
    run(BOTH);
}

#[test]
fn node_firmware_in_qemu_postcard_only() {
    run(POSTCARD);
}

#[test]
fn node_firmware_in_qemu_json_only() {
    run(JSON);
}

fn run(variant: Variant) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build_firmware(variant);
    let port = free_port();
    let mut qemu = Qemu::start(&elf, port);
    smol::block_on(async {
        let gw = Gateway::new(GatewayConfig {
            name: "qemu-test-gw".into(),
            // Pings go out during the test and must be answered.
            heartbeat: Duration::from_secs(2),
            ..GatewayConfig::default()
        });
        let events = gw.events();
        let conn = qemu.dial(&gw, port).await;
        assert!(gw.wait_for_node(NODE, T).await, "{NODE} never registered");
        assert_eq!(
            events.recv().await,
            Ok(GatewayEvent::NodeConnected(NODE.into()))
        );
        drop(events);

        check_listing(&gw, variant.encoding);
        check_tools(&gw).await;
        check_progress(&gw).await;
        check_bad_arguments(&gw).await;
        check_cancel(&gw).await;
        let uptime = rate(&gw, "uptime", json!({})).await;
        let echo = rate(&gw, "echo", json!({"text": "0123456789abcdef"})).await;
        println!(
            "calls/s through QEMU's UART (smol gateway, {:?}, firmware {variant:?}), sequential:",
            variant.encoding
        );
        println!("  uptime {uptime:7.0}   echo(16 B) {echo:7.0}");

        // Shutdown: a goodbye, the connection ends, the node is gone.
        let events = gw.events();
        gw.shutdown();
        let ended = async {
            conn.await;
            true
        }
        .or(async {
            smol::Timer::after(T).await;
            false
        })
        .await;
        assert!(ended, "the connection outlived the shutdown");
        assert!(gw.nodes().is_empty(), "{:?}", gw.nodes());
        assert!(
            drain(&events).contains(&GatewayEvent::NodeDisconnected(NODE.into())),
            "no NodeDisconnected"
        );
    });
    let out = qemu.output();
    assert!(out.contains("node: UART FIFO on"), "QEMU output: {out}");
}
