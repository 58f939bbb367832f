//! The gateway's HTTP face: one port for WebSocket peers, the REST API, metrics and health.
//!
//! Every socket accepted on a `ws://` (or `wss://`) listener is an HTTP/1.1 connection served by
//! hyper. `GET /ws` (and `GET /`, where peers written before the HTTP face connect) with a
//! WebSocket upgrade becomes a node or controller connection exactly as before; everything else
//! is a request for the REST API under `/v1`, `/metrics`, `/healthz`, `/readyz` and
//! `/openapi.json`.
//!
//! Limits, each in [`HttpConfig`]: a request body is at most `max_body` bytes (`413`); a
//! request's head must arrive within `header_timeout` (slowloris; the connection is closed); a
//! source address has at most `max_per_source` HTTP connections that are not WebSocket peers
//! (`429` with `Connection: close` beyond). The head timeout also runs while a keep-alive
//! connection waits for its next request, so an idle HTTP connection is closed after it.
//! Malformed HTTP gets hyper's `400` (or `431` for an oversized head) and that connection is
//! closed; nothing else is disturbed.

pub(crate) mod metrics;
pub(crate) mod rest;

pub use rest::{OPENAPI, status_for};

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::Role;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use smol::io::{AsyncRead, AsyncWrite};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::gateway::{Counted, Gateway};
use crate::transport::{self, BoxIo};

/// The body of every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A `200` server-sent event stream of `events` (REST's streamed calls, both eras of `/mcp`).
pub(crate) fn event_stream<S>(events: S) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, io::Error>> + Send + 'static,
{
    use http_body_util::BodyExt;
    let mut r = Response::new(BodyExt::boxed_unsync(http_body_util::StreamBody::new(
        events,
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Settings of the HTTP face.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request body, in bytes (`413` beyond). Default 1 MiB; a call's arguments must
    /// also fit one frame (`max_frame`) on their way to the node.
    pub max_body: usize,
    /// Time a client has to send a whole request head, counted from the moment the gateway
    /// waits for one: after connecting, and between requests on a keep-alive connection (so it
    /// is also the idle timeout). Default 10 s.
    pub header_timeout: Duration,
    /// HTTP connections at once from one source address, WebSocket peers not counted (they
    /// count as nodes or controllers). Default 64.
    pub max_per_source: usize,
    /// A streamed call (server-sent events) quiet for this long gets a comment line,
    /// `: keep-alive`, so that proxies and clients that close quiet streams keep it. Default
    /// 15 s.
    pub sse_keepalive: Duration,
    /// MCP over Streamable HTTP at `/mcp` (on by default).
    pub mcp: crate::mcp::McpHttpConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            max_per_source: 64,
            sse_keepalive: Duration::from_secs(15),
            mcp: crate::mcp::McpHttpConfig::default(),
        }
    }
}

/// HTTP connections open per source address (WebSocket peers not counted).
#[derive(Debug, Default)]
pub(crate) struct Sources(Mutex<HashMap<IpAddr, usize>>);

impl Sources {
    /// Counts one more connection from `ip`, unless it has `max` already.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceGuard> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceGuard(self.clone(), ip))
    }
}

/// One counted HTTP connection of a source; uncounted when dropped.
pub(crate) struct SourceGuard(Arc<Sources>, IpAddr);

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// What one HTTP connection holds while it is served.
#[derive(Default)]
struct ConnState {
    /// Counts against `max_handshakes` until the first request head has arrived; then it is
    /// handed to the WebSocket peer the request upgrades to, or dropped (a REST client).
    handshake: Option<Counted>,
    /// Counts against `max_per_source` once the connection made a request that is not an
    /// upgrade.
    source: Option<SourceGuard>,
    /// Counts against the gateway's sockets while the socket is open (handed to the WebSocket
    /// peer on upgrade).
    socket: Option<Counted>,
}

/// Serves one accepted socket (TLS already done) as HTTP/1.1 until it closes or upgrades.
pub(crate) async fn serve(
    gw: Gateway,
    io: BoxIo,
    peer: SocketAddr,
    handshake: Counted,
    socket: Counted,
) {
    let state = Arc::new(Mutex::new(ConnState {
        handshake: Some(handshake),
        source: None,
        socket: Some(socket),
    }));
    let header_timeout = gw.config().http.header_timeout;
    let service = {
        let gw = gw.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(route(gw, req, peer, &state).await) }
        })
    };
    let r = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(FuturesIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = r {
        tracing::debug!("{peer}: HTTP: {e}");
    }
}

/// One request: a WebSocket upgrade, or a request for the REST API (and friends).
async fn route(
    gw: Gateway,
    req: Request<Incoming>,
    peer: SocketAddr,
    state: &Mutex<ConnState>,
) -> Response<Body> {
    let handshake = lock(state).handshake.take();
    let path = req.uri().path();
    if (path == "/ws" || path == "/") && wants_websocket(&req) {
        let socket = lock(state).socket.take();
        return upgrade(gw, req, peer, handshake, socket);
    }
    drop(handshake);
    {
        let mut s = lock(state);
        if s.source.is_none() {
            let max = gw.config().http.max_per_source;
            match gw.inner.sources.enter(peer.ip(), max) {
                Some(g) => s.source = Some(g),
                None => {
                    drop(s);
                    let mut r = rest::error_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        toolwire_core::ErrorCode::Busy.code(),
                        &format!("{max} HTTP connections from {} already", peer.ip()),
                    );
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    gw.inner
                        .metrics
                        .http_response(rest::Route::Limited, r.status());
                    return r;
                }
            }
        }
    }
    if path == "/mcp" {
        let r = crate::mcp::handle_http(&gw, req, peer).await;
        gw.inner.metrics.http_response(rest::Route::Mcp, r.status());
        return r;
    }
    rest::handle(gw, req).await
}

/// Why a request body could not be read.
pub(crate) enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection failed while it arrived.
    Unreadable(String),
}

/// A request body of at most `max` bytes.
pub(crate) async fn read_body(body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}

fn lock(state: &Mutex<ConnState>) -> std::sync::MutexGuard<'_, ConnState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// True for a WebSocket opening handshake (RFC 6455 §4.2.1).
fn wants_websocket(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == hyper::Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
}

/// Answers `101 Switching Protocols` and, once hyper hands the socket over, runs it as a node
/// or controller connection.
fn upgrade(
    gw: Gateway,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    handshake: Option<Counted>,
    socket: Option<Counted>,
) -> Response<Body> {
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return rest::error_response(
            StatusCode::BAD_REQUEST,
            toolwire_core::ErrorCode::InvalidRequest.code(),
            "WebSocket upgrade without Sec-WebSocket-Key",
        );
    };
    if !version_ok {
        let mut r = rest::error_response(
            StatusCode::UPGRADE_REQUIRED,
            toolwire_core::ErrorCode::InvalidRequest.code(),
            "WebSocket version 13 only",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    smol::spawn(async move {
        let _socket = socket;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("{peer}: WebSocket upgrade failed: {e}");
                return;
            }
        };
        // The socket is ours again, as it was before hyper: the WebSocket runs on it directly
        // (with any bytes hyper read past the request, should the peer not have waited).
        let io: BoxIo = match upgraded.downcast::<FuturesIo<BoxIo>>() {
            Ok(parts) if parts.read_buf.is_empty() => parts.io.into_inner(),
            Ok(parts) => Box::new(Prefixed {
                head: parts.read_buf,
                io: parts.io.into_inner(),
            }),
            Err(_) => {
                tracing::warn!("{peer}: upgraded socket of an unexpected type");
                return;
            }
        };
        let max_frame = gw.config().max_frame as usize;
        let ws = WebSocketStream::from_raw_socket(
            io,
            Role::Server,
            Some(transport::ws_config(max_frame)),
        )
        .await;
        let (reader, writer) = transport::split_ws(ws);
        gw.run_connection(reader, writer, peer.to_string(), handshake)
            .await;
    })
    .detach();
    let mut r = Response::new(rest::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// A socket with bytes already read from it in front.
struct Prefixed {
    head: Bytes,
    io: BoxIo,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.head.is_empty() {
            let n = buf.len().min(self.head.len());
            buf[..n].copy_from_slice(&self.head.split_to(n));
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}
