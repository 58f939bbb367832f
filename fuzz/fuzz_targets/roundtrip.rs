//! Frames built from arbitrary typed fields — every request, notification, result and error
//! kind, strings with any characters, JSON values from arbitrary trees — encode in both
//! encodings and decode back equal.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolwire_core::codec::{self, DecodeError, Limits, Message, Rejected};
use toolwire_core::frame::*;
use toolwire_core::wire::FieldError;
use toolwire_core::{Encoding, Id, Json, List, Str};
use toolwire_fuzz::*;

#[derive(Arbitrary, Debug)]
enum Frame {
    Request { id: ArbId, request: ArbRequest },
    Notification(ArbNotification),
    Result { id: AnyId, result: ArbResult },
    Error { id: AnyId, error: ArbError },
}

#[derive(Arbitrary, Debug)]
enum ArbResult {
    Json(JsonText),
    Empty,
    Welcome {
        version: u16,
        postcard: bool,
        max_frame: u32,
        max_in_flight: u16,
        heartbeat_ms: u32,
        gateway: String,
    },
    RegisterAck {
        accepted: Vec<String>,
        rejected: Vec<(String, u8)>,
    },
    NodesPage {
        nodes: Vec<(String, u32, u32, bool)>,
        next_cursor: Option<String>,
    },
    ToolsPage {
        tools: Vec<(String, ArbTool)>,
        next_cursor: Option<String>,
    },
    Resolved(Vec<String>),
}

/// Encodes `$v` as a result, decodes it as `$t` and checks the typed value comes back (a macro so
/// that `$t` is named with `'_` and takes the lifetime of the decoded bytes).
macro_rules! result_roundtrip {
    ($enc:expr, $id:expr, $t:ty, $v:expr $(,)?) => {{
        let (enc, id, v): (Encoding, Id<'_>, &$t) = ($enc, $id, $v);
        let limits = Limits::default();
        let bytes = encode_vec(|out| codec::encode_result(enc, id, v, out));
        match codec::decode(&bytes, enc, &limits) {
            Ok(Message::Response {
                id: rid,
                result: Ok(p),
            }) => {
                assert_eq!(rid, id);
                assert_eq!(p.encoding(), enc);
                let back = p.decode::<$t>(&limits).unwrap_or_else(|e| {
                    panic!(
                        "{enc:?} result did not decode: {e:?}\n{:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
                assert_eq!(back, *v, "{enc:?} result changed");
                // The frame as a whole re-encodes to the same bytes.
                let msg = codec::decode(&bytes, enc, &limits).unwrap();
                assert_eq!(encode_vec(|out| codec::encode(enc, &msg, out)), bytes);
            }
            other => panic!(
                "{enc:?} result frame did not decode: {other:?}\n{:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }};
}

fn check_result(enc: Encoding, id: Id<'_>, r: &ArbResult) {
    match r {
        ArbResult::Json(j) => result_roundtrip!(enc, id, Json<'_>, &j.json()),
        ArbResult::Empty => result_roundtrip!(enc, id, (), &()),
        ArbResult::Welcome {
            version,
            postcard,
            max_frame,
            max_in_flight,
            heartbeat_ms,
            gateway,
        } => result_roundtrip!(
            enc,
            id,
            Welcome<'_>,
            &Welcome {
                version: *version,
                encoding: encoding(*postcard),
                max_frame: *max_frame,
                max_in_flight: *max_in_flight,
                heartbeat_ms: *heartbeat_ms,
                gateway: Str::new(gateway),
            },
        ),
        ArbResult::RegisterAck { accepted, rejected } => {
            let acc: Vec<Str<'_>> = accepted.iter().map(|s| Str::new(s)).collect();
            let rej: Vec<Rejection<'_>> = rejected
                .iter()
                .map(|(n, r)| Rejection {
                    name: Str::new(n),
                    reason: pick(&REJECT_REASONS, *r),
                })
                .collect();
            result_roundtrip!(
                enc,
                id,
                RegisterAck<'_>,
                &RegisterAck {
                    accepted: List::from_slice(&acc),
                    rejected: List::from_slice(&rej),
                },
            )
        }
        ArbResult::NodesPage { nodes, next_cursor } => {
            let infos: Vec<NodeInfo<'_>> = nodes
                .iter()
                .map(|(n, tools, in_flight, postcard)| NodeInfo {
                    id: Str::new(n),
                    tools: *tools,
                    in_flight: *in_flight,
                    encoding: encoding(*postcard),
                })
                .collect();
            result_roundtrip!(
                enc,
                id,
                NodesPage<'_>,
                &NodesPage {
                    nodes: List::from_slice(&infos),
                    next_cursor: opt_str(next_cursor),
                },
            )
        }
        ArbResult::ToolsPage { tools, next_cursor } => {
            let entries: Vec<ToolEntry<'_>> = tools
                .iter()
                .map(|(node, t)| ToolEntry {
                    node: Str::new(node),
                    tool: t.def(),
                })
                .collect();
            result_roundtrip!(
                enc,
                id,
                ToolsPage<'_>,
                &ToolsPage {
                    tools: List::from_slice(&entries),
                    next_cursor: opt_str(next_cursor),
                },
            )
        }
        ArbResult::Resolved(nodes) => {
            let n: Vec<Str<'_>> = nodes.iter().map(|s| Str::new(s)).collect();
            result_roundtrip!(
                enc,
                id,
                Resolved<'_>,
                &Resolved {
                    nodes: List::from_slice(&n),
                },
            )
        }
    }
}

/// Encodes a message, decodes it and compares.
fn message_roundtrip(enc: Encoding, msg: &Message<'_>) {
    let limits = Limits::default();
    let bytes = encode_vec(|out| codec::encode(enc, msg, out));
    match codec::decode(&bytes, enc, &limits) {
        Ok(back) => {
            assert_eq!(back, *msg, "{enc:?} frame changed");
            assert_eq!(encode_vec(|out| codec::encode(enc, &back, out)), bytes);
        }
        Err(r) => panic!(
            "{enc:?} frame did not decode: {r:?}\n{:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

fuzz_target!(|frame: Frame| {
    for enc in [Encoding::Json, Encoding::Postcard] {
        match &frame {
            Frame::Request { id, request } => {
                let tools = tool_defs(request.tools());
                let names = request.names();
                let msg = Message::Request {
                    id: id.id(),
                    request: request.request(&tools, &names),
                };
                if let Message::Request { request: r, .. } = &msg
                    && escaped_lookup(r)
                {
                    let bytes = encode_vec(|out| codec::encode(enc, &msg, out));
                    let r = codec::decode(&bytes, enc, &Limits::default());
                    assert!(
                        matches!(
                            r,
                            Err(Rejected {
                                error: DecodeError::InvalidParams(FieldError::Invalid(_)),
                                ..
                            })
                        ),
                        "{enc:?} name needing escapes: {r:?}"
                    );
                    continue;
                }
                message_roundtrip(enc, &msg);
            }
            Frame::Notification(n) => {
                message_roundtrip(enc, &Message::Notification(n.notification()));
            }
            Frame::Result {
                id: AnyId::Id(id),
                result,
            } => check_result(enc, id.id(), result),
            Frame::Result {
                id: AnyId::Null,
                result: _,
            } => {
                // A result must answer a readable id: refused alike in both encodings.
                let bytes = encode_vec(|out| codec::encode_result(enc, Id::Null, &(), out));
                let r = codec::decode(&bytes, enc, &Limits::default());
                assert!(
                    matches!(
                        r,
                        Err(Rejected {
                            error: DecodeError::BadId,
                            reply_to: None
                        })
                    ),
                    "{enc:?} result with a null id: {r:?}"
                );
            }
            Frame::Error { id, error } => {
                let msg = Message::Response {
                    id: id.id(),
                    result: Err(error.error()),
                };
                message_roundtrip(enc, &msg);
            }
        }
    }
    // Raw JSON results keep their exact text in both encodings.
    if let Frame::Result {
        result: ArbResult::Json(j),
        ..
    } = &frame
    {
        assert!(
            Json::parse(j.0.as_bytes()).is_ok(),
            "generator produced invalid JSON"
        );
    }
});
