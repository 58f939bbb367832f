//! One depth rule for both encodings (PROTOCOL.md section 9): a JSON value may nest as deep as
//! its place in the frame's JSON encoding leaves of the limit, so a frame passes in postcard
//! exactly when it passes in JSON, and what a gateway forwards from a postcard peer fits a JSON
//! peer with the same limit.

use toolwire_core::codec::{self, DecodeError, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::gateway::{Connection, Fixed, GatewayConfig, State};
use toolwire_core::json::{DEFAULT_MAX_DEPTH, JsonErrorKind};
use toolwire_core::wire::FieldError;
use toolwire_core::{Encoding, ErrorCode, Id, Instant, Json, List, Str};

const L: u16 = DEFAULT_MAX_DEPTH;

/// An object nesting `n` levels deep (itself included).
fn nested(n: u16) -> String {
    let n = usize::from(n);
    format!(r#"{{"a":{}0{}}}"#, "[".repeat(n - 1), "]".repeat(n - 1))
}

fn encode(
    enc: Encoding,
    f: impl Fn(Encoding, &mut [u8]) -> Result<usize, toolwire_core::EncodeError>,
) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let n = f(enc, &mut out).unwrap();
    out.truncate(n);
    out
}

fn too_deep(e: &DecodeError) -> bool {
    matches!(e,
        DecodeError::Json(j) | DecodeError::InvalidParams(FieldError::Json(j)) | DecodeError::BadResult(FieldError::Json(j))
        if j.kind == JsonErrorKind::TooDeep)
}

/// Decodes the frame in both encodings; both accept it or both refuse it as too deep. Returns
/// whether it was accepted.
fn same_verdict(
    f: impl Fn(Encoding, &mut [u8]) -> Result<usize, toolwire_core::EncodeError>,
) -> bool {
    let limits = Limits::default();
    let mut verdicts = Vec::new();
    for enc in [Encoding::Json, Encoding::Postcard] {
        let bytes = encode(enc, &f);
        let v = match codec::decode(&bytes, enc, &limits) {
            // A result is read with the type its request expects.
            Ok(Message::Response { result: Ok(p), .. }) => match p.decode::<Json<'_>>(&limits) {
                Ok(_) => true,
                Err(e) => {
                    assert!(too_deep(&e), "{enc:?}: {e:?}");
                    false
                }
            },
            Ok(_) => true,
            Err(r) => {
                assert!(too_deep(&r.error), "{enc:?}: {r:?}");
                false
            }
        };
        verdicts.push(v);
    }
    assert_eq!(verdicts[0], verdicts[1], "JSON and postcard disagree");
    verdicts[0]
}

#[test]
fn arguments_nest_at_most_limit_minus_two_in_both_encodings() {
    for (n, fits) in [(L - 2, true), (L - 1, false), (L, false)] {
        let args = nested(n);
        let ex = Execute {
            tool: Str::new("t"),
            arguments: Json::trusted(args.as_bytes()),
            deadline_ms: None,
        };
        let r = Request::Execute(ex);
        assert_eq!(
            same_verdict(|enc, out| codec::encode_request(enc, Id::Num(3), &r, out)),
            fits,
            "arguments {n} deep"
        );
        let call = Request::Call(Call {
            node: Str::new("n"),
            tool: Str::new("t"),
            arguments: Json::trusted(args.as_bytes()),
            deadline_ms: None,
        });
        assert_eq!(
            same_verdict(|enc, out| codec::encode_request(enc, Id::Num(3), &call, out)),
            fits
        );
    }
    // The postcard refusal is answered like other bad params.
    let args = nested(L);
    let r = Request::Execute(Execute {
        tool: Str::new("t"),
        arguments: Json::trusted(args.as_bytes()),
        deadline_ms: None,
    });
    let bytes = encode(Encoding::Postcard, |enc, out| {
        codec::encode_request(enc, Id::Num(3), &r, out)
    });
    let rej = codec::decode(&bytes, Encoding::Postcard, &Limits::default()).unwrap_err();
    assert_eq!(rej.error.code(), ErrorCode::InvalidParams);
    assert_eq!(rej.reply_to, Some(Id::Num(3)));
}

#[test]
fn results_partial_data_and_schemas_follow_their_place() {
    for (n, fits) in [(L - 1, true), (L, false)] {
        let v = nested(n);
        let value = Json::trusted(v.as_bytes());
        assert_eq!(
            same_verdict(|enc, out| codec::encode_result(enc, Id::Num(3), &value, out)),
            fits,
            "result {n} deep"
        );
    }
    for (n, fits) in [(L - 2, true), (L - 1, false)] {
        let v = nested(n);
        let value = Json::trusted(v.as_bytes());
        let p = Notification::Progress(Progress {
            id: Id::Num(1),
            progress: 1,
            total: None,
            message: None,
            partial: Some(value),
        });
        assert_eq!(
            same_verdict(|enc, out| codec::encode_notification(enc, &p, out)),
            fits,
            "partial {n} deep"
        );
        let e = ErrorObject {
            code: 1,
            message: Str::new("m"),
            data: Some(value),
        };
        assert_eq!(
            same_verdict(|enc, out| codec::encode_error(enc, Id::Num(3), &e, out)),
            fits,
            "data {n} deep"
        );
    }
    for (n, fits) in [(L - 4, true), (L - 3, false)] {
        let v = nested(n);
        let tools = [ToolDef {
            name: Str::new("t"),
            description: Str::new(""),
            input_schema: Json::trusted(v.as_bytes()),
            output_schema: None,
            annotations: Annotations::NONE,
        }];
        let r = Request::Register(Register {
            tools: List::from_slice(&tools),
        });
        assert_eq!(
            same_verdict(|enc, out| codec::encode_request(enc, Id::Num(3), &r, out)),
            fits,
            "schema {n} deep"
        );
    }
}

#[test]
fn gateway_registers_only_schemas_a_listing_can_carry() {
    for enc in [Encoding::Json, Encoding::Postcard] {
        let mut gw: Connection<'static, Fixed<8, 16>> =
            Connection::new(GatewayConfig::new("gw"), Instant(0));
        let mut reply = [0u8; 4096];
        let hello = Hello {
            min_version: 1,
            max_version: 1,
            role: Role::Node,
            id: Str::new("dev-1"),
            token: None,
            encodings: Encodings::BOTH,
            max_frame: 4096,
            max_in_flight: 2,
        };
        let prefer = if enc == Encoding::Postcard {
            Encodings {
                json: false,
                postcard: true,
            }
        } else {
            Encodings::JSON
        };
        let hello = Hello {
            encodings: prefer,
            ..hello
        };
        let bytes = encode(enc, |e, out| {
            codec::encode_request(e, Id::Num(0), &Request::Hello(hello), out)
        });
        let _ = gw.handle_frame(Instant(0), &bytes, &mut reply);
        assert_eq!(gw.state(), State::Ready(Role::Node));
        assert_eq!(gw.encoding(), enc);
        let deep = nested(L - 4);
        let fits = nested(L - 5);
        let tools = [
            ToolDef {
                name: Str::new("deep"),
                description: Str::new(""),
                input_schema: Json::trusted(deep.as_bytes()),
                output_schema: None,
                annotations: Annotations::NONE,
            },
            ToolDef {
                name: Str::new("fits"),
                description: Str::new(""),
                input_schema: Json::trusted(fits.as_bytes()),
                output_schema: Some(Json::trusted(fits.as_bytes())),
                annotations: Annotations::NONE,
            },
            ToolDef {
                name: Str::new("deep_output"),
                description: Str::new(""),
                input_schema: Json::EMPTY_OBJECT,
                output_schema: Some(Json::trusted(deep.as_bytes())),
                annotations: Annotations::NONE,
            },
        ];
        let r = Request::Register(Register {
            tools: List::from_slice(&tools),
        });
        let bytes = encode(enc, |e, out| codec::encode_request(e, Id::Num(1), &r, out));
        let h = gw.handle_frame(Instant(0), &bytes, &mut reply);
        assert_eq!(h.error, None, "{enc:?}");
        assert!(gw.has_tool("fits"));
        assert!(!gw.has_tool("deep"), "{enc:?}");
        assert!(!gw.has_tool("deep_output"), "{enc:?}");
    }
}
