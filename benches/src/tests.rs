//! Every peer reads the same values out of the same bytes as toolwire-core (and its encoders
//! write the same bytes), so the benchmarks compare the same work.

use toolwire_core::codec::{self, Message};
use toolwire_core::frame::{Execute, Request};
use toolwire_core::stream::{self, Deframed, Deframer};
use toolwire_core::{Encoding, Id, Json, Limits};

use crate::fixtures::{self, FrameKind};
use crate::peers::{json, pc};

fn ours(bytes: &[u8], encoding: Encoding) -> Message<'_> {
    codec::decode(bytes, encoding, &Limits::default()).expect("fixture frames decode")
}

fn our_execute(bytes: &[u8], encoding: Encoding) -> Execute<'_> {
    match ours(bytes, encoding) {
        Message::Request {
            request: Request::Execute(e),
            ..
        } => e,
        m => panic!("not an execute: {m:?}"),
    }
}

#[test]
fn fixtures_are_what_their_names_say() {
    assert_eq!(fixtures::SMALL_ARGUMENTS.len(), 20);
    assert_eq!(
        fixtures::large_arguments().len(),
        fixtures::LARGE_ARGUMENTS_LEN
    );
    assert!(fixtures::large_arguments().contains("\\n"));
    assert!(fixtures::large_arguments().contains("\\\""));
    Json::parse(fixtures::large_arguments().as_bytes()).unwrap();
    Json::parse(fixtures::RESULT.as_bytes()).unwrap();
    assert_eq!(fixtures::TOOLS.len(), 10);
    for t in &fixtures::TOOLS {
        Json::parse(t.input_schema.as_bytes()).unwrap();
        if let Some(s) = t.output_schema {
            Json::parse(s.as_bytes()).unwrap();
        }
        assert!(toolwire_core::frame::valid_tool_name(&t.name));
    }
}

#[test]
fn our_frames_decode_to_the_fixture_values() {
    for enc in [Encoding::Json, Encoding::Postcard] {
        assert_eq!(
            our_execute(&FrameKind::ExecuteSmall.frame(enc), enc),
            fixtures::execute_small()
        );
        assert_eq!(
            our_execute(&FrameKind::Execute4k.frame(enc), enc),
            fixtures::execute_4k()
        );
        let frame = FrameKind::Register.frame(enc);
        match ours(&frame, enc) {
            Message::Request {
                id,
                request: Request::Register(r),
            } => {
                assert_eq!(id, Id::Num(FrameKind::Register.id()));
                assert!(r.tools.iter().eq(fixtures::TOOLS.iter().copied()));
            }
            m => panic!("not a register: {m:?}"),
        }
        let frame = FrameKind::Result.frame(enc);
        match ours(&frame, enc) {
            Message::Response { id, result: Ok(p) } => {
                assert_eq!(id, Id::Num(FrameKind::Result.id()));
                let v: Json<'_> = p.decode(&Limits::default()).unwrap();
                assert_eq!(v, fixtures::result_value());
            }
            m => panic!("not a result: {m:?}"),
        }
    }
}

#[test]
fn serde_json_reads_and_writes_the_same_json() {
    for kind in [FrameKind::ExecuteSmall, FrameKind::Execute4k] {
        let frame = kind.frame(Encoding::Json);
        let theirs: json::ExecuteRequest<'_> = serde_json::from_slice(&frame).unwrap();
        let ours = our_execute(&frame, Encoding::Json);
        assert_eq!(theirs.jsonrpc, "2.0");
        assert_eq!(theirs.method, "execute");
        assert_eq!(theirs.id, kind.id());
        assert_eq!(theirs.params.tool, ours.tool.raw());
        assert_eq!(theirs.params.arguments.get(), ours.arguments.as_str());
        assert_eq!(theirs.params.deadline_ms, ours.deadline_ms);
        assert_eq!(
            serde_json::to_vec(&json::execute_request(kind)).unwrap(),
            frame
        );
    }

    let frame = FrameKind::Register.frame(Encoding::Json);
    let theirs: json::RegisterRequest<'_> = serde_json::from_slice(&frame).unwrap();
    assert_eq!(theirs.params.tools.len(), fixtures::TOOLS.len());
    for (t, f) in theirs.params.tools.iter().zip(&fixtures::TOOLS) {
        assert_eq!(t.name, f.name.raw());
        assert_eq!(t.description, f.description.raw());
        assert_eq!(t.input_schema.get(), f.input_schema.as_str());
        assert_eq!(
            t.output_schema.map(|s| s.get()),
            f.output_schema.map(|s| s.as_str())
        );
        assert_eq!(t.annotations.read_only, f.annotations.read_only);
        assert_eq!(t.annotations.destructive, f.annotations.destructive);
        assert_eq!(t.annotations.idempotent, f.annotations.idempotent);
    }
    assert_eq!(
        serde_json::to_vec(&json::register_request()).unwrap(),
        frame
    );

    let frame = FrameKind::Result.frame(Encoding::Json);
    let theirs: json::Response<'_> = serde_json::from_slice(&frame).unwrap();
    assert_eq!(theirs.id, FrameKind::Result.id());
    assert_eq!(theirs.result.get(), fixtures::RESULT);
    assert_eq!(serde_json::to_vec(&json::response()).unwrap(), frame);
}

#[test]
fn jsonrpsee_reads_the_same_json() {
    for kind in [FrameKind::ExecuteSmall, FrameKind::Execute4k] {
        let frame = kind.frame(Encoding::Json);
        let req: jsonrpsee_types::Request<'_> = serde_json::from_slice(&frame).unwrap();
        assert_eq!(req.id, jsonrpsee_types::Id::Number(kind.id()));
        assert_eq!(req.method_name(), "execute");
        // jsonrpsee keeps the params as an owned copy: `Cow<RawValue>` has no borrowing
        // deserializer.
        assert!(matches!(req.params, Some(std::borrow::Cow::Owned(_))));
        let params = req.params();
        let p: json::ExecuteParams<'_> = params.parse().unwrap();
        let ours = our_execute(&frame, Encoding::Json);
        assert_eq!(p.tool, ours.tool.raw());
        assert_eq!(p.arguments.get(), ours.arguments.as_str());
        assert_eq!(p.deadline_ms, ours.deadline_ms);
    }
}

#[test]
fn derived_postcard_layout_matches_ours() {
    let mut buf = vec![0u8; 64 * 1024];
    for kind in [FrameKind::ExecuteSmall, FrameKind::Execute4k] {
        let frame = kind.frame(Encoding::Postcard);
        let theirs = postcard::to_slice(&pc::execute_frame(kind), &mut buf).unwrap();
        assert_eq!(theirs, &frame[..]);
        let back: pc::RequestFrame<'_> = postcard::from_bytes(&frame).unwrap();
        let pc::Request::Execute(e) = back.request else {
            panic!("not an execute")
        };
        assert_eq!(back.id, pc::Id::Num(kind.id()));
        assert_eq!(
            e.arguments,
            our_execute(&frame, Encoding::Postcard).arguments.as_str()
        );
    }

    let frame = FrameKind::Result.frame(Encoding::Postcard);
    let theirs = postcard::to_slice(&pc::result_frame(), &mut buf).unwrap();
    assert_eq!(theirs, &frame[..]);

    // register: a `Vec` is prefixed with its element count, ours with its byte length.
    let ours_len = FrameKind::Register.frame(Encoding::Postcard).len();
    let theirs = postcard::to_slice(&pc::register_frame(), &mut buf).unwrap();
    assert!(
        theirs.len().abs_diff(ours_len) <= 2,
        "{} vs {ours_len}",
        theirs.len()
    );
    let back: pc::RequestFrame<'_> = postcard::from_bytes(theirs).unwrap();
    let pc::Request::Register(tools) = back.request else {
        panic!("not a register")
    };
    assert_eq!(tools.len(), 10);
    assert_eq!(
        tools[9].input_schema,
        fixtures::TOOLS[9].input_schema.as_str()
    );
}

#[test]
fn cobs_crate_and_ours_agree_on_the_stream() {
    let payloads = fixtures::stream_payloads();
    assert_eq!(payloads.len(), 64);
    let mut wire = Vec::new();
    let mut frame = vec![0u8; 64 * 1024];
    for p in &payloads {
        let n = stream::encode_frame(p, &mut frame).unwrap();
        let m = cobs::encode(p, &mut frame[n..]);
        // The cobs crate leaves the delimiter to the caller. (The encoders would differ by one
        // byte for a frame ending in a full 254-byte block, where ours adds an empty `01` block;
        // both are valid COBS and no fixture frame ends that way.)
        assert_eq!(&frame[..n - 1], &frame[n..n + m]);
        wire.extend_from_slice(&frame[..n]);
    }

    let mut d = Deframer::new(vec![0u8; 64 * 1024]);
    let mut input = &wire[..];
    let mut got = Vec::new();
    while !input.is_empty() {
        let (used, out) = d.push(input);
        input = &input[used..];
        match out {
            Deframed::Frame(f) => got.push(f.to_vec()),
            Deframed::NeedMore => {}
            Deframed::Error(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, payloads);

    let mut input = &wire[..];
    let mut got = Vec::new();
    while !input.is_empty() {
        let mut dec = cobs::CobsDecoder::new(&mut frame);
        let (n, used) = dec.push(input).unwrap().expect("a whole frame");
        input = &input[used..];
        got.push(frame[..n].to_vec());
    }
    assert_eq!(got, payloads);
}
