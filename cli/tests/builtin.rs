//! The opt-in built-in tools: the filesystem stays inside its root; the shell runs only
//! allow-listed programs, with a timeout and an output cap, in a sandbox of rlimits, an empty
//! environment, its own process group and (as root) an unprivileged user.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use toolwire::builtin::{ShellLimits, fs_tools, shell_tool, shell_tool_with};
use toolwire_core::ErrorCode;
use toolwire_smol::gateway::{CallError, CallOptions};
use toolwire_smol::node::{HostNode, NodeOptions};
use toolwire_smol::{Gateway, GatewayConfig};

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
        let d = ShellLimits::default();
        assert_eq!(
            r["limits"],
            json!({"cpu_seconds": d.cpu_seconds, "address_space": d.address_space,
                   "open_files": d.open_files, "processes": d.processes})
        );
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

/// A gateway and a node `sh` offering `shell_run` for `allow` in the sandbox `limits`; the
/// node task stops when dropped.
async fn shell_node(
    allow: &[&str],
    limits: ShellLimits,
) -> (Gateway, impl Drop, impl Fn(serde_json::Value) -> CallFuture) {
    let (gw, _, tcp) = gateway(GatewayConfig::default()).await;
    let tool = shell_tool_with(allow.iter().map(|p| p.to_string()).collect(), limits);
    let n = spawn_node(&tcp, HostNode::new(NodeOptions::new("sh")).tool(tool));
    assert!(gw.wait_for_node("sh", Duration::from_secs(5)).await);
    let g = gw.clone();
    let call = move |args: serde_json::Value| -> CallFuture {
        let gw = g.clone();
        Box::pin(async move {
            let opts = CallOptions {
                timeout: Some(Duration::from_secs(30)),
                ..CallOptions::default()
            };
            gw.call("sh", "shell_run", &args, opts).await
        })
    };
    (gw, n, call)
}

type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<serde_json::Value, CallError>>>>;

#[test]
fn shell_cpu_limit_stops_an_infinite_loop() {
    smol::block_on(async {
        let limits = ShellLimits {
            cpu_seconds: 1,
            ..ShellLimits::default()
        };
        let (_gw, _n, call) = shell_node(&["sh"], limits).await;
        let t0 = std::time::Instant::now();
        let e = call(
            json!({"program": "sh", "args": ["-c", "while :; do :; done"],
                            "timeout_ms": 20_000}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::ToolFailed), "{e:?}");
        assert_eq!(
            e.message,
            "`sh` was killed by SIGXCPU: it exceeded its CPU time limit (1 s)"
        );
        // One CPU second, however busy the machine; far below the 20 s timeout.
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    });
}

#[test]
fn shell_address_space_limit_contains_a_memory_hog() {
    smol::block_on(async {
        let limits = ShellLimits {
            address_space: 256 << 20,
            ..ShellLimits::default()
        };
        let (_gw, _n, call) = shell_node(&["awk"], limits).await;
        // A string doubled up to `2^n` bytes: 1 MiB fits, 512 MiB (and its copy) does not.
        let hog = |n: u32| {
            json!({"program": "awk",
                   "args": [format!("BEGIN {{ s = \"x\"; for (i = 0; i < {n}; i++) s = s s }}")]})
        };
        let r = call(hog(20)).await.unwrap();
        assert_eq!(r["status"], 0, "{r}");
        let r = call(hog(29)).await.unwrap();
        // Debian's awk (mawk): "awk: run time error: out of memory", exit status 2.
        assert_ne!(r["status"], 0, "{r}");
        assert!(
            r["stderr"].as_str().unwrap().contains("out of memory"),
            "{r}"
        );
        assert_eq!(r["limits"]["address_space"], 256 << 20);
    });
}

/// Processes whose real uid is `uid` and whose command line is `sleep 5`.
fn sleepers(uid: u32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let is_sleep = std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x005\0");
        if is_sleep && e.metadata().is_ok_and(|m| m.uid() == uid) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn shell_process_limit_and_group_kill_contain_a_fork_loop() {
    smol::block_on(async {
        let root = rustix::process::geteuid().is_root();
        // As root the program runs as a uid of its own (no other test uses it), so the
        // processes limit counts this run only; otherwise it counts all of our processes.
        let limits = ShellLimits {
            processes: 16,
            uid: 65533,
            gid: 65533,
            ..ShellLimits::default()
        };
        let uid = if root {
            limits.uid
        } else {
            rustix::process::geteuid().as_raw()
        };
        assert!(sleepers(uid).is_empty(), "leftovers from before");
        let (_gw, _n, call) = shell_node(&["sh"], limits).await;
        // Bounded: at most 500 children, each gone by itself in 5 s. They do not hold the
        // output pipes, so the call may return while they run: only the group kill stops them.
        let script =
            "i=0; while [ $i -lt 500 ]; do sleep 5 >/dev/null 2>&1 & i=$((i+1)); done; wait";
        let t0 = std::time::Instant::now();
        let r = call(json!({"program": "sh", "args": ["-c", script], "timeout_ms": 20_000})).await;
        let elapsed = t0.elapsed();
        let left = if wait_until(Duration::from_secs(2), || sleepers(uid).is_empty()).await {
            vec![]
        } else {
            sleepers(uid)
        };
        for &pid in &left {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        assert!(left.is_empty(), "children outlived the call: {left:?}");
        let r = r.unwrap();
        // Debian's sh (dash) gives up at the first failed fork: "sh: 1: Cannot fork", status 2.
        assert_ne!(r["status"], 0, "{r}");
        let stderr = r["stderr"].as_str().unwrap();
        assert!(
            stderr.contains("Cannot fork") || stderr.contains("Resource temporarily unavailable"),
            "{r}"
        );
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    });
}

#[test]
fn shell_environment_is_empty_unless_passed() {
    smol::block_on(async {
        let path = std::env::var("PATH").expect("the test runs with a PATH");
        let (_gw, _n, call) = shell_node(&["env"], ShellLimits::default()).await;
        let r = call(json!({"program": "env"})).await.unwrap();
        assert_eq!(r["status"], 0, "{r}");
        assert_eq!(r["stdout"], "", "not even PATH by default");
        drop((_gw, _n, call));

        let limits = ShellLimits {
            env: vec!["PATH".into(), "TOOLWIRE_TEST_UNSET_VARIABLE".into()],
            ..ShellLimits::default()
        };
        let (_gw, _n, call) = shell_node(&["env"], limits).await;
        let r = call(json!({"program": "env"})).await.unwrap();
        assert_eq!(
            r["stdout"],
            format!("PATH={path}\n"),
            "passed names only, unset ones left out"
        );
    });
}
