//! Property tests: every frame survives encode → decode in both encodings, and the stream
//! deframer yields the same frames for every chunking of the same bytes.

use proptest::prelude::*;
use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::stream::{Deframed, Deframer, FrameError, encode_frame};
use toolwire_core::wire::Wire;
use toolwire_core::{Encoding, Id, Json, List, Str};

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.-]{1,12}",
        any::<String>(),
        "[\"\\\\/\u{0}-\u{1f}a\u{e9}\u{1F600}]{0,8}",
    ]
}

fn arb_json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        (-1e6f64..1e6).prop_map(|f| serde_json::json!(f)),
        arb_text().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(arb_text(), inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_json() -> impl Strategy<Value = String> {
    arb_json_value().prop_map(|v| v.to_string())
}

fn arb_object() -> impl Strategy<Value = String> {
    prop::collection::btree_map(arb_text(), arb_json_value(), 0..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string())
}

/// Owned material a frame is built from.
#[derive(Debug, Clone)]
struct Raw {
    kind: u8,
    id_num: u64,
    id_str: Option<String>,
    s: [String; 3],
    obj: String,
    json: String,
    n: u64,
    m: u32,
    flags: [bool; 4],
    tools: Vec<(String, String, String, Option<String>)>,
}

fn arb_raw() -> impl Strategy<Value = Raw> {
    (
        0u8..20,
        any::<u64>(),
        prop::option::of(arb_text()),
        [arb_text(), arb_text(), arb_text()],
        arb_object(),
        arb_json(),
        any::<u64>(),
        any::<u32>(),
        any::<[bool; 4]>(),
        prop::collection::vec(
            (
                arb_text(),
                arb_text(),
                arb_object(),
                prop::option::of(arb_object()),
            ),
            0..4,
        ),
    )
        .prop_map(
            |(kind, id_num, id_str, s, obj, json, n, m, flags, tools)| Raw {
                kind,
                id_num,
                id_str,
                s,
                obj,
                json,
                n,
                m,
                flags,
                tools,
            },
        )
}

fn opt<'a>(flag: bool, s: &'a str) -> Option<Str<'a>> {
    flag.then(|| Str::new(s))
}

/// The typed encoders, which a node links instead of the generic ones.
fn typed(enc: Encoding, m: &Message<'_>, out: &mut [u8]) -> Option<usize> {
    use codec::{encode_notification_params as note, encode_request_params as req};
    Some(
        match m {
            Message::Request { id, request } => match request {
                Request::Hello(p) => req(enc, *id, p, out),
                Request::Register(p) => req(enc, *id, p, out),
                Request::Unregister(p) => req(enc, *id, p, out),
                Request::Execute(p) => req(enc, *id, p, out),
                Request::Ask(p) => req(enc, *id, p, out),
                Request::Ping => return None,
                Request::ListNodes(p) => req(enc, *id, p, out),
                Request::ListTools(p) => req(enc, *id, p, out),
                Request::Resolve(p) => req(enc, *id, p, out),
                Request::Call(p) => req(enc, *id, p, out),
                Request::Scope(p) => req(enc, *id, p, out),
                Request::SetRules(p) => req(enc, *id, p, out),
                Request::ListRules(p) => req(enc, *id, p, out),
                Request::CallWith(p) => req(enc, *id, p, out),
                Request::ReadResult(p) => req(enc, *id, p, out),
            },
            Message::Notification(n) => match n {
                Notification::Cancel(p) => note(enc, p, out),
                Notification::Progress(p) => note(enc, p, out),
                Notification::Goodbye(p) => note(enc, p, out),
                Notification::ToolsChanged(p) => note(enc, p, out),
                Notification::Log(p) => note(enc, p, out),
            },
            Message::Response { .. } => return None,
        }
        .unwrap(),
    )
}

fn check_message(m: &Message<'_>) {
    for enc in [Encoding::Json, Encoding::Postcard] {
        let mut buf = vec![0u8; 1 << 16];
        let n = codec::encode(enc, m, &mut buf).unwrap();
        let mut tbuf = vec![0u8; 1 << 16];
        if let Some(t) = typed(enc, m, &mut tbuf) {
            assert_eq!(&tbuf[..t], &buf[..n], "{enc:?}: typed encoder differs");
        }
        // The node's decoder reads what it serves exactly as the full decoder does.
        let node_view = codec::decode_for_node(&buf[..n], enc, &Limits { max_depth: 64 });
        match m {
            Message::Request {
                request: Request::Execute(_) | Request::Ping,
                ..
            }
            | Message::Notification(Notification::Cancel(_) | Notification::Goodbye(_))
            | Message::Response { .. } => assert_eq!(node_view.as_ref().ok(), Some(m), "{enc:?}"),
            _ => assert_eq!(
                node_view.unwrap_err().error,
                codec::DecodeError::UnknownMethod,
                "{enc:?}"
            ),
        }
        let back = codec::decode(&buf[..n], enc, &Limits { max_depth: 64 }).unwrap_or_else(|e| {
            panic!(
                "{enc:?}: {e:?} for {:?}",
                String::from_utf8_lossy(&buf[..n])
            )
        });
        assert_eq!(&back, m, "{enc:?}");
        // A too-small buffer is refused with the exact size needed.
        if n > 0 {
            let mut small = vec![0u8; n - 1];
            assert_eq!(
                codec::encode(enc, m, &mut small),
                Err(toolwire_core::EncodeError::BufferTooSmall { needed: n })
            );
        }
    }
}

fn check_result<'a, T: Wire<'a> + PartialEq + std::fmt::Debug>(
    value: &T,
    buf: &'a mut [u8],
    enc: Encoding,
) {
    let n = codec::encode_result(enc, Id::Num(3), value, buf).unwrap();
    let buf: &'a [u8] = &buf[..n];
    let Ok(Message::Response { id, result: Ok(p) }) =
        codec::decode(buf, enc, &Limits { max_depth: 64 })
    else {
        panic!("not a result");
    };
    assert_eq!(id, Id::Num(3));
    assert_eq!(&p.decode::<T>(&Limits { max_depth: 64 }).unwrap(), value);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_frame_round_trips(r in arb_raw()) {
        let id = match &r.id_str { Some(s) => Id::Str(Str::new(s)), None => Id::Num(r.id_num) };
        let obj = Json::parse(r.obj.as_bytes()).unwrap();
        let json = Json::parse(r.json.as_bytes()).unwrap();
        let [a, b, c] = &r.s;
        let defs: Vec<ToolDef<'_>> = r.tools.iter().map(|(name, desc, schema, out)| ToolDef {
            name: Str::new(name),
            description: Str::new(desc),
            input_schema: Json::parse(schema.as_bytes()).unwrap(),
            output_schema: out.as_ref().map(|o| Json::parse(o.as_bytes()).unwrap()),
            annotations: Annotations { read_only: r.flags[0], destructive: r.flags[1], idempotent: r.flags[2] },
        }).collect();
        // Names that requests look things up by: without the characters JSON must escape,
        // which are refused there (tests/names.rs).
        let [na, nb] = [a, b].map(|s| s.replace(|ch: char| ch < ' ' || ch == '"' || ch == '\\', ""));
        let (na, nb) = (&na, &nb);
        let plain: Vec<String> = r.s.iter().map(|s| s.replace(|ch: char| ch < ' ' || ch == '"' || ch == '\\', "")).collect();
        let plain_names: Vec<Str<'_>> = plain.iter().map(|s| Str::new(s)).collect();
        let rules: Vec<Rule<'_>> = plain_names.iter().enumerate().map(|(i, n)| Rule {
            tool: *n,
            kind: [None, Some(AskKind::Permission), Some(AskKind::Input), Some(AskKind::Sample), Some(AskKind::Roots)][i % 5],
            prompt: opt(r.flags[i % 4], a),
            decision: [Decision::Allow, Decision::Deny, Decision::Forward][(r.n as usize + i) % 3],
            answer: r.flags[(i + 1) % 4].then_some(json),
        }).collect();
        let req = |request| Message::Request { id, request };
        let msg = match r.kind {
            0 => req(Request::Hello(Hello {
                min_version: r.m as u16, max_version: (r.m >> 16) as u16,
                role: if r.flags[0] { Role::Node } else { Role::Controller },
                id: Str::new(a), token: opt(r.flags[1], b),
                encodings: Encodings { json: r.flags[2], postcard: r.flags[3] },
                max_frame: r.m, max_in_flight: r.n as u16,
            })),
            1 => req(Request::Register(Register { tools: List::from_slice(&defs) })),
            2 => req(Request::Unregister(Unregister { names: List::from_slice(&plain_names) })),
            3 => req(Request::Execute(Execute { tool: Str::new(na), arguments: obj, deadline_ms: r.flags[0].then_some(r.m) })),
            4 => req(Request::Ask(Ask {
                call: Id::Num(r.n), kind: [AskKind::Permission, AskKind::Input, AskKind::Sample, AskKind::Roots][r.m as usize % 4],
                prompt: Str::new(a), schema: r.flags[1].then_some(obj),
            })),
            5 => req(Request::Ping),
            6 => req(Request::ListNodes(ListNodes { cursor: opt(r.flags[0], a), limit: r.flags[1].then_some(r.m) })),
            7 => req(Request::ListTools(ListTools { prefix: opt(r.flags[0], na), node: opt(r.flags[1], nb), cursor: opt(r.flags[2], c), limit: r.flags[3].then_some(r.m) })),
            8 => req(Request::Call(Call { node: Str::new(na), tool: Str::new(nb), arguments: obj, deadline_ms: r.flags[0].then_some(r.m) })),
            9 => Message::Notification(Notification::Cancel(Cancel { id, reason: opt(r.flags[0], a) })),
            10 => Message::Notification(Notification::Progress(Progress {
                id, progress: r.n, total: r.flags[0].then_some(r.n / 2), message: opt(r.flags[1], a),
                partial: r.flags[2].then_some(json),
            })),
            11 => Message::Notification(Notification::Goodbye(Goodbye {
                reason: if r.flags[0] { GoodbyeReason::Shutdown } else { GoodbyeReason::Replaced },
                message: opt(r.flags[1], a),
            })),
            12 => Message::Notification(Notification::ToolsChanged(ToolsChanged { node: Str::new(a) })),
            13 => req(Request::Scope(Scope { tools: List::from_slice(&plain_names) })),
            14 => req(Request::SetRules(SetRules { rules: List::from_slice(&rules) })),
            15 => req(Request::ListRules(ListRules {})),
            // With an option set: without one, it is sent (and read) as a plain `Call`.
            16 => req(Request::CallWith(CallWith {
                node: Str::new(na), tool: Str::new(nb), arguments: obj,
                deadline_ms: r.flags[0].then_some(r.m),
                cache: Some(r.flags[1]),
                max_result_bytes: (r.flags[2] || !r.flags[3]).then_some(r.m),
            })),
            18 => Message::Notification(Notification::Log(Log {
                id: r.flags[0].then_some(id),
                level: [LogLevel::Debug, LogLevel::Info, LogLevel::Warning, LogLevel::Emergency][(r.n % 4) as usize],
                message: Str::new(a),
                data: r.flags[1].then_some(json),
            })),
            17 => req(Request::ReadResult(ReadResult { handle: Str::new(a), offset: r.m, length: r.flags[0].then_some(r.n as u32) })),
            _ => Message::Response { id, result: Err(ErrorObject { code: r.n as i32, message: Str::new(a), data: r.flags[0].then_some(json) }) },
        };
        check_message(&msg);
    }

    #[test]
    fn every_result_round_trips(r in arb_raw()) {
        let [a, b, _] = &r.s;
        let json = Json::parse(r.json.as_bytes()).unwrap();
        let defs: Vec<ToolDef<'_>> = r.tools.iter().map(|(name, desc, schema, out)| ToolDef {
            name: Str::new(name),
            description: Str::new(desc),
            input_schema: Json::parse(schema.as_bytes()).unwrap(),
            output_schema: out.as_ref().map(|o| Json::parse(o.as_bytes()).unwrap()),
            annotations: Annotations::NONE,
        }).collect();
        let entries: Vec<ToolEntry<'_>> = defs.iter().map(|t| ToolEntry { node: Str::new(a), tool: *t }).collect();
        let names: Vec<Str<'_>> = r.s.iter().map(|s| Str::new(s)).collect();
        let rejections: Vec<Rejection<'_>> = names.iter().map(|n| Rejection { name: *n, reason: RejectReason::Duplicate }).collect();
        let nodes: Vec<NodeInfo<'_>> = names.iter().map(|n| NodeInfo { id: *n, tools: r.m, in_flight: 1, encoding: Encoding::Json }).collect();
        for enc in [Encoding::Json, Encoding::Postcard] {
            check_result(&json, &mut vec![0u8; 1 << 16], enc);
            check_result(&Welcome { version: 1, encoding: enc, max_frame: r.m, max_in_flight: 3, heartbeat_ms: r.m / 3, gateway: Str::new(a) }, &mut vec![0u8; 1 << 16], enc);
            check_result(&RegisterAck { accepted: List::from_slice(&names), rejected: List::from_slice(&rejections) }, &mut vec![0u8; 1 << 16], enc);
            check_result(&NodesPage { nodes: List::from_slice(&nodes), next_cursor: r.flags[0].then(|| Str::new(b)) }, &mut vec![0u8; 1 << 16], enc);
            check_result(&ToolsPage { tools: List::from_slice(&entries), next_cursor: None }, &mut vec![0u8; 1 << 16], enc);
            check_result(&Resolved { nodes: List::from_slice(&names) }, &mut vec![0u8; 1 << 16], enc);
        }
    }

    #[test]
    fn deframer_is_chunking_independent(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..700), 1..6),
        cuts in prop::collection::vec(1usize..64, 1..200),
    ) {
        const CAP: usize = 512;
        let mut wire = Vec::new();
        for p in &payloads {
            let mut buf = vec![0u8; p.len() + p.len() / 254 + 2];
            let n = encode_frame(p, &mut buf).unwrap();
            assert_eq!(n, toolwire_core::stream::encoded_len(p));
            assert!(!buf[..n - 1].contains(&0));
            wire.extend_from_slice(&buf[..n]);
        }
        // Expected: frames that fit come out whole, larger ones are reported once.
        let expected: Vec<Result<Vec<u8>, FrameError>> = payloads.iter().map(|p| {
            if p.len() <= CAP { Ok(p.clone()) } else { Err(FrameError::TooLarge { limit: CAP }) }
        }).collect();
        let run = |chunks: &mut dyn Iterator<Item = usize>| {
            let mut d = Deframer::new([0u8; CAP]);
            let mut out = Vec::new();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let k = chunks.next().unwrap_or(rest.len()).min(rest.len());
                let mut chunk = &rest[..k];
                rest = &rest[k..];
                while !chunk.is_empty() {
                    let (used, ev) = d.push(chunk);
                    chunk = &chunk[used..];
                    match ev {
                        Deframed::Frame(f) => out.push(Ok(f.to_vec())),
                        Deframed::Error(e) => out.push(Err(e)),
                        Deframed::NeedMore => {}
                    }
                }
                assert!(d.buffered() <= CAP);
            }
            out
        };
        prop_assert_eq!(&run(&mut cuts.iter().copied().cycle()), &expected);
        prop_assert_eq!(&run(&mut std::iter::repeat(1)), &expected);
        prop_assert_eq!(&run(&mut std::iter::empty()), &expected);
    }

    #[test]
    fn deframer_recovers_after_garbage(garbage in prop::collection::vec(any::<u8>(), 0..300), payload in prop::collection::vec(any::<u8>(), 1..100)) {
        let mut wire = garbage.clone();
        wire.push(0);
        let mut buf = vec![0u8; 200];
        let n = encode_frame(&payload, &mut buf).unwrap();
        wire.extend_from_slice(&buf[..n]);
        let mut d = Deframer::new([0u8; 128]);
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let (used, ev) = d.push(rest);
            rest = &rest[used..];
            if let Deframed::Frame(f) = ev { frames.push(f.to_vec()); }
        }
        // Garbage may decode as some frame of its own, but the last frame is always ours.
        prop_assert_eq!(frames.last(), Some(&payload));
    }

    #[test]
    fn strict_json_agrees_with_serde_json_on_generated_values(v in arb_json_value()) {
        let text = serde_json::to_string_pretty(&v).unwrap();
        prop_assert!(toolwire_core::json::validate(text.as_bytes(), 64).is_ok());
        let j = Json::parse_with_depth(text.as_bytes(), 64).unwrap();
        prop_assert_eq!(j.as_bytes(), text.as_bytes());
        let compact = v.to_string();
        prop_assert!(toolwire_core::json::validate(compact.as_bytes(), 64).is_ok());
    }
}

#[test]
fn str_unescapes_what_json_escaped() {
    // (Text, not a name: names written with escapes are refused, tests/names.rs.)
    let frame = br#"{"jsonrpc":"2.0","id":"a\"b","method":"ask","params":{"call":1,"kind":"input","prompt":"caf\u00e9 \ud83d\ude00\n"}}"#;
    let m = codec::decode(frame, Encoding::Json, &Limits::default()).unwrap();
    let Message::Request {
        id,
        request: Request::Ask(r),
    } = m
    else {
        panic!()
    };
    assert_eq!(id, Id::Str(Str::new("a\"b")));
    assert!(r.prompt.eq_str("café 😀\n"));
    assert_eq!(r.prompt.to_string(), "café 😀\n");
    let mut buf = [0u8; 32];
    assert_eq!(r.prompt.unescape_into(&mut buf), Some("café 😀\n"));
    assert_eq!(r.prompt.unescape_into(&mut buf[..4]), None);
}

#[test]
fn optional_members_may_be_left_out_in_json() {
    let frame = br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"t","description":"","input_schema":{}}]}}"#;
    let Message::Request {
        request: Request::Register(r),
        ..
    } = codec::decode(frame, Encoding::Json, &Limits::default()).unwrap()
    else {
        panic!()
    };
    let t = r.tools.iter().next().unwrap();
    assert_eq!(t.annotations, Annotations::NONE);
    assert_eq!(t.output_schema, None);
}
