//! Strict JSON: validation, zero-copy values and the helpers tools use to read their arguments.
//!
//! Untrusted JSON is checked against RFC 8259 in full: invalid UTF-8, control characters in
//! strings, bad escapes, lone surrogates, leading zeros, `+1`, `1.`, trailing data and nesting
//! deeper than a limit are all rejected with a [`JsonError`] that says what and where. So are
//! objects that repeat a member name, at any depth (I-JSON, RFC 7493: a receiver that keeps the
//! first of two values and one that keeps the last would see different arguments); names are
//! compared after unescaping, so `"a"` and `"\u0061"` are the same name. (Names are compared with
//! the feature `unique-names`, which hosts and the gateway have; a device may do without.)

#[cfg(any(test, not(any(feature = "json", feature = "unique-names"))))]
mod compact;
mod scan;
mod write;

#[doc(hidden)]
pub use scan::{Cursor, Kind};
pub use scan::{DEFAULT_MAX_DEPTH, MAX_OPEN_NAMES, validate};
pub(crate) use scan::{has_special, unescape};
#[doc(hidden)]
pub use write::Writer;

use core::fmt;

/// What was wrong with a JSON text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    Unexpected,
    /// A backslash escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    BadEscape,
    /// A `\uD800`–`\uDFFF` escape that is not part of a high/low surrogate pair.
    LoneSurrogate,
    /// A raw control character (below U+0020) inside a string.
    ControlCharacter,
    /// A number outside the RFC 8259 grammar (leading zero, `+`, `1.`, `.5`, `1e`).
    BadNumber,
    /// A number where a non-negative integer (or an integer within range) was required.
    NotAnInteger,
    /// Objects and arrays nested deeper than the configured limit.
    TooDeep,
    /// Bytes other than whitespace after the value.
    TrailingData,
    /// An object has the same member name twice (after unescaping). The offset is the second
    /// name's opening quote.
    DuplicateName,
    /// More than [`MAX_OPEN_NAMES`] member names open at once (see there).
    TooManyMembers,
}

/// A JSON syntax error and the byte offset where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonError {
    /// What was wrong.
    pub kind: JsonErrorKind,
    /// Byte offset into the text that was scanned.
    pub offset: usize,
}

impl JsonError {
    pub(crate) const fn new(kind: JsonErrorKind, offset: usize) -> Self {
        JsonError { kind, offset }
    }
}

impl JsonErrorKind {
    /// One static line: "malformed JSON: …" (for the two I-JSON rules, "invalid JSON: …").
    pub fn summary(self) -> &'static str {
        match self {
            JsonErrorKind::InvalidUtf8 => "malformed JSON: invalid UTF-8",
            JsonErrorKind::UnexpectedEnd => "malformed JSON: unexpected end",
            JsonErrorKind::Unexpected => "malformed JSON: unexpected character",
            JsonErrorKind::BadEscape => "malformed JSON: invalid escape",
            JsonErrorKind::LoneSurrogate => "malformed JSON: lone UTF-16 surrogate",
            JsonErrorKind::ControlCharacter => "malformed JSON: control character in string",
            JsonErrorKind::BadNumber => "malformed JSON: invalid number",
            JsonErrorKind::NotAnInteger => "malformed JSON: integer expected",
            JsonErrorKind::TooDeep => "malformed JSON: nesting too deep",
            JsonErrorKind::TrailingData => "malformed JSON: trailing data after the value",
            JsonErrorKind::DuplicateName => "invalid JSON: duplicate member name",
            JsonErrorKind::TooManyMembers => "invalid JSON: too many member names",
        }
    }

    /// True for faults of the syntax, false for a valid text that breaks a rule on top of it
    /// (an integer out of range, a duplicate member name, too many members): decoders answer
    /// the first `-32700` and the others like any other invalid field.
    pub fn is_syntax(self) -> bool {
        !matches!(
            self,
            JsonErrorKind::NotAnInteger
                | JsonErrorKind::DuplicateName
                | JsonErrorKind::TooManyMembers
        )
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            JsonErrorKind::InvalidUtf8 => "invalid UTF-8",
            JsonErrorKind::UnexpectedEnd => "unexpected end of JSON",
            JsonErrorKind::Unexpected => "unexpected character",
            JsonErrorKind::BadEscape => "invalid escape",
            JsonErrorKind::LoneSurrogate => "lone UTF-16 surrogate",
            JsonErrorKind::ControlCharacter => "control character in string",
            JsonErrorKind::BadNumber => "invalid number",
            JsonErrorKind::NotAnInteger => "integer expected",
            JsonErrorKind::TooDeep => "nesting too deep",
            JsonErrorKind::TrailingData => "trailing data after JSON value",
            JsonErrorKind::DuplicateName => "duplicate member name",
            JsonErrorKind::TooManyMembers => "too many member names open at once",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl core::error::Error for JsonError {}

/// Why [`from_args`] could not read a tool's arguments into its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgsError {
    /// The JSON does not match the Rust type (wrong field type, missing field, …).
    Mismatch,
    /// Strings needed unescaping and the scratch buffer was too small.
    ScratchTooSmall,
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgsError::Mismatch => "arguments do not match the tool's parameter type",
            ArgsError::ScratchTooSmall => "scratch buffer too small to unescape arguments",
        })
    }
}

impl core::error::Error for ArgsError {}

/// Deserializes a tool's validated JSON arguments into its own typed struct with
/// `serde-json-core`. `scratch` is where escaped strings are unescaped (give at least the length
/// of the longest string). String fields that may contain escapes (`\n`, `\"`, `\u00e9`) must
/// be owned, such as `heapless::String<N>`: a borrowed `&str` field only accepts strings written
/// without escapes, and fails with [`ArgsError::Mismatch`] otherwise.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct SetLed { on: bool, brightness: u8 }
/// let args = toolwire_core::Json::parse(br#"{"on":true,"brightness":7}"#).unwrap();
/// let a: SetLed = toolwire_core::json::from_args(args, &mut []).unwrap();
/// assert!(a.on && a.brightness == 7);
/// ```
pub fn from_args<'a, T: serde::Deserialize<'a>>(
    args: crate::Json<'a>,
    scratch: &'a mut [u8],
) -> Result<T, ArgsError> {
    let bytes = args.as_bytes();
    let r = if scratch.is_empty() {
        serde_json_core::from_slice(bytes)
    } else {
        serde_json_core::from_slice_escaped(bytes, scratch)
    };
    match r {
        Ok((v, _)) => Ok(v),
        Err(serde_json_core::de::Error::EscapedStringIsTooLong) => Err(ArgsError::ScratchTooSmall),
        Err(_) => Err(ArgsError::Mismatch),
    }
}

/// Serializes a tool's typed result as JSON into `out` with `serde-json-core`, returning the
/// length written, or `None` if `out` is too small.
pub fn to_result<T: serde::Serialize>(value: &T, out: &mut [u8]) -> Option<usize> {
    serde_json_core::to_slice(value, out).ok()
}
