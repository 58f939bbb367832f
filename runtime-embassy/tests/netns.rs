//! The node over embassy-net TCP, end to end on this machine, against the real gateway: an
//! embassy-net stack on a TAP device runs two nodes (`tap-node` offering both encodings, so the
//! gateway picks postcard, and `tap-json` offering JSON only) that dial a `toolwire_smol::Gateway`
//! listening inside a network namespace this test creates and deletes. The gateway is shut down
//! and a new one started on the same address: the nodes reconnect and register again.
//!
//! Needs root (network namespaces, `/dev/net/tun`) and `ip` (iproute2). Addresses are from
//! 192.0.2.0/24 (TEST-NET-1) and exist only inside the namespace.
//!
//! The test re-runs its own binary inside the namespace (`ip netns exec`), where
//! [`netns_child`] does the work: no code here changes namespaces itself.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embassy_futures::select::{Either4, select4};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Timer};
use serde_json::json;
use smol::channel::{Receiver, unbounded};
use toolwire_core::ErrorCode;
use toolwire_core::frame::Encodings;
use toolwire_embassy::{Config, Resources, TcpTransport};
use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
use toolwire_smol::gateway::{GatewayEvent, Listener, TokenSpec};
use toolwire_smol::{CallOptions, Endpoint, Gateway, GatewayConfig};

use common::block_on;
use common::demo;

const CHILD_ENV: &str = "TOOLWIRE_NETNS_CHILD";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PORT: u16 = 7411;
/// The gateway listens on a non-loopback address, so it requires a token.
const TOKEN: &str = "netns-test-token";
/// Offers both encodings: the gateway picks postcard.
const BOTH: &str = "tap-node";
/// Offers JSON only.
const JSON_ONLY: &str = "tap-json";
const T: StdDuration = StdDuration::from_secs(10);

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

fn endpoint() -> Endpoint {
    Endpoint::parse(&format!("tcp://{GATEWAY}:{PORT}")).unwrap()
}

/// Listens, retrying while the previous gateway's socket is still being closed.
async fn listen(gw: &Gateway) -> Listener {
    let until = StdInstant::now() + T;
    loop {
        match gw.listen(&endpoint(), None).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(StdInstant::now() < until, "listen on {GATEWAY}:{PORT}: {e}");
                smol::Timer::after(StdDuration::from_millis(50)).await;
            }
        }
    }
}

/// What a channel holds now.
fn drain<T>(rx: &Receiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Calls every kind of thing on `node` through the gateway.
async fn check_node(gw: &Gateway, node: &str, round: u32) {
    let opts = || CallOptions {
        timeout: Some(T),
        ..CallOptions::default()
    };
    let text = format!("round {round} \u{e9}");
    assert_eq!(
        gw.call(node, "echo", &json!({ "text": text }), opts())
            .await,
        Ok(json!({ "text": text }))
    );
    let (ptx, prx) = unbounded();
    let args = json!({"channel": 2, "count": 3, "interval_ms": 5});
    let o = CallOptions {
        progress: Some(ptx),
        ..opts()
    };
    let r = gw.call(node, "sample", &args, o).await.unwrap();
    assert_eq!(r["count"], 3, "{r}");
    let progress: Vec<u64> = drain(&prx).iter().map(|p| p.progress).collect();
    assert_eq!(progress, [1, 2, 3]);
    // Refused by the gateway (outside the schema) and by the device (inside the schema, but
    // 66 bytes of text for a 64-byte buffer): both `-32002`, each with its own message.
    let e = gw
        .call(node, "read_sensor", &json!({"channel": 9}), opts())
        .await
        .unwrap_err();
    assert_eq!(e.known(), Some(ErrorCode::InvalidArguments), "{e}");
    assert!(
        e.message.starts_with("arguments rejected by the schema"),
        "{e}"
    );
    let e = gw
        .call(
            node,
            "echo",
            &json!({ "text": "\u{e9}".repeat(33) }),
            opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.known(), Some(ErrorCode::InvalidArguments), "{e}");
    assert_eq!(e.message, "arguments do not match the schema");
}

/// A controller's view through the gateway: both nodes listed, a call with progress routed.
async fn check_controller() {
    let opts = ClientOptions {
        token: Some(TOKEN.into()),
        ..ClientOptions::default()
    };
    let client = Client::connect(&endpoint(), opts).await.unwrap();
    let nodes: Vec<(String, usize)> = client
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.tools))
        .collect();
    assert_eq!(nodes, [(JSON_ONLY.into(), 5), (BOTH.into(), 5)]);
    assert_eq!(client.tools(Some("sample"), None).await.unwrap().len(), 2);
    let (ptx, prx) = unbounded();
    let o = ClientCallOptions {
        timeout: Some(T),
        progress: Some(ptx),
        ..ClientCallOptions::default()
    };
    let args = json!({"channel": 0, "count": 2, "interval_ms": 0});
    let r = client.call(JSON_ONLY, "sample", &args, o).await.unwrap();
    assert_eq!(r["count"], 2, "{r}");
    let progress: Vec<u64> = drain(&prx).iter().map(|p| p.progress).collect();
    assert_eq!(progress, [1, 2]);
}

/// Sequential calls per second over ~1 s.
async fn rate(gw: &Gateway, node: &str) -> f64 {
    let start = StdInstant::now();
    let mut n = 0u32;
    while start.elapsed() < StdDuration::from_secs(1) {
        gw.call(node, "uptime", &json!({}), CallOptions::default())
            .await
            .unwrap();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// One gateway life: listen, wait for both nodes, check them, measure, then stop (listener
/// dropped, goodbye to the nodes, gateway dropped). Returns calls/s: (JSON, postcard).
async fn gateway_life(round: u32) -> (f64, f64) {
    let gw = Gateway::new(GatewayConfig {
        name: format!("netns-gw-{round}"),
        tokens: vec![TokenSpec::any(TOKEN)],
        ..GatewayConfig::default()
    });
    let listener = listen(&gw).await;
    for node in [BOTH, JSON_ONLY] {
        assert!(
            gw.wait_for_node(node, StdDuration::from_secs(15)).await,
            "round {round}: {node} never registered; nodes: {:?}",
            gw.nodes()
        );
        check_node(&gw, node, round).await;
    }
    check_controller().await;
    let json = rate(&gw, JSON_ONLY).await;
    let postcard = rate(&gw, BOTH).await;

    // Stop accepting first, so that no node gets back in before the goodbye.
    let events = gw.events();
    drop(listener);
    gw.shutdown();
    let until = StdInstant::now() + T;
    while !gw.nodes().is_empty() {
        assert!(
            StdInstant::now() < until,
            "still connected: {:?}",
            gw.nodes()
        );
        smol::Timer::after(StdDuration::from_millis(10)).await;
    }
    let gone = drain(&events)
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::NodeDisconnected(_)))
        .count();
    assert_eq!(gone, 2);
    drop(gw);
    (json, postcard)
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
            smol::block_on(async {
                let first = gateway_life(0).await;
                // No gateway for a while: the nodes' dials are refused, they back off.
                smol::Timer::after(StdDuration::from_millis(500)).await;
                let second = gateway_life(1).await;
                done.store(true, Ordering::Release);
                (first, second)
            })
        })
    };

    let device = TunTapDevice::new("tap0").expect("open tap0 (root needed)");
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(NODE, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let mut stack_resources = Box::new(StackResources::<4>::new());
    let (stack, mut net) = embassy_net::new(device, net_config, &mut stack_resources, 0x5eed);

    let tools = demo::sim();
    let config = |id| {
        let mut c = Config::new(id);
        c.token = Some(TOKEN);
        c.backoff_min = Duration::from_millis(100);
        c.backoff_max = Duration::from_secs(1);
        c
    };
    let mut json_config = config(JSON_ONLY);
    json_config.encodings = Encodings::JSON;
    let mut resources = Box::new(Resources::<2, 512, 2048>::new());
    let (handle, mut node) = toolwire_embassy::new(&tools, config(BOTH), &mut resources);
    let mut json_resources = Box::new(Resources::<2, 512, 2048>::new());
    let (json_handle, mut json_node) =
        toolwire_embassy::new(&tools, json_config, &mut json_resources);
    let mut bufs = vec![vec![0u8; 2048]; 4];
    let [rx, tx, json_rx, json_tx] = bufs.as_mut_slice() else {
        unreachable!()
    };
    let mut tcp = TcpTransport::new(stack, (GATEWAY, PORT), rx, tx);
    let mut json_tcp = TcpTransport::new(stack, (GATEWAY, PORT), json_rx, json_tx);

    block_on(async {
        let finished = async {
            while !done.load(Ordering::Acquire) && !gateway.is_finished() {
                Timer::after_millis(20).await;
            }
        };
        match select4(
            net.run(),
            node.run(&mut tcp),
            json_node.run(&mut json_tcp),
            finished,
        )
        .await
        {
            Either4::First(never) | Either4::Second(never) | Either4::Third(never) => {
                match never {}
            }
            Either4::Fourth(()) => {}
        }
    });
    let ((json0, postcard0), (json1, postcard1)) = gateway.join().expect("gateway thread");
    for h in [handle, json_handle] {
        let s = h.status();
        assert_eq!(s.registrations, 2, "{s:?}");
        assert!(s.connects >= 2, "{s:?}");
    }
    println!(
        "calls/s over embassy-net TCP on a TAP device (smol gateway, uptime, sequential): \
         json {json0:.0} / {json1:.0}, postcard {postcard0:.0} / {postcard1:.0} \
         (first / second gateway)"
    );
}
