//! Helpers shared by the fuzz targets: arbitrary JSON text, arbitrary frames built from typed
//! fields, and the checks every decoded frame must pass.

use arbitrary::{Arbitrary, Result, Unstructured};
use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::json::DEFAULT_MAX_DEPTH;
use toolwire_core::{EncodeError, Encoding, Id, Json, List, Str};

// ---------------------------------------------------------------------------------------------
// Encoding into a buffer of the size the encoder asks for

/// Runs `f` with a small buffer, then with exactly the size it reported as needed: a too-small
/// buffer must be reported with the exact size that then works.
pub fn encode_vec(
    mut f: impl FnMut(&mut [u8]) -> core::result::Result<usize, EncodeError>,
) -> Vec<u8> {
    let mut small = [0u8; 24];
    match f(&mut small) {
        Ok(n) => small[..n].to_vec(),
        Err(EncodeError::BufferTooSmall { needed }) => {
            assert!(
                needed > small.len(),
                "needed {needed} but {} did not do",
                small.len()
            );
            let mut buf = vec![0u8; needed];
            let n = f(&mut buf).expect("encoding into the size reported as needed");
            assert_eq!(n, needed, "encoder reported a size it then did not use");
            buf
        }
        Err(e) => panic!("encoding failed: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON text

/// Deepest nesting the generators produce: frames add up to five levels of envelope (a tool's
/// schema in a `register` frame) and the decoder's default limit is 32.
pub const MAX_TREE_DEPTH: usize = 8;
const _: () = assert!(MAX_TREE_DEPTH + 6 < DEFAULT_MAX_DEPTH as usize);

/// A JSON value as a tree; rendered into text with [`JsonTree::render`].
#[derive(Arbitrary, Debug, Clone)]
pub enum JsonTree {
    Null,
    Bool(bool),
    Int(i64),
    Num {
        neg: bool,
        int: u64,
        frac: Option<u32>,
        exp: Option<(bool, Option<bool>, u16)>,
    },
    Str(JsonString),
    Arr(Vec<JsonTree>),
    Obj(Vec<(JsonString, JsonTree)>),
}

/// A string with a per-character choice of escaping, so that both the raw and the escaped paths
/// of the scanner see every character.
#[derive(Arbitrary, Debug, Clone)]
pub struct JsonString {
    pub text: String,
    /// Bit i set: write character i as a `\u` escape (a surrogate pair above U+FFFF).
    pub escape_mask: u64,
    /// Bit i set: use the short escape where one exists (`\n`, `\/`, …).
    pub short_mask: u64,
}

impl JsonString {
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push('"');
        for (i, ch) in self.text.chars().enumerate() {
            let bit = 1u64 << (i % 64);
            let short = self.short_mask & bit != 0;
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if short => out.push_str("\\/"),
                '\n' if short => out.push_str("\\n"),
                '\r' if short => out.push_str("\\r"),
                '\t' if short => out.push_str("\\t"),
                '\u{8}' if short => out.push_str("\\b"),
                '\u{c}' if short => out.push_str("\\f"),
                c if (c as u32) < 0x20 || self.escape_mask & bit != 0 => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{u:04X}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

impl JsonTree {
    /// Renders the tree as compact JSON (containers below [`MAX_TREE_DEPTH`] become `null`).
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s, MAX_TREE_DEPTH);
        s
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        use std::fmt::Write;
        match self {
            JsonTree::Null => out.push_str("null"),
            JsonTree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonTree::Int(i) => {
                let _ = write!(out, "{i}");
            }
            JsonTree::Num {
                neg,
                int,
                frac,
                exp,
            } => {
                if *neg {
                    out.push('-');
                }
                let _ = write!(out, "{int}");
                if let Some(f) = frac {
                    let _ = write!(out, ".{f}");
                }
                if let Some((upper, sign, e)) = exp {
                    out.push(if *upper { 'E' } else { 'e' });
                    match sign {
                        Some(true) => out.push('+'),
                        Some(false) => out.push('-'),
                        None => {}
                    }
                    let _ = write!(out, "{e}");
                }
            }
            JsonTree::Str(s) => s.render(out),
            JsonTree::Arr(_) | JsonTree::Obj(_) if depth == 0 => out.push_str("null"),
            JsonTree::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render_into(out, depth - 1);
                }
                out.push(']');
            }
            JsonTree::Obj(members) => {
                out.push('{');
                // I-JSON: a name once per object (compared unescaped); later ones are left out.
                let mut seen = std::collections::HashSet::new();
                for (k, v) in members {
                    let mut key = String::new();
                    k.render(&mut key);
                    let name = serde_json::from_str::<String>(&key).unwrap_or_else(|_| key.clone());
                    if !seen.insert(name) {
                        continue;
                    }
                    if seen.len() > 1 {
                        out.push(',');
                    }
                    out.push_str(&key);
                    out.push(':');
                    v.render_into(out, depth - 1);
                }
                out.push('}');
            }
        }
    }
}

/// Any JSON value, as text.
#[derive(Debug, Clone)]
pub struct JsonText(pub String);

impl<'a> Arbitrary<'a> for JsonText {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(JsonText(JsonTree::arbitrary(u)?.render()))
    }
}

impl JsonText {
    pub fn json(&self) -> Json<'_> {
        Json::trusted(self.0.as_bytes())
    }
}

/// A JSON object, as text (tool arguments, schemas).
#[derive(Debug, Clone)]
pub struct JsonObject(pub String);

impl<'a> Arbitrary<'a> for JsonObject {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let members: Vec<(JsonString, JsonTree)> = u.arbitrary()?;
        Ok(JsonObject(JsonTree::Obj(members).render()))
    }
}

impl JsonObject {
    pub fn json(&self) -> Json<'_> {
        Json::trusted(self.0.as_bytes())
    }
}

/// An optional JSON value (`Some(null)` included: JSON tells a `null` value from an absent key).
pub fn opt_json(v: &Option<JsonText>) -> Option<Json<'_>> {
    v.as_ref().map(JsonText::json)
}

// ---------------------------------------------------------------------------------------------
// Arbitrary frame fields

/// A request id (never null: requests need one).
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbId {
    Num(u64),
    Str(String),
}

impl ArbId {
    pub fn id(&self) -> Id<'_> {
        match self {
            ArbId::Num(n) => Id::Num(*n),
            ArbId::Str(s) => Id::Str(Str::new(s)),
        }
    }
}

/// Any id, null included (cancel and progress targets, error responses).
#[derive(Arbitrary, Debug, Clone)]
pub enum AnyId {
    Id(ArbId),
    Null,
}

impl AnyId {
    pub fn id(&self) -> Id<'_> {
        match self {
            AnyId::Id(i) => i.id(),
            AnyId::Null => Id::Null,
        }
    }
}

pub fn opt_str(s: &Option<String>) -> Option<Str<'_>> {
    s.as_deref().map(Str::new)
}

pub fn encoding(postcard: bool) -> Encoding {
    if postcard {
        Encoding::Postcard
    } else {
        Encoding::Json
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ArbTool {
    pub name: String,
    pub description: String,
    pub input_schema: JsonObject,
    pub output_schema: Option<JsonObject>,
    pub annotations: (bool, bool, bool),
}

impl ArbTool {
    pub fn def(&self) -> ToolDef<'_> {
        ToolDef {
            name: Str::new(&self.name),
            description: Str::new(&self.description),
            input_schema: self.input_schema.json(),
            output_schema: self.output_schema.as_ref().map(|s| s.json()),
            annotations: Annotations {
                read_only: self.annotations.0,
                destructive: self.annotations.1,
                idempotent: self.annotations.2,
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ArbHello {
    pub min_version: u16,
    pub max_version: u16,
    pub controller: bool,
    pub id: String,
    pub token: Option<String>,
    pub json: bool,
    pub postcard: bool,
    pub max_frame: u32,
    pub max_in_flight: u16,
}

impl ArbHello {
    pub fn hello(&self) -> Hello<'_> {
        Hello {
            min_version: self.min_version,
            max_version: self.max_version,
            role: if self.controller {
                Role::Controller
            } else {
                Role::Node
            },
            id: Str::new(&self.id),
            token: opt_str(&self.token),
            encodings: Encodings {
                json: self.json,
                postcard: self.postcard,
            },
            max_frame: self.max_frame,
            max_in_flight: self.max_in_flight,
        }
    }
}

pub const ASK_KINDS: [AskKind; 2] = [AskKind::Permission, AskKind::Input];
pub const GOODBYE_REASONS: [GoodbyeReason; 6] = [
    GoodbyeReason::Shutdown,
    GoodbyeReason::Restart,
    GoodbyeReason::ProtocolError,
    GoodbyeReason::IdleTimeout,
    GoodbyeReason::Unauthorized,
    GoodbyeReason::Replaced,
];
pub const REJECT_REASONS: [RejectReason; 4] = [
    RejectReason::Duplicate,
    RejectReason::BadName,
    RejectReason::BadSchema,
    RejectReason::TooMany,
];

pub fn pick<T: Copy>(table: &[T], i: u8) -> T {
    table[i as usize % table.len()]
}

/// Every request kind, with owned fields.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbRequest {
    Hello(ArbHello),
    Register(Vec<ArbTool>),
    Unregister(Vec<String>),
    Execute {
        tool: String,
        arguments: JsonObject,
        deadline_ms: Option<u32>,
    },
    Ask {
        call: AnyId,
        kind: u8,
        prompt: String,
        schema: Option<JsonText>,
    },
    Ping,
    ListNodes {
        cursor: Option<String>,
        limit: Option<u32>,
    },
    ListTools {
        prefix: Option<String>,
        node: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    },
    Resolve(String),
    Call {
        node: String,
        tool: String,
        arguments: JsonObject,
        deadline_ms: Option<u32>,
    },
    CallWith {
        node: String,
        tool: String,
        arguments: JsonObject,
        deadline_ms: Option<u32>,
        cache: Option<bool>,
        max_result_bytes: Option<u32>,
    },
    ReadResult {
        handle: String,
        offset: u32,
        length: Option<u32>,
    },
}

/// Borrowed tool definitions of a `register` request (kept alive by the caller).
pub fn tool_defs(tools: &[ArbTool]) -> Vec<ToolDef<'_>> {
    tools.iter().map(ArbTool::def).collect()
}

impl ArbRequest {
    /// The request as the core types it; `tools` holds the [`tool_defs`] of a `Register`.
    pub fn request<'s>(&'s self, tools: &'s [ToolDef<'s>], names: &'s [Str<'s>]) -> Request<'s> {
        match self {
            ArbRequest::Hello(h) => Request::Hello(h.hello()),
            ArbRequest::Register(_) => Request::Register(Register {
                tools: List::from_slice(tools),
            }),
            ArbRequest::Unregister(_) => Request::Unregister(Unregister {
                names: List::from_slice(names),
            }),
            ArbRequest::Execute {
                tool,
                arguments,
                deadline_ms,
            } => Request::Execute(Execute {
                tool: Str::new(tool),
                arguments: arguments.json(),
                deadline_ms: *deadline_ms,
            }),
            ArbRequest::Ask {
                call,
                kind,
                prompt,
                schema,
            } => Request::Ask(Ask {
                call: call.id(),
                kind: pick(&ASK_KINDS, *kind),
                prompt: Str::new(prompt),
                schema: opt_json(schema),
            }),
            ArbRequest::Ping => Request::Ping,
            ArbRequest::ListNodes { cursor, limit } => Request::ListNodes(ListNodes {
                cursor: opt_str(cursor),
                limit: *limit,
            }),
            ArbRequest::ListTools {
                prefix,
                node,
                cursor,
                limit,
            } => Request::ListTools(ListTools {
                prefix: opt_str(prefix),
                node: opt_str(node),
                cursor: opt_str(cursor),
                limit: *limit,
            }),
            ArbRequest::Resolve(tool) => Request::Resolve(Resolve {
                tool: Str::new(tool),
            }),
            ArbRequest::Call {
                node,
                tool,
                arguments,
                deadline_ms,
            } => Request::Call(Call {
                node: Str::new(node),
                tool: Str::new(tool),
                arguments: arguments.json(),
                deadline_ms: *deadline_ms,
            }),
            // Without options it travels as a plain `Call`, and is read back as one.
            ArbRequest::CallWith {
                node,
                tool,
                arguments,
                deadline_ms,
                cache,
                max_result_bytes,
            } => CallWith {
                node: Str::new(node),
                tool: Str::new(tool),
                arguments: arguments.json(),
                deadline_ms: *deadline_ms,
                cache: *cache,
                max_result_bytes: *max_result_bytes,
            }
            .into_request(),
            ArbRequest::ReadResult {
                handle,
                offset,
                length,
            } => Request::ReadResult(ReadResult {
                handle: Str::new(handle),
                offset: *offset,
                length: *length,
            }),
        }
    }

    pub fn names(&self) -> Vec<Str<'_>> {
        match self {
            ArbRequest::Unregister(n) => n.iter().map(|s| Str::new(s)).collect(),
            _ => Vec::new(),
        }
    }

    pub fn tools(&self) -> &[ArbTool] {
        match self {
            ArbRequest::Register(t) => t,
            _ => &[],
        }
    }
}

/// Every notification kind, with owned fields.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbNotification {
    Cancel {
        id: AnyId,
        reason: Option<String>,
    },
    Progress {
        id: AnyId,
        progress: u64,
        total: Option<u64>,
        message: Option<String>,
        partial: Option<JsonText>,
    },
    Goodbye {
        reason: u8,
        message: Option<String>,
    },
    ToolsChanged {
        node: String,
    },
    Log {
        id: Option<AnyId>,
        level: u8,
        message: String,
        data: Option<JsonText>,
    },
}

const LOG_LEVELS: [LogLevel; 8] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Notice,
    LogLevel::Warning,
    LogLevel::Error,
    LogLevel::Critical,
    LogLevel::Alert,
    LogLevel::Emergency,
];

impl ArbNotification {
    pub fn notification(&self) -> Notification<'_> {
        match self {
            ArbNotification::Cancel { id, reason } => Notification::Cancel(Cancel {
                id: id.id(),
                reason: opt_str(reason),
            }),
            ArbNotification::Progress {
                id,
                progress,
                total,
                message,
                partial,
            } => Notification::Progress(Progress {
                id: id.id(),
                progress: *progress,
                total: *total,
                message: opt_str(message),
                partial: opt_json(partial),
            }),
            ArbNotification::Goodbye { reason, message } => Notification::Goodbye(Goodbye {
                reason: pick(&GOODBYE_REASONS, *reason),
                message: opt_str(message),
            }),
            ArbNotification::ToolsChanged { node } => Notification::ToolsChanged(ToolsChanged {
                node: Str::new(node),
            }),
            ArbNotification::Log {
                id,
                level,
                message,
                data,
            } => Notification::Log(Log {
                // A null id is no id (JSON writes both as `null`; postcard refuses the first).
                id: id.as_ref().map(AnyId::id).filter(|i| *i != Id::Null),
                level: pick(&LOG_LEVELS, *level),
                message: Str::new(message),
                data: opt_json(data),
            }),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ArbError {
    pub code: i32,
    pub message: String,
    pub data: Option<JsonText>,
}

impl ArbError {
    pub fn error(&self) -> ErrorObject<'_> {
        ErrorObject {
            code: self.code,
            message: Str::new(&self.message),
            data: opt_json(&self.data),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks on decoded frames

/// Decodes a response payload as every result type a frame can carry; none may panic, and each
/// that decodes must survive a re-encode unchanged.
pub fn check_payload(p: &codec::Payload<'_>, limits: &Limits) {
    // A macro, not a generic function: the type is named with `'_` so that the value decoded
    // from the payload and the one decoded from the re-encoded bytes get their own lifetimes.
    macro_rules! typed {
        ($t:ty) => {
            if let Ok(v) = p.decode::<$t>(limits) {
                let _ = format!("{v:?}");
                let enc = p.encoding();
                let bytes = encode_vec(|out| codec::encode_result(enc, Id::Num(1), &v, out));
                match codec::decode(&bytes, enc, limits) {
                    Ok(Message::Response { result: Ok(p2), .. }) => {
                        let v2 = p2
                            .decode::<$t>(limits)
                            .unwrap_or_else(|e| panic!("re-encoded result did not decode: {e:?}"));
                        assert_eq!(v, v2, "typed result changed through a re-encode");
                    }
                    other => {
                        panic!("re-encoded result frame did not decode as a result: {other:?}")
                    }
                }
            }
        };
    }
    typed!(Json<'_>);
    typed!(());
    typed!(Welcome<'_>);
    typed!(RegisterAck<'_>);
    typed!(NodesPage<'_>);
    typed!(ToolsPage<'_>);
    typed!(Resolved<'_>);
}

/// The shared body of `decode_json` and `decode_postcard`.
pub fn check_decode(data: &[u8], enc: Encoding) {
    let limits = Limits::default();
    match codec::decode(data, enc, &limits) {
        Ok(msg) => {
            let _ = format!("{msg:?}");
            let bytes = encode_vec(|out| codec::encode(enc, &msg, out));
            let again = codec::decode(&bytes, enc, &limits).unwrap_or_else(|r| {
                panic!(
                    "re-encoded frame did not decode: {r:?}\nframe: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert_eq!(msg, again, "frame changed through a re-encode");
            // Encoding is a fixed point after one round.
            let bytes2 = encode_vec(|out| codec::encode(enc, &again, out));
            assert_eq!(bytes, bytes2, "re-encoding is not stable");
            if let Message::Response { result: Ok(p), .. } = &msg {
                check_payload(p, &limits);
            }
            check_other_encoding(&msg, enc, &limits);
        }
        Err(rej) => {
            let _ = format!("{rej:?} {}", rej.error);
            let Some(id) = rej.reply_to else { return };
            let reply =
                encode_vec(|out| codec::encode_rejection(enc, &rej, out).expect("reply_to is set"));
            match codec::decode(&reply, enc, &limits) {
                Ok(Message::Response {
                    id: rid,
                    result: Err(e),
                }) => {
                    assert_eq!(rid, id, "rejection answered with another id");
                    assert_eq!(e.code, rej.error.code().code());
                }
                other => panic!("rejection reply does not decode as an error: {other:?}"),
            }
        }
    }
}

/// A frame that decoded in one encoding, sent in the other, must decode to the same frame.
/// Only results (their payload stays in its encoding) are exempt. (Depth is counted the same in
/// both encodings, PROTOCOL.md section 9, and names that JSON could only write escaped are
/// refused in both, section 3.)
fn check_other_encoding(msg: &Message<'_>, enc: Encoding, limits: &Limits) {
    let other = match enc {
        Encoding::Json => Encoding::Postcard,
        Encoding::Postcard => Encoding::Json,
    };
    if matches!(msg, Message::Response { result: Ok(_), .. }) {
        return;
    }
    let bytes = encode_vec(|out| codec::encode(other, msg, out));
    match codec::decode(&bytes, other, limits) {
        Ok(m) => assert_eq!(m, *msg, "frame changed when sent in the other encoding"),
        Err(r) => {
            panic!(
                "frame rejected in the other encoding: {r:?}\nframe: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

/// A name JSON can only write escaped (`"`, `\\`, controls).
pub fn needs_escape(s: &Str<'_>) -> bool {
    s.raw().bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// True if a name the request looks something up by needs escapes: such a request is refused
/// in both encodings (PROTOCOL.md section 3).
pub fn escaped_lookup(r: &Request<'_>) -> bool {
    match r {
        Request::Execute(e) => needs_escape(&e.tool),
        Request::Call(c) => needs_escape(&c.node) || needs_escape(&c.tool),
        Request::CallWith(c) => needs_escape(&c.node) || needs_escape(&c.tool),
        Request::Resolve(r) => needs_escape(&r.tool),
        Request::ListTools(l) => {
            l.prefix.is_some_and(|p| needs_escape(&p)) || l.node.is_some_and(|n| needs_escape(&n))
        }
        Request::Unregister(u) => u.names.iter().any(|n| needs_escape(&n)),
        _ => false,
    }
}
