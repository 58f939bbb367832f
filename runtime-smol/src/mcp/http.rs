//! MCP's Streamable HTTP transport at `/mcp` on the gateway's HTTP port. A request whose
//! `MCP-Protocol-Version` is not a handshake revision goes to the stateless revision
//! (2026-07-28, the `modern` module); the rest of this text is about revisions 2025-03-26 to
//! 2025-11-25, with sessions, at `/mcp` on the
//! gateway's HTTP port: the same MCP layer as the stdio bridge, each session on a controller
//! connection of its own, made in-process with the caller's bearer token (so the token's ACL,
//! and everything a controller may set, applies as to any controller).
//!
//! - **POST** carries one JSON-RPC message. `initialize` opens a session and answers with its
//!   `Mcp-Session-Id`; every later request names it (`400` without, `404` for one unknown or
//!   ended, so the client initializes again). A notification or response gets `202`. A
//!   `tools/call` is answered with a server-sent event stream (its progress, then its
//!   response); any other request with one JSON response.
//! - **Resumption.** Every event has an id, `<stream>-<n>`. A call keeps running when its stream
//!   is cut (only `notifications/cancelled` cancels), and a `GET` with `Last-Event-ID` replays
//!   what came after that event on that stream and follows it to its end. The last
//!   [`McpHttpConfig::replay`] events of a stream are kept, and a session's last 64 streams.
//! - **GET** without `Last-Event-ID` opens the session's stream of its own messages
//!   (`notifications/tools/list_changed`); a newer one replaces it.
//! - **DELETE** ends the session (`204`): its calls are cancelled, its connection closed.
//! - **Origin.** A request with an `Origin` header is refused `403` unless the origin is on
//!   loopback (`http://localhost:*`, `127.0.0.0/8`, `[::1]`) or listed in
//!   [`McpHttpConfig::allowed_origins`]: a web page elsewhere cannot drive the gateway's tools
//!   through a browser (DNS rebinding).
//! - **Bounds.** At most [`McpHttpConfig::max_sessions`] sessions (`503` beyond); one idle for
//!   [`McpHttpConfig::idle`] (no request, no open stream) is ended at the next `initialize`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event;
use futures_util::stream;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming as HttpBody};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use smol::Task;
use smol::channel::{bounded, unbounded};
use smol::future::FutureExt;

use super::protocol::{
    INVALID_REQUEST, Incoming, PARSE_ERROR, error_response, parse_message, response,
};
use super::session::{Control, watch_events};
use super::{Bridge, McpOptions, PROTOCOL_VERSIONS};
use crate::client::ClientOptions;
use crate::gateway::Gateway;
use crate::http::Body;

/// Settings of the gateway's `/mcp` endpoint.
#[derive(Clone, Debug)]
pub struct McpHttpConfig {
    /// Serve `/mcp` (on by default; it answers `404` when off).
    pub enabled: bool,
    /// The MCP layer's options: call timeout, page size, result budget.
    pub options: McpOptions,
    /// Origins accepted besides loopback ones, written as browsers send them
    /// (`https://agent.example.com`).
    pub allowed_origins: Vec<String>,
    /// Sessions at once, at most (each is a controller connection). Default 64.
    pub max_sessions: usize,
    /// A session without a request or open stream for this long is ended when room is needed.
    /// Default 10 minutes.
    pub idle: Duration,
    /// Events kept per stream for resumption. Default 256.
    pub replay: usize,
    /// How long after its priming event a client waits before it reconnects to a stream the
    /// gateway ended (the `retry:` of each call's event stream). Default 500 ms.
    pub retry: Duration,
    /// End a call's event stream after this long while the call runs on; the client resumes
    /// it with `GET` and `Last-Event-ID` (SSE polling, for proxies that cut long responses).
    /// Default `None`: a stream lasts as long as its call.
    pub close_streams_after: Option<Duration>,
    /// 2026-07-28: how long a call whose result asked for input waits for its client to call
    /// again with the answer; it is cancelled then. Default 5 minutes.
    pub input_wait: Duration,
    /// 2026-07-28: calls waiting for input at once, at most (the one closest to its end is
    /// cancelled for a new one). Default 256.
    pub max_waiting: usize,
    /// 2026-07-28: after a node asks, how long the gateway waits for more asks of the same
    /// call before it answers `input_required` with all of them (a tool that asks several
    /// things at once gets one round, not one per ask). The wait starts again with each ask.
    /// Default 20 ms.
    pub input_gather: Duration,
    /// 2026-07-28, for a client that declares the tasks extension: a call still running
    /// after this long becomes a task the client polls. Default 500 ms.
    pub task_after: Duration,
    /// How long a task is kept after its last change (its `ttlMs`). Default 5 minutes.
    pub task_ttl: Duration,
    /// Tasks at once, at most. Default 1,024.
    pub max_tasks: usize,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        McpHttpConfig {
            enabled: true,
            options: McpOptions::default(),
            allowed_origins: Vec::new(),
            max_sessions: 64,
            idle: Duration::from_secs(600),
            replay: 256,
            retry: Duration::from_millis(500),
            close_streams_after: None,
            input_wait: Duration::from_secs(300),
            max_waiting: 256,
            input_gather: Duration::from_millis(20),
            task_after: Duration::from_millis(500),
            task_ttl: Duration::from_secs(300),
            max_tasks: 1024,
        }
    }
}

mod modern;

pub use modern::MODERN_VERSIONS;

/// Streams a session keeps for resumption.
const KEPT_STREAMS: usize = 64;
/// Header names.
const SESSION: &str = "mcp-session-id";
const VERSION: &str = "mcp-protocol-version";

/// The sessions of one gateway.
#[derive(Default)]
pub(crate) struct McpSessions {
    map: Mutex<HashMap<String, Arc<HttpSession>>>,
    /// The stateless revision's connections and waiting calls.
    modern: modern::Modern,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The events of one stream, kept for its subscribers and for resumption.
struct EventLog {
    id: u64,
    inner: Mutex<LogInner>,
    changed: Event,
}

struct LogInner {
    events: VecDeque<(u64, String)>,
    next: u64,
    closed: bool,
    cap: usize,
    /// Bumped by a new subscriber of a stream that has one at a time (the GET stream).
    generation: u64,
}

impl EventLog {
    fn new(id: u64, cap: usize) -> Arc<Self> {
        Arc::new(EventLog {
            id,
            inner: Mutex::new(LogInner {
                events: VecDeque::new(),
                next: 1,
                closed: false,
                cap: cap.max(1),
                generation: 0,
            }),
            changed: Event::new(),
        })
    }

    fn push(&self, data: String) {
        let mut l = lock(&self.inner);
        let n = l.next;
        l.next += 1;
        l.events.push_back((n, data));
        while l.events.len() > l.cap {
            l.events.pop_front();
        }
        drop(l);
        self.changed.notify(usize::MAX);
    }

    fn close(&self) {
        lock(&self.inner).closed = true;
        self.changed.notify(usize::MAX);
    }

    fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }

    /// The last event's number (0 before any).
    fn last(&self) -> u64 {
        lock(&self.inner).next - 1
    }

    fn take_over(&self) -> u64 {
        let mut l = lock(&self.inner);
        l.generation += 1;
        let g = l.generation;
        drop(l);
        self.changed.notify(usize::MAX);
        g
    }

    /// The first event after `after`, waiting for it; `None` once the stream has ended (or a
    /// newer subscriber took it over, for `generation`).
    async fn next_after(&self, after: u64, generation: Option<u64>) -> Option<(u64, String)> {
        loop {
            let listener = self.changed.listen();
            {
                let l = lock(&self.inner);
                if generation.is_some_and(|g| g != l.generation) {
                    return None;
                }
                if let Some(e) = l.events.iter().find(|(n, _)| *n > after) {
                    return Some(e.clone());
                }
                if l.closed {
                    return None;
                }
            }
            listener.await;
        }
    }
}

/// A running request: its task and its stream.
type Running = (Task<()>, Arc<EventLog>);

/// One MCP session over HTTP.
struct HttpSession {
    bridge: Arc<Bridge>,
    token: Option<String>,
    last_used: Mutex<Instant>,
    /// Subscribers open now (a session with one is not idle).
    open_streams: Arc<AtomicU64>,
    /// The session's own messages (the GET stream), stream 0.
    own: Arc<EventLog>,
    /// Request streams by id, the newest last.
    streams: Mutex<VecDeque<Arc<EventLog>>>,
    next_stream: AtomicU64,
    /// Running requests by JSON-RPC id, with their streams: dropping the task cancels the
    /// request.
    inflight: Mutex<HashMap<String, Running>>,
    /// The gateway connection was lost: the session is over.
    lost: AtomicBool,
    _tasks: Vec<Task<()>>,
}

impl HttpSession {
    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        if self.open_streams.load(Ordering::Relaxed) > 0 || !lock(&self.inflight).is_empty() {
            return Duration::ZERO;
        }
        lock(&self.last_used).elapsed()
    }

    fn stream(&self, id: u64) -> Option<Arc<EventLog>> {
        if id == 0 {
            return Some(self.own.clone());
        }
        lock(&self.streams).iter().find(|s| s.id == id).cloned()
    }

    fn new_stream(&self, cap: usize) -> Arc<EventLog> {
        let log = EventLog::new(self.next_stream.fetch_add(1, Ordering::Relaxed), cap);
        let mut s = lock(&self.streams);
        s.push_back(log.clone());
        // The oldest ended streams go first; running ones are never dropped here.
        while s.len() > KEPT_STREAMS {
            match s.iter().position(|l| l.is_closed()) {
                Some(i) => {
                    s.remove(i);
                }
                None => break,
            }
        }
        log
    }
}

/// Serves one request to `/mcp`.
pub(crate) async fn handle(
    gw: &Gateway,
    req: Request<HttpBody>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let cfg = &gw.config().http.mcp;
    if !cfg.enabled {
        return plain(
            StatusCode::NOT_FOUND,
            "MCP over HTTP is off on this gateway",
        );
    }
    // DNS rebinding: a page of another site whose name now points at 127.0.0.1 reaches the
    // gateway from loopback, naming its own host.
    if peer.ip().is_loopback() && !host_allowed(req.headers(), &cfg.allowed_origins) {
        return rpc_error(
            StatusCode::MISDIRECTED_REQUEST,
            INVALID_REQUEST,
            "Misdirected: a request from this machine must name a loopback host (or the host \
             of an allowed origin)",
        );
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &cfg.allowed_origins));
        if !ok {
            return rpc_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "Forbidden: this Origin may not use the gateway's MCP endpoint",
            );
        }
    }
    let token = match crate::http::rest::authorize(gw, req.headers()) {
        Ok(t) => t.map(|t| t.token.clone()),
        Err(r) => return r,
    };
    if modern::is_modern(req.headers()) {
        return modern::handle(gw, req, token).await;
    }
    if let Some(v) = req.headers().get(VERSION)
        && !v.to_str().is_ok_and(|v| PROTOCOL_VERSIONS.contains(&v))
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            &format!(
                "Bad Request: unsupported MCP-Protocol-Version (this server speaks {})",
                PROTOCOL_VERSIONS.join(", ")
            ),
        );
    }
    match *req.method() {
        Method::POST => post(gw, req, token).await,
        Method::GET => get(gw, &req, token.as_deref()),
        Method::DELETE => delete(gw, &req, token.as_deref()),
        _ => {
            let mut r = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "/mcp takes POST, GET and DELETE",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, GET, DELETE"));
            r
        }
    }
}

/// True if the `Host` header (or its absence, in HTTP/1.0) names a loopback host
/// (`localhost`, `127.0.0.0/8`, `[::1]`), or the host of one of the `allowed` origins.
fn host_allowed(h: &HeaderMap, allowed: &[String]) -> bool {
    let Some(host) = h.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    origin_allowed(&format!("http://{host}"), &[])
        || allowed.iter().any(|a| {
            a.split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
        })
}

/// True for an origin on loopback, or one of `allowed`.
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        },
        None => rest.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True if the `Accept` headers name `media` (or `*/*`).
fn accepts(h: &HeaderMap, media: &str) -> bool {
    h.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|m| {
                let m = m.split(';').next().unwrap_or("").trim();
                m.eq_ignore_ascii_case(media) || m == "*/*"
            })
        })
    })
}

/// The session a request names, if it is this caller's: `Err` is the response.
#[allow(clippy::result_large_err)]
fn session_of(
    gw: &Gateway,
    h: &HeaderMap,
    token: Option<&str>,
) -> Result<Arc<HttpSession>, Response<Body>> {
    let Some(id) = h.get(SESSION).and_then(|v| v.to_str().ok()) else {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required (send initialize first)",
        ));
    };
    let sessions = &gw.inner.mcp;
    let found = lock(&sessions.map).get(id).cloned();
    match found {
        // Another token's session is as good as none.
        Some(s) if s.token.as_deref() == token && !s.lost.load(Ordering::Relaxed) => {
            s.touch();
            Ok(s)
        }
        Some(s) if s.lost.load(Ordering::Relaxed) => {
            lock(&sessions.map).remove(id);
            Err(not_found())
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> Response<Body> {
    rpc_error(
        StatusCode::NOT_FOUND,
        INVALID_REQUEST,
        "Session not found: it ended or never was; initialize again",
    )
}

/// The body of a POST to `/mcp`, either era: `application/json` (`415` otherwise), at most
/// the gateway's `max_body` (`413`). `Err` is the response.
#[allow(clippy::result_large_err)]
async fn json_body(gw: &Gateway, req: Request<HttpBody>) -> Result<Bytes, Response<Body>> {
    let json_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return Err(rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Unsupported Media Type: the body must be application/json",
        ));
    }
    let max = gw.config().http.max_body;
    crate::http::read_body(req.into_body(), max)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLarge => rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                &format!("the message is longer than {max} bytes"),
            ),
            crate::http::BodyError::Unreadable(e) => rpc_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                &format!("reading the body: {e}"),
            ),
        })
}

async fn post(gw: &Gateway, req: Request<HttpBody>, token: Option<String>) -> Response<Body> {
    let h = req.headers().clone();
    if !(accepts(&h, "application/json") && accepts(&h, "text/event-stream")) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "Not Acceptable: Accept must list application/json and text/event-stream",
        );
    }
    let body = match json_body(gw, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match parse_message(&body) {
        Incoming::Request { id, method, params } if method == "initialize" => {
            initialize(gw, id, params, token).await
        }
        Incoming::Invalid { id, code, message } => json(
            StatusCode::BAD_REQUEST,
            &error_response(&id, code, &message),
        ),
        other => {
            let session = match session_of(gw, &h, token.as_deref()) {
                Ok(s) => s,
                Err(r) => return r,
            };
            match other {
                Incoming::Request { id, method, params } => {
                    request(gw, &session, id, method, params).await
                }
                Incoming::Notification { method, params } => {
                    match method.as_str() {
                        "notifications/initialized" => {
                            session.bridge.initialized.store(true, Ordering::Relaxed);
                        }
                        "notifications/cancelled" => {
                            if let Some(id) = params.get("requestId") {
                                // Dropping its task drops the gateway call: cancelled on the
                                // node; MCP sends no response for it.
                                let running = lock(&session.inflight).remove(&id.to_string());
                                if let Some((task, log)) = running {
                                    drop(task);
                                    log.close();
                                }
                            }
                        }
                        _ => {}
                    }
                    accepted()
                }
                // The client's answer to a request of ours (an elicitation).
                Incoming::Response { id, message } => {
                    session.bridge.deliver(&id, message);
                    accepted()
                }
                _ => accepted(),
            }
        }
    }
}

async fn initialize(
    gw: &Gateway,
    id: Value,
    params: Value,
    token: Option<String>,
) -> Response<Body> {
    let cfg = &gw.config().http.mcp;
    let sessions = &gw.inner.mcp;
    {
        // Room: sessions whose connection is gone, then the longest idle past `idle`.
        let mut map = lock(&sessions.map);
        map.retain(|_, s| !s.lost.load(Ordering::Relaxed));
        if map.len() >= cfg.max_sessions {
            let stale = map
                .iter()
                .map(|(k, s)| (s.idle_for(), k.clone()))
                .filter(|(idle, _)| *idle >= cfg.idle)
                .max();
            match stale {
                Some((_, k)) => {
                    map.remove(&k);
                }
                None => {
                    drop(map);
                    let mut r = rpc_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        INVALID_REQUEST,
                        &format!("{} MCP sessions are open already", cfg.max_sessions),
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    return r;
                }
            }
        }
    }
    // The session's own messages go to its GET stream.
    let (bridge, own, ctl_rx, tasks) = match local_bridge(gw, token.clone(), cfg.replay).await {
        Ok(b) => b,
        Err(e) => {
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                INVALID_REQUEST,
                &format!("no controller connection for the session: {e}"),
            );
        }
    };
    let r = bridge.handle("initialize", params, &bridge.out).await;
    let ok = r.is_ok();
    let answer = response(&id, r);
    if !ok {
        return json(StatusCode::OK, &answer);
    }
    let sid = session_id();
    let session = Arc::new(HttpSession {
        bridge,
        token,
        last_used: Mutex::new(Instant::now()),
        open_streams: Arc::new(AtomicU64::new(0)),
        own,
        streams: Mutex::new(VecDeque::new()),
        next_stream: AtomicU64::new(1),
        inflight: Mutex::new(HashMap::new()),
        lost: AtomicBool::new(false),
        _tasks: tasks,
    });
    // The gateway connection lost: the session ends (its id answers 404 from then on).
    {
        let weak = Arc::downgrade(&session);
        smol::spawn(async move {
            while let Ok(c) = ctl_rx.recv().await {
                if matches!(c, Control::GatewayLost) {
                    if let Some(s) = weak.upgrade() {
                        s.lost.store(true, Ordering::Relaxed);
                        s.own.close();
                    }
                    return;
                }
            }
        })
        .detach();
    }
    lock(&sessions.map).insert(sid.clone(), session);
    tracing::info!("mcp: HTTP session {sid} opened");
    let mut r = json(StatusCode::OK, &answer);
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut().insert(SESSION, v);
    }
    r
}

/// What [`local_bridge`] makes: the bridge, the log its own messages go to, the watcher's
/// controls, and the tasks that pump them.
type LocalBridge = (
    Arc<Bridge>,
    Arc<EventLog>,
    smol::channel::Receiver<Control>,
    Vec<Task<()>>,
);

/// A bridge over a new in-process controller connection under `token`, its own messages
/// (`list_changed`) pumped into a log that keeps `keep` of them, and a watcher of the
/// gateway's events.
async fn local_bridge(
    gw: &Gateway,
    token: Option<String>,
    keep: usize,
) -> std::io::Result<LocalBridge> {
    let opts = ClientOptions {
        name: Some("mcp-http".to_owned()),
        token,
        tls: None,
    };
    let client = gw.connect_local(opts).await?;
    let events = client.events();
    let (out_tx, out_rx) = bounded::<String>(256);
    let options = gw.config().http.mcp.options.clone();
    let bridge = Arc::new(Bridge::new(client, options, out_tx));
    let log = EventLog::new(0, keep);
    let pump = {
        let log = log.clone();
        smol::spawn(async move {
            while let Ok(m) = out_rx.recv().await {
                log.push(m);
            }
        })
    };
    let (ctl_tx, ctl_rx) = unbounded::<Control>();
    let watcher = smol::spawn(watch_events(bridge.clone(), events, ctl_tx));
    Ok((bridge, log, ctl_rx, vec![pump, watcher]))
}

/// A fresh session id: 128 random bits, hex.
fn session_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unique, not secret.
        b = fastrand::u128(..).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A request of a session: run as a task of its own, its messages into a new stream. A
/// `tools/call` is answered with that stream; anything else with its response as JSON.
async fn request(
    gw: &Gateway,
    session: &Arc<HttpSession>,
    id: Value,
    method: String,
    params: Value,
) -> Response<Body> {
    let key = id.to_string();
    if lock(&session.inflight).contains_key(&key) {
        return json(
            StatusCode::OK,
            &error_response(
                &id,
                INVALID_REQUEST,
                "a request with this id is still running",
            ),
        );
    }
    let cfg = &gw.config().http.mcp;
    let log = session.new_stream(cfg.replay);
    let streamed = method == "tools/call";
    let task = {
        let (bridge, log, weak) = (session.bridge.clone(), log.clone(), Arc::downgrade(session));
        let key = key.clone();
        smol::spawn(async move {
            let (tx, rx) = bounded::<String>(64);
            let pump = async {
                while let Ok(m) = rx.recv().await {
                    log.push(m);
                }
            };
            let run = async {
                let r = bridge.handle(&method, params, &tx).await;
                drop(tx);
                r
            };
            let (r, ()) = smol::future::zip(run, pump).await;
            log.push(response(&id, r).to_string());
            log.close();
            if let Some(s) = weak.upgrade() {
                lock(&s.inflight).remove(&key);
            }
        })
    };
    lock(&session.inflight).insert(key, (task, log.clone()));
    if streamed {
        // A priming event first (its id resumes the stream from its start), and the stream
        // ends after `close_streams_after` if the call runs longer: the client comes back
        // with `Last-Event-ID` (polling, for proxies that cut long responses).
        let cfg = &gw.config().http.mcp;
        let priming = format!(
            "id: {}-0\nretry: {}\ndata: \n\n",
            log.id,
            cfg.retry.as_millis()
        );
        let until = cfg.close_streams_after.map(|d| Instant::now() + d);
        let keepalive = gw.config().http.sse_keepalive;
        return sse_from(session, log, 0, None, keepalive, Some(priming), until);
    }
    // One JSON response: the last message of the stream (progress is not asked for here).
    let mut last = None;
    let mut after = 0;
    while let Some((n, m)) = log.next_after(after, None).await {
        after = n;
        last = Some(m);
    }
    match last {
        Some(m) => {
            let mut r = Response::new(full(m));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        // Cancelled before it answered.
        None => accepted(),
    }
}

/// Counts an open stream while it lives.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream's events from after `after` as server-sent events, each with its id, until the
/// stream ends (or, with `generation`, until a newer subscriber takes it).
fn sse(
    session: &HttpSession,
    log: Arc<EventLog>,
    after: u64,
    generation: Option<u64>,
    keepalive: Duration,
) -> Response<Body> {
    sse_from(session, log, after, generation, keepalive, None, None)
}

/// [`sse`], with `first` written before the events, and ending at `until` if given.
fn sse_from(
    session: &HttpSession,
    log: Arc<EventLog>,
    after: u64,
    generation: Option<u64>,
    keepalive: Duration,
    first: Option<String>,
    until: Option<Instant>,
) -> Response<Body> {
    session.open_streams.fetch_add(1, Ordering::Relaxed);
    let open = Open(session.open_streams.clone());
    let state = (log, after, open);
    let mut first = first;
    let events = stream::unfold(Some(state), move |state| {
        let first = first.take();
        async move {
            let (log, after, open) = state?;
            if let Some(f) = first {
                return Some((
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(f))),
                    Some((log, after, open)),
                ));
            }
            let wait = match until {
                Some(u) => keepalive.min(u.saturating_duration_since(Instant::now())),
                None => keepalive,
            };
            if until.is_some_and(|u| Instant::now() >= u) {
                // Cut while the call runs on: the client resumes with `Last-Event-ID`.
                return None;
            }
            let next = async { Some(log.next_after(after, generation).await) }
                .or(async {
                    smol::Timer::after(wait).await;
                    None
                })
                .await;
            match next {
                None => Some((
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b": keep-alive\n\n"))),
                    Some((log, after, open)),
                )),
                Some(None) => None,
                Some(Some((n, data))) => {
                    let text = format!("id: {}-{n}\nevent: message\ndata: {data}\n\n", log.id);
                    Some((Ok(Frame::data(Bytes::from(text))), Some((log, n, open))))
                }
            }
        }
    });
    crate::http::event_stream(events)
}

fn get(gw: &Gateway, req: &Request<HttpBody>, token: Option<&str>) -> Response<Body> {
    if !accepts(req.headers(), "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "Not Acceptable: a GET of /mcp is a text/event-stream",
        );
    }
    let session = match session_of(gw, req.headers(), token) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let keepalive = gw.config().http.sse_keepalive;
    let last = req
        .headers()
        .get(header::HeaderName::from_static("last-event-id"))
        .and_then(|v| v.to_str().ok());
    match last {
        Some(last) => {
            let parsed = last
                .split_once('-')
                .and_then(|(s, n)| Some((s.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
            let Some((stream, n)) = parsed else {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    INVALID_REQUEST,
                    "Bad Request: Last-Event-ID is not an event id of this server",
                );
            };
            match session.stream(stream) {
                Some(log) => {
                    let generation = (stream == 0).then(|| log.take_over());
                    sse(&session, log, n, generation, keepalive)
                }
                None => rpc_error(
                    StatusCode::NOT_FOUND,
                    INVALID_REQUEST,
                    "that stream is no longer kept; its request must be made again",
                ),
            }
        }
        None => {
            let log = session.own.clone();
            let from = log.last();
            let generation = Some(log.take_over());
            sse(&session, log, from, generation, keepalive)
        }
    }
}

fn delete(gw: &Gateway, req: &Request<HttpBody>, token: Option<&str>) -> Response<Body> {
    let session = match session_of(gw, req.headers(), token) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(id) = req.headers().get(SESSION).and_then(|v| v.to_str().ok()) {
        lock(&gw.inner.mcp.map).remove(id);
        tracing::info!("mcp: HTTP session {id} ended by its client");
    }
    // Its calls are cancelled (their tasks dropped), its streams end.
    let running: Vec<_> = lock(&session.inflight).drain().map(|(_, t)| t).collect();
    drop(running);
    session.own.close();
    for s in lock(&session.streams).iter() {
        s.close();
    }
    let mut r = Response::new(crate::http::rest::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn full(text: String) -> Body {
    BodyExt::boxed_unsync(http_body_util::Full::new(Bytes::from(text)).map_err(|e| match e {}))
}

fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An HTTP refusal with a JSON-RPC error body (id null), as MCP clients read them.
fn rpc_error(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    json(status, &error_response(&Value::Null, code, message))
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    rpc_error(status, INVALID_REQUEST, message)
}

fn accepted() -> Response<Body> {
    let mut r = Response::new(crate::http::rest::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_on_loopback_or_listed_only() {
        let listed = vec!["https://agent.example.com".to_owned()];
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1",
            "https://127.3.4.5:8443",
            "http://[::1]:80",
            "https://agent.example.com",
        ] {
            assert!(origin_allowed(ok, &listed), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "null",
            "file://",
            "http://[::1]evil",
            "https://agent.example.com.evil",
        ] {
            assert!(!origin_allowed(bad, &listed), "{bad}");
        }
    }

    #[test]
    fn a_log_keeps_its_last_events_and_ends() {
        smol::block_on(async {
            let log = EventLog::new(3, 2);
            for i in 0..3 {
                log.push(format!("m{i}"));
            }
            // The oldest went; a subscriber from the start gets the kept ones.
            assert_eq!(log.next_after(0, None).await, Some((2, "m1".into())));
            assert_eq!(log.next_after(2, None).await, Some((3, "m2".into())));
            log.close();
            assert_eq!(log.next_after(3, None).await, None);
            let g = log.take_over();
            log.take_over();
            assert_eq!(log.next_after(0, Some(g)).await, None, "taken over");
        })
    }

    #[test]
    fn session_ids_are_long_and_differ() {
        let (a, b) = (session_id(), session_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
