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
//! toolwire::mcp::serve_stdio(client, toolwire::mcp::McpOptions::default()).await
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
mod list;
mod names;
mod protocol;
mod session;

use std::io;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use smol::channel::Sender;
use toolwire_smol::client::Client;

use list::Catalogs;
use protocol::{METHOD_NOT_FOUND, RpcError, Version, negotiate};

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

/// Options of the bridge.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// How long a tool call may take (sent as the call's `deadline_ms`); `None` leaves it to
    /// the gateway's default (30 s).
    pub call_timeout: Option<Duration>,
    /// Tools per `tools/list` page.
    pub page_size: usize,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
            page_size: PAGE_SIZE,
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

/// What the tasks of one session share: the gateway client, the negotiated version, the
/// listing snapshots, and the writer's queue.
struct Bridge {
    client: Client,
    opts: McpOptions,
    out: Sender<String>,
    version: Mutex<Version>,
    initialized: AtomicBool,
    catalogs: Mutex<Catalogs>,
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
}
