//! Many idle nodes on one gateway: what each costs the gateway, and what they do to calls.
//!
//! ```sh
//! cargo build --release -p toolwire -p toolwire-benches
//! target/release/fleet                                   # 10,000 nodes, every transport and encoding
//! target/release/fleet --nodes 2000 --transport tcp --encoding postcard
//! target/release/fleet --quick                           # a few hundred nodes, seconds; CI runs this
//! ```
//!
//! For each transport (TCP with COBS, WebSocket) and encoding (JSON, postcard) it starts the
//! real gateway, `toolwire gateway`, as a child process (the `toolwire` binary next to this one,
//! or `--gateway-bin`), with `--heartbeat` short so that three intervals pass quickly, and:
//!
//! 1. connects one busy node and a controller, and times sequential calls through the gateway
//!    to the busy node with no other node connected;
//! 2. connects N idle nodes, each from one of several `127.x.y.z` source addresses (bound
//!    before connecting: one address has ~28k ephemeral ports), at most `--window` handshakes
//!    at a time, and reads the gateway's resident memory (`VmRSS` in `/proc/PID/status`) before
//!    and after: the growth over N is the cost of an idle node;
//! 3. leaves the fleet idle (no controller connected) for three heartbeat intervals and reads
//!    the gateway's CPU time (`utime + stime` in `/proc/PID/stat`) over them: pings and pongs
//!    only;
//! 4. counts the nodes the gateway still lists (`nodes.list`, paged) and the nodes whose
//!    connection ended: none may have been dropped;
//! 5. times the same sequential calls again, N idle nodes connected.
//!
//! Every node is the protocol's own node state machine (`toolwire_core::node::Node`) on a
//! socket, in one task of this process: it says hello, registers one tool (`echo`), answers
//! pings and would answer calls. The controller is `toolwire_core::controller::Controller` on a
//! socket. Both speak the row's encoding; WebSocket peers here use a 4 KiB read buffer (their
//! memory is this process's, not the gateway's). Linux only (`/proc`).

use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant as StdInstant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_util::StreamExt;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use toolwire_core::codec::{self, Limits, Message as Decoded};
use toolwire_core::controller::{Controller, ControllerConfig, ControllerEvent};
use toolwire_core::frame::{
    Annotations, Call, Encoding, Encodings, ListNodes, NodesPage, Request, ToolDef,
};
use toolwire_core::node::{Node, NodeConfig, NodeEvent};
use toolwire_core::stream::{Deframed, Deframer, encode_frame, max_encoded_len};
use toolwire_core::{Instant, Json, Str};

/// Arguments of every timed call (the e2e benchmark's).
const ARGS: &str = r#"{"channel":2,"label":"bench","values":[1,2,3,4]}"#;
/// Nodes bound to one source address.
const PER_ADDRESS: usize = 2000;
/// Largest frame the bench's nodes accept.
const MAX_FRAME: usize = 4096;
/// Largest frame the controller accepts (a `nodes.list` page of 1000 nodes fits).
const CTRL_MAX_FRAME: u32 = 1 << 20;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Transport {
    Tcp,
    Ws,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }
}

fn enc_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Json => "json",
        Encoding::Postcard => "postcard",
    }
}

struct Args {
    nodes: usize,
    transports: Vec<Transport>,
    encodings: Vec<Encoding>,
    calls: usize,
    heartbeat: f64,
    window: usize,
    gateway_bin: PathBuf,
}

const USAGE: &str = "usage: fleet [--nodes N] [--transport tcp|ws|all] [--encoding json|postcard|all] \
[--calls N] [--heartbeat SECS] [--window N] [--gateway-bin PATH] [--quick]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 10_000,
        transports: vec![Transport::Tcp, Transport::Ws],
        encodings: vec![Encoding::Json, Encoding::Postcard],
        calls: 2000,
        heartbeat: 2.0,
        window: 128,
        gateway_bin: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("toolwire"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--quick" => {
                a.nodes = 300;
                a.calls = 300;
                a.heartbeat = 0.5;
            }
            "--nodes" => a.nodes = number(&flag, &value()?)?,
            "--calls" => a.calls = number(&flag, &value()?)?,
            "--window" => a.window = number(&flag, &value()?)?,
            "--heartbeat" => {
                let v = value()?;
                a.heartbeat = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.01..=3600.0).contains(s))
                    .ok_or(format!("--heartbeat {v}: seconds between 0.01 and 3600"))?;
            }
            "--transport" => {
                a.transports = match value()?.as_str() {
                    "tcp" => vec![Transport::Tcp],
                    "ws" => vec![Transport::Ws],
                    "all" => vec![Transport::Tcp, Transport::Ws],
                    v => return Err(format!("--transport {v}: tcp, ws or all")),
                }
            }
            "--encoding" => {
                a.encodings = match value()?.as_str() {
                    "json" => vec![Encoding::Json],
                    "postcard" => vec![Encoding::Postcard],
                    "all" => vec![Encoding::Json, Encoding::Postcard],
                    v => return Err(format!("--encoding {v}: json, postcard or all")),
                }
            }
            "--gateway-bin" => a.gateway_bin = PathBuf::from(value()?),
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.nodes == 0 || a.calls == 0 || a.window == 0 {
        return Err("--nodes, --calls and --window must be at least 1".into());
    }
    Ok(a)
}

fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v}: not a whole number"))
}

// ----- clock

fn start() -> StdInstant {
    static START: OnceLock<StdInstant> = OnceLock::new();
    *START.get_or_init(StdInstant::now)
}

fn now() -> Instant {
    Instant(start().elapsed().as_millis() as u64)
}

fn at(t: Instant) -> StdInstant {
    start() + Duration::from_millis(t.0)
}

// ----- the gateway, a child process

struct GatewayProc {
    child: Child,
    ws: SocketAddr,
    tcp: SocketAddr,
    /// Lines it logged (warnings), kept for the report.
    log: Arc<Mutex<Vec<String>>>,
}

impl GatewayProc {
    fn start(bin: &PathBuf, max_nodes: usize, heartbeat: f64) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args(["gateway", "--ws", "ws://127.0.0.1:0", "--tcp", "tcp://127.0.0.1:0"])
            .args(["--max-nodes", &max_nodes.to_string()])
            .args(["--heartbeat", &heartbeat.to_string()])
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run the gateway {}: {e}\nbuild it with `cargo build --release -p toolwire`, \
                     or pass --gateway-bin",
                    bin.display()
                )
            })?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        // Read stderr to its end, always: a full pipe would block the gateway.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match line.strip_prefix("listening on ") {
                    Some(url) => {
                        let _ = tx.send(url.to_owned());
                    }
                    None => keep.lock().unwrap_or_else(|e| e.into_inner()).push(line),
                }
            }
        });
        let mut ws = None;
        let mut tcp = None;
        while ws.is_none() || tcp.is_none() {
            let url = rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| "the gateway did not start listening within 10 s")?;
            let (scheme, rest) = url.split_once("://").ok_or("odd listener url")?;
            let addr: SocketAddr = rest
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("{url}: {e}"))?;
            match scheme {
                "ws" => ws = Some(addr),
                "tcp" => tcp = Some(addr),
                _ => {}
            }
        }
        Ok(GatewayProc {
            child,
            ws: ws.unwrap_or_else(|| unreachable!()),
            tcp: tcp.unwrap_or_else(|| unreachable!()),
            log,
        })
    }

    fn addr(&self, t: Transport) -> SocketAddr {
        match t {
            Transport::Tcp => self.tcp,
            Transport::Ws => self.ws,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// User plus system CPU time, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at `state`, field 3:
        // utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        field(14) + field(15)
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// ----- a connection: TCP with COBS framing, or WebSocket

enum Link {
    Tcp {
        s: TcpStream,
        de: Box<Deframer<Vec<u8>>>,
        rx: Box<[u8; 1024]>,
        pos: usize,
        len: usize,
        tx: Vec<u8>,
    },
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A TCP connection to `to`, from `from` (port chosen by the kernel) if given.
async fn dial(from: Option<Ipv4Addr>, to: SocketAddr) -> io::Result<TcpStream> {
    let s = match from {
        None => TcpStream::connect(to).await?,
        Some(ip) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
            sock.set_nonblocking(true)?;
            match sock.connect(&to.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
                Err(e) => return Err(e),
            }
            let a = smol::Async::new(std::net::TcpStream::from(sock))?;
            a.writable().await?;
            if let Some(e) = a.get_ref().take_error()? {
                return Err(e);
            }
            TcpStream::from(a)
        }
    };
    s.set_nodelay(true)?;
    Ok(s)
}

impl Link {
    async fn connect(
        t: Transport,
        from: Option<Ipv4Addr>,
        to: SocketAddr,
        max_frame: usize,
    ) -> io::Result<Link> {
        let s = dial(from, to).await?;
        Ok(match t {
            Transport::Tcp => Link::Tcp {
                s,
                de: Box::new(Deframer::new(vec![0; max_frame])),
                rx: Box::new([0; 1024]),
                pos: 0,
                len: 0,
                tx: Vec::new(),
            },
            Transport::Ws => {
                let cfg = WebSocketConfig::default()
                    .read_buffer_size(MAX_FRAME)
                    .write_buffer_size(0)
                    .max_message_size(Some(max_frame))
                    .max_frame_size(Some(max_frame));
                let (ws, _) = async_tungstenite::client_async_with_config(
                    format!("ws://{to}/"),
                    s,
                    Some(cfg),
                )
                .await
                .map_err(io::Error::other)?;
                Link::Ws(Box::new(ws))
            }
        })
    }

    async fn send(&mut self, frame: &[u8], enc: Encoding) -> io::Result<()> {
        match self {
            Link::Tcp { s, tx, .. } => {
                tx.resize(max_encoded_len(frame.len()), 0);
                let n = encode_frame(frame, tx).map_err(|e| io::Error::other(format!("{e:?}")))?;
                s.write_all(&tx[..n]).await
            }
            Link::Ws(ws) => {
                let msg = match enc {
                    Encoding::Json => {
                        Message::text(String::from_utf8(frame.to_vec()).map_err(io::Error::other)?)
                    }
                    Encoding::Postcard => Message::binary(frame.to_vec()),
                };
                ws.send(msg).await.map_err(io::Error::other)
            }
        }
    }

    /// The next frame; `None` when the peer closed.
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self {
            Link::Tcp {
                s,
                de,
                rx,
                pos,
                len,
                ..
            } => loop {
                while *pos < *len {
                    let (used, r) = de.push(&rx[*pos..*len]);
                    *pos += used;
                    if let Deframed::Frame(f) = r {
                        return Ok(Some(f.to_vec()));
                    }
                }
                let n = s.read(&mut rx[..]).await?;
                if n == 0 {
                    return Ok(None);
                }
                (*pos, *len) = (0, n);
            },
            Link::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Text(t))) => return Ok(Some(t.as_bytes().to_vec())),
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }
}

// ----- an idle node

fn only(enc: Encoding) -> Encodings {
    Encodings {
        json: enc == Encoding::Json,
        postcard: enc == Encoding::Postcard,
    }
}

fn tools() -> &'static [ToolDef<'static>] {
    static TOOLS: OnceLock<Vec<ToolDef<'static>>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        vec![ToolDef {
            name: Str::new("echo"),
            description: Str::new("Returns its arguments."),
            input_schema: Json::trusted(br#"{"type":"object"}"#),
            output_schema: None,
            annotations: Annotations::NONE,
        }]
    })
}

/// What the fleet's nodes report.
#[derive(Default)]
struct Tally {
    /// Set before the gateway is stopped: connections ending after it are expected.
    stopping: AtomicBool,
    /// Connections that ended, once registered, while not stopping.
    dropped: AtomicUsize,
    first_drop: Mutex<Option<String>>,
}

/// Connects node `id`, registers `echo`, says so on `ready`, then serves until the connection
/// ends (pings, calls).
async fn node(
    id: &'static str,
    t: Transport,
    enc: Encoding,
    from: Option<Ipv4Addr>,
    to: SocketAddr,
    ready: smol::channel::Sender<Result<(), String>>,
    tally: Arc<Tally>,
) {
    let mut link = match Link::connect(t, from, to, MAX_FRAME).await {
        Ok(l) => l,
        Err(e) => {
            let _ = ready
                .send(Err(format!("{id}: connect from {from:?}: {e}")))
                .await;
            return;
        }
    };
    let mut cfg = NodeConfig::new(id, tools());
    cfg.encodings = only(enc);
    cfg.hello_encoding = enc;
    cfg.max_frame = MAX_FRAME as u32;
    let mut core: Node<'static, 1> = Node::new(cfg, now());
    let mut out = vec![0u8; MAX_FRAME];
    let mut reply = vec![0u8; MAX_FRAME];
    let mut registered = false;
    let why = 'serve: loop {
        while let Some(r) = core.poll_transmit(&mut out) {
            let Ok(n) = r else { continue };
            if let Err(e) = link.send(&out[..n], enc).await {
                break 'serve format!("send: {e}");
            }
        }
        while let Some(ev) = core.poll_event() {
            if let NodeEvent::Closed(r) = ev {
                break 'serve format!("closed: {r:?}");
            }
        }
        let deadline = core.poll_timeout();
        let got = async { Some(link.recv().await) }
            .or(async {
                match deadline {
                    Some(d) => smol::Timer::at(at(d)).await,
                    None => std::future::pending().await,
                };
                None
            })
            .await;
        match got {
            None => core.handle_timeout(now()),
            Some(Ok(Some(f))) => {
                let h = core.handle_frame(now(), &f, &mut reply);
                if h.reply > 0
                    && let Err(e) = link.send(&reply[..h.reply], enc).await
                {
                    break format!("send: {e}");
                }
                match h.event {
                    Some(NodeEvent::Ready { rejected }) if !registered => {
                        registered = true;
                        let r = match rejected.len() {
                            0 => Ok(()),
                            n => Err(format!("{id}: {n} tools rejected")),
                        };
                        let _ = ready.send(r).await;
                    }
                    Some(NodeEvent::Execute { call, args, .. }) => {
                        if let Ok(n) = core.finish(call, Ok(args), &mut out)
                            && let Err(e) = link.send(&out[..n], enc).await
                        {
                            break format!("send: {e}");
                        }
                    }
                    Some(NodeEvent::Closed(r)) => break format!("closed: {r:?}"),
                    _ => {}
                }
            }
            Some(Ok(None)) => break "the gateway closed the connection".to_owned(),
            Some(Err(e)) => break format!("read: {e}"),
        }
    };
    if !registered {
        let _ = ready
            .send(Err(format!("{id}: {why} before registering")))
            .await;
    } else if !tally.stopping.load(Ordering::Relaxed) {
        tally.dropped.fetch_add(1, Ordering::Relaxed);
        let mut first = tally.first_drop.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{id}: {why}"));
    }
}

// ----- a controller

struct Ctrl {
    core: Controller,
    link: Link,
    enc: Encoding,
    out: Vec<u8>,
    reply: Vec<u8>,
}

impl Ctrl {
    async fn connect(t: Transport, enc: Encoding, to: SocketAddr) -> Result<Ctrl, String> {
        let link = Link::connect(t, None, to, CTRL_MAX_FRAME as usize)
            .await
            .map_err(|e| format!("controller: {e}"))?;
        let mut cfg = ControllerConfig::new("fleet-bench");
        cfg.encodings = only(enc);
        cfg.hello_encoding = enc;
        cfg.max_frame = CTRL_MAX_FRAME;
        let mut c = Ctrl {
            core: Controller::new(cfg, now()),
            link,
            enc,
            out: vec![0; 1 << 16],
            reply: vec![0; 1 << 16],
        };
        while let Some(r) = c.core.poll_transmit(&mut c.out) {
            let n = r.map_err(|e| format!("{e:?}"))?;
            c.link
                .send(&c.out[..n], enc)
                .await
                .map_err(|e| e.to_string())?;
        }
        while !c.core.is_ready() {
            c.next().await?;
        }
        Ok(c)
    }

    /// Reads one frame and acts on it; returns the response it carried, if any, as (request
    /// id, the frame).
    async fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, String> {
        let f = self
            .link
            .recv()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the gateway closed the controller's connection")?;
        let h = self.core.handle_frame(now(), &f, &mut self.reply);
        if h.reply > 0 {
            self.link
                .send(&self.reply[..h.reply], self.enc)
                .await
                .map_err(|e| e.to_string())?;
        }
        match h.event {
            Some(ControllerEvent::Response { id, .. }) => Ok(Some((id, f.clone()))),
            Some(ControllerEvent::Closed(r)) => Err(format!("controller closed: {r:?}")),
            _ => Ok(None),
        }
    }

    /// Sends `req` and waits for its response frame.
    async fn request(&mut self, req: &Request<'_>) -> Result<Vec<u8>, String> {
        let (id, n) = self
            .core
            .request(req, &mut self.out)
            .map_err(|e| format!("{e:?}"))?;
        self.link
            .send(&self.out[..n], self.enc)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Some((got, f)) = self.next().await?
                && got == id
            {
                return Ok(f);
            }
        }
    }

    /// `n` sequential calls of `echo` on `node`: each call's round trip, in µs, sorted.
    async fn time_calls(&mut self, node: &str, n: usize) -> Result<Vec<f64>, String> {
        let args = Json::parse(ARGS.as_bytes()).map_err(|e| format!("{e:?}"))?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = StdInstant::now();
            let f = self
                .request(&Request::Call(Call {
                    node: Str::new(node),
                    tool: Str::new("echo"),
                    arguments: args,
                    deadline_ms: Some(10_000),
                }))
                .await?;
            times.push(t0.elapsed().as_secs_f64() * 1e6);
            if let Err(e) = payload(&f, self.enc)? {
                return Err(format!("call failed: {e}"));
            }
        }
        times.sort_by(f64::total_cmp);
        Ok(times)
    }

    /// Nodes the gateway lists, paging `nodes.list` to its end.
    async fn count_nodes(&mut self) -> Result<usize, String> {
        let (mut count, mut cursor) = (0, None::<String>);
        loop {
            let f = self
                .request(&Request::ListNodes(ListNodes {
                    cursor: cursor.as_deref().map(Str::new),
                    limit: Some(1000),
                }))
                .await?;
            let page = payload(&f, self.enc)?.map_err(|e| format!("nodes.list: {e}"))?;
            let page: NodesPage<'_> = page
                .decode(&Limits::default())
                .map_err(|e| format!("{e:?}"))?;
            count += page.nodes.iter().count();
            match page.next_cursor {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(count),
            }
        }
    }
}

/// The result payload of a response frame, or its error as text.
fn payload(f: &[u8], enc: Encoding) -> Result<Result<codec::Payload<'_>, String>, String> {
    match codec::decode(f, enc, &Limits::default()).map_err(|e| format!("{e:?}"))? {
        Decoded::Response { result, .. } => {
            Ok(result.map_err(|e| format!("{} {}", e.code, e.message)))
        }
        _ => Err("not a response".into()),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// ----- one row of the table

struct Row {
    name: String,
    rss_before_kib: u64,
    rss_after_kib: u64,
    connect_per_s: f64,
    idle_p50: f64,
    idle_p99: f64,
    fleet_p50: f64,
    fleet_p99: f64,
    cpu_s: f64,
    window_s: f64,
    listed: usize,
    dropped: usize,
}

/// Source address of node `i` in row `row`: 127.(20+row).a.b, a new one every
/// [`PER_ADDRESS`] nodes, so no address runs out of ephemeral ports.
fn source(row: usize, i: usize) -> Ipv4Addr {
    let k = i / PER_ADDRESS;
    Ipv4Addr::new(127, 20 + row as u8, (k / 250) as u8, 1 + (k % 250) as u8)
}

async fn row(a: &Args, row: usize, t: Transport, enc: Encoding) -> Result<Row, String> {
    let name = format!("{}/{}", t.name(), enc_name(enc));
    let gw = GatewayProc::start(&a.gateway_bin, a.nodes + 16, a.heartbeat)?;
    let to = gw.addr(t);
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::with_capacity(a.nodes + 1);

    // 1. One busy node and a controller, nobody else.
    let (busy_tx, busy_rx) = smol::channel::bounded(1);
    tasks.push(smol::spawn(node(
        "busy",
        t,
        enc,
        None,
        to,
        busy_tx,
        tally.clone(),
    )));
    busy_rx.recv().await.map_err(|e| e.to_string())??;
    let mut ctrl = Ctrl::connect(t, enc, to).await?;
    ctrl.time_calls("busy", a.calls / 10 + 1).await?; // warm-up
    let idle = ctrl.time_calls("busy", a.calls).await?;
    drop(ctrl);
    smol::Timer::after(Duration::from_millis(300)).await;
    let rss_before_kib = gw.rss_kib();

    // 2. The fleet.
    let (ready_tx, ready_rx) = smol::channel::unbounded();
    let window = Arc::new(smol::lock::Semaphore::new(a.window));
    let t0 = StdInstant::now();
    for i in 0..a.nodes {
        let id: &'static str = Box::leak(format!("n{i}").into_boxed_str());
        let (tx, tally, window) = (ready_tx.clone(), tally.clone(), window.clone());
        let from = source(row, i);
        tasks.push(smol::spawn(async move {
            let permit = window.acquire_arc().await;
            let (each_tx, each_rx) = smol::channel::bounded(1);
            let serve = smol::spawn(node(id, t, enc, Some(from), to, each_tx, tally));
            let r = each_rx
                .recv()
                .await
                .unwrap_or_else(|_| Err(format!("{id} ended")));
            drop(permit);
            let _ = tx.send(r).await;
            serve.await;
        }));
    }
    drop(ready_tx);
    for _ in 0..a.nodes {
        ready_rx.recv().await.map_err(|e| e.to_string())??;
    }
    let connect_per_s = a.nodes as f64 / t0.elapsed().as_secs_f64();
    smol::Timer::after(Duration::from_millis(500)).await;
    let rss_after_kib = gw.rss_kib();

    // 3. Three heartbeat intervals with the fleet idle.
    let ticks = clock_ticks_per_second();
    let (c0, w0) = (gw.cpu_ticks(), StdInstant::now());
    smol::Timer::after(Duration::from_secs_f64(3.0 * a.heartbeat)).await;
    let (c1, window_s) = (gw.cpu_ticks(), w0.elapsed().as_secs_f64());

    // 4. Who is still there; 5. calls again, with the fleet connected.
    let mut ctrl = Ctrl::connect(t, enc, to).await?;
    let listed = ctrl.count_nodes().await?;
    let dropped = tally.dropped.load(Ordering::Relaxed);
    if let Some(why) = tally
        .first_drop
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        eprintln!("{name}: {dropped} nodes dropped, the first: {why}");
    }
    ctrl.time_calls("busy", a.calls / 10 + 1).await?;
    let fleet = ctrl.time_calls("busy", a.calls).await?;

    tally.stopping.store(true, Ordering::Relaxed);
    let log = gw.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // The gateway closes first, so the TIME_WAIT states are its own, not the source ports'.
    drop(gw);
    drop(ctrl);
    drop(tasks);
    for line in log.iter().take(5) {
        eprintln!("{name}: gateway said: {line}");
    }
    Ok(Row {
        name,
        rss_before_kib,
        rss_after_kib,
        connect_per_s,
        idle_p50: percentile(&idle, 0.5),
        idle_p99: percentile(&idle, 0.99),
        fleet_p50: percentile(&fleet, 0.5),
        fleet_p99: percentile(&fleet, 0.99),
        cpu_s: (c1.saturating_sub(c0)) as f64 / ticks,
        window_s,
        listed,
        dropped,
    })
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(limit) = open_file_limit()
        && a.nodes + 64 > limit
    {
        eprintln!(
            "fleet: {} nodes need as many sockets here (and in the gateway) but a process may \
             open {limit} files",
            a.nodes
        );
        std::process::exit(2);
    }
    let _ = start();
    let mut rows = vec![];
    let mut failed = false;
    let mut i = 0;
    for &t in &a.transports {
        for &enc in &a.encodings {
            match smol::block_on(row(&a, i, t, enc)) {
                Ok(r) => {
                    failed |= r.dropped > 0 || r.listed != a.nodes + 1;
                    rows.push(r);
                }
                Err(e) => {
                    eprintln!("{}/{}: {e}", t.name(), enc_name(enc));
                    failed = true;
                }
            }
            i += 1;
        }
    }
    let n = a.nodes;
    println!(
        "\n{n} idle nodes on one gateway (`toolwire gateway --heartbeat {}`), {} sequential \
         calls to one busy node\n",
        a.heartbeat, a.calls
    );
    println!(
        "| transport/encoding | gateway RSS before → after | per node | connect rate | p50 / p99 µs, no other node | p50 / p99 µs, {n} idle nodes | p50 ratio | gateway CPU over 3 heartbeats ({:.1} s) | nodes listed | dropped |",
        3.0 * a.heartbeat
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let per_node = (r.rss_after_kib.saturating_sub(r.rss_before_kib)) as f64 / n as f64;
        println!(
            "| {} | {:.1} → {:.1} MiB | {:.1} KiB | {:.0} nodes/s | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} | {:.2} s ({:.1}% of a core) | {} | {} |",
            r.name,
            r.rss_before_kib as f64 / 1024.0,
            r.rss_after_kib as f64 / 1024.0,
            per_node,
            r.connect_per_s,
            r.idle_p50,
            r.idle_p99,
            r.fleet_p50,
            r.fleet_p99,
            r.fleet_p50 / r.idle_p50,
            r.cpu_s,
            100.0 * r.cpu_s / r.window_s,
            r.listed,
            r.dropped,
        );
    }
    if failed {
        eprintln!("fleet: a row failed, or nodes were dropped (every node must stay connected)");
        std::process::exit(1);
    }
}
