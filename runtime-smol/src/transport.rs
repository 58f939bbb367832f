//! Moving whole frames over WebSocket or a byte stream, with or without TLS.
//!
//! A WebSocket message carries one frame (text for JSON, binary for postcard). A byte stream
//! carries COBS frames ending in `0x00` (`toolwire_core::stream`). Either way the rest of the
//! runtime sees `FrameReader::next()` and `FrameWriter::send()`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_tungstenite::tungstenite::Error as WsError;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use futures_util::sink::SinkExt;
use futures_util::stream::StreamExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use smol::net::TcpStream;
use toolwire_core::stream::{decode_in_place, encode_frame, max_encoded_len};
use toolwire_core::{Encoding, codec};

/// Any duplex byte stream (TCP, TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed duplex stream.
pub type BoxIo = Box<dyn Io>;

/// Which framing a connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One frame per WebSocket message.
    WebSocket,
    /// COBS frames on a byte stream.
    Stream,
}

/// Why [`Endpoint::parse`] refused a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `scheme://` (the URL as given).
    NoScheme(String),
    /// A scheme other than `ws`, `wss`, `tcp`, `tls`.
    UnknownScheme(String),
    /// Nothing between `://` and the path (the URL as given).
    NoAuthority(String),
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointError::NoScheme(url) => {
                write!(f, "`{url}`: expected ws://, wss://, tcp:// or tls://")
            }
            EndpointError::UnknownScheme(s) => write!(f, "`{s}://`: expected ws, wss, tcp or tls"),
            EndpointError::NoAuthority(url) => write!(f, "`{url}`: no host:port"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// Where to connect or listen: `ws://`, `wss://`, `tcp://` or `tls://` followed by `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// WebSocket or byte stream.
    pub framing: Framing,
    /// TLS on top.
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    /// Path, for WebSocket URLs.
    pub path: String,
}

impl Endpoint {
    /// Parses `ws://h:p/path`, `wss://…`, `tcp://h:p`, `tls://h:p`.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| EndpointError::NoScheme(url.to_owned()))?;
        let (framing, tls) = match scheme {
            "ws" => (Framing::WebSocket, false),
            "wss" => (Framing::WebSocket, true),
            "tcp" => (Framing::Stream, false),
            "tls" => (Framing::Stream, true),
            other => return Err(EndpointError::UnknownScheme(other.to_owned())),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(EndpointError::NoAuthority(url.to_owned()));
        }
        Ok(Endpoint {
            framing,
            tls,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The host part (for TLS server names).
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => &self.authority,
        }
    }

    /// The URL again.
    pub fn url(&self) -> String {
        let scheme = match (self.framing, self.tls) {
            (Framing::WebSocket, false) => "ws",
            (Framing::WebSocket, true) => "wss",
            (Framing::Stream, false) => "tcp",
            (Framing::Stream, true) => "tls",
        };
        format!(
            "{scheme}://{}{}",
            self.authority,
            if self.framing == Framing::WebSocket {
                &self.path
            } else {
                ""
            }
        )
    }
}

/// The cause of a read error for a WebSocket message over the frame limit.
#[derive(Debug)]
struct TooLarge(async_tungstenite::tungstenite::error::CapacityError);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket message over max_frame: {}", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// True if `e` is [`FrameReader::next`]'s error for a WebSocket message over the frame limit.
pub fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<TooLarge>())
}

/// Why a connection is closed, as a WebSocket close frame says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// 1000: done.
    Normal,
    /// 1009: a message was larger than `max_frame` (the read error [`is_too_large`]).
    TooLarge,
}

impl Close {
    /// The close that follows a read error.
    pub fn after(e: &io::Error) -> Close {
        if is_too_large(e) {
            Close::TooLarge
        } else {
            Close::Normal
        }
    }
}

/// Receives whole frames.
pub enum FrameReader {
    /// WebSocket messages.
    Ws {
        /// The read half.
        rx: WebSocketReceiver<BoxIo>,
        /// The message last returned (its bytes are lent out by [`FrameReader::next`]).
        last: Option<Message>,
    },
    /// COBS frames.
    Stream(Box<StreamReader>),
}

/// Bytes read on a stream and not yet framed start in a buffer of this size.
const READ_MIN: usize = 1024;
/// A buffer larger than this goes back to [`READ_MIN`] (and a write buffer to [`WRITE_KEEP`])
/// once traffic is light again: an idle connection holds little memory, a busy one keeps its
/// large buffer.
const KEEP: usize = 4096;
/// What a stream writer keeps between light batches.
const WRITE_KEEP: usize = 1024;

/// COBS frames off a byte stream. Raw bytes are kept as they arrive (the buffer grows only as a
/// frame needs, up to one frame of the maximum size, and shrinks when traffic is light), split at
/// each `0x00` and decoded in place (`toolwire_core::stream::decode_in_place`, which gives the
/// verdicts of the core's `Deframer`): no buffer of the maximum frame size per connection and no
/// copy of a frame.
pub struct StreamReader {
    io: ReadHalf<BoxIo>,
    /// `buf[start..end]` is unframed; `buf[start..scan]` holds no delimiter.
    buf: Vec<u8>,
    start: usize,
    scan: usize,
    end: usize,
    /// Skipping an oversized frame up to its delimiter.
    discarding: bool,
    max_frame: usize,
    /// Bytes the last read returned.
    last_read: usize,
    /// Frames dropped so far: oversized, or not valid COBS.
    dropped: u64,
}

/// Sends frames.
pub enum FrameWriter {
    /// WebSocket messages.
    Ws(WebSocketSender<BoxIo>),
    /// COBS frames.
    Stream {
        /// The write half.
        io: WriteHalf<BoxIo>,
        /// Encoding scratch.
        buf: Vec<u8>,
    },
}

impl FrameReader {
    /// Frames skipped so far (oversized or malformed stream frames; a WebSocket skips none, it
    /// closes instead).
    pub fn dropped(&self) -> u64 {
        match self {
            FrameReader::Ws { .. } => 0,
            FrameReader::Stream(r) => r.dropped(),
        }
    }

    /// The next frame, lent until the next call; `Ok(None)` when the peer closed. Oversized or
    /// malformed stream frames are skipped (the reader picks up at the next delimiter) and
    /// logged.
    ///
    /// Cancel-safe: dropping the future before it completes loses no bytes, so a connection
    /// loop can wait for a frame and for other work at once.
    pub async fn next(&mut self) -> io::Result<Option<&[u8]>> {
        match self {
            FrameReader::Ws { rx, last } => loop {
                match rx.next().await {
                    None => return Ok(None),
                    // A message over `max_frame`: the WebSocket layer cannot skip it and read on
                    // (it refuses the message before reading it), so the connection ends, with
                    // close code 1009 (see FrameWriter::close_with).
                    Some(Err(WsError::Capacity(e))) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, TooLarge(e)));
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        let m = last.insert(m);
                        return Ok(Some(match m {
                            Message::Text(t) => t.as_bytes(),
                            Message::Binary(b) => b,
                            _ => unreachable!(),
                        }));
                    }
                    Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
                }
            },
            FrameReader::Stream(r) => r.next().await,
        }
    }
}

impl StreamReader {
    fn new(io: ReadHalf<BoxIo>, max_frame: usize) -> Self {
        StreamReader {
            io,
            buf: vec![0; READ_MIN],
            start: 0,
            scan: 0,
            end: 0,
            discarding: false,
            max_frame,
            last_read: 0,
            dropped: 0,
        }
    }

    /// Frames skipped so far on this stream: oversized, or not valid COBS.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes of buffer held (for tests of the memory an idle connection keeps).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    async fn next(&mut self) -> io::Result<Option<&[u8]>> {
        // The largest frame's COBS form, without its delimiter, fits in this many bytes: a run of
        // this many bytes without a delimiter is a frame too large.
        let limit = max_encoded_len(self.max_frame);
        let mut reads = 0u32;
        loop {
            while let Some(p) = self.buf[self.scan..self.end].iter().position(|&b| b == 0) {
                let (s, z) = (self.start, self.scan + p);
                self.start = z + 1;
                self.scan = z + 1;
                if self.discarding {
                    self.discarding = false;
                    continue;
                }
                match decode_in_place(&mut self.buf[s..z]) {
                    Ok(0) => {} // empty frames and stray delimiters are ignored
                    Ok(n) if n > self.max_frame => {
                        self.dropped += 1;
                        tracing::debug!(
                            "dropped a frame on stream: larger than {} bytes",
                            self.max_frame
                        )
                    }
                    Ok(n) => return Ok(Some(&self.buf[s..s + n])),
                    Err(e) => {
                        self.dropped += 1;
                        tracing::debug!("dropped bytes on stream: {e}");
                    }
                }
            }
            self.scan = self.end;
            if !self.discarding && self.end - self.start >= limit {
                tracing::debug!(
                    "dropping a frame on stream: larger than {} bytes",
                    self.max_frame
                );
                self.dropped += 1;
                self.discarding = true;
            }
            if self.discarding {
                self.start = self.end;
            }
            // Make room; consistent before the await, so that a cancelled read loses nothing.
            if self.start == self.end {
                (self.start, self.scan, self.end) = (0, 0, 0);
                if self.buf.len() > KEEP && self.last_read < KEEP / 2 {
                    self.buf.truncate(READ_MIN);
                    self.buf.shrink_to_fit();
                }
            } else if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scan -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).clamp(READ_MIN, limit.max(READ_MIN));
                self.buf.resize(grown, 0);
            }
            let n = self.io.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
            self.last_read = n;
            // A peer streaming a frame that is dropped as it arrives (oversized, garbage) always
            // has bytes ready: yield now and then, so that this task does not hold an executor
            // thread (and every other connection's work on it) for the whole frame.
            reads += 1;
            if reads.is_multiple_of(16) {
                smol::future::yield_now().await;
            }
        }
    }
}

impl FrameWriter {
    /// Sends frames with one flush.
    pub async fn send(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        self.send_all(frames.iter().map(Vec::as_slice)).await
    }

    /// Sends frames, in order, with one flush.
    pub async fn send_all<'f>(
        &mut self,
        frames: impl IntoIterator<Item = &'f [u8]>,
    ) -> io::Result<()> {
        match self {
            FrameWriter::Ws(ws) => {
                for f in frames {
                    let msg = match codec::sniff(f) {
                        Encoding::Json => Message::Text(
                            std::str::from_utf8(f)
                                .map_err(|_| io::Error::other("JSON frame is not UTF-8"))?
                                .into(),
                        ),
                        Encoding::Postcard => Message::Binary(f.to_vec().into()),
                    };
                    ws.feed(msg).await.map_err(io::Error::other)?;
                }
                ws.flush().await.map_err(io::Error::other)
            }
            FrameWriter::Stream { io, buf } => {
                buf.clear();
                for f in frames {
                    let start = buf.len();
                    buf.resize(start + max_encoded_len(f.len()), 0);
                    let n = encode_frame(f, &mut buf[start..]).map_err(io::Error::other)?;
                    buf.truncate(start + n);
                }
                io.write_all(buf).await?;
                // A light batch after a heavy one: give the large buffer back.
                if buf.capacity() > KEEP && buf.len() <= WRITE_KEEP {
                    buf.clear();
                    buf.shrink_to(WRITE_KEEP);
                }
                io.flush().await
            }
        }
    }

    /// Closes the transport normally (a WebSocket close frame with code 1000, or the stream's
    /// write side).
    pub async fn close(&mut self) {
        self.close_with(Close::Normal).await
    }

    /// Closes the transport, saying why on a WebSocket (close code 1000 or 1009).
    pub async fn close_with(&mut self, why: Close) {
        match self {
            FrameWriter::Ws(ws) => {
                let (code, reason) = match why {
                    Close::Normal => (CloseCode::Normal, ""),
                    Close::TooLarge => (CloseCode::Size, "message larger than max_frame"),
                };
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
            }
            FrameWriter::Stream { io, .. } => {
                let _ = io.close().await;
            }
        }
    }
}

/// What a WebSocket reads at once. tungstenite's default is 128 KiB, allocated whole for every
/// connection; its read buffer grows for a larger message and keeps what it grew to. Measured
/// with `benches` `idle`: gateway RSS per idle WebSocket node 195 KiB at the default, 10.0 KiB
/// at 4 KiB, 8.0 at 2 KiB, 7.1 at 1 KiB.
const WS_READ_BUFFER: usize = 1024;

/// WebSocket settings: messages up to `max_frame`, reads of [`WS_READ_BUFFER`] bytes, so that a
/// gateway holds thousands of idle peers.
pub(crate) fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

pub(crate) fn split_ws(ws: WebSocketStream<BoxIo>) -> (FrameReader, FrameWriter) {
    let (sink, stream) = ws.split();
    (
        FrameReader::Ws {
            rx: stream,
            last: None,
        },
        FrameWriter::Ws(sink),
    )
}

/// Frames over a byte stream.
pub fn stream(io: BoxIo, max_frame: usize) -> (FrameReader, FrameWriter) {
    let (r, w) = smol::io::split(io);
    (
        FrameReader::Stream(Box::new(StreamReader::new(r, max_frame))),
        FrameWriter::Stream {
            io: w,
            buf: Vec::new(),
        },
    )
}

/// Accepts a WebSocket on an accepted stream.
pub async fn ws_accept(io: BoxIo, max_frame: usize) -> io::Result<(FrameReader, FrameWriter)> {
    let ws = async_tungstenite::accept_async_with_config(io, Some(ws_config(max_frame)))
        .await
        .map_err(io::Error::other)?;
    Ok(split_ws(ws))
}

/// Opens a TCP connection with TCP_NODELAY set.
pub async fn tcp_connect(authority: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect(authority).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connects to `endpoint`, with TLS if it says so (`tls` gives the client configuration;
/// `None` uses the platform-independent default of trusting nothing, so `wss://` and `tls://`
/// need one).
pub async fn connect(
    endpoint: &Endpoint,
    tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    max_frame: usize,
) -> io::Result<(FrameReader, FrameWriter)> {
    let tcp = tcp_connect(&endpoint.authority).await?;
    let io: BoxIo = if endpoint.tls {
        let cfg =
            tls.ok_or_else(|| io::Error::other("TLS endpoint but no TLS client configuration"))?;
        let name = rustls_pki_types::ServerName::try_from(endpoint.host().to_owned())
            .map_err(|e| io::Error::other(format!("bad TLS server name: {e}")))?;
        let s = futures_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await?;
        Box::new(s)
    } else {
        Box::new(tcp)
    };
    match endpoint.framing {
        Framing::Stream => Ok(stream(io, max_frame)),
        Framing::WebSocket => {
            let scheme = if endpoint.tls { "wss" } else { "ws" };
            let url = format!("{scheme}://{}{}", endpoint.authority, endpoint.path);
            let (ws, _) =
                async_tungstenite::client_async_with_config(url, io, Some(ws_config(max_frame)))
                    .await
                    .map_err(io::Error::other)?;
            Ok(split_ws(ws))
        }
    }
}

/// Wraps an accepted TCP stream in TLS if a server configuration is given.
pub async fn accept_io(
    tcp: TcpStream,
    tls: Option<&Arc<futures_rustls::rustls::ServerConfig>>,
) -> io::Result<BoxIo> {
    tcp.set_nodelay(true)?;
    Ok(match tls {
        Some(cfg) => Box::new(
            futures_rustls::TlsAcceptor::from(cfg.clone())
                .accept(tcp)
                .await?,
        ),
        None => Box::new(tcp),
    })
}

/// True if `addr` is on this machine only.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cobs(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; max_encoded_len(payload.len())];
        let n = encode_frame(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// A stream reader over a real loopback socket: frames split across reads, a frame over the
    /// limit dropped without ending the stream, garbage skipped, and a buffer that grew for a
    /// large frame given back once traffic is light.
    #[test]
    fn stream_reader_grows_for_large_frames_and_shrinks_when_idle() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = smol::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
                let mut bytes = cobs(b"first");
                bytes.extend(cobs(&big));
                bytes.extend(cobs(&vec![7u8; 70_000])); // over the 64 KiB limit
                bytes.extend([0x05, b'x', 0x00]); // cut short
                bytes.extend(cobs(b"after"));
                // In pieces, so that frames straddle reads.
                for chunk in bytes.chunks(999) {
                    s.write_all(chunk).await.unwrap();
                    s.flush().await.unwrap();
                }
                // Light traffic afterwards.
                for i in 0..3u8 {
                    smol::Timer::after(std::time::Duration::from_millis(20)).await;
                    s.write_all(&cobs(&[b'p', i])).await.unwrap();
                }
                big
            });
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut reader, _w) = stream(Box::new(tcp), 64 * 1024);
            let mut got = vec![];
            let mut largest = 0;
            for _ in 0..6 {
                let f = reader.next().await.unwrap().expect("a frame").to_vec();
                if let FrameReader::Stream(r) = &reader {
                    largest = largest.max(r.buffer_capacity());
                }
                got.push(f);
            }
            let big = writer.await;
            assert_eq!(got[0], b"first");
            assert_eq!(got[1], big);
            assert_eq!(got[2], b"after");
            assert_eq!(
                &got[3..],
                &[b"p\0".to_vec(), b"p\x01".to_vec(), b"p\x02".to_vec()]
            );
            assert!(largest >= 40_000, "grew to {largest}");
            let FrameReader::Stream(r) = &reader else {
                unreachable!()
            };
            assert!(r.buffer_capacity() <= KEEP, "kept {}", r.buffer_capacity());
        });
    }

    #[test]
    fn endpoints_parse_or_say_why_not() {
        let e = Endpoint::parse("wss://gw.example:7700/tw").unwrap();
        assert_eq!(
            (e.framing, e.tls, e.authority.as_str(), e.path.as_str()),
            (Framing::WebSocket, true, "gw.example:7700", "/tw")
        );
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:1").unwrap().path, "/");
        assert_eq!(
            Endpoint::parse("127.0.0.1:1"),
            Err(EndpointError::NoScheme("127.0.0.1:1".into()))
        );
        assert_eq!(
            Endpoint::parse("http://h:1"),
            Err(EndpointError::UnknownScheme("http".into()))
        );
        assert_eq!(
            Endpoint::parse("ws:///x"),
            Err(EndpointError::NoAuthority("ws:///x".into()))
        );
    }
}
