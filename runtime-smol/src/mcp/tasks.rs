//! The experimental tasks of revision 2025-11-25, in a session (stdio, or `/mcp` with
//! `Mcp-Session-Id`): a `tools/call` with a `task` member is answered at once with a task,
//! and the call runs on; `tasks/get` tells its status, `tasks/result` waits for its end and
//! answers with the call's result, `tasks/list` lists the session's tasks and `tasks/cancel`
//! cancels one.
//!
//! - Every tool is listed with `execution.taskSupport`: its input schema's
//!   `x-mcp-task-support` (`required`, `forbidden`) or `optional`. A task-augmented call of a
//!   `forbidden` tool, or a plain call of a `required` one, is `-32602`.
//! - A task's asks go to the client on the session's stream as without a task (the status
//!   shows `input_required` meanwhile); its progress too, if the call had a `progressToken`.
//! - A task is kept for its `ttl` (the one asked for, at most [`MAX_TTL`]; that by default)
//!   from its creation, then dropped, its call cancelled if it still runs; a session keeps at
//!   most [`MAX_TASKS`] (the oldest goes). Its tasks end with the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use event_listener::Event;
use serde_json::{Value, json};
use smol::Task;

use super::protocol::{INVALID_PARAMS, RpcError};
use super::{Bridge, Ctx};

/// The longest a task is kept, and how long when the client does not say.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// Tasks a session keeps at most.
pub const MAX_TASKS: usize = 256;
/// The polling interval suggested to clients.
const POLL_MS: u64 = 500;

/// The tasks of one session.
#[derive(Default)]
pub(super) struct SessionTasks {
    map: Mutex<HashMap<String, Arc<SessionTask>>>,
    next: std::sync::atomic::AtomicU64,
}

pub(super) struct SessionTask {
    id: String,
    created: SystemTime,
    ttl: Duration,
    expires: Instant,
    state: Mutex<TaskState>,
    ended: Event,
    /// Runs the call; dropping it cancels the call.
    driver: Mutex<Option<Task<()>>>,
}

struct TaskState {
    status: &'static str,
    updated: SystemTime,
    /// Once ended: the call's result, or the error that ended it.
    outcome: Option<Result<Value, RpcError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `time` as RFC 3339 in UTC, to the millisecond.
pub(super) fn rfc3339(time: SystemTime) -> String {
    let d = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A tool's task support, from its input schema (`x-mcp-task-support`): `optional` unless it
/// says `required` or `forbidden`.
pub(super) fn task_support(schema: &Value) -> &'static str {
    match schema.get("x-mcp-task-support").and_then(Value::as_str) {
        Some("required") => "required",
        Some("forbidden") => "forbidden",
        _ => "optional",
    }
}

impl SessionTask {
    fn terminal(status: &str) -> bool {
        matches!(status, "completed" | "failed" | "cancelled")
    }

    /// The task as MCP's `Task`.
    fn json(&self) -> Value {
        let s = lock(&self.state);
        let mut t = json!({"taskId": self.id, "status": s.status,
            "createdAt": rfc3339(self.created), "lastUpdatedAt": rfc3339(s.updated),
            "ttl": u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)});
        if !Self::terminal(s.status) {
            t["pollInterval"] = json!(POLL_MS);
        }
        if let Some(Err(e)) = &s.outcome {
            t["statusMessage"] = json!(e.message());
        }
        t
    }

    fn set(&self, status: &'static str) {
        let mut s = lock(&self.state);
        if !Self::terminal(s.status) {
            s.status = status;
            s.updated = SystemTime::now();
        }
    }

    fn end(&self, outcome: Result<Value, RpcError>) {
        let mut s = lock(&self.state);
        if Self::terminal(s.status) {
            return;
        }
        s.status = match &outcome {
            Ok(_) => "completed",
            Err(_) => "failed",
        };
        s.updated = SystemTime::now();
        s.outcome = Some(outcome);
        drop(s);
        self.ended.notify(usize::MAX);
    }
}

impl Bridge {
    fn task(&self, params: &Value) -> Result<Arc<SessionTask>, RpcError> {
        let id = params
            .get("taskId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("`taskId` must be a string"))?;
        let mut map = lock(&self.tasks.map);
        purge(&mut map);
        map.get(id)
            .cloned()
            .ok_or_else(|| RpcError::params(format!("no task {id} in this session")))
    }

    /// A task-augmented `tools/call`: the call runs on as a task; the `CreateTaskResult`.
    pub(super) async fn call_as_task(self: &Arc<Self>, params: &Value) -> Result<Value, RpcError> {
        let ttl = params
            .pointer("/task/ttl")
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .unwrap_or(MAX_TTL)
            .min(MAX_TTL);
        let n = self
            .tasks
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = SystemTime::now();
        let task = Arc::new(SessionTask {
            id: format!("task-{}", n + 1),
            created: now,
            ttl,
            expires: Instant::now() + ttl,
            state: Mutex::new(TaskState {
                status: "working",
                updated: now,
                outcome: None,
            }),
            ended: Event::new(),
            driver: Mutex::new(None),
        });
        // The task outlives the request: its messages go to the session's own stream.
        let (bridge, t, out, mut params) =
            (self.clone(), task.clone(), self.out.clone(), params.clone());
        if let Some(o) = params.as_object_mut() {
            o.remove("task");
        }
        let ctx = Ctx {
            tracked: Some(task.clone()),
            ..self.ctx()
        };
        let driver = smol::spawn(async move {
            let r = bridge.call_tool(&ctx, &params, &out).await;
            t.end(r);
        });
        *lock(&task.driver) = Some(driver);
        {
            let mut map = lock(&self.tasks.map);
            purge(&mut map);
            while map.len() >= MAX_TASKS {
                let Some(k) = map.values().min_by_key(|t| t.created).map(|t| t.id.clone()) else {
                    break;
                };
                if let Some(t) = map.remove(&k) {
                    drop(lock(&t.driver).take());
                }
            }
            map.insert(task.id.clone(), task.clone());
        }
        Ok(json!({"task": task.json()}))
    }

    /// `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel`.
    pub(super) async fn task_request(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<Value, RpcError> {
        match method {
            "tasks/get" => Ok(self.task(params)?.json()),
            "tasks/result" => {
                let task = self.task(params)?;
                loop {
                    let listener = task.ended.listen();
                    let ended = {
                        let s = lock(&task.state);
                        match (&s.outcome, s.status) {
                            (Some(o), _) => Some(o.clone()),
                            (None, "cancelled") => Some(Err(RpcError::new(
                                INVALID_PARAMS,
                                format!("task {} was cancelled", task.id),
                            ))),
                            _ => None,
                        }
                    };
                    match ended {
                        Some(Ok(mut v)) => {
                            v["_meta"]["io.modelcontextprotocol/related-task"] =
                                json!({"taskId": task.id});
                            return Ok(v);
                        }
                        Some(Err(e)) => return Err(e),
                        None => listener.await,
                    }
                }
            }
            "tasks/list" => {
                let mut map = lock(&self.tasks.map);
                purge(&mut map);
                let mut tasks: Vec<&Arc<SessionTask>> = map.values().collect();
                tasks.sort_by_key(|t| t.created);
                let tasks: Vec<Value> = tasks.iter().map(|t| t.json()).collect();
                Ok(json!({ "tasks": tasks }))
            }
            _ => {
                let task = self.task(params)?;
                let status = lock(&task.state).status;
                if SessionTask::terminal(status) {
                    return Err(RpcError::params(format!(
                        "task {} has ended ({status}): nothing to cancel",
                        task.id
                    )));
                }
                drop(lock(&task.driver).take());
                {
                    let mut s = lock(&task.state);
                    s.status = "cancelled";
                    s.updated = SystemTime::now();
                }
                task.ended.notify(usize::MAX);
                Ok(task.json())
            }
        }
    }
}

/// While a task's call asks, its status is `input_required`.
pub(super) struct Asking<'a>(pub(super) Option<&'a Arc<SessionTask>>);

impl<'a> Asking<'a> {
    pub(super) fn start(task: Option<&'a Arc<SessionTask>>) -> Self {
        if let Some(t) = task {
            t.set("input_required");
        }
        Asking(task)
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            t.set("working");
        }
    }
}

/// Drops the tasks past their time (cancelling a call still running).
fn purge(map: &mut HashMap<String, Arc<SessionTask>>) {
    let now = Instant::now();
    map.retain(|_, t| {
        let keep = t.expires > now;
        if !keep {
            drop(lock(&t.driver).take());
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_169_600_123);
        assert_eq!(rfc3339(t), "2026-12-02T00:00:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn task_support_comes_from_the_schema() {
        assert_eq!(task_support(&json!({"type": "object"})), "optional");
        assert_eq!(
            task_support(&json!({"x-mcp-task-support": "required"})),
            "required"
        );
        assert_eq!(
            task_support(&json!({"x-mcp-task-support": "forbidden"})),
            "forbidden"
        );
        assert_eq!(task_support(&json!({"x-mcp-task-support": 3})), "optional");
    }
}
