//! End to end through an emulated UART: builds `firmware/qemu` (the `node` binary: the demo
//! tools on `toolwire-embassy`), boots it in QEMU (`lm3s6965evb`) with UART0 on a loopback TCP
//! port, and acts as the gateway on that port.
//!
//! Fails (never skips) when `qemu-system-arm` is missing: `scripts/install-qemu.sh` installs it.
//! QEMU is killed when the test ends, however it ends.

mod common;

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embassy_time::{Duration, Instant};
use toolwire_core::ErrorCode;
use toolwire_core::frame::Encoding;
use toolwire_core::gateway::GatewayConfig;

use common::block_on;
use common::gateway::{Ev, Gw};
use common::stdio::StdStream;

const T: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime-embassy is inside the repository")
        .to_path_buf()
}

/// Builds the firmware in its own workspace. Runs from its directory, where its
/// `.cargo/config.toml` (target, linker script) applies; variables that would redirect or
/// override that build are removed.
fn build_firmware() -> PathBuf {
    let dir = repo().join("firmware/qemu");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--bin", "node", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(status.success(), "firmware build failed");
    let elf = dir.join("target/thumbv7m-none-eabi/release/node");
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

    /// Connects to the emulated UART (QEMU starts the guest once a client is connected).
    fn connect(&mut self, port: u16) -> TcpStream {
        let until = StdInstant::now() + StdDuration::from_secs(15);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                return s;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("QEMU exited early ({status}): {}", self.output());
            }
            assert!(StdInstant::now() < until, "QEMU did not listen on {port}");
            thread::sleep(StdDuration::from_millis(50));
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
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn gw_config(prefer: Encoding) -> GatewayConfig<'static> {
    let mut c = GatewayConfig::new("qemu-test-gw");
    c.prefer = prefer;
    c.heartbeat = toolwire_core::Duration::from_secs(2);
    c
}

type QGw = Gw<StdStream, StdStream>;

async fn check_tools(gw: &mut QGw) {
    for ch in 0..4 {
        let r = gw
            .call_wait("read_sensor", &format!(r#"{{"channel":{ch}}}"#), T)
            .await
            .unwrap();
        let prefix = format!(r#"{{"channel":{ch},"milli_c":"#);
        let v: i32 = r
            .strip_prefix(&prefix)
            .and_then(|s| s.strip_suffix('}'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{r}"));
        let centre = 20_000 + 500 * ch;
        assert!((centre - 100..=centre + 100).contains(&v), "{r}");
    }
    assert_eq!(
        gw.call_wait("set_led", r#"{"led":3,"on":true}"#, T).await,
        Ok(r#"{"led":3,"on":true}"#.into())
    );
    let ms = |r: String| -> u64 {
        r.strip_prefix(r#"{"ms":"#)
            .and_then(|s| s.strip_suffix('}'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{r}"))
    };
    let a = ms(gw.call_wait("uptime", "{}", T).await.unwrap());
    thread::sleep(StdDuration::from_millis(50));
    let b = ms(gw.call_wait("uptime", "{}", T).await.unwrap());
    assert!(b >= a + 40, "uptime {a} then {b}");
    assert_eq!(
        gw.call_wait("echo", r#"{"text":"hello \u00e9 \"qemu\""}"#, T)
            .await,
        Ok(r#"{"text":"hello é \"qemu\""}"#.into())
    );
    let id = gw
        .call(
            "sample",
            r#"{"channel":1,"count":4,"interval_ms":10}"#,
            None,
        )
        .await;
    let r = gw.done(id, T).await.unwrap();
    assert!(
        r.starts_with(r#"{"channel":1,"count":4,"mean_milli_c":20"#),
        "{r}"
    );
    assert_eq!(gw.progress_of(id), [1, 2, 3, 4]);

    // Out of range: refused by the device itself (this gateway does not check schemas).
    let e = gw
        .call_wait("read_sensor", r#"{"channel":9}"#, T)
        .await
        .unwrap_err();
    assert_eq!(e.0, ErrorCode::InvalidArguments.code(), "{e:?}");
}

async fn check_cancel(gw: &mut QGw) {
    let id = gw
        .call(
            "sample",
            r#"{"channel":0,"count":100,"interval_ms":100}"#,
            None,
        )
        .await;
    gw.wait_for(T, |e| {
        matches!(e, Ev::Progress { call, .. } if *call == id).then_some(())
    })
    .await
    .unwrap();
    gw.cancel(id).await;
    let r = gw
        .call_wait("sample", r#"{"channel":2,"count":2,"interval_ms":0}"#, T)
        .await
        .unwrap();
    assert!(r.starts_with(r#"{"channel":2,"count":2,"#), "{r}");
    // Nothing more from the cancelled call (its handler was dropped).
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        gw.step(until).await.unwrap();
    }
    assert_eq!(gw.conn.stats().stray_notifications, 0);
    assert!(gw.progress_of(id).len() <= 2);
}

async fn check_concurrency(gw: &mut QGw) {
    let args = r#"{"channel":3,"count":3,"interval_ms":50}"#;
    let start = Instant::now();
    let a = gw.call("sample", args, None).await;
    let b = gw.call("sample", args, None).await;
    gw.done(a, T).await.unwrap();
    gw.done(b, T).await.unwrap();
    // Two 100 ms calls side by side, not one after the other.
    let took = start.elapsed();
    assert!(took < Duration::from_millis(190), "took {took:?}");
}

/// Sequential calls per second, one at a time through the UART.
async fn rate(gw: &mut QGw, tool: &str, args: &str) -> f64 {
    let n = 200;
    let start = StdInstant::now();
    for _ in 0..n {
        gw.call_wait(tool, args, T).await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[test]
fn node_firmware_in_qemu() {
    let elf = build_firmware();
    let port = free_port();
    let mut qemu = Qemu::start(&elf, port);
    let stream = qemu.connect(port);
    let rx = StdStream::new(stream.try_clone().unwrap());
    let tx = StdStream::new(stream);

    block_on(async {
        // First session in JSON.
        let mut gw = Gw::new(gw_config(Encoding::Json), rx, tx);
        let (id, tools) = gw.handshake(T).await;
        assert_eq!(id, "qemu-1");
        assert_eq!(
            tools,
            ["read_sensor", "set_led", "uptime", "echo", "sample"]
        );
        assert_eq!(gw.conn.encoding(), Encoding::Json);
        check_tools(&mut gw).await;
        check_cancel(&mut gw).await;
        check_concurrency(&mut gw).await;
        let json_uptime = rate(&mut gw, "uptime", "{}").await;
        let json_echo = rate(&mut gw, "echo", r#"{"text":"0123456789abcdef"}"#).await;
        assert!(gw.errors.is_empty(), "{:?}", gw.errors);

        // Goodbye: the node starts over on the same line; this time the gateway picks postcard.
        gw.goodbye().await;
        let (rx, tx) = gw.into_streams();
        let mut gw = Gw::new(gw_config(Encoding::Postcard), rx, tx);
        let (_, tools) = gw.handshake(T).await;
        assert_eq!(tools.len(), 5);
        assert_eq!(gw.conn.encoding(), Encoding::Postcard);
        check_tools(&mut gw).await;
        check_cancel(&mut gw).await;
        check_concurrency(&mut gw).await;
        let pc_uptime = rate(&mut gw, "uptime", "{}").await;
        let pc_echo = rate(&mut gw, "echo", r#"{"text":"0123456789abcdef"}"#).await;
        assert!(gw.errors.is_empty(), "{:?}", gw.errors);

        println!("calls/s through QEMU's UART, sequential:");
        println!("  json      uptime {json_uptime:7.0}   echo(16 B) {json_echo:7.0}");
        println!("  postcard  uptime {pc_uptime:7.0}   echo(16 B) {pc_echo:7.0}");
    });
    let out = qemu.output();
    assert!(out.contains("node: UART FIFO on"), "QEMU output: {out}");
}
