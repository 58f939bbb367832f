//! The embassy node runner against a gateway `Connection`, over an in-memory duplex stream (two
//! `embassy_sync` pipes), on embassy-time's std driver. Node and gateway run in one thread,
//! joined in one future.

mod common;

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::pipe::Pipe;
use embassy_time::{Duration, Timer};
use toolwire_core::ErrorCode;
use toolwire_core::frame::{Encoding, Encodings};
use toolwire_core::gateway::GatewayConfig;
use toolwire_embassy::{Config, Handle, Link, Resources, Serial, Tools};

use common::block_on;
use common::demo::{self, Asker};
use common::gateway::{Ev, Gw};

type P = Pipe<NoopRawMutex, 512>;
type TestGw<'a> = Gw<&'a P, &'a P>;

const T: Duration = Duration::from_secs(5);

fn gw_config(prefer: Encoding) -> GatewayConfig<'static> {
    let mut c = GatewayConfig::new("test-gw");
    c.prefer = prefer;
    c
}

/// Runs a node serving `tools` (N = 2 calls at once) over a pipe pair, and `body` as the
/// gateway, until `body` returns.
fn with_node<Tl: Tools>(
    tools: &Tl,
    config: Config<'_>,
    gw: GatewayConfig<'static>,
    body: impl AsyncFnOnce(&mut TestGw<'_>, Handle<'_>),
) {
    let to_node = P::new();
    let to_gw = P::new();
    let mut res = Box::new(Resources::<2, 512, 2048>::new());
    let (handle, mut runner) = toolwire_embassy::new(tools, config, &mut res);
    let mut gw = Gw::new(gw, &to_gw, &to_node);
    let mut serial = Serial {
        rx: &to_node,
        tx: &to_gw,
    };
    block_on(async {
        match select(runner.run(&mut serial), body(&mut gw, handle)).await {
            Either::First(never) => match never {},
            Either::Second(()) => {}
        }
    });
}

const DEMO_TOOLS: [&str; 5] = ["read_sensor", "set_led", "uptime", "echo", "sample"];

async fn every_tool(gw: &mut TestGw<'_>) {
    let (id, tools) = gw.handshake(T).await;
    assert_eq!(id, "dev-1");
    assert_eq!(tools, DEMO_TOOLS);

    let r = gw
        .call_wait("read_sensor", r#"{"channel":1}"#, T)
        .await
        .unwrap();
    assert!(r.starts_with(r#"{"channel":1,"milli_c":205"#), "{r}");
    assert_eq!(
        gw.call_wait("set_led", r#"{"led":2,"on":true}"#, T).await,
        Ok(r#"{"led":2,"on":true}"#.into())
    );
    let up = gw.call_wait("uptime", "{}", T).await.unwrap();
    assert!(up.starts_with(r#"{"ms":"#), "{up}");
    assert_eq!(
        gw.call_wait("echo", r#"{"text":"h\u00e9llo \"x\""}"#, T)
            .await,
        Ok(r#"{"text":"héllo \"x\""}"#.into())
    );
    let id = gw
        .call("sample", r#"{"channel":0,"count":3,"interval_ms":5}"#, None)
        .await;
    let r = gw.done(id, T).await.unwrap();
    assert!(
        r.starts_with(r#"{"channel":0,"count":3,"mean_milli_c":"#),
        "{r}"
    );
    assert_eq!(gw.progress_of(id), [1, 2, 3]);

    // The device checks arguments itself (the gateway here does not validate schemas).
    let e = gw
        .call_wait("read_sensor", r#"{"channel":9}"#, T)
        .await
        .unwrap_err();
    assert_eq!(e.0, ErrorCode::InvalidArguments.code());
    let e = gw
        .call_wait("read_sensor", r#"{"chan":1}"#, T)
        .await
        .unwrap_err();
    assert_eq!(e.0, ErrorCode::InvalidArguments.code());
}

#[test]
fn every_tool_json() {
    let tools = demo::sim();
    let mut c = Config::new("dev-1");
    c.encodings = Encodings::JSON;
    with_node(&tools, c, gw_config(Encoding::Json), async |gw, _| {
        every_tool(gw).await;
        assert_eq!(gw.conn.encoding(), Encoding::Json);
    });
}

#[test]
fn every_tool_postcard() {
    let tools = demo::sim();
    let mut c = Config::new("dev-1");
    c.hello_encoding = Encoding::Postcard;
    with_node(&tools, c, gw_config(Encoding::Postcard), async |gw, h| {
        every_tool(gw).await;
        assert_eq!(gw.conn.encoding(), Encoding::Postcard);
        let s = h.status();
        assert_eq!((s.link, s.connects, s.registrations), (Link::Ready, 1, 1));
        assert_eq!(s.calls, 7);
    });
}

#[test]
fn calls_run_concurrently_with_progress() {
    let tools = demo::sim();
    with_node(
        &tools,
        Config::new("dev-1"),
        gw_config(Encoding::Postcard),
        async |gw, _| {
            gw.handshake(T).await;
            assert_eq!(gw.conn.max_in_flight(), 2);
            let args = r#"{"channel":2,"count":5,"interval_ms":20}"#;
            let a = gw.call("sample", args, None).await;
            let b = gw.call("sample", args, None).await;
            // A third call exceeds what the node announced: refused before it is sent.
            assert!(
                gw.conn
                    .call(
                        toolwire_core::Instant(0),
                        "uptime",
                        toolwire_core::Json::trusted(b"{}"),
                        None,
                        &mut [0u8; 256]
                    )
                    .is_err()
            );
            gw.done(a, T).await.unwrap();
            gw.done(b, T).await.unwrap();
            assert_eq!(gw.progress_of(a), [1, 2, 3, 4, 5]);
            assert_eq!(gw.progress_of(b), [1, 2, 3, 4, 5]);
            // Interleaved: b reported progress before a finished.
            let pos = |f: &dyn Fn(&Ev) -> bool| gw.seen.iter().position(f).unwrap();
            let b_first = pos(&|e| matches!(e, Ev::Progress { call, .. } if *call == b));
            let a_done = pos(&|e| matches!(e, Ev::Done(c, _) if *c == a));
            assert!(b_first < a_done, "{:?}", gw.seen);
        },
    );
}

#[test]
fn cancel_drops_the_handler() {
    let tools = demo::sim();
    with_node(
        &tools,
        Config::new("dev-1"),
        gw_config(Encoding::Json),
        async |gw, _| {
            gw.handshake(T).await;
            let id = gw
                .call(
                    "sample",
                    r#"{"channel":0,"count":100,"interval_ms":20}"#,
                    None,
                )
                .await;
            gw.wait_for(T, |e| {
                matches!(e, Ev::Progress { call, progress: 2, .. } if *call == id).then_some(())
            })
            .await
            .unwrap();
            gw.cancel(id).await;
            // Both slots work again, and the cancelled handler reports nothing more.
            let a = gw
                .call(
                    "sample",
                    r#"{"channel":1,"count":2,"interval_ms":30}"#,
                    None,
                )
                .await;
            let b = gw.call("read_sensor", r#"{"channel":3}"#, None).await;
            assert!(gw.done(b, T).await.is_ok());
            assert!(gw.done(a, T).await.is_ok());
            let until = embassy_time::Instant::now() + Duration::from_millis(150);
            while embassy_time::Instant::now() < until {
                gw.step(until).await.unwrap();
            }
            assert_eq!(gw.conn.stats().stray_notifications, 0);
            assert_eq!(gw.conn.stats().unknown_responses, 0);
            assert!(gw.progress_of(id).len() < 5);
        },
    );
}

#[test]
fn deadline_stops_the_call() {
    let tools = demo::sim();
    with_node(
        &tools,
        Config::new("dev-1"),
        gw_config(Encoding::Postcard),
        async |gw, _| {
            gw.handshake(T).await;
            let id = gw
                .call(
                    "sample",
                    r#"{"channel":0,"count":100,"interval_ms":20}"#,
                    Some(Duration::from_millis(100)),
                )
                .await;
            let e = gw.done(id, T).await.unwrap_err();
            assert_eq!(e.0, ErrorCode::Timeout.code());
            assert!(gw.call_wait("uptime", "{}", T).await.is_ok());
            assert!(gw.progress_of(id).len() < 10, "{:?}", gw.progress_of(id));
        },
    );
}

#[test]
fn ask_is_answered_and_a_log_line_goes_before_it() {
    with_node(
        &Asker,
        Config::new("asker"),
        gw_config(Encoding::Json),
        async |gw, _| {
            gw.handshake(T).await;
            for (answer, want) in [
                (Ok("true"), Ok(r#"{"granted":true}"#.to_string())),
                (Ok("false"), Ok(r#"{"granted":false}"#.to_string())),
                (
                    Err(toolwire_core::ErrorObject::new(
                        ErrorCode::AskDeclined,
                        "no",
                    )),
                    Err(ErrorCode::AskDeclined.code()),
                ),
            ] {
                let id = gw.call("confirm", "{}", None).await;
                let ask = gw
                    .wait_for(T, |e| match e {
                        Ev::Ask(ask, call, prompt) if *call == id => {
                            assert_eq!(prompt, "may I?");
                            Some(ask.clone())
                        }
                        _ => None,
                    })
                    .await
                    .unwrap();
                gw.answer(&ask, answer).await;
                assert_eq!(gw.done(id, T).await.map_err(|e| e.0), want);
                // The tool's log line came first, about its call.
                let logged = gw.seen.iter().position(|e| {
                    matches!(e, Ev::Log(Some(c), toolwire_core::frame::LogLevel::Notice, m)
                        if *c == id && m == "asking before anything")
                });
                let asked = gw
                    .seen
                    .iter()
                    .position(|e| matches!(e, Ev::Ask(_, c, _) if *c == id));
                assert!(logged.is_some() && logged < asked, "{:?}", gw.seen);
            }
        },
    );
}

#[test]
fn heartbeat_then_silence_makes_the_node_reconnect() {
    let tools = demo::sim();
    let mut c = Config::new("dev-1");
    c.backoff_min = Duration::from_millis(20);
    let mut g = gw_config(Encoding::Postcard);
    g.heartbeat = toolwire_core::Duration::from_millis(50);
    with_node(&tools, c, g, async |gw, h| {
        gw.handshake(T).await;
        // Pings go out every 50 ms and are answered: the connection stays up.
        let until = embassy_time::Instant::now() + Duration::from_millis(300);
        while embassy_time::Instant::now() < until {
            gw.step(until).await.unwrap();
        }
        assert!(!gw.seen.iter().any(|e| matches!(e, Ev::Closed(_))));
        assert_eq!(h.status().link, Link::Ready);
        // The gateway goes silent: after three intervals the node gives up and starts over
        // with a fresh hello and register on the same line.
        Timer::after_millis(250).await;
        let s = h
            .wait_for(|s| s.connects == 2 && s.link == Link::Handshake)
            .await;
        assert_eq!(s.registrations, 1);
        let mut fresh = Gw::new(gw_config(Encoding::Postcard), gw.rx_ref(), gw.tx_ref());
        let (_, tools) = fresh.handshake(T).await;
        assert_eq!(tools, DEMO_TOOLS);
        assert!(fresh.call_wait("uptime", "{}", T).await.is_ok());
        assert_eq!(h.status().registrations, 2);
    });
}

#[test]
fn goodbye_makes_the_node_reconnect() {
    let tools = demo::sim();
    let mut c = Config::new("dev-1");
    c.backoff_min = Duration::from_millis(20);
    with_node(&tools, c, gw_config(Encoding::Json), async |gw, h| {
        gw.handshake(T).await;
        gw.goodbye().await;
        let mut fresh = Gw::new(gw_config(Encoding::Json), gw.rx_ref(), gw.tx_ref());
        fresh.handshake(T).await;
        assert!(
            fresh
                .call_wait("echo", r#"{"text":"again"}"#, T)
                .await
                .is_ok()
        );
        let s = h.status();
        assert_eq!((s.connects, s.registrations), (2, 2));
    });
}
