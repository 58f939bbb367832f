//! The building blocks every frame is made of, each readable and writable in both encodings:
//! strings ([`Str`]), raw JSON values ([`Json`]), request ids ([`Id`]) and lazily read lists
//! ([`List`]).
//!
//! JSON is read and written by hand (the strict scanner in [`crate::json`]); postcard goes
//! through serde and the `postcard` crate.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::json::{self, Cursor, JsonError, JsonErrorKind, Kind, Writer};

/// Why a field of a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// The JSON itself is malformed.
    Json(JsonError),
    /// A required field is absent.
    Missing(&'static str),
    /// A field has the wrong type or a value outside its domain.
    Invalid(&'static str),
    /// A field appears twice in one object.
    Duplicate(&'static str),
}

impl From<JsonError> for FieldError {
    fn from(e: JsonError) -> Self {
        FieldError::Json(e)
    }
}

impl FieldError {
    /// Names the field for errors raised without one.
    pub(crate) fn in_field(self, name: &'static str) -> Self {
        match self {
            FieldError::Invalid("") => FieldError::Invalid(name),
            FieldError::Json(e) if e.kind == JsonErrorKind::NotAnInteger => {
                FieldError::Invalid(name)
            }
            e => e,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Json(e) => e.fmt(f),
            FieldError::Missing(n) => write!(f, "missing field `{n}`"),
            FieldError::Invalid(n) => write!(f, "invalid value for `{n}`"),
            FieldError::Duplicate(n) => write!(f, "duplicate field `{n}`"),
        }
    }
}

/// A value that travels in frames, in JSON and in postcard.
///
/// Implemented for the frame types of [`crate::frame`] and their building blocks. Runtimes use it
/// through [`crate::codec`]; it is public so that typed results can be decoded from a
/// [`crate::codec::Payload`].
pub trait Wire<'a>: Sized + Serialize + Deserialize<'a> {
    /// Writes the value as JSON.
    #[doc(hidden)]
    fn write_json(&self, w: &mut Writer<'_>);
    /// Reads the value from JSON.
    #[doc(hidden)]
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError>;
    /// Reads an optional value: `null` is absence, except for raw JSON values, where `null` is a
    /// value like any other (absence is then only an absent key).
    #[doc(hidden)]
    fn read_json_opt(c: &mut Cursor<'a>) -> Result<Option<Self>, FieldError> {
        if c.null()? {
            Ok(None)
        } else {
            Self::read_json(c).map(Some)
        }
    }
    /// The value of an absent field, if absence is allowed.
    #[doc(hidden)]
    fn missing() -> Option<Self> {
        None
    }
    /// True if the field should be left out when writing JSON.
    #[doc(hidden)]
    fn is_absent(&self) -> bool {
        false
    }
    /// Strict validation of embedded raw JSON after a postcard decode. `max_depth` is how deep
    /// the value may nest as JSON, its own object or array included: what its place in the
    /// frame's JSON encoding leaves of the limit (PROTOCOL.md section 9), so that a frame passes
    /// in postcard exactly when it would in JSON.
    #[doc(hidden)]
    fn check_json(&self, _max_depth: u16) -> Result<(), FieldError> {
        Ok(())
    }
    /// Reads the value from postcard at `*at`, moving `at` past it: what serde's reader accepts
    /// for the same type (postcard 1.x), written out, so that a node's firmware links no serde
    /// deserializer for the frames it reads. `None` where postcard fails.
    #[doc(hidden)]
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        let rest = b.get(*at..)?;
        let (v, r) = postcard::take_from_bytes::<Self>(rest).ok()?;
        *at = b.len() - r.len();
        Some(v)
    }
    /// Writes the value as postcard (what serde's writer writes for the same type, written out,
    /// so that a node's firmware links no serde serializer).
    #[doc(hidden)]
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        let _ = postcard::serialize_with_flavor(self, out);
    }
    /// The value of a span the frame decoder has already validated as exactly one JSON value,
    /// if that needs no further reading (raw JSON values); `None` to read it with `read_json`.
    #[doc(hidden)]
    fn from_validated_json(_span: &'a [u8]) -> Option<Self> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Str

/// A string carried by a frame.
///
/// Strings decoded from JSON keep their escapes (`raw` is the text between the quotes) and are
/// unescaped only when asked ([`Str::unescape_into`], [`fmt::Display`]) or when re-encoded as
/// postcard. Strings decoded from postcard, and strings made with [`Str::new`], are plain.
#[derive(Clone, Copy)]
pub struct Str<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> Str<'a> {
    /// A plain string (escaped as needed when written as JSON).
    pub const fn new(s: &'a str) -> Self {
        Str {
            raw: s,
            escaped: false,
        }
    }

    /// A string body in JSON form, escapes included. The caller guarantees the escapes are valid
    /// (they come from the strict scanner).
    pub(crate) const fn json_escaped(raw: &'a str) -> Self {
        Str { raw, escaped: true }
    }

    /// Whether the text holds escapes. Only the JSON readers make such a string, so a build
    /// without JSON frames (feature `json`) has none, and links none of the unescaping (nor the
    /// `core::fmt` path postcard takes to write one).
    #[inline(always)]
    const fn esc(&self) -> bool {
        cfg!(feature = "json") && self.escaped
    }

    /// The plain text if it has no escapes; `None` if it must be unescaped first.
    pub fn as_plain(&self) -> Option<&'a str> {
        (!self.esc()).then_some(self.raw)
    }

    /// The text as it travels: plain, or the body of a JSON string with escapes.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether [`Str::raw`] still holds JSON escapes.
    pub fn is_escaped(&self) -> bool {
        self.esc()
    }

    /// Writes the unescaped text into `buf`, returning it; `None` if `buf` is too small.
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b str> {
        if !self.esc() {
            let dst = buf.get_mut(..self.raw.len())?;
            dst.copy_from_slice(self.raw.as_bytes());
            return core::str::from_utf8(dst).ok();
        }
        let mut len = 0;
        let mut overflow = false;
        let _ = json::unescape(self.raw, |part| {
            match buf.get_mut(len..len + part.len()) {
                Some(d) => d.copy_from_slice(part.as_bytes()),
                None => overflow = true,
            }
            len += part.len();
            Ok(())
        });
        if overflow {
            return None;
        }
        core::str::from_utf8(&buf[..len]).ok()
    }

    /// True if the string is `name` as it travels: written without escapes and equal byte for
    /// byte. Names (of tools and nodes, prefixes) are matched so (PROTOCOL.md section 3): a name
    /// spelled with an escape equals no plain name, whatever it unescapes to.
    pub fn eq_name(&self, name: &str) -> bool {
        !self.esc() && self.raw == name
    }

    /// Compares the unescaped text with `s` (for text; names compare with [`Str::eq_name`]).
    pub fn eq_str(&self, s: &str) -> bool {
        if !self.esc() {
            return self.raw == s;
        }
        let mut rest = s.as_bytes();
        let mut ok = true;
        let _ = json::unescape(self.raw, |part| {
            match rest.strip_prefix(part.as_bytes()) {
                Some(r) => rest = r,
                None => ok = false,
            }
            Ok(())
        });
        ok && rest.is_empty()
    }

    /// Length in bytes of the unescaped text.
    pub fn unescaped_len(&self) -> usize {
        if !self.esc() {
            return self.raw.len();
        }
        let mut n = 0;
        let _ = json::unescape(self.raw, |p| {
            n += p.len();
            Ok(())
        });
        n
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.esc(), other.esc()) {
            (false, _) => other.eq_str(self.raw),
            (_, false) => self.eq_str(other.raw),
            (true, true) => {
                // Rare (both from JSON with escapes): compare the unescaped chunk streams.
                let mut a = [0u8; 256];
                let mut b = [0u8; 256];
                match (self.unescape_into(&mut a), other.unescape_into(&mut b)) {
                    (Some(x), Some(y)) => x == y,
                    _ => self.raw == other.raw,
                }
            }
        }
    }
}

impl Eq for Str<'_> {}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.esc() {
            json::unescape(self.raw, |p| f.write_str(p))
        } else {
            f.write_str(self.raw)
        }
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.raw)
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str::new(s)
    }
}

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.esc() {
            s.collect_str(self)
        } else {
            s.serialize_str(self.raw)
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a borrowed string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str::new(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'a> Wire<'a> for Str<'a> {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        // The text, unescaped: a string from JSON travels on in postcard as its characters.
        out.varint(self.unescaped_len() as u64);
        if self.esc() {
            let _ = json::unescape(self.raw, |part| {
                out.push(part.as_bytes());
                Ok(())
            });
        } else {
            out.push(self.raw.as_bytes());
        }
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        crate::codec::pc::str(b, at).map(Str::new)
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        if self.escaped {
            w.byte(b'"');
            w.raw(self.raw.as_bytes());
            w.byte(b'"');
        } else {
            w.str(self.raw);
        }
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        if c.kind()? != Kind::String {
            return Err(FieldError::Invalid(""));
        }
        let s = c.string()?;
        Ok(if s.escaped {
            Str::json_escaped(s.raw)
        } else {
            Str::new(s.raw)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Json

/// A JSON value kept as its validated text: tool arguments, results, schemas, partial output.
///
/// Every `Json` that came off the wire has passed the strict scanner, so a tool can hand it to
/// serde-json-core (see [`crate::json::from_args`]) without further checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Json<'a>(&'a [u8]);

impl<'a> Json<'a> {
    /// Validates `text` (default depth limit) and wraps it.
    pub fn parse(text: &'a [u8]) -> Result<Self, JsonError> {
        Self::parse_with_depth(text, json::DEFAULT_MAX_DEPTH)
    }

    /// Validates `text` with a nesting limit and wraps it (surrounding whitespace is trimmed).
    pub fn parse_with_depth(text: &'a [u8], max_depth: u16) -> Result<Self, JsonError> {
        // Without JSON frames the scanner is not linked (see `json::validate`).
        #[cfg(not(any(feature = "json", feature = "unique-names")))]
        {
            json::validate(text, max_depth)?;
            // Valid JSON has only JSON whitespace around its value.
            Ok(Json(text.trim_ascii()))
        }
        #[cfg(any(feature = "json", feature = "unique-names"))]
        {
            let mut c = Cursor::new(text, max_depth)?;
            let v = c.skip_value()?;
            c.end()?;
            Ok(Json(v))
        }
    }

    /// `{}`.
    pub const EMPTY_OBJECT: Json<'static> = Json(b"{}");
    /// `null`.
    pub const NULL: Json<'static> = Json(b"null");

    /// Wraps text already validated by the caller (a constant, or output of a JSON serializer).
    /// Writing invalid JSON through it produces invalid frames; it is never used on input.
    pub const fn trusted(text: &'a [u8]) -> Self {
        Json(text)
    }

    /// Text read from a postcard frame, as serde's reader takes it: the frame decoder checks it
    /// before the frame is returned (as for every JSON value in a postcard frame).
    #[cfg_attr(not(feature = "postcard"), allow(dead_code))]
    pub(crate) const fn from_postcard(text: &'a [u8]) -> Self {
        Json(text)
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The JSON text as `&str` (it is always UTF-8).
    pub fn as_str(&self) -> &'a str {
        core::str::from_utf8(self.0).unwrap_or("null")
    }

    /// True if the value is a JSON object.
    pub fn is_object(&self) -> bool {
        self.0.first() == Some(&b'{')
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON text as bytes")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                // Validated by `check_json` once the whole frame is decoded (the depth limit is
                // a decoder setting serde cannot see).
                Ok(Json(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'a> Wire<'a> for Json<'a> {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        out.varint(self.0.len() as u64);
        out.push(self.0);
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        // Checked by `check_json` once the frame is read, as after serde's reader.
        crate::codec::pc::bytes(b, at).map(Json)
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        w.raw(self.0);
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        Ok(Json(c.skip_value()?))
    }
    fn read_json_opt(c: &mut Cursor<'a>) -> Result<Option<Self>, FieldError> {
        Self::read_json(c).map(Some)
    }
    fn from_validated_json(span: &'a [u8]) -> Option<Self> {
        Some(Json(span))
    }
    fn check_json(&self, max_depth: u16) -> Result<(), FieldError> {
        json::validate(self.0, max_depth)?;
        // Leading/trailing whitespace would make the raw text differ from what JSON mode keeps
        // (the value's exact span): the frame would change on its way from postcard to JSON.
        let text = self.0;
        if text.first().is_some_and(|b| b.is_ascii_whitespace()) {
            return Err(FieldError::Json(JsonError::new(
                JsonErrorKind::Unexpected,
                0,
            )));
        }
        if text.last().is_some_and(|b| b.is_ascii_whitespace()) {
            return Err(FieldError::Json(JsonError::new(
                JsonErrorKind::TrailingData,
                text.len() - 1,
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Id

/// A JSON-RPC request id. Ids this crate issues are numbers; ids it receives may also be strings,
/// and are echoed back exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Id<'a> {
    /// A non-negative integer id.
    Num(u64),
    /// A string id.
    #[serde(borrow)]
    Str(Str<'a>),
    /// `null`: only in error responses to requests whose id could not be read.
    Null,
}

impl<'a> Wire<'a> for Id<'a> {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        match self {
            Id::Num(n) => {
                out.varint(0);
                out.varint(*n);
            }
            Id::Str(s) => {
                out.varint(1);
                s.write_postcard(out);
            }
            Id::Null => out.varint(2),
        }
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        crate::codec::pc::id_at(b, at)
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        match self {
            Id::Num(n) => w.u64(*n),
            Id::Str(s) => s.write_json(w),
            Id::Null => w.raw(b"null"),
        }
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        match c.kind()? {
            Kind::Number => c.u64().map(Id::Num).map_err(|_| FieldError::Invalid("id")),
            Kind::String => Str::read_json(c).map(Id::Str),
            Kind::Null => {
                c.null()?;
                Ok(Id::Null)
            }
            _ => Err(FieldError::Invalid("id")),
        }
    }
}

/// Longest string id (in raw bytes) that state machines store to answer later.
pub const MAX_ID_LEN: usize = 64;

/// An [`Id`] copied out of a frame, so it can be answered after the frame buffer is reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedId {
    /// A number id.
    Num(u64),
    /// A string id as it travels (JSON escapes kept if it came from JSON).
    Str {
        /// Raw text.
        raw: heapless::String<MAX_ID_LEN>,
        /// Whether `raw` holds JSON escapes.
        escaped: bool,
    },
    /// `null`.
    Null,
}

impl OwnedId {
    /// Copies `id`; `None` if a string id is longer than [`MAX_ID_LEN`].
    pub fn from_id(id: &Id<'_>) -> Option<Self> {
        Some(match id {
            Id::Num(n) => OwnedId::Num(*n),
            Id::Null => OwnedId::Null,
            Id::Str(s) => OwnedId::Str {
                raw: heapless::String::try_from(s.raw()).ok()?,
                escaped: s.is_escaped(),
            },
        })
    }

    /// Borrows it back as an [`Id`].
    pub fn as_id(&self) -> Id<'_> {
        match self {
            OwnedId::Num(n) => Id::Num(*n),
            OwnedId::Null => Id::Null,
            OwnedId::Str { raw, escaped } => Id::Str(if *escaped {
                Str::json_escaped(raw)
            } else {
                Str::new(raw)
            }),
        }
    }

    /// True if it is the same id as `id`.
    pub fn matches(&self, id: &Id<'_>) -> bool {
        self.as_id() == *id
    }
}

// ---------------------------------------------------------------------------------------------
// Primitives

macro_rules! wire_uint {
    ($($t:ty),*) => {$(
        impl<'a> Wire<'a> for $t {
            fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
                // postcard writes a u8 as its byte, wider integers as varints.
                if core::mem::size_of::<$t>() == 1 {
                    out.push(&[*self as u8]);
                } else {
                    out.varint(u64::from(*self));
                }
            }
            fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
                crate::codec::pc::uint::<$t>(b, at)
            }
            fn write_json(&self, w: &mut Writer<'_>) {
                w.u64(u64::from(*self));
            }
            fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
                let v = c.u64().map_err(|_| FieldError::Invalid(""))?;
                <$t>::try_from(v).map_err(|_| FieldError::Invalid(""))
            }
        }
    )*};
}
wire_uint!(u8, u16, u32, u64);

impl<'a> Wire<'a> for i32 {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        // Zigzag, then a u32 varint.
        out.varint(u64::from(((*self << 1) ^ (*self >> 31)) as u32));
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        // Zigzag over a u32 varint.
        let v = crate::codec::pc::u32(b, at)?;
        Some((v >> 1) as i32 ^ -((v & 1) as i32))
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        w.i64(i64::from(*self));
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        let v = c.i64().map_err(|_| FieldError::Invalid(""))?;
        i32::try_from(v).map_err(|_| FieldError::Invalid(""))
    }
}

impl<'a> Wire<'a> for bool {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        out.push(&[u8::from(*self)]);
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        let v = match *b.get(*at)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        *at += 1;
        Some(v)
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        w.raw(if *self { b"true" } else { b"false" });
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        c.bool().map_err(|_| FieldError::Invalid(""))
    }
    fn missing() -> Option<Self> {
        Some(false)
    }
    fn is_absent(&self) -> bool {
        !*self
    }
}

impl<'a, T: Wire<'a>> Wire<'a> for Option<T> {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        match self {
            None => out.push(&[0]),
            Some(v) => {
                out.push(&[1]);
                v.write_postcard(out);
            }
        }
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        let tag = *b.get(*at)?;
        *at += 1;
        match tag {
            0 => Some(None),
            1 => T::read_postcard(b, at).map(Some),
            _ => None,
        }
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        match self {
            Some(v) => v.write_json(w),
            None => w.raw(b"null"),
        }
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        T::read_json_opt(c)
    }
    fn missing() -> Option<Self> {
        Some(None)
    }
    fn is_absent(&self) -> bool {
        self.is_none()
    }
    fn check_json(&self, d: u16) -> Result<(), FieldError> {
        match self {
            Some(v) => v.check_json(d),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// List

/// A list inside a frame, read lazily: decoding a frame validates every element once and keeps
/// the raw span; iterating reads the elements again, with no allocation.
///
/// Built from a slice for sending ([`List::from_slice`]). In postcard a list travels as a varint
/// byte length followed by the elements back to back.
pub struct List<'a, T> {
    repr: ListRepr<'a, T>,
}

enum ListRepr<'a, T> {
    Slice(&'a [T]),
    Json(&'a [u8]),
    Postcard(&'a [u8]),
}

impl<T> Clone for ListRepr<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ListRepr<'_, T> {}
impl<T> Clone for List<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for List<'_, T> {}

impl<'a, T> List<'a, T> {
    /// A list to send.
    pub const fn from_slice(items: &'a [T]) -> Self {
        List {
            repr: ListRepr::Slice(items),
        }
    }

    /// An empty list.
    pub const fn empty() -> Self {
        Self::from_slice(&[])
    }
}

impl<'a, T: Wire<'a> + Copy> List<'a, T> {
    /// Iterates the elements.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            repr: match self.repr {
                ListRepr::Slice(s) => IterRepr::Slice(s.iter()),
                ListRepr::Json(j) => IterRepr::Json(Cursor::new_unchecked_utf8(j, u16::MAX), true),
                ListRepr::Postcard(p) => IterRepr::Postcard(p),
            },
            _t: PhantomData,
        }
    }

    /// Number of elements (walks the list).
    pub fn len(&self) -> usize {
        match self.repr {
            ListRepr::Slice(s) => s.len(),
            _ => self.iter().count(),
        }
    }

    /// True if the list has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over a [`List`].
pub struct ListIter<'a, T> {
    repr: IterRepr<'a, T>,
    _t: PhantomData<T>,
}

enum IterRepr<'a, T> {
    Slice(core::slice::Iter<'a, T>),
    Json(Cursor<'a>, bool),
    Postcard(&'a [u8]),
}

impl<'a, T: Wire<'a> + Copy> Iterator for ListIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            IterRepr::Slice(it) => it.next().copied(),
            // Only the JSON readers make a JSON list: none in a build without JSON frames.
            IterRepr::Json(_, _) if !cfg!(feature = "json") => None,
            IterRepr::Json(c, first) => {
                if *first {
                    c.begin_array().ok()?;
                }
                let more = c.next_element(*first).ok()?;
                *first = false;
                if !more {
                    return None;
                }
                T::read_json(c).ok()
            }
            IterRepr::Postcard(rest) => {
                if rest.is_empty() {
                    return None;
                }
                let mut at = 0;
                let v = T::read_postcard(rest, &mut at)?;
                *rest = rest.get(at..)?;
                Some(v)
            }
        }
    }
}

impl<'a, T: Wire<'a> + Copy + fmt::Debug> fmt::Debug for List<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Wire<'a> + Copy + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Wire<'a> + Copy> Serialize for List<'a, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let ListRepr::Postcard(raw) = self.repr {
            return s.serialize_bytes(raw);
        }
        // Postcard: varint byte length, then the elements back to back. A tuple is plain
        // concatenation in postcard, and a u64 is a varint, so this equals a byte string.
        let mut total: u64 = 0;
        for v in self.iter() {
            total += crate::codec::postcard_len(&v).map_err(serde::ser::Error::custom)? as u64;
        }
        let mut t = s.serialize_tuple(usize::MAX)?;
        t.serialize_element(&total)?;
        for v in self.iter() {
            t.serialize_element(&v)?;
        }
        t.end()
    }
}

impl<'de: 'a, 'a, T: Wire<'a> + Copy + 'a> Deserialize<'de> for List<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Wire<'a> + 'a> Visitor<'de> for V<'a, T> {
            type Value = List<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list as bytes")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                let v: &'a [u8] = v;
                List::from_postcard(v).ok_or_else(|| E::custom("bad list element"))
            }
        }
        d.deserialize_bytes(V::<'a, T>(PhantomData))
    }
}

impl<'a, T: Wire<'a>> List<'a, T> {
    /// The list whose elements are `v`, back to back, if each reads.
    fn from_postcard(v: &'a [u8]) -> Option<Self> {
        let mut at = 0;
        while at < v.len() {
            T::read_postcard(v, &mut at)?;
        }
        Some(List {
            repr: ListRepr::Postcard(v),
        })
    }
}

impl<'a, T: Wire<'a> + Copy> Wire<'a> for List<'a, T> {
    fn write_postcard(&self, out: &mut crate::codec::Counted<'_>) {
        // Byte length, then the elements back to back (see the `Serialize` impl).
        if let ListRepr::Postcard(raw) = self.repr {
            out.varint(raw.len() as u64);
            out.push(raw);
            return;
        }
        let mut measure = crate::codec::Counted::new(&mut []);
        for v in self.iter() {
            v.write_postcard(&mut measure);
        }
        out.varint(measure.counted() as u64);
        for v in self.iter() {
            v.write_postcard(out);
        }
    }
    fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
        List::from_postcard(crate::codec::pc::bytes(b, at)?)
    }
    fn write_json(&self, w: &mut Writer<'_>) {
        if let ListRepr::Json(raw) = self.repr {
            return w.raw(raw);
        }
        w.byte(b'[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                w.byte(b',');
            }
            v.write_json(w);
        }
        w.byte(b']');
    }
    fn read_json(c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        if c.kind()? != Kind::Array {
            return Err(FieldError::Invalid(""));
        }
        c.ws();
        let start = c.pos();
        c.begin_array()?;
        let mut first = true;
        while c.next_element(first)? {
            first = false;
            T::read_json(c)?;
        }
        Ok(List {
            repr: ListRepr::Json(&c.input()[start..c.pos()]),
        })
    }
    fn missing() -> Option<Self> {
        Some(List::empty())
    }
    fn check_json(&self, d: u16) -> Result<(), FieldError> {
        // In JSON the elements sit inside the list's array.
        let d = d.saturating_sub(1);
        for v in self.iter() {
            v.check_json(d)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Macros for frame structs and string enums

/// Declares a frame struct: serde derives for postcard (field order is the wire order) and a
/// hand-written JSON object codec (keys as given, unknown keys skipped, duplicates rejected,
/// `Option` and `bool` fields optional).
macro_rules! wire_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident $(<$lt:lifetime>)? {
            $( $(#[$fm:meta])* pub $field:ident : $ty:ty => $key:literal, )*
        }
        $(when absent = $absent:expr;)?
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name $(<$lt>)? {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl<'a> $crate::wire::Wire<'a> for $name $(<$lt>)? {
            fn write_postcard(&self, _out: &mut $crate::codec::Counted<'_>) {
                // Fields in order, as serde's derived writer gives them to postcard.
                $( $crate::wire::Wire::write_postcard(&self.$field, _out); )*
            }

            fn read_postcard(_b: &'a [u8], _at: &mut usize) -> Option<Self> {
                // Fields in order, as serde's derived reader takes them from postcard.
                Some(Self {
                    $( $field: <$ty as $crate::wire::Wire>::read_postcard(_b, _at)?, )*
                })
            }

            fn write_json(&self, w: &mut $crate::json::Writer<'_>) {
                w.byte(b'{');
                let mut _first = true;
                $(
                    if !$crate::wire::Wire::is_absent(&self.$field) {
                        if !_first { w.byte(b','); }
                        _first = false;
                        w.raw(concat!("\"", $key, "\":").as_bytes());
                        $crate::wire::Wire::write_json(&self.$field, w);
                    }
                )*
                w.byte(b'}');
            }

            fn read_json(c: &mut $crate::json::Cursor<'a>) -> Result<Self, $crate::wire::FieldError> {
                use $crate::wire::FieldError;
                $( let mut $field: Option<$ty> = None; )*
                if c.kind()? != $crate::json::Kind::Object {
                    return Err(FieldError::Invalid(""));
                }
                c.begin_object()?;
                // Members as encoders write them: each key guessed in declaration order.
                const GUESS: &[&str] = &[$(concat!("\"", $key, "\":"),)*];
                let mut first = true;
                let mut n = 0;
                while let Some(k) = c.next_key_guess(first, GUESS.get(n).copied())? {
                    first = false;
                    n += 1;
                    match k.raw {
                        $(
                            $key if !k.escaped => {
                                if $field.is_some() {
                                    return Err(FieldError::Duplicate($key));
                                }
                                $field = Some(
                                    <$ty as $crate::wire::Wire>::read_json(c)
                                        .map_err(|e| e.in_field($key))?,
                                );
                            }
                        )*
                        _ => {
                            c.skip_value()?;
                        }
                    }
                }
                Ok(Self {
                    $(
                        $field: match $field {
                            Some(v) => v,
                            None => <$ty as $crate::wire::Wire>::missing()
                                .ok_or(FieldError::Missing($key))?,
                        },
                    )*
                })
            }

            $(
                fn missing() -> Option<Self> {
                    Some($absent)
                }
            )?

            fn check_json(&self, _d: u16) -> Result<(), $crate::wire::FieldError> {
                // In JSON the fields sit inside the struct's object.
                let _d = _d.saturating_sub(1);
                $( $crate::wire::Wire::check_json(&self.$field, _d).map_err(|e| e.in_field($key))?; )*
                Ok(())
            }
        }
    };
}

/// Declares an enum that travels as a string in JSON and as a varint index in postcard.
macro_rules! wire_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident {
            $( $(#[$vm:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vm])* $variant, )*
        }

        impl $name {
            /// The name used in JSON.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
            /// Parses the JSON name.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $( $text => Some($name::$variant), )* _ => None }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'a> $crate::wire::Wire<'a> for $name {
            fn write_postcard(&self, out: &mut $crate::codec::Counted<'_>) {
                // The variant's index, a u32 varint.
                out.varint(*self as u64);
            }

            fn read_postcard(b: &'a [u8], at: &mut usize) -> Option<Self> {
                // The variant's index, a u32 varint.
                const ALL: &[$name] = &[$( $name::$variant, )*];
                let i = $crate::codec::pc::u32(b, at)?;
                ALL.get(i as usize).copied()
            }

            fn write_json(&self, w: &mut $crate::json::Writer<'_>) {
                w.byte(b'"');
                w.raw(self.as_str().as_bytes());
                w.byte(b'"');
            }
            fn read_json(c: &mut $crate::json::Cursor<'a>) -> Result<Self, $crate::wire::FieldError> {
                if c.kind()? != $crate::json::Kind::String {
                    return Err($crate::wire::FieldError::Invalid(""));
                }
                let s = c.string()?;
                if s.escaped {
                    return Err($crate::wire::FieldError::Invalid(""));
                }
                Self::from_name(s.raw).ok_or($crate::wire::FieldError::Invalid(""))
            }
        }
    };
}

pub(crate) use {wire_enum, wire_struct};
