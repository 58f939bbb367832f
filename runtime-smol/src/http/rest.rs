//! The REST API (`/v1`), `/metrics`, `/healthz`, `/readyz` and `/openapi.json`.
//!
//! Every error is the protocol's error object, `{"error":{"code":…,"message":…}}`, with the HTTP
//! status of [`status_for`]. The routes, their parameters and their answers are written down in
//! `openapi.json` (served at `/openapi.json`; a test keeps the two in step).
//!
//! Result budgets: a call with the request header `Toolwire-Max-Result-Bytes: N` (N at least
//! [`MIN_RESULT_BYTES`]) answers with the `Budgeted` envelope (PROTOCOL.md section 7) instead of
//! the bare result: `{"value": …}` when the result's JSON text has at most N bytes, else
//! `{"held": {"handle", "total_bytes", "page", "next_offset"}}` with its first page. The rest is
//! read with `GET /v1/results/{handle}?offset=K&length=L`, answered `{"page", "total_bytes",
//! "next_offset"}` (`next_offset` null on the last page), under the same kind of token (whose
//! ACL must permit the result's tool) and `Toolwire-Tools` set as a call. A handle the gateway
//! does not hold for the caller (never held, expired, dropped for room, or its tool outside the
//! token's ACL or the tool set) is `410 Gone` with `-32015`; an offset that is not 0 or a
//! `next_offset`, or a bad length, is `400` with `-32602`. Results of REST calls are held for
//! the gateway's local callers: any REST client whose token permits the tool may read one by
//! its handle (handles are not secrets; the ACL is what guards them).

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use smol::channel::{Receiver, bounded};
use smol::future::FutureExt;
use toolwire_core::frame::{valid_node_id, valid_tool_name};
use toolwire_core::gateway::ct_eq;
use toolwire_core::router::{Acl, TokenSpec};
use toolwire_core::{ErrorCode, Str};

use super::Body;
use crate::gateway::{CallError, CallOptions, Gateway, MIN_RESULT_BYTES, Progress, ToolInfo};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Tools in one page of `GET /v1/tools`, unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// Most tools in one page.
const MAX_LIMIT: usize = 1000;

/// The routes, as the metrics name them (the path's pattern, not the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Health,
    Ready,
    OpenApi,
    Metrics,
    Nodes,
    Node,
    NodeTools,
    NodeTool,
    Call,
    Tools,
    Resolve,
    /// A page of a held result.
    Result,
    /// MCP over HTTP.
    Mcp,
    /// No route matched (404/405).
    Unknown,
    /// Refused before routing: too many connections from the source.
    Limited,
}

impl Route {
    /// The path pattern, as in the OpenAPI document.
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            Route::Health => "/healthz",
            Route::Ready => "/readyz",
            Route::OpenApi => "/openapi.json",
            Route::Metrics => "/metrics",
            Route::Nodes => "/v1/nodes",
            Route::Node => "/v1/nodes/{node}",
            Route::NodeTools => "/v1/nodes/{node}/tools",
            Route::NodeTool => "/v1/nodes/{node}/tools/{tool}",
            Route::Call => "/v1/nodes/{node}/tools/{tool}/call",
            Route::Tools => "/v1/tools",
            Route::Resolve => "/v1/tools/{tool}",
            Route::Result => "/v1/results/{handle}",
            Route::Mcp => "/mcp",
            Route::Unknown => "other",
            Route::Limited => "limited",
        }
    }

    /// Every route with a path (for the test that holds the OpenAPI document to them).
    #[cfg(test)]
    pub(crate) const ALL: [Route; 12] = [
        Route::Health,
        Route::Ready,
        Route::OpenApi,
        Route::Metrics,
        Route::Nodes,
        Route::Node,
        Route::NodeTools,
        Route::NodeTool,
        Route::Call,
        Route::Tools,
        Route::Resolve,
        Route::Result,
    ];

    /// The method the route answers.
    pub(crate) fn method(self) -> Method {
        if self == Route::Call {
            Method::POST
        } else {
            Method::GET
        }
    }
}

/// Splits a path into a route and its parameters: node and tool, or a result's handle (in the
/// first place).
fn match_route(path: &str) -> Option<(Route, Option<&str>, Option<&str>)> {
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    Some(match segs.as_slice() {
        ["healthz"] => (Route::Health, None, None),
        ["readyz"] => (Route::Ready, None, None),
        ["openapi.json"] => (Route::OpenApi, None, None),
        ["metrics"] => (Route::Metrics, None, None),
        ["v1", "nodes"] => (Route::Nodes, None, None),
        ["v1", "nodes", n] if !n.is_empty() => (Route::Node, Some(*n), None),
        ["v1", "nodes", n, "tools"] if !n.is_empty() => (Route::NodeTools, Some(*n), None),
        ["v1", "nodes", n, "tools", t] if !n.is_empty() && !t.is_empty() => {
            (Route::NodeTool, Some(*n), Some(*t))
        }
        ["v1", "nodes", n, "tools", t, "call"] if !n.is_empty() && !t.is_empty() => {
            (Route::Call, Some(*n), Some(*t))
        }
        ["v1", "tools"] => (Route::Tools, None, None),
        ["v1", "tools", t] if !t.is_empty() => (Route::Resolve, None, Some(*t)),
        ["v1", "results", h] if !h.is_empty() => (Route::Result, Some(*h), None),
        _ => return None,
    })
}

/// Serves one request that is not a WebSocket upgrade.
pub(crate) async fn handle(gw: Gateway, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let (route, r) = match match_route(&path) {
        None => (
            Route::Unknown,
            error_response(
                StatusCode::NOT_FOUND,
                ErrorCode::MethodNotFound.code(),
                &format!("no route `{}`", truncate(&path)),
            ),
        ),
        Some((route, node, tool)) => {
            let r = if req.method() != route.method()
                && !(req.method() == Method::HEAD && route.method() == Method::GET)
            {
                let mut r = error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::MethodNotFound.code(),
                    &format!("{} takes {}", route.pattern(), route.method()),
                );
                if let Ok(v) = HeaderValue::from_str(route.method().as_str()) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
                r
            } else {
                let node = node.map(str::to_owned);
                let tool = tool.map(str::to_owned);
                dispatch(&gw, route, node, tool, req).await
            };
            (route, r)
        }
    };
    gw.inner.metrics.http_response(route, r.status());
    r
}

async fn dispatch(
    gw: &Gateway,
    route: Route,
    node: Option<String>,
    tool: Option<String>,
    req: Request<Incoming>,
) -> Response<Body> {
    match route {
        Route::Health => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Route::Ready => {
            if gw.is_shut_down() {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "shutting down"}),
                )
            } else {
                json_response(StatusCode::OK, &json!({"status": "ready"}))
            }
        }
        Route::OpenApi => {
            let mut r = Response::new(full(OPENAPI));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => {
            let token = match authorize(gw, req.headers()) {
                Ok(t) => t,
                Err(r) => return r,
            };
            let scope = match tool_set(req.headers()) {
                Ok(s) => s,
                Err(why) => return bad_request(&why),
            };
            let scope = scope.as_ref();
            let visible = |node: &str, tool: &str| scope.is_none_or(|s| s.permits(node, tool));
            let node = node.unwrap_or_default();
            let tool = tool.unwrap_or_default();
            match route {
                Route::Metrics => {
                    let mut r = Response::new(full(gw.inner.metrics.render(gw)));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                }
                Route::Nodes => {
                    let nodes: Vec<Value> = gw.nodes().iter().map(node_json).collect();
                    json_response(StatusCode::OK, &json!({ "nodes": nodes }))
                }
                Route::Node => match gw.node(&node) {
                    Some(n) => json_response(StatusCode::OK, &node_json(&n)),
                    None => not_connected(&node),
                },
                Route::NodeTools => {
                    if gw.node(&node).is_none() {
                        return not_connected(&node);
                    }
                    let tools: Vec<Value> = gw
                        .tools(None, Some(&node))
                        .iter()
                        .filter(|t| visible(&t.node, &t.name))
                        .map(|t| tool_json(t))
                        .collect();
                    json_response(StatusCode::OK, &json!({ "tools": tools }))
                }
                Route::NodeTool => {
                    if gw.node(&node).is_none() {
                        return not_connected(&node);
                    }
                    match gw
                        .tools(Some(&tool), Some(&node))
                        .iter()
                        .find(|t| t.name == tool && visible(&t.node, &t.name))
                    {
                        Some(t) => json_response(StatusCode::OK, &tool_json(t)),
                        None => error_response(
                            StatusCode::NOT_FOUND,
                            ErrorCode::ToolNotFound.code(),
                            &format!("node `{node}` has no tool `{}`", truncate(&tool)),
                        ),
                    }
                }
                Route::Tools => list_tools(gw, req.uri().query(), scope),
                Route::Resolve => {
                    let mut nodes = gw.resolve(&tool);
                    nodes.retain(|n| visible(n, &tool));
                    if nodes.is_empty() {
                        error_response(
                            StatusCode::NOT_FOUND,
                            ErrorCode::ToolNotFound.code(),
                            &format!("no node offers `{}`", truncate(&tool)),
                        )
                    } else {
                        json_response(StatusCode::OK, &json!({ "tool": tool, "nodes": nodes }))
                    }
                }
                Route::Call if !visible(&node, &tool) => error_response(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Unauthorized.code(),
                    &format!(
                        "`{}/{}` is outside this request's tool set (Toolwire-Tools)",
                        truncate(&node),
                        truncate(&tool)
                    ),
                ),
                Route::Call => call(gw, node, tool, token, req).await,
                // The handle came in the node's place.
                Route::Result => read_result(gw, &node, req.uri().query(), token, scope),
                _ => unreachable_route(),
            }
        }
    }
}

fn unreachable_route() -> Response<Body> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalError.code(),
        "route without a handler",
    )
}

/// The token of an `Authorization: Bearer` header, when the gateway has tokens: `401` without
/// one or with a wrong one, `403` for a token that may not act as a controller.
#[allow(clippy::result_large_err)]
pub(crate) fn authorize(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Option<Arc<TokenSpec>>, Response<Body>> {
    let tokens = &gw.config().tokens;
    if tokens.is_empty() {
        return Ok(None);
    }
    let unauthorized = |why: &str| {
        let mut r = error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized.code(),
            why,
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"toolwire\""),
        );
        r
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return Err(unauthorized(
            "an `Authorization: Bearer TOKEN` header is required",
        ));
    };
    // Every token is compared (in constant time), so the time taken does not tell which matched.
    let mut found = None;
    for t in tokens {
        if ct_eq(t.token.as_bytes(), given.as_bytes()) && found.is_none() {
            found = Some(t);
        }
    }
    match found {
        None => Err(unauthorized("unknown token")),
        Some(t) if !t.controller => Err(error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized.code(),
            "this token may not act as a controller",
        )),
        Some(t) => Ok(Some(Arc::new(t.clone()))),
    }
}

/// The `Toolwire-Tools` header: the request's active tool set, patterns separated by commas,
/// as `tools.scope` takes them (PROTOCOL.md section 6). Absent or blank: every tool. `Err`:
/// why the header is not a tool set (answered 400, -32602).
fn tool_set(headers: &HeaderMap) -> Result<Option<Acl>, String> {
    let mut patterns = Vec::new();
    for v in headers.get_all(TOOL_SET) {
        let Ok(v) = v.to_str() else {
            return Err("Toolwire-Tools must be ASCII".into());
        };
        patterns.extend(v.split(',').map(str::trim).filter(|p| !p.is_empty()));
    }
    Acl::tool_set(patterns).map_err(|f| format!("Toolwire-Tools: {}", f.message))
}

/// The request header that narrows a REST request to an active tool set.
const TOOL_SET: &str = "toolwire-tools";

/// The request header that sets a call's result budget.
const RESULT_BUDGET: &str = "toolwire-max-result-bytes";

/// A handle longer than this is not one the gateway gave (they are `r` and a number).
const MAX_HANDLE: usize = 64;

/// The `Toolwire-Max-Result-Bytes` header: the call's result budget, a whole number of bytes
/// from [`MIN_RESULT_BYTES`] to `u32::MAX`, given once. Absent: no budget. `Err`: why the header
/// is not a budget (answered 400, -32602).
fn result_budget(headers: &HeaderMap) -> Result<Option<u32>, String> {
    let mut values = headers.get_all(RESULT_BUDGET).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("Toolwire-Max-Result-Bytes is given more than once".into());
    }
    let why = || {
        format!(
            "Toolwire-Max-Result-Bytes must be a whole number of bytes from {MIN_RESULT_BYTES} \
             to {}",
            u32::MAX
        )
    };
    match v.to_str().ok().map(str::trim).and_then(whole_u32) {
        Some(n) if n >= MIN_RESULT_BYTES => Ok(Some(n)),
        _ => Err(why()),
    }
}

/// A whole number in decimal digits only (no sign, no blanks) that fits a `u32`.
fn whole_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `GET /v1/results/{handle}?offset=&length=`: a page of a result held for a call with a result
/// budget. The token's ACL, and the request's tool set, must permit the result's tool.
fn read_result(
    gw: &Gateway,
    handle: &str,
    query: Option<&str>,
    token: Option<Arc<TokenSpec>>,
    scope: Option<&Acl>,
) -> Response<Body> {
    let mut offset = 0;
    let mut length = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "offset" => match whole_u32(&v) {
                Some(n) => offset = n,
                None => {
                    return bad_request(&format!(
                        "offset must be a whole number of bytes from 0 to {}: 0 or a next_offset",
                        u32::MAX
                    ));
                }
            },
            "length" => match whole_u32(&v) {
                Some(n) if n >= 1 => length = Some(n),
                _ => {
                    return bad_request(&format!(
                        "length must be a whole number of bytes from 1 to {}",
                        u32::MAX
                    ));
                }
            },
            _ => {}
        }
    }
    if handle.len() > MAX_HANDLE {
        return error_response(
            StatusCode::GONE,
            ErrorCode::ResultGone.code(),
            &format!("no held result `{}…`", truncate(handle)),
        );
    }
    // The tool set narrows reads as it narrows calls. The router checks one ACL at a time, so
    // the set is checked first as an ACL of its own, on the result's first byte.
    if let Some(set) = scope {
        let set = TokenSpec {
            acl: set.clone(),
            ..TokenSpec::any("")
        };
        if let Err(e) = gw.read_result(handle, 0, Some(1), Some(&set)) {
            return call_error(&e, false);
        }
    }
    match gw.read_result(handle, offset, length, token.as_deref()) {
        Ok(p) => json_response(
            StatusCode::OK,
            &json!({
                "page": p.page,
                "total_bytes": p.total_bytes,
                "next_offset": p.next_offset,
            }),
        ),
        Err(e) => call_error(&e, false),
    }
}

/// `GET /v1/tools?prefix=&node=&cursor=&limit=`.
fn list_tools(gw: &Gateway, query: Option<&str>, scope: Option<&Acl>) -> Response<Body> {
    let mut prefix = None;
    let mut node = None;
    let mut cursor = None;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "prefix" => prefix = Some(v.into_owned()),
            "node" => node = Some(v.into_owned()),
            "cursor" => cursor = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return bad_request(&format!("limit must be 1 to {MAX_LIMIT}"));
                }
            },
            _ => {}
        }
    }
    // The cursor is `node/tool` of the last tool of the previous page, as in `tools.list`.
    let after = match cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| c.split_once('/'))
    {
        None => None,
        Some(Some((n, t))) if valid_node_id(&Str::new(n)) && valid_tool_name(&Str::new(t)) => {
            Some((n.to_owned(), t.to_owned()))
        }
        Some(_) => return bad_request("invalid cursor: pass back a next_cursor this gateway gave"),
    };
    let (page, more) = gw.tools_page(prefix.as_deref(), node.as_deref(), after, limit, scope);
    let next = more
        .then(|| page.last().map(|t| format!("{}/{}", t.node, t.name)))
        .flatten();
    let tools: Vec<Value> = page.iter().map(|t| tool_json(t)).collect();
    json_response(
        StatusCode::OK,
        &json!({ "tools": tools, "next_cursor": next }),
    )
}

/// `POST /v1/nodes/{node}/tools/{tool}/call`: the body is the arguments, the answer the result
/// (the `Budgeted` envelope with `Toolwire-Max-Result-Bytes`).
async fn call(
    gw: &Gateway,
    node: String,
    tool: String,
    token: Option<Arc<TokenSpec>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut timeout = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        if k == "deadline_ms" {
            match v.parse::<u64>() {
                Ok(ms) if ms >= 1 => timeout = Some(Duration::from_millis(ms)),
                _ => {
                    return bad_request(
                        "deadline_ms must be a whole number of milliseconds, at least 1",
                    );
                }
            }
        }
    }
    // JSON, any `+json` type, or what `curl -d` sends by default (the body must still be
    // JSON); anything else is refused before the body is read.
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| {
                m == "application/json"
                    || m.ends_with("+json")
                    || m == "application/x-www-form-urlencoded"
            });
        if !json {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidParams.code(),
                "the arguments must be JSON (Content-Type: application/json)",
            );
        }
    }
    // `Cache-Control: no-cache` (or `no-store`) asks for a fresh result.
    let no_cache = req
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            matches!(
                d.trim().to_ascii_lowercase().as_str(),
                "no-cache" | "no-store"
            )
        });
    let max_result_bytes = match result_budget(req.headers()) {
        Ok(b) => b,
        Err(why) => return bad_request(&why),
    };
    let sse = accepts_event_stream(req.headers());
    let max = gw.config().http.max_body;
    let body = match super::read_body(req.into_body(), max).await {
        Ok(b) => b,
        Err(super::BodyError::TooLarge) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::FrameTooLarge.code(),
                &format!("the arguments exceed {max} bytes"),
            );
        }
        Err(super::BodyError::Unreadable(e)) => {
            return bad_request(&format!("reading the body failed: {e}"));
        }
    };
    let args = match std::str::from_utf8(&body) {
        Ok(s) if s.trim().is_empty() => "{}",
        Ok(s) => s,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::ParseError.code(),
                "the arguments are not UTF-8",
            );
        }
    };
    let mut opts = CallOptions {
        timeout,
        token,
        no_cache,
        max_result_bytes,
        ..CallOptions::default()
    };
    let progress = sse.then(|| {
        let (tx, rx) = bounded(64);
        opts.progress = Some(tx);
        rx
    });
    // A call the gateway refuses is answered with its status, streamed or not; one on its way
    // answers in the body, or in the stream's last event.
    let pending = match gw.start_call(&node, &tool, args, opts) {
        Ok(p) => p,
        Err(e) => return call_error(&e, false),
    };
    let Some(progress) = progress else {
        return match pending.outcome().await {
            Ok(result) => {
                let mut r = Response::new(full(result));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(e) => call_error(&e, true),
        };
    };
    let quiet = gw.config().http.sse_keepalive;
    let running: Running = Box::pin(pending.outcome());
    let events = stream::unfold(Some((running, progress, quiet)), next_event);
    crate::http::event_stream(events)
}

type Running = std::pin::Pin<Box<dyn Future<Output = Result<String, CallError>> + Send>>;
/// A streamed call: the call, its progress, and the keep-alive interval.
type SseState = (Running, Receiver<Progress>, Duration);

/// The next server-sent event of a streamed call: `progress` events while it runs, then one
/// `result` or `error`. Dropping the stream (the client went away) drops the call, which
/// cancels it on the node.
async fn next_event(
    state: Option<SseState>,
) -> Option<(Result<Frame<Bytes>, io::Error>, Option<SseState>)> {
    let (mut running, progress, quiet) = state?;
    enum Next {
        Progress(Progress),
        Done(Result<String, CallError>),
        Quiet,
    }
    let next = async {
        match progress.recv().await {
            Ok(p) => Next::Progress(p),
            Err(_) => std::future::pending().await,
        }
    }
    .or(async { Next::Done((&mut running).await) })
    .or(async {
        smol::Timer::after(quiet).await;
        Next::Quiet
    })
    .await;
    match next {
        // A comment line: proxies and clients that close quiet streams keep this one open.
        Next::Quiet => Some((
            Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))),
            Some((running, progress, quiet)),
        )),
        Next::Progress(p) => Some((
            Ok(sse_frame("progress", &progress_json(p).to_string())),
            Some((running, progress, quiet)),
        )),
        Next::Done(r) => {
            // Progress sent before the result is delivered first.
            let mut text = String::new();
            while let Ok(p) = progress.try_recv() {
                text.push_str(&sse_text("progress", &progress_json(p).to_string()));
            }
            match r {
                Ok(result) => text.push_str(&sse_text("result", &result)),
                Err(e) => text.push_str(&sse_text("error", &error_json(&e).to_string())),
            }
            Some((Ok(Frame::data(Bytes::from(text))), None))
        }
    }
}

/// A progress report as the `data` of a `progress` event (absent members left out).
fn progress_json(p: Progress) -> Value {
    let mut v = json!({ "progress": p.progress });
    if let Some(t) = p.total {
        v["total"] = t.into();
    }
    if let Some(m) = p.message {
        v["message"] = m.into();
    }
    if let Some(x) = p.partial {
        v["partial"] = x;
    }
    v
}

fn sse_text(event: &str, data: &str) -> String {
    // JSON text has no raw newlines, so one `data:` line carries it.
    format!("event: {event}\ndata: {data}\n\n")
}

fn sse_frame(event: &str, data: &str) -> Frame<Bytes> {
    Frame::data(Bytes::from(sse_text(event, data)))
}

fn accepts_event_stream(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|m| {
                m.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
            })
        })
    })
}

/// The HTTP status for a protocol error code (tools' own codes: `502`, the node failed).
pub fn status_for(code: i32) -> StatusCode {
    use ErrorCode as E;
    match ErrorCode::from_code(code) {
        Some(E::ParseError | E::InvalidRequest | E::InvalidParams | E::InvalidArguments) => {
            StatusCode::BAD_REQUEST
        }
        Some(E::Unauthorized) => StatusCode::FORBIDDEN,
        Some(E::ToolNotFound | E::NodeNotFound | E::MethodNotFound) => StatusCode::NOT_FOUND,
        Some(E::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
        Some(E::ResultGone) => StatusCode::GONE,
        Some(E::Timeout) => StatusCode::GATEWAY_TIMEOUT,
        Some(E::Busy) => StatusCode::SERVICE_UNAVAILABLE,
        Some(E::FrameTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        Some(E::Disconnected | E::Cancelled | E::ToolFailed | E::AskDeclined) => {
            StatusCode::BAD_GATEWAY
        }
        Some(E::VersionMismatch | E::NotReady | E::InternalError) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        // A tool's own (positive) code: the node failed; any other negative one is ours.
        None if code > 0 => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for a call that failed: refused by the gateway before dispatch, or failed
/// after it (`dispatched`). `-32008` after dispatch is the node's result too large for its
/// frame, not the caller's arguments: `502`.
fn call_error(e: &CallError, dispatched: bool) -> Response<Body> {
    let status = match status_for(e.code) {
        StatusCode::PAYLOAD_TOO_LARGE if dispatched => StatusCode::BAD_GATEWAY,
        s => s,
    };
    let mut r = json_response(status, &error_json(e));
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn error_json(e: &CallError) -> Value {
    let mut o = json!({ "code": e.code, "message": e.message });
    if let Some(d) = &e.data {
        o["data"] = d.clone();
    }
    json!({ "error": o })
}

/// A response carrying the protocol's error object.
pub(crate) fn error_response(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    error_response(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParams.code(),
        message,
    )
}

fn not_connected(node: &str) -> Response<Body> {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NodeNotFound.code(),
        &format!("no node `{}` is connected", truncate(node)),
    )
}

/// A name from a path, cut short for messages.
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn node_json(n: &crate::gateway::NodeSummary) -> Value {
    json!({
        "id": n.id,
        "tools": n.tools,
        "in_flight": n.in_flight,
        "encoding": match n.encoding {
            toolwire_core::Encoding::Json => "json",
            toolwire_core::Encoding::Postcard => "postcard",
        },
    })
}

fn tool_json(t: &ToolInfo) -> Value {
    let mut v = json!({
        "node": t.node,
        "name": t.name,
        "description": t.description,
        "input_schema": t.input_schema,
        "annotations": {
            "read_only": t.annotations.read_only,
            "destructive": t.annotations.destructive,
            "idempotent": t.annotations.idempotent,
        },
    });
    if let Some(o) = &t.output_schema {
        v["output_schema"] = o.clone();
    }
    v
}

/// A whole body.
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// No body.
pub(crate) fn empty() -> Body {
    Empty::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document has exactly the routes this module serves, each with its method,
    /// and every pattern's path parameters.
    #[test]
    fn the_openapi_document_lists_every_route_and_nothing_else() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        documented.sort_unstable();
        let mut served: Vec<&str> = Route::ALL.iter().map(|r| r.pattern()).collect();
        served.sort_unstable();
        assert_eq!(documented, served);
        for r in Route::ALL {
            let ops = paths[r.pattern()].as_object().unwrap();
            let method = r.method().as_str().to_ascii_lowercase();
            assert_eq!(
                ops.keys().collect::<Vec<_>>(),
                vec![&method],
                "{}",
                r.pattern()
            );
            // A concrete path made from the pattern routes back to it.
            let path = r
                .pattern()
                .replace("{node}", "n-1")
                .replace("{tool}", "t.x")
                .replace("{handle}", "r1");
            assert_eq!(match_route(&path).map(|m| m.0), Some(r), "{path}");
        }
        assert_eq!(match_route("/v1/nodes/"), None);
        assert_eq!(match_route("/v1/nodes/a/tools/b/call/x"), None);
        assert_eq!(match_route("/v1/results/"), None);
        assert_eq!(match_route("/v1/results/r1/x"), None);
    }

    /// Every status a handler can answer with is documented for a route that can give it.
    #[test]
    fn error_codes_map_to_documented_statuses() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let call = &doc["paths"]["/v1/nodes/{node}/tools/{tool}/call"]["post"]["responses"];
        let read = &doc["paths"]["/v1/results/{handle}"]["get"]["responses"];
        for code in ErrorCode::ALL {
            let status = status_for(code.code());
            // -32015 comes only from reading a held result.
            let route = if code == ErrorCode::ResultGone {
                read
            } else {
                call
            };
            let documented =
                route.get(status.as_str()).is_some() || status == StatusCode::INTERNAL_SERVER_ERROR;
            assert!(documented, "{code:?} -> {status}");
        }
        for status in ["400", "410"] {
            assert!(read.get(status).is_some(), "{status} for results");
        }
        assert_eq!(status_for(-32015), StatusCode::GONE);
        assert_eq!(status_for(7), StatusCode::BAD_GATEWAY);
        assert_eq!(status_for(-32003), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_for(-32009), StatusCode::BAD_GATEWAY);
        assert_eq!(status_for(-32002), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(-32011), StatusCode::NOT_FOUND);
        assert_eq!(status_for(-32007), StatusCode::TOO_MANY_REQUESTS);
    }
}
