//! The peers, on tokio: jsonrpsee over WebSocket, tarpc over TCP (JSON and bincode), and a raw
//! tokio TCP ping-pong. Each does the same echo as toolwire's scenarios, server and client in
//! this process, one connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, future};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::server::{RpcModule, Server};
use jsonrpsee_ws_client::WsClientBuilder;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::{Bincode, Json};
use tarpc::{client, context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use toolwire_benches::e2e::{ARGS, percentile, sequential_with, warm_up};

/// `k` spawned tasks looping on `call` for `d` after a warm-up: calls/s. The same shape as
/// `Setup::pipelined` on smol.
pub async fn pipelined<F, Fut>(k: usize, d: Duration, call: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for _ in 0..k {
        let (call, done, stop) = (call.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(warm_up(d)).await;
    let before = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(d).await;
    let n = done.load(Ordering::Relaxed) - before;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("caller task");
    }
    rate
}

/// One figure of a peer: sequential (`k == 0`) or `k` in flight.
pub struct Figure {
    /// 0 for sequential, else calls in flight.
    pub k: usize,
    /// Calls/s.
    pub calls_per_s: f64,
    /// Sequential only.
    pub p50_us: Option<f64>,
    /// Sequential only.
    pub p99_us: Option<f64>,
}

/// Sequential, then 1, 16 and 128 in flight, all on clones of one client (one connection).
async fn modes<F, Fut>(d: Duration, call: F) -> Vec<Figure>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let s = sequential_with(String::new(), d, call.clone()).await;
    let mut out = vec![Figure {
        k: 0,
        calls_per_s: s.calls_per_s,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
    }];
    for k in [1, 16, 128] {
        out.push(Figure {
            k,
            calls_per_s: pipelined(k, d, call.clone()).await,
            p50_us: None,
            p99_us: None,
        });
    }
    out
}

// ---- jsonrpsee ----

/// The call's params: the same JSON text toolwire's `call_raw` is given, checked and sent as
/// it is (`RawValue::from_string` validates it, as `call_raw` does).
struct RawArgs;

impl ToRpcParams for RawArgs {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        RawValue::from_string(ARGS.to_owned()).map(Some)
    }
}

/// jsonrpsee 0.26 server with default settings (nodelay is its default) and a WebSocket
/// client with default settings. The method parses its params into a `serde_json::Value` and
/// returns it, as toolwire's host node hands its tool a `Value` and sends back the one it
/// returns; the client takes the result as raw JSON text, as `call_raw` returns it.
pub async fn jsonrpsee(d: Duration) -> Vec<Figure> {
    let server = Server::builder().build("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let mut module = RpcModule::new(());
    module
        .register_method("echo", |params, _, _| params.parse::<serde_json::Value>())
        .expect("register");
    let handle = server.start(module);
    let client = Arc::new(
        WsClientBuilder::default()
            .build(format!("ws://{addr}"))
            .await
            .expect("connect"),
    );
    let figures = modes(d, move || {
        let client = client.clone();
        async move {
            let _: Box<RawValue> = client.request("echo", RawArgs).await.expect("call");
        }
    })
    .await;
    handle.stop().ok();
    figures
}

// ---- tarpc ----

/// The echo's argument and result as a tarpc user writes it: a struct with the fields of
/// [`ARGS`]. (bincode cannot carry a `serde_json::Value`: it has no self-describing format.)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    channel: u32,
    label: String,
    values: Vec<i64>,
}

#[tarpc::service]
trait Echo {
    /// Returns its argument.
    async fn echo(args: Reading) -> Reading;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, args: Reading) -> Reading {
        args
    }
}

/// tarpc's encodings, both through `tarpc::serde_transport::tcp` (a `LengthDelimitedCodec`).
#[derive(Clone, Copy)]
pub enum Codec {
    /// tokio-serde's JSON (serde_json).
    Json,
    /// tokio-serde's bincode (bincode 1).
    Bincode,
}

macro_rules! tarpc_run {
    ($codec:expr, $d:expr) => {{
        let mut listener = tarpc::serde_transport::tcp::listen("127.0.0.1:0", $codec)
            .await
            .expect("bind");
        listener.config_mut().max_frame_length(1 << 20);
        let addr = listener.local_addr();
        // The server as tarpc's examples write it: a channel per connection, a task per request.
        let server =
            tokio::spawn(listener.filter_map(|r| future::ready(r.ok())).for_each(
                |transport| async move {
                    transport.get_ref().set_nodelay(true).expect("nodelay");
                    let channel = BaseChannel::with_defaults(transport);
                    tokio::spawn(channel.execute(EchoServer.serve()).for_each(
                        |response| async move {
                            tokio::spawn(response);
                        },
                    ));
                },
            ));
        let transport = tarpc::serde_transport::tcp::connect(addr, $codec)
            .await
            .expect("connect");
        transport.get_ref().set_nodelay(true).expect("nodelay");
        let client = EchoClient::new(client::Config::default(), transport).spawn();
        let reading: Reading = serde_json::from_str(ARGS).expect("args");
        let figures = modes($d, move || {
            let (client, reading) = (client.clone(), reading.clone());
            async move {
                client
                    .echo(context::current(), reading)
                    .await
                    .expect("call");
            }
        })
        .await;
        server.abort();
        figures
    }};
}

/// tarpc 0.38 over TCP with default client and server configs, TCP_NODELAY set on both ends.
/// The client clones the `Reading` for each call (a caller owns its argument).
pub async fn tarpc(codec: Codec, d: Duration) -> Vec<Figure> {
    match codec {
        Codec::Json => tarpc_run!(Json::default, d),
        Codec::Bincode => tarpc_run!(Bincode::default, d),
    }
}

// ---- raw tokio TCP ----

/// A raw TCP ping-pong of `size`-byte messages on tokio, as the smol one in
/// `toolwire_benches::e2e`: it tells the runtimes' own cost apart from the protocols'.
pub async fn raw_tcp(size: usize, d: Duration) -> Vec<Figure> {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let mut out = vec![];
    for k in [1, 16, 128] {
        let (rate, sorted) = raw_tcp_once(addr, size, k, d).await;
        if k == 1 {
            out.push(Figure {
                k: 0,
                calls_per_s: rate,
                p50_us: Some(percentile(&sorted, 0.5)),
                p99_us: Some(percentile(&sorted, 0.99)),
            });
        }
        out.push(Figure {
            k,
            calls_per_s: rate,
            p50_us: None,
            p99_us: None,
        });
    }
    server.abort();
    out
}

async fn raw_tcp_once(addr: SocketAddr, size: usize, k: usize, d: Duration) -> (f64, Vec<f64>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = vec![b'x'; size];
    let mut buf = vec![0u8; size];
    for _ in 0..k {
        s.write_all(&msg).await.expect("write");
    }
    let mut lat = Vec::with_capacity(16_384);
    let warm = Instant::now();
    let mut start = warm;
    let mut measuring = false;
    loop {
        let now = Instant::now();
        if !measuring && now - warm >= warm_up(d) {
            measuring = true;
            start = now;
        }
        if measuring && now - start >= d {
            break;
        }
        s.read_exact(&mut buf).await.expect("read");
        s.write_all(&msg).await.expect("write");
        if measuring {
            lat.push(now.elapsed().as_secs_f64() * 1e6);
        }
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (rate, lat)
}
