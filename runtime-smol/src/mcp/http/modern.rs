//! MCP revision 2026-07-28 at `/mcp`: stateless. There is no `initialize` and no session;
//! every POST is one request that says its protocol version and the client's capabilities in
//! `params._meta`, and is answered on its own.
//!
//! - **Which revision.** A request whose `MCP-Protocol-Version` header names a version other
//!   than the handshake revisions (2024-11-05 to 2025-11-25) is served here; any other goes to
//!   the sessions of the `http` module. So `initialize` with `2026-07-28` is `404`.
//! - **Checks, in order** (the first that fails answers, with the request's id): `_meta` with
//!   `protocolVersion` and `clientCapabilities` (`400`, `-32602`); the `MCP-Protocol-Version`,
//!   `Mcp-Method` and `Mcp-Name` headers agree with the body (`400`, `-32020`); the version is
//!   2026-07-28 (`400`, `-32022` with the supported ones); the method exists in this revision
//!   (`404`, `-32601`: `initialize`, `ping` and `logging/setLevel` are gone).
//! - **Methods.** `server/discover`; `tools/list` and `tools/call`; `prompts/list`,
//!   `resources/list` and `resources/templates/list` (empty: nodes offer tools only);
//!   `subscriptions/listen` (a stream of `notifications/tools/list_changed`, after its
//!   acknowledgement). Every result says `resultType`, lists say `ttlMs: 0` and
//!   `cacheScope: "private"` (they change as nodes come and go), and every result names the
//!   server in `_meta`.
//! - **Answers.** One JSON response, unless a notification (progress; log lines at or above
//!   the request's `logLevel`, none without one) comes first: then a server-sent event stream
//!   of those, then the response. Errors go as JSON with their HTTP status (`-32601` `404`;
//!   `-32602`, `-32020`, `-32021`, `-32022` `400`). Closing the response cancels the call.
//! - **Asks become input requests** (multi round-trip requests). When a node asks, the
//!   result is `{"resultType": "input_required", "inputRequests": {key: request, …},
//!   "requestState": s}` and the call keeps running at the gateway; the client calls again
//!   with `inputResponses` and `requestState`, and the answers reach the node. A tool may
//!   have several asks open at once: those that come within
//!   [`McpHttpConfig::input_gather`] of each other go in one result, and a round that
//!   answers only some of them is answered with the rest. `key` is the ask's [`INPUT_KEY`]
//!   if it has one (`-2`, `-3`… appended should two open asks share it), else `ask-<n>`. A permission or input is
//!   `elicitation/create`, a sample `sampling/createMessage`, roots `roots/list`. An ask the
//!   client declared no capability for is declined at once (the tool may go on without it);
//!   a call that then fails is answered `-32021` naming the capability. `requestState` is a
//!   fresh random handle each round, kept [`McpHttpConfig::input_wait`]: an unknown one is
//!   `-32602`, and a call nobody comes back for is cancelled then. An answer given before it
//!   is asked for (in the first request) is used when the ask comes.
//!
//! [`INPUT_KEY`]: crate::mcp::INPUT_KEY

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream;
use hyper::body::{Frame, Incoming as HttpBody};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt;

use super::super::calls::{answer_ask, check_response, input_key, input_request};
use super::super::protocol::{
    INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, Version,
    error_response, notification, response,
};
use super::super::session::Control;
use super::super::{Bridge, Ctx, capability_for};
use super::{EventLog, McpHttpConfig, accepted, accepts, json, lock, session_id};

mod tasks;
use crate::gateway::{AskRequest, Gateway, LogLevel};
use crate::http::Body;

/// The revisions served here.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

const HEADER_MISMATCH: i32 = -32020;
const MISSING_CAPABILITY: i32 = -32021;
const UNSUPPORTED_VERSION: i32 = -32022;

/// Notifications kept for a call while it waits for its client to come back.
const KEPT_NOTES: usize = 256;

/// True if a request to `/mcp` is for a stateless revision (its `MCP-Protocol-Version` is
/// not a handshake revision).
pub(super) fn is_modern(h: &HeaderMap) -> bool {
    h.get(super::VERSION).is_some_and(|v| {
        !v.to_str()
            .is_ok_and(|v| super::PROTOCOL_VERSIONS.contains(&v.trim()))
    })
}

/// What the stateless requests of a gateway share.
#[derive(Default)]
pub(crate) struct Modern {
    /// One controller connection per bearer token, shared by that token's requests.
    shared: std::sync::Mutex<HashMap<Option<String>, Arc<Shared>>>,
    /// Calls waiting for their client's input responses, by `requestState`.
    parked: std::sync::Mutex<HashMap<String, Parked>>,
    /// Calls that became tasks.
    tasks: tasks::Tasks,
}

/// A controller connection for stateless requests, and its stream of list changes.
struct Shared {
    bridge: Arc<Bridge>,
    /// `notifications/tools/list_changed`, for `subscriptions/listen`.
    changes: Arc<EventLog>,
    lost: Arc<AtomicBool>,
    _tasks: Vec<Task<()>>,
}

/// What a running call sends its driver.
enum Ev {
    /// A notification for the client (progress, a log line).
    Note(String),
    /// The call's response.
    Done(Result<Value, RpcError>),
}

/// A call of a stateless `tools/call`, running at the gateway.
struct Call {
    /// Dropping it cancels the call.
    _task: Task<()>,
    events: Receiver<Ev>,
    asks: Receiver<AskRequest>,
    /// The asks the client was asked and has not answered yet, in the order they came.
    pending: Vec<Pending>,
    /// Capabilities the client lacked for asks that were declined.
    missing: BTreeSet<&'static str>,
    /// Asks so far (for `ask-<n>` keys).
    asked: u32,
    tool: String,
    /// The call's arguments: a later round must name the same.
    args: Value,
    token: Option<String>,
}

struct Pending {
    key: String,
    ask: AskRequest,
    /// `{method, params}` as sent in `inputRequests`.
    request: Value,
    method: &'static str,
    wrapped: bool,
}

/// A call parked between rounds.
struct Parked {
    call: Call,
    expires: Instant,
}

/// What one request says of its client.
struct Req {
    id: Value,
    caps: Value,
    log_level: Option<LogLevel>,
    /// `inputResponses`, by key; taken as they are used.
    responses: Map<String, Value>,
}

/// A message of a request's answer.
enum Out {
    Note(String),
    Final(Value),
}

/// Serves a stateless request to `/mcp`.
pub(super) async fn handle(
    gw: &Gateway,
    req: Request<HttpBody>,
    token: Option<String>,
) -> Response<Body> {
    if req.method() != Method::POST {
        let mut r = rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &Value::Null,
            INVALID_REQUEST,
            "2026-07-28 has no GET or DELETE at /mcp: every request is a POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let h = req.headers().clone();
    if !accepts(&h, "application/json") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            &Value::Null,
            INVALID_REQUEST,
            "Not Acceptable: Accept must list application/json",
        );
    }
    let body = match super::json_body(gw, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                PARSE_ERROR,
                &format!("parse error: {e}"),
            );
        }
    };
    let Value::Object(mut msg) = msg else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            INVALID_REQUEST,
            "one JSON-RPC request per POST (no batches)",
        );
    };
    let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
    let id = match msg.remove("id") {
        // A notification: nothing in this revision acts on one.
        None if method.is_some() => return accepted(),
        Some(id @ (Value::String(_) | Value::Number(_))) if id.is_string() || id.is_i64() => id,
        _ => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                INVALID_REQUEST,
                "not a JSON-RPC request (an id, a string or an integer, and a method)",
            );
        }
    };
    let Some(method) = method else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_REQUEST,
            "a request needs a method",
        );
    };
    let params = match msg.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                INVALID_PARAMS,
                "params must be an object",
            );
        }
    };
    let meta = params.get("_meta").and_then(Value::as_object);
    let (version, caps) = match meta.map(|m| (m.get(META_VERSION), m.get(META_CAPS))) {
        Some((Some(v), Some(c))) => (v.clone(), c.clone()),
        _ => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                INVALID_PARAMS,
                &format!("params._meta must hold {META_VERSION} and {META_CAPS}"),
            );
        }
    };
    if let Err(why) = check_headers(&h, &method, &params, &version) {
        return rpc_error(StatusCode::BAD_REQUEST, &id, HEADER_MISMATCH, &why);
    }
    let version = version.as_str().unwrap_or_default();
    if !MODERN_VERSIONS.contains(&version) {
        let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": UNSUPPORTED_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": MODERN_VERSIONS, "requested": version}}});
        return json(StatusCode::BAD_REQUEST, &e);
    }
    let log_level = meta
        .and_then(|m| m.get(META_LOG))
        .and_then(Value::as_str)
        .and_then(LogLevel::from_name);
    let req = Req {
        id,
        caps: if caps.is_object() { caps } else { json!({}) },
        log_level,
        responses: Map::new(),
    };
    let sse = accepts(&h, "text/event-stream");
    match method.as_str() {
        "server/discover" => reply(discover(gw, &req)),
        "tools/list" | "tools/call" | "subscriptions/listen" => {
            let shared = match shared(gw, token.clone()).await {
                Ok(s) => s,
                Err(r) => return r,
            };
            match method.as_str() {
                "tools/list" => {
                    let r = shared
                        .bridge
                        .list_tools(Version::V2026_07_28, &params)
                        .await;
                    reply(finish(&req.id, r, true))
                }
                "tools/call" => call(gw, &h, shared, token, req, params, sse).await,
                _ => listen(gw, &shared, &req, &params, sse),
            }
        }
        "tasks/get" | "tasks/update" | "tasks/cancel" => {
            let cfg = &gw.config().http.mcp;
            reply(tasks::handle(gw, cfg, &req, &method, &params, &token))
        }
        "prompts/list" => reply(finish(&req.id, Ok(json!({"prompts": []})), true)),
        "resources/list" => reply(finish(&req.id, Ok(json!({"resources": []})), true)),
        "resources/templates/list" => {
            reply(finish(&req.id, Ok(json!({"resourceTemplates": []})), true))
        }
        "prompts/get" => reply(finish(
            &req.id,
            Err(RpcError::params(
                "no such prompt: this gateway offers tools only",
            )),
            false,
        )),
        "resources/read" => reply(finish(
            &req.id,
            Err(RpcError::params(
                "no such resource: this gateway offers tools only",
            )),
            false,
        )),
        _ => {
            let e = json!({"jsonrpc": "2.0", "id": req.id, "error": {"code": METHOD_NOT_FOUND,
                "message": "Method not found", "data": method}});
            json(StatusCode::NOT_FOUND, &e)
        }
    }
}

/// A header value with the spaces and tabs around it taken off.
fn header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut all = h.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(format!("the {name} header is given twice"));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|v| Some(v.trim_matches([' ', '\t'])))
            .map_err(|_| format!("the {name} header is not visible ASCII")),
    }
}

/// A value of `Mcp-Name` as the body has it: `=?base64?…?=` decoded (strict, padded), any
/// other value as it is.
fn decode_name(v: &str) -> Result<String, String> {
    use base64::Engine;
    let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Ok(v.to_owned());
    };
    base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| "a base64 header value that does not decode".to_owned())
}

/// The routing headers agree with the body: `MCP-Protocol-Version` with `_meta`'s version,
/// `Mcp-Method` with the method, `Mcp-Name` with the tool, prompt or resource named.
fn check_headers(
    h: &HeaderMap,
    method: &str,
    params: &Value,
    version: &Value,
) -> Result<(), String> {
    let v = header(h, super::VERSION)?;
    if v.is_none() || version.as_str() != v {
        return Err(
            "Header mismatch: MCP-Protocol-Version must equal params._meta's \
                    io.modelcontextprotocol/protocolVersion"
                .into(),
        );
    }
    if header(h, "mcp-method")? != Some(method) {
        return Err(format!("Header mismatch: Mcp-Method must be {method}"));
    }
    let named = match method {
        "tools/call" | "prompts/get" => params.get("name").and_then(Value::as_str),
        "resources/read" => params.get("uri").and_then(Value::as_str),
        "tasks/get" | "tasks/update" | "tasks/cancel" => {
            params.get("taskId").and_then(Value::as_str)
        }
        _ => None,
    };
    if let Some(named) = named {
        let given = header(h, "mcp-name")?.map(decode_name).transpose()?;
        if given.as_deref() != Some(named) {
            return Err(format!("Header mismatch: Mcp-Name must be {named}"));
        }
    }
    Ok(())
}

/// The arguments a schema mirrors in headers: for each property reached from the root through
/// `properties` that says `"x-mcp-header": NAME`, its path and NAME. `None` if an annotation
/// is not usable (not a header token, on a type other than string, integer or boolean, or
/// the same name twice, case aside): such a schema is not checked.
fn param_headers(schema: &Value) -> Option<Vec<(Vec<String>, String)>> {
    fn walk(
        schema: &Value,
        path: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, String)>,
        depth: usize,
    ) -> Option<()> {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return Some(());
        };
        if depth > 8 {
            return Some(());
        }
        for (name, prop) in props {
            path.push(name.clone());
            if let Some(h) = prop.get("x-mcp-header") {
                let h = h.as_str()?;
                let token = !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                let typed = prop
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| ["string", "integer", "boolean"].contains(&t));
                if !token || !typed || out.iter().any(|(_, o)| o.eq_ignore_ascii_case(h)) {
                    return None;
                }
                out.push((path.clone(), h.to_owned()));
            }
            walk(prop, path, out, depth + 1)?;
            path.pop();
        }
        Some(())
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out, 0)?;
    Some(out)
}

/// `Mcp-Param-NAME` headers agree with the arguments they mirror (SEP-2243): there when the
/// argument is, absent when it is not, once, and equal to it (`=?base64?…?=` decoded; a
/// boolean as `true`/`false`, a number by value).
fn check_param_headers(h: &HeaderMap, schema: &Value, args: &Value) -> Result<(), String> {
    for (path, name) in param_headers(schema).unwrap_or_default() {
        let header_name = format!("mcp-param-{}", name.to_ascii_lowercase());
        let given = header(h, &header_name)?;
        let arg = path
            .iter()
            .try_fold(args, |v, k| v.get(k))
            .filter(|v| !v.is_null());
        let ok = match (arg, given) {
            (None, None) => true,
            (None, Some(_)) => {
                return Err(format!(
                    "Header mismatch: Mcp-Param-{name} is given without its argument"
                ));
            }
            (Some(_), None) => {
                return Err(format!("Header mismatch: Mcp-Param-{name} is required"));
            }
            (Some(v), Some(g)) => {
                let g = decode_name(g)?;
                match v {
                    Value::String(s) => *s == g,
                    Value::Bool(b) => g == b.to_string(),
                    Value::Number(n) => g.parse::<f64>().ok() == n.as_f64(),
                    _ => false,
                }
            }
        };
        if !ok {
            return Err(format!(
                "Header mismatch: Mcp-Param-{name} differs from its argument"
            ));
        }
    }
    Ok(())
}

fn server_info() -> Value {
    json!({"name": "toolwire", "version": env!("CARGO_PKG_VERSION")})
}

/// A response with `resultType` (if missing), the server's name in `_meta`, and for a list
/// the caching hints.
fn finish(id: &Value, r: Result<Value, RpcError>, cacheable: bool) -> Value {
    let r = r.map(|mut v| {
        if let Some(o) = v.as_object_mut() {
            o.entry("resultType").or_insert(json!("complete"));
            if cacheable {
                o.insert("ttlMs".into(), json!(0));
                o.insert("cacheScope".into(), json!("private"));
            }
            let meta = o.entry("_meta").or_insert(json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert(META_SERVER.into(), server_info());
            }
        }
        v
    });
    response(id, r)
}

/// The HTTP status of a JSON-RPC answer.
fn status_of(msg: &Value) -> StatusCode {
    match msg.pointer("/error/code").and_then(Value::as_i64) {
        None => StatusCode::OK,
        Some(c) if c == i64::from(METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        Some(c)
            if [
                PARSE_ERROR,
                INVALID_REQUEST,
                INVALID_PARAMS,
                HEADER_MISMATCH,
                MISSING_CAPABILITY,
                UNSUPPORTED_VERSION,
            ]
            .iter()
            .any(|&k| i64::from(k) == c) =>
        {
            StatusCode::BAD_REQUEST
        }
        Some(_) => StatusCode::OK,
    }
}

fn reply(msg: Value) -> Response<Body> {
    json(status_of(&msg), &msg)
}

fn rpc_error(status: StatusCode, id: &Value, code: i32, message: &str) -> Response<Body> {
    json(status, &error_response(id, code, message))
}

fn discover(gw: &Gateway, req: &Req) -> Value {
    let mut instructions = "Tools of the devices and hosts connected to a toolwire gateway. \
        The list changes as nodes come and go: subscriptions/listen tells when."
        .to_owned();
    if let Some(n) = gw.config().http.mcp.options.max_result_bytes {
        instructions.push_str(&format!(
            " A result longer than {n} bytes is cut, with a note on its last line saying how to \
             read more with the tool {}.",
            super::super::READ_RESULT_TOOL
        ));
    }
    let result = json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": {"tools": {"listChanged": true}, "logging": {}, "prompts": {},
            "resources": {}, "extensions": {tasks::EXTENSION: {}}},
        "instructions": instructions,
    });
    finish(&req.id, Ok(result), true)
}

/// The shared controller connection of `token`'s stateless requests: made on first use,
/// made again once lost. `Err` is the response.
#[allow(clippy::result_large_err)]
async fn shared(gw: &Gateway, token: Option<String>) -> Result<Arc<Shared>, Response<Body>> {
    let modern = &gw.inner.mcp.modern;
    if let Some(s) = lock(&modern.shared).get(&token)
        && !s.lost.load(Ordering::Relaxed)
    {
        return Ok(s.clone());
    }
    let (bridge, changes, ctl_rx, mut tasks) = super::local_bridge(gw, token.clone(), 16)
        .await
        .map_err(|e| {
            rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &Value::Null,
                INVALID_REQUEST,
                &format!("no controller connection for MCP: {e}"),
            )
        })?;
    // Tool list changes are for the listen streams (and nothing else: no session-era lines).
    bridge.initialized.store(true, Ordering::Relaxed);
    *bridge.version.lock().unwrap() = Version::V2026_07_28;
    let lost = Arc::new(AtomicBool::new(false));
    let ends = {
        let (lost, changes) = (lost.clone(), changes.clone());
        smol::spawn(async move {
            while let Ok(c) = ctl_rx.recv().await {
                if matches!(c, Control::GatewayLost) {
                    break;
                }
            }
            lost.store(true, Ordering::Relaxed);
            changes.close();
        })
    };
    let s = Arc::new(Shared {
        bridge,
        changes,
        lost,
        _tasks: {
            tasks.push(ends);
            tasks
        },
    });
    lock(&modern.shared).insert(token, s.clone());
    Ok(s)
}

/// `subscriptions/listen`: the acknowledgement (what of the filter is honoured: tool list
/// changes), then each `notifications/tools/list_changed` tagged with the subscription,
/// until the client closes the stream (or the gateway's connection is lost).
fn listen(gw: &Gateway, shared: &Shared, req: &Req, params: &Value, sse: bool) -> Response<Body> {
    if !sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            &req.id,
            INVALID_REQUEST,
            "Not Acceptable: subscriptions/listen answers with text/event-stream",
        );
    }
    let Some(filter) = params.get("notifications").and_then(Value::as_object) else {
        return reply(finish(
            &req.id,
            Err(RpcError::params("`notifications` must be an object")),
            false,
        ));
    };
    let tools = filter.get("toolsListChanged") == Some(&json!(true));
    let sub = json!({ META_SUBSCRIPTION: req.id });
    let honoured = if tools {
        json!({"toolsListChanged": true})
    } else {
        json!({})
    };
    let ack = notification(
        "notifications/subscriptions/acknowledged",
        Some(json!({"notifications": honoured, "_meta": sub})),
    );
    let changes = shared.changes.clone();
    let from = changes.last();
    let end = json!({"jsonrpc": "2.0", "id": req.id,
        "result": {"resultType": "complete", "_meta": sub}});
    let keepalive = gw.config().http.sse_keepalive;
    let (tx, rx) = bounded::<Out>(16);
    let task = smol::spawn(async move {
        if tx.send(Out::Note(ack.to_string())).await.is_err() {
            return;
        }
        let mut after = from;
        while let Some((n, m)) = changes.next_after(after, None).await {
            after = n;
            if !tools || !m.contains(r#""method":"notifications/tools/list_changed""#) {
                continue;
            }
            let Ok(mut v) = serde_json::from_str::<Value>(&m) else {
                continue;
            };
            v["params"] = json!({"_meta": sub});
            if tx.send(Out::Note(v.to_string())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Out::Final(end)).await;
    });
    sse_stream(rx, None, task, keepalive)
}

/// Server-sent events: `first` (if any), then what `rx` brings until the final message. The
/// stream owns `task`: closing it drops the task.
fn sse_stream(
    rx: Receiver<Out>,
    first: Option<String>,
    task: Task<()>,
    keepalive: std::time::Duration,
) -> Response<Body> {
    let state = (rx, first, Some(task), false);
    let events = stream::unfold(state, move |(rx, first, task, done)| async move {
        if done {
            return None;
        }
        let event =
            |data: &str| Frame::data(Bytes::from(format!("event: message\ndata: {data}\n\n")));
        if let Some(f) = first {
            return Some((Ok::<_, std::io::Error>(event(&f)), (rx, None, task, false)));
        }
        let next = async { Some(rx.recv().await) }
            .or(async {
                smol::Timer::after(keepalive).await;
                None
            })
            .await;
        match next {
            None => Some((
                Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))),
                (rx, None, task, false),
            )),
            Some(Ok(Out::Note(n))) => Some((Ok(event(&n)), (rx, None, task, false))),
            Some(Ok(Out::Final(v))) => Some((Ok(event(&v.to_string())), (rx, None, task, true))),
            Some(Err(_)) => None,
        }
    });
    crate::http::event_stream(events)
}

/// `tools/call`: a new call, or the next round of a parked one (`requestState`). Answered as
/// JSON, or as an event stream once a notification comes before the response.
async fn call(
    gw: &Gateway,
    req_headers: &HeaderMap,
    shared: Arc<Shared>,
    token: Option<String>,
    mut req: Req,
    params: Value,
    sse: bool,
) -> Response<Body> {
    let Some(name) = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return reply(finish(
            &req.id,
            Err(RpcError::params("`name` must be a string")),
            false,
        ));
    };
    match params.get("inputResponses") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => req.responses = m.clone(),
        Some(_) => {
            return reply(finish(
                &req.id,
                Err(RpcError::params("`inputResponses` must be an object")),
                false,
            ));
        }
    }
    // Arguments a tool's schema mirrors in headers (`x-mcp-header`) must match them.
    let no_args = json!({});
    let args = params.get("arguments").unwrap_or(&no_args);
    let checked = shared
        .bridge
        .with_input_schema(&name, |schema| {
            let headers = check_param_headers(req_headers, schema, args);
            (headers, tasks::mode(&req.caps, Some(schema)))
        })
        .await;
    let mode = match checked {
        Some((Err(why), _)) => {
            return rpc_error(StatusCode::BAD_REQUEST, &req.id, HEADER_MISMATCH, &why);
        }
        Some((Ok(()), mode)) => mode,
        None => tasks::mode(&req.caps, None),
    };
    if mode == tasks::Mode::Needed {
        return reply(tasks::needs_extension(
            &req.id,
            "this tool runs as a task only",
        ));
    }
    let modern = gw.clone();
    let call = match params.get("requestState") {
        None | Some(Value::Null) => start(&shared, &params, &name, token),
        Some(Value::String(state)) => {
            let taken = {
                let mut parked = lock(&gw.inner.mcp.modern.parked);
                let now = Instant::now();
                parked.retain(|_, p| p.expires > now);
                match parked.get(state) {
                    Some(p)
                        if p.call.tool == name
                            && p.call.token == token
                            && p.call.args == arguments(&params) =>
                    {
                        parked.remove(state)
                    }
                    _ => None,
                }
            };
            match taken {
                Some(p) => p.call,
                None => {
                    let e = json!({"jsonrpc": "2.0", "id": req.id, "error": {"code": INVALID_PARAMS,
                        "message": "Invalid or expired requestState",
                        "data": {"reason": "invalid_request_state"}}});
                    return json(StatusCode::BAD_REQUEST, &e);
                }
            }
        }
        Some(_) => {
            return reply(finish(
                &req.id,
                Err(RpcError::params("`requestState` must be a string")),
                false,
            ));
        }
    };
    let (tx, rx) = bounded::<Out>(64);
    let task = smol::spawn(async move {
        let cfg = &modern.config().http.mcp;
        let mut call = call;
        let step = match mode {
            tasks::Mode::Off => Some(round(&mut call, &mut req, &tx, sse, cfg.input_gather).await),
            // A call still running after a moment becomes a task.
            _ => {
                async { Some(round(&mut call, &mut req, &tx, sse, cfg.input_gather).await) }
                    .or(async {
                        smol::Timer::after(cfg.task_after).await;
                        None
                    })
                    .await
            }
        };
        let last = match step {
            Some(Step::Final(msg)) if mode == tasks::Mode::Required => {
                tasks::create(&modern, cfg, call, &req, Some(msg))
            }
            Some(Step::Final(msg)) => msg,
            Some(Step::Ask) => park(&modern, cfg, call, &req.id),
            Some(Step::Refused(why)) => refused(&modern, cfg, call, &req.id, &why),
            None => tasks::create(&modern, cfg, call, &req, None),
        };
        let _ = tx.send(Out::Final(last)).await;
    });
    match rx.recv().await {
        Ok(Out::Final(v)) => {
            drop(task);
            reply(v)
        }
        Ok(Out::Note(n)) => sse_stream(rx, Some(n), task, gw.config().http.sse_keepalive),
        Err(_) => rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::Null,
            super::super::protocol::INTERNAL_ERROR,
            "the call's driver ended without an answer",
        ),
    }
}

/// Starts a call at the gateway whose asks and messages come to its driver.
fn start(shared: &Arc<Shared>, params: &Value, name: &str, token: Option<String>) -> Call {
    let (etx, erx) = unbounded::<Ev>();
    // As many asks as a call may have open at the gateway.
    let (atx, arx) = bounded::<AskRequest>(toolwire_core::router::MAX_ASKS_PER_CALL);
    let bridge = shared.bridge.clone();
    let args = arguments(params);
    let params = params.clone();
    let task = smol::spawn(async move {
        let ctx = Ctx {
            version: Version::V2026_07_28,
            caps: json!({}),
            // Every line comes here; each round sends those its request asks for.
            log_level: Some(LogLevel::Debug),
            park: Some(atx),
            tracked: None,
        };
        let (otx, orx) = bounded::<String>(64);
        let run = async {
            let r = bridge.call_tool(&ctx, &params, &otx).await;
            drop(otx);
            r
        };
        let pump = async {
            while let Ok(m) = orx.recv().await {
                // Bounded while nobody reads (the call is parked): the oldest are kept.
                if etx.len() < KEPT_NOTES {
                    let _ = etx.send(Ev::Note(m)).await;
                }
            }
        };
        let (r, ()) = smol::future::zip(run, pump).await;
        let _ = etx.send(Ev::Done(r)).await;
    });
    Call {
        _task: task,
        events: erx,
        asks: arx,
        pending: Vec::new(),
        missing: BTreeSet::new(),
        asked: 0,
        tool: name.to_owned(),
        args,
        token,
    }
}

/// A call's arguments (`{}` when it has none).
fn arguments(params: &Value) -> Value {
    match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a) => a.clone(),
    }
}

/// True if a notification goes to a client whose request asked for log lines at `level`
/// (`None`: none): progress always; a log line at that level or above.
fn wanted(note: &str, level: Option<LogLevel>) -> bool {
    if !note.starts_with(r#"{"jsonrpc":"2.0","method":"notifications/message""#) {
        return true;
    }
    let Some(level) = level else { return false };
    serde_json::from_str::<Value>(note)
        .ok()
        .and_then(|v| {
            v.pointer("/params/level")?
                .as_str()
                .and_then(LogLevel::from_name)
        })
        .is_some_and(|l| l.rank() >= level.rank())
}

/// What a round of a call came to.
enum Step {
    /// The call's response (or the error that ended it).
    Final(Value),
    /// The call asks: its [`Call::pending`] asks are the input requests the client is to
    /// answer.
    Ask,
    /// An answer given to a pending ask is not one: why (the ask stays pending).
    Refused(String),
}

/// One round of a call: its notifications to `tx` (if `sse`), until it ends, or it has asks
/// open and no new one came for `gather`. The answers to the last round's asks, and to any
/// ask of this round, are taken from `req.responses`; an ask the client declared no
/// capability for is declined. The open asks live in `call.pending` throughout, so a round
/// dropped midway (the call became a task) loses none.
async fn round(
    call: &mut Call,
    req: &mut Req,
    tx: &Sender<Out>,
    sse: bool,
    gather: std::time::Duration,
) -> Step {
    let ctx = Ctx {
        version: Version::V2026_07_28,
        caps: req.caps.clone(),
        log_level: req.log_level,
        park: None,
        tracked: None,
    };
    // The answers to the asks of the last round.
    let mut refused = None;
    for p in std::mem::take(&mut call.pending) {
        match req.responses.remove(&p.key) {
            None => call.pending.push(p),
            Some(r) => match check_response(p.method, &r) {
                Err(why) => {
                    refused.get_or_insert_with(|| format!("{}: {why}", p.key));
                    call.pending.push(p);
                }
                Ok(()) => answer_ask(p.ask, p.wrapped, Ok(r)),
            },
        }
    }
    if let Some(why) = refused {
        return Step::Refused(why);
    }
    let mut until = (!call.pending.is_empty()).then(|| Instant::now() + gather);
    loop {
        let next = async { Some(Ok(call.events.recv().await)) }
            .or(async {
                Some(match call.asks.recv().await {
                    Ok(a) => Err(a),
                    // The call ended: its response is on `events`.
                    Err(_) => Ok(call.events.recv().await),
                })
            })
            .or(async {
                match until {
                    Some(t) => {
                        smol::Timer::at(t).await;
                        None
                    }
                    None => std::future::pending().await,
                }
            })
            .await;
        let Some(next) = next else {
            // Asks are open and no more came: the client answers these.
            return Step::Ask;
        };
        match next {
            Ok(Ok(Ev::Note(n))) => {
                if sse && wanted(&n, ctx.log_level) {
                    let _ = tx.send(Out::Note(n)).await;
                }
            }
            // Asks still open are declined as the call ends.
            Ok(Ok(Ev::Done(r))) => return Step::Final(done(&req.id, r, &call.missing)),
            Ok(Err(_)) => {
                return Step::Final(finish(
                    &req.id,
                    Err(RpcError::new(
                        super::super::protocol::INTERNAL_ERROR,
                        "the call ended without an answer",
                    )),
                    false,
                ));
            }
            Err(ask) => {
                if !ctx.takes(ask.kind) {
                    let cap = capability_for(ask.kind);
                    call.missing.insert(cap);
                    ask.decline(&format!("the MCP client did not declare {cap}"));
                    continue;
                }
                call.asked += 1;
                let base = input_key(&ask).unwrap_or_else(|| format!("ask-{}", call.asked));
                let key = unique_key(&base, &call.pending);
                let (method, params, wrapped) = input_request(&ask, true);
                match req.responses.remove(&key) {
                    Some(r) => match check_response(method, &r) {
                        Ok(()) => answer_ask(ask, wrapped, Ok(r)),
                        Err(why) => {
                            // Cancelled with the call: the answer given is not one.
                            return Step::Final(finish(
                                &req.id,
                                Err(RpcError::params(format!("inputResponses: {key}: {why}"))),
                                false,
                            ));
                        }
                    },
                    None => {
                        let request = json!({"method": method, "params": params});
                        call.pending.push(Pending {
                            key,
                            ask,
                            request,
                            method,
                            wrapped,
                        });
                        until = Some(Instant::now() + gather);
                    }
                }
            }
        }
    }
}

/// `base`, or `base-2`, `base-3`… if an open ask has it already.
fn unique_key(base: &str, open: &[Pending]) -> String {
    let taken = |k: &str| open.iter().any(|p| p.key == k);
    if !taken(base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|k| !taken(k))
        .unwrap_or_else(|| unreachable!("open asks are few"))
}

/// The input requests of the asks a call has open, by key.
fn input_requests(call: &Call) -> Map<String, Value> {
    call.pending
        .iter()
        .map(|p| (p.key.clone(), p.request.clone()))
        .collect()
}

/// An answer that is not one refused: the call stays parked under a new state, named in the
/// error, for a good answer.
fn refused(gw: &Gateway, cfg: &McpHttpConfig, call: Call, id: &Value, why: &str) -> Value {
    let msg = park(gw, cfg, call, id);
    let state = msg.pointer("/result/requestState").cloned();
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": INVALID_PARAMS,
        "message": format!("inputResponses: {why}"),
        "data": {"requestState": state}}})
}

/// The call's response: a tool error after asks were declined for lack of a capability is
/// `-32021` naming them.
fn done(id: &Value, r: Result<Value, RpcError>, missing: &BTreeSet<&'static str>) -> Value {
    if let Ok(v) = &r
        && v.get("isError") == Some(&json!(true))
        && !missing.is_empty()
    {
        let caps: Map<String, Value> = missing
            .iter()
            .map(|c| ((*c).to_owned(), json!({})))
            .collect();
        let text = v
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or("");
        let names: Vec<&str> = missing.iter().copied().collect();
        return json!({"jsonrpc": "2.0", "id": id, "error": {"code": MISSING_CAPABILITY,
            "message": format!("the tool needs the client capability {} (it failed without: {text})",
                names.join(", ")),
            "data": {"requiredCapabilities": caps}}});
    }
    finish(id, r, false)
}

/// Parks `call` waiting for the answers to its open asks under a fresh `requestState`; the
/// input-required result.
fn park(gw: &Gateway, cfg: &McpHttpConfig, call: Call, id: &Value) -> Value {
    let state = session_id();
    let result = json!({
        "resultType": "input_required",
        "inputRequests": input_requests(&call),
        "requestState": state,
    });
    let mut parked = lock(&gw.inner.mcp.modern.parked);
    let now = Instant::now();
    parked.retain(|_, p| p.expires > now);
    // Room: the one closest to expiring goes (its call is cancelled).
    while parked.len() >= cfg.max_waiting.max(1) {
        let Some(k) = parked
            .iter()
            .min_by_key(|(_, p)| p.expires)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        parked.remove(&k);
    }
    parked.insert(
        state.clone(),
        Parked {
            call,
            expires: now + cfg.input_wait,
        },
    );
    drop(parked);
    // Nobody came back in time: the call is cancelled (the state is this round's alone).
    let inner = Arc::downgrade(&gw.inner);
    let wait = cfg.input_wait;
    smol::spawn(async move {
        smol::Timer::after(wait).await;
        if let Some(inner) = inner.upgrade() {
            let gone = lock(&inner.mcp.modern.parked).remove(&state);
            if gone.is_some() {
                tracing::debug!("mcp: a call waited {wait:?} for input and was cancelled");
            }
            drop(gone);
        }
    })
    .detach();
    finish(id, Ok(result), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_follows_the_header() {
        let mut h = HeaderMap::new();
        assert!(!is_modern(&h));
        for (v, modern) in [
            ("2025-11-25", false),
            ("2024-11-05", false),
            ("2026-07-28", true),
            ("v999.0.0", true),
        ] {
            h.insert(super::super::VERSION, HeaderValue::from_static(v));
            assert_eq!(is_modern(&h), modern, "{v}");
        }
    }

    #[test]
    fn names_in_headers_decode_strictly() {
        assert_eq!(decode_name("read_sensor"), Ok("read_sensor".into()));
        assert_eq!(decode_name("=?base64?SGVsbG8=?="), Ok("Hello".into()));
        assert!(decode_name("=?base64?SGVsbG8?=").is_err(), "no padding");
        assert!(decode_name("=?base64?SGVs!!!bG8=?=").is_err());
        assert_eq!(
            decode_name("=?base64?SGVsbG8="),
            Ok("=?base64?SGVsbG8=".into())
        );
    }

    #[test]
    fn mirrored_arguments_must_match_their_headers() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "inner": {"type": "object", "properties": {"on": {"type": "boolean", "x-mcp-header": "On"}}},
            "query": {"type": "string"}}});
        let hm = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let args = json!({"region": "Hello", "n": 42, "inner": {"on": true}, "query": "q"});
        let all = [
            ("mcp-param-region", "=?base64?SGVsbG8=?="),
            ("mcp-param-n", "42.0"),
            ("mcp-param-on", "true"),
        ];
        assert_eq!(check_param_headers(&hm(&all), &schema, &args), Ok(()));
        for bad in [
            vec![
                ("mcp-param-region", "=?base64?SGVsbG8?="),
                ("mcp-param-n", "42"),
                ("mcp-param-on", "true"),
            ],
            vec![
                ("mcp-param-region", "Hello"),
                ("mcp-param-n", "41"),
                ("mcp-param-on", "true"),
            ],
            vec![("mcp-param-region", "Hello"), ("mcp-param-n", "42")],
            vec![
                ("mcp-param-region", "Hello"),
                ("mcp-param-region", "Hello"),
                ("mcp-param-n", "42"),
                ("mcp-param-on", "true"),
            ],
        ] {
            assert!(
                check_param_headers(&hm(&bad), &schema, &args).is_err(),
                "{bad:?}"
            );
        }
        // An argument left out must have no header.
        let fewer = json!({"region": "Hello", "n": 42});
        assert!(check_param_headers(&hm(&all), &schema, &fewer).is_err());
        let two = [("mcp-param-region", "Hello"), ("mcp-param-n", "42")];
        assert_eq!(check_param_headers(&hm(&two), &schema, &fewer), Ok(()));
        // A schema with an unusable annotation is not checked.
        let odd = json!({"properties": {"x": {"type": "number", "x-mcp-header": "X"}}});
        assert_eq!(param_headers(&odd), None);
        assert_eq!(
            check_param_headers(&HeaderMap::new(), &odd, &json!({"x": 1})),
            Ok(())
        );
    }

    #[test]
    fn errors_carry_their_http_status() {
        let e = |c: i32| json!({"jsonrpc": "2.0", "id": 1, "error": {"code": c, "message": "m"}});
        assert_eq!(status_of(&e(-32601)), StatusCode::NOT_FOUND);
        for c in [-32602, -32020, -32021, -32022, -32600, -32700] {
            assert_eq!(status_of(&e(c)), StatusCode::BAD_REQUEST, "{c}");
        }
        assert_eq!(status_of(&e(-32603)), StatusCode::OK);
        assert_eq!(
            status_of(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            StatusCode::OK
        );
    }

    #[test]
    fn log_lines_go_only_at_the_asked_level() {
        let line = |l: &str| {
            notification(
                "notifications/message",
                Some(json!({"level": l, "data": "x"})),
            )
            .to_string()
        };
        let progress =
            notification("notifications/progress", Some(json!({"progress": 1}))).to_string();
        assert!(wanted(&progress, None));
        assert!(!wanted(&line("error"), None));
        assert!(wanted(&line("error"), Some(LogLevel::Warning)));
        assert!(!wanted(&line("info"), Some(LogLevel::Warning)));
    }

    #[test]
    fn results_say_their_type_and_lists_their_caching() {
        let r = finish(&json!(3), Ok(json!({"tools": []})), true);
        assert_eq!(r["id"], 3);
        assert_eq!(r["result"]["resultType"], "complete");
        assert_eq!(r["result"]["ttlMs"], 0);
        assert_eq!(r["result"]["cacheScope"], "private");
        assert_eq!(r["result"]["_meta"][META_SERVER]["name"], "toolwire");
        let r = finish(&json!("a"), Ok(json!({"content": []})), false);
        assert!(r["result"].get("ttlMs").is_none());
        let missing: BTreeSet<&'static str> = ["sampling"].into();
        let failed = json!({"content": [{"type": "text", "text": "no model"}], "isError": true});
        let r = done(&json!(1), Ok(failed.clone()), &missing);
        assert_eq!(r["error"]["code"], -32021);
        assert_eq!(
            r["error"]["data"]["requiredCapabilities"],
            json!({"sampling": {}})
        );
        let r = done(&json!(1), Ok(failed), &BTreeSet::new());
        assert_eq!(r["result"]["isError"], true);
    }
}
