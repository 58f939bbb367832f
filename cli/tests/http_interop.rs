//! The gateway's HTTP face (the `toolwire` binary) against third-party clients on loopback:
//! curl for single requests, httpx and prometheus_client's OpenMetrics parser from Python
//! (`tests/http_client.py`), and schemathesis, which tests the live API against the gateway's
//! own `/openapi.json` (`tests/schemathesis.toml`).
//!
//! curl must be installed (scripts/test.sh installs it); the Python clients come from
//! `scripts/python-env.sh`, which installs what is missing. If either cannot be had, the tests
//! fail: they never skip.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{KillOnDrop, python};
use serde_json::{Value, json};

/// A token for every role (the node and the HTTP clients use it).
const FULL: &str = "full-secret";
/// A controller-only token whose ACL allows `host/echo` and `uptime` on any node.
const NARROW: &str = "narrow-secret";
/// The demo device's tools, by name.
const DEMO_TOOLS: [&str; 5] = ["echo", "read_sensor", "sample", "set_led", "uptime"];
/// Proxy settings of the environment must not send loopback requests elsewhere.
const NO_PROXY: &str = "127.0.0.1,localhost";

/// A `toolwire gateway` child with the two tokens, and a `toolwire node` child, `host`, offering
/// the demo device's tools; both killed when dropped (the node first).
struct Gateway {
    _node: KillOnDrop,
    _gateway: KillOnDrop,
    port: u16,
}

impl Gateway {
    /// Starts both and waits until the node's tools are registered.
    fn start(extra: &[&str]) -> Gateway {
        let narrow = format!("{NARROW}=host/echo,uptime");
        let mut child = Command::new(env!("CARGO_BIN_EXE_toolwire"))
            .args(["gateway", "--ws", "ws://127.0.0.1:0", "--token", FULL])
            .args(["--controller-token", &narrow])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting `toolwire gateway`");
        let stderr = child.stderr.take().unwrap();
        let gateway = KillOnDrop(child);
        // The gateway says where it listens on stderr; the rest of its log is passed on.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[gateway] {line}");
                if let Some(port) = line
                    .strip_prefix("listening on ws://127.0.0.1:")
                    .and_then(|rest| rest.trim_end_matches('/').parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway did not print `listening on ws://127.0.0.1:PORT/`");
        let node = Command::new(env!("CARGO_BIN_EXE_toolwire"))
            .args(["node", "--gateway", &format!("ws://127.0.0.1:{port}/ws")])
            .args(["--token", FULL, "--id", "host", "--demo-tools"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting `toolwire node`");
        let gw = Gateway {
            _node: KillOnDrop(node),
            _gateway: gateway,
            port,
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = curl(&[&bearer(FULL), &gw.url("/v1/nodes/host")]);
            if r.status == 200 && r.json()["tools"] == DEMO_TOOLS.len() {
                break;
            }
            assert!(
                Instant::now() < until,
                "node `host` did not register its tools: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

fn bearer(token: &str) -> String {
    format!("-HAuthorization: Bearer {token}")
}

/// One HTTP response as curl received it.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts an error answer: `status`, and the protocol's error object with `code`.
    fn expect_error(&self, status: u16, code: i64) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{self:?}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v["error"].clone()
    }
}

/// Runs curl with `args` (and `body` on its stdin, for `--data-binary @-`).
fn curl_with(args: &[&str], body: Option<&[u8]>) -> Reply {
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", "30"])
        .args(["--noproxy", "*"])
        .args(args)
        .stdin(if body.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running curl (scripts/test.sh installs it: apt-get install curl)");
    if let Some(body) = body {
        let mut stdin = child.stdin.take().unwrap();
        let body = body.to_vec();
        // Written from a thread: curl may answer (and stop reading) before it has all of it.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).expect("a UTF-8 response");
    // Interim responses (`100 Continue`) come first, each with a head of its own.
    loop {
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head: {text:?}"));
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head:?}"));
        if (100..200).contains(&status) {
            text = rest.to_owned();
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        return Reply {
            status,
            headers,
            body: rest.to_owned(),
        };
    }
}

fn curl(args: &[&str]) -> Reply {
    curl_with(args, None)
}

/// POSTs `args` as JSON to a tool's call route with `token`.
fn call(gw: &Gateway, token: &str, node: &str, tool: &str, args: &str, extra: &[&str]) -> Reply {
    let url = gw.url(&format!("/v1/nodes/{node}/tools/{tool}/call"));
    let mut a = vec![
        "-HContent-Type: application/json",
        "--data-binary",
        args,
        url.as_str(),
    ];
    let auth = bearer(token);
    a.push(&auth);
    a.extend_from_slice(extra);
    curl(&a)
}

/// Server-sent events of a body: (event, data) in order.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")));
                }
            }
            (
                event.unwrap_or_else(|| panic!("an event without a name: {block:?}")),
                data.unwrap_or_else(|| panic!("an event without data: {block:?}")),
            )
        })
        .collect()
}

/// Runs `cmd` (stdout captured and echoed to stderr as `[what] …`), killed after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> (ExitStatus, Vec<String>) {
    let mut child = KillOnDrop(
        cmd.env("NO_PROXY", NO_PROXY)
            .env("no_proxy", NO_PROXY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}")),
    );
    let stdout = child.0.stdout.take().unwrap();
    let what_ = what.to_owned();
    let reader = std::thread::spawn(move || {
        let mut lines = vec![];
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{what_}] {line}");
            lines.push(line);
        }
        lines
    });
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "{what} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

#[test]
fn curl_calls_tools_streams_and_gets_the_documented_errors() {
    let gw = Gateway::start(&[]);

    // No token needed for health and the document.
    let r = curl(&[&gw.url("/healthz")]);
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"status": "ok"})),
        "{r:?}"
    );
    let r = curl(&[&gw.url("/openapi.json")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["openapi"], "3.1.0");

    // A call: the tool's JSON result is the body.
    let r = call(&gw, FULL, "host", "echo", r#"{"text":"hello"}"#, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"text": "hello"}));
    // As plain `curl -d` sends it (Content-Type: application/x-www-form-urlencoded): still
    // JSON, and accepted.
    let r = curl(&[
        &bearer(FULL),
        "-d",
        r#"{"text":"dash d"}"#,
        &gw.url("/v1/nodes/host/tools/echo/call"),
    ]);
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"text": "dash d"})),
        "{r:?}"
    );
    let r = call(&gw, FULL, "host", "read_sensor", r#"{"channel":2}"#, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["channel"], 2, "{r:?}");
    assert!(r.json()["milli_c"].is_i64(), "{r:?}");

    // Streamed: progress events, then the result last.
    let r = call(
        &gw,
        FULL,
        "host",
        "sample",
        r#"{"channel":1,"count":3,"interval_ms":20}"#,
        &["-HAccept: text/event-stream", "--no-buffer"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r.body);
    assert_eq!(ev.len(), 4, "{ev:?}");
    for (i, (name, data)) in ev[..3].iter().enumerate() {
        assert_eq!(name, "progress", "{ev:?}");
        assert_eq!(data["progress"], i + 1, "{ev:?}");
        assert_eq!(data["total"], 3, "{ev:?}");
    }
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "result", "{ev:?}");
    assert_eq!((&data["channel"], &data["count"]), (&json!(1), &json!(3)));
    assert!(
        r.body
            .trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .starts_with("event: result\n"),
        "{:?}",
        r.body
    );
    // A streamed call that fails ends with an `error` event (the deadline passes mid-way).
    let url = gw.url("/v1/nodes/host/tools/sample/call?deadline_ms=200");
    let r = curl(&[
        &bearer(FULL),
        "-HContent-Type: application/json",
        "-HAccept: text/event-stream",
        "--data-binary",
        r#"{"channel":0,"count":50,"interval_ms":100}"#,
        &url,
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let (name, data) = events(&r.body).pop().unwrap();
    assert_eq!(
        (name.as_str(), &data["error"]["code"]),
        ("error", &json!(-32003))
    );

    // No token, or a wrong one: 401 with a challenge.
    let r = curl(&[
        "-HContent-Type: application/json",
        "--data-binary",
        r#"{"text":"hello"}"#,
        &gw.url("/v1/nodes/host/tools/echo/call"),
    ]);
    r.expect_error(401, -32006);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    call(&gw, "not-a-token", "host", "echo", r#"{"text":"x"}"#, &[]).expect_error(401, -32006);

    // The narrow token: its ACL allows echo, not set_led (403), and not read_sensor.
    call(
        &gw,
        NARROW,
        "host",
        "set_led",
        r#"{"led":1,"on":true}"#,
        &[],
    )
    .expect_error(403, -32006);
    call(&gw, NARROW, "host", "read_sensor", r#"{"channel":0}"#, &[]).expect_error(403, -32006);
    let r = call(&gw, NARROW, "host", "echo", r#"{"text":"narrow"}"#, &[]);
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"text": "narrow"})),
        "{r:?}"
    );
    let r = call(&gw, NARROW, "host", "uptime", "{}", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["ms"].is_u64(), "{r:?}");

    // An unknown node, an unknown tool.
    call(&gw, FULL, "nowhere", "echo", r#"{"text":"x"}"#, &[]).expect_error(404, -32011);
    call(&gw, FULL, "host", "no_such_tool", "{}", &[]).expect_error(404, -32001);

    // Arguments that break the tool's schema: 400, -32002, with where.
    let e = call(&gw, FULL, "host", "echo", r#"{"text":5}"#, &[]).expect_error(400, -32002);
    assert_eq!(e["data"]["path"], "/text", "{e}");
    call(&gw, FULL, "host", "set_led", r#"{"led":9,"on":true}"#, &[]).expect_error(400, -32002);
    // Not an object, not JSON, not declared JSON.
    call(&gw, FULL, "host", "echo", "[1]", &[]).expect_error(400, -32602);
    call(&gw, FULL, "host", "echo", "{nope", &[]).expect_error(400, -32602);
    let r = curl(&[
        &bearer(FULL),
        "-HContent-Type: text/plain",
        "--data-binary",
        r#"{"text":"x"}"#,
        &gw.url("/v1/nodes/host/tools/echo/call"),
    ]);
    r.expect_error(415, -32602);

    // A body one byte over the default limit (1 MiB): 413, -32008. It is a JSON object, so only
    // its size is wrong.
    let max = 1024 * 1024;
    let mut big = br#"{"text":""#.to_vec();
    big.resize(max + 1 - 2, b'a');
    big.extend_from_slice(br#""}"#);
    assert_eq!(big.len(), max + 1);
    let url = gw.url("/v1/nodes/host/tools/echo/call");
    let auth = bearer(FULL);
    let r = curl_with(
        &[
            &auth,
            "-HContent-Type: application/json",
            "--data-binary",
            "@-",
            &url,
        ],
        Some(&big),
    );
    r.expect_error(413, -32008);
}

#[test]
fn httpx_and_prometheus_client_see_what_was_done() {
    let python = python();
    let gw = Gateway::start(&[]);
    // A bucket of one call per node, refilled every 10 s: the second call within 10 s is
    // refused.
    let limited = Gateway::start(&["--rate", "0.1"]);
    let mut cmd = Command::new(&python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_client.py"))
        .args([&gw.base(), FULL, &limited.base()]);
    let (status, lines) = run_bounded(cmd, Duration::from_secs(60), "http_client.py");
    assert!(status.success(), "http_client.py failed ({status})");
    assert_eq!(lines.last().map(String::as_str), Some("PASS"));
}

#[test]
fn schemathesis_finds_the_live_api_as_documented() {
    let python = python();
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing",
        schemathesis.display()
    );
    let gw = Gateway::start(&[]);
    // Its example database and any report go to a scratch folder, not the work tree.
    let scratch = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let mut cmd = Command::new(&schemathesis);
    cmd.current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &gw.url("/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {FULL}")])
        // Every check. (schemathesis.toml says why two of them accept more on callTool.)
        .args(["--checks", "all"])
        // Bounded: ~10 s of requests here; a request (a call's default deadline is 30 s) at
        // most 40 s.
        .args(["--max-examples", "50", "--request-timeout", "40"])
        .arg("--no-color");
    // One fixed seed by default, so that CI runs the same examples every time (a random run
    // could fail one CI run in many on a case no change brought in). TOOLWIRE_SCHEMATHESIS_SEED
    // picks another, or `random` for a fresh one each run (a failure names its seed).
    let seed = std::env::var("TOOLWIRE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261201".into());
    if seed != "random" {
        cmd.args(["--seed", &seed]);
    }
    let (status, lines) = run_bounded(cmd, Duration::from_secs(150), "schemathesis");
    // It tested every operation of the document (all but /openapi.json itself, which it
    // skips) and found nothing.
    let after = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .unwrap_or_else(|| panic!("no `{label}` in schemathesis's summary"))
    };
    let selected = after("Selected:");
    let tested = after("Tested:");
    let (n, total) = selected.split_once('/').unwrap();
    assert_eq!(n, total, "operations left out: {selected}");
    assert_eq!(tested, n, "operations untested: {tested} of {selected}");
    assert!(n.parse::<usize>().unwrap() >= 10, "{selected}");
    let summary = lines
        .iter()
        .skip_while(|l| l.trim() != "Test cases:")
        .nth(1)
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    let generated: usize = summary
        .split_once(" generated, ")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(generated > 0, "no test cases ran: {summary:?}");
    assert!(
        status.success(),
        "schemathesis reported failures ({status}): see its output above"
    );
    assert_eq!(
        summary,
        format!("{generated} generated, {generated} passed")
    );
}
