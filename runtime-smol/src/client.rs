//! A controller: connects to a gateway and lists or calls tools on its nodes. The CLI and the
//! MCP bridge are built on it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState as FastHash;
use futures_rustls::rustls::ClientConfig;
use serde_json::Value;
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;
use toolwire_core::controller::{Controller, ControllerConfig, ControllerEvent};
use toolwire_core::frame::{
    Annotations, AskKind, Budgeted, CallWith, ListNodes, ListRules, ListTools, NodesPage,
    ReadResult, Request, Resolve, Resolved, ResultPage, Rule, RulesList, Scope, SetRules,
    ToolsPage,
};
use toolwire_core::router::{AskRule, HeldPage};
use toolwire_core::{
    EncodeError, ErrorCode, ErrorObject, Instant, Json, Limits, List, OwnedId, Payload, Str,
};

use crate::clock::Clock;
use crate::driver::{self, Batch, End};
use crate::gateway::{AskRequest, CallError, LogLine, NodeSummary, Progress};
use crate::transport::{self, Endpoint};

/// Largest frame a client sends or accepts.
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// How to connect.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Name given in the hello.
    pub name: Option<String>,
    /// Token, if the gateway requires one.
    pub token: Option<String>,
    /// TLS client configuration for `wss://` and `tls://`.
    pub tls: Option<Arc<ClientConfig>>,
}

/// A tool as a controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSummary {
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

/// Options of one call through a client.
#[derive(Clone, Debug, Default)]
pub struct ClientCallOptions {
    /// How long the gateway waits for the node.
    pub timeout: Option<Duration>,
    /// Receives progress.
    pub progress: Option<Sender<Progress>>,
    /// Receives the tool's questions; without it they are declined.
    pub asks: Option<Sender<AskRequest>>,
    /// Receives the lines the node logs about this call (`log`); without it they are dropped.
    pub logs: Option<Sender<LogLine>>,
    /// Bypass the gateway's result cache: the call reaches the node even if a fresh result
    /// is kept, and its result replaces that one.
    pub no_cache: bool,
    /// The result budget (at least 16 bytes). The result is then the `Budgeted` envelope
    /// (PROTOCOL.md section 7): `{"value": …}` within the budget, or `{"held": {"handle",
    /// "total_bytes", "page", "next_offset"}}` with the first page of the result's JSON
    /// text, the rest to read with [`Client::read_result`].
    pub max_result_bytes: Option<u32>,
}

enum Kind {
    Nodes,
    Tools,
    Resolve,
    /// A request whose result is `{}`.
    Empty,
    Rules,
    Call {
        progress: Option<Sender<Progress>>,
        asks: Option<Sender<AskRequest>>,
        logs: Option<Sender<LogLine>>,
        budgeted: bool,
    },
    Page,
}

enum Reply {
    Nodes(Vec<NodeSummary>, Option<String>),
    Tools(Vec<ToolSummary>, Option<String>),
    Resolved(Vec<String>),
    Empty,
    Rules(Vec<AskRule>),
    Value(String),
    Page(HeldPage),
}

enum OwnedRequest {
    Nodes {
        cursor: Option<String>,
    },
    Tools {
        prefix: Option<String>,
        node: Option<String>,
        cursor: Option<String>,
    },
    Resolve {
        tool: String,
    },
    Scope {
        tools: Vec<String>,
    },
    SetRules {
        rules: Vec<AskRule>,
    },
    ListRules,
    Call {
        node: String,
        tool: String,
        args: String,
        deadline_ms: Option<u32>,
        cache: Option<bool>,
        max_result_bytes: Option<u32>,
    },
    Read {
        handle: String,
        offset: u32,
        length: Option<u32>,
    },
}

enum Cmd {
    Request {
        req: OwnedRequest,
        kind: Kind,
        reply: Sender<Result<Reply, CallError>>,
        id: Sender<u64>,
    },
    Cancel(u64),
    Answer {
        ask: OwnedId,
        answer: Result<String, CallError>,
    },
}

/// Something the gateway told this controller unprompted.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// A node's tools changed (it connected, left, registered or withdrew tools).
    ToolsChanged(String),
    /// The connection to the gateway ended.
    Disconnected,
}

/// A controller connection to a gateway.
///
/// Listing a gateway's tools and calling one (the gateway and its node run in-process here, on
/// loopback):
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
/// use toolwire_smol::Endpoint;
/// # use toolwire_smol::node::{HostNode, NodeOptions, Tool};
/// # use toolwire_smol::{Gateway, GatewayConfig};
///
/// smol::block_on(async {
/// #   let gw = Gateway::new(GatewayConfig::default());
/// #   let ws = gw.listen(&Endpoint::parse("ws://127.0.0.1:0").unwrap(), None).await.unwrap();
/// #   let url = format!("ws://{}", ws.addr);
/// #   let node = HostNode::new(NodeOptions::new("dev-1")).tool(Tool::new(
/// #       "echo",
/// #       "returns its arguments",
/// #       json!({"type": "object"}),
/// #       |_ctx, args| async move { Ok(args) },
/// #   ));
/// #   let ep = Endpoint::parse(&url).unwrap();
/// #   let _node = smol::spawn(async move { node.run(&ep, None).await });
/// #   assert!(gw.wait_for_node("dev-1", Duration::from_secs(5)).await);
///     // A gateway listens at `url`; node `dev-1` has registered `echo`.
///     let client = Client::connect(&Endpoint::parse(&url).unwrap(), ClientOptions::default())
///         .await
///         .unwrap();
///     let tools = client.tools(None, None).await.unwrap();
///     assert_eq!((tools[0].node.as_str(), tools[0].name.as_str()), ("dev-1", "echo"));
///
///     let opts = ClientCallOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() };
///     let r = client.call("dev-1", "echo", &json!({"hi": 1}), opts).await;
///     assert_eq!(r.unwrap(), json!({"hi": 1}));
/// });
/// ```
pub struct Client {
    cmd: Sender<Cmd>,
    events: Receiver<ClientEvent>,
    _task: Task<()>,
}

struct CancelOnDrop {
    id: Option<u64>,
    cmd: Sender<Cmd>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let _ = self.cmd.try_send(Cmd::Cancel(id));
        }
    }
}

impl Client {
    /// Connects and completes the handshake.
    pub async fn connect(endpoint: &Endpoint, opts: ClientOptions) -> io::Result<Client> {
        let (reader, writer) = transport::connect(endpoint, opts.tls.clone(), MAX_FRAME).await?;
        Client::over(reader, writer, opts).await
    }

    /// Completes the handshake over frames already connected to a gateway (the gateway's own
    /// MCP endpoint connects its sessions in-process this way).
    pub(crate) async fn over(
        mut reader: transport::FrameReader,
        mut writer: transport::FrameWriter,
        opts: ClientOptions,
    ) -> io::Result<Client> {
        let clock = Clock::new();
        let mut cfg = ControllerConfig::new(opts.name.as_deref().unwrap_or("toolwire-cli"));
        if let Some(t) = &opts.token {
            cfg = cfg.with_token(t).ok_or_else(|| {
                io::Error::other(format!(
                    "token longer than {} bytes",
                    toolwire_core::controller::MAX_TOKEN
                ))
            })?;
        }
        let mut core = Controller::new(cfg, clock.now());
        let mut out = Batch::new(MAX_FRAME);
        // Handshake inline, so connect() reports refusals as errors.
        while let Some(r) = core.poll_transmit(out.space()) {
            out.commit(r.map_err(io::Error::other)?);
        }
        writer.send_all(out.iter()).await?;
        out.clear();
        loop {
            let f = reader
                .next()
                .or(async {
                    smol::Timer::after(Duration::from_secs(10)).await;
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no welcome from the gateway",
                    ))
                })
                .await?
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "gateway closed the connection",
                    )
                })?;
            // A reply (a rejection, say) goes out with the driver's first batch.
            let h = core.handle_frame(clock.now(), f, out.space());
            out.commit(h.reply);
            match h.event {
                Some(ControllerEvent::Ready) => break,
                Some(ControllerEvent::Closed(r)) => {
                    let why = match r {
                        toolwire_core::node::CloseReason::Refused(c) => {
                            match ErrorCode::from_code(c) {
                                Some(ErrorCode::Unauthorized) => {
                                    "unauthorized: missing or wrong token".to_owned()
                                }
                                Some(ErrorCode::Busy) => {
                                    "busy: as many controllers connected as it allows".to_owned()
                                }
                                Some(c) => c.message().to_owned(),
                                None => format!("error {c}"),
                            }
                        }
                        other => format!("{other:?}"),
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("gateway refused: {why}"),
                    ));
                }
                _ => {}
            }
        }
        let (cmd_tx, cmd_rx) = unbounded();
        let (ev_tx, ev_rx) = bounded(256);
        let mut session = ClientSession {
            core,
            pending: HashMap::default(),
            cmd: cmd_tx.clone(),
            events: ev_tx,
        };
        let task = smol::spawn(async move {
            driver::run(&mut session, clock, reader, writer, &cmd_rx, out).await;
        });
        Ok(Client {
            cmd: cmd_tx,
            events: ev_rx,
            _task: task,
        })
    }

    /// Events from the gateway (tool changes, disconnection). Events are dropped if nobody
    /// reads them and 256 are queued.
    pub fn events(&self) -> Receiver<ClientEvent> {
        self.events.clone()
    }

    async fn request(&self, req: OwnedRequest, kind: Kind) -> Result<Reply, CallError> {
        let (tx, rx) = bounded(1);
        let (id_tx, id_rx) = bounded(1);
        self.cmd
            .send(Cmd::Request {
                req,
                kind,
                reply: tx,
                id: id_tx,
            })
            .await
            .map_err(|_| gone())?;
        let mut guard = CancelOnDrop {
            id: None,
            cmd: self.cmd.clone(),
        };
        guard.id = id_rx.recv().await.ok();
        let r = rx.recv().await.unwrap_or_else(|_| Err(gone()));
        guard.id = None;
        r
    }

    /// Every connected node (all pages).
    pub async fn nodes(&self) -> Result<Vec<NodeSummary>, CallError> {
        let mut all = vec![];
        let mut cursor = None;
        loop {
            match self
                .request(OwnedRequest::Nodes { cursor }, Kind::Nodes)
                .await?
            {
                Reply::Nodes(page, next) => {
                    all.extend(page);
                    match next {
                        Some(c) => cursor = Some(c),
                        None => return Ok(all),
                    }
                }
                _ => return Err(unexpected()),
            }
        }
    }

    /// Every tool (all pages), optionally by name prefix or node.
    pub async fn tools(
        &self,
        prefix: Option<&str>,
        node: Option<&str>,
    ) -> Result<Vec<ToolSummary>, CallError> {
        let mut all = vec![];
        let mut cursor = None;
        loop {
            let req = OwnedRequest::Tools {
                prefix: prefix.map(str::to_owned),
                node: node.map(str::to_owned),
                cursor,
            };
            match self.request(req, Kind::Tools).await? {
                Reply::Tools(page, next) => {
                    all.extend(page);
                    match next {
                        Some(c) => cursor = Some(c),
                        None => return Ok(all),
                    }
                }
                _ => return Err(unexpected()),
            }
        }
    }

    /// Nodes offering `tool`.
    pub async fn resolve(&self, tool: &str) -> Result<Vec<String>, CallError> {
        match self
            .request(
                OwnedRequest::Resolve {
                    tool: tool.to_owned(),
                },
                Kind::Resolve,
            )
            .await?
        {
            Reply::Resolved(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    /// Narrows this connection's view to the tools one of `patterns` matches (`node/tool`, or
    /// `tool` on any node; `*` matches any run of characters): from then on [`Client::tools`]
    /// lists and [`Client::call`] reaches only those, and a call outside the set is refused
    /// with -32006. An empty list lifts the narrowing. PROTOCOL.md section 6, `tools.scope`.
    pub async fn set_tool_scope<S: AsRef<str>>(&self, patterns: &[S]) -> Result<(), CallError> {
        let tools = patterns.iter().map(|p| p.as_ref().to_owned()).collect();
        match self
            .request(OwnedRequest::Scope { tools }, Kind::Empty)
            .await?
        {
            Reply::Empty => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Sets this connection's ask rules (replacing any before; empty removes them): the
    /// gateway answers a matching ask of this client's calls itself, first match first,
    /// instead of relaying it (PROTOCOL.md section 6, `rules.set`). Refused with -32602 if a
    /// rule is not one ([`AskRule::from_wire`] says when).
    pub async fn set_ask_rules(&self, rules: &[AskRule]) -> Result<(), CallError> {
        let rules = rules.to_vec();
        match self
            .request(OwnedRequest::SetRules { rules }, Kind::Empty)
            .await?
        {
            Reply::Empty => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// This connection's ask rules, as the gateway holds them.
    pub async fn ask_rules(&self) -> Result<Vec<AskRule>, CallError> {
        match self.request(OwnedRequest::ListRules, Kind::Rules).await? {
            Reply::Rules(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    /// Calls a tool; dropping the future cancels the call.
    pub async fn call(
        &self,
        node: &str,
        tool: &str,
        args: &Value,
        opts: ClientCallOptions,
    ) -> Result<Value, CallError> {
        let req = OwnedRequest::Call {
            node: node.to_owned(),
            tool: tool.to_owned(),
            args: serde_json::to_string(args).unwrap_or_default(),
            deadline_ms: opts
                .timeout
                .map(|d| d.as_millis().min(u128::from(u32::MAX)) as u32),
            cache: opts.no_cache.then_some(false),
            max_result_bytes: opts.max_result_bytes,
        };
        match self
            .request(
                req,
                Kind::Call {
                    progress: opts.progress,
                    asks: opts.asks,
                    logs: opts.logs,
                    budgeted: opts.max_result_bytes.is_some(),
                },
            )
            .await?
        {
            Reply::Value(v) => serde_json::from_str(&v)
                .map_err(|e| CallError::new(ErrorCode::InternalError, e.to_string())),
            _ => Err(unexpected()),
        }
    }

    /// A page of a result the gateway holds for this connection (a call with
    /// [`ClientCallOptions::max_result_bytes`] whose result was longer): from `offset` (0 or
    /// a `next_offset`), at most `length` bytes (the call's budget if `None`). `-32015` once
    /// it is no longer held.
    pub async fn read_result(
        &self,
        handle: &str,
        offset: u32,
        length: Option<u32>,
    ) -> Result<HeldPage, CallError> {
        let req = OwnedRequest::Read {
            handle: handle.to_owned(),
            offset,
            length,
        };
        match self.request(req, Kind::Page).await? {
            Reply::Page(p) => Ok(p),
            _ => Err(unexpected()),
        }
    }
}

fn gone() -> CallError {
    CallError::new(ErrorCode::Disconnected, "connection to the gateway lost")
}

fn unexpected() -> CallError {
    CallError::new(ErrorCode::InternalError, "unexpected reply")
}

struct Pending {
    kind: Kind,
    reply: Sender<Result<Reply, CallError>>,
}

/// The controller core and the requests waiting for their responses.
struct ClientSession {
    core: Controller,
    pending: HashMap<u64, Pending, FastHash>,
    /// For answers to asks, sent by tasks of their own.
    cmd: Sender<Cmd>,
    events: Sender<ClientEvent>,
}

fn decode_reply(kind: &Kind, p: Payload<'_>) -> Result<Reply, CallError> {
    let limits = Limits::default();
    let bad = |e: toolwire_core::DecodeError| {
        CallError::new(ErrorCode::InternalError, format!("unreadable reply: {e}"))
    };
    Ok(match kind {
        Kind::Nodes => {
            let page: NodesPage<'_> = p.decode(&limits).map_err(bad)?;
            Reply::Nodes(
                page.nodes
                    .iter()
                    .map(|n| NodeSummary {
                        id: n.id.to_string(),
                        tools: n.tools as usize,
                        in_flight: n.in_flight as usize,
                        encoding: n.encoding,
                    })
                    .collect(),
                page.next_cursor.map(|c| c.to_string()),
            )
        }
        Kind::Tools => {
            let page: ToolsPage<'_> = p.decode(&limits).map_err(bad)?;
            Reply::Tools(
                page.tools
                    .iter()
                    .map(|e| ToolSummary {
                        node: e.node.to_string(),
                        name: e.tool.name.to_string(),
                        description: e.tool.description.to_string(),
                        input_schema: serde_json::from_slice(e.tool.input_schema.as_bytes())
                            .unwrap_or(Value::Null),
                        output_schema: e
                            .tool
                            .output_schema
                            .and_then(|o| serde_json::from_slice(o.as_bytes()).ok()),
                        annotations: e.tool.annotations,
                    })
                    .collect(),
                page.next_cursor.map(|c| c.to_string()),
            )
        }
        Kind::Resolve => {
            let r: Resolved<'_> = p.decode(&limits).map_err(bad)?;
            Reply::Resolved(r.nodes.iter().map(|n| n.to_string()).collect())
        }
        Kind::Empty => {
            p.decode::<()>(&limits).map_err(bad)?;
            Reply::Empty
        }
        Kind::Rules => {
            let r: RulesList<'_> = p.decode(&limits).map_err(bad)?;
            let rules: Result<Vec<AskRule>, _> =
                r.rules.iter().map(|r| AskRule::from_wire(&r)).collect();
            Reply::Rules(rules.map_err(|f| CallError::new(ErrorCode::InvalidParams, f.message))?)
        }
        Kind::Call {
            budgeted: false, ..
        } => {
            let j: Json<'_> = p.decode(&limits).map_err(bad)?;
            Reply::Value(j.as_str().to_owned())
        }
        Kind::Call { budgeted: true, .. } => {
            // The envelope in its JSON form, whatever the encoding.
            let b: Budgeted<'_> = p.decode(&limits).map_err(bad)?;
            let v = match (b.value, b.held) {
                (Some(v), None) => serde_json::json!({
                    "value": serde_json::from_str::<Value>(v.as_str()).unwrap_or(Value::Null)
                }),
                (None, Some(h)) => serde_json::json!({"held": {
                    "handle": h.handle.to_string(),
                    "total_bytes": h.total_bytes,
                    "page": h.page.to_string(),
                    "next_offset": h.next_offset,
                }}),
                _ => return Err(unexpected()),
            };
            Reply::Value(v.to_string())
        }
        Kind::Page => {
            let r: ResultPage<'_> = p.decode(&limits).map_err(bad)?;
            Reply::Page(HeldPage {
                page: r.page.to_string(),
                total_bytes: r.total_bytes,
                next_offset: r.next_offset,
            })
        }
    })
}

impl driver::Session for ClientSession {
    type Cmd = Cmd;

    fn handle_frame(&mut self, now: Instant, frame: &[u8], out: &mut Batch) {
        let h = self.core.handle_frame(now, frame, out.space());
        out.commit(h.reply);
        if let Some(e) = h.error {
            tracing::debug!("bad frame from gateway: {e}");
        }
        match h.event {
            Some(ControllerEvent::Response { id, result }) => {
                if let Some(p) = self.pending.remove(&id) {
                    let r = match result {
                        Ok(payload) => decode_reply(&p.kind, payload),
                        Err(e) => Err(CallError {
                            code: e.code,
                            message: e.message.to_string(),
                            data: e
                                .data
                                .and_then(|d| serde_json::from_slice(d.as_bytes()).ok()),
                        }),
                    };
                    let _ = p.reply.try_send(r);
                }
            }
            Some(ControllerEvent::Progress {
                call,
                progress,
                total,
                message,
                partial,
            }) => {
                if let Some(Pending {
                    kind:
                        Kind::Call {
                            progress: Some(tx), ..
                        },
                    ..
                }) = self.pending.get(&call)
                {
                    let _ = tx.try_send(Progress {
                        progress,
                        total,
                        message: message.map(|m| m.to_string()),
                        partial: partial.and_then(|p| serde_json::from_slice(p.as_bytes()).ok()),
                    });
                }
            }
            Some(ControllerEvent::Log {
                call,
                level,
                message,
                data,
            }) => {
                if let Some(Pending {
                    kind: Kind::Call { logs: Some(tx), .. },
                    ..
                }) = self.pending.get(&call)
                {
                    let _ = tx.try_send(LogLine {
                        level,
                        message: message.to_string(),
                        data: data.and_then(|d| serde_json::from_slice(d.as_bytes()).ok()),
                    });
                }
            }
            Some(ControllerEvent::Ask {
                ask,
                call,
                kind,
                prompt,
                schema,
            }) => {
                self.on_ask(
                    ask,
                    call,
                    kind,
                    prompt,
                    schema.map(|s| s.as_str().to_owned()),
                    out,
                );
            }
            Some(ControllerEvent::ToolsChanged { node }) => {
                let _ = self
                    .events
                    .try_send(ClientEvent::ToolsChanged(node.to_string()));
            }
            // `Closed` too: the core is closed now, and the loop stops.
            _ => {}
        }
    }

    fn handle_cmd(&mut self, cmd: Cmd, out: &mut Batch) {
        match cmd {
            Cmd::Request {
                req,
                kind,
                reply,
                id,
            } => {
                let r = match &req {
                    OwnedRequest::Nodes { cursor } => self.core.request(
                        &Request::ListNodes(ListNodes {
                            cursor: cursor.as_deref().map(Str::new),
                            limit: None,
                        }),
                        out.space(),
                    ),
                    OwnedRequest::Tools {
                        prefix,
                        node,
                        cursor,
                    } => self.core.request(
                        &Request::ListTools(ListTools {
                            prefix: prefix.as_deref().map(Str::new),
                            node: node.as_deref().map(Str::new),
                            cursor: cursor.as_deref().map(Str::new),
                            limit: None,
                        }),
                        out.space(),
                    ),
                    OwnedRequest::Resolve { tool } => self.core.request(
                        &Request::Resolve(Resolve {
                            tool: Str::new(tool),
                        }),
                        out.space(),
                    ),
                    OwnedRequest::Scope { tools } => {
                        let names: Vec<Str<'_>> = tools.iter().map(|t| Str::new(t)).collect();
                        self.core.request(
                            &Request::Scope(Scope {
                                tools: List::from_slice(&names),
                            }),
                            out.space(),
                        )
                    }
                    OwnedRequest::SetRules { rules } => {
                        let wire: Vec<Rule<'_>> = rules.iter().map(AskRule::to_wire).collect();
                        self.core.request(
                            &Request::SetRules(SetRules {
                                rules: List::from_slice(&wire),
                            }),
                            out.space(),
                        )
                    }
                    OwnedRequest::ListRules => self
                        .core
                        .request(&Request::ListRules(ListRules {}), out.space()),
                    OwnedRequest::Read {
                        handle,
                        offset,
                        length,
                    } => self.core.request(
                        &Request::ReadResult(ReadResult {
                            handle: Str::new(handle),
                            offset: *offset,
                            length: *length,
                        }),
                        out.space(),
                    ),
                    OwnedRequest::Call {
                        node,
                        tool,
                        args,
                        deadline_ms,
                        cache,
                        max_result_bytes,
                    } => {
                        let args = match Json::parse(args.as_bytes()) {
                            Ok(a) => a,
                            Err(e) => {
                                let _ = reply.try_send(Err(CallError::new(
                                    ErrorCode::InvalidParams,
                                    e.to_string(),
                                )));
                                return;
                            }
                        };
                        let call = CallWith {
                            node: Str::new(node),
                            tool: Str::new(tool),
                            arguments: args,
                            deadline_ms: *deadline_ms,
                            cache: *cache,
                            max_result_bytes: *max_result_bytes,
                        };
                        self.core.request(&call.into_request(), out.space())
                    }
                };
                match r {
                    Ok((rid, n)) => {
                        out.commit(n);
                        let _ = id.try_send(rid);
                        self.pending.insert(rid, Pending { kind, reply });
                    }
                    Err(e) => {
                        let _ = reply
                            .try_send(Err(CallError::new(ErrorCode::FrameTooLarge, e.to_string())));
                    }
                }
            }
            Cmd::Cancel(id) => {
                if self.pending.remove(&id).is_some()
                    && let Ok(n) = self.core.cancel(id, out.space())
                {
                    out.commit(n);
                }
            }
            Cmd::Answer { ask, answer } => {
                let r = match &answer {
                    Ok(v) => self
                        .core
                        .answer(&ask, Ok(&Json::trusted(v.as_bytes())), out.space()),
                    Err(e) => self.core.answer::<Json<'_>>(
                        &ask,
                        Err(&ErrorObject {
                            code: e.code,
                            message: Str::new(&e.message),
                            data: None,
                        }),
                        out.space(),
                    ),
                };
                if let Ok(n) = r {
                    out.commit(n);
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    fn drain_events(&mut self, _out: &mut Batch) {
        // Only the close of a timeout (or a shutdown) arrives this way: `is_closed` ends the
        // loop.
        while self.core.poll_event().is_some() {}
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        self.core.poll_transmit(out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    fn end(&mut self, _why: End) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.try_send(Err(gone()));
        }
        let _ = self.events.try_send(ClientEvent::Disconnected);
    }
}

impl ClientSession {
    fn on_ask(
        &mut self,
        ask: OwnedId,
        call: u64,
        kind: AskKind,
        prompt: Str<'_>,
        schema: Option<String>,
        out: &mut Batch,
    ) {
        let asks = match self.pending.get(&call) {
            Some(Pending {
                kind: Kind::Call { asks: Some(tx), .. },
                ..
            }) => Some(tx.clone()),
            _ => None,
        };
        let Some(tx) = asks else {
            let e = ErrorObject::new(ErrorCode::AskDeclined, "this controller takes no questions");
            if let Ok(n) = self.core.answer::<Json<'_>>(&ask, Err(&e), out.space()) {
                out.commit(n);
            }
            return;
        };
        let (rtx, rrx) = bounded(1);
        let req = crate::gateway::ask_request(
            kind,
            prompt.to_string(),
            schema.and_then(|s| serde_json::from_str(&s).ok()),
            rtx,
        );
        let cmd = self.cmd.clone();
        smol::spawn(async move {
            let answer = if tx.send(req).await.is_ok() {
                rrx.recv().await.unwrap_or_else(|_| {
                    Err(CallError::new(ErrorCode::AskDeclined, "nobody answered"))
                })
            } else {
                Err(CallError::new(ErrorCode::AskDeclined, "nobody to ask"))
            };
            let _ = cmd
                .send(Cmd::Answer {
                    ask,
                    answer: answer.map(|v| v.to_string()),
                })
                .await;
        })
        .detach();
    }
}
