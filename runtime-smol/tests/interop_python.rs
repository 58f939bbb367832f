//! A node written in Python with the `websockets` package, from PROTOCOL.md alone, registers
//! and is called through the gateway.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use smol::channel::bounded;
use toolwire_core::ErrorCode;
use toolwire_smol::GatewayConfig;
use toolwire_smol::gateway::CallOptions;

#[test]
fn python_websockets_node() {
    let py = python();
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py_node.py");
        let mut child = Command::new(&py)
            .args([script, &ws, "py-node"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python runs");
        let stdout = child.stdout.take().unwrap();
        let _kill = KillOnDrop(child);
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY");
        assert!(gw.wait_for_node("py-node", Duration::from_secs(5)).await);
        let r = gw
            .call(
                "py-node",
                "add",
                &json!({"a": 2, "b": 3}),
                CallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(r, json!({"sum": 5}));
        let (ptx, prx) = bounded(16);
        let opts = CallOptions {
            progress: Some(ptx),
            ..Default::default()
        };
        let r = gw
            .call("py-node", "count", &json!({"n": 3}), opts)
            .await
            .unwrap();
        assert_eq!(r, json!(3));
        let steps: Vec<u64> = std::iter::from_fn(|| prx.try_recv().ok())
            .map(|p| p.progress)
            .collect();
        assert_eq!(steps, vec![1, 2, 3]);
        let e = gw
            .call(
                "py-node",
                "add",
                &json!({"a": "two", "b": 3}),
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::InvalidArguments));
        let tools = gw.tools(None, Some("py-node"));
        assert!(tools[0].annotations.read_only && tools[0].annotations.idempotent);
    });
}
