//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod device;

use std::future::Future;
use std::time::Duration;

use smol::Task;
use smol::channel::Receiver;
use smol::future::FutureExt;
use toolwire_smol::gateway::Listener;
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
    let urls = (
        format!("ws://{}/ws", ws.addr),
        format!("tcp://{}", tcp.addr),
    );
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
    spawn_node(url, HostNode::new(opts).tools(device::tools()))
}

/// Receives within `d`.
pub async fn recv_within<T>(rx: &Receiver<T>, d: Duration) -> Option<T> {
    async { rx.recv().await.ok() }
        .or(async {
            smol::Timer::after(d).await;
            None
        })
        .await
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

/// Listens, retrying while the port is still held by a previous listener.
pub async fn listen_retry(gw: &Gateway, ep: &Endpoint) -> Listener {
    for _ in 0..100 {
        if let Ok(l) = gw.listen(ep, None).await {
            return l;
        }
        smol::Timer::after(Duration::from_millis(50)).await;
    }
    panic!("could not listen on {}", ep.url());
}

/// Runs futures concurrently and collects their outputs in order.
pub async fn futures_join<F: Future + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let tasks: Vec<Task<F::Output>> = futs.into_iter().map(smol::spawn).collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// The Python of the project's venv (made by scripts/python-env.sh, which installs what is
/// missing). Panics, never skips, if it cannot be had.
pub fn python() -> std::path::PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/python-env.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/python-env.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        std::path::Path::new(&path).exists(),
        "python-env.sh printed `{path}`"
    );
    path.into()
}

/// Kills (and reaps) a child process when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
