//! A gateway core and a node core wired back to back in memory with a fake clock.
//!
//! No sockets: frames move between two queues, and time moves only when a test advances it, to
//! the next deadline either side asked for. Every scenario runs in both encodings.

use std::collections::VecDeque;

use toolwire_core::codec::{self, Limits};
use toolwire_core::frame::*;
use toolwire_core::gateway::{self, Auth, CallId, Connection, Fixed, GatewayConfig, SendError};
use toolwire_core::node::{self, CallHandle, Node, NodeConfig, NodeEvent};
use toolwire_core::{Duration, ErrorCode, Id, Instant, Json, Str};

const SCHEMA: &[u8] = br#"{"type":"object","properties":{"x":{"type":"integer"}}}"#;

fn tools() -> Vec<ToolDef<'static>> {
    ["echo", "slow", "fail", "progress", "ask"]
        .into_iter()
        .map(|name| ToolDef {
            name: Str::new(name),
            description: Str::new("test tool \"quoted\""),
            input_schema: Json::trusted(SCHEMA),
            output_schema: None,
            annotations: Annotations::NONE,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum GwEv {
    Hello(String),
    Registered(Vec<String>),
    Done(u64, Result<String, i32>),
    Progress(u64, u64, Option<String>),
    Ask(gateway::AskId, u64, String),
    Closed(gateway::CloseReason),
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
enum NodeEv {
    Ready(usize),
    Execute(CallHandle, String, String),
    Cancel(CallHandle),
    Answer(CallHandle, node::AskHandle, Result<String, i32>),
    Closed(node::CloseReason),
}

fn gw_ev(e: gateway::Event<'_>) -> GwEv {
    match e {
        gateway::Event::Hello { id, .. } => GwEv::Hello(id.to_string()),
        gateway::Event::Registered { tools, accepted } => GwEv::Registered(
            tools
                .iter()
                .enumerate()
                .filter(|(i, _)| accepted.contains(*i))
                .map(|(_, t)| t.name.to_string())
                .collect(),
        ),
        gateway::Event::CallDone { call, result } => GwEv::Done(
            call.0,
            result.map(|j| j.as_str().to_owned()).map_err(|e| e.code),
        ),
        gateway::Event::Progress {
            call,
            progress,
            message,
            ..
        } => GwEv::Progress(call.0, progress, message.map(|m| m.to_string())),
        gateway::Event::Ask {
            ask, call, prompt, ..
        } => GwEv::Ask(ask, call.0, prompt.to_string()),
        gateway::Event::Closed(r) => GwEv::Closed(r),
        other => GwEv::Other(format!("{other:?}")),
    }
}

struct Pair {
    now: Instant,
    gw: Connection<'static, Fixed<16, 32>>,
    /// Two calls at once, each with up to two asks open.
    node: Node<'static, 2, 2>,
    to_node: VecDeque<Vec<u8>>,
    to_gw: VecDeque<Vec<u8>>,
    gw_events: Vec<GwEv>,
    node_events: Vec<NodeEv>,
    tool_names: Vec<&'static str>,
    /// The node answers pings and handles frames only while this is true.
    node_alive: bool,
}

impl Pair {
    fn new(
        enc: Encoding,
        gw_cfg: GatewayConfig<'static>,
        mut node_cfg: NodeConfig<'static>,
    ) -> Self {
        node_cfg.hello_encoding = enc;
        node_cfg.encodings = Encodings {
            json: enc == Encoding::Json,
            postcard: enc == Encoding::Postcard,
        };
        let now = Instant(1_000);
        Pair {
            now,
            gw: Connection::new(gw_cfg, now),
            node: Node::new(node_cfg, now),
            to_node: VecDeque::new(),
            to_gw: VecDeque::new(),
            gw_events: vec![],
            node_events: vec![],
            tool_names: node_cfg.tools.iter().map(|t| t.name.raw()).collect(),
            node_alive: true,
        }
    }

    fn standard(enc: Encoding) -> Self {
        let tools: &'static [ToolDef<'static>] = Box::leak(tools().into_boxed_slice());
        let mut g = GatewayConfig::new("gw");
        g.heartbeat = Duration::from_secs(5);
        Self::new(enc, g, NodeConfig::new("dev-1", tools))
    }

    /// Moves frames and events until nothing moves (bounded).
    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let mut buf = vec![0u8; 8192];
            while let Some(r) = self.node.poll_transmit(&mut buf) {
                let n = r.expect("node encode");
                self.to_gw.push_back(buf[..n].to_vec());
                moved = true;
            }
            while let Some(r) = self.gw.poll_transmit(&mut buf) {
                let n = r.expect("gateway encode");
                self.to_node.push_back(buf[..n].to_vec());
                moved = true;
            }
            while let Some(e) = self.node.poll_event() {
                self.record_node(e);
                moved = true;
            }
            while let Some(e) = self.gw.poll_event() {
                self.gw_events.push(gw_ev(e));
                moved = true;
            }
            if let Some(f) = self.to_gw.pop_front() {
                let mut reply = vec![0u8; 8192];
                let h = self.gw.handle_frame(self.now, &f, &mut reply);
                assert_eq!(
                    h.error,
                    None,
                    "gateway rejected a frame: {:?}",
                    String::from_utf8_lossy(&f)
                );
                if h.reply > 0 {
                    self.to_node.push_back(reply[..h.reply].to_vec());
                }
                if let Some(e) = h.event {
                    self.gw_events.push(gw_ev(e));
                }
                moved = true;
            }
            if let Some(f) = self.to_node.pop_front() {
                if self.node_alive {
                    let mut reply = vec![0u8; 8192];
                    let h = self.node.handle_frame(self.now, &f, &mut reply);
                    assert_eq!(
                        h.error,
                        None,
                        "node rejected a frame: {:?}",
                        String::from_utf8_lossy(&f)
                    );
                    if h.reply > 0 {
                        self.to_gw.push_back(reply[..h.reply].to_vec());
                    }
                    if let Some(e) = h.event {
                        self.record_node(e);
                    }
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("pair did not settle");
    }

    fn record_node(&mut self, e: NodeEvent<'_>) {
        let ev = match e {
            NodeEvent::Ready { rejected } => NodeEv::Ready(rejected.len()),
            NodeEvent::Execute { call, tool, args } => NodeEv::Execute(
                call,
                self.tool_names[tool].to_owned(),
                args.as_str().to_owned(),
            ),
            NodeEvent::Cancel { call } => NodeEv::Cancel(call),
            NodeEvent::Answer { call, ask, answer } => NodeEv::Answer(
                call,
                ask,
                answer.map(|j| j.as_str().to_owned()).map_err(|e| e.code),
            ),
            NodeEvent::Closed(r) => NodeEv::Closed(r),
            other => panic!("unexpected node event {other:?}"),
        };
        self.node_events.push(ev);
    }

    /// Advances the clock deadline by deadline until `until`, driving at each.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..10_000 {
            let node_timeout = if self.node_alive {
                self.node.poll_timeout()
            } else {
                None
            };
            let next = [self.gw.poll_timeout(), node_timeout]
                .into_iter()
                .flatten()
                .filter(|t| *t <= until)
                .min();
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.gw.handle_timeout(self.now);
                    if self.node_alive {
                        self.node.handle_timeout(self.now);
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

    fn connect(&mut self) {
        self.drive();
        assert_eq!(self.gw_events[0], GwEv::Hello("dev-1".into()));
        assert!(matches!(self.gw_events[1], GwEv::Registered(ref v) if v.len() == 5));
        assert_eq!(self.node_events[0], NodeEv::Ready(0));
        self.gw_events.clear();
        self.node_events.clear();
    }

    fn call(
        &mut self,
        tool: &str,
        args: &str,
        deadline_ms: Option<u64>,
    ) -> Result<CallId, SendError> {
        let mut out = vec![0u8; 8192];
        let (id, n) = self.gw.call(
            self.now,
            tool,
            Json::parse(args.as_bytes()).unwrap(),
            deadline_ms.map(Duration::from_millis),
            &mut out,
        )?;
        self.to_node.push_back(out[..n].to_vec());
        self.drive();
        Ok(id)
    }

    fn take_execute(&mut self) -> (CallHandle, String, String) {
        let i = self
            .node_events
            .iter()
            .position(|e| matches!(e, NodeEv::Execute(..)))
            .expect("an execute event");
        match self.node_events.remove(i) {
            NodeEv::Execute(c, t, a) => (c, t, a),
            _ => unreachable!(),
        }
    }

    fn finish(&mut self, call: CallHandle, result: Result<&str, ErrorObject<'_>>) {
        let mut out = vec![0u8; 8192];
        let r = result.map(|s| Json::parse(s.as_bytes()).unwrap());
        let n = self.node.finish(call, r, &mut out).expect("finish");
        self.to_gw.push_back(out[..n].to_vec());
        self.drive();
    }
}

const BOTH: [Encoding; 2] = [Encoding::Json, Encoding::Postcard];

#[test]
fn register_call_result() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        assert_eq!(p.gw.encoding(), enc);
        let id = p.call("echo", r#"{"x":41}"#, Some(1000)).unwrap();
        let (call, tool, args) = p.take_execute();
        assert_eq!((tool.as_str(), args.as_str()), ("echo", r#"{"x":41}"#));
        assert_eq!(p.gw.in_flight(), 1);
        p.finish(call, Ok(r#"{"y":42}"#));
        assert_eq!(
            p.gw_events,
            vec![GwEv::Done(id.0, Ok(r#"{"y":42}"#.into()))]
        );
        assert_eq!(p.gw.in_flight(), 0);
        assert_eq!(p.node.in_flight(), 0);
        // The handle is stale now: a second finish is refused, nothing is sent.
        let mut out = [0u8; 64];
        assert_eq!(
            p.node.finish(call, Ok(Json::NULL), &mut out),
            Err(node::NodeError::StaleCall)
        );
    }
}

#[test]
fn tool_error_reaches_caller() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let id = p.call("fail", "{}", None).unwrap();
        let (call, ..) = p.take_execute();
        p.finish(
            call,
            Err(ErrorObject {
                code: 7,
                message: Str::new("sensor offline"),
                data: Some(Json::trusted(br#"{"bus":"i2c0"}"#)),
            }),
        );
        assert_eq!(p.gw_events, vec![GwEv::Done(id.0, Err(7))]);
    }
}

#[test]
fn timeout_fails_call_and_cancels_on_node() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        // Both sides hold the same deadline here: the node drops the handler on its own clock
        // (and answers `timeout`, which the gateway ignores: the call is already over), and the
        // gateway's cancel finds nothing left to stop.
        let id = p.call("slow", "{}", Some(200)).unwrap();
        let (call, ..) = p.take_execute();
        p.advance(Duration::from_millis(199));
        assert!(p.gw_events.is_empty());
        p.advance(Duration::from_millis(1));
        assert_eq!(
            p.gw_events,
            vec![GwEv::Done(id.0, Err(ErrorCode::Timeout.code()))]
        );
        assert_eq!(p.node_events, vec![NodeEv::Cancel(call)]);
        assert!(!p.node.is_live(call));
        assert_eq!(p.gw.stats().unknown_responses, 1);
        // A late result from the dropped handler is refused by the node core itself.
        let mut out = [0u8; 128];
        assert_eq!(
            p.node.finish(call, Ok(Json::NULL), &mut out),
            Err(node::NodeError::StaleCall)
        );
    }
}

/// Both cores forget a finished call's deadline lazily (`poll_timeout` does not scan every call
/// after each frame): the instant they ask for may be a finished call's, which costs one
/// `handle_timeout` that finds nothing, and the instant after it is exact. A later deadline of
/// a call still running is never missed.
#[test]
fn finished_calls_deadlines_cost_one_early_wake_up_at_most() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let heartbeat = p.gw.poll_timeout();
        let node_idle = p.node.poll_timeout();
        p.call("echo", "{}", Some(100)).unwrap();
        let (early, ..) = p.take_execute();
        p.call("slow", "{}", Some(300)).unwrap();
        let (late, ..) = p.take_execute();
        let due = Instant(p.now.0 + 100);
        assert_eq!(p.gw.poll_timeout(), Some(due));
        assert_eq!(p.node.poll_timeout(), Some(due));
        p.finish(early, Ok("{}"));
        // Still the finished call's deadline: nothing expires there.
        assert_eq!(p.gw.poll_timeout(), Some(due));
        assert_eq!(p.node.poll_timeout(), Some(due));
        p.advance(Duration::from_millis(100));
        assert_eq!(p.gw_events.len(), 1, "{:?}", p.gw_events);
        assert!(p.node_events.is_empty(), "{:?}", p.node_events);
        // Exact again: the running call's deadline (before the heartbeat's instants).
        let due = Instant(p.now.0 + 200);
        assert!(heartbeat.is_some_and(|h| h > due) && node_idle.is_some_and(|h| h > due));
        assert_eq!(p.gw.poll_timeout(), Some(due));
        assert_eq!(p.node.poll_timeout(), Some(due));
        p.advance(Duration::from_millis(200));
        assert_eq!(
            p.gw_events.last(),
            Some(&GwEv::Done(2, Err(ErrorCode::Timeout.code())))
        );
        assert_eq!(p.node_events, vec![NodeEv::Cancel(late)]);
        assert!(p.gw.poll_timeout() > Some(p.now));
        assert!(p.node.poll_timeout() > Some(p.now));
    }
}

#[test]
fn node_deadline_drops_handler_when_gateway_is_silent() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        // The gateway waits forever; the node still enforces the deadline it was given.
        let mut out = vec![0u8; 512];
        let (id, n) =
            p.gw.call(p.now, "slow", Json::EMPTY_OBJECT, None, &mut out)
                .unwrap();
        // Rewrite the deadline into the frame by encoding our own execute with the same id.
        let _ = n;
        let ex = Request::Execute(Execute {
            tool: Str::new("slow"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: Some(50),
        });
        let n = codec::encode_request(enc, Id::Num(id.0), &ex, &mut out).unwrap();
        p.to_node.push_back(out[..n].to_vec());
        p.drive();
        let (call, ..) = p.take_execute();
        p.advance(Duration::from_millis(50));
        assert_eq!(p.node_events, vec![NodeEv::Cancel(call)]);
        assert_eq!(
            p.gw_events,
            vec![GwEv::Done(id.0, Err(ErrorCode::Timeout.code()))]
        );
    }
}

#[test]
fn caller_cancel_reaches_node() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let id = p.call("slow", "{}", None).unwrap();
        let (call, ..) = p.take_execute();
        assert!(p.gw.cancel(id));
        assert!(!p.gw.cancel(id));
        p.drive();
        assert_eq!(p.node_events, vec![NodeEv::Cancel(call)]);
        assert!(
            p.gw_events.is_empty(),
            "a cancelled call produces no CallDone"
        );
    }
}

#[test]
fn progress_is_forwarded() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let id = p.call("progress", "{}", None).unwrap();
        let (call, ..) = p.take_execute();
        let mut out = vec![0u8; 512];
        for step in 1..=3u64 {
            let n = p
                .node
                .progress(call, step, Some(3), Some("working"), None, &mut out)
                .unwrap();
            p.to_gw.push_back(out[..n].to_vec());
        }
        p.drive();
        p.finish(call, Ok("true"));
        assert_eq!(
            p.gw_events,
            vec![
                GwEv::Progress(id.0, 1, Some("working".into())),
                GwEv::Progress(id.0, 2, Some("working".into())),
                GwEv::Progress(id.0, 3, Some("working".into())),
                GwEv::Done(id.0, Ok("true".into())),
            ]
        );
    }
}

#[test]
fn ask_round_trip() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let id = p.call("ask", "{}", None).unwrap();
        let (call, ..) = p.take_execute();
        let mut out = vec![0u8; 512];
        let (valve, n) = p
            .node
            .ask(call, AskKind::Permission, "Open the valve?", None, &mut out)
            .unwrap();
        p.to_gw.push_back(out[..n].to_vec());
        let schema = Json::trusted(br#"{"type":"integer"}"#);
        let (litres, n) = p
            .node
            .ask(
                call,
                AskKind::Input,
                "How many litres?",
                Some(schema),
                &mut out,
            )
            .unwrap();
        p.to_gw.push_back(out[..n].to_vec());
        assert_ne!(valve, litres);
        // Two asks open on the call: as many as this node allows.
        assert_eq!(
            p.node
                .ask(call, AskKind::Permission, "again?", None, &mut out),
            Err(node::NodeError::TooManyAsks)
        );
        p.drive();
        let asks: Vec<_> = p
            .gw_events
            .drain(..)
            .map(|e| match e {
                GwEv::Ask(ask, for_call, prompt) => (ask, for_call, prompt),
                other => panic!("expected an ask, got {other:?}"),
            })
            .collect();
        assert_eq!(
            asks.iter()
                .map(|(_, c, p)| (*c, p.as_str()))
                .collect::<Vec<_>>(),
            vec![(id.0, "Open the valve?"), (id.0, "How many litres?")]
        );
        // Answered the other way round: each answer reaches its own ask.
        let n =
            p.gw.answer(&asks[1].0, Ok(Json::trusted(b"12")), &mut out)
                .unwrap();
        p.to_node.push_back(out[..n].to_vec());
        p.drive();
        assert_eq!(
            p.node_events,
            vec![NodeEv::Answer(call, litres, Ok("12".into()))]
        );
        // Its place, and so its handle, is free again; the open one keeps its own.
        let (again, _) = p
            .node
            .ask(call, AskKind::Permission, "Sure?", None, &mut out)
            .unwrap();
        assert_eq!(again, litres);
        assert_ne!(again, valve);
        p.node_events.clear();
        let n =
            p.gw.answer(&asks[0].0, Ok(Json::trusted(b"true")), &mut out)
                .unwrap();
        p.to_node.push_back(out[..n].to_vec());
        // A second answer to the same ask is not one.
        let n2 =
            p.gw.answer(&asks[1].0, Ok(Json::trusted(b"13")), &mut out[256..])
                .unwrap();
        p.to_node.push_back(out[256..256 + n2].to_vec());
        p.drive();
        assert_eq!(
            p.node_events,
            vec![NodeEv::Answer(call, valve, Ok("true".into()))]
        );
        p.finish(call, Ok(r#""opened""#));
        assert_eq!(
            p.gw_events,
            vec![GwEv::Done(id.0, Ok(r#""opened""#.into()))]
        );
    }
}

#[test]
fn one_ask_at_a_time_by_default() {
    let tools: &'static [ToolDef<'static>] = Box::leak(tools().into_boxed_slice());
    let mut node: Node<'static, 2> = Node::new(NodeConfig::new("dev-1", tools), Instant(0));
    let mut gw: Connection<'static, Fixed<16, 32>> =
        Connection::new(GatewayConfig::new("gw"), Instant(0));
    let (mut a, mut b) = (vec![0u8; 1024], vec![0u8; 1024]);
    let now = Instant(0);
    // hello, register
    for _ in 0..2 {
        let n = node.poll_transmit(&mut a).unwrap().unwrap();
        let h = gw.handle_frame(now, &a[..n], &mut b);
        let h = node.handle_frame(now, &b[..h.reply], &mut a);
        assert_eq!(h.error, None);
    }
    assert_eq!(node.state(), node::NodeState::Ready);
    let (_, n) = gw
        .call(now, "ask", Json::EMPTY_OBJECT, None, &mut b)
        .unwrap();
    let h = node.handle_frame(now, &b[..n], &mut a);
    let Some(NodeEvent::Execute { call, .. }) = h.event else {
        panic!("{h:?}")
    };
    node.ask(call, AskKind::Permission, "first?", None, &mut a)
        .unwrap();
    assert_eq!(
        node.ask(call, AskKind::Permission, "second?", None, &mut a),
        Err(node::NodeError::TooManyAsks)
    );
}

#[test]
fn busy_at_gateway_and_at_node() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        // The node announced 2 calls in flight; the gateway keeps to it.
        assert_eq!(p.gw.max_in_flight(), 2);
        p.call("slow", "{}", None).unwrap();
        p.call("slow", "{}", None).unwrap();
        assert_eq!(p.call("slow", "{}", None), Err(SendError::Busy));
        // A gateway that ignores the limit gets `busy` from the node itself.
        let mut out = vec![0u8; 512];
        let ex = Request::Execute(Execute {
            tool: Str::new("echo"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: None,
        });
        let n = codec::encode_request(enc, Id::Num(999), &ex, &mut out).unwrap();
        let mut reply = vec![0u8; 512];
        let h = p.node.handle_frame(p.now, &out[..n], &mut reply);
        assert_eq!(h.event, None);
        let m = codec::decode(&reply[..h.reply], enc, &Limits::default()).unwrap();
        let codec::Message::Response { id, result: Err(e) } = m else {
            panic!("expected an error response, got {m:?}");
        };
        assert_eq!((id, e.code), (Id::Num(999), ErrorCode::Busy.code()));
    }
}

#[test]
fn unknown_tool() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        assert_eq!(p.call("nope", "{}", None), Err(SendError::ToolNotFound));
        // And at the node, for a gateway that does not check.
        let mut out = vec![0u8; 512];
        let ex = Request::Execute(Execute {
            tool: Str::new("nope"),
            arguments: Json::EMPTY_OBJECT,
            deadline_ms: None,
        });
        let n = codec::encode_request(enc, Id::Str(Str::new("abc")), &ex, &mut out).unwrap();
        let mut reply = vec![0u8; 512];
        let h = p.node.handle_frame(p.now, &out[..n], &mut reply);
        let m = codec::decode(&reply[..h.reply], enc, &Limits::default()).unwrap();
        let codec::Message::Response { id, result: Err(e) } = m else {
            panic!("expected an error response");
        };
        assert_eq!(id, Id::Str(Str::new("abc")));
        assert_eq!(e.code, ErrorCode::ToolNotFound.code());
    }
}

#[test]
fn auth_failure_closes_both_sides() {
    for enc in BOTH {
        let tools: &'static [ToolDef<'static>] = Box::leak(tools().into_boxed_slice());
        let mut g = GatewayConfig::new("gw");
        g.auth = Auth::Token(b"sesame");
        let mut n = NodeConfig::new("dev-1", tools);
        n.token = Some("guess");
        let mut p = Pair::new(enc, g, n);
        p.drive();
        assert_eq!(
            p.gw_events.last(),
            Some(&GwEv::Closed(gateway::CloseReason::Refused(
                ErrorCode::Unauthorized
            )))
        );
        assert_eq!(
            p.node_events,
            vec![NodeEv::Closed(node::CloseReason::Refused(
                ErrorCode::Unauthorized.code()
            ))]
        );
        assert_eq!(p.node.state(), node::NodeState::Closed);

        // The right token passes.
        let mut g = GatewayConfig::new("gw");
        g.auth = Auth::Token(b"sesame");
        let mut n = NodeConfig::new("dev-1", tools);
        n.token = Some("sesame");
        let mut p = Pair::new(enc, g, n);
        p.connect();
    }
}

#[test]
fn deferred_auth_accept_and_refuse() {
    for enc in BOTH {
        for accept in [true, false] {
            let tools: &'static [ToolDef<'static>] = Box::leak(tools().into_boxed_slice());
            let mut g = GatewayConfig::new("gw");
            g.auth = Auth::Deferred;
            let mut p = Pair::new(enc, g, NodeConfig::new("dev-1", tools));
            p.drive();
            assert_eq!(p.gw_events, vec![GwEv::Hello("dev-1".into())]);
            assert_eq!(p.gw.state(), gateway::State::AwaitAccept);
            let mut out = vec![0u8; 512];
            let n = if accept {
                p.gw.accept(p.now, &mut out).unwrap()
            } else {
                p.gw.refuse(ErrorCode::Unauthorized, "not on the list", &mut out)
                    .unwrap()
            };
            p.to_node.push_back(out[..n].to_vec());
            p.drive();
            if accept {
                assert_eq!(p.node_events, vec![NodeEv::Ready(0)]);
            } else {
                assert_eq!(
                    p.node_events,
                    vec![NodeEv::Closed(node::CloseReason::Refused(
                        ErrorCode::Unauthorized.code()
                    ))]
                );
            }
        }
    }
}

#[test]
fn version_mismatch_is_refused_clearly() {
    for enc in BOTH {
        let cfg = GatewayConfig::new("gw");
        let mut gw: Connection<'_, Fixed<4, 4>> = Connection::new(cfg, Instant(0));
        let hello = Request::Hello(Hello {
            min_version: 2,
            max_version: 3,
            role: Role::Node,
            id: Str::new("future"),
            token: None,
            encodings: Encodings::BOTH,
            max_frame: 1024,
            max_in_flight: 1,
        });
        let mut out = [0u8; 256];
        let n = codec::encode_request(enc, Id::Num(0), &hello, &mut out).unwrap();
        let mut reply = [0u8; 256];
        let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
        assert_eq!(
            h.event,
            Some(gateway::Event::Closed(gateway::CloseReason::Refused(
                ErrorCode::VersionMismatch
            )))
        );
        let m = codec::decode(&reply[..h.reply], enc, &Limits::default()).unwrap();
        let codec::Message::Response { result: Err(e), .. } = m else {
            panic!("expected an error");
        };
        assert_eq!(e.code, ErrorCode::VersionMismatch.code());
        assert!(e.to_string_lossy().contains("speaks 1"));
        assert_eq!(
            e.data.unwrap().as_str(),
            r#"{"supported":{"min":1,"max":1}}"#
        );

        // The node side: a refusal of the hello closes the node with that code.
        let tools: &'static [ToolDef<'static>] = Box::leak(tools().into_boxed_slice());
        let mut cfg = NodeConfig::new("dev-1", tools);
        cfg.hello_encoding = enc;
        let refusal = reply[..h.reply].to_vec();
        let mut node: Node<'_, 1> = Node::new(cfg, Instant(0));
        let mut out = [0u8; 512];
        node.poll_transmit(&mut out).unwrap().unwrap();
        let h = node.handle_frame(Instant(0), &refusal, &mut out);
        assert_eq!(
            h.event,
            Some(NodeEvent::Closed(node::CloseReason::Refused(
                ErrorCode::VersionMismatch.code()
            )))
        );
    }
}

trait Lossy {
    fn to_string_lossy(&self) -> String;
}
impl Lossy for ErrorObject<'_> {
    fn to_string_lossy(&self) -> String {
        self.message.to_string()
    }
}

#[test]
fn register_rejections() {
    for enc in BOTH {
        let defs: Vec<ToolDef<'static>> = vec![
            ToolDef {
                name: Str::new("good"),
                description: Str::new(""),
                input_schema: Json::trusted(b"{}"),
                output_schema: None,
                annotations: Annotations::NONE,
            },
            ToolDef {
                name: Str::new("good"),
                description: Str::new("duplicate"),
                input_schema: Json::trusted(b"{}"),
                output_schema: None,
                annotations: Annotations::NONE,
            },
            ToolDef {
                name: Str::new("bad name!"),
                description: Str::new(""),
                input_schema: Json::trusted(b"{}"),
                output_schema: None,
                annotations: Annotations::NONE,
            },
            ToolDef {
                name: Str::new("schema"),
                description: Str::new(""),
                input_schema: Json::trusted(b"[1]"),
                output_schema: None,
                annotations: Annotations::NONE,
            },
        ];
        let tools: &'static [ToolDef<'static>] = Box::leak(defs.into_boxed_slice());
        let mut p = Pair::new(
            enc,
            GatewayConfig::new("gw"),
            NodeConfig::new("dev-1", tools),
        );
        p.drive();
        assert_eq!(p.gw_events[1], GwEv::Registered(vec!["good".into()]));
        assert_eq!(p.node_events, vec![NodeEv::Ready(3)]);
        assert_eq!(p.gw.tools().collect::<Vec<_>>(), vec!["good"]);
    }
}

#[test]
fn heartbeat_keeps_alive_and_detects_silence() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        // Pings flow every 5 s and the node answers: a minute passes without incident.
        p.advance(Duration::from_secs(60));
        assert!(p.gw_events.is_empty(), "{:?}", p.gw_events);
        assert_eq!(p.gw.state(), gateway::State::Ready(Role::Node));
        // The node goes silent with a call pending: within three intervals the call fails
        // with `disconnected` and the connection closes.
        let id = p.call("slow", "{}", None).unwrap();
        p.node_alive = false;
        p.advance(Duration::from_secs(15));
        assert_eq!(
            p.gw_events,
            vec![
                GwEv::Done(id.0, Err(ErrorCode::Disconnected.code())),
                GwEv::Closed(gateway::CloseReason::Timeout),
            ]
        );
    }
}

#[test]
fn node_detects_silent_gateway() {
    let mut p = Pair::standard(Encoding::Json);
    p.connect();
    // Stop delivering gateway frames to the node by dropping them.
    let t0 = p.now;
    for _ in 0..100 {
        p.to_node.clear();
        let next = p.node.poll_timeout().unwrap();
        p.now = next;
        p.node.handle_timeout(p.now);
        if p.node.state() == node::NodeState::Closed {
            break;
        }
    }
    assert_eq!(
        p.node.poll_event(),
        Some(NodeEvent::Closed(node::CloseReason::Timeout))
    );
    assert_eq!(p.now - t0, Duration::from_secs(15));
}

#[test]
fn transport_loss_fails_pending_calls() {
    for enc in BOTH {
        let mut p = Pair::standard(enc);
        p.connect();
        let a = p.call("slow", "{}", None).unwrap();
        let b = p.call("slow", "{}", Some(10_000)).unwrap();
        p.gw.transport_closed();
        p.drive();
        let mut done: Vec<_> = p.gw_events.clone();
        done.sort_by_key(|e| format!("{e:?}"));
        assert!(done.contains(&GwEv::Done(a.0, Err(ErrorCode::Disconnected.code()))));
        assert!(done.contains(&GwEv::Done(b.0, Err(ErrorCode::Disconnected.code()))));
        assert_eq!(
            p.gw_events.last(),
            Some(&GwEv::Closed(gateway::CloseReason::Disconnected))
        );
        assert_eq!(p.gw.poll_timeout(), None);
    }
}

#[test]
fn handshake_timeout() {
    let mut gw: Connection<'_, Fixed<4, 4>> = Connection::new(GatewayConfig::new("gw"), Instant(0));
    assert_eq!(gw.poll_timeout(), Some(Instant(10_000)));
    gw.handle_timeout(Instant(10_000));
    assert_eq!(
        gw.poll_event(),
        Some(gateway::Event::Closed(gateway::CloseReason::Timeout))
    );
}

#[test]
fn requests_before_hello_are_refused_and_connection_goes_on() {
    for enc in BOTH {
        let mut gw: Connection<'_, Fixed<4, 4>> =
            Connection::new(GatewayConfig::new("gw"), Instant(0));
        let mut out = [0u8; 256];
        let n = codec::encode_request(enc, Id::Num(5), &Request::Ping, &mut out).unwrap();
        let mut reply = [0u8; 256];
        let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
        let m = codec::decode(&reply[..h.reply], enc, &Limits::default()).unwrap();
        assert!(
            matches!(m, codec::Message::Response { id: Id::Num(5), result: Err(e) } if e.code == ErrorCode::NotReady.code())
        );
        assert_eq!(gw.state(), gateway::State::AwaitHello);
    }
}

#[test]
fn controller_requests_become_events() {
    for enc in BOTH {
        let mut gw: Connection<'_, Fixed<4, 4>> =
            Connection::new(GatewayConfig::new("gw"), Instant(0));
        let mut out = [0u8; 512];
        let mut reply = [0u8; 512];
        let hello = Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            role: Role::Controller,
            id: Str::new("cli"),
            token: None,
            encodings: Encodings {
                json: enc == Encoding::Json,
                postcard: enc == Encoding::Postcard,
            },
            max_frame: 4096,
            max_in_flight: 0,
        });
        let n = codec::encode_request(enc, Id::Num(1), &hello, &mut out).unwrap();
        let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
        assert!(h.reply > 0);
        assert_eq!(gw.state(), gateway::State::Ready(Role::Controller));
        let call = Request::Call(Call {
            node: Str::new("dev-1"),
            tool: Str::new("echo"),
            arguments: Json::trusted(br#"{"a":[1,2]}"#),
            deadline_ms: Some(100),
        });
        let n = codec::encode_request(enc, Id::Str(Str::new("c-1")), &call, &mut out).unwrap();
        let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
        assert_eq!(
            h.event,
            Some(gateway::Event::Request {
                id: Id::Str(Str::new("c-1")),
                request: call
            })
        );
        // The runtime answers; the answer decodes as the tool result.
        let n = gw
            .respond(Id::Str(Str::new("c-1")), &Json::trusted(b"[3]"), &mut out)
            .unwrap();
        let m = codec::decode(&out[..n], enc, &Limits::default()).unwrap();
        let codec::Message::Response { result: Ok(p), .. } = m else {
            panic!()
        };
        assert_eq!(
            p.decode::<Json<'_>>(&Limits::default()).unwrap().as_str(),
            "[3]"
        );
        // A controller may not register tools.
        let reg = Request::Register(Register {
            tools: toolwire_core::List::empty(),
        });
        let n = codec::encode_request(enc, Id::Num(2), &reg, &mut out).unwrap();
        let h = gw.handle_frame(Instant(0), &out[..n], &mut reply);
        let m = codec::decode(&reply[..h.reply], enc, &Limits::default()).unwrap();
        assert!(
            matches!(m, codec::Message::Response { result: Err(e), .. } if e.code == ErrorCode::MethodNotFound.code())
        );
    }
}

#[test]
fn oversized_result_becomes_frame_too_large_error() {
    let mut p = Pair::standard(Encoding::Json);
    p.connect();
    let id = p.call("echo", "{}", None).unwrap();
    let (call, ..) = p.take_execute();
    let big = format!("\"{}\"", "x".repeat(300));
    let mut out = vec![0u8; 200];
    let n = p
        .node
        .finish(call, Ok(Json::parse(big.as_bytes()).unwrap()), &mut out)
        .unwrap();
    p.to_gw.push_back(out[..n].to_vec());
    p.drive();
    assert_eq!(
        p.gw_events,
        vec![GwEv::Done(id.0, Err(ErrorCode::FrameTooLarge.code()))]
    );
}

#[test]
fn late_result_after_timeout_is_ignored_and_counted() {
    let mut p = Pair::standard(Encoding::Postcard);
    p.connect();
    let id = p.call("slow", "{}", Some(10)).unwrap();
    p.take_execute();
    p.advance(Duration::from_millis(10));
    p.gw_events.clear();
    let mut out = [0u8; 128];
    let n = codec::encode_result(Encoding::Postcard, Id::Num(id.0), &Json::NULL, &mut out).unwrap();
    let mut reply = [0u8; 128];
    let h = p.gw.handle_frame(p.now, &out[..n], &mut reply);
    assert_eq!(h.reply, 0);
    // A late response never completes a call twice: it is counted and dropped (the node's own
    // `timeout` answer was the first one).
    assert_eq!(h.event, None);
    assert_eq!(p.gw.stats().unknown_responses, 2);
    // So is an id never issued.
    let n =
        codec::encode_result(Encoding::Postcard, Id::Num(10_000), &Json::NULL, &mut out).unwrap();
    let h = p.gw.handle_frame(p.now, &out[..n], &mut reply);
    assert_eq!(h.event, None);
    assert_eq!(p.gw.stats().unknown_responses, 3);
}
