//! The router's handles, events, errors, schema hook and output queue.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::frame::{Annotations, AskKind, Encoding, ErrorObject, RejectReason, ToolDef};
use crate::{Duration, ErrorCode, Json, Str};

/// A connection of the router: an index and a generation, so a handle of a closed connection
/// never reaches the connection that reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl ConnId {
    /// The slot index: dense, below the number of connections ever open at once, so a runtime
    /// can keep per-connection state in a `Vec` indexed by it.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A call made through [`super::Router::call`], to match its [`Event`]s and to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub(super) u64);

/// An ask of a local call, to answer with [`super::Router::answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AskKey {
    pub(super) call: u64,
    pub(super) seq: u64,
}

/// The options of a local call ([`super::Router::call_with`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalCall<'a> {
    /// How long to wait for the node (the router's default deadline if `None`).
    pub deadline: Option<Duration>,
    /// The caller's token's ACL, if any.
    pub acl: Option<&'a super::Acl>,
    /// Bypass the result cache: the call reaches the node even if a fresh result is kept, and
    /// its result replaces that one.
    pub no_cache: bool,
    /// The result budget (at least 16): [`Event::Done`] carries a `Budgeted` envelope
    /// ([`crate::frame::Budgeted`], as JSON text) instead of the bare result, and a result
    /// longer than this is held for [`super::Router::read_result`].
    pub max_result_bytes: Option<u32>,
}

/// A page of a held result ([`super::Router::read_result`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldPage {
    /// The text from the offset, cut at a character boundary.
    pub page: String,
    /// Length of the whole JSON text, in bytes.
    pub total_bytes: u32,
    /// Where the next page starts; `None` after the last.
    pub next_offset: Option<u32>,
}

/// How a call failed, or why it was not made: a protocol [`ErrorCode`] or a tool's own code,
/// a message, and data as JSON text. The one error type of the router's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The code: an [`ErrorCode`] value, or a tool's own (positive) code.
    pub code: i32,
    /// One line for humans.
    pub message: String,
    /// Details, as JSON text.
    pub data: Option<String>,
}

impl Failure {
    /// A failure with a known code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }

    /// With details (`data` must be JSON text).
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// The known code, if it is one.
    pub fn known(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// Copies an error object out of a frame.
    pub fn from_object(e: &ErrorObject<'_>) -> Self {
        Failure {
            code: e.code,
            message: e.message.to_string(),
            data: e.data.map(|d| d.as_str().into()),
        }
    }

    /// Borrows it as an error object to encode.
    pub fn as_object(&self) -> ErrorObject<'_> {
        ErrorObject {
            code: self.code,
            message: Str::new(&self.message),
            data: self.data.as_deref().map(|d| Json::trusted(d.as_bytes())),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.known() {
            Some(c) => write!(f, "{} ({}): {}", c.message(), self.code, self.message),
            None => write!(f, "error {}: {}", self.code, self.message),
        }
    }
}

impl core::error::Error for Failure {}

/// JSON Schema handling, which the host provides: the router compiles each registered tool's
/// schema once through it, keeps the compiled form next to the tool, and checks every call's
/// arguments with it before dispatch. The router itself never parses a schema.
pub trait Schemas {
    /// A compiled schema.
    type Compiled;
    /// Compiles a tool's input schema; an error refuses the tool (`bad_schema`).
    fn compile(&mut self, tool: &ToolDef<'_>) -> Result<Self::Compiled, RejectReason>;
    /// Checks arguments (a JSON object) against a compiled schema; the error is answered to
    /// the caller (usually `-32002 invalid arguments` with the failing path in `data`).
    fn check(&self, schema: &Self::Compiled, arguments: Json<'_>) -> Result<(), Failure>;
}

/// A [`Schemas`] that accepts every schema and every argument object (a host without a JSON
/// Schema engine, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Schemas for AcceptAll {
    type Compiled = ();
    fn compile(&mut self, _tool: &ToolDef<'_>) -> Result<(), RejectReason> {
        Ok(())
    }
    fn check(&self, _schema: &(), _arguments: Json<'_>) -> Result<(), Failure> {
        Ok(())
    }
}

/// Something the host acts on or observes, from [`super::Router::poll_event`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A node finished its handshake.
    NodeUp {
        /// Its id.
        node: String,
    },
    /// A node's connection ended (or was replaced by a newer one with the same id).
    NodeDown {
        /// Its id.
        node: String,
    },
    /// A node registered or withdrew tools.
    ToolsChanged {
        /// Its id.
        node: String,
    },
    /// A local call completed (exactly once per [`super::Router::call`] not cancelled).
    Done {
        /// The call.
        key: CallKey,
        /// The tool's result as JSON text, or the failure.
        result: Result<String, Failure>,
    },
    /// A local call's tool reported progress.
    Progress {
        /// The call.
        key: CallKey,
        /// Work done.
        progress: u64,
        /// Total work.
        total: Option<u64>,
        /// Status text.
        message: Option<String>,
        /// Partial output, JSON text.
        partial: Option<String>,
    },
    /// A line of a node's log: about a local call (`key`), or about a call of a controller that
    /// could not take it or one that ended, or about the node itself (`key` `None`). The
    /// gateway logs it; lines about a controller's call go to that controller (as `log`).
    Log {
        /// The node.
        node: String,
        /// The local call it is about, if any.
        key: Option<CallKey>,
        /// How much it matters.
        level: crate::frame::LogLevel,
        /// The line.
        message: String,
        /// Details, JSON text.
        data: Option<String>,
    },
    /// A local call's tool asks something: answer with [`super::Router::answer`]. An ask left
    /// unanswered ends with its call (the node gets `-32013`).
    Ask {
        /// Pass to [`super::Router::answer`].
        ask: AskKey,
        /// The call that asks.
        key: CallKey,
        /// Permission or input.
        kind: AskKind,
        /// The question.
        prompt: String,
        /// Schema of the expected answer, JSON text.
        schema: Option<String>,
    },
    /// An ask rule of the caller (`rules.set`) decided a node's ask: the node got the answer
    /// (`true`/`false`, the rule's value, or `-32013`) and the caller was not asked.
    AskDecided {
        /// The call that asked.
        key: CallKey,
        /// Its node.
        node: String,
        /// Its tool.
        tool: String,
        /// Permission or input.
        kind: crate::frame::AskKind,
        /// The question.
        prompt: String,
        /// The rule's place in the caller's list.
        rule: usize,
        /// What it decided (never `Forward`: a forwarded ask is relayed as usual).
        decision: crate::frame::Decision,
    },
    /// A call ended, whoever made it (for metrics and logs).
    Finished {
        /// Node.
        node: String,
        /// Tool.
        tool: String,
        /// From dispatch to completion, on the runtime's clock.
        duration: Duration,
        /// `Ok`, or the error code.
        outcome: Result<(), i32>,
    },
}

/// Why [`super::Router::open`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// [`super::RouterConfig::max_handshakes`] connections are in their handshake.
    Full,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Full => {
                f.write_str("as many connections in their handshake as the router allows")
            }
        }
    }
}

impl core::error::Error for OpenError {}

/// A connected node, as [`super::Router::nodes`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView<'r> {
    /// Node id.
    pub id: &'r str,
    /// Tools registered.
    pub tools: usize,
    /// Calls in flight.
    pub in_flight: usize,
    /// Encoding agreed with it.
    pub encoding: Encoding,
}

/// A registered tool, as [`super::Router::tools`] lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToolView<'r> {
    /// The node offering it.
    pub node: &'r str,
    /// Tool name.
    pub name: &'r str,
    /// Description.
    pub description: &'r str,
    /// JSON Schema of the arguments, JSON text.
    pub input_schema: &'r str,
    /// JSON Schema of the result, JSON text.
    pub output_schema: Option<&'r str>,
    /// Behaviour hints.
    pub annotations: Annotations,
}

impl<'r> ToolView<'r> {
    /// As a tool definition to encode.
    pub fn def(&self) -> ToolDef<'r> {
        ToolDef {
            name: Str::new(self.name),
            description: Str::new(self.description),
            input_schema: Json::trusted(self.input_schema.as_bytes()),
            output_schema: self.output_schema.map(|s| Json::trusted(s.as_bytes())),
            annotations: self.annotations,
        }
    }
}

/// Counters of oddities, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that did not decode.
    pub malformed: u64,
    /// Progress reports not relayed (the caller's frame limit, or the caller left).
    pub dropped_progress: u64,
    /// Connections cut off for not reading their frames.
    pub cut_off: u64,
    /// Asks answered by a controller after their call ended.
    pub late_answers: u64,
    /// Nodes and controllers refused `-32005` because as many of their role were connected
    /// as [`super::RouterConfig`] allows.
    pub refused_full: u64,
    /// Calls refused `-32002` because their arguments broke the tool's schema.
    pub schema_rejections: u64,
    /// Calls refused `-32007` by the per-node rate limit.
    pub rate_limited: u64,
    /// Nodes and controllers closed after their handshake for staying silent three heartbeat
    /// intervals.
    pub heartbeat_drops: u64,
    /// Calls the result cache answered (they never reached a node).
    pub cache_hits: u64,
    /// Calls to cacheable tools (read-only and idempotent) the cache could not answer.
    pub cache_misses: u64,
    /// Results longer than their call's budget (`max_result_bytes`), held for `results.read`.
    pub results_held: u64,
}

/// Frames queued for one connection, in order: [`super::Router::poll_transmit`] hands them over
/// (swapping buffers, no copy), the runtime writes them in one batch and clears the box.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    // Each frame as a 4-byte little-endian length and its bytes.
    buf: Vec<u8>,
    frames: usize,
}

impl Outbox {
    /// An empty box.
    pub fn new() -> Self {
        Outbox::default()
    }

    /// True if no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Bytes held (frames and their length prefixes).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The frames, in the order they must be sent.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.buf[..];
        core::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (frame, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            rest = tail;
            Some(frame)
        })
    }

    /// Forgets every frame, keeping the memory for the next batch.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames = 0;
    }

    /// Bytes of memory held for frames.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives back memory beyond `keep` bytes (or beyond what the frames queued need): a
    /// runtime calls it after a light batch, so that a connection that was busy once does not
    /// hold its largest batch's memory while idle.
    pub fn trim(&mut self, keep: usize) {
        self.buf.shrink_to(keep.max(self.buf.len()));
    }

    pub(super) fn push(&mut self, frame: &[u8]) {
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(frame);
        self.frames += 1;
    }

    /// Moves every frame of `self` to the end of `into`.
    pub(super) fn move_into(&mut self, into: &mut Outbox) {
        if into.is_empty() {
            core::mem::swap(self, into);
        } else {
            into.buf.extend_from_slice(&self.buf);
            into.frames += self.frames;
        }
        self.clear();
    }
}
