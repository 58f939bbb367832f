//! MCP revision 2026-07-28 (stateless) at the gateway's `/mcp`, spoken by the official SDKs as
//! real clients: the Python `mcp` SDK (`tests/mcp_2026_client.py`, in the venv of
//! `scripts/python-env.sh`) and the TypeScript SDK v2 (`@modelcontextprotocol/client`,
//! `scripts/mcp-conformance/ts-client-2026.mjs` on the Node 22 that
//! `scripts/mcp-conformance.sh --install` puts there).
//!
//! Both run the same session against a fixture node `lab`: `server/discover`, `tools/list`
//! page by page (5 a page), calls with text and structured results, progress and log lines
//! on the call's event stream, a node's asks answered through input requests
//! (`input_required` results and the client's retry with `inputResponses`: elicitation
//! accepted and declined, sampling, roots, two rounds), a second client without those
//! capabilities answered `-32021`, a call cancelled by closing its stream, and
//! `subscriptions/listen` for `notifications/tools/list_changed`. Each script logs
//! every HTTP request it made, and the test checks none of them was `initialize` or carried a
//! session. The node records what its asks were answered, and the test checks that too.
//!
//! Nothing is skipped: a missing Python, venv, npm or Node fails the test.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use smol::io::BufReader;
use smol::process::Command;
use toolwire_core::frame::{Annotations, AskKind, LogLevel};
use toolwire_smol::mcp::INPUT_KEY;
use toolwire_smol::node::{HostNode, NodeOptions, Tool, ToolError};
use toolwire_smol::{Gateway, GatewayConfig};

/// Tools of the fixture node, and `tools/list`'s page size for it.
const LAB_TOOLS: usize = 19;
const PAGE: usize = 5;

/// What the fixture's tools saw of their asks and cancels, in order.
type Seen = Arc<Mutex<Vec<String>>>;

fn record(seen: &Seen, line: String) {
    seen.lock().unwrap().push(line);
}

/// Records `line` when dropped unless disarmed: a call's task dropped before it ends was
/// cancelled.
struct OnDrop(Option<Seen>, &'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(seen) = self.0.take() {
            record(&seen, self.1.to_owned());
        }
    }
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

/// A tool whose handler gets `seen` too.
fn recording<F, Fut>(seen: &Seen, name: &str, description: &str, schema: Value, f: F) -> Tool
where
    F: Fn(Seen, toolwire_smol::node::ToolContext, Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, ToolError>> + Send + 'static,
{
    let seen = seen.clone();
    Tool::new(name, description, schema, move |ctx, args| {
        f(seen.clone(), ctx, args)
    })
}

/// The node `lab`: 18 tools (`t00`…`t07` echo their name and `x`; the others are named for
/// what they do, the asking ones record their answers in `seen`).
fn lab(seen: &Seen) -> HostNode {
    let mut node = HostNode::new(NodeOptions::new("lab"));
    for i in 0..8 {
        let name = format!("t{i:02}");
        let n = name.clone();
        node = node.tool(Tool::new(
            &name,
            "Returns its name and x.",
            json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
            move |_, args| {
                let n = n.clone();
                async move { Ok(json!({"tool": n, "x": args["x"]})) }
            },
        ));
    }
    node.tool(Tool::new(
        "greet",
        "Greets someone by name.",
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        |_, args| async move { Ok(json!(format!("hello, {}", args["name"].as_str().unwrap_or("?")))) },
    ))
    .tool(
        Tool::new("measure", "Measures a voltage.", no_args(), |_, _| async {
            Ok(json!({"volts": 3.3}))
        })
        .output_schema(json!({"type": "object", "properties": {"volts": {"type": "number"}},
            "required": ["volts"]}))
        .annotations(Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
        }),
    )
    .tool(Tool::new(
        "count",
        "Counts to n, reporting each step as progress, and logs at info and debug.",
        json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 10}},
            "required": ["n"]}),
        |ctx, args| async move {
            let n = args["n"].as_u64().unwrap_or(1);
            ctx.log(LogLevel::Info, &format!("counting to {n}")).await;
            ctx.log(LogLevel::Debug, "a debug line nobody asked for").await;
            for i in 1..=n {
                smol::Timer::after(Duration::from_millis(20)).await;
                ctx.progress(i, Some(n), Some(&format!("step {i}")), None)
                    .await;
            }
            Ok(json!({"count": n}))
        },
    ))
    .tool(recording(
        seen,
        "slow",
        "Reports progress once, then takes a minute.",
        no_args(),
        |seen, ctx, _| async move {
            let mut cancelled = OnDrop(Some(seen), "slow: cancelled");
            ctx.progress(1, Some(60), Some("started"), None).await;
            smol::Timer::after(Duration::from_secs(60)).await;
            cancelled.0 = None;
            Ok(json!("finished"))
        },
    ))
    .tool(Tool::new(
        "fail",
        "Always fails.",
        no_args(),
        |_, _| async { Err(ToolError::failed("boom: this tool always fails")) },
    ))
    .tool(recording(
        seen,
        "ask_name",
        "Asks who it is (an input ask; its input request key is ask-1).",
        no_args(),
        |seen, ctx, _| async move {
            let schema = json!({"type": "object", "properties": {"name": {"type": "string"}},
                "required": ["name"]});
            let a = ctx.ask(AskKind::Input, "Who is it?", Some(schema)).await?;
            record(&seen, format!("ask_name: {a}"));
            Ok(json!(format!("hello {}", a["name"].as_str().unwrap_or("?"))))
        },
    ))
    .tool(recording(
        seen,
        "ask_valve",
        "Asks permission to open a valve, and says whether it got it.",
        no_args(),
        |seen, ctx, _| async move {
            let yes = ctx.ask(AskKind::Permission, "Open the valve?", None).await?;
            record(&seen, format!("ask_valve: {yes}"));
            Ok(json!({"opened": yes}))
        },
    ))
    .tool(recording(
        seen,
        "ask_model",
        "Asks the client's model a sum (input request key sum).",
        no_args(),
        |seen, ctx, _| async move {
            let opts = json!({"maxTokens": 64, "systemPrompt": "Answer with a number.",
                INPUT_KEY: "sum"});
            let a = ctx
                .ask(AskKind::Sample, "What is 6 times 7?", Some(opts))
                .await?;
            record(&seen, format!("ask_model: {a}"));
            Ok(json!(format!("the model said: {}", a.as_str().unwrap_or("?"))))
        },
    ))
    .tool(recording(
        seen,
        "ask_roots",
        "Asks the client's roots (input request key roots).",
        no_args(),
        |seen, ctx, _| async move {
            let a = ctx
                .ask(AskKind::Roots, "Which roots?", Some(json!({INPUT_KEY: "roots"})))
                .await?;
            record(&seen, format!("ask_roots: {a}"));
            Ok(json!({"roots": a}))
        },
    ))
    .tool(recording(
        seen,
        "ask_twice",
        "Asks a colour (key colour), then permission to paint: two rounds.",
        no_args(),
        |seen, ctx, _| async move {
            let schema = json!({"type": "object", "properties": {"colour": {"type": "string"}},
                "required": ["colour"], INPUT_KEY: "colour"});
            let c = ctx
                .ask(AskKind::Input, "Which colour?", Some(schema))
                .await?;
            record(&seen, format!("ask_twice colour: {c}"));
            let yes = ctx
                .ask(AskKind::Permission, "Paint it now?", None)
                .await?;
            record(&seen, format!("ask_twice paint: {yes}"));
            Ok(json!({"colour": c["colour"], "painted": yes}))
        },
    ))
    .tool(recording(
        seen,
        "ask_together",
        "Asks a colour (key shade) and the client's roots at once: one round.",
        no_args(),
        |seen, ctx, _| async move {
            let schema = json!({"type": "object", "properties": {"colour": {"type": "string"}},
                "required": ["colour"], INPUT_KEY: "shade"});
            let colour = ctx.ask(AskKind::Input, "Which colour?", Some(schema));
            let roots = ctx.ask(AskKind::Roots, "Which roots?", Some(json!({INPUT_KEY: "roots"})));
            let (c, r) = smol::future::zip(colour, roots).await;
            let (c, r) = (c?, r?);
            record(&seen, format!("ask_together: {c} {r}"));
            Ok(json!({"colour": c["colour"], "roots": r}))
        },
    ))
}

/// The node `extra`, which comes during a `subscriptions/listen`.
fn extra() -> HostNode {
    HostNode::new(NodeOptions::new("extra")).tool(Tool::new(
        "ping",
        "Answers pong.",
        no_args(),
        |_, _| async { Ok(json!("pong")) },
    ))
}

/// What both SDKs' sessions must have made the node see, in order.
const SEEN: [&str; 8] = [
    r#"ask_name: {"name":"Ada"}"#,
    "ask_valve: false",
    r#"ask_model: "42""#,
    r#"ask_roots: [{"name":"project","uri":"file:///work/project"}]"#,
    r#"ask_twice colour: {"colour":"teal"}"#,
    "ask_twice paint: true",
    r#"ask_together: {"colour":"teal"} [{"name":"project","uri":"file:///work/project"}]"#,
    "slow: cancelled",
];

/// Runs a client script (`cmd`, given the `/mcp` URL last) against a gateway with the node
/// `lab`, answering its `@@` requests, and checks what the node saw. Returns the script's
/// log lines (everything but `@@` requests).
fn session(who: &str, mut cmd: Command) -> Vec<String> {
    smol::block_on(async {
        let mut cfg = GatewayConfig::default();
        cfg.http.mcp.options.page_size = PAGE;
        let (gw, ws, _) = gateway(cfg).await;
        let seen = Seen::default();
        let _lab = spawn_node(&ws, lab(&seen));
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len()
                == LAB_TOOLS)
            .await,
            "lab's tools registered"
        );
        let authority = ws.strip_prefix("ws://").expect("a ws:// gateway");
        let started = Instant::now();
        let mut child = cmd
            .arg(format!("http://{authority}/mcp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {who} client: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let until = Instant::now() + Duration::from_secs(120);
        let mut log = vec![];
        let mut extra_node = None;
        while let Some(line) = line_within(&mut lines, until).await {
            eprintln!("[{who}] {line}");
            let Some(request) = line.strip_prefix("@@ ") else {
                log.push(line);
                continue;
            };
            let answer = harness(&gw, &ws, request, &mut extra_node).await;
            reply(&mut stdin, &answer).await;
        }
        let status = exit_within(&mut child, Duration::from_secs(10)).await;
        eprintln!(
            "[{who}] session took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(status.success(), "the {who} client failed ({status})");
        assert_eq!(log.last().map(String::as_str), Some("PASS"), "{who}");
        // The node saw each answer as the client gave it, and the cancel.
        assert!(
            wait_until(Duration::from_secs(5), || seen.lock().unwrap().len()
                >= SEEN.len())
            .await,
            "{who}: {:?}",
            seen.lock().unwrap()
        );
        assert_eq!(*seen.lock().unwrap(), SEEN, "{who}: what the node saw");
        assert_eq!(gw.node("lab").map(|n| n.in_flight), Some(0), "{who}");
        log
    })
}

/// Answers one `@@` request of a client script.
async fn harness(
    gw: &Gateway,
    ws: &str,
    request: &str,
    extra_node: &mut Option<smol::Task<()>>,
) -> String {
    let in_flight = || gw.node("lab").map_or(usize::MAX, |n| n.in_flight);
    match request {
        "in_flight lab" => in_flight().to_string(),
        "idle lab" => {
            wait_until(Duration::from_secs(5), || in_flight() == 0).await;
            in_flight().to_string()
        }
        "add extra" => {
            *extra_node = Some(spawn_node(ws, extra()));
            let up = wait_until(Duration::from_secs(10), || {
                gw.tools(None, None).len() == LAB_TOOLS + 1
            })
            .await;
            if up { "ok" } else { "extra did not register" }.to_owned()
        }
        _ => panic!("unknown request from the client script: {request}"),
    }
}

/// The checks both scripts print about the HTTP requests they made; `notifications` are
/// those posted, with the status each got.
fn assert_stateless(who: &str, log: &[String], notifications: &[&str]) {
    assert!(
        log.iter()
            .any(|l| l == "negotiated protocol version 2026-07-28"),
        "{who}"
    );
    let http = log
        .iter()
        .find_map(|l| l.strip_prefix("http: "))
        .unwrap_or_else(|| panic!("{who} printed no http: summary"));
    let summary: Value = serde_json::from_str(http).expect("the http: summary is JSON");
    let posts = summary["posts"].as_u64().unwrap();
    assert!(posts >= 20, "{who}: {summary}");
    assert_eq!(summary["other_methods"], json!([]), "{who}: {summary}");
    assert_eq!(
        summary["versions"],
        json!(["2026-07-28"]),
        "{who}: {summary}"
    );
    assert_eq!(summary["session_ids"], 0, "{who}: {summary}");
    assert_eq!(summary["method_header_mismatches"], 0, "{who}: {summary}");
    // Notifications posted, with the status they got: `202`.
    assert_eq!(
        summary["notifications"],
        json!(notifications),
        "{who}: {summary}"
    );
    let methods: Vec<&str> = summary["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        methods.first(),
        Some(&"server/discover"),
        "{who}: {summary}"
    );
    assert!(!methods.contains(&"initialize"), "{who}: {summary}");
    for m in ["tools/list", "tools/call", "subscriptions/listen"] {
        assert!(methods.contains(&m), "{who}: no {m}: {summary}");
    }
    // Each round of an asking call is a POST of its own: ask_name, ask_valve, ask_model and
    // ask_roots take two, ask_twice three, ask_together (two asks at once) two.
    assert_eq!(summary["retries_with_request_state"], 7, "{who}: {summary}");
}

/// The Python SDK (`mcp` 2.3.0) as a client at 2026-07-28.
#[test]
fn python_mcp_sdk_speaks_2026_07_28_at_the_gateway() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_2026_client.py");
    let mut cmd = Command::new(python());
    cmd.arg(script);
    let log = session("mcp_2026_client.py", cmd);
    // The SDK's transport turns a cancel into closing the request's stream, and posts none.
    assert_stateless("python", &log, &[]);
}

/// The TypeScript SDK v2 (`@modelcontextprotocol/client`) as a client at 2026-07-28.
#[test]
fn typescript_mcp_sdk_v2_speaks_2026_07_28_at_the_gateway() {
    let root = repo_root();
    let dir = root.join("scripts/mcp-conformance");
    let installed = std::process::Command::new("bash")
        .arg(root.join("scripts/mcp-conformance.sh"))
        .arg("--install")
        .status()
        .expect("installing the TypeScript SDK");
    assert!(installed.success(), "scripts/mcp-conformance.sh --install");
    let mut cmd = Command::new(dir.join("node_modules/node/bin/node"));
    cmd.arg(dir.join("ts-client-2026.mjs")).current_dir(&dir);
    let log = session("ts-client-2026.mjs", cmd);
    // Closing a listen, the SDK both closes its stream and posts `notifications/cancelled`.
    assert_stateless("typescript", &log, &["notifications/cancelled 202"]);
}
