//! The gateway across all its connections, sans-IO: which node has which tool, routing calls
//! to nodes, relaying results, progress, asks and cancels back to whoever called, paging
//! listings, tokens, ACLs and rate limits. (Needs the `alloc` feature: its tables grow with the
//! fleet.)
//!
//! A [`Router`] owns one [`gateway::Connection`] per peer and everything that spans them, as
//! quinn-proto's `Endpoint` does for QUIC connections. It never touches a socket or a clock:
//!
//! - **inputs** (they return nothing that must be acted on): [`Router::open`] a connection,
//!   [`Router::handle_frame`] for each frame it receives, [`Router::handle_timeout`] when
//!   [`Router::poll_timeout`] passes, [`Router::close`] when its transport ends; local calls
//!   with [`Router::call`], [`Router::cancel`], [`Router::answer`]; [`Router::shutdown`].
//! - **outputs**: [`Router::poll_ready`] names connections with frames to send (or that must
//!   close), [`Router::poll_transmit`] hands a connection's frames over, [`Router::is_closing`]
//!   says to close its transport once they are sent; [`Router::poll_event`] yields [`Event`]s;
//!   [`Router::poll_timeout`] is the next instant to call [`Router::handle_timeout`].
//!
//! A runtime loop: after every input, drain `poll_ready` (waking or writing those connections)
//! and `poll_event`, and re-arm one timer at `poll_timeout`.
//!
//! ```
//! use toolwire_core::router::{AcceptAll, Router, RouterConfig};
//! use toolwire_core::Instant;
//!
//! let mut router = Router::new(RouterConfig::new("gw"), AcceptAll);
//! let now = Instant(0);
//! let node = router.open(now).unwrap();
//! // A node says hello (JSON-RPC text here; the first frame's encoding is sniffed).
//! router.handle_frame(node, now, br#"{"jsonrpc":"2.0","id":1,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true,"postcard":false},"max_frame":1024,"max_in_flight":4}}"#);
//! assert_eq!(router.poll_ready(), Some(node));
//! let mut out = toolwire_core::router::Outbox::new();
//! router.poll_transmit(node, &mut out);
//! let welcome = std::str::from_utf8(out.iter().next().unwrap()).unwrap();
//! assert!(welcome.starts_with(r#"{"jsonrpc":"2.0","id":1,"result":{"#), "{welcome}");
//! assert!(welcome.contains(r#""encoding":"json""#));
//! ```
//!
//! **Storage.** The router allocates (maps keyed by node and tool names, one boxed connection
//! per peer, one queue of frames per peer) because a gateway's tables are sized by its fleet,
//! which is not known when it is built. A node's firmware never compiles this module: it is
//! behind the `alloc` feature, and `toolwire-core` without default features stays free of
//! allocation. Frames are decoded in place and encoded once into the router's single scratch
//! buffer, then appended to the receiving connection's [`Outbox`], which the runtime takes by
//! swapping buffers.
//!
//! **Every call completes exactly once.** A call gets a deadline (its own, or
//! [`RouterConfig::default_deadline`]); it ends with the node's answer, `-32003` at its
//! deadline, `-32009` when the node goes, `-32008` when its result does not fit the caller's
//! frame limit, or by a cancel (the caller's; no answer then, as PROTOCOL.md §6 says). A
//! controller that leaves cancels its calls.

mod cache;
mod config;
mod held;
mod listing;
mod relay;
mod types;

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Bound;

pub use cache::{CacheConfig, canonical};
pub use config::{
    Acl, AskRule, DEFAULT_MAX_CONTROLLERS, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_NODES,
    MAX_RULE_ANSWER, MAX_RULE_PROMPT, MAX_RULES, RateLimit, RouterConfig, TokenSpec,
};
pub use held::HeldConfig;
pub use types::{
    AcceptAll, AskKey, CallKey, ConnId, Event, Failure, HeldPage, LocalCall, NodeView, OpenError,
    Outbox, Schemas, Stats, ToolView,
};

use config::Bucket;
use listing::{node_view, tool_view};
use relay::not_permitted;

use crate::frame::{
    Annotations, Ask, AskKind, Decision, Encoding, ErrorObject, GoodbyeReason, ListNodes,
    ListTools, NodeInfo, NodesPage, Notification, Progress, Request, Resolved, Role, RulesList,
    ToolDef, ToolEntry, ToolsChanged, ToolsPage,
};
use crate::gateway::{self, AskId, Auth, CallId, Connection, Heap, State, ct_eq};
use crate::{Duration, EncodeError, ErrorCode, Id, Instant, Json, List, OwnedId, Str};

/// Calls pending on one node connection, at most.
pub const MAX_PENDING: usize = 256;
/// Asks one call may have open at once, at most: a node's further ask while this many wait
/// is declined with `-32013` ("too many asks open on the call"). Several may be open so that a
/// tool can ask its questions together and an MCP client answer them in one round.
pub const MAX_ASKS_PER_CALL: usize = 4;
/// Tools one node may register, at most.
pub const MAX_TOOLS: usize = 256;
/// Items in one listing page, at most (a controller's `limit` is clamped to it).
pub const MAX_PAGE: usize = 1000;
/// Items in a listing page when the controller gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// Patterns in one `tools.scope`, at most.
pub const MAX_SCOPE: usize = 256;
/// Bytes of one `tools.scope` pattern, at most (a node id, `/`, a tool name).
pub const MAX_SCOPE_PATTERN: usize = 2 * crate::frame::MAX_TOOL_NAME + 1;

type Conn = Connection<'static, Heap<MAX_PENDING, MAX_TOOLS>>;

/// Who is on the other end of a connection.
enum Peer {
    /// No handshake yet.
    Unknown,
    /// A node with this id.
    Node(String),
    /// A controller; `principal` indexes [`RouterConfig::tokens`] (`None`: open gateway).
    /// `scope`: its active tool set (`tools.scope`), `None` while it sees every tool.
    /// `rules`: its ask rules (`rules.set`), first match first.
    Controller {
        principal: Option<usize>,
        scope: Option<Box<Acl>>,
        rules: Vec<AskRule>,
    },
}

struct Slot {
    conn: Box<Conn>,
    out: Outbox,
    peer: Peer,
    /// The instant this connection is filed under in `timers`.
    timer: Option<Instant>,
    /// Listed in `ready`.
    ready: bool,
    /// Listed in `dirty`.
    dirty: bool,
    /// Counted in `Router::handshakes` (no `hello` accepted yet).
    handshaking: bool,
}

struct Entry {
    generation: u32,
    slot: Option<Slot>,
}

struct ToolRec<K> {
    description: String,
    input_schema: String,
    output_schema: Option<String>,
    annotations: Annotations,
    compiled: K,
}

struct NodeRec<K> {
    conn: ConnId,
    /// Boxed: a map's node has room for eleven entries, so a node with one tool would pay for
    /// eleven records (a compiled schema is a few hundred bytes).
    tools: BTreeMap<String, Box<ToolRec<K>>>,
    bucket: Bucket,
}

/// What [`Router::dispatch`] did with a call.
enum Dispatched {
    /// Sent to the node under this key.
    Sent(u64),
    /// Answered from the result cache.
    Cached(String),
}

/// Who waits for a call.
enum Origin {
    /// [`Router::call`].
    Local,
    /// A controller's `tools.call` with this request id.
    Controller { conn: ConnId, id: OwnedId },
}

/// A node's ask, open on a call.
struct OpenAsk {
    ask: AskId,
    seq: u64,
    /// The id of the `ask` request forwarded to the controller.
    forwarded: Option<u64>,
}

struct CallRec {
    node_conn: ConnId,
    exec: CallId,
    origin: Origin,
    node: String,
    tool: String,
    started: Instant,
    /// Its node's open asks, at most [`MAX_ASKS_PER_CALL`].
    asks: Vec<OpenAsk>,
    /// Where its result goes in the result cache, if it is kept.
    cache_key: Option<(String, String, String)>,
    /// The caller's result budget (`max_result_bytes`).
    budget: Option<u32>,
}

/// A controller's request id as a map key (string ids as they travelled).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ReqKey {
    Num(u64),
    Str(String, bool),
    Null,
}

impl ReqKey {
    fn of(id: &Id<'_>) -> Self {
        match id {
            Id::Num(n) => ReqKey::Num(*n),
            Id::Str(s) => ReqKey::Str(s.raw().to_owned(), s.is_escaped()),
            Id::Null => ReqKey::Null,
        }
    }
}

/// The gateway's routing core. See the [module documentation](self).
pub struct Router<S: Schemas> {
    config: RouterConfig,
    schemas: S,
    entries: Vec<Entry>,
    free: Vec<u32>,
    open: usize,
    /// Open connections whose `hello` has not been accepted.
    handshaking: usize,
    nodes: BTreeMap<String, NodeRec<S::Compiled>>,
    /// Tool name → nodes offering it.
    tool_index: BTreeMap<String, BTreeSet<String>>,
    controllers: BTreeSet<u32>,
    calls: BTreeMap<u64, CallRec>,
    /// (node slot, execute id) → call.
    by_exec: BTreeMap<(u32, u64), u64>,
    /// (controller slot, request id) → call.
    by_request: BTreeMap<(u32, ReqKey), u64>,
    /// (controller slot, forwarded ask's request id) → call.
    ctrl_asks: BTreeMap<(u32, u64), u64>,
    next_key: u64,
    next_ask: u64,
    timers: BTreeSet<(Instant, u32)>,
    dirty: Vec<u32>,
    ready: VecDeque<ConnId>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    cache: Option<cache::ResultCache>,
    held: held::HeldResults,
    stats: Stats,
    /// The time of the latest input.
    now: Instant,
}

/// The slot of `id` if the handle is current.
fn live(entries: &mut [Entry], id: ConnId) -> Option<&mut Slot> {
    let e = entries.get_mut(id.index as usize)?;
    if e.generation != id.generation {
        return None;
    }
    e.slot.as_mut()
}

impl<S: Schemas> Router<S> {
    /// A router with no connection yet.
    pub fn new(config: RouterConfig, schemas: S) -> Self {
        let scratch = alloc::vec![0; config.connection.max_frame.max(1024) as usize];
        let cache = config.cache.map(cache::ResultCache::new);
        let held = held::HeldResults::new(config.held);
        Router {
            config,
            schemas,
            entries: Vec::new(),
            free: Vec::new(),
            open: 0,
            handshaking: 0,
            nodes: BTreeMap::new(),
            tool_index: BTreeMap::new(),
            controllers: BTreeSet::new(),
            calls: BTreeMap::new(),
            by_exec: BTreeMap::new(),
            by_request: BTreeMap::new(),
            ctrl_asks: BTreeMap::new(),
            next_key: 1,
            next_ask: 1,
            timers: BTreeSet::new(),
            dirty: Vec::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            scratch,
            cache,
            held,
            stats: Stats::default(),
            now: Instant::ZERO,
        }
    }

    // ----- getters

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The schema engine.
    pub fn schemas(&self) -> &S {
        &self.schemas
    }

    /// Connections open.
    pub fn connections(&self) -> usize {
        self.open
    }

    /// Open connections whose handshake is not done (see [`RouterConfig::max_handshakes`]).
    pub fn handshakes(&self) -> usize {
        self.handshaking
    }

    /// Controllers connected.
    pub fn controllers(&self) -> usize {
        self.controllers.len()
    }

    /// Calls in flight, from every origin.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Oddity counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Results the result cache holds now (0 without one).
    pub fn cached_results(&self) -> usize {
        self.cache.as_ref().map_or(0, cache::ResultCache::len)
    }

    /// Results held for calls with a result budget now, and their bytes.
    pub fn held_results(&self) -> (usize, usize) {
        self.held.usage()
    }

    /// True if `conn` is open (its handle is current).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some()
    }

    /// The peer's role once its handshake is done.
    pub fn role(&self, conn: ConnId) -> Option<Role> {
        match self.slot(conn)?.peer {
            Peer::Unknown => None,
            Peer::Node(_) => Some(Role::Node),
            Peer::Controller { .. } => Some(Role::Controller),
        }
    }

    /// The node id of a node connection.
    pub fn node_of(&self, conn: ConnId) -> Option<&str> {
        match &self.slot(conn)?.peer {
            Peer::Node(id) => Some(id),
            _ => None,
        }
    }

    /// Connected nodes, by id.
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'_>> {
        self.nodes
            .iter()
            .map(|(id, rec)| node_view(&self.entries, id, rec))
    }

    /// The connected node `id`, looked up in the node table.
    pub fn node(&self, id: &str) -> Option<NodeView<'_>> {
        let (id, rec) = self.nodes.get_key_value(id)?;
        Some(node_view(&self.entries, id, rec))
    }

    /// Registered tools by node then name; only those of `node` and whose name starts with
    /// `prefix`, if given.
    pub fn tools<'r>(
        &'r self,
        prefix: Option<&'r str>,
        node: Option<&'r str>,
    ) -> impl Iterator<Item = ToolView<'r>> + 'r {
        let nodes: alloc::boxed::Box<dyn Iterator<Item = (&String, &NodeRec<S::Compiled>)>> =
            match node {
                Some(n) => Box::new(self.nodes.get_key_value(n).into_iter()),
                None => Box::new(self.nodes.iter()),
            };
        nodes
            .flat_map(|(id, rec)| {
                rec.tools
                    .iter()
                    .map(move |(name, t)| tool_view(id, name, t))
            })
            .filter(move |t| prefix.is_none_or(|p| t.name.starts_with(p)))
    }

    /// [`Router::tools`] after the tool `after` (`node`, `tool`) in the same order, the start
    /// found through the maps' order instead of a walk from the first tool: a page of a long
    /// listing costs its own length, not the tools before it.
    pub fn tools_after<'r>(
        &'r self,
        prefix: Option<&'r str>,
        node: Option<&'r str>,
        after: Option<(&'r str, &'r str)>,
    ) -> impl Iterator<Item = ToolView<'r>> + 'r {
        use core::ops::Bound::{Excluded, Included, Unbounded};
        let from: (core::ops::Bound<&str>, core::ops::Bound<&str>) = match (node, after) {
            (Some(n), Some((an, _))) if an > n => (Excluded(n), Excluded(n)),
            (Some(n), _) => (Included(n), Included(n)),
            (None, Some((an, _))) => (Included(an), Unbounded),
            (None, None) => (Unbounded, Unbounded),
        };
        let empty = matches!(from, (Excluded(_), Excluded(_)));
        let nodes = (!empty)
            .then(|| self.nodes.range::<str, _>(from))
            .into_iter()
            .flatten();
        nodes
            .flat_map(move |(id, rec)| {
                let lower = match after {
                    Some((an, at)) if an == id.as_str() => Excluded(at),
                    _ => Unbounded,
                };
                rec.tools
                    .range::<str, _>((lower, Unbounded))
                    .map(move |(name, t)| tool_view(id, name, t))
            })
            .filter(move |t| prefix.is_none_or(|p| t.name.starts_with(p)))
    }

    /// Nodes offering `tool`, by id.
    pub fn resolve<'r>(&'r self, tool: &str) -> impl Iterator<Item = &'r str> + 'r {
        self.tool_index
            .get(tool)
            .into_iter()
            .flat_map(|nodes| nodes.iter().map(String::as_str))
    }

    // ----- inputs

    /// A new connection (accepted or dialled), waiting for its `hello`. Refused while
    /// [`RouterConfig::max_handshakes`] others are: connections already past their handshake
    /// are bounded by role, when they say hello.
    pub fn open(&mut self, now: Instant) -> Result<ConnId, OpenError> {
        self.now = now;
        if self.handshaking >= self.config.max_handshakes {
            return Err(OpenError::Full);
        }
        let mut cfg = self.config.connection.clone();
        cfg.auth = Auth::Deferred;
        let slot = Slot {
            conn: Box::new(Conn::new(cfg, now)),
            out: Outbox::new(),
            peer: Peer::Unknown,
            timer: None,
            ready: false,
            dirty: false,
            handshaking: true,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize].slot = Some(slot);
                i
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    slot: Some(slot),
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.open += 1;
        self.handshaking += 1;
        let id = ConnId {
            index,
            generation: self.entries[index as usize].generation,
        };
        self.mark_dirty(index);
        self.settle();
        Ok(id)
    }

    /// One frame received on `conn`.
    pub fn handle_frame(&mut self, conn: ConnId, now: Instant, frame: &[u8]) {
        if self.slot(conn).is_none() {
            return;
        }
        self.now = now;
        let idx = conn.index;
        let mut compiled: Vec<(String, S::Compiled)> = Vec::new();
        let Router {
            entries,
            schemas,
            scratch,
            stats,
            ..
        } = self;
        let Some(slot) = entries[idx as usize].slot.as_mut() else {
            return;
        };
        let mut check = |t: &ToolDef<'_>| {
            let k = schemas.compile(t)?;
            compiled.push((t.name.raw().to_owned(), k));
            Ok(())
        };
        let h = slot
            .conn
            .handle_frame_checked(now, frame, scratch, &mut check);
        if h.error.is_some() {
            stats.malformed += 1;
        }
        if h.reply > 0 {
            self.send_scratch(idx, h.reply);
        }
        self.mark_dirty(idx);
        if let Some(ev) = h.event {
            self.on_conn_event(conn, ev, &mut compiled);
        }
        self.settle();
    }

    /// Checks every deadline due by `now`: handshakes, calls (they fail with `-32003`, the node
    /// gets a `cancel`), heartbeats.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(&(t, idx)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                slot.timer = None;
                slot.conn.handle_timeout(now);
                self.mark_dirty(idx);
            }
        }
        self.settle();
    }

    /// The transport of `conn` ended (or the runtime closed it after [`Router::is_closing`]):
    /// its calls fail, a node leaves, and the handle becomes stale.
    pub fn close(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        let Some(slot) = self.slot_mut(conn) else {
            return;
        };
        slot.conn.transport_closed();
        self.mark_dirty(conn.index);
        self.settle();
        let idx = conn.index as usize;
        if let Some(slot) = self.entries[idx].slot.take() {
            if let Some(t) = slot.timer {
                self.timers.remove(&(t, conn.index));
            }
            self.entries[idx].generation = self.entries[idx].generation.wrapping_add(1);
            self.free.push(conn.index);
            self.open -= 1;
            if slot.handshaking {
                self.handshaking -= 1;
            }
        }
    }

    /// Calls `tool` on `node` with `arguments` (a JSON object), checked against `acl` (the
    /// caller's token's, if any) and the tool's schema first. The result comes as
    /// [`Event::Done`] with this key, progress as [`Event::Progress`], questions as
    /// [`Event::Ask`].
    pub fn call(
        &mut self,
        now: Instant,
        node: &str,
        tool: &str,
        arguments: Json<'_>,
        deadline: Option<Duration>,
        acl: Option<&Acl>,
    ) -> Result<CallKey, Failure> {
        let opts = LocalCall {
            deadline,
            acl,
            ..LocalCall::default()
        };
        self.call_with(now, node, tool, arguments, &opts)
    }

    /// [`Router::call`] with every option ([`LocalCall`]): bypassing the result cache, a
    /// result budget. A call the cache answers gets its [`Event::Done`] at once and no
    /// [`Event::Finished`].
    pub fn call_with(
        &mut self,
        now: Instant,
        node: &str,
        tool: &str,
        arguments: Json<'_>,
        opts: &LocalCall<'_>,
    ) -> Result<CallKey, Failure> {
        self.now = now;
        if let Some(acl) = opts.acl
            && !acl.permits(node, tool)
        {
            return Err(not_permitted(node, tool));
        }
        if !arguments.is_object() {
            return Err(Failure::new(
                ErrorCode::InvalidParams,
                "arguments must be a JSON object",
            ));
        }
        relay::check_budget(opts.max_result_bytes)?;
        let r = match self.dispatch(
            node,
            tool,
            arguments,
            opts.deadline,
            Origin::Local,
            !opts.no_cache,
            opts.max_result_bytes,
        ) {
            Ok(Dispatched::Sent(key)) => Ok(key),
            Ok(Dispatched::Cached(result)) => {
                let key = self.next_key;
                self.next_key += 1;
                let result = match opts.max_result_bytes {
                    Some(b) => self.budget_local(node, tool, &result, b),
                    None => result,
                };
                self.events.push_back(Event::Done {
                    key: CallKey(key),
                    result: Ok(result),
                });
                Ok(key)
            }
            Err(f) => Err(f),
        };
        self.settle();
        r.map(CallKey)
    }

    /// A page of a result held for a local call with a result budget: from `offset` (0 or a
    /// `next_offset`), at most `length` bytes (the call's budget if `None`). `acl`: the
    /// reader's token's ACL, which must permit the held result's tool. `-32015` if no such
    /// result is held (never, expired, or dropped for room).
    pub fn read_result(
        &mut self,
        now: Instant,
        handle: &str,
        offset: u32,
        length: Option<u32>,
        acl: Option<&Acl>,
    ) -> Result<HeldPage, Failure> {
        self.now = now;
        let p = self
            .held
            .read(handle, offset, length, now, |holder, node, tool| {
                holder == held::Holder::Local && acl.is_none_or(|a| a.permits(node, tool))
            })?;
        Ok(HeldPage {
            page: p.text.to_owned(),
            total_bytes: p.total,
            next_offset: p.next,
        })
    }

    /// Cancels a local call: the node gets `cancel`, no [`Event::Done`] follows. False if it
    /// was not pending.
    pub fn cancel(&mut self, now: Instant, key: CallKey) -> bool {
        let found = self
            .calls
            .get(&key.0)
            .is_some_and(|c| matches!(c.origin, Origin::Local));
        self.now = now;
        if found {
            self.cancel_call(key.0);
            self.settle();
        }
        found
    }

    /// Answers a local call's [`Event::Ask`]: a JSON value, or an error (`-32013` declines).
    /// Ignored if the ask is no longer open (its call ended).
    pub fn answer(&mut self, now: Instant, ask: AskKey, answer: Result<Json<'_>, ErrorObject<'_>>) {
        self.now = now;
        let Some(rec) = self.calls.get_mut(&ask.call) else {
            return;
        };
        let Some(at) = rec.asks.iter().position(|a| a.seq == ask.seq) else {
            return;
        };
        let open = rec.asks.swap_remove(at);
        let node_conn = rec.node_conn;
        self.answer_node(node_conn, &open.ask, answer);
        self.settle();
    }

    /// Says goodbye to every connection (nodes and controllers) and closes them.
    pub fn shutdown(&mut self, now: Instant, reason: GoodbyeReason) {
        self.now = now;
        for idx in 0..self.entries.len() as u32 {
            if let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                slot.conn.shutdown(reason);
                self.mark_dirty(idx);
            }
        }
        self.settle();
    }

    // ----- outputs

    /// A connection with frames to send, or whose transport must close ([`Router::is_closing`]).
    /// Each is named once until it has been served with [`Router::poll_transmit`].
    pub fn poll_ready(&mut self) -> Option<ConnId> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(slot) = self.slot_mut(id) {
                slot.ready = false;
                return Some(id);
            }
        }
        None
    }

    /// Moves the frames queued for `conn` into `out`, to be sent in order (when `out` is empty
    /// this swaps buffers: nothing is copied). Returns the number of frames moved.
    pub fn poll_transmit(&mut self, conn: ConnId, out: &mut Outbox) -> usize {
        match self.slot_mut(conn) {
            Some(slot) => {
                let n = slot.out.len();
                slot.out.move_into(out);
                n
            }
            None => 0,
        }
    }

    /// True once `conn` is over (refused, said goodbye, timed out, shut down): send what
    /// [`Router::poll_transmit`] gives, then close the transport and call [`Router::close`].
    /// Also true for a stale handle.
    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.slot(conn)
            .is_none_or(|s| s.conn.state() == State::Closed)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next instant [`Router::handle_timeout`] must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    // ----- internals: slots, queues, timers

    fn slot(&self, id: ConnId) -> Option<&Slot> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation)
            .then_some(e.slot.as_ref())
            .flatten()
    }

    fn slot_mut(&mut self, id: ConnId) -> Option<&mut Slot> {
        live(&mut self.entries, id)
    }

    fn conn_id(&self, idx: u32) -> ConnId {
        ConnId {
            index: idx,
            generation: self.entries[idx as usize].generation,
        }
    }

    fn mark_dirty(&mut self, idx: u32) {
        if let Some(slot) = self.entries[idx as usize].slot.as_mut()
            && !slot.dirty
        {
            slot.dirty = true;
            self.dirty.push(idx);
        }
    }

    /// Queues `scratch[..n]` for connection `idx`.
    fn send_scratch(&mut self, idx: u32, n: usize) {
        let limit = self.config.max_queued;
        let Some(slot) = self.entries[idx as usize].slot.as_mut() else {
            return;
        };
        if slot.out.bytes() + n > limit && !slot.out.is_empty() {
            // A peer that does not read: cut it off rather than grow without bound.
            self.stats.cut_off += 1;
            slot.out.clear();
            slot.conn.transport_closed();
        } else {
            slot.out.push(&self.scratch[..n]);
        }
        self.mark_dirty(idx);
    }

    /// Queues the frame an encoder wrote into the scratch buffer.
    fn send_result(&mut self, idx: u32, r: Result<usize, EncodeError>) -> Result<(), EncodeError> {
        let n = r?;
        if n > 0 {
            self.send_scratch(idx, n);
        }
        Ok(())
    }

    /// Drains what touched connections queued inside their state machines (cancels, pings,
    /// goodbyes, failed calls, closes), re-files their timers and lists those with output.
    fn settle(&mut self) {
        while let Some(idx) = self.dirty.pop() {
            let id = self.conn_id(idx);
            let Some(slot) = self.entries[idx as usize].slot.as_mut() else {
                continue;
            };
            slot.dirty = false;
            while let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                match slot.conn.poll_transmit(&mut self.scratch) {
                    Some(Ok(n)) => self.send_scratch(idx, n),
                    // The scratch buffer holds any control frame; nothing to do if it did not.
                    Some(Err(_)) => {}
                    None => break,
                }
            }
            while let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                let Some(ev) = slot.conn.poll_event() else {
                    break;
                };
                self.on_conn_event(id, ev, &mut Vec::new());
            }
            let Some(slot) = self.entries[idx as usize].slot.as_mut() else {
                continue;
            };
            let next = slot.conn.poll_timeout();
            if next != slot.timer {
                if let Some(t) = slot.timer {
                    self.timers.remove(&(t, idx));
                }
                if let Some(t) = next {
                    self.timers.insert((t, idx));
                }
                slot.timer = next;
            }
            if (!slot.out.is_empty() || slot.conn.state() == State::Closed) && !slot.ready {
                slot.ready = true;
                self.ready.push_back(id);
            }
        }
    }
}
