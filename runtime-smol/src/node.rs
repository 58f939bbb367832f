//! A host node: tools are async Rust functions; the node dials a gateway, registers them, and
//! serves calls, reconnecting with exponential backoff and jitter.
//!
//! Every connection runs a fresh `toolwire_core::node::Node`, and every call runs as a task
//! owned by that connection: when the connection ends, its tasks are dropped and their results
//! can never be sent on a later connection (at-most-once). A `cancel` drops the call's task.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use foldhash::fast::RandomState as FastHash;
use futures_rustls::rustls::ClientConfig;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;
use smol::lock::Semaphore;
use toolwire_core::frame::{
    Annotations, AskKind, Encoding, Encodings, GoodbyeReason, LogLevel, ToolDef,
};
use toolwire_core::node::{AskHandle, CallHandle, CloseReason, Node, NodeConfig, NodeEvent};
use toolwire_core::{EncodeError, ErrorCode, ErrorObject, Instant, Json, Str};

use crate::clock::Clock;
use crate::driver::{self, Batch, End};
use crate::gateway::CallError;
use crate::transport::{self, Endpoint};

/// Calls a host node runs at once, at most.
pub const MAX_IN_FLIGHT: usize = 256;
/// Asks one call may have open at once ([`ToolContext::ask`] futures awaited together, say with
/// `smol::future::zip`), at most; one more fails at once with `-32013`. The gateway
/// keeps as many (`toolwire_core::router::MAX_ASKS_PER_CALL`).
pub const MAX_ASKS: usize = 4;

/// An error a tool returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolError {
    /// Protocol code ([`ErrorCode`]) or the tool's own positive code.
    pub code: i32,
    /// One line for humans.
    pub message: String,
    /// Details.
    pub data: Option<Value>,
}

impl ToolError {
    /// An error with a protocol code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ToolError {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }

    /// `-32014 tool failed` with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ToolFailed, message)
    }
}

impl From<CallError> for ToolError {
    fn from(e: CallError) -> Self {
        ToolError {
            code: e.code,
            message: e.message,
            data: e.data,
        }
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;
type Handler = Arc<dyn Fn(ToolContext, Value) -> BoxFut + Send + Sync>;

/// A tool: its declaration and its handler.
#[derive(Clone)]
pub struct Tool {
    name: String,
    description: String,
    input_schema: String,
    output_schema: Option<String>,
    annotations: Annotations,
    limit: Option<Arc<Semaphore>>,
    handler: Handler,
}

impl Tool {
    /// A tool taking its arguments as a JSON value, with a hand-written schema.
    pub fn new<F, Fut>(name: &str, description: &str, input_schema: Value, handler: F) -> Tool
    where
        F: Fn(ToolContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        Tool {
            name: name.to_owned(),
            description: description.to_owned(),
            input_schema: input_schema.to_string(),
            output_schema: None,
            annotations: Annotations::NONE,
            limit: None,
            handler: Arc::new(move |ctx, v| Box::pin(handler(ctx, v))),
        }
    }

    /// A tool with typed arguments and result; the input schema is derived from `A`
    /// (schemars). Arguments that do not deserialize are answered with `-32002`.
    pub fn typed<A, R, F, Fut>(name: &str, description: &str, handler: F) -> Tool
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + 'static,
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    {
        let schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or(Value::Null);
        let handler = Arc::new(handler);
        Tool::new(name, description, schema, move |ctx, v| {
            let handler = handler.clone();
            async move {
                let a: A = serde_json::from_value(v)
                    .map_err(|e| ToolError::new(ErrorCode::InvalidArguments, e.to_string()))?;
                let r = handler(ctx, a).await?;
                serde_json::to_value(r).map_err(|e| ToolError::failed(e.to_string()))
            }
        })
    }

    /// Sets the behaviour hints.
    pub fn annotations(mut self, a: Annotations) -> Self {
        self.annotations = a;
        self
    }

    /// Declares the result's schema.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema.to_string());
        self
    }

    /// Runs at most `n` calls of this tool at once (others wait for a slot).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.limit = Some(Arc::new(Semaphore::new(n.max(1))));
        self
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

enum Cmd {
    Done {
        call: CallHandle,
        result: Result<String, ToolError>,
    },
    Progress {
        call: CallHandle,
        progress: u64,
        total: Option<u64>,
        message: Option<String>,
        partial: Option<String>,
    },
    Ask {
        call: CallHandle,
        kind: AskKind,
        prompt: String,
        schema: Option<String>,
        reply: Sender<Result<Value, CallError>>,
    },
    Log {
        call: CallHandle,
        level: LogLevel,
        message: String,
    },
}

/// What a running tool can do besides returning: report progress and ask questions.
#[derive(Clone)]
pub struct ToolContext {
    call: CallHandle,
    cmd: Sender<Cmd>,
}

impl ToolContext {
    /// Reports progress (`progress` of `total`), with an optional status and partial output.
    pub async fn progress(
        &self,
        progress: u64,
        total: Option<u64>,
        message: Option<&str>,
        partial: Option<Value>,
    ) {
        let _ = self
            .cmd
            .send(Cmd::Progress {
                call: self.call,
                progress,
                total,
                message: message.map(str::to_owned),
                partial: partial.map(|p| p.to_string()),
            })
            .await;
    }

    /// Sends a line of log about this call to its caller (an MCP client sees it as
    /// `notifications/message`; the gateway logs what has no caller to go to).
    pub async fn log(&self, level: LogLevel, message: &str) {
        let _ = self
            .cmd
            .send(Cmd::Log {
                call: self.call,
                level,
                message: message.to_owned(),
            })
            .await;
    }

    /// Asks the gateway (and through it, the caller) for permission or input. Up to
    /// [`MAX_ASKS`] asks of one call may wait at once (futures awaited together), so an MCP
    /// client of the 2026-07-28 revision gets them in one round of input requests.
    pub async fn ask(
        &self,
        kind: AskKind,
        prompt: &str,
        schema: Option<Value>,
    ) -> Result<Value, CallError> {
        let (tx, rx) = bounded(1);
        self.cmd
            .send(Cmd::Ask {
                call: self.call,
                kind,
                prompt: prompt.to_owned(),
                schema: schema.map(|s| s.to_string()),
                reply: tx,
            })
            .await
            .map_err(|_| CallError::new(ErrorCode::Disconnected, "connection lost"))?;
        rx.recv()
            .await
            .unwrap_or_else(|_| Err(CallError::new(ErrorCode::Disconnected, "connection lost")))
    }
}

/// How a host node connects.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Node id.
    pub id: String,
    /// Token, if the gateway requires one.
    pub token: Option<String>,
    /// TLS client configuration for `wss://` and `tls://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Encodings accepted (the gateway chooses).
    pub encodings: Encodings,
    /// Largest frame accepted.
    pub max_frame: u32,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
}

impl NodeOptions {
    /// Defaults for node `id`: both encodings, 1 MiB frames, backoff 100 ms → 10 s.
    pub fn new(id: &str) -> Self {
        NodeOptions {
            id: id.to_owned(),
            token: None,
            tls: None,
            encodings: Encodings::BOTH,
            max_frame: 1 << 20,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// How one connection ended.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEnd {
    /// The transport closed or failed (retry).
    Lost(String),
    /// The gateway refused the handshake with this code. Retrying will not help, except after
    /// `-32005` (the gateway is full), which [`HostNode::run`] retries with backoff.
    Refused(i32),
    /// The gateway said goodbye.
    Goodbye(GoodbyeReason),
    /// Nothing heard for three heartbeats.
    Timeout,
}

/// A host node: a set of tools and how to reach the gateway.
///
/// A typed tool (its input schema derived from the argument type) served to a gateway on
/// loopback; [`HostNode::run`] is spawned and keeps the node connected:
///
/// ```
/// use std::time::Duration;
/// use serde::Deserialize;
/// use serde_json::json;
/// use toolwire_smol::node::{HostNode, NodeOptions, Tool, ToolError};
/// use toolwire_smol::{CallOptions, Endpoint};
/// # use toolwire_smol::{Gateway, GatewayConfig};
///
/// #[derive(Deserialize, schemars::JsonSchema)]
/// struct Add {
///     a: i64,
///     b: i64,
/// }
///
/// smol::block_on(async {
/// #   let gw = Gateway::new(GatewayConfig::default());
/// #   let ws = gw.listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None).await.unwrap();
/// #   let url = format!("ws://{}", ws.addr);
///     // `gw`, a `Gateway`, listens at `url` (see the `gateway` module).
///     let endpoint = Endpoint::parse(&url).unwrap();
///     let node = HostNode::new(NodeOptions::new("calc")).tool(Tool::typed(
///         "add",
///         "a + b",
///         |_ctx, Add { a, b }| async move { a.checked_add(b).ok_or(ToolError::failed("overflow")) },
///     ));
///     let _node = smol::spawn(async move { node.run(&endpoint, None).await });
///
///     assert!(gw.wait_for_node("calc", Duration::from_secs(5)).await);
///     let opts = || CallOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() };
///     let sum = gw.call("calc", "add", &json!({"a": 2, "b": 3}), opts()).await;
///     assert_eq!(sum.unwrap(), json!(5));
///     // Arguments are checked against the derived schema before they reach the node.
///     let e = gw.call("calc", "add", &json!({"a": 2}), opts()).await.unwrap_err();
///     assert_eq!(e.known(), Some(toolwire_core::ErrorCode::InvalidArguments));
/// });
/// ```
#[derive(Clone)]
pub struct HostNode {
    opts: NodeOptions,
    tools: Arc<Vec<Tool>>,
}

/// Events of a running host node, for observers and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeStatus {
    /// Connected and registered.
    Ready,
    /// A connection ended.
    Ended(SessionEnd),
}

impl HostNode {
    /// A node with no tools yet.
    pub fn new(opts: NodeOptions) -> Self {
        HostNode {
            opts,
            tools: Arc::new(vec![]),
        }
    }

    /// Adds a tool.
    pub fn tool(mut self, tool: Tool) -> Self {
        Arc::make_mut(&mut self.tools).push(tool);
        self
    }

    /// Adds tools.
    pub fn tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        Arc::make_mut(&mut self.tools).extend(tools);
        self
    }

    /// Connects, serves until the connection ends, reconnects with exponential backoff and
    /// jitter. Returns only when the gateway refuses the handshake for good (wrong token,
    /// version); a full gateway (`-32005`) may have room later, so that is retried too.
    /// `status` (if given) hears of every registration and every disconnect.
    pub async fn run(&self, endpoint: &Endpoint, status: Option<Sender<NodeStatus>>) -> SessionEnd {
        let mut delay = self.opts.backoff_initial;
        loop {
            let (end, was_ready) = self.session(endpoint, status.clone()).await;
            if let Some(s) = &status {
                let _ = s.try_send(NodeStatus::Ended(end.clone()));
            }
            if let SessionEnd::Refused(code) = end
                && code != ErrorCode::Busy.code()
            {
                return end;
            }
            if was_ready {
                delay = self.opts.backoff_initial;
            }
            // Full jitter: a random wait up to the current delay, so a fleet does not reconnect
            // in lockstep after a gateway restart.
            let wait = delay.mul_f64(0.5 + fastrand::f64() * 0.5);
            tracing::info!("node {}: {end:?}; reconnecting in {wait:?}", self.opts.id);
            smol::Timer::after(wait).await;
            delay = (delay * 2).min(self.opts.backoff_max);
        }
    }

    /// One connection: connect, hello, register, serve until it ends. `status` hears
    /// [`NodeStatus::Ready`] when the tools are registered.
    pub async fn run_once(
        &self,
        endpoint: &Endpoint,
        status: Option<Sender<NodeStatus>>,
    ) -> SessionEnd {
        self.session(endpoint, status).await.0
    }

    async fn session(
        &self,
        endpoint: &Endpoint,
        status: Option<Sender<NodeStatus>>,
    ) -> (SessionEnd, bool) {
        let (reader, writer) = match transport::connect(
            endpoint,
            self.opts.tls.clone(),
            self.opts.max_frame as usize,
        )
        .await
        {
            Ok(x) => x,
            Err(e) => return (SessionEnd::Lost(e.to_string()), false),
        };
        let defs: Vec<ToolDef<'_>> = self
            .tools
            .iter()
            .map(|t| ToolDef {
                name: Str::new(&t.name),
                description: Str::new(&t.description),
                input_schema: Json::trusted(t.input_schema.as_bytes()),
                output_schema: t
                    .output_schema
                    .as_deref()
                    .map(|s| Json::trusted(s.as_bytes())),
                annotations: t.annotations,
            })
            .collect();
        let mut cfg = NodeConfig::new(&self.opts.id, &defs);
        cfg.token = self.opts.token.as_deref();
        cfg.encodings = self.opts.encodings;
        cfg.hello_encoding = if self.opts.encodings.postcard {
            Encoding::Postcard
        } else {
            Encoding::Json
        };
        cfg.max_frame = self.opts.max_frame;
        let clock = Clock::new();
        let node: Node<'_, MAX_IN_FLIGHT, MAX_ASKS> = Node::new(cfg, clock.now());
        let (cmd_tx, cmd_rx) = unbounded();
        let mut s = NodeSession {
            node,
            tools: self.tools.clone(),
            cmd_tx,
            running: HashMap::default(),
            finished: Vec::new(),
            asks: HashMap::default(),
            status,
            was_ready: false,
            end: None,
        };
        let out = Batch::new(self.opts.max_frame as usize);
        driver::run(&mut s, clock, reader, writer, &cmd_rx, out).await;
        let end = s
            .end
            .take()
            .unwrap_or_else(|| SessionEnd::Lost("connection ended".into()));
        (end, s.was_ready)
    }
}

/// Where the answer to a tool's ask goes.
type AnswerTx = Sender<Result<Value, CallError>>;

/// One connection's node core, the tasks of its calls and their pending asks.
struct NodeSession<'t> {
    node: Node<'t, MAX_IN_FLIGHT, MAX_ASKS>,
    tools: Arc<Vec<Tool>>,
    cmd_tx: Sender<Cmd>,
    running: HashMap<usize, Task<()>, FastHash>,
    /// Calls whose tool answered at once, to send in this turn.
    finished: Vec<(CallHandle, Result<String, ToolError>)>,
    /// Open asks, by call and ask: where the answer goes.
    asks: HashMap<(CallHandle, AskHandle), AnswerTx, FastHash>,
    status: Option<Sender<NodeStatus>>,
    was_ready: bool,
    /// Set when the connection ends (the first reason wins).
    end: Option<SessionEnd>,
}

impl driver::Session for NodeSession<'_> {
    type Cmd = Cmd;

    fn handle_frame(&mut self, now: Instant, frame: &[u8], out: &mut Batch) {
        let h = self.node.handle_frame(now, frame, out.space());
        out.commit(h.reply);
        if let Some(e) = h.error {
            tracing::debug!("bad frame from gateway: {e}");
        }
        if let Some(ev) = h.event {
            self.on_event(ev);
        }
        self.send_finished(out);
    }

    fn handle_cmd(&mut self, cmd: Cmd, out: &mut Batch) {
        self.on_cmd(cmd, out);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    fn drain_events(&mut self, out: &mut Batch) {
        while let Some(ev) = self.node.poll_event() {
            self.on_event(ev);
        }
        self.send_finished(out);
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        self.node.poll_transmit(out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn is_closed(&self) -> bool {
        self.end.is_some()
    }

    fn end(&mut self, why: End) {
        // Dropping the tasks cancels the calls: their results can never reach a later
        // connection.
        self.running.clear();
        self.asks.clear();
        if self.end.is_none() {
            self.end = Some(SessionEnd::Lost(match why {
                End::PeerClosed => "gateway closed the connection".into(),
                End::Failed(e) => e.to_string(),
                End::Closed | End::Abandoned => "connection ended".into(),
            }));
        }
    }
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> Result<String, ToolError> {
    Err(ToolError::failed("the tool panicked"))
}

impl NodeSession<'_> {
    /// Results of the tools that answered as they were called.
    fn send_finished(&mut self, out: &mut Batch) {
        let mut finished = std::mem::take(&mut self.finished);
        for (call, result) in finished.drain(..) {
            self.on_cmd(Cmd::Done { call, result }, out);
        }
        self.finished = finished;
    }

    fn on_event(&mut self, ev: NodeEvent<'_>) {
        match ev {
            NodeEvent::Ready { rejected } => {
                for r in rejected.iter() {
                    tracing::warn!("gateway refused tool `{}`: {}", r.name, r.reason);
                }
                self.was_ready = true;
                if let Some(tx) = &self.status {
                    let _ = tx.try_send(NodeStatus::Ready);
                }
            }
            NodeEvent::Execute { call, tool, args } => {
                let t = self.tools[tool].clone();
                let args: Value = serde_json::from_slice(args.as_bytes()).unwrap_or(Value::Null);
                let ctx = ToolContext {
                    call,
                    cmd: self.cmd_tx.clone(),
                };
                // A panicking tool fails its call (the node and its other calls go on).
                let mut run = Box::pin(
                    AssertUnwindSafe(async move {
                        let _permit = match &t.limit {
                            Some(s) => Some(s.acquire_arc().await),
                            None => None,
                        };
                        // `to_string` writes into one buffer; `Value`'s `Display` goes through
                        // the formatting machinery a piece at a time (~2× the instructions).
                        (t.handler)(ctx, args)
                            .await
                            .map(|v| serde_json::to_string(&v).unwrap_or_default())
                    })
                    .catch_unwind(),
                );
                // Polled once here: a tool that does not wait (most do not) answers in this
                // turn of the loop, with no task spawned and no wake-up through the command
                // channel. One that waits goes on in a task of its own; its next poll there
                // registers the task's waker (the no-op one of this poll is forgotten).
                let mut cx = Context::from_waker(Waker::noop());
                match run.as_mut().poll(&mut cx) {
                    Poll::Ready(r) => {
                        let result = r.unwrap_or_else(panicked);
                        if self.cmd_tx.is_empty() {
                            self.finished.push((call, result));
                        } else {
                            // Progress the tool sent is in the (unbounded) command channel: the
                            // result goes after it.
                            let _ = self.cmd_tx.try_send(Cmd::Done { call, result });
                        }
                    }
                    Poll::Pending => {
                        let done = self.cmd_tx.clone();
                        let task = smol::spawn(async move {
                            let result = run.await.unwrap_or_else(panicked);
                            let _ = done.send(Cmd::Done { call, result }).await;
                        });
                        self.running.insert(call.slot(), task);
                    }
                }
            }
            NodeEvent::Cancel { call } => {
                // Dropping the task cancels the handler at its next await point.
                self.running.remove(&call.slot());
                self.asks.retain(|(c, _), _| *c != call);
            }
            NodeEvent::Answer { call, ask, answer } => {
                if let Some(tx) = self.asks.remove(&(call, ask)) {
                    let r = answer
                        .map(|j| serde_json::from_slice(j.as_bytes()).unwrap_or(Value::Null))
                        .map_err(|e| CallError {
                            code: e.code,
                            message: e.message.to_string(),
                            data: None,
                        });
                    let _ = tx.try_send(r);
                }
            }
            NodeEvent::Closed(reason) => {
                self.end.get_or_insert(match reason {
                    CloseReason::Refused(code) => SessionEnd::Refused(code),
                    CloseReason::Goodbye(r) => SessionEnd::Goodbye(r),
                    CloseReason::Timeout => SessionEnd::Timeout,
                    other => SessionEnd::Lost(format!("{other:?}")),
                });
            }
            _ => {}
        }
    }

    fn on_cmd(&mut self, c: Cmd, out: &mut Batch) {
        match c {
            Cmd::Done { call, result } => {
                self.running.remove(&call.slot());
                if !self.asks.is_empty() {
                    self.asks.retain(|(c, _), _| *c != call);
                }
                let data;
                let r = match &result {
                    Ok(v) => self
                        .node
                        .finish(call, Ok(Json::trusted(v.as_bytes())), out.space()),
                    Err(e) => {
                        data = e.data.as_ref().map(|d| d.to_string());
                        let obj = ErrorObject {
                            code: e.code,
                            message: Str::new(&e.message),
                            data: data.as_deref().map(|d| Json::trusted(d.as_bytes())),
                        };
                        self.node.finish(call, Err(obj), out.space())
                    }
                };
                match r {
                    Ok(n) => out.commit(n),
                    Err(e) => tracing::debug!("result not sent: {e}"),
                }
            }
            Cmd::Progress {
                call,
                progress,
                total,
                message,
                partial,
            } => {
                let partial = partial.as_deref().map(|p| Json::trusted(p.as_bytes()));
                if let Ok(n) = self.node.progress(
                    call,
                    progress,
                    total,
                    message.as_deref(),
                    partial,
                    out.space(),
                ) {
                    out.commit(n);
                }
            }
            Cmd::Log {
                call,
                level,
                message,
            } => {
                if let Ok(n) = self
                    .node
                    .log(Some(call), level, &message, None, out.space())
                {
                    out.commit(n);
                }
            }
            Cmd::Ask {
                call,
                kind,
                prompt,
                schema,
                reply,
            } => {
                let schema = schema.as_deref().map(|s| Json::trusted(s.as_bytes()));
                match self.node.ask(call, kind, &prompt, schema, out.space()) {
                    Ok((ask, n)) => {
                        out.commit(n);
                        self.asks.insert((call, ask), reply);
                    }
                    Err(e) => {
                        let _ = reply
                            .try_send(Err(CallError::new(ErrorCode::AskDeclined, e.to_string())));
                    }
                }
            }
        }
    }
}

/// Reads the node's status until it is ready or `timeout` passes.
pub async fn wait_ready(status: &Receiver<NodeStatus>, timeout: Duration) -> io::Result<()> {
    let r = async {
        loop {
            match status.recv().await {
                Ok(NodeStatus::Ready) => return Ok(()),
                Ok(_) => continue,
                Err(_) => return Err(io::Error::other("node stopped")),
            }
        }
    }
    .or(async {
        smol::Timer::after(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "node not ready in time",
        ))
    });
    r.await
}
