//! A strict (RFC 8259) JSON scanner over a byte slice.
//!
//! It validates while it walks and never builds a tree: callers read the envelope keys they know
//! and skip the rest, keeping spans (`&[u8]`) of raw values. UTF-8 is checked once for the whole
//! frame up front (`core::str::from_utf8`, which has a word-at-a-time ASCII path), so the scanner
//! only reasons about ASCII structure.

use super::{JsonError, JsonErrorKind};

/// Nesting depth allowed by default (objects and arrays together).
pub const DEFAULT_MAX_DEPTH: u16 = 32;

/// Bytes that end a fast run inside a string: `"`, `\` and control characters.
const fn string_specials() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static SPECIAL: [bool; 256] = string_specials();

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` (little-endian) that may be `"`, `\` or below 0x20. The
/// lowest set bit is exact (borrows only propagate upwards), so `trailing_zeros() / 8` is the
/// index of the first special byte; zero means none.
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let q = w ^ (ONES * b'"' as u64);
    let quote = q.wrapping_sub(ONES) & !q & HIGHS;
    let b = w ^ (ONES * b'\\' as u64);
    let backslash = b.wrapping_sub(ONES) & !b & HIGHS;
    below_space | quote | backslash
}

/// The index of the first `"`, `\` or control byte at or after `i` (or `buf.len()`).
#[inline(always)]
fn skip_plain(buf: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = buf.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = special_mask(u64::from_le_bytes(w));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = buf.get(i) {
        if SPECIAL[b as usize] {
            break;
        }
        i += 1;
    }
    i
}

/// A scanned JSON string: the raw bytes between the quotes, escapes left in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawString<'a> {
    /// The text between the quotes, escapes not applied.
    pub raw: &'a str,
    /// Whether `raw` holds at least one backslash escape.
    pub escaped: bool,
}

/// The kind of the next value, from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Starts with `{`.
    Object,
    /// Starts with `[`.
    Array,
    /// Starts with `"`.
    String,
    /// Starts with `-` or a digit.
    Number,
    /// Starts with `t` or `f`.
    Bool,
    /// Starts with `n`.
    Null,
}

/// A position in a JSON text whose UTF-8 has already been checked.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    /// `buf` as text: strings and numbers are sliced out of it, so the UTF-8 check done once for
    /// the whole input is not repeated for each of them.
    text: &'a str,
    pos: usize,
    depth: u16,
    max_depth: u16,
}

impl<'a> Cursor<'a> {
    /// Checks UTF-8 for the whole text and starts at its beginning.
    pub fn new(buf: &'a [u8], max_depth: u16) -> Result<Self, JsonError> {
        match core::str::from_utf8(buf) {
            Ok(text) => Ok(Self::from_text(text, max_depth)),
            Err(e) => Err(JsonError::new(JsonErrorKind::InvalidUtf8, e.valid_up_to())),
        }
    }

    /// Starts on a text whose UTF-8 a caller has already checked (a sub-span of a checked text).
    /// Without `unsafe` the text still has to be checked once more to be sliced as `&str`; the
    /// check is a fast word-at-a-time pass for ASCII.
    pub fn new_unchecked_utf8(buf: &'a [u8], max_depth: u16) -> Self {
        Self::from_text(core::str::from_utf8(buf).unwrap_or(""), max_depth)
    }

    /// Starts at the beginning of `text`.
    pub fn from_text(text: &'a str, max_depth: u16) -> Self {
        Cursor {
            buf: text.as_bytes(),
            text,
            pos: 0,
            depth: 0,
            max_depth,
        }
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The whole input.
    pub fn input(&self) -> &'a [u8] {
        self.buf
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError::new(kind, self.pos)
    }

    /// Skips insignificant whitespace.
    #[inline]
    pub fn ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Result<u8, JsonError> {
        self.ws();
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(JsonErrorKind::UnexpectedEnd))
    }

    /// Consumes `b` (after whitespace) or fails.
    #[inline]
    pub fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.peek()? == b {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(JsonErrorKind::Unexpected))
        }
    }

    /// Requires that only whitespace remains.
    pub fn end(&mut self) -> Result<(), JsonError> {
        self.ws();
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(JsonErrorKind::TrailingData))
        }
    }

    /// The kind of the next value.
    pub fn kind(&mut self) -> Result<Kind, JsonError> {
        Ok(match self.peek()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b'-' | b'0'..=b'9' => Kind::Number,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            _ => return Err(self.err(JsonErrorKind::Unexpected)),
        })
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        if self.depth >= self.max_depth {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// Consumes `{`. Iterate members with [`Cursor::next_key`].
    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.expect(b'{')?;
        self.enter()?;
        // `first` state is encoded by looking at the previous significant byte in next_key.
        Ok(())
    }

    /// The next member's key (its colon consumed), or `None` at the closing brace. `first` is
    /// true for the first call after [`Cursor::begin_object`].
    pub fn next_key(&mut self, first: bool) -> Result<Option<RawString<'a>>, JsonError> {
        let b = self.peek()?;
        if b == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        if !first {
            if b != b',' {
                return Err(self.err(JsonErrorKind::Unexpected));
            }
            self.pos += 1;
            self.ws();
        }
        if self.buf.get(self.pos) != Some(&b'"') {
            return Err(self.err(if self.pos >= self.buf.len() {
                JsonErrorKind::UnexpectedEnd
            } else {
                JsonErrorKind::Unexpected
            }));
        }
        self.pos += 1;
        let key = self.string_body()?;
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Consumes `[`. Iterate elements with [`Cursor::next_element`].
    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        self.expect(b'[')?;
        self.enter()
    }

    /// True if another element follows (its leading comma consumed); false at `]`.
    pub fn next_element(&mut self, first: bool) -> Result<bool, JsonError> {
        let b = self.peek()?;
        if b == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        if !first {
            if b != b',' {
                return Err(self.err(JsonErrorKind::Unexpected));
            }
            self.pos += 1;
        }
        Ok(true)
    }

    /// Scans a string value, checking escapes and surrogate pairs.
    #[inline]
    pub fn string(&mut self) -> Result<RawString<'a>, JsonError> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// Scans the rest of a string whose opening quote has been consumed. Inlined: most strings
    /// (keys, names) are short and escape-free, and end at the first special byte.
    #[inline]
    fn string_body(&mut self) -> Result<RawString<'a>, JsonError> {
        let start = self.pos;
        let i = skip_plain(self.buf, start);
        if self.buf.get(i) == Some(&b'"') {
            self.pos = i + 1;
            return self.raw_string(start, i, false);
        }
        self.string_rest(start, i)
    }

    /// `"` is never inside a multi-byte sequence, so both ends are char boundaries and slicing
    /// checks only those.
    #[inline]
    fn raw_string(
        &self,
        start: usize,
        end: usize,
        escaped: bool,
    ) -> Result<RawString<'a>, JsonError> {
        match self.text.get(start..end) {
            Some(raw) => Ok(RawString { raw, escaped }),
            None => Err(JsonError::new(JsonErrorKind::InvalidUtf8, start)),
        }
    }

    /// The string from `i`, a special byte (or the end) that is not its closing quote.
    #[inline(never)]
    fn string_rest(&mut self, start: usize, mut i: usize) -> Result<RawString<'a>, JsonError> {
        let mut escaped = false;
        loop {
            match self.buf.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return self.raw_string(start, i, escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos = i;
                    i = skip_plain(self.buf, self.escape(i + 1)?);
                }
                Some(_) => {
                    self.pos = i;
                    return Err(self.err(JsonErrorKind::ControlCharacter));
                }
                None => {
                    self.pos = i;
                    return Err(self.err(JsonErrorKind::UnexpectedEnd));
                }
            }
        }
    }

    /// Validates one escape starting after the backslash at `i`; returns the index after it.
    fn escape(&mut self, i: usize) -> Result<usize, JsonError> {
        let buf = self.buf;
        match buf.get(i) {
            None => Err(JsonError::new(JsonErrorKind::UnexpectedEnd, i)),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => {
                let cp = hex4(buf, i + 1)?;
                match cp {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if buf.get(i + 5) == Some(&b'\\') && buf.get(i + 6) == Some(&b'u') {
                            let lo = hex4(buf, i + 7)?;
                            if (0xDC00..=0xDFFF).contains(&lo) {
                                return Ok(i + 11);
                            }
                        }
                        Err(JsonError::new(JsonErrorKind::LoneSurrogate, i - 1))
                    }
                    0xDC00..=0xDFFF => Err(JsonError::new(JsonErrorKind::LoneSurrogate, i - 1)),
                    _ => Ok(i + 5),
                }
            }
            Some(_) => Err(JsonError::new(JsonErrorKind::BadEscape, i - 1)),
        }
    }

    /// Scans a number (RFC 8259 grammar: no leading zeros, no `+`, digits after `.` and `e`).
    /// Returns its text.
    pub fn number(&mut self) -> Result<&'a str, JsonError> {
        self.ws();
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        let bad = |at| JsonError::new(JsonErrorKind::BadNumber, at);
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => {
                i += 1;
                if matches!(buf.get(i), Some(b'0'..=b'9')) {
                    return Err(bad(i));
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(buf.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return Err(bad(i)),
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(buf.get(i), Some(b'0'..=b'9')) {
                return Err(bad(i));
            }
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(buf.get(i), Some(b'0'..=b'9')) {
                return Err(bad(i));
            }
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        self.text.get(start..i).ok_or(bad(start))
    }

    /// Reads a non-negative integer that fits `u64` (no fraction, no exponent).
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        self.ws();
        let at = self.pos;
        let text = self.number()?;
        let mut v: u64 = 0;
        for &d in text.as_bytes() {
            if !d.is_ascii_digit() {
                return Err(JsonError::new(JsonErrorKind::NotAnInteger, at));
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(JsonError::new(JsonErrorKind::NotAnInteger, at))?;
        }
        Ok(v)
    }

    /// Reads an integer that fits `i64`.
    pub fn i64(&mut self) -> Result<i64, JsonError> {
        self.ws();
        let at = self.pos;
        let neg = self.buf.get(self.pos) == Some(&b'-');
        if neg {
            // Validate the whole number with the grammar first, then read the magnitude.
            let text = self.number()?;
            let mut v: i64 = 0;
            for &d in &text.as_bytes()[1..] {
                if !d.is_ascii_digit() {
                    return Err(JsonError::new(JsonErrorKind::NotAnInteger, at));
                }
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_sub(i64::from(d - b'0')))
                    .ok_or(JsonError::new(JsonErrorKind::NotAnInteger, at))?;
            }
            Ok(v)
        } else {
            let v = self.u64()?;
            i64::try_from(v).map_err(|_| JsonError::new(JsonErrorKind::NotAnInteger, at))
        }
    }

    /// Reads `true` or `false`.
    pub fn bool(&mut self) -> Result<bool, JsonError> {
        if self.literal(b"true")? {
            Ok(true)
        } else if self.literal(b"false")? {
            Ok(false)
        } else {
            Err(self.err(JsonErrorKind::Unexpected))
        }
    }

    /// Consumes `null` if it is next; false (nothing consumed) otherwise.
    pub fn null(&mut self) -> Result<bool, JsonError> {
        self.literal(b"null")
    }

    fn literal(&mut self, lit: &[u8]) -> Result<bool, JsonError> {
        self.ws();
        let rest = &self.buf[self.pos..];
        if rest.starts_with(lit) {
            self.pos += lit.len();
            Ok(true)
        } else if lit.starts_with(rest) && !rest.is_empty() {
            Err(self.err(JsonErrorKind::UnexpectedEnd))
        } else {
            Ok(false)
        }
    }

    /// Validates and skips one value of any kind, returning its exact text.
    pub fn skip_value(&mut self) -> Result<&'a [u8], JsonError> {
        self.ws();
        let start = self.pos;
        match self.kind()? {
            Kind::Object => {
                self.begin_object()?;
                let mut first = true;
                while self.next_key(first)?.is_some() {
                    first = false;
                    self.skip_value()?;
                }
            }
            Kind::Array => {
                self.begin_array()?;
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.skip_value()?;
                }
            }
            Kind::String => {
                self.pos += 1;
                self.string_body()?;
            }
            Kind::Number => {
                self.number()?;
            }
            Kind::Bool => {
                self.bool()?;
            }
            Kind::Null => {
                if !self.null()? {
                    return Err(self.err(JsonErrorKind::Unexpected));
                }
            }
        }
        Ok(&self.buf[start..self.pos])
    }
}

fn hex4(buf: &[u8], i: usize) -> Result<u32, JsonError> {
    let mut v = 0u32;
    for k in 0..4 {
        let Some(&c) = buf.get(i + k) else {
            return Err(JsonError::new(JsonErrorKind::UnexpectedEnd, i + k));
        };
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(JsonError::new(JsonErrorKind::BadEscape, i + k)),
        };
        v = v << 4 | u32::from(d);
    }
    Ok(v)
}

/// Validates that `text` is exactly one JSON value (surrounding whitespace allowed) within the
/// depth limit.
pub fn validate(text: &[u8], max_depth: u16) -> Result<(), JsonError> {
    let mut c = Cursor::new(text, max_depth)?;
    c.skip_value()?;
    c.end()
}

/// Writes the unescaped form of a JSON string body (`raw`, escapes in) through `out`.
///
/// `raw` must have been validated by the scanner.
pub(crate) fn unescape(
    raw: &str,
    mut out: impl FnMut(&str) -> core::fmt::Result,
) -> core::fmt::Result {
    let b = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out(&raw[run..i])?;
        let (ch, len) = match b.get(i + 1) {
            Some(b'n') => ('\n', 2),
            Some(b't') => ('\t', 2),
            Some(b'r') => ('\r', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'u') => {
                let hi = hex4(b, i + 2).map_err(|_| core::fmt::Error)?;
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = hex4(b, i + 8).map_err(|_| core::fmt::Error)?;
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    (char::from_u32(cp).ok_or(core::fmt::Error)?, 12)
                } else {
                    (char::from_u32(hi).ok_or(core::fmt::Error)?, 6)
                }
            }
            Some(&c) => (char::from(c), 2),
            None => return Err(core::fmt::Error),
        };
        let mut tmp = [0u8; 4];
        out(ch.encode_utf8(&mut tmp))?;
        i += len;
        run = i;
    }
    out(&raw[run..])
}
