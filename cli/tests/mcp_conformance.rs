//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, run by
//! `scripts/mcp-conformance.sh`, which installs it and a Node 22 when missing) against the
//! gateway's own `/mcp`, with a fixture node offering the tools its server scenarios call.
//! The scenarios that must pass are listed in `scripts/mcp-conformance/expected-pass.txt`;
//! those that do not apply to a tool gateway, with the reason, in `not-applicable.txt`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use toolwire_core::ErrorCode;
use toolwire_core::frame::{AskKind, LogLevel};
use toolwire_smol::mcp::INPUT_KEY;
use toolwire_smol::node::{HostNode, NodeOptions, Tool, ToolError, wait_ready};
use toolwire_smol::{Endpoint, GatewayConfig};

const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file with no samples (8 kHz, mono, 16-bit), base64.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn content(blocks: Value) -> Result<Value, ToolError> {
    Ok(json!({ "$content": blocks }))
}

/// An input ask named `key` for MCP ([`INPUT_KEY`]), with an object schema of one field.
fn named_input(key: &str, field: &str, kind: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field],
        INPUT_KEY: key})
}

/// The tools the suite's server scenarios call, by the names they call them. `ws` is the
/// gateway, for the tool that makes the tool list change.
fn fixture(ws: &str) -> HostNode {
    let ws = ws.to_owned();
    HostNode::new(NodeOptions::new("conformance"))
        .tool(Tool::new(
            "test_simple_text",
            "Returns a simple text block.",
            no_args(),
            |_, _| async { Ok(json!("This is a simple text response for testing.")) },
        ))
        .tool(Tool::new(
            "test_error_handling",
            "Always fails.",
            no_args(),
            |_, _| async {
                Err(ToolError::failed(
                    "This tool intentionally returns an error for testing",
                ))
            },
        ))
        .tool(Tool::new(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100.",
            no_args(),
            |ctx, _| async move {
                for (i, p) in [0, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        smol::Timer::after(Duration::from_millis(50)).await;
                    }
                    ctx.progress(p, Some(100), None, None).await;
                }
                Ok(json!("Tool with progress executed successfully"))
            },
        ))
        .tool(Tool::new(
            "json_schema_2020_12_tool",
            "Takes arguments described with JSON Schema 2020-12 keywords.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"},
                    "email": {"type": "string"}
                },
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": false
            }),
            |_, args| async move { Ok(args) },
        ))
        .tool(Tool::new(
            "test_elicitation",
            "Asks the user for a username and an email.",
            json!({"type": "object", "properties": {"message": {"type": "string"}},
                "required": ["message"]}),
            |ctx, args| async move {
                let schema = json!({"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}},
                    "required": ["username", "email"]});
                let prompt = args["message"].as_str().unwrap_or("");
                let answer = ctx.ask(AskKind::Input, prompt, Some(schema)).await?;
                Ok(json!(format!("User response: {answer}")))
            },
        ))
        .tool(Tool::new(
            "test_elicitation_sep1034_defaults",
            "Asks for a form whose fields have defaults.",
            no_args(),
            |ctx, _| async move {
                let schema = json!({"type": "object", "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status",
                        "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status",
                        "default": true}},
                    "required": []});
                let prompt = "Please review and update the form fields with defaults";
                let answer = ctx.ask(AskKind::Input, prompt, Some(schema)).await?;
                Ok(json!(format!("Elicitation completed: {answer}")))
            },
        ))
        .tool(Tool::new(
            "test_elicitation_sep1330_enums",
            "Asks for a form with every kind of enum field.",
            no_args(),
            |ctx, _| async move {
                let titled = |t: [&str; 3]| {
                    json!([{"const": "value1", "title": t[0]}, {"const": "value2", "title": t[1]},
                        {"const": "value3", "title": t[2]}])
                };
                let schema = json!({"type": "object", "properties": {
                    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string",
                        "oneOf": titled(["First Option", "Second Option", "Third Option"])},
                    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array",
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array",
                        "items": {"anyOf": titled(["First Choice", "Second Choice", "Third Choice"])}}},
                    "required": []});
                let prompt = "Please pick from the enum fields";
                let answer = ctx.ask(AskKind::Input, prompt, Some(schema)).await?;
                Ok(json!(format!("Elicitation completed: {answer}")))
            },
        ))
        .tool(Tool::new(
            "test_tool_with_logging",
            "Logs three lines while it runs.",
            no_args(),
            |ctx, _| async move {
                let lines = ["Tool execution started", "Tool processing data", "Tool execution completed"];
                for (i, line) in lines.into_iter().enumerate() {
                    if i > 0 {
                        smol::Timer::after(Duration::from_millis(50)).await;
                    }
                    ctx.log(LogLevel::Info, line).await;
                }
                Ok(json!("Tool with logging executed successfully"))
            },
        ))
        .tool(Tool::new(
            "test_sampling",
            "Asks the client's model to answer a prompt.",
            json!({"type": "object", "properties": {"prompt": {"type": "string"}},
                "required": ["prompt"]}),
            |ctx, args| async move {
                let prompt = args["prompt"].as_str().unwrap_or("");
                let opts = json!({"maxTokens": 100});
                let reply = ctx.ask(AskKind::Sample, prompt, Some(opts)).await?;
                Ok(json!(format!("LLM response: {}", reply.as_str().unwrap_or(""))))
            },
        ))
        // 2026-07-28 (stateless): asks become input requests of the result.
        .tool(Tool::new(
            "test_missing_capability",
            "Needs the client's model: fails without sampling.",
            no_args(),
            |ctx, _| async move {
                let reply = ctx.ask(AskKind::Sample, "Say hello.", None).await?;
                Ok(json!(format!("The model said: {reply}")))
            },
        ))
        .tool(Tool::new(
            "test_streaming_elicitation",
            "Asks the user for a name.",
            no_args(),
            |ctx, _| async move {
                let answer = ctx
                    .ask(AskKind::Input, "What is your name?", Some(json!({"type": "object",
                        "properties": {"name": {"type": "string"}}})))
                    .await?;
                Ok(json!(format!("Hello, {}!", answer["name"])))
            },
        ))
        .tool(Tool::new(
            "test_logging_tool",
            "Logs a line and returns.",
            no_args(),
            |ctx, _| async move {
                ctx.log(LogLevel::Info, "test_logging_tool ran").await;
                Ok(json!("logged"))
            },
        ))
        .tool(Tool::new(
            "test_trigger_tool_change",
            "Makes the gateway's tool list change: a node comes and goes.",
            no_args(),
            move |_, _| {
                let ws = ws.clone();
                async move {
                    let ep = Endpoint::parse(&ws).map_err(|e| ToolError::failed(e.to_string()))?;
                    let (tx, rx) = smol::channel::unbounded();
                    let extra = HostNode::new(NodeOptions::new("conformance-extra")).tool(
                        Tool::new("extra", "Comes and goes.", no_args(), |_, _| async {
                            Ok(json!(null))
                        }),
                    );
                    let run = smol::spawn(async move { extra.run(&ep, Some(tx)).await });
                    wait_ready(&rx, Duration::from_secs(5))
                        .await
                        .map_err(|e| ToolError::failed(e.to_string()))?;
                    drop(run);
                    Ok(json!("the tool list changed"))
                }
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_elicitation",
            "Asks the user's name (input request user_name).",
            no_args(),
            |ctx, _| async move {
                let schema = named_input("user_name", "name", "string");
                let a = ctx.ask(AskKind::Input, "What is your name?", Some(schema)).await?;
                Ok(json!(format!("Hello, {}!", a["name"].as_str().unwrap_or("?"))))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_sampling",
            "Asks the client's model a question (input request capital_question).",
            no_args(),
            |ctx, _| async move {
                let opts = json!({"maxTokens": 100, INPUT_KEY: "capital_question"});
                let a = ctx
                    .ask(AskKind::Sample, "What is the capital of France?", Some(opts))
                    .await?;
                Ok(json!(format!("The model says: {a}")))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_list_roots",
            "Asks the client's roots (input request client_roots).",
            no_args(),
            |ctx, _| async move {
                let a = ctx
                    .ask(AskKind::Roots, "Which roots?", Some(json!({INPUT_KEY: "client_roots"})))
                    .await?;
                Ok(json!(format!("Roots: {a}")))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_request_state",
            "Asks for a confirmation (input request confirm).",
            no_args(),
            |ctx, _| async move {
                let schema = named_input("confirm", "ok", "boolean");
                let a = ctx.ask(AskKind::Input, "Please confirm", Some(schema)).await?;
                Ok(json!(format!("state-ok: {}", a["ok"])))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_multiple_inputs",
            "Asks a name, the model and the roots, all at once (one round of three requests).",
            no_args(),
            |ctx, _| async move {
                let name = ctx.ask(
                    AskKind::Input,
                    "What is your name?",
                    Some(named_input("user_name", "name", "string")),
                );
                let greeting = ctx.ask(
                    AskKind::Sample,
                    "Generate a greeting",
                    Some(json!({"maxTokens": 50, INPUT_KEY: "greeting"})),
                );
                let roots = ctx.ask(
                    AskKind::Roots,
                    "Which roots?",
                    Some(json!({INPUT_KEY: "client_roots"})),
                );
                let ((name, greeting), roots) =
                    smol::future::zip(smol::future::zip(name, greeting), roots).await;
                let (name, greeting, roots) = (name?, greeting?, roots?);
                Ok(json!(format!("{greeting} {} ({roots})", name["name"])))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_multi_round",
            "Asks two questions, one round each.",
            no_args(),
            |ctx, _| async move {
                let name = ctx
                    .ask(AskKind::Input, "Step 1: What is your name?",
                        Some(named_input("step1", "name", "string")))
                    .await?;
                let color = ctx
                    .ask(AskKind::Input, "Step 2: What is your favorite color?",
                        Some(named_input("step2", "color", "string")))
                    .await?;
                Ok(json!(format!("{} likes {}", name["name"], color["color"])))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_tampered_state",
            "Asks for a confirmation.",
            no_args(),
            |ctx, _| async move {
                let schema = named_input("confirm", "ok", "boolean");
                let a = ctx.ask(AskKind::Input, "Please confirm", Some(schema)).await?;
                Ok(json!(format!("confirmed: {}", a["ok"])))
            },
        ))
        .tool(Tool::new(
            "test_input_required_result_capabilities",
            "Asks the user, or else the client's model: whichever the client takes.",
            no_args(),
            |ctx, _| async move {
                let schema = named_input("user_name", "name", "string");
                if let Ok(a) = ctx.ask(AskKind::Input, "What is your name?", Some(schema)).await {
                    return Ok(json!(format!("Hello, {}!", a["name"])));
                }
                let opts = json!({"maxTokens": 50, INPUT_KEY: "greeting"});
                let a = ctx.ask(AskKind::Sample, "Make up a name.", Some(opts)).await?;
                Ok(json!(format!("Hello, {a}!")))
            },
        ))
        // The tasks extension (2026-07-28): a call still running after a moment is a task.
        .tool(Tool::new(
            "greet",
            "Greets at once.",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            |_, args| async move {
                Ok(json!(format!("Hello, {}!", args["name"].as_str().unwrap_or("you"))))
            },
        ))
        .tool(Tool::new(
            "slow_compute",
            "Computes for the given number of seconds.",
            json!({"type": "object", "properties": {"seconds": {"type": "integer"},
                "label": {"type": "string"}}}),
            |_, args| async move {
                let secs = args["seconds"].as_u64().unwrap_or(1).min(120);
                smol::Timer::after(Duration::from_secs(secs)).await;
                Ok(json!(format!("computed {}", args["label"].as_str().unwrap_or(""))))
            },
        ))
        .tool(Tool::new(
            "failing_job",
            "Runs a second as a task, then fails.",
            json!({"type": "object", "x-mcp-task-support": "required"}),
            |_, _| async {
                smol::Timer::after(Duration::from_secs(1)).await;
                Err(ToolError::failed("the job failed, as it always does"))
            },
        ))
        .tool(Tool::new(
            "protocol_error_job",
            "Runs a second as a task, then fails inside (an internal error, not a tool error).",
            json!({"type": "object"}),
            |_, _| async {
                smol::Timer::after(Duration::from_secs(1)).await;
                Err(ToolError::new(ErrorCode::InternalError, "the job crashed"))
            },
        ))
        .tool(Tool::new(
            "confirm_delete",
            "Asks before it deletes a file.",
            json!({"type": "object", "properties": {"filename": {"type": "string"}}}),
            |ctx, args| async move {
                smol::Timer::after(Duration::from_millis(700)).await;
                let file = args["filename"].as_str().unwrap_or("?").to_owned();
                let yes = ctx.ask(AskKind::Permission, &format!("Delete {file}?"), None).await?;
                Ok(json!(format!("{file}: deleted {yes}")))
            },
        ))
        .tool(Tool::new(
            "multi_input",
            "Works a moment (long enough to become a task), then asks two things at once.",
            no_args(),
            |ctx, _| async move {
                smol::Timer::after(Duration::from_millis(700)).await;
                let name = ctx.ask(
                    AskKind::Input,
                    "What is your name?",
                    Some(named_input("name", "name", "string")),
                );
                let confirm = ctx.ask(
                    AskKind::Input,
                    "Go ahead?",
                    Some(named_input("confirm", "confirm", "boolean")),
                );
                let (name, confirm) = smol::future::zip(name, confirm).await;
                let (name, confirm) = (name?, confirm?);
                Ok(json!(format!("{} said {}", name["name"], confirm["confirm"])))
            },
        ))
        .tool(Tool::new(
            "test_tool_with_task",
            "Asks a name, then runs as a task.",
            json!({"type": "object", "x-mcp-task-support": "required"}),
            |ctx, _| async move {
                let schema = named_input("user_name", "name", "string");
                let a = ctx.ask(AskKind::Input, "What is your name?", Some(schema)).await?;
                Ok(json!(format!("Hello, {}!", a["name"].as_str().unwrap_or("?"))))
            },
        ))
        .tool(Tool::new(
            "test_reconnection",
            "Runs longer than the gateway keeps a call's event stream open (SSE polling).",
            no_args(),
            |_, _| async {
                smol::Timer::after(Duration::from_millis(2500)).await;
                Ok(json!("Reconnection test completed"))
            },
        ))
        .tool(Tool::new(
            "test_custom_headers",
            "Takes a region that clients mirror in the Mcp-Param-Region header.",
            json!({"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "query": {"type": "string"}},
                "required": ["region", "query"]}),
            |_, args| async move { Ok(json!(format!("region {}", args["region"]))) },
        ))
        .tool(Tool::new(
            "test_image_content",
            "Returns a 1x1 PNG image block.",
            no_args(),
            |_, _| async { content(json!([{"type": "image", "data": PNG_1X1, "mimeType": "image/png"}])) },
        ))
        .tool(Tool::new(
            "test_audio_content",
            "Returns a WAV audio block.",
            no_args(),
            |_, _| async { content(json!([{"type": "audio", "data": WAV_EMPTY, "mimeType": "audio/wav"}])) },
        ))
        .tool(Tool::new(
            "test_embedded_resource",
            "Returns an embedded text resource.",
            no_args(),
            |_, _| async {
                content(json!([{"type": "resource", "resource": {
                    "uri": "test://embedded-resource", "mimeType": "text/plain",
                    "text": "This is an embedded resource content."}}]))
            },
        ))
        .tool(Tool::new(
            "test_multiple_content_types",
            "Returns text, image and resource blocks.",
            no_args(),
            |_, _| async {
                content(json!([
                    {"type": "text", "text": "Multiple content types test:"},
                    {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
                    {"type": "resource", "resource": {"uri": "test://mixed-content-resource",
                        "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}
                ]))
            },
        ))
}

/// Runs the suite at `spec` against a gateway of its own with the fixture node, and requires
/// the scenarios listed for that revision to pass.
fn suite_passes_at(spec: &str) {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        // The suite calls tools by their own names.
        cfg.http.mcp.options.bare_names = true;
        // SSE polling (2025-11-25): a call's stream is cut after 1.5 s, the call runs on, and
        // the client resumes it (test_reconnection runs 2.5 s).
        cfg.http.mcp.close_streams_after = Some(Duration::from_millis(1500));
        let (gw, ws, _) = gateway(cfg).await;
        let _node = spawn_node(&ws, fixture(&ws));
        assert!(
            gw.wait_for_node("conformance", Duration::from_secs(10))
                .await
        );
        let authority = ws.strip_prefix("ws://").expect("a ws:// gateway");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = smol::process::Command::new("bash")
            .arg(root.join("scripts/mcp-conformance.sh"))
            .arg(format!("http://{authority}/mcp"))
            .env("MCP_CONFORMANCE_SPEC", spec)
            .env_remove("MCP_CONFORMANCE_EXPECTED")
            .current_dir(&root)
            .kill_on_drop(true)
            .output();
        let out = smol::future::or(async { Some(out.await) }, async {
            smol::Timer::after(Duration::from_secs(300)).await;
            None
        })
        .await
        .expect("the suite ends within 5 minutes")
        .expect("running scripts/mcp-conformance.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "conformance failures at {spec}:\n{stdout}"
        );
        assert!(stdout.contains(&format!("at spec {spec}")), "{stdout}");
        assert!(stdout.contains(" 0 failed"), "{stdout}");
    });
}

/// Both revisions on the one endpoint, each against its own list of scenarios that must pass
/// (the two run at once, each with its gateway).
#[test]
fn the_official_conformance_suite_passes_at_2025_11_25_with_sessions() {
    suite_passes_at("2025-11-25");
}

#[test]
fn the_official_conformance_suite_passes_at_2026_07_28_stateless() {
    suite_passes_at("2026-07-28");
}
