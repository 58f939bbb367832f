//! `toolwire demo`: a gateway and a simulated device in one process, showing registration, a
//! few calls, progress, a timeout that cancels the call on the device, and a schema rejection.
//! The device runs the same tool code as the QEMU firmware (`toolwire-device-tools`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smol::channel::bounded;

use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
use toolwire_smol::node::{HostNode, NodeOptions};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

fn show(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Runs the demo, printing to stdout. Errors are returned as one line.
pub async fn run() -> Result<(), String> {
    let gw = Gateway::new(GatewayConfig {
        name: "demo-gateway".into(),
        ..Default::default()
    });
    let ws = gw
        .listen(
            &Endpoint::parse("ws://127.0.0.1:0").map_err(|e| e.to_string())?,
            None,
        )
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let tcp = gw
        .listen(
            &Endpoint::parse("tcp://127.0.0.1:0").map_err(|e| e.to_string())?,
            None,
        )
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    println!(
        "gateway listening on ws://{} and tcp://{}",
        ws.addr, tcp.addr
    );

    let board = crate::device::SharedBoard::new();
    let device =
        HostNode::new(NodeOptions::new("demo-device")).tools(crate::device::tools(board.clone()));
    let device_ep = Endpoint::parse(&format!("tcp://{}", tcp.addr)).map_err(|e| e.to_string())?;
    let _device = smol::spawn(async move { device.run(&device_ep, None).await });
    if !gw
        .wait_for_node("demo-device", Duration::from_secs(5))
        .await
    {
        return Err("the simulated device did not register within 5 s".into());
    }
    println!("simulated device `demo-device` connected over TCP (postcard frames)\n");

    let client = Client::connect(
        &Endpoint::parse(&format!("ws://{}", ws.addr)).map_err(|e| e.to_string())?,
        ClientOptions {
            name: Some("demo".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| format!("controller cannot connect: {e}"))?;
    println!("registered tools (listed by a controller over WebSocket):");
    for t in client.tools(None, None).await.map_err(|e| e.to_string())? {
        println!("  {}/{:<12} {}", t.node, t.name, t.description);
    }
    println!();

    let call = |tool: &'static str, args: Value, timeout: Duration| {
        let client = &client;
        async move {
            let (ptx, prx) = bounded(128);
            let opts = ClientCallOptions {
                timeout: Some(timeout),
                progress: Some(ptx),
                ..Default::default()
            };
            let t0 = Instant::now();
            let r = client.call("demo-device", tool, &args, opts).await;
            let progress: Vec<String> = std::iter::from_fn(|| prx.try_recv().ok())
                .map(|p| format!("{}/{}", p.progress, p.total.unwrap_or(0)))
                .collect();
            (r, progress, t0.elapsed())
        }
    };
    let ok = |tool: &str, args: &Value, r: &Value, d: Duration| {
        println!(
            "call {tool} {} -> {}  ({:.1} ms)",
            show(args),
            show(r),
            d.as_secs_f64() * 1e3
        );
    };

    for (tool, args) in [
        ("read_sensor", json!({"channel": 2})),
        ("set_led", json!({"led": 1, "on": true})),
        ("echo", json!({"text": "hello, device"})),
        ("uptime", json!({})),
    ] {
        let (r, _, d) = call(tool, args.clone(), Duration::from_secs(5)).await;
        let v = r.map_err(|e| format!("{tool} failed: {e}"))?;
        ok(tool, &args, &v, d);
    }
    println!("  LED register on the device is now {:#06b}", board.leds());

    let args = json!({"channel": 0, "count": 5, "interval_ms": 100});
    let (r, progress, d) = call("sample", args.clone(), Duration::from_secs(5)).await;
    let v = r.map_err(|e| format!("sample failed: {e}"))?;
    println!(
        "call sample {} reported progress {}",
        show(&args),
        progress.join(" ")
    );
    ok("sample", &args, &v, d);
    if progress.len() != 5 {
        return Err(format!(
            "expected 5 progress reports, got {}",
            progress.len()
        ));
    }

    let args = json!({"channel": 0, "count": 100, "interval_ms": 100});
    let (r, progress, d) = call("sample", args.clone(), Duration::from_millis(500)).await;
    match r {
        Err(e) if e.known() == Some(toolwire_core::ErrorCode::Timeout) => println!(
            "call sample {} with a 500 ms deadline -> {e}  ({:.0} ms, {} progress reports)",
            show(&args),
            d.as_secs_f64() * 1e3,
            progress.len()
        ),
        other => return Err(format!("expected a timeout, got {other:?}")),
    }
    let cancelled = {
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            if gw.nodes().iter().all(|n| n.in_flight == 0) {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    };
    if !cancelled {
        return Err("the device still runs the timed-out call".into());
    }
    println!("  the gateway sent `cancel`; the device dropped the call (calls in flight: 0)");

    let args = json!({"channel": 9});
    let (r, _, _) = call("read_sensor", args.clone(), Duration::from_secs(5)).await;
    match r {
        Err(e) if e.known() == Some(toolwire_core::ErrorCode::InvalidArguments) => {
            println!(
                "call read_sensor {} -> rejected by the schema at the gateway: {}",
                show(&args),
                e.message
            )
        }
        other => return Err(format!("expected a schema rejection, got {other:?}")),
    }
    println!("\ndemo finished: every call behaved as expected");
    Ok(())
}
