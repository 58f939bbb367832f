//! Frames to bytes and back, in JSON-RPC 2.0 or postcard.
//!
//! [`decode`] borrows everything from the input: names, string ids and raw JSON values point into
//! the frame buffer. Encoders write into a caller's buffer and report the size needed when it is
//! too small.
//!
//! Each encoding is compiled in by its feature (`json`, `postcard`); a frame in an encoding the
//! build lacks is refused with [`DecodeError::Unsupported`] / [`EncodeError::Unsupported`], so a
//! device links one codec only.
// With one encoding, the other's helpers are unused.
#![cfg_attr(
    not(all(feature = "json", feature = "postcard")),
    allow(dead_code, unused_imports, unused_variables)
)]

use core::fmt;

use serde::Serialize;

use crate::ErrorCode;
use crate::frame::{Encoding, ErrorObject, Notification, Request};
use crate::json::{self, Cursor, JsonError, Kind, Writer};
use crate::wire::{FieldError, Id, Json, Wire};

// Always compiled: the `Wire` readers use it (unused without the `postcard` feature).
#[cfg_attr(not(feature = "postcard"), allow(dead_code))]
pub(crate) mod pc;

/// Decoder settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of objects and arrays accepted anywhere in a frame (envelope included),
    /// counted in the frame's JSON encoding whatever its encoding (PROTOCOL.md section 9).
    pub max_depth: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: json::DEFAULT_MAX_DEPTH,
        }
    }
}

/// One decoded frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Message<'a> {
    /// A request: answer it with a response carrying the same id.
    Request {
        /// The id to answer with.
        id: Id<'a>,
        /// What is asked.
        request: Request<'a>,
    },
    /// A notification: never answered.
    Notification(Notification<'a>),
    /// A response to a request this side sent.
    Response {
        /// The id of that request.
        id: Id<'a>,
        /// The result (still encoded: its type depends on the request), or the error.
        result: Result<Payload<'a>, ErrorObject<'a>>,
    },
}

/// A response's result, still encoded; decode it with the type the request expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    encoding: Encoding,
    bytes: &'a [u8],
}

impl<'a> Payload<'a> {
    /// The encoding of the frame it came in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The encoded bytes (JSON text, or postcard).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes the result as `T`.
    pub fn decode<T: Wire<'a>>(&self, limits: &Limits) -> Result<T, DecodeError> {
        match self.encoding {
            #[cfg(feature = "json")]
            Encoding::Json => {
                // `decode` validated the result already (it is the exact span of one value).
                if let Some(v) = T::from_validated_json(self.bytes) {
                    return Ok(v);
                }
                let mut c = Cursor::new_unchecked_utf8(self.bytes, limits.max_depth);
                let v = T::read_json(&mut c).map_err(DecodeError::BadResult)?;
                c.end().map_err(DecodeError::Json)?;
                Ok(v)
            }
            #[cfg(feature = "postcard")]
            Encoding::Postcard => {
                let v: T = read_exact(self.bytes).ok_or(DecodeError::Postcard)?;
                // As deep as in JSON, where the result sits inside the frame object.
                v.check_json(limits.max_depth.saturating_sub(1))
                    .map_err(DecodeError::BadResult)?;
                Ok(v)
            }
            #[allow(unreachable_patterns)]
            _ => Err(DecodeError::Unsupported),
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is empty.
    Empty,
    /// Not strict JSON (syntax, UTF-8, depth). Answered with -32700.
    Json(JsonError),
    /// Not a valid postcard frame. Answered with -32700.
    Postcard,
    /// A JSON array at the top level: batches are not served in v1. Answered with -32600.
    Batch,
    /// Valid JSON but not an object. Answered with -32600.
    NotAnObject,
    /// `"jsonrpc"` is missing or not `"2.0"`. Answered with -32600.
    BadVersion,
    /// The id is not a non-negative integer, a string or null. Answered with -32600.
    BadId,
    /// The members do not form a request, notification or response (say, both `method` and
    /// `result`, a member twice, or a response without id). Answered with -32600.
    BadEnvelope(&'static str),
    /// The method is not one of v1's. Answered with -32601.
    UnknownMethod,
    /// The params do not fit the method. Answered with -32602.
    InvalidParams(FieldError),
    /// A response's result does not fit the request it answers (never answered).
    BadResult(FieldError),
    /// The frame's encoding is not compiled into this build (features `json`, `postcard`).
    /// Answered with -32700.
    Unsupported,
}

impl DecodeError {
    /// The error code an answer to this frame carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Empty
            | DecodeError::Json(_)
            | DecodeError::Postcard
            | DecodeError::Unsupported => ErrorCode::ParseError,
            DecodeError::Batch
            | DecodeError::NotAnObject
            | DecodeError::BadVersion
            | DecodeError::BadId
            | DecodeError::BadEnvelope(_) => ErrorCode::InvalidRequest,
            DecodeError::UnknownMethod => ErrorCode::MethodNotFound,
            DecodeError::InvalidParams(_) | DecodeError::BadResult(_) => ErrorCode::InvalidParams,
        }
    }
}

impl DecodeError {
    /// One static line saying what was wrong (the text of error answers).
    pub fn summary(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty frame",
            DecodeError::Json(e) => e.kind.summary(),
            DecodeError::Postcard => "malformed postcard frame",
            DecodeError::Batch => "JSON-RPC batches are not supported",
            DecodeError::NotAnObject => "frame is not a JSON object",
            DecodeError::BadVersion => "\"jsonrpc\" must be \"2.0\"",
            DecodeError::BadId => "id must be a non-negative integer, a string or null",
            DecodeError::BadEnvelope(why) => why,
            DecodeError::UnknownMethod => "unknown method",
            DecodeError::InvalidParams(e) | DecodeError::BadResult(e) => match e {
                FieldError::Json(j) => j.kind.summary(),
                FieldError::Missing(_) => "invalid params: a required field is missing",
                FieldError::Invalid(_) => "invalid params: a field has the wrong type or value",
                FieldError::Duplicate(_) => "invalid params: a field appears twice",
            },
            DecodeError::Unsupported => "encoding not supported by this build",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty frame"),
            DecodeError::Json(e) => write!(f, "malformed JSON: {e}"),
            DecodeError::Postcard => f.write_str("malformed postcard frame"),
            DecodeError::Batch => f.write_str("JSON-RPC batches are not supported"),
            DecodeError::NotAnObject => f.write_str("frame is not a JSON object"),
            DecodeError::BadVersion => f.write_str("\"jsonrpc\" must be \"2.0\""),
            DecodeError::BadId => {
                f.write_str("id must be a non-negative integer, a string or null")
            }
            DecodeError::BadEnvelope(why) => f.write_str(why),
            DecodeError::UnknownMethod => f.write_str("unknown method"),
            DecodeError::InvalidParams(e) => write!(f, "invalid params: {e}"),
            DecodeError::BadResult(e) => write!(f, "invalid result: {e}"),
            DecodeError::Unsupported => f.write_str("encoding not supported by this build"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A frame that could not be decoded, with what is needed to answer it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejected<'a> {
    /// What was wrong.
    pub error: DecodeError,
    /// `Some(id)`: the frame was (or may have been) a request, answer with an error carrying
    /// `id` (`Id::Null` when the id could not be read). `None`: a notification or a response,
    /// which are never answered.
    pub reply_to: Option<Id<'a>>,
}

impl<'a> Rejected<'a> {
    fn answer(error: DecodeError, id: Id<'a>) -> Self {
        Rejected {
            error,
            reply_to: Some(id),
        }
    }
    fn silent(error: DecodeError) -> Self {
        Rejected {
            error,
            reply_to: None,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small; `needed` bytes would do.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// A [`Payload`] in one encoding cannot be forwarded in the other without decoding it.
    EncodingMismatch,
    /// postcard refused a value (does not happen for frames of this crate).
    Postcard,
    /// The encoding is not compiled into this build (features `json`, `postcard`).
    Unsupported,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            EncodeError::EncodingMismatch => f.write_str("payload is in the other encoding"),
            EncodeError::Postcard => f.write_str("postcard serialization failed"),
            EncodeError::Unsupported => f.write_str("encoding not supported by this build"),
        }
    }
}

impl core::error::Error for EncodeError {}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one frame of `encoding`.
pub fn decode<'a>(
    bytes: &'a [u8],
    encoding: Encoding,
    limits: &Limits,
) -> Result<Message<'a>, Rejected<'a>> {
    decode_with(bytes, encoding, limits, &Methods::all())
}

/// Decodes one frame as a node does: only the methods a node serves or receives (`execute`,
/// `ping`, `cancel`, `goodbye`, and responses) are read; any other method is
/// [`DecodeError::UnknownMethod`]. A node's firmware then links the readers of those frames only,
/// not of every frame of the protocol.
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
pub fn decode_for_node<'a>(
    bytes: &'a [u8],
    encoding: Encoding,
    limits: &Limits,
) -> Result<Message<'a>, Rejected<'a>> {
    decode_with(bytes, encoding, limits, &Methods::node())
}

/// A postcard request reader: see [`Methods::postcard_request`].
#[cfg(feature = "postcard")]
type PostcardRequest<'a> = fn(u32, &'a [u8], &'a [u8]) -> Option<Option<Request<'a>>>;

/// A postcard notification reader: see [`Methods::postcard_notification`].
#[cfg(feature = "postcard")]
type PostcardNotification<'a> =
    fn(u32, &'a [u8], u16) -> Option<Result<Notification<'a>, FieldError>>;

/// The methods a decoder reads: one reader per encoding.
struct Methods<'a> {
    #[cfg(feature = "json")]
    json: fn(&str, &mut Cursor<'a>) -> Result<Option<Parsed<'a>>, FieldError>,
    /// The variant, the request (variant and params) and its params. `None`: unknown method;
    /// `Some(None)`: the params do not fit.
    #[cfg(feature = "postcard")]
    postcard_request: PostcardRequest<'a>,
    #[cfg(feature = "postcard")]
    /// The notification of a variant (and its body), its JSON values checked to the depth
    /// given. `None`: unknown method. A node's reads only `cancel` and `goodbye`, which carry no
    /// JSON, so a device links no check for the others.
    postcard_notification: PostcardNotification<'a>,
    /// Checks a postcard request's names and JSON values (a node's checks only the two
    /// requests a node reads, so a device links no arm for the controller methods). Measured
    /// on the QEMU node: ~770 B less with both encodings; a postcard-only build calls
    /// `check_request` directly instead (LTO folds it into the node's decoder there, and
    /// through a pointer either check costs it 220-1,000 B more).
    #[cfg(all(feature = "postcard", feature = "json"))]
    postcard_check: fn(&Request<'a>, u16) -> Result<(), FieldError>,
    _a: core::marker::PhantomData<&'a ()>,
}

impl<'a> Methods<'a> {
    fn all() -> Self {
        Methods {
            #[cfg(feature = "json")]
            json: parse_params,
            #[cfg(feature = "postcard")]
            postcard_request: |variant, body, params| {
                (variant < REQUEST_VARIANTS).then(|| match variant {
                    EXECUTE => pc::execute(params).map(Request::Execute),
                    // A call with options that sets none is a plain call, as in JSON.
                    _ => from_bytes_exact(body).map(|r| match r {
                        Request::CallWith(c) => c.into_request(),
                        r => r,
                    }),
                })
            },
            #[cfg(feature = "postcard")]
            postcard_notification: |variant, body, depth| {
                (variant < NOTIFICATION_VARIANTS).then(|| {
                    let n: Notification<'_> =
                        from_bytes_exact(body).ok_or(FieldError::Invalid("params"))?;
                    match &n {
                        Notification::Cancel(_)
                        | Notification::Goodbye(_)
                        | Notification::ToolsChanged(_) => {}
                        Notification::Progress(p) => p.check_json(depth)?,
                        // JSON writes an id of null as no id at all: postcard may not say it.
                        Notification::Log(l) if l.id == Some(Id::Null) => {
                            return Err(FieldError::Invalid("id"));
                        }
                        Notification::Log(l) => l.check_json(depth)?,
                    }
                    Ok(n)
                })
            },
            #[cfg(all(feature = "postcard", feature = "json"))]
            postcard_check: check_request,
            _a: core::marker::PhantomData,
        }
    }

    fn node() -> Self {
        Methods {
            #[cfg(feature = "json")]
            json: parse_params_node,
            #[cfg(feature = "postcard")]
            postcard_request: |variant, _, params| match variant {
                EXECUTE => Some(pc::execute(params).map(Request::Execute)),
                5 => Some(params.is_empty().then_some(Request::Ping)),
                _ => None,
            },
            #[cfg(feature = "postcard")]
            postcard_notification: |variant, body, _| {
                let mut at = 0;
                pc::u32(body, &mut at)?;
                let params = body.get(at..)?;
                let bad = FieldError::Invalid("params");
                match variant {
                    0 => Some(read_exact(params).map(Notification::Cancel).ok_or(bad)),
                    2 => Some(read_exact(params).map(Notification::Goodbye).ok_or(bad)),
                    _ => None,
                }
            },
            #[cfg(all(feature = "postcard", feature = "json"))]
            postcard_check: check_node_request,
            _a: core::marker::PhantomData,
        }
    }
}

fn decode_with<'a>(
    bytes: &'a [u8],
    encoding: Encoding,
    limits: &Limits,
    methods: &Methods<'a>,
) -> Result<Message<'a>, Rejected<'a>> {
    match encoding {
        #[cfg(feature = "json")]
        Encoding::Json => decode_json(bytes, limits, methods.json),
        #[cfg(feature = "postcard")]
        Encoding::Postcard => decode_postcard(bytes, limits, methods),
        #[allow(unreachable_patterns)]
        _ => Err(Rejected::silent(DecodeError::Unsupported)),
    }
}

/// The id of a response frame that [`decode`] rejected, if one can still be read: a result or
/// error nested too deep, naming a member twice, or otherwise not fit to travel, answering a
/// request this side made. It lets the request complete at once, with an error, rather than at
/// its deadline. JSON: the `id` member must come before the unreadable part (as every encoder
/// of this protocol writes it); a frame with `method` is not a response.
pub fn response_id(bytes: &[u8], encoding: Encoding, limits: &Limits) -> Option<u64> {
    match encoding {
        #[cfg(feature = "postcard")]
        Encoding::Postcard => match bytes.split_first() {
            Some((&(tag::RESULT | tag::ERROR), rest)) => match pc::id(rest) {
                Some((Id::Num(n), _)) => Some(n),
                _ => None,
            },
            _ => None,
        },
        #[cfg(feature = "json")]
        Encoding::Json => {
            let mut c = Cursor::new(bytes, limits.max_depth).ok()?;
            c.begin_object().ok()?;
            let mut first = true;
            while let Some(key) = c.next_key(first).ok()? {
                first = false;
                match key.raw {
                    "id" if !key.escaped => return c.u64().ok(),
                    "method" if !key.escaped => return None,
                    _ => {
                        c.skip_syntax().ok()?;
                    }
                }
            }
            None
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Guesses a frame's encoding from its first byte: JSON frames start with `{`, `[` or
/// whitespace; postcard frames start with a tag below 4. Used for the first frame of a stream,
/// before the encoding is agreed.
pub fn sniff(bytes: &[u8]) -> Encoding {
    match bytes.first() {
        Some(b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n') => Encoding::Json,
        Some(_) => Encoding::Postcard,
        None => Encoding::Json,
    }
}

#[cfg(feature = "json")]
enum Parsed<'a> {
    Req(Request<'a>),
    Note(Notification<'a>),
}

#[cfg(feature = "json")]
fn parse_params<'a>(method: &str, c: &mut Cursor<'a>) -> Result<Option<Parsed<'a>>, FieldError> {
    use crate::frame::*;
    use Parsed::{Note, Req};
    let p = match method {
        "execute" => Req(Request::Execute(read_execute(c)?)),
        "progress" => Note(Notification::Progress(Progress::read_json(c)?)),
        "log" => Note(Notification::Log(Log::read_json(c)?)),
        "cancel" => Note(Notification::Cancel(Cancel::read_json(c)?)),
        "ping" => {
            <()>::read_json(c)?;
            Req(Request::Ping)
        }
        "hello" => Req(Request::Hello(Hello::read_json(c)?)),
        "register" => Req(Request::Register(Register::read_json(c)?)),
        "unregister" => Req(Request::Unregister(Unregister::read_json(c)?)),
        "ask" => Req(Request::Ask(Ask::read_json(c)?)),
        "goodbye" => Note(Notification::Goodbye(Goodbye::read_json(c)?)),
        "tools.changed" => Note(Notification::ToolsChanged(ToolsChanged::read_json(c)?)),
        "nodes.list" => Req(Request::ListNodes(ListNodes::read_json(c)?)),
        "tools.list" => Req(Request::ListTools(ListTools::read_json(c)?)),
        "tools.resolve" => Req(Request::Resolve(Resolve::read_json(c)?)),
        "tools.call" => Req(read_call(c)?.into_request()),
        "results.read" => Req(Request::ReadResult(ReadResult::read_json(c)?)),
        "tools.scope" => Req(Request::Scope(Scope::read_json(c)?)),
        "rules.set" => Req(Request::SetRules(SetRules::read_json(c)?)),
        "rules.list" => Req(Request::ListRules(ListRules::read_json(c)?)),
        _ => return Ok(None),
    };
    if let Req(r) = &p {
        plain_names(r, true)?;
    }
    Ok(Some(p))
}

#[cfg(feature = "json")]
fn parse_params_node<'a>(
    method: &str,
    c: &mut Cursor<'a>,
) -> Result<Option<Parsed<'a>>, FieldError> {
    use crate::frame::*;
    use Parsed::{Note, Req};
    // A node reads four methods; of them only `execute` names something (not `plain_names`,
    // whose arms for every controller method a device would link).
    let p = match method {
        "execute" => {
            let e = read_execute(c)?;
            plain_name(Some(e.tool), "tool", true)?;
            Req(Request::Execute(e))
        }
        "ping" => {
            <()>::read_json(c)?;
            Req(Request::Ping)
        }
        "cancel" => Note(Notification::Cancel(Cancel::read_json(c)?)),
        "goodbye" => Note(Notification::Goodbye(Goodbye::read_json(c)?)),
        _ => return Ok(None),
    };
    Ok(Some(p))
}

/// Names travel as written (PROTOCOL.md section 3): a tool or node name, or a prefix of one,
/// spelled with a JSON escape is refused, so that it cannot reach a tool by another spelling.
/// So is one holding a character JSON can only write escaped (`"`, `\`, controls), in either
/// encoding, so that a frame valid in postcard stays valid in JSON. (The alphabet of names is
/// checked where they are registered, `frame::valid_tool_name` and `frame::valid_node_id`.)
///
/// `json`: the names were read from JSON. Without escapes such a name cannot hold those
/// characters (the scanner ends a string at `"`, marks it escaped at `\` and refuses control
/// characters), so only the escape flag is looked at.
#[inline(always)]
fn plain_name(
    name: Option<crate::Str<'_>>,
    field: &'static str,
    json: bool,
) -> Result<(), FieldError> {
    match name {
        Some(n) if n.is_escaped() || (!json && json::has_special(n.raw().as_bytes())) => {
            Err(FieldError::Invalid(field))
        }
        _ => Ok(()),
    }
}

/// [`plain_name`] for every name a request looks something up by.
fn plain_names(r: &Request<'_>, json: bool) -> Result<(), FieldError> {
    match r {
        Request::Execute(e) => plain_name(Some(e.tool), "tool", json),
        Request::Call(crate::frame::Call { node, tool, .. })
        | Request::CallWith(crate::frame::CallWith { node, tool, .. }) => {
            plain_name(Some(*node), "node", json)?;
            plain_name(Some(*tool), "tool", json)
        }
        Request::Resolve(r) => plain_name(Some(r.tool), "tool", json),
        Request::ListTools(l) => {
            plain_name(l.prefix, "prefix", json)?;
            plain_name(l.node, "node", json)
        }
        Request::Unregister(u) => u
            .names
            .iter()
            .try_for_each(|n| plain_name(Some(n), "names", json)),
        Request::Scope(s) => s
            .tools
            .iter()
            .try_for_each(|n| plain_name(Some(n), "tools", json)),
        Request::SetRules(s) => s
            .rules
            .iter()
            .try_for_each(|r| plain_name(Some(r.tool), "tool", json)),
        _ => Ok(()),
    }
}

#[cfg(feature = "json")]
fn read_execute<'a>(c: &mut Cursor<'a>) -> Result<crate::frame::Execute<'a>, FieldError> {
    let e = crate::frame::Execute::read_json(c)?;
    if !e.arguments.is_object() {
        return Err(FieldError::Invalid("arguments"));
    }
    Ok(e)
}

#[cfg(feature = "json")]
fn read_call<'a>(c: &mut Cursor<'a>) -> Result<crate::frame::CallWith<'a>, FieldError> {
    let e = crate::frame::CallWith::read_json(c)?;
    if !e.arguments.is_object() {
        return Err(FieldError::Invalid("arguments"));
    }
    Ok(e)
}

#[cfg(feature = "json")]
const NO_PARAMS: &[u8] = b"{}";

#[cfg(feature = "json")]
fn decode_json<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    parse_params: fn(&str, &mut Cursor<'a>) -> Result<Option<Parsed<'a>>, FieldError>,
) -> Result<Message<'a>, Rejected<'a>> {
    let parse_error = |e: JsonError| Rejected::answer(DecodeError::Json(e), Id::Null);
    if bytes.is_empty() {
        return Err(Rejected::answer(DecodeError::Empty, Id::Null));
    }
    let mut c = Cursor::new(bytes, limits.max_depth).map_err(parse_error)?;
    match c.kind().map_err(parse_error)? {
        Kind::Object => {}
        kind => {
            c.skip_syntax().map_err(parse_error)?;
            c.end().map_err(parse_error)?;
            let e = if kind == Kind::Array {
                DecodeError::Batch
            } else {
                DecodeError::NotAnObject
            };
            return Err(Rejected::answer(e, Id::Null));
        }
    }

    let mut version_ok = false;
    let mut envelope_error: Option<DecodeError> = None;
    let mut id: Option<Id<'a>> = None;
    let mut method: Option<&'a str> = None;
    let mut params: Option<Result<Option<Parsed<'a>>, FieldError>> = None;
    let mut params_span: Option<&'a [u8]> = None;
    let mut result: Option<&'a [u8]> = None;
    let mut error: Option<Result<ErrorObject<'a>, FieldError>> = None;
    let mut seen = 0u8;
    let mut id_ambiguous = false;
    let mut result_error: Option<JsonError> = None;

    c.begin_object().map_err(parse_error)?;
    // Members in the order this protocol's encoders write them, guessed one by one.
    const GUESS: [&str; 4] = ["\"jsonrpc\":", "\"id\":", "\"method\":", "\"params\":"];
    let mut first = true;
    let mut n = 0;
    loop {
        // A guessed key is the member of its bit (the guesses are in bit order).
        let bit = match GUESS.get(n) {
            Some(g) if c.guess_key(first, g) => 1 << n,
            _ => match c.next_key(first).map_err(parse_error)? {
                None => break,
                Some(key) if key.escaped => 0,
                Some(key) => match key.raw {
                    "jsonrpc" => 1,
                    "id" => 2,
                    "method" => 4,
                    "params" => 8,
                    "result" => 16,
                    "error" => 32,
                    _ => 0,
                },
            },
        };
        first = false;
        n += 1;
        if bit == 0 {
            // Ignored members: their syntax is checked, nothing else.
            c.skip_syntax().map_err(parse_error)?;
            continue;
        }
        if seen & bit != 0 {
            envelope_error.get_or_insert(DecodeError::BadEnvelope("member appears twice"));
            id_ambiguous |= bit == 2;
        }
        seen |= bit;
        match bit {
            // What every encoder writes, in one comparison (the string `c.string()` reads).
            1 if c.eat(b"\"2.0\"") => version_ok = true,
            1 => {
                let save = c.clone();
                match c.string() {
                    Ok(s) => version_ok = s.raw == "2.0",
                    Err(_) => {
                        c = save;
                        c.skip_syntax().map_err(parse_error)?;
                    }
                }
            }
            2 => {
                let save = c.clone();
                match Id::read_json(&mut c) {
                    Ok(v) => id = Some(v),
                    Err(FieldError::Json(e)) if e.kind.is_syntax() => {
                        return Err(parse_error(e));
                    }
                    Err(_) => {
                        c = save;
                        c.skip_syntax().map_err(parse_error)?;
                        envelope_error.get_or_insert(DecodeError::BadId);
                    }
                }
            }
            4 => {
                let save = c.clone();
                match c.string() {
                    Ok(s) if !s.escaped => method = Some(s.raw),
                    Ok(_) => method = Some(""),
                    Err(_) => {
                        c = save;
                        c.skip_syntax().map_err(parse_error)?;
                        envelope_error
                            .get_or_insert(DecodeError::BadEnvelope("method must be a string"));
                    }
                }
            }
            8 => match method {
                // Common case (our encoder writes method first): parse the params in place.
                Some(m) => {
                    let save = c.clone();
                    match parse_params(m, &mut c) {
                        Ok(Some(p)) => params = Some(Ok(Some(p))),
                        Ok(None) => {
                            // Unknown method: the params were not read; skip (and check) them.
                            c = save;
                            c.skip_syntax().map_err(parse_error)?;
                            params = Some(Ok(None));
                        }
                        Err(FieldError::Json(e)) if e.kind.is_syntax() => {
                            return Err(parse_error(e));
                        }
                        Err(e) => {
                            c = save;
                            c.skip_syntax().map_err(parse_error)?;
                            params = Some(Err(e));
                        }
                    }
                }
                // Read once the method is known (duplicate names inside are found then).
                None => params_span = Some(c.skip_syntax().map_err(parse_error)?),
            },
            16 => {
                let save = c.clone();
                match c.skip_value() {
                    Ok(v) => result = Some(v),
                    Err(e) if e.kind.is_syntax() => return Err(parse_error(e)),
                    Err(e) => {
                        // Valid JSON, but not a value that may travel (a name twice).
                        c = save;
                        result = Some(c.skip_syntax().map_err(parse_error)?);
                        result_error = Some(e);
                    }
                }
            }
            _ => {
                let save = c.clone();
                match ErrorObject::read_json(&mut c) {
                    Ok(e) => error = Some(Ok(e)),
                    Err(FieldError::Json(e)) if e.kind.is_syntax() => {
                        return Err(parse_error(e));
                    }
                    Err(e) => {
                        c = save;
                        c.skip_syntax().map_err(parse_error)?;
                        error = Some(Err(e));
                    }
                }
            }
        }
    }
    c.end().map_err(parse_error)?;

    // The whole frame is valid JSON from here on; classify it.
    let is_request_like = seen & 4 != 0;
    if id_ambiguous {
        // Which of two ids is meant cannot be known: answer with null, as for an unreadable id.
        id = Some(Id::Null);
    }
    let reply_id = if is_request_like { id } else { None };
    let fail = |e: DecodeError| -> Rejected<'a> {
        match (is_request_like, reply_id) {
            (true, Some(i)) => Rejected::answer(e, i),
            // A notification is never answered; an unreadable request gets a null id.
            (true, None) if seen & 2 == 0 => Rejected::silent(e),
            (true, None) => Rejected::answer(e, Id::Null),
            (false, _) if seen & 2 != 0 && seen & (16 | 32) == 0 => {
                // Has an id but neither method nor result/error: an invalid request.
                Rejected::answer(e, id.unwrap_or(Id::Null))
            }
            (false, _) => Rejected::silent(e),
        }
    };
    if let Some(e) = envelope_error {
        return Err(fail(e));
    }
    if !version_ok {
        return Err(fail(DecodeError::BadVersion));
    }
    if let Some(m) = method {
        if seen & (16 | 32) != 0 {
            return Err(fail(DecodeError::BadEnvelope(
                "a request cannot carry result or error",
            )));
        }
        let parsed = match params {
            Some(p) => p,
            None => {
                let span = params_span.unwrap_or(NO_PARAMS);
                let mut pc = Cursor::new_unchecked_utf8(span, limits.max_depth);
                parse_params(m, &mut pc)
            }
        };
        let parsed = match parsed {
            Ok(Some(p)) => p,
            Ok(None) => return Err(fail(DecodeError::UnknownMethod)),
            Err(e) => return Err(fail(DecodeError::InvalidParams(e))),
        };
        return match (parsed, id) {
            (Parsed::Req(request), Some(id)) if id != Id::Null => {
                Ok(Message::Request { id, request })
            }
            (Parsed::Req(_), Some(_)) => Err(fail(DecodeError::BadId)),
            // A request method sent as a notification: not answerable, dropped.
            (Parsed::Req(_), None) => Err(Rejected::silent(DecodeError::BadEnvelope(
                "request method sent without id",
            ))),
            (Parsed::Note(n), None) => Ok(Message::Notification(n)),
            (Parsed::Note(_), Some(_)) => Err(fail(DecodeError::BadEnvelope(
                "notification method sent with an id",
            ))),
        };
    }
    let id = match id {
        Some(id) => id,
        None if seen & (16 | 32) != 0 => {
            return Err(Rejected::silent(DecodeError::BadEnvelope(
                "response without id",
            )));
        }
        None => return Err(fail(DecodeError::BadEnvelope("no method, result or error"))),
    };
    // A result that may not travel (a member name twice) is dropped, as any bad response.
    let result = match (result, result_error) {
        (Some(_), Some(e)) => return Err(Rejected::silent(DecodeError::BadResult(e.into()))),
        (r, _) => r,
    };
    match (result, error) {
        (Some(r), None) if id != Id::Null => Ok(Message::Response {
            id,
            result: Ok(Payload {
                encoding: Encoding::Json,
                bytes: r,
            }),
        }),
        // Only an error may answer a request whose id could not be read.
        (Some(_), None) => Err(Rejected::silent(DecodeError::BadId)),
        (None, Some(Ok(e))) => Ok(Message::Response { id, result: Err(e) }),
        (None, Some(Err(e))) => Err(Rejected::silent(DecodeError::BadResult(e))),
        (None, None) => Err(fail(DecodeError::BadEnvelope("no method, result or error"))),
        _ => Err(Rejected::silent(DecodeError::BadEnvelope(
            "a response carries exactly one of result and error",
        ))),
    }
}

/// Postcard frame tags (first byte of every postcard frame).
pub mod tag {
    /// `[0][id][request]`.
    pub const REQUEST: u8 = 0;
    /// `[1][notification]`.
    pub const NOTIFICATION: u8 = 1;
    /// `[2][id][result]`.
    pub const RESULT: u8 = 2;
    /// `[3][id][error object]`.
    pub const ERROR: u8 = 3;
}

/// The variant index of `execute` among requests.
#[cfg(feature = "postcard")]
const EXECUTE: u32 = 3;

/// Number of request variants; a larger variant index is an unknown method.
#[cfg(feature = "postcard")]
const REQUEST_VARIANTS: u32 = 15;
#[cfg(feature = "postcard")]
const NOTIFICATION_VARIANTS: u32 = 5;

#[cfg(feature = "postcard")]
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
fn decode_postcard<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    methods: &Methods<'a>,
) -> Result<Message<'a>, Rejected<'a>> {
    let garbage = Rejected::answer(DecodeError::Postcard, Id::Null);
    let (&t, rest) = bytes
        .split_first()
        .ok_or(Rejected::answer(DecodeError::Empty, Id::Null))?;
    match t {
        tag::REQUEST => {
            let (id, body) = pc::id(rest).ok_or(garbage)?;
            if id == Id::Null {
                return Err(Rejected::answer(DecodeError::BadId, Id::Null));
            }
            let mut at = 0;
            let variant = pc::u32(body, &mut at).ok_or(garbage)?;
            let params = body.get(at..).unwrap_or_default();
            let bad_params = |e| Rejected::answer(DecodeError::InvalidParams(e), id);
            let request: Request<'a> = (methods.postcard_request)(variant, body, params)
                .ok_or(Rejected::answer(DecodeError::UnknownMethod, id))?
                .ok_or(bad_params(FieldError::Invalid("params")))?;
            // Each value as deep as in the frame's JSON encoding, inside the frame object.
            let d = limits.max_depth.saturating_sub(1);
            #[cfg(feature = "json")]
            (methods.postcard_check)(&request, d).map_err(bad_params)?;
            #[cfg(not(feature = "json"))]
            check_request(&request, d).map_err(bad_params)?;
            Ok(Message::Request { id, request })
        }
        tag::NOTIFICATION => {
            let variant = pc::u32(rest, &mut 0).ok_or(Rejected::silent(DecodeError::Postcard))?;
            let n: Notification<'a> =
                (methods.postcard_notification)(variant, rest, limits.max_depth.saturating_sub(1))
                    .ok_or(Rejected::silent(DecodeError::UnknownMethod))?
                    .map_err(|e| Rejected::silent(DecodeError::InvalidParams(e)))?;
            Ok(Message::Notification(n))
        }
        tag::RESULT | tag::ERROR => {
            let silent = Rejected::silent(DecodeError::Postcard);
            let (id, body) = pc::id(rest).ok_or(silent)?;
            // As in JSON: only an error may answer a request whose id could not be read.
            if t == tag::RESULT && id == Id::Null {
                return Err(Rejected::silent(DecodeError::BadId));
            }
            let result = if t == tag::RESULT {
                Ok(Payload {
                    encoding: Encoding::Postcard,
                    bytes: body,
                })
            } else {
                let e: ErrorObject<'a> = read_exact(body).ok_or(silent)?;
                e.check_json(limits.max_depth.saturating_sub(1))
                    .map_err(|e| Rejected::silent(DecodeError::BadResult(e)))?;
                Err(e)
            };
            Ok(Message::Response { id, result })
        }
        _ => Err(garbage),
    }
}

/// [`Wire::read_postcard`] of all of `bytes` (a frame has nothing after its value).
#[cfg(feature = "postcard")]
fn read_exact<'a, T: Wire<'a>>(bytes: &'a [u8]) -> Option<T> {
    let mut at = 0;
    let v = T::read_postcard(bytes, &mut at)?;
    (at == bytes.len()).then_some(v)
}

/// postcard's `from_bytes` ignores bytes after the value; a frame must not have any.
#[cfg(feature = "postcard")]
fn from_bytes_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

/// [`check_request`] for the requests a node reads (`execute`, `ping`).
#[cfg(all(feature = "postcard", feature = "json"))]
fn check_node_request(r: &Request<'_>, d: u16) -> Result<(), FieldError> {
    match r {
        Request::Execute(x) => {
            plain_name(Some(x.tool), "tool", false)?;
            x.check_json(d)?;
            if !x.arguments.is_object() {
                return Err(FieldError::Invalid("arguments"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(feature = "postcard")]
fn check_request(r: &Request<'_>, d: u16) -> Result<(), FieldError> {
    plain_names(r, false)?;
    match r {
        Request::Hello(_)
        | Request::Unregister(_)
        | Request::Ping
        | Request::ListNodes(_)
        | Request::ListTools(_)
        | Request::Resolve(_)
        | Request::Scope(_)
        | Request::ListRules(_)
        | Request::ReadResult(_) => Ok(()),
        Request::SetRules(x) => x.check_json(d),
        Request::Register(x) => x.check_json(d),
        Request::Execute(x) => {
            x.check_json(d)?;
            if !x.arguments.is_object() {
                return Err(FieldError::Invalid("arguments"));
            }
            Ok(())
        }
        Request::Ask(x) => x.check_json(d),
        Request::Call(x) => {
            x.check_json(d)?;
            if !x.arguments.is_object() {
                return Err(FieldError::Invalid("arguments"));
            }
            Ok(())
        }
        Request::CallWith(x) => {
            x.check_json(d)?;
            if !x.arguments.is_object() {
                return Err(FieldError::Invalid("arguments"));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// A postcard output that, like the JSON writer, keeps counting past the buffer's end: one
/// pass both writes what fits and measures the whole (`BufferTooSmall { needed }` is exact).
/// Frame types write themselves into it ([`Wire::write_postcard`], public for that); serde's
/// writer can use it too (it is a postcard flavor).
#[doc(hidden)]
pub struct Counted<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Counted<'b> {
    /// Writes into `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Counted { buf, len: 0 }
    }

    /// Bytes counted so far (written, or past the end).
    pub fn counted(&self) -> usize {
        self.len
    }

    /// Appends `data` (as far as it fits; counted whole).
    pub fn push(&mut self, data: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.len..self.len + data.len()) {
            d.copy_from_slice(data);
        }
        self.len += data.len();
    }

    /// Appends `v` as postcard's varint (integers wider than a byte, lengths, variant indices).
    pub fn varint(&mut self, mut v: u64) {
        let mut b = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                b[n] = low;
                n += 1;
                break;
            }
            b[n] = low | 0x80;
            n += 1;
        }
        self.push(&b[..n]);
    }
}

impl postcard::ser_flavors::Flavor for &mut Counted<'_> {
    type Output = ();
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.push(data);
        Ok(())
    }
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.push(&[data]);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for Counted<'_> {
    type Output = usize;
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.push(data);
        Ok(())
    }
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }
    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// The postcard size of `v` (through [`Counted`], the serializer frames are written with).
pub(crate) fn postcard_len<T: Serialize + ?Sized>(v: &T) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(v, Counted::new(&mut []))
}

/// Sequential postcard writer: each value through [`Counted`]; fails at the end if the
/// frame did not fit.
#[cfg(feature = "postcard")]
struct PostcardOut<'b> {
    buf: &'b mut [u8],
    len: usize,
}

#[cfg(feature = "postcard")]
impl<'b> PostcardOut<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        PostcardOut { buf, len: 0 }
    }

    fn put<'v, T: Wire<'v>>(&mut self, v: &T) -> Result<(), EncodeError> {
        let rest = self.buf.get_mut(self.len..).unwrap_or(&mut []);
        let mut out = Counted::new(rest);
        v.write_postcard(&mut out);
        self.len += out.counted();
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            d.copy_from_slice(bytes);
        }
        self.len += bytes.len();
    }

    fn finish(self) -> Result<usize, EncodeError> {
        if self.len > self.buf.len() {
            Err(EncodeError::BufferTooSmall { needed: self.len })
        } else {
            Ok(self.len)
        }
    }
}

#[cfg(feature = "json")]
fn json_finish(w: Writer<'_>) -> Result<usize, EncodeError> {
    w.finish()
        .map_err(|needed| EncodeError::BufferTooSmall { needed })
}

#[cfg(feature = "json")]
const JSONRPC: &[u8] = br#"{"jsonrpc":"2.0""#;

/// Encodes a request into `out`, returning the frame length.
pub fn encode_request(
    encoding: Encoding,
    id: Id<'_>,
    request: &Request<'_>,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    use encode_request_params as params;
    match request {
        Request::Hello(p) => params(encoding, id, p, out),
        Request::Register(p) => params(encoding, id, p, out),
        Request::Unregister(p) => params(encoding, id, p, out),
        Request::Execute(p) => params(encoding, id, p, out),
        Request::Ask(p) => params(encoding, id, p, out),
        Request::Ping => params(encoding, id, &(), out),
        Request::ListNodes(p) => params(encoding, id, p, out),
        Request::ListTools(p) => params(encoding, id, p, out),
        Request::Resolve(p) => params(encoding, id, p, out),
        Request::Call(p) => params(encoding, id, p, out),
        Request::Scope(p) => params(encoding, id, p, out),
        Request::SetRules(p) => params(encoding, id, p, out),
        Request::ListRules(p) => params(encoding, id, p, out),
        Request::CallWith(p) => params(encoding, id, p, out),
        Request::ReadResult(p) => params(encoding, id, p, out),
    }
}

/// A request's params, with the method's JSON-RPC name and postcard variant index, for
/// [`encode_request_params`].
pub trait RequestParams<'a>: Wire<'a> {
    /// JSON-RPC method name.
    const METHOD: &'static str;
    /// Variant index of the method in postcard (PROTOCOL.md section 4).
    const INDEX: u32;
}

/// A notification's params, for [`encode_notification_params`].
pub trait NotificationParams<'a>: Wire<'a> {
    /// JSON-RPC method name.
    const METHOD: &'static str;
    /// Variant index of the method in postcard.
    const INDEX: u32;
}

macro_rules! params {
    ($tr:ident: $($t:ident = $method:literal, $index:literal;)*) => {$(
        impl<'a> $tr<'a> for crate::frame::$t<'a> {
            const METHOD: &'static str = $method;
            const INDEX: u32 = $index;
        }
    )*};
}

params! { RequestParams:
    Hello = "hello", 0;
    Register = "register", 1;
    Unregister = "unregister", 2;
    Execute = "execute", 3;
    Ask = "ask", 4;
    ListNodes = "nodes.list", 6;
    ListTools = "tools.list", 7;
    Resolve = "tools.resolve", 8;
    Call = "tools.call", 9;
    Scope = "tools.scope", 10;
    SetRules = "rules.set", 11;
    CallWith = "tools.call", 13;
    ReadResult = "results.read", 14;
}

impl RequestParams<'_> for crate::frame::ListRules {
    const METHOD: &'static str = "rules.list";
    const INDEX: u32 = 12;
}

/// `ping` has no params: `{}` in JSON, nothing in postcard.
impl RequestParams<'_> for () {
    const METHOD: &'static str = "ping";
    const INDEX: u32 = 5;
}

params! { NotificationParams:
    Cancel = "cancel", 0;
    Progress = "progress", 1;
    Goodbye = "goodbye", 2;
    ToolsChanged = "tools.changed", 3;
    Log = "log", 4;
}

/// Encodes a request of one known method: the same bytes as [`encode_request`], but only that
/// method's encoder is linked (a node sends three kinds of request; it need not carry all thirteen).
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
pub fn encode_request_params<'v, P: RequestParams<'v>>(
    encoding: Encoding,
    id: Id<'_>,
    params: &P,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match encoding {
        #[cfg(feature = "json")]
        Encoding::Json => {
            let mut w = Writer::new(out);
            w.raw(JSONRPC);
            w.raw(br#","id":"#);
            id.write_json(&mut w);
            w.raw(br#","method":""#);
            w.raw(P::METHOD.as_bytes());
            w.raw(br#"","params":"#);
            params.write_json(&mut w);
            w.byte(b'}');
            json_finish(w)
        }
        #[cfg(feature = "postcard")]
        Encoding::Postcard => {
            let mut p = PostcardOut::new(out);
            p.raw(&[tag::REQUEST]);
            p.put(&id)?;
            p.put(&P::INDEX)?;
            p.put(params)?;
            p.finish()
        }
        #[allow(unreachable_patterns)]
        _ => Err(EncodeError::Unsupported),
    }
}

/// Encodes a notification of one known method (see [`encode_request_params`]).
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
pub fn encode_notification_params<'v, P: NotificationParams<'v>>(
    encoding: Encoding,
    params: &P,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match encoding {
        #[cfg(feature = "json")]
        Encoding::Json => {
            let mut w = Writer::new(out);
            w.raw(JSONRPC);
            w.raw(br#","method":""#);
            w.raw(P::METHOD.as_bytes());
            w.raw(br#"","params":"#);
            params.write_json(&mut w);
            w.byte(b'}');
            json_finish(w)
        }
        #[cfg(feature = "postcard")]
        Encoding::Postcard => {
            let mut p = PostcardOut::new(out);
            p.raw(&[tag::NOTIFICATION]);
            p.put(&P::INDEX)?;
            p.put(params)?;
            p.finish()
        }
        #[allow(unreachable_patterns)]
        _ => Err(EncodeError::Unsupported),
    }
}

/// Encodes a notification into `out`, returning the frame length.
pub fn encode_notification(
    encoding: Encoding,
    n: &Notification<'_>,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    use encode_notification_params as params;
    match n {
        Notification::Cancel(p) => params(encoding, p, out),
        Notification::Progress(p) => params(encoding, p, out),
        Notification::Log(p) => params(encoding, p, out),
        Notification::Goodbye(p) => params(encoding, p, out),
        Notification::ToolsChanged(p) => params(encoding, p, out),
    }
}

/// Encodes a successful response whose result is `value`.
pub fn encode_result<'v, T: Wire<'v>>(
    encoding: Encoding,
    id: Id<'_>,
    value: &T,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_response(encoding, id, (tag::RESULT, br#","result":"#), value, out)
}

/// Encodes an error response.
pub fn encode_error(
    encoding: Encoding,
    id: Id<'_>,
    error: &ErrorObject<'_>,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_response(encoding, id, (tag::ERROR, br#","error":"#), error, out)
}

/// A response: `id`, then `value` as the result or error member (postcard: after the tag).
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
fn encode_response<'v, T: Wire<'v>>(
    encoding: Encoding,
    id: Id<'_>,
    (postcard_tag, json_member): (u8, &[u8]),
    value: &T,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match encoding {
        #[cfg(feature = "json")]
        Encoding::Json => {
            let mut w = Writer::new(out);
            w.raw(JSONRPC);
            w.raw(br#","id":"#);
            id.write_json(&mut w);
            w.raw(json_member);
            value.write_json(&mut w);
            w.byte(b'}');
            json_finish(w)
        }
        #[cfg(feature = "postcard")]
        Encoding::Postcard => {
            let mut p = PostcardOut::new(out);
            p.raw(&[postcard_tag]);
            p.put(&id)?;
            p.put(value)?;
            p.finish()
        }
        #[allow(unreachable_patterns)]
        _ => Err(EncodeError::Unsupported),
    }
}

/// Encodes any [`Message`] (a response's [`Payload`] is copied as it is, so it must be in the
/// same encoding).
pub fn encode(encoding: Encoding, msg: &Message<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    match msg {
        Message::Request { id, request } => encode_request(encoding, *id, request, out),
        Message::Notification(n) => encode_notification(encoding, n, out),
        Message::Response { id, result: Err(e) } => encode_error(encoding, *id, e, out),
        Message::Response {
            id,
            result: Ok(payload),
        } => {
            if payload.encoding != encoding {
                return Err(EncodeError::EncodingMismatch);
            }
            match encoding {
                #[cfg(feature = "json")]
                Encoding::Json => encode_result(encoding, *id, &Json::trusted(payload.bytes), out),
                #[cfg(feature = "postcard")]
                Encoding::Postcard => {
                    let mut p = PostcardOut::new(out);
                    p.raw(&[tag::RESULT]);
                    p.put(id)?;
                    p.raw(payload.bytes);
                    p.finish()
                }
                #[allow(unreachable_patterns)]
                _ => Err(EncodeError::Unsupported),
            }
        }
    }
}

/// Encodes the error answer to a frame that [`decode`] rejected, if it deserves one.
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
pub fn encode_rejection(
    encoding: Encoding,
    rejected: &Rejected<'_>,
    out: &mut [u8],
) -> Option<Result<usize, EncodeError>> {
    let id = rejected.reply_to?;
    // A static message and, for JSON errors, the byte offset as `data`: no `core::fmt`, which
    // would cost a device several KiB of flash.
    let mut data_buf = [0u8; 32];
    let data = match rejected.error {
        // (Only the JSON frame decoder reports `Json`.)
        DecodeError::Json(e) if cfg!(feature = "json") => {
            let mut w = Writer::new(&mut data_buf);
            w.raw(br#"{"offset":"#);
            w.u64(e.offset as u64);
            w.byte(b'}');
            w.finish().ok()
        }
        _ => None,
    };
    Some(encode_error(
        encoding,
        id,
        &ErrorObject {
            code: rejected.error.code().code(),
            message: crate::Str::new(rejected.error.summary()),
            data: data.map(|n| Json::trusted(&data_buf[..n])),
        },
        out,
    ))
}
