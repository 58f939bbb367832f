//! The router (the gateway across all its connections) under arbitrary sequences of inputs:
//! connections opened and closed, raw frames and well-formed node and controller frames, local
//! calls, cancels and answers, time, shutdown.
//!
//! Invariants: no panic; every local call gets at most one `Done`, none once cancelled, and
//! exactly one otherwise once everything is closed and time has passed every deadline;
//! `in_flight()` is then 0; every call the router stops by timeout or cancel sends one `cancel`
//! to its node while the node is connected; after `handle_timeout(now)` the next deadline is
//! later than `now`; every frame the router emits decodes.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use toolwire_core::codec::{self, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::router::{
    AskKey, CacheConfig, CallKey, ConnId, Event, Failure, HeldConfig, LocalCall, Outbox, RateLimit,
    Router, RouterConfig, Schemas, TokenSpec,
};
use toolwire_core::{Duration, Encoding, ErrorCode, Id, Instant, Json, List, Str};
use toolwire_fuzz::*;

const NODES: [&str; 3] = ["n0", "n1", "n-2"];
const TOOLS: [&str; 4] = ["t0", "t1", "t.2", "bad name"];
const TOKENS: [&str; 3] = ["node-secret", "ctl-secret", "wrong"];
const SCHEMAS: [&[u8]; 3] = [b"{}", br#"{"type":"object"}"#, br#"{"x-refuse":1}"#];

/// Refuses schemas with `x-refuse`, arguments with a key `"bad"`.
struct FuzzSchemas;

impl Schemas for FuzzSchemas {
    type Compiled = ();
    fn compile(&mut self, tool: &ToolDef<'_>) -> Result<(), RejectReason> {
        match tool.input_schema.as_str().contains("x-refuse") {
            true => Err(RejectReason::BadSchema),
            false => Ok(()),
        }
    }
    fn check(&self, _: &(), arguments: Json<'_>) -> Result<(), Failure> {
        match arguments.as_str().contains("\"bad\"") {
            true => Err(Failure::new(ErrorCode::InvalidArguments, "bad")),
            false => Ok(()),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Config {
    heartbeat_ms: u16,
    default_deadline_ms: u16,
    rate: Option<(u8, u8)>,
    tokens: bool,
    /// The limits, packed (the field keeps its old name so the corpus still reads the same):
    /// bits 0–2 handshakes, 3–4 nodes, 5–6 controllers.
    max_connections: u8,
    max_frame: u16,
}

#[derive(Arbitrary, Debug)]
enum Action {
    Open,
    Close(u8),
    Raw(u8, Vec<u8>),
    NodeHello {
        conn: u8,
        id: u8,
        postcard: bool,
        token: u8,
        max_in_flight: u8,
    },
    CtrlHello {
        conn: u8,
        postcard: bool,
        token: u8,
        max_frame: u16,
    },
    Register {
        conn: u8,
        tools: Vec<(u8, u8)>,
    },
    Unregister {
        conn: u8,
        names: Vec<u8>,
    },
    /// The node answers one of the executes it was sent.
    NodeResult {
        conn: u8,
        to: u8,
        result: Result<JsonText, (u8, String)>,
    },
    NodeProgress {
        conn: u8,
        to: u8,
        progress: u64,
        partial: Option<JsonText>,
    },
    NodeLog {
        conn: u8,
        /// The call it is about (`None`: the node; a number past the calls: a stale id).
        to: Option<u8>,
        data: Option<JsonText>,
    },
    NodeAsk {
        conn: u8,
        to: u8,
        id: u16,
        prompt: String,
    },
    CtrlCall {
        conn: u8,
        id: u16,
        node: u8,
        tool: u8,
        args: JsonObject,
        deadline_ms: Option<u16>,
        /// `cache`, and `max_result_bytes` (under 16 now and then: refused).
        options: Option<(Option<bool>, Option<u8>)>,
    },
    CtrlRead {
        conn: u8,
        id: u16,
        handle: u8,
        offset: u16,
        length: Option<u8>,
    },
    CtrlCancel {
        conn: u8,
        id: u16,
    },
    CtrlList {
        conn: u8,
        id: u16,
        kind: u8,
        cursor: Option<String>,
        limit: Option<u8>,
        filter: Option<u8>,
    },
    CtrlAnswer {
        conn: u8,
        to: u8,
        result: Result<JsonText, (u8, String)>,
    },
    Ping {
        conn: u8,
        id: u16,
    },
    LocalCall {
        node: u8,
        tool: u8,
        args: JsonObject,
        deadline_ms: Option<u16>,
        no_cache: bool,
        budget: Option<u8>,
    },
    LocalRead {
        handle: u8,
        offset: u16,
        length: Option<u8>,
    },
    LocalCancel(u8),
    LocalAnswer(u8, Option<JsonText>),
    Advance(u16),
    AdvanceToDeadline,
    Shutdown,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    actions: Vec<Action>,
}

#[derive(Default)]
struct Peer {
    /// Encoding of its frames (from the hello the harness sent).
    enc: Option<Encoding>,
    /// `execute` ids the router sent it.
    executes: Vec<u64>,
    /// `ask` request ids the router sent it (a controller).
    asks: Vec<u64>,
    /// `cancel`s the router sent it.
    cancels: BTreeSet<u64>,
}

#[derive(Default)]
struct Local {
    cancelled: bool,
    done: usize,
}

struct Harness {
    router: Router<FuzzSchemas>,
    now: Instant,
    conns: Vec<ConnId>,
    peers: BTreeMap<ConnId, Peer>,
    locals: BTreeMap<CallKey, Local>,
    keys: Vec<CallKey>,
    asks: Vec<AskKey>,
    /// A node answered a call with `-32003` or `-32004` itself: such a `Finished` has no
    /// `cancel`, so the cancel count is not checked.
    ambiguous: bool,
    buf: Vec<u8>,
}

const ERRS: [i32; 4] = [7, -32014, -32002, -32603];

fn pick<T: Copy>(t: &[T], i: u8) -> T {
    t[i as usize % t.len()]
}

impl Harness {
    fn conn(&self, i: u8) -> Option<ConnId> {
        (!self.conns.is_empty()).then(|| self.conns[i as usize % self.conns.len()])
    }

    fn enc(&self, c: ConnId) -> Encoding {
        self.peers
            .get(&c)
            .and_then(|p| p.enc)
            .unwrap_or(Encoding::Json)
    }

    fn send(&mut self, c: ConnId, frame: &[u8]) {
        if let Ok(Message::Response { result: Err(e), .. }) =
            codec::decode(frame, codec::sniff(frame), &Limits::default())
            && (e.code == ErrorCode::Timeout.code() || e.code == ErrorCode::Cancelled.code())
        {
            self.ambiguous = true;
        }
        self.router.handle_frame(c, self.now, frame);
    }

    fn request(&mut self, c: ConnId, id: Id<'_>, r: &Request<'_>) {
        let enc = self.enc(c);
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(n) = codec::encode_request(enc, id, r, &mut buf) {
            self.send(c, &buf[..n]);
        }
        self.buf = buf;
    }

    fn notify(&mut self, c: ConnId, n: &Notification<'_>) {
        let enc = self.enc(c);
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(len) = codec::encode_notification(enc, n, &mut buf) {
            self.send(c, &buf[..len]);
        }
        self.buf = buf;
    }

    fn respond(&mut self, c: ConnId, id: u64, result: &Result<JsonText, (u8, String)>) {
        let enc = self.enc(c);
        let mut buf = std::mem::take(&mut self.buf);
        let r = match result {
            Ok(v) => codec::encode_result(enc, Id::Num(id), &v.json(), &mut buf),
            Err((code, msg)) => codec::encode_error(
                enc,
                Id::Num(id),
                &ErrorObject {
                    code: pick(&ERRS, *code),
                    message: Str::new(msg),
                    data: None,
                },
                &mut buf,
            ),
        };
        if let Ok(n) = r {
            self.send(c, &buf[..n]);
        }
        self.buf = buf;
    }

    /// Takes every output, checking frames and events.
    fn drain(&mut self) {
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        let mut got: BTreeMap<ConnId, usize> = BTreeMap::new();
        for _ in 0..10_000 {
            let Some(c) = self.router.poll_ready() else {
                break;
            };
            let mut out = Outbox::new();
            self.router.poll_transmit(c, &mut out);
            let peer = self.peers.entry(c).or_default();
            for f in out.iter() {
                let m = codec::decode(f, codec::sniff(f), &Limits::default())
                    .unwrap_or_else(|e| panic!("the router emitted an undecodable frame: {e:?}"));
                match m {
                    Message::Request {
                        id: Id::Num(id),
                        request: Request::Execute(_),
                    } => peer.executes.push(id),
                    Message::Request {
                        id: Id::Num(id),
                        request: Request::Ask(_),
                    } => peer.asks.push(id),
                    Message::Notification(Notification::Cancel(cn)) => {
                        let Id::Num(id) = cn.id else {
                            panic!("a cancel with a non-numeric id")
                        };
                        assert!(peer.executes.contains(&id), "cancel of a call never sent");
                        assert!(peer.cancels.insert(id), "call {id} cancelled twice");
                        *got.entry(c).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        while let Some(e) = self.router.poll_event() {
            match e {
                Event::Done { key, .. } => {
                    let l = self.locals.get_mut(&key).expect("Done for an unknown call");
                    assert!(!l.cancelled, "Done after a successful cancel");
                    l.done += 1;
                    assert_eq!(l.done, 1, "two Dones for one call");
                }
                Event::Ask { ask, .. } => self.asks.push(ask),
                Event::Finished {
                    node,
                    outcome: Err(code),
                    ..
                } if code == ErrorCode::Timeout.code() || code == ErrorCode::Cancelled.code() => {
                    *expected.entry(node).or_default() += 1;
                }
                _ => {}
            }
        }
        if self.ambiguous {
            return;
        }
        // A node still connected got one cancel per call stopped by deadline or cancel.
        for (node, n) in expected {
            let live: Vec<ConnId> = self
                .conns
                .iter()
                .copied()
                .filter(|&c| self.router.node_of(c) == Some(node.as_str()))
                .filter(|&c| !self.router.is_closing(c))
                .collect();
            if let [c] = live[..] {
                assert_eq!(got.get(&c).copied().unwrap_or(0), n, "cancels to {node}");
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        self.now = now;
        self.router.handle_timeout(now);
        if let Some(t) = self.router.poll_timeout() {
            assert!(t > now, "a deadline due now survived handle_timeout");
        }
    }

    fn act(&mut self, a: &Action) {
        match a {
            Action::Open => {
                if let Ok(c) = self.router.open(self.now) {
                    self.peers.insert(c, Peer::default());
                    self.conns.push(c);
                }
            }
            Action::Close(i) => {
                if let Some(c) = self.conn(*i) {
                    self.router.close(c, self.now);
                }
            }
            Action::Raw(i, bytes) => {
                if let Some(c) = self.conn(*i) {
                    self.send(c, bytes);
                }
            }
            Action::NodeHello {
                conn,
                id,
                postcard,
                token,
                max_in_flight,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let enc = encoding(*postcard);
                self.peers.entry(c).or_default().enc = Some(enc);
                let hello = Request::Hello(Hello {
                    min_version: 1,
                    max_version: 1,
                    role: Role::Node,
                    id: Str::new(pick(&NODES, *id)),
                    token: (*token % 4 != 3).then(|| Str::new(pick(&TOKENS, *token))),
                    encodings: Encodings {
                        json: !postcard,
                        postcard: *postcard,
                    },
                    max_frame: 4096,
                    max_in_flight: u16::from(*max_in_flight % 6),
                });
                self.request(c, Id::Num(0), &hello);
            }
            Action::CtrlHello {
                conn,
                postcard,
                token,
                max_frame,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let enc = encoding(*postcard);
                self.peers.entry(c).or_default().enc = Some(enc);
                let hello = Request::Hello(Hello {
                    min_version: 1,
                    max_version: 1,
                    role: Role::Controller,
                    id: Str::new("ctl"),
                    token: (*token % 4 != 3).then(|| Str::new(pick(&TOKENS, *token))),
                    encodings: Encodings {
                        json: !postcard,
                        postcard: *postcard,
                    },
                    max_frame: u32::from(*max_frame),
                    max_in_flight: 0,
                });
                self.request(c, Id::Num(0), &hello);
            }
            Action::Register { conn, tools } => {
                let Some(c) = self.conn(*conn) else { return };
                let defs: Vec<ToolDef<'_>> = tools
                    .iter()
                    .take(8)
                    .map(|&(n, s)| ToolDef {
                        name: Str::new(pick(&TOOLS, n)),
                        description: Str::new("d"),
                        input_schema: Json::trusted(pick(&SCHEMAS, s)),
                        output_schema: None,
                        // Tools of even index are cacheable (read-only and idempotent).
                        annotations: Annotations {
                            read_only: n % 2 == 0,
                            destructive: false,
                            idempotent: n % 2 == 0,
                        },
                    })
                    .collect();
                let r = Request::Register(Register {
                    tools: List::from_slice(&defs),
                });
                self.request(c, Id::Num(1), &r);
            }
            Action::Unregister { conn, names } => {
                let Some(c) = self.conn(*conn) else { return };
                let names: Vec<Str<'_>> = names
                    .iter()
                    .take(8)
                    .map(|&n| Str::new(pick(&TOOLS, n)))
                    .collect();
                let r = Request::Unregister(Unregister {
                    names: List::from_slice(&names),
                });
                self.request(c, Id::Num(2), &r);
            }
            Action::NodeResult { conn, to, result } => {
                let Some(c) = self.conn(*conn) else { return };
                let Some(&id) = pick_vec(&self.peers.entry(c).or_default().executes, *to) else {
                    return;
                };
                self.respond(c, id, result);
            }
            Action::NodeProgress {
                conn,
                to,
                progress,
                partial,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let Some(&id) = pick_vec(&self.peers.entry(c).or_default().executes, *to) else {
                    return;
                };
                let n = Notification::Progress(Progress {
                    id: Id::Num(id),
                    progress: *progress,
                    total: None,
                    message: Some(Str::new("m")),
                    partial: opt_json(partial),
                });
                self.notify(c, &n);
            }
            Action::NodeLog { conn, to, data } => {
                let Some(c) = self.conn(*conn) else { return };
                let id = match to {
                    None => None,
                    Some(to) => Some(Id::Num(
                        pick_vec(&self.peers.entry(c).or_default().executes, *to)
                            .copied()
                            .unwrap_or(u64::from(*to) + 1_000_000),
                    )),
                };
                let n = Notification::Log(Log {
                    id,
                    level: LogLevel::Info,
                    message: Str::new("line"),
                    data: opt_json(data),
                });
                self.notify(c, &n);
            }
            Action::NodeAsk {
                conn,
                to,
                id,
                prompt,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let Some(&call) = pick_vec(&self.peers.entry(c).or_default().executes, *to) else {
                    return;
                };
                let r = Request::Ask(Ask {
                    call: Id::Num(call),
                    kind: [
                        AskKind::Input,
                        AskKind::Permission,
                        AskKind::Sample,
                        AskKind::Roots,
                    ][*id as usize % 4],
                    prompt: Str::new(prompt),
                    schema: None,
                });
                self.request(c, Id::Num(u64::from(*id) + 2), &r);
            }
            Action::CtrlCall {
                conn,
                id,
                node,
                tool,
                args,
                deadline_ms,
                options,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let (cache, budget) = options.unwrap_or_default();
                let r = CallWith {
                    node: Str::new(pick(&NODES, *node)),
                    tool: Str::new(pick(&TOOLS, *tool)),
                    arguments: args.json(),
                    deadline_ms: deadline_ms.map(u32::from),
                    cache,
                    max_result_bytes: budget.map(u32::from),
                }
                .into_request();
                self.request(c, Id::Num(u64::from(*id)), &r);
            }
            Action::CtrlRead {
                conn,
                id,
                handle,
                offset,
                length,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let handle = format!("r{handle}");
                let r = Request::ReadResult(ReadResult {
                    handle: Str::new(&handle),
                    offset: u32::from(*offset),
                    length: length.map(u32::from),
                });
                self.request(c, Id::Num(u64::from(*id)), &r);
            }
            Action::CtrlCancel { conn, id } => {
                let Some(c) = self.conn(*conn) else { return };
                let n = Notification::Cancel(Cancel {
                    id: Id::Num(u64::from(*id)),
                    reason: None,
                });
                self.notify(c, &n);
            }
            Action::CtrlList {
                conn,
                id,
                kind,
                cursor,
                limit,
                filter,
            } => {
                let Some(c) = self.conn(*conn) else { return };
                let limit = limit.map(u32::from);
                let cursor = cursor.as_deref().map(Str::new);
                // A tool set: none (lifts it), one tool, or one node's tools.
                let patterns: Vec<String> = match filter {
                    None => Vec::new(),
                    Some(f) if f % 2 == 0 => vec![pick(&TOOLS, *f).to_owned()],
                    Some(f) => vec![format!("{}/*", pick(&NODES, *f))],
                };
                let patterns: Vec<Str<'_>> = patterns.iter().map(|p| Str::new(p)).collect();
                // Ask rules: for the filter's tool, allow, deny or forward its asks; a bad rule
                // (an input allow without an answer) now and then.
                let f = filter.unwrap_or(0);
                let rules = [Rule {
                    tool: Str::new(pick(&TOOLS, f)),
                    kind: [
                        None,
                        Some(AskKind::Permission),
                        Some(AskKind::Input),
                        Some(AskKind::Sample),
                        Some(AskKind::Roots),
                    ][f as usize % 5],
                    prompt: (f % 5 == 0).then_some(Str::new("*")),
                    decision: [Decision::Allow, Decision::Deny, Decision::Forward]
                        [f as usize / 3 % 3],
                    answer: (f % 4 == 0).then_some(Json::trusted(b"true")),
                }];
                let r = match kind % 6 {
                    0 => Request::ListNodes(ListNodes { cursor, limit }),
                    1 => Request::ListTools(ListTools {
                        prefix: filter
                            .filter(|f| f % 2 == 0)
                            .map(|f| Str::new(pick(&TOOLS, f))),
                        node: filter
                            .filter(|f| f % 2 == 1)
                            .map(|f| Str::new(pick(&NODES, f))),
                        cursor,
                        limit,
                    }),
                    2 => Request::Resolve(Resolve {
                        tool: Str::new(pick(&TOOLS, filter.unwrap_or(0))),
                    }),
                    3 => Request::Scope(Scope {
                        tools: List::from_slice(&patterns),
                    }),
                    4 => Request::SetRules(SetRules {
                        rules: List::from_slice(if f % 7 == 0 { &[] } else { &rules }),
                    }),
                    _ => Request::ListRules(ListRules {}),
                };
                self.request(c, Id::Num(u64::from(*id)), &r);
            }
            Action::CtrlAnswer { conn, to, result } => {
                let Some(c) = self.conn(*conn) else { return };
                let Some(&id) = pick_vec(&self.peers.entry(c).or_default().asks, *to) else {
                    return;
                };
                self.respond(c, id, result);
            }
            Action::Ping { conn, id } => {
                let Some(c) = self.conn(*conn) else { return };
                self.request(c, Id::Num(u64::from(*id)), &Request::Ping);
            }
            Action::LocalCall {
                node,
                tool,
                args,
                deadline_ms,
                no_cache,
                budget,
            } => {
                let opts = LocalCall {
                    deadline: deadline_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                    acl: None,
                    no_cache: *no_cache,
                    max_result_bytes: budget.map(u32::from),
                };
                let r = self.router.call_with(
                    self.now,
                    pick(&NODES, *node),
                    pick(&TOOLS, *tool),
                    args.json(),
                    &opts,
                );
                if let Ok(key) = r {
                    assert!(
                        self.locals.insert(key, Local::default()).is_none(),
                        "key reused"
                    );
                    self.keys.push(key);
                }
            }
            Action::LocalRead {
                handle,
                offset,
                length,
            } => {
                let handle = format!("r{handle}");
                let r = self.router.read_result(
                    self.now,
                    &handle,
                    u32::from(*offset),
                    length.map(u32::from),
                    None,
                );
                match r {
                    Ok(p) => {
                        assert!(
                            p.page.len() <= length.map_or(usize::MAX, |l| usize::from(l).max(4))
                        );
                        assert!(u32::from(*offset) + p.page.len() as u32 <= p.total_bytes);
                        if let Some(n) = p.next_offset {
                            assert_eq!(n, u32::from(*offset) + p.page.len() as u32);
                            assert!(!p.page.is_empty(), "a page that does not move on");
                        }
                    }
                    Err(f) => assert!(
                        [-32015, -32602].contains(&f.code),
                        "read_result failed {}",
                        f.code
                    ),
                }
            }
            Action::LocalCancel(i) => {
                let Some(&key) = pick_vec(&self.keys, *i) else {
                    return;
                };
                let pending = self.locals[&key].done == 0 && !self.locals[&key].cancelled;
                let ok = self.router.cancel(self.now, key);
                assert_eq!(ok, pending, "cancel() of a call {pending} pending");
                if ok {
                    self.locals.get_mut(&key).unwrap().cancelled = true;
                }
            }
            Action::LocalAnswer(i, answer) => {
                let Some(&ask) = pick_vec(&self.asks, *i) else {
                    return;
                };
                let answer = match answer {
                    Some(v) => Ok(v.json()),
                    None => Err(ErrorObject::new(ErrorCode::AskDeclined, "no")),
                };
                self.router.answer(self.now, ask, answer);
            }
            Action::Advance(ms) => {
                let now = self.now + Duration::from_millis(u64::from(*ms));
                self.timeout(now);
            }
            Action::AdvanceToDeadline => {
                if let Some(t) = self.router.poll_timeout() {
                    self.timeout(t.max(self.now));
                }
            }
            Action::Shutdown => self.router.shutdown(self.now, GoodbyeReason::Shutdown),
        }
    }
}

fn pick_vec<T>(v: &[T], i: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i as usize % v.len()])
}

fuzz_target!(|input: Input| {
    let c = &input.config;
    let mut cfg = RouterConfig::new("gw");
    cfg.connection.heartbeat = Duration::from_millis(u64::from(c.heartbeat_ms % 5000));
    cfg.connection.max_frame = 512 + u32::from(c.max_frame % 8192);
    cfg.default_deadline = Duration::from_millis(u64::from(c.default_deadline_ms));
    cfg.rate_limit = c.rate.map(|(per, burst)| RateLimit {
        per_second: f64::from(per % 10),
        burst: u32::from(burst % 5),
    });
    // A small result cache in two runs of three, so that expiry and eviction happen.
    cfg.cache = (c.heartbeat_ms % 3 != 0).then(|| CacheConfig {
        ttl: Duration::from_millis(u64::from(c.default_deadline_ms % 2000)),
        max_entries: usize::from(c.max_frame % 4),
        max_bytes: 2048,
    });
    // Held results small enough to be evicted, by count and by bytes.
    cfg.held = HeldConfig {
        ttl: Duration::from_millis(u64::from(c.default_deadline_ms % 4000)),
        max_bytes: 4096,
        max_per_holder: 2,
        max_local: 2,
    };
    cfg.max_handshakes = usize::from(c.max_connections & 7);
    cfg.max_nodes = usize::from((c.max_connections >> 3) & 3);
    cfg.max_controllers = usize::from((c.max_connections >> 5) & 3);
    let limits = (cfg.max_nodes, cfg.max_controllers, cfg.max_handshakes);
    if c.tokens {
        cfg.tokens = vec![
            TokenSpec {
                token: TOKENS[0].into(),
                node: true,
                controller: false,
                acl: Default::default(),
            },
            TokenSpec {
                token: TOKENS[1].into(),
                node: false,
                controller: true,
                acl: toolwire_core::router::Acl {
                    allow: vec!["t*".into()],
                    deny: vec!["n0/t1".into()],
                },
            },
        ];
    }
    let mut h = Harness {
        router: Router::new(cfg, FuzzSchemas),
        now: Instant(1_000),
        conns: vec![],
        peers: BTreeMap::new(),
        locals: BTreeMap::new(),
        keys: vec![],
        asks: vec![],
        ambiguous: false,
        buf: vec![0; 1 << 16],
    };
    for a in input.actions.iter().take(256) {
        h.act(a);
        h.drain();
        // Each role stays within its own limit, and so do handshakes.
        let r = &h.router;
        assert!(r.nodes().count() <= limits.0, "more nodes than allowed");
        assert!(r.controllers() <= limits.1, "more controllers than allowed");
        assert!(r.handshakes() <= limits.2, "more handshakes than allowed");
        assert!(r.held_results().1 <= 4096, "held results over their bytes");
    }
    // Close everything, pass every deadline: every call is over.
    for c in h.conns.clone() {
        h.router.close(c, h.now);
        h.drain();
    }
    assert_eq!(h.router.connections(), 0);
    assert_eq!(h.router.handshakes(), 0);
    assert_eq!(h.router.controllers(), 0);
    let late = h.now + Duration::from_secs(3600);
    h.timeout(late);
    h.drain();
    assert_eq!(h.router.in_flight(), 0, "calls left in flight");
    assert_eq!(h.router.poll_timeout(), None);
    // The controllers' held results went with them; the local ones expire.
    let _ = h.router.read_result(late, "r0", 0, None, None);
    assert_eq!(h.router.held_results(), (0, 0), "held results left");
    for (key, l) in &h.locals {
        assert_eq!(
            l.done,
            usize::from(!l.cancelled),
            "local call {key:?}: cancelled {}",
            l.cancelled
        );
    }
});
