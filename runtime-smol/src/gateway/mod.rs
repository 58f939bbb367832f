//! The gateway: accepts nodes and controllers over WebSocket and TCP (TLS optional) and calls
//! their tools.
//!
//! Everything that spans connections (the registry of nodes and tools, routing a controller's
//! call to a node and its result back, progress, asks and cancels, listings, tokens, ACLs and
//! rate limits) is `toolwire_core::router::Router`'s, behind one mutex. What is left here:
//! listeners, sockets, TLS and WebSocket framing (`connection.rs`: one task per connection that
//! owns its socket), JSON Schema compilation (`schemas.rs`), one timer task, and the async API.
//!
//! A gateway on an ephemeral loopback port, a host node dialling it, and a call:
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use toolwire_smol::gateway::CallOptions;
//! use toolwire_smol::node::{HostNode, NodeOptions, Tool};
//! use toolwire_smol::{Endpoint, Gateway, GatewayConfig};
//!
//! smol::block_on(async {
//!     let gw = Gateway::new(GatewayConfig::default());
//!     let ws = gw.listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None).await.unwrap();
//!     let endpoint = Endpoint::parse(&format!("ws://{}", ws.addr)).unwrap();
//!
//!     let schema = json!({"type": "object", "properties": {"channel": {"type": "integer"}}});
//!     let node = HostNode::new(NodeOptions::new("dev-1")).tool(Tool::new(
//!         "read_sensor",
//!         "milli-degrees C of a channel",
//!         schema,
//!         |_ctx, args| async move { Ok(json!(21_000 + args["channel"].as_i64().unwrap_or(0))) },
//!     ));
//!     let _node = smol::spawn(async move { node.run(&endpoint, None).await });
//!
//!     assert!(gw.wait_for_node("dev-1", Duration::from_secs(5)).await);
//!     let opts = CallOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() };
//!     let r = gw.call("dev-1", "read_sensor", &json!({"channel": 2}), opts).await;
//!     assert_eq!(r.unwrap(), json!(21_002));
//! });
//! ```

mod connection;
mod schemas;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use foldhash::fast::RandomState as FastHash;
use futures_channel::oneshot;
use futures_rustls::rustls::{ClientConfig, ServerConfig};
use serde_json::Value;
use smol::Task;
use smol::channel::{Receiver, Sender, bounded};
use smol::future::FutureExt;
use smol::net::TcpListener;
pub use toolwire_core::frame::LogLevel;
use toolwire_core::frame::{Annotations, AskKind, Decision, GoodbyeReason};
use toolwire_core::router::{
    self, AskKey, CallKey, ConnId, Failure, LocalCall, Router, RouterConfig,
};
use toolwire_core::{ErrorCode, ErrorObject, Json, Str};

pub use toolwire_core::router::{Acl, CacheConfig, HeldConfig, HeldPage, RateLimit, TokenSpec};

use crate::clock::Clock;
use crate::http::metrics::Metrics;
use crate::http::{self, HttpConfig, Sources};
use crate::transport::{self, Endpoint, Framing};
use schemas::JsonSchemas;

/// Gateway settings.
///
/// The limits' defaults are sized for a fleet on one host: 16,384 nodes, 256 controllers and
/// 1,024 handshakes at once, so at most 17,664 sockets
/// ([`GatewayConfig::max_connections`]). Every socket is a file descriptor: the process's
/// limit (`ulimit -n`) must exceed that, with room for listeners and files. 20,000 does; on a
/// host whose limit is 1,024 (a common default) raise it, or lower the limits to fit.
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
    /// The result cache, if on (off by default): results of tools annotated read-only and
    /// idempotent, served for a time without reaching the node ([`CacheConfig`]).
    pub cache: Option<CacheConfig>,
    /// Bounds of the results held for calls with a result budget (`max_result_bytes`): five
    /// minutes, 64 MiB, 32 per caller by default.
    pub held: HeldConfig,
    /// Timeout of calls made without one.
    pub default_timeout: Duration,
    /// Nodes connected at once, at most, counted by id after their `hello`; a node past it is
    /// refused `-32005` ("gateway full: N nodes connected") and nothing else is disturbed. A
    /// node whose id is connected replaces that connection instead. Default 16,384.
    pub max_nodes: usize,
    /// Controllers connected at once, at most, counted apart from nodes so that a flood of
    /// nodes cannot lock the operator out; past it, `-32005` as for nodes. Default 256.
    pub max_controllers: usize,
    /// Sockets accepted whose `hello` has not been accepted yet (TLS and WebSocket setup
    /// included), at most: beyond, a new socket is closed at accept without a byte read. Each
    /// is also bounded in time by `handshake_timeout`. Default 1,024.
    pub max_handshakes: usize,
    /// Encodings accepted.
    pub encodings: toolwire_core::frame::Encodings,
    /// Encoding chosen when a peer accepts both.
    pub prefer: toolwire_core::Encoding,
    /// The HTTP face of `ws://` and `wss://` listeners (REST API, metrics, health).
    pub http: HttpConfig,
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
            cache: None,
            held: HeldConfig::default(),
            default_timeout: Duration::from_secs(30),
            max_nodes: router::DEFAULT_MAX_NODES,
            max_controllers: router::DEFAULT_MAX_CONTROLLERS,
            max_handshakes: router::DEFAULT_MAX_HANDSHAKES,
            encodings: toolwire_core::frame::Encodings::BOTH,
            prefer: toolwire_core::Encoding::Postcard,
            http: HttpConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Sockets open at once, at most: nodes, controllers and handshakes added up (the accept
    /// loop closes sockets beyond it; transiently, a node's replaced connection may still be
    /// sending its goodbye).
    pub fn max_connections(&self) -> usize {
        self.max_nodes
            .saturating_add(self.max_controllers)
            .saturating_add(self.max_handshakes)
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
}

impl From<Failure> for CallError {
    fn from(f: Failure) -> Self {
        CallError {
            code: f.code,
            data: f.data.and_then(|d| serde_json::from_str(&d).ok()),
            message: f.message,
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

/// A line of a node's log (`log`, PROTOCOL.md section 6).
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// How much it matters.
    pub level: LogLevel,
    /// The line.
    pub message: String,
    /// Details.
    pub data: Option<Value>,
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
    reply: AskReply,
}

#[derive(Debug)]
enum AskReply {
    /// Answered through a channel (a controller client relaying the gateway's ask).
    Channel(Sender<Result<Value, CallError>>),
    /// Answered into this gateway's router.
    Router(Weak<Inner>, AskKey),
    /// Answered already.
    Done,
}

impl AskRequest {
    /// Answers.
    pub fn answer(mut self, value: Value) {
        self.reply(Ok(value));
    }

    /// Declines (`-32013`).
    pub fn decline(mut self, why: &str) {
        self.reply(Err(CallError::new(ErrorCode::AskDeclined, why)));
    }

    fn reply(&mut self, answer: Result<Value, CallError>) {
        match std::mem::replace(&mut self.reply, AskReply::Done) {
            AskReply::Channel(tx) => {
                let _ = tx.try_send(answer);
            }
            AskReply::Router(gw, ask) => {
                let Some(inner) = gw.upgrade() else { return };
                let text = answer.as_ref().ok().map(Value::to_string);
                let r = match (&answer, &text) {
                    (Ok(_), Some(t)) => Ok(Json::trusted(t.as_bytes())),
                    (Err(e), _) => Err(ErrorObject {
                        code: e.code,
                        message: Str::new(&e.message),
                        data: None,
                    }),
                    _ => return,
                };
                let mut s = inner.lock();
                s.router.answer(inner.clock.now(), ask, r);
                inner.pump(&mut s, None);
            }
            AskReply::Done => {}
        }
    }
}

impl Drop for AskRequest {
    fn drop(&mut self) {
        if matches!(self.reply, AskReply::Router(..)) {
            self.reply(Err(CallError::new(
                ErrorCode::AskDeclined,
                "nobody answered",
            )));
        }
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
        reply: AskReply::Channel(reply),
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
    /// Receives the lines the node logs about this call; without it the gateway logs them.
    pub logs: Option<Sender<LogLine>>,
    /// The token the call is made under (its ACL applies); `None`: the application itself.
    pub token: Option<Arc<TokenSpec>>,
    /// Bypass the result cache: the call reaches the node even if a fresh result is kept, and
    /// its result replaces that one.
    pub no_cache: bool,
    /// The result budget (at least 16 bytes): the result is then a `Budgeted` envelope
    /// (PROTOCOL.md section 7), `{"value": …}` within it, or `{"held": {…}}` with the first
    /// page and a handle for [`Gateway::read_result`].
    pub max_result_bytes: Option<u32>,
}

/// The least result budget ([`CallOptions::max_result_bytes`], and the controllers'
/// `max_result_bytes`): a smaller one is refused with `-32602`.
pub const MIN_RESULT_BYTES: u32 = 16;

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
#[derive(Clone, Debug, PartialEq)]
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
    /// A line of a node's log with no caller to go to (about the node, or its caller left).
    NodeLog {
        /// Node.
        node: String,
        /// The line.
        line: LogLine,
    },
    /// One of the caller's ask rules (`rules.set`) answered a node's ask: the caller was not
    /// asked.
    AskDecided {
        /// Node.
        node: String,
        /// Tool.
        tool: String,
        /// Permission or input.
        kind: AskKind,
        /// The question.
        prompt: String,
        /// The rule's place in the caller's list.
        rule: usize,
        /// Allow or deny.
        decision: Decision,
    },
}

/// The gateway. Cheap to clone; every clone is the same gateway.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
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

/// A local call's outcome: its result as JSON text, or the failure.
type CallResult = Result<String, CallError>;

/// A local call waiting for its result.
struct Waiter {
    /// A oneshot: one allocation per call, where a bounded `async_channel` took five.
    done: oneshot::Sender<CallResult>,
    progress: Option<Sender<Progress>>,
    asks: Option<Sender<AskRequest>>,
    logs: Option<Sender<LogLine>>,
}

/// What the mutex guards: the router and the runtime's per-connection and per-call state.
pub(crate) struct Shared {
    router: Router<JsonSchemas>,
    /// Wakes a connection's task, by [`ConnId::index`].
    wakers: Vec<Option<Sender<()>>>,
    waiters: HashMap<CallKey, Waiter, FastHash>,
    /// Results of local calls, sent to their callers at the end of [`Inner::pump`].
    finished: Vec<(oneshot::Sender<CallResult>, CallResult)>,
    subscribers: Vec<Sender<GatewayEvent>>,
    /// The deadline the timer task sleeps until.
    armed: Option<toolwire_core::Instant>,
}

pub(crate) struct Inner {
    cfg: GatewayConfig,
    clock: Clock,
    state: Mutex<Shared>,
    /// Tells the timer task that the router's next deadline moved.
    timer_wake: Sender<()>,
    /// The timer task (set right after the gateway is built; dropped with it).
    timer: OnceLock<Task<()>>,
    /// Sockets accepted and not yet closed (including those still in TLS/WebSocket setup).
    sockets: Arc<AtomicUsize>,
    /// Sockets accepted whose `hello` is not accepted yet (TLS/WebSocket setup included).
    handshakes: Arc<AtomicUsize>,
    /// Counters for `/metrics`.
    pub(crate) metrics: Metrics,
    /// HTTP connections per source address.
    pub(crate) sources: Arc<Sources>,
    /// The sessions of `/mcp`.
    pub(crate) mcp: crate::mcp::McpSessions,
    /// [`Gateway::shutdown`] was called.
    shut_down: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.cfg.name)
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After every router input: wakes the connections with frames to send (except `me`, whose
    /// task looks anyway), hands events to waiters and subscribers, re-arms the timer.
    fn pump(self: &Arc<Self>, s: &mut Shared, me: Option<ConnId>) {
        while let Some(c) = s.router.poll_ready() {
            if Some(c) != me
                && let Some(Some(w)) = s.wakers.get(c.index())
            {
                let _ = w.try_send(());
            }
        }
        while let Some(ev) = s.router.poll_event() {
            self.on_event(s, ev);
        }
        // Callers are woken after the batch's events went to subscribers: whoever awaits a
        // call and then reads the event stream finds its `CallFinished` there.
        for (done, result) in s.finished.drain(..) {
            let _ = done.send(result);
        }
        let next = s.router.poll_timeout();
        if next != s.armed {
            s.armed = next;
            let _ = self.timer_wake.try_send(());
        }
    }

    fn on_event(self: &Arc<Self>, s: &mut Shared, ev: router::Event) {
        use router::Event as E;
        let observed = match ev {
            E::Done { key, result } => {
                if let Some(w) = s.waiters.remove(&key) {
                    s.finished.push((w.done, result.map_err(CallError::from)));
                }
                return;
            }
            E::Progress {
                key,
                progress,
                total,
                message,
                partial,
            } => {
                if let Some(tx) = s.waiters.get(&key).and_then(|w| w.progress.as_ref()) {
                    let _ = tx.try_send(Progress {
                        progress,
                        total,
                        message,
                        partial: partial.and_then(|p| serde_json::from_str(&p).ok()),
                    });
                }
                return;
            }
            E::Ask {
                ask,
                key,
                kind,
                prompt,
                schema,
            } => {
                let req = AskRequest {
                    kind,
                    prompt,
                    schema: schema.and_then(|p| serde_json::from_str(&p).ok()),
                    reply: AskReply::Router(Arc::downgrade(self), ask),
                };
                let sent = match s.waiters.get(&key).and_then(|w| w.asks.as_ref()) {
                    Some(tx) => tx
                        .try_send(req)
                        .map_err(|e| (e.into_inner(), "nobody to ask")),
                    None => Err((req, "the caller takes no questions")),
                };
                if let Err((mut req, why)) = sent {
                    // Answered here, under the lock we hold: not through `reply`.
                    req.reply = AskReply::Done;
                    let e = ErrorObject::new(ErrorCode::AskDeclined, why);
                    s.router.answer(self.clock.now(), ask, Err(e));
                }
                return;
            }
            E::Log {
                node,
                key,
                level,
                message,
                data,
            } => {
                let line = LogLine {
                    level,
                    message,
                    data: data.and_then(|d| serde_json::from_str(&d).ok()),
                };
                let tx = key.and_then(|k| s.waiters.get(&k).and_then(|w| w.logs.as_ref()));
                if let Some(tx) = tx {
                    let _ = tx.try_send(line);
                    return;
                }
                match level.rank() {
                    r if r >= LogLevel::Error.rank() => {
                        tracing::error!("node {node}: {}", line.message)
                    }
                    r if r >= LogLevel::Warning.rank() => {
                        tracing::warn!("node {node}: {}", line.message)
                    }
                    r if r >= LogLevel::Info.rank() => {
                        tracing::info!("node {node}: {}", line.message)
                    }
                    _ => tracing::debug!("node {node}: {}", line.message),
                }
                GatewayEvent::NodeLog { node, line }
            }
            E::NodeUp { node } => {
                tracing::info!("node {node} connected");
                GatewayEvent::NodeConnected(node)
            }
            E::NodeDown { node } => {
                tracing::info!("node {node} disconnected");
                GatewayEvent::NodeDisconnected(node)
            }
            E::ToolsChanged { node } => GatewayEvent::ToolsChanged(node),
            E::AskDecided {
                node,
                tool,
                kind,
                prompt,
                rule,
                decision,
                ..
            } => {
                tracing::info!(
                    "ask of {node}/{tool} ({}) decided by rule {rule}: {}",
                    kind.as_str(),
                    decision.as_str()
                );
                GatewayEvent::AskDecided {
                    node,
                    tool,
                    kind,
                    prompt,
                    rule,
                    decision,
                }
            }
            E::Finished {
                node,
                tool,
                duration,
                outcome,
            } => {
                let duration = Duration::from_millis(duration.as_millis());
                self.metrics
                    .call_finished(&node, &tool, duration.as_secs_f64(), outcome);
                GatewayEvent::CallFinished {
                    node,
                    tool,
                    duration,
                    outcome,
                }
            }
            _ => return,
        };
        s.subscribers.retain(|tx| !tx.is_closed());
        for tx in &s.subscribers {
            let _ = tx.try_send(observed.clone());
        }
    }
}

/// Counts a socket (or a socket's handshake) for as long as it is held. Taken in the accept
/// loop itself, before the connection's task runs: a burst of accepts cannot overshoot the cap.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Counted(n.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router's deadlines: sleeps until the next one (or until it moves), then lets the
/// router handle it. Holds the gateway weakly, so dropping the gateway ends it.
fn spawn_timer(gw: Weak<Inner>, wake: Receiver<()>) -> Task<()> {
    smol::spawn(async move {
        loop {
            let deadline = {
                let Some(inner) = gw.upgrade() else { return };
                let mut s = inner.lock();
                s.armed = s.router.poll_timeout();
                s.armed.map(|t| inner.clock.instant(t))
            };
            let fired = async { wake.recv().await.map(|()| false) }
                .or(async {
                    match deadline {
                        Some(t) => {
                            smol::Timer::at(t).await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                    Ok(true)
                })
                .await;
            match fired {
                Err(_) => return,
                Ok(false) => {}
                Ok(true) => {
                    let Some(inner) = gw.upgrade() else { return };
                    let mut s = inner.lock();
                    s.router.handle_timeout(inner.clock.now());
                    inner.pump(&mut s, None);
                }
            }
        }
    })
}

/// A dispatched local call ([`Gateway::start_call`]); dropping it before its outcome cancels
/// the call on the node.
pub(crate) struct PendingCall {
    inner: Arc<Inner>,
    key: CallKey,
    done: oneshot::Receiver<CallResult>,
    armed: bool,
}

impl PendingCall {
    /// The call's result, or the failure that ended it.
    pub(crate) async fn outcome(mut self) -> CallResult {
        let r = (&mut self.done).await.unwrap_or_else(|_| {
            Err(CallError::new(
                ErrorCode::Disconnected,
                "the call's node disconnected",
            ))
        });
        self.armed = false;
        r
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.inner.lock();
            s.waiters.remove(&self.key);
            s.router.cancel(self.inner.clock.now(), self.key);
            self.inner.pump(&mut s, None);
        }
    }
}

fn node_summary(n: router::NodeView<'_>) -> NodeSummary {
    NodeSummary {
        id: n.id.to_owned(),
        tools: n.tools,
        in_flight: n.in_flight,
        encoding: n.encoding,
    }
}

fn tool_info(t: &router::ToolView<'_>) -> ToolInfo {
    ToolInfo {
        node: t.node.to_owned(),
        name: t.name.to_owned(),
        description: t.description.to_owned(),
        input_schema: serde_json::from_str(t.input_schema).unwrap_or(Value::Null),
        output_schema: t.output_schema.and_then(|o| serde_json::from_str(o).ok()),
        annotations: t.annotations,
    }
}

/// The router's state at one moment, for `/metrics`.
pub(crate) struct Snapshot {
    pub(crate) nodes: usize,
    pub(crate) controllers: usize,
    pub(crate) handshakes: usize,
    pub(crate) in_flight: usize,
    pub(crate) stats: router::Stats,
}

fn core_duration(d: Duration) -> toolwire_core::Duration {
    toolwire_core::Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

impl Gateway {
    /// A gateway with no listener yet.
    pub fn new(cfg: GatewayConfig) -> Self {
        let mut rc = RouterConfig::new(&cfg.name);
        rc.connection.encodings = cfg.encodings;
        rc.connection.prefer = cfg.prefer;
        rc.connection.max_frame = cfg.max_frame;
        rc.connection.max_in_flight = cfg.max_in_flight;
        rc.connection.heartbeat = core_duration(cfg.heartbeat);
        rc.connection.handshake_timeout = core_duration(cfg.handshake_timeout);
        rc.tokens = cfg.tokens.clone();
        rc.rate_limit = cfg.rate_limit;
        rc.cache = cfg.cache;
        rc.held = cfg.held;
        rc.default_deadline = core_duration(cfg.default_timeout);
        rc.max_nodes = cfg.max_nodes;
        rc.max_controllers = cfg.max_controllers;
        rc.max_handshakes = cfg.max_handshakes;
        rc.max_queued = 16 * cfg.max_frame as usize;
        let (timer_wake, timer_rx) = bounded(1);
        let inner = Arc::new(Inner {
            clock: Clock::new(),
            state: Mutex::new(Shared {
                router: Router::new(rc, JsonSchemas),
                wakers: Vec::new(),
                waiters: HashMap::default(),
                finished: Vec::new(),
                subscribers: Vec::new(),
                armed: None,
            }),
            timer_wake,
            timer: OnceLock::new(),
            sockets: Arc::new(AtomicUsize::new(0)),
            handshakes: Arc::new(AtomicUsize::new(0)),
            metrics: Metrics::default(),
            sources: Arc::default(),
            mcp: Default::default(),
            shut_down: AtomicBool::new(false),
            cfg,
        });
        // Spawned once the gateway exists: a timer task that ran while `Inner` was still being
        // built (as `Arc::new_cyclic` allowed) found no gateway behind its weak handle, ended,
        // and left the gateway without heartbeats or timeouts.
        let _ = inner
            .timer
            .set(spawn_timer(Arc::downgrade(&inner), timer_rx));
        Gateway { inner }
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
                let cfg = &gw.inner.cfg;
                let handshakes = gw.inner.handshakes.load(Ordering::Relaxed);
                if handshakes >= cfg.max_handshakes {
                    tracing::warn!(
                        "connection from {peer} closed: {handshakes} connections in their handshake"
                    );
                    drop(tcp);
                    continue;
                }
                let sockets = gw.inner.sockets.load(Ordering::Relaxed);
                if sockets >= cfg.max_connections() {
                    tracing::warn!("connection from {peer} closed: {sockets} connections open");
                    drop(tcp);
                    continue;
                }
                let socket = Counted::new(&gw.inner.sockets);
                let handshake = Counted::new(&gw.inner.handshakes);
                let gw = gw.clone();
                let tls = tls.clone();
                smol::spawn(async move {
                    // Boxed, so that the handshake's state (TLS, WebSocket upgrade) is freed
                    // once done instead of sizing this task's memory for as long as it runs.
                    let setup = Box::pin(transport::accept_io(tcp, tls.as_ref()));
                    let timeout = gw.inner.cfg.handshake_timeout;
                    let r = setup
                        .or(async {
                            smol::Timer::after(timeout).await;
                            Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "TLS handshake timed out",
                            ))
                        })
                        .await;
                    match (r, framing) {
                        (Ok(io), Framing::Stream) => {
                            let (reader, writer) =
                                transport::stream(io, gw.inner.cfg.max_frame as usize);
                            gw.run_connection(reader, writer, peer.to_string(), Some(handshake))
                                .await
                        }
                        (Ok(io), Framing::WebSocket) => {
                            http::serve(gw, io, peer, handshake, socket).await
                        }
                        (Err(e), _) => tracing::debug!("{peer}: {e}"),
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
            gw.run_connection(reader, writer, peer, None).await
        }))
    }

    /// A controller connected to this gateway in-process (over a socket pair, framed as on a
    /// `tcp://` listener), as if from outside: `opts.token` is checked and its ACL applies, and
    /// the connection counts against `max_controllers`. The gateway's MCP endpoint runs each
    /// session on one.
    #[cfg(unix)]
    pub async fn connect_local(
        &self,
        opts: crate::client::ClientOptions,
    ) -> io::Result<crate::client::Client> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let ours: transport::BoxIo = Box::new(smol::Async::new(ours)?);
        let theirs: transport::BoxIo = Box::new(smol::Async::new(theirs)?);
        let max_frame = self.inner.cfg.max_frame as usize;
        let (reader, writer) = transport::stream(ours, max_frame);
        let gw = self.clone();
        smol::spawn(async move {
            gw.run_connection(reader, writer, "in-process".to_owned(), None)
                .await
        })
        .detach();
        let (reader, writer) = transport::stream(theirs, crate::client::MAX_FRAME);
        crate::client::Client::over(reader, writer, opts).await
    }

    /// Subscribes to events. Slow subscribers lose events rather than slow the gateway down
    /// (the channel holds 1024).
    pub fn events(&self) -> Receiver<GatewayEvent> {
        let (tx, rx) = bounded(1024);
        self.inner.lock().subscribers.push(tx);
        rx
    }

    /// True once [`Gateway::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let s = self.inner.lock();
        Snapshot {
            nodes: s.router.nodes().count(),
            controllers: s.router.controllers(),
            handshakes: s.router.handshakes(),
            in_flight: s.router.in_flight(),
            stats: s.router.stats(),
        }
    }

    /// Connected nodes, by id.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.inner.lock().router.nodes().map(node_summary).collect()
    }

    /// One connected node.
    pub fn node(&self, id: &str) -> Option<NodeSummary> {
        self.inner.lock().router.node(id).map(node_summary)
    }

    /// Registered tools, by node then name, optionally only those whose name starts with
    /// `prefix` or of one node.
    pub fn tools(&self, prefix: Option<&str>, node: Option<&str>) -> Vec<Arc<ToolInfo>> {
        self.inner
            .lock()
            .router
            .tools(prefix, node)
            .map(|t| Arc::new(tool_info(&t)))
            .collect()
    }

    /// One page of [`Gateway::tools`]: at most `limit` tools after `after` (`node`, `tool`), and
    /// whether more follow; with `scope`, only the tools it permits (an active tool set, such as
    /// a REST request's `Toolwire-Tools` header).
    pub fn tools_page(
        &self,
        prefix: Option<&str>,
        node: Option<&str>,
        after: Option<(String, String)>,
        limit: usize,
        scope: Option<&Acl>,
    ) -> (Vec<Arc<ToolInfo>>, bool) {
        let s = self.inner.lock();
        let mut page: Vec<Arc<ToolInfo>> = Vec::new();
        let mut more = false;
        let after = after.as_ref().map(|(n, t)| (n.as_str(), t.as_str()));
        let tools = s.router.tools_after(prefix, node, after);
        for t in tools.filter(|t| scope.is_none_or(|s| s.permits(t.node, t.name))) {
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(Arc::new(tool_info(&t)));
        }
        (page, more)
    }

    /// Nodes offering `tool`.
    pub fn resolve(&self, tool: &str) -> Vec<String> {
        self.inner
            .lock()
            .router
            .resolve(tool)
            .map(str::to_owned)
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
        self.start_call(node, tool, args, opts)?.outcome().await
    }

    /// A page of a result held for a call with a result budget ([`CallOptions::max_result_bytes`]):
    /// from `offset` (0 or a `next_offset`), at most `length` bytes (the call's budget if
    /// `None`). `token`: the reader's, whose ACL must permit the result's tool. `-32015` if
    /// the result is not held (never, expired, or dropped for room).
    pub fn read_result(
        &self,
        handle: &str,
        offset: u32,
        length: Option<u32>,
        token: Option<&TokenSpec>,
    ) -> Result<HeldPage, CallError> {
        let mut s = self.inner.lock();
        let now = self.inner.clock.now();
        Ok(s.router
            .read_result(now, handle, offset, length, token.map(|t| &t.acl))?)
    }

    /// Dispatches a call: `Err` if the gateway refused it before anything reached the node
    /// (unknown node or tool, arguments that break the schema or do not fit the node's frame,
    /// ACL, rate limit, busy); otherwise the call is on its way and [`PendingCall::outcome`]
    /// gives its result or the failure that came after (the node's, a deadline, a disconnect).
    pub(crate) fn start_call(
        &self,
        node: &str,
        tool: &str,
        args: &str,
        opts: CallOptions,
    ) -> Result<PendingCall, CallError> {
        let arguments = Json::parse(args.as_bytes()).map_err(|e| {
            CallError::new(
                ErrorCode::InvalidParams,
                format!("arguments are not JSON: {e}"),
            )
        })?;
        let (done, done_rx) = oneshot::channel();
        let inner = &self.inner;
        let mut s = inner.lock();
        let local = LocalCall {
            deadline: opts.timeout.map(core_duration),
            acl: opts.token.as_ref().map(|t| &t.acl),
            no_cache: opts.no_cache,
            max_result_bytes: opts.max_result_bytes,
        };
        let key = s
            .router
            .call_with(inner.clock.now(), node, tool, arguments, &local)?;
        s.waiters.insert(
            key,
            Waiter {
                done,
                progress: opts.progress,
                asks: opts.asks,
                logs: opts.logs,
            },
        );
        inner.pump(&mut s, None);
        Ok(PendingCall {
            inner: inner.clone(),
            key,
            done: done_rx,
            armed: true,
        })
    }

    /// Closes every node and controller connection with a goodbye. (Listeners keep
    /// accepting until dropped or [`Listener::close`]d; `/readyz` answers `503` from now on.)
    pub fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Relaxed);
        let mut s = self.inner.lock();
        s.router
            .shutdown(self.inner.clock.now(), GoodbyeReason::Shutdown);
        self.inner.pump(&mut s, None);
    }
}
