//! postcard's readers, written out for what every call carries: the request id, the variant
//! index and the `execute` params; and the leaves `Wire::read_postcard` reads every frame type
//! from (integers, strings, bytes, ids). serde's derived readers go through a visitor per field;
//! these read the same bytes in a few instructions, and a node's firmware links no serde
//! deserializer at all.
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
pub(crate) fn u32(b: &[u8], at: &mut usize) -> Option<u32> {
    // 5 bytes; the last holds 4 bits.
    varint(b, at, 5, 0x0F).map(|v| v as u32)
}

/// A `u64` varint.
#[inline(always)]
pub(crate) fn u64(b: &[u8], at: &mut usize) -> Option<u64> {
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
pub(crate) fn bytes<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = len(b, at)?;
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

/// A string: a byte string that is UTF-8.
#[inline(always)]
pub(crate) fn str<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a str> {
    core::str::from_utf8(bytes(b, at)?).ok()
}

/// An [`Id`] (variant 0: a `u64`, 1: a string, 2: null) from the start of `b`, and the bytes
/// after it.
#[inline]
pub(super) fn id(b: &[u8]) -> Option<(Id<'_>, &[u8])> {
    let mut at = 0;
    let id = id_at(b, &mut at)?;
    Some((id, b.get(at..)?))
}

/// An [`Id`] at `*at`.
#[inline]
pub(crate) fn id_at<'a>(b: &'a [u8], at: &mut usize) -> Option<Id<'a>> {
    Some(match u32(b, at)? {
        0 => Id::Num(u64(b, at)?),
        1 => Id::Str(Str::new(str(b, at)?)),
        2 => Id::Null,
        _ => return None,
    })
}

/// An unsigned integer as postcard writes it: `u8` as one byte, wider ones as varints.
pub(crate) trait Uint: Sized {
    fn read(b: &[u8], at: &mut usize) -> Option<Self>;
}

impl Uint for u8 {
    fn read(b: &[u8], at: &mut usize) -> Option<Self> {
        let v = *b.get(*at)?;
        *at += 1;
        Some(v)
    }
}

impl Uint for u16 {
    fn read(b: &[u8], at: &mut usize) -> Option<Self> {
        // 3 bytes; the last holds 2 bits.
        varint(b, at, 3, 0x03).map(|v| v as u16)
    }
}

impl Uint for u32 {
    fn read(b: &[u8], at: &mut usize) -> Option<Self> {
        u32(b, at)
    }
}

impl Uint for u64 {
    fn read(b: &[u8], at: &mut usize) -> Option<Self> {
        u64(b, at)
    }
}

/// A [`Uint`] at `*at`.
#[inline(always)]
pub(crate) fn uint<T: Uint>(b: &[u8], at: &mut usize) -> Option<T> {
    T::read(b, at)
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

#[cfg(all(test, feature = "postcard"))]
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

    /// `Wire::read_postcard` of `T` against serde's reader: the same value and the same rest,
    /// or both failing.
    fn agree<'a, T>(b: &'a [u8])
    where
        T: crate::wire::Wire<'a> + PartialEq + core::fmt::Debug,
    {
        let mut at = 0;
        let ours = T::read_postcard(b, &mut at).map(|v| (v, &b[at..]));
        let serde = postcard::take_from_bytes::<T>(b).ok();
        assert_eq!(ours, serde, "{} from {b:x?}", core::any::type_name::<T>());
    }

    /// Every frame type a node reads, and the others, from valid encodings mutated (a byte
    /// changed, cut short, a byte added) and from random bytes.
    #[test]
    fn wire_readers_agree_with_serde() {
        use crate::frame::*;
        use crate::wire::List;
        let rejections = [Rejection {
            name: Str::new("t"),
            reason: RejectReason::BadSchema,
        }];
        let names = [Str::new("a"), Str::new("\u{e9}")];
        let tools = [ToolDef {
            name: Str::new("t"),
            description: Str::new("d"),
            input_schema: Json::EMPTY_OBJECT,
            output_schema: Some(Json::EMPTY_OBJECT),
            annotations: Annotations::NONE,
        }];
        let mut samples: Vec<Vec<u8>> = Vec::new();
        let mut put = |v: &dyn erased::Put| samples.push(v.bytes());
        put(&Welcome {
            version: 1,
            encoding: Encoding::Postcard,
            max_frame: 70_000,
            max_in_flight: 300,
            heartbeat_ms: 15_000,
            gateway: Str::new("gw"),
        });
        put(&RegisterAck {
            accepted: List::from_slice(&names),
            rejected: List::from_slice(&rejections),
        });
        put(&Cancel {
            id: Id::Num(1 << 40),
            reason: Some(Str::new("why")),
        });
        put(&Cancel {
            id: Id::Str(Str::new("x")),
            reason: None,
        });
        put(&Goodbye {
            reason: GoodbyeReason::Replaced,
            message: Some(Str::new("m")),
        });
        put(&ErrorObject {
            code: -32_602,
            message: Str::new("bad"),
            data: Some(Json::EMPTY_OBJECT),
        });
        put(&ErrorObject {
            code: 7,
            message: Str::new(""),
            data: None,
        });
        put(&Register {
            tools: List::from_slice(&tools),
        });
        let mut state = 0x2545_F491_4F6C_DD1D;
        for _ in 0..40_000 {
            let mut b = samples[(rng(&mut state) % samples.len() as u64) as usize].clone();
            match rng(&mut state) % 4 {
                0 if !b.is_empty() => {
                    let i = (rng(&mut state) % b.len() as u64) as usize;
                    b[i] = random_bytes(&mut state).first().copied().unwrap_or(0x80);
                }
                1 => b.truncate((rng(&mut state) % (b.len() as u64 + 1)) as usize),
                2 => b.push(rng(&mut state) as u8),
                _ => b = random_bytes(&mut state),
            }
            agree::<Welcome<'_>>(&b);
            agree::<RegisterAck<'_>>(&b);
            agree::<Cancel<'_>>(&b);
            agree::<Goodbye<'_>>(&b);
            agree::<ErrorObject<'_>>(&b);
            agree::<Register<'_>>(&b);
            agree::<Encodings>(&b);
            agree::<Option<u16>>(&b);
            agree::<u8>(&b);
            agree::<i32>(&b);
            agree::<bool>(&b);
        }
    }

    /// `Wire::write_postcard` of `v` against serde's writer, byte for byte.
    fn writes_as_serde<'a, T: crate::wire::Wire<'a> + core::fmt::Debug>(v: &T) {
        let mut ours = [0u8; 512];
        let mut out = crate::codec::Counted::new(&mut ours);
        v.write_postcard(&mut out);
        let n = out.counted();
        let mut theirs = [0u8; 512];
        let want = postcard::to_slice(v, &mut theirs).unwrap();
        assert_eq!(&ours[..n], &want[..], "{v:?}");
        // Counting past the end: the exact length, whatever the buffer.
        let mut short = [0u8; 3];
        let mut out = crate::codec::Counted::new(&mut short);
        v.write_postcard(&mut out);
        assert_eq!(out.counted(), n, "{v:?}");
    }

    #[test]
    fn wire_writers_agree_with_serde() {
        use crate::frame::*;
        use crate::wire::List;
        let escaped = Str::json_escaped("a\\n\\u00e9\\\"");
        let tools = [
            ToolDef {
                name: Str::new("t"),
                description: escaped,
                input_schema: Json::EMPTY_OBJECT,
                output_schema: Some(Json::EMPTY_OBJECT),
                annotations: Annotations {
                    read_only: true,
                    destructive: false,
                    idempotent: true,
                },
            },
            ToolDef {
                name: Str::new("u"),
                description: Str::new(""),
                input_schema: Json::EMPTY_OBJECT,
                output_schema: None,
                annotations: Annotations::NONE,
            },
        ];
        let names = [Str::new("a"), escaped];
        let rejections = [Rejection {
            name: Str::new("t"),
            reason: RejectReason::TooMany,
        }];
        writes_as_serde(&Hello {
            min_version: 1,
            max_version: 300,
            role: Role::Node,
            id: Str::new("dev-1"),
            token: Some(escaped),
            encodings: Encodings::BOTH,
            max_frame: 1 << 20,
            max_in_flight: 2,
        });
        writes_as_serde(&Register {
            tools: List::from_slice(&tools),
        });
        writes_as_serde(&RegisterAck {
            accepted: List::from_slice(&names),
            rejected: List::from_slice(&rejections),
        });
        for id in [Id::Num(0), Id::Num(u64::MAX), Id::Str(escaped), Id::Null] {
            writes_as_serde(&id);
            writes_as_serde(&Progress {
                id,
                progress: 300,
                total: Some(1 << 35),
                message: Some(escaped),
                partial: Some(Json::EMPTY_OBJECT),
            });
        }
        for code in [0, 1, -1, -32_602, i32::MAX, i32::MIN] {
            writes_as_serde(&ErrorObject {
                code,
                message: escaped,
                data: Some(Json::EMPTY_OBJECT),
            });
        }
        writes_as_serde(&Ask {
            call: Id::Num(7),
            kind: AskKind::Input,
            prompt: Str::new("p"),
            schema: None,
        });
        writes_as_serde(&Goodbye {
            reason: GoodbyeReason::IdleTimeout,
            message: None,
        });
        writes_as_serde(&Execute {
            tool: Str::new("t"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: Some(70_000),
        });
        for v in [0u8, 1, 127, 128, 255] {
            writes_as_serde(&v);
        }
        for v in [0u16, 127, 128, 16_383, 16_384, u16::MAX] {
            writes_as_serde(&v);
        }
        writes_as_serde(&());
        writes_as_serde(&Some(true));
        // A list as it came off the wire is written as it came.
        let mut buf = [0u8; 128];
        let n = postcard::to_slice(
            &RegisterAck {
                accepted: List::from_slice(&names),
                rejected: List::from_slice(&rejections),
            },
            &mut buf,
        )
        .unwrap()
        .len();
        let mut at = 0;
        let read = <RegisterAck<'_> as crate::wire::Wire>::read_postcard(&buf[..n], &mut at);
        writes_as_serde(&read.unwrap());
    }

    /// Serializes any frame type for [`wire_readers_agree_with_serde`].
    mod erased {
        pub trait Put {
            fn bytes(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize> Put for T {
            fn bytes(&self) -> Vec<u8> {
                let mut buf = [0u8; 256];
                postcard::to_slice(self, &mut buf).unwrap().to_vec()
            }
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
