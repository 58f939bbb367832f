//! The gateway connection state machine under arbitrary sequences of inputs: raw frames, valid
//! frames built from arbitrary fields, time, calls, cancels, answers, closing.
//!
//! Invariants: no panic; `in_flight() <= max_in_flight()`; every call gets at most one
//! `CallDone` (exactly one when the runtime drains events as documented), none after a
//! successful `cancel`; a response to a `request()` comes back as `Event::Response`; after
//! `handle_timeout(now)` the next deadline is in the future (or there is none, and never one once
//! closed); every frame the gateway writes decodes.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::gateway::{
    AskId, Auth, CallId, Connection, Event, Fixed, GatewayConfig, MAX_REQUESTS, SendError, State,
};
use toolwire_core::{Duration, EncodeError, Encoding, ErrorCode, Id, Instant, Json, List, Str};
use toolwire_fuzz::*;

const TOKEN: &str = "s3cret";
const TOOL_NAMES: [&str; 6] = ["echo", "slow", "a.b-c_d", "bad name", "", "x\"y"];
const P: usize = 8;

#[derive(Arbitrary, Debug)]
struct Config {
    auth: u8,
    json: bool,
    postcard: bool,
    prefer_postcard: bool,
    max_in_flight: u16,
    heartbeat_ms: u16,
    handshake_ms: u16,
    max_depth: u8,
}

#[derive(Arbitrary, Debug)]
struct SmallTool {
    name: u8,
    schema: JsonText,
    output: Option<JsonText>,
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// Arbitrary bytes as a frame.
    Raw(Vec<u8>),
    Hello {
        id: ArbId,
        hello: ArbHello,
        postcard: bool,
        /// Replace the token by the right one.
        good_token: bool,
        /// Replace the node id and versions by valid ones.
        sane: bool,
    },
    Register {
        id: ArbId,
        tools: Vec<SmallTool>,
    },
    Unregister {
        id: ArbId,
        names: Vec<u8>,
    },
    /// A response to one of the ids this gateway issued (or another).
    Response {
        to: u8,
        result: Result<JsonText, ArbError>,
    },
    Progress {
        to: u8,
        progress: u64,
        total: Option<u64>,
        message: Option<String>,
        partial: Option<JsonText>,
    },
    Ask {
        id: ArbId,
        to: u8,
        kind: u8,
        prompt: String,
        schema: Option<JsonText>,
    },
    Notify(ArbNotification),
    Request {
        id: ArbId,
        request: ArbRequest,
    },
    Advance(u16),
    /// Jump to the deadline the gateway asked for.
    AdvanceToDeadline,
    Call {
        tool: u8,
        args: JsonObject,
        deadline_ms: Option<u16>,
        out: u16,
    },
    Cancel(u8),
    /// Deferred mode: welcome (or refuse) into a buffer of this size, retried at the size asked.
    Accept(u16),
    Refuse(u8, u16),
    Answer {
        ask: u8,
        answer: Result<JsonText, ArbError>,
    },
    /// `Connection::request` (an ask forwarded to a controller, say).
    GwRequest(ArbRequest),
    Respond {
        id: ArbId,
        result: JsonText,
    },
    Shutdown(u8),
    Transmit,
    Events,
    TransportClosed,
    ReplyBuf(u16),
    /// Several calls with one deadline (they expire together).
    CallMany {
        n: u8,
        deadline_ms: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    /// Drain transmits and events after every action, as the documented runtime loop does.
    strict: bool,
    actions: Vec<Action>,
}

struct Harness {
    gw: Connection<'static, Fixed<P, 16>>,
    now: Instant,
    limits: Limits,
    reply_len: usize,
    /// Ids of `execute` requests issued by `call()`.
    calls: BTreeSet<u64>,
    /// Calls cancelled by `cancel()` while pending.
    cancelled: BTreeSet<u64>,
    /// Calls that got their `CallDone`.
    done: BTreeSet<u64>,
    /// Ids of `request()`s not answered yet, and those answered.
    requests: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    /// Every id the gateway issued (calls, requests, pings), for responses to pick from.
    ids: Vec<u64>,
    asks: Vec<AskId>,
    closed_events: usize,
    /// Calls that timed out or were cancelled: the node must be sent a `cancel` for each.
    cancels_owed: BTreeSet<u64>,
    cancels_sent: BTreeSet<u64>,
}

impl Harness {
    /// `polled`: the event came from `poll_event` (the gateway's own timers and closes), not
    /// from `handle_frame` (a frame the peer sent).
    fn on_event(&mut self, e: &Event<'_>, polled: bool) {
        let _ = format!("{e:?}");
        match e {
            Event::CallDone { call, result } => {
                // The gateway's own deadline passed: the node is told to stop the call. A node
                // that answers -32003 itself (its timer fired first) has ended the call already,
                // and is owed no cancel.
                if polled && matches!(result, Err(e) if e.code == ErrorCode::Timeout.code()) {
                    self.cancels_owed.insert(call.0);
                }
                assert!(
                    self.calls.contains(&call.0),
                    "CallDone for {call:?}, never issued"
                );
                assert!(
                    !self.cancelled.contains(&call.0),
                    "CallDone for {call:?} after cancel()"
                );
                assert!(self.done.insert(call.0), "second CallDone for {call:?}");
            }
            Event::Progress { call, .. } | Event::Ask { call, .. } => {
                assert!(self.pending(*call), "{e:?} for a call not pending");
                if let Event::Ask { ask, .. } = e {
                    self.asks.push(ask.clone());
                }
            }
            Event::Registered { tools, accepted } => {
                for (i, t) in tools.iter().enumerate() {
                    if accepted.contains(i) {
                        assert!(self.gw.has_tool(t.name.raw()), "accepted tool not kept");
                    }
                }
            }
            Event::Response { id, .. } => {
                assert!(self.requests.remove(id), "Response to {id}, not a request");
                self.answered.insert(*id);
            }
            Event::Closed(_) => {
                self.closed_events += 1;
                assert_eq!(self.closed_events, 1, "closed twice");
                assert_eq!(self.gw.state(), State::Closed);
            }
            _ => {}
        }
    }

    fn pending(&self, call: CallId) -> bool {
        self.calls.contains(&call.0)
            && !self.cancelled.contains(&call.0)
            && !self.done.contains(&call.0)
    }

    fn check(&self) {
        assert!(self.gw.in_flight() <= self.gw.max_in_flight());
        assert!(self.gw.max_in_flight() <= P);
        if self.gw.state() == State::Closed {
            assert_eq!(self.gw.poll_timeout(), None, "deadline while closed");
        }
        assert!(self.gw.tools().count() <= 16);
    }

    /// Decodes a frame the gateway wrote; it must be well formed.
    fn check_out<'b>(&self, bytes: &'b [u8], enc: Encoding) -> Message<'b> {
        codec::decode(bytes, enc, &self.limits).unwrap_or_else(|r| {
            panic!(
                "gateway wrote a frame that does not decode in {enc:?}: {r:?}\n{:?}",
                String::from_utf8_lossy(bytes)
            )
        })
    }

    fn transmit(&mut self) {
        let mut out = vec![0u8; 1024];
        while let Some(r) = self.gw.poll_transmit(&mut out) {
            let n = r.expect("queued control frames fit 1 KiB");
            let enc = self.gw.encoding();
            match self.check_out(&out[..n], enc) {
                Message::Request {
                    id: Id::Num(id), ..
                } => self.ids.push(id), // a ping
                Message::Notification(Notification::Cancel(Cancel {
                    id: Id::Num(id), ..
                })) => {
                    self.cancels_sent.insert(id);
                }
                _ => {}
            }
        }
    }

    fn events(&mut self) {
        while let Some(e) = self.gw.poll_event() {
            self.on_event(&e, true);
        }
    }

    /// Handles a frame; true if the gateway took it without error.
    fn frame(&mut self, frame: &[u8]) -> bool {
        let expected_enc = if self.gw.state() == State::AwaitHello {
            codec::sniff(frame)
        } else {
            self.gw.encoding()
        };
        let mut reply = vec![0u8; self.reply_len];
        let h = self.gw.handle_frame(self.now, frame, &mut reply);
        let _ = format!("{h:?}");
        if h.reply > 0 {
            assert!(h.reply <= reply.len());
            match self.check_out(&reply[..h.reply], expected_enc) {
                Message::Response { .. } => {}
                m => panic!("reply is not a response: {m:?}"),
            }
        }
        if let Some(e) = &h.event {
            self.on_event(e, false);
        }
        h.error.is_none()
    }

    fn send(
        &mut self,
        f: impl Fn(Encoding, &mut [u8]) -> Result<usize, toolwire_core::EncodeError>,
        postcard: bool,
    ) -> bool {
        let enc = if self.gw.state() == State::AwaitHello {
            encoding(postcard)
        } else {
            self.gw.encoding()
        };
        let bytes = encode_vec(|out| f(enc, out));
        self.frame(&bytes)
    }

    fn pick_id(&self, to: u8) -> u64 {
        if to >= 240 || self.ids.is_empty() {
            u64::from(to)
        } else {
            self.ids[usize::from(to) % self.ids.len()]
        }
    }

    fn enc(&self) -> Encoding {
        self.gw.encoding()
    }

    fn handle_timeout(&mut self) {
        self.gw.handle_timeout(self.now);
        if let Some(t) = self.gw.poll_timeout() {
            assert!(
                t > self.now,
                "deadline {t:?} not after handle_timeout({:?})",
                self.now
            );
        }
    }
}

fn run(input: Input) {
    let c = &input.config;
    let mut config = GatewayConfig::new("gw");
    config.auth = match c.auth % 3 {
        0 => Auth::Open,
        1 => Auth::Token(TOKEN.as_bytes()),
        _ => Auth::Deferred,
    };
    config.encodings = Encodings {
        json: c.json,
        postcard: c.postcard,
    };
    config.prefer = encoding(c.prefer_postcard);
    config.max_in_flight = c.max_in_flight;
    config.heartbeat = Duration::from_millis(u64::from(c.heartbeat_ms));
    config.handshake_timeout = Duration::from_millis(u64::from(c.handshake_ms));
    config.limits = Limits {
        max_depth: u16::from(c.max_depth % 40),
    };
    let now = Instant(1000);
    let mut h = Harness {
        gw: Connection::new(config, now),
        now,
        limits: Limits::default(),
        reply_len: 4096,
        calls: BTreeSet::new(),
        cancelled: BTreeSet::new(),
        done: BTreeSet::new(),
        requests: BTreeSet::new(),
        answered: BTreeSet::new(),
        ids: Vec::new(),
        asks: Vec::new(),
        closed_events: 0,
        cancels_owed: BTreeSet::new(),
        cancels_sent: BTreeSet::new(),
    };
    for action in input.actions {
        step(&mut h, action);
        h.check();
        if input.strict {
            h.transmit();
            h.events();
            h.check();
        }
    }
    h.gw.transport_closed();
    h.transmit();
    h.events();
    h.check();
    assert_eq!(h.gw.state(), State::Closed);
    assert_eq!(h.closed_events, 1, "no Closed event");
    assert_eq!(h.gw.in_flight(), 0);
    if input.strict {
        let unsent: Vec<_> = h.cancels_owed.difference(&h.cancels_sent).collect();
        assert!(
            unsent.is_empty(),
            "no cancel sent for timed-out or cancelled calls {unsent:?}"
        );
        for id in &h.calls {
            assert!(
                h.done.contains(id) || h.cancelled.contains(id),
                "call {id} never got its CallDone"
            );
        }
    }
}

fn step(h: &mut Harness, action: Action) {
    match action {
        Action::Raw(bytes) => {
            h.frame(&bytes);
        }
        Action::Hello {
            id,
            mut hello,
            postcard,
            good_token,
            sane,
        } => {
            if good_token {
                hello.token = Some(TOKEN.to_owned());
            }
            if sane {
                hello.min_version = 1;
                hello.max_version = 1;
                hello.id = "dev-1".to_owned();
            }
            let hello = hello.hello();
            h.send(
                |enc, out| codec::encode_request(enc, id.id(), &Request::Hello(hello), out),
                postcard,
            );
        }
        Action::Register { id, tools } => {
            let texts: Vec<&SmallTool> = tools.iter().collect();
            let defs: Vec<ToolDef<'_>> = texts
                .iter()
                .map(|t| ToolDef {
                    name: Str::new(TOOL_NAMES[usize::from(t.name) % TOOL_NAMES.len()]),
                    description: Str::new("d"),
                    input_schema: t.schema.json(),
                    output_schema: opt_json(&t.output),
                    annotations: Annotations::NONE,
                })
                .collect();
            let req = Request::Register(Register {
                tools: List::from_slice(&defs),
            });
            h.send(
                |enc, out| codec::encode_request(enc, id.id(), &req, out),
                false,
            );
        }
        Action::Unregister { id, names } => {
            let names: Vec<Str<'_>> = names
                .iter()
                .map(|&i| Str::new(TOOL_NAMES[usize::from(i) % TOOL_NAMES.len()]))
                .collect();
            let req = Request::Unregister(Unregister {
                names: List::from_slice(&names),
            });
            h.send(
                |enc, out| codec::encode_request(enc, id.id(), &req, out),
                false,
            );
        }
        Action::Response { to, result } => {
            let id = h.pick_id(to);
            let awaited = h.requests.contains(&id) && matches!(h.gw.state(), State::Ready(_));
            let taken = match &result {
                Ok(v) => h.send(
                    |enc, out| codec::encode_result(enc, Id::Num(id), &v.json(), out),
                    false,
                ),
                Err(e) => {
                    let e = e.error();
                    h.send(
                        |enc, out| codec::encode_error(enc, Id::Num(id), &e, out),
                        false,
                    )
                }
            };
            // (A frame the decoder refuses, say for a tiny depth limit, is not a response.)
            if awaited && taken {
                assert!(
                    h.answered.contains(&id),
                    "response to request() {id} not reported as Event::Response"
                );
            }
        }
        Action::Progress {
            to,
            progress,
            total,
            message,
            partial,
        } => {
            let id = h.pick_id(to);
            let n = Notification::Progress(Progress {
                id: Id::Num(id),
                progress,
                total,
                message: opt_str(&message),
                partial: opt_json(&partial),
            });
            h.send(|enc, out| codec::encode_notification(enc, &n, out), false);
        }
        Action::Ask {
            id,
            to,
            kind,
            prompt,
            schema,
        } => {
            let call = h.pick_id(to);
            let req = Request::Ask(Ask {
                call: Id::Num(call),
                kind: pick(&ASK_KINDS, kind),
                prompt: Str::new(&prompt),
                schema: opt_json(&schema),
            });
            h.send(
                |enc, out| codec::encode_request(enc, id.id(), &req, out),
                false,
            );
        }
        Action::Notify(n) => {
            let n = n.notification();
            h.send(|enc, out| codec::encode_notification(enc, &n, out), false);
        }
        Action::Request { id, request } => {
            let tools = tool_defs(request.tools());
            let names = request.names();
            let req = request.request(&tools, &names);
            h.send(
                |enc, out| codec::encode_request(enc, id.id(), &req, out),
                false,
            );
        }
        Action::Advance(ms) => {
            h.now = h.now + Duration::from_millis(u64::from(ms));
            h.handle_timeout();
        }
        Action::AdvanceToDeadline => {
            if let Some(t) = h.gw.poll_timeout() {
                h.now = h.now.max(t);
            }
            h.handle_timeout();
        }
        Action::Call {
            tool,
            args,
            deadline_ms,
            out,
        } => {
            let name = TOOL_NAMES[usize::from(tool) % TOOL_NAMES.len()];
            let mut buf = vec![0u8; usize::from(out % 2048)];
            let before = h.gw.in_flight();
            let r = h.gw.call(
                h.now,
                name,
                args.json(),
                deadline_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                &mut buf,
            );
            match r {
                Ok((call, n)) => {
                    assert!(h.gw.has_tool(name));
                    assert!(h.calls.insert(call.0), "call id {call:?} reused");
                    assert_eq!(h.gw.in_flight(), before + 1);
                    h.ids.push(call.0);
                    let enc = h.enc();
                    match h.check_out(&buf[..n], enc) {
                        Message::Request {
                            id: Id::Num(i),
                            request: Request::Execute(ex),
                        } => {
                            assert_eq!(i, call.0);
                            assert!(ex.tool.eq_str(name));
                            assert_eq!(ex.arguments, args.json());
                        }
                        m => panic!("call wrote {m:?}"),
                    }
                }
                Err(SendError::NotReady) => {
                    assert_ne!(h.gw.state(), State::Ready(Role::Node));
                }
                Err(SendError::ToolNotFound) => assert!(!h.gw.has_tool(name)),
                Err(SendError::Busy) => assert_eq!(h.gw.in_flight(), h.gw.max_in_flight()),
                Err(SendError::FrameTooLarge { needed }) => assert!(needed > 0),
                Err(e) => panic!("call failed: {e:?}"),
            }
        }
        Action::Cancel(to) => {
            let id = h.pick_id(to);
            let was_pending = h.pending(CallId(id));
            let r = h.gw.cancel(CallId(id));
            // A call that timed out or was dropped by a close may still await its CallDone in
            // the event queue: the gateway no longer holds it, so cancel() is false then.
            if r {
                assert!(was_pending, "cancel() true for a call not pending");
                h.cancelled.insert(id);
                h.cancels_owed.insert(id);
            }
        }
        Action::Accept(size) => {
            let state = h.gw.state();
            let mut out = vec![0u8; usize::from(size % 512)];
            let n = match h.gw.accept(h.now, &mut out) {
                Ok(n) => n,
                Err(EncodeError::BufferTooSmall { needed }) => {
                    assert_eq!(h.gw.state(), state, "a failed accept changed the state");
                    out = vec![0u8; needed];
                    let n =
                        h.gw.accept(h.now, &mut out)
                            .expect("accept at the size asked");
                    assert_eq!(n, needed);
                    n
                }
                Err(e) => panic!("accept failed: {e:?}"),
            };
            if n > 0 {
                assert!(matches!(state, State::AwaitAccept | State::AwaitHello));
                assert!(matches!(h.gw.state(), State::Ready(_)));
                // The welcome goes out in the hello's encoding.
                let ok = [Encoding::Json, Encoding::Postcard]
                    .into_iter()
                    .any(|e| codec::decode(&out[..n], e, &h.limits).is_ok());
                assert!(ok, "welcome does not decode");
            } else {
                assert_eq!(
                    h.gw.state(),
                    state,
                    "accept wrote nothing but changed the state"
                );
            }
        }
        Action::Refuse(code, size) => {
            let code = ErrorCode::ALL[usize::from(code) % ErrorCode::ALL.len()];
            let state = h.gw.state();
            let mut out = vec![0u8; usize::from(size % 512)];
            match h.gw.refuse(code, "no", &mut out) {
                Ok(_) => {}
                Err(EncodeError::BufferTooSmall { needed }) => {
                    assert_eq!(h.gw.state(), state, "a failed refuse changed the state");
                    out = vec![0u8; needed];
                    let n =
                        h.gw.refuse(code, "no", &mut out)
                            .expect("refuse at the size asked");
                    assert_eq!(n, needed);
                }
                Err(e) => panic!("refuse failed: {e:?}"),
            }
            assert_eq!(h.gw.state(), State::Closed);
        }
        Action::Answer { ask, answer } => {
            if h.asks.is_empty() {
                return;
            }
            let ask = h.asks[usize::from(ask) % h.asks.len()].clone();
            let enc = h.enc();
            let bytes = match &answer {
                Ok(v) => encode_vec(|out| h.gw.answer(&ask, Ok(v.json()), out)),
                Err(e) => encode_vec(|out| h.gw.answer(&ask, Err(e.error()), out)),
            };
            h.check_out(&bytes, enc);
        }
        Action::GwRequest(request) => {
            let tools = tool_defs(request.tools());
            let names = request.names();
            let req = request.request(&tools, &names);
            let mut out = vec![0u8; 8192];
            match h.gw.request(&req, &mut out) {
                // The application asked for a request no peer accepts (it looks up a name JSON
                // could only write escaped): the gateway writes it as told, it does not decode.
                Ok((id, n)) if escaped_lookup(&req) => {
                    let r = codec::decode(&out[..n], h.enc(), &h.limits);
                    assert!(
                        matches!(&r, Err(r) if r.error.code() == ErrorCode::InvalidParams),
                        "{r:?}"
                    );
                    h.ids.push(id);
                    h.requests.insert(id);
                }
                Ok((id, n)) => {
                    let enc = h.enc();
                    match h.check_out(&out[..n], enc) {
                        Message::Request { id: Id::Num(i), .. } => assert_eq!(i, id),
                        m => panic!("request wrote {m:?}"),
                    }
                    h.ids.push(id);
                    h.requests.insert(id);
                }
                Err(SendError::NotReady) => assert!(!matches!(h.gw.state(), State::Ready(_))),
                Err(SendError::Busy) => assert_eq!(h.requests.len(), MAX_REQUESTS),
                Err(SendError::FrameTooLarge { .. }) => {}
                Err(e) => panic!("request failed: {e:?}"),
            }
        }
        Action::Respond { id, result } => {
            let mut out = vec![0u8; 8192];
            if let Ok(n) = h.gw.respond(id.id(), &result.json(), &mut out) {
                let enc = h.enc();
                h.check_out(&out[..n], enc);
            }
        }
        Action::Shutdown(r) => h.gw.shutdown(pick(&GOODBYE_REASONS, r)),
        Action::Transmit => h.transmit(),
        Action::Events => h.events(),
        Action::TransportClosed => h.gw.transport_closed(),
        Action::ReplyBuf(n) => h.reply_len = usize::from(n % 4096),
        Action::CallMany { n, deadline_ms } => {
            let Some(tool) = (0..TOOL_NAMES.len()).find(|&i| h.gw.has_tool(TOOL_NAMES[i])) else {
                return;
            };
            for _ in 0..n % 17 {
                let mut out = vec![0u8; 256];
                let deadline = Some(Duration::from_millis(u64::from(deadline_ms)));
                match h.gw.call(
                    h.now,
                    TOOL_NAMES[tool],
                    Json::EMPTY_OBJECT,
                    deadline,
                    &mut out,
                ) {
                    Ok((call, _)) => {
                        assert!(h.calls.insert(call.0), "call id {call:?} reused");
                        h.ids.push(call.0);
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

fuzz_target!(|input: Input| run(input));
