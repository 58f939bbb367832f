//! postcard's readers, written out for what every call carries: the request id, the variant
//! index and the `execute` params. serde's derived readers go through a visitor per field; these
//! read the same bytes in a few instructions.
//!
//! Each accepts exactly what postcard 1.x (`postcard::take_from_bytes`) accepts for the same
//! type and fails where it fails: varints of at most `ceil(bits / 7)` bytes whose last byte
//! holds no bits beyond the type (overlong forms are accepted, as postcard does), lengths as
//! `usize` varints, strings checked as UTF-8, an `Option` tag of 0 or 1.

use crate::frame::Execute;
use crate::wire::{Id, Json, Str};

/// A varint of at most `max` bytes whose last byte is at most `last` (postcard's
/// `try_take_varint_*`), from `*at`.
#[inline(always)]
fn varint(b: &[u8], at: &mut usize, max: usize, last: u8) -> Option<u64> {
    // Most varints here (lengths, variants, small ids) are one byte.
    match b.get(*at) {
        Some(&v) if v < 0x80 => {
            *at += 1;
            Some(u64::from(v))
        }
        _ => varint_long(b, at, max, last),
    }
}

#[inline(never)]
fn varint_long(b: &[u8], at: &mut usize, max: usize, last: u8) -> Option<u64> {
    let mut out = 0u64;
    for i in 0..max {
        let v = *b.get(*at)?;
        *at += 1;
        out |= u64::from(v & 0x7F) << (7 * i);
        if v & 0x80 == 0 {
            return (i + 1 < max || v <= last).then_some(out);
        }
    }
    None
}

/// A `u32` varint.
#[inline(always)]
pub(super) fn u32(b: &[u8], at: &mut usize) -> Option<u32> {
    // 5 bytes; the last holds 4 bits.
    varint(b, at, 5, 0x0F).map(|v| v as u32)
}

/// A `u64` varint.
#[inline(always)]
fn u64(b: &[u8], at: &mut usize) -> Option<u64> {
    // 10 bytes; the last holds 1 bit.
    varint(b, at, 10, 0x01)
}

/// A length: a `usize` varint (its width is the target's, as in postcard).
#[inline(always)]
fn len(b: &[u8], at: &mut usize) -> Option<usize> {
    const BITS: usize = usize::BITS as usize;
    let v = varint(b, at, BITS.div_ceil(7), (1u8 << (BITS % 7)) - 1)?;
    usize::try_from(v).ok()
}

/// A byte string: its length, then its bytes.
#[inline(always)]
fn bytes<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = len(b, at)?;
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

/// A string: a byte string that is UTF-8.
#[inline(always)]
fn str<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a str> {
    core::str::from_utf8(bytes(b, at)?).ok()
}

/// An [`Id`] (variant 0: a `u64`, 1: a string, 2: null) from the start of `b`, and the bytes
/// after it.
#[inline]
pub(super) fn id(b: &[u8]) -> Option<(Id<'_>, &[u8])> {
    let mut at = 0;
    let id = match u32(b, &mut at)? {
        0 => Id::Num(u64(b, &mut at)?),
        1 => Id::Str(Str::new(str(b, &mut at)?)),
        2 => Id::Null,
        _ => return None,
    };
    Some((id, b.get(at..)?))
}

/// The params of an `execute` (tool, arguments, deadline), the whole of `b`. The arguments
/// are not validated here: the frame decoder checks every JSON value it returns.
/// (Inlined on 64-bit targets; a device keeps one copy.)
#[cfg_attr(target_pointer_width = "64", inline)]
#[cfg_attr(not(target_pointer_width = "64"), inline(never))]
pub(super) fn execute(b: &[u8]) -> Option<Execute<'_>> {
    let mut at = 0;
    let tool = Str::new(str(b, &mut at)?);
    let arguments = Json::from_postcard(bytes(b, &mut at)?);
    let deadline_ms = match *b.get(at)? {
        0 => {
            at += 1;
            None
        }
        1 => {
            at += 1;
            Some(u32(b, &mut at)?)
        }
        _ => return None,
    };
    (at == b.len()).then_some(Execute {
        tool,
        arguments,
        deadline_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, no dependency.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Bytes near the encodings these readers see: varint bytes with and without continuation,
    /// small lengths, option tags, UTF-8 and not.
    fn random_bytes(state: &mut u64) -> Vec<u8> {
        const BYTES: &[u8] = &[
            0x00, 0x01, 0x02, 0x03, 0x04, 0x0F, 0x10, 0x7F, 0x80, 0x81, 0xFF, 0xC3, 0xA9, b'a',
            b'{', b'}',
        ];
        let n = (rng(state) % 24) as usize;
        (0..n)
            .map(|_| BYTES[(rng(state) % BYTES.len() as u64) as usize])
            .collect()
    }

    fn postcard_exact<'a, T: serde::Deserialize<'a>>(b: &'a [u8]) -> Option<T> {
        match postcard::take_from_bytes(b) {
            Ok((v, [])) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn readers_agree_with_postcard() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            let b = random_bytes(&mut state);
            assert_eq!(
                execute(&b),
                postcard_exact::<Execute<'_>>(&b),
                "execute {b:x?}"
            );
            assert_eq!(
                id(&b),
                postcard::take_from_bytes::<Id<'_>>(&b).ok(),
                "id {b:x?}"
            );
            let mut at = 0;
            let ours = u32(&b, &mut at).map(|v| (v, &b[at..]));
            assert_eq!(
                ours,
                postcard::take_from_bytes::<u32>(&b).ok(),
                "u32 {b:x?}"
            );
        }
    }

    #[test]
    fn execute_is_the_variant_serde_writes() {
        let e = Execute {
            tool: Str::new("t"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: Some(5),
        };
        let mut buf = [0u8; 32];
        let n = postcard::to_slice(&crate::frame::Request::Execute(e), &mut buf)
            .unwrap()
            .len();
        let mut at = 0;
        assert_eq!(u32(&buf[..n], &mut at), Some(super::super::EXECUTE));
        assert_eq!(execute(&buf[at..n]), Some(e));
    }

    #[test]
    fn varints_at_their_bounds() {
        for b in [
            &[0x80, 0x80, 0x80, 0x80, 0x0F][..],
            &[0x80, 0x80, 0x80, 0x80, 0x10],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
            &[0x80, 0x00],
            &[0x80],
        ] {
            let mut at = 0;
            let ours = u32(b, &mut at).map(|v| (v, &b[at..]));
            assert_eq!(ours, postcard::take_from_bytes::<u32>(b).ok(), "u32 {b:x?}");
        }
        for b in [
            &[
                0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
            ][..],
            &[
                0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02,
            ],
            &[
                0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ],
        ] {
            assert_eq!(
                id(b),
                postcard::take_from_bytes::<Id<'_>>(b).ok(),
                "id {b:x?}"
            );
        }
    }
}
