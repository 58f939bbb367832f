//! `stream::decode_in_place` against `Deframer`: the same frames and the same drops for any bytes,
//! so a runtime may split a stream at each `0x00` itself and decode in place.

use proptest::prelude::*;
use toolwire_core::stream::{
    Deframed, Deframer, FrameError, decode_in_place, encode_frame, max_encoded_len,
};

/// What the deframer makes of `stream` (a frame, or a drop, per delimiter).
fn by_deframer(stream: &[u8], cap: usize) -> Vec<Result<Vec<u8>, ()>> {
    let mut d = Deframer::new(vec![0u8; cap]);
    let mut out = vec![];
    let mut input = stream;
    while !input.is_empty() {
        let (used, r) = d.push(input);
        match r {
            Deframed::Frame(f) => out.push(Ok(f.to_vec())),
            Deframed::Error(_) => out.push(Err(())),
            Deframed::NeedMore => {}
        }
        input = &input[used..];
    }
    out
}

/// The same, splitting at each `0x00` and decoding in place (the bytes after the last delimiter
/// are a partial frame: nothing yet).
fn by_splitting(stream: &[u8], cap: usize) -> Vec<Result<Vec<u8>, ()>> {
    let mut out = vec![];
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == 0).collect();
    parts.pop();
    for part in parts {
        let mut buf = part.to_vec();
        match decode_in_place(&mut buf) {
            Ok(0) => {}
            Ok(n) if n > cap => out.push(Err(())),
            Ok(n) => out.push(Ok(buf[..n].to_vec())),
            Err(FrameError::Malformed) => out.push(Err(())),
            Err(e) => panic!("{e:?}"),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_verdicts_as_the_deframer_on_any_bytes(
        stream in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..600),
        cap in 1usize..300,
    ) {
        // Ended by a delimiter: the deframer reports an oversized frame as its bytes arrive,
        // a splitter at its delimiter; with every frame complete the two must agree.
        let mut stream = stream;
        stream.push(0);
        prop_assert_eq!(by_splitting(&stream, cap), by_deframer(&stream, cap));
    }

    #[test]
    fn encoded_frames_decode_back(
        payloads in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 1..700), 1..5),
    ) {
        let mut stream = vec![];
        for p in &payloads {
            let mut enc = vec![0u8; max_encoded_len(p.len())];
            let n = encode_frame(p, &mut enc).unwrap();
            stream.extend_from_slice(&enc[..n]);
        }
        let want: Vec<Result<Vec<u8>, ()>> = payloads.iter().cloned().map(Ok).collect();
        prop_assert_eq!(by_splitting(&stream, 1024), want);
    }
}
