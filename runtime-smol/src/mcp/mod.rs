//! The MCP layer: an MCP server whose tools are the tools of every node connected to a
//! gateway, on two transports.
//!
//! - **stdio**: `toolwire mcp --gateway URL` connects a [`Client`] and calls
//!   [`serve_stdio_reconnecting`]. MCP's stdio transport is newline-delimited JSON-RPC 2.0 on
//!   stdin and stdout (logs go to stderr).
//! - **Streamable HTTP**: the gateway serves it at `/mcp` on its HTTP port ([`McpHttpConfig`];
//!   sessions, event streams, resumption and Origin checks are told in the `http` module).
//!
//! Either answers `initialize`, `ping`, `tools/list`, `tools/call` and `logging/setLevel`;
//! forwards a node's progress as `notifications/progress` and its log lines as
//! `notifications/message`; turns a node's `ask` into `elicitation/create` (a permission or
//! an input), `sampling/createMessage` (a sample) or `roots/list` (roots) for a client that
//! declares the capability, and declines it otherwise; turns `notifications/cancelled` into
//! cancelling the gateway call; and sends `notifications/tools/list_changed` when the gateway
//! reports that a node's tools changed. `/mcp` also serves the stateless revision 2026-07-28
//! ([`MODERN_VERSIONS`]: `server/discover`, asks as input requests of the result, the tasks
//! extension; the `http::modern` module tells how).
//!
//! - **Names.** A tool is listed as `node__tool` (node id, two underscores, tool name): both
//!   parts use MCP's alphabet already, and 32 + 2 + 64 bytes fit MCP's 128. Two pairs can still
//!   meet on one name (`a` + `_b` and `a_` + `b`); the pair that sorts first keeps it and the
//!   other gets `-2` (`-3`, …). Calls are routed through the table built by the last listing,
//!   never by splitting the name.
//! - **Paging.** `tools/list` pages hold [`PAGE_SIZE`] tools. A cursorless request takes a fresh
//!   snapshot from the gateway; its cursors page through that snapshot, so pages never skip or
//!   repeat a tool when nodes come and go in between.
//! - **Results.** A string is one text block with the string; any other value one text block
//!   with its JSON, plus `structuredContent` when it is an object (checked against the tool's
//!   output schema first); `{"$content": [blocks]}` is those MCP content blocks. Every
//!   gateway or tool error (unknown node, arguments rejected by the schema, timeout, the
//!   tool's own failure, a result that breaks its output schema) is a result with
//!   `isError: true`, so the model sees it; JSON-RPC errors are kept for protocol problems
//!   (`-32602` for an unknown tool name or bad params, `-32601` for unknown methods).
//! - **Result budget** ([`McpOptions::max_result_bytes`], `toolwire mcp --max-result-bytes N`).
//!   Every call sets the gateway's result budget. A result whose JSON text fits is shown as
//!   without the budget; a longer one is cut to its first page (at most N bytes, at a character
//!   boundary), the gateway holds the whole text (five minutes by default, for this connection
//!   only), and the text block is the page followed by a note on its own line:
//!
//!   ```text
//!   [toolwire: result truncated — bytes 0 to 4096 of 1048576 shown. Read more with the tool toolwire_read_result and {"handle":"r1","offset":4096}]
//!   ```
//!
//!   The bridge then lists one more tool, [`READ_RESULT_TOOL`] (`toolwire_read_result`), with
//!   arguments `{handle, offset, length?}`: its result is the page from `offset` (at most
//!   `length` bytes, N by default), followed by the same note while more remains, and nothing
//!   after the last page, so the pages joined are the result's JSON text. A handle no longer
//!   held (`-32015`) or an offset that starts no page (`-32602`) is an `isError` result with
//!   the gateway's message. The name cannot be a node's tool as the bridge names them: those
//!   always hold [`SEPARATOR`] (`__`), and this one does not. Output schemas are left out of
//!   the listing under a budget, since a cut result has no `structuredContent` to match one.
//!   Without a budget there is no extra tool and nothing changes.
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
//! toolwire_smol::mcp::serve_stdio(client, toolwire_smol::mcp::McpOptions::default()).await
//! # }
//! ```
//!
//! Built on `serde_json` rather than an MCP SDK: the Rust SDKs (`rmcp`, `rust-mcp-sdk`) run on
//! tokio, and the server side of MCP the bridge needs is small.

// The bridge by concern: `session` runs the stdio loop (a reader, a writer, a watcher of the
// gateway's events, a task per request); `protocol` sorts JSON-RPC messages and builds the
// answers; `list` keeps listing snapshots and pages through them; `names` maps a node's tool to
// its MCP name; `calls` runs `tools/call` with progress and cancellation.
mod calls;
mod http;
mod list;
mod names;
mod protocol;
mod session;
mod tasks;

use std::io;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::client::Client;
use serde_json::{Value, json};
use smol::channel::Sender;
use smol::future::FutureExt;

use list::Catalogs;
use protocol::{METHOD_NOT_FOUND, RpcError, Version, negotiate};

pub use calls::INPUT_KEY;
pub use http::{MODERN_VERSIONS, McpHttpConfig};
pub(crate) use http::{McpSessions, handle as handle_http};
pub use session::serve;

/// The MCP protocol versions the bridge speaks, newest first. A client asking for one of these
/// gets it; any other request is answered with the first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 50;

/// How long a tool call may take unless told otherwise: agents wait on slow tools longer than
/// a gateway's own default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Separates node and tool in an MCP tool name.
pub const SEPARATOR: &str = "__";

/// The tool that reads on in a result the gateway holds, listed under a result budget
/// ([`McpOptions::max_result_bytes`]). Without [`SEPARATOR`] in it, so no node's tool is ever
/// listed under this name.
pub const READ_RESULT_TOOL: &str = "toolwire_read_result";

/// Options of the bridge.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// How long a tool call may take (sent as the call's `deadline_ms`); `None` leaves it to
    /// the gateway's default (30 s).
    pub call_timeout: Option<Duration>,
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// The result budget of every call, in bytes of the result's JSON text (at least
    /// [`MIN_RESULT_BYTES`](crate::gateway::MIN_RESULT_BYTES)): a longer result is cut
    /// to its first page with a note, and [`READ_RESULT_TOOL`] reads on. `None`: whole results.
    pub max_result_bytes: Option<u32>,
    /// Name a tool by its own name where only one node offers it (`read_sensor`), and
    /// `node__tool` only where two or more do; `false` (the default): always `node__tool`, so
    /// that a name never changes when another node comes (MCP hosts remember permissions by
    /// name).
    pub bare_names: bool,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
            page_size: PAGE_SIZE,
            max_result_bytes: None,
            bare_names: false,
        }
    }
}

/// Serves MCP over stdio for the gateway `client` is connected to, until stdin ends (`Ok`) or
/// the gateway connection is lost (`Err`).
pub async fn serve_stdio(client: Client, opts: McpOptions) -> io::Result<()> {
    serve(
        client,
        smol::Unblock::new(std::io::stdin()),
        smol::Unblock::new(std::io::stdout()),
        opts,
    )
    .await
}

/// Makes a new gateway connection for the bridge (connect, then set the tool set and ask
/// rules the first one had).
pub type Reconnect = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Client>> + Send>>
        + Send
        + Sync,
>;

/// [`serve_stdio`] that outlives its gateway: when the connection is lost, `reconnect` is
/// tried again and again (0.5 s apart at first, then up to 5 s), calls meanwhile fail with a
/// tool error, and once back the client gets `notifications/tools/list_changed`. Returns
/// when stdin ends.
pub async fn serve_stdio_reconnecting(
    client: Client,
    opts: McpOptions,
    reconnect: Reconnect,
) -> io::Result<()> {
    session::serve_with(
        client,
        smol::Unblock::new(std::io::stdin()),
        smol::Unblock::new(std::io::stdout()),
        opts,
        Some(reconnect),
    )
    .await
}

/// What one request knows of its client: the protocol version, the client's capabilities,
/// the least level of log lines it takes, and where a node's asks go.
struct Ctx {
    version: Version,
    /// The client's capabilities (`initialize`'s, or the request's `_meta` in 2026-07-28).
    caps: Value,
    /// Log lines below this level are not sent; `None`: none are (2026-07-28 without
    /// `logLevel` in `_meta`).
    log_level: Option<crate::gateway::LogLevel>,
    /// 2026-07-28: every ask goes here, to become an input request of the result (the
    /// `modern` module); `None`: asks become requests to the client, or are declined.
    park: Option<Sender<crate::gateway::AskRequest>>,
    /// The session task (2025-11-25) the call runs as, whose status shows its asks.
    tracked: Option<std::sync::Arc<tasks::SessionTask>>,
}

/// The client capability an ask of `kind` needs.
fn capability_for(kind: toolwire_core::frame::AskKind) -> &'static str {
    use toolwire_core::frame::AskKind;
    match kind {
        AskKind::Permission | AskKind::Input => "elicitation",
        AskKind::Sample => "sampling",
        AskKind::Roots => "roots",
    }
}

impl Ctx {
    /// True if the client takes an ask of `kind`: form-mode elicitation (`elicitation: {}` or
    /// with `form`) for permissions and inputs, `sampling` for samples, `roots` for roots.
    fn takes(&self, kind: toolwire_core::frame::AskKind) -> bool {
        let cap = capability_for(kind);
        match self.caps.get(cap) {
            Some(Value::Object(e)) if cap == "elicitation" => {
                e.is_empty() || e.contains_key("form")
            }
            Some(Value::Object(_)) => true,
            _ => false,
        }
    }
}

/// What the tasks of one session share: the gateway client, the negotiated version, the
/// listing snapshots, and the writer's queue.
struct Bridge {
    /// The gateway connection; replaced when the stdio bridge reconnects.
    client: Mutex<std::sync::Arc<Client>>,
    opts: McpOptions,
    out: Sender<String>,
    version: Mutex<Version>,
    initialized: AtomicBool,
    catalogs: Mutex<Catalogs>,
    /// The client's capabilities, from `initialize`.
    client_caps: Mutex<Value>,
    /// The least level of log lines sent (`logging/setLevel`; `info` until set).
    log_level: Mutex<crate::gateway::LogLevel>,
    /// Requests of ours to the client (`elicitation/create`) waiting for its response.
    waiting: Mutex<std::collections::HashMap<String, Sender<Value>>>,
    next_request: std::sync::atomic::AtomicU64,
    /// Calls run as tasks (2025-11-25).
    tasks: tasks::SessionTasks,
}

impl Bridge {
    fn new(client: Client, opts: McpOptions, out: Sender<String>) -> Bridge {
        Bridge {
            client: Mutex::new(std::sync::Arc::new(client)),
            opts,
            out,
            version: Mutex::new(Version::LATEST),
            initialized: AtomicBool::new(false),
            catalogs: Mutex::new(Catalogs::default()),
            client_caps: Mutex::new(Value::Null),
            log_level: Mutex::new(crate::gateway::LogLevel::Info),
            waiting: Mutex::new(std::collections::HashMap::new()),
            next_request: std::sync::atomic::AtomicU64::new(1),
            tasks: tasks::SessionTasks::default(),
        }
    }

    fn log_level(&self) -> crate::gateway::LogLevel {
        *self.log_level.lock().unwrap()
    }

    /// `logging/setLevel`: log lines below `level` are no longer sent.
    fn set_level(&self, params: &Value) -> Result<Value, RpcError> {
        let level = params
            .get("level")
            .and_then(Value::as_str)
            .and_then(crate::gateway::LogLevel::from_name)
            .ok_or_else(|| {
                RpcError::params(
                    "`level` must be one of debug, info, notice, warning, error, critical, \
                     alert, emergency",
                )
            })?;
        *self.log_level.lock().unwrap() = level;
        Ok(json!({}))
    }

    /// The context of a request in a session (revisions up to 2025-11-25).
    fn ctx(&self) -> Ctx {
        Ctx {
            version: self.version(),
            caps: self.client_caps.lock().unwrap().clone(),
            log_level: Some(self.log_level()),
            park: None,
            tracked: None,
        }
    }

    /// Sends the client a request of ours through `out` and waits for its response, at most
    /// `wait`: the result, or the error's message.
    async fn ask_client(
        &self,
        method: &str,
        params: Value,
        out: &Sender<String>,
        wait: Duration,
    ) -> Result<Value, String> {
        use std::sync::atomic::Ordering;
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let id = format!("toolwire-{n}");
        let (tx, rx) = smol::channel::bounded(1);
        self.waiting.lock().unwrap().insert(id.clone(), tx);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let _ = out.send(msg.to_string()).await;
        let answer = async { rx.recv().await.ok() }
            .or(async {
                smol::Timer::after(wait).await;
                None
            })
            .await;
        self.waiting.lock().unwrap().remove(&id);
        let Some(answer) = answer else {
            return Err(format!("no answer to {method} within {} s", wait.as_secs()));
        };
        match (answer.get("result"), answer.get("error")) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(e)) => Err(e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the client refused")
                .to_owned()),
            _ => Err("an answer without result or error".to_owned()),
        }
    }

    /// A response from the client to a request of ours; false if nothing waits for it.
    fn deliver(&self, id: &Value, message: Value) -> bool {
        let key = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self.waiting.lock().unwrap().remove(&key) {
            Some(tx) => tx.try_send(message).is_ok(),
            None => false,
        }
    }

    fn client(&self) -> std::sync::Arc<Client> {
        self.client.lock().unwrap().clone()
    }

    fn version(&self) -> Version {
        *self.version.lock().unwrap()
    }

    async fn send(&self, msg: Value) {
        let _ = self.out.send(msg.to_string()).await;
    }

    /// Answers one request. `out` takes the messages that belong to it (its progress): on
    /// stdio the session's output, over HTTP the request's own stream.
    async fn handle(
        self: &std::sync::Arc<Self>,
        method: &str,
        params: Value,
        out: &Sender<String>,
    ) -> Result<Value, RpcError> {
        let tasks = self.version() >= Version::V2025_11_25;
        match method {
            "initialize" => self.initialize(&params),
            "ping" => Ok(json!({})),
            "tools/list" => self.list_tools(self.version(), &params).await,
            "tools/call" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                let support = match name {
                    READ_RESULT_TOOL => "forbidden",
                    _ => self
                        .with_input_schema(name, tasks::task_support)
                        .await
                        .unwrap_or("forbidden"),
                };
                match (
                    params.get("task").is_some_and(Value::is_object) && tasks,
                    support,
                ) {
                    (true, "forbidden") => Err(RpcError::params(format!(
                        "{name} does not run as a task (execution.taskSupport is forbidden)"
                    ))),
                    (true, _) => self.call_as_task(&params).await,
                    (false, "required") if tasks => Err(RpcError::params(format!(
                        "{name} runs as a task only: call it with `task`"
                    ))),
                    (false, _) => self.call_tool(&self.ctx(), &params, out).await,
                }
            }
            "tasks/get" | "tasks/result" | "tasks/list" | "tasks/cancel" if tasks => {
                self.task_request(method, &params).await
            }
            "logging/setLevel" => self.set_level(&params),
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
        *self.client_caps.lock().unwrap() = params.get("capabilities").cloned().unwrap_or_default();
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
        let naming = if self.opts.bare_names {
            format!(
                "A tool offered by one node has its own name; one offered by several is named \
                 <node>{SEPARATOR}<tool> for each."
            )
        } else {
            format!(
                "A tool is named <node>{SEPARATOR}<tool>: the same tool on two nodes is two \
                 tools."
            )
        };
        let mut instructions = format!(
            "Tools of the devices and hosts connected to a toolwire gateway. {naming} The list \
             changes as nodes come and go."
        );
        if let Some(n) = self.opts.max_result_bytes {
            instructions.push_str(&format!(
                " A result longer than {n} bytes is cut, with a note on its last line saying \
                 how to read more with the tool {READ_RESULT_TOOL}."
            ));
        }
        let mut capabilities = json!({"tools": {"listChanged": true}, "logging": {}});
        if version >= Version::V2025_11_25 {
            capabilities["tasks"] =
                json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
        }
        Ok(json!({
            "protocolVersion": version.as_str(),
            "capabilities": capabilities,
            "serverInfo": info,
            "instructions": instructions,
        }))
    }
}
