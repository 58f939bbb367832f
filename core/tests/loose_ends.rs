//! The rules an independent review of PROTOCOL.md found unstated or ambiguous, one test per
//! item, each named after it. PROTOCOL.md states each rule where a peer's author looks for it.

use toolwire_core::codec::{self, Limits, Message, Rejected};
use toolwire_core::frame::*;
use toolwire_core::gateway::{self, CloseReason, Connection, Fixed, GatewayConfig, State};
use toolwire_core::node::{Node, NodeConfig, NodeEvent};
use toolwire_core::stream::{Deframed, Deframer};
use toolwire_core::{Duration, Encoding, ErrorCode, Id, Instant, Json, Str};

type Gw = Connection<'static, Fixed<8, 8>>;

fn decode(frame: &[u8]) -> Result<Message<'_>, Rejected<'_>> {
    codec::decode(frame, codec::sniff(frame), &Limits::default())
}

/// The code and the id of the error answer a frame gets; `None` if it is dropped.
fn answer(frame: &[u8]) -> Option<(i32, Id<'_>)> {
    match decode(frame) {
        Ok(m) => panic!("decoded: {m:?}"),
        Err(r) => r.reply_to.map(|id| (r.error.code().code(), id)),
    }
}

/// The error a reply frame carries (code, id), or `None` for a result.
fn error_in(reply: &[u8], enc: Encoding) -> Option<(i32, Id<'_>)> {
    match codec::decode(reply, enc, &Limits::default()).expect("reply decodes") {
        Message::Response { id, result: Err(e) } => Some((e.code, id)),
        Message::Response { result: Ok(_), .. } => None,
        m => panic!("not a response: {m:?}"),
    }
}

fn hello(id: &str, role: &str, encodings: &str) -> &'static [u8] {
    leak(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"hello","params":{{"min_version":1,"max_version":1,"role":"{role}","id":"dev-1","encodings":{encodings},"max_frame":4096,"max_in_flight":4}}}}"#
    ))
}

/// Events borrow the frame they came in; tests keep their frames for good.
fn leak(s: String) -> &'static [u8] {
    Box::leak(s.into_boxed_str()).as_bytes()
}

/// A gateway connection with a JSON node on it that registered `tool`.
fn ready_gateway() -> Gw {
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    let mut reply = [0u8; 1024];
    let h = gw.handle_frame(
        Instant(0),
        hello("0", "node", r#"{"json":true,"postcard":false}"#),
        &mut reply,
    );
    assert!(h.reply > 0 && gw.state() == State::Ready(Role::Node));
    let reg = br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"tool","description":"","input_schema":{}}]}}"#;
    let _ = gw.handle_frame(Instant(0), reg, &mut reply);
    assert!(gw.has_tool("tool"));
    gw
}

// 1. Empty frames.
#[test]
fn empty_frames_are_skipped_on_a_stream_and_refused_as_a_message() {
    // A stream: two delimiters in a row and `01 00` (COBS of zero bytes) both frame nothing.
    let mut d = Deframer::new([0u8; 64]);
    let mut input: &[u8] = &[0x00, 0x00, 0x01, 0x00, 0x02, b'{', 0x00];
    let mut frames = vec![];
    while !input.is_empty() {
        let (used, out) = d.push(input);
        if let Deframed::Frame(f) = out {
            frames.push(f.to_vec());
        }
        input = &input[used..];
    }
    assert_eq!(frames, vec![b"{".to_vec()]);
    // A WebSocket message of zero bytes is a frame: `-32700`, id null, in either encoding.
    for enc in [Encoding::Json, Encoding::Postcard] {
        let r = codec::decode(b"", enc, &Limits::default()).unwrap_err();
        assert_eq!(
            (r.error.code(), r.reply_to),
            (ErrorCode::ParseError, Some(Id::Null))
        );
    }
    // The gateway answers it and goes on.
    let mut gw = ready_gateway();
    let mut reply = [0u8; 256];
    let h = gw.handle_frame(Instant(1), b"", &mut reply);
    assert_eq!(
        error_in(&reply[..h.reply], Encoding::Json),
        Some((-32700, Id::Null))
    );
    assert_eq!(gw.state(), State::Ready(Role::Node));
}

// 2. Invalid JSON inside a postcard frame.
#[test]
fn invalid_json_inside_a_postcard_value_is_invalid_params_with_the_id() {
    // execute id 7, tool "t", arguments `{"a":` (not JSON), no deadline.
    let mut pc = vec![0x00, 0x00, 0x07, 0x03, 0x01, b't', 0x05];
    pc.extend_from_slice(br#"{"a":"#);
    pc.push(0x00);
    let r = codec::decode(&pc, Encoding::Postcard, &Limits::default()).unwrap_err();
    assert_eq!(
        (r.error.code(), r.reply_to),
        (ErrorCode::InvalidParams, Some(Id::Num(7)))
    );
    // The same fault in a JSON frame is the frame's own syntax: `-32700`, id null.
    let json =
        br#"{"jsonrpc":"2.0","id":7,"method":"execute","params":{"tool":"t","arguments":{"a":}}}"#;
    assert_eq!(answer(json), Some((-32700, Id::Null)));
    // A postcard notification with one is dropped.
    let mut progress = vec![0x01, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x01, 0x02];
    progress.extend_from_slice(b"{x");
    let r = codec::decode(&progress, Encoding::Postcard, &Limits::default()).unwrap_err();
    assert_eq!(r.reply_to, None);
}

// 3. A member given twice, by place.
#[test]
fn a_member_twice_gets_the_code_of_its_place() {
    let one = Some((-32600, Id::Num(1)));
    let params = Some((-32602, Id::Num(1)));
    let cases: &[(&str, Option<(i32, Id<'_>)>)] = &[
        // The envelope.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{},"params":{}}"#,
            one,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"ping"}"#,
            one,
        ),
        (
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
            one,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"id":1,"method":"ping"}"#,
            Some((-32600, Id::Null)),
        ),
        // A field of params, and any object the protocol defines in them.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","tool":"t","arguments":{}}}"#,
            params,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","arguments":{},"arguments":{}}}"#,
            params,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"d","encodings":{"json":true,"json":false},"max_frame":1,"max_in_flight":1}}"#,
            params,
        ),
        // A name inside a JSON value.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","arguments":{"a":1,"a":2}}}"#,
            params,
        ),
        // Notifications and responses: dropped.
        (
            r#"{"jsonrpc":"2.0","method":"cancel","params":{"id":1,"id":2}}"#,
            None,
        ),
        (r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#, None),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"code":2,"message":"m"}}"#,
            None,
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(answer(frame.as_bytes()), *want, "{frame}");
    }
    // An unknown member is ignored, however often it is given.
    for frame in [
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":1,"x":2}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","arguments":{},"x":1,"x":2}}"#,
    ] {
        assert!(decode(frame.as_bytes()).is_ok(), "{frame}");
    }
}

// 4. Number sizes.
#[test]
fn numbers_too_large_are_refused_in_ids_and_fields_and_carried_in_json_values() {
    for n in [
        "1e400",
        "-0",
        "1e2",
        "1.0",
        "18446744073709551616",
        &"9".repeat(1000),
    ] {
        let id = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"ping"}}"#);
        assert_eq!(answer(id.as_bytes()), Some((-32600, Id::Null)), "id {n}");
        let field = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"execute","params":{{"tool":"t","arguments":{{}},"deadline_ms":{n}}}}}"#
        );
        assert_eq!(
            answer(field.as_bytes()),
            Some((-32602, Id::Num(1))),
            "deadline_ms {n}"
        );
        let progress = format!(
            r#"{{"jsonrpc":"2.0","method":"progress","params":{{"id":1,"progress":{n}}}}}"#
        );
        assert_eq!(answer(progress.as_bytes()), None, "progress {n}");
    }
    assert_eq!(
        answer(br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","arguments":{},"deadline_ms":4294967296}}"#),
        Some((-32602, Id::Num(1)))
    );
    // In arguments every number of the RFC 8259 grammar travels as written, in both encodings.
    let args = format!(
        r#"{{"a":1e400,"b":-0,"c":{},"d":1E-99999999999999999999,"e":0.1000000000000000000001}}"#,
        "7".repeat(1000)
    );
    let frame = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"execute","params":{{"tool":"t","arguments":{args}}}}}"#
    );
    let Ok(Message::Request {
        request: Request::Execute(e),
        ..
    }) = decode(frame.as_bytes())
    else {
        panic!("refused");
    };
    assert_eq!(e.arguments.as_str(), args);
    let mut pc = [0u8; 2048];
    let n = codec::encode_request(
        Encoding::Postcard,
        Id::Num(1),
        &Request::Execute(e),
        &mut pc,
    )
    .unwrap();
    let Ok(Message::Request {
        request: Request::Execute(e),
        ..
    }) = codec::decode(&pc[..n], Encoding::Postcard, &Limits::default())
    else {
        panic!("refused in postcard");
    };
    assert_eq!(e.arguments.as_str(), args);
}

// 5. String ids of requests answered later.
#[test]
fn string_ids_over_64_bytes_are_refused_only_where_answered_later() {
    let long = format!("\"{}\"", "i".repeat(65));
    let ok = format!("\"{}\"", "i".repeat(64));
    // hello, even when the gateway welcomes at once.
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    let mut reply = [0u8; 1024];
    let h = gw.handle_frame(
        Instant(0),
        hello(&long, "node", r#"{"json":true,"postcard":false}"#),
        &mut reply,
    );
    assert_eq!(
        error_in(&reply[..h.reply], Encoding::Json).map(|e| e.0),
        Some(-32600)
    );
    assert_eq!(gw.state(), State::Closed);
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    let h = gw.handle_frame(
        Instant(0),
        hello(&ok, "node", r#"{"json":true,"postcard":false}"#),
        &mut reply,
    );
    assert_eq!(error_in(&reply[..h.reply], Encoding::Json), None);
    // A node's ask at the gateway.
    let mut gw = ready_gateway();
    let (call, _) = gw
        .call(Instant(0), "tool", Json::EMPTY_OBJECT, None, &mut reply)
        .unwrap();
    let ask = |id: &str| {
        leak(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"ask","params":{{"call":{},"kind":"permission","prompt":"?"}}}}"#,
            call.0
        ))
    };
    let h = gw.handle_frame(Instant(0), ask(&long), &mut reply);
    assert_eq!(
        error_in(&reply[..h.reply], Encoding::Json).map(|e| e.0),
        Some(-32600)
    );
    let h = gw.handle_frame(Instant(0), ask(&ok), &mut reply);
    assert!(matches!(h.event, Some(gateway::Event::Ask { .. })));
    // Requests answered at once echo any string id.
    let huge = format!("\"{}\"", "i".repeat(300));
    let ping = format!(r#"{{"jsonrpc":"2.0","id":{huge},"method":"ping"}}"#);
    let h = gw.handle_frame(Instant(0), ping.as_bytes(), &mut reply);
    assert_eq!(error_in(&reply[..h.reply], Encoding::Json), None);
    // execute at a node.
    let tools: &'static [ToolDef<'static>] = Box::leak(Box::new([ToolDef {
        name: Str::new("tool"),
        description: Str::new(""),
        input_schema: Json::EMPTY_OBJECT,
        output_schema: None,
        annotations: Annotations {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
    }]));
    let mut cfg = NodeConfig::new("dev-1", tools);
    cfg.encodings = Encodings::JSON;
    cfg.hello_encoding = Encoding::Json;
    let mut node: Node<'static, 2> = Node::new(cfg, Instant(0));
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    let mut buf = [0u8; 1024];
    for _ in 0..4 {
        while let Some(Ok(n)) = node.poll_transmit(&mut buf) {
            let h = gw.handle_frame(Instant(0), &buf[..n], &mut reply);
            let r = reply[..h.reply].to_vec();
            let _ = node.handle_frame(Instant(0), &r, &mut buf);
        }
    }
    assert!(gw.has_tool("tool"));
    let exec = |id: &str| {
        leak(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"execute","params":{{"tool":"tool","arguments":{{}}}}}}"#
        ))
    };
    let h = node.handle_frame(Instant(0), exec(&long), &mut buf);
    assert_eq!(
        error_in(&buf[..h.reply], Encoding::Json).map(|e| e.0),
        Some(-32600)
    );
    let h = node.handle_frame(Instant(0), exec(&ok), &mut buf);
    assert!(matches!(h.event, Some(NodeEvent::Execute { .. })));
}

// 6. `params: null`.
#[test]
fn params_null_is_invalid_params_even_where_all_are_optional() {
    for method in ["ping", "nodes.list", "tools.list", "unregister", "execute"] {
        let f = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":null}}"#);
        assert_eq!(answer(f.as_bytes()), Some((-32602, Id::Num(1))), "{method}");
    }
    // Leaving the member out is how optional params are omitted.
    for method in ["ping", "nodes.list", "tools.list", "unregister"] {
        let f = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
        assert!(decode(f.as_bytes()).is_ok(), "{method}");
    }
    let f = br#"{"jsonrpc":"2.0","id":1,"method":"execute"}"#;
    assert_eq!(answer(f), Some((-32602, Id::Num(1))));
}

// 7. An object with no id.
#[test]
fn an_object_without_an_id_member_is_never_answered() {
    for f in [
        "{}",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"1.0"}"#,
        r#"{"jsonrpc":"2.0","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":5}"#,
        r#"{"jsonrpc":"2.0","result":1}"#,
        r#"{"jsonrpc":"2.0","method":"execute","params":{}}"#,
    ] {
        assert_eq!(answer(f.as_bytes()), None, "{f}");
    }
    // An id but no method, result or error: `-32600` with that id.
    assert_eq!(
        answer(br#"{"jsonrpc":"2.0","id":1}"#),
        Some((-32600, Id::Num(1)))
    );
    assert_eq!(answer(br#"{"id":1}"#), Some((-32600, Id::Num(1))));
    assert_eq!(
        answer(br#"{"jsonrpc":"2.0","id":1,"params":{}}"#),
        Some((-32600, Id::Num(1)))
    );
    assert_eq!(
        answer(br#"{"jsonrpc":"2.0","id":null}"#),
        Some((-32600, Id::Null))
    );
}

// 8. The gateway's choice of encoding.
#[test]
fn gateway_prefers_postcard_and_welcomes_in_the_hello_encoding() {
    let welcome = |cfg: GatewayConfig<'static>, hello_enc: Encoding, offered: Encodings| {
        let mut gw = Gw::new(cfg, Instant(0));
        let h = Hello {
            min_version: 1,
            max_version: 1,
            role: Role::Controller,
            id: Str::new("cli"),
            token: None,
            encodings: offered,
            max_frame: 4096,
            max_in_flight: 0,
        };
        let mut f = [0u8; 256];
        let n = codec::encode_request(hello_enc, Id::Num(0), &Request::Hello(h), &mut f).unwrap();
        let mut reply = [0u8; 256];
        let h = gw.handle_frame(Instant(0), &f[..n], &mut reply);
        let Ok(Message::Response { result: Ok(p), .. }) =
            codec::decode(&reply[..h.reply], hello_enc, &Limits::default())
        else {
            panic!("no welcome in the hello's encoding");
        };
        let w: Welcome<'_> = p.decode(&Limits::default()).unwrap();
        assert_eq!(w.encoding, gw.encoding());
        w.encoding
    };
    let default = || GatewayConfig::new("gw");
    let both = Encodings::BOTH;
    assert_eq!(welcome(default(), Encoding::Json, both), Encoding::Postcard);
    assert_eq!(
        welcome(default(), Encoding::Postcard, both),
        Encoding::Postcard
    );
    assert_eq!(
        welcome(default(), Encoding::Json, Encodings::JSON),
        Encoding::Json
    );
    // Even a hello in an encoding its sender did not offer is welcomed in that encoding.
    assert_eq!(
        welcome(default(), Encoding::Postcard, Encodings::JSON),
        Encoding::Json
    );
    let mut json_first = default();
    json_first.prefer = Encoding::Json;
    assert_eq!(
        welcome(json_first, Encoding::Postcard, both),
        Encoding::Json
    );
}

// 9. A goodbye before an idle close.
#[test]
fn idle_close_after_the_handshake_says_goodbye_idle_timeout() {
    let mut gw = ready_gateway();
    let mut out = [0u8; 256];
    let mut sent = vec![];
    let mut t = Instant(0);
    while gw.state() != State::Closed {
        t = gw.poll_timeout().expect("a timer");
        gw.handle_timeout(t);
        while let Some(r) = gw.poll_transmit(&mut out) {
            sent.push(out[..r.unwrap()].to_vec());
        }
    }
    assert_eq!(t, Instant(30_000), "three heartbeat intervals");
    let last = sent.last().expect("frames");
    let Ok(Message::Notification(Notification::Goodbye(g))) =
        codec::decode(last, Encoding::Json, &Limits::default())
    else {
        panic!(
            "last frame is not a goodbye: {:?}",
            String::from_utf8_lossy(last)
        );
    };
    assert_eq!(g.reason, GoodbyeReason::IdleTimeout);
    assert_eq!(
        gw.poll_event(),
        Some(gateway::Event::Closed(CloseReason::Timeout))
    );
    // Before the handshake no encoding is agreed: the handshake timeout closes silently.
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    gw.handle_timeout(Instant(10_000));
    assert_eq!(gw.state(), State::Closed);
    assert!(gw.poll_transmit(&mut out).is_none());
}

// 10. What `bad_schema` covers.
#[test]
fn bad_schema_covers_shape_depth_and_the_gateways_own_check() {
    let deep = format!(
        "{}{}",
        r#"{"a":"#.repeat(28),
        "1".to_owned() + &"}".repeat(28)
    );
    let tools = [
        ("ok", r#""input_schema":{"type":"object"}"#, None),
        (
            "array",
            r#""input_schema":[]"#,
            Some(RejectReason::BadSchema),
        ),
        (
            "boolean",
            r#""input_schema":true"#,
            Some(RejectReason::BadSchema),
        ),
        (
            "out_null",
            r#""input_schema":{},"output_schema":null"#,
            Some(RejectReason::BadSchema),
        ),
        (
            "out_array",
            r#""input_schema":{},"output_schema":[]"#,
            Some(RejectReason::BadSchema),
        ),
        ("out_absent", r#""input_schema":{}"#, None),
        (
            "refused",
            r#""input_schema":{"type":12}"#,
            Some(RejectReason::BadSchema),
        ),
        (
            "too_deep",
            &format!(r#""input_schema":{deep}"#),
            Some(RejectReason::BadSchema),
        ),
    ];
    let defs: Vec<String> = tools
        .iter()
        .map(|(n, s, _)| format!(r#"{{"name":"{n}","description":"",{s}}}"#))
        .collect();
    let frame = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"register","params":{{"tools":[{}]}}}}"#,
        defs.join(",")
    );
    let mut gw = Gw::new(GatewayConfig::new("gw"), Instant(0));
    let mut reply = [0u8; 2048];
    let _ = gw.handle_frame(
        Instant(0),
        hello("0", "node", r#"{"json":true,"postcard":false}"#),
        &mut reply,
    );
    // The runtime's own check (a host compiles the schema) refuses `"type":12`.
    let mut check = |t: &ToolDef<'_>| {
        if t.input_schema.as_str().contains("12") {
            Err(RejectReason::BadSchema)
        } else {
            Ok(())
        }
    };
    let h = gw.handle_frame_checked(Instant(0), frame.as_bytes(), &mut reply, &mut check);
    let Ok(Message::Response { result: Ok(p), .. }) =
        codec::decode(&reply[..h.reply], Encoding::Json, &Limits::default())
    else {
        panic!("no ack");
    };
    let ack: RegisterAck<'_> = p.decode(&Limits::default()).unwrap();
    let accepted: Vec<String> = ack.accepted.iter().map(|s| s.to_string()).collect();
    assert_eq!(accepted, ["ok", "out_absent"]);
    let rejected: Vec<(String, RejectReason)> = ack
        .rejected
        .iter()
        .map(|r| (r.name.to_string(), r.reason))
        .collect();
    let want: Vec<(String, RejectReason)> = tools
        .iter()
        .filter_map(|(n, _, r)| r.map(|r| (n.to_string(), r)))
        .collect();
    assert_eq!(rejected, want);
    // A schema naming a member twice is not `bad_schema`: the whole frame is `-32602`.
    let dup = br#"{"jsonrpc":"2.0","id":2,"method":"register","params":{"tools":[{"name":"d","description":"","input_schema":{"type":"object","type":"object"}}]}}"#;
    let h = gw.handle_frame(Instant(0), dup, &mut reply);
    assert_eq!(
        error_in(&reply[..h.reply], Encoding::Json),
        Some((-32602, Id::Num(2)))
    );
}

// 12. An ask for a call that is not pending.
#[test]
fn ask_for_a_call_not_pending_is_declined() {
    let mut gw = ready_gateway();
    let mut reply = [0u8; 256];
    let (call, _) = gw
        .call(
            Instant(0),
            "tool",
            Json::EMPTY_OBJECT,
            Some(Duration::from_millis(100)),
            &mut reply,
        )
        .unwrap();
    // The call times out at the gateway; the node's ask crosses the cancel.
    gw.handle_timeout(Instant(100));
    assert!(matches!(
        gw.poll_event(),
        Some(gateway::Event::CallDone { .. })
    ));
    for call_id in [format!("{}", call.0), "999".into(), r#""s""#.into()] {
        let ask = format!(
            r#"{{"jsonrpc":"2.0","id":5,"method":"ask","params":{{"call":{call_id},"kind":"permission","prompt":"?"}}}}"#
        );
        let h = gw.handle_frame(Instant(101), ask.as_bytes(), &mut reply);
        assert_eq!(
            error_in(&reply[..h.reply], Encoding::Json),
            Some((ErrorCode::AskDeclined.code(), Id::Num(5))),
            "call {call_id}"
        );
    }
}
