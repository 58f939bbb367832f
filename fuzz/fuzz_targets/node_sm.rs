//! The node state machine under arbitrary sequences of inputs: raw frames, welcomes, register
//! acks, executes, cancels, answers, time, and the tool side finishing, reporting and asking.
//!
//! Invariants: no panic; at most 4 calls run; every call ends at most once (finished, cancelled
//! or dropped by the close), and exactly once or is still live when the runtime drains events as
//! documented; a live handle is one the node handed out and that has not ended; after
//! `handle_timeout(now)` the next deadline is in the future (none once closed); every frame the
//! node writes decodes, and results answer the id of their `execute`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::node::{
    AskHandle, CallHandle, Node, NodeConfig, NodeError, NodeEvent, NodeState,
};
use toolwire_core::{Duration, EncodeError, Encoding, Id, Instant, Json, List, OwnedId, Str};
use toolwire_fuzz::*;

const N: usize = 4;
/// Asks one call may have open at once.
const A: usize = 2;

static TOOLS: [ToolDef<'static>; 3] = [
    ToolDef {
        name: Str::new("echo"),
        description: Str::new("Returns its arguments."),
        input_schema: Json::trusted(br#"{"type":"object"}"#),
        output_schema: None,
        annotations: Annotations::NONE,
    },
    ToolDef {
        name: Str::new("read_sensor"),
        description: Str::new("Reads a channel \"quoted\"."),
        input_schema: Json::trusted(
            br#"{"type":"object","properties":{"channel":{"type":"integer"}}}"#,
        ),
        output_schema: Some(Json::trusted(br#"{"type":"number"}"#)),
        annotations: Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
    },
    ToolDef {
        name: Str::new("blink"),
        description: Str::new(""),
        input_schema: Json::trusted(b"{}"),
        output_schema: None,
        annotations: Annotations::NONE,
    },
];
const OTHER_TOOLS: [&str; 2] = ["nope", "ech"];
const TOKENS: [&str; 3] = ["s3cret", "", "t\"\\\u{7}"];

#[derive(Arbitrary, Debug)]
struct Config {
    token: Option<u8>,
    json: bool,
    postcard: bool,
    hello_postcard: bool,
    max_frame: u32,
    handshake_ms: u16,
    max_depth: u8,
}

#[derive(Arbitrary, Debug)]
enum Action {
    Raw(Vec<u8>),
    Welcome {
        to: u8,
        version: Option<u16>,
        postcard: bool,
        max_frame: u32,
        max_in_flight: u16,
        heartbeat_ms: u16,
        gateway: String,
        error: Option<ArbError>,
    },
    RegisterAck {
        to: u8,
        accepted: Vec<u8>,
        rejected: Vec<(u8, u8)>,
        error: Option<ArbError>,
    },
    Execute {
        id: ArbId,
        tool: u8,
        args: JsonObject,
        deadline_ms: Option<u16>,
    },
    /// An execute reusing the id of an earlier one.
    ExecuteAgain {
        which: u8,
        tool: u8,
    },
    Ping(ArbId),
    Cancel(u8),
    Notify(ArbNotification),
    Request {
        id: ArbId,
        request: ArbRequest,
    },
    AskAnswer {
        to: u8,
        result: Result<JsonText, ArbError>,
    },
    Advance(u16),
    AdvanceToDeadline,
    Finish {
        call: u8,
        result: Result<JsonText, ArbError>,
        out: u16,
    },
    Progress {
        call: u8,
        progress: u64,
        total: Option<u64>,
        message: Option<String>,
        partial: Option<JsonText>,
        out: u16,
    },
    Ask {
        call: u8,
        kind: u8,
        prompt: String,
        schema: Option<JsonText>,
        out: u16,
    },
    Shutdown(u8),
    Transmit,
    Events,
    ReplyBuf(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    /// Drain transmits and events after every action, as the documented runtime loop does.
    strict: bool,
    actions: Vec<Action>,
}

#[derive(Debug)]
struct Call {
    handle: CallHandle,
    id: OwnedId,
    ended: bool,
    /// Ended by the close: a `Cancel` queued before it (a deadline) may still come out once.
    by_close: bool,
}

struct Harness {
    node: Node<'static, N, A>,
    now: Instant,
    limits: Limits,
    reply_len: usize,
    calls: Vec<Call>,
    exec_ids: Vec<ArbId>,
    ask_ids: Vec<u64>,
    /// Asks sent and not answered: (call, ask). Dropped when the call ends.
    open_asks: Vec<(CallHandle, AskHandle)>,
    ready_events: usize,
    closed_events: usize,
}

impl Harness {
    fn call_of(&mut self, handle: CallHandle) -> Option<&mut Call> {
        // The newest call with that handle (handles repeat only after 65536 calls).
        self.calls.iter_mut().rev().find(|c| c.handle == handle)
    }

    fn end(&mut self, handle: CallHandle, how: &str) {
        let c = self
            .call_of(handle)
            .unwrap_or_else(|| panic!("{how} for {handle:?}, never executed"));
        if how == "Cancel" && c.by_close {
            // Its deadline passed before the close; the event was queued then.
            c.by_close = false;
            return;
        }
        assert!(!c.ended, "{how} for {handle:?}, which already ended");
        c.ended = true;
        self.open_asks.retain(|&(c, _)| c != handle);
    }

    fn on_event(&mut self, e: NodeEvent<'_>) {
        let _ = format!("{e:?}");
        match e {
            NodeEvent::Ready { rejected } => {
                let _ = rejected.iter().count();
                self.ready_events += 1;
                assert_eq!(self.ready_events, 1, "ready twice");
                assert_eq!(self.node.state(), NodeState::Ready);
            }
            NodeEvent::Execute { call, tool, args } => {
                assert!(tool < TOOLS.len());
                assert!(args.is_object());
                assert!(self.node.is_live(call));
                if let Some(c) = self.call_of(call) {
                    assert!(c.ended, "live handle {call:?} handed out again");
                }
                // The id is filled in by the caller, which knows what it sent.
                self.calls.push(Call {
                    handle: call,
                    id: OwnedId::Null,
                    ended: false,
                    by_close: false,
                });
            }
            NodeEvent::Cancel { call } => {
                assert!(!self.node.is_live(call), "cancelled handle still live");
                self.end(call, "Cancel");
            }
            NodeEvent::Answer { call, ask, .. } => {
                assert!(self.node.is_live(call), "answer for a call not live");
                let at = self
                    .open_asks
                    .iter()
                    .position(|&o| o == (call, ask))
                    .unwrap_or_else(|| panic!("answer for {ask:?}, not open on {call:?}"));
                self.open_asks.swap_remove(at);
            }
            NodeEvent::Closed(_) => {
                self.closed_events += 1;
                assert_eq!(self.closed_events, 1, "closed twice");
                assert_eq!(self.node.state(), NodeState::Closed);
                self.open_asks.clear();
                for c in &mut self.calls {
                    if !c.ended {
                        c.ended = true;
                        c.by_close = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn check(&self) {
        assert!(self.node.in_flight() <= N);
        if self.node.state() == NodeState::Closed {
            assert_eq!(self.node.poll_timeout(), None, "deadline while closed");
            assert_eq!(self.node.in_flight(), 0);
        }
        let live = self
            .calls
            .iter()
            .filter(|c| self.node.is_live(c.handle))
            .count();
        assert_eq!(live, self.node.in_flight());
        for c in &self.calls {
            if self.node.is_live(c.handle) {
                assert!(!c.ended, "{c:?} ended but its handle is live");
            }
        }
    }

    fn check_out<'b>(&self, bytes: &'b [u8], enc: Encoding) -> Message<'b> {
        codec::decode(bytes, enc, &self.limits).unwrap_or_else(|r| {
            panic!(
                "node wrote a frame that does not decode in {enc:?}: {r:?}\n{:?}",
                String::from_utf8_lossy(bytes)
            )
        })
    }

    fn transmit(&mut self) {
        let mut out = vec![0u8; 4096];
        while let Some(r) = self.node.poll_transmit(&mut out) {
            let n = r.expect("queued frames fit 4 KiB");
            self.check_out(&out[..n], self.node.encoding());
        }
    }

    fn events(&mut self) {
        while let Some(e) = self.node.poll_event() {
            self.on_event(e);
        }
    }

    /// Handles a frame; returns the handle of a call it started.
    fn frame(&mut self, frame: &[u8]) -> Option<CallHandle> {
        let enc = self.node.encoding();
        let mut reply = vec![0u8; self.reply_len];
        let h = self.node.handle_frame(self.now, frame, &mut reply);
        let _ = format!("{h:?}");
        if h.reply > 0 {
            match self.check_out(&reply[..h.reply], enc) {
                Message::Response { .. } => {}
                m => panic!("reply is not a response: {m:?}"),
            }
        }
        let started = match &h.event {
            Some(NodeEvent::Execute { call, .. }) => Some(*call),
            _ => None,
        };
        if let Some(e) = h.event {
            self.on_event(e);
        }
        started
    }

    fn send(
        &mut self,
        f: impl Fn(Encoding, &mut [u8]) -> Result<usize, EncodeError>,
    ) -> Option<CallHandle> {
        let enc = self.node.encoding();
        let bytes = encode_vec(|out| f(enc, out));
        self.frame(&bytes)
    }

    fn handle(&self, i: u8) -> Option<CallHandle> {
        if self.calls.is_empty() {
            return None;
        }
        Some(self.calls[usize::from(i) % self.calls.len()].handle)
    }

    /// Largest frame the node may write into a buffer of `out` bytes.
    fn limit(&self, out: usize) -> usize {
        match self.node.peer_max_frame() {
            0 => out,
            m => out.min(m as usize),
        }
    }

    fn handle_timeout(&mut self) {
        self.node.handle_timeout(self.now);
        if let Some(t) = self.node.poll_timeout() {
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
    let mut config = NodeConfig::new("dev-1", &TOOLS);
    config.token = c.token.map(|i| TOKENS[usize::from(i) % TOKENS.len()]);
    config.encodings = Encodings {
        json: c.json,
        postcard: c.postcard,
    };
    config.hello_encoding = encoding(c.hello_postcard);
    config.max_frame = c.max_frame;
    config.handshake_timeout = Duration::from_millis(u64::from(c.handshake_ms));
    config.limits = Limits {
        max_depth: u16::from(c.max_depth % 40),
    };
    let now = Instant(1000);
    let mut h = Harness {
        node: Node::new(config, now),
        now,
        limits: Limits::default(),
        reply_len: 4096,
        calls: Vec::new(),
        exec_ids: Vec::new(),
        ask_ids: Vec::new(),
        open_asks: Vec::new(),
        ready_events: 0,
        closed_events: 0,
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
    h.transmit();
    h.events();
    h.check();
    if input.strict {
        for c in &h.calls {
            assert!(
                c.ended || h.node.is_live(c.handle),
                "{c:?} was dropped without a Cancel event"
            );
        }
    }
}

fn step(h: &mut Harness, action: Action) {
    match action {
        Action::Raw(bytes) => {
            h.frame(&bytes);
        }
        Action::Welcome {
            to,
            version,
            postcard,
            max_frame,
            max_in_flight,
            heartbeat_ms,
            gateway,
            error,
        } => {
            let id = Id::Num(u64::from(to % 4));
            match error {
                Some(e) => {
                    let e = e.error();
                    h.send(|enc, out| codec::encode_error(enc, id, &e, out));
                }
                None => {
                    let w = Welcome {
                        version: version.unwrap_or(PROTOCOL_VERSION),
                        encoding: encoding(postcard),
                        max_frame,
                        max_in_flight,
                        heartbeat_ms: u32::from(heartbeat_ms),
                        gateway: Str::new(&gateway),
                    };
                    h.send(|enc, out| codec::encode_result(enc, id, &w, out));
                }
            }
        }
        Action::RegisterAck {
            to,
            accepted,
            rejected,
            error,
        } => {
            let id = Id::Num(u64::from(to % 4));
            let name = |i: u8| TOOLS[usize::from(i) % TOOLS.len()].name;
            match error {
                Some(e) => {
                    let e = e.error();
                    h.send(|enc, out| codec::encode_error(enc, id, &e, out));
                }
                None => {
                    let acc: Vec<Str<'_>> = accepted.iter().map(|&i| name(i)).collect();
                    let rej: Vec<Rejection<'_>> = rejected
                        .iter()
                        .map(|&(i, r)| Rejection {
                            name: name(i),
                            reason: pick(&REJECT_REASONS, r),
                        })
                        .collect();
                    let ack = RegisterAck {
                        accepted: List::from_slice(&acc),
                        rejected: List::from_slice(&rej),
                    };
                    h.send(|enc, out| codec::encode_result(enc, id, &ack, out));
                }
            }
        }
        Action::Execute {
            id,
            tool,
            args,
            deadline_ms,
        } => {
            let i = usize::from(tool) % (TOOLS.len() + OTHER_TOOLS.len());
            let name = match TOOLS.get(i) {
                Some(t) => t.name.raw(),
                None => OTHER_TOOLS[i - TOOLS.len()],
            };
            let ex = Request::Execute(Execute {
                tool: Str::new(name),
                arguments: args.json(),
                deadline_ms: deadline_ms.map(u32::from),
            });
            execute(h, &id, &ex, i < TOOLS.len());
            h.exec_ids.push(id);
        }
        Action::ExecuteAgain { which, tool } => {
            if h.exec_ids.is_empty() {
                return;
            }
            let id = h.exec_ids[usize::from(which) % h.exec_ids.len()].clone();
            let t = &TOOLS[usize::from(tool) % TOOLS.len()];
            let ex = Request::Execute(Execute {
                tool: t.name,
                arguments: Json::EMPTY_OBJECT,
                deadline_ms: None,
            });
            execute(h, &id, &ex, true);
        }
        Action::Ping(id) => {
            h.send(|enc, out| codec::encode_request(enc, id.id(), &Request::Ping, out));
        }
        Action::Cancel(which) => {
            if h.exec_ids.is_empty() {
                return;
            }
            let id = h.exec_ids[usize::from(which) % h.exec_ids.len()].clone();
            let n = Notification::Cancel(Cancel {
                id: id.id(),
                reason: None,
            });
            h.send(|enc, out| codec::encode_notification(enc, &n, out));
        }
        Action::Notify(n) => {
            let n = n.notification();
            h.send(|enc, out| codec::encode_notification(enc, &n, out));
        }
        Action::Request { id, request } => {
            let tools = tool_defs(request.tools());
            let names = request.names();
            let req = request.request(&tools, &names);
            let started = h.send(|enc, out| codec::encode_request(enc, id.id(), &req, out));
            if let Some(call) = started {
                h.call_of(call).unwrap().id = OwnedId::from_id(&id.id()).unwrap();
            }
        }
        Action::AskAnswer { to, result } => {
            let id = match h.ask_ids.as_slice() {
                [] => u64::from(to),
                ids => ids[usize::from(to) % ids.len()],
            };
            match &result {
                Ok(v) => h.send(|enc, out| codec::encode_result(enc, Id::Num(id), &v.json(), out)),
                Err(e) => {
                    let e = e.error();
                    h.send(|enc, out| codec::encode_error(enc, Id::Num(id), &e, out))
                }
            };
        }
        Action::Advance(ms) => {
            h.now = h.now + Duration::from_millis(u64::from(ms));
            h.handle_timeout();
        }
        Action::AdvanceToDeadline => {
            if let Some(t) = h.node.poll_timeout() {
                h.now = h.now.max(t);
            }
            h.handle_timeout();
        }
        Action::Finish { call, result, out } => {
            let Some(handle) = h.handle(call) else { return };
            let live = h.node.is_live(handle);
            let enc = h.node.encoding();
            let mut buf = vec![0u8; usize::from(out % 4096)];
            let r = match &result {
                Ok(v) => h.node.finish(handle, Ok(v.json()), &mut buf),
                Err(e) => h.node.finish(handle, Err(e.error()), &mut buf),
            };
            assert!(!h.node.is_live(handle), "finished call still live");
            match r {
                Err(NodeError::StaleCall) => assert!(!live),
                Ok(n) => {
                    assert!(live);
                    assert!(
                        n <= h.limit(buf.len()),
                        "result of {n} bytes over the frame limit"
                    );
                    let id = h.call_of(handle).unwrap().id.clone();
                    match h.check_out(&buf[..n], enc) {
                        Message::Response { id: rid, .. } => {
                            if id != OwnedId::Null {
                                assert!(id.matches(&rid), "result for {rid:?}, call was {id:?}");
                            }
                        }
                        m => panic!("finish wrote {m:?}"),
                    }
                    h.end(handle, "finish");
                }
                Err(NodeError::Encode(EncodeError::BufferTooSmall { .. })) => {
                    // Not even the error fits: the call is over all the same.
                    assert!(live);
                    h.end(handle, "finish");
                }
                Err(e) => panic!("finish failed: {e:?}"),
            }
        }
        Action::Progress {
            call,
            progress,
            total,
            message,
            partial,
            out,
        } => {
            let Some(handle) = h.handle(call) else { return };
            let live = h.node.is_live(handle);
            let enc = h.node.encoding();
            let mut buf = vec![0u8; usize::from(out % 4096)];
            let r = h.node.progress(
                handle,
                progress,
                total,
                message.as_deref(),
                opt_json(&partial),
                &mut buf,
            );
            match r {
                Err(NodeError::StaleCall) => assert!(!live),
                Ok(n) => {
                    assert!(live);
                    assert!(n <= h.limit(buf.len()));
                    match h.check_out(&buf[..n], enc) {
                        Message::Notification(Notification::Progress(p)) => {
                            assert_eq!(p.progress, progress)
                        }
                        m => panic!("progress wrote {m:?}"),
                    }
                }
                Err(NodeError::Encode(EncodeError::BufferTooSmall { .. })) => {}
                Err(e) => panic!("progress failed: {e:?}"),
            }
        }
        Action::Ask {
            call,
            kind,
            prompt,
            schema,
            out,
        } => {
            let Some(handle) = h.handle(call) else { return };
            let enc = h.node.encoding();
            let mut buf = vec![0u8; usize::from(out % 4096)];
            let r = h.node.ask(
                handle,
                pick(&ASK_KINDS, kind),
                &prompt,
                opt_json(&schema),
                &mut buf,
            );
            match r {
                Ok((ask, n)) => {
                    assert!(h.node.is_live(handle));
                    assert!(n <= h.limit(buf.len()));
                    assert!(
                        !h.open_asks.contains(&(handle, ask)),
                        "{ask:?} of {handle:?} handed out twice"
                    );
                    h.open_asks.push((handle, ask));
                    match h.check_out(&buf[..n], enc) {
                        Message::Request {
                            id: Id::Num(id),
                            request: Request::Ask(_),
                        } => h.ask_ids.push(id),
                        m => panic!("ask wrote {m:?}"),
                    }
                }
                Err(NodeError::StaleCall) => assert!(!h.node.is_live(handle)),
                Err(NodeError::NotReady) => assert_ne!(h.node.state(), NodeState::Ready),
                Err(NodeError::TooManyAsks) => {
                    let open = h.open_asks.iter().filter(|&&(c, _)| c == handle).count();
                    assert_eq!(open, A, "TooManyAsks with {open} asks open");
                }
                Err(NodeError::Encode(EncodeError::BufferTooSmall { .. })) => {}
                Err(e) => panic!("ask failed: {e:?}"),
            }
        }
        Action::Shutdown(r) => h.node.shutdown(pick(&GOODBYE_REASONS, r)),
        Action::Transmit => h.transmit(),
        Action::Events => h.events(),
        Action::ReplyBuf(n) => h.reply_len = usize::from(n % 4096),
    }
}

fn execute(h: &mut Harness, id: &ArbId, ex: &Request<'_>, known_tool: bool) {
    let state = h.node.state();
    let started = h.send(|enc, out| codec::encode_request(enc, id.id(), ex, out));
    if let Some(call) = started {
        assert!(known_tool && state == NodeState::Ready);
        h.call_of(call).unwrap().id = OwnedId::from_id(&id.id()).unwrap();
    }
}

fuzz_target!(|input: Input| run(input));
