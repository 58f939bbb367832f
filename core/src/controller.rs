//! The controller side of a connection: says hello as a controller, then sends requests
//! (`nodes.list`, `tools.list`, `tools.resolve`, `tools.call`, `cancel`) and receives their
//! responses, progress and asks. Driven like [`crate::node::Node`].

use crate::codec::{self, Limits, Message, Payload};
use crate::frame::{
    AskKind, Cancel, Encoding, Encodings, ErrorObject, Goodbye, GoodbyeReason, Hello, Notification,
    PROTOCOL_VERSION, Request, Role, Welcome,
};
use crate::node::CloseReason;
use crate::wire::{Id, Json, OwnedId, Str, Wire};
use crate::{DecodeError, Duration, EncodeError, ErrorCode, Instant};

/// Longest controller id, in bytes.
pub const MAX_CONTROLLER_ID: usize = 64;
/// Longest token a controller can present, in bytes.
pub const MAX_TOKEN: usize = 512;

/// Settings of a controller connection. Owns its id and token (a runtime need not keep them
/// alive, or leak them, for the connection's lifetime).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The controller's name.
    pub id: heapless::String<MAX_CONTROLLER_ID>,
    /// Token the gateway requires, if any.
    pub token: Option<heapless::String<MAX_TOKEN>>,
    /// Encodings accepted.
    pub encodings: Encodings,
    /// Encoding of the `hello`.
    pub hello_encoding: Encoding,
    /// Largest frame accepted.
    pub max_frame: u32,
    /// Decoder limits.
    pub limits: Limits,
    /// Time allowed for the welcome.
    pub handshake_timeout: Duration,
}

impl ControllerConfig {
    /// Defaults: the encodings of the build (both with both features), hello in JSON if built,
    /// 1 MiB frames, 10 s handshake. An id longer than
    /// [`MAX_CONTROLLER_ID`] bytes is cut at a character boundary.
    pub fn new(id: &str) -> Self {
        let mut end = id.len().min(MAX_CONTROLLER_ID);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        ControllerConfig {
            id: heapless::String::try_from(&id[..end]).unwrap_or_default(),
            token: None,
            encodings: Encodings::BUILT,
            hello_encoding: Encoding::HELLO,
            max_frame: 1 << 20,
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// With a token; `None` if it is longer than [`MAX_TOKEN`] bytes.
    pub fn with_token(mut self, token: &str) -> Option<Self> {
        self.token = Some(heapless::String::try_from(token).ok()?);
        Some(self)
    }
}

/// What the runtime must act on.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum ControllerEvent<'a> {
    /// The gateway welcomed us; requests may be sent.
    Ready,
    /// The response to request `id`.
    Response {
        /// The id [`Controller::request`] returned.
        id: u64,
        /// Result (decode it with the type the request expects) or error.
        result: Result<Payload<'a>, ErrorObject<'a>>,
    },
    /// Progress of `tools.call` request `call`.
    Progress {
        /// The request id of the call.
        call: u64,
        /// Work done.
        progress: u64,
        /// Total work.
        total: Option<u64>,
        /// Status text.
        message: Option<Str<'a>>,
        /// Partial output.
        partial: Option<Json<'a>>,
    },
    /// A line of the log of the node running `tools.call` request `call`.
    Log {
        /// The request id of the call.
        call: u64,
        /// How much it matters.
        level: crate::frame::LogLevel,
        /// The line.
        message: Str<'a>,
        /// Details.
        data: Option<Json<'a>>,
    },
    /// A tool running for call `call` asks something; answer with [`Controller::answer`].
    Ask {
        /// Pass back to [`Controller::answer`].
        ask: OwnedId,
        /// The request id of the call.
        call: u64,
        /// Permission or input.
        kind: AskKind,
        /// The question.
        prompt: Str<'a>,
        /// Schema of the expected answer.
        schema: Option<Json<'a>>,
    },
    /// A node's tools changed (connected, left, registered, withdrew).
    ToolsChanged {
        /// The node.
        node: Str<'a>,
    },
    /// The connection is over.
    Closed(CloseReason),
}

/// What [`Controller::handle_frame`] did.
#[must_use = "send the reply it wrote and act on its event: neither comes again from poll_event"]
#[derive(Debug, PartialEq)]
pub struct Handled<'a> {
    /// Something to act on.
    pub event: Option<ControllerEvent<'a>>,
    /// Bytes of a reply written into the reply buffer (0: none).
    pub reply: usize,
    /// The frame was malformed or unexpected; the connection goes on unless `event` is
    /// `Closed`.
    pub error: Option<DecodeError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Start,
    Hello,
    Ready,
    Closed,
}

/// The controller side of one connection.
///
/// Its `hello`, the gateway's welcome, and a first request:
///
/// ```
/// use toolwire_core::controller::{Controller, ControllerConfig, ControllerEvent};
/// use toolwire_core::frame::{Encoding, ListNodes, Request};
/// use toolwire_core::Instant;
///
/// let now = Instant(0);
/// let mut c = Controller::new(ControllerConfig::new("ops"), now);
/// let mut out = [0u8; 512];
/// let n = c.poll_transmit(&mut out).unwrap().unwrap();
/// assert_eq!(
///     std::str::from_utf8(&out[..n]).unwrap(),
///     r#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"controller","id":"ops","encodings":{"json":true,"postcard":true},"max_frame":1048576,"max_in_flight":0}}"#
/// );
/// assert!(c.poll_transmit(&mut out).is_none());
///
/// let welcome = br#"{"jsonrpc":"2.0","id":0,"result":{"version":1,"encoding":"json","max_frame":65536,"max_in_flight":0,"heartbeat_ms":10000,"gateway":"gw"}}"#;
/// let h = c.handle_frame(now, welcome, &mut out);
/// assert_eq!((h.event, h.reply, h.error), (Some(ControllerEvent::Ready), 0, None));
/// assert!(c.is_ready());
/// assert_eq!(c.encoding(), Encoding::Json);
///
/// let list = Request::ListNodes(ListNodes { cursor: None, limit: Some(10) });
/// let (id, n) = c.request(&list, &mut out).unwrap();
/// assert_eq!(
///     std::str::from_utf8(&out[..n]).unwrap(),
///     r#"{"jsonrpc":"2.0","id":1,"method":"nodes.list","params":{"limit":10}}"#
/// );
/// assert_eq!(id, 1); // its answer comes as `ControllerEvent::Response { id: 1, .. }`
/// ```
pub struct Controller {
    config: ControllerConfig,
    state: St,
    encoding: Encoding,
    peer_max_frame: u32,
    heartbeat: Option<Duration>,
    last_heard: Instant,
    handshake_deadline: Option<Instant>,
    next_id: u64,
    goodbye: bool,
    closed: Option<CloseReason>,
    close_reported: bool,
}

impl Controller {
    /// A connection that starts by sending `hello`.
    pub fn new(config: ControllerConfig, now: Instant) -> Self {
        Controller {
            encoding: config.hello_encoding,
            handshake_deadline: Some(now + config.handshake_timeout),
            config,
            state: St::Start,
            peer_max_frame: 0,
            heartbeat: None,
            last_heard: now,
            next_id: 1,
            goodbye: false,
            closed: None,
            close_reported: false,
        }
    }

    /// True once welcomed.
    pub fn is_ready(&self) -> bool {
        self.state == St::Ready
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.state == St::Closed
    }

    /// The encoding in use.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Handles one frame from the gateway.
    pub fn handle_frame<'a>(
        &mut self,
        now: Instant,
        frame: &'a [u8],
        reply: &mut [u8],
    ) -> Handled<'a> {
        let mut h = Handled {
            event: None,
            reply: 0,
            error: None,
        };
        if self.state == St::Closed {
            return h;
        }
        self.last_heard = now;
        let msg = match codec::decode(frame, self.encoding, &self.config.limits) {
            Ok(m) => m,
            Err(rej) => {
                h.error = Some(rej.error);
                if let Some(Ok(n)) = codec::encode_rejection(self.encoding, &rej, reply) {
                    h.reply = n;
                }
                return h;
            }
        };
        match msg {
            Message::Response {
                id: Id::Num(0),
                result,
            } if self.state == St::Hello => match result {
                Ok(p) => match p.decode::<Welcome<'a>>(&self.config.limits) {
                    Ok(w) if w.version == PROTOCOL_VERSION => {
                        self.encoding = w.encoding;
                        self.peer_max_frame = w.max_frame;
                        self.heartbeat = (w.heartbeat_ms > 0)
                            .then(|| Duration::from_millis(u64::from(w.heartbeat_ms)));
                        self.state = St::Ready;
                        self.handshake_deadline = None;
                        h.event = Some(ControllerEvent::Ready);
                    }
                    Ok(_) => h.event = Some(self.close(CloseReason::ProtocolError, true)),
                    Err(e) => {
                        h.error = Some(e);
                        h.event = Some(self.close(CloseReason::ProtocolError, true));
                    }
                },
                Err(e) => h.event = Some(self.close(CloseReason::Refused(e.code), true)),
            },
            Message::Response {
                id: Id::Num(id),
                result,
            } if self.state == St::Ready => {
                h.event = Some(ControllerEvent::Response { id, result });
            }
            Message::Request {
                id,
                request: Request::Ping,
            } => match codec::encode_result(self.encoding, id, &(), reply) {
                Ok(n) => h.reply = n,
                Err(_) => h.error = Some(DecodeError::BadEnvelope("reply buffer too small")),
            },
            Message::Request {
                id,
                request: Request::Ask(a),
            } => match (a.call, OwnedId::from_id(&id)) {
                (Id::Num(call), Some(ask)) => {
                    h.event = Some(ControllerEvent::Ask {
                        ask,
                        call,
                        kind: a.kind,
                        prompt: a.prompt,
                        schema: a.schema,
                    })
                }
                // Answered later, so its id is kept: longer string ids are refused (§3).
                (_, None) => {
                    let e = ErrorObject::new(ErrorCode::InvalidRequest, "id longer than 64 bytes");
                    if let Ok(n) = codec::encode_error(self.encoding, id, &e, reply) {
                        h.reply = n;
                    }
                }
                _ => {
                    let e = ErrorObject::new(ErrorCode::InvalidParams, "unknown call");
                    if let Ok(n) = codec::encode_error(self.encoding, id, &e, reply) {
                        h.reply = n;
                    }
                }
            },
            Message::Request { id, .. } => {
                let e =
                    ErrorObject::new(ErrorCode::MethodNotFound, "controllers serve ping and ask");
                if let Ok(n) = codec::encode_error(self.encoding, id, &e, reply) {
                    h.reply = n;
                }
            }
            Message::Notification(Notification::Progress(p)) => match p.id {
                Id::Num(call) => {
                    h.event = Some(ControllerEvent::Progress {
                        call,
                        progress: p.progress,
                        total: p.total,
                        message: p.message,
                        partial: p.partial,
                    })
                }
                _ => h.error = Some(DecodeError::BadId),
            },
            Message::Notification(Notification::Log(l)) => match l.id {
                Some(Id::Num(call)) => {
                    h.event = Some(ControllerEvent::Log {
                        call,
                        level: l.level,
                        message: l.message,
                        data: l.data,
                    })
                }
                _ => h.error = Some(DecodeError::BadId),
            },
            Message::Notification(Notification::Goodbye(g)) => {
                h.event = Some(self.close(CloseReason::Goodbye(g.reason), true));
            }
            Message::Notification(Notification::ToolsChanged(t)) => {
                h.event = Some(ControllerEvent::ToolsChanged { node: t.node });
            }
            _ => h.error = Some(DecodeError::BadEnvelope("frame not expected in this state")),
        }
        h
    }

    /// Checks the handshake and heartbeat deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == St::Closed {
            return;
        }
        let idle = self
            .heartbeat
            .map(|hb| self.last_heard + hb.silence_limit());
        if self.handshake_deadline.is_some_and(|d| now >= d) || idle.is_some_and(|d| now >= d) {
            self.close(CloseReason::Timeout, false);
        }
    }

    /// The next instant [`Controller::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == St::Closed {
            return None;
        }
        let idle = self
            .heartbeat
            .map(|hb| self.last_heard + hb.silence_limit());
        [idle, self.handshake_deadline].into_iter().flatten().min()
    }

    /// Writes the next queued frame (the hello, a goodbye) into `out`.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        if self.state == St::Start {
            self.state = St::Hello;
            let hello = Hello {
                min_version: PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                role: Role::Controller,
                id: Str::new(&self.config.id),
                token: self.config.token.as_deref().map(Str::new),
                encodings: self.config.encodings,
                max_frame: self.config.max_frame,
                max_in_flight: 0,
            };
            return Some(codec::encode_request(
                self.encoding,
                Id::Num(0),
                &Request::Hello(hello),
                out,
            ));
        }
        if self.goodbye {
            self.goodbye = false;
            return Some(codec::encode_notification(
                self.encoding,
                &Notification::Goodbye(Goodbye {
                    reason: GoodbyeReason::Shutdown,
                    message: None,
                }),
                out,
            ));
        }
        None
    }

    /// The close, when it came from a timeout or [`Controller::shutdown`].
    pub fn poll_event(&mut self) -> Option<ControllerEvent<'static>> {
        match (self.closed, self.close_reported) {
            (Some(r), false) => {
                self.close_reported = true;
                Some(ControllerEvent::Closed(r))
            }
            _ => None,
        }
    }

    /// Sends a request, returning its id and the frame length.
    pub fn request(
        &mut self,
        request: &Request<'_>,
        out: &mut [u8],
    ) -> Result<(u64, usize), EncodeError> {
        let id = self.next_id;
        let limit = self.limit(out.len());
        let n = codec::encode_request(self.encoding, Id::Num(id), request, &mut out[..limit])?;
        self.next_id += 1;
        Ok((id, n))
    }

    /// Cancels request `id` (a `tools.call`), writing the `cancel` notification.
    pub fn cancel(&mut self, id: u64, out: &mut [u8]) -> Result<usize, EncodeError> {
        codec::encode_notification(
            self.encoding,
            &Notification::Cancel(Cancel {
                id: Id::Num(id),
                reason: Some(Str::new("cancelled by the controller")),
            }),
            out,
        )
    }

    /// Answers an ask.
    pub fn answer<'v, T: Wire<'v>>(
        &mut self,
        ask: &OwnedId,
        answer: Result<&T, &ErrorObject<'_>>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        match answer {
            Ok(v) => codec::encode_result(self.encoding, ask.as_id(), v, out),
            Err(e) => codec::encode_error(self.encoding, ask.as_id(), e, out),
        }
    }

    /// Says goodbye (sent by the next [`Controller::poll_transmit`]) and closes.
    pub fn shutdown(&mut self) {
        if self.state != St::Closed {
            self.goodbye = true;
            self.close(CloseReason::Local, false);
        }
    }

    fn close(&mut self, reason: CloseReason, reported: bool) -> ControllerEvent<'static> {
        self.state = St::Closed;
        self.closed = Some(reason);
        self.close_reported = reported;
        self.handshake_deadline = None;
        ControllerEvent::Closed(reason)
    }

    fn limit(&self, out_len: usize) -> usize {
        if self.peer_max_frame == 0 {
            out_len
        } else {
            out_len.min(self.peer_max_frame as usize)
        }
    }
}
