//! The gateway side of one connection, to a node or a controller.
//!
//! [`Connection`] checks the handshake (version, token, encoding), keeps the node's tool names,
//! issues `execute` requests with a bounded pending-call table and deadlines, and turns every
//! frame into an [`Event`]. A runtime drives it like [`crate::node::Node`]:
//!
//! 1. [`Connection::poll_transmit`] until `None`, sending each frame;
//! 2. [`Connection::poll_event`] until `None` (calls failed by timeout or disconnect, closing);
//! 3. wait for the first of: a frame → [`Connection::handle_frame`] (send the reply it wrote, act
//!    on its event); the instant [`Connection::poll_timeout`] → [`Connection::handle_timeout`];
//!    an application request → [`Connection::call`], [`Connection::cancel`],
//!    [`Connection::respond`] … (send what they wrote);
//! 4. when the transport closes, [`Connection::transport_closed`] and drain events once more.
//!
//! What spans many connections (which node has which tool, routing a controller's call to a
//! node, ACLs) is the runtime's: this type only sees its own connection.

use core::fmt;

use crate::codec::{self, Limits, Message, Payload};
use crate::frame::{
    AskKind, Encoding, Encodings, ErrorObject, Execute, Goodbye, GoodbyeReason, Hello,
    Notification, PROTOCOL_VERSION, RegisterAck, RejectReason, Rejection, Request, Role, ToolDef,
    Welcome, schemas_fit_listing, valid_node_id, valid_tool_name,
};
use crate::table::{Queue, Table};
use crate::time::earliest;
use crate::wire::{Id, Json, List, OwnedId, Str, Wire};
use crate::{DecodeError, Duration, EncodeError, ErrorCode, Instant};

/// How a connection proves who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth<'c> {
    /// Anyone may connect (loopback development).
    Open,
    /// `hello.token` must equal this (compared in constant time).
    Token(&'c [u8]),
    /// The runtime decides: `hello` produces [`Event::Hello`] and waits for
    /// [`Connection::accept`] or [`Connection::refuse`] (per-token permissions).
    Deferred,
}

/// Longest gateway name, in bytes: the welcome carries it.
pub const MAX_GATEWAY_NAME: usize = 64;

/// Settings of a gateway connection.
#[derive(Clone, Debug)]
pub struct GatewayConfig<'c> {
    /// The gateway's name, sent in the welcome (owned, so that a router can give every
    /// connection its own copy without borrowing).
    pub name: heapless::String<MAX_GATEWAY_NAME>,
    /// Authentication.
    pub auth: Auth<'c>,
    /// Encodings accepted.
    pub encodings: Encodings,
    /// Encoding chosen when the peer accepts both.
    pub prefer: Encoding,
    /// Largest frame accepted (the receive buffer).
    pub max_frame: u32,
    /// Calls in flight on one node at most (the node may ask for fewer).
    pub max_in_flight: u16,
    /// Ping interval; a peer silent for three intervals is gone. Zero disables heartbeats.
    pub heartbeat: Duration,
    /// Time allowed from connect to `hello`.
    pub handshake_timeout: Duration,
    /// Decoder limits.
    pub limits: Limits,
}

impl<'c> GatewayConfig<'c> {
    /// Defaults: open, both encodings (postcard preferred), 64 KiB frames, 32 in flight, 10 s
    /// heartbeat, 10 s handshake. A name longer than [`MAX_GATEWAY_NAME`] bytes is cut at a
    /// character boundary.
    pub fn new(name: &str) -> Self {
        let mut end = name.len().min(MAX_GATEWAY_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        GatewayConfig {
            name: heapless::String::try_from(&name[..end]).unwrap_or_default(),
            auth: Auth::Open,
            encodings: Encodings::BOTH,
            prefer: Encoding::Postcard,
            max_frame: 64 * 1024,
            max_in_flight: 32,
            heartbeat: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// The id of a call this gateway issued (the `execute` request id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A node's `ask`, to be answered with [`Connection::answer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AskId(OwnedId);

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for `hello`.
    AwaitHello,
    /// `hello` received in [`Auth::Deferred`] mode; waiting for accept or refuse.
    AwaitAccept,
    /// Handshake done.
    Ready(Role),
    /// Over: close the transport once the queued frames are sent.
    Closed,
}

/// Why the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The handshake was refused with this code.
    Refused(ErrorCode),
    /// The peer said goodbye.
    Goodbye(GoodbyeReason),
    /// No `hello` in time, or nothing heard for three heartbeat intervals.
    Timeout,
    /// The transport closed.
    Disconnected,
    /// [`Connection::shutdown`] was called.
    Local,
}

/// Which tools of a `register` frame were accepted (bit i = tool i of the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted([u64; 8]);

impl Accepted {
    /// Most tools one `register` frame may carry.
    pub const MAX: usize = 512;
    /// True if tool `i` of the frame was accepted.
    pub fn contains(&self, i: usize) -> bool {
        i < Self::MAX && self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

/// What the runtime must act on.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A peer said hello. With [`Auth::Deferred`], answer with [`Connection::accept`] or
    /// [`Connection::refuse`]; otherwise it is already welcomed.
    Hello {
        /// Node or controller.
        role: Role,
        /// Its id.
        id: Str<'a>,
        /// Its token.
        token: Option<Str<'a>>,
    },
    /// A node registered tools; those with their bit in `accepted` are in its table now.
    Registered {
        /// Every tool of the frame.
        tools: List<'a, ToolDef<'a>>,
        /// Which were accepted.
        accepted: Accepted,
    },
    /// A node withdrew tools.
    Unregistered {
        /// Names withdrawn.
        names: List<'a, Str<'a>>,
    },
    /// A call ended: the node's result or error, or a timeout / disconnect from this side.
    CallDone {
        /// The call.
        call: CallId,
        /// The tool's JSON result, or the error.
        result: Result<Json<'a>, ErrorObject<'a>>,
    },
    /// A node reported progress on a call.
    Progress {
        /// The call.
        call: CallId,
        /// Work done.
        progress: u64,
        /// Total work.
        total: Option<u64>,
        /// Status text.
        message: Option<Str<'a>>,
        /// Partial output.
        partial: Option<Json<'a>>,
    },
    /// A node sent a line of its log, about `call` (one pending) or, with `None`, itself.
    Log {
        /// The call, if the line is about one.
        call: Option<CallId>,
        /// How much it matters.
        level: crate::frame::LogLevel,
        /// The line.
        message: Str<'a>,
        /// Details.
        data: Option<Json<'a>>,
    },
    /// A tool asks something; answer with [`Connection::answer`].
    Ask {
        /// Pass back to [`Connection::answer`].
        ask: AskId,
        /// The call that asks.
        call: CallId,
        /// Permission or input.
        kind: AskKind,
        /// The question.
        prompt: Str<'a>,
        /// Schema of the expected answer.
        schema: Option<Json<'a>>,
    },
    /// A controller's request (`nodes.list`, `tools.list`, `tools.resolve`, `tools.call`);
    /// answer with [`Connection::respond`] or [`Connection::respond_error`].
    Request {
        /// Request id to answer.
        id: Id<'a>,
        /// The request.
        request: Request<'a>,
    },
    /// A controller cancelled its request `id`.
    CancelRequest {
        /// The request id.
        id: Id<'a>,
    },
    /// A response to a request this side sent with [`Connection::request`] (an `ask` forwarded
    /// to a controller, say).
    Response {
        /// The id [`Connection::request`] returned.
        id: u64,
        /// The result or error.
        result: Result<Payload<'a>, ErrorObject<'a>>,
    },
    /// The connection is over: send what is queued, then close the transport.
    Closed(CloseReason),
}

/// Why [`Connection::call`] (or [`Connection::request`]) refused to send. (A call's own
/// failure, once sent, is an error object in [`Event::CallDone`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// Not a node (for a call), or the handshake is not finished, or the connection is closed.
    NotReady,
    /// The node did not register that tool.
    ToolNotFound,
    /// As many calls as the node allows are in flight (for a request: [`MAX_REQUESTS`]).
    Busy,
    /// The request does not fit the output buffer or the node's frame limit.
    FrameTooLarge {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// Encoding failed.
    Encode(EncodeError),
}

impl SendError {
    /// The protocol error code that describes it to a caller.
    pub fn code(&self) -> ErrorCode {
        match self {
            SendError::NotReady => ErrorCode::Disconnected,
            SendError::ToolNotFound => ErrorCode::ToolNotFound,
            SendError::Busy => ErrorCode::Busy,
            SendError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            SendError::Encode(_) => ErrorCode::InternalError,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotReady => f.write_str("node not connected"),
            SendError::ToolNotFound => f.write_str("tool not registered on this node"),
            SendError::Busy => f.write_str("node has as many calls in flight as it allows"),
            SendError::FrameTooLarge { needed } => {
                write!(f, "request of {needed} bytes exceeds the frame limit")
            }
            SendError::Encode(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for SendError {}

/// What [`Connection::handle_frame`] did.
#[must_use = "send the reply it wrote and act on its event: neither comes again from poll_event"]
#[derive(Debug, PartialEq)]
pub struct Handled<'a> {
    /// Something for the runtime to act on.
    pub event: Option<Event<'a>>,
    /// Bytes of a reply written at the start of the reply buffer (0: none). Send them.
    pub reply: usize,
    /// The frame was malformed or unexpected. The connection goes on unless the event is
    /// `Closed`.
    pub error: Option<DecodeError>,
}

/// Counters of oddities, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that did not decode.
    pub malformed: u64,
    /// Responses whose id matched nothing pending (late results after a cancel or timeout).
    pub unknown_responses: u64,
    /// Progress or asks for calls not pending.
    pub stray_notifications: u64,
}

/// An entry of a connection's pending-call table (opaque: the element type of
/// [`Storage::Pending`]).
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    id: u64,
    deadline: Option<Instant>,
}

/// A tool name as a connection keeps it.
pub type ToolName = heapless::String<{ crate::frame::MAX_TOOL_NAME }>;

/// How a [`Connection`] stores its tables, and their bounds: [`Fixed`] (arrays inside the
/// connection, no allocation: for a device or a fixed-size gateway) or, with the `alloc`
/// feature, [`Heap`] (vectors that grow only as far as the connection uses them: an idle node
/// costs a few hundred bytes instead of every table at its largest, which is what a gateway with
/// thousands of nodes wants).
pub trait Storage {
    /// Calls pending at once, at most (also the in-flight limit offered in the welcome).
    const MAX_PENDING: usize;
    /// Tools a node may register, at most (≤ [`Accepted::MAX`]).
    const MAX_TOOLS: usize;
    /// The node's tool names.
    type Tools: Table<ToolName> + Default;
    /// Calls pending.
    type Pending: Table<Pending> + Default;
    /// `cancel`s owed to the node.
    type Cancels: Queue<(u64, bool)> + Default;
    /// Calls ended without a frame (timeout, disconnect), to report.
    type Done: Queue<(CallId, ErrorCode)> + Default;
    /// Scratch of one `register`: the names accepted.
    type Accepted<'a>: Table<Str<'a>> + Default;
    /// Scratch of one `register`: the names refused, with why.
    type Rejected<'a>: Table<Rejection<'a>> + Default;
}

/// Tables as arrays inside the connection: `P` calls pending, `T` tools, no allocation.
#[derive(Debug)]
pub struct Fixed<const P: usize, const T: usize>;

impl<const P: usize, const T: usize> Storage for Fixed<P, T> {
    const MAX_PENDING: usize = P;
    const MAX_TOOLS: usize = T;
    type Tools = heapless::Vec<ToolName, T>;
    type Pending = heapless::Vec<Pending, P>;
    type Cancels = heapless::Deque<(u64, bool), P>;
    type Done = heapless::Deque<(CallId, ErrorCode), P>;
    type Accepted<'a> = heapless::Vec<Str<'a>, T>;
    type Rejected<'a> = heapless::Vec<Rejection<'a>, T>;
}

/// Tables as vectors on the heap (feature `alloc`), bounded by `P` calls pending and `T` tools
/// but only as large as used.
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct Heap<const P: usize, const T: usize>;

#[cfg(feature = "alloc")]
impl<const P: usize, const T: usize> Storage for Heap<P, T> {
    const MAX_PENDING: usize = P;
    const MAX_TOOLS: usize = T;
    type Tools = alloc::vec::Vec<ToolName>;
    type Pending = alloc::vec::Vec<Pending>;
    type Cancels = alloc::collections::VecDeque<(u64, bool)>;
    type Done = alloc::collections::VecDeque<(CallId, ErrorCode)>;
    type Accepted<'a> = alloc::vec::Vec<Str<'a>>;
    type Rejected<'a> = alloc::vec::Vec<Rejection<'a>>;
}

#[derive(Clone, Debug)]
enum Ctl {
    Ping(u64),
    Goodbye(GoodbyeReason),
}

#[derive(Clone, Debug)]
struct HelloInfo {
    id: OwnedId,
    role: Role,
    encoding: Encoding,
    hello_encoding: Encoding,
    max_frame: u32,
    max_in_flight: u16,
}

/// Most [`Connection::request`]s outstanding at once on one connection.
pub const MAX_REQUESTS: usize = 16;

/// One connection seen from the gateway. Its [`Storage`] keeps the tables and bounds them:
/// [`Fixed`]`<P, T>` for `P` calls pending and `T` tools a node may register, in arrays.
///
/// A node's side of the conversation, written out as JSON-RPC text (the first frame's encoding
/// is sniffed; this node accepts JSON only, so the whole exchange stays in JSON):
///
/// ```
/// use toolwire_core::frame::Role;
/// use toolwire_core::gateway::{Connection, Fixed, Event, GatewayConfig, State};
/// use toolwire_core::{Duration, Instant, Json};
///
/// let now = Instant(0);
/// let mut gw: Connection<'_, Fixed<4, 8>> = Connection::new(GatewayConfig::new("gw"), now);
/// let mut out = [0u8; 512];
/// let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
///
/// let h = gw.handle_frame(now, br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true,"postcard":false},"max_frame":1024,"max_in_flight":4}}"#, &mut out);
/// assert!(matches!(h.event, Some(Event::Hello { role: Role::Node, id, .. }) if id == "dev-1".into()));
/// let n = h.reply;
/// assert!(text(&out[..n]).starts_with(r#"{"jsonrpc":"2.0","id":0,"result":{"version":1,"encoding":"json""#));
///
/// let h = gw.handle_frame(now, br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"add","description":"a + b","input_schema":{"type":"object"}}]}}"#, &mut out);
/// assert!(matches!(h.event, Some(Event::Registered { accepted, .. }) if accepted.contains(0)));
/// assert_eq!(gw.state(), State::Ready(Role::Node));
/// assert!(gw.has_tool("add"));
///
/// // A call: the `execute` request to send, and a deadline the connection keeps.
/// let args = Json::trusted(br#"{"a":2,"b":3}"#);
/// let (call, n) = gw.call(now, "add", args, Some(Duration::from_secs(5)), &mut out).unwrap();
/// assert_eq!(
///     text(&out[..n]),
///     r#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"add","arguments":{"a":2,"b":3},"deadline_ms":5000}}"#
/// );
/// assert_eq!(gw.poll_timeout(), Some(now + Duration::from_secs(5)));
///
/// // The node's result ends it.
/// let h = gw.handle_frame(now, br#"{"jsonrpc":"2.0","id":1,"result":5}"#, &mut out);
/// assert_eq!(h.event, Some(Event::CallDone { call, result: Ok(Json::trusted(b"5")) }));
/// assert_eq!(gw.in_flight(), 0);
/// ```
pub struct Connection<'c, S: Storage> {
    config: GatewayConfig<'c>,
    state: State,
    encoding: Encoding,
    peer_max_frame: u32,
    max_in_flight: u16,
    hello: Option<HelloInfo>,
    hello_reply_id: Option<OwnedId>,
    tools: S::Tools,
    pending: S::Pending,
    /// No pending call's deadline is earlier than this (`None`: no pending call has one). Kept
    /// on `call` and made exact by `handle_timeout`, not on every call's end: a deadline
    /// forgotten late costs one early wake-up, a scan of `pending` per frame costs every call.
    calls_due: Option<Instant>,
    requests: heapless::Vec<u64, MAX_REQUESTS>,
    next_id: u64,
    ping_id: Option<u64>,
    last_heard: Instant,
    next_ping: Option<Instant>,
    handshake_deadline: Option<Instant>,
    ctl: heapless::Deque<Ctl, 8>,
    /// `cancel`s owed to the node (call id, true if its deadline passed): one per call removed
    /// from `pending`, so `P` of them fit between two drains even when every call expires at once.
    cancels: S::Cancels,
    done: S::Done,
    closed: Option<CloseReason>,
    close_reported: bool,
    stats: Stats,
}

impl<'c, S: Storage> Connection<'c, S> {
    const CHECK: () = assert!(S::MAX_TOOLS <= Accepted::MAX && S::MAX_PENDING <= u16::MAX as usize);

    /// A new connection, waiting for `hello`.
    pub fn new(config: GatewayConfig<'c>, now: Instant) -> Self {
        let () = Self::CHECK;
        Connection {
            encoding: config.prefer,
            handshake_deadline: Some(now + config.handshake_timeout),
            config,
            state: State::AwaitHello,
            peer_max_frame: 0,
            max_in_flight: 0,
            hello: None,
            hello_reply_id: None,
            tools: Default::default(),
            pending: Default::default(),
            calls_due: None,
            requests: heapless::Vec::new(),
            next_id: 1,
            ping_id: None,
            last_heard: now,
            next_ping: None,
            ctl: heapless::Deque::new(),
            cancels: Default::default(),
            done: Default::default(),
            closed: None,
            close_reported: false,
            stats: Stats::default(),
        }
    }

    // ----- getters

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The encoding of frames sent and expected now.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The peer's id once it said hello (raw text as it travelled).
    pub fn peer_id(&self) -> Option<Id<'_>> {
        self.hello.as_ref().map(|h| h.id.as_id())
    }

    /// Names of the tools the node registered.
    pub fn tools(&self) -> impl Iterator<Item = &str> {
        self.tools.as_slice().iter().map(|s| s.as_str())
    }

    /// True if the node registered `tool`.
    pub fn has_tool(&self, tool: &str) -> bool {
        self.tools.as_slice().iter().any(|t| t == tool)
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.as_slice().len()
    }

    /// Calls allowed in flight (the smaller of both sides' limits).
    pub fn max_in_flight(&self) -> usize {
        (self.max_in_flight as usize).min(S::MAX_PENDING)
    }

    /// Oddity counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- inputs

    /// Handles one frame. A reply, if any, is written into `reply` (256 bytes suffice for the
    /// replies written here except a `register` ack, which needs about 70 bytes per tool).
    pub fn handle_frame<'a>(
        &mut self,
        now: Instant,
        frame: &'a [u8],
        reply: &mut [u8],
    ) -> Handled<'a> {
        self.handle_frame_checked(now, frame, reply, &mut |_| Ok(()))
    }

    /// [`Connection::handle_frame`] with a runtime check of each tool a node registers, run
    /// after the core's own checks (name, schema shape, duplicates): a host gateway compiles the
    /// JSON Schema here and refuses the tool with `bad_schema` if it does not compile.
    pub fn handle_frame_checked<'a>(
        &mut self,
        now: Instant,
        frame: &'a [u8],
        reply: &mut [u8],
        check: &mut dyn FnMut(&ToolDef<'a>) -> Result<(), RejectReason>,
    ) -> Handled<'a> {
        let mut h = Handled {
            event: None,
            reply: 0,
            error: None,
        };
        if self.state == State::Closed {
            return h;
        }
        self.last_heard = now;
        // The first frame may be in either encoding: a stream or a WebSocket carries JSON text
        // or postcard binary, told apart by the first byte.
        let enc = if self.state == State::AwaitHello {
            codec::sniff(frame)
        } else {
            self.encoding
        };
        let msg = match codec::decode(frame, enc, &self.config.limits) {
            Ok(m) => m,
            Err(rej) => {
                self.stats.malformed += 1;
                h.error = Some(rej.error);
                // A result that cannot be read still ends its call, now: every call completes.
                // (A frame too broken to tell its id is "answered" with id null; a response's
                // id may still be read from it.)
                if matches!(rej.reply_to, None | Some(Id::Null))
                    && self.state == State::Ready(Role::Node)
                    && let Some(n) = codec::response_id(frame, enc, &self.config.limits)
                    && let Some(i) = self.pending.as_slice().iter().position(|p| p.id == n)
                {
                    self.pending.swap_remove(i);
                    h.event = Some(Event::CallDone {
                        call: CallId(n),
                        result: Err(ErrorObject::new(
                            ErrorCode::InvalidParams,
                            "unreadable result",
                        )),
                    });
                    return h;
                }
                if let Some(Ok(n)) = codec::encode_rejection(enc, &rej, reply) {
                    h.reply = n;
                }
                return h;
            }
        };
        match (self.state, msg) {
            (
                State::AwaitHello,
                Message::Request {
                    id,
                    request: Request::Hello(hello),
                },
            ) => {
                self.on_hello(now, enc, id, hello, reply, &mut h);
            }
            (State::AwaitHello | State::AwaitAccept, Message::Request { id, .. }) => {
                self.error_reply(
                    enc,
                    id,
                    ErrorCode::NotReady,
                    "say hello first",
                    reply,
                    &mut h,
                );
            }
            (
                State::Ready(_),
                Message::Request {
                    id,
                    request: Request::Hello(_),
                },
            ) => {
                self.error_reply(
                    enc,
                    id,
                    ErrorCode::NotReady,
                    "hello already done",
                    reply,
                    &mut h,
                );
            }
            (State::Ready(Role::Node), Message::Request { id, request }) => {
                self.on_node_request(id, request, reply, &mut h, check)
            }
            (State::Ready(Role::Controller), Message::Request { id, request }) => match request {
                Request::Ping => self.reply_ok(id, reply, &mut h),
                Request::ListNodes(_)
                | Request::ListTools(_)
                | Request::Resolve(_)
                | Request::Call(_)
                | Request::Scope(_)
                | Request::SetRules(_)
                | Request::ListRules(_)
                | Request::CallWith(_)
                | Request::ReadResult(_) => h.event = Some(Event::Request { id, request }),
                _ => self.error_reply(
                    enc,
                    id,
                    ErrorCode::MethodNotFound,
                    "not a controller method",
                    reply,
                    &mut h,
                ),
            },
            (_, Message::Notification(Notification::Goodbye(g))) => {
                h.event = Some(self.close(CloseReason::Goodbye(g.reason), true));
            }
            (State::Ready(Role::Node), Message::Notification(Notification::Progress(p))) => {
                match self.pending_call(&p.id) {
                    Some(call) => {
                        h.event = Some(Event::Progress {
                            call,
                            progress: p.progress,
                            total: p.total,
                            message: p.message,
                            partial: p.partial,
                        })
                    }
                    None => self.stats.stray_notifications += 1,
                }
            }
            (State::Ready(Role::Node), Message::Notification(Notification::Log(l))) => {
                let call = match &l.id {
                    None => None,
                    Some(id) => match self.pending_call(id) {
                        Some(call) => Some(call),
                        // About a call that ended (or never was): dropped, as stray progress.
                        None => {
                            self.stats.stray_notifications += 1;
                            return h;
                        }
                    },
                };
                h.event = Some(Event::Log {
                    call,
                    level: l.level,
                    message: l.message,
                    data: l.data,
                });
            }
            (State::Ready(Role::Controller), Message::Notification(Notification::Cancel(c))) => {
                h.event = Some(Event::CancelRequest { id: c.id });
            }
            (State::Ready(_), Message::Response { id, result }) => {
                self.on_response(id, result, &mut h)
            }
            _ => {
                self.stats.malformed += 1;
                h.error = Some(DecodeError::BadEnvelope("frame not expected in this state"));
            }
        }
        h
    }

    fn on_hello<'a>(
        &mut self,
        now: Instant,
        enc: Encoding,
        id: Id<'a>,
        hello: Hello<'a>,
        reply: &mut [u8],
        h: &mut Handled<'a>,
    ) {
        let refuse =
            |this: &mut Self, h: &mut Handled<'a>, code: ErrorCode, msg: &str, reply: &mut [u8]| {
                this.error_reply(enc, id, code, msg, reply, h);
                h.event = Some(this.close(CloseReason::Refused(code), true));
            };
        if hello.min_version > PROTOCOL_VERSION || hello.max_version < PROTOCOL_VERSION {
            let data = Json::trusted(br#"{"supported":{"min":1,"max":1}}"#);
            let e = ErrorObject {
                code: ErrorCode::VersionMismatch.code(),
                message: Str::new("no protocol version in common; this gateway speaks 1"),
                data: Some(data),
            };
            if let Ok(n) = codec::encode_error(enc, id, &e, reply) {
                h.reply = n;
            }
            h.event = Some(self.close(CloseReason::Refused(ErrorCode::VersionMismatch), true));
            return;
        }
        if hello.role == Role::Node && !valid_node_id(&hello.id) {
            return refuse(self, h, ErrorCode::InvalidParams, "invalid node id", reply);
        }
        if let Auth::Token(expected) = self.config.auth {
            let ok = hello
                .token
                .is_some_and(|t| !t.is_escaped() && ct_eq(t.raw().as_bytes(), expected));
            if !ok {
                return refuse(
                    self,
                    h,
                    ErrorCode::Unauthorized,
                    "missing or wrong token",
                    reply,
                );
            }
        }
        let peer = hello.encodings;
        let encoding = if peer.contains(self.config.prefer)
            && self.config.encodings.contains(self.config.prefer)
        {
            self.config.prefer
        } else if peer.json && self.config.encodings.json {
            Encoding::Json
        } else if peer.postcard && self.config.encodings.postcard {
            Encoding::Postcard
        } else {
            return refuse(
                self,
                h,
                ErrorCode::InvalidParams,
                "no encoding in common",
                reply,
            );
        };
        let Some(owned) = OwnedId::from_id(&Id::Str(hello.id)) else {
            return refuse(self, h, ErrorCode::InvalidParams, "id too long", reply);
        };
        let Some(hello_id) = OwnedId::from_id(&id) else {
            return refuse(
                self,
                h,
                ErrorCode::InvalidRequest,
                "request id too long",
                reply,
            );
        };
        self.hello = Some(HelloInfo {
            id: owned,
            role: hello.role,
            encoding,
            hello_encoding: enc,
            max_frame: hello.max_frame,
            max_in_flight: hello.max_in_flight,
        });
        h.event = Some(Event::Hello {
            role: hello.role,
            id: hello.id,
            token: hello.token,
        });
        if self.config.auth == Auth::Deferred {
            self.state = State::AwaitAccept;
            self.hello_reply_id = Some(hello_id);
        } else {
            self.hello_reply_id = Some(hello_id);
            match self.accept(now, reply) {
                Ok(n) => h.reply = n,
                Err(_) => h.error = Some(DecodeError::BadEnvelope("reply buffer too small")),
            }
        }
    }

    /// Welcomes the peer that said hello (in [`Auth::Deferred`] mode; done automatically in the
    /// others). Writes the welcome into `out`.
    pub fn accept(&mut self, now: Instant, out: &mut [u8]) -> Result<usize, EncodeError> {
        // The id is kept until the welcome is written: a too-small `out` can be retried.
        let (Some(hello), Some(reply_id)) = (self.hello.clone(), self.hello_reply_id.clone())
        else {
            return Ok(0);
        };
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            encoding: hello.encoding,
            max_frame: self.config.max_frame,
            max_in_flight: self
                .config
                .max_in_flight
                .min(hello.max_in_flight)
                .min(S::MAX_PENDING as u16),
            heartbeat_ms: self.config.heartbeat.as_millis().min(u64::from(u32::MAX)) as u32,
            gateway: Str::new(&self.config.name),
        };
        let n = codec::encode_result(hello.hello_encoding, reply_id.as_id(), &welcome, out)?;
        self.hello_reply_id = None;
        self.encoding = hello.encoding;
        self.peer_max_frame = hello.max_frame;
        self.max_in_flight = welcome.max_in_flight;
        self.state = State::Ready(hello.role);
        self.handshake_deadline = None;
        if self.config.heartbeat.as_millis() > 0 {
            self.next_ping = Some(now + self.config.heartbeat);
        }
        Ok(n)
    }

    /// Refuses the peer that said hello (in [`Auth::Deferred`] mode), writing the error into
    /// `out`; the connection closes.
    pub fn refuse(
        &mut self,
        code: ErrorCode,
        message: &str,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if self.state == State::Closed {
            return Ok(0);
        }
        let enc = self
            .hello
            .as_ref()
            .map_or(self.encoding, |h| h.hello_encoding);
        let n = match &self.hello_reply_id {
            Some(id) => {
                codec::encode_error(enc, id.as_id(), &ErrorObject::new(code, message), out)?
            }
            None => 0,
        };
        self.close(CloseReason::Refused(code), false);
        Ok(n)
    }

    fn on_node_request<'a>(
        &mut self,
        id: Id<'a>,
        request: Request<'a>,
        reply: &mut [u8],
        h: &mut Handled<'a>,
        check: &mut dyn FnMut(&ToolDef<'a>) -> Result<(), RejectReason>,
    ) {
        let enc = self.encoding;
        match request {
            Request::Ping => self.reply_ok(id, reply, h),
            Request::Register(reg) => {
                let mut accepted_names = S::Accepted::<'a>::default();
                let mut rejected = S::Rejected::<'a>::default();
                let mut mask = Accepted([0; 8]);
                if reg.tools.iter().nth(S::MAX_TOOLS).is_some() {
                    return self.error_reply(
                        enc,
                        id,
                        ErrorCode::InvalidParams,
                        "more tools in one register frame than the gateway keeps",
                        reply,
                        h,
                    );
                }
                for (i, tool) in reg.tools.iter().enumerate() {
                    let verdict = if !valid_tool_name(&tool.name) {
                        Err(RejectReason::BadName)
                    } else if !tool.input_schema.is_object()
                        || tool.output_schema.is_some_and(|s| !s.is_object())
                        || !schemas_fit_listing(&tool, self.config.limits.max_depth)
                    {
                        Err(RejectReason::BadSchema)
                    } else if self.has_tool(tool.name.raw()) {
                        Err(RejectReason::Duplicate)
                    } else if let Err(reason) = check(&tool) {
                        Err(reason)
                    } else {
                        heapless::String::try_from(tool.name.raw())
                            .map_err(|_| RejectReason::BadName)
                            .and_then(|n| {
                                if self.tools.as_slice().len() >= S::MAX_TOOLS {
                                    return Err(RejectReason::TooMany);
                                }
                                self.tools.push(n).map_err(|_| RejectReason::TooMany)
                            })
                    };
                    match verdict {
                        Ok(()) => {
                            mask.insert(i);
                            let _ = accepted_names.push(tool.name);
                        }
                        Err(reason) => {
                            let _ = rejected.push(Rejection {
                                name: tool.name,
                                reason,
                            });
                        }
                    }
                }
                let ack = RegisterAck {
                    accepted: List::from_slice(accepted_names.as_slice()),
                    rejected: List::from_slice(rejected.as_slice()),
                };
                match codec::encode_result(enc, id, &ack, reply) {
                    Ok(n) => h.reply = n,
                    Err(_) => h.error = Some(DecodeError::BadEnvelope("reply buffer too small")),
                }
                h.event = Some(Event::Registered {
                    tools: reg.tools,
                    accepted: mask,
                });
            }
            Request::Unregister(u) => {
                for name in u.names.iter() {
                    self.tools.retain(|t| !name.eq_name(t));
                }
                self.reply_ok(id, reply, h);
                h.event = Some(Event::Unregistered { names: u.names });
            }
            Request::Ask(a) => match self.pending_call(&a.call) {
                Some(call) => match OwnedId::from_id(&id) {
                    Some(owned) => {
                        h.event = Some(Event::Ask {
                            ask: AskId(owned),
                            call,
                            kind: a.kind,
                            prompt: a.prompt,
                            schema: a.schema,
                        })
                    }
                    None => self.error_reply(
                        enc,
                        id,
                        ErrorCode::InvalidRequest,
                        "id too long",
                        reply,
                        h,
                    ),
                },
                // Declined, as an ask left open when its call ends is: whether the ask or the
                // call's end reached the gateway first must not change what the tool sees.
                None => self.error_reply(
                    enc,
                    id,
                    ErrorCode::AskDeclined,
                    "no such call in flight",
                    reply,
                    h,
                ),
            },
            _ => self.error_reply(
                enc,
                id,
                ErrorCode::MethodNotFound,
                "not a node method",
                reply,
                h,
            ),
        }
    }

    fn on_response<'a>(
        &mut self,
        id: Id<'a>,
        result: Result<Payload<'a>, ErrorObject<'a>>,
        h: &mut Handled<'a>,
    ) {
        let Id::Num(n) = id else {
            self.stats.unknown_responses += 1;
            return;
        };
        if self.ping_id == Some(n) {
            self.ping_id = None;
            return;
        }
        if let Some(i) = self.pending.as_slice().iter().position(|p| p.id == n) {
            self.pending.swap_remove(i);
            let result = match result {
                Ok(p) => match p.decode::<Json<'a>>(&self.config.limits) {
                    Ok(j) => Ok(j),
                    Err(e) => {
                        h.error = Some(e);
                        Err(ErrorObject::new(
                            ErrorCode::InvalidParams,
                            "unreadable result",
                        ))
                    }
                },
                Err(e) => Err(e),
            };
            h.event = Some(Event::CallDone {
                call: CallId(n),
                result,
            });
            return;
        }
        if let Some(i) = self.requests.iter().position(|r| *r == n) {
            self.requests.swap_remove(i);
            h.event = Some(Event::Response { id: n, result });
            return;
        }
        // A late result after a cancel or timeout, or an id never issued.
        self.stats.unknown_responses += 1;
    }

    /// Checks deadlines: handshake, calls (expired ones fail with `Timeout` and a `cancel` is
    /// queued for the node), heartbeat.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.close(CloseReason::Timeout, false);
            return;
        }
        let hb = self.config.heartbeat;
        if hb.as_millis() > 0 && matches!(self.state, State::Ready(_)) {
            if now >= self.last_heard + hb.silence_limit() {
                // Said, in case the peer still reads: it learns why rather than seeing a bare
                // close (before the handshake there is no agreed encoding to say it in).
                let _ = self.ctl.push_back(Ctl::Goodbye(GoodbyeReason::IdleTimeout));
                self.close(CloseReason::Timeout, false);
                return;
            }
            if self.next_ping.is_some_and(|t| now >= t) {
                let id = self.alloc_id();
                if self.ctl.push_back(Ctl::Ping(id)).is_ok() {
                    self.ping_id = Some(id);
                }
                self.next_ping = Some(now + hb);
            }
        }
        if self.calls_due.is_none_or(|d| now < d) {
            return;
        }
        let mut i = 0;
        let mut due = None;
        while i < self.pending.as_slice().len() {
            let deadline = self.pending.as_slice()[i].deadline;
            if deadline.is_some_and(|d| now >= d) {
                let p = self.pending.swap_remove(i);
                let _ = self.cancels.push_back((p.id, true));
                let _ = self.done.push_back((CallId(p.id), ErrorCode::Timeout));
            } else {
                due = earliest(due, deadline);
                i += 1;
            }
        }
        self.calls_due = due;
    }

    /// The transport closed: pending calls fail with `Disconnected` (see [`Connection::poll_event`]).
    pub fn transport_closed(&mut self) {
        if self.state != State::Closed {
            self.close(CloseReason::Disconnected, false);
        }
    }

    // ----- outputs

    /// The next instant [`Connection::handle_timeout`] must be called at, if any. After a call
    /// ends it may still be that call's deadline (they are forgotten lazily): calling
    /// `handle_timeout` then finds nothing due, and the instant after it is exact.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let calls = self.calls_due;
        let idle = (self.config.heartbeat.as_millis() > 0 && matches!(self.state, State::Ready(_)))
            .then(|| self.last_heard + self.config.heartbeat.silence_limit());
        [calls, idle, self.next_ping, self.handshake_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Writes the next queued frame (cancel, ping, goodbye) into `out`; `None` when there is
    /// nothing to send.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        let enc = self.encoding;
        // Cancels first: a goodbye, if queued, goes last.
        if let Some((id, expired)) = self.cancels.pop_front() {
            let reason = if expired {
                "deadline passed"
            } else {
                "cancelled"
            };
            return Some(codec::encode_notification(
                enc,
                &Notification::Cancel(crate::frame::Cancel {
                    id: Id::Num(id),
                    reason: Some(Str::new(reason)),
                }),
                out,
            ));
        }
        let ctl = self.ctl.pop_front()?;
        Some(match ctl {
            Ctl::Ping(id) => codec::encode_request(enc, Id::Num(id), &Request::Ping, out),
            Ctl::Goodbye(reason) => codec::encode_notification(
                enc,
                &Notification::Goodbye(Goodbye {
                    reason,
                    message: None,
                }),
                out,
            ),
        })
    }

    /// The next event not tied to an input frame: calls failed by timeout or disconnect, then
    /// the close.
    pub fn poll_event(&mut self) -> Option<Event<'static>> {
        if let Some((call, code)) = self.done.pop_front() {
            return Some(Event::CallDone {
                call,
                result: Err(ErrorObject::new(code, code.message())),
            });
        }
        if let (Some(r), false) = (self.closed, self.close_reported) {
            self.close_reported = true;
            return Some(Event::Closed(r));
        }
        None
    }

    // ----- mutators

    /// Starts a call of `tool` with `args` (a JSON object), writing the `execute` request into
    /// `out`. The call fails with `Timeout` after `deadline` (and a `cancel` goes to the node).
    pub fn call(
        &mut self,
        now: Instant,
        tool: &str,
        args: Json<'_>,
        deadline: Option<Duration>,
        out: &mut [u8],
    ) -> Result<(CallId, usize), SendError> {
        if self.state != State::Ready(Role::Node) {
            return Err(SendError::NotReady);
        }
        if !self.has_tool(tool) {
            return Err(SendError::ToolNotFound);
        }
        if self.pending.as_slice().len() >= self.max_in_flight() {
            return Err(SendError::Busy);
        }
        let id = self.next_id;
        let limit = self.frame_limit(out.len());
        let ex = Execute {
            tool: Str::new(tool),
            arguments: args,
            deadline_ms: deadline.map(|d| d.as_millis().min(u64::from(u32::MAX)) as u32),
        };
        let n = match codec::encode_request(
            self.encoding,
            Id::Num(id),
            &Request::Execute(ex),
            &mut out[..limit],
        ) {
            Ok(n) => n,
            Err(EncodeError::BufferTooSmall { needed }) => {
                return Err(SendError::FrameTooLarge { needed });
            }
            Err(e) => return Err(SendError::Encode(e)),
        };
        self.next_id += 1;
        let deadline = deadline.map(|d| now + d);
        let _ = self.pending.push(Pending { id, deadline });
        self.calls_due = earliest(self.calls_due, deadline);
        Ok((CallId(id), n))
    }

    /// Cancels a pending call: it leaves the table (no `CallDone` follows) and a `cancel` is
    /// queued for the node. False if the call was not pending.
    pub fn cancel(&mut self, call: CallId) -> bool {
        match self.pending.as_slice().iter().position(|p| p.id == call.0) {
            Some(i) => {
                self.pending.swap_remove(i);
                let _ = self.cancels.push_back((call.0, false));
                true
            }
            None => false,
        }
    }

    /// Answers a node's ask, writing the response into `out`.
    pub fn answer(
        &mut self,
        ask: &AskId,
        answer: Result<Json<'_>, ErrorObject<'_>>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        match answer {
            Ok(v) => codec::encode_result(self.encoding, ask.0.as_id(), &v, out),
            Err(e) => codec::encode_error(self.encoding, ask.0.as_id(), &e, out),
        }
    }

    /// Answers a controller's request with a result.
    pub fn respond<'v, R: Wire<'v>>(
        &mut self,
        id: Id<'_>,
        result: &R,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let limit = self.frame_limit(out.len());
        codec::encode_result(self.encoding, id, result, &mut out[..limit])
    }

    /// Answers a controller's request with an error (held to the peer's frame limit, like a
    /// result: a tool error with large `data` may not fit).
    pub fn respond_error(
        &mut self,
        id: Id<'_>,
        error: &ErrorObject<'_>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let limit = self.frame_limit(out.len());
        codec::encode_error(self.encoding, id, error, &mut out[..limit])
    }

    /// Sends a notification (progress forwarded to a controller, say).
    pub fn notify(&mut self, n: &Notification<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
        let limit = self.frame_limit(out.len());
        codec::encode_notification(self.encoding, n, &mut out[..limit])
    }

    /// Sends a request of the runtime's own (an `ask` forwarded to a controller, say); its
    /// response comes back as [`Event::Response`] with the returned id. At most
    /// [`MAX_REQUESTS`] are outstanding: beyond, [`SendError::Busy`].
    pub fn request(
        &mut self,
        request: &Request<'_>,
        out: &mut [u8],
    ) -> Result<(u64, usize), SendError> {
        if !matches!(self.state, State::Ready(_)) {
            return Err(SendError::NotReady);
        }
        if self.requests.is_full() {
            return Err(SendError::Busy);
        }
        let id = self.next_id;
        let limit = self.frame_limit(out.len());
        let n = match codec::encode_request(self.encoding, Id::Num(id), request, &mut out[..limit])
        {
            Ok(n) => n,
            Err(EncodeError::BufferTooSmall { needed }) => {
                return Err(SendError::FrameTooLarge { needed });
            }
            Err(e) => return Err(SendError::Encode(e)),
        };
        self.next_id += 1;
        // Remembered so that the response is reported as `Event::Response` (room checked above).
        let _ = self.requests.push(id);
        Ok((id, n))
    }

    /// Stops waiting for the response to a [`Connection::request`] (the ask it forwarded ended
    /// with its call): its slot is free again, and a late response is dropped and counted.
    /// False if it was not outstanding.
    pub fn forget_request(&mut self, id: u64) -> bool {
        match self.requests.iter().position(|r| *r == id) {
            Some(i) => {
                self.requests.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Closes with a `goodbye` (sent by the next [`Connection::poll_transmit`]); pending calls
    /// fail with `Disconnected`.
    pub fn shutdown(&mut self, reason: GoodbyeReason) {
        if self.state != State::Closed {
            let _ = self.ctl.push_back(Ctl::Goodbye(reason));
            self.close(CloseReason::Local, false);
        }
    }

    // ----- internals

    fn close(&mut self, reason: CloseReason, reported_now: bool) -> Event<'static> {
        self.state = State::Closed;
        self.closed = Some(reason);
        self.close_reported = reported_now;
        // Nothing to welcome or refuse any more: a late accept() must not revive the connection.
        self.hello_reply_id = None;
        self.handshake_deadline = None;
        self.next_ping = None;
        for p in self.pending.as_slice() {
            let _ = self.done.push_back((CallId(p.id), ErrorCode::Disconnected));
        }
        self.pending.clear();
        self.calls_due = None;
        Event::Closed(reason)
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn frame_limit(&self, out_len: usize) -> usize {
        if self.peer_max_frame == 0 {
            out_len
        } else {
            out_len.min(self.peer_max_frame as usize)
        }
    }

    fn pending_call(&self, id: &Id<'_>) -> Option<CallId> {
        match id {
            Id::Num(n) => self
                .pending
                .as_slice()
                .iter()
                .any(|p| p.id == *n)
                .then_some(CallId(*n)),
            _ => None,
        }
    }

    fn reply_ok<'a>(&mut self, id: Id<'a>, reply: &mut [u8], h: &mut Handled<'a>) {
        match codec::encode_result(self.encoding, id, &(), reply) {
            Ok(n) => h.reply = n,
            Err(_) => h.error = Some(DecodeError::BadEnvelope("reply buffer too small")),
        }
    }

    fn error_reply<'a>(
        &mut self,
        enc: Encoding,
        id: Id<'a>,
        code: ErrorCode,
        msg: &str,
        reply: &mut [u8],
        h: &mut Handled<'a>,
    ) {
        match codec::encode_error(enc, id, &ErrorObject::new(code, msg), reply) {
            Ok(n) => h.reply = n,
            Err(_) => h.error = Some(DecodeError::BadEnvelope("reply buffer too small")),
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimizer from turning the fold into an early exit.
    core::hint::black_box(diff) == 0
}
