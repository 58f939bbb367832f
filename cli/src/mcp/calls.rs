//! `tools/call`: the node and tool behind an MCP name, the call with its progress forwarded,
//! and its outcome as a result (failures too, as `isError`). Cancelling is dropping: the
//! session drops a request's task on `notifications/cancelled`, which drops the gateway call
//! and so cancels it on the node.

use serde_json::{Value, json};
use smol::channel::bounded;
use toolwire_smol::client::ClientCallOptions;
use toolwire_smol::gateway::{CallError, Progress};

use super::Bridge;
use super::list::Catalog;
use super::protocol::{RpcError, Version, notification};

impl Bridge {
    /// The node and tool behind an MCP name: from the last listing, or a fresh one (a client
    /// may call a tool it learned of in an earlier session).
    async fn lookup(&self, name: &str) -> Result<(String, String), RpcError> {
        let hit = |c: &Catalog| {
            c.find(name)
                .map(|t| (t.summary.node.clone(), t.summary.name.clone()))
        };
        if let Some(found) = self.latest().as_deref().and_then(hit) {
            return Ok(found);
        }
        hit(&*self.refresh().await?)
            .ok_or_else(|| RpcError::params(format!("Unknown tool: {name}")))
    }

    pub(super) async fn call_tool(&self, params: &Value) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("`name` must be a string"))?;
        let args = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => return Err(RpcError::params("`arguments` must be an object")),
        };
        let token = params
            .pointer("/_meta/progressToken")
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
            .cloned();
        let (node, tool) = self.lookup(name).await?;
        let version = self.version();
        let (ptx, prx) = match token {
            Some(_) => {
                let (tx, rx) = bounded::<Progress>(64);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let opts = ClientCallOptions {
            timeout: self.opts.call_timeout,
            progress: ptx,
            asks: None,
        };
        let call = self.client.call(&node, &tool, &args, opts);
        // Ends when the call does (the client drops the progress sender with it), so every
        // progress notification goes out before the result.
        let forward = async {
            let (Some(rx), Some(token)) = (prx, token) else {
                return;
            };
            let mut last = None;
            while let Ok(p) = rx.recv().await {
                // MCP: progress must increase with each notification.
                if last.is_some_and(|l| p.progress <= l) {
                    continue;
                }
                last = Some(p.progress);
                self.send(progress_notification(&token, &p, version)).await;
            }
        };
        let (result, ()) = smol::future::zip(call, forward).await;
        if let Err(e) = &result {
            tracing::debug!("mcp: {name}: {e}");
        }
        Ok(tool_result(result, version))
    }
}

/// A `tools/call` result: a tool's value, or any failure as `isError: true`.
fn tool_result(result: Result<Value, CallError>, version: Version) -> Value {
    match result {
        Ok(value) => {
            let mut r = json!({"content": [{"type": "text", "text": value.to_string()}]});
            if version.has_structured() && value.is_object() {
                r["structuredContent"] = value;
            }
            r
        }
        Err(e) => {
            let mut text = e.to_string();
            if let Some(d) = &e.data {
                text.push_str(&format!(" {d}"));
            }
            json!({"content": [{"type": "text", "text": text}], "isError": true})
        }
    }
}

fn progress_notification(token: &Value, p: &Progress, version: Version) -> Value {
    let mut params = json!({"progressToken": token, "progress": p.progress});
    if let Some(t) = p.total {
        params["total"] = json!(t);
    }
    if let (Some(m), true) = (&p.message, version.has_annotations()) {
        params["message"] = json!(m);
    }
    notification("notifications/progress", Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_failures() {
        let r = tool_result(Ok(json!({"a": 1})), Version::LATEST);
        assert_eq!(r["content"][0]["text"], r#"{"a":1}"#);
        assert_eq!(r["structuredContent"], json!({"a": 1}));
        assert!(r.get("isError").is_none());
        let r = tool_result(Ok(json!([1])), Version::LATEST);
        assert!(r.get("structuredContent").is_none());
        let r = tool_result(Ok(json!({"a": 1})), Version::V2025_03_26);
        assert!(r.get("structuredContent").is_none());
        let mut e = CallError::new(toolwire_core::ErrorCode::InvalidArguments, "bad");
        e.data = Some(json!({"path": "/n"}));
        let r = tool_result(Err(e), Version::LATEST);
        assert_eq!(r["isError"], true);
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("-32002") && text.contains("/n"), "{text}");
    }
}
