//! The scanner's string paths (a word at a time, escapes judged a word at a time) against a
//! byte-at-a-time reference of RFC 8259 strings: the same verdict, error kind and offset on
//! random strings rich in the bytes those paths treat specially.

use toolwire_core::json::{self, JsonErrorKind};

/// The byte-at-a-time reference: `buf[i..]` is the rest of a string after its opening quote;
/// the position after its closing quote, or the error.
fn reference(buf: &[u8], mut i: usize) -> Result<usize, (JsonErrorKind, usize)> {
    use JsonErrorKind::*;
    let hex4 = |at: usize| -> Result<u32, (JsonErrorKind, usize)> {
        let mut v = 0;
        for k in 0..4 {
            let c = *buf.get(at + k).ok_or((UnexpectedEnd, at + k))?;
            let d = (c as char).to_digit(16).ok_or((BadEscape, at + k))?;
            v = v << 4 | d;
        }
        Ok(v)
    };
    loop {
        match buf.get(i) {
            None => return Err((UnexpectedEnd, i)),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match buf.get(i + 1) {
                None => return Err((UnexpectedEnd, i + 1)),
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => match hex4(i + 2)? {
                    0xD800..=0xDBFF => {
                        if buf.get(i + 6) == Some(&b'\\') && buf.get(i + 7) == Some(&b'u') {
                            let lo = hex4(i + 8)?;
                            if (0xDC00..=0xDFFF).contains(&lo) {
                                i += 12;
                                continue;
                            }
                        }
                        return Err((LoneSurrogate, i));
                    }
                    0xDC00..=0xDFFF => return Err((LoneSurrogate, i)),
                    _ => i += 6,
                },
                Some(_) => return Err((BadEscape, i)),
            },
            Some(&c) if c < 0x20 => return Err((ControlCharacter, i)),
            Some(_) => i += 1,
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces a string is made of: the bytes the word-at-a-time paths look for, their neighbours
/// (`"` ^ 1, `\` ^ 1, `n` ^ 1: where the byte tests can flag a byte wrongly), escapes of every
/// kind, control characters and non-ASCII text.
const PIECES: &[&str] = &[
    "a",
    "b",
    " ",
    "n",
    "o",
    "#",
    "]",
    "\"",
    "\\",
    "\\n",
    "\\\"",
    "\\\\",
    "\\t",
    "\\r",
    "\\/",
    "\\b",
    "\\f",
    "\\u0041",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\ud83d",
    "\\ude00",
    "\\x",
    "\\u12",
    "\\uZZZZ",
    "\u{1}",
    "\u{1f}",
    "\t",
    "é",
    "😀",
    "abcdefgh",
    "line of text, ",
    "\\n\\n",
    "\\\\n",
    "]\"",
    "\\]",
    "\\é",
];

#[test]
fn strings_agree_with_a_byte_at_a_time_scan() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300_000 {
        let mut s = String::from("\"");
        for _ in 0..rng.below(24) {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
        // Mostly closed; sometimes cut short, sometimes with a value after it.
        match rng.below(8) {
            0 => {}
            1 => s.push_str("\"x"),
            _ => s.push('"'),
        }
        let buf = s.as_bytes();
        let want = match reference(buf, 1) {
            Ok(end) if end == buf.len() => Ok(()),
            Ok(end) => {
                let rest = buf[end..]
                    .iter()
                    .take_while(|b| b" \t\r\n".contains(b))
                    .count();
                if end + rest == buf.len() {
                    Ok(())
                } else {
                    Err((JsonErrorKind::TrailingData, end + rest))
                }
            }
            Err(e) => Err(e),
        };
        let got = json::validate(buf, 32).map_err(|e| (e.kind, e.offset));
        assert_eq!(got, want, "on {s:?}");
        // The same string as a member name and as a value inside an object.
        if want.is_ok() {
            let obj = format!("{{{s}:{s}}}");
            assert_eq!(json::validate(obj.as_bytes(), 32), Ok(()), "on {obj:?}");
        }
    }
}
