//! The `toolwire` command line: run a gateway or a host node, list and call tools, bridge to
//! MCP, or run the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use toolwire::builtin::ShellLimits;
use toolwire_core::router::{DEFAULT_MAX_CONTROLLERS, DEFAULT_MAX_NODES};
use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
use toolwire_smol::gateway::{Acl, RateLimit, TokenSpec};
use toolwire_smol::node::{HostNode, NodeOptions, SessionEnd};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig, tls};

#[derive(Parser)]
#[command(
    name = "toolwire",
    version,
    about = "Remote tool calling for devices and hosts"
)]
struct Cli {
    /// Log level filter (also RUST_LOG).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gateway.
    Gateway(GatewayArgs),
    /// Run a host node offering opt-in built-in tools.
    Node(NodeArgs),
    /// List the tools of a running gateway (JSON).
    Tools(ToolsArgs),
    /// Call a tool through a running gateway: NODE TOOL JSON-ARGUMENTS (result as JSON).
    Call(CallArgs),
    /// Serve MCP over stdio: every node's tools for an MCP host (Claude Desktop, an IDE …).
    Mcp(McpArgs),
    /// Start a gateway and a simulated device in this process and show a few calls.
    Demo,
}

#[derive(Args)]
struct GatewayArgs {
    /// Listen for HTTP on ws://ADDR (or wss://ADDR with --tls-cert/--tls-key): WebSocket peers
    /// on GET /ws, the REST API under /v1, /metrics, /healthz, /readyz, /openapi.json.
    #[arg(long, default_value = "ws://127.0.0.1:7700")]
    ws: Vec<String>,
    /// Listen for TCP connections with COBS framing (tcp://ADDR or tls://ADDR).
    #[arg(long)]
    tcp: Vec<String>,
    /// Dial a node that listens (tcp://HOST:PORT, e.g. a serial line bridged to TCP).
    #[arg(long)]
    dial: Vec<String>,
    /// Accept this token (repeatable). Required on non-loopback addresses.
    #[arg(long)]
    token: Vec<String>,
    /// A controller token limited to some tools: TOKEN=PATTERN[,PATTERN…], patterns `node/tool`
    /// or `tool`, `*` wildcard (repeatable).
    #[arg(long, value_name = "TOKEN=PATTERNS")]
    controller_token: Vec<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Calls per second allowed per node (token bucket; burst = 2 s worth).
    #[arg(long)]
    rate: Option<f64>,
    /// Keep results of tools annotated read-only and idempotent this many seconds and answer
    /// repeated calls (same node, tool and arguments) without the node. Off by default.
    #[arg(long, value_name = "SECS")]
    cache_ttl: Option<f64>,
    /// Bytes the result cache may hold (with --cache-ttl).
    #[arg(long, default_value_t = 16 << 20, requires = "cache_ttl")]
    cache_max_bytes: usize,
    /// Allow a non-loopback listener without a token.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Nodes connected at once, at most; a node past it is refused with -32005 ("gateway
    /// full"). Every connection is a file descriptor: see `ulimit -n`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_NODES, value_parser = count)]
    max_nodes: usize,
    /// Controllers connected at once, at most, counted apart from nodes (a flood of nodes
    /// cannot lock controllers out).
    #[arg(long, value_name = "M", default_value_t = DEFAULT_MAX_CONTROLLERS, value_parser = count)]
    max_controllers: usize,
    /// Seconds between pings; a peer silent for three intervals is dropped.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    heartbeat: Duration,
    /// Seconds a new connection has to say hello (TLS and WebSocket setup included).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    handshake_timeout: Duration,
    /// Largest HTTP request body, in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value = "1048576", value_parser = count)]
    http_max_body: usize,
    /// Seconds an HTTP client has to send a request head (also the keep-alive idle timeout).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    http_header_timeout: Duration,
    /// HTTP connections at once from one address, WebSocket peers not counted (429 beyond).
    #[arg(long, value_name = "N", default_value = "64", value_parser = count)]
    http_max_per_source: usize,
    /// Do not serve MCP (Streamable HTTP) at /mcp on the ws:// listener.
    #[arg(long)]
    no_mcp: bool,
    /// How /mcp names tools (as `toolwire mcp --names`).
    #[arg(long, value_enum, default_value_t = Names::Qualified)]
    mcp_names: Names,
    /// An Origin besides loopback ones that may use /mcp (repeatable), as browsers send it:
    /// `https://agent.example.com`. Requests from other origins are refused 403.
    #[arg(long, value_name = "ORIGIN")]
    mcp_allow_origin: Vec<String>,
    /// Result budget of every /mcp call, as `toolwire mcp --max-result-bytes`.
    #[arg(long, value_name = "N", value_parser = result_budget)]
    mcp_max_result_bytes: Option<u32>,
    /// End a /mcp call's event stream after SECS while the call runs on; the client comes back
    /// for the rest with Last-Event-ID (SSE polling, for proxies that cut long responses).
    #[arg(long, value_name = "SECS")]
    mcp_sse_close_after: Option<f64>,
}

/// A limit: a whole number, at least 1.
fn count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes: a whole number, at least 1, with an optional K, M or G suffix (powers of 1024).
fn bytes(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    match digits.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => n
            .checked_mul(unit)
            .ok_or_else(|| format!("`{s}` is too large")),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds as a decimal number: finite, at least a millisecond (intervals travel in whole
/// milliseconds, and 0 would turn heartbeats off), at most what a `u32` of milliseconds holds
/// (the welcome's `heartbeat_ms`), about 49 days.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    let max = f64::from(u32::MAX) / 1000.0;
    if !v.is_finite() || !(0.001..=max).contains(&v) {
        return Err(format!("must be between 0.001 and {max} seconds"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| e.to_string())
}

#[derive(Args, Clone)]
struct Connect {
    /// The gateway (ws://, wss://, tcp:// or tls://).
    #[arg(
        long,
        short,
        env = "TOOLWIRE_GATEWAY",
        default_value = "ws://127.0.0.1:7700/ws"
    )]
    gateway: String,
    /// Token.
    #[arg(long, env = "TOOLWIRE_TOKEN")]
    token: Option<String>,
    /// CA certificate (PEM) to trust for wss:// and tls://.
    #[arg(long)]
    ca: Option<PathBuf>,
}

#[derive(Args)]
struct NodeArgs {
    #[command(flatten)]
    connect: Connect,
    /// Node id.
    #[arg(long, default_value = "host")]
    id: String,
    /// Offer fs_read, fs_write and fs_list inside this directory.
    #[arg(long)]
    fs_root: Option<PathBuf>,
    /// Offer shell_run for this program (repeatable; no shell, no other programs).
    #[arg(long)]
    shell_allow: Vec<String>,
    /// CPU seconds a shell_run program may use (SIGXCPU, then SIGKILL a second later).
    #[arg(long, value_name = "SECS", default_value_t = ShellLimits::default().cpu_seconds,
          value_parser = clap::value_parser!(u64).range(1..))]
    shell_cpu_seconds: u64,
    /// Address space of a shell_run program, in bytes (suffix K, M or G: powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = bytes)]
    shell_memory: u64,
    /// Open files a shell_run program may have.
    #[arg(long, value_name = "N", default_value_t = ShellLimits::default().open_files,
          value_parser = clap::value_parser!(u64).range(1..))]
    shell_open_files: u64,
    /// Processes the shell_run user may have (the kernel counts all of that user's processes).
    #[arg(long, value_name = "N", default_value_t = ShellLimits::default().processes,
          value_parser = clap::value_parser!(u64).range(1..))]
    shell_processes: u64,
    /// Pass this variable of the node's environment to shell_run programs (repeatable; by
    /// default they get none, not even PATH).
    #[arg(long, value_name = "NAME")]
    shell_env: Vec<String>,
    /// User id shell_run programs run as when the node runs as root.
    #[arg(long, value_name = "UID", default_value_t = ShellLimits::default().uid)]
    shell_uid: u32,
    /// Group id shell_run programs run as when the node runs as root.
    #[arg(long, value_name = "GID", default_value_t = ShellLimits::default().gid)]
    shell_gid: u32,
    /// Also offer the simulated demo device's tools.
    #[arg(long)]
    demo_tools: bool,
}

#[derive(Args)]
struct ToolsArgs {
    #[command(flatten)]
    connect: Connect,
    /// Only tools whose name starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Only this node's tools.
    #[arg(long)]
    node: Option<String>,
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    connect: Connect,
    /// Node id.
    node: String,
    /// Tool name.
    tool: String,
    /// Arguments (a JSON object).
    #[arg(default_value = "{}")]
    args: String,
    /// Seconds to wait.
    #[arg(long, default_value = "30", value_parser = seconds)]
    timeout: Duration,
}

#[derive(Args)]
struct McpArgs {
    #[command(flatten)]
    connect: Connect,
    /// Seconds a tool call may take before it fails with a timeout.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Expose only the tools this pattern matches (repeatable): `node/tool`, or `tool` on any
    /// node, `*` for any run of characters. The gateway holds the set for this connection
    /// (`tools.scope`), so a call outside it is refused there too.
    #[arg(long = "tools", value_name = "PATTERN")]
    tools: Vec<String>,
    /// Answer `yes` to a permission the tools this pattern matches ask for (repeatable; same
    /// patterns as --tools). The bridge declines every other ask: MCP elicitation is not
    /// mapped yet. The gateway holds these as the connection's ask rules (`rules.set`).
    #[arg(long = "allow-ask", value_name = "PATTERN")]
    allow_ask: Vec<String>,
    /// Answer `no` to a permission these tools ask for, before any --allow-ask (repeatable).
    #[arg(long = "deny-ask", value_name = "PATTERN")]
    deny_ask: Vec<String>,
    /// Cut every tool result to its first N bytes of JSON text (N at least 16). A longer result
    /// is shown as that first page and a note on its own line, and the gateway holds the rest
    /// for this connection (five minutes by default); the bridge then lists one more tool,
    /// `toolwire_read_result` {handle, offset, length?}, which reads on from the offset the
    /// note gives. Tools' output schemas are not listed with this flag (a cut result has no
    /// structured content to match one).
    #[arg(long, value_name = "N", value_parser = result_budget)]
    max_result_bytes: Option<u32>,
    /// How tools are named: `qualified`, always `node__tool` (names never change when another
    /// node comes, so an MCP host's per-tool permissions stay put); `bare`, a tool's own name
    /// where one node offers it and `node__tool` only where several do.
    #[arg(long, value_enum, default_value_t = Names::Qualified)]
    names: Names,
}

/// How the MCP bridge names tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Names {
    /// Always `node__tool`.
    Qualified,
    /// The tool's own name where one node offers it.
    Bare,
}

/// A result budget: a whole number of bytes, from the gateway's least (16).
fn result_budget(s: &str) -> Result<u32, String> {
    use toolwire_smol::gateway::MIN_RESULT_BYTES;
    match s.parse::<u32>() {
        Ok(n) if n >= MIN_RESULT_BYTES => Ok(n),
        Ok(_) => Err(format!("must be at least {MIN_RESULT_BYTES}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The bridge's ask rules: its --deny-ask patterns first, then its --allow-ask ones, each for
/// permission asks.
fn bridge_rules(deny: &[String], allow: &[String]) -> Vec<toolwire_core::router::AskRule> {
    use toolwire_core::frame::{AskKind, Decision};
    let rule = |tool: &String, decision| toolwire_core::router::AskRule {
        tool: tool.clone(),
        kind: Some(AskKind::Permission),
        prompt: None,
        decision,
        answer: None,
    };
    let deny = deny.iter().map(|t| rule(t, Decision::Deny));
    deny.chain(allow.iter().map(|t| rule(t, Decision::Allow)))
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a log file or an MCP host's log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let r = smol::block_on(async {
        match cli.command {
            Command::Gateway(a) => gateway(a).await,
            Command::Node(a) => node(a).await,
            Command::Tools(a) => tools(a).await,
            Command::Call(a) => call(a).await,
            Command::Mcp(a) => mcp(a).await,
            Command::Demo => toolwire::demo::run().await,
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("toolwire: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), String>;

fn endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

async fn gateway(a: GatewayArgs) -> Res {
    let mut cfg = GatewayConfig {
        tokens: a.token.iter().map(TokenSpec::any).collect(),
        ..Default::default()
    };
    for spec in &a.controller_token {
        let (token, patterns) = spec
            .split_once('=')
            .ok_or_else(|| format!("--controller-token `{spec}`: expected TOKEN=PATTERNS"))?;
        cfg.tokens.push(TokenSpec {
            token: token.to_owned(),
            node: false,
            controller: true,
            acl: Acl {
                allow: patterns.split(',').map(str::to_owned).collect(),
                deny: vec![],
            },
        });
    }
    cfg.allow_open_public = a.insecure_no_auth;
    cfg.max_nodes = a.max_nodes;
    cfg.max_controllers = a.max_controllers;
    cfg.heartbeat = a.heartbeat;
    cfg.handshake_timeout = a.handshake_timeout;
    cfg.http.max_body = a.http_max_body;
    cfg.http.header_timeout = a.http_header_timeout;
    cfg.http.max_per_source = a.http_max_per_source;
    cfg.http.mcp.enabled = !a.no_mcp;
    cfg.http.mcp.options.bare_names = a.mcp_names == Names::Bare;
    cfg.http.mcp.options.max_result_bytes = a.mcp_max_result_bytes;
    cfg.http.mcp.allowed_origins = a.mcp_allow_origin.clone();
    cfg.http.mcp.close_streams_after = a
        .mcp_sse_close_after
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64);
    if let Some(limit) = open_file_limit()
        && cfg.max_connections() as u64 + 64 > limit
    {
        eprintln!(
            "warning: up to {} connections (--max-nodes + --max-controllers + {} handshakes) but \
             this process may open {limit} files: raise `ulimit -n` or lower the limits",
            cfg.max_connections(),
            cfg.max_handshakes,
        );
    }
    if let Some(ttl) = a.cache_ttl {
        let ttl = Duration::try_from_secs_f64(ttl)
            .map_err(|_| format!("--cache-ttl {ttl}: not a number of seconds"))?;
        let ttl =
            toolwire_core::Duration::from_millis(ttl.as_millis().min(u64::MAX as u128) as u64);
        let mut cache = toolwire_smol::gateway::CacheConfig::new(ttl);
        cache.max_bytes = a.cache_max_bytes;
        cfg.cache = Some(cache);
    }
    cfg.rate_limit = a.rate.map(|r| RateLimit {
        per_second: r,
        burst: (r * 2.0).ceil().max(1.0) as u32,
    });
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls::server_config(c, k).map_err(|e| e.to_string())?),
        _ => None,
    };
    let gw = Gateway::new(cfg);
    let mut listeners = vec![];
    for url in a.ws.iter().chain(&a.tcp) {
        let ep = endpoint(url)?;
        let l = gw
            .listen(&ep, tls.clone())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        eprintln!(
            "listening on {}",
            Endpoint {
                authority: l.addr.to_string(),
                ..ep
            }
            .url()
        );
        if ep.framing == toolwire_smol::transport::Framing::WebSocket {
            let s = if ep.tls { "s" } else { "" };
            eprintln!(
                "HTTP on http{s}://{}: WebSocket peers at /ws, REST API under /v1, /metrics, \
                 /healthz, /readyz, /openapi.json",
                l.addr
            );
        }
        listeners.push(l);
    }
    let mut dialed = vec![];
    for url in &a.dial {
        let ep = endpoint(url)?;
        let gw = gw.clone();
        dialed.push(smol::spawn(async move {
            loop {
                match gw.dial(&ep, None).await {
                    Ok(task) => task.await,
                    Err(e) => tracing::warn!("dial {}: {e}", ep.url()),
                }
                smol::Timer::after(Duration::from_secs(1)).await;
            }
        }));
    }
    let events = gw.events();
    while let Ok(e) = events.recv().await {
        tracing::info!("{e:?}");
    }
    Ok(())
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn connect(c: &Connect) -> Result<Client, String> {
    let tls = match &c.ca {
        Some(ca) => Some(tls::client_config(ca).map_err(|e| e.to_string())?),
        None => None,
    };
    let opts = ClientOptions {
        name: Some("toolwire-cli".into()),
        token: c.token.clone(),
        tls,
    };
    Client::connect(&endpoint(&c.gateway)?, opts)
        .await
        .map_err(|e| format!("cannot reach the gateway at {}: {e}", c.gateway))
}

async fn node(a: NodeArgs) -> Res {
    let mut opts = NodeOptions::new(&a.id);
    opts.token = a.connect.token.clone();
    if let Some(ca) = &a.connect.ca {
        opts.tls = Some(tls::client_config(ca).map_err(|e| e.to_string())?);
    }
    let mut node = HostNode::new(opts);
    if let Some(root) = &a.fs_root {
        node = node.tools(
            toolwire::builtin::fs_tools(root)
                .map_err(|e| format!("--fs-root {}: {e}", root.display()))?,
        );
    }
    if !a.shell_allow.is_empty() {
        let limits = ShellLimits {
            cpu_seconds: a.shell_cpu_seconds,
            address_space: a.shell_memory,
            open_files: a.shell_open_files,
            processes: a.shell_processes,
            env: a.shell_env.clone(),
            uid: a.shell_uid,
            gid: a.shell_gid,
        };
        node = node.tool(toolwire::builtin::shell_tool_with(
            a.shell_allow.clone(),
            limits,
        ));
    }
    if a.demo_tools {
        node = node.tools(toolwire::device::tools(Default::default()));
    }
    let ep = endpoint(&a.connect.gateway)?;
    match node.run(&ep, None).await {
        SessionEnd::Refused(code) => Err(format!("the gateway refused this node (error {code})")),
        other => Err(format!("node stopped: {other:?}")),
    }
}

async fn tools(a: ToolsArgs) -> Res {
    let client = connect(&a.connect).await?;
    let tools = client
        .tools(a.prefix.as_deref(), a.node.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let list: Vec<Value> = tools
        .iter()
        .map(|t| {
            serde_json::json!({
                "node": t.node,
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&list).unwrap_or_default()
    );
    Ok(())
}

async fn call(a: CallArgs) -> Res {
    let args: Value =
        serde_json::from_str(&a.args).map_err(|e| format!("arguments are not JSON: {e}"))?;
    let client = connect(&a.connect).await?;
    let (ptx, prx) = smol::channel::bounded::<toolwire_smol::gateway::Progress>(64);
    let show = smol::spawn(async move {
        let mut shown = false;
        while let Ok(p) = prx.recv().await {
            shown = true;
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            let msg = p.message.unwrap_or_default();
            eprint!("\rprogress {}{total} {msg}    ", p.progress);
        }
        shown
    });
    let opts = ClientCallOptions {
        timeout: Some(a.timeout),
        progress: Some(ptx),
        ..Default::default()
    };
    let r = client.call(&a.node, &a.tool, &args, opts).await;
    // Print every progress report that arrived before the result (the channel closes when the
    // call is over).
    if show.await {
        eprintln!();
    }
    match r {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A bridge's gateway connection with its tool set and ask rules set.
async fn bridge_client(
    c: &Connect,
    tools: &[String],
    rules: &[toolwire_core::router::AskRule],
) -> Result<Client, String> {
    let client = connect(c).await?;
    if !tools.is_empty() {
        client
            .set_tool_scope(tools)
            .await
            .map_err(|e| format!("--tools: {e}"))?;
    }
    if !rules.is_empty() {
        client
            .set_ask_rules(rules)
            .await
            .map_err(|e| format!("--allow-ask/--deny-ask: {e}"))?;
    }
    Ok(client)
}

async fn mcp(a: McpArgs) -> Res {
    let rules = bridge_rules(&a.deny_ask, &a.allow_ask);
    // The first connection must work (a wrong URL or token is an error at once); later ones
    // are retried while the gateway is away.
    let client = bridge_client(&a.connect, &a.tools, &rules).await?;
    let again: toolwire::mcp::Reconnect = {
        let (c, tools, rules) = (a.connect.clone(), a.tools.clone(), rules.clone());
        std::sync::Arc::new(move || {
            let (c, tools, rules) = (c.clone(), tools.clone(), rules.clone());
            Box::pin(async move {
                bridge_client(&c, &tools, &rules)
                    .await
                    .map_err(std::io::Error::other)
            })
        })
    };
    // Seconds as given; a value no Duration can hold is refused rather than panicking.
    let timeout = Duration::try_from_secs_f64(a.timeout)
        .map_err(|_| format!("--timeout {}: not a number of seconds", a.timeout))?;
    let opts = toolwire::mcp::McpOptions {
        call_timeout: Some(timeout),
        max_result_bytes: a.max_result_bytes,
        bare_names: a.names == Names::Bare,
        ..Default::default()
    };
    toolwire::mcp::serve_stdio_reconnecting(client, opts, again)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_args(extra: &[&str]) -> Result<GatewayArgs, clap::Error> {
        let argv = ["toolwire", "gateway"].iter().chain(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Gateway(a) => Ok(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn gateway_limits_and_intervals_default_to_the_library_defaults() {
        let a = gateway_args(&[]).unwrap();
        let d = GatewayConfig::default();
        assert_eq!(
            (a.max_nodes, a.max_controllers),
            (d.max_nodes, d.max_controllers)
        );
        assert_eq!((a.max_nodes, a.max_controllers), (16_384, 256));
        assert_eq!(
            (a.heartbeat, a.handshake_timeout),
            (d.heartbeat, d.handshake_timeout)
        );
        assert_eq!(
            (
                a.http_max_body,
                a.http_header_timeout,
                a.http_max_per_source
            ),
            (
                d.http.max_body,
                d.http.header_timeout,
                d.http.max_per_source
            )
        );
    }

    #[test]
    fn gateway_limits_and_intervals_parse() {
        let a = gateway_args(&[
            "--max-nodes",
            "10000",
            "--max-controllers",
            "4",
            "--heartbeat",
            "2",
            "--handshake-timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!((a.max_nodes, a.max_controllers), (10_000, 4));
        assert_eq!(a.heartbeat, Duration::from_secs(2));
        assert_eq!(a.handshake_timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_limits_and_intervals_are_refused_not_panicked_on() {
        for (flag, v) in [
            ("--max-nodes", "0"),
            ("--max-nodes", "-1"),
            ("--max-nodes", "many"),
            ("--max-controllers", "0"),
            ("--max-controllers", "1.5"),
            ("--heartbeat", "0"),
            ("--heartbeat", "-2"),
            ("--heartbeat", "nan"),
            ("--heartbeat", "inf"),
            ("--heartbeat", "0.0001"),
            ("--heartbeat", "1e10"),
            ("--handshake-timeout", "-0"),
            ("--handshake-timeout", "soon"),
        ] {
            assert!(gateway_args(&[flag, v]).is_err(), "{flag} {v}");
        }
    }

    #[test]
    fn mcp_result_budget_is_at_least_16() {
        let parse = |extra: &[&str]| {
            let argv = ["toolwire", "mcp"].iter().chain(extra);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Mcp(a)) => Ok(a.max_result_bytes),
                Ok(_) => unreachable!(),
                Err(e) => Err(e),
            }
        };
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["--max-result-bytes", "16"]).unwrap(), Some(16));
        assert_eq!(parse(&["--max-result-bytes", "4096"]).unwrap(), Some(4096));
        for bad in ["15", "0", "-16", "4k", "4294967296", ""] {
            assert!(parse(&["--max-result-bytes", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn call_timeout_is_checked_too() {
        let parse = |t: &str| Cli::try_parse_from(["toolwire", "call", "n", "t", "--timeout", t]);
        assert!(parse("2.5").is_ok());
        for bad in ["-1", "nan", "inf", "0"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_limits_default_to_the_library_defaults_and_parse() {
        let node = |extra: &[&str]| {
            let argv = ["toolwire", "node"].iter().chain(extra);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Node(a)) => Ok(a),
                Ok(_) => unreachable!(),
                Err(e) => Err(e),
            }
        };
        let a = node(&[]).unwrap();
        let d = ShellLimits::default();
        assert_eq!(
            (a.shell_cpu_seconds, a.shell_memory, a.shell_open_files),
            (d.cpu_seconds, d.address_space, d.open_files)
        );
        assert_eq!(
            (a.shell_processes, a.shell_uid, a.shell_gid),
            (d.processes, d.uid, d.gid)
        );
        assert!(a.shell_env.is_empty());
        let a = node(&[
            "--shell-memory",
            "256M",
            "--shell-env",
            "PATH",
            "--shell-env",
            "LANG",
        ])
        .unwrap();
        assert_eq!(a.shell_memory, 256 << 20);
        assert_eq!(a.shell_env, ["PATH", "LANG"]);
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("2K"), Ok(2048));
        assert_eq!(bytes("1G"), Ok(1 << 30));
        for (flag, v) in [
            ("--shell-memory", "0"),
            ("--shell-memory", "1T"),
            ("--shell-memory", "G"),
            ("--shell-memory", "99999999999G"),
            ("--shell-cpu-seconds", "0"),
            ("--shell-processes", "-1"),
            ("--shell-open-files", "many"),
        ] {
            assert!(node(&[flag, v]).is_err(), "{flag} {v}");
        }
    }
}
