//! Each class of bad input → its documented error, whether it is answered, and that the
//! connection goes on. PROTOCOL.md's "Errors for bad input" table lists the same cases.

use toolwire_core::codec::{self, DecodeError, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::gateway::{Connection, Fixed, GatewayConfig, State};
use toolwire_core::json::JsonErrorKind;
use toolwire_core::{Encoding, ErrorCode, Id, Instant, Str};

/// What the table expects of one input.
struct Case {
    name: &'static str,
    input: Vec<u8>,
    code: ErrorCode,
    /// `Some(id)`: answered with an error carrying that id. `None`: dropped silently.
    reply: Option<Id<'static>>,
    check: fn(&DecodeError) -> bool,
}

fn json_kind(k: JsonErrorKind) -> impl Fn(&DecodeError) -> bool {
    move |e| matches!(e, DecodeError::Json(j) if j.kind == k)
}

fn cases() -> Vec<Case> {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"execute","params":{{"tool":"t","arguments":{{"a":{}1{}}}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    macro_rules! case {
        ($name:expr, $input:expr, $code:ident, $reply:expr, $check:expr) => {
            Case {
                name: $name,
                input: $input.to_vec(),
                code: ErrorCode::$code,
                reply: $reply,
                check: $check,
            }
        };
    }
    let null = Some(Id::Null);
    let one = Some(Id::Num(1));
    vec![
        case!("empty frame", b"", ParseError, null, |e| *e == DecodeError::Empty),
        case!("truncated", br#"{"jsonrpc":"2.0","id":1,"method":"ping""#, ParseError, null, |e| json_kind(JsonErrorKind::UnexpectedEnd)(e)),
        case!("trailing garbage", br#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#, ParseError, null, |e| json_kind(JsonErrorKind::TrailingData)(e)),
        case!("leading zero", br#"{"jsonrpc":"2.0","id":01,"method":"ping"}"#, ParseError, null, |e| json_kind(JsonErrorKind::BadNumber)(e)),
        case!("plus sign", br#"{"jsonrpc":"2.0","id":+1,"method":"ping"}"#, ParseError, null, |e| json_kind(JsonErrorKind::Unexpected)(e)),
        case!("control char in string", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\x01ng\"}", ParseError, null, |e| json_kind(JsonErrorKind::ControlCharacter)(e)),
        case!("invalid UTF-8", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}", ParseError, null, |e| json_kind(JsonErrorKind::InvalidUtf8)(e)),
        case!("bad escape", br#"{"jsonrpc":"2.0","id":1,"method":"p\qng"}"#, ParseError, null, |e| json_kind(JsonErrorKind::BadEscape)(e)),
        case!("lone surrogate", br#"{"jsonrpc":"2.0","id":"\ud800","method":"ping"}"#, ParseError, null, |e| json_kind(JsonErrorKind::LoneSurrogate)(e)),
        case!("nesting too deep", deep.as_bytes(), ParseError, null, |e| json_kind(JsonErrorKind::TooDeep)(e)),
        case!("single quotes", br#"{'jsonrpc':'2.0'}"#, ParseError, null, |e| json_kind(JsonErrorKind::Unexpected)(e)),
        case!("batch", br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, InvalidRequest, null, |e| *e == DecodeError::Batch),
        case!("empty batch", b"[]", InvalidRequest, null, |e| *e == DecodeError::Batch),
        case!("not an object", br#""ping""#, InvalidRequest, null, |e| *e == DecodeError::NotAnObject),
        case!("wrong jsonrpc version", br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, InvalidRequest, one, |e| *e == DecodeError::BadVersion),
        case!("no jsonrpc member", br#"{"id":1,"method":"ping"}"#, InvalidRequest, one, |e| *e == DecodeError::BadVersion),
        case!("id is an object", br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, InvalidRequest, null, |e| *e == DecodeError::BadId),
        case!("id is fractional", br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, InvalidRequest, null, |e| *e == DecodeError::BadId),
        case!("id is negative", br#"{"jsonrpc":"2.0","id":-1,"method":"ping"}"#, InvalidRequest, null, |e| *e == DecodeError::BadId),
        case!("id is null on a request", br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, InvalidRequest, null, |e| *e == DecodeError::BadId),
        case!("member twice", br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#, InvalidRequest, null, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("method and result", br#"{"jsonrpc":"2.0","id":1,"method":"ping","result":1}"#, InvalidRequest, one, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("method not a string", br#"{"jsonrpc":"2.0","id":1,"method":5}"#, InvalidRequest, one, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("id only", br#"{"jsonrpc":"2.0","id":1}"#, InvalidRequest, one, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("unknown method", br#"{"jsonrpc":"2.0","id":1,"method":"frobnicate"}"#, MethodNotFound, one, |e| *e == DecodeError::UnknownMethod),
        case!("unknown method with params", br#"{"jsonrpc":"2.0","id":1,"method":"frobnicate","params":{"a":[1]}}"#, MethodNotFound, one, |e| *e == DecodeError::UnknownMethod),
        case!("unknown method, bad JSON in params", br#"{"jsonrpc":"2.0","id":1,"method":"frobnicate","params":{"a":[1}}"#, ParseError, null, |e| json_kind(JsonErrorKind::Unexpected)(e)),
        case!("unknown notification", br#"{"jsonrpc":"2.0","method":"frobnicate"}"#, MethodNotFound, None, |e| *e == DecodeError::UnknownMethod),
        case!("string id echoed", br#"{"jsonrpc":"2.0","id":"a-1","method":"frobnicate"}"#, MethodNotFound, Some(Id::Str(Str::new("a-1"))), |e| *e == DecodeError::UnknownMethod),
        case!("missing arguments", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"x"}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(toolwire_core::wire::FieldError::Missing("arguments")))),
        case!("arguments not an object", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"x","arguments":[1]}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(_))),
        case!("positional params", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":["x",{}]}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(_))),
        case!("deadline out of range", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"x","arguments":{},"deadline_ms":99999999999}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(toolwire_core::wire::FieldError::Invalid("deadline_ms")))),
        case!("member name twice in arguments", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"x","arguments":{"channel":7,"channel":2}}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(toolwire_core::wire::FieldError::Json(j)) if j.kind == JsonErrorKind::DuplicateName)),
        case!("member name twice, escaped, nested", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"x","arguments":{"a":[{"b":1,"\u0062":2}]}}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(toolwire_core::wire::FieldError::Json(j)) if j.kind == JsonErrorKind::DuplicateName)),
        case!("result with a member name twice", br#"{"jsonrpc":"2.0","id":1,"result":{"a":1,"a":2}}"#, InvalidParams, None, |e| matches!(e, DecodeError::BadResult(_))),
        case!("tool name written with an escape", br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"\u0073ink","arguments":{}}}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(toolwire_core::wire::FieldError::Invalid("tool")))),
        case!("params before method, bad", br#"{"jsonrpc":"2.0","params":{"tool":1},"id":1,"method":"execute"}"#, InvalidParams, one, |e| matches!(e, DecodeError::InvalidParams(_))),
        case!("bad notification params", br#"{"jsonrpc":"2.0","method":"cancel","params":{}}"#, InvalidParams, None, |e| matches!(e, DecodeError::InvalidParams(_))),
        case!("notification sent with id", br#"{"jsonrpc":"2.0","id":1,"method":"cancel","params":{"id":3}}"#, InvalidRequest, one, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("request sent without id", br#"{"jsonrpc":"2.0","method":"ping"}"#, InvalidRequest, None, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("response without id", br#"{"jsonrpc":"2.0","result":1}"#, InvalidRequest, None, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("result and error", br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}"#, InvalidRequest, None, |e| matches!(e, DecodeError::BadEnvelope(_))),
        case!("malformed error member", br#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#, InvalidParams, None, |e| matches!(e, DecodeError::BadResult(_))),
    ]
}

#[test]
fn json_table() {
    let limits = Limits::default();
    for c in cases() {
        let r = codec::decode(&c.input, Encoding::Json, &limits);
        let rej = match r {
            Err(rej) => rej,
            Ok(m) => panic!("{}: accepted as {m:?}", c.name),
        };
        assert!((c.check)(&rej.error), "{}: got {:?}", c.name, rej.error);
        assert_eq!(rej.error.code(), c.code, "{}", c.name);
        assert_eq!(rej.reply_to, c.reply, "{}", c.name);
        // The answer, when there is one, is a well-formed error response with that code.
        let mut out = [0u8; 512];
        match codec::encode_rejection(Encoding::Json, &rej, &mut out) {
            None => assert!(c.reply.is_none(), "{}", c.name),
            Some(n) => {
                let n = n.unwrap();
                let m = codec::decode(&out[..n], Encoding::Json, &limits).unwrap();
                let Message::Response { id, result: Err(e) } = m else {
                    panic!("{}: answer is not an error response", c.name);
                };
                assert_eq!(Some(id), c.reply, "{}", c.name);
                assert_eq!(e.code, c.code.code(), "{}", c.name);
                // Malformed JSON: the answer says where.
                if let DecodeError::Json(j) = rej.error {
                    let data = e.data.expect("offset data").as_str().to_owned();
                    assert_eq!(data, format!("{{\"offset\":{}}}", j.offset), "{}", c.name);
                    assert!(
                        e.message.to_string().starts_with("malformed JSON"),
                        "{}",
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn depth_limit_is_configurable() {
    let frame = br#"{"jsonrpc":"2.0","id":1,"method":"execute","params":{"tool":"t","arguments":{"a":[[[1]]]}}}"#;
    // Depth: envelope 1, params 2, arguments 3, "a" array 4..6.
    assert!(codec::decode(frame, Encoding::Json, &Limits { max_depth: 6 }).is_ok());
    let e = codec::decode(frame, Encoding::Json, &Limits { max_depth: 5 }).unwrap_err();
    assert!(matches!(e.error, DecodeError::Json(j) if j.kind == JsonErrorKind::TooDeep));
}

#[test]
fn postcard_table() {
    let limits = Limits::default();
    // Garbage tag.
    let e = codec::decode(&[9, 1, 2], Encoding::Postcard, &limits).unwrap_err();
    assert_eq!(
        (e.error, e.reply_to),
        (DecodeError::Postcard, Some(Id::Null))
    );
    // Request id 7, method index 99: unknown method, answered with id 7.
    let e = codec::decode(&[0, 0, 7, 99], Encoding::Postcard, &limits).unwrap_err();
    assert_eq!(
        (e.error, e.reply_to),
        (DecodeError::UnknownMethod, Some(Id::Num(7)))
    );
    // Execute (method index 3) with truncated params.
    let e = codec::decode(&[0, 0, 7, 3, 5, b'a'], Encoding::Postcard, &limits).unwrap_err();
    assert!(matches!(e.error, DecodeError::InvalidParams(_)));
    assert_eq!(e.reply_to, Some(Id::Num(7)));
    // Execute whose arguments are not valid JSON: rejected by the same strict scanner.
    let mut buf = [0u8; 64];
    let n = postcard::to_slice(
        &(
            0u8,
            Id::Num(7),
            3u8,
            "t",
            b"{\"a\":01}".as_slice(),
            None::<u32>,
        ),
        &mut buf,
    )
    .unwrap()
    .len();
    let e = codec::decode(&buf[..n], Encoding::Postcard, &limits).unwrap_err();
    assert!(
        matches!(e.error, DecodeError::InvalidParams(_)),
        "{:?}",
        e.error
    );
    // Trailing bytes after a complete request.
    let n =
        codec::encode_request(Encoding::Postcard, Id::Num(1), &Request::Ping, &mut buf).unwrap();
    buf[n] = 0xAA;
    let e = codec::decode(&buf[..n + 1], Encoding::Postcard, &limits).unwrap_err();
    assert!(matches!(e.error, DecodeError::InvalidParams(_)));
    // Notifications and responses are never answered.
    let e = codec::decode(&[1, 77], Encoding::Postcard, &limits).unwrap_err();
    assert_eq!((e.error, e.reply_to), (DecodeError::UnknownMethod, None));
    let e = codec::decode(&[3, 0], Encoding::Postcard, &limits).unwrap_err();
    assert_eq!(e.reply_to, None);
}

/// Every bad frame above, sent on a live node connection: answered as the table says, and the
/// connection stays up.
#[test]
fn connection_goes_on_after_bad_frames() {
    let mut gw: Connection<'_, Fixed<4, 8>> = Connection::new(GatewayConfig::new("gw"), Instant(0));
    let hello = Request::Hello(Hello {
        min_version: 1,
        max_version: 1,
        role: Role::Node,
        id: Str::new("n1"),
        token: None,
        encodings: Encodings::JSON,
        max_frame: 4096,
        max_in_flight: 4,
    });
    let mut out = [0u8; 1024];
    let mut reply = [0u8; 1024];
    let n = codec::encode_request(Encoding::Json, Id::Num(0), &hello, &mut out).unwrap();
    let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
    assert!(h.reply > 0, "the welcome");
    assert_eq!(gw.state(), State::Ready(Role::Node));
    let total = cases().len() as u64;
    for c in cases() {
        let h = gw.handle_frame(Instant(1), &c.input, &mut reply);
        assert!(h.error.is_some(), "{}", c.name);
        assert_eq!(h.reply > 0, c.reply.is_some(), "{}", c.name);
        assert_eq!(
            gw.state(),
            State::Ready(Role::Node),
            "{}: connection closed",
            c.name
        );
    }
    assert_eq!(gw.stats().malformed, total);
    // And it still works.
    let n = codec::encode_request(Encoding::Json, Id::Num(9), &Request::Ping, &mut out).unwrap();
    let h = gw.handle_frame(Instant(2), &out[..n], &mut reply);
    assert_eq!(
        &reply[..h.reply],
        br#"{"jsonrpc":"2.0","id":9,"result":{}}"#
    );
}
