//! The tasks extension of 2026-07-28 (`io.modelcontextprotocol/tasks`): a long `tools/call`
//! answered with a task the client polls, instead of a response it waits for.
//!
//! - **When.** A client declares the extension per request (in
//!   `_meta.clientCapabilities.extensions`). A call of such a request that is still running
//!   after [`McpHttpConfig::task_after`] (and has not asked for input) becomes a task:
//!   `{"resultType": "task", "taskId", "status": "working", …}`. A tool whose input schema
//!   says `"x-mcp-task-support": "required"` always becomes one (and is refused `-32021`
//!   without the extension); `"forbidden"` never does. Any other tool may.
//! - **`tasks/get`** tells its status (`working`, `input_required` with its `inputRequests`,
//!   `completed` with its `result`, `failed` with its `error`, `cancelled`);
//!   **`tasks/update`** carries `inputResponses` for the asks of a task waiting for input;
//!   **`tasks/cancel`** cancels the call. Each answers for the token that made the task only,
//!   and needs the extension declared (`-32021`); an unknown task is `-32602`.
//! - **Bounds.** A task is kept [`McpHttpConfig::task_ttl`] after its last change (its
//!   `ttlMs`), then dropped, its call cancelled if it still runs; at most
//!   [`McpHttpConfig::max_tasks`] at once (the one closest to its end goes for a new one).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value, json};
use smol::Task;
use smol::channel::{Receiver, Sender, bounded, unbounded};

use super::super::McpHttpConfig;
use super::super::lock;
use super::{Call, MISSING_CAPABILITY, Out, Req, Step, finish, input_requests, round, session_id};
use crate::gateway::Gateway;
use crate::mcp::protocol::{INVALID_PARAMS, RpcError};
use crate::mcp::tasks::rfc3339;
use toolwire_core::ErrorCode;

/// The extension's name.
pub(super) const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Where a tool's input schema says whether it runs as a task.
pub(super) const TASK_SUPPORT: &str = "x-mcp-task-support";

/// How a call of a request may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// As a plain call: the client did not declare the extension, or the tool forbids tasks.
    Off,
    /// As a task if it runs long.
    Optional,
    /// Always as a task.
    Required,
    /// The tool needs a task and the client did not declare the extension.
    Needed,
}

/// True if the request's capabilities declare the extension.
pub(super) fn declared(caps: &Value) -> bool {
    caps.pointer("/extensions")
        .and_then(Value::as_object)
        .is_some_and(|e| e.get(EXTENSION).is_some_and(Value::is_object))
}

/// How a call of a tool with `schema` runs for a client with `caps`.
pub(super) fn mode(caps: &Value, schema: Option<&Value>) -> Mode {
    let support = schema
        .and_then(|s| s.get(TASK_SUPPORT))
        .and_then(Value::as_str)
        .unwrap_or("optional");
    match (support, declared(caps)) {
        ("forbidden", _) => Mode::Off,
        ("required", true) => Mode::Required,
        ("required", false) => Mode::Needed,
        (_, true) => Mode::Optional,
        (_, false) => Mode::Off,
    }
}

/// `-32021` for a request that needs the extension.
pub(super) fn needs_extension(id: &Value, why: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": MISSING_CAPABILITY,
        "message": format!("{why}: declare the {EXTENSION} extension"),
        "data": {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}}})
}

/// The tasks of a gateway.
#[derive(Default)]
pub(crate) struct Tasks {
    map: Mutex<std::collections::HashMap<String, Arc<Entry>>>,
}

/// One task.
struct Entry {
    token: Option<String>,
    created: SystemTime,
    state: Mutex<State>,
    /// `inputResponses` of `tasks/update`, for the driver.
    updates: Sender<Map<String, Value>>,
    /// Runs the call; dropping it cancels the call.
    driver: Mutex<Option<Task<()>>>,
}

struct State {
    status: &'static str,
    updated: SystemTime,
    expires: Instant,
    /// While `input_required`: the input requests not answered yet, by key.
    input: Map<String, Value>,
    /// Once `completed`: the call's result; once `failed`: its error.
    outcome: Option<Value>,
}

impl State {
    fn terminal(&self) -> bool {
        matches!(self.status, "completed" | "failed" | "cancelled")
    }
}

fn set(entry: &Entry, ttl: std::time::Duration, f: impl FnOnce(&mut State)) {
    let mut s = lock(&entry.state);
    f(&mut s);
    s.updated = SystemTime::now();
    s.expires = Instant::now() + ttl;
}

/// Makes `call` a task (already ended with `done`, if given), run on by a driver of its own;
/// the `CreateTaskResult`.
pub(super) fn create(
    gw: &Gateway,
    cfg: &McpHttpConfig,
    call: Call,
    req: &Req,
    done: Option<Value>,
) -> Value {
    let id = session_id();
    let now = SystemTime::now();
    let (utx, urx) = unbounded::<Map<String, Value>>();
    let entry = Arc::new(Entry {
        token: call.token.clone(),
        created: now,
        state: Mutex::new(State {
            status: "working",
            updated: now,
            expires: Instant::now() + cfg.task_ttl,
            input: Map::new(),
            outcome: None,
        }),
        updates: utx,
        driver: Mutex::new(None),
    });
    match done {
        Some(msg) => record(&entry, cfg.task_ttl, &msg),
        None => {
            let task_req = Req {
                id: req.id.clone(),
                caps: req.caps.clone(),
                // Nobody reads a task's notifications.
                log_level: None,
                responses: Map::new(),
            };
            let driver = smol::spawn(drive(
                entry.clone(),
                call,
                task_req,
                urx,
                cfg.task_ttl,
                cfg.input_gather,
            ));
            *lock(&entry.driver) = Some(driver);
        }
    }
    {
        let mut map = lock(&gw.inner.mcp.modern.tasks.map);
        purge(&mut map);
        while map.len() >= cfg.max_tasks.max(1) {
            let Some(k) = map
                .iter()
                .min_by_key(|(_, e)| lock(&e.state).expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = map.remove(&k) {
                drop(lock(&e.driver).take());
            }
        }
        map.insert(id.clone(), entry);
    }
    let ttl = u64::try_from(cfg.task_ttl.as_millis()).unwrap_or(u64::MAX);
    let at = rfc3339(now);
    let result = json!({"resultType": "task", "taskId": id, "status": "working",
        "createdAt": at, "lastUpdatedAt": at, "ttlMs": ttl, "pollIntervalMs": 500});
    let mut msg = finish(&req.id, Ok(result), false);
    // A task's result is its own kind: `resultType` stays "task".
    msg["result"]["resultType"] = json!("task");
    msg
}

/// Drops the tasks past their time (cancelling a call still running).
fn purge(map: &mut std::collections::HashMap<String, Arc<Entry>>) {
    let now = Instant::now();
    let gone: Vec<String> = map
        .iter()
        .filter(|(_, e)| lock(&e.state).expires <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        if let Some(e) = map.remove(&k) {
            drop(lock(&e.driver).take());
        }
    }
}

/// The call's last message as the task's outcome.
fn record(entry: &Entry, ttl: std::time::Duration, msg: &Value) {
    set(entry, ttl, |s| {
        s.input.clear();
        // A failure of the gateway's (the node gone, a timeout, an internal error), not one the
        // tool reported (-32014) or its arguments (-32002): the task failed.
        let gateway_error = msg
            .pointer("/result/_meta")
            .and_then(|m| m.get(crate::mcp::calls::ERROR_META))
            .filter(|e| {
                let code = e.get("code").and_then(Value::as_i64);
                let tool = [ErrorCode::ToolFailed, ErrorCode::InvalidArguments]
                    .map(|c| i64::from(c.code()));
                code.is_some_and(|c| !tool.contains(&c))
            });
        match (msg.get("result"), msg.get("error")) {
            (Some(_), _) if gateway_error.is_some() => {
                s.status = "failed";
                s.outcome = gateway_error.cloned();
            }
            (Some(r), _) => {
                let mut r = r.clone();
                if let Some(o) = r.as_object_mut() {
                    o.remove("_meta");
                    o.insert("resultType".into(), json!("complete"));
                }
                s.status = "completed";
                s.outcome = Some(r);
            }
            (None, Some(e)) => {
                s.status = "failed";
                s.outcome = Some(e.clone());
            }
            _ => {
                s.status = "failed";
                s.outcome = Some(json!({"code": -32603, "message": "the call ended oddly"}));
            }
        }
    });
}

/// Runs a task's call to its end: its asks wait in `input_required` for `tasks/update`.
async fn drive(
    entry: Arc<Entry>,
    mut call: Call,
    mut req: Req,
    updates: Receiver<Map<String, Value>>,
    ttl: std::time::Duration,
    gather: std::time::Duration,
) {
    let (tx, _rx) = bounded::<Out>(1);
    loop {
        match round(&mut call, &mut req, &tx, false, gather).await {
            Step::Final(msg) => return record(&entry, ttl, &msg),
            Step::Ask | Step::Refused(_) => {
                // Answers that came while the round ran go in first.
                let mut queued = Map::new();
                while let Ok(m) = updates.try_recv() {
                    queued.extend(m);
                }
                if call.pending.iter().any(|p| queued.contains_key(&p.key)) {
                    req.responses = queued;
                    continue;
                }
                set(&entry, ttl, |s| {
                    s.status = "input_required";
                    s.input = input_requests(&call);
                });
                let Ok(responses) = updates.recv().await else {
                    return;
                };
                // Other keys are the client's business; ours are looked up next round.
                req.responses = responses;
            }
        }
    }
}

/// `tasks/get`, `tasks/update`, `tasks/cancel`: the response.
pub(super) fn handle(
    gw: &Gateway,
    cfg: &McpHttpConfig,
    req: &Req,
    method: &str,
    params: &Value,
    token: &Option<String>,
) -> Value {
    if !declared(&req.caps) {
        return needs_extension(&req.id, &format!("{method} is part of the tasks extension"));
    }
    let Some(task_id) = params.get("taskId").and_then(Value::as_str) else {
        return finish(
            &req.id,
            Err(RpcError::params("`taskId` must be a string")),
            false,
        );
    };
    let entry = {
        let mut map = lock(&gw.inner.mcp.modern.tasks.map);
        purge(&mut map);
        map.get(task_id).filter(|e| e.token == *token).cloned()
    };
    let Some(entry) = entry else {
        return json!({"jsonrpc": "2.0", "id": req.id, "error": {"code": INVALID_PARAMS,
            "message": format!("no task {task_id} (it ended long ago, or never was)")}});
    };
    match method {
        "tasks/get" => {
            let s = lock(&entry.state);
            let ttl = u64::try_from(cfg.task_ttl.as_millis()).unwrap_or(u64::MAX);
            let mut r = json!({"taskId": task_id, "status": s.status,
                "createdAt": rfc3339(entry.created), "lastUpdatedAt": rfc3339(s.updated),
                "ttlMs": ttl});
            if !s.terminal() {
                r["pollIntervalMs"] = json!(500);
            }
            match (s.status, &s.outcome) {
                ("input_required", _) => r["inputRequests"] = Value::Object(s.input.clone()),
                ("completed", Some(o)) => r["result"] = o.clone(),
                ("failed", Some(o)) => r["error"] = o.clone(),
                _ => {}
            }
            drop(s);
            finish(&req.id, Ok(r), false)
        }
        "tasks/update" => {
            let responses = match params.get("inputResponses") {
                Some(Value::Object(m)) => m.clone(),
                None | Some(Value::Null) => Map::new(),
                Some(_) => {
                    return finish(
                        &req.id,
                        Err(RpcError::params("`inputResponses` must be an object")),
                        false,
                    );
                }
            };
            // The answered keys leave the task's input requests at once (a `tasks/get` right
            // after sees only the rest); it is working again once none is left.
            let waiting = {
                let mut s = lock(&entry.state);
                let waiting = s.status == "input_required";
                if waiting && responses.keys().any(|k| s.input.contains_key(k)) {
                    s.input.retain(|k, _| !responses.contains_key(k));
                    if s.input.is_empty() {
                        s.status = "working";
                    }
                    // A change: the task's time to live starts again, as with `set`.
                    s.updated = SystemTime::now();
                    s.expires = Instant::now() + cfg.task_ttl;
                }
                waiting
            };
            if waiting {
                let _ = entry.updates.try_send(responses);
            }
            finish(&req.id, Ok(json!({})), false)
        }
        _ => {
            // Cancel: a task still running stops; an ended one stays as it is.
            let running = !lock(&entry.state).terminal();
            if running {
                drop(lock(&entry.driver).take());
                set(&entry, cfg.task_ttl, |s| {
                    s.status = "cancelled";
                    s.input.clear();
                });
            }
            finish(&req.id, Ok(json!({})), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_client_and_the_tool() {
        let ext = json!({"extensions": {EXTENSION: {}}});
        let none = json!({});
        let schema = |s: &str| json!({"type": "object", TASK_SUPPORT: s});
        assert_eq!(mode(&ext, None), Mode::Optional);
        assert_eq!(mode(&none, None), Mode::Off);
        assert_eq!(mode(&ext, Some(&schema("required"))), Mode::Required);
        assert_eq!(mode(&none, Some(&schema("required"))), Mode::Needed);
        assert_eq!(mode(&ext, Some(&schema("forbidden"))), Mode::Off);
        assert!(!declared(&json!({"extensions": {EXTENSION: true}})));
    }
}
