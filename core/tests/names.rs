//! Names travel as written (PROTOCOL.md section 3): a tool name, node name or prefix spelled
//! with a JSON escape reaches nothing by another spelling. (postcard strings have no escapes.)

use toolwire_core::codec::{self, DecodeError, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::gateway::{Connection, Fixed, GatewayConfig, State};
use toolwire_core::wire::FieldError;
use toolwire_core::{Encoding, ErrorCode, Id, Instant, Str};

fn refused(frame: &[u8], field: &str) {
    let r = codec::decode(frame, Encoding::Json, &Limits::default()).expect_err("accepted");
    assert!(
        matches!(r.error, DecodeError::InvalidParams(FieldError::Invalid(f)) if f == field),
        "{}: {r:?}",
        String::from_utf8_lossy(frame)
    );
    assert_eq!(r.error.code(), ErrorCode::InvalidParams);
    assert_eq!(r.reply_to, Some(Id::Num(4)));
}

#[test]
fn escaped_names_are_refused_where_names_are_looked_up() {
    let frames: [(&[u8], &str); 7] = [
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"execute","params":{"tool":"\u0073ink","arguments":{}}}"#,
            "tool",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools.call","params":{"node":"dev-1","tool":"s\u0069nk","arguments":{}}}"#,
            "tool",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools.call","params":{"node":"dev\u002d1","tool":"sink","arguments":{}}}"#,
            "node",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools.resolve","params":{"tool":"\u0073ink"}}"#,
            "tool",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools.list","params":{"prefix":"\u0073"}}"#,
            "prefix",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools.list","params":{"node":"d\u0065v-1"}}"#,
            "node",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"unregister","params":{"names":["other","\u0073ink"]}}"#,
            "names",
        ),
    ];
    for (f, field) in frames {
        refused(f, field);
    }
    // A node decodes execute the same way.
    let r = codec::decode_for_node(frames[0].0, Encoding::Json, &Limits::default()).unwrap_err();
    assert!(matches!(
        r.error,
        DecodeError::InvalidParams(FieldError::Invalid("tool"))
    ));
    // Written plainly, the same frames decode.
    for f in [
        &br#"{"jsonrpc":"2.0","id":4,"method":"execute","params":{"tool":"sink","arguments":{}}}"#
            [..],
        br#"{"jsonrpc":"2.0","id":4,"method":"tools.list","params":{"prefix":"s","node":"dev-1"}}"#,
        br#"{"jsonrpc":"2.0","id":4,"method":"unregister","params":{"names":["sink"]}}"#,
    ] {
        assert!(codec::decode(f, Encoding::Json, &Limits::default()).is_ok());
    }
}

#[test]
fn escaped_names_never_equal_plain_ones() {
    // A string id is text, not a name: the decoder keeps it as written, escapes in.
    let Ok(Message::Request { id: Id::Str(s), .. }) = codec::decode(
        br#"{"jsonrpc":"2.0","id":"\u0073ink","method":"ping"}"#,
        Encoding::Json,
        &Limits::default(),
    ) else {
        panic!("ping")
    };
    assert!(s.eq_str("sink"), "as text it is sink");
    assert!(!s.eq_name("sink"), "as a name it is not");
    assert!(Str::new("sink").eq_name("sink"));
    assert!(!Str::new("sink").eq_name("sin"));
}

#[test]
fn gateway_keeps_a_tool_an_escaped_unregister_names() {
    let mut gw: Connection<'static, Fixed<8, 16>> =
        Connection::new(GatewayConfig::new("gw"), Instant(0));
    let mut reply = [0u8; 1024];
    let hello = br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true},"max_frame":4096,"max_in_flight":2}}"#;
    let _ = gw.handle_frame(Instant(0), hello, &mut reply);
    assert_eq!(gw.state(), State::Ready(Role::Node));
    let register = br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"sink","description":"","input_schema":{}},{"name":"\u0073ource","description":"","input_schema":{}}]}}"#;
    let _ = gw.handle_frame(Instant(0), register, &mut reply);
    assert!(gw.has_tool("sink"));
    assert!(!gw.has_tool("source"), "an escaped name is a bad name");
    let unregister =
        br#"{"jsonrpc":"2.0","id":2,"method":"unregister","params":{"names":["\u0073ink"]}}"#;
    let h = gw.handle_frame(Instant(1), unregister, &mut reply);
    assert!(h.reply > 0);
    match codec::decode(&reply[..h.reply], Encoding::Json, &Limits::default()).unwrap() {
        Message::Response { id, result: Err(e) } => {
            assert_eq!(id, Id::Num(2));
            assert_eq!(e.code, ErrorCode::InvalidParams.code());
        }
        m => panic!("{m:?}"),
    }
    assert!(gw.has_tool("sink"));
}

#[test]
fn postcard_refuses_names_json_could_only_write_escaped() {
    // No escapes in postcard, but the same frame in JSON would need one: refused alike, so a
    // frame valid in one encoding is valid in the other.
    for tool in ["a\"b", "a\\b", "a\nb"] {
        let r = Request::Execute(Execute {
            tool: Str::new(tool),
            arguments: toolwire_core::Json::EMPTY_OBJECT,
            deadline_ms: None,
        });
        for enc in [Encoding::Json, Encoding::Postcard] {
            let mut out = [0u8; 256];
            let n = codec::encode_request(enc, Id::Num(4), &r, &mut out).unwrap();
            let rej = codec::decode(&out[..n], enc, &Limits::default()).unwrap_err();
            assert!(
                matches!(
                    rej.error,
                    DecodeError::InvalidParams(FieldError::Invalid("tool"))
                ),
                "{enc:?} {tool:?}: {rej:?}"
            );
            assert_eq!(rej.reply_to, Some(Id::Num(4)));
        }
    }
}
