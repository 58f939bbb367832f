//! COBS deframing is independent of how the stream is cut: any chunking, one byte at a time and
//! all at once give the same frames and errors. Frames never exceed the buffer, and
//! `encode_frame` then the deframer gives back every payload exactly, after any garbage.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolwire_core::EncodeError;
use toolwire_core::stream::{
    Deframed, Deframer, FrameError, encode_frame, encoded_len, max_encoded_len,
};

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u16,
    stream: Vec<u8>,
    chunks: Vec<u8>,
    payloads: Vec<Vec<u8>>,
}

#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    Error(FrameError),
}

/// Feeds `stream` in chunks of the given sizes (cycled; 0 pushes an empty slice once, then one
/// byte) and collects what comes out.
fn deframe(capacity: usize, stream: &[u8], chunks: &[usize]) -> Vec<Out> {
    let mut d = Deframer::new(vec![0u8; capacity]);
    assert_eq!(d.capacity(), capacity);
    let mut outs = Vec::new();
    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
        let size = chunks
            .get(k % chunks.len().max(1))
            .copied()
            .unwrap_or(rest.len());
        k += 1;
        if size == 0 {
            assert_eq!(d.push(&[]), (0, Deframed::NeedMore));
        }
        let (mut chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        while !chunk.is_empty() {
            let (used, out) = d.push(chunk);
            assert!(
                used > 0 && used <= chunk.len(),
                "push used {used} of {}",
                chunk.len()
            );
            chunk = &chunk[used..];
            match out {
                Deframed::NeedMore => assert!(chunk.is_empty(), "NeedMore with input left"),
                Deframed::Frame(f) => {
                    assert!(
                        !f.is_empty() && f.len() <= capacity,
                        "frame of {} bytes",
                        f.len()
                    );
                    outs.push(Out::Frame(f.to_vec()));
                }
                Deframed::Error(e) => {
                    if let FrameError::TooLarge { limit } = e {
                        assert_eq!(limit, capacity);
                    }
                    outs.push(Out::Error(e));
                }
            }
            assert!(d.buffered() <= capacity);
        }
    }
    outs
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 600) + 1;
    let chunks: Vec<usize> = input.chunks.iter().map(|&c| usize::from(c)).collect();

    let whole = deframe(capacity, &input.stream, &[]);
    let bytewise = deframe(capacity, &input.stream, &[1]);
    let chunked = deframe(capacity, &input.stream, &chunks);
    assert_eq!(whole, bytewise, "all at once vs one byte at a time");
    assert_eq!(whole, chunked, "all at once vs chunks {chunks:?}");

    // Encoded payloads after the garbage (and a delimiter that ends whatever it left open).
    let mut stream = input.stream.clone();
    stream.push(0);
    let mut expected = deframe(capacity, &stream, &[]);
    for p in &input.payloads {
        let exact = encoded_len(p);
        assert!(exact <= max_encoded_len(p.len()));
        let mut small = vec![0u8; exact - 1];
        assert_eq!(
            encode_frame(p, &mut small),
            Err(EncodeError::BufferTooSmall { needed: exact })
        );
        let mut out = vec![0u8; exact];
        assert_eq!(encode_frame(p, &mut out), Ok(exact));
        assert_eq!(
            out.iter().position(|&b| b == 0),
            Some(exact - 1),
            "0x00 inside a frame"
        );
        let mut roomy = vec![0xAAu8; max_encoded_len(p.len()) + 3];
        assert_eq!(encode_frame(p, &mut roomy), Ok(exact));
        assert_eq!(roomy[..exact], out[..]);
        stream.extend_from_slice(&out);
        if p.len() > capacity {
            expected.push(Out::Error(FrameError::TooLarge { limit: capacity }));
        } else if !p.is_empty() {
            // Empty frames are dropped like stray delimiters.
            expected.push(Out::Frame(p.clone()));
        }
    }
    assert_eq!(
        deframe(capacity, &stream, &chunks),
        expected,
        "encoded payloads"
    );
    assert_eq!(
        deframe(capacity, &stream, &[1]),
        expected,
        "encoded payloads, bytewise"
    );
});
