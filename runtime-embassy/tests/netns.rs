//! The node over embassy-net TCP, end to end on this machine: an embassy-net stack on a TAP
//! device dials a gateway (a Linux TCP listener) inside a network namespace this test creates
//! and deletes. The gateway is stopped and started again: the node reconnects and registers
//! again.
//!
//! Needs root (network namespaces, `/dev/net/tun`) and `ip` (iproute2). Addresses are from
//! 192.0.2.0/24 (TEST-NET-1) and exist only inside the namespace.
//!
//! The test re-runs its own binary inside the namespace (`ip netns exec`), where
//! [`netns_child`] does the work: no code here changes namespaces itself.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embassy_futures::select::{Either3, select3};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Timer};
use toolwire_core::frame::Encoding;
use toolwire_core::gateway::GatewayConfig;
use toolwire_embassy::{Config, Resources, TcpTransport};

use common::block_on;
use common::demo::Demo;
use common::gateway::{Ev, Gw};
use common::stdio::StdStream;

const CHILD_ENV: &str = "TOOLWIRE_NETNS_CHILD";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 7411;
const T: Duration = Duration::from_secs(10);

/// Runs `ip ARGS`, failing the test with its output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 needed): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a TAP device `tap0` at 192.0.2.1/24; deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!("toolwire-test-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        let n = ns.0.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&["-n", n, "tuntap", "add", "dev", "tap0", "mode", "tap"]);
        ip(&["-n", n, "link", "set", "tap0", "up"]);
        ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "tap0"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn tcp_node_reconnects_in_netns() {
    let ns = Netns::create();
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([
            "--exact",
            "netns_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the test inside the namespace failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the measurement: the child's own test summary would be counted twice.
    for line in stdout.lines().filter(|l| l.contains("calls/s")) {
        println!("{}", line.trim_start_matches("test netns_child ... "));
    }
}

/// One gateway life: accept the node, check it, then stop (listener and connection closed).
/// Returns sequential calls per second.
fn gateway_round(round: u32) -> u64 {
    let listener = TcpListener::bind((GATEWAY, PORT)).expect("bind the gateway");
    listener.set_nonblocking(true).unwrap();
    let until = StdInstant::now() + StdDuration::from_secs(15);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    StdInstant::now() < until,
                    "round {round}: node never connected"
                );
                thread::sleep(StdDuration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let rx = StdStream::new(stream.try_clone().unwrap());
    let tx = StdStream::new(stream);
    let prefer = if round == 0 {
        Encoding::Json
    } else {
        Encoding::Postcard
    };
    let mut config = GatewayConfig::new("netns-gw");
    config.prefer = prefer;
    block_on(async {
        let mut gw = Gw::new(config, rx, tx);
        let (id, tools) = gw.handshake(T).await;
        assert_eq!(id, "tap-node");
        assert_eq!(tools.len(), 5);
        assert_eq!(gw.conn.encoding(), prefer);
        let r = gw
            .call_wait("echo", &format!(r#"{{"text":"round {round}"}}"#), T)
            .await
            .unwrap();
        assert_eq!(r, format!(r#"{{"text":"round {round}"}}"#));
        let id = gw
            .call("sample", r#"{"channel":2,"count":3,"interval_ms":5}"#, None)
            .await;
        gw.done(id, T).await.unwrap();
        assert_eq!(gw.progress_of(id), [1, 2, 3]);
        let e = gw
            .call_wait("read_sensor", r#"{"channel":9}"#, T)
            .await
            .unwrap_err();
        assert_eq!(e.0, -32002);
        // Calls per second, sequential, over the TAP link.
        let n = 300;
        let start = StdInstant::now();
        for _ in 0..n {
            gw.call_wait("uptime", "{}", T).await.unwrap();
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        assert!(gw.errors.is_empty(), "{:?}", gw.errors);
        assert!(!gw.seen.iter().any(|e| matches!(e, Ev::Closed(_))));
        rate as u64
    })
}

#[test]
#[ignore = "runs inside the namespace made by tcp_node_reconnects_in_netns"]
fn netns_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let done = Arc::new(AtomicBool::new(false));
    let gateway = {
        let done = done.clone();
        thread::spawn(move || {
            let first = gateway_round(0);
            // The gateway is down for a while: the node's dials are refused, it backs off.
            thread::sleep(StdDuration::from_millis(500));
            let second = gateway_round(1);
            done.store(true, Ordering::Release);
            (first, second)
        })
    };

    let device = TunTapDevice::new("tap0").expect("open tap0 (root needed)");
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(NODE, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let mut stack_resources = Box::new(StackResources::<2>::new());
    let (stack, mut net) = embassy_net::new(device, net_config, &mut stack_resources, 0x5eed);

    let tools = Demo::sim();
    let mut config = Config::new("tap-node");
    config.backoff_min = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    let mut resources = Box::new(Resources::<2, 512, 2048>::new());
    let (handle, mut node) = toolwire_embassy::new(&tools, config, &mut resources);
    let (mut rx_buf, mut tx_buf) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut tcp = TcpTransport::new(stack, (GATEWAY, PORT), &mut rx_buf, &mut tx_buf);

    block_on(async {
        let finished = async {
            while !done.load(Ordering::Acquire) && !gateway.is_finished() {
                Timer::after_millis(20).await;
            }
        };
        match select3(net.run(), node.run(&mut tcp), finished).await {
            Either3::First(never) | Either3::Second(never) => match never {},
            Either3::Third(()) => {}
        }
    });
    let (rate0, rate1) = gateway.join().expect("gateway thread");
    let s = handle.status();
    assert_eq!(s.registrations, 2, "{s:?}");
    assert!(s.connects >= 2, "{s:?}");
    println!(
        "calls/s over embassy-net TCP on a TAP device, sequential: json {rate0}, postcard {rate1}"
    );
}
