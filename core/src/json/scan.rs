//! A strict (RFC 8259) JSON scanner over a byte slice.
//!
//! It validates while it walks and never builds a tree: callers read the envelope keys they know
//! and skip the rest, keeping spans (`&[u8]`) of raw values. UTF-8 is checked once for the whole
//! frame up front (`core::str::from_utf8`, which has a word-at-a-time ASCII path), so the scanner
//! only reasons about ASCII structure. Skipping a value is one loop over it, with the kinds of
//! the open containers kept as bits of a word, not a call per value; errors are built out of
//! line (`fail`), so the hot paths stay short.

use super::{JsonError, JsonErrorKind};

/// Nesting depth allowed by default (objects and arrays together).
pub const DEFAULT_MAX_DEPTH: u16 = 32;

/// Most member names a JSON value may hold open at once: the members read so far of every
/// object not yet closed, the innermost and those around it. Each new name is compared with
/// the earlier names of its object (I-JSON, RFC 7493: no duplicates), so a bound on them bounds
/// the work per name; more is [`JsonErrorKind::TooManyMembers`].
pub const MAX_OPEN_NAMES: usize = 256;

/// Names a value is first scanned with room for; a value that needs more is scanned again with
/// room for [`MAX_OPEN_NAMES`] (the larger table costs a few KiB of stack to clear).
#[cfg(feature = "unique-names")]
const SMALL_NAMES: usize = 16;

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
/// index of the first special byte; zero means none. The three byte tests share the `!w & HIGHS`
/// term: `"` and `\` are ASCII, so `w ^ q` has the high bits of `w`.
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    let below_space = w.wrapping_sub(ONES * 0x20);
    let quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
    let backslash = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
    (below_space | quote | backslash) & !w & HIGHS
}

#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// The index of the first `"`, `\` or control byte at or after `i` (or `buf.len()`).
#[inline(always)]
fn skip_plain(buf: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = buf.get(i..i + 8) {
        let m = special_mask(word(chunk));
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

/// [`skip_plain`] that also returns, if the special byte is in the first word, the bytes before
/// it as a word padded with zeros (a short name's bytes, for its fingerprint).
#[inline(always)]
fn skip_plain_first(buf: &[u8], i: usize) -> (usize, Option<u64>) {
    if let Some(chunk) = buf.get(i..i + 8) {
        let w = word(chunk);
        let m = special_mask(w);
        if m != 0 {
            let k = m.trailing_zeros() / 8;
            return (i + k as usize, Some(w & ((1u64 << (8 * k)) - 1)));
        }
        return (skip_plain(buf, i + 8), None);
    }
    (skip_plain(buf, i), None)
}

/// `a == b` for two slices of the same length, without a call to `memcmp` for the short ones:
/// two overlapping loads from each end.
#[inline(always)]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    let at = |s: &[u8], i: usize, k: usize| -> u64 {
        let mut w = [0u8; 8];
        if let (Some(d), Some(src)) = (w.get_mut(..k), s.get(i..i + k)) {
            d.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    };
    if n != b.len() {
        false
    } else if (8..=16).contains(&n) {
        at(a, 0, 8) == at(b, 0, 8) && at(a, n - 8, 8) == at(b, n - 8, 8)
    } else if (4..8).contains(&n) {
        at(a, 0, 4) == at(b, 0, 4) && at(a, n - 4, 4) == at(b, n - 4, 4)
    } else {
        a == b
    }
}

/// True if `s` holds a byte JSON can only write escaped: `"`, `\` or a control character.
pub(crate) fn has_special(s: &[u8]) -> bool {
    if cfg!(target_pointer_width = "64") {
        skip_plain(s, 0) < s.len()
    } else {
        // A byte at a time: on a 32-bit device the word loop costs flash for short names.
        s.iter().any(|&b| SPECIAL[b as usize])
    }
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
        fail(kind, self.pos)
    }

    /// Skips insignificant whitespace.
    #[inline]
    pub fn ws(&mut self) {
        self.pos = ws_at(self.buf, self.pos);
    }

    /// The next non-whitespace byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Result<u8, JsonError> {
        self.ws();
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
        }
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

    /// Consumes the `:` after a key.
    #[inline(always)]
    fn colon(&mut self) -> Result<(), JsonError> {
        if self.buf.get(self.pos) == Some(&b':') {
            self.pos += 1;
            Ok(())
        } else {
            self.expect(b':')
        }
    }

    /// Consumes a key's opening quote (whitespace already skipped) or fails.
    #[inline(always)]
    fn key_quote(&mut self) -> Result<(), JsonError> {
        match self.buf.get(self.pos) {
            Some(b'"') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.err(JsonErrorKind::Unexpected)),
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
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
    #[inline]
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

    #[inline]
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
        self.enter()
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
        self.key_quote()?;
        let key = self.string_body()?;
        self.colon()?;
        Ok(Some(key))
    }

    /// [`Cursor::next_key`] with a guess (if any): `guess` is a member as compact JSON writes it,
    /// `"name":`. If the next member starts with exactly those bytes (right after the `{` or
    /// `,`), it is read with one comparison; otherwise as by [`Cursor::next_key`]. The result
    /// is the same either way: those bytes are a name without escapes and its colon.
    #[inline(always)]
    pub fn next_key_guess(
        &mut self,
        first: bool,
        guess: Option<&'static str>,
    ) -> Result<Option<RawString<'a>>, JsonError> {
        if let Some(g) = guess
            && self.guess_key(first, g)
            && let Some(raw) = g.get(1..g.len() - 2)
        {
            return Ok(Some(RawString {
                raw,
                escaped: false,
            }));
        }
        self.next_key(first)
    }

    /// Consumes the next member's `guess` (`"name":`, and the `,` before it unless `first`)
    /// if the text at the cursor is exactly that; otherwise consumes nothing. True if it did:
    /// [`Cursor::next_key`] would then have returned that name, unescaped.
    ///
    /// A 32-bit device never guesses (false): its keys are few, its flash is not.
    #[inline(always)]
    pub fn guess_key(&mut self, first: bool, guess: &'static str) -> bool {
        if cfg!(not(target_pointer_width = "64")) {
            return false;
        }
        let at = self.pos + usize::from(!first);
        let g = guess.as_bytes();
        let hit = (first || self.buf.get(self.pos) == Some(&b','))
            && self
                .buf
                .get(at..at + g.len())
                .is_some_and(|b| same_short(b, g));
        if hit {
            self.pos = at + g.len();
        }
        hit
    }

    /// Consumes `lit` if the text at the cursor starts with exactly it (no whitespace first).
    /// As [`Cursor::guess_key`], false on a 32-bit device.
    #[inline(always)]
    pub fn eat(&mut self, lit: &'static [u8]) -> bool {
        if cfg!(not(target_pointer_width = "64")) {
            return false;
        }
        let hit = self
            .buf
            .get(self.pos..self.pos + lit.len())
            .is_some_and(|b| same_short(b, lit));
        if hit {
            self.pos += lit.len();
        }
        hit
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
        let escaped = if self.buf.get(i) == Some(&b'"') {
            self.pos = i + 1;
            false
        } else {
            self.string_rest(i)?
        };
        // `"` is never inside a multi-byte sequence, so both ends are char boundaries and slicing
        // checks only those.
        match self.text.get(start..self.pos - 1) {
            Some(raw) => Ok(RawString { raw, escaped }),
            None => Err(fail(JsonErrorKind::InvalidUtf8, start)),
        }
    }

    /// Validates the rest of a string whose opening quote has been consumed, without slicing it.
    #[inline(always)]
    fn skip_string(&mut self) -> Result<(), JsonError> {
        self.pos = string_end(self.buf, self.pos)?;
        Ok(())
    }

    /// The string from `i`, a special byte (or the end) that is not its closing quote. Leaves
    /// the cursor after the closing quote; the string holds escapes (it did not end at `i`).
    #[inline(always)]
    fn string_rest(&mut self, i: usize) -> Result<bool, JsonError> {
        self.pos = string_rest(self.buf, i)?;
        Ok(true)
    }

    /// The end of the number that starts at `start`.
    #[inline(always)]
    fn number_end(&self, start: usize) -> Result<usize, JsonError> {
        number_end(self.buf, start)
    }

    /// Scans a number (RFC 8259 grammar: no leading zeros, no `+`, digits after `.` and `e`).
    /// Returns its text.
    pub fn number(&mut self) -> Result<&'a str, JsonError> {
        self.ws();
        let start = self.pos;
        let end = self.number_end(start)?;
        self.pos = end;
        self.text
            .get(start..end)
            .ok_or(fail(JsonErrorKind::BadNumber, start))
    }

    /// Reads a non-negative integer that fits `u64` (no fraction, no exponent).
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        self.ws();
        let at = self.pos;
        let buf = self.buf;
        // Common case, in one pass: digits without a leading zero, ending in neither a
        // fraction, an exponent nor another digit, and no overflow.
        if let Some(b'1'..=b'9') = buf.get(at) {
            let mut v: u64 = 0;
            let mut i = at;
            while let Some(&d) = buf.get(i) {
                let d = d.wrapping_sub(b'0');
                if d >= 10 {
                    break;
                }
                let Some(next) = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) else {
                    return self.u64_slow(at);
                };
                v = next;
                i += 1;
            }
            if !matches!(buf.get(i), Some(b'.' | b'e' | b'E')) {
                self.pos = i;
                return Ok(v);
            }
        }
        self.u64_slow(at)
    }

    /// [`Cursor::u64`] for everything but plain in-range integers: the number grammar's verdict
    /// first, then whether the number is a `u64`.
    #[inline(never)]
    fn u64_slow(&mut self, at: usize) -> Result<u64, JsonError> {
        let end = self.number_end(at)?;
        self.pos = end;
        let mut v: u64 = 0;
        for &d in self.buf.get(at..end).unwrap_or_default() {
            if !d.is_ascii_digit() {
                return Err(fail(JsonErrorKind::NotAnInteger, at));
            }
            v = match v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
            {
                Some(v) => v,
                None => return Err(fail(JsonErrorKind::NotAnInteger, at)),
            };
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
                    return Err(fail(JsonErrorKind::NotAnInteger, at));
                }
                v = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_sub(i64::from(d - b'0')))
                    .ok_or(JsonError::new(JsonErrorKind::NotAnInteger, at))?;
            }
            Ok(v)
        } else {
            let v = self.u64()?;
            i64::try_from(v).map_err(|_| fail(JsonErrorKind::NotAnInteger, at))
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

    #[inline]
    fn literal(&mut self, lit: &[u8]) -> Result<bool, JsonError> {
        self.ws();
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.starts_with(lit) {
            self.pos += lit.len();
            Ok(true)
        } else if lit.starts_with(rest) && !rest.is_empty() {
            Err(self.err(JsonErrorKind::UnexpectedEnd))
        } else {
            Ok(false)
        }
    }

    /// Validates and skips one value of any kind, returning its exact text. Objects must not
    /// repeat a member name (compared after unescaping), at any depth (with the feature
    /// `unique-names`; without it repeated names pass, everything else is checked alike).
    pub fn skip_value(&mut self) -> Result<&'a [u8], JsonError> {
        let b = self.peek()?;
        let start = self.pos;
        match b {
            #[cfg(feature = "unique-names")]
            b'{' | b'[' => self.skip_checked(b)?,
            // Nothing to compare: no table to clear.
            #[cfg(not(feature = "unique-names"))]
            b'{' | b'[' => self.skip_container(b, &mut Names::none())?,
            _ => self.skip_leaf(b)?,
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// [`Cursor::skip_value`] that lets member names repeat: the syntax alone. For values that
    /// are ignored, or skipped to recover after an error found in them.
    pub fn skip_syntax(&mut self) -> Result<&'a [u8], JsonError> {
        let b = self.peek()?;
        let start = self.pos;
        match b {
            b'{' | b'[' => self.skip_container(b, &mut Names::none())?,
            _ => self.skip_leaf(b)?,
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    /// Skips a string or a scalar whose first byte `b` is at the cursor.
    #[inline(always)]
    fn skip_leaf(&mut self, b: u8) -> Result<(), JsonError> {
        if b == b'"' {
            self.pos += 1;
            self.skip_string()
        } else {
            self.skip_scalar(b)
        }
    }

    /// Skips the container at the cursor, comparing member names: first with room for
    /// [`SMALL_NAMES`] and, for the rare value that needs more, again with room for
    /// [`MAX_OPEN_NAMES`]. The verdict is the large table's either way.
    #[cfg(feature = "unique-names")]
    fn skip_checked(&mut self, b: u8) -> Result<(), JsonError> {
        let (pos, depth) = (self.pos, self.depth);
        let mut keys = [0u32; SMALL_NAMES];
        let mut starts = [0usize; SMALL_NAMES];
        let mut bases = [0u16; MAX_OPEN];
        match self.skip_container(b, &mut Names::new(&mut keys, &mut starts, &mut bases)) {
            Err(e) if e.kind == JsonErrorKind::TooManyMembers => {
                (self.pos, self.depth) = (pos, depth);
                self.skip_checked_large(b)
            }
            r => r,
        }
    }

    #[cfg(feature = "unique-names")]
    #[inline(never)]
    fn skip_checked_large(&mut self, b: u8) -> Result<(), JsonError> {
        let mut keys = [0u32; MAX_OPEN_NAMES];
        let mut starts = [0usize; MAX_OPEN_NAMES];
        let mut bases = [0u16; MAX_OPEN];
        self.skip_container(b, &mut Names::new(&mut keys, &mut starts, &mut bases))
    }

    /// Skips a number, `true`, `false` or `null` starting with `b` at the cursor.
    #[inline(always)]
    fn skip_scalar(&mut self, b: u8) -> Result<(), JsonError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match b {
            b'-' | b'0'..=b'9' => self.pos = self.number_end(self.pos)?,
            b't' if rest.starts_with(b"true") => self.pos += 4,
            b'f' if rest.starts_with(b"false") => self.pos += 5,
            b'n' if rest.starts_with(b"null") => self.pos += 4,
            // Malformed literals: the readers above report them.
            b't' | b'f' => {
                self.bool()?;
            }
            b'n' => {
                self.null()?;
                return Err(self.err(JsonErrorKind::Unexpected));
            }
            _ => return Err(self.err(JsonErrorKind::Unexpected)),
        }
        Ok(())
    }

    /// Skips the object or array whose opening byte `b` is at the cursor: one loop over its
    /// values with a stack of container kinds in a word, instead of a call per value. Member
    /// names go into `names` (if it compares them) and are compared within each object. The
    /// position and depth live in locals while it runs (the cursor is updated at the end).
    fn skip_container(&mut self, mut b: u8, names: &mut Names<'_>) -> Result<(), JsonError> {
        let buf = self.buf;
        let max_depth = self.max_depth;
        let mut pos = self.pos;
        let mut depth = self.depth;
        // Bit 0 of `objects` is set if the innermost open container is an object, bit 1 for
        // the one around it, and so on; `open` containers are open.
        let mut objects: u64 = 0;
        let mut open: u32 = 0;
        // Where the innermost open container's names start in `names`.
        let mut base = 0;
        // The next non-whitespace byte (not consumed), or the end of the text.
        macro_rules! peek {
            () => {{
                // One bounds check on the common path (no whitespace).
                match buf.get(pos) {
                    Some(&c) if c > b' ' => c,
                    _ => {
                        pos = ws_slow(buf, pos);
                        match buf.get(pos) {
                            Some(&c) => c,
                            None => return Err(fail(JsonErrorKind::UnexpectedEnd, pos)),
                        }
                    }
                }
            }};
        }
        // A member name whose opening quote has been consumed, compared with the earlier
        // names of its object, and the colon after it.
        macro_rules! member {
            () => {{
                let start = pos;
                let (i, first) = skip_plain_first(buf, start);
                if buf.get(i) == Some(&b'"') {
                    pos = i + 1;
                    if names.checks() {
                        let h = match first {
                            Some(w) => hash_short(i - start, w),
                            None => hash_plain(buf, start, i),
                        };
                        names.add(buf, h, start, base)?;
                    }
                } else {
                    pos = string_rest(buf, i)?;
                    if names.checks() {
                        names.add(buf, hash_unescaped(buf, start), start, base)?;
                    }
                }
                if buf.get(pos) == Some(&b':') {
                    pos += 1;
                } else if peek!() == b':' {
                    pos += 1;
                } else {
                    return Err(fail(JsonErrorKind::Unexpected, pos));
                }
            }};
        }
        loop {
            // `b` is the first byte of a value, at `pos`.
            match b {
                b'{' | b'[' if open < MAX_OPEN as u32 => {
                    pos += 1;
                    if depth >= max_depth {
                        return Err(fail(JsonErrorKind::TooDeep, pos));
                    }
                    depth += 1;
                    let object = b == b'{';
                    objects = objects << 1 | u64::from(object);
                    // This container's names start where the table is; the base of the one
                    // around it is kept until this one closes.
                    names.save(open, base);
                    base = names.len;
                    open += 1;
                    let c = peek!();
                    if c != if object { b'}' } else { b']' } {
                        if object {
                            if c != b'"' {
                                return Err(fail(JsonErrorKind::Unexpected, pos));
                            }
                            pos += 1;
                            member!();
                            b = peek!();
                        } else {
                            b = c;
                        }
                        continue;
                    }
                    // Empty: closed below.
                }
                // Nesting past the word's width: the inner container gets a stack (and a table
                // of names) of its own.
                b'{' | b'[' => {
                    (self.pos, self.depth) = (pos, depth);
                    if names.checks() {
                        self.skip_value()?;
                    } else {
                        self.skip_syntax()?;
                    }
                    (pos, depth) = (self.pos, self.depth);
                }
                b'"' => pos = string_end(buf, pos + 1)?,
                b'-' | b'0'..=b'9' => pos = number_end(buf, pos)?,
                _ => {
                    self.pos = pos;
                    self.skip_scalar(b)?;
                    pos = self.pos;
                }
            }
            // After a value: closing brackets, then a comma and the next value (or the end).
            loop {
                if open == 0 {
                    (self.pos, self.depth) = (pos, depth);
                    return Ok(());
                }
                let c = peek!();
                let object = objects & 1 != 0;
                if c == b',' {
                    pos += 1;
                    if object {
                        if peek!() != b'"' {
                            return Err(fail(JsonErrorKind::Unexpected, pos));
                        }
                        pos += 1;
                        member!();
                    }
                    b = peek!();
                    break;
                }
                if c != if object { b'}' } else { b']' } {
                    return Err(fail(JsonErrorKind::Unexpected, pos));
                }
                pos += 1;
                depth -= 1;
                objects >>= 1;
                open -= 1;
                // The object's names go with it (an array's base is where the table was).
                names.len = base;
                base = names.saved(open);
            }
        }
    }
}

/// Containers one walk keeps open (one bit each in a word); deeper ones get a walk of their own.
const MAX_OPEN: usize = u64::BITS as usize;

/// The member names of the objects open in a value, innermost last: a fingerprint of each
/// (a hash of the unescaped name) and where its text starts. A new name is compared with the
/// fingerprints of its own object's names, and by text only where a fingerprint matches. The
/// storage is the caller's (on its stack), so one walk serves every table size; an empty
/// table compares nothing (a walk of the syntax alone).
struct Names<'t> {
    keys: &'t mut [u32],
    starts: &'t mut [usize],
    /// For each open container, by nesting level, where the names of the one around it start.
    bases: &'t mut [u16],
    len: usize,
}

impl<'t> Names<'t> {
    #[inline(always)]
    fn new(keys: &'t mut [u32], starts: &'t mut [usize], bases: &'t mut [u16]) -> Self {
        Names {
            keys,
            starts,
            bases,
            len: 0,
        }
    }

    #[inline(always)]
    fn none() -> Self {
        Names::new(&mut [], &mut [], &mut [])
    }

    /// False for the empty table of a syntax-only walk, and always without the feature
    /// `unique-names` (then no name is compared, and none of the comparing is compiled).
    #[inline(always)]
    fn checks(&self) -> bool {
        cfg!(feature = "unique-names") && !self.keys.is_empty()
    }

    /// Keeps `base`, where the names of the container around the one opened at nesting level
    /// `level` start.
    #[inline(always)]
    fn save(&mut self, level: u32, base: usize) {
        if let Some(slot) = self.bases.get_mut(level as usize) {
            *slot = base as u16;
        }
    }

    /// The base kept by [`Names::save`] for `level`.
    #[inline(always)]
    fn saved(&self, level: u32) -> usize {
        self.bases
            .get(level as usize)
            .map_or(0, |&b| usize::from(b))
    }

    /// Adds the name whose body starts at `start` (fingerprint `h`) to the object whose names
    /// start at `base`, or fails if that object has it already or the table is full.
    #[inline(always)]
    fn add(&mut self, buf: &[u8], h: u32, start: usize, base: usize) -> Result<(), JsonError> {
        let earlier = self.keys.get(base..self.len).unwrap_or_default();
        // Fingerprints first; names are compared only where one matches (rare: a duplicate,
        // or two names that hash alike).
        let hit = if earlier.len() <= 8 {
            earlier.contains(&h)
        } else {
            wide_hit(earlier, h)
        };
        if hit && self.holds(buf, base, h, start) {
            return Err(fail(JsonErrorKind::DuplicateName, start - 1));
        }
        match (self.keys.get_mut(self.len), self.starts.get_mut(self.len)) {
            (Some(k), Some(s)) => {
                *k = h;
                *s = start;
                self.len += 1;
                Ok(())
            }
            _ => Err(fail(JsonErrorKind::TooManyMembers, start - 1)),
        }
    }

    /// True if a name of the object whose names start at `base`, with the fingerprint `h`, is
    /// the name whose body starts at `start`.
    #[inline(never)]
    fn holds(&self, buf: &[u8], base: usize, h: u32, start: usize) -> bool {
        let earlier = self.keys.get(base..self.len).unwrap_or_default();
        earlier
            .iter()
            .zip(self.starts.get(base..).unwrap_or_default())
            .any(|(&e, &s)| e == h && same_name(buf, s, start))
    }
}

/// Whether `keys` holds `h`, for an object with more than eight names so far: eight at a time,
/// without an early exit (the compiler makes it a vector compare).
#[inline(never)]
fn wide_hit(keys: &[u32], h: u32) -> bool {
    let mut chunks = keys.chunks_exact(8);
    let mut hit = false;
    for c in &mut chunks {
        hit |= c.iter().fold(false, |any, &e| any | (e == h));
        if hit {
            return true;
        }
    }
    chunks.remainder().contains(&h)
}

const HASH_K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn hash_mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(HASH_K)
}

/// Fingerprint of a name written without escapes, `buf[start..end]`: its length, then its
/// bytes 8 at a time (little-endian, the last word padded with zeros), mixed.
#[inline(always)]
fn hash_plain(buf: &[u8], start: usize, end: usize) -> u32 {
    let n = end - start;
    let h = if n <= 8 {
        if n == 0 {
            return 0;
        }
        // Most names: one load, the bytes after the name masked off (it is followed by at
        // least `":` and a value, so the load rarely runs past the text).
        let w = match buf.get(start..start + 8) {
            Some(c) => word(c) & (u64::MAX >> (64 - 8 * n)),
            None => short_word(buf.get(start..end).unwrap_or_default()),
        };
        hash_mix(n as u64, w)
    } else {
        hash_long(buf.get(start..end).unwrap_or_default())
    };
    (h >> 32) as u32
}

/// [`hash_plain`] of a name of `n` bytes (fewer than 8), given as the word `w` padded with
/// zeros.
#[inline(always)]
fn hash_short(n: usize, w: u64) -> u32 {
    if n == 0 {
        0
    } else {
        (hash_mix(n as u64, w) >> 32) as u32
    }
}

/// [`hash_plain`]'s mix for names longer than a word.
#[inline(never)]
fn hash_long(s: &[u8]) -> u64 {
    let n = s.len();
    if let (9..=16, Some(first), Some(last)) = (n, s.get(..8), s.get(n.wrapping_sub(8)..)) {
        // Two words: the first 8 bytes, then the rest as the low bytes of the last 8.
        return hash_mix(
            hash_mix(n as u64, word(first)),
            word(last) >> (8 * (16 - n)),
        );
    }
    let mut h = n as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        h = hash_mix(h, word(c));
    }
    let r = chunks.remainder().len();
    if r > 0 {
        // The last `r` bytes as the low bytes of a word: the last 8 bytes shifted down.
        h = hash_mix(h, s.get(n - 8..).map_or(0, word) >> (8 * (8 - r)));
    }
    h
}

/// The bytes of `s` (at most 8) as a little-endian word padded with zeros.
#[inline(never)]
fn short_word(s: &[u8]) -> u64 {
    s.iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b))
}

/// [`hash_plain`] of the unescaped text of the name whose body starts at `start`.
#[inline(never)]
fn hash_unescaped(buf: &[u8], start: usize) -> u32 {
    let len = NameBytes::new(buf, start).count();
    let (mut h, mut w, mut k) = (len as u64, 0u64, 0u32);
    for b in NameBytes::new(buf, start) {
        w |= u64::from(b) << (8 * k);
        k += 1;
        if k == 8 {
            h = hash_mix(h, w);
            (w, k) = (0, 0);
        }
    }
    if k > 0 {
        h = hash_mix(h, w);
    }
    (h >> 32) as u32
}

/// True if the names whose bodies start at `a` and `b` are the same once unescaped: bytes as
/// they are up to the first escape in either, then unescaped.
fn same_name(buf: &[u8], mut a: usize, mut b: usize) -> bool {
    loop {
        match (buf.get(a), buf.get(b)) {
            (Some(&x), Some(&y)) if x == y && x != b'\\' => {
                if x == b'"' {
                    return true;
                }
                a += 1;
                b += 1;
            }
            (Some(b'\\'), _) | (_, Some(b'\\')) => {
                return NameBytes::new(buf, a).eq(NameBytes::new(buf, b));
            }
            _ => return false,
        }
    }
}

/// The UTF-8 bytes of a scanned string's unescaped text, from `pos` (inside the string) to its
/// closing quote.
struct NameBytes<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The rest of an escaped character's UTF-8.
    pending: [u8; 4],
    next: u8,
    end: u8,
}

impl<'a> NameBytes<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        NameBytes {
            buf,
            pos,
            pending: [0; 4],
            next: 0,
            end: 0,
        }
    }
}

impl Iterator for NameBytes<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        if self.next < self.end {
            let b = self.pending.get(usize::from(self.next)).copied();
            self.next += 1;
            return b;
        }
        let b = *self.buf.get(self.pos)?;
        if b == b'"' {
            return None;
        }
        if b != b'\\' {
            self.pos += 1;
            return Some(b);
        }
        let (ch, len) = unescape_one(self.buf, self.pos)?;
        self.pos += len;
        let n = ch.encode_utf8(&mut self.pending).len();
        (self.next, self.end) = (1, n as u8);
        self.pending.first().copied()
    }
}

/// The character of the (validated) escape at `i` and the escape's length in bytes.
fn unescape_one(b: &[u8], i: usize) -> Option<(char, usize)> {
    Some(match b.get(i + 1)? {
        b'n' => ('\n', 2),
        b't' => ('\t', 2),
        b'r' => ('\r', 2),
        b'b' => ('\u{8}', 2),
        b'f' => ('\u{c}', 2),
        b'u' => {
            let hi = hex4(b, i + 2).ok()?;
            if (0xD800..0xDC00).contains(&hi) {
                let lo = hex4(b, i + 8).ok()?;
                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo.checked_sub(0xDC00)?);
                (char::from_u32(cp)?, 12)
            } else {
                (char::from_u32(hi)?, 6)
            }
        }
        &c => (char::from(c), 2),
    })
}

/// The rest of a string from `i`, a special byte (or the end) that is not its closing quote:
/// the position after the closing quote.
#[inline(never)]
fn string_rest(buf: &[u8], mut i: usize) -> Result<usize, JsonError> {
    loop {
        match buf.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => {
                i = if matches!(
                    buf.get(i + 1),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
                ) {
                    i + 2
                } else {
                    escape(buf, i + 1)?
                };
                i = skip_plain(buf, skip_text(buf, i));
            }
            Some(_) => return Err(fail(JsonErrorKind::ControlCharacter, i)),
            None => return Err(fail(JsonErrorKind::UnexpectedEnd, i)),
        }
    }
}

/// Inside a string that holds escapes, from `i` (not inside an escape): where the exact scan
/// must go on. Every byte before the returned position is plain text or a `\n` or `\"` escape,
/// the escapes of text and of quotes in it; the position is an escape's backslash, or at or
/// before the first byte that needs a closer look (the closing quote, another escape, a
/// control character), or within the last 7 bytes.
///
/// Why: text such as source code has an escape every line or so, and a scan that leaves its
/// word loop at each one pays a branch misprediction for it. Here a word is judged whole,
/// without branching on where its escapes are: `bs` marks backslashes, each escapes the byte
/// after it (a run of backslashes is not followed: `\\\\` stops the loop). The byte tests
/// are exact at the lowest byte they flag, and a byte flagged wrongly above a flagged one is
/// only ever an early stop, so every byte skipped is checked.
///
/// Only on 64-bit targets: on a 32-bit device the 64-bit arithmetic costs more flash than it
/// saves time on its short strings, and the scan goes on from `i` as before.
#[inline(always)]
fn skip_text(buf: &[u8], mut i: usize) -> usize {
    if cfg!(not(target_pointer_width = "64")) {
        return i;
    }
    // Bit 7 set: byte 0 of the next word is escaped (the last byte of this one is `\`).
    let mut carry = 0u64;
    // Two words per round: one branch for 16 bytes.
    while let Some(chunk) = buf.get(i..i + 16) {
        let (w0, w1) = (word(&chunk[..8]), word(&chunk[8..]));
        let (stop0, bs0) = judge(w0, carry);
        let (stop1, bs1) = judge(w1, bs0 >> 56);
        if stop0 | stop1 != 0 {
            return if stop0 != 0 {
                stopped(i, w0, carry, stop0)
            } else {
                stopped(i + 8, w1, bs0 >> 56, stop1)
            };
        }
        carry = bs1 >> 56;
        i += 16;
    }
    if let Some(chunk) = buf.get(i..i + 8) {
        let w = word(chunk);
        let (stop, bs) = judge(w, carry);
        if stop != 0 {
            return stopped(i, w, carry, stop);
        }
        carry = bs >> 56;
        i += 8;
    }
    if carry != 0 { i - 1 } else { i }
}

/// [`skip_text`]'s test of the word `w` (`carry`: its byte 0 is escaped): the bytes where it
/// must stop (an unescaped quote or a control character, or an escape other than `\n` and
/// `\"`) and its backslashes, as the high bits of their bytes.
#[inline(always)]
fn judge(w: u64, carry: u64) -> (u64, u64) {
    let ascii = !w & HIGHS;
    let quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
    let bs = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & ascii;
    let n = (w ^ (ONES * b'n' as u64)).wrapping_sub(ONES);
    let control = w.wrapping_sub(ONES * 0x20);
    let escaped = bs << 8 | carry;
    let stop = ((quote | control) & ascii & !escaped) | (escaped & !((quote | n) & ascii));
    (stop, bs)
}

/// Where [`skip_text`] goes on after stopping in the word `w` at position `i`: at the first
/// byte flagged in `stop`, or at its backslash if that byte is escaped.
#[inline(never)]
fn stopped(i: usize, w: u64, carry: u64, stop: u64) -> usize {
    let bs = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & !w & HIGHS;
    let escaped = bs << 8 | carry;
    let at = stop.trailing_zeros();
    let p = i + (at / 8) as usize;
    if escaped >> at & 1 != 0 { p - 1 } else { p }
}

/// The rest of a string whose opening quote is before `i`: the position after its closing
/// quote. Most strings end at their first special byte.
#[inline(always)]
fn string_end(buf: &[u8], i: usize) -> Result<usize, JsonError> {
    let i = skip_plain(buf, i);
    if buf.get(i) == Some(&b'"') {
        Ok(i + 1)
    } else {
        string_rest(buf, i)
    }
}

/// The first position at or after `pos` that is not whitespace.
#[inline(always)]
fn ws_at(buf: &[u8], pos: usize) -> usize {
    // Frames are compact: one test on the common path, the loop out of line.
    if matches!(buf.get(pos), Some(&b) if b <= b' ') {
        ws_slow(buf, pos)
    } else {
        pos
    }
}

#[inline(never)]
fn ws_slow(buf: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = buf.get(pos) {
        pos += 1;
    }
    pos
}

/// The end of the number that starts at `start` (RFC 8259 grammar: no leading zeros, no `+`,
/// digits after `.` and `e`).
#[inline(always)]
pub(super) fn number_end(buf: &[u8], start: usize) -> Result<usize, JsonError> {
    let mut i = start;
    if buf.get(i) == Some(&b'-') {
        i += 1;
    }
    match buf.get(i) {
        Some(b'0') => {
            i += 1;
            if is_digit(buf.get(i)) {
                return Err(fail(JsonErrorKind::BadNumber, i));
            }
        }
        Some(b'1'..=b'9') => i = digits(buf, i + 1),
        _ => return Err(fail(JsonErrorKind::BadNumber, i)),
    }
    match buf.get(i) {
        Some(b'.' | b'e' | b'E') => number_tail(buf, i),
        _ => Ok(i),
    }
}

/// A JSON error, built out of line: errors are rare and the hot paths stay short.
#[cold]
#[inline(never)]
pub(super) fn fail(kind: JsonErrorKind, at: usize) -> JsonError {
    JsonError::new(kind, at)
}

#[inline(always)]
fn is_digit(b: Option<&u8>) -> bool {
    matches!(b, Some(b'0'..=b'9'))
}

/// The index of the first non-digit at or after `i`.
#[inline(always)]
fn digits(buf: &[u8], mut i: usize) -> usize {
    while is_digit(buf.get(i)) {
        i += 1;
    }
    i
}

/// The end of a number's fraction and exponent, from its `.`, `e` or `E` at `i`.
#[inline(never)]
fn number_tail(buf: &[u8], mut i: usize) -> Result<usize, JsonError> {
    if buf.get(i) == Some(&b'.') {
        i += 1;
        if !is_digit(buf.get(i)) {
            return Err(fail(JsonErrorKind::BadNumber, i));
        }
        i = digits(buf, i);
    }
    if matches!(buf.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(buf.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !is_digit(buf.get(i)) {
            return Err(fail(JsonErrorKind::BadNumber, i));
        }
        i = digits(buf, i);
    }
    Ok(i)
}

/// Validates one escape starting after the backslash at `i - 1`; returns the index after it.
pub(super) fn escape(buf: &[u8], i: usize) -> Result<usize, JsonError> {
    match buf.get(i) {
        None => Err(fail(JsonErrorKind::UnexpectedEnd, i)),
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
                    Err(fail(JsonErrorKind::LoneSurrogate, i - 1))
                }
                0xDC00..=0xDFFF => Err(fail(JsonErrorKind::LoneSurrogate, i - 1)),
                _ => Ok(i + 5),
            }
        }
        Some(_) => Err(fail(JsonErrorKind::BadEscape, i - 1)),
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
/// depth limit. A build with neither JSON frames nor name comparison (features `json`,
/// `unique-names`) checks with a small loop instead of the scanner, which accepts the same texts
/// but follows at most 256 levels of nesting.
pub fn validate(text: &[u8], max_depth: u16) -> Result<(), JsonError> {
    #[cfg(not(any(feature = "json", feature = "unique-names")))]
    {
        super::compact::validate(text, max_depth)
    }
    #[cfg(any(feature = "json", feature = "unique-names"))]
    {
        validate_scan(text, max_depth)
    }
}

/// [`validate`] without name comparison, as the scanner does it: what `compact` must match.
#[cfg(test)]
pub(super) fn validate_syntax(text: &[u8], max_depth: u16) -> Result<(), JsonError> {
    let mut c = Cursor::new(text, max_depth)?;
    c.skip_syntax()?;
    c.end()
}

#[cfg(any(feature = "json", feature = "unique-names"))]
fn validate_scan(text: &[u8], max_depth: u16) -> Result<(), JsonError> {
    // ASCII (most JSON) is UTF-8; only other text needs the full check. No `&str` is needed:
    // skipping never slices the text.
    if !text.is_ascii()
        && let Err(e) = core::str::from_utf8(text)
    {
        return Err(JsonError::new(JsonErrorKind::InvalidUtf8, e.valid_up_to()));
    }
    let mut c = Cursor {
        buf: text,
        text: "",
        pos: 0,
        depth: 0,
        max_depth,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: Result<(), JsonError>) -> Result<(), JsonErrorKind> {
        r.map_err(|e| e.kind)
    }

    #[test]
    fn repeated_names_follow_the_feature_and_the_rest_is_checked_alike() {
        let repeated = kind(validate(br#"{"a":1,"b":{"c":[{"d":0,"d":1}]}}"#, 8));
        if cfg!(feature = "unique-names") {
            assert_eq!(repeated, Err(JsonErrorKind::DuplicateName));
        } else {
            assert_eq!(repeated, Ok(()));
        }
        // Syntax, depth (inside and beyond one walk's 64 open containers) and UTF-8 either way.
        assert!(validate(br#"{"a":1,"a":}"#, 8).is_err());
        assert!(validate(br#"{"a" 1}"#, 8).is_err());
        assert_eq!(kind(validate(b"[[[[1]]]]", 3)), Err(JsonErrorKind::TooDeep));
        let deep: Vec<u8> = [b'['; 100].into_iter().chain([b']'; 100]).collect();
        assert_eq!(kind(validate(&deep, 100)), Ok(()));
        assert_eq!(kind(validate(&deep, 99)), Err(JsonErrorKind::TooDeep));
        assert_eq!(
            kind(validate(&deep[..150], 100)),
            Err(JsonErrorKind::UnexpectedEnd)
        );
        assert_eq!(
            kind(validate(b"\"\xff\"", 8)),
            Err(JsonErrorKind::InvalidUtf8)
        );
    }
}
