//! Inputs found by the fuzz targets in `fuzz/`, minimised, with the behaviour they broke.

use toolwire_core::codec::{DecodeError, Limits, Message, Rejected, decode, encode};
use toolwire_core::frame::{GoodbyeReason, Notification, Request, Role, ToolDef};
use toolwire_core::gateway::{
    Auth, Connection, Event, Fixed, GatewayConfig, MAX_REQUESTS, SendError, State,
};
use toolwire_core::node::{CloseReason, Node, NodeConfig, NodeEvent, NodeState};
use toolwire_core::stream::{Deframed, Deframer, FrameError};
use toolwire_core::{Duration, EncodeError, Encoding, ErrorCode, Id, Instant, Json};

const HELLO: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true},"max_frame":4096,"max_in_flight":2}}"#;

fn ready_gateway() -> Connection<'static, Fixed<8, 16>> {
    let mut gw = Connection::new(GatewayConfig::new("gw"), Instant(0));
    let mut reply = [0u8; 512];
    let h = gw.handle_frame(Instant(0), HELLO, &mut reply);
    assert_eq!(h.error, None);
    assert_eq!(gw.state(), State::Ready(Role::Node));
    gw
}

/// gateway_sm: `Connection::request` never remembered its id, so the response to it was counted
/// as unknown instead of coming back as `Event::Response`.
#[test]
fn gateway_reports_the_response_to_its_own_request() {
    let mut gw = ready_gateway();
    let mut out = [0u8; 256];
    let (id, _) = gw.request(&Request::Ping, &mut out).unwrap();
    assert_eq!(id, 1);
    let mut reply = [0u8; 256];
    let h = gw.handle_frame(
        Instant(1),
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#,
        &mut reply,
    );
    assert!(
        matches!(h.event, Some(Event::Response { id: 1, result: Err(ref e) }) if e.code == -32601),
        "{h:?}"
    );
    assert_eq!(gw.stats().unknown_responses, 0);

    // Answered once: a second response is unknown.
    let h = gw.handle_frame(
        Instant(2),
        br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        &mut reply,
    );
    assert_eq!(h.event, None);
    assert_eq!(gw.stats().unknown_responses, 1);
}

/// The table behind `request` is bounded: beyond `MAX_REQUESTS` outstanding, `Busy`; and no
/// request before the handshake, whose response could never be reported.
#[test]
fn gateway_requests_are_bounded_and_need_the_handshake() {
    let mut out = [0u8; 256];
    let mut fresh: Connection<'static, Fixed<8, 16>> =
        Connection::new(GatewayConfig::new("gw"), Instant(0));
    assert_eq!(
        fresh.request(&Request::Ping, &mut out),
        Err(SendError::NotReady)
    );

    let mut gw = ready_gateway();
    for _ in 0..MAX_REQUESTS {
        gw.request(&Request::Ping, &mut out).unwrap();
    }
    assert_eq!(gw.request(&Request::Ping, &mut out), Err(SendError::Busy));
    let mut reply = [0u8; 256];
    let h = gw.handle_frame(
        Instant(1),
        br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        &mut reply,
    );
    assert!(matches!(
        h.event,
        Some(Event::Response {
            id: 3,
            result: Ok(_)
        })
    ));
    assert!(gw.request(&Request::Ping, &mut out).is_ok());
}

/// decode_postcard: raw JSON in a postcard frame was refused with leading whitespace but taken
/// with trailing whitespace, which JSON mode trims, so the frame changed when forwarded as JSON.
#[test]
fn postcard_json_with_trailing_whitespace_is_refused() {
    // [3: error][id: Num 1][code: zigzag 1][message: "m"][data: Some("null\t")]
    let frame = [3, 0, 1, 2, 1, b'm', 1, 5, b'n', b'u', b'l', b'l', b'\t'];
    let r = decode(&frame, Encoding::Postcard, &Limits::default());
    assert!(
        matches!(
            r,
            Err(Rejected {
                error: DecodeError::BadResult(_),
                reply_to: None
            })
        ),
        "{r:?}"
    );
    // The same value without the whitespace is fine.
    let frame = [3, 0, 1, 2, 1, b'm', 1, 4, b'n', b'u', b'l', b'l'];
    let r = decode(&frame, Encoding::Postcard, &Limits::default());
    assert!(r.is_ok(), "{r:?}");

    // [0: request][id: Num 7][3: execute][tool: "t"][arguments: "{} "][deadline: None]
    let frame = [0, 0, 7, 3, 1, b't', 3, b'{', b'}', b' ', 0];
    let r = decode(&frame, Encoding::Postcard, &Limits::default());
    assert!(
        matches!(
            r,
            Err(Rejected {
                error: DecodeError::InvalidParams(_),
                reply_to: Some(Id::Num(7))
            })
        ),
        "{r:?}"
    );
}

/// decode_postcard: a `log` whose id is present and null read back in JSON as one without an
/// id (JSON writes both as `null`): postcard refuses it, an absent id is fine.
#[test]
fn a_log_with_a_null_id_is_refused_in_postcard() {
    // [1: notification][4: log][id: Some][Id::Null][level 4][message: 8 bytes][data: None]
    let frame = [1, 4, 1, 2, 4, 8, 0, 0, 0, 0, 0, b'*', 0, 0, 0];
    let r = decode(&frame, Encoding::Postcard, &Limits::default());
    assert!(
        matches!(
            r,
            Err(Rejected {
                error: DecodeError::InvalidParams(_),
                reply_to: None
            })
        ),
        "{r:?}"
    );
    // [id: None]: fine, and the same in JSON.
    let frame = [1, 4, 0, 4, 1, b'm', 0];
    let m = decode(&frame, Encoding::Postcard, &Limits::default()).unwrap();
    let mut buf = [0u8; 128];
    let n = encode(Encoding::Json, &m, &mut buf).unwrap();
    assert_eq!(
        decode(&buf[..n], Encoding::Json, &Limits::default()).unwrap(),
        m
    );
    assert!(matches!(m, Message::Notification(Notification::Log(_))));
}

/// A postcard call with options (variant 13) that sets none reads as a plain call, as the same
/// call does in JSON, so that it is the same frame in both encodings.
#[test]
fn a_call_with_no_options_set_is_a_plain_call() {
    // [0: request][id: Num 1][13][node "n"][tool "t"][arguments "{}"][None][None][None]
    let frame = [0, 0, 1, 13, 1, b'n', 1, b't', 2, b'{', b'}', 0, 0, 0];
    let m = decode(&frame, Encoding::Postcard, &Limits::default()).unwrap();
    assert!(
        matches!(
            m,
            Message::Request {
                request: Request::Call(_),
                ..
            }
        ),
        "{m:?}"
    );
    let mut buf = [0u8; 128];
    let n = encode(Encoding::Json, &m, &mut buf).unwrap();
    assert_eq!(
        decode(&buf[..n], Encoding::Json, &Limits::default()).unwrap(),
        m
    );
}

/// deframer_chunks: a block cut short by a delimiter after more bytes than the buffer holds was
/// reported `Malformed` when it arrived in one piece and `TooLarge` when it arrived byte by byte.
#[test]
fn deframer_outcome_does_not_depend_on_chunking() {
    let stream = [0x61, 0x27, 0x01, 0x00, 0x02, b'x', 0x00];
    let run = |chunk: usize| {
        let mut d = Deframer::new([0u8; 1]);
        let mut outs = Vec::new();
        for mut piece in stream.chunks(chunk) {
            while !piece.is_empty() {
                let (used, out) = d.push(piece);
                piece = &piece[used..];
                match out {
                    Deframed::NeedMore => {}
                    Deframed::Frame(f) => outs.push(Ok(f.to_vec())),
                    Deframed::Error(e) => outs.push(Err(e)),
                }
            }
        }
        outs
    };
    let expected = vec![Err(FrameError::TooLarge { limit: 1 }), Ok(b"x".to_vec())];
    for chunk in 1..=stream.len() {
        assert_eq!(run(chunk), expected, "chunks of {chunk}");
    }
}

/// decode_json: a frame decoded from JSON with escaped strings, re-encoded as postcard into a
/// buffer too small for it, failed with `EncodeError::Postcard` instead of `BufferTooSmall`
/// with the size needed (postcard reports a full buffer inside `collect_str` as its own error).
#[test]
fn postcard_encoding_of_escaped_strings_reports_the_size_needed() {
    let json = br#"{"jsonrpc":"2.0","method":"progress","params":{"id":7,"progress":1,"message":"caf\u00e9 \ud83d\ude00 \n"}}"#;
    let msg = decode(json, Encoding::Json, &Limits::default()).unwrap();
    let mut small = [0u8; 12];
    let needed = match encode(Encoding::Postcard, &msg, &mut small) {
        Err(EncodeError::BufferTooSmall { needed }) => needed,
        other => panic!("{other:?}"),
    };
    let mut buf = vec![0u8; needed];
    assert_eq!(encode(Encoding::Postcard, &msg, &mut buf), Ok(needed));
    let back = decode(&buf, Encoding::Postcard, &Limits::default()).unwrap();
    assert_eq!(back, msg);
}

const DEFERRED_HELLO: &[u8] = br#"{"jsonrpc":"2.0","id":"h","method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true},"max_frame":4096,"max_in_flight":2}}"#;

fn deferred_gateway() -> Connection<'static, Fixed<8, 16>> {
    let mut config = GatewayConfig::new("gw");
    config.auth = Auth::Deferred;
    let mut gw = Connection::new(config, Instant(0));
    let mut reply = [0u8; 512];
    let h = gw.handle_frame(Instant(0), DEFERRED_HELLO, &mut reply);
    assert!(matches!(h.event, Some(Event::Hello { .. })));
    assert_eq!(gw.state(), State::AwaitAccept);
    gw
}

fn closed_events(gw: &mut Connection<'static, Fixed<8, 16>>) -> usize {
    let mut n = 0;
    while let Some(e) = gw.poll_event() {
        n += usize::from(matches!(e, Event::Closed(_)));
    }
    n
}

/// gateway_sm: `refuse` on a closed connection closed it again and reported `Closed` twice.
#[test]
fn gateway_refuse_twice_closes_once() {
    let mut gw: Connection<'static, Fixed<8, 16>> =
        Connection::new(GatewayConfig::new("gw"), Instant(0));
    let mut out = [0u8; 256];
    assert_eq!(gw.refuse(ErrorCode::Unauthorized, "no", &mut out), Ok(0));
    assert_eq!(gw.refuse(ErrorCode::ParseError, "no", &mut out), Ok(0));
    assert_eq!(closed_events(&mut gw), 1);
    assert_eq!(gw.state(), State::Closed);
}

/// gateway_sm: in deferred mode, an `accept` after the handshake deadline closed the connection
/// welcomed the peer anyway and made the closed connection `Ready` again.
#[test]
fn gateway_accept_after_close_does_nothing() {
    let mut gw = deferred_gateway();
    gw.handle_timeout(Instant(60_000));
    assert_eq!(gw.state(), State::Closed);
    let mut out = [0u8; 512];
    assert_eq!(gw.accept(Instant(60_001), &mut out), Ok(0));
    assert_eq!(gw.state(), State::Closed);
    assert_eq!(gw.poll_timeout(), None);
    assert_eq!(closed_events(&mut gw), 1);
}

/// gateway_sm: `accept` (and `refuse`) into a too-small buffer forgot the hello's id, so a retry
/// with the size asked for sent nothing and the connection stayed in `AwaitAccept`.
#[test]
fn gateway_accept_can_be_retried_with_a_larger_buffer() {
    let mut gw = deferred_gateway();
    let mut small = [0u8; 8];
    let needed = match gw.accept(Instant(1), &mut small) {
        Err(EncodeError::BufferTooSmall { needed }) => needed,
        other => panic!("{other:?}"),
    };
    assert_eq!(gw.state(), State::AwaitAccept);
    let mut out = vec![0u8; needed];
    assert_eq!(gw.accept(Instant(1), &mut out), Ok(needed));
    assert_eq!(gw.state(), State::Ready(Role::Node));

    let mut gw = deferred_gateway();
    assert!(matches!(
        gw.refuse(ErrorCode::Unauthorized, "no", &mut small),
        Err(EncodeError::BufferTooSmall { .. })
    ));
    let mut out = [0u8; 256];
    let n = gw.refuse(ErrorCode::Unauthorized, "no", &mut out).unwrap();
    let r = decode(&out[..n], Encoding::Json, &Limits::default());
    assert!(
        matches!(r, Ok(Message::Response { id: Id::Str(ref s), result: Err(ref e) }) if s.eq_str("h") && e.code == -32006),
        "{r:?}"
    );
    assert_eq!(gw.state(), State::Closed);
}

/// node_sm: a node shut down before its hello went out still sent the hello, and sending it set
/// the state back from `Closed` to `Hello`.
#[test]
fn node_shut_down_before_hello_stays_closed() {
    static TOOLS: [ToolDef<'static>; 0] = [];
    let mut node: Node<'static, 4> = Node::new(NodeConfig::new("dev-1", &TOOLS), Instant(0));
    node.shutdown(GoodbyeReason::Shutdown);
    assert_eq!(node.state(), NodeState::Closed);
    let mut out = [0u8; 256];
    let mut sent = Vec::new();
    while let Some(r) = node.poll_transmit(&mut out) {
        let n = r.unwrap();
        match decode(&out[..n], Encoding::Json, &Limits::default()).unwrap() {
            Message::Notification(Notification::Goodbye(g)) => sent.push(g.reason),
            m => panic!("sent {m:?}"),
        }
    }
    assert_eq!(sent, [GoodbyeReason::Shutdown]);
    assert_eq!(node.state(), NodeState::Closed);
    assert_eq!(
        node.poll_event(),
        Some(NodeEvent::Closed(CloseReason::Local))
    );
    assert_eq!(node.poll_event(), None);
}

/// roundtrip: a result with a null id was accepted in postcard but refused in JSON (with a
/// misleading reason). Only an error may answer a request whose id could not be read.
#[test]
fn result_with_null_id_is_refused_in_both_encodings() {
    let json = br#"{"jsonrpc":"2.0","id":null,"result":{}}"#;
    let postcard = [2, 2, 2, b'{', b'}']; // [2: result][id: Null][result: "{}"]
    for (frame, enc) in [
        (&json[..], Encoding::Json),
        (&postcard[..], Encoding::Postcard),
    ] {
        let r = decode(frame, enc, &Limits::default());
        assert_eq!(
            r,
            Err(Rejected {
                error: DecodeError::BadId,
                reply_to: None
            }),
            "{enc:?}"
        );
    }
    // An error with a null id is how unreadable requests are answered: still fine.
    let error = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#;
    assert!(decode(error, Encoding::Json, &Limits::default()).is_ok());
}

/// gateway_sm (seed `burst-timeout`): `cancel`s shared an 8-entry queue with pings, so when more
/// calls expired at once than it had room for (with `P` = 8, eight calls and a ping due at the
/// same instant) the extra cancels were dropped and the node kept running those calls.
#[test]
fn gateway_sends_a_cancel_for_every_call_that_expires() {
    let mut config = GatewayConfig::new("gw");
    config.heartbeat = Duration::from_millis(1000);
    let mut gw: Connection<'static, Fixed<8, 16>> = Connection::new(config, Instant(0));
    let mut reply = [0u8; 1024];
    let hello = br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true},"max_frame":4096,"max_in_flight":8}}"#;
    let _ = gw.handle_frame(Instant(0), hello, &mut reply);
    let register = br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"t","description":"","input_schema":{}}]}}"#;
    let _ = gw.handle_frame(Instant(0), register, &mut reply);
    let mut out = [0u8; 256];
    let deadline = Some(Duration::from_millis(1000));
    for _ in 0..8 {
        gw.call(Instant(0), "t", Json::EMPTY_OBJECT, deadline, &mut out)
            .unwrap();
    }
    gw.handle_timeout(Instant(1000)); // the ping is due too
    let (mut cancels, mut pings) = (0, 0);
    while let Some(r) = gw.poll_transmit(&mut out) {
        let n = r.unwrap();
        match decode(&out[..n], Encoding::Json, &Limits::default()).unwrap() {
            Message::Notification(Notification::Cancel(_)) => cancels += 1,
            Message::Request {
                request: Request::Ping,
                ..
            } => pings += 1,
            m => panic!("sent {m:?}"),
        }
    }
    assert_eq!((cancels, pings), (8, 1));
}

/// gateway_sm (seed `node-answers-timeout`): the node answered a pending call with `-32003`
/// itself (its own timer from `deadline_ms` fired first). The target counted every `CallDone`
/// with code -32003 as a timeout of the gateway's and expected a `cancel` for it; but the node has
/// ended that call, so the gateway rightly sends none. The invariant was wrong, not the gateway:
/// this pins the behaviour the corrected invariant relies on. Only the gateway's own deadline
/// (reported by `poll_event`) owes the node a `cancel`.
#[test]
fn gateway_sends_no_cancel_for_a_call_the_node_timed_out_itself() {
    let mut gw = ready_gateway();
    let mut reply = [0u8; 1024];
    let register = br#"{"jsonrpc":"2.0","id":1,"method":"register","params":{"tools":[{"name":"t","description":"","input_schema":{}}]}}"#;
    let _ = gw.handle_frame(Instant(0), register, &mut reply);
    let mut out = [0u8; 256];
    let deadline = Some(Duration::from_millis(1000));
    let (a, _) = gw
        .call(Instant(0), "t", Json::EMPTY_OBJECT, deadline, &mut out)
        .unwrap();
    let (b, _) = gw
        .call(Instant(0), "t", Json::EMPTY_OBJECT, deadline, &mut out)
        .unwrap();

    // The node gives up on `a` first and says so.
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32003,"message":"timeout"}}}}"#,
        a.0
    );
    let h = gw.handle_frame(Instant(900), answer.as_bytes(), &mut reply);
    assert!(
        matches!(h.event, Some(Event::CallDone { call, result: Err(ref e) })
            if call == a && e.code == ErrorCode::Timeout.code()),
        "{h:?}"
    );
    assert!(
        gw.poll_transmit(&mut out).is_none(),
        "a cancel for a call the node ended"
    );

    // The gateway's deadline passes for `b`: that one owes the node a cancel.
    gw.handle_timeout(Instant(1000));
    let n = gw.poll_transmit(&mut out).unwrap().unwrap();
    match decode(&out[..n], Encoding::Json, &Limits::default()).unwrap() {
        Message::Notification(Notification::Cancel(c)) => assert_eq!(c.id, Id::Num(b.0)),
        m => panic!("sent {m:?}"),
    }
    assert!(gw.poll_transmit(&mut out).is_none());
    assert!(matches!(
        gw.poll_event(),
        Some(Event::CallDone { call, result: Err(ref e) }) if call == b && e.code == ErrorCode::Timeout.code()
    ));
}
