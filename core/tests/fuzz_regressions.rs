//! Inputs found by the fuzz targets in `fuzz/`, minimised, with the behaviour they broke.

use toolwire_core::codec::{DecodeError, Limits, Rejected, decode};
use toolwire_core::frame::{Request, Role};
use toolwire_core::gateway::{CallError, Connection, Event, GatewayConfig, MAX_REQUESTS, State};
use toolwire_core::stream::{Deframed, Deframer, FrameError};
use toolwire_core::{Encoding, Id, Instant};

const HELLO: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true},"max_frame":4096,"max_in_flight":2}}"#;

fn ready_gateway() -> Connection<'static, 8, 16> {
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
    let mut fresh: Connection<'static, 8, 16> =
        Connection::new(GatewayConfig::new("gw"), Instant(0));
    assert_eq!(
        fresh.request(&Request::Ping, &mut out),
        Err(CallError::NotReady)
    );

    let mut gw = ready_gateway();
    for _ in 0..MAX_REQUESTS {
        gw.request(&Request::Ping, &mut out).unwrap();
    }
    assert_eq!(gw.request(&Request::Ping, &mut out), Err(CallError::Busy));
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
