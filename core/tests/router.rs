//! A router, a controller core and node cores wired together in memory with a fake clock.
//!
//! No sockets: frames move between queues, and time moves only when a test advances it, to the
//! next deadline any side asked for. Nodes and controllers may speak different encodings; the
//! scenarios that depend on it run in every combination.

use std::collections::VecDeque;

use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::controller::{Controller, ControllerConfig, ControllerEvent};
use toolwire_core::frame::*;
use toolwire_core::node::{self, AskHandle, CallHandle, Node, NodeConfig, NodeEvent};
use toolwire_core::router::{
    Acl, CacheConfig, ConnId, Event, Failure, HeldConfig, LocalCall, MAX_ASKS_PER_CALL, OpenError,
    Outbox, RateLimit, Router, RouterConfig, Schemas, TokenSpec,
};
use toolwire_core::{Duration, ErrorCode, Id, Instant, Json, List, OwnedId, Str};

/// Calls one node runs at once.
const N: usize = 4;

const SCHEMA: &[u8] = br#"{"type":"object","properties":{"x":{"type":"integer"}}}"#;

const ALL: [Encoding; 2] = [Encoding::Json, Encoding::Postcard];

/// (node, controller) encodings: both alike, and both mixed.
const MIXES: [(Encoding, Encoding); 4] = [
    (Encoding::Json, Encoding::Json),
    (Encoding::Postcard, Encoding::Postcard),
    (Encoding::Postcard, Encoding::Json),
    (Encoding::Json, Encoding::Postcard),
];

fn only(enc: Encoding) -> Encodings {
    Encodings {
        json: enc == Encoding::Json,
        postcard: enc == Encoding::Postcard,
    }
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn tool_defs(names: &[&str], schema: &'static [u8]) -> &'static [ToolDef<'static>] {
    let defs: Vec<ToolDef<'static>> = names
        .iter()
        .map(|n| ToolDef {
            name: Str::new(leak_str(n)),
            description: Str::new("test tool"),
            input_schema: Json::trusted(schema),
            output_schema: None,
            annotations: Annotations::NONE,
        })
        .collect();
    Box::leak(defs.into_boxed_slice())
}

/// A schema engine for tests: refuses schemas that mention `x-refuse`, and arguments with a
/// top-level key `bad`. Counts compilations (each tool is compiled once, when registered).
#[derive(Default)]
struct TestSchemas {
    compiled: usize,
}

impl Schemas for TestSchemas {
    type Compiled = usize;
    fn compile(&mut self, tool: &ToolDef<'_>) -> Result<usize, RejectReason> {
        if tool.input_schema.as_str().contains("x-refuse") {
            return Err(RejectReason::BadSchema);
        }
        self.compiled += 1;
        Ok(self.compiled)
    }
    fn check(&self, _schema: &usize, arguments: Json<'_>) -> Result<(), Failure> {
        let v: serde_json::Value = serde_json::from_str(arguments.as_str()).expect("JSON");
        if v.get("bad").is_some() {
            return Err(
                Failure::new(ErrorCode::InvalidArguments, "`bad` is not allowed")
                    .with_data(r#"{"path":"/bad"}"#),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum NodeEv {
    Ready(usize),
    Execute(CallHandle, String, String),
    Cancel(CallHandle),
    Answer(CallHandle, Result<String, i32>),
    Closed(node::CloseReason),
}

#[derive(Debug, Clone, PartialEq)]
enum CtrlEv {
    Ready,
    /// A response: its id and the frame it came in (decode it with [`Trio::result`]).
    Response(u64, Result<(), i32>),
    Progress(u64, u64, Option<String>),
    Ask(OwnedId, u64, String),
    Log(u64, LogLevel, String),
    ToolsChanged(String),
    Closed(node::CloseReason),
}

struct NodePeer {
    conn: ConnId,
    core: Node<'static, N, { MAX_ASKS_PER_CALL + 1 }>,
    tools: Vec<&'static str>,
    /// The asks answered, in the order their answers came.
    answered: Vec<AskHandle>,
    inbox: VecDeque<Vec<u8>>,
    /// Its transport is open (the router has not closed it, the test has not dropped it).
    linked: bool,
    events: Vec<NodeEv>,
    /// Every frame the router sent it, in order.
    frames: Vec<Vec<u8>>,
}

/// A controller besides the trio's own (for the limit on controllers): it connects, hears
/// events and is refused or not; the trio's own controller makes the calls.
struct ExtraCtrl {
    conn: ConnId,
    core: Controller,
    inbox: VecDeque<Vec<u8>>,
    linked: bool,
    events: Vec<CtrlEv>,
    frames: Vec<Vec<u8>>,
}

struct Trio<S: Schemas> {
    now: Instant,
    router: Router<S>,
    controller: Controller,
    ctrl: ConnId,
    ctrl_linked: bool,
    ctrl_inbox: VecDeque<Vec<u8>>,
    /// Every frame the router sent the controller, in order.
    ctrl_frames: Vec<Vec<u8>>,
    /// Response frames by request id.
    responses: Vec<(u64, Vec<u8>)>,
    ctrl_events: Vec<CtrlEv>,
    ctrl_errors: usize,
    nodes: Vec<NodePeer>,
    node_errors: usize,
    extras: Vec<ExtraCtrl>,
    to_router: VecDeque<(ConnId, Vec<u8>)>,
    events: Vec<Event>,
}

fn standard_config() -> RouterConfig {
    let mut cfg = RouterConfig::new("gw");
    cfg.connection.heartbeat = Duration::from_secs(5);
    cfg
}

impl Trio<toolwire_core::router::AcceptAll> {
    fn standard(ctrl_enc: Encoding) -> Self {
        Trio::new(
            standard_config(),
            toolwire_core::router::AcceptAll,
            ctrl_enc,
            None,
        )
    }
}

impl<S: Schemas> Trio<S> {
    fn new(cfg: RouterConfig, schemas: S, ctrl_enc: Encoding, token: Option<&str>) -> Self {
        let mut cc = ControllerConfig::new("cli");
        cc.encodings = only(ctrl_enc);
        cc.hello_encoding = ctrl_enc;
        cc.token = token.map(|t| t.try_into().expect("token fits"));
        Self::with_controller(cfg, schemas, cc)
    }

    fn with_controller(cfg: RouterConfig, schemas: S, cc: ControllerConfig) -> Self {
        let now = Instant(1_000);
        let mut router = Router::new(cfg, schemas);
        let ctrl = router.open(now).expect("open");
        let mut t = Trio {
            now,
            router,
            controller: Controller::new(cc, now),
            ctrl,
            ctrl_linked: true,
            ctrl_inbox: VecDeque::new(),
            ctrl_frames: vec![],
            responses: vec![],
            ctrl_events: vec![],
            ctrl_errors: 0,
            nodes: vec![],
            node_errors: 0,
            extras: vec![],
            to_router: VecDeque::new(),
            events: vec![],
        };
        t.drive();
        t
    }

    /// Connects a node offering `tools` (with [`SCHEMA`]); returns its index in `nodes`.
    fn add_node(&mut self, id: &str, tools: &[&str], enc: Encoding) -> usize {
        let n = self.add_node_with(id, tool_defs(tools, SCHEMA), enc, None);
        assert_eq!(
            self.nodes[n].events,
            vec![NodeEv::Ready(0)],
            "{id} registered"
        );
        self.nodes[n].events.clear();
        n
    }

    fn add_node_with(
        &mut self,
        id: &str,
        tools: &'static [ToolDef<'static>],
        enc: Encoding,
        token: Option<&str>,
    ) -> usize {
        let mut nc = NodeConfig::new(leak_str(id), tools);
        nc.encodings = only(enc);
        nc.hello_encoding = enc;
        nc.token = token.map(leak_str);
        nc.max_frame = 8192;
        let conn = self.router.open(self.now).expect("open");
        self.nodes.push(NodePeer {
            conn,
            core: Node::new(nc, self.now),
            tools: tools.iter().map(|t| t.name.raw()).collect(),
            answered: vec![],
            inbox: VecDeque::new(),
            linked: true,
            events: vec![],
            frames: vec![],
        });
        self.drive();
        self.nodes.len() - 1
    }

    /// Connects another controller speaking `enc`; returns its index in `extras`.
    fn add_controller(&mut self, enc: Encoding) -> usize {
        let mut cc = ControllerConfig::new("cli-2");
        cc.encodings = only(enc);
        cc.hello_encoding = enc;
        let conn = self.router.open(self.now).expect("open");
        self.extras.push(ExtraCtrl {
            conn,
            core: Controller::new(cc, self.now),
            inbox: VecDeque::new(),
            linked: true,
            events: vec![],
            frames: vec![],
        });
        self.drive();
        self.extras.len() - 1
    }

    /// Moves frames and events between every side until nothing moves (bounded).
    fn drive(&mut self) {
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..10_000 {
            let mut moved = false;
            // What the peers queued on their own.
            if self.ctrl_linked {
                while let Some(r) = self.controller.poll_transmit(&mut buf) {
                    let n = r.expect("controller encode");
                    self.to_router.push_back((self.ctrl, buf[..n].to_vec()));
                    moved = true;
                }
                while let Some(e) = self.controller.poll_event() {
                    self.record_ctrl(e, &[]);
                    moved = true;
                }
            }
            for p in self.nodes.iter_mut().filter(|p| p.linked) {
                while let Some(r) = p.core.poll_transmit(&mut buf) {
                    let n = r.expect("node encode");
                    self.to_router.push_back((p.conn, buf[..n].to_vec()));
                    moved = true;
                }
                while let Some(e) = p.core.poll_event() {
                    if let NodeEvent::Answer { ask, .. } = &e {
                        p.answered.push(*ask);
                    }
                    p.events.push(node_ev(&p.tools, e));
                    moved = true;
                }
            }
            for x in self.extras.iter_mut().filter(|x| x.linked) {
                while let Some(r) = x.core.poll_transmit(&mut buf) {
                    let n = r.expect("controller encode");
                    self.to_router.push_back((x.conn, buf[..n].to_vec()));
                    moved = true;
                }
                while let Some(e) = x.core.poll_event() {
                    x.events.push(extra_ev(e));
                    moved = true;
                }
            }
            // What the router sends; a connection it is done with is closed once its frames
            // are on their way.
            while let Some(conn) = self.router.poll_ready() {
                let mut out = Outbox::new();
                let n = self.router.poll_transmit(conn, &mut out);
                assert_eq!(n, out.len());
                let closing = self.router.is_closing(conn);
                for f in out.iter() {
                    self.deliver(conn, f.to_vec());
                }
                if closing {
                    // The peer still reads what was sent; what it sends later meets a stale
                    // handle.
                    self.router.close(conn, self.now);
                }
                moved = true;
            }
            while let Some(e) = self.router.poll_event() {
                self.events.push(e);
                moved = true;
            }
            // One frame per queue per round, so that frames interleave.
            if let Some((conn, f)) = self.to_router.pop_front() {
                self.router.handle_frame(conn, self.now, &f);
                moved = true;
            }
            if let Some(f) = self.ctrl_inbox.pop_front() {
                if self.ctrl_linked {
                    let mut reply = vec![0u8; 1 << 16];
                    let h = self.controller.handle_frame(self.now, &f, &mut reply);
                    if h.error.is_some() {
                        self.ctrl_errors += 1;
                    }
                    if h.reply > 0 {
                        self.to_router
                            .push_back((self.ctrl, reply[..h.reply].to_vec()));
                    }
                    if let Some(e) = h.event {
                        self.record_ctrl(e, &f);
                    }
                }
                moved = true;
            }
            for p in self.nodes.iter_mut() {
                let Some(f) = p.inbox.pop_front() else {
                    continue;
                };
                moved = true;
                if !p.linked {
                    continue;
                }
                let mut reply = vec![0u8; 1 << 16];
                let h = p.core.handle_frame(self.now, &f, &mut reply);
                if h.error.is_some() {
                    self.node_errors += 1;
                }
                if h.reply > 0 {
                    self.to_router
                        .push_back((p.conn, reply[..h.reply].to_vec()));
                }
                if let Some(e) = h.event {
                    if let NodeEvent::Answer { ask, .. } = &e {
                        p.answered.push(*ask);
                    }
                    p.events.push(node_ev(&p.tools, e));
                }
            }
            for x in self.extras.iter_mut() {
                let Some(f) = x.inbox.pop_front() else {
                    continue;
                };
                moved = true;
                if !x.linked {
                    continue;
                }
                let mut reply = vec![0u8; 1 << 16];
                let h = x.core.handle_frame(self.now, &f, &mut reply);
                if h.error.is_some() {
                    self.ctrl_errors += 1;
                }
                if h.reply > 0 {
                    self.to_router
                        .push_back((x.conn, reply[..h.reply].to_vec()));
                }
                if let Some(e) = h.event {
                    x.events.push(extra_ev(e));
                }
            }
            // A peer whose core closed closes its transport once what it sent is delivered.
            let pending_from =
                |c: ConnId, q: &VecDeque<(ConnId, Vec<u8>)>| q.iter().any(|(from, _)| *from == c);
            if self.ctrl_linked
                && self.controller.is_closed()
                && !pending_from(self.ctrl, &self.to_router)
            {
                self.router.close(self.ctrl, self.now);
                self.ctrl_linked = false;
                moved = true;
            }
            for i in 0..self.nodes.len() {
                let p = &self.nodes[i];
                if p.linked
                    && p.core.state() == node::NodeState::Closed
                    && !pending_from(p.conn, &self.to_router)
                {
                    let conn = p.conn;
                    self.router.close(conn, self.now);
                    self.nodes[i].linked = false;
                    moved = true;
                }
            }
            for i in 0..self.extras.len() {
                let x = &self.extras[i];
                if x.linked && x.core.is_closed() && !pending_from(x.conn, &self.to_router) {
                    let conn = x.conn;
                    self.router.close(conn, self.now);
                    self.extras[i].linked = false;
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("trio did not settle");
    }

    fn deliver(&mut self, conn: ConnId, f: Vec<u8>) {
        if conn == self.ctrl {
            // Every frame the router emits decodes.
            codec::decode(&f, self.controller.encoding(), &Limits::default())
                .unwrap_or_else(|e| panic!("router sent an undecodable frame: {e:?}"));
            self.ctrl_frames.push(f.clone());
            self.ctrl_inbox.push_back(f);
        } else if let Some(p) = self.nodes.iter_mut().find(|p| p.conn == conn) {
            codec::decode(&f, p.core.encoding(), &Limits::default())
                .unwrap_or_else(|e| panic!("router sent an undecodable frame: {e:?}"));
            p.frames.push(f.clone());
            p.inbox.push_back(f);
        } else if let Some(x) = self.extras.iter_mut().find(|x| x.conn == conn) {
            codec::decode(&f, x.core.encoding(), &Limits::default())
                .unwrap_or_else(|e| panic!("router sent an undecodable frame: {e:?}"));
            x.frames.push(f.clone());
            x.inbox.push_back(f);
        } else {
            panic!("frame for an unknown connection");
        }
    }

    fn record_ctrl(&mut self, e: ControllerEvent<'_>, frame: &[u8]) {
        let ev = match e {
            ControllerEvent::Ready => CtrlEv::Ready,
            ControllerEvent::Response { id, result } => {
                self.responses.push((id, frame.to_vec()));
                CtrlEv::Response(id, result.map(|_| ()).map_err(|e| e.code))
            }
            ControllerEvent::Progress {
                call,
                progress,
                message,
                ..
            } => CtrlEv::Progress(call, progress, message.map(|m| m.to_string())),
            ControllerEvent::Ask {
                ask, call, prompt, ..
            } => CtrlEv::Ask(ask, call, prompt.to_string()),
            ControllerEvent::Log {
                call,
                level,
                message,
                ..
            } => CtrlEv::Log(call, level, message.to_string()),
            ControllerEvent::ToolsChanged { node } => CtrlEv::ToolsChanged(node.to_string()),
            ControllerEvent::Closed(r) => CtrlEv::Closed(r),
            other => panic!("unexpected controller event {other:?}"),
        };
        self.ctrl_events.push(ev);
    }

    /// Advances the clock deadline by deadline until `by` has passed, driving at each.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..10_000 {
            let mut next = self.router.poll_timeout();
            let mut consider = |t: Option<Instant>| {
                next = match (next, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            if self.ctrl_linked {
                consider(self.controller.poll_timeout());
            }
            for p in self.nodes.iter().filter(|p| p.linked) {
                consider(p.core.poll_timeout());
            }
            for x in self.extras.iter().filter(|x| x.linked) {
                consider(x.core.poll_timeout());
            }
            match next.filter(|t| *t <= until) {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.router.handle_timeout(self.now);
                    assert!(
                        self.router.poll_timeout().is_none_or(|t| t > self.now),
                        "a deadline due now survived handle_timeout"
                    );
                    if self.ctrl_linked {
                        self.controller.handle_timeout(self.now);
                    }
                    for p in self.nodes.iter_mut().filter(|p| p.linked) {
                        p.core.handle_timeout(self.now);
                    }
                    for x in self.extras.iter_mut().filter(|x| x.linked) {
                        x.core.handle_timeout(self.now);
                    }
                    self.drive();
                }
                None => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("timers did not settle");
    }

    // ----- the controller's side

    fn ctrl_ready(&self) -> bool {
        self.controller.is_ready()
    }

    fn request(&mut self, r: &Request<'_>) -> u64 {
        let mut out = vec![0u8; 1 << 16];
        let (id, n) = self.controller.request(r, &mut out).expect("request");
        self.to_router.push_back((self.ctrl, out[..n].to_vec()));
        self.drive();
        id
    }

    fn call(&mut self, node: &str, tool: &str, args: &str, deadline_ms: Option<u32>) -> u64 {
        self.request(&Request::Call(Call {
            node: Str::new(node),
            tool: Str::new(tool),
            arguments: Json::parse(args.as_bytes()).unwrap(),
            deadline_ms,
        }))
    }

    fn cancel(&mut self, id: u64) {
        let mut out = vec![0u8; 512];
        let n = self.controller.cancel(id, &mut out).unwrap();
        self.to_router.push_back((self.ctrl, out[..n].to_vec()));
        self.drive();
    }

    fn answer(&mut self, ask: &OwnedId, answer: Result<&str, ErrorObject<'_>>) {
        let mut out = vec![0u8; 512];
        let n = match answer {
            Ok(v) => {
                let v = Json::parse(v.as_bytes()).unwrap();
                self.controller.answer(ask, Ok(&v), &mut out)
            }
            Err(e) => self.controller.answer::<Json<'_>>(ask, Err(&e), &mut out),
        }
        .unwrap();
        self.to_router.push_back((self.ctrl, out[..n].to_vec()));
        self.drive();
    }

    /// Sends a raw frame as the controller.
    fn send_raw(&mut self, frame: Vec<u8>) {
        self.to_router.push_back((self.ctrl, frame));
        self.drive();
    }

    /// The response frame to request `id`; panics unless exactly one came.
    fn response_frame(&self, id: u64) -> &[u8] {
        let mut it = self.responses.iter().filter(|(i, _)| *i == id);
        let (_, f) = it.next().unwrap_or_else(|| panic!("no response to {id}"));
        assert!(it.next().is_none(), "two responses to {id}");
        f
    }

    fn no_response(&self, id: u64) -> bool {
        self.responses.iter().all(|(i, _)| *i != id)
    }

    /// The result of request `id` as JSON text, or its error code.
    fn result(&self, id: u64) -> Result<String, i32> {
        let f = self.response_frame(id);
        match decode_response(f, self.controller.encoding()) {
            Ok(p) => Ok(p
                .decode::<Json<'_>>(&Limits::default())
                .expect("a JSON result")
                .as_str()
                .to_owned()),
            Err(e) => Err(e.code),
        }
    }

    fn error_of(&self, id: u64) -> (i32, String, Option<String>) {
        let f = self.response_frame(id);
        match decode_response(f, self.controller.encoding()) {
            Ok(_) => panic!("expected an error for {id}"),
            Err(e) => (
                e.code,
                e.message.to_string(),
                e.data.map(|d| d.as_str().to_owned()),
            ),
        }
    }

    fn list_nodes(
        &mut self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> (Vec<String>, Option<String>) {
        let id = self.request(&Request::ListNodes(ListNodes {
            cursor: cursor.map(Str::new),
            limit,
        }));
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).expect("a page");
        let page = p.decode::<NodesPage<'_>>(&Limits::default()).unwrap();
        (
            page.nodes.iter().map(|n| n.id.to_string()).collect(),
            page.next_cursor.map(|c| c.to_string()),
        )
    }

    fn list_tools(
        &mut self,
        prefix: Option<&str>,
        node: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<String>, Option<String>), i32> {
        let id = self.request(&Request::ListTools(ListTools {
            prefix: prefix.map(Str::new),
            node: node.map(Str::new),
            cursor: cursor.map(Str::new),
            limit,
        }));
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).map_err(|e| e.code)?;
        let page = p.decode::<ToolsPage<'_>>(&Limits::default()).unwrap();
        Ok((
            page.tools
                .iter()
                .map(|t| format!("{}/{}", t.node, t.tool.name))
                .collect(),
            page.next_cursor.map(|c| c.to_string()),
        ))
    }

    fn resolve(&mut self, tool: &str) -> Vec<String> {
        let id = self.request(&Request::Resolve(Resolve {
            tool: Str::new(tool),
        }));
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).expect("resolved");
        let r = p.decode::<Resolved<'_>>(&Limits::default()).unwrap();
        r.nodes.iter().map(|n| n.to_string()).collect()
    }

    fn take_ctrl(&mut self, pred: impl Fn(&CtrlEv) -> bool) -> Vec<CtrlEv> {
        let (take, keep) = self.ctrl_events.drain(..).partition(|e| pred(e));
        self.ctrl_events = keep;
        take
    }

    // ----- the nodes' side

    fn take_execute(&mut self, node: usize) -> (CallHandle, String, String) {
        let evs = &mut self.nodes[node].events;
        let i = evs
            .iter()
            .position(|e| matches!(e, NodeEv::Execute(..)))
            .expect("an execute event");
        match evs.remove(i) {
            NodeEv::Execute(c, t, a) => (c, t, a),
            _ => unreachable!(),
        }
    }

    fn finish(&mut self, node: usize, call: CallHandle, result: Result<&str, ErrorObject<'_>>) {
        let mut out = vec![0u8; 1 << 16];
        let r = result.map(|s| Json::parse(s.as_bytes()).unwrap());
        let p = &mut self.nodes[node];
        let n = p.core.finish(call, r, &mut out).expect("finish");
        self.to_router.push_back((p.conn, out[..n].to_vec()));
        self.drive();
    }

    fn progress(&mut self, node: usize, call: CallHandle, step: u64) {
        let mut out = vec![0u8; 512];
        let p = &mut self.nodes[node];
        let n = p
            .core
            .progress(call, step, Some(3), Some("working"), None, &mut out)
            .unwrap();
        self.to_router.push_back((p.conn, out[..n].to_vec()));
        self.drive();
    }

    fn log(&mut self, node: usize, call: Option<CallHandle>, message: &str) {
        let mut out = vec![0u8; 512];
        let p = &mut self.nodes[node];
        let n = p
            .core
            .log(call, LogLevel::Warning, message, None, &mut out)
            .unwrap();
        self.to_router.push_back((p.conn, out[..n].to_vec()));
        self.drive();
    }

    fn ask(&mut self, node: usize, call: CallHandle, prompt: &str) -> AskHandle {
        self.ask_kind(node, call, AskKind::Permission, prompt)
    }

    fn ask_kind(
        &mut self,
        node: usize,
        call: CallHandle,
        kind: AskKind,
        prompt: &str,
    ) -> AskHandle {
        let mut out = vec![0u8; 512];
        let p = &mut self.nodes[node];
        let (ask, n) = p.core.ask(call, kind, prompt, None, &mut out).unwrap();
        self.to_router.push_back((p.conn, out[..n].to_vec()));
        self.drive();
        ask
    }

    /// The node's transport drops (the router sees its connection end).
    fn drop_node(&mut self, node: usize) {
        let conn = self.nodes[node].conn;
        self.nodes[node].linked = false;
        self.router.close(conn, self.now);
        self.drive();
    }

    fn dones(&self) -> Vec<(toolwire_core::router::CallKey, Result<String, i32>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Done { key, result } => Some((*key, result.clone().map_err(|f| f.code))),
                _ => None,
            })
            .collect()
    }

    /// What every scenario ends with: nothing in flight, no frame either side refused.
    fn check_clean(&self) {
        assert_eq!(self.router.in_flight(), 0, "calls left in flight");
        assert_eq!(self.ctrl_errors, 0, "the controller refused a frame");
        assert_eq!(self.node_errors, 0, "a node refused a frame");
    }
}

fn decode_response(f: &[u8], enc: Encoding) -> Result<codec::Payload<'_>, ErrorObject<'_>> {
    match codec::decode(f, enc, &Limits::default()).expect("decodes") {
        Message::Response { result, .. } => result,
        other => panic!("not a response: {other:?}"),
    }
}

fn node_ev(tools: &[&str], e: NodeEvent<'_>) -> NodeEv {
    match e {
        NodeEvent::Ready { rejected } => NodeEv::Ready(rejected.len()),
        NodeEvent::Execute { call, tool, args } => {
            NodeEv::Execute(call, tools[tool].to_owned(), args.as_str().to_owned())
        }
        NodeEvent::Cancel { call } => NodeEv::Cancel(call),
        NodeEvent::Answer { call, answer, .. } => NodeEv::Answer(
            call,
            answer.map(|j| j.as_str().to_owned()).map_err(|e| e.code),
        ),
        NodeEvent::Closed(r) => NodeEv::Closed(r),
        other => panic!("unexpected node event {other:?}"),
    }
}

/// What an extra controller's event is, for the few events such a controller gets.
fn extra_ev(e: ControllerEvent<'_>) -> CtrlEv {
    match e {
        ControllerEvent::Ready => CtrlEv::Ready,
        ControllerEvent::Response { id, result } => {
            CtrlEv::Response(id, result.map(|_| ()).map_err(|e| e.code))
        }
        ControllerEvent::ToolsChanged { node } => CtrlEv::ToolsChanged(node.to_string()),
        ControllerEvent::Closed(r) => CtrlEv::Closed(r),
        other => panic!("unexpected controller event {other:?}"),
    }
}

/// The code and message of a refused hello's answer.
fn refusal(f: &[u8], enc: Encoding) -> (i32, String) {
    match decode_response(f, enc) {
        Ok(_) => panic!("a welcome, not a refusal"),
        Err(e) => (e.code, e.message.to_string()),
    }
}

fn code(c: ErrorCode) -> i32 {
    c.code()
}

// ----- routing

#[test]
fn controller_call_routes_to_the_right_node_and_back() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let a = t.add_node("dev-a", &["echo"], node_enc);
        let b = t.add_node("dev-b", &["echo", "only_b"], node_enc);
        assert!(t.ctrl_ready());
        let id = t.call("dev-b", "echo", r#"{"x":41}"#, Some(1000));
        assert!(t.nodes[a].events.is_empty(), "the other node got nothing");
        let (call, tool, args) = t.take_execute(b);
        assert_eq!((tool.as_str(), args.as_str()), ("echo", r#"{"x":41}"#));
        assert_eq!(t.router.in_flight(), 1);
        assert!(t.no_response(id));
        t.finish(b, call, Ok(r#"{"y":42}"#));
        assert_eq!(t.result(id), Ok(r#"{"y":42}"#.to_owned()));
        // A tool's own error reaches the controller with its code.
        let id2 = t.call("dev-a", "echo", "{}", None);
        let (call, ..) = t.take_execute(a);
        t.finish(
            a,
            call,
            Err(ErrorObject {
                code: 7,
                message: Str::new("sensor offline"),
                data: Some(Json::trusted(br#"{"bus":"i2c0"}"#)),
            }),
        );
        assert_eq!(
            t.error_of(id2),
            (7, "sensor offline".into(), Some(r#"{"bus":"i2c0"}"#.into()))
        );
        // Unknown nodes and tools are answered at the gateway.
        let id3 = t.call("dev-z", "echo", "{}", None);
        assert_eq!(t.result(id3), Err(code(ErrorCode::NodeNotFound)));
        let id4 = t.call("dev-a", "only_b", "{}", None);
        assert_eq!(t.result(id4), Err(code(ErrorCode::ToolNotFound)));
        let finished: Vec<_> = t
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Finished {
                    node,
                    tool,
                    outcome,
                    ..
                } => Some((node.as_str(), tool.as_str(), *outcome)),
                _ => None,
            })
            .collect();
        assert_eq!(
            finished,
            vec![("dev-b", "echo", Ok(())), ("dev-a", "echo", Err(7))]
        );
        t.check_clean();
    }
}

#[test]
fn local_call_completes_exactly_once() {
    for enc in ALL {
        let mut t = Trio::standard(Encoding::Json);
        let n = t.add_node("dev-1", &["echo"], enc);
        let key = t
            .router
            .call(
                t.now,
                "dev-1",
                "echo",
                Json::trusted(br#"{"x":1}"#),
                None,
                None,
            )
            .unwrap();
        t.drive();
        let (call, _, args) = t.take_execute(n);
        assert_eq!(args, r#"{"x":1}"#);
        assert!(t.dones().is_empty());
        t.finish(n, call, Ok("[1,2]"));
        assert_eq!(t.dones(), vec![(key, Ok("[1,2]".to_owned()))]);
        // Nothing more comes, even after every deadline.
        t.advance(Duration::from_secs(60));
        assert_eq!(t.dones().len(), 1);
        // Errors before dispatch are returned, not evented.
        let e = t
            .router
            .call(t.now, "dev-1", "echo", Json::trusted(b"[1]"), None, None)
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::InvalidParams));
        let e = t
            .router
            .call(t.now, "nope", "echo", Json::EMPTY_OBJECT, None, None)
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::NodeNotFound));
        let e = t
            .router
            .call(t.now, "dev-1", "nope", Json::EMPTY_OBJECT, None, None)
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::ToolNotFound));
        let acl = Acl {
            allow: vec!["other".into()],
            deny: vec![],
        };
        let e = t
            .router
            .call(t.now, "dev-1", "echo", Json::EMPTY_OBJECT, None, Some(&acl))
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Unauthorized));
        t.drive();
        assert_eq!(t.dones().len(), 1);
        t.check_clean();
    }
}

#[test]
fn resolve_follows_the_tool_index() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        t.add_node("dev-b", &["temp", "led"], node_enc);
        let a = t.add_node("dev-a", &["temp"], node_enc);
        assert_eq!(t.resolve("temp"), vec!["dev-a", "dev-b"]);
        assert_eq!(t.resolve("led"), vec!["dev-b"]);
        assert!(t.resolve("nope").is_empty());
        assert_eq!(
            t.router.resolve("temp").collect::<Vec<_>>(),
            ["dev-a", "dev-b"]
        );
        t.drop_node(a);
        assert_eq!(t.resolve("temp"), vec!["dev-b"]);
        t.check_clean();
    }
}

// ----- listings

#[test]
fn nodes_list_pages_to_the_end() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        let ids = ["n0", "n1", "n2", "n3", "n4", "n5", "n6"];
        for id in ids {
            t.add_node(id, &["echo"], Encoding::Postcard);
        }
        // Whole pages in order, every node once.
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let (page, next) = t.list_nodes(cursor.as_deref(), Some(2));
            assert!(page.len() <= 2);
            seen.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        // The last page has no cursor; a limit that covers everything gives none.
        assert_eq!(t.list_nodes(None, Some(7)).1, None);
        assert_eq!(t.list_nodes(None, None).0.len(), 7);

        // A node leaving between pages: the listing goes on after the cursor.
        let (page, next) = t.list_nodes(None, Some(3));
        assert_eq!(page, ["n0", "n1", "n2"]);
        let n2 = t
            .nodes
            .iter()
            .position(|p| t.router.node_of(p.conn) == Some("n2"));
        t.drop_node(n2.unwrap());
        let (page, next) = t.list_nodes(next.as_deref(), Some(3));
        assert_eq!(page, ["n3", "n4", "n5"]);
        let (page, next) = t.list_nodes(next.as_deref(), Some(3));
        assert_eq!((page, next), (vec!["n6".to_owned()], None));
        t.check_clean();
    }
}

#[test]
fn tools_list_pages_to_the_end() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        t.add_node("a", &["t1", "t2", "t3"], Encoding::Json);
        let b = t.add_node("b", &["t1", "t2"], Encoding::Postcard);
        t.add_node("c", &["t1", "t2", "t3"], Encoding::Json);
        let all = [
            "a/t1", "a/t2", "a/t3", "b/t1", "b/t2", "c/t1", "c/t2", "c/t3",
        ];
        for limit in [1, 2, 3, 5, 8, 100] {
            let mut seen = vec![];
            let mut cursor: Option<String> = None;
            for _ in 0..20 {
                let (page, next) = t
                    .list_tools(None, None, cursor.as_deref(), Some(limit))
                    .unwrap();
                assert!(page.len() <= limit as usize);
                seen.extend(page);
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, all, "limit {limit}");
        }
        // The node holding the cursor leaves between pages.
        let (page, next) = t.list_tools(None, None, None, Some(4)).unwrap();
        assert_eq!(page, ["a/t1", "a/t2", "a/t3", "b/t1"]);
        t.drop_node(b);
        let (page, next) = t.list_tools(None, None, next.as_deref(), Some(4)).unwrap();
        assert_eq!(
            (page, next),
            (vec!["c/t1".into(), "c/t2".into(), "c/t3".into()], None)
        );
        t.check_clean();
    }
}

#[test]
fn garbage_cursor_is_invalid_params() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        t.add_node("a", &["t1"], Encoding::Json);
        for bad in ["", "no-slash", "a/", "/t1", "a/b/c", "\u{e9}/x", "a b/c"] {
            assert_eq!(
                t.list_tools(None, None, Some(bad), None),
                Err(code(ErrorCode::InvalidParams)),
                "tools cursor {bad:?}"
            );
        }
        for bad in ["", "a/b", "sp ace", "\u{e9}"] {
            let id = t.request(&Request::ListNodes(ListNodes {
                cursor: Some(Str::new(bad)),
                limit: None,
            }));
            assert_eq!(t.result(id), Err(code(ErrorCode::InvalidParams)), "{bad:?}");
        }
        // A well-formed cursor naming no current item lists what comes after it: it cannot be
        // told from one this gateway made for an item that has left since.
        assert_eq!(
            t.list_tools(None, None, Some("0/zzz"), None),
            Ok((vec!["a/t1".into()], None))
        );
        t.check_clean();
    }
}

#[test]
fn tools_list_filters_by_prefix_and_node() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        t.add_node("a", &["read_temp", "read_hum", "set_led"], Encoding::Json);
        t.add_node("b", &["read_temp", "reboot"], Encoding::Postcard);
        let tools = |t: &mut Trio<_>, p, n| t.list_tools(p, n, None, None).unwrap().0;
        assert_eq!(
            tools(&mut t, Some("read_"), None),
            ["a/read_hum", "a/read_temp", "b/read_temp"]
        );
        assert_eq!(tools(&mut t, None, Some("b")), ["b/read_temp", "b/reboot"]);
        assert_eq!(
            tools(&mut t, Some("re"), Some("b")),
            ["b/read_temp", "b/reboot"]
        );
        assert!(tools(&mut t, None, Some("zzz")).is_empty());
        assert!(tools(&mut t, Some("x"), None).is_empty());
        // Paging with a filter.
        let (page, next) = t.list_tools(Some("read_"), None, None, Some(2)).unwrap();
        assert_eq!(page, ["a/read_hum", "a/read_temp"]);
        let (page, next) = t
            .list_tools(Some("read_"), None, next.as_deref(), Some(2))
            .unwrap();
        assert_eq!((page, next), (vec!["b/read_temp".into()], None));
        let (page, next) = t.list_tools(None, Some("a"), None, Some(1)).unwrap();
        assert_eq!(page, ["a/read_hum"]);
        let (page, _) = t
            .list_tools(None, Some("a"), next.as_deref(), Some(5))
            .unwrap();
        assert_eq!(page, ["a/read_temp", "a/set_led"]);
        t.check_clean();
    }
}

#[test]
fn a_controller_narrows_its_tool_set() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let a = t.add_node("a", &["read_temp", "read_hum", "set_led"], node_enc);
        t.add_node("b", &["read_temp", "reboot"], node_enc);
        let scope = |t: &mut Trio<_>, patterns: &[&str]| {
            let names: Vec<Str<'_>> = patterns.iter().map(|p| Str::new(p)).collect();
            let id = t.request(&Request::Scope(Scope {
                tools: List::from_slice(&names),
            }));
            let f = t.response_frame(id);
            decode_response(f, t.controller.encoding())
                .map(|p| p.decode::<()>(&Limits::default()).expect("an empty result"))
                .map_err(|e| e.code)
        };
        let tools = |t: &mut Trio<_>| t.list_tools(None, None, None, None).unwrap().0;
        assert_eq!(scope(&mut t, &["read_*", "b/reboot"]), Ok(()));
        assert_eq!(
            tools(&mut t),
            ["a/read_hum", "a/read_temp", "b/read_temp", "b/reboot"]
        );
        // Paging goes through the narrowed listing.
        let (page, next) = t.list_tools(None, None, None, Some(3)).unwrap();
        assert_eq!(page, ["a/read_hum", "a/read_temp", "b/read_temp"]);
        let (page, next) = t.list_tools(None, None, next.as_deref(), Some(3)).unwrap();
        assert_eq!((page, next), (vec!["b/reboot".into()], None));
        assert_eq!(scope(&mut t, &["a/*"]), Ok(()));
        assert_eq!(tools(&mut t), ["a/read_hum", "a/read_temp", "a/set_led"]);
        assert_eq!(t.resolve("read_temp"), ["a"]);
        assert!(t.resolve("reboot").is_empty());
        // A call outside the set never reaches a node.
        let out = t.call("b", "reboot", "{}", None);
        let (code_, message, _) = t.error_of(out);
        assert_eq!(code_, code(ErrorCode::Unauthorized));
        assert!(message.contains("tools.scope"), "{message}");
        assert!(
            t.nodes[1]
                .events
                .iter()
                .all(|e| !matches!(e, NodeEv::Execute(..)))
        );
        let ok = t.call("a", "set_led", "{}", None);
        let (call, tool, _) = t.take_execute(a);
        assert_eq!(tool, "set_led");
        t.finish(a, call, Ok("true"));
        assert_eq!(t.result(ok), Ok("true".into()));
        // Patterns that cannot be a tool set are refused, and the set stays as it was.
        let long = "x".repeat(130);
        for bad in [&["a/b/c"][..], &[""], &[long.as_str()]] {
            assert_eq!(scope(&mut t, bad), Err(code(ErrorCode::InvalidParams)));
        }
        let many: Vec<String> = (0..257).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(scope(&mut t, &many), Err(code(ErrorCode::InvalidParams)));
        assert_eq!(tools(&mut t), ["a/read_hum", "a/read_temp", "a/set_led"]);
        // An empty set lifts the narrowing.
        assert_eq!(scope(&mut t, &[]), Ok(()));
        assert_eq!(tools(&mut t).len(), 5);
        assert_eq!(t.resolve("read_temp"), ["a", "b"]);
        t.check_clean();
    }
}

#[test]
fn a_tool_set_belongs_to_its_connection() {
    let mut t = Trio::standard(Encoding::Json);
    t.add_node("a", &["read_temp", "set_led"], Encoding::Json);
    let id = t.request(&Request::Scope(Scope {
        tools: List::from_slice(&[Str::new("read_temp")]),
    }));
    assert_eq!(t.result(id), Ok("{}".into()));
    assert_eq!(
        t.list_tools(None, None, None, None).unwrap().0,
        ["a/read_temp"]
    );
    // The local API (REST, metrics) sees and calls every tool.
    assert_eq!(t.router.tools(None, None).count(), 2);
    let key = t
        .router
        .call(t.now, "a", "set_led", Json::EMPTY_OBJECT, None, None)
        .unwrap();
    t.drive();
    let (call, tool, _) = t.take_execute(0);
    assert_eq!(tool, "set_led");
    t.finish(0, call, Ok("1"));
    assert_eq!(t.dones(), vec![(key, Ok("1".to_owned()))]);
    t.check_clean();
}

/// Tools `read` (read-only and idempotent: cacheable), `peek` (read-only only) and `set`.
fn cacheable_defs() -> &'static [ToolDef<'static>] {
    let defs: Vec<ToolDef<'static>> = [
        ("read", true, true),
        ("peek", true, false),
        ("set", false, true),
    ]
    .into_iter()
    .map(|(n, read_only, idempotent)| ToolDef {
        name: Str::new(n),
        description: Str::new("test tool"),
        input_schema: Json::trusted(SCHEMA),
        output_schema: None,
        annotations: Annotations {
            read_only,
            destructive: false,
            idempotent,
        },
    })
    .collect();
    Box::leak(defs.into_boxed_slice())
}

#[test]
fn the_result_cache_answers_repeated_reads_without_the_node() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.cache = Some(CacheConfig::new(Duration::from_secs(10)));
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node_with("dev", cacheable_defs(), node_enc, None);
        t.nodes[n].events.clear();
        let executes = |t: &Trio<_>| {
            t.nodes[n]
                .events
                .iter()
                .filter(|e| matches!(e, NodeEv::Execute(..)))
                .count()
        };
        // The first read reaches the node; the same arguments in another member order and
        // spacing are answered by the gateway.
        let first = t.call("dev", "read", r#"{"a":1,"b":[2]}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok(r#"{"v":21.5}"#));
        assert_eq!(t.result(first), Ok(r#"{"v":21.5}"#.into()));
        let again = t.call("dev", "read", r#"{ "b" : [2], "a":1 }"#, None);
        assert_eq!(t.result(again), Ok(r#"{"v":21.5}"#.into()));
        assert_eq!(executes(&t), 0, "a hit never reaches the node");
        // Other arguments, and tools not both read-only and idempotent, always reach it.
        for (tool, args) in [
            ("read", r#"{"a":2}"#),
            ("peek", "{}"),
            ("peek", "{}"),
            ("set", "{}"),
        ] {
            let id = t.call("dev", tool, args, None);
            let (call, ..) = t.take_execute(n);
            t.finish(n, call, Ok("1"));
            assert_eq!(t.result(id), Ok("1".into()));
        }
        let st = t.router.stats();
        assert_eq!((st.cache_hits, st.cache_misses), (1, 2));
        // An error is not kept.
        let id = t.call("dev", "read", r#"{"a":3}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(
            n,
            call,
            Err(ErrorObject::new(ErrorCode::ToolFailed, "flaky")),
        );
        assert_eq!(t.result(id), Err(code(ErrorCode::ToolFailed)));
        let id = t.call("dev", "read", r#"{"a":3}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("3"));
        assert_eq!(t.result(id), Ok("3".into()));
        // A local call may bypass it; its result replaces the kept one.
        let key = t
            .router
            .call_with(
                t.now,
                "dev",
                "read",
                Json::trusted(br#"{"a":1,"b":[2]}"#),
                &LocalCall {
                    no_cache: true,
                    ..LocalCall::default()
                },
            )
            .unwrap();
        t.drive();
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("22"));
        assert!(t.dones().contains(&(key, Ok("22".to_owned()))));
        let key = t
            .router
            .call(
                t.now,
                "dev",
                "read",
                Json::trusted(br#"{"b":[2],"a":1}"#),
                None,
                None,
            )
            .unwrap();
        t.drive();
        assert!(
            t.dones().contains(&(key, Ok("22".to_owned()))),
            "a local hit"
        );
        assert_eq!(executes(&t), 0);
        // Results expire at the TTL.
        t.advance(Duration::from_secs(11));
        let id = t.call("dev", "read", r#"{"a":1,"b":[2]}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("23"));
        assert_eq!(t.result(id), Ok("23".into()));
        // The expired results went with that insertion: one result is kept.
        assert_eq!(t.router.cached_results(), 1);
        // The node leaving drops its results: a node with the same id is a new device.
        t.drop_node(n);
        assert_eq!(t.router.cached_results(), 0);
        t.check_clean();
    }
}

// ----- tokens, ACLs, rate limits

fn token_config() -> RouterConfig {
    let mut cfg = standard_config();
    cfg.tokens = vec![
        TokenSpec {
            token: "node-secret".into(),
            node: true,
            controller: false,
            acl: Acl::default(),
        },
        TokenSpec {
            token: "reader".into(),
            node: false,
            controller: true,
            acl: Acl {
                allow: vec!["read_*".into()],
                deny: vec!["dev-2/*".into()],
            },
        },
    ];
    cfg
}

#[test]
fn acl_limits_a_controller_token() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::new(
            token_config(),
            toolwire_core::router::AcceptAll,
            ctrl_enc,
            Some("reader"),
        );
        assert!(t.ctrl_ready());
        let tools = tool_defs(&["read_temp", "set_led"], SCHEMA);
        let n1 = t.add_node_with("dev-1", tools, node_enc, Some("node-secret"));
        t.add_node_with("dev-2", tools, node_enc, Some("node-secret"));
        let denied = t.call("dev-1", "set_led", "{}", None);
        assert_eq!(t.result(denied), Err(code(ErrorCode::Unauthorized)));
        let denied = t.call("dev-2", "read_temp", "{}", None);
        assert_eq!(t.result(denied), Err(code(ErrorCode::Unauthorized)));
        let ok = t.call("dev-1", "read_temp", "{}", None);
        let (call, tool, _) = t.take_execute(n1);
        assert_eq!(tool, "read_temp");
        t.finish(n1, call, Ok("21.5"));
        assert_eq!(t.result(ok), Ok("21.5".into()));
        assert!(
            t.nodes
                .iter()
                .all(|p| p.events.iter().all(|e| !matches!(e, NodeEv::Execute(..))))
        );
        t.check_clean();
    }
}

#[test]
fn wrong_or_missing_token_is_refused() {
    for enc in ALL {
        for token in [None, Some("guess"), Some("node-secret")] {
            // A controller with no token, a wrong one, or a node-only one.
            let t = Trio::new(token_config(), toolwire_core::router::AcceptAll, enc, token);
            assert!(!t.ctrl_ready());
            assert_eq!(
                t.ctrl_events,
                vec![CtrlEv::Closed(node::CloseReason::Refused(code(
                    ErrorCode::Unauthorized
                )))],
                "{token:?}"
            );
            assert!(!t.router.is_open(t.ctrl), "the connection is closed");
        }
        // A node likewise; a controller-only token is no node token.
        let mut t = Trio::new(
            token_config(),
            toolwire_core::router::AcceptAll,
            enc,
            Some("reader"),
        );
        let tools = tool_defs(&["echo"], SCHEMA);
        for token in [None, Some("guess"), Some("reader")] {
            let n = t.add_node_with("dev-1", tools, enc, token);
            assert_eq!(
                t.nodes[n].events,
                vec![NodeEv::Closed(node::CloseReason::Refused(code(
                    ErrorCode::Unauthorized
                )))]
            );
            assert!(!t.router.is_open(t.nodes[n].conn));
        }
        assert_eq!(t.router.nodes().count(), 0);
        assert_eq!(t.router.connections(), 1);
        let n = t.add_node_with("dev-1", tools, enc, Some("node-secret"));
        assert_eq!(t.nodes[n].events, vec![NodeEv::Ready(0)]);
        t.check_clean();
    }
}

#[test]
fn rate_limit_on_injected_time() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.rate_limit = Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node("dev-1", &["echo"], node_enc);
        let other = t.add_node("dev-2", &["echo"], node_enc);
        let mut ids = vec![];
        for _ in 0..3 {
            let id = t.call("dev-1", "echo", "{}", None);
            let (call, ..) = t.take_execute(n);
            t.finish(n, call, Ok("1"));
            ids.push(id);
        }
        for id in ids {
            assert_eq!(t.result(id), Ok("1".into()));
        }
        let limited = t.call("dev-1", "echo", "{}", None);
        assert_eq!(t.result(limited), Err(code(ErrorCode::RateLimited)));
        // Local calls draw from the same bucket.
        let e = t
            .router
            .call(t.now, "dev-1", "echo", Json::EMPTY_OBJECT, None, None)
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::RateLimited));
        // Another node has its own bucket.
        let id = t.call("dev-2", "echo", "{}", None);
        let (call, ..) = t.take_execute(other);
        t.finish(other, call, Ok("2"));
        assert_eq!(t.result(id), Ok("2".into()));
        // Half a second refills one token (2 per second), not two.
        t.advance(Duration::from_millis(499));
        let limited = t.call("dev-1", "echo", "{}", None);
        assert_eq!(t.result(limited), Err(code(ErrorCode::RateLimited)));
        t.advance(Duration::from_millis(1));
        let id = t.call("dev-1", "echo", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("3"));
        assert_eq!(t.result(id), Ok("3".into()));
        let limited = t.call("dev-1", "echo", "{}", None);
        assert_eq!(t.result(limited), Err(code(ErrorCode::RateLimited)));
        t.check_clean();
    }
}

// ----- progress, asks, cancels

#[test]
fn log_lines_go_to_the_caller_or_the_gateway() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["long"], node_enc);
        t.ctrl_events.clear();
        // About a controller's call: to that controller, under its request id.
        let id = t.call("dev-1", "long", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.log(n, Some(call), "valve sticky");
        t.finish(n, call, Ok("true"));
        assert_eq!(
            t.ctrl_events,
            vec![
                CtrlEv::Log(id, LogLevel::Warning, "valve sticky".into()),
                CtrlEv::Response(id, Ok(())),
            ]
        );
        // About a finished call (the node's state machine refuses that; a raw frame): dropped,
        // no event, nothing to the controller.
        t.ctrl_events.clear();
        t.events.clear();
        let late = Message::Notification(Notification::Log(Log {
            id: Some(Id::Num(999_999)),
            level: LogLevel::Info,
            message: Str::new("late"),
            data: None,
        }));
        let mut buf = vec![0u8; 256];
        let len = codec::encode(node_enc, &late, &mut buf).unwrap();
        let conn = t.nodes[n].conn;
        t.to_router.push_back((conn, buf[..len].to_vec()));
        t.drive();
        assert!(t.ctrl_events.is_empty(), "{:?}", t.ctrl_events);
        assert!(!t.events.iter().any(|e| matches!(e, Event::Log { .. })));
        // About a local call: an event with its key; about the node: one without.
        let key = t
            .router
            .call(t.now, "dev-1", "long", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        let (call, ..) = t.take_execute(n);
        t.log(n, Some(call), "local");
        t.log(n, None, "rebooted");
        t.finish(n, call, Ok("1"));
        let logs: Vec<_> = t
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Log {
                    node, key, message, ..
                } => Some((node.clone(), *key, message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            vec![
                ("dev-1".to_owned(), Some(key), "local".to_owned()),
                ("dev-1".to_owned(), None, "rebooted".to_owned()),
            ]
        );
        assert!(t.ctrl_events.iter().all(|e| !matches!(e, CtrlEv::Log(..))));
        t.check_clean();
    }
}

#[test]
fn progress_is_relayed_to_the_caller() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["long"], node_enc);
        t.ctrl_events.clear();
        let id = t.call("dev-1", "long", "{}", None);
        let (call, ..) = t.take_execute(n);
        for step in 1..=3 {
            t.progress(n, call, step);
        }
        t.finish(n, call, Ok("true"));
        assert_eq!(
            t.ctrl_events,
            vec![
                CtrlEv::Progress(id, 1, Some("working".into())),
                CtrlEv::Progress(id, 2, Some("working".into())),
                CtrlEv::Progress(id, 3, Some("working".into())),
                CtrlEv::Response(id, Ok(())),
            ]
        );
        // And to the local API.
        let key = t
            .router
            .call(t.now, "dev-1", "long", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        let (call, ..) = t.take_execute(n);
        t.progress(n, call, 1);
        t.finish(n, call, Ok("false"));
        let local: Vec<_> = t
            .events
            .iter()
            .filter(|e| matches!(e, Event::Progress { .. } | Event::Done { .. }))
            .cloned()
            .collect();
        assert_eq!(
            local,
            vec![
                Event::Progress {
                    key,
                    progress: 1,
                    total: Some(3),
                    message: Some("working".into()),
                    partial: None
                },
                Event::Done {
                    key,
                    result: Ok("false".into())
                }
            ]
        );
        t.check_clean();
    }
}

#[test]
fn ask_is_relayed_to_the_controller_and_answered() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["valve"], node_enc);
        t.ctrl_events.clear();
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.ask(n, call, "Open the valve?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let [CtrlEv::Ask(ask, for_call, prompt)] = &asks[..] else {
            panic!("expected one ask, got {asks:?}");
        };
        assert_eq!((*for_call, prompt.as_str()), (id, "Open the valve?"));
        t.answer(ask, Ok("true"));
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok("true".into()))]
        );
        t.nodes[n].events.clear();
        // A second ask, declined by the controller.
        t.ask(n, call, "Really?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let [CtrlEv::Ask(ask, ..)] = &asks[..] else {
            panic!("expected one ask");
        };
        t.answer(ask, Err(ErrorObject::new(ErrorCode::AskDeclined, "no")));
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Err(code(ErrorCode::AskDeclined)))]
        );
        t.finish(n, call, Ok(r#""opened""#));
        assert_eq!(t.result(id), Ok(r#""opened""#.into()));
        // An answer after the call ended is dropped and counted.
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.ask(n, call, "Late?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let [CtrlEv::Ask(ask, ..)] = &asks[..] else {
            panic!("expected one ask");
        };
        t.finish(n, call, Ok("1"));
        assert_eq!(t.result(id), Ok("1".into()));
        t.nodes[n].events.clear();
        t.answer(ask, Ok("true"));
        // The connection forgot the forwarded ask when its call ended: the answer is dropped.
        assert!(
            !t.nodes[n]
                .events
                .iter()
                .any(|e| matches!(e, NodeEv::Answer(_, Ok(_)))),
            "{:?}",
            t.nodes[n].events
        );
        t.check_clean();
    }
}

fn rule<'a>(
    tool: &'a str,
    kind: Option<AskKind>,
    prompt: Option<&'a str>,
    decision: Decision,
    answer: Option<&'a str>,
) -> Rule<'a> {
    Rule {
        tool: Str::new(tool),
        kind,
        prompt: prompt.map(Str::new),
        decision,
        answer: answer.map(|a| Json::parse(a.as_bytes()).unwrap()),
    }
}

impl<S: Schemas> Trio<S> {
    fn set_rules(&mut self, rules: &[Rule<'_>]) -> Result<(), i32> {
        let id = self.request(&Request::SetRules(SetRules {
            rules: List::from_slice(rules),
        }));
        let f = self.response_frame(id);
        decode_response(f, self.controller.encoding())
            .map(|p| p.decode::<()>(&Limits::default()).expect("an empty result"))
            .map_err(|e| e.code)
    }

    fn list_rules(&mut self) -> Vec<String> {
        let id = self.request(&Request::ListRules(ListRules {}));
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).expect("rules");
        let r = p.decode::<RulesList<'_>>(&Limits::default()).unwrap();
        r.rules
            .iter()
            .map(|r| format!("{} {}", r.tool, r.decision.as_str()))
            .collect()
    }
}

#[test]
fn ask_rules_answer_asks_without_the_caller() {
    use AskKind::{Input, Permission};
    use Decision::{Allow, Deny, Forward};
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["valve", "pump"], node_enc);
        let rules = [
            rule("valve", Some(Permission), Some("Drain*"), Forward, None),
            rule("dev-*/valve", Some(Permission), None, Allow, None),
            rule("valve", Some(Input), None, Allow, Some(r#"{"litres":2}"#)),
            rule("pump", None, Some("Start*"), Deny, None),
        ];
        assert_eq!(t.set_rules(&rules), Ok(()));
        assert_eq!(
            t.list_rules(),
            [
                "valve forward",
                "dev-*/valve allow",
                "valve allow",
                "pump deny"
            ]
        );
        t.ctrl_events.clear();
        t.events.clear();
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        // Allowed by rule 1: the node hears `true`, the controller nothing.
        t.ask(n, call, "Open the valve?");
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok("true".into()))]
        );
        assert!(t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..))).is_empty());
        let decided: Vec<_> = t
            .events
            .iter()
            .filter_map(|e| match e {
                Event::AskDecided {
                    rule,
                    decision,
                    prompt,
                    tool,
                    ..
                } => Some((*rule, *decision, prompt.clone(), tool.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            decided,
            [(1, Allow, "Open the valve?".to_owned(), "valve".to_owned())]
        );
        t.nodes[n].events.clear();
        // Rule 0 forwards prompts about draining: the controller is asked.
        t.ask(n, call, "Drain the tank?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let [CtrlEv::Ask(ask, ..)] = &asks[..] else {
            panic!("expected one ask, got {asks:?}");
        };
        t.answer(ask, Ok("false"));
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok("false".into()))]
        );
        t.nodes[n].events.clear();
        // An input ask gets rule 2's answer.
        t.ask_kind(n, call, Input, "How much?");
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok(r#"{"litres":2}"#.into()))]
        );
        t.finish(n, call, Ok("1"));
        assert_eq!(t.result(id), Ok("1".into()));
        // Denied: a permission is `false`, an input declined.
        let id = t.call("dev-1", "pump", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.nodes[n].events.clear();
        t.ask(n, call, "Start the pump?");
        t.ask_kind(n, call, Input, "Start at what speed?");
        assert_eq!(
            t.nodes[n].events,
            vec![
                NodeEv::Answer(call, Ok("false".into())),
                NodeEv::Answer(call, Err(code(ErrorCode::AskDeclined)))
            ]
        );
        // No rule matches: relayed as without rules.
        t.ask(n, call, "Stop the pump?");
        assert_eq!(t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..))).len(), 1);
        t.finish(n, call, Ok("2"));
        assert_eq!(t.result(id), Ok("2".into()));
        // Rules that cannot be are refused, and the set stays as it was.
        for bad in [
            rule("valve", Some(Input), None, Allow, None),
            rule("valve", None, None, Deny, Some("1")),
            rule("a/b/c", None, None, Deny, None),
            rule("", None, None, Deny, None),
        ] {
            assert_eq!(t.set_rules(&[bad]), Err(code(ErrorCode::InvalidParams)));
        }
        let many = vec![rule("x", None, None, Deny, None); 65];
        assert_eq!(t.set_rules(&many), Err(code(ErrorCode::InvalidParams)));
        assert_eq!(t.list_rules().len(), 4);
        // An empty set removes them.
        assert_eq!(t.set_rules(&[]), Ok(()));
        assert!(t.list_rules().is_empty());
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.ask(n, call, "Open the valve?");
        assert_eq!(t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..))).len(), 1);
        t.finish(n, call, Ok("3"));
        assert_eq!(t.result(id), Ok("3".into()));
        t.check_clean();
    }
}

#[test]
fn local_ask_is_answered_through_the_router() {
    for enc in ALL {
        let mut t = Trio::standard(Encoding::Json);
        let n = t.add_node("dev-1", &["valve"], enc);
        let key = t
            .router
            .call(t.now, "dev-1", "valve", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        let (call, ..) = t.take_execute(n);
        t.ask(n, call, "Open?");
        let ask = t
            .events
            .iter()
            .find_map(|e| match e {
                Event::Ask {
                    ask,
                    key: k,
                    prompt,
                    ..
                } if *k == key && prompt == "Open?" => Some(*ask),
                _ => None,
            })
            .expect("an ask event");
        t.router
            .answer(t.now, ask, Ok(Json::trusted(br#"{"ok":true}"#)));
        t.drive();
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok(r#"{"ok":true}"#.into()))]
        );
        // The same ask answered twice: the second is ignored.
        t.router.answer(t.now, ask, Ok(Json::trusted(b"false")));
        t.drive();
        assert_eq!(t.nodes[n].events.len(), 1);
        t.finish(n, call, Ok("1"));
        assert_eq!(t.dones(), vec![(key, Ok("1".into()))]);
        t.check_clean();
    }
}

#[test]
fn several_asks_of_one_call_are_open_at_once() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["valve"], node_enc);
        t.ctrl_events.clear();
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        let mine: Vec<AskHandle> = (0..MAX_ASKS_PER_CALL)
            .map(|i| t.ask(n, call, &format!("q{i}")))
            .collect();
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let prompts: Vec<&str> = asks
            .iter()
            .map(|e| match e {
                CtrlEv::Ask(_, c, p) if *c == id => p.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(prompts, ["q0", "q1", "q2", "q3"]);
        // One past the limit is declined by the router, the open ones untouched.
        let extra = t.ask(n, call, "q4");
        assert_eq!(t.nodes[n].answered, vec![extra]);
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Err(code(ErrorCode::AskDeclined)))]
        );
        assert!(t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..))).is_empty());
        t.nodes[n].events.clear();
        t.nodes[n].answered.clear();
        // Answered out of order, each reaches its own ask.
        let ids: Vec<OwnedId> = asks
            .iter()
            .map(|e| match e {
                CtrlEv::Ask(a, ..) => a.clone(),
                _ => unreachable!(),
            })
            .collect();
        t.answer(&ids[2], Ok("2"));
        t.answer(&ids[0], Ok("0"));
        assert_eq!(t.nodes[n].answered, vec![mine[2], mine[0]]);
        assert_eq!(
            t.nodes[n].events,
            vec![
                NodeEv::Answer(call, Ok("2".into())),
                NodeEv::Answer(call, Ok("0".into()))
            ]
        );
        // A place freed is a place for a new ask.
        t.ask(n, call, "q5");
        assert_eq!(t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..))).len(), 1);
        // The call ends with three open: they are forgotten with it, and an answer that comes
        // later reaches nobody.
        t.finish(n, call, Ok("1"));
        assert_eq!(t.result(id), Ok("1".into()));
        t.answer(&ids[1], Ok("99"));
        assert!(
            !t.nodes[n]
                .events
                .iter()
                .any(|e| *e == NodeEv::Answer(call, Ok("99".into()))),
            "{:?}",
            t.nodes[n].events
        );
        t.check_clean();
    }
    // A local call's asks, answered in reverse.
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["valve"], Encoding::Postcard);
    let key = t
        .router
        .call(t.now, "dev-1", "valve", Json::EMPTY_OBJECT, None, None)
        .unwrap();
    t.drive();
    let (call, ..) = t.take_execute(n);
    let a = t.ask(n, call, "first");
    let b = t.ask(n, call, "second");
    let keys: Vec<_> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Ask { ask, key: k, .. } if *k == key => Some(*ask),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2);
    t.router.answer(t.now, keys[1], Ok(Json::trusted(b"2")));
    t.router.answer(t.now, keys[0], Ok(Json::trusted(b"1")));
    t.drive();
    assert_eq!(t.nodes[n].answered, vec![b, a]);
    assert_eq!(
        t.nodes[n].events,
        vec![
            NodeEv::Answer(call, Ok("2".into())),
            NodeEv::Answer(call, Ok("1".into()))
        ]
    );
    t.finish(n, call, Ok("1"));
    assert_eq!(t.dones(), vec![(key, Ok("1".into()))]);
    t.check_clean();
}

#[test]
fn controller_cancel_reaches_the_node_and_gets_no_answer() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow"], node_enc);
        let id = t.call("dev-1", "slow", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.cancel(id);
        assert_eq!(t.nodes[n].events, vec![NodeEv::Cancel(call)]);
        assert_eq!(t.router.in_flight(), 0);
        // Nothing answers it, not even when every deadline passes.
        t.advance(Duration::from_secs(60));
        assert!(t.no_response(id));
        // A cancel for a call that is not pending does nothing.
        t.cancel(999);
        t.check_clean();
    }
}

#[test]
fn local_cancel_means_no_done() {
    for enc in ALL {
        let mut t = Trio::standard(Encoding::Json);
        let n = t.add_node("dev-1", &["slow"], enc);
        let key = t
            .router
            .call(t.now, "dev-1", "slow", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        let (call, ..) = t.take_execute(n);
        assert!(t.router.cancel(t.now, key));
        assert!(!t.router.cancel(t.now, key));
        t.drive();
        assert_eq!(t.nodes[n].events, vec![NodeEv::Cancel(call)]);
        t.advance(Duration::from_secs(60));
        assert!(t.dones().is_empty());
        t.check_clean();
    }
}

// ----- deadlines and departures

#[test]
fn deadlines_fail_the_call_and_cancel_it_on_the_node() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.default_deadline = Duration::from_secs(2);
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node("dev-1", &["slow"], node_enc);
        // The controller's own deadline.
        let id = t.call("dev-1", "slow", "{}", Some(300));
        let (call, ..) = t.take_execute(n);
        t.advance(Duration::from_millis(299));
        assert!(t.no_response(id));
        t.advance(Duration::from_millis(1));
        assert_eq!(t.result(id), Err(code(ErrorCode::Timeout)));
        assert_eq!(t.nodes[n].events, vec![NodeEv::Cancel(call)]);
        t.nodes[n].events.clear();
        // The default deadline, for the controller and locally.
        let id = t.call("dev-1", "slow", "{}", None);
        let key = t
            .router
            .call(t.now, "dev-1", "slow", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        let (c1, ..) = t.take_execute(n);
        let (c2, ..) = t.take_execute(n);
        t.advance(Duration::from_millis(1999));
        assert!(t.no_response(id));
        assert!(t.dones().is_empty());
        t.advance(Duration::from_millis(1));
        assert_eq!(t.result(id), Err(code(ErrorCode::Timeout)));
        assert_eq!(t.dones(), vec![(key, Err(code(ErrorCode::Timeout)))]);
        let mut cancels = t.nodes[n].events.clone();
        cancels.sort_by_key(|e| format!("{e:?}"));
        let mut want = vec![NodeEv::Cancel(c1), NodeEv::Cancel(c2)];
        want.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(cancels, want);
        t.check_clean();
    }
}

#[test]
fn node_lost_mid_call() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow"], node_enc);
        let id = t.call("dev-1", "slow", "{}", None);
        let key = t
            .router
            .call(t.now, "dev-1", "slow", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        t.events.clear();
        t.drop_node(n);
        assert_eq!(t.result(id), Err(code(ErrorCode::Disconnected)));
        assert_eq!(t.dones(), vec![(key, Err(code(ErrorCode::Disconnected)))]);
        assert!(t.events.contains(&Event::NodeDown {
            node: "dev-1".into()
        }));
        assert!(!t.router.is_open(t.nodes[n].conn));
        assert_eq!(t.router.nodes().count(), 0);
        let again = t.call("dev-1", "slow", "{}", None);
        assert_eq!(t.result(again), Err(code(ErrorCode::NodeNotFound)));
        t.check_clean();
    }
}

#[test]
fn controller_leaving_cancels_its_calls() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow", "ask"], node_enc);
        t.call("dev-1", "slow", "{}", None);
        t.call("dev-1", "ask", "{}", None);
        let (c1, ..) = t.take_execute(n);
        let (c2, ..) = t.take_execute(n);
        t.ask(n, c2, "Still there?");
        assert_eq!(t.router.in_flight(), 2);
        t.router.close(t.ctrl, t.now);
        t.ctrl_linked = false;
        t.drive();
        assert_eq!(t.router.in_flight(), 0);
        let evs = &t.nodes[n].events;
        assert!(evs.contains(&NodeEv::Cancel(c1)), "{evs:?}");
        assert!(evs.contains(&NodeEv::Cancel(c2)), "{evs:?}");
        t.check_clean();
    }
}

#[test]
fn long_string_call_id_is_answered_invalid_request() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["echo"], Encoding::Postcard);
        let long = "i".repeat(65);
        let call = Request::Call(Call {
            node: Str::new("dev-1"),
            tool: Str::new("echo"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: None,
        });
        let mut out = vec![0u8; 512];
        let n_bytes =
            codec::encode_request(ctrl_enc, Id::Str(Str::new(&long)), &call, &mut out).unwrap();
        let before = t.ctrl_frames.len();
        t.send_raw(out[..n_bytes].to_vec());
        // The controller core keeps only numeric ids: read the answer off the wire.
        assert_eq!(t.ctrl_frames.len(), before + 1);
        let f = &t.ctrl_frames[before];
        match codec::decode(f, ctrl_enc, &Limits::default()).unwrap() {
            Message::Response { id, result: Err(e) } => {
                assert_eq!(id, Id::Str(Str::new(&long)));
                assert_eq!(e.code, code(ErrorCode::InvalidRequest));
            }
            other => panic!("expected an error response, got {other:?}"),
        }
        assert!(
            t.nodes[n]
                .events
                .iter()
                .all(|e| !matches!(e, NodeEv::Execute(..)))
        );
        // 64 bytes is fine.
        let ok = "i".repeat(64);
        let n_bytes =
            codec::encode_request(ctrl_enc, Id::Str(Str::new(&ok)), &call, &mut out).unwrap();
        t.send_raw(out[..n_bytes].to_vec());
        let (h, ..) = t.take_execute(n);
        t.finish(n, h, Ok("5"));
        let f = t.ctrl_frames.last().unwrap();
        match codec::decode(f, ctrl_enc, &Limits::default()).unwrap() {
            Message::Response { id, result: Ok(_) } => assert_eq!(id, Id::Str(Str::new(&ok))),
            other => panic!("expected a result, got {other:?}"),
        }
        // The two string-id answers were not the controller's own ids.
        t.ctrl_errors = 0;
        t.check_clean();
    }
}

#[test]
fn same_node_id_replaces_the_older_connection() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let old = t.add_node("dev-1", &["slow", "old_only"], node_enc);
        let id = t.call("dev-1", "slow", "{}", None);
        t.take_execute(old);
        t.events.clear();
        let new = t.add_node("dev-1", &["slow"], node_enc);
        assert_eq!(t.result(id), Err(code(ErrorCode::Disconnected)));
        assert_eq!(
            t.nodes[old].events,
            vec![NodeEv::Closed(node::CloseReason::Goodbye(
                GoodbyeReason::Replaced
            ))]
        );
        assert!(!t.router.is_open(t.nodes[old].conn));
        assert!(t.router.is_open(t.nodes[new].conn));
        let down = t
            .events
            .iter()
            .position(|e| {
                *e == Event::NodeDown {
                    node: "dev-1".into(),
                }
            })
            .expect("NodeDown");
        let up = t
            .events
            .iter()
            .position(|e| {
                *e == Event::NodeUp {
                    node: "dev-1".into(),
                }
            })
            .expect("NodeUp");
        assert!(down < up);
        // The old connection leaving does not take the new one's entry with it.
        assert_eq!(
            t.router.nodes().map(|v| v.id).collect::<Vec<_>>(),
            ["dev-1"]
        );
        assert_eq!(t.resolve("old_only"), Vec::<String>::new());
        assert_eq!(t.resolve("slow"), vec!["dev-1"]);
        let id = t.call("dev-1", "slow", "{}", None);
        let (call, ..) = t.take_execute(new);
        t.finish(new, call, Ok("\"new\""));
        assert_eq!(t.result(id), Ok("\"new\"".into()));
        t.check_clean();
    }
}

#[test]
fn tools_changed_reaches_controllers() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        t.ctrl_events.clear();
        let n = t.add_node("dev-1", &["echo"], node_enc);
        let changed = |t: &mut Trio<_>| {
            t.take_ctrl(|e| matches!(e, CtrlEv::ToolsChanged(_)))
                .into_iter()
                .map(|e| match e {
                    CtrlEv::ToolsChanged(n) => n,
                    _ => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        // Connect, then register.
        assert_eq!(changed(&mut t), ["dev-1", "dev-1"]);
        // Withdrawing a tool.
        let mut out = vec![0u8; 256];
        let names = [Str::new("echo")];
        let req = Request::Unregister(Unregister {
            names: List::from_slice(&names),
        });
        let len = codec::encode_request(node_enc, Id::Num(77), &req, &mut out).unwrap();
        t.to_router
            .push_back((t.nodes[n].conn, out[..len].to_vec()));
        t.drive();
        t.node_errors = 0; // the node core does not expect an answer to id 77
        assert_eq!(changed(&mut t), ["dev-1"]);
        assert_eq!(t.resolve("echo"), Vec::<String>::new());
        // Leaving.
        t.drop_node(n);
        assert_eq!(changed(&mut t), ["dev-1"]);
        t.check_clean();
    }
}

#[test]
fn result_too_big_for_the_controller_is_frame_too_large() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.connection.max_frame = 16 * 1024;
        let mut cc = ControllerConfig::new("cli");
        cc.encodings = only(ctrl_enc);
        cc.hello_encoding = ctrl_enc;
        cc.max_frame = 512;
        let mut t = Trio::with_controller(cfg, toolwire_core::router::AcceptAll, cc);
        let n = t.add_node("dev-1", &["big"], node_enc);
        let id = t.call("dev-1", "big", "{}", None);
        let (call, ..) = t.take_execute(n);
        let big = format!("\"{}\"", "x".repeat(2000));
        t.finish(n, call, Ok(&big));
        assert_eq!(t.result(id), Err(code(ErrorCode::FrameTooLarge)));
        assert!(t.events.iter().any(|e| matches!(
            e,
            Event::Finished { outcome: Err(c), .. } if *c == code(ErrorCode::FrameTooLarge)
        )));
        // A result that fits still goes through.
        let id = t.call("dev-1", "big", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("\"small\""));
        assert_eq!(t.result(id), Ok("\"small\"".into()));
        // So does a tool error whose data is too large: it is held to the same limit.
        let id = t.call("dev-1", "big", "{}", None);
        let (call, ..) = t.take_execute(n);
        let data = Json::parse(big.as_bytes()).unwrap();
        let mut e = ErrorObject::new(ErrorCode::ToolFailed, "failed loudly");
        e.data = Some(data);
        t.finish(n, call, Err(e));
        assert_eq!(t.result(id), Err(code(ErrorCode::FrameTooLarge)));
        assert!(t.ctrl_frames.iter().all(|f| f.len() <= 512));
        t.check_clean();
    }
}

/// A held result's handle, total bytes, first page and next offset.
type HeldParts = (String, u32, String, u32);

impl<S: Schemas> Trio<S> {
    fn call_opts(
        &mut self,
        node: &str,
        tool: &str,
        cache: Option<bool>,
        budget: Option<u32>,
    ) -> u64 {
        self.request(&Request::CallWith(CallWith {
            node: Str::new(node),
            tool: Str::new(tool),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: None,
            cache,
            max_result_bytes: budget,
        }))
    }

    /// A budgeted answer: the value, or the held result's (handle, total, page, next offset).
    fn budgeted(&self, id: u64) -> Result<Result<String, HeldParts>, i32> {
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).map_err(|e| e.code)?;
        let b: Budgeted<'_> = p.decode(&Limits::default()).expect("a Budgeted result");
        Ok(match (b.value, b.held) {
            (Some(v), None) => Ok(v.as_str().to_owned()),
            (None, Some(h)) => Err((
                h.handle.to_string(),
                h.total_bytes,
                h.page.to_string(),
                h.next_offset,
            )),
            other => panic!("exactly one member: {other:?}"),
        })
    }

    fn read_held(
        &mut self,
        handle: &str,
        offset: u32,
        length: Option<u32>,
    ) -> Result<(String, u32, Option<u32>), i32> {
        let id = self.request(&Request::ReadResult(ReadResult {
            handle: Str::new(handle),
            offset,
            length,
        }));
        let f = self.response_frame(id);
        let p = decode_response(f, self.controller.encoding()).map_err(|e| e.code)?;
        let r: ResultPage<'_> = p.decode(&Limits::default()).expect("a page");
        Ok((r.page.to_string(), r.total_bytes, r.next_offset))
    }
}

#[test]
fn a_result_budget_holds_a_long_result_and_pages_through_it() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.connection.max_frame = 16 * 1024;
        cfg.held = HeldConfig {
            ttl: Duration::from_secs(60),
            ..HeldConfig::default()
        };
        // A controller whose frames are too small for the whole result.
        let mut cc = ControllerConfig::new("cli");
        cc.encodings = only(ctrl_enc);
        cc.hello_encoding = ctrl_enc;
        cc.max_frame = 512;
        let mut t = Trio::with_controller(cfg, toolwire_core::router::AcceptAll, cc);
        let n = t.add_node("dev-1", &["big"], node_enc);
        // Characters of one to four bytes, so that pages must be cut between characters.
        let text = format!("\"{}\"", "aé€😀".repeat(200));
        let id = t.call_opts("dev-1", "big", None, Some(200));
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok(&text));
        let (handle, total, first, mut next) = t.budgeted(id).unwrap().unwrap_err();
        assert_eq!(total as usize, text.len());
        assert!(first.len() <= 200 && first.len() > 190, "{}", first.len());
        assert!(text.starts_with(&first));
        assert_eq!(next as usize, first.len());
        let mut seen = first;
        loop {
            let (page, total, after) = t.read_held(&handle, next, None).unwrap();
            assert_eq!(total as usize, text.len());
            assert!(page.len() <= 200 && !page.is_empty());
            seen.push_str(&page);
            match after {
                Some(a) => next = a,
                None => break,
            }
        }
        assert_eq!(seen, text, "the pages add up to the result");
        assert!(t.ctrl_frames.iter().all(|f| f.len() <= 512));
        // A page may be reread, with another length; an offset inside a character is refused.
        let (page, ..) = t.read_held(&handle, 0, Some(1)).unwrap();
        assert_eq!(page, "\"");
        assert_eq!(
            t.read_held(&handle, 3, None),
            Err(code(ErrorCode::InvalidParams))
        );
        assert_eq!(
            t.read_held(&handle, 0, Some(0)),
            Err(code(ErrorCode::InvalidParams))
        );
        assert_eq!(
            t.read_held("r999", 0, None),
            Err(code(ErrorCode::ResultGone))
        );
        assert_eq!(
            t.read_held("nonsense", 0, None),
            Err(code(ErrorCode::ResultGone))
        );
        // A page asked longer than this controller's frames is answered -32008, not dropped.
        assert_eq!(
            t.read_held(&handle, 0, Some(5000)),
            Err(code(ErrorCode::FrameTooLarge))
        );
        // Another connection cannot read it.
        let x = t.add_controller(ctrl_enc);
        let mut out = vec![0u8; 1024];
        let req = Request::ReadResult(ReadResult {
            handle: Str::new(&handle),
            offset: 0,
            length: None,
        });
        let (_, len) = t.extras[x].core.request(&req, &mut out).unwrap();
        let conn = t.extras[x].conn;
        t.to_router.push_back((conn, out[..len].to_vec()));
        t.drive();
        let last = t.extras[x].frames.last().expect("an answer");
        assert_eq!(refusal(last, ctrl_enc).0, code(ErrorCode::ResultGone));
        // A result within the budget comes as the value itself.
        let id = t.call_opts("dev-1", "big", None, Some(200));
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok(r#"{"v":1}"#));
        assert_eq!(t.budgeted(id), Ok(Ok(r#"{"v":1}"#.into())));
        // A budget too small to page by is refused before the node sees the call.
        let id = t.call_opts("dev-1", "big", None, Some(15));
        assert_eq!(t.result(id), Err(code(ErrorCode::InvalidParams)));
        assert!(
            t.nodes[n]
                .events
                .iter()
                .all(|e| !matches!(e, NodeEv::Execute(..)))
        );
        // Held results expire.
        assert_eq!(t.router.held_results().0, 1);
        assert_eq!(t.router.stats().results_held, 1);
        t.advance(Duration::from_secs(61));
        assert_eq!(
            t.read_held(&handle, 0, None),
            Err(code(ErrorCode::ResultGone))
        );
        assert_eq!(t.router.held_results(), (0, 0));
        t.check_clean();
    }
}

#[test]
fn held_results_go_with_their_controller() {
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["big"], Encoding::Json);
    let id = t.call_opts("dev-1", "big", None, Some(16));
    let (call, ..) = t.take_execute(n);
    t.finish(n, call, Ok(&format!("\"{}\"", "x".repeat(100))));
    assert!(t.budgeted(id).unwrap().is_err());
    assert_eq!(t.router.held_results().0, 1);
    t.router.close(t.ctrl, t.now);
    t.ctrl_linked = false;
    assert_eq!(t.router.held_results(), (0, 0));
}

#[test]
fn a_local_call_with_a_budget_gets_the_envelope_and_reads_on() {
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["big", "other"], Encoding::Postcard);
    let opts = LocalCall {
        max_result_bytes: Some(16),
        ..LocalCall::default()
    };
    let key = t
        .router
        .call_with(t.now, "dev-1", "big", Json::EMPTY_OBJECT, &opts)
        .unwrap();
    t.drive();
    let (call, ..) = t.take_execute(n);
    t.finish(n, call, Ok(r#"["0123456789","abcdefghij"]"#));
    let done = t.dones();
    let (k, Ok(envelope)) = &done[0] else {
        panic!("{done:?}")
    };
    assert_eq!(*k, key);
    assert_eq!(
        envelope,
        r#"{"held":{"handle":"r1","total_bytes":27,"page":"[\"0123456789\",\"a","next_offset":16}}"#
    );
    let p = t.router.read_result(t.now, "r1", 16, None, None).unwrap();
    assert_eq!(
        (p.page.as_str(), p.total_bytes, p.next_offset),
        (r#"bcdefghij"]"#, 27, None)
    );
    // A token whose ACL does not reach the tool cannot read it.
    let acl = Acl {
        allow: vec!["dev-1/other".into()],
        deny: vec![],
    };
    let e = t
        .router
        .read_result(t.now, "r1", 0, None, Some(&acl))
        .unwrap_err();
    assert_eq!(e.code, code(ErrorCode::ResultGone));
    // Nor can a controller: it is not its own.
    assert_eq!(t.read_held("r1", 0, None), Err(code(ErrorCode::ResultGone)));
    t.check_clean();
}

#[test]
fn a_controller_bypasses_the_result_cache_per_call() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.cache = Some(CacheConfig::new(Duration::from_secs(10)));
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node_with("dev", cacheable_defs(), node_enc, None);
        t.nodes[n].events.clear();
        let id = t.call_opts("dev", "read", None, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("1"));
        assert_eq!(t.result(id), Ok("1".into()));
        let id = t.call_opts("dev", "read", Some(true), None);
        assert_eq!(t.result(id), Ok("1".into()), "kept");
        assert!(
            t.nodes[n]
                .events
                .iter()
                .all(|e| !matches!(e, NodeEv::Execute(..)))
        );
        let id = t.call_opts("dev", "read", Some(false), None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("2"));
        assert_eq!(t.result(id), Ok("2".into()));
        // Its result replaced the kept one; a cached answer honours a budget too.
        let id = t.call_opts("dev", "read", None, Some(16));
        assert_eq!(t.budgeted(id), Ok(Ok("2".into())));
        let st = t.router.stats();
        assert_eq!((st.cache_hits, st.cache_misses), (2, 2));
        t.check_clean();
    }
}

#[test]
fn a_freed_slot_is_reused_and_the_old_handle_stays_stale() {
    let mut t = Trio::standard(Encoding::Json);
    let a = t.add_node("a", &["echo"], Encoding::Json);
    t.add_node("b", &["echo"], Encoding::Json);
    assert_eq!(t.router.connections(), 3);
    let old = t.nodes[a].conn;
    t.drop_node(a);
    assert_eq!(t.router.connections(), 2);
    let c = t.add_node("c", &["echo"], Encoding::Postcard);
    assert_ne!(t.nodes[c].conn, old);
    assert_eq!(t.nodes[c].conn.index(), old.index());
    assert!(!t.router.is_open(old));
    assert_eq!(t.router.node_of(t.nodes[c].conn), Some("c"));
    t.check_clean();
}

// ----- limits: by role after hello, and on handshakes before it

#[test]
fn limits_default_to_a_fleet_and_add_up_to_the_socket_budget() {
    let cfg = RouterConfig::new("gw");
    assert_eq!(
        (cfg.max_nodes, cfg.max_controllers, cfg.max_handshakes),
        (16_384, 256, 1024)
    );
    assert_eq!(cfg.max_connections(), 17_664);
    let mut huge = cfg.clone();
    huge.max_nodes = usize::MAX;
    assert_eq!(huge.max_connections(), usize::MAX, "saturates");
}

#[test]
fn a_node_past_max_nodes_is_refused_busy_and_nothing_else_moves() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.max_nodes = 2;
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let a = t.add_node("dev-a", &["echo"], node_enc);
        let b = t.add_node("dev-b", &["echo"], node_enc);
        // A call in flight across the refusal.
        let pending = t.call("dev-a", "echo", r#"{"x":1}"#, None);
        let (call, ..) = t.take_execute(a);
        t.events.clear();
        t.ctrl_events.clear();

        let c = t.add_node_with("dev-c", tool_defs(&["echo"], SCHEMA), node_enc, None);
        assert_eq!(
            t.nodes[c].events,
            vec![NodeEv::Closed(node::CloseReason::Refused(code(
                ErrorCode::Busy
            )))]
        );
        assert_eq!(t.nodes[c].frames.len(), 1, "the refusal and nothing else");
        assert_eq!(
            refusal(&t.nodes[c].frames[0], node_enc),
            (-32005, "gateway full: 2 nodes connected".into())
        );
        assert!(!t.router.is_open(t.nodes[c].conn));
        assert_eq!(t.router.stats().refused_full, 1);
        assert_eq!(
            t.router.handshakes(),
            0,
            "its handshake place is free again"
        );
        // Nobody else heard of it.
        assert!(t.events.is_empty(), "{:?}", t.events);
        assert!(t.ctrl_events.is_empty(), "{:?}", t.ctrl_events);
        assert!(t.nodes[a].events.is_empty() && t.nodes[b].events.is_empty());
        assert_eq!(t.list_nodes(None, None).0, ["dev-a", "dev-b"]);
        // The call in flight completes, and the controller still calls both nodes.
        t.finish(a, call, Ok(r#"{"y":1}"#));
        assert_eq!(t.result(pending), Ok(r#"{"y":1}"#.into()));
        let id = t.call("dev-b", "echo", r#"{"x":2}"#, None);
        let (call, ..) = t.take_execute(b);
        t.finish(b, call, Ok("2"));
        assert_eq!(t.result(id), Ok("2".into()));

        // A node whose id is connected takes over its place, full or not.
        let a2 = t.add_node("dev-a", &["echo"], node_enc);
        assert_eq!(
            t.nodes[a].events,
            vec![NodeEv::Closed(node::CloseReason::Goodbye(
                GoodbyeReason::Replaced
            ))]
        );
        assert_eq!(t.router.nodes().count(), 2);
        let id = t.call("dev-a", "echo", "{}", None);
        let (call, ..) = t.take_execute(a2);
        t.finish(a2, call, Ok("3"));
        assert_eq!(t.result(id), Ok("3".into()));
        // Still full for a new id; a place freed is a place to take.
        let d = t.add_node_with("dev-d", tool_defs(&["echo"], SCHEMA), node_enc, None);
        assert!(!t.router.is_open(t.nodes[d].conn));
        t.drop_node(b);
        let d = t.add_node("dev-d", &["echo"], node_enc);
        assert_eq!(t.router.node_of(t.nodes[d].conn), Some("dev-d"));
        assert_eq!(t.router.stats().refused_full, 2);
        t.check_clean();
    }
}

#[test]
fn a_controller_past_max_controllers_is_refused_busy_and_nothing_else_moves() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.max_controllers = 2;
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node("dev-1", &["echo"], node_enc);
        let x = t.add_controller(node_enc);
        assert_eq!(t.extras[x].events, vec![CtrlEv::Ready]);
        assert_eq!(t.router.controllers(), 2);
        t.ctrl_events.clear();

        let y = t.add_controller(ctrl_enc);
        assert_eq!(
            t.extras[y].events,
            vec![CtrlEv::Closed(node::CloseReason::Refused(code(
                ErrorCode::Busy
            )))]
        );
        assert_eq!(
            refusal(&t.extras[y].frames[0], ctrl_enc),
            (-32005, "gateway full: 2 controllers connected".into())
        );
        assert!(!t.router.is_open(t.extras[y].conn));
        assert_eq!(t.router.controllers(), 2);
        assert!(t.ctrl_events.is_empty() && t.extras[x].events == [CtrlEv::Ready]);
        // The controllers in still call; nodes still connect, and both controllers hear of it.
        let id = t.call("dev-1", "echo", r#"{"x":5}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("5"));
        assert_eq!(t.result(id), Ok("5".into()));
        t.add_node("dev-2", &["echo"], node_enc);
        assert!(
            t.ctrl_events
                .contains(&CtrlEv::ToolsChanged("dev-2".into()))
        );
        assert!(
            t.extras[x]
                .events
                .contains(&CtrlEv::ToolsChanged("dev-2".into()))
        );
        // One leaves: another gets in.
        let gone = t.extras[x].conn;
        t.extras[x].linked = false;
        t.router.close(gone, t.now);
        t.drive();
        let z = t.add_controller(ctrl_enc);
        assert_eq!(t.extras[z].events, vec![CtrlEv::Ready]);
        assert_eq!(t.router.stats().refused_full, 1);
        t.check_clean();
    }
}

#[test]
fn a_flood_of_silent_connections_is_bounded_and_times_out() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cfg = standard_config();
        cfg.max_handshakes = 4;
        let mut t = Trio::new(cfg, toolwire_core::router::AcceptAll, ctrl_enc, None);
        let n = t.add_node("dev-1", &["echo"], node_enc);
        assert_eq!(
            t.router.handshakes(),
            0,
            "connections past hello do not count"
        );
        let silent: Vec<ConnId> = (0..4)
            .map(|_| t.router.open(t.now).expect("room for four"))
            .collect();
        assert_eq!(t.router.handshakes(), 4);
        assert_eq!(t.router.open(t.now), Err(OpenError::Full));
        assert_eq!(t.router.connections(), 6);
        // Those already connected are not disturbed.
        let id = t.call("dev-1", "echo", r#"{"x":7}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("7"));
        assert_eq!(t.result(id), Ok("7".into()));
        // One silent connection that says hello at last leaves a place behind it.
        let last = silent[3];
        t.nodes.push(NodePeer {
            conn: last,
            core: Node::new(
                {
                    let mut nc = NodeConfig::new("dev-late", tool_defs(&["echo"], SCHEMA));
                    nc.encodings = only(node_enc);
                    nc.hello_encoding = node_enc;
                    nc
                },
                t.now,
            ),
            tools: vec!["echo"],
            answered: vec![],
            inbox: VecDeque::new(),
            linked: true,
            events: vec![],
            frames: vec![],
        });
        t.drive();
        assert_eq!(t.nodes.last().unwrap().events, vec![NodeEv::Ready(0)]);
        assert_eq!(t.router.handshakes(), 3);
        let another = t.router.open(t.now).expect("a place freed by a hello");
        assert_eq!(t.router.open(t.now), Err(OpenError::Full));
        // The silent ones go at the handshake timeout (10 s); heartbeats keep the others.
        t.advance(Duration::from_secs(11));
        for c in silent[..3].iter().chain([&another]) {
            assert!(
                !t.router.is_open(*c),
                "a silent connection outlived its handshake"
            );
        }
        assert_eq!(t.router.handshakes(), 0);
        assert_eq!(t.router.connections(), 3, "controller, dev-1, dev-late");
        let m = t.add_node("dev-2", &["echo"], node_enc);
        assert!(t.router.is_open(t.nodes[m].conn));
        let id = t.call("dev-2", "echo", "{}", None);
        let (call, ..) = t.take_execute(m);
        t.finish(m, call, Ok("8"));
        assert_eq!(t.result(id), Ok("8".into()));
        assert!(t.ctrl_ready());
        t.check_clean();
    }
}

#[test]
fn schema_engine_refuses_schemas_and_arguments() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::new(standard_config(), TestSchemas::default(), ctrl_enc, None);
        let mut defs = tool_defs(&["strict"], SCHEMA).to_vec();
        defs.push(ToolDef {
            name: Str::new("refused"),
            description: Str::new(""),
            input_schema: Json::trusted(br#"{"type":"object","x-refuse":true}"#),
            output_schema: None,
            annotations: Annotations::NONE,
        });
        let defs: &'static [ToolDef<'static>] = Box::leak(defs.into_boxed_slice());
        let n = t.add_node_with("dev-1", defs, node_enc, None);
        assert_eq!(t.nodes[n].events, vec![NodeEv::Ready(1)]);
        t.nodes[n].events.clear();
        assert_eq!(t.router.schemas().compiled, 1);
        assert_eq!(t.resolve("refused"), Vec::<String>::new());
        // Arguments the schema refuses never reach the node.
        let id = t.call("dev-1", "strict", r#"{"bad":1}"#, None);
        assert_eq!(
            t.error_of(id),
            (
                code(ErrorCode::InvalidArguments),
                "`bad` is not allowed".into(),
                Some(r#"{"path":"/bad"}"#.into())
            )
        );
        let e = t
            .router
            .call(
                t.now,
                "dev-1",
                "strict",
                Json::trusted(br#"{"bad":true}"#),
                None,
                None,
            )
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::InvalidArguments));
        assert!(t.nodes[n].events.is_empty());
        // Arguments it accepts do.
        let id = t.call("dev-1", "strict", r#"{"good":{"bad":1}}"#, None);
        let (call, ..) = t.take_execute(n);
        t.finish(n, call, Ok("0"));
        assert_eq!(t.result(id), Ok("0".into()));
        assert_eq!(t.router.schemas().compiled, 1, "compiled once, at register");
        t.check_clean();
    }
}

#[test]
fn shutdown_says_goodbye_and_fails_calls() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow"], node_enc);
        let id = t.call("dev-1", "slow", "{}", None);
        let key = t
            .router
            .call(t.now, "dev-1", "slow", Json::EMPTY_OBJECT, None, None)
            .unwrap();
        t.drive();
        t.router.shutdown(t.now, GoodbyeReason::Shutdown);
        t.drive();
        assert_eq!(t.result(id), Err(code(ErrorCode::Disconnected)));
        assert_eq!(t.dones(), vec![(key, Err(code(ErrorCode::Disconnected)))]);
        assert!(
            t.nodes[n]
                .events
                .contains(&NodeEv::Closed(node::CloseReason::Goodbye(
                    GoodbyeReason::Shutdown
                )))
        );
        assert!(
            t.ctrl_events
                .contains(&CtrlEv::Closed(node::CloseReason::Goodbye(
                    GoodbyeReason::Shutdown
                )))
        );
        assert_eq!(t.router.connections(), 0);
        assert_eq!(t.router.poll_timeout(), None);
        t.check_clean();
    }
}

#[test]
fn heartbeats_keep_everyone_connected() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow"], node_enc);
        let id = t.call("dev-1", "slow", "{}", Some(120_000));
        t.advance(Duration::from_secs(60));
        assert!(t.router.is_open(t.ctrl) && t.router.is_open(t.nodes[n].conn));
        assert!(t.no_response(id));
        assert_eq!(t.router.stats().heartbeat_drops, 0);
        // A node gone silent is dropped within three intervals; its call fails.
        t.nodes[n].linked = false;
        t.advance(Duration::from_secs(15));
        assert_eq!(t.result(id), Err(code(ErrorCode::Disconnected)));
        assert!(!t.router.is_open(t.nodes[n].conn));
        assert_eq!(t.router.stats().heartbeat_drops, 1);
        t.check_clean();
    }
}

#[test]
fn listings_that_cannot_fit_the_controller_are_answered() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut cc = ControllerConfig::new("cli");
        cc.encodings = only(ctrl_enc);
        cc.hello_encoding = ctrl_enc;
        cc.max_frame = 300;
        let mut t = Trio::with_controller(standard_config(), toolwire_core::router::AcceptAll, cc);
        let long = leak_str(&"d".repeat(400));
        let defs: &'static [ToolDef<'static>] = Box::leak(
            vec![ToolDef {
                name: Str::new("wordy"),
                description: Str::new(long),
                input_schema: Json::trusted(SCHEMA),
                output_schema: None,
                annotations: Annotations::NONE,
            }]
            .into_boxed_slice(),
        );
        t.add_node_with("dev-wordy", defs, node_enc, None);
        for i in 0..20 {
            t.add_node(&format!("node-with-a-long-id-{i:02}"), &["wordy"], node_enc);
        }
        // Not even one tool fits a page: the request is still answered.
        let r = t.list_tools(None, Some("dev-wordy"), None, None);
        assert_eq!(r, Err(code(ErrorCode::FrameTooLarge)));
        // 21 node ids do not fit one frame either.
        let id = t.request(&Request::Resolve(Resolve {
            tool: Str::new("wordy"),
        }));
        assert_eq!(t.result(id), Err(code(ErrorCode::FrameTooLarge)));
        // nodes.list shrinks its pages to fit and still lists everyone.
        let mut seen = 0;
        let mut cursor: Option<String> = None;
        for _ in 0..30 {
            let (page, next) = t.list_nodes(cursor.as_deref(), None);
            assert!(!page.is_empty());
            seen += page.len();
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, 21);
        assert!(t.ctrl_frames.iter().all(|f| f.len() <= 300));
        t.check_clean();
    }
}

#[test]
fn unregister_with_escaped_names_withdraws_nothing() {
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["echo", "keep"], Encoding::Json);
    let frame =
        br#"{"jsonrpc":"2.0","id":77,"method":"unregister","params":{"names":["ec\u0068o"]}}"#;
    t.to_router.push_back((t.nodes[n].conn, frame.to_vec()));
    t.drive();
    t.node_errors = 0; // the node core does not expect an answer to id 77
    // Names are matched as written (PROTOCOL.md section 3): the connection and the router's
    // tables agree that the escaped spelling names no tool.
    assert_eq!(t.resolve("echo"), ["dev-1"]);
    assert_eq!(
        t.list_tools(None, None, None, None).unwrap().0,
        ["dev-1/echo", "dev-1/keep"]
    );
    assert_eq!(t.router.nodes().next().unwrap().tools, 2);
    let id = t.call("dev-1", "echo", "{}", None);
    let (call, ..) = t.take_execute(n);
    t.finish(n, call, Ok("1"));
    assert_eq!(t.result(id), Ok("1".into()));
    t.check_clean();
}

#[test]
fn a_call_id_already_in_flight_is_refused() {
    for ctrl_enc in ALL {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["slow"], Encoding::Postcard);
        let call = Request::Call(Call {
            node: Str::new("dev-1"),
            tool: Str::new("slow"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: None,
        });
        let mut out = vec![0u8; 512];
        let len = codec::encode_request(ctrl_enc, Id::Num(500), &call, &mut out).unwrap();
        t.send_raw(out[..len].to_vec());
        t.send_raw(out[..len].to_vec());
        assert_eq!(t.result(500), Err(code(ErrorCode::InvalidRequest)));
        t.responses.clear();
        let (h, ..) = t.take_execute(n);
        assert!(t.nodes[n].events.is_empty(), "dispatched once");
        t.finish(n, h, Ok("1"));
        assert_eq!(t.result(500), Ok("1".into()));
        t.check_clean();
    }
}

/// Asks forwarded to a controller and left unanswered when their calls end must not use up the
/// controller connection's request slots (16): the 21st ask still reaches the controller.
#[test]
fn unanswered_asks_do_not_use_up_the_controllers_request_slots() {
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["valve"], Encoding::Json);
    for i in 0..21 {
        t.ctrl_events.clear();
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        t.ask(n, call, "Open?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        assert_eq!(
            asks.len(),
            1,
            "ask {i} did not reach the controller: {asks:?}"
        );
        t.nodes[n].events.clear();
        t.finish(n, call, Ok("1"));
        assert_eq!(t.result(id), Ok("1".into()));
    }
    t.check_clean();
}

/// Only calls that reach the node spend its rate: arguments the schema refuses do not.
#[test]
fn refused_arguments_do_not_spend_the_rate_limit() {
    let mut cfg = standard_config();
    cfg.rate_limit = Some(RateLimit {
        per_second: 0.001,
        burst: 1,
    });
    let mut t = Trio::new(cfg, TestSchemas::default(), Encoding::Json, None);
    let n = t.add_node("dev-1", &["echo"], Encoding::Json);
    for _ in 0..3 {
        let bad = t.call("dev-1", "echo", r#"{"bad":1}"#, None);
        assert_eq!(t.result(bad), Err(code(ErrorCode::InvalidArguments)));
    }
    let id = t.call("dev-1", "echo", "{}", None);
    let (call, ..) = t.take_execute(n);
    t.finish(n, call, Ok("1"));
    assert_eq!(t.result(id), Ok("1".into()));
    let limited = t.call("dev-1", "echo", "{}", None);
    assert_eq!(t.result(limited), Err(code(ErrorCode::RateLimited)));
    // Counted for the metrics, each refusal once.
    let st = t.router.stats();
    assert_eq!((st.schema_rejections, st.rate_limited), (3, 1));
    t.check_clean();
}

/// A result the gateway cannot read (nested deeper than the limit, a member name twice, an
/// error whose data names a member twice) completes its call at once with `-32602`, in both
/// encodings, instead of leaving it to its deadline.
#[test]
fn unreadable_results_complete_their_call_at_once() {
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    type Outcome<'a> = Result<&'a [u8], &'a [u8]>;
    let cases: [(&str, Outcome<'_>); 3] = [
        ("nested too deep", Ok(deep.as_bytes())),
        ("a name twice", Ok(br#"{"channel":7,"channel":2}"#)),
        ("error data with a name twice", Err(br#"{"a":1,"a":2}"#)),
    ];
    for (node_enc, ctrl_enc) in MIXES {
        for (what, result) in &cases {
            let mut t = Trio::standard(ctrl_enc);
            let n = t.add_node("dev-1", &["sensor"], node_enc);
            let id = t.call("dev-1", "sensor", "{}", None);
            let (call, ..) = t.take_execute(n);
            let mut out = vec![0u8; 4096];
            let p = &mut t.nodes[n];
            let r = match result {
                Ok(v) => Ok(Json::trusted(v)),
                Err(data) => {
                    let mut e = ErrorObject::new(ErrorCode::ToolFailed, "failed");
                    e.data = Some(Json::trusted(data));
                    Err(e)
                }
            };
            let len = p.core.finish(call, r, &mut out).expect("finish");
            t.to_router.push_back((p.conn, out[..len].to_vec()));
            t.drive();
            // No time passes: the call is answered by the frame itself.
            assert_eq!(
                t.result(id),
                Err(code(ErrorCode::InvalidParams)),
                "{what}, node {node_enc:?}, controller {ctrl_enc:?}"
            );
            assert_eq!(t.router.in_flight(), 0, "{what}");
        }
    }
}

// ----- loose ends of PROTOCOL.md (see also core/tests/loose_ends.rs)

#[test]
fn permission_ask_false_is_an_answer_and_declined_is_an_error() {
    for (node_enc, ctrl_enc) in MIXES {
        let mut t = Trio::standard(ctrl_enc);
        let n = t.add_node("dev-1", &["valve"], node_enc);
        let id = t.call("dev-1", "valve", "{}", None);
        let (call, ..) = t.take_execute(n);
        // `false`: the controller was asked and said no; the tool gets a result.
        t.ask(n, call, "Open?");
        let asks = t.take_ctrl(|e| matches!(e, CtrlEv::Ask(..)));
        let [CtrlEv::Ask(ask, ..)] = &asks[..] else {
            panic!("expected one ask");
        };
        t.answer(ask, Ok("false"));
        assert_eq!(
            t.nodes[n].events,
            vec![NodeEv::Answer(call, Ok("false".into()))]
        );
        t.nodes[n].events.clear();
        // An ask left open when its call ends: `-32013`, before the node's cancel.
        t.ask(n, call, "Still there?");
        t.cancel(id);
        assert_eq!(
            t.nodes[n].events,
            vec![
                NodeEv::Answer(call, Err(code(ErrorCode::AskDeclined))),
                NodeEv::Cancel(call)
            ]
        );
        t.check_clean();
    }
}

#[test]
fn default_deadline_is_30_s_and_ends_the_call_with_timeout() {
    let mut t = Trio::standard(Encoding::Json);
    let n = t.add_node("dev-1", &["slow"], Encoding::Json);
    let id = t.call("dev-1", "slow", "{}", None);
    let (call, ..) = t.take_execute(n);
    t.advance(Duration::from_millis(29_999));
    assert!(t.no_response(id));
    t.advance(Duration::from_millis(1));
    assert_eq!(t.result(id), Err(code(ErrorCode::Timeout)));
    assert_eq!(t.nodes[n].events, vec![NodeEv::Cancel(call)]);
    t.check_clean();
}

/// Found by `router_sm`: a timeout whose error cannot reach a controller (its frame limit is
/// smaller than the answer) is still reported as a timeout, and its node gets exactly one
/// `cancel`.
#[test]
fn an_undeliverable_timeout_is_still_a_timeout() {
    let mut cc = ControllerConfig::new("cli");
    cc.encodings = only(Encoding::Json);
    cc.max_frame = 48;
    let mut t = Trio::with_controller(standard_config(), toolwire_core::router::AcceptAll, cc);
    let n = t.add_node("dev-1", &["slow"], Encoding::Json);
    t.events.clear();
    let _id = t.call("dev-1", "slow", "{}", Some(10));
    let _ = t.take_execute(n);
    t.advance(Duration::from_millis(20));
    let finished: Vec<_> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Finished { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [Err(code(ErrorCode::Timeout))]);
    let cancels = t.nodes[n]
        .events
        .iter()
        .filter(|e| matches!(e, NodeEv::Cancel(_)))
        .count();
    assert_eq!(cancels, 1);
}

/// `tools_after` starts a page where a walk of `tools` past the cursor would, for every cursor
/// (present, absent, before the first tool, past the last), with and without node and prefix
/// filters.
#[test]
fn tools_after_is_tools_past_the_cursor() {
    let mut t = Trio::standard(Encoding::Json);
    t.add_node("a", &["x", "y"], Encoding::Json);
    t.add_node("b", &["ax", "x", "z"], Encoding::Json);
    t.add_node("d", &["a", "y"], Encoding::Json);
    let pairs = |it: &mut dyn Iterator<Item = toolwire_core::router::ToolView<'_>>| {
        it.map(|v| (v.node.to_owned(), v.name.to_owned()))
            .collect::<Vec<_>>()
    };
    let mut cursors: Vec<Option<(&str, &str)>> = vec![None];
    for n in ["", "a", "b", "c", "d", "e"] {
        for tool in ["", "a", "ax", "x", "xx", "y", "z", "zz"] {
            cursors.push(Some((n, tool)));
        }
    }
    let mut checked = 0;
    for node in [None, Some("a"), Some("b"), Some("c"), Some("d")] {
        for prefix in [None, Some("a"), Some("x"), Some("q")] {
            for &after in &cursors {
                let want = pairs(
                    &mut t
                        .router
                        .tools(prefix, node)
                        .filter(|v| after.is_none_or(|(an, at)| (v.node, v.name) > (an, at))),
                );
                let got = pairs(&mut t.router.tools_after(prefix, node, after));
                assert_eq!(got, want, "node {node:?} prefix {prefix:?} after {after:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 4 * 49);
}
