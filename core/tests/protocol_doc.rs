//! PROTOCOL.md's examples are produced by the encoder: this test encodes each example frame in
//! both encodings and checks that PROTOCOL.md holds exactly those bytes, and that the bytes
//! decode back. `UPDATE_PROTOCOL_EXAMPLES=1 cargo test --test protocol_doc` rewrites the blocks.

use std::fmt::Write as _;

use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::stream::encode_frame;
use toolwire_core::{Encoding, Id, Json, List, Str};

const SCHEMA: &[u8] = br#"{"type":"object","properties":{"channel":{"type":"integer","minimum":0,"maximum":3}},"required":["channel"]}"#;

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for line in bytes.chunks(16) {
        let l: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        s.push_str(&l.join(" "));
        s.push('\n');
    }
    s
}

enum Ex<'a> {
    Msg(Message<'a>),
    Result(&'a dyn Fn(Encoding, &mut [u8]) -> usize),
}

fn block(name: &str, ex: &Ex<'_>) -> String {
    let mut out = String::new();
    for enc in [Encoding::Json, Encoding::Postcard] {
        let mut buf = vec![0u8; 4096];
        let n = match ex {
            Ex::Msg(m) => codec::encode(enc, m, &mut buf).unwrap(),
            Ex::Result(f) => f(enc, &mut buf),
        };
        let bytes = &buf[..n];
        // Every example decodes back.
        let decoded = codec::decode(bytes, enc, &Limits::default()).unwrap();
        if let Ex::Msg(m) = ex {
            assert_eq!(&decoded, m, "{name}");
        }
        match enc {
            Encoding::Json => {
                writeln!(
                    out,
                    "JSON ({n} bytes):\n\n```json\n{}\n```\n",
                    std::str::from_utf8(bytes).unwrap()
                )
                .unwrap();
            }
            Encoding::Postcard => {
                writeln!(out, "postcard ({n} bytes):\n\n```text\n{}```", hex(bytes)).unwrap();
            }
        }
    }
    out
}

fn examples() -> Vec<(&'static str, String)> {
    let tool = ToolDef {
        name: Str::new("read_sensor"),
        description: Str::new("Read a temperature channel (milli-degrees C)."),
        input_schema: Json::trusted(SCHEMA),
        output_schema: None,
        annotations: Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
    };
    let tools = [tool];
    let accepted = [Str::new("read_sensor")];
    let mut v = vec![];
    let hello = Message::Request {
        id: Id::Num(0),
        request: Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            role: Role::Node,
            id: Str::new("dev-1"),
            token: Some(Str::new("s3cret")),
            encodings: Encodings::BOTH,
            max_frame: 1024,
            max_in_flight: 4,
        }),
    };
    v.push(("hello", block("hello", &Ex::Msg(hello))));
    let welcome = |enc: Encoding, buf: &mut [u8]| {
        codec::encode_result(
            enc,
            Id::Num(0),
            &Welcome {
                version: 1,
                encoding: Encoding::Postcard,
                max_frame: 65536,
                max_in_flight: 4,
                heartbeat_ms: 10000,
                gateway: Str::new("gw"),
            },
            buf,
        )
        .unwrap()
    };
    v.push(("welcome", block("welcome", &Ex::Result(&welcome))));
    let register = Message::Request {
        id: Id::Num(1),
        request: Request::Register(Register {
            tools: List::from_slice(&tools),
        }),
    };
    v.push(("register", block("register", &Ex::Msg(register))));
    let ack = |enc: Encoding, buf: &mut [u8]| {
        codec::encode_result(
            enc,
            Id::Num(1),
            &RegisterAck {
                accepted: List::from_slice(&accepted),
                rejected: List::empty(),
            },
            buf,
        )
        .unwrap()
    };
    v.push(("register-ack", block("register-ack", &Ex::Result(&ack))));
    let execute = Message::Request {
        id: Id::Num(7),
        request: Request::Execute(Execute {
            tool: Str::new("read_sensor"),
            arguments: Json::trusted(br#"{"channel":2}"#),
            deadline_ms: Some(5000),
        }),
    };
    v.push(("execute", block("execute", &Ex::Msg(execute))));
    let result = |enc: Encoding, buf: &mut [u8]| {
        codec::encode_result(
            enc,
            Id::Num(7),
            &Json::trusted(br#"{"milli_c":21375}"#),
            buf,
        )
        .unwrap()
    };
    v.push(("result", block("result", &Ex::Result(&result))));
    let error = Message::Response {
        id: Id::Num(7),
        result: Err(ErrorObject {
            code: -32002,
            message: Str::new("channel must be 0..=3"),
            data: None,
        }),
    };
    v.push(("error", block("error", &Ex::Msg(error))));
    let progress = Message::Notification(Notification::Progress(Progress {
        id: Id::Num(8),
        progress: 50,
        total: Some(100),
        message: Some(Str::new("calibrating")),
        partial: None,
    }));
    v.push(("progress", block("progress", &Ex::Msg(progress))));
    let cancel = Message::Notification(Notification::Cancel(Cancel {
        id: Id::Num(8),
        reason: Some(Str::new("deadline passed")),
    }));
    v.push(("cancel", block("cancel", &Ex::Msg(cancel))));
    let ask = Message::Request {
        id: Id::Num(2),
        request: Request::Ask(Ask {
            call: Id::Num(9),
            kind: AskKind::Permission,
            prompt: Str::new("Open valve 3?"),
            schema: None,
        }),
    };
    v.push(("ask", block("ask", &Ex::Msg(ask))));
    let answer = |enc: Encoding, buf: &mut [u8]| {
        codec::encode_result(enc, Id::Num(2), &Json::trusted(b"true"), buf).unwrap()
    };
    v.push(("answer", block("answer", &Ex::Result(&answer))));
    let ping = Message::Request {
        id: Id::Num(12),
        request: Request::Ping,
    };
    v.push(("ping", block("ping", &Ex::Msg(ping))));
    let pong =
        |enc: Encoding, buf: &mut [u8]| codec::encode_result(enc, Id::Num(12), &(), buf).unwrap();
    v.push(("pong", block("pong", &Ex::Result(&pong))));
    let goodbye = Message::Notification(Notification::Goodbye(Goodbye {
        reason: GoodbyeReason::Shutdown,
        message: None,
    }));
    v.push(("goodbye", block("goodbye", &Ex::Msg(goodbye))));
    let call = Message::Request {
        id: Id::Str(Str::new("c1")),
        request: Request::Call(Call {
            node: Str::new("dev-1"),
            tool: Str::new("read_sensor"),
            arguments: Json::trusted(br#"{"channel":2}"#),
            deadline_ms: Some(5000),
        }),
    };
    v.push(("tools-call", block("tools-call", &Ex::Msg(call))));
    let call_with = Message::Request {
        id: Id::Str(Str::new("c2")),
        request: Request::CallWith(CallWith {
            node: Str::new("dev-1"),
            tool: Str::new("fs_read"),
            arguments: Json::trusted(br#"{"path":"log"}"#),
            deadline_ms: None,
            cache: Some(false),
            max_result_bytes: Some(16),
        }),
    };
    v.push((
        "tools-call-with",
        block("tools-call-with", &Ex::Msg(call_with)),
    ));
    let held = |enc: Encoding, buf: &mut [u8]| {
        let body = Budgeted {
            value: None,
            held: Some(Held {
                handle: Str::new("r1"),
                total_bytes: 34,
                page: Str::new(r#""boot ok\nsensor"#),
                next_offset: 16,
            }),
        };
        codec::encode_result(enc, Id::Str(Str::new("c2")), &body, buf).unwrap()
    };
    v.push(("budgeted-held", block("budgeted-held", &Ex::Result(&held))));
    let read = Message::Request {
        id: Id::Num(6),
        request: Request::ReadResult(ReadResult {
            handle: Str::new("r1"),
            offset: 16,
            length: Some(64),
        }),
    };
    v.push(("results-read", block("results-read", &Ex::Msg(read))));
    let page = |enc: Encoding, buf: &mut [u8]| {
        let body = ResultPage {
            page: Str::new(r#" ok\nvalve open\n""#),
            total_bytes: 34,
            next_offset: None,
        };
        codec::encode_result(enc, Id::Num(6), &body, buf).unwrap()
    };
    v.push(("result-page", block("result-page", &Ex::Result(&page))));
    let log = Message::Notification(Notification::Log(Log {
        id: Some(Id::Num(7)),
        level: LogLevel::Warning,
        message: Str::new("valve 2 slow to close"),
        data: None,
    }));
    v.push(("log", block("log", &Ex::Msg(log))));
    let list = Message::Request {
        id: Id::Num(3),
        request: Request::ListTools(ListTools {
            prefix: Some(Str::new("read_")),
            node: None,
            cursor: None,
            limit: Some(50),
        }),
    };
    v.push(("tools-list", block("tools-list", &Ex::Msg(list))));
    let patterns = [Str::new("dev-*/read_*"), Str::new("echo")];
    let scope = Message::Request {
        id: Id::Num(4),
        request: Request::Scope(Scope {
            tools: List::from_slice(&patterns),
        }),
    };
    v.push(("tools-scope", block("tools-scope", &Ex::Msg(scope))));
    let rules = [
        Rule {
            tool: Str::new("valve"),
            kind: Some(AskKind::Permission),
            prompt: Some(Str::new("Drain*")),
            decision: Decision::Forward,
            answer: None,
        },
        Rule {
            tool: Str::new("*/valve"),
            kind: Some(AskKind::Permission),
            prompt: None,
            decision: Decision::Allow,
            answer: None,
        },
    ];
    let set = Message::Request {
        id: Id::Num(5),
        request: Request::SetRules(SetRules {
            rules: List::from_slice(&rules),
        }),
    };
    v.push(("rules-set", block("rules-set", &Ex::Msg(set))));
    let entries = [ToolEntry {
        node: Str::new("dev-1"),
        tool: tools[0],
    }];
    let page = |enc: Encoding, buf: &mut [u8]| {
        codec::encode_result(
            enc,
            Id::Num(3),
            &ToolsPage {
                tools: List::from_slice(&entries),
                next_cursor: None,
            },
            buf,
        )
        .unwrap()
    };
    v.push(("tools-page", block("tools-page", &Ex::Result(&page))));

    // Stream framing: the postcard execute above, COBS-encoded with its delimiter.
    let mut buf = vec![0u8; 256];
    let n = codec::encode(
        Encoding::Postcard,
        &Message::Request {
            id: Id::Num(7),
            request: Request::Execute(Execute {
                tool: Str::new("read_sensor"),
                arguments: Json::trusted(br#"{"channel":2}"#),
                deadline_ms: Some(5000),
            }),
        },
        &mut buf,
    )
    .unwrap();
    let mut wire = vec![0u8; 256];
    let m = encode_frame(&buf[..n], &mut wire).unwrap();
    v.push((
        "stream",
        format!(
            "On a byte stream ({m} bytes):\n\n```text\n{}```",
            hex(&wire[..m])
        ),
    ));
    v
}

#[test]
fn protocol_md_examples_are_exact() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md");
    let mut doc = std::fs::read_to_string(path).expect("PROTOCOL.md at the repository root");
    let update = std::env::var_os("UPDATE_PROTOCOL_EXAMPLES").is_some();
    for (name, body) in examples() {
        let begin = format!("<!-- BEGIN example {name} -->\n");
        let end = format!("<!-- END example {name} -->");
        let start = doc
            .find(&begin)
            .unwrap_or_else(|| panic!("PROTOCOL.md lacks example `{name}`"))
            + begin.len();
        let stop = start
            + doc[start..]
                .find(&end)
                .unwrap_or_else(|| panic!("unterminated example `{name}`"));
        if update {
            doc.replace_range(start..stop, &body);
        } else {
            assert_eq!(
                &doc[start..stop],
                body,
                "PROTOCOL.md example `{name}` differs from the encoder"
            );
        }
    }
    if update {
        std::fs::write(path, doc).unwrap();
    }
}
