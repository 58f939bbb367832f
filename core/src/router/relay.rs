//! What the router does with each connection's events: handshakes, registrations, calls and
//! their results, progress, asks and cancels, relayed between nodes, controllers and the
//! local API.

use super::held::{self, Holder};
use super::*;
use crate::frame::{Budgeted, CallWith, Held, ReadResult, ResultPage};

impl<S: Schemas> Router<S> {
    /// Acts on one event of connection `conn`'s state machine. `compiled` holds the schemas
    /// compiled while a `register` frame was checked.
    pub(super) fn on_conn_event(
        &mut self,
        conn: ConnId,
        ev: gateway::Event<'_>,
        compiled: &mut Vec<(String, S::Compiled)>,
    ) {
        use gateway::Event as E;
        let idx = conn.index;
        match ev {
            E::Hello { role, id, token } => self.on_hello(conn, role, id, token),
            E::Registered { tools, accepted } => {
                let Some(node) = self.node_name(conn) else {
                    return;
                };
                let Some(rec) = self.nodes.get_mut(&node) else {
                    return;
                };
                for (i, t) in tools.iter().enumerate() {
                    if !accepted.contains(i) {
                        continue;
                    }
                    let name = t.name.raw();
                    let Some(pos) = compiled.iter().position(|(n, _)| n == name) else {
                        continue;
                    };
                    let (name, k) = compiled.swap_remove(pos);
                    self.tool_index
                        .entry(name.clone())
                        .or_default()
                        .insert(node.clone());
                    rec.tools.insert(
                        name,
                        Box::new(ToolRec {
                            description: t.description.to_string(),
                            input_schema: t.input_schema.as_str().to_owned(),
                            output_schema: t.output_schema.map(|o| o.as_str().to_owned()),
                            annotations: t.annotations,
                            compiled: k,
                        }),
                    );
                }
                self.tools_changed(node);
            }
            E::Unregistered { names } => {
                let Some(node) = self.node_name(conn) else {
                    return;
                };
                let Some(rec) = self.nodes.get_mut(&node) else {
                    return;
                };
                // As written, as the connection matches them (`Str::eq_name`): a name spelled
                // with escapes withdraws nothing, from either table.
                for n in names.iter() {
                    if let Some(name) = n.as_plain()
                        && rec.tools.remove(name).is_some()
                    {
                        unindex(&mut self.tool_index, name, &node);
                    }
                }
                self.tools_changed(node);
            }
            E::CallDone { call, result } => self.complete(idx, call, result),
            E::Progress {
                call,
                progress,
                total,
                message,
                partial,
            } => self.relay_progress(idx, call, progress, total, message, partial),
            E::Log {
                call,
                level,
                message,
                data,
            } => self.relay_log(idx, call, level, message, data),
            E::Ask {
                ask,
                call,
                kind,
                prompt,
                schema,
            } => self.relay_ask(conn, ask, call, kind, prompt, schema),
            E::Request { id, request } => self.on_controller_request(conn, id, request),
            E::CancelRequest { id } => {
                if let Some(&key) = self.by_request.get(&(idx, ReqKey::of(&id))) {
                    self.cancel_call(key);
                }
            }
            E::Response { id, result } => self.on_ask_answer(conn, id, result),
            E::Closed(why) => {
                if why == gateway::CloseReason::Timeout && self.role(conn).is_some() {
                    self.stats.heartbeat_drops += 1;
                }
                self.on_closed(conn)
            }
        }
    }

    fn node_name(&self, conn: ConnId) -> Option<String> {
        self.node_of(conn).map(ToOwned::to_owned)
    }

    fn on_hello(&mut self, conn: ConnId, role: Role, id: Str<'_>, token: Option<Str<'_>>) {
        let idx = conn.index;
        let principal = if self.config.tokens.is_empty() {
            Some(None)
        } else {
            token
                .and_then(|t| t.as_plain())
                .and_then(|t| {
                    self.config
                        .tokens
                        .iter()
                        .position(|s| ct_eq(s.token.as_bytes(), t.as_bytes()))
                })
                .filter(|&i| {
                    let s = &self.config.tokens[i];
                    match role {
                        Role::Node => s.node,
                        Role::Controller => s.controller,
                    }
                })
                .map(Some)
        };
        // Each role has its own limit, so that a flood of one cannot lock the other out. A node
        // whose id is connected takes over that place rather than a new one.
        let full = match role {
            Role::Node => (self.nodes.len() >= self.config.max_nodes
                && !self.nodes.contains_key(id.raw()))
            .then(|| plural(self.nodes.len(), "node")),
            Role::Controller => (self.controllers.len() >= self.config.max_controllers)
                .then(|| plural(self.controllers.len(), "controller")),
        };
        let Router {
            entries, scratch, ..
        } = self;
        let Some(slot) = entries[idx as usize].slot.as_mut() else {
            return;
        };
        let Some(principal) = principal else {
            let r = slot
                .conn
                .refuse(ErrorCode::Unauthorized, "missing or wrong token", scratch);
            let _ = self.send_result(idx, r);
            return;
        };
        if let Some(who) = full {
            self.stats.refused_full += 1;
            let msg = format!("gateway full: {who} connected");
            let r = slot.conn.refuse(ErrorCode::Busy, &msg, scratch);
            let _ = self.send_result(idx, r);
            return;
        }
        let r = slot.conn.accept(self.now, scratch);
        if self.send_result(idx, r).is_err() {
            return;
        }
        if let Some(slot) = self.entries[idx as usize].slot.as_mut()
            && core::mem::take(&mut slot.handshaking)
        {
            self.handshaking -= 1;
        }
        match role {
            Role::Controller => {
                if let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                    slot.peer = Peer::Controller {
                        principal,
                        scope: None,
                        rules: Vec::new(),
                    };
                }
                self.controllers.insert(idx);
            }
            Role::Node => {
                let node = id.raw().to_owned();
                if let Some(slot) = self.entries[idx as usize].slot.as_mut() {
                    slot.peer = Peer::Node(node.clone());
                }
                let fresh = NodeRec {
                    conn,
                    tools: BTreeMap::new(),
                    bucket: Bucket::full(self.config.rate_limit, self.now),
                };
                if let Some(old) = self.nodes.insert(node.clone(), fresh) {
                    // The same id again: the newer connection wins, the older one is told so.
                    for name in old.tools.keys() {
                        unindex(&mut self.tool_index, name, &node);
                    }
                    if let Some(slot) = self.slot_mut(old.conn) {
                        slot.conn.shutdown(GoodbyeReason::Replaced);
                        self.mark_dirty(old.conn.index);
                    }
                    self.events
                        .push_back(Event::NodeDown { node: node.clone() });
                }
                self.events.push_back(Event::NodeUp { node: node.clone() });
                self.notify_controllers(&node);
            }
        }
    }

    fn tools_changed(&mut self, node: String) {
        self.notify_controllers(&node);
        self.events.push_back(Event::ToolsChanged { node });
    }

    /// A node came, left, or registered or withdrew tools: its cached results go (a new
    /// connection may be a new device, a new registration new code), and every controller gets
    /// `tools.changed`.
    fn notify_controllers(&mut self, node: &str) {
        if let Some(c) = &mut self.cache {
            c.drop_node(node);
        }
        let ctrls: Vec<u32> = self.controllers.iter().copied().collect();
        for idx in ctrls {
            let Router {
                entries, scratch, ..
            } = self;
            let Some(slot) = entries[idx as usize].slot.as_mut() else {
                continue;
            };
            let n = Notification::ToolsChanged(ToolsChanged {
                node: Str::new(node),
            });
            let r = slot.conn.notify(&n, scratch);
            let _ = self.send_result(idx, r);
        }
    }

    fn on_closed(&mut self, conn: ConnId) {
        let idx = conn.index;
        let Some(slot) = self.entries[idx as usize].slot.as_mut() else {
            return;
        };
        match core::mem::replace(&mut slot.peer, Peer::Unknown) {
            Peer::Unknown => {}
            Peer::Node(node) => {
                if self.nodes.get(&node).is_some_and(|r| r.conn == conn) {
                    if let Some(rec) = self.nodes.remove(&node) {
                        for name in rec.tools.keys() {
                            unindex(&mut self.tool_index, name, &node);
                        }
                    }
                    self.notify_controllers(&node);
                    self.events.push_back(Event::NodeDown { node });
                }
            }
            Peer::Controller { .. } => {
                self.controllers.remove(&idx);
                self.held.drop_holder(conn);
                // Its calls have nobody to answer: cancel them on their nodes.
                let keys: Vec<u64> = self
                    .by_request
                    .range((idx, ReqKey::Num(0))..)
                    .take_while(|((i, _), _)| *i == idx)
                    .map(|(_, &k)| k)
                    .collect();
                for key in keys {
                    self.cancel_call(key);
                }
                let asks: Vec<(u32, u64)> = self
                    .ctrl_asks
                    .range((idx, 0)..(idx + 1, 0))
                    .map(|(k, _)| *k)
                    .collect();
                for k in asks {
                    self.ctrl_asks.remove(&k);
                }
            }
        }
    }

    /// Routes a call to a node. The caller's ACL is checked by the caller of this function.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dispatch(
        &mut self,
        node: &str,
        tool: &str,
        arguments: Json<'_>,
        deadline: Option<Duration>,
        origin: Origin,
        use_cache: bool,
        budget: Option<u32>,
    ) -> Result<Dispatched, Failure> {
        let now = self.now;
        let Some(rec) = self.nodes.get_mut(node) else {
            return Err(Failure::new(
                ErrorCode::NodeNotFound,
                format!("no node `{node}` is connected"),
            ));
        };
        let Some(t) = rec.tools.get(tool) else {
            return Err(Failure::new(
                ErrorCode::ToolNotFound,
                format!("node `{node}` has no tool `{tool}`"),
            ));
        };
        // Only calls that reach the node spend the node's rate: arguments are checked first,
        // and a token taken for a call the connection refuses (busy, too large) is given back.
        if let Err(f) = self.schemas.check(&t.compiled, arguments) {
            self.stats.schema_rejections += 1;
            return Err(f);
        }
        // Only results of tools that say reading them twice is the same as once are kept.
        let cache_key = match &mut self.cache {
            Some(c) if t.annotations.read_only && t.annotations.idempotent => {
                let key = cache::ResultCache::key(node, tool, arguments.as_str());
                if use_cache && let Some(r) = c.get(&key, now) {
                    self.stats.cache_hits += 1;
                    return Ok(Dispatched::Cached(r.to_owned()));
                }
                self.stats.cache_misses += 1;
                Some(key)
            }
            _ => None,
        };
        if let Some(limit) = self.config.rate_limit
            && !rec.bucket.take(limit, now)
        {
            self.stats.rate_limited += 1;
            return Err(Failure::new(
                ErrorCode::RateLimited,
                format!("node `{node}` is over its rate limit"),
            ));
        }
        let node_conn = rec.conn;
        let deadline = deadline.unwrap_or(self.config.default_deadline);
        let Router {
            entries, scratch, ..
        } = self;
        let slot = live(entries, node_conn);
        let Some(slot) = slot else {
            return Err(Failure::new(
                ErrorCode::Disconnected,
                format!("node `{node}` disconnected"),
            ));
        };
        let (exec, n) = match slot
            .conn
            .call(now, tool, arguments, Some(deadline), scratch)
        {
            Ok(x) => x,
            Err(e) => {
                if let Some(rec) = self.nodes.get_mut(node) {
                    rec.bucket.refund();
                }
                let mut f = Failure::new(e.code(), e.to_string());
                if let gateway::SendError::FrameTooLarge { needed } = e {
                    f.data = Some(format!("{{\"needed\":{needed}}}"));
                }
                return Err(f);
            }
        };
        self.send_scratch(node_conn.index, n);
        let key = self.next_key;
        self.next_key += 1;
        self.calls.insert(
            key,
            CallRec {
                node_conn,
                exec,
                origin,
                node: node.to_owned(),
                tool: tool.to_owned(),
                started: now,
                asks: Vec::new(),
                cache_key,
                budget,
            },
        );
        self.by_exec.insert((node_conn.index, exec.0), key);
        Ok(Dispatched::Sent(key))
    }

    /// A call's node answered, or its state machine failed it (deadline, disconnect).
    fn complete(&mut self, node_idx: u32, exec: CallId, result: Result<Json<'_>, ErrorObject<'_>>) {
        let Some(key) = self.by_exec.remove(&(node_idx, exec.0)) else {
            return;
        };
        let Some(rec) = self.calls.remove(&key) else {
            return;
        };
        for open in &rec.asks {
            self.close_ask(&rec, open);
        }
        if let (Some(cache), Some(k), Ok(v)) = (&mut self.cache, rec.cache_key.clone(), &result) {
            cache.insert(k, v.as_str(), self.now);
        }
        let mut outcome = result.as_ref().map(|_| ()).map_err(|e| e.code);
        match rec.origin {
            Origin::Local => {
                let result = match (result, rec.budget) {
                    (Ok(j), Some(b)) => Ok(self.budget_local(&rec.node, &rec.tool, j.as_str(), b)),
                    (Ok(j), None) => Ok(j.as_str().to_owned()),
                    (Err(e), _) => Err(Failure::from_object(&e)),
                };
                self.events.push_back(Event::Done {
                    key: CallKey(key),
                    result,
                });
            }
            Origin::Controller { conn, ref id } => {
                self.by_request
                    .remove(&(conn.index, ReqKey::of(&id.as_id())));
                // A result that could not be delivered is the call's outcome; a failure that could
                // not be delivered keeps its own code (a timeout stays a timeout).
                let budget = rec
                    .budget
                    .map(|b| (b, rec.node.as_str(), rec.tool.as_str()));
                if let Err(code) = self.respond_controller(conn, id, result, budget)
                    && outcome.is_ok()
                {
                    outcome = Err(code);
                }
            }
        }
        self.events.push_back(Event::Finished {
            node: rec.node,
            tool: rec.tool,
            duration: self.now.saturating_since(rec.started),
            outcome,
        });
    }

    /// Answers a controller's `tools.call`. A result too large for its frame limit becomes
    /// `-32008` (returned, for the call's outcome). `budget`: the call's `max_result_bytes`, and
    /// the node and tool, for a [`Budgeted`] answer.
    fn respond_controller(
        &mut self,
        conn: ConnId,
        id: &OwnedId,
        result: Result<Json<'_>, ErrorObject<'_>>,
        budget: Option<(u32, &str, &str)>,
    ) -> Result<(), i32> {
        if live(&mut self.entries, conn).is_none() {
            return Ok(());
        }
        let handle = match (&result, budget) {
            (Ok(v), Some((b, node, tool))) if v.as_str().len() > b as usize => {
                Some(self.hold(Holder::Conn(conn), node, tool, v.as_str(), b))
            }
            _ => None,
        };
        let Router {
            entries, scratch, ..
        } = self;
        let Some(slot) = live(entries, conn) else {
            return Ok(());
        };
        let r = match (&result, budget, &handle) {
            (Ok(v), Some((b, ..)), h) => {
                let body = budgeted(v, b, h.as_deref());
                slot.conn.respond(id.as_id(), &body, scratch)
            }
            (Ok(v), None, _) => slot.conn.respond(id.as_id(), v, scratch),
            (Err(e), ..) => slot.conn.respond_error(id.as_id(), e, scratch),
        };
        match r {
            Ok(n) => {
                self.send_scratch(conn.index, n);
                Ok(())
            }
            Err(_) => {
                let e = ErrorObject::new(
                    ErrorCode::FrameTooLarge,
                    "result exceeds the caller's frame limit",
                );
                let r = slot.conn.respond_error(id.as_id(), &e, scratch);
                let _ = self.send_result(conn.index, r);
                Err(ErrorCode::FrameTooLarge.code())
            }
        }
    }

    /// Holds a result over its budget; its handle.
    fn hold(&mut self, holder: Holder, node: &str, tool: &str, v: &str, budget: u32) -> String {
        self.stats.results_held += 1;
        self.held.hold(holder, node, tool, v, budget, self.now)
    }

    /// The [`Budgeted`] answer of a local call, as JSON text.
    pub(super) fn budget_local(&mut self, node: &str, tool: &str, v: &str, budget: u32) -> String {
        let handle =
            (v.len() > budget as usize).then(|| self.hold(Holder::Local, node, tool, v, budget));
        json_text(&budgeted(
            &Json::trusted(v.as_bytes()),
            budget,
            handle.as_deref(),
        ))
    }

    /// Stops a call whose caller gave up: the node gets `cancel`, nobody gets an answer.
    pub(super) fn cancel_call(&mut self, key: u64) {
        let Some(rec) = self.calls.remove(&key) else {
            return;
        };
        self.by_exec.remove(&(rec.node_conn.index, rec.exec.0));
        if let Origin::Controller { conn, id } = &rec.origin {
            self.by_request
                .remove(&(conn.index, ReqKey::of(&id.as_id())));
        }
        for open in &rec.asks {
            self.close_ask(&rec, open);
        }
        if let Some(slot) = self.slot_mut(rec.node_conn) {
            slot.conn.cancel(rec.exec);
            self.mark_dirty(rec.node_conn.index);
        }
        self.events.push_back(Event::Finished {
            node: rec.node,
            tool: rec.tool,
            duration: self.now.saturating_since(rec.started),
            outcome: Err(ErrorCode::Cancelled.code()),
        });
    }

    /// An ask whose call ended: the node's question is declined, a forwarded one forgotten.
    fn close_ask(&mut self, rec: &CallRec, open: &OpenAsk) {
        if let (Some(rid), Origin::Controller { conn, .. }) = (open.forwarded, &rec.origin) {
            self.ctrl_asks.remove(&(conn.index, rid));
            // Frees the controller connection's request slot: unanswered asks must not use
            // them all up.
            if let Some(slot) = self.slot_mut(*conn) {
                slot.conn.forget_request(rid);
            }
        }
        let e = ErrorObject::new(ErrorCode::AskDeclined, "the call ended");
        self.answer_node(rec.node_conn, &open.ask, Err(e));
    }

    pub(super) fn answer_node(
        &mut self,
        node_conn: ConnId,
        ask: &AskId,
        answer: Result<Json<'_>, ErrorObject<'_>>,
    ) {
        let Router {
            entries, scratch, ..
        } = self;
        let Some(slot) = live(entries, node_conn) else {
            return;
        };
        if slot.conn.state() == State::Closed {
            return;
        }
        let r = slot.conn.answer(ask, answer, scratch);
        if self.send_result(node_conn.index, r).is_err() {
            // An answer too large for the node: decline instead.
            let Some(slot) = self.entries[node_conn.index as usize].slot.as_mut() else {
                return;
            };
            let e = ErrorObject::new(ErrorCode::AskDeclined, "the answer does not fit a frame");
            let r = slot.conn.answer(ask, Err(e), &mut self.scratch);
            let _ = self.send_result(node_conn.index, r);
        }
    }

    fn relay_progress(
        &mut self,
        node_idx: u32,
        exec: CallId,
        progress: u64,
        total: Option<u64>,
        message: Option<Str<'_>>,
        partial: Option<Json<'_>>,
    ) {
        let Some(&key) = self.by_exec.get(&(node_idx, exec.0)) else {
            return;
        };
        let Some(rec) = self.calls.get(&key) else {
            return;
        };
        match &rec.origin {
            Origin::Local => self.events.push_back(Event::Progress {
                key: CallKey(key),
                progress,
                total,
                message: message.map(|m| m.to_string()),
                partial: partial.map(|p| p.as_str().to_owned()),
            }),
            Origin::Controller { conn, id } => {
                let (conn, id) = (*conn, id.clone());
                let Router {
                    entries, scratch, ..
                } = self;
                let Some(slot) = entries[conn.index as usize].slot.as_mut() else {
                    return;
                };
                let frame = |partial| {
                    Notification::Progress(Progress {
                        id: id.as_id(),
                        progress,
                        total,
                        message,
                        partial,
                    })
                };
                // Partial output that does not fit the controller's frame is dropped; the
                // report itself still goes.
                let r = match slot.conn.notify(&frame(partial), scratch) {
                    Err(_) if partial.is_some() => slot.conn.notify(&frame(None), scratch),
                    r => r,
                };
                if self.send_result(conn.index, r).is_err() {
                    self.stats.dropped_progress += 1;
                }
            }
        }
    }

    /// A node's log line: to the controller whose call it is about, as `log` with its request
    /// id; otherwise (a local call, the node itself, a controller whose frame it does not fit)
    /// an [`Event::Log`].
    fn relay_log(
        &mut self,
        node_idx: u32,
        exec: Option<CallId>,
        level: crate::frame::LogLevel,
        message: Str<'_>,
        data: Option<Json<'_>>,
    ) {
        let key = exec.and_then(|e| self.by_exec.get(&(node_idx, e.0)).copied());
        let origin = key
            .and_then(|k| self.calls.get(&k))
            .map(|r| match &r.origin {
                Origin::Controller { conn, id } => Some((*conn, id.clone())),
                Origin::Local => None,
            });
        let local = matches!(origin, Some(None));
        if let Some(Some((conn, id))) = origin {
            let Router {
                entries, scratch, ..
            } = self;
            if let Some(slot) = live(entries, conn) {
                let frame = Notification::Log(crate::frame::Log {
                    id: Some(id.as_id()),
                    level,
                    message,
                    data,
                });
                let r = slot.conn.notify(&frame, scratch);
                if self.send_result(conn.index, r).is_ok() {
                    return;
                }
            }
        }
        let node = self.node_name(self.conn_id(node_idx)).unwrap_or_default();
        self.events.push_back(Event::Log {
            node,
            key: key.filter(|_| local).map(CallKey),
            level,
            message: message.to_string(),
            data: data.map(|d| d.as_str().to_owned()),
        });
    }

    fn relay_ask(
        &mut self,
        node_conn: ConnId,
        ask: AskId,
        exec: CallId,
        kind: AskKind,
        prompt: Str<'_>,
        schema: Option<Json<'_>>,
    ) {
        let decline = |this: &mut Self, ask: &AskId, why: &str| {
            let e = ErrorObject::new(ErrorCode::AskDeclined, why);
            this.answer_node(node_conn, ask, Err(e));
        };
        let Some(&key) = self.by_exec.get(&(node_conn.index, exec.0)) else {
            return decline(self, &ask, "no such call in flight");
        };
        let seq = self.next_ask;
        self.next_ask += 1;
        let Some(rec) = self.calls.get_mut(&key) else {
            return decline(self, &ask, "no such call in flight");
        };
        if rec.asks.len() >= MAX_ASKS_PER_CALL {
            return decline(self, &ask, "too many asks open on the call");
        }
        // The caller's ask rules, first match first, may decide without asking it.
        if let Origin::Controller { conn, .. } = &rec.origin
            && let Some(Peer::Controller { rules, .. }) = entries_peer(&self.entries, *conn)
        {
            let text = prompt.to_string();
            let found = rules
                .iter()
                .enumerate()
                .find(|(_, r)| r.matches(&rec.node, &rec.tool, kind, &text));
            if let Some((i, rule)) = found
                && rule.decision != Decision::Forward
            {
                let decision = rule.decision;
                // `None`: declined.
                let answer: Option<String> = match (decision, kind) {
                    (Decision::Allow, AskKind::Permission) => Some("true".into()),
                    (Decision::Allow, _) => {
                        Some(rule.answer.clone().unwrap_or_else(|| "null".into()))
                    }
                    (_, AskKind::Permission) => Some("false".into()),
                    (_, _) => None,
                };
                let event = Event::AskDecided {
                    key: CallKey(key),
                    node: rec.node.clone(),
                    tool: rec.tool.clone(),
                    kind,
                    prompt: text,
                    rule: i,
                    decision,
                };
                let answer = match &answer {
                    Some(a) => Ok(Json::trusted(a.as_bytes())),
                    None => Err(ErrorObject::new(
                        ErrorCode::AskDeclined,
                        "declined by the caller's ask rule",
                    )),
                };
                self.answer_node(node_conn, &ask, answer);
                self.events.push_back(event);
                return;
            }
        }
        let Some(rec) = self.calls.get_mut(&key) else {
            return decline(self, &ask, "no such call in flight");
        };
        match &rec.origin {
            Origin::Local => {
                rec.asks.push(OpenAsk {
                    ask,
                    seq,
                    forwarded: None,
                });
                self.events.push_back(Event::Ask {
                    ask: AskKey { call: key, seq },
                    key: CallKey(key),
                    kind,
                    prompt: prompt.to_string(),
                    schema: schema.map(|s| s.as_str().to_owned()),
                });
            }
            Origin::Controller { conn, id } => {
                let conn = *conn;
                let req = Request::Ask(Ask {
                    call: id.as_id(),
                    kind,
                    prompt,
                    schema,
                });
                let Router {
                    entries, scratch, ..
                } = self;
                let r = match entries[conn.index as usize].slot.as_mut() {
                    Some(slot) => slot.conn.request(&req, scratch),
                    None => Err(gateway::SendError::NotReady),
                };
                match r {
                    Ok((rid, n)) => {
                        self.send_scratch(conn.index, n);
                        self.ctrl_asks.insert((conn.index, rid), key);
                        if let Some(rec) = self.calls.get_mut(&key) {
                            rec.asks.push(OpenAsk {
                                ask,
                                seq,
                                forwarded: Some(rid),
                            });
                        }
                    }
                    Err(_) => decline(self, &ask, "the caller cannot be asked now"),
                }
            }
        }
    }

    /// A controller answered a forwarded ask.
    fn on_ask_answer(
        &mut self,
        conn: ConnId,
        rid: u64,
        result: Result<crate::Payload<'_>, ErrorObject<'_>>,
    ) {
        let Some(key) = self.ctrl_asks.remove(&(conn.index, rid)) else {
            self.stats.late_answers += 1;
            return;
        };
        let Some(rec) = self.calls.get_mut(&key) else {
            self.stats.late_answers += 1;
            return;
        };
        let Some(at) = rec.asks.iter().position(|a| a.forwarded == Some(rid)) else {
            return;
        };
        let open = rec.asks.swap_remove(at);
        let node_conn = rec.node_conn;
        let limits = self.config.connection.limits;
        match result {
            Ok(p) => match p.decode::<Json<'_>>(&limits) {
                Ok(v) => self.answer_node(node_conn, &open.ask, Ok(v)),
                Err(_) => {
                    let e = ErrorObject::new(ErrorCode::AskDeclined, "unreadable answer");
                    self.answer_node(node_conn, &open.ask, Err(e))
                }
            },
            Err(e) => self.answer_node(node_conn, &open.ask, Err(e)),
        }
    }

    fn on_controller_request(&mut self, conn: ConnId, id: Id<'_>, request: Request<'_>) {
        match request {
            Request::ListNodes(q) => self.list_nodes(conn, id, q),
            Request::ListTools(q) => self.list_tools(conn, id, q),
            Request::Resolve(r) => {
                let scope = self.scope(conn);
                let nodes: Vec<Str<'_>> = match r.tool.as_plain() {
                    Some(t) => self
                        .tool_index
                        .get(t)
                        .into_iter()
                        .flatten()
                        .filter(|n| scope.is_none_or(|s| s.permits(n, t)))
                        .map(|n| Str::new(n))
                        .collect(),
                    None => Vec::new(),
                };
                let body = Resolved {
                    nodes: List::from_slice(&nodes),
                };
                let Router {
                    entries, scratch, ..
                } = self;
                if let Some(slot) = entries[conn.index as usize].slot.as_mut() {
                    let r = slot.conn.respond(id, &body, scratch);
                    if self.send_result(conn.index, r).is_err() {
                        self.too_large(conn, id);
                    }
                }
            }
            Request::Call(c) => {
                if let Err(f) = self.controller_call(conn, id, c.into()) {
                    self.respond_error(conn, id, &f);
                }
            }
            Request::CallWith(c) => {
                if let Err(f) = self.controller_call(conn, id, c) {
                    self.respond_error(conn, id, &f);
                }
            }
            Request::ReadResult(q) => self.controller_read(conn, id, q),
            Request::SetRules(q) => {
                let mut rules = Vec::new();
                let mut refused = None;
                for r in q.rules.iter() {
                    if rules.len() == MAX_RULES {
                        refused = Some(Failure::new(
                            ErrorCode::InvalidParams,
                            format!("a connection has at most {MAX_RULES} ask rules"),
                        ));
                        break;
                    }
                    match AskRule::from_wire(&r) {
                        Ok(rule) => rules.push(rule),
                        Err(f) => {
                            refused = Some(f);
                            break;
                        }
                    }
                }
                if let Some(f) = refused {
                    return self.respond_error(conn, id, &f);
                }
                if let Some(Peer::Controller { rules: mine, .. }) =
                    self.slot_mut(conn).map(|s| &mut s.peer)
                {
                    *mine = rules;
                }
                self.respond_empty(conn, id);
            }
            Request::ListRules(_) => {
                let Router {
                    entries, scratch, ..
                } = self;
                let Some(slot) = entries[conn.index as usize].slot.as_mut() else {
                    return;
                };
                let wire: Vec<crate::frame::Rule<'_>> = match &slot.peer {
                    Peer::Controller { rules, .. } => rules.iter().map(AskRule::to_wire).collect(),
                    _ => Vec::new(),
                };
                let body = RulesList {
                    rules: List::from_slice(&wire),
                };
                let r = slot.conn.respond(id, &body, scratch);
                drop(wire);
                if self.send_result(conn.index, r).is_err() {
                    self.too_large(conn, id);
                }
            }
            // The codec refused patterns spelled with escapes (names match as written).
            Request::Scope(q) => match Acl::tool_set(q.tools.iter().map(|p| p.raw())) {
                Ok(acl) => {
                    if let Some(Peer::Controller { scope, .. }) =
                        self.slot_mut(conn).map(|s| &mut s.peer)
                    {
                        *scope = acl.map(Box::new);
                    }
                    self.respond_empty(conn, id);
                }
                Err(f) => self.respond_error(conn, id, &f),
            },
            _ => {}
        }
    }

    /// The active tool set of controller `conn`, if it narrowed its view.
    pub(super) fn scope(&self, conn: ConnId) -> Option<&Acl> {
        match self.slot(conn).map(|s| &s.peer) {
            Some(Peer::Controller { scope, .. }) => scope.as_deref(),
            _ => None,
        }
    }

    fn controller_call(
        &mut self,
        conn: ConnId,
        id: Id<'_>,
        c: CallWith<'_>,
    ) -> Result<(), Failure> {
        let Some(owned) = OwnedId::from_id(&id) else {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                "a string id of a tools.call may have at most 64 bytes",
            ));
        };
        let req_key = ReqKey::of(&id);
        if self.by_request.contains_key(&(conn.index, req_key.clone())) {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                "a call with this id is already in flight",
            ));
        }
        // Names are matched as written: one spelled with escapes matches nothing.
        let (Some(node), Some(tool)) = (c.node.as_plain(), c.tool.as_plain()) else {
            return Err(Failure::new(
                ErrorCode::NodeNotFound,
                "node and tool names are matched as written, without escapes",
            ));
        };
        let (principal, scope) = match self.slot(conn).map(|s| &s.peer) {
            Some(Peer::Controller {
                principal, scope, ..
            }) => (*principal, scope.as_deref()),
            _ => (None, None),
        };
        if let Some(i) = principal
            && !self.config.tokens[i].acl.permits(node, tool)
        {
            return Err(not_permitted(node, tool));
        }
        if scope.is_some_and(|s| !s.permits(node, tool)) {
            return Err(Failure::new(
                ErrorCode::Unauthorized,
                format!("{node}/{tool} is outside this connection's tool set (tools.scope)"),
            ));
        }
        check_budget(c.max_result_bytes)?;
        let deadline = c.deadline_ms.map(|ms| Duration::from_millis(u64::from(ms)));
        let origin = Origin::Controller { conn, id: owned };
        let use_cache = c.cache != Some(false);
        let budget = c.max_result_bytes;
        match self.dispatch(node, tool, c.arguments, deadline, origin, use_cache, budget)? {
            Dispatched::Sent(key) => {
                self.by_request.insert((conn.index, req_key), key);
            }
            Dispatched::Cached(result) => {
                let Some(id) = OwnedId::from_id(&id) else {
                    return Ok(());
                };
                let budget = budget.map(|b| (b, node, tool));
                let _ = self.respond_controller(
                    conn,
                    &id,
                    Ok(Json::trusted(result.as_bytes())),
                    budget,
                );
            }
        }
        Ok(())
    }

    /// `results.read`: a page of a result this connection holds.
    fn controller_read(&mut self, conn: ConnId, id: Id<'_>, q: ReadResult<'_>) {
        let now = self.now;
        let Router {
            entries,
            scratch,
            held,
            ..
        } = self;
        let Some(slot) = live(entries, conn) else {
            return;
        };
        // Handles are matched as written.
        let handle = q.handle.as_plain().unwrap_or("");
        let r = match held.read(handle, q.offset, q.length, now, |h, _, _| {
            h == Holder::Conn(conn)
        }) {
            Ok(p) => {
                let body = ResultPage {
                    page: Str::new(p.text),
                    total_bytes: p.total,
                    next_offset: p.next,
                };
                slot.conn.respond(id, &body, scratch)
            }
            Err(f) => slot.conn.respond_error(id, &f.as_object(), scratch),
        };
        if self.send_result(conn.index, r).is_err() {
            self.too_large(conn, id);
        }
    }

    /// Answers `{}` (in postcard, nothing after the id).
    fn respond_empty(&mut self, conn: ConnId, id: Id<'_>) {
        let Router {
            entries, scratch, ..
        } = self;
        if let Some(slot) = entries[conn.index as usize].slot.as_mut() {
            let r = slot.conn.respond(id, &(), scratch);
            let _ = self.send_result(conn.index, r);
        }
    }

    pub(super) fn respond_error(&mut self, conn: ConnId, id: Id<'_>, f: &Failure) {
        let Router {
            entries, scratch, ..
        } = self;
        if let Some(slot) = entries[conn.index as usize].slot.as_mut() {
            let r = slot.conn.respond_error(id, &f.as_object(), scratch);
            let _ = self.send_result(conn.index, r);
        }
    }
}

/// The peer of a current connection.
fn entries_peer(entries: &[Entry], conn: ConnId) -> Option<&Peer> {
    entries
        .get(conn.index as usize)
        .filter(|e| e.generation == conn.generation)
        .and_then(|e| e.slot.as_ref())
        .map(|s| &s.peer)
}

/// "1 node", "2 nodes".
fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

pub(super) fn not_permitted(node: &str, tool: &str) -> Failure {
    Failure::new(
        ErrorCode::Unauthorized,
        format!("this token may not call {node}/{tool}"),
    )
}

fn unindex(index: &mut BTreeMap<String, BTreeSet<String>>, tool: &str, node: &str) {
    if let Some(nodes) = index.get_mut(tool) {
        nodes.remove(node);
        if nodes.is_empty() {
            index.remove(tool);
        }
    }
}

/// The smallest result budget: a page must hold something.
pub(super) const MIN_BUDGET: u32 = 16;

/// Refuses a result budget too small to page by.
pub(super) fn check_budget(budget: Option<u32>) -> Result<(), Failure> {
    match budget {
        Some(b) if b < MIN_BUDGET => Err(Failure::new(
            ErrorCode::InvalidParams,
            format!("max_result_bytes must be at least {MIN_BUDGET}"),
        )),
        _ => Ok(()),
    }
}

/// The answer of a call with result budget `budget`: the value itself within it, otherwise its
/// first page and the handle it is held under.
fn budgeted<'v>(v: &Json<'v>, budget: u32, handle: Option<&'v str>) -> Budgeted<'v> {
    match handle {
        None => Budgeted {
            value: Some(*v),
            held: None,
        },
        Some(handle) => {
            let text = v.as_str();
            let end = held::page_end(text, 0, budget as usize);
            Budgeted {
                value: None,
                held: Some(Held {
                    handle: Str::new(handle),
                    total_bytes: text.len() as u32,
                    page: Str::new(&text[..end]),
                    next_offset: end as u32,
                }),
            }
        }
    }
}

/// A frame type's JSON text.
fn json_text<'v, W: crate::wire::Wire<'v>>(v: &W) -> String {
    let mut probe = crate::json::Writer::new(&mut []);
    v.write_json(&mut probe);
    let mut buf = alloc::vec![0u8; probe.written()];
    let mut w = crate::json::Writer::new(&mut buf);
    v.write_json(&mut w);
    // The writer writes UTF-8 (strings as they were, escapes in ASCII).
    String::from_utf8(buf).unwrap_or_default()
}
