//! The node side of a connection: says hello, registers a static tool table, runs calls.
//!
//! [`Node`] is a state machine with no I/O. A runtime drives it in this order:
//!
//! 1. [`Node::poll_transmit`] until `None`, sending each frame (the first are `hello` and
//!    `register`);
//! 2. [`Node::poll_event`] until `None` (calls stopped by their deadline, connection lost);
//! 3. wait for the first of: a frame from the gateway → [`Node::handle_frame`] (send the reply it
//!    wrote, act on the event it returned); the instant [`Node::poll_timeout`] →
//!    [`Node::handle_timeout`]; a tool handler finishing → [`Node::finish`] (send what it wrote);
//! 4. repeat.
//!
//! Tools are the caller's `&[ToolDef]`: a static table, no allocation. A call is identified by a
//! [`CallHandle`] that becomes stale once the call ends (finished, cancelled or expired), so a
//! late result from a dropped handler is refused rather than sent under a reused id.

use core::fmt;

use crate::codec::{self, Limits, Message};
use crate::frame::{
    Ask, AskKind, Encoding, Encodings, ErrorObject, Goodbye, GoodbyeReason, Hello, Notification,
    PROTOCOL_VERSION, Progress, Register, RegisterAck, Rejection, Request, Role, ToolDef, Welcome,
};
use crate::time::earliest;
use crate::wire::{Id, Json, List, OwnedId, Str};
use crate::{Duration, EncodeError, ErrorCode, Instant};

/// Settings of a node connection.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig<'t> {
    /// The node's id (see [`crate::frame::valid_node_id`]).
    pub id: &'t str,
    /// Token the gateway requires, if any.
    pub token: Option<&'t str>,
    /// The tools offered.
    pub tools: &'t [ToolDef<'t>],
    /// Encodings this node accepts; the gateway chooses one.
    pub encodings: Encodings,
    /// Encoding of the `hello` frame (the gateway answers in it, then both switch to the chosen
    /// one).
    pub hello_encoding: Encoding,
    /// Largest frame this node accepts (its receive buffer).
    pub max_frame: u32,
    /// Decoder limits.
    pub limits: Limits,
    /// How long to wait for the welcome and the register ack.
    pub handshake_timeout: Duration,
}

impl<'t> NodeConfig<'t> {
    /// Defaults: the encodings of the build accepted ([`Encodings::BUILT`]: JSON and postcard
    /// with both features), hello in JSON if built, 4 KiB frames, 10 s handshake.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn new(id: &'t str, tools: &'t [ToolDef<'t>]) -> Self {
        NodeConfig {
            id,
            token: None,
            tools,
            encodings: Encodings::BUILT,
            hello_encoding: Encoding::HELLO,
            max_frame: 4096,
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Identifies a running call. Stale once the call has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallHandle {
    slot: u8,
    generation: u16,
}

impl CallHandle {
    /// The slot index (0..IN_FLIGHT): runtimes use it to index their own per-call state.
    pub fn slot(&self) -> usize {
        self.slot as usize
    }
}

/// Identifies an [`Node::ask`] among the open asks of its call: its [`NodeEvent::Answer`]
/// (which names the call too) carries the same. A handle is the ask's place among the call's
/// `A` places, free again once its answer is out, so the pair (call, ask) names one open ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AskHandle(u8);

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// `hello` not yet sent.
    Start,
    /// Waiting for the welcome.
    Hello,
    /// Waiting for the register ack.
    Registering,
    /// Serving calls.
    Ready,
    /// Over: the runtime closes the transport (and may reconnect with a new [`Node`]).
    Closed,
}

/// Why the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The gateway refused the handshake with this code (version mismatch, unauthorized, …).
    Refused(i32),
    /// The gateway said goodbye.
    Goodbye(GoodbyeReason),
    /// Nothing heard from the gateway for three heartbeat intervals, or the handshake took too
    /// long.
    Timeout,
    /// The gateway broke the protocol (an answer that cannot be read during the handshake).
    ProtocolError,
    /// [`Node::shutdown`] was called.
    Local,
}

/// What the runtime must act on.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent<'a> {
    /// Handshake finished and tools registered: calls may arrive.
    Ready {
        /// Tools the gateway refused (empty normally).
        rejected: List<'a, Rejection<'a>>,
    },
    /// Run tool `tool` (an index into the config's tool table) with `args` (a validated JSON
    /// object), then call [`Node::finish`].
    Execute {
        /// The call.
        call: CallHandle,
        /// Index into `NodeConfig::tools`.
        tool: usize,
        /// Arguments object.
        args: Json<'a>,
    },
    /// Stop the call and drop its handler: the gateway cancelled it or its deadline passed.
    /// Its handle is already stale.
    Cancel {
        /// The call.
        call: CallHandle,
    },
    /// The answer to an [`Node::ask`].
    Answer {
        /// The call that asked.
        call: CallHandle,
        /// Which of its asks this answers.
        ask: AskHandle,
        /// The answer, or why there is none.
        answer: Result<Json<'a>, ErrorObject<'a>>,
    },
    /// The connection is over; close the transport.
    Closed(CloseReason),
}

/// Why a node method refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The call handle is stale (the call was cancelled or has expired): nothing is sent.
    StaleCall,
    /// Not in the state this needs (say, before `Ready`).
    NotReady,
    /// The output buffer is too small for even an error frame.
    Encode(EncodeError),
    /// The call has as many asks open as the node allows (`A` of [`Node`]).
    TooManyAsks,
    /// The reply buffer given to `handle_frame` is too small.
    ReplyBuffer(EncodeError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::StaleCall => f.write_str("call already ended"),
            NodeError::NotReady => f.write_str("connection not ready"),
            NodeError::Encode(e) => write!(f, "cannot encode: {e}"),
            NodeError::TooManyAsks => f.write_str("too many asks outstanding"),
            NodeError::ReplyBuffer(e) => write!(f, "reply buffer: {e}"),
        }
    }
}

impl core::error::Error for NodeError {}

/// What [`Node::handle_frame`] did.
#[must_use = "send the reply it wrote and act on its event: neither comes again from poll_event"]
#[derive(Debug, PartialEq)]
pub struct Handled<'a> {
    /// Something for the runtime to act on.
    pub event: Option<NodeEvent<'a>>,
    /// Bytes of a reply written at the start of the reply buffer (0: none). Send them.
    pub reply: usize,
    /// The frame was malformed or unexpected (logged by runtimes; the connection goes on unless
    /// the event says `Closed`).
    pub error: Option<codec::DecodeError>,
}

#[derive(Clone, Debug)]
struct Slot<const A: usize> {
    id: OwnedId,
    generation: u16,
    deadline: Option<Instant>,
    /// Ids of the call's open asks (0: a free place; ask ids start at [`FIRST_ASK_ID`]).
    asking: [u64; A],
}

#[derive(Clone, Debug)]
enum Ctl {
    Hello,
    Register,
    Error(OwnedId, ErrorCode),
    Goodbye(GoodbyeReason),
}

/// Request id of `hello`.
const HELLO_ID: u64 = 0;
/// Request id of `register`.
const REGISTER_ID: u64 = 1;
/// First id of asks.
const FIRST_ASK_ID: u64 = 2;

/// The node side of one connection. `N` is the number of calls it runs at once, `A` the number
/// of asks a call may have open at once (1 unless given: a device's tools ask one thing at a
/// time; a host's may ask several together).
///
/// A node and a gateway [`Connection`](crate::gateway::Connection) back to back in memory:
/// every frame one writes, the other reads.
///
/// ```
/// use toolwire_core::frame::{Annotations, ToolDef};
/// use toolwire_core::gateway::{Connection, Fixed, Event, GatewayConfig};
/// use toolwire_core::node::{Node, NodeConfig, NodeEvent};
/// use toolwire_core::{Instant, Json, Str};
///
/// let tools = [ToolDef {
///     name: Str::new("add"),
///     description: Str::new("a + b"),
///     input_schema: Json::trusted(br#"{"type":"object"}"#),
///     output_schema: None,
///     annotations: Annotations::NONE,
/// }];
/// let now = Instant(0);
/// let mut node: Node<'_, 4> = Node::new(NodeConfig::new("dev-1", &tools), now);
/// let mut gw: Connection<'_, Fixed<4, 8>> = Connection::new(GatewayConfig::new("gw"), now);
/// let (mut to_gw, mut to_node) = ([0u8; 512], [0u8; 512]);
///
/// // hello → welcome
/// let n = node.poll_transmit(&mut to_gw).unwrap().unwrap();
/// let h = gw.handle_frame(now, &to_gw[..n], &mut to_node);
/// assert!(matches!(h.event, Some(Event::Hello { .. })));
/// let n = h.reply;
/// let h = node.handle_frame(now, &to_node[..n], &mut to_gw);
/// assert_eq!((h.event, h.reply), (None, 0));
///
/// // register → ack: the node is ready
/// let n = node.poll_transmit(&mut to_gw).unwrap().unwrap();
/// let h = gw.handle_frame(now, &to_gw[..n], &mut to_node);
/// assert!(matches!(h.event, Some(Event::Registered { .. })));
/// let n = h.reply;
/// let h = node.handle_frame(now, &to_node[..n], &mut to_gw);
/// assert!(matches!(h.event, Some(NodeEvent::Ready { rejected }) if rejected.is_empty()));
///
/// // The gateway calls `add`; the node is told to run tool 0.
/// let args = Json::trusted(br#"{"a":2,"b":3}"#);
/// let (id, n) = gw.call(now, "add", args, None, &mut to_node).unwrap();
/// let h = node.handle_frame(now, &to_node[..n], &mut to_gw);
/// let Some(NodeEvent::Execute { call, tool: 0, args }) = h.event else {
///     panic!("{h:?}")
/// };
/// assert_eq!(args.as_str(), r#"{"a":2,"b":3}"#);
///
/// // The tool ran: its result goes back and ends the call on the gateway.
/// let n = node.finish(call, Ok(Json::trusted(b"5")), &mut to_gw).unwrap();
/// let h = gw.handle_frame(now, &to_gw[..n], &mut to_node);
/// let Some(Event::CallDone { call: done, result: Ok(result) }) = h.event else {
///     panic!("{h:?}")
/// };
/// assert_eq!((done, result.as_str()), (id, "5"));
/// assert!(!node.is_live(call)); // a second finish would be refused
/// ```
pub struct Node<'t, const N: usize, const A: usize = 1> {
    config: NodeConfig<'t>,
    state: NodeState,
    encoding: Encoding,
    peer_max_frame: u32,
    heartbeat: Option<Duration>,
    last_heard: Instant,
    handshake_deadline: Option<Instant>,
    slots: [Option<Slot<A>>; N],
    /// No running call's deadline is earlier than this (`None`: none has one): kept when a call
    /// starts, made exact by `handle_timeout`, so `poll_timeout` does not scan `N` slots.
    calls_due: Option<Instant>,
    generation: u16,
    next_id: u64,
    ctl: heapless::Deque<Ctl, 8>,
    expired: heapless::Deque<CallHandle, N>,
    closed: Option<CloseReason>,
    close_reported: bool,
}

// On devices (pointers narrower than 64 bits) the entry points stay out of line: inlined into a
// runtime's session future they were copied per call site (~2 KiB of flash for a node).
impl<'t, const N: usize, const A: usize> Node<'t, N, A> {
    /// A connection that starts by sending `hello`.
    pub fn new(config: NodeConfig<'t>, now: Instant) -> Self {
        const {
            assert!(
                A >= 1 && A <= u8::MAX as usize,
                "a call has 1 to 255 ask places"
            )
        };
        let mut ctl = heapless::Deque::new();
        let _ = ctl.push_back(Ctl::Hello);
        Node {
            encoding: config.hello_encoding,
            handshake_deadline: Some(now + config.handshake_timeout),
            config,
            state: NodeState::Start,
            peer_max_frame: 0,
            heartbeat: None,
            last_heard: now,
            slots: core::array::from_fn(|_| None),
            calls_due: None,
            generation: 0,
            next_id: FIRST_ASK_ID,
            ctl,
            expired: heapless::Deque::new(),
            closed: None,
            close_reported: false,
        }
    }

    // ----- getters

    /// Where the connection is.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// The encoding in use (the hello's until the welcome arrives).
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// The largest frame the gateway accepts (known after the welcome).
    pub fn peer_max_frame(&self) -> u32 {
        self.peer_max_frame
    }

    /// True if `call` is still running.
    pub fn is_live(&self, call: CallHandle) -> bool {
        self.slot(call).is_some()
    }

    // ----- inputs

    /// Handles one frame from the gateway. A reply, if any, is written into `reply` (size it to
    /// the gateway's max frame; 256 bytes is enough for every reply the node writes here).
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
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
        if self.state == NodeState::Closed {
            return h;
        }
        self.last_heard = now;
        let msg = match codec::decode_for_node(frame, self.encoding, &self.config.limits) {
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
            Message::Response { id, result } => self.on_response(id, result, &mut h),
            Message::Request { id, request } => self.on_request(now, id, request, reply, &mut h),
            Message::Notification(Notification::Cancel(c)) => {
                if let Some(i) = self.find_slot(&c.id) {
                    let call = self.handle_of(i);
                    self.slots[i] = None;
                    h.event = Some(NodeEvent::Cancel { call });
                }
            }
            Message::Notification(Notification::Goodbye(g)) => {
                h.event = Some(self.close(CloseReason::Goodbye(g.reason)));
            }
            Message::Notification(
                Notification::Progress(_) | Notification::ToolsChanged(_) | Notification::Log(_),
            ) => {
                h.error = Some(codec::DecodeError::BadEnvelope(
                    "notification not meant for nodes",
                ));
            }
        }
        h
    }

    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    fn on_response<'a>(
        &mut self,
        id: Id<'a>,
        result: Result<codec::Payload<'a>, ErrorObject<'a>>,
        h: &mut Handled<'a>,
    ) {
        let Id::Num(n) = id else {
            h.error = Some(codec::DecodeError::BadId);
            return;
        };
        match (n, self.state) {
            (HELLO_ID, NodeState::Hello) => match result {
                Ok(p) => match p.decode::<Welcome<'a>>(&self.config.limits) {
                    Ok(w)
                        if w.version == PROTOCOL_VERSION
                            && self.config.encodings.contains(w.encoding) =>
                    {
                        self.encoding = w.encoding;
                        self.peer_max_frame = w.max_frame;
                        self.heartbeat = (w.heartbeat_ms > 0)
                            .then(|| Duration::from_millis(u64::from(w.heartbeat_ms)));
                        self.state = NodeState::Registering;
                        let _ = self.ctl.push_back(Ctl::Register);
                    }
                    Ok(_) => h.event = Some(self.close(CloseReason::ProtocolError)),
                    Err(e) => {
                        h.error = Some(e);
                        h.event = Some(self.close(CloseReason::ProtocolError));
                    }
                },
                Err(e) => h.event = Some(self.close(CloseReason::Refused(e.code))),
            },
            (REGISTER_ID, NodeState::Registering) => match result {
                Ok(p) => match p.decode::<RegisterAck<'a>>(&self.config.limits) {
                    Ok(ack) => {
                        self.state = NodeState::Ready;
                        self.handshake_deadline = None;
                        h.event = Some(NodeEvent::Ready {
                            rejected: ack.rejected,
                        });
                    }
                    Err(e) => {
                        h.error = Some(e);
                        h.event = Some(self.close(CloseReason::ProtocolError));
                    }
                },
                Err(e) => h.event = Some(self.close(CloseReason::Refused(e.code))),
            },
            (ask, NodeState::Ready) if ask >= FIRST_ASK_ID => {
                let Some((i, j)) = self.slots.iter().enumerate().find_map(|(i, s)| {
                    let j = s.as_ref()?.asking.iter().position(|&a| a == ask)?;
                    Some((i, j))
                }) else {
                    return; // the call ended meanwhile
                };
                if let Some(s) = self.slots[i].as_mut() {
                    s.asking[j] = 0;
                }
                let call = self.handle_of(i);
                let answer = match result {
                    Ok(p) => match p.decode::<Json<'a>>(&self.config.limits) {
                        Ok(j) => Ok(j),
                        Err(e) => {
                            h.error = Some(e);
                            Err(ErrorObject::new(
                                ErrorCode::InvalidParams,
                                "unreadable answer",
                            ))
                        }
                    },
                    Err(e) => Err(e),
                };
                h.event = Some(NodeEvent::Answer {
                    call,
                    ask: AskHandle(j as u8),
                    answer,
                });
            }
            _ => h.error = Some(codec::DecodeError::BadEnvelope("unexpected response")),
        }
    }

    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    fn on_request<'a>(
        &mut self,
        now: Instant,
        id: Id<'a>,
        request: Request<'a>,
        reply: &mut [u8],
        h: &mut Handled<'a>,
    ) {
        let enc = self.encoding;
        let mut error = |h: &mut Handled<'a>, code: ErrorCode, msg: &str| match codec::encode_error(
            enc,
            id,
            &ErrorObject::new(code, msg),
            reply,
        ) {
            Ok(n) => h.reply = n,
            Err(_) => h.error = Some(codec::DecodeError::BadEnvelope("reply buffer too small")),
        };
        match request {
            Request::Ping => match codec::encode_result(enc, id, &(), reply) {
                Ok(n) => h.reply = n,
                Err(_) => h.error = Some(codec::DecodeError::BadEnvelope("reply buffer too small")),
            },
            Request::Execute(ex) => {
                if self.state != NodeState::Ready {
                    return error(h, ErrorCode::NotReady, "node not registered yet");
                }
                let Some(tool) = self
                    .config
                    .tools
                    .iter()
                    .position(|t| ex.tool.eq_name(t.name.raw()))
                else {
                    return error(h, ErrorCode::ToolNotFound, "no such tool on this node");
                };
                if self.find_slot(&id).is_some() {
                    return error(
                        h,
                        ErrorCode::InvalidRequest,
                        "a call with this id is running",
                    );
                }
                let Some(owned) = OwnedId::from_id(&id) else {
                    return error(h, ErrorCode::InvalidRequest, "id longer than 64 bytes");
                };
                let Some(free) = self.slots.iter().position(|s| s.is_none()) else {
                    return error(h, ErrorCode::Busy, "node runs as many calls as it can");
                };
                self.generation = self.generation.wrapping_add(1);
                let deadline = ex
                    .deadline_ms
                    .map(|ms| now + Duration::from_millis(u64::from(ms)));
                self.calls_due = earliest(self.calls_due, deadline);
                self.slots[free] = Some(Slot {
                    id: owned,
                    generation: self.generation,
                    deadline,
                    asking: [0; A],
                });
                h.event = Some(NodeEvent::Execute {
                    call: self.handle_of(free),
                    tool,
                    args: ex.arguments,
                });
            }
            _ => error(
                h,
                ErrorCode::MethodNotFound,
                "nodes serve execute and ping only",
            ),
        }
    }

    /// Checks deadlines: the handshake's, the calls', the heartbeat's.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == NodeState::Closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.close_quietly(CloseReason::Timeout);
            return;
        }
        if let Some(hb) = self.heartbeat
            && now >= self.last_heard + hb.silence_limit()
        {
            self.close_quietly(CloseReason::Timeout);
            return;
        }
        if self.calls_due.is_none_or(|d| now < d) {
            return;
        }
        let mut due = None;
        for i in 0..N {
            let deadline = self.slots[i].as_ref().and_then(|s| s.deadline);
            let expired = deadline.is_some_and(|d| now >= d);
            if !expired {
                due = earliest(due, deadline);
            } else {
                let call = self.handle_of(i);
                if let Some(s) = self.slots[i].take()
                    && self
                        .ctl
                        .push_back(Ctl::Error(s.id, ErrorCode::Timeout))
                        .is_err()
                {
                    // The queue is drained after every input; losing this reply only makes
                    // the gateway time out on its own clock, which it does anyway.
                }
                let _ = self.expired.push_back(call);
            }
        }
        self.calls_due = due;
    }

    // ----- outputs

    /// The next instant [`Node::handle_timeout`] must be called at, if any. After a call ends
    /// it may still be that call's deadline (they are forgotten lazily): calling
    /// `handle_timeout` then finds nothing due, and the instant after it is exact.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == NodeState::Closed {
            return None;
        }
        let calls = self.calls_due;
        let idle = self
            .heartbeat
            .map(|hb| self.last_heard + hb.silence_limit());
        [calls, idle, self.handshake_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Writes the next frame to send into `out`; `None` when there is nothing to send.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
        let ctl = loop {
            match self.ctl.pop_front()? {
                // Closed (shut down) before the hello went out: it would reopen the handshake.
                Ctl::Hello if self.state == NodeState::Closed => continue,
                ctl => break ctl,
            }
        };
        let enc = self.encoding;
        Some(match ctl {
            Ctl::Hello => {
                self.state = NodeState::Hello;
                let hello = Hello {
                    min_version: PROTOCOL_VERSION,
                    max_version: PROTOCOL_VERSION,
                    role: Role::Node,
                    id: Str::new(self.config.id),
                    token: self.config.token.map(Str::new),
                    encodings: self.config.encodings,
                    max_frame: self.config.max_frame,
                    max_in_flight: N as u16,
                };
                codec::encode_request_params(enc, Id::Num(HELLO_ID), &hello, out)
            }
            Ctl::Register => {
                let reg = Register {
                    tools: List::from_slice(self.config.tools),
                };
                codec::encode_request_params(enc, Id::Num(REGISTER_ID), &reg, out)
            }
            Ctl::Error(id, code) => codec::encode_error(
                enc,
                id.as_id(),
                &ErrorObject::new(code, code.message()),
                out,
            ),
            Ctl::Goodbye(reason) => codec::encode_notification_params(
                enc,
                &Goodbye {
                    reason,
                    message: None,
                },
                out,
            ),
        })
    }

    /// The next event not tied to an input frame: calls stopped by their deadline, the
    /// connection closing on a timeout.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn poll_event(&mut self) -> Option<NodeEvent<'static>> {
        if let Some(call) = self.expired.pop_front() {
            return Some(NodeEvent::Cancel { call });
        }
        if let (Some(r), false) = (self.closed, self.close_reported) {
            self.close_reported = true;
            return Some(NodeEvent::Closed(r));
        }
        None
    }

    // ----- mutators

    /// Ends `call` with its result (a JSON value) or error, writing the response into `out`.
    /// A result too large for `out` or for the gateway's frame limit is replaced by a
    /// `FrameTooLarge` error, so the caller is never left waiting.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn finish(
        &mut self,
        call: CallHandle,
        result: Result<Json<'_>, ErrorObject<'_>>,
        out: &mut [u8],
    ) -> Result<usize, NodeError> {
        let i = self.slot(call).ok_or(NodeError::StaleCall)?;
        let Some(slot) = self.slots[i].take() else {
            return Err(NodeError::StaleCall);
        };
        let id = slot.id.as_id();
        let limit = self.frame_limit(out.len());
        let r = match &result {
            Ok(v) => codec::encode_result(self.encoding, id, v, &mut out[..limit]),
            Err(e) => codec::encode_error(self.encoding, id, e, &mut out[..limit]),
        };
        match r {
            Ok(n) => Ok(n),
            Err(EncodeError::BufferTooSmall { .. }) => codec::encode_error(
                self.encoding,
                id,
                &ErrorObject::new(ErrorCode::FrameTooLarge, "result exceeds the frame limit"),
                &mut out[..limit],
            )
            .map_err(NodeError::Encode),
            Err(e) => Err(NodeError::Encode(e)),
        }
    }

    /// Reports progress of `call`, writing a `progress` notification into `out`.
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn progress(
        &mut self,
        call: CallHandle,
        progress: u64,
        total: Option<u64>,
        message: Option<&str>,
        partial: Option<Json<'_>>,
        out: &mut [u8],
    ) -> Result<usize, NodeError> {
        let i = self.slot(call).ok_or(NodeError::StaleCall)?;
        let id = self.slots[i]
            .as_ref()
            .map(|s| s.id.as_id())
            .unwrap_or(Id::Null);
        let limit = self.frame_limit(out.len());
        codec::encode_notification_params(
            self.encoding,
            &Progress {
                id,
                progress,
                total,
                message: message.map(Str::new),
                partial,
            },
            &mut out[..limit],
        )
        .map_err(NodeError::Encode)
    }

    /// Writes a `log` notification into `out`: a line of this node's log about `call` (its
    /// caller sees it), or, without `call`, about the node (the gateway logs it).
    pub fn log(
        &mut self,
        call: Option<CallHandle>,
        level: crate::frame::LogLevel,
        message: &str,
        data: Option<Json<'_>>,
        out: &mut [u8],
    ) -> Result<usize, NodeError> {
        let id = match call {
            Some(c) => {
                let i = self.slot(c).ok_or(NodeError::StaleCall)?;
                Some(
                    self.slots[i]
                        .as_ref()
                        .map(|s| s.id.as_id())
                        .unwrap_or(Id::Null),
                )
            }
            None => None,
        };
        let limit = self.frame_limit(out.len());
        codec::encode_notification_params(
            self.encoding,
            &crate::frame::Log {
                id,
                level,
                message: Str::new(message),
                data,
            },
            &mut out[..limit],
        )
        .map_err(NodeError::Encode)
    }

    /// Asks the gateway a question on behalf of `call`, writing the `ask` request into `out`
    /// (its length is returned with the ask's handle). The answer arrives as
    /// [`NodeEvent::Answer`] with the same handle. A call has at most `A` asks open at once
    /// ([`NodeError::TooManyAsks`] beyond).
    #[cfg_attr(not(target_pointer_width = "64"), inline(never))]
    pub fn ask(
        &mut self,
        call: CallHandle,
        kind: AskKind,
        prompt: &str,
        schema: Option<Json<'_>>,
        out: &mut [u8],
    ) -> Result<(AskHandle, usize), NodeError> {
        if self.state != NodeState::Ready {
            return Err(NodeError::NotReady);
        }
        let i = self.slot(call).ok_or(NodeError::StaleCall)?;
        let ask_id = self.next_id;
        let limit = self.frame_limit(out.len());
        let slot = self.slots[i].as_mut().ok_or(NodeError::StaleCall)?;
        let Some(place) = slot.asking.iter().position(|&a| a == 0) else {
            return Err(NodeError::TooManyAsks);
        };
        let n = codec::encode_request_params(
            self.encoding,
            Id::Num(ask_id),
            &Ask {
                call: slot.id.as_id(),
                kind,
                prompt: Str::new(prompt),
                schema,
            },
            &mut out[..limit],
        )
        .map_err(NodeError::Encode)?;
        slot.asking[place] = ask_id;
        self.next_id += 1;
        Ok((AskHandle(place as u8), n))
    }

    /// Closes the connection with a `goodbye` (sent by the next [`Node::poll_transmit`]).
    pub fn shutdown(&mut self, reason: GoodbyeReason) {
        if self.state != NodeState::Closed {
            let _ = self.ctl.push_back(Ctl::Goodbye(reason));
            self.close_quietly(CloseReason::Local);
        }
    }

    // ----- internals

    /// Closes and returns the event for the caller to hand out now (not again by poll_event).
    fn close(&mut self, reason: CloseReason) -> NodeEvent<'static> {
        self.close_quietly(reason);
        self.close_reported = true;
        NodeEvent::Closed(reason)
    }

    /// Closes; [`Node::poll_event`] reports it.
    fn close_quietly(&mut self, reason: CloseReason) {
        self.state = NodeState::Closed;
        self.closed = Some(reason);
        self.handshake_deadline = None;
        for s in self.slots.iter_mut() {
            *s = None;
        }
    }

    fn frame_limit(&self, out_len: usize) -> usize {
        if self.peer_max_frame == 0 {
            out_len
        } else {
            out_len.min(self.peer_max_frame as usize)
        }
    }

    fn handle_of(&self, i: usize) -> CallHandle {
        CallHandle {
            slot: i as u8,
            generation: self.slots[i].as_ref().map_or(0, |s| s.generation),
        }
    }

    fn slot(&self, call: CallHandle) -> Option<usize> {
        let i = call.slot as usize;
        let s = self.slots.get(i)?.as_ref()?;
        (s.generation == call.generation).then_some(i)
    }

    fn find_slot(&self, id: &Id<'_>) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.id.matches(id)))
    }
}
