//! A small validator of the same JSON the scanner accepts, for builds that link no JSON frames
//! and do not compare member names (neither feature `json` nor `unique-names`): there the
//! scanner's only use is to check the raw JSON values of postcard frames, and its fast paths
//! (word-at-a-time strings, one walk per container with a name table) cost ~4 KiB of flash that
//! one plain loop does without.
//!
//! It accepts exactly what [`super::validate`] accepts without name comparison: RFC 8259 syntax,
//! UTF-8, escapes and surrogate pairs, and nesting up to `max_depth` (at most [`MAX_NESTING`]);
//! a unit test compares the two on random texts. Too deep and invalid UTF-8 are reported alike;
//! other errors may be named differently (a truncated literal is `Unexpected` here) and offsets
//! may differ.

use super::scan::{escape, fail, number_end};
use super::{JsonError, JsonErrorKind};

/// Deepest nesting this validator follows (a bit per open container); deeper is
/// [`JsonErrorKind::TooDeep`] whatever `max_depth` says.
pub const MAX_NESTING: usize = 256;

/// Validates `text` as one JSON value (whitespace around it allowed) nested at most
/// `max_depth` deep.
pub(crate) fn validate(text: &[u8], max_depth: u16) -> Result<(), JsonError> {
    if !text.is_ascii()
        && let Err(e) = core::str::from_utf8(text)
    {
        return Err(JsonError::new(JsonErrorKind::InvalidUtf8, e.valid_up_to()));
    }
    let limit = usize::from(max_depth).min(MAX_NESTING);
    // Bit `d` set: the container open at depth `d` is an object.
    let mut objects = [0u32; MAX_NESTING / 32];
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        // A value starts here.
        i = ws(text, i);
        match text.get(i) {
            Some(&b @ (b'{' | b'[')) => {
                i += 1;
                if depth >= limit {
                    return Err(fail(JsonErrorKind::TooDeep, i));
                }
                let object = b == b'{';
                let (word, bit) = (depth / 32, 1u32 << (depth % 32));
                objects[word] = if object {
                    objects[word] | bit
                } else {
                    objects[word] & !bit
                };
                depth += 1;
                i = ws(text, i);
                if text.get(i) != Some(if object { &b'}' } else { &b']' }) {
                    if object {
                        i = member_name(text, i)?;
                    }
                    continue;
                }
                // Empty: closed below.
                i += 1;
                depth -= 1;
            }
            Some(b'"') => i = string(text, i + 1)?,
            Some(b'-' | b'0'..=b'9') => i = number_end(text, i)?,
            Some(b't') if literal(text, i, b"true") => i += 4,
            Some(b'f') if literal(text, i, b"false") => i += 5,
            Some(b'n') if literal(text, i, b"null") => i += 4,
            Some(_) => return Err(fail(JsonErrorKind::Unexpected, i)),
            None => return Err(fail(JsonErrorKind::UnexpectedEnd, i)),
        }
        // A value ended: close containers until one goes on, or the text ends.
        loop {
            i = ws(text, i);
            if depth == 0 {
                return if i == text.len() {
                    Ok(())
                } else {
                    Err(fail(JsonErrorKind::TrailingData, i))
                };
            }
            let d = depth - 1;
            let object = objects[d / 32] >> (d % 32) & 1 != 0;
            match text.get(i) {
                Some(b',') => {
                    i += 1;
                    if object {
                        i = member_name(text, ws(text, i))?;
                    }
                    break;
                }
                Some(&c) if c == if object { b'}' } else { b']' } => {
                    i += 1;
                    depth -= 1;
                }
                Some(_) => return Err(fail(JsonErrorKind::Unexpected, i)),
                None => return Err(fail(JsonErrorKind::UnexpectedEnd, i)),
            }
        }
    }
}

/// Whether `lit` is at `i`.
fn literal(text: &[u8], i: usize, lit: &[u8]) -> bool {
    text.get(i..).is_some_and(|rest| rest.starts_with(lit))
}

/// The first position at or after `i` that is not whitespace.
fn ws(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = text.get(i) {
        i += 1;
    }
    i
}

/// A member name at `i` and the colon after it: the position after the colon.
fn member_name(text: &[u8], i: usize) -> Result<usize, JsonError> {
    match text.get(i) {
        Some(b'"') => {}
        Some(_) => return Err(fail(JsonErrorKind::Unexpected, i)),
        None => return Err(fail(JsonErrorKind::UnexpectedEnd, i)),
    }
    let i = ws(text, string(text, i + 1)?);
    match text.get(i) {
        Some(b':') => Ok(i + 1),
        Some(_) => Err(fail(JsonErrorKind::Unexpected, i)),
        None => Err(fail(JsonErrorKind::UnexpectedEnd, i)),
    }
}

/// The rest of a string whose opening quote is before `i`: the position after its closing
/// quote.
fn string(text: &[u8], mut i: usize) -> Result<usize, JsonError> {
    loop {
        match text.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i = escape(text, i + 1)?,
            Some(&c) if c < 0x20 => return Err(fail(JsonErrorKind::ControlCharacter, i)),
            Some(_) => i += 1,
            None => return Err(fail(JsonErrorKind::UnexpectedEnd, i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::validate_syntax;
    use super::*;

    /// xorshift64*: deterministic, no dependency.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn check(text: &[u8], depth: u16) {
        let ours = validate(text, depth).map_err(|e| e.kind);
        let scanner = validate_syntax(text, depth).map_err(|e| e.kind);
        assert_eq!(
            ours.is_ok(),
            scanner.is_ok(),
            "{:?} at depth {depth}: {ours:?} vs {scanner:?}",
            String::from_utf8_lossy(text)
        );
        if scanner == Err(JsonErrorKind::TooDeep) || scanner == Err(JsonErrorKind::InvalidUtf8) {
            assert_eq!(ours, scanner, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn accepts_what_the_scanner_accepts() {
        const PIECES: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"\"",
            b"\"a\"",
            b"\"\\",
            b"\\u",
            b"\\ud83d",
            b"\\ude00",
            b"\\n",
            b"\\x",
            b"0",
            b"1",
            b"-",
            b".",
            b"e",
            b"E",
            b"+",
            b"01",
            b"true",
            b"tru",
            b"false",
            b"null",
            b"nul",
            b" ",
            b"\n",
            b"\t",
            b"\x0c",
            b"\x01",
            b"\xc3\xa9",
            b"\xff",
            b"{\"k\":",
            b"[1,",
            b"]]",
            b"}}",
            b"\"x\":1",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300_000 {
            let mut text = Vec::new();
            for _ in 0..rng(&mut state) % 16 {
                text.extend_from_slice(PIECES[(rng(&mut state) % PIECES.len() as u64) as usize]);
            }
            let depth = (rng(&mut state) % 5) as u16;
            check(&text, depth);
        }
        for text in [
            &br#"{"a":[1,2.5e-3,{"b":null}],"c":"\u00e9\ud83d\ude00","d":true}"#[..],
            br#" [ ] "#,
            br#"{"a":1,"a":2}"#,
            br#"{"a" 1}"#,
            br#"{"a":1,}"#,
            br#"[1 2]"#,
            b"",
            b"   ",
            br#""\ud800""#,
            br#""\udc00x""#,
            b"-0.0e+1",
            b"-",
            b"1.",
            b"[]]",
        ] {
            for depth in 0..4 {
                check(text, depth);
            }
        }
        let deep: Vec<u8> = [b'['; 300].into_iter().chain([b']'; 300]).collect();
        for depth in [63, 64, 65, 255, 256] {
            check(&deep[300 - depth as usize..300 + depth as usize], depth);
            check(&deep[299 - depth as usize..301 + depth as usize], depth);
        }
        // Beyond the bit stack: refused whatever the limit.
        assert_eq!(
            validate(&deep, u16::MAX).map_err(|e| e.kind),
            Err(JsonErrorKind::TooDeep)
        );
    }
}
