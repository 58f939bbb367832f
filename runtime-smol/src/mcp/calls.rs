//! `tools/call`: the node and tool behind an MCP name, the call with its progress forwarded,
//! and its outcome as a result (failures too, as `isError`). Cancelling is dropping: the
//! session drops a request's task on `notifications/cancelled`, which drops the gateway call
//! and so cancels it on the node.
//!
//! Under a result budget, a result the gateway holds is shown as its first page and a note,
//! and [`READ_RESULT_TOOL`] pages through the rest (the module docs of `mcp` tell how).

use crate::client::ClientCallOptions;
use crate::gateway::{AskRequest, CallError, LogLine, Progress};
use futures_util::StreamExt;
use serde_json::{Value, json};
use smol::channel::bounded;
use smol::future::FutureExt;
use toolwire_core::frame::AskKind;

use super::list::Catalog;
use super::protocol::{RpcError, Version, notification};
use super::{Bridge, Ctx, READ_RESULT_TOOL, capability_for};

/// The member of an ask's `schema` that names its input request for MCP 2026-07-28 (the key
/// in `inputRequests`); taken out of what the client sees.
pub const INPUT_KEY: &str = "x-mcp-input-key";

impl Bridge {
    /// The node and tool behind an MCP name: from the last listing, or a fresh one (a client
    /// may call a tool it learned of in an earlier session).
    async fn lookup(&self, name: &str) -> Result<(String, String, Option<Value>), RpcError> {
        let hit = |c: &Catalog| {
            c.find(name).map(|t| {
                (
                    t.summary.node.clone(),
                    t.summary.name.clone(),
                    t.summary.output_schema.clone(),
                )
            })
        };
        if let Some(found) = self.latest().as_deref().and_then(hit) {
            return Ok(found);
        }
        hit(&*self.refresh().await?)
            .ok_or_else(|| RpcError::params(format!("Unknown tool: {name}")))
    }

    /// `f` of the input schema of the tool behind an MCP name, if there is one (read in
    /// place: no copy of the schema per call).
    pub(super) async fn with_input_schema<R>(
        &self,
        name: &str,
        f: impl Fn(&Value) -> R,
    ) -> Option<R> {
        let hit = |c: &Catalog| c.find(name).map(|t| f(&t.summary.input_schema));
        if let Some(r) = self.latest().as_deref().and_then(&hit) {
            return Some(r);
        }
        self.refresh().await.ok().as_deref().and_then(hit)
    }

    pub(super) async fn call_tool(
        &self,
        ctx: &Ctx,
        params: &Value,
        out: &smol::channel::Sender<String>,
    ) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("`name` must be a string"))?;
        let args = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => return Err(RpcError::params("`arguments` must be an object")),
        };
        if self.opts.max_result_bytes.is_some() && name == READ_RESULT_TOOL {
            return Ok(self.read_result(&args, ctx.version).await);
        }
        let token = params
            .pointer("/_meta/progressToken")
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
            .cloned();
        let (node, tool, output_schema) = self.lookup(name).await?;
        let version = ctx.version;
        let (ptx, prx) = match token {
            Some(_) => {
                let (tx, rx) = bounded::<Progress>(64);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        // A node's asks become requests to the client when it takes them (elicitation,
        // sampling, roots), input requests of the result in 2026-07-28; otherwise they are
        // declined (`-32013`), as without anyone to ask.
        let (atx, arx) = bounded::<AskRequest>(4);
        let (ltx, lrx) = bounded::<LogLine>(64);
        let opts = ClientCallOptions {
            timeout: self.opts.call_timeout,
            progress: ptx,
            asks: Some(atx),
            logs: Some(ltx),
            max_result_bytes: self.opts.max_result_bytes,
            ..Default::default()
        };
        let client = self.client();
        let call = client.call(&node, &tool, &args, opts);
        let asks = async {
            // Asks open at once go to the client at once, each answered when it is.
            let mut open = futures_util::stream::FuturesUnordered::new();
            loop {
                let next = async { Some(arx.recv().await) }
                    .or(async {
                        match open.is_empty() {
                            true => std::future::pending().await,
                            false => open.next().await.and(None),
                        }
                    })
                    .await;
                let ask = match next {
                    Some(Ok(ask)) => ask,
                    Some(Err(_)) => break,
                    None => continue,
                };
                match &ctx.park {
                    Some(park) => {
                        // Dropped unanswered (declined) if nobody takes it any more.
                        let _ = park.send(ask).await;
                    }
                    None if ctx.takes(ask.kind) => {
                        open.push(self.ask_for(ask, out, ctx.tracked.as_ref()))
                    }
                    None => {
                        let cap = capability_for(ask.kind);
                        ask.decline(&format!("the MCP client does not take {cap}"));
                    }
                }
            }
            while open.next().await.is_some() {}
        };
        let call = async {
            let (r, ()) = smol::future::zip(call, asks).await;
            r
        };
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
                let msg = progress_notification(&token, &p, version).to_string();
                let _ = out.send(msg).await;
            }
            // The last progress goes out, in a write of its own, a moment before the response
            // (the TypeScript SDK drops one that arrives together with its response).
            if last.is_some() {
                smol::Timer::after(std::time::Duration::from_millis(2)).await;
            }
        };
        // The node's log lines about the call, at the session's level or above, as
        // `notifications/message` (logger: node/tool).
        let logs = async {
            while let Ok(line) = lrx.recv().await {
                if ctx.log_level.is_none_or(|l| line.level.rank() < l.rank()) {
                    continue;
                }
                let data = match line.data {
                    Some(d) => json!({"message": line.message, "data": d}),
                    None => json!(line.message),
                };
                let params = json!({"level": line.level.as_str(),
                    "logger": format!("{node}/{tool}"), "data": data});
                let msg = notification("notifications/message", Some(params)).to_string();
                let _ = out.send(msg).await;
            }
        };
        let ((result, ()), ()) = smol::future::zip(smol::future::zip(call, forward), logs).await;
        if let Err(e) = &result {
            tracing::debug!("mcp: {name}: {e}");
        }
        if self.opts.max_result_bytes.is_some() {
            return Ok(budgeted_result(result, version));
        }
        // A result that breaks the tool's declared output schema would make the client refuse
        // the whole call: it becomes a tool error that says so.
        let result = match (result, &output_schema) {
            (Ok(v), Some(schema)) if version.has_structured() && v.is_object() => {
                match breaks_schema(schema, &v) {
                    Some(why) => Err(CallError::new(
                        toolwire_core::ErrorCode::ToolFailed,
                        format!("the result of {node}/{tool} breaks its output schema: {why}"),
                    )),
                    None => Ok(v),
                }
            }
            (r, _) => r,
        };
        Ok(tool_result(result, version))
    }

    /// A node's `ask` as a request to the client ([`input_request`]), answered with its
    /// response ([`answer_ask`]); an error or no answer in time declines it.
    async fn ask_for(
        &self,
        ask: AskRequest,
        out: &smol::channel::Sender<String>,
        tracked: Option<&std::sync::Arc<super::tasks::SessionTask>>,
    ) {
        let (method, params, wrapped) = input_request(&ask, false);
        let _asking = super::tasks::Asking::start(tracked);
        let wait = self
            .opts
            .call_timeout
            .unwrap_or(super::DEFAULT_CALL_TIMEOUT);
        let r = self.ask_client(method, params, out, wait).await;
        answer_ask(ask, wrapped, r);
    }

    /// [`READ_RESULT_TOOL`]: a page of a result the gateway holds for this connection, with a
    /// note while more remains; bad arguments and the gateway's refusals are `isError`.
    async fn read_result(&self, args: &Value, version: Version) -> Value {
        let (handle, offset, length) = match read_arguments(args) {
            Ok(a) => a,
            Err(why) => return error_result(format!("{READ_RESULT_TOOL}: {why}")),
        };
        let client = self.client();
        match client.read_result(&handle, offset, length).await {
            Ok(p) => {
                let from = u64::from(offset);
                let to = from + p.page.len() as u64;
                let next = p.next_offset.map(u64::from);
                text_result(with_note(
                    p.page,
                    &handle,
                    from,
                    to,
                    next,
                    p.total_bytes.into(),
                ))
            }
            Err(e) => {
                tracing::debug!("mcp: {READ_RESULT_TOOL} {handle}@{offset}: {e}");
                tool_result(Err(e), version)
            }
        }
    }
}

/// Why `value` breaks `schema`, if it does (a schema that does not compile checks nothing: the
/// gateway refused it at registration had it been bad).
fn breaks_schema(schema: &Value, value: &Value) -> Option<String> {
    let v = jsonschema::validator_for(schema).ok()?;
    v.iter_errors(value).next().map(|e| {
        let path = e.instance_path().to_string();
        let at = if path.is_empty() { "/" } else { path.as_str() };
        format!("at {at}: {e}")
    })
}

/// The MCP request that asks the client what a node's `ask` asks: its method, params, and
/// whether an input's answer comes wrapped as the field `value`.
///
/// - A permission or an input is `elicitation/create` (form mode): a permission as a yes/no
///   field, an input as the ask's schema (an object schema as it is; any other wrapped as the
///   one field `value`).
/// - A sample is `sampling/createMessage`: the prompt as the user's message, and the ask's
///   sampling parameters (`maxTokens`, 1,000 unless given; `systemPrompt`, `temperature`,
///   `stopSequences`).
/// - Roots are `roots/list`.
///
/// `modern` (2026-07-28) says `"mode": "form"` on an elicitation. [`INPUT_KEY`] is left out.
pub(super) fn input_request(ask: &AskRequest, modern: bool) -> (&'static str, Value, bool) {
    match ask.kind {
        AskKind::Permission | AskKind::Input => {
            let (schema, wrapped) = elicitation_schema(ask);
            let mut params = json!({"message": ask.prompt, "requestedSchema": schema});
            if modern {
                params["mode"] = json!("form");
            }
            ("elicitation/create", params, wrapped)
        }
        AskKind::Sample => {
            let opts = ask.schema.as_ref().and_then(Value::as_object);
            let max_tokens = opts
                .and_then(|o| o.get("maxTokens"))
                .and_then(Value::as_u64)
                .unwrap_or(1000);
            let mut params = json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": ask.prompt}}],
                "maxTokens": max_tokens,
            });
            for key in ["systemPrompt", "temperature", "stopSequences"] {
                if let Some(v) = opts.and_then(|o| o.get(key)) {
                    params[key] = v.clone();
                }
            }
            ("sampling/createMessage", params, false)
        }
        AskKind::Roots => ("roots/list", json!({}), false),
    }
}

/// The name a node gave its ask for MCP ([`INPUT_KEY`] in its schema), if a usable one.
pub(super) fn input_key(ask: &AskRequest) -> Option<String> {
    let key = ask.schema.as_ref()?.get(INPUT_KEY)?.as_str()?;
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then(|| key.to_owned())
}

/// Whether `r` is a response of the kind `method` asks for (an ElicitResult, a
/// CreateMessageResult, a ListRootsResult): `Err` says what is wrong.
pub(super) fn check_response(method: &str, r: &Value) -> Result<(), String> {
    let obj = r.as_object().ok_or("an input response must be an object")?;
    let ok = match method {
        "elicitation/create" => obj
            .get("action")
            .and_then(Value::as_str)
            .is_some_and(|a| ["accept", "decline", "cancel"].contains(&a)),
        "sampling/createMessage" => obj.contains_key("content") && obj.contains_key("model"),
        _ => obj.get("roots").is_some_and(Value::is_array),
    };
    ok.then_some(()).ok_or_else(|| {
        let want = match method {
            "elicitation/create" => "an ElicitResult ({\"action\": \"accept\" | \"decline\" | \"cancel\", \"content\"?})",
            "sampling/createMessage" => "a CreateMessageResult ({\"role\", \"content\", \"model\"})",
            _ => "a ListRootsResult ({\"roots\": [...]})",
        };
        format!("the response to {method} must be {want}")
    })
}

/// Answers a node's `ask` with the client's response to [`input_request`] (its result, or
/// why there is none, which declines it).
///
/// - Elicitation: `accept` answers it; `decline` refuses a permission (`false`) and declines
///   an input (`-32013`); `cancel` declines it.
/// - Sampling: the model's text answers it.
/// - Roots: the list of `{uri, name?}` answers it.
pub(super) fn answer_ask(ask: AskRequest, wrapped: bool, r: Result<Value, String>) {
    let r = match r {
        Ok(r) => r,
        Err(why) => return ask.decline(&format!("the MCP client did not answer: {why}")),
    };
    match ask.kind {
        AskKind::Sample => {
            // One content block, or (2026-07-28) a list of them: the text blocks joined.
            let blocks = match r.get("content") {
                Some(Value::Array(a)) => a.clone(),
                Some(b) => vec![b.clone()],
                None => Vec::new(),
            };
            let text: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            match text.is_empty() {
                true => ask.decline("the client's model gave no text"),
                false => ask.answer(json!(text.concat())),
            }
        }
        AskKind::Roots => {
            let roots: Vec<Value> = r
                .get("roots")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|root| {
                    let uri = root.get("uri")?.as_str()?;
                    let mut v = json!({"uri": uri});
                    if let Some(n) = root.get("name").and_then(Value::as_str) {
                        v["name"] = json!(n);
                    }
                    Some(v)
                })
                .collect();
            ask.answer(json!(roots))
        }
        AskKind::Permission | AskKind::Input => {
            let permission = ask.kind == AskKind::Permission;
            let content = r.get("content").cloned().unwrap_or(Value::Null);
            match r.get("action").and_then(Value::as_str) {
                Some("accept") if permission => {
                    let yes = content
                        .get("allow")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    ask.answer(json!(yes))
                }
                Some("accept") if wrapped => {
                    ask.answer(content.get("value").cloned().unwrap_or(Value::Null))
                }
                Some("accept") => ask.answer(content),
                Some("decline") if permission => ask.answer(json!(false)),
                Some("decline") => ask.decline("the user declined"),
                _ => ask.decline("the user cancelled"),
            }
        }
    }
}

/// The `requestedSchema` for an ask, and whether the answer is wrapped as the field `value`.
fn elicitation_schema(ask: &AskRequest) -> (Value, bool) {
    if ask.kind == AskKind::Permission {
        let schema = json!({"type": "object", "properties": {"allow": {
            "type": "boolean", "title": "Allow", "description": ask.prompt}},
            "required": ["allow"]});
        return (schema, false);
    }
    let schema = ask.schema.as_ref().map(|s| {
        let mut s = s.clone();
        if let Some(o) = s.as_object_mut() {
            o.remove(INPUT_KEY);
        }
        s
    });
    match &schema {
        Some(s) if s.get("type").and_then(Value::as_str) == Some("object") => (s.clone(), false),
        Some(s) => (
            json!({"type": "object", "properties": {"value": s}, "required": ["value"]}),
            true,
        ),
        None => (
            json!({"type": "object", "properties": {"value": {"type": "string",
                "description": ask.prompt}}, "required": ["value"]}),
            true,
        ),
    }
}

/// The arguments of [`READ_RESULT_TOOL`]: `handle` (a string), `offset` (a whole number), and
/// `length` (a whole number, at least 1) if given. `Err`: what is wrong, for the model.
fn read_arguments(args: &Value) -> Result<(String, u32, Option<u32>), String> {
    let whole = |key: &str, least: u64| -> Result<Option<u32>, String> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n >= least)
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "`{key}` must be a whole number from {least} to {}",
                        u32::MAX
                    )
                }),
        }
    };
    let handle = args
        .get("handle")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or("`handle` must be the handle a truncation note gave (a string)")?;
    let offset = whole("offset", 0)?
        .ok_or("`offset` is required: the offset a truncation note gave (0 for the start)")?;
    Ok((handle.to_owned(), offset, whole("length", 1)?))
}

/// `text` (bytes `from` to `to` of a held result's `total`), with a note on a line of its own
/// telling how to read on from `next`, unless this is the last page.
fn with_note(
    mut text: String,
    handle: &str,
    from: u64,
    to: u64,
    next: Option<u64>,
    total: u64,
) -> String {
    if let Some(next) = next {
        let truncated = if from == 0 {
            "result truncated — "
        } else {
            ""
        };
        let args = json!({"handle": handle, "offset": next});
        text.push_str(&format!(
            "\n[toolwire: {truncated}bytes {from} to {to} of {total} shown. Read more with the \
             tool {READ_RESULT_TOOL} and {args}]"
        ));
    }
    text
}

/// A `tools/call` result under a result budget: the value as without one, or the held
/// result's first page with its note.
fn budgeted_result(result: Result<Value, CallError>, version: Version) -> Value {
    let envelope = match result {
        Ok(v) => v,
        Err(e) => return tool_result(Err(e), version),
    };
    if let Some(v) = envelope.get("value") {
        return tool_result(Ok(v.clone()), version);
    }
    let held = &envelope["held"];
    match (
        held["handle"].as_str(),
        held["page"].as_str(),
        held["next_offset"].as_u64(),
        held["total_bytes"].as_u64(),
    ) {
        (Some(handle), Some(page), Some(next), Some(total)) => {
            let to = page.len() as u64;
            text_result(with_note(page.to_owned(), handle, 0, to, Some(next), total))
        }
        _ => error_result(format!("unexpected answer from the gateway: {envelope}")),
    }
}

fn text_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn error_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// The content blocks of a result that follows the content convention (PROTOCOL.md section 6,
/// "Results for MCP"): an object whose one member `$content` is a list of MCP content blocks
/// (objects with a string `type`).
fn content_blocks(value: &Value) -> Option<&Vec<Value>> {
    let obj = value.as_object()?;
    let blocks = obj.get("$content")?.as_array()?;
    (obj.len() == 1
        && !blocks.is_empty()
        && blocks
            .iter()
            .all(|b| b.get("type").is_some_and(Value::is_string)))
    .then_some(blocks)
}

/// A `tools/call` result: a tool's value, or any failure as `isError: true`.
fn tool_result(result: Result<Value, CallError>, version: Version) -> Value {
    match result {
        Ok(value) if content_blocks(&value).is_some() => {
            json!({"content": content_blocks(&value).cloned().unwrap_or_default()})
        }
        Ok(value) => {
            // A string is its text; anything else its JSON.
            let text = match &value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut r = json!({"content": [{"type": "text", "text": text}]});
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
            let mut r = error_result(text);
            // The gateway's error as it is, for clients (and tasks) that tell a tool's own
            // failure from the gateway's.
            let mut err = json!({"code": e.code, "message": e.message});
            if let Some(d) = &e.data {
                err["data"] = d.clone();
            }
            r["_meta"] = json!({ ERROR_META: err });
            r
        }
    }
}

/// The `_meta` member of an `isError` result that holds the gateway's error
/// (`{code, message, data?}`, PROTOCOL.md section 8).
pub const ERROR_META: &str = "toolwire/error";

fn progress_notification(token: &Value, p: &Progress, version: Version) -> Value {
    let mut params = json!({"progressToken": token, "progress": p.progress});
    if let Some(t) = p.total {
        params["total"] = json!(t);
    }
    // Partial output rides in the message: a string as it is, anything else as JSON.
    let partial = p.partial.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let message = match (&p.message, partial) {
        (Some(m), Some(x)) => Some(format!("{m}: {x}")),
        (Some(m), None) => Some(m.clone()),
        (None, x) => x,
    };
    if let (Some(m), true) = (message, version.has_annotations()) {
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

    #[test]
    fn a_result_is_checked_against_an_output_schema() {
        let schema = json!({"type": "object", "properties": {"volts": {"type": "number"}},
            "required": ["volts"]});
        assert_eq!(breaks_schema(&schema, &json!({"volts": 3.3})), None);
        let why = breaks_schema(&schema, &json!({"volts": "high"})).unwrap();
        assert!(why.contains("/volts"), "{why}");
        assert!(breaks_schema(&schema, &json!({})).is_some());
    }

    #[test]
    fn content_blocks_pass_through_under_the_convention_only() {
        let img = json!({"type": "image", "data": "iVBO", "mimeType": "image/png"});
        let r = tool_result(Ok(json!({"$content": [img.clone()]})), Version::LATEST);
        assert_eq!(r, json!({"content": [img.clone()]}));
        // Anything else is a value like any other.
        for v in [
            json!({"$content": [img.clone()], "other": 1}),
            json!({"$content": []}),
            json!({"$content": [{"data": "x"}]}),
            json!({"$content": "text"}),
        ] {
            let r = tool_result(Ok(v.clone()), Version::LATEST);
            assert_eq!(r["content"][0]["text"], v.to_string(), "{v}");
        }
    }

    #[test]
    fn a_string_is_its_text_and_partial_output_rides_in_progress_messages() {
        let r = tool_result(Ok(json!("a \"quoted\" line\n")), Version::LATEST);
        assert_eq!(r["content"][0]["text"], "a \"quoted\" line\n");
        assert!(r.get("structuredContent").is_none());
        let p = Progress {
            progress: 2,
            total: Some(4),
            message: Some("reading".into()),
            partial: Some(json!("line 2")),
        };
        let n = progress_notification(&json!("t"), &p, Version::LATEST);
        assert_eq!(n["params"]["message"], "reading: line 2");
        let p = Progress {
            message: None,
            partial: Some(json!({"rows": 3})),
            ..p
        };
        let n = progress_notification(&json!("t"), &p, Version::LATEST);
        assert_eq!(n["params"]["message"], r#"{"rows":3}"#);
        assert!(super::super::session::is_progress(&n.to_string()));
        assert!(!super::super::session::is_progress(
            &json!({"jsonrpc": "2.0", "id": 1, "result": {}}).to_string()
        ));
    }

    #[test]
    fn budgeted_results_unwrap_the_value_or_show_the_first_page_with_a_note() {
        let r = budgeted_result(Ok(json!({"value": {"a": 1}})), Version::LATEST);
        assert_eq!(r, tool_result(Ok(json!({"a": 1})), Version::LATEST));
        let r = budgeted_result(Ok(json!({"value": null})), Version::LATEST);
        assert_eq!(r["content"][0]["text"], "null");
        let held = json!({"held": {"handle": "r7", "total_bytes": 100, "page": "[1,2,", "next_offset": 5}});
        let r = budgeted_result(Ok(held), Version::LATEST);
        assert!(
            r.get("isError").is_none() && r.get("structuredContent").is_none(),
            "{r}"
        );
        assert_eq!(
            r["content"][0]["text"],
            "[1,2,\n[toolwire: result truncated — bytes 0 to 5 of 100 shown. Read more with the \
             tool toolwire_read_result and {\"handle\":\"r7\",\"offset\":5}]"
        );
        let r = budgeted_result(Ok(json!({"odd": 1})), Version::LATEST);
        assert_eq!(r["isError"], true);
        let e = CallError::new(toolwire_core::ErrorCode::Timeout, "late");
        assert_eq!(budgeted_result(Err(e), Version::LATEST)["isError"], true);
        // A later page names where it starts; the last has no note.
        let t = with_note("abc".into(), "r7", 5, 8, Some(8), 100);
        assert!(t.ends_with("\n[toolwire: bytes 5 to 8 of 100 shown. Read more with the tool toolwire_read_result and {\"handle\":\"r7\",\"offset\":8}]"), "{t}");
        assert_eq!(with_note("xyz".into(), "r7", 97, 100, None, 100), "xyz");
    }

    #[test]
    fn read_arguments_are_checked() {
        assert_eq!(
            read_arguments(&json!({"handle": "r1", "offset": 0})),
            Ok(("r1".into(), 0, None))
        );
        assert_eq!(
            read_arguments(&json!({"handle": "r1", "offset": 4096, "length": 10})),
            Ok(("r1".into(), 4096, Some(10)))
        );
        for bad in [
            json!({}),
            json!({"handle": 1, "offset": 0}),
            json!({"handle": "", "offset": 0}),
            json!({"handle": "r1"}),
            json!({"handle": "r1", "offset": -1}),
            json!({"handle": "r1", "offset": 1.5}),
            json!({"handle": "r1", "offset": 4294967296u64}),
            json!({"handle": "r1", "offset": "0"}),
            json!({"handle": "r1", "offset": 0, "length": 0}),
        ] {
            assert!(read_arguments(&bad).is_err(), "{bad}");
        }
    }
}
