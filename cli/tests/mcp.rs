//! The MCP bridge (`toolwire mcp`) against a gateway on loopback: driven by the official MCP
//! Python SDK as a real client (`tests/mcp_client.py`), and by hand for protocol edge cases.
//!
//! The Python environment comes from `scripts/python-env.sh`, which installs what is missing;
//! if it cannot, the test fails (it never skips).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use smol::io::BufReader;
use smol::process::{Child, ChildStdin, ChildStdout, Command};
use toolwire_core::frame::Annotations;
use toolwire_smol::GatewayConfig;
use toolwire_smol::node::{HostNode, NodeOptions, Tool, ToolError};

/// A node with 57 tools: `t00`…`t54` echo their name and `x`, `fail` always fails, `measure`
/// declares an output schema.
fn lab() -> HostNode {
    let mut node = HostNode::new(NodeOptions::new("lab"));
    for i in 0..55 {
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
        "fail",
        "Always fails.",
        json!({"type": "object"}),
        |_, _| async { Err(ToolError::failed("boom: this tool always fails")) },
    ))
    .tool(
        Tool::new(
            "measure",
            "Measures a voltage.",
            json!({"type": "object"}),
            |_, _| async { Ok(json!({"volts": 3.3})) },
        )
        .output_schema(json!({
            "type": "object",
            "properties": {"volts": {"type": "number"}},
            "required": ["volts"]
        }))
        .annotations(Annotations {
            read_only: true,
            destructive: false,
            idempotent: false,
        }),
    )
}

#[test]
fn python_mcp_sdk_lists_calls_and_cancels_through_the_bridge() {
    python_session(false);
}

/// The same session as [`python_mcp_sdk_lists_calls_and_cancels_through_the_bridge`], over MCP's
/// Streamable HTTP transport at the gateway's own `/mcp`: listing with cursors, calls, progress
/// on the call's event stream, cancel, `list_changed` on the GET stream.
#[test]
fn python_mcp_sdk_over_streamable_http_at_the_gateway() {
    python_session(true);
}

fn python_session(http: bool) {
    let python = python();
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _dev_a = spawn_device(&ws, NodeOptions::new("dev-a"));
        let mut dev_b = Some(spawn_device(&ws, NodeOptions::new("dev-b")));
        let _lab = spawn_node(&ws, lab());
        for id in ["dev-a", "dev-b", "lab"] {
            assert!(gw.wait_for_node(id, Duration::from_secs(10)).await, "{id}");
        }
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 67).await,
            "all tools registered"
        );

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(env!("CARGO_BIN_EXE_toolwire"))
            .arg(&ws);
        if http {
            let authority = ws.strip_prefix("ws://").expect("a ws:// gateway");
            cmd.arg("--http").arg(format!("http://{authority}/mcp"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting python");
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let until = Instant::now() + Duration::from_secs(120);
        let mut log = vec![];
        while let Some(line) = line_within(&mut lines, until).await {
            eprintln!("[mcp_client.py] {line}");
            let Some(request) = line.strip_prefix("@@ ") else {
                log.push(line);
                continue;
            };
            let in_flight = |node: &str| {
                gw.nodes()
                    .iter()
                    .find(|n| n.id == node)
                    .map_or(usize::MAX, |n| n.in_flight)
            };
            match request.split_once(' ') {
                Some(("in_flight", node)) => {
                    reply(&mut stdin, &in_flight(node).to_string()).await;
                }
                Some(("idle", node)) => {
                    wait_until(Duration::from_secs(5), || in_flight(node) == 0).await;
                    reply(&mut stdin, &in_flight(node).to_string()).await;
                }
                Some(("drop", "dev-b")) => {
                    drop(dev_b.take());
                    let gone = wait_until(Duration::from_secs(5), || {
                        gw.nodes().iter().all(|n| n.id != "dev-b")
                    })
                    .await;
                    reply(&mut stdin, if gone { "ok" } else { "still connected" }).await;
                }
                _ => panic!("unknown request from the script: {request}"),
            }
        }
        let status = exit_within(&mut child, Duration::from_secs(10)).await;
        assert!(status.success(), "mcp_client.py failed ({status})");
        assert_eq!(log.last().map(String::as_str), Some("PASS"));
        assert!(
            log.iter()
                .any(|l| l == "negotiated protocol version 2025-11-25")
        );
        assert_eq!(
            log.iter()
                .any(|l| l.starts_with("transport: streamable HTTP at http://")),
            http
        );
    });
}

/// A tool that asks for a name (an input ask with an object schema) and greets it.
fn name_tool(name: &str) -> Tool {
    use toolwire_core::frame::AskKind;
    Tool::new(
        name,
        "Asks for a name.",
        json!({"type": "object"}),
        |ctx, _| async move {
            let schema = json!({"type": "object", "properties": {
                "name": {"type": "string"}}, "required": ["name"]});
            let a = ctx.ask(AskKind::Input, "Who is it?", Some(schema)).await?;
            Ok(json!(format!(
                "hello {}",
                a["name"].as_str().unwrap_or("?")
            )))
        },
    )
}

/// A tool that asks permission and says whether it got it.
fn valve_tool(name: &str) -> Tool {
    use toolwire_core::frame::AskKind;
    Tool::new(
        name,
        "Opens if allowed.",
        json!({"type": "object"}),
        |ctx, _| async move {
            let yes = ctx.ask(AskKind::Permission, "Open it?", None).await?;
            Ok(json!({"opened": yes}))
        },
    )
}

/// The official TypeScript SDK as a client (`scripts/mcp-conformance/ts-client.mjs`, on the
/// Node 22 and SDK the conformance suite pins), over stdio and over Streamable HTTP: listing
/// with cursors, a call, progress, cancel, elicitation answered and declined, errors,
/// `list_changed`.
#[test]
fn typescript_mcp_sdk_over_stdio_and_streamable_http() {
    for mode in ["stdio", "http"] {
        typescript_session(mode);
    }
}

fn typescript_session(mode: &str) {
    let root = repo_root();
    let dir = root.join("scripts/mcp-conformance");
    let installed = std::process::Command::new("bash")
        .arg(root.join("scripts/mcp-conformance.sh"))
        .arg("--install")
        .status()
        .expect("installing the TypeScript SDK");
    assert!(installed.success());
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _dev_a = spawn_device(&ws, NodeOptions::new("dev-a"));
        let lab = lab()
            .tool(name_tool("ask_name"))
            .tool(valve_tool("ask_valve"));
        let _lab = spawn_node(&ws, lab);
        for id in ["dev-a", "lab"] {
            assert!(gw.wait_for_node(id, Duration::from_secs(10)).await, "{id}");
        }
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 64).await,
            "all tools registered"
        );
        let mut cmd = Command::new(dir.join("node_modules/node/bin/node"));
        cmd.arg(dir.join("ts-client.mjs")).arg(mode);
        if mode == "stdio" {
            cmd.arg(env!("CARGO_BIN_EXE_toolwire")).arg(&ws);
        } else {
            let authority = ws.strip_prefix("ws://").expect("a ws:// gateway");
            cmd.arg(format!("http://{authority}/mcp"));
        }
        let mut child = cmd
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node");
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let until = Instant::now() + Duration::from_secs(120);
        let mut log = vec![];
        let mut dev_b = None;
        while let Some(line) = line_within(&mut lines, until).await {
            eprintln!("[ts-client.mjs {mode}] {line}");
            match line.strip_prefix("@@ ") {
                Some("add") => {
                    dev_b = Some(spawn_device(&ws, NodeOptions::new("dev-b")));
                    let up =
                        wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 69)
                            .await;
                    reply(&mut stdin, if up { "ok" } else { "dev-b did not register" }).await;
                }
                Some("tasks") => {
                    // The cancelled task's call stops on dev-a.
                    let stopped = wait_until(Duration::from_secs(5), || {
                        gw.node("dev-a").is_some_and(|n| n.in_flight == 0)
                    })
                    .await;
                    reply(
                        &mut stdin,
                        if stopped { "ok" } else { "dev-a still runs it" },
                    )
                    .await;
                }
                Some(other) => panic!("unknown request from the script: {other}"),
                None => log.push(line),
            }
        }
        drop(dev_b);
        let status = exit_within(&mut child, Duration::from_secs(10)).await;
        assert!(status.success(), "ts-client.mjs {mode} failed ({status})");
        assert_eq!(log.last().map(String::as_str), Some("PASS"), "{mode}");
        assert!(log.iter().any(|l| l == &format!("transport: {mode}")));
        // The cancelled call stopped on the node.
        assert!(
            wait_until(Duration::from_secs(5), || gw
                .node("dev-a")
                .is_some_and(|n| n.in_flight == 0))
            .await,
            "{mode}: the cancelled call left the node"
        );
    });
}

/// The bridge as a child process, spoken to line by line.
struct Bridge {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Bridge {
    fn start(ws: &str) -> Bridge {
        Self::start_with(ws, &[])
    }

    fn start_with(ws: &str, args: &[&str]) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_toolwire"))
            .args(["mcp", "--gateway", ws])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Bridge {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// `initialize` (id 1, revision 2025-11-25) and `notifications/initialized`.
    async fn initialize(&mut self) {
        let r = self
            .request(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
            .await;
        assert_eq!(r["id"], 1, "{r}");
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
    }

    async fn send(&mut self, line: &str) {
        reply(&mut self.stdin, line).await;
    }

    async fn recv(&mut self) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        let line = line_within(&mut self.stdout, until)
            .await
            .expect("the bridge closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    async fn request(&mut self, line: &str) -> Value {
        self.send(line).await;
        self.recv().await
    }
}

#[test]
fn protocol_errors_are_answered_and_the_session_goes_on() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _dev = spawn_device(&ws, NodeOptions::new("dev"));
        assert!(gw.wait_for_node("dev", Duration::from_secs(10)).await);
        let mut b = Bridge::start(&ws);

        // An unknown version is answered with the latest; an older one is kept, and shapes
        // the results (no structuredContent before 2025-06-18).
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
            .await;
        assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
            .await;
        assert_eq!(r["id"], 1);
        assert_eq!(r["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(r["result"]["capabilities"]["tools"]["listChanged"], true);
        b.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;

        let cases: [(&str, Value, i64); 8] = [
            ("{not json", Value::Null, -32700),
            (
                r#"[{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
                Value::Null,
                -32600,
            ),
            (r#"{"jsonrpc":"2.0","id":3}"#, json!(3), -32600),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":"prompts/list"}"#,
                json!("s"),
                -32601,
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{}}}"#,
                json!(4),
                -32602,
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"dev__echo","arguments":[1]}}"#,
                json!(5),
                -32602,
            ),
            (
                r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"dev.echo"}}"#,
                json!(6),
                -32602,
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"ff-0"}}"#,
                json!(7),
                -32602,
            ),
        ];
        for (line, id, code) in cases {
            let r = b.request(line).await;
            assert_eq!(r["id"], id, "{line} -> {r}");
            assert_eq!(r["error"]["code"], code, "{line} -> {r}");
        }
        // Notifications get no answer, known or not, even with odd params; a cancel for an id
        // that is not running is ignored.
        b.send(r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":{"x":1}}"#)
            .await;
        b.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}"#)
            .await;
        b.send("").await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#)
            .await;
        assert_eq!(r, json!({"jsonrpc": "2.0", "id": 8, "result": {}}));

        let r = b
            .request(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"dev__echo","arguments":{"text":"hi"}}}"#)
            .await;
        assert_eq!(r["result"]["content"][0]["text"], r#"{"text":"hi"}"#);
        assert!(r["result"].get("structuredContent").is_none(), "{r}");
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":10,"method":"tools/list"}"#)
            .await;
        let tools = r["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 5);
        assert!(tools.iter().all(|t| t.get("title").is_none()), "{r}");
        assert!(r["result"].get("nextCursor").is_none());

        // A progress token given: progress goes out before the result.
        b.send(r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"dev__sample","arguments":{"channel":0,"count":3},"_meta":{"progressToken":7}}}"#)
            .await;
        for i in 1..=3 {
            let p = b.recv().await;
            assert_eq!(p["method"], "notifications/progress", "{p}");
            assert_eq!(p["params"]["progressToken"], 7);
            assert_eq!(p["params"]["progress"], i);
        }
        assert_eq!(b.recv().await["id"], 11);

        // stdin closing ends the bridge cleanly.
        drop(b.stdin);
        let status = exit_within(&mut b.child, Duration::from_secs(10)).await;
        assert!(status.success(), "{status}");
    });
}

/// `--timeout` bounds each call: a tool slower than it ends as a timeout result, well before
/// the tool would have finished (and before the gateway's own 30 s default).
#[test]
fn mcp_timeout_bounds_each_call() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let node = HostNode::new(NodeOptions::new("lab")).tool(Tool::new(
            "nap",
            "Sleeps five seconds.",
            json!({"type": "object"}),
            |_, _| async {
                smol::Timer::after(Duration::from_secs(5)).await;
                Ok(json!("rested"))
            },
        ));
        let _node = spawn_node(&ws, node);
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        let mut b = Bridge::start_with(&ws, &["--timeout", "0.5"]);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"lab__nap","arguments":{}}}"#)
            .await;
        assert_eq!(r["id"], 2, "{r}");
        assert_eq!(r["result"]["isError"], true, "{r}");
        let text = r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        // Without the deadline the tool would have answered "rested" after five seconds.
        assert!(text.contains("timeout"), "{r}");
    });
}

#[test]
fn mcp_bare_names_prefix_only_tools_two_nodes_share() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _a = spawn_device(&ws, NodeOptions::new("dev-a"));
        let _lab = spawn_node(&ws, lab());
        for id in ["dev-a", "lab"] {
            assert!(gw.wait_for_node(id, Duration::from_secs(10)).await, "{id}");
        }
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 62).await,
            "all tools registered"
        );
        let names = |r: &Value| -> Vec<String> {
            r["result"]["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("{r}"))
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let mut b = Bridge::start_with(&ws, &["--names", "bare"]);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
            .await;
        let listed = names(&r);
        assert!(listed.contains(&"read_sensor".to_owned()), "{listed:?}");
        assert!(listed.contains(&"t07".to_owned()), "{listed:?}");
        assert!(
            !listed.iter().any(|n| n.contains("__")),
            "one node each: {listed:?}"
        );
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_sensor","arguments":{"channel":1}}}"#)
            .await;
        assert_eq!(r["result"]["structuredContent"]["channel"], 1, "{r}");
        // A second device shares its tools: those become node__tool, the lab's stay bare.
        let _b = spawn_device(&ws, NodeOptions::new("dev-b"));
        assert!(gw.wait_for_node("dev-b", Duration::from_secs(10)).await);
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 67).await,
            "dev-b registered"
        );
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{}}"#)
            .await;
        let listed = names(&r);
        for n in ["dev-a__read_sensor", "dev-b__read_sensor", "t07", "measure"] {
            assert!(listed.contains(&n.to_owned()), "{n}: {listed:?}");
        }
        assert!(!listed.contains(&"read_sensor".to_owned()), "{listed:?}");
    });
}

#[test]
fn mcp_tools_flag_narrows_what_the_model_sees_and_calls() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _lab = spawn_node(&ws, lab());
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        assert!(
            wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 57).await,
            "all tools registered"
        );
        let mut b = Bridge::start_with(&ws, &["--tools", "lab/t0*", "--tools", "measure"]);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
            .await;
        let mut names: Vec<&str> = r["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("lab__t0{i}")).collect();
        want.push("lab__measure".into());
        want.sort();
        assert_eq!(names, want, "{r}");
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"lab__t03","arguments":{"x":7}}}"#)
            .await;
        assert_eq!(r["result"]["structuredContent"]["x"], 7, "{r}");
        // A tool outside the set is not in the bridge's table: an unknown tool to the model.
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"lab__fail","arguments":{}}}"#)
            .await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        // The gateway's own view is untouched.
        assert_eq!(gw.tools(None, None).len(), 57);
    });
}

#[test]
fn mcp_allow_ask_answers_a_tools_permission_question() {
    use toolwire_core::frame::AskKind;
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let ask = |name: &str| {
            Tool::new(
                name,
                "Opens if allowed.",
                json!({"type": "object"}),
                |ctx, _| async move {
                    let yes = ctx.ask(AskKind::Permission, "Open it?", None).await?;
                    if yes == json!(true) {
                        Ok(json!("opened"))
                    } else {
                        Err(ToolError::failed("not allowed"))
                    }
                },
            )
        };
        let node = HostNode::new(NodeOptions::new("lab"))
            .tool(ask("valve"))
            .tool(ask("vent"))
            .tool(ask("hatch"));
        let _node = spawn_node(&ws, node);
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        assert!(wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 3).await);
        let args = ["--allow-ask", "lab/v*", "--deny-ask", "vent"];
        let mut b = Bridge::start_with(&ws, &args);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
            .await;
        assert_eq!(
            r["result"]["tools"].as_array().map(Vec::len),
            Some(3),
            "{r}"
        );
        let call = |id: u32, tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"lab__{tool}","arguments":{{}}}}}}"#
            )
        };
        // Allowed by the rule: the bridge took no question.
        let r = b.request(&call(3, "valve")).await;
        assert_ne!(r["result"]["isError"], true, "{r}");
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("opened"),
            "{r}"
        );
        // Denied (the deny comes first), and unmatched (declined, no elicitation yet).
        for (id, tool) in [(4, "vent"), (5, "hatch")] {
            let r = b.request(&call(id, tool)).await;
            assert_eq!(r["result"]["isError"], true, "{r}");
        }
    });
}

/// A client that declares elicitation gets a node's asks as `elicitation/create`: an input ask
/// with the ask's schema (answered by the user's `accept`), a permission as a yes/no field (the
/// user's `decline` refuses it); a client without the capability gets none (the ask is
/// declined).
#[test]
fn mcp_asks_become_elicitations_for_a_client_that_takes_them() {
    use toolwire_core::frame::AskKind;
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let node = HostNode::new(NodeOptions::new("lab"))
            .tool(name_tool("name"))
            .tool(Tool::new(
                "count",
                "Asks for a number.",
                json!({"type": "object"}),
                |ctx, _| async move {
                    let schema = json!({"type": "integer", "minimum": 1});
                    let n = ctx.ask(AskKind::Input, "How many?", Some(schema)).await?;
                    Ok(json!({"n": n}))
                },
            ))
            .tool(valve_tool("valve"))
            .tool(Tool::new(
                "pair",
                "Asks a name and a permission at once.",
                json!({"type": "object"}),
                |ctx, _| async move {
                    let schema =
                        json!({"type": "object", "properties": {"name": {"type": "string"}}});
                    let name = ctx.ask(AskKind::Input, "Who?", Some(schema));
                    let yes = ctx.ask(AskKind::Permission, "May I?", None);
                    let (name, yes) = smol::future::zip(name, yes).await;
                    Ok(json!({"name": name?["name"], "yes": yes?}))
                },
            ));
        let _node = spawn_node(&ws, node);
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        let mut b = Bridge::start(&ws);
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"t","version":"0"}}}"#;
        assert_eq!(b.request(init).await["id"], 1);
        b.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        let call = |id: u32, tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"lab__{tool}","arguments":{{}}}}}}"#
            )
        };
        // An input ask: the node's schema, the user's content.
        let e = b.request(&call(2, "name")).await;
        assert_eq!(e["method"], "elicitation/create", "{e}");
        assert_eq!(e["params"]["message"], "Who is it?");
        assert_eq!(
            e["params"]["requestedSchema"]["properties"]["name"]["type"],
            "string"
        );
        let answer = json!({"jsonrpc": "2.0", "id": e["id"], "result": {
            "action": "accept", "content": {"name": "Ada"}}});
        let r = b.request(&answer.to_string()).await;
        assert_eq!(
            (r["id"].clone(), r["result"]["content"][0]["text"].clone()),
            (json!(2), json!("hello Ada")),
            "{r}"
        );
        // A schema that is not an object is wrapped as the field `value`, and unwrapped.
        let e = b.request(&call(3, "count")).await;
        assert_eq!(
            e["params"]["requestedSchema"]["properties"]["value"]["minimum"], 1,
            "{e}"
        );
        let answer = json!({"jsonrpc": "2.0", "id": e["id"], "result": {
            "action": "accept", "content": {"value": 4}}});
        let r = b.request(&answer.to_string()).await;
        assert_eq!(r["result"]["structuredContent"], json!({"n": 4}), "{r}");
        // A permission: a yes/no field; declining refuses it (the tool gets `false`).
        let e = b.request(&call(4, "valve")).await;
        assert_eq!(
            e["params"]["requestedSchema"]["properties"]["allow"]["type"], "boolean",
            "{e}"
        );
        let answer = json!({"jsonrpc": "2.0", "id": e["id"], "result": {"action": "decline"}});
        let r = b.request(&answer.to_string()).await;
        assert_eq!(
            r["result"]["structuredContent"],
            json!({"opened": false}),
            "{r}"
        );
        // Accepting it says yes.
        let e = b.request(&call(5, "valve")).await;
        let answer = json!({"jsonrpc": "2.0", "id": e["id"], "result": {
            "action": "accept", "content": {"allow": true}}});
        let r = b.request(&answer.to_string()).await;
        assert_eq!(
            r["result"]["structuredContent"],
            json!({"opened": true}),
            "{r}"
        );
        // Two asks open at once are two elicitations at once, answered in any order.
        let first = b.request(&call(7, "pair")).await;
        let second = b.recv().await;
        let mut by_message: Vec<(String, Value)> = [&first, &second]
            .iter()
            .map(|e| {
                (
                    e["params"]["message"].as_str().unwrap_or("?").to_owned(),
                    e["id"].clone(),
                )
            })
            .collect();
        by_message.sort_by(|a, b| a.0.cmp(&b.0));
        let [(m1, may), (m2, who)] = &by_message[..] else {
            panic!("two elicitations: {first} {second}");
        };
        assert_eq!((m1.as_str(), m2.as_str()), ("May I?", "Who?"));
        let yes = json!({"jsonrpc": "2.0", "id": may, "result": {
            "action": "accept", "content": {"allow": true}}});
        b.send(&yes.to_string()).await;
        let name = json!({"jsonrpc": "2.0", "id": who, "result": {
            "action": "accept", "content": {"name": "Bo"}}});
        let r = b.request(&name.to_string()).await;
        assert_eq!(
            (r["id"].clone(), r["result"]["structuredContent"].clone()),
            (json!(7), json!({"name": "Bo", "yes": true})),
            "{r}"
        );
        // Cancelling an input ask declines it: a tool error the model sees.
        let e = b.request(&call(6, "name")).await;
        let answer = json!({"jsonrpc": "2.0", "id": e["id"], "result": {"action": "cancel"}});
        let r = b.request(&answer.to_string()).await;
        assert_eq!(r["result"]["isError"], true, "{r}");
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("-32013"),
            "{r}"
        );

        // Without the capability: no elicitation, the ask is declined.
        let mut b = Bridge::start(&ws);
        b.initialize().await;
        let r = b.request(&call(2, "name")).await;
        assert_eq!(
            (r["id"].clone(), r["result"]["isError"].clone()),
            (json!(2), json!(true)),
            "{r}"
        );
    });
}

/// A result that breaks the tool's declared output schema is a tool error saying so, not a
/// `structuredContent` the client would refuse the whole call for.
#[test]
fn mcp_results_are_checked_against_the_output_schema() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let schema = json!({"type": "object", "properties": {"volts": {"type": "number"}},
            "required": ["volts"]});
        let node = HostNode::new(NodeOptions::new("lab"))
            .tool(
                Tool::new(
                    "liar",
                    "Says volts are high.",
                    json!({"type": "object"}),
                    |_, _| async { Ok(json!({"volts": "high"})) },
                )
                .output_schema(schema.clone()),
            )
            .tool(
                Tool::new(
                    "honest",
                    "Measures.",
                    json!({"type": "object"}),
                    |_, _| async { Ok(json!({"volts": 3.3})) },
                )
                .output_schema(schema),
            );
        let _node = spawn_node(&ws, node);
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        let mut b = Bridge::start(&ws);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"lab__liar","arguments":{}}}"#)
            .await;
        assert_eq!(r["result"]["isError"], true, "{r}");
        let text = r["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("breaks its output schema") && text.contains("/volts"),
            "{text}"
        );
        assert!(r["result"].get("structuredContent").is_none(), "{r}");
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"lab__honest","arguments":{}}}"#)
            .await;
        assert_eq!(
            r["result"]["structuredContent"],
            json!({"volts": 3.3}),
            "{r}"
        );
    });
}

/// The stdio bridge outlives its gateway: while the gateway is away calls are tool errors;
/// once a new one listens at the same address, the bridge connects again by itself, tells the
/// client the tools changed, and calls work again. The process never exits.
#[test]
fn the_bridge_reconnects_to_a_gateway_that_restarts() {
    use toolwire_smol::{Endpoint, Gateway};
    smol::block_on(async {
        let port = free_port();
        let ep = Endpoint::parse(&format!("ws://127.0.0.1:{port}")).unwrap();
        let ws = format!("ws://127.0.0.1:{port}/ws");
        let gw = Gateway::new(GatewayConfig::default());
        let listener = gw.listen(&ep, None).await.unwrap();
        let _dev = spawn_device(&ws, NodeOptions::new("dev-a"));
        assert!(gw.wait_for_node("dev-a", Duration::from_secs(10)).await);
        let mut b = Bridge::start(&ws);
        b.initialize().await;
        let call = |id: u32| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"dev-a__uptime","arguments":{{}}}}}}"#
            )
        };
        let r = b.request(&call(2)).await;
        assert_ne!(r["result"]["isError"], true, "{r}");

        gw.shutdown();
        listener.close().await;
        drop(gw);
        // Away: a call is a tool error, and the bridge is still there.
        smol::Timer::after(Duration::from_millis(200)).await;
        let r = b.request(&call(3)).await;
        assert_eq!(
            (r["id"].clone(), r["result"]["isError"].clone()),
            (json!(3), json!(true)),
            "{r}"
        );

        let gw = Gateway::new(GatewayConfig::default());
        let mut listener = None;
        for _ in 0..50 {
            match gw.listen(&ep, None).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => {
                    smol::Timer::after(Duration::from_millis(100)).await;
                }
            }
        }
        let _listener = listener.expect("the port again");
        assert!(gw.wait_for_node("dev-a", Duration::from_secs(15)).await);
        // Back: the client hears that the tools changed, and calls go through.
        let until = Instant::now() + Duration::from_secs(15);
        let mut changed = false;
        while Instant::now() < until && !changed {
            let line = line_within(&mut b.stdout, until).await.expect("a line");
            let v: Value = serde_json::from_str(&line).unwrap();
            changed = v["method"] == "notifications/tools/list_changed";
        }
        assert!(changed, "list_changed after the reconnect");
        let mut ok = false;
        for id in 10..40 {
            let r = b.request(&call(id)).await;
            if r["result"]["isError"] != true {
                ok = true;
                break;
            }
            smol::Timer::after(Duration::from_millis(200)).await;
        }
        assert!(ok, "calls work again");
        assert!(
            b.child.try_status().unwrap().is_none(),
            "the bridge never exited"
        );
    });
}

/// The value `lab__long` returns: some 20 KB of JSON text with characters of one to four bytes.
fn long_value() -> Value {
    json!({"text": "aé€😀".repeat(2000), "n": 2000})
}

/// A node `lab` with `long` (returns [`long_value`]), `small` (`{"ok": true}`) and `measure`
/// (declares an output schema).
fn budget_lab() -> HostNode {
    HostNode::new(NodeOptions::new("lab"))
        .tool(Tool::new(
            "long",
            "Returns some 20 KB.",
            json!({"type": "object"}),
            |_, _| async { Ok(long_value()) },
        ))
        .tool(Tool::new(
            "small",
            "Returns a few bytes.",
            json!({"type": "object"}),
            |_, _| async { Ok(json!({"ok": true})) },
        ))
        .tool(
            Tool::new(
                "measure",
                "Measures a voltage.",
                json!({"type": "object"}),
                |_, _| async { Ok(json!({"volts": 3.3})) },
            )
            .output_schema(json!({"type": "object", "properties": {"volts": {"type": "number"}}})),
        )
}

/// A `tools/call` request line.
fn call_line(id: u32, name: &str, args: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": args}})
    .to_string()
}

/// A truncation note: the bytes shown `(from, to, total)`, and the read tool's arguments.
type Note = ((u64, u64, u64), Value);

/// Splits a text block into the page and, when it ends with a truncation note, the note's
/// `(from, to, total)` and the arguments it gives for `toolwire_read_result`.
fn split_note(text: &str) -> (&str, Option<Note>) {
    let Some((page, note)) = text.rsplit_once("\n[toolwire: ") else {
        return (text, None);
    };
    let note = note.strip_suffix(']').unwrap_or_else(|| panic!("{note}"));
    let (shown, args) = note
        .split_once(" shown. Read more with the tool toolwire_read_result and ")
        .unwrap_or_else(|| panic!("{note}"));
    let nums: Vec<u64> = shown
        .trim_start_matches("result truncated — ")
        .trim_start_matches("bytes ")
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 3, "{note}");
    let args: Value = serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {note}"));
    (page, Some(((nums[0], nums[1], nums[2]), args)))
}

fn text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

fn listed_names(r: &Value) -> Vec<String> {
    r["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn mcp_max_result_bytes_cuts_long_results_and_the_read_tool_pages_through() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _lab = spawn_node(&ws, budget_lab());
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        assert!(wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 3).await);
        let full = serde_json::to_string(&long_value()).unwrap();
        let mut b = Bridge::start_with(&ws, &["--max-result-bytes", "1000"]);
        b.initialize().await;

        // One more tool, after the nodes'; no output schemas under a budget.
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
            .await;
        assert_eq!(
            listed_names(&r),
            [
                "lab__long",
                "lab__measure",
                "lab__small",
                "toolwire_read_result"
            ],
            "{r}"
        );
        let tools = r["result"]["tools"].as_array().unwrap();
        assert!(tools.iter().all(|t| t.get("outputSchema").is_none()), "{r}");
        assert_eq!(
            tools[3]["inputSchema"]["required"],
            json!(["handle", "offset"])
        );

        // Within the budget: as without one.
        let r = b.request(&call_line(3, "lab__small", &json!({}))).await;
        assert_eq!(text(&r), r#"{"ok":true}"#, "{r}");
        assert_eq!(r["result"]["structuredContent"], json!({"ok": true}));
        let r = b.request(&call_line(4, "lab__measure", &json!({}))).await;
        assert_eq!(
            r["result"]["structuredContent"],
            json!({"volts": 3.3}),
            "{r}"
        );

        // Past it: the first page, then the note.
        let r = b.request(&call_line(5, "lab__long", &json!({}))).await;
        assert!(r["result"].get("isError").is_none(), "{r}");
        assert!(r["result"].get("structuredContent").is_none(), "{r}");
        let t = text(&r);
        let (first, note) = split_note(&t);
        let ((from, to, total), mut args) = note.expect("a truncation note");
        assert!(
            t.contains("\n[toolwire: result truncated — bytes 0 to "),
            "{t}"
        );
        assert_eq!(
            (from, to, total),
            (0, first.len() as u64, full.len() as u64)
        );
        assert!(first.len() <= 1000 && first.len() > 990, "{}", first.len());
        assert_eq!(args["offset"].as_u64(), Some(to));
        let handle = args["handle"].as_str().unwrap().to_owned();
        assert!(full.starts_with(first));

        // The read tool, from note to note, until a page comes without one.
        let mut joined = first.to_owned();
        let mut pages = 0;
        for id in 100..200 {
            let r = b
                .request(&call_line(id, "toolwire_read_result", &args))
                .await;
            assert!(r["result"].get("isError").is_none(), "{r}");
            let t = text(&r);
            let (page, note) = split_note(&t);
            assert!(page.len() <= 1000 && !page.is_empty(), "{}", page.len());
            assert_eq!(Some(joined.len() as u64), args["offset"].as_u64());
            joined.push_str(page);
            pages += 1;
            match note {
                Some(((from, to, total), next)) => {
                    assert!(!t.contains("result truncated"), "later pages: {t}");
                    assert_eq!(to - from, page.len() as u64);
                    assert_eq!(total, full.len() as u64);
                    assert_eq!(next["handle"], handle.as_str());
                    args = next;
                }
                None => break,
            }
        }
        assert!(pages >= 15, "{pages} pages");
        assert_eq!(joined, full, "the pieces add up to the result's JSON text");

        // A length of its own, from the start.
        let a = json!({"handle": handle, "offset": 0, "length": 100});
        let r = b.request(&call_line(300, "toolwire_read_result", &a)).await;
        let t = text(&r);
        let (page, note) = split_note(&t);
        assert!(page.len() <= 100 && full.starts_with(page), "{t}");
        assert_eq!(note.unwrap().1["offset"].as_u64(), Some(page.len() as u64));

        // The gateway's refusals, and bad arguments, are isError results.
        let inside = (0..full.len())
            .find(|&i| !full.is_char_boundary(i))
            .unwrap();
        let cases = [
            (json!({"handle": "r999999", "offset": 0}), "-32015"),
            (json!({"handle": handle, "offset": inside}), "-32602"),
            (
                json!({"handle": handle, "offset": full.len() + 1}),
                "-32602",
            ),
            (json!({"handle": handle}), "offset"),
            (
                json!({"handle": handle, "offset": 0, "length": 0}),
                "length",
            ),
            (json!({"offset": 0}), "handle"),
        ];
        for (i, (a, want)) in cases.iter().enumerate() {
            let r = b
                .request(&call_line(400 + i as u32, "toolwire_read_result", a))
                .await;
            assert_eq!(r["result"]["isError"], true, "{a} -> {r}");
            assert!(text(&r).contains(want), "{a} -> {r}");
        }
        drop(b);

        // Without the flag: no extra tool (an unknown name to the model), whole results, and
        // output schemas listed.
        let mut b = Bridge::start(&ws);
        b.initialize().await;
        let r = b
            .request(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
            .await;
        assert_eq!(
            listed_names(&r),
            ["lab__long", "lab__measure", "lab__small"],
            "{r}"
        );
        assert!(r["result"]["tools"][1].get("outputSchema").is_some(), "{r}");
        let a = json!({"handle": handle, "offset": 0});
        let r = b.request(&call_line(3, "toolwire_read_result", &a)).await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        let r = b.request(&call_line(4, "lab__long", &json!({}))).await;
        assert_eq!(text(&r), full);
        assert_eq!(r["result"]["structuredContent"], long_value());
    });
}

/// The listing's pages under a budget: the read tool comes once, after every node's tool.
#[test]
fn mcp_read_tool_comes_last_in_a_paged_listing() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let _lab = spawn_node(&ws, lab());
        assert!(gw.wait_for_node("lab", Duration::from_secs(10)).await);
        assert!(wait_until(Duration::from_secs(10), || gw.tools(None, None).len() == 57).await);
        let mut b = Bridge::start_with(&ws, &["--max-result-bytes", "64"]);
        b.initialize().await;
        let mut names = vec![];
        let mut pages = vec![];
        let mut cursor = Value::Null;
        for id in 2..12 {
            let r = b
                .request(
                    &json!({"jsonrpc": "2.0", "id": id, "method": "tools/list",
                            "params": {"cursor": cursor}})
                    .to_string(),
                )
                .await;
            let page = listed_names(&r);
            pages.push(page.len());
            names.extend(page);
            cursor = r["result"]["nextCursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        assert_eq!(pages, [50, 8]);
        assert_eq!(names.len(), 58);
        assert_eq!(
            names.last().map(String::as_str),
            Some("toolwire_read_result")
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| *n == "toolwire_read_result")
                .count(),
            1
        );
    });
}
