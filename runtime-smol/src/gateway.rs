//! The gateway: accepts nodes and controllers over WebSocket and TCP (TLS optional), keeps the
//! tool registry, and calls tools.
//!
//! Each connection is one task driving a `toolwire_core::gateway::Connection`: frames in, frames
//! out (batched, one flush), one timer at the core's `poll_timeout()`, events forwarded. What
//! spans connections lives here: the registry of nodes and tools, argument validation against
//! JSON Schema, ACLs, rate limits and routing a controller's call to a node.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_rustls::rustls::{ClientConfig, ServerConfig};
use serde_json::Value;
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;
use smol::net::TcpListener;
use toolwire_core::frame::{
    Annotations, AskKind, GoodbyeReason, ListNodes, ListTools, NodeInfo, NodesPage, Notification,
    Progress as ProgressFrame, RejectReason, Request, Resolved, Role, ToolDef, ToolEntry,
    ToolsPage,
};
use toolwire_core::gateway::{
    self as core_gw, AskId, Auth, CallId, CloseReason, Connection, Event,
    GatewayConfig as CoreConfig, ct_eq,
};
use toolwire_core::{ErrorCode, ErrorObject, Id, Json, List, OwnedId, Str};

use crate::clock::Clock;
use crate::transport::{self, Endpoint, FrameReader, FrameWriter, Framing, Input};

/// Calls pending per node connection, at most.
const MAX_PENDING: usize = 256;
/// Tools per node, at most.
const MAX_TOOLS: usize = 256;

type CoreConn = Connection<'static, MAX_PENDING, MAX_TOOLS>;

/// What a token may do.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    /// Patterns of tools the token may call: `node/tool` or `tool` (any node), `*` matching any
    /// run of characters. Empty: every tool.
    pub allow: Vec<String>,
    /// Patterns of tools the token may not call (checked after `allow`).
    pub deny: Vec<String>,
}

impl Acl {
    /// True if `node/tool` may be called.
    pub fn permits(&self, node: &str, tool: &str) -> bool {
        let matches = |p: &String| match p.split_once('/') {
            Some((n, t)) => glob(n, node) && glob(t, tool),
            None => glob(p, tool),
        };
        (self.allow.is_empty() || self.allow.iter().any(matches)) && !self.deny.iter().any(matches)
    }
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

/// A token the gateway accepts, and what it allows.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// The secret.
    pub token: String,
    /// May connect as a node.
    pub node: bool,
    /// May connect as a controller.
    pub controller: bool,
    /// Tools a controller with this token may call.
    pub acl: Acl,
}

impl TokenSpec {
    /// A token for every role and every tool.
    pub fn any(token: impl Into<String>) -> Self {
        TokenSpec {
            token: token.into(),
            node: true,
            controller: true,
            acl: Acl::default(),
        }
    }
}

/// Calls per second a node accepts (token bucket).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed in a burst.
    pub burst: u32,
}

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Name sent in the welcome.
    pub name: String,
    /// Accepted tokens. Empty: no authentication, allowed only on loopback addresses unless
    /// `allow_open_public` is set.
    pub tokens: Vec<TokenSpec>,
    /// Allow listening on a non-loopback address without tokens.
    pub allow_open_public: bool,
    /// Largest frame accepted.
    pub max_frame: u32,
    /// Calls in flight per node.
    pub max_in_flight: u16,
    /// Ping interval (a peer silent for three is gone).
    pub heartbeat: Duration,
    /// Time from connect to hello.
    pub handshake_timeout: Duration,
    /// Per-node rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Timeout of calls made without one.
    pub default_timeout: Duration,
    /// Connections at once, at most (a flood beyond is closed at accept).
    pub max_connections: usize,
    /// Encodings accepted.
    pub encodings: toolwire_core::frame::Encodings,
    /// Encoding chosen when a peer accepts both.
    pub prefer: toolwire_core::Encoding,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            name: "toolwire".into(),
            tokens: vec![],
            allow_open_public: false,
            max_frame: 64 * 1024,
            max_in_flight: 32,
            heartbeat: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            rate_limit: None,
            default_timeout: Duration::from_secs(30),
            max_connections: 1024,
            encodings: toolwire_core::frame::Encodings::BOTH,
            prefer: toolwire_core::Encoding::Postcard,
        }
    }
}

/// An error from a call: a protocol [`ErrorCode`] or a tool's own code, with a message.
#[derive(Clone, Debug, PartialEq)]
pub struct CallError {
    /// The code.
    pub code: i32,
    /// One line for humans.
    pub message: String,
    /// Details.
    pub data: Option<Value>,
}

impl CallError {
    /// An error with a known code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CallError {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }

    /// The known code, if it is one.
    pub fn known(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    fn from_object(e: &ErrorObject<'_>) -> Self {
        CallError {
            code: e.code,
            message: e.message.to_string(),
            data: e
                .data
                .and_then(|d| serde_json::from_slice(d.as_bytes()).ok()),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.known() {
            Some(c) => write!(f, "{} ({}): {}", c.message(), self.code, self.message),
            None => write!(f, "error {}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for CallError {}

/// Progress of a running call.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Work done.
    pub progress: u64,
    /// Total work.
    pub total: Option<u64>,
    /// Status text.
    pub message: Option<String>,
    /// Partial output.
    pub partial: Option<Value>,
}

/// A question from a running tool. Answer it with [`AskRequest::answer`] or
/// [`AskRequest::decline`]; dropping it declines.
#[derive(Debug)]
pub struct AskRequest {
    /// Permission (answer `true`/`false`) or input.
    pub kind: AskKind,
    /// The question.
    pub prompt: String,
    /// Schema of the expected answer.
    pub schema: Option<Value>,
    reply: Sender<Result<Value, CallError>>,
}

impl AskRequest {
    /// Answers.
    pub fn answer(self, value: Value) {
        let _ = self.reply.try_send(Ok(value));
    }
    /// Declines (`-32013`).
    pub fn decline(self, why: &str) {
        let _ = self
            .reply
            .try_send(Err(CallError::new(ErrorCode::AskDeclined, why)));
    }
}

/// Makes an [`AskRequest`] whose answer goes to `reply` (for runtimes that relay asks).
pub(crate) fn ask_request(
    kind: AskKind,
    prompt: String,
    schema: Option<Value>,
    reply: Sender<Result<Value, CallError>>,
) -> AskRequest {
    AskRequest {
        kind,
        prompt,
        schema,
        reply,
    }
}

/// Options of one call.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Time to wait (the gateway's default if `None`).
    pub timeout: Option<Duration>,
    /// Receives progress reports.
    pub progress: Option<Sender<Progress>>,
    /// Receives the tool's questions; without it they are declined.
    pub asks: Option<Sender<AskRequest>>,
    /// The token the call is made under (its ACL applies); `None`: the application itself.
    pub principal: Option<Arc<TokenSpec>>,
}

/// A node as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSummary {
    /// Node id.
    pub id: String,
    /// Tools registered.
    pub tools: usize,
    /// Calls in flight.
    pub in_flight: usize,
    /// The encoding agreed with it.
    pub encoding: toolwire_core::Encoding,
}

/// A registered tool.
#[derive(Debug)]
pub struct ToolInfo {
    /// The node offering it.
    pub node: String,
    /// Tool name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// JSON Schema of the result.
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    pub annotations: Annotations,
    input_text: String,
    output_text: Option<String>,
    validator: jsonschema::Validator,
}

/// Something that happened, for observers ([`Gateway::events`]).
#[derive(Clone, Debug, PartialEq)]
pub enum GatewayEvent {
    /// A node finished its handshake.
    NodeConnected(String),
    /// A node's connection ended.
    NodeDisconnected(String),
    /// A node's tools changed.
    ToolsChanged(String),
    /// A call ended.
    CallFinished {
        /// Node.
        node: String,
        /// Tool.
        tool: String,
        /// From dispatch to completion.
        duration: Duration,
        /// `Ok` or the error code.
        outcome: Result<(), i32>,
    },
}

struct TokenBucket {
    tokens: f64,
    last: std::time::Instant,
}

struct NodeEntry {
    conn: u64,
    encoding: toolwire_core::Encoding,
    cmd: Sender<Cmd>,
    tools: Vec<Arc<ToolInfo>>,
    in_flight: Arc<AtomicUsize>,
    bucket: TokenBucket,
}

struct Inner {
    cfg: GatewayConfig,
    name: &'static str,
    clock: Clock,
    nodes: Mutex<BTreeMap<String, NodeEntry>>,
    next_conn: AtomicU64,
    next_key: AtomicU64,
    connections: AtomicUsize,
    subscribers: Mutex<Vec<Sender<GatewayEvent>>>,
    controllers: Mutex<HashMap<u64, Sender<Cmd>>>,
}

/// The gateway. Cheap to clone; every clone is the same gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

/// A listening socket; dropping it stops accepting (connections already made go on).
pub struct Listener {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    task: Task<()>,
}

impl Listener {
    /// Stops accepting and waits until the socket is closed (dropping a `Listener` closes it
    /// soon, but not before the next connection could still be accepted).
    pub async fn close(self) {
        self.task.cancel().await;
    }
}

enum Cmd {
    Call {
        key: u64,
        tool: String,
        args: String,
        timeout: Duration,
        waiter: Waiter,
    },
    Cancel {
        key: u64,
    },
    Answer {
        ask: AskId,
        answer: Result<String, CallError>,
    },
    ControllerReply {
        key: String,
        id: OwnedId,
        result: Result<String, CallError>,
    },
    ControllerProgress {
        id: OwnedId,
        progress: Progress,
    },
    ForwardAsk {
        call: OwnedId,
        kind: AskKind,
        prompt: String,
        schema: Option<String>,
        reply: Sender<Result<Value, CallError>>,
    },
    Shutdown(GoodbyeReason),
    ToolsChanged(String),
}

struct Waiter {
    key: u64,
    tool: String,
    started: std::time::Instant,
    done: Sender<Result<String, CallError>>,
    progress: Option<Sender<Progress>>,
    asks: Option<Sender<AskRequest>>,
}

/// Cancels the call on the node when the caller's future is dropped before completion.
struct CancelOnDrop {
    key: u64,
    cmd: Sender<Cmd>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.cmd.try_send(Cmd::Cancel { key: self.key });
        }
    }
}

impl Gateway {
    /// A gateway with no listener yet.
    pub fn new(cfg: GatewayConfig) -> Self {
        // The core borrows the name for a connection's lifetime; one small leak per gateway.
        let name: &'static str = Box::leak(cfg.name.clone().into_boxed_str());
        Gateway {
            inner: Arc::new(Inner {
                cfg,
                name,
                clock: Clock::new(),
                nodes: Mutex::new(BTreeMap::new()),
                next_conn: AtomicU64::new(1),
                next_key: AtomicU64::new(1),
                connections: AtomicUsize::new(0),
                subscribers: Mutex::new(vec![]),
                controllers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.cfg
    }

    /// Listens on `endpoint` (`ws://` or `tcp://` with an address to bind; `wss://`/`tls://`
    /// need `tls`). Refuses a non-loopback address without tokens unless `allow_open_public`.
    pub async fn listen(
        &self,
        endpoint: &Endpoint,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<Listener> {
        if endpoint.tls && tls.is_none() {
            return Err(io::Error::other(format!(
                "{}: TLS endpoint but no certificate given",
                endpoint.url()
            )));
        }
        let listener = TcpListener::bind(&endpoint.authority).await?;
        let addr = listener.local_addr()?;
        if !transport::is_loopback(&addr)
            && self.inner.cfg.tokens.is_empty()
            && !self.inner.cfg.allow_open_public
        {
            return Err(io::Error::other(format!(
                "refusing to listen on {addr} without a token: set one (--token), or allow it explicitly"
            )));
        }
        let framing = endpoint.framing;
        let tls = if endpoint.tls { tls } else { None };
        let gw = self.clone();
        let task = smol::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        smol::Timer::after(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if gw.inner.connections.load(Ordering::Relaxed) >= gw.inner.cfg.max_connections {
                    tracing::warn!(
                        "connection from {peer} refused: {} connections open",
                        gw.inner.cfg.max_connections
                    );
                    drop(tcp);
                    continue;
                }
                let gw = gw.clone();
                let tls = tls.clone();
                smol::spawn(async move {
                    let setup = async {
                        let io = transport::accept_io(tcp, tls.as_ref()).await?;
                        match framing {
                            Framing::Stream => {
                                Ok(transport::stream(io, gw.inner.cfg.max_frame as usize))
                            }
                            Framing::WebSocket => {
                                transport::ws_accept(io, gw.inner.cfg.max_frame as usize).await
                            }
                        }
                    };
                    let timeout = gw.inner.cfg.handshake_timeout;
                    let r = setup
                        .or(async {
                            smol::Timer::after(timeout).await;
                            Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "TLS/WebSocket handshake timed out",
                            ))
                        })
                        .await;
                    match r {
                        Ok((reader, writer)) => {
                            gw.run_connection(reader, writer, peer.to_string()).await
                        }
                        Err(e) => tracing::debug!("{peer}: {e}"),
                    }
                })
                .detach();
            }
        });
        Ok(Listener { addr, task })
    }

    /// Dials a node that listens (a device, a serial line bridged to TCP) and serves it until
    /// the connection ends. Returns once connected; the task runs the connection.
    pub async fn dial(
        &self,
        endpoint: &Endpoint,
        tls: Option<Arc<ClientConfig>>,
    ) -> io::Result<Task<()>> {
        let (reader, writer) =
            transport::connect(endpoint, tls, self.inner.cfg.max_frame as usize).await?;
        let gw = self.clone();
        let peer = endpoint.url();
        Ok(smol::spawn(async move {
            gw.run_connection(reader, writer, peer).await
        }))
    }

    /// Subscribes to events. Slow subscribers lose events rather than slow the gateway down
    /// (the channel holds 1024).
    pub fn events(&self) -> Receiver<GatewayEvent> {
        let (tx, rx) = bounded(1024);
        self.inner.subscribers.lock().unwrap().push(tx);
        rx
    }

    /// Connected nodes, by id.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.inner
            .nodes
            .lock()
            .unwrap()
            .iter()
            .map(|(id, e)| NodeSummary {
                id: id.clone(),
                tools: e.tools.len(),
                in_flight: e.in_flight.load(Ordering::Relaxed),
                encoding: e.encoding,
            })
            .collect()
    }

    /// Registered tools, by node then name, optionally only those whose name starts with
    /// `prefix` or of one node.
    pub fn tools(&self, prefix: Option<&str>, node: Option<&str>) -> Vec<Arc<ToolInfo>> {
        let nodes = self.inner.nodes.lock().unwrap();
        let mut out: Vec<Arc<ToolInfo>> = nodes
            .iter()
            .filter(|(id, _)| node.is_none_or(|n| n == id.as_str()))
            .flat_map(|(_, e)| e.tools.iter().cloned())
            .filter(|t| prefix.is_none_or(|p| t.name.starts_with(p)))
            .collect();
        out.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        out
    }

    /// Nodes offering `tool`.
    pub fn resolve(&self, tool: &str) -> Vec<String> {
        let nodes = self.inner.nodes.lock().unwrap();
        nodes
            .iter()
            .filter(|(_, e)| e.tools.iter().any(|t| t.name == tool))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits until `node` is connected with at least one tool, up to `timeout`.
    pub async fn wait_for_node(&self, node: &str, timeout: Duration) -> bool {
        let events = self.events();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.nodes().iter().any(|n| n.id == node && n.tools > 0) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = events
                .recv()
                .or(async {
                    smol::Timer::after(left).await;
                    Err(smol::channel::RecvError)
                })
                .await;
        }
    }

    /// Calls `tool` on `node` with `args` (a JSON object). The arguments are checked against
    /// the tool's schema first. Dropping the returned future before it completes cancels the
    /// call on the node.
    pub async fn call(
        &self,
        node: &str,
        tool: &str,
        args: &Value,
        opts: CallOptions,
    ) -> Result<Value, CallError> {
        let text = serde_json::to_string(args)
            .map_err(|e| CallError::new(ErrorCode::InvalidParams, e.to_string()))?;
        let raw = self.call_raw(node, tool, &text, opts).await?;
        serde_json::from_str(&raw)
            .map_err(|e| CallError::new(ErrorCode::InternalError, e.to_string()))
    }

    /// [`Gateway::call`] with arguments and result as JSON text.
    pub async fn call_raw(
        &self,
        node: &str,
        tool: &str,
        args: &str,
        opts: CallOptions,
    ) -> Result<String, CallError> {
        let args_value: Value = serde_json::from_str(args).map_err(|e| {
            CallError::new(
                ErrorCode::InvalidParams,
                format!("arguments are not JSON: {e}"),
            )
        })?;
        if !args_value.is_object() {
            return Err(CallError::new(
                ErrorCode::InvalidParams,
                "arguments must be a JSON object",
            ));
        }
        if let Some(p) = &opts.principal
            && !p.acl.permits(node, tool)
        {
            return Err(CallError::new(
                ErrorCode::Unauthorized,
                format!("this token may not call {node}/{tool}"),
            ));
        }
        let (cmd, info) = {
            let mut nodes = self.inner.nodes.lock().unwrap();
            let entry = nodes.get_mut(node).ok_or_else(|| {
                CallError::new(
                    ErrorCode::NodeNotFound,
                    format!("no node `{node}` is connected"),
                )
            })?;
            let info = entry
                .tools
                .iter()
                .find(|t| t.name == tool)
                .cloned()
                .ok_or_else(|| {
                    CallError::new(
                        ErrorCode::ToolNotFound,
                        format!("node `{node}` has no tool `{tool}`"),
                    )
                })?;
            if let Some(rl) = self.inner.cfg.rate_limit {
                let now = std::time::Instant::now();
                let b = &mut entry.bucket;
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rl.per_second)
                    .min(f64::from(rl.burst));
                b.last = now;
                if b.tokens < 1.0 {
                    return Err(CallError::new(
                        ErrorCode::RateLimited,
                        format!("node `{node}` is over its rate limit"),
                    ));
                }
                b.tokens -= 1.0;
            }
            (entry.cmd.clone(), info)
        };
        if let Err(first) = info.validator.validate(&args_value) {
            let data = serde_json::json!({ "path": first.instance_path().to_string() });
            let mut e = CallError::new(
                ErrorCode::InvalidArguments,
                format!("arguments rejected by the schema: {first}"),
            );
            e.data = Some(data);
            return Err(e);
        }
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = bounded(1);
        let waiter = Waiter {
            key,
            tool: tool.to_owned(),
            started: std::time::Instant::now(),
            done: done_tx,
            progress: opts.progress,
            asks: opts.asks,
        };
        let timeout = opts.timeout.unwrap_or(self.inner.cfg.default_timeout);
        cmd.send(Cmd::Call {
            key,
            tool: tool.to_owned(),
            args: args.to_owned(),
            timeout,
            waiter,
        })
        .await
        .map_err(|_| {
            CallError::new(
                ErrorCode::Disconnected,
                format!("node `{node}` disconnected"),
            )
        })?;
        let mut guard = CancelOnDrop {
            key,
            cmd,
            armed: true,
        };
        let r = done_rx.recv().await.unwrap_or_else(|_| {
            Err(CallError::new(
                ErrorCode::Disconnected,
                format!("node `{node}` disconnected"),
            ))
        });
        guard.armed = false;
        r
    }

    /// Closes every node and controller connection with a goodbye. (Listeners keep
    /// accepting until dropped or [`Listener::close`]d.)
    pub fn shutdown(&self) {
        for e in self.inner.nodes.lock().unwrap().values() {
            let _ = e.cmd.try_send(Cmd::Shutdown(GoodbyeReason::Shutdown));
        }
        for c in self.inner.controllers.lock().unwrap().values() {
            let _ = c.try_send(Cmd::Shutdown(GoodbyeReason::Shutdown));
        }
    }

    fn emit(&self, ev: GatewayEvent) {
        if let GatewayEvent::NodeConnected(n)
        | GatewayEvent::NodeDisconnected(n)
        | GatewayEvent::ToolsChanged(n) = &ev
        {
            for c in self.inner.controllers.lock().unwrap().values() {
                let _ = c.try_send(Cmd::ToolsChanged(n.clone()));
            }
        }
        let mut subs = self.inner.subscribers.lock().unwrap();
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            let _ = s.try_send(ev.clone());
        }
    }

    async fn run_connection(self, reader: FrameReader, writer: FrameWriter, peer: String) {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        let conn_id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (cmd_tx, cmd_rx) = unbounded();
        let (reader_task, frames_rx) = transport::spawn_reader(reader);
        let cfg = &self.inner.cfg;
        let core_cfg = CoreConfig {
            name: self.inner.name,
            auth: Auth::Deferred,
            encodings: cfg.encodings,
            prefer: cfg.prefer,
            max_frame: cfg.max_frame,
            max_in_flight: cfg.max_in_flight,
            heartbeat: toolwire_core::Duration::from_millis(cfg.heartbeat.as_millis() as u64),
            handshake_timeout: toolwire_core::Duration::from_millis(
                cfg.handshake_timeout.as_millis() as u64,
            ),
            limits: toolwire_core::Limits::default(),
        };
        let now = self.inner.clock.now();
        let mut d = Driver {
            gw: self.clone(),
            conn: CoreConn::new(core_cfg, now),
            conn_id,
            peer,
            writer,
            out: vec![],
            scratch: vec![0u8; cfg.max_frame as usize],
            reply: vec![0u8; cfg.max_frame as usize],
            cmd_tx,
            node_id: None,
            principal: None,
            waiters: HashMap::new(),
            keys: HashMap::new(),
            controller_calls: HashMap::new(),
            forwarded_asks: HashMap::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        d.run(frames_rx, cmd_rx).await;
        drop(reader_task);
        self.inner.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Driver {
    gw: Gateway,
    conn: CoreConn,
    conn_id: u64,
    peer: String,
    writer: FrameWriter,
    out: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    reply: Vec<u8>,
    cmd_tx: Sender<Cmd>,
    node_id: Option<String>,
    principal: Option<Arc<TokenSpec>>,
    waiters: HashMap<u64, Waiter>,
    keys: HashMap<u64, CallId>,
    controller_calls: HashMap<String, Task<()>>,
    forwarded_asks: HashMap<u64, Sender<Result<Value, CallError>>>,
    in_flight: Arc<AtomicUsize>,
}

fn id_key(id: &Id<'_>) -> String {
    match id {
        Id::Num(n) => format!("n{n}"),
        Id::Str(s) => format!("s{}", s.raw()),
        Id::Null => "null".into(),
    }
}

impl Driver {
    async fn run(&mut self, frames: Receiver<Option<Vec<u8>>>, cmds: Receiver<Cmd>) {
        loop {
            while let Some(ev) = self.conn.poll_event() {
                self.on_event(ev);
            }
            self.drain_core();
            if !self.out.is_empty() {
                let frames_out = std::mem::take(&mut self.out);
                if let Err(e) = self.writer.send(&frames_out).await {
                    tracing::debug!("{}: write failed: {e}", self.peer);
                    self.conn.transport_closed();
                    continue;
                }
            }
            if self.conn.state() == core_gw::State::Closed {
                break;
            }
            let deadline = self
                .conn
                .poll_timeout()
                .map(|t| self.gw.inner.clock.instant(t));
            let input = transport::next_input(&frames, &cmds, deadline).await;
            let now = self.gw.inner.clock.now();
            match input {
                Input::Frame(Some(f)) => self.on_frame(now, &f),
                Input::Frame(None) => self.conn.transport_closed(),
                Input::Cmd(c) => self.on_cmd(now, c),
                // The connection keeps a sender itself: never happens.
                Input::NoMoreCmds => {}
                Input::Timer => self.conn.handle_timeout(now),
            }
        }
        self.writer.close().await;
        self.cleanup();
    }

    fn drain_core(&mut self) {
        while let Some(r) = self.conn.poll_transmit(&mut self.scratch) {
            match r {
                Ok(n) => self.out.push(self.scratch[..n].to_vec()),
                Err(e) => tracing::warn!("{}: cannot encode a control frame: {e}", self.peer),
            }
        }
    }

    fn push(&mut self, r: Result<usize, toolwire_core::EncodeError>) {
        match r {
            Ok(n) => self.out.push(self.scratch[..n].to_vec()),
            Err(e) => tracing::warn!("{}: cannot encode: {e}", self.peer),
        }
    }

    fn cleanup(&mut self) {
        for (_, w) in self.waiters.drain() {
            let _ = w.done.try_send(Err(CallError::new(
                ErrorCode::Disconnected,
                "node disconnected",
            )));
        }
        self.controller_calls.clear();
        self.gw
            .inner
            .controllers
            .lock()
            .unwrap()
            .remove(&self.conn_id);
        if let Some(id) = self.node_id.take() {
            let removed = {
                let mut nodes = self.gw.inner.nodes.lock().unwrap();
                match nodes.get(&id) {
                    Some(e) if e.conn == self.conn_id => {
                        nodes.remove(&id);
                        true
                    }
                    _ => false,
                }
            };
            if removed {
                tracing::info!("node {id} disconnected");
                self.gw.emit(GatewayEvent::NodeDisconnected(id));
            }
        }
    }

    fn on_frame(&mut self, now: toolwire_core::Instant, frame: &[u8]) {
        let mut compiled: Vec<(String, jsonschema::Validator)> = vec![];
        let mut check = |t: &ToolDef<'_>| -> Result<(), RejectReason> {
            let schema: Value = serde_json::from_slice(t.input_schema.as_bytes())
                .map_err(|_| RejectReason::BadSchema)?;
            let v = jsonschema::validator_for(&schema).map_err(|_| RejectReason::BadSchema)?;
            compiled.push((t.name.to_string(), v));
            Ok(())
        };
        let h = self
            .conn
            .handle_frame_checked(now, frame, &mut self.reply, &mut check);
        if h.reply > 0 {
            self.out.push(self.reply[..h.reply].to_vec());
        }
        if let Some(e) = h.error {
            tracing::debug!("{}: bad frame: {e}", self.peer);
        }
        let Some(ev) = h.event else { return };
        match ev {
            Event::Hello { role, id, token } => self.on_hello(now, role, id, token),
            Event::Registered { tools, accepted } => {
                let Some(node) = self.node_id.clone() else {
                    return;
                };
                let mut added = vec![];
                for (i, t) in tools.iter().enumerate() {
                    if !accepted.contains(i) {
                        continue;
                    }
                    let name = t.name.to_string();
                    let Some(pos) = compiled.iter().position(|(n, _)| *n == name) else {
                        continue;
                    };
                    let (_, validator) = compiled.swap_remove(pos);
                    let input_text = t.input_schema.as_str().to_owned();
                    let output_text = t.output_schema.map(|o| o.as_str().to_owned());
                    added.push(Arc::new(ToolInfo {
                        node: node.clone(),
                        name,
                        description: t.description.to_string(),
                        input_schema: serde_json::from_str(&input_text).unwrap_or(Value::Null),
                        output_schema: output_text
                            .as_deref()
                            .and_then(|o| serde_json::from_str(o).ok()),
                        annotations: t.annotations,
                        input_text,
                        output_text,
                        validator,
                    }));
                }
                if let Some(e) = self.gw.inner.nodes.lock().unwrap().get_mut(&node)
                    && e.conn == self.conn_id
                {
                    e.tools.extend(added);
                }
                self.gw.emit(GatewayEvent::ToolsChanged(node));
            }
            Event::Unregistered { names } => {
                let Some(node) = self.node_id.clone() else {
                    return;
                };
                if let Some(e) = self.gw.inner.nodes.lock().unwrap().get_mut(&node) {
                    e.tools.retain(|t| !names.iter().any(|n| n.eq_str(&t.name)));
                }
                self.gw.emit(GatewayEvent::ToolsChanged(node));
            }
            Event::CallDone { call, result } => {
                let r = result
                    .map(|j| j.as_str().to_owned())
                    .map_err(|e| CallError::from_object(&e));
                self.finish(call, r);
            }
            Event::Progress {
                call,
                progress,
                total,
                message,
                partial,
            } => {
                if let Some(tx) = self.waiters.get(&call.0).and_then(|w| w.progress.as_ref()) {
                    let _ = tx.try_send(Progress {
                        progress,
                        total,
                        message: message.map(|m| m.to_string()),
                        partial: partial.and_then(|p| serde_json::from_slice(p.as_bytes()).ok()),
                    });
                }
            }
            Event::Ask {
                ask,
                call,
                kind,
                prompt,
                schema,
            } => {
                let asks = self.waiters.get(&call.0).and_then(|w| w.asks.clone());
                match asks {
                    Some(tx) => {
                        let (rtx, rrx) = bounded(1);
                        let req = AskRequest {
                            kind,
                            prompt: prompt.to_string(),
                            schema: schema.and_then(|s| serde_json::from_slice(s.as_bytes()).ok()),
                            reply: rtx,
                        };
                        let cmd = self.cmd_tx.clone();
                        smol::spawn(async move {
                            let answer = if tx.send(req).await.is_ok() {
                                rrx.recv().await.unwrap_or_else(|_| {
                                    Err(CallError::new(ErrorCode::AskDeclined, "nobody answered"))
                                })
                            } else {
                                Err(CallError::new(ErrorCode::AskDeclined, "nobody to ask"))
                            };
                            let answer = answer.map(|v| v.to_string());
                            let _ = cmd.send(Cmd::Answer { ask, answer }).await;
                        })
                        .detach();
                    }
                    None => {
                        let e = ErrorObject::new(
                            ErrorCode::AskDeclined,
                            "the caller takes no questions",
                        );
                        let r = self.conn.answer(&ask, Err(e), &mut self.scratch);
                        self.push(r);
                    }
                }
            }
            Event::Request { id, request } => self.on_controller_request(now, id, request),
            Event::CancelRequest { id } => {
                // Dropping the task drops the call's future, which cancels it on the node.
                self.controller_calls.remove(&id_key(&id));
            }
            Event::Response { id, result } => {
                if let Some(tx) = self.forwarded_asks.remove(&id) {
                    let r = match result {
                        Ok(p) => p
                            .decode::<Json<'_>>(&toolwire_core::Limits::default())
                            .map_err(|e| CallError::new(ErrorCode::InvalidParams, e.to_string()))
                            .and_then(|j| {
                                serde_json::from_slice(j.as_bytes()).map_err(|e| {
                                    CallError::new(ErrorCode::InvalidParams, e.to_string())
                                })
                            }),
                        Err(e) => Err(CallError::from_object(&e)),
                    };
                    let _ = tx.try_send(r);
                }
            }
            Event::Closed(reason) => self.on_closed(reason),
            _ => {}
        }
    }

    fn on_hello(
        &mut self,
        now: toolwire_core::Instant,
        role: Role,
        id: Str<'_>,
        token: Option<Str<'_>>,
    ) {
        let cfg = &self.gw.inner.cfg;
        let spec = if cfg.tokens.is_empty() {
            Some(None)
        } else {
            token
                .filter(|t| !t.is_escaped())
                .and_then(|t| {
                    cfg.tokens
                        .iter()
                        .find(|s| ct_eq(s.token.as_bytes(), t.raw().as_bytes()))
                })
                .filter(|s| match role {
                    Role::Node => s.node,
                    Role::Controller => s.controller,
                })
                .map(|s| Some(Arc::new(s.clone())))
        };
        let Some(spec) = spec else {
            tracing::info!("{}: refused {role} `{id}`: bad token", self.peer);
            let r = self.conn.refuse(
                ErrorCode::Unauthorized,
                "missing or wrong token",
                &mut self.scratch,
            );
            self.push(r);
            return;
        };
        self.principal = spec;
        let r = self.conn.accept(now, &mut self.scratch);
        self.push(r);
        if role == Role::Controller {
            self.gw
                .inner
                .controllers
                .lock()
                .unwrap()
                .insert(self.conn_id, self.cmd_tx.clone());
        }
        if role == Role::Node {
            let id = id.to_string();
            let old = self.gw.inner.nodes.lock().unwrap().insert(
                id.clone(),
                NodeEntry {
                    conn: self.conn_id,
                    encoding: self.conn.encoding(),
                    cmd: self.cmd_tx.clone(),
                    tools: vec![],
                    in_flight: self.in_flight.clone(),
                    bucket: TokenBucket {
                        tokens: self
                            .gw
                            .inner
                            .cfg
                            .rate_limit
                            .map_or(0.0, |r| f64::from(r.burst)),
                        last: std::time::Instant::now(),
                    },
                },
            );
            if let Some(old) = old {
                tracing::info!("node {id} reconnected; closing its previous connection");
                let _ = old.cmd.try_send(Cmd::Shutdown(GoodbyeReason::Replaced));
            }
            tracing::info!("node {id} connected from {}", self.peer);
            self.node_id = Some(id.clone());
            self.gw.emit(GatewayEvent::NodeConnected(id));
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        tracing::debug!("{}: connection closed: {reason:?}", self.peer);
    }

    fn finish(&mut self, call: CallId, r: Result<String, CallError>) {
        let Some(w) = self.waiters.remove(&call.0) else {
            return;
        };
        self.keys.remove(&w.key);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(node) = &self.node_id {
            self.gw.emit(GatewayEvent::CallFinished {
                node: node.clone(),
                tool: w.tool.clone(),
                duration: w.started.elapsed(),
                outcome: r.as_ref().map(|_| ()).map_err(|e| e.code),
            });
        }
        let _ = w.done.try_send(r);
    }

    fn on_event(&mut self, ev: Event<'static>) {
        match ev {
            Event::CallDone { call, result } => {
                let r = result
                    .map(|j| j.as_str().to_owned())
                    .map_err(|e| CallError::from_object(&e));
                self.finish(call, r);
            }
            Event::Closed(reason) => self.on_closed(reason),
            _ => {}
        }
    }

    fn on_cmd(&mut self, now: toolwire_core::Instant, c: Cmd) {
        match c {
            Cmd::Call {
                key,
                tool,
                args,
                timeout,
                waiter,
            } => {
                let deadline = toolwire_core::Duration::from_millis(timeout.as_millis() as u64);
                match self.conn.call(
                    now,
                    &tool,
                    Json::trusted(args.as_bytes()),
                    Some(deadline),
                    &mut self.scratch,
                ) {
                    Ok((call, n)) => {
                        self.out.push(self.scratch[..n].to_vec());
                        self.keys.insert(key, call);
                        self.in_flight.fetch_add(1, Ordering::Relaxed);
                        self.waiters.insert(call.0, waiter);
                    }
                    Err(e) => {
                        let _ = waiter
                            .done
                            .try_send(Err(CallError::new(e.code(), e.to_string())));
                    }
                }
            }
            Cmd::Cancel { key } => {
                if let Some(call) = self.keys.remove(&key)
                    && self.conn.cancel(call)
                {
                    self.finish(
                        call,
                        Err(CallError::new(
                            ErrorCode::Cancelled,
                            "cancelled by the caller",
                        )),
                    );
                }
            }
            Cmd::Answer { ask, answer } => {
                let r = match &answer {
                    Ok(v) => {
                        self.conn
                            .answer(&ask, Ok(Json::trusted(v.as_bytes())), &mut self.scratch)
                    }
                    Err(e) => self.conn.answer(
                        &ask,
                        Err(ErrorObject {
                            code: e.code,
                            message: Str::new(&e.message),
                            data: None,
                        }),
                        &mut self.scratch,
                    ),
                };
                self.push(r);
            }
            Cmd::ControllerReply { key, id, result } => {
                self.controller_calls.remove(&key);
                let r = match &result {
                    Ok(v) => self.conn.respond(
                        id.as_id(),
                        &Json::trusted(v.as_bytes()),
                        &mut self.scratch,
                    ),
                    Err(e) => {
                        let data = e.data.as_ref().map(|d| d.to_string());
                        let obj = ErrorObject {
                            code: e.code,
                            message: Str::new(&e.message),
                            data: data.as_deref().map(|d| Json::trusted(d.as_bytes())),
                        };
                        self.conn.respond_error(id.as_id(), &obj, &mut self.scratch)
                    }
                };
                match r {
                    Ok(n) => self.out.push(self.scratch[..n].to_vec()),
                    Err(_) => {
                        let obj = ErrorObject::new(
                            ErrorCode::FrameTooLarge,
                            "result exceeds the frame limit",
                        );
                        let r = self.conn.respond_error(id.as_id(), &obj, &mut self.scratch);
                        self.push(r);
                    }
                }
            }
            Cmd::ControllerProgress { id, progress } => {
                let message = progress.message.clone();
                let partial = progress.partial.as_ref().map(|p| p.to_string());
                let n = Notification::Progress(ProgressFrame {
                    id: id.as_id(),
                    progress: progress.progress,
                    total: progress.total,
                    message: message.as_deref().map(Str::new),
                    partial: partial.as_deref().map(|p| Json::trusted(p.as_bytes())),
                });
                let r = self.conn.notify(&n, &mut self.scratch);
                self.push(r);
            }
            Cmd::ForwardAsk {
                call,
                kind,
                prompt,
                schema,
                reply,
            } => {
                let req = Request::Ask(toolwire_core::frame::Ask {
                    call: call.as_id(),
                    kind,
                    prompt: Str::new(&prompt),
                    schema: schema.as_deref().map(|s| Json::trusted(s.as_bytes())),
                });
                match self.conn.request(&req, &mut self.scratch) {
                    Ok((rid, n)) => {
                        self.out.push(self.scratch[..n].to_vec());
                        self.forwarded_asks.insert(rid, reply);
                    }
                    Err(e) => {
                        let _ = reply
                            .try_send(Err(CallError::new(ErrorCode::AskDeclined, e.to_string())));
                    }
                }
            }
            Cmd::Shutdown(reason) => self.conn.shutdown(reason),
            Cmd::ToolsChanged(node) => {
                let n = Notification::ToolsChanged(toolwire_core::frame::ToolsChanged {
                    node: Str::new(&node),
                });
                let r = self.conn.notify(&n, &mut self.scratch);
                self.push(r);
            }
        }
    }

    fn on_controller_request(
        &mut self,
        _now: toolwire_core::Instant,
        id: Id<'_>,
        request: Request<'_>,
    ) {
        match request {
            Request::ListNodes(q) => self.respond_nodes(id, q),
            Request::ListTools(q) => self.respond_tools(id, q),
            Request::Resolve(r) => {
                let nodes = self.gw.resolve(&r.tool.to_string());
                let names: Vec<Str<'_>> = nodes.iter().map(|n| Str::new(n)).collect();
                let r = self.conn.respond(
                    id,
                    &Resolved {
                        nodes: List::from_slice(&names),
                    },
                    &mut self.scratch,
                );
                self.push(r);
            }
            Request::Call(c) => {
                let Some(owned) = OwnedId::from_id(&id) else {
                    return;
                };
                let key = id_key(&id);
                let node = c.node.to_string();
                let tool = c.tool.to_string();
                let args = c.arguments.as_str().to_owned();
                let timeout = c.deadline_ms.map(|ms| Duration::from_millis(u64::from(ms)));
                let gw = self.gw.clone();
                let cmd = self.cmd_tx.clone();
                let principal = self.principal.clone();
                let (ptx, prx) = bounded::<Progress>(64);
                let prx_tail = prx.clone();
                let (atx, arx) = bounded::<AskRequest>(4);
                let task_key = key.clone();
                let task = smol::spawn(async move {
                    let opts = CallOptions {
                        timeout,
                        progress: Some(ptx),
                        asks: Some(atx),
                        principal,
                    };
                    let call = gw.call_raw(&node, &tool, &args, opts);
                    let forward = {
                        let cmd = cmd.clone();
                        let owned = owned.clone();
                        async move {
                            loop {
                                let next = async { prx.recv().await.ok().map(either_left) }
                                    .or(async { arx.recv().await.ok().map(either_right) })
                                    .await;
                                match next {
                                    Some(Either::Left(p)) => {
                                        let _ = cmd
                                            .send(Cmd::ControllerProgress {
                                                id: owned.clone(),
                                                progress: p,
                                            })
                                            .await;
                                    }
                                    Some(Either::Right(a)) => {
                                        let schema = a.schema.as_ref().map(|s| s.to_string());
                                        let _ = cmd
                                            .send(Cmd::ForwardAsk {
                                                call: owned.clone(),
                                                kind: a.kind,
                                                prompt: a.prompt.clone(),
                                                schema,
                                                reply: a.reply.clone(),
                                            })
                                            .await;
                                    }
                                    None => std::future::pending::<()>().await,
                                }
                            }
                        }
                    };
                    let result = call.or(async {
                        forward.await;
                        unreachable!()
                    });
                    let result = result.await;
                    // Progress reported before the result is already queued: send it first.
                    while let Ok(p) = prx_tail.try_recv() {
                        let _ = cmd
                            .send(Cmd::ControllerProgress {
                                id: owned.clone(),
                                progress: p,
                            })
                            .await;
                    }
                    let _ = cmd
                        .send(Cmd::ControllerReply {
                            key: task_key,
                            id: owned,
                            result,
                        })
                        .await;
                });
                self.controller_calls.insert(key, task);
            }
            _ => {}
        }
    }

    fn respond_nodes(&mut self, id: Id<'_>, q: ListNodes<'_>) {
        let all = self.gw.nodes();
        self.respond_page(id, q.cursor, q.limit, &all, |conn, id, page, next, out| {
            let infos: Vec<NodeInfo<'_>> = page
                .iter()
                .map(|n| NodeInfo {
                    id: Str::new(&n.id),
                    tools: n.tools as u32,
                    in_flight: n.in_flight as u32,
                    encoding: n.encoding,
                })
                .collect();
            let body = NodesPage {
                nodes: List::from_slice(&infos),
                next_cursor: next.map(Str::new),
            };
            conn.respond(id, &body, out)
        });
    }

    fn respond_tools(&mut self, id: Id<'_>, q: ListTools<'_>) {
        let prefix = q.prefix.map(|p| p.to_string());
        let node = q.node.map(|n| n.to_string());
        let all = self.gw.tools(prefix.as_deref(), node.as_deref());
        self.respond_page(id, q.cursor, q.limit, &all, |conn, id, page, next, out| {
            let entries: Vec<ToolEntry<'_>> = page
                .iter()
                .map(|t| ToolEntry {
                    node: Str::new(&t.node),
                    tool: ToolDef {
                        name: Str::new(&t.name),
                        description: Str::new(&t.description),
                        input_schema: Json::trusted(t.input_text.as_bytes()),
                        output_schema: t
                            .output_text
                            .as_deref()
                            .map(|o| Json::trusted(o.as_bytes())),
                        annotations: t.annotations,
                    },
                })
                .collect();
            let body = ToolsPage {
                tools: List::from_slice(&entries),
                next_cursor: next.map(Str::new),
            };
            conn.respond(id, &body, out)
        });
    }

    /// Answers a paged listing of `all` from `cursor` (an offset, opaque to controllers), with
    /// at most `limit` items, halving the page until its frame fits.
    fn respond_page<T>(
        &mut self,
        id: Id<'_>,
        cursor: Option<Str<'_>>,
        limit: Option<u32>,
        all: &[T],
        encode: impl Fn(
            &mut CoreConn,
            Id<'_>,
            &[T],
            Option<&str>,
            &mut [u8],
        ) -> Result<usize, toolwire_core::EncodeError>,
    ) {
        let start = cursor
            .and_then(|c| c.to_string().parse::<usize>().ok())
            .unwrap_or(0)
            .min(all.len());
        let mut limit = limit.unwrap_or(100).clamp(1, 1000) as usize;
        loop {
            let page = &all[start..(start + limit).min(all.len())];
            let next = (start + page.len() < all.len()).then(|| (start + page.len()).to_string());
            match encode(&mut self.conn, id, page, next.as_deref(), &mut self.scratch) {
                Ok(n) => return self.out.push(self.scratch[..n].to_vec()),
                Err(_) if limit > 1 => limit /= 2,
                Err(e) => return tracing::warn!("{}: listing page: {e}", self.peer),
            }
        }
    }
}

enum Either<L, R> {
    Left(L),
    Right(R),
}

fn either_left<L, R>(l: L) -> Either<L, R> {
    Either::Left(l)
}

fn either_right<L, R>(r: R) -> Either<L, R> {
    Either::Right(r)
}
