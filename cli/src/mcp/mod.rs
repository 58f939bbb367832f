//! The MCP bridge: an MCP server on stdio whose tools are the tools of every node connected to
//! a gateway.
//!
//! `toolwire mcp --gateway URL` connects a [`Client`] and calls [`serve_stdio`]. MCP's stdio
//! transport is newline-delimited JSON-RPC 2.0 on stdin and stdout (logs go to stderr). The
//! bridge answers `initialize`, `ping`, `tools/list` and `tools/call`; forwards a node's
//! progress as `notifications/progress`; turns `notifications/cancelled` into cancelling the
//! gateway call; and sends `notifications/tools/list_changed` when the gateway reports that a
//! node's tools changed.
//!
//! - **Names.** A tool is listed as `node__tool` (node id, two underscores, tool name): both
//!   parts use MCP's alphabet already, and 32 + 2 + 64 bytes fit MCP's 128. Two pairs can still
//!   meet on one name (`a` + `_b` and `a_` + `b`); the pair that sorts first keeps it and the
//!   other gets `-2` (`-3`, …). Calls are routed through the table built by the last listing,
//!   never by splitting the name.
//! - **Paging.** `tools/list` pages hold [`PAGE_SIZE`] tools. A cursorless request takes a fresh
//!   snapshot from the gateway; its cursors page through that snapshot, so pages never skip or
//!   repeat a tool when nodes come and go in between.
//! - **Results.** A tool's value becomes one text block with its JSON, plus
//!   `structuredContent` when it is an object. Every gateway or tool error (unknown node,
//!   arguments rejected by the schema, timeout, the tool's own failure) is a result with
//!   `isError: true`, so the model sees it; JSON-RPC errors are kept for protocol problems
//!   (`-32602` for an unknown tool name or bad params, `-32601` for unknown methods).
//! - **Concurrency.** Each `tools/list` and `tools/call` runs as its own task: a slow tool
//!   never holds up `ping` or other calls. Writes go through one writer task.
//!
//! ```no_run
//! # async fn bridge() -> std::io::Result<()> {
//! use toolwire_smol::Endpoint;
//! use toolwire_smol::client::{Client, ClientOptions};
//!
//! let gateway = Endpoint::parse("ws://127.0.0.1:7700").map_err(std::io::Error::other)?;
//! let client = Client::connect(&gateway, ClientOptions::default()).await?;
//! toolwire::mcp::serve_stdio(client).await
//! # }
//! ```
//!
//! Built on `serde_json` rather than an MCP SDK: the Rust SDKs (`rmcp`, `rust-mcp-sdk`) run on
//! tokio, and the server side of MCP the bridge needs is small.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;
use smol::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use toolwire_core::frame::Annotations;
use toolwire_smol::client::{Client, ClientCallOptions, ClientEvent, ToolSummary};
use toolwire_smol::gateway::{CallError, Progress};

/// The MCP protocol versions the bridge speaks, newest first. A client asking for one of these
/// gets it; any other request is answered with the first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 50;

/// Separates node and tool in an MCP tool name.
pub const SEPARATOR: &str = "__";

/// MCP's limit on a tool name.
const MAX_NAME: usize = 128;
/// The longest input line accepted (a `tools/call` with large arguments fits).
const MAX_LINE: usize = 8 << 20;
/// Listing snapshots whose cursors stay valid.
const SNAPSHOTS: usize = 8;
/// A burst of tool changes closer than this makes one `list_changed`.
const COALESCE: Duration = Duration::from_millis(50);
/// … but a steady stream of changes is still announced this often.
const COALESCE_MAX: Duration = Duration::from_millis(500);

// JSON-RPC error codes.
const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const METHOD_NOT_FOUND: i32 = -32601;
const INVALID_PARAMS: i32 = -32602;
const INTERNAL_ERROR: i32 = -32603;

/// Options of the bridge.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// How long the gateway waits for a tool; `None` leaves it to the gateway's default.
    pub call_timeout: Option<Duration>,
    /// Tools per `tools/list` page.
    pub page_size: usize,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            call_timeout: None,
            page_size: PAGE_SIZE,
        }
    }
}

/// Serves MCP over stdio for the gateway `client` is connected to, until stdin ends (`Ok`) or
/// the gateway connection is lost (`Err`).
pub async fn serve_stdio(client: Client) -> io::Result<()> {
    serve(
        client,
        smol::Unblock::new(std::io::stdin()),
        smol::Unblock::new(std::io::stdout()),
        McpOptions::default(),
    )
    .await
}

/// Serves MCP over any byte stream pair: newline-delimited JSON-RPC read from `input` and
/// written to `output`. Returns when `input` ends (`Ok`), or when the gateway connection is
/// lost or `output` fails (`Err`).
pub async fn serve<R, W>(client: Client, input: R, output: W, opts: McpOptions) -> io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let events = client.events();
    let (out_tx, out_rx) = bounded::<String>(1024);
    let (line_tx, line_rx) = bounded::<Line>(16);
    let (ctl_tx, ctl_rx) = unbounded::<Control>();
    let bridge = Arc::new(Bridge {
        client,
        opts,
        out: out_tx,
        version: Mutex::new(Version::LATEST),
        initialized: AtomicBool::new(false),
        catalogs: Mutex::new(Catalogs::default()),
    });
    let writer = smol::spawn(write_lines(output, out_rx, ctl_tx.clone()));
    let reader = smol::spawn(read_lines(input, line_tx));
    let watcher = smol::spawn(watch_events(bridge.clone(), events, ctl_tx.clone()));

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
                            let r = bridge.handle(&method, params).await;
                            bridge.send(response(&id, r)).await;
                        }
                        _ => {
                            seq += 1;
                            let (b, ctl, k, s) = (bridge.clone(), ctl_tx.clone(), key.clone(), seq);
                            let task = smol::spawn(async move {
                                let r = b.handle(&method, params).await;
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
                break Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "lost the connection to the gateway",
                ));
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

enum Control {
    Done(String, u64),
    GatewayLost,
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
            // Batch whatever else is ready into one flush.
            while let Ok(more) = lines.try_recv() {
                output.write_all(more.as_bytes()).await?;
                output.write_all(b"\n").await?;
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

async fn watch_events(bridge: Arc<Bridge>, events: Receiver<ClientEvent>, ctl: Sender<Control>) {
    loop {
        match events.recv().await {
            Ok(ClientEvent::ToolsChanged(node)) => {
                tracing::debug!("mcp: tools of {node} changed");
                // A node connecting, then registering, is one change for the MCP client.
                let until = Instant::now() + COALESCE_MAX;
                let mut lost = false;
                loop {
                    let wait = COALESCE.min(until.saturating_duration_since(Instant::now()));
                    let next = async { Some(events.recv().await) }
                        .or(async {
                            smol::Timer::after(wait).await;
                            None
                        })
                        .await;
                    match next {
                        Some(Ok(ClientEvent::ToolsChanged(_))) if Instant::now() < until => {}
                        Some(Ok(ClientEvent::ToolsChanged(_))) | None => break,
                        Some(Ok(ClientEvent::Disconnected)) | Some(Err(_)) => {
                            lost = true;
                            break;
                        }
                    }
                }
                if bridge.initialized.load(Ordering::Relaxed) {
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

/// A negotiated MCP version; later versions add fields to the same messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
}

impl Version {
    const LATEST: Version = Version::V2025_11_25;

    fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "2024-11-05" => Version::V2024_11_05,
            "2025-03-26" => Version::V2025_03_26,
            "2025-06-18" => Version::V2025_06_18,
            "2025-11-25" => Version::V2025_11_25,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Version::V2024_11_05 => "2024-11-05",
            Version::V2025_03_26 => "2025-03-26",
            Version::V2025_06_18 => "2025-06-18",
            Version::V2025_11_25 => "2025-11-25",
        }
    }

    /// Tool annotations and progress messages.
    fn has_annotations(self) -> bool {
        self >= Version::V2025_03_26
    }

    /// `title`, `outputSchema` and `structuredContent`.
    fn has_structured(self) -> bool {
        self >= Version::V2025_06_18
    }
}

/// The version to answer a client that asks for `requested`.
fn negotiate(requested: &str) -> Version {
    Version::parse(requested).unwrap_or(Version::LATEST)
}

struct Bridge {
    client: Client,
    opts: McpOptions,
    out: Sender<String>,
    version: Mutex<Version>,
    initialized: AtomicBool,
    catalogs: Mutex<Catalogs>,
}

/// The last few listing snapshots (cursors point into them); the newest routes calls.
#[derive(Default)]
struct Catalogs {
    next_generation: u64,
    recent: VecDeque<Arc<Catalog>>,
}

/// One snapshot of every node's tools under their MCP names.
struct Catalog {
    generation: u64,
    /// Sorted by (node, tool).
    tools: Vec<Listed>,
    by_name: HashMap<String, usize>,
}

struct Listed {
    name: String,
    summary: ToolSummary,
}

impl Catalog {
    fn new(generation: u64, mut tools: Vec<ToolSummary>) -> Catalog {
        tools.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        tools.dedup_by(|a, b| a.node == b.node && a.name == b.name);
        let pairs: Vec<(&str, &str)> = tools
            .iter()
            .map(|t| (t.node.as_str(), t.name.as_str()))
            .collect();
        let names = qualified_names(&pairs);
        let tools: Vec<Listed> = names
            .into_iter()
            .zip(tools)
            .map(|(name, summary)| Listed { name, summary })
            .collect();
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Catalog {
            generation,
            tools,
            by_name,
        }
    }

    fn find(&self, name: &str) -> Option<&Listed> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }
}

/// MCP names for `(node, tool)` pairs sorted by (node, tool): `node__tool`, with characters
/// outside MCP's alphabet replaced by `_`. A name already taken, by an earlier pair or as any
/// pair's plain name, gets the first free suffix `-2`, `-3`, …
fn qualified_names(pairs: &[(&str, &str)]) -> Vec<String> {
    let plain: Vec<String> = pairs
        .iter()
        .map(|(node, tool)| {
            let mut s: String = format!("{node}{SEPARATOR}{tool}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            // Leave room for a suffix; only reachable past the protocol's own limits.
            s.truncate(MAX_NAME - 8);
            s
        })
        .collect();
    let taken: HashSet<&str> = plain.iter().map(String::as_str).collect();
    let mut owned: HashSet<&str> = HashSet::new();
    let mut extra: Vec<String> = vec![];
    let mut out = Vec::with_capacity(pairs.len());
    for p in &plain {
        if owned.insert(p.as_str()) {
            out.push(p.clone());
            continue;
        }
        let mut n = 2u32;
        let name = loop {
            let candidate = format!("{p}-{n}");
            if !taken.contains(candidate.as_str()) && !extra.contains(&candidate) {
                break candidate;
            }
            n += 1;
        };
        extra.push(name.clone());
        out.push(name);
    }
    out
}

/// A cursor names a snapshot and an offset in it; clients treat it as opaque.
fn encode_cursor(generation: u64, offset: usize) -> String {
    format!("{generation:x}-{offset:x}")
}

fn decode_cursor(s: &str) -> Option<(u64, usize)> {
    let (g, o) = s.split_once('-')?;
    Some((
        u64::from_str_radix(g, 16).ok()?,
        usize::from_str_radix(o, 16).ok()?,
    ))
}

#[derive(Debug, PartialEq)]
struct RpcError {
    code: i32,
    message: String,
}

impl RpcError {
    fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

impl Bridge {
    fn version(&self) -> Version {
        *self.version.lock().unwrap()
    }

    async fn send(&self, msg: Value) {
        let _ = self.out.send(msg.to_string()).await;
    }

    async fn handle(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        match method {
            "initialize" => self.initialize(&params),
            "ping" => Ok(json!({})),
            "tools/list" => self.list_tools(&params).await,
            "tools/call" => self.call_tool(&params).await,
            _ => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        }
    }

    fn initialize(&self, params: &Value) -> Result<Value, RpcError> {
        let asked = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("`protocolVersion` must be a string"))?;
        let version = negotiate(asked);
        *self.version.lock().unwrap() = version;
        let client = params
            .pointer("/clientInfo/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        tracing::info!(
            "mcp: {client} asked for {asked}, speaking {}",
            version.as_str()
        );
        let mut info = json!({"name": "toolwire", "version": env!("CARGO_PKG_VERSION")});
        if version.has_structured() {
            info["title"] = json!("toolwire gateway");
        }
        Ok(json!({
            "protocolVersion": version.as_str(),
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": info,
            "instructions": format!(
                "Tools of the devices and hosts connected to a toolwire gateway. A tool is named \
                 <node>{SEPARATOR}<tool>: the same tool on two nodes is two tools. The list \
                 changes as nodes come and go."
            ),
        }))
    }

    /// A fresh snapshot from the gateway, kept for its cursors.
    async fn refresh(&self) -> Result<Arc<Catalog>, RpcError> {
        let tools = self
            .client
            .tools(None, None)
            .await
            .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("listing tools: {e}")))?;
        let mut c = self.catalogs.lock().unwrap();
        let catalog = Arc::new(Catalog::new(c.next_generation, tools));
        c.next_generation += 1;
        c.recent.push_back(catalog.clone());
        while c.recent.len() > SNAPSHOTS {
            c.recent.pop_front();
        }
        Ok(catalog)
    }

    fn latest(&self) -> Option<Arc<Catalog>> {
        self.catalogs.lock().unwrap().recent.back().cloned()
    }

    async fn list_tools(&self, params: &Value) -> Result<Value, RpcError> {
        let (catalog, offset) = match params.get("cursor") {
            None | Some(Value::Null) => (self.refresh().await?, 0),
            Some(Value::String(s)) => {
                let bad =
                    || RpcError::params("invalid or expired cursor; list again from the start");
                let (generation, offset) = decode_cursor(s).ok_or_else(bad)?;
                let c = self.catalogs.lock().unwrap();
                let catalog = c
                    .recent
                    .iter()
                    .find(|c| c.generation == generation)
                    .cloned()
                    .ok_or_else(bad)?;
                if offset > catalog.tools.len() {
                    return Err(bad());
                }
                (catalog, offset)
            }
            Some(_) => return Err(RpcError::params("`cursor` must be a string")),
        };
        let version = self.version();
        let size = self.opts.page_size.max(1);
        let end = (offset + size).min(catalog.tools.len());
        let tools: Vec<Value> = catalog.tools[offset..end]
            .iter()
            .map(|t| tool_json(t, version))
            .collect();
        let mut r = json!({ "tools": tools });
        if end < catalog.tools.len() {
            r["nextCursor"] = json!(encode_cursor(catalog.generation, end));
        }
        Ok(r)
    }

    /// The node and tool behind an MCP name: from the last listing, or a fresh one (a client
    /// may call a tool it learned of in an earlier session).
    async fn lookup(&self, name: &str) -> Result<(String, String), RpcError> {
        let hit = |c: &Catalog| {
            c.find(name)
                .map(|t| (t.summary.node.clone(), t.summary.name.clone()))
        };
        if let Some(found) = self.latest().as_deref().and_then(hit) {
            return Ok(found);
        }
        hit(&*self.refresh().await?)
            .ok_or_else(|| RpcError::params(format!("Unknown tool: {name}")))
    }

    async fn call_tool(&self, params: &Value) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("`name` must be a string"))?;
        let args = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => return Err(RpcError::params("`arguments` must be an object")),
        };
        let token = params
            .pointer("/_meta/progressToken")
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
            .cloned();
        let (node, tool) = self.lookup(name).await?;
        let version = self.version();
        let (ptx, prx) = match token {
            Some(_) => {
                let (tx, rx) = bounded::<Progress>(64);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let opts = ClientCallOptions {
            timeout: self.opts.call_timeout,
            progress: ptx,
            asks: None,
        };
        let call = self.client.call(&node, &tool, &args, opts);
        // Ends when the call does (the client drops the progress sender with it), so every
        // progress notification goes out before the result.
        let forward = async {
            let (Some(rx), Some(token)) = (prx, token) else {
                return;
            };
            let mut last = None;
            while let Ok(p) = rx.recv().await {
                // MCP: progress must increase with each notification.
                if last.is_some_and(|l| p.progress <= l) {
                    continue;
                }
                last = Some(p.progress);
                self.send(progress_notification(&token, &p, version)).await;
            }
        };
        let (result, ()) = smol::future::zip(call, forward).await;
        if let Err(e) = &result {
            tracing::debug!("mcp: {name}: {e}");
        }
        Ok(tool_result(result, version))
    }
}

/// A tool as MCP lists it, in `version`'s vocabulary.
fn tool_json(t: &Listed, version: Version) -> Value {
    let s = &t.summary;
    let mut input = match &s.input_schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // MCP requires an object schema; arguments are always an object anyway.
    input
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let mut tool = json!({
        "name": t.name,
        "description": s.description,
        "inputSchema": input,
    });
    let title = format!("{} on {}", s.name, s.node);
    if version.has_structured() {
        tool["title"] = json!(title);
        // MCP output schemas describe `structuredContent`, which is always an object.
        if let Some(o) = &s.output_schema
            && o.get("type").and_then(Value::as_str) == Some("object")
        {
            tool["outputSchema"] = o.clone();
        }
    }
    if version.has_annotations() {
        let mut a = json!({ "title": title });
        // Our flags default to false, so all-false means "nothing declared": leave MCP's
        // cautious defaults (not read-only, destructive, not idempotent) in place.
        let h = s.annotations;
        if h != Annotations::NONE {
            a["readOnlyHint"] = json!(h.read_only);
            if !h.read_only {
                a["destructiveHint"] = json!(h.destructive);
            }
            a["idempotentHint"] = json!(h.idempotent);
        }
        tool["annotations"] = a;
    }
    tool
}

/// A `tools/call` result: a tool's value, or any failure as `isError: true`.
fn tool_result(result: Result<Value, CallError>, version: Version) -> Value {
    match result {
        Ok(value) => {
            let mut r = json!({"content": [{"type": "text", "text": value.to_string()}]});
            if version.has_structured() && value.is_object() {
                r["structuredContent"] = value;
            }
            r
        }
        Err(e) => {
            let mut text = e.to_string();
            if let Some(d) = &e.data {
                text.push_str(&format!(" {d}"));
            }
            json!({"content": [{"type": "text", "text": text}], "isError": true})
        }
    }
}

fn progress_notification(token: &Value, p: &Progress, version: Version) -> Value {
    let mut params = json!({"progressToken": token, "progress": p.progress});
    if let Some(t) = p.total {
        params["total"] = json!(t);
    }
    if let (Some(m), true) = (&p.message, version.has_annotations()) {
        params["message"] = json!(m);
    }
    notification("notifications/progress", Some(params))
}

fn notification(method: &str, params: Option<Value>) -> Value {
    let mut n = json!({"jsonrpc": "2.0", "method": method});
    if let Some(p) = params {
        n["params"] = p;
    }
    n
}

fn response(id: &Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => error_response(id, e.code, &e.message),
    }
}

fn error_response(id: &Value, code: i32, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// One line from the client, sorted.
#[derive(Debug, PartialEq)]
enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to a request of ours (the bridge sends none), or a notification whose params
    /// are not an object: ignored.
    Ignored,
    /// Answer with this error.
    Invalid {
        id: Value,
        code: i32,
        message: String,
    },
}

fn parse_message(line: &[u8]) -> Incoming {
    let invalid = |id: Value, code, message: &str| Incoming::Invalid {
        id,
        code,
        message: message.to_owned(),
    };
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return invalid(Value::Null, PARSE_ERROR, &format!("parse error: {e}")),
    };
    let mut obj = match v {
        Value::Object(o) => o,
        Value::Array(_) => {
            return invalid(
                Value::Null,
                INVALID_REQUEST,
                "JSON-RPC batches are not supported",
            );
        }
        _ => return invalid(Value::Null, INVALID_REQUEST, "not a JSON-RPC message"),
    };
    // An id we can echo: a string or an integer (MCP forbids null).
    let id = match obj.remove("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(id @ Value::Number(_)) if id.is_i64() || id.is_u64() => Some(id),
        Some(_) => {
            return invalid(
                Value::Null,
                INVALID_REQUEST,
                "`id` must be a string or an integer",
            );
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(reply_id, INVALID_REQUEST, "`jsonrpc` must be \"2.0\"");
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return invalid(reply_id, INVALID_REQUEST, "`method` must be a string"),
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            return Incoming::Ignored;
        }
        None => return invalid(reply_id, INVALID_REQUEST, "no `method`"),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return match id {
                Some(id) => invalid(id, INVALID_PARAMS, "`params` must be an object"),
                None => Incoming::Ignored,
            };
        }
    };
    match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(node: &str, name: &str, annotations: Annotations) -> ToolSummary {
        ToolSummary {
            node: node.into(),
            name: name.into(),
            description: "d".into(),
            input_schema: json!({"properties": {}}),
            output_schema: Some(json!({"type": "object"})),
            annotations,
        }
    }

    #[test]
    fn versions_are_echoed_or_the_latest() {
        for v in PROTOCOL_VERSIONS {
            assert_eq!(negotiate(v).as_str(), v);
        }
        assert_eq!(negotiate("2099-01-01").as_str(), PROTOCOL_VERSIONS[0]);
        assert_eq!(negotiate("").as_str(), PROTOCOL_VERSIONS[0]);
    }

    #[test]
    fn names_are_node_tool_and_collisions_get_suffixes() {
        let pairs = [
            ("a", "_b"),
            ("a", "x"),
            ("a_", "b"),
            ("a_", "b-2"),
            ("b", "y"),
        ];
        assert_eq!(
            qualified_names(&pairs),
            ["a___b", "a__x", "a___b-3", "a___b-2", "b__y"],
            "the first pair keeps the name; a suffix never takes another pair's plain name"
        );
        let long = "n".repeat(200);
        let names = qualified_names(&[(&long, "t"), (&long, "u")]);
        assert!(names.iter().all(|n| n.len() <= MAX_NAME), "{names:?}");
        assert_ne!(names[0], names[1]);
        assert_eq!(qualified_names(&[("n", "t o")]), ["n__t_o"]);
    }

    #[test]
    fn catalog_is_sorted_and_routes_by_name() {
        let c = Catalog::new(
            3,
            vec![
                summary("b", "t", Annotations::NONE),
                summary("a", "t", Annotations::NONE),
                summary("a", "t", Annotations::NONE),
            ],
        );
        let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a__t", "b__t"]);
        assert_eq!(c.find("b__t").unwrap().summary.node, "b");
        assert!(c.find("b.t").is_none());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(17, 50)), Some((17, 50)));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("1-zz"), None);
    }

    #[test]
    fn tools_follow_the_negotiated_version() {
        let ro = Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
        };
        let t = Listed {
            name: "dev__read".into(),
            summary: summary("dev", "read", ro),
        };
        let j = tool_json(&t, Version::V2025_11_25);
        assert_eq!(j["name"], "dev__read");
        assert_eq!(j["title"], "read on dev");
        assert_eq!(j["inputSchema"]["type"], "object");
        assert_eq!(j["outputSchema"], json!({"type": "object"}));
        assert_eq!(
            j["annotations"],
            json!({"title": "read on dev", "readOnlyHint": true, "idempotentHint": true})
        );
        let j = tool_json(&t, Version::V2025_03_26);
        assert!(j.get("title").is_none() && j.get("outputSchema").is_none());
        assert_eq!(j["annotations"]["readOnlyHint"], true);
        let j = tool_json(&t, Version::V2024_11_05);
        assert!(j.get("annotations").is_none());

        let w = Annotations {
            read_only: false,
            destructive: true,
            idempotent: false,
        };
        let t = Listed {
            name: "dev__wipe".into(),
            summary: summary("dev", "wipe", w),
        };
        let a = &tool_json(&t, Version::LATEST)["annotations"];
        assert_eq!(a["readOnlyHint"], false);
        assert_eq!(a["destructiveHint"], true);
        let t = Listed {
            name: "dev__x".into(),
            summary: summary("dev", "x", Annotations::NONE),
        };
        let a = &tool_json(&t, Version::LATEST)["annotations"];
        assert!(a.get("destructiveHint").is_none() && a.get("readOnlyHint").is_none());
    }

    #[test]
    fn results_and_failures() {
        let r = tool_result(Ok(json!({"a": 1})), Version::LATEST);
        assert_eq!(r["content"][0]["text"], r#"{"a":1}"#);
        assert_eq!(r["structuredContent"], json!({"a": 1}));
        assert!(r.get("isError").is_none());
        let r = tool_result(Ok(json!([1])), Version::LATEST);
        assert!(r.get("structuredContent").is_none());
        let r = tool_result(Ok(json!({"a": 1})), Version::V2025_03_26);
        assert!(r.get("structuredContent").is_none());
        let mut e = CallError::new(toolwire_core::ErrorCode::InvalidArguments, "bad");
        e.data = Some(json!({"path": "/n"}));
        let r = tool_result(Err(e), Version::LATEST);
        assert_eq!(r["isError"], true);
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("-32002") && text.contains("/n"), "{text}");
    }

    #[test]
    fn messages_are_sorted_and_checked() {
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#),
            Incoming::Request {
                id: json!("x"),
                method: "ping".into(),
                params: json!({})
            }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Incoming::Notification {
                method: "notifications/initialized".into(),
                params: json!({})
            }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Incoming::Ignored
        );
        let code = |line: &[u8]| match parse_message(line) {
            Incoming::Invalid { id, code, .. } => (id, code),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{nope"), (Value::Null, PARSE_ERROR));
        assert_eq!(code(b"[]"), (Value::Null, INVALID_REQUEST));
        assert_eq!(code(b"7"), (Value::Null, INVALID_REQUEST));
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
            (json!(4), INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}"#),
            (json!(5), INVALID_PARAMS)
        );
    }

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
