//! The logical frames of protocol version 1, shared by both encodings.
//!
//! PROTOCOL.md is the normative description; each type here names the JSON keys it uses. In
//! postcard the fields travel in declaration order.

use crate::wire::{Id, Json, List, Str, wire_enum, wire_struct};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Longest tool name, in bytes.
pub const MAX_TOOL_NAME: usize = 64;
/// Longest node id, in bytes.
pub const MAX_NODE_ID: usize = 32;

/// True if `name` is a valid tool name: 1 to [`MAX_TOOL_NAME`] bytes of `A-Z a-z 0-9 _ - .`
/// (MCP's tool-name alphabet), written without JSON escapes.
pub fn valid_tool_name(name: &Str<'_>) -> bool {
    valid_ident(name, MAX_TOOL_NAME)
}

/// True if `id` is a valid node id: 1 to [`MAX_NODE_ID`] bytes of `A-Z a-z 0-9 _ - .`.
pub fn valid_node_id(id: &Str<'_>) -> bool {
    valid_ident(id, MAX_NODE_ID)
}

/// Objects and arrays around a tool's schema in a `tools.list` page: the frame, the result, its
/// `tools` array, the entry and the entry's `tool` (in `register` there are four).
pub const LISTED_SCHEMA_DEPTH: u16 = 5;

/// True if `tool`'s schemas nest no deeper than a `tools.list` page can carry them when frames
/// may nest `max_depth` deep (PROTOCOL.md section 9): a gateway refuses other tools
/// (`bad_schema`), which it could register but not list to a peer with its own limit.
pub fn schemas_fit_listing(tool: &ToolDef<'_>, max_depth: u16) -> bool {
    let d = max_depth.saturating_sub(LISTED_SCHEMA_DEPTH);
    let fits = |j: Json<'_>| Json::parse_with_depth(j.as_bytes(), d).is_ok();
    fits(tool.input_schema) && tool.output_schema.is_none_or(fits)
}

fn valid_ident(s: &Str<'_>, max: usize) -> bool {
    let raw = s.raw();
    !s.is_escaped()
        && !raw.is_empty()
        && raw.len() <= max
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

wire_enum! {
    /// Which frame encoding a connection uses after the handshake.
    pub enum Encoding {
        /// JSON-RPC 2.0 text.
        Json = "json",
        /// postcard binary.
        Postcard = "postcard",
    }
}

impl Encoding {
    /// The encoding a peer says hello in by default: JSON if the build has it, else postcard.
    pub const HELLO: Encoding = if cfg!(feature = "json") {
        Encoding::Json
    } else {
        Encoding::Postcard
    };
}

wire_enum! {
    /// What the peer that says hello is.
    pub enum Role {
        /// Offers tools.
        Node = "node",
        /// Asks the gateway to call tools (a CLI, an agent, the MCP bridge).
        Controller = "controller",
    }
}

wire_struct! {
    /// Encodings a peer accepts, as flags. JSON: `{"json":true,"postcard":true}`.
    pub struct Encodings {
        /// JSON-RPC 2.0.
        pub json: bool => "json",
        /// postcard.
        pub postcard: bool => "postcard",
    }
}

impl Encodings {
    /// Only JSON.
    pub const JSON: Encodings = Encodings {
        json: true,
        postcard: false,
    };
    /// Both encodings.
    pub const BOTH: Encodings = Encodings {
        json: true,
        postcard: true,
    };
    /// The encodings this build reads and writes (features `json` and `postcard`): what a
    /// peer offers by default.
    pub const BUILT: Encodings = Encodings {
        json: cfg!(feature = "json"),
        postcard: cfg!(feature = "postcard"),
    };
    /// True if `e` is in the set.
    pub fn contains(&self, e: Encoding) -> bool {
        match e {
            Encoding::Json => self.json,
            Encoding::Postcard => self.postcard,
        }
    }
}

wire_struct! {
    /// `hello` request, the first frame from a node or controller.
    pub struct Hello<'a> {
        /// Lowest protocol version the sender speaks.
        pub min_version: u16 => "min_version",
        /// Highest protocol version the sender speaks.
        pub max_version: u16 => "max_version",
        /// What the sender is.
        pub role: Role => "role",
        /// Node id (or controller name).
        #[serde(borrow)]
        pub id: Str<'a> => "id",
        /// Shared secret, if the gateway requires one.
        pub token: Option<Str<'a>> => "token",
        /// Encodings the sender accepts for the rest of the connection.
        pub encodings: Encodings => "encodings",
        /// Largest frame the sender accepts, in bytes.
        pub max_frame: u32 => "max_frame",
        /// Calls the sender runs at once (nodes); the gateway never sends more.
        pub max_in_flight: u16 => "max_in_flight",
    }
}

wire_struct! {
    /// Result of `hello`: the gateway's choices.
    pub struct Welcome<'a> {
        /// Protocol version chosen.
        pub version: u16 => "version",
        /// Encoding of every later frame, both ways.
        pub encoding: Encoding => "encoding",
        /// Largest frame the gateway accepts, in bytes.
        pub max_frame: u32 => "max_frame",
        /// Calls the gateway will have in flight on this node at most.
        pub max_in_flight: u16 => "max_in_flight",
        /// Interval of the gateway's pings; a peer silent for three intervals is gone.
        pub heartbeat_ms: u32 => "heartbeat_ms",
        /// The gateway's name.
        #[serde(borrow)]
        pub gateway: Str<'a> => "gateway",
    }
}

wire_struct! {
    /// Behaviour hints for a tool (MCP's annotations).
    pub struct Annotations {
        /// The tool does not change its environment.
        pub read_only: bool => "read_only",
        /// The tool may destroy data or state.
        pub destructive: bool => "destructive",
        /// Calling it twice with the same arguments has no further effect.
        pub idempotent: bool => "idempotent",
    }
    when absent = Annotations::NONE;
}

wire_struct! {
    /// A tool as a node declares it.
    pub struct ToolDef<'a> {
        /// Unique name on the node (see [`valid_tool_name`]).
        #[serde(borrow)]
        pub name: Str<'a> => "name",
        /// What it does, for humans and models.
        #[serde(borrow)]
        pub description: Str<'a> => "description",
        /// JSON Schema of the arguments object.
        #[serde(borrow)]
        pub input_schema: Json<'a> => "input_schema",
        /// JSON Schema of the result, if declared.
        #[serde(borrow)]
        pub output_schema: Option<Json<'a>> => "output_schema",
        /// Behaviour hints.
        pub annotations: Annotations => "annotations",
    }
}

impl Annotations {
    /// No hints.
    pub const NONE: Annotations = Annotations {
        read_only: false,
        destructive: false,
        idempotent: false,
    };
}

impl crate::wire::Wire<'_> for () {
    fn read_postcard(_: &[u8], _: &mut usize) -> Option<Self> {
        Some(())
    }
    fn write_postcard(&self, _: &mut crate::codec::Counted<'_>) {}
    fn write_json(&self, w: &mut crate::json::Writer<'_>) {
        w.raw(b"{}");
    }
    fn read_json(c: &mut crate::json::Cursor<'_>) -> Result<Self, crate::wire::FieldError> {
        if c.kind()? != crate::json::Kind::Object {
            return Err(crate::wire::FieldError::Invalid(""));
        }
        c.skip_value()?;
        Ok(())
    }
}

wire_struct! {
    /// `register` request: tools offered (added to those already registered).
    pub struct Register<'a> {
        /// The tools.
        #[serde(borrow)]
        pub tools: List<'a, ToolDef<'a>> => "tools",
    }
}

wire_enum! {
    /// Why a tool in a `register` request was refused.
    pub enum RejectReason {
        /// A tool of that name is already registered on this node.
        Duplicate = "duplicate",
        /// The name breaks [`valid_tool_name`].
        BadName = "bad_name",
        /// The input or output schema is not a JSON object.
        BadSchema = "bad_schema",
        /// The node already has as many tools as the gateway keeps.
        TooMany = "too_many",
    }
}

wire_struct! {
    /// One refused tool.
    pub struct Rejection<'a> {
        /// The name as sent.
        #[serde(borrow)]
        pub name: Str<'a> => "name",
        /// Why.
        pub reason: RejectReason => "reason",
    }
}

wire_struct! {
    /// Result of `register`.
    pub struct RegisterAck<'a> {
        /// Names accepted.
        #[serde(borrow)]
        pub accepted: List<'a, Str<'a>> => "accepted",
        /// Names refused, with reasons.
        #[serde(borrow)]
        pub rejected: List<'a, Rejection<'a>> => "rejected",
    }
}

wire_struct! {
    /// `unregister` request: tools withdrawn. Result: `{}`.
    pub struct Unregister<'a> {
        /// Names to withdraw (unknown names are ignored).
        #[serde(borrow)]
        pub names: List<'a, Str<'a>> => "names",
    }
}

wire_struct! {
    /// `execute` request (gateway → node): run a tool. The result is the tool's JSON value.
    pub struct Execute<'a> {
        /// Tool name.
        #[serde(borrow)]
        pub tool: Str<'a> => "tool",
        /// Arguments object.
        #[serde(borrow)]
        pub arguments: Json<'a> => "arguments",
        /// Time the caller waits, in milliseconds from receipt.
        pub deadline_ms: Option<u32> => "deadline_ms",
    }
}

wire_struct! {
    /// `cancel` notification, either way: stop call `id` (an `execute` or `tools.call` id).
    pub struct Cancel<'a> {
        /// Id of the call to stop.
        #[serde(borrow)]
        pub id: Id<'a> => "id",
        /// Why, for logs.
        #[serde(borrow)]
        pub reason: Option<Str<'a>> => "reason",
    }
}

wire_struct! {
    /// `progress` notification (node → gateway → controller) about a running call.
    pub struct Progress<'a> {
        /// Id of the call.
        #[serde(borrow)]
        pub id: Id<'a> => "id",
        /// Work done so far (increases with every report).
        pub progress: u64 => "progress",
        /// Total work, if known.
        pub total: Option<u64> => "total",
        /// Human-readable status.
        #[serde(borrow)]
        pub message: Option<Str<'a>> => "message",
        /// A chunk of partial output.
        #[serde(borrow)]
        pub partial: Option<Json<'a>> => "partial",
    }
}

wire_enum! {
    /// How much a `log` line matters (syslog's levels, as MCP names them), least first.
    pub enum LogLevel {
        /// Detail for debugging.
        Debug = "debug",
        /// Normal operation.
        Info = "info",
        /// Normal but worth noting.
        Notice = "notice",
        /// Something may be wrong.
        Warning = "warning",
        /// Something failed.
        Error = "error",
        /// A part failed.
        Critical = "critical",
        /// Act at once.
        Alert = "alert",
        /// The system is unusable.
        Emergency = "emergency",
    }
}

impl LogLevel {
    /// Its rank, 0 (`debug`) to 7 (`emergency`).
    pub const fn rank(self) -> u8 {
        self as u8
    }
}

wire_struct! {
    /// `log` notification (node → gateway → controller): a line of a node's log, about call
    /// `id` (an `execute` id from a node, the `tools.call` id to a controller) or, without
    /// `id`, about the node.
    pub struct Log<'a> {
        /// The call it is about, if any.
        #[serde(borrow)]
        pub id: Option<Id<'a>> => "id",
        /// How much it matters.
        pub level: LogLevel => "level",
        /// The line.
        #[serde(borrow)]
        pub message: Str<'a> => "message",
        /// Details.
        #[serde(borrow)]
        pub data: Option<Json<'a>> => "data",
    }
}

wire_enum! {
    /// What an `ask` wants.
    pub enum AskKind {
        /// Yes or no: the answer is `true` or `false`.
        Permission = "permission",
        /// A value: the answer follows `schema` if given.
        Input = "input",
        /// A completion from the caller's language model (MCP sampling): `prompt` is the
        /// message to the model, `schema` (if given) an object of sampling parameters
        /// (`maxTokens`, `systemPrompt`, `temperature`, `stopSequences`); the answer is the
        /// model's reply as a string.
        Sample = "sample",
        /// The caller's roots (MCP roots: the directories or resources the user has shared):
        /// the answer is an array of `{"uri": str, "name": str?}`.
        Roots = "roots",
    }
}

wire_struct! {
    /// `ask` request (node → gateway, and gateway → controller): a running tool asks for
    /// permission or input. The result is the answer as a JSON value.
    pub struct Ask<'a> {
        /// Id of the call that asks.
        #[serde(borrow)]
        pub call: Id<'a> => "call",
        /// What is asked.
        pub kind: AskKind => "kind",
        /// The question.
        #[serde(borrow)]
        pub prompt: Str<'a> => "prompt",
        /// JSON Schema of the expected answer (for `input`).
        #[serde(borrow)]
        pub schema: Option<Json<'a>> => "schema",
    }
}

wire_enum! {
    /// Why a peer leaves.
    pub enum GoodbyeReason {
        /// Orderly shutdown.
        Shutdown = "shutdown",
        /// Restarting; reconnecting soon.
        Restart = "restart",
        /// The peer broke the protocol.
        ProtocolError = "protocol_error",
        /// Heard nothing for too long.
        IdleTimeout = "idle_timeout",
        /// Authentication failed or permission withdrawn.
        Unauthorized = "unauthorized",
        /// Another connection took over this node id.
        Replaced = "replaced",
    }
}

wire_struct! {
    /// `goodbye` notification: the sender closes the connection after it.
    pub struct Goodbye<'a> {
        /// Why.
        pub reason: GoodbyeReason => "reason",
        /// Details.
        #[serde(borrow)]
        pub message: Option<Str<'a>> => "message",
    }
}

wire_struct! {
    /// `tools.changed` notification (gateway → controllers): a node connected, left, or
    /// registered or withdrew tools. Controllers that cache tool lists refresh them.
    pub struct ToolsChanged<'a> {
        /// The node whose tools changed.
        #[serde(borrow)]
        pub node: Str<'a> => "node",
    }
}

wire_struct! {
    /// `nodes.list` request (controller → gateway).
    pub struct ListNodes<'a> {
        /// Opaque cursor from a previous page.
        #[serde(borrow)]
        pub cursor: Option<Str<'a>> => "cursor",
        /// Page size wanted.
        pub limit: Option<u32> => "limit",
    }
}

wire_struct! {
    /// A node in a `nodes.list` page.
    pub struct NodeInfo<'a> {
        /// Node id.
        #[serde(borrow)]
        pub id: Str<'a> => "id",
        /// Number of tools registered.
        pub tools: u32 => "tools",
        /// Calls in flight now.
        pub in_flight: u32 => "in_flight",
        /// The encoding agreed with it.
        pub encoding: Encoding => "encoding",
    }
}

wire_struct! {
    /// Result of `nodes.list`.
    pub struct NodesPage<'a> {
        /// The nodes.
        #[serde(borrow)]
        pub nodes: List<'a, NodeInfo<'a>> => "nodes",
        /// Cursor of the next page, if any.
        #[serde(borrow)]
        pub next_cursor: Option<Str<'a>> => "next_cursor",
    }
}

wire_struct! {
    /// `tools.list` request (controller → gateway).
    pub struct ListTools<'a> {
        /// Only tools whose name starts with this.
        #[serde(borrow)]
        pub prefix: Option<Str<'a>> => "prefix",
        /// Only tools of this node.
        #[serde(borrow)]
        pub node: Option<Str<'a>> => "node",
        /// Opaque cursor from a previous page.
        #[serde(borrow)]
        pub cursor: Option<Str<'a>> => "cursor",
        /// Page size wanted.
        pub limit: Option<u32> => "limit",
    }
}

wire_struct! {
    /// A tool in a `tools.list` page.
    pub struct ToolEntry<'a> {
        /// The node offering it.
        #[serde(borrow)]
        pub node: Str<'a> => "node",
        /// The tool.
        #[serde(borrow)]
        pub tool: ToolDef<'a> => "tool",
    }
}

wire_struct! {
    /// Result of `tools.list`.
    pub struct ToolsPage<'a> {
        /// The tools.
        #[serde(borrow)]
        pub tools: List<'a, ToolEntry<'a>> => "tools",
        /// Cursor of the next page, if any.
        #[serde(borrow)]
        pub next_cursor: Option<Str<'a>> => "next_cursor",
    }
}

wire_struct! {
    /// `tools.resolve` request: which nodes offer a tool.
    pub struct Resolve<'a> {
        /// Tool name.
        #[serde(borrow)]
        pub tool: Str<'a> => "tool",
    }
}

wire_struct! {
    /// Result of `tools.resolve`.
    pub struct Resolved<'a> {
        /// Ids of the nodes offering the tool.
        #[serde(borrow)]
        pub nodes: List<'a, Str<'a>> => "nodes",
    }
}

wire_struct! {
    /// `tools.scope` request (controller → gateway): the active tool set of this connection.
    /// From then on `tools.list` and `tools.resolve` show, and `tools.call` reaches, only the
    /// tools one of `tools` matches; an empty list lifts the narrowing. The result is `{}`.
    pub struct Scope<'a> {
        /// Patterns: `node/tool`, or `tool` (on any node); `*` matches any run of characters.
        #[serde(borrow)]
        pub tools: List<'a, Str<'a>> => "tools",
    }
}

wire_enum! {
    /// What an ask rule does with an ask it matches.
    pub enum Decision {
        /// Answer it: a permission with `true`, an input with the rule's `answer`.
        Allow = "allow",
        /// Refuse it: a permission is answered `false`, an input declined (`-32013`).
        Deny = "deny",
        /// Relay it to the caller, as without rules.
        Forward = "forward",
    }
}

wire_struct! {
    /// One ask rule (`rules.set`, `rules.list`): which asks it matches and what it decides.
    pub struct Rule<'a> {
        /// Pattern of the asking tool: `node/tool`, or `tool` (on any node); `*` matches any
        /// run of characters.
        #[serde(borrow)]
        pub tool: Str<'a> => "tool",
        /// Only asks of this kind; absent: both.
        pub kind: Option<AskKind> => "kind",
        /// Only asks whose prompt this pattern matches (`*` any run of characters); absent:
        /// any prompt.
        #[serde(borrow)]
        pub prompt: Option<Str<'a>> => "prompt",
        /// What happens to a matching ask.
        pub decision: Decision => "decision",
        /// The answer an `allow` gives an `input` ask.
        #[serde(borrow)]
        pub answer: Option<Json<'a>> => "answer",
    }
}

wire_struct! {
    /// `rules.set` request (controller → gateway): the ask rules of this connection, which
    /// answer its calls' asks without relaying them, first match first. Replaces the last set;
    /// an empty list removes them. The result is `{}`.
    pub struct SetRules<'a> {
        /// The rules, in order.
        #[serde(borrow)]
        pub rules: List<'a, Rule<'a>> => "rules",
    }
}

wire_struct! {
    /// `rules.list` request (controller → gateway); the result is [`RulesList`].
    pub struct ListRules {}
}

wire_struct! {
    /// Result of `rules.list`: the connection's ask rules, in order.
    pub struct RulesList<'a> {
        /// The rules.
        #[serde(borrow)]
        pub rules: List<'a, Rule<'a>> => "rules",
    }
}

wire_struct! {
    /// `tools.call` request (controller → gateway): call a tool on a node. The result is the
    /// tool's JSON value; progress arrives as `progress` notifications carrying this request's
    /// id, and questions as `ask` requests whose `call` is this request's id.
    pub struct Call<'a> {
        /// Node id.
        #[serde(borrow)]
        pub node: Str<'a> => "node",
        /// Tool name.
        #[serde(borrow)]
        pub tool: Str<'a> => "tool",
        /// Arguments object.
        #[serde(borrow)]
        pub arguments: Json<'a> => "arguments",
        /// Time the caller waits, in milliseconds.
        pub deadline_ms: Option<u32> => "deadline_ms",
    }
}

wire_struct! {
    /// `tools.call` with options (controller → gateway; postcard variant 13, JSON method
    /// `tools.call` with the option members): [`Call`] and what the caller asks of the gateway
    /// for this call. An encoder sends [`Call`] when no option is set, so that a peer of an
    /// earlier revision of version 1 keeps reading it.
    pub struct CallWith<'a> {
        /// Node id.
        #[serde(borrow)]
        pub node: Str<'a> => "node",
        /// Tool name.
        #[serde(borrow)]
        pub tool: Str<'a> => "tool",
        /// Arguments object.
        #[serde(borrow)]
        pub arguments: Json<'a> => "arguments",
        /// Time the caller waits, in milliseconds.
        pub deadline_ms: Option<u32> => "deadline_ms",
        /// `false`: bypass the result cache (the call reaches the node, and its result replaces
        /// a kept one). Absent or `true`: a fresh kept result may answer.
        pub cache: Option<bool> => "cache",
        /// The result budget: with it, the result is a [`Budgeted`]. A result whose JSON text is
        /// longer than this many bytes (at least 16) is held at the gateway and its first page
        /// returned; `results.read` reads the rest.
        pub max_result_bytes: Option<u32> => "max_result_bytes",
    }
}

impl<'a> From<Call<'a>> for CallWith<'a> {
    fn from(c: Call<'a>) -> Self {
        CallWith {
            node: c.node,
            tool: c.tool,
            arguments: c.arguments,
            deadline_ms: c.deadline_ms,
            cache: None,
            max_result_bytes: None,
        }
    }
}

impl<'a> CallWith<'a> {
    /// The request to send: [`Request::Call`] when no option is set, so that an earlier peer
    /// reads it, [`Request::CallWith`] otherwise.
    pub fn into_request(self) -> Request<'a> {
        if self.cache.is_none() && self.max_result_bytes.is_none() {
            Request::Call(Call {
                node: self.node,
                tool: self.tool,
                arguments: self.arguments,
                deadline_ms: self.deadline_ms,
            })
        } else {
            Request::CallWith(self)
        }
    }
}

wire_struct! {
    /// A result held at the gateway because it exceeded the call's `max_result_bytes`.
    pub struct Held<'a> {
        /// Names the held result in `results.read`; only the connection that made the call
        /// reads it.
        #[serde(borrow)]
        pub handle: Str<'a> => "handle",
        /// Length of the result's JSON text, in bytes.
        pub total_bytes: u32 => "total_bytes",
        /// The text's first bytes (at most `max_result_bytes`, cut at a character boundary).
        #[serde(borrow)]
        pub page: Str<'a> => "page",
        /// Where the next page starts.
        pub next_offset: u32 => "next_offset",
    }
}

wire_struct! {
    /// Result of a `tools.call` that set `max_result_bytes`: exactly one member is present.
    pub struct Budgeted<'a> {
        /// The tool's result, within the budget.
        #[serde(borrow)]
        pub value: Option<Json<'a>> => "value",
        /// The result exceeded the budget: its first page, and how to read the rest.
        #[serde(borrow)]
        pub held: Option<Held<'a>> => "held",
    }
}

wire_struct! {
    /// `results.read` request (controller → gateway; postcard variant 14): a page of a held
    /// result's JSON text. The result is [`ResultPage`].
    pub struct ReadResult<'a> {
        /// From [`Held::handle`].
        #[serde(borrow)]
        pub handle: Str<'a> => "handle",
        /// Byte offset in the text: 0, or a `next_offset` given before.
        pub offset: u32 => "offset",
        /// Bytes to read at most; absent: the call's `max_result_bytes`.
        pub length: Option<u32> => "length",
    }
}

wire_struct! {
    /// Result of `results.read`.
    pub struct ResultPage<'a> {
        /// The text from the offset, at most `length` bytes, cut at a character boundary.
        #[serde(borrow)]
        pub page: Str<'a> => "page",
        /// Length of the whole text, in bytes.
        pub total_bytes: u32 => "total_bytes",
        /// Where the next page starts; absent after the last page.
        pub next_offset: Option<u32> => "next_offset",
    }
}

wire_struct! {
    /// The error member of a response.
    pub struct ErrorObject<'a> {
        /// An [`crate::ErrorCode`] value, or a tool's own code (positive).
        pub code: i32 => "code",
        /// One line for humans.
        #[serde(borrow)]
        pub message: Str<'a> => "message",
        /// Details.
        #[serde(borrow)]
        pub data: Option<Json<'a>> => "data",
    }
}

impl<'a> ErrorObject<'a> {
    /// An error with a code and a message.
    pub fn new(code: crate::ErrorCode, message: &'a str) -> Self {
        ErrorObject {
            code: code.code(),
            message: Str::new(message),
            data: None,
        }
    }

    /// The known code, if it is one.
    pub fn known_code(&self) -> Option<crate::ErrorCode> {
        crate::ErrorCode::from_code(self.code)
    }
}

/// A request (it has an id and gets exactly one response).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Request<'a> {
    /// `hello`.
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// `register`.
    #[serde(borrow)]
    Register(Register<'a>),
    /// `unregister`.
    #[serde(borrow)]
    Unregister(Unregister<'a>),
    /// `execute`.
    #[serde(borrow)]
    Execute(Execute<'a>),
    /// `ask`.
    #[serde(borrow)]
    Ask(Ask<'a>),
    /// `ping`; the result is `{}`.
    Ping,
    /// `nodes.list`.
    #[serde(borrow)]
    ListNodes(ListNodes<'a>),
    /// `tools.list`.
    #[serde(borrow)]
    ListTools(ListTools<'a>),
    /// `tools.resolve`.
    #[serde(borrow)]
    Resolve(Resolve<'a>),
    /// `tools.call`.
    #[serde(borrow)]
    Call(Call<'a>),
    /// `tools.scope`; the result is `{}`.
    #[serde(borrow)]
    Scope(Scope<'a>),
    /// `rules.set`; the result is `{}`.
    #[serde(borrow)]
    SetRules(SetRules<'a>),
    /// `rules.list`.
    ListRules(ListRules),
    /// `tools.call` with options.
    #[serde(borrow)]
    CallWith(CallWith<'a>),
    /// `results.read`.
    #[serde(borrow)]
    ReadResult(ReadResult<'a>),
}

/// A notification (no id, never answered).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Notification<'a> {
    /// `cancel`.
    #[serde(borrow)]
    Cancel(Cancel<'a>),
    /// `progress`.
    #[serde(borrow)]
    Progress(Progress<'a>),
    /// `goodbye`.
    #[serde(borrow)]
    Goodbye(Goodbye<'a>),
    /// `tools.changed`.
    #[serde(borrow)]
    ToolsChanged(ToolsChanged<'a>),
    /// `log`.
    #[serde(borrow)]
    Log(Log<'a>),
}

impl Request<'_> {
    /// The JSON-RPC method name.
    pub const fn method(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::Register(_) => "register",
            Request::Unregister(_) => "unregister",
            Request::Execute(_) => "execute",
            Request::Ask(_) => "ask",
            Request::Ping => "ping",
            Request::ListNodes(_) => "nodes.list",
            Request::ListTools(_) => "tools.list",
            Request::Resolve(_) => "tools.resolve",
            Request::Call(_) => "tools.call",
            Request::Scope(_) => "tools.scope",
            Request::SetRules(_) => "rules.set",
            Request::ListRules(_) => "rules.list",
            Request::CallWith(_) => "tools.call",
            Request::ReadResult(_) => "results.read",
        }
    }
}

impl Notification<'_> {
    /// The JSON-RPC method name.
    pub const fn method(&self) -> &'static str {
        match self {
            Notification::Cancel(_) => "cancel",
            Notification::Progress(_) => "progress",
            Notification::Goodbye(_) => "goodbye",
            Notification::ToolsChanged(_) => "tools.changed",
            Notification::Log(_) => "log",
        }
    }
}
