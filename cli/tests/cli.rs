//! The `toolwire` binary as a user runs it: a gateway, a node and controller commands as
//! separate processes on loopback.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_port};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_toolwire");

fn toolwire(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs a controller command until it succeeds (the node may still be registering).
fn until_ok(args: &[&str]) -> Output {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let out = toolwire(args);
        if out.status.success() || Instant::now() > end {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn gateway_node_tools_call() {
    let ws = format!("ws://127.0.0.1:{}", free_port());
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let gw = Command::new(BIN)
        .args(["gateway", "--ws", &ws, "--tcp", &tcp])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _g = KillOnDrop(gw);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello from a file").unwrap();
    let node = Command::new(BIN)
        .args([
            "node",
            "--gateway",
            &tcp,
            "--id",
            "box",
            "--demo-tools",
            "--fs-root",
        ])
        .arg(dir.path())
        .args(["--shell-allow", "echo"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _n = KillOnDrop(node);

    let out = until_ok(&[
        "call",
        "--gateway",
        &ws,
        "box",
        "fs_read",
        r#"{"path":"notes.txt"}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, "hello from a file");

    let out = toolwire(&["tools", "--gateway", &ws, "--node", "box"]);
    let tools: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in [
        "echo",
        "fs_list",
        "fs_read",
        "fs_write",
        "read_sensor",
        "sample",
        "shell_run",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }

    // Progress is shown on stderr while a call runs.
    let out = toolwire(&[
        "call",
        "--gateway",
        &tcp,
        "box",
        "sample",
        r#"{"channel":1,"count":3,"interval_ms":10}"#,
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("progress 3/3"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 3);

    // Errors: one clear line and a non-zero exit.
    for (args, expect) in [
        (
            vec![
                "call",
                "--gateway",
                ws.as_str(),
                "box",
                "read_sensor",
                r#"{"channel":9}"#,
            ],
            "invalid arguments",
        ),
        (
            vec!["call", "--gateway", ws.as_str(), "nobody", "uptime"],
            "node not found",
        ),
        (
            vec![
                "call",
                "--gateway",
                ws.as_str(),
                "box",
                "uptime",
                "{not json",
            ],
            "not JSON",
        ),
        (
            vec!["call", "--gateway", "ws://127.0.0.1:1", "box", "uptime"],
            "cannot reach the gateway",
        ),
    ] {
        let out = toolwire(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn demo_runs_and_exits_zero() {
    let out = toolwire(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expect in [
        "demo-device/read_sensor",
        "reported progress 1/5 2/5 3/5 4/5 5/5",
        "timeout (-32003)",
        "rejected by the schema",
        "demo finished",
    ] {
        assert!(text.contains(expect), "`{expect}` missing from:\n{text}");
    }
}

/// Says hello as node `id` over TCP (COBS framing, JSON); returns the socket and the answer.
fn tcp_hello(addr: &str, id: &str) -> Option<(std::net::TcpStream, Value)> {
    use std::io::Write;
    use toolwire_core::stream::{encode_frame, max_encoded_len};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let hello = serde_json::json!({"jsonrpc":"2.0","id":0,"method":"hello","params":{
        "min_version":1,"max_version":1,"role":"node","id":id,
        "encodings":{"json":true,"postcard":false},"max_frame":65536,"max_in_flight":1}})
    .to_string();
    let mut out = vec![0u8; max_encoded_len(hello.len())];
    let n = encode_frame(hello.as_bytes(), &mut out).ok()?;
    s.write_all(&out[..n]).ok()?;
    let answer = read_frame(&mut s)?;
    Some((s, answer))
}

/// The next JSON frame on a COBS stream; `None` once it closes.
fn read_frame(s: &mut std::net::TcpStream) -> Option<Value> {
    use std::io::Read;
    use toolwire_core::stream::{Deframed, Deframer};
    let mut de = Deframer::new(vec![0u8; 65536]);
    let mut byte = [0u8; 1];
    // A byte at a time: what follows the frame stays in the socket for the next call.
    loop {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        if let (_, Deframed::Frame(f)) = de.push(&byte) {
            return serde_json::from_slice(f).ok();
        }
    }
}

#[test]
fn gateway_flags_set_limits_and_intervals() {
    let addr = format!("127.0.0.1:{}", free_port());
    let gw = Command::new(BIN)
        .args([
            "gateway",
            "--ws",
            &format!("ws://127.0.0.1:{}", free_port()),
        ])
        .args(["--tcp", &format!("tcp://{addr}")])
        .args(["--max-nodes", "1", "--heartbeat", "0.25"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _g = KillOnDrop(gw);
    let end = Instant::now() + Duration::from_secs(15);
    let (mut first, welcome) = loop {
        match tcp_hello(&addr, "first") {
            Some(x) => break x,
            None if Instant::now() < end => std::thread::sleep(Duration::from_millis(100)),
            None => panic!("the gateway did not answer"),
        }
    };
    assert_eq!(welcome["result"]["heartbeat_ms"], 250, "{welcome}");
    // One node is the limit: a second id is refused, and told why.
    let (_, refused) = tcp_hello(&addr, "second").expect("an answer");
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    assert_eq!(
        refused["error"]["message"], "gateway full: 1 node connected",
        "{refused}"
    );
    // The first node never answers a ping: three 0.25 s heartbeats later it is gone, which
    // makes room for the second.
    let t0 = Instant::now();
    while let Some(f) = read_frame(&mut first) {
        if f["method"] == "goodbye" {
            assert_eq!(f["params"]["reason"], "idle_timeout", "{f}");
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let (_, welcome) = tcp_hello(&addr, "second").expect("an answer");
    assert!(welcome.get("result").is_some(), "{welcome}");
}
