//! The session on a stream pair: a reader task splits lines, a writer task batches them out, a
//! watcher turns the gateway's events into `notifications/tools/list_changed`; the loop sorts
//! each message, answers `initialize` and `ping` in order, runs every other request as a task
//! of its own, and drops that task on `notifications/cancelled`.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::client::{Client, ClientEvent};
use serde_json::Value;
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;
use smol::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

use super::protocol::{
    INVALID_REQUEST, Incoming, PARSE_ERROR, error_response, notification, parse_message, response,
};
use super::{Bridge, McpOptions, Reconnect};

/// The longest input line accepted (a `tools/call` with large arguments fits).
const MAX_LINE: usize = 8 << 20;
/// A burst of tool changes closer than this makes one `list_changed`.
const COALESCE: Duration = Duration::from_millis(50);
/// … but a steady stream of changes is still announced this often.
const COALESCE_MAX: Duration = Duration::from_millis(500);

/// Serves MCP over any byte stream pair: newline-delimited JSON-RPC read from `input` and
/// written to `output`. Returns when `input` ends (`Ok`), or when the gateway connection is
/// lost or `output` fails (`Err`).
pub async fn serve<R, W>(client: Client, input: R, output: W, opts: McpOptions) -> io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_with(client, input, output, opts, None).await
}

/// [`serve`], reconnecting with `reconnect` when the gateway connection is lost (see
/// [`super::serve_stdio_reconnecting`]).
pub(super) async fn serve_with<R, W>(
    client: Client,
    input: R,
    output: W,
    opts: McpOptions,
    reconnect: Option<Reconnect>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let events = client.events();
    let (out_tx, out_rx) = bounded::<String>(1024);
    let (line_tx, line_rx) = bounded::<Line>(16);
    let (ctl_tx, ctl_rx) = unbounded::<Control>();
    let bridge = Arc::new(Bridge::new(client, opts, out_tx));
    let writer = smol::spawn(write_lines(output, out_rx, ctl_tx.clone()));
    let reader = smol::spawn(read_lines(input, line_tx));
    let mut watcher = smol::spawn(watch_events(bridge.clone(), events, ctl_tx.clone()));
    let mut reconnecting: Option<Task<()>> = None;

    let mut inflight: HashMap<String, (u64, Task<()>)> = HashMap::new();
    let mut seq = 0u64;
    let end: io::Result<()> = loop {
        let next = async { Next::Line(line_rx.recv().await.unwrap_or(Line::Eof)) }
            .race(async {
                match ctl_rx.recv().await {
                    Ok(c) => Next::Control(c),
                    Err(_) => Next::Line(Line::Eof),
                }
            })
            .await;
        match next {
            Next::Line(Line::Eof) => break Ok(()),
            Next::Line(Line::TooLong) => {
                let msg = format!("message longer than {MAX_LINE} bytes");
                bridge
                    .send(error_response(&Value::Null, PARSE_ERROR, &msg))
                    .await;
            }
            Next::Line(Line::Text(bytes)) if bytes.trim_ascii().is_empty() => {}
            Next::Line(Line::Text(bytes)) => match parse_message(&bytes) {
                Incoming::Request { id, method, params } => {
                    let key = id.to_string();
                    if inflight.contains_key(&key) {
                        let msg = "a request with this id is still running";
                        bridge.send(error_response(&id, INVALID_REQUEST, msg)).await;
                        continue;
                    }
                    match method.as_str() {
                        // Instant: answered in order, on this loop.
                        "initialize" | "ping" => {
                            let r = bridge.handle(&method, params, &bridge.out).await;
                            bridge.send(response(&id, r)).await;
                        }
                        _ => {
                            seq += 1;
                            let (b, ctl, k, s) = (bridge.clone(), ctl_tx.clone(), key.clone(), seq);
                            let task = smol::spawn(async move {
                                let r = b.handle(&method, params, &b.out).await;
                                b.send(response(&id, r)).await;
                                let _ = ctl.send(Control::Done(k, s)).await;
                            });
                            inflight.insert(key, (seq, task));
                        }
                    }
                }
                Incoming::Notification { method, params } => match method.as_str() {
                    "notifications/initialized" => {
                        bridge.initialized.store(true, Ordering::Relaxed);
                    }
                    "notifications/cancelled" => {
                        // MCP: the cancelled request gets no response. Dropping its task drops
                        // the gateway call, which cancels it on the node.
                        if let Some(id) = params.get("requestId")
                            && let Some((_, task)) = inflight.remove(&id.to_string())
                        {
                            tracing::debug!("mcp: request {id} cancelled");
                            drop(task);
                        }
                    }
                    other => tracing::debug!("mcp: ignored notification {other}"),
                },
                Incoming::Response { id, message } => {
                    if !bridge.deliver(&id, message) {
                        tracing::debug!("mcp: a response to {id}, which nothing waits for");
                    }
                }
                Incoming::Ignored => {}
                Incoming::Invalid { id, code, message } => {
                    bridge.send(error_response(&id, code, &message)).await;
                }
            },
            Next::Control(Control::Done(key, s)) => {
                if inflight.get(&key).is_some_and(|(n, _)| *n == s) {
                    inflight.remove(&key);
                }
            }
            Next::Control(Control::GatewayLost) => {
                let Some(again) = &reconnect else {
                    break Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "lost the connection to the gateway",
                    ));
                };
                if reconnecting.is_none() {
                    tracing::warn!("mcp: lost the gateway; reconnecting");
                    reconnecting = Some(smol::spawn(reconnect_loop(again.clone(), ctl_tx.clone())));
                }
            }
            Next::Control(Control::Reconnected(client)) => {
                reconnecting = None;
                tracing::info!("mcp: connected to the gateway again");
                let events = client.events();
                *bridge.client.lock().unwrap() = Arc::new(client);
                watcher = smol::spawn(watch_events(bridge.clone(), events, ctl_tx.clone()));
                // Its tools may have changed while it was away.
                if bridge.initialized.load(Ordering::Relaxed) {
                    bridge
                        .send(notification("notifications/tools/list_changed", None))
                        .await;
                }
            }
            Next::Control(Control::OutputFailed(e)) => break Err(e),
        }
    };
    drop(reader);
    drop(watcher);
    let tasks: Vec<Task<()>> = inflight.into_values().map(|(_, t)| t).collect();
    if end.is_err() {
        // The gateway is gone: pending calls fail at once; let their results out.
        within(Duration::from_secs(1), async {
            for t in tasks {
                t.await;
            }
        })
        .await;
    } else {
        for t in tasks {
            t.cancel().await;
        }
    }
    bridge.out.close();
    within(Duration::from_secs(2), writer).await;
    end
}

/// Tries `reconnect` until it works, 0.5 s apart at first and then up to 5 s.
async fn reconnect_loop(reconnect: Reconnect, ctl: Sender<Control>) {
    let mut wait = Duration::from_millis(500);
    loop {
        smol::Timer::after(wait).await;
        match reconnect().await {
            Ok(c) => {
                let _ = ctl.send(Control::Reconnected(c)).await;
                return;
            }
            Err(e) => tracing::debug!("mcp: reconnecting: {e}"),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Runs `f` for at most `d`.
async fn within(d: Duration, f: impl std::future::Future<Output = ()>) {
    f.or(async {
        smol::Timer::after(d).await;
    })
    .await
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

pub(super) enum Control {
    Done(String, u64),
    GatewayLost,
    Reconnected(Client),
    OutputFailed(io::Error),
}

enum Next {
    Line(Line),
    Control(Control),
}

async fn read_lines<R: AsyncRead + Unpin>(input: R, lines: Sender<Line>) {
    let mut input = BufReader::with_capacity(64 << 10, input);
    loop {
        let mut buf = vec![];
        let line = match read_line(&mut input, &mut buf, MAX_LINE).await {
            Ok(true) => Line::Text(buf),
            Ok(false) if buf.is_empty() => Line::Eof,
            Ok(false) => Line::TooLong,
            Err(e) => {
                tracing::warn!("mcp: reading stdin: {e}");
                Line::Eof
            }
        };
        let eof = matches!(line, Line::Eof);
        if lines.send(line).await.is_err() || eof {
            return;
        }
    }
}

/// Reads one line into `buf` (without its `\n`). `Ok(true)`: a line; `Ok(false)` with `buf`
/// empty: end of input; `Ok(false)` with `buf` not empty: the line was longer than `max` and
/// was skipped.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    let n = (&mut *r)
        .take(max as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(true);
    }
    if buf.len() <= max {
        // The last line, without `\n`.
        return Ok(true);
    }
    loop {
        let mut skipped = vec![];
        let n = (&mut *r)
            .take(64 << 10)
            .read_until(b'\n', &mut skipped)
            .await?;
        if n == 0 || skipped.last() == Some(&b'\n') {
            break;
        }
    }
    buf.clear();
    buf.push(0);
    Ok(false)
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut output: W,
    lines: Receiver<String>,
    ctl: Sender<Control>,
) {
    let r: io::Result<()> = async {
        while let Ok(first) = lines.recv().await {
            output.write_all(first.as_bytes()).await?;
            output.write_all(b"\n").await?;
            // Batch whatever else is ready into one flush, but a progress notification goes
            // out in a write of its own, never with what follows it: the TypeScript SDK drops
            // a progress notification read in one chunk with its call's response.
            let mut last = first;
            while !is_progress(&last)
                && let Ok(more) = lines.try_recv()
            {
                output.write_all(more.as_bytes()).await?;
                output.write_all(b"\n").await?;
                last = more;
            }
            output.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = r {
        tracing::warn!("mcp: writing stdout: {e}");
        let _ = ctl.send(Control::OutputFailed(e)).await;
    }
}

/// True for a `notifications/progress` as this bridge writes it (serde_json writes members in
/// order, so the method comes right after `jsonrpc`).
pub(super) fn is_progress(line: &str) -> bool {
    line.starts_with(r#"{"jsonrpc":"2.0","method":"notifications/progress""#)
}

pub(super) async fn watch_events(
    bridge: Arc<Bridge>,
    events: Receiver<ClientEvent>,
    ctl: Sender<Control>,
) {
    loop {
        match events.recv().await {
            Ok(ClientEvent::ToolsChanged(node)) => {
                tracing::debug!("mcp: tools of {node} changed");
                // A node connecting, then registering, is one change for the MCP client.
                let until = Instant::now() + COALESCE_MAX;
                let mut lost = false;
                let mut nodes = vec![node];
                loop {
                    let wait = COALESCE.min(until.saturating_duration_since(Instant::now()));
                    let next = async { Some(events.recv().await) }
                        .or(async {
                            smol::Timer::after(wait).await;
                            None
                        })
                        .await;
                    match next {
                        Some(Ok(ClientEvent::ToolsChanged(n))) if Instant::now() < until => {
                            if !nodes.contains(&n) {
                                nodes.push(n);
                            }
                        }
                        Some(Ok(ClientEvent::ToolsChanged(_))) | None => break,
                        Some(Ok(ClientEvent::Disconnected)) | Some(Err(_)) => {
                            lost = true;
                            break;
                        }
                    }
                }
                if bridge.initialized.load(Ordering::Relaxed) {
                    // The gateway's own line about it, for a client that logs at info.
                    if bridge.log_level().rank() <= crate::gateway::LogLevel::Info.rank()
                        && bridge.version() < super::protocol::Version::V2026_07_28
                    {
                        let text = format!("the tools of {} changed", nodes.join(", "));
                        let params = serde_json::json!({"level": "info", "logger": "gateway",
                            "data": {"message": text, "nodes": nodes}});
                        bridge
                            .send(notification("notifications/message", Some(params)))
                            .await;
                    }
                    bridge
                        .send(notification("notifications/tools/list_changed", None))
                        .await;
                }
                if lost {
                    let _ = ctl.send(Control::GatewayLost).await;
                    return;
                }
            }
            Ok(ClientEvent::Disconnected) | Err(_) => {
                let _ = ctl.send(Control::GatewayLost).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_not_fatal() {
        smol::block_on(async {
            let data = b"0123456789\nabc\nxyz";
            let mut r = BufReader::with_capacity(4, &data[..]);
            let mut buf = vec![];
            assert!(!read_line(&mut r, &mut buf, 5).await.unwrap());
            assert!(!buf.is_empty(), "too long");
            buf.clear();
            assert!(read_line(&mut r, &mut buf, 5).await.unwrap());
            assert_eq!(buf, b"abc");
            buf.clear();
            assert!(read_line(&mut r, &mut buf, 5).await.unwrap());
            assert_eq!(buf, b"xyz");
            buf.clear();
            assert!(!read_line(&mut r, &mut buf, 5).await.unwrap());
            assert!(buf.is_empty(), "end");
        });
    }
}
