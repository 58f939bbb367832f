//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use smol::Task;
use smol::io::{AsyncBufReadExt, AsyncWriteExt};
use toolwire_smol::node::{HostNode, NodeOptions};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

/// A gateway listening on WebSocket and TCP on ephemeral loopback ports.
pub async fn gateway(cfg: GatewayConfig) -> (Gateway, String, String) {
    let gw = Gateway::new(cfg);
    let ws = gw
        .listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None)
        .await
        .unwrap();
    let tcp = gw
        .listen(&Endpoint::parse("tcp://127.0.0.1:0").unwrap(), None)
        .await
        .unwrap();
    let urls = (format!("ws://{}", ws.addr), format!("tcp://{}", tcp.addr));
    // Keep the listeners for the test's lifetime.
    Box::leak(Box::new((ws, tcp)));
    (gw, urls.0, urls.1)
}

/// Runs a host node (reconnecting) in the background.
pub fn spawn_node(url: &str, node: HostNode) -> Task<()> {
    let ep = Endpoint::parse(url).unwrap();
    smol::spawn(async move {
        node.run(&ep, None).await;
    })
}

/// Runs the simulated demo device.
pub fn spawn_device(url: &str, opts: NodeOptions) -> Task<()> {
    spawn_node(
        url,
        HostNode::new(opts).tools(toolwire::device::tools(Default::default())),
    )
}

/// Polls `f` every 10 ms until true or `d` passes.
pub async fn wait_until(d: Duration, f: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    f()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills (and reaps) a child process when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// The venv's python with the interop tests' packages (scripts/python-env.sh installs what is
/// missing; panics with the installer's output otherwise).
pub fn python() -> std::path::PathBuf {
    let script = repo_root().join("scripts/python-env.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): the interop tests need Python 3 with venv and pip, and PyPI",
        script.display(),
        out.status
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The next line of a child's stdout, by `until` (panics past it); `None` at its end.
pub async fn line_within(
    lines: &mut smol::io::BufReader<smol::process::ChildStdout>,
    until: std::time::Instant,
) -> Option<String> {
    let mut line = String::new();
    let read = async { Some(lines.read_line(&mut line).await) };
    let timeout = async {
        smol::Timer::at(until).await;
        None
    };
    match smol::future::or(read, timeout).await {
        Some(Ok(0)) => None,
        Some(Ok(_)) => Some(line.trim_end().to_owned()),
        Some(Err(e)) => panic!("reading the child's stdout: {e}"),
        None => panic!("timed out waiting for the child"),
    }
}

/// Writes `text` and a newline to a child's stdin.
pub async fn reply(stdin: &mut smol::process::ChildStdin, text: &str) {
    stdin
        .write_all(format!("{text}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
}

/// The child's exit status, within `d` (panics past it).
pub async fn exit_within(
    child: &mut smol::process::Child,
    d: Duration,
) -> std::process::ExitStatus {
    let status = async { Some(child.status().await.unwrap()) };
    let timeout = async {
        smol::Timer::after(d).await;
        None
    };
    smol::future::or(status, timeout)
        .await
        .expect("the child did not exit")
}
