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
        // Frames are compact: one test on the common path, the loop out of line.
        if matches!(self.buf.get(self.pos), Some(&b) if b <= b' ') {
            self.ws_slow();
        }
    }

    #[inline(never)]
    fn ws_slow(&mut self) {
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
        let i = skip_plain(self.buf, self.pos);
        if self.buf.get(i) == Some(&b'"') {
            self.pos = i + 1;
            Ok(())
        } else {
            self.string_rest(i).map(drop)
        }
    }

    /// The string from `i`, a special byte (or the end) that is not its closing quote. Leaves
    /// the cursor after the closing quote and returns whether the string holds escapes.
    #[inline(never)]
    fn string_rest(&mut self, mut i: usize) -> Result<bool, JsonError> {
        let buf = self.buf;
        let mut escaped = false;
        loop {
            match buf.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    i = if matches!(
                        buf.get(i + 1),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
                    ) {
                        i + 2
                    } else {
                        self.pos = i;
                        escape(buf, i + 1)?
                    };
                    i = skip_plain(buf, i);
                }
                Some(_) => {
                    self.pos = i;
                    return Err(fail(JsonErrorKind::ControlCharacter, i));
                }
                None => {
                    self.pos = i;
                    return Err(fail(JsonErrorKind::UnexpectedEnd, i));
                }
            }
        }
    }

    /// The end of the number that starts at `start` (RFC 8259 grammar: no leading zeros, no
    /// `+`, digits after `.` and `e`).
    #[inline(always)]
    fn number_end(&self, start: usize) -> Result<usize, JsonError> {
        let buf = self.buf;
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
    /// repeat a member name (compared after unescaping), at any depth.
    pub fn skip_value(&mut self) -> Result<&'a [u8], JsonError> {
        self.skip_value_with::<SMALL_NAMES>()
    }

    /// [`Cursor::skip_value`] that lets member names repeat: the syntax alone. For values that
    /// are ignored, or skipped to recover after an error found in them.
    pub fn skip_syntax(&mut self) -> Result<&'a [u8], JsonError> {
        self.skip_value_with::<0>()
    }

    /// `N`: room for member names (0: not compared).
    #[inline(always)]
    fn skip_value_with<const N: usize>(&mut self) -> Result<&'a [u8], JsonError> {
        let b = self.peek()?;
        let start = self.pos;
        match b {
            b'"' => {
                self.pos += 1;
                self.skip_string()?;
            }
            b'{' | b'[' if N == 0 => self.skip_container::<0>(b)?,
            b'{' | b'[' => {
                let (pos, depth) = (self.pos, self.depth);
                match self.skip_container::<N>(b) {
                    Err(e) if e.kind == JsonErrorKind::TooManyMembers && N < MAX_OPEN_NAMES => {
                        // Rare: more names than the small table holds. Again, with the large one.
                        (self.pos, self.depth) = (pos, depth);
                        self.skip_container_large(b)?;
                    }
                    r => r?,
                }
            }
            _ => self.skip_scalar(b)?,
        }
        Ok(self.buf.get(start..self.pos).unwrap_or_default())
    }

    #[inline(never)]
    fn skip_container_large(&mut self, b: u8) -> Result<(), JsonError> {
        self.skip_container::<MAX_OPEN_NAMES>(b)
    }

    /// Scans a member name whose opening quote has been consumed and, if `N > 0`, checks it
    /// against the earlier names of its object (those from `base` on in `names`).
    #[inline(always)]
    fn member_name<const N: usize>(
        &mut self,
        names: &mut Names<N>,
        base: usize,
    ) -> Result<(), JsonError> {
        if N == 0 {
            return self.skip_string();
        }
        let start = self.pos;
        let i = skip_plain(self.buf, start);
        let escaped = if self.buf.get(i) == Some(&b'"') {
            self.pos = i + 1;
            false
        } else {
            self.string_rest(i)?
        };
        names.add(self.buf, start, self.pos - 1, escaped, base)
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
    /// values with a stack of container kinds in a word, instead of a call per value. With
    /// `N > 0`, member names are kept (up to `N` open at once) and compared within each object.
    fn skip_container<const N: usize>(&mut self, mut b: u8) -> Result<(), JsonError> {
        // Bit 0 of `objects` is set if the innermost open container is an object, bit 1 for
        // the one around it, and so on; `open` containers are open.
        let mut objects: u64 = 0;
        let mut open: u32 = 0;
        let mut names = Names::<N>::new();
        // Where each open container's names start in `names` (for objects).
        let mut bases = [0u16; u64::BITS as usize];
        loop {
            // `b` is the first byte of a value, at the cursor.
            match b {
                b'{' | b'[' if open < u64::BITS => {
                    self.pos += 1;
                    self.enter()?;
                    let object = b == b'{';
                    objects = objects << 1 | u64::from(object);
                    if let Some(slot) = bases.get_mut(open as usize) {
                        *slot = names.len as u16;
                    }
                    open += 1;
                    let c = self.peek()?;
                    if c != if object { b'}' } else { b']' } {
                        if object {
                            if c != b'"' {
                                return Err(self.err(JsonErrorKind::Unexpected));
                            }
                            self.pos += 1;
                            let base = names.len;
                            self.member_name(&mut names, base)?;
                            self.colon()?;
                            b = self.peek()?;
                        } else {
                            b = c;
                        }
                        continue;
                    }
                    // Empty: closed below.
                }
                // Nesting past the word's width: the inner container gets a stack of its own.
                b'{' | b'[' => {
                    if N == 0 {
                        self.skip_syntax()?;
                    } else {
                        self.skip_value()?;
                    }
                }
                b'"' => {
                    self.pos += 1;
                    self.skip_string()?;
                }
                _ => self.skip_scalar(b)?,
            }
            // After a value: closing brackets, then a comma and the next value (or the end).
            loop {
                if open == 0 {
                    return Ok(());
                }
                let c = self.peek()?;
                let object = objects & 1 != 0;
                let base = bases.get(open as usize - 1).map_or(0, |&b| usize::from(b));
                if c == b',' {
                    self.pos += 1;
                    if object {
                        self.ws();
                        self.key_quote()?;
                        self.member_name(&mut names, base)?;
                        self.colon()?;
                    }
                    b = self.peek()?;
                    break;
                }
                if c != if object { b'}' } else { b']' } {
                    return Err(self.err(JsonErrorKind::Unexpected));
                }
                self.pos += 1;
                self.depth -= 1;
                objects >>= 1;
                open -= 1;
                // The object's names go with it (an array's base is where the table was).
                names.len = base;
            }
        }
    }
}

/// The member names of the objects open in a value, innermost last: a fingerprint of each
/// (a hash of the unescaped name) and where its text starts. A new name is compared with the
/// fingerprints of its own object's names, and by text only where a fingerprint matches.
struct Names<const N: usize> {
    hash: [u32; N],
    start: [usize; N],
    len: usize,
}

impl<const N: usize> Names<N> {
    #[inline(always)]
    fn new() -> Self {
        Names {
            hash: [0; N],
            start: [0; N],
            len: 0,
        }
    }

    /// Adds the name `buf[start..end]` (escapes in if `escaped`) to the object whose names start
    /// at `base`, or fails if that object has it already or the table is full.
    #[inline(always)]
    fn add(
        &mut self,
        buf: &[u8],
        start: usize,
        end: usize,
        escaped: bool,
        base: usize,
    ) -> Result<(), JsonError> {
        let h = if escaped {
            hash_unescaped(buf, start)
        } else {
            hash_plain(buf.get(start..end).unwrap_or_default())
        };
        let earlier = self.hash.get(base..self.len).unwrap_or_default();
        // Eight fingerprints at a time, without an early exit (the compiler makes it a vector
        // compare); the names of a chunk that holds `h` are then compared one by one.
        let mut chunks = earlier.chunks_exact(8);
        let mut at = base;
        for c in &mut chunks {
            if c.iter().fold(false, |any, &e| any | (e == h)) && self.holds(buf, at, c, h, start) {
                return Err(fail(JsonErrorKind::DuplicateName, start - 1));
            }
            at += 8;
        }
        if self.holds(buf, at, chunks.remainder(), h, start) {
            return Err(fail(JsonErrorKind::DuplicateName, start - 1));
        }
        match (self.hash.get_mut(self.len), self.start.get_mut(self.len)) {
            (Some(hs), Some(ss)) => {
                *hs = h;
                *ss = start;
                self.len += 1;
                Ok(())
            }
            _ => Err(fail(JsonErrorKind::TooManyMembers, start - 1)),
        }
    }
}

impl<const N: usize> Names<N> {
    /// True if one of `hashes` (the fingerprints from index `at` on) is `h` and its name is the
    /// one at `start`.
    #[inline(always)]
    fn holds(&self, buf: &[u8], at: usize, hashes: &[u32], h: u32, start: usize) -> bool {
        hashes.iter().enumerate().any(|(k, &e)| {
            e == h
                && self
                    .start
                    .get(at + k)
                    .is_some_and(|&s| same_name(buf, s, start))
        })
    }
}

const HASH_K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn hash_mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(HASH_K)
}

/// Fingerprint of a name written without escapes: its length, then its bytes 8 at a time
/// (little-endian, the last word padded with zeros).
#[inline(always)]
fn hash_plain(s: &[u8]) -> u32 {
    let n = s.len();
    let mut h = n as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        h = hash_mix(h, word(c));
    }
    let r = chunks.remainder().len();
    if r > 0 {
        // The last `r` bytes as the low bytes of a word, without a variable-length copy: the
        // last 8 bytes shifted down if there are 8, else loads that overlap.
        let w = if n >= 8 {
            s.get(n - 8..).map_or(0, word) >> (8 * (8 - r))
        } else {
            short_word(s)
        };
        h = hash_mix(h, w);
    }
    (h >> 32) as u32
}

/// The bytes of `s` (fewer than 8) as a little-endian word padded with zeros.
#[inline(always)]
fn short_word(s: &[u8]) -> u64 {
    let n = s.len();
    let at = |i: usize| u64::from(s.get(i).copied().unwrap_or(0));
    let u32_at = |i: usize| {
        let mut w = [0u8; 4];
        if let Some(b) = s.get(i..i + 4) {
            w.copy_from_slice(b);
        }
        u64::from(u32::from_le_bytes(w))
    };
    match n {
        0 => 0,
        1..=3 => at(0) | at(n / 2) << (8 * (n / 2)) | at(n - 1) << (8 * (n - 1)),
        _ => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
    }
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

/// A JSON error, built out of line: errors are rare and the hot paths stay short.
#[cold]
#[inline(never)]
fn fail(kind: JsonErrorKind, at: usize) -> JsonError {
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
fn escape(buf: &[u8], i: usize) -> Result<usize, JsonError> {
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
