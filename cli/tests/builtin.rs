//! The opt-in built-in tools: the filesystem stays inside its root; the shell runs only
//! allow-listed programs, with a timeout and an output cap.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use toolwire::builtin::{fs_tools, shell_tool};
use toolwire_core::ErrorCode;
use toolwire_smol::GatewayConfig;
use toolwire_smol::gateway::CallOptions;
use toolwire_smol::node::{HostNode, NodeOptions};

#[test]
fn filesystem_is_confined_to_its_root() {
    smol::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "inside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("escape")).unwrap();

        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _n = spawn_node(
            &ws,
            HostNode::new(NodeOptions::new("fs")).tools(fs_tools(&root).unwrap()),
        );
        assert!(gw.wait_for_node("fs", Duration::from_secs(5)).await);
        let call = |tool: &'static str, args: serde_json::Value| {
            let gw = gw.clone();
            async move { gw.call("fs", tool, &args, CallOptions::default()).await }
        };
        assert_eq!(
            call("fs_read", json!({"path": "sub/a.txt"})).await.unwrap(),
            json!("inside")
        );
        assert_eq!(
            call("fs_write", json!({"path": "sub/b.txt", "content": "new"}))
                .await
                .unwrap(),
            json!(3)
        );
        assert_eq!(
            std::fs::read_to_string(root.join("sub/b.txt")).unwrap(),
            "new"
        );
        let list = call("fs_list", json!({"path": "sub"})).await.unwrap();
        assert_eq!(
            list.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect::<Vec<_>>(),
            vec!["a.txt", "b.txt"]
        );
        for (tool, args) in [
            ("fs_read", json!({"path": "../secret.txt"})),
            ("fs_read", json!({"path": "/etc/passwd"})),
            ("fs_read", json!({"path": "link.txt"})),
            ("fs_read", json!({"path": "escape/secret.txt"})),
            (
                "fs_write",
                json!({"path": "escape/new.txt", "content": "x"}),
            ),
            ("fs_write", json!({"path": "link.txt", "content": "x"})),
            ("fs_list", json!({"path": "escape"})),
        ] {
            let e = call(tool, args.clone()).await.unwrap_err();
            assert_eq!(
                e.known(),
                Some(ErrorCode::Unauthorized),
                "{tool} {args}: {e}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("secret.txt")).unwrap(),
            "outside"
        );
        assert!(!dir.path().join("new.txt").exists());
    });
}

#[test]
fn shell_runs_only_allowed_programs_with_limits() {
    smol::block_on(async {
        let (gw, _, tcp) = gateway(GatewayConfig::default()).await;
        let tool = shell_tool(vec!["echo".into(), "sleep".into(), "seq".into()]);
        let _n = spawn_node(&tcp, HostNode::new(NodeOptions::new("sh")).tool(tool));
        assert!(gw.wait_for_node("sh", Duration::from_secs(5)).await);
        let call = |args: serde_json::Value| {
            let gw = gw.clone();
            async move {
                gw.call("sh", "shell_run", &args, CallOptions::default())
                    .await
            }
        };
        let r = call(json!({"program": "echo", "args": ["hi", "$HOME;", "`id`"]}))
            .await
            .unwrap();
        assert_eq!(
            r["stdout"], "hi $HOME; `id`\n",
            "arguments are passed verbatim, no shell"
        );
        assert_eq!(r["status"], 0);
        let e = call(json!({"program": "rm", "args": ["-rf", "/tmp/x"]}))
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Unauthorized));
        let e = call(json!({"program": "/bin/echo"})).await.unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Unauthorized));
        let t0 = std::time::Instant::now();
        let e = call(json!({"program": "sleep", "args": ["30"], "timeout_ms": 200}))
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(5));
        let r = call(json!({"program": "seq", "args": ["1", "100000"]}))
            .await
            .unwrap();
        assert_eq!(r["truncated"], true);
        assert_eq!(
            r["stdout"].as_str().unwrap().len(),
            toolwire::builtin::MAX_OUTPUT
        );
    });
}
