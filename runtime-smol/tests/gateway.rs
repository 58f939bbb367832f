//! The gateway, host nodes and controllers over real loopback sockets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use smol::channel::{bounded, unbounded};
use toolwire_core::ErrorCode;
use toolwire_core::frame::AskKind;
use toolwire_smol::client::{Client, ClientCallOptions, ClientOptions};
use toolwire_smol::gateway::{Acl, CallOptions, GatewayEvent, RateLimit, TokenSpec};
use toolwire_smol::node::{HostNode, NodeOptions, NodeStatus, SessionEnd, Tool, ToolError};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig};

#[test]
fn call_device_tools_over_every_transport_and_encoding() {
    smol::block_on(async {
        let (gw, ws, tcp) = gateway(GatewayConfig::default()).await;
        let mut nodes = vec![];
        for (i, (url, json_only)) in [(&ws, false), (&ws, true), (&tcp, false), (&tcp, true)]
            .into_iter()
            .enumerate()
        {
            let id = format!("dev-{i}");
            let mut opts = NodeOptions::new(&id);
            if json_only {
                opts.encodings = toolwire_core::frame::Encodings::JSON;
            }
            nodes.push(spawn_device(url, opts));
            assert!(gw.wait_for_node(&id, Duration::from_secs(5)).await, "{url}");
            let r = gw
                .call(
                    &id,
                    "read_sensor",
                    &json!({"channel": 2}),
                    CallOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(r["channel"], 2);
            assert!(r["milli_c"].as_i64().unwrap() >= 21_000, "{r}");
            let r = gw
                .call(
                    &id,
                    "echo",
                    &json!({"text": "héllo \"w\"\n"}),
                    CallOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(r, json!({"text": "héllo \"w\"\n"}));
            let r = gw
                .call(
                    &id,
                    "set_led",
                    &json!({"led": 1, "on": true}),
                    CallOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(r, json!({"led": 1, "on": true}));
        }
        let encodings: Vec<_> = gw.nodes().iter().map(|n| n.encoding).collect();
        use toolwire_core::Encoding::{Json, Postcard};
        assert_eq!(encodings, vec![Postcard, Json, Postcard, Json]);
        assert_eq!(gw.resolve("uptime").len(), 4);
    });
}

#[test]
fn schema_rejects_bad_arguments_before_dispatch() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let tool = Tool::new(
            "count",
            "counts calls",
            json!({"type":"object","properties":{"n":{"type":"integer","maximum":3}},"required":["n"]}),
            move |_, _| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Ok(json!(null)) }
            },
        );
        let _node = spawn_node(&ws, HostNode::new(NodeOptions::new("n1")).tool(tool));
        assert!(gw.wait_for_node("n1", Duration::from_secs(5)).await);
        let e = gw
            .call("n1", "count", &json!({"n": 9}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::InvalidArguments), "{e}");
        assert_eq!(e.data.unwrap()["path"], "/n");
        let e = gw
            .call("n1", "count", &json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::InvalidArguments));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "bad calls must never reach the node"
        );
        gw.call("n1", "count", &json!({"n": 3}), CallOptions::default())
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let e = gw
            .call("n1", "nope", &json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::ToolNotFound));
        let e = gw
            .call("ghost", "count", &json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::NodeNotFound));
    });
}

#[test]
fn progress_timeout_and_cancel_reach_the_node() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let (started_tx, started_rx) = unbounded();
        let (dropped_tx, dropped_rx) = unbounded();
        let slow = Tool::new("slow", "sleeps", json!({"type":"object"}), move |ctx, _| {
            let started = started_tx.clone();
            let dropped = dropped_tx.clone();
            async move {
                struct OnDrop(smol::channel::Sender<()>);
                impl Drop for OnDrop {
                    fn drop(&mut self) {
                        let _ = self.0.try_send(());
                    }
                }
                let _guard = OnDrop(dropped);
                let _ = started.send(()).await;
                for i in 1..=3 {
                    ctx.progress(i, Some(100), Some("working"), Some(json!({"step": i})))
                        .await;
                }
                smol::Timer::after(Duration::from_secs(60)).await;
                Ok(json!("never"))
            }
        });
        let _node = spawn_node(&ws, HostNode::new(NodeOptions::new("n1")).tool(slow));
        assert!(gw.wait_for_node("n1", Duration::from_secs(5)).await);

        // Timeout: the caller gets `timeout`, the node's handler is dropped (it saw cancel).
        let (ptx, prx) = bounded(16);
        let t0 = std::time::Instant::now();
        let opts = CallOptions {
            timeout: Some(Duration::from_millis(300)),
            progress: Some(ptx),
            ..Default::default()
        };
        let e = gw.call("n1", "slow", &json!({}), opts).await.unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(2));
        started_rx.recv().await.unwrap();
        recv_within(&dropped_rx, Duration::from_secs(2))
            .await
            .expect("handler dropped after timeout");
        let mut seen = vec![];
        while let Ok(p) = prx.try_recv() {
            seen.push((p.progress, p.partial));
        }
        assert_eq!(
            seen,
            vec![
                (1, Some(json!({"step":1}))),
                (2, Some(json!({"step":2}))),
                (3, Some(json!({"step":3})))
            ]
        );

        // The caller drops the future: cancel reaches the node too.
        let args = json!({});
        let call = gw.call("n1", "slow", &args, CallOptions::default());
        let _ = smol::future::or(async { call.await.map(|_| ()) }, async {
            started_rx.recv().await.unwrap();
            Ok(())
        })
        .await;
        recv_within(&dropped_rx, Duration::from_secs(2))
            .await
            .expect("handler dropped after the caller gave up");
        smol::Timer::after(Duration::from_millis(50)).await;
        assert_eq!(gw.nodes()[0].in_flight, 0);
    });
}

#[test]
fn ask_is_answered_by_the_caller() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let tool = Tool::new(
            "valve",
            "opens a valve if allowed",
            json!({"type":"object"}),
            |ctx, _| async move {
                let ok = ctx.ask(AskKind::Permission, "Open valve 3?", None).await?;
                if ok == json!(true) {
                    Ok(json!("opened"))
                } else {
                    Err(ToolError::failed("not allowed"))
                }
            },
        );
        let _node = spawn_node(&ws, HostNode::new(NodeOptions::new("n1")).tool(tool));
        assert!(gw.wait_for_node("n1", Duration::from_secs(5)).await);
        for (answer, expect) in [
            (true, Ok(json!("opened"))),
            (false, Err(ErrorCode::ToolFailed.code())),
        ] {
            let (atx, arx) = bounded(1);
            let opts = CallOptions {
                asks: Some(atx),
                ..Default::default()
            };
            let args = json!({});
            let call = gw.call("n1", "valve", &args, opts);
            let answerer = async {
                let a = arx.recv().await.unwrap();
                assert_eq!(a.prompt, "Open valve 3?");
                a.answer(json!(answer));
                std::future::pending::<()>().await;
                unreachable!()
            };
            let r = smol::future::or(call, answerer).await;
            assert_eq!(r.map_err(|e| e.code), expect);
        }
        // Without an answerer the ask is declined and the tool sees the error.
        let e = gw
            .call("n1", "valve", &json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::AskDeclined), "{e}");
    });
}

/// A gateway with the demo device as `dev-a` on WebSocket and `dev-b` on TCP, both connected.
async fn two_devices() -> (Gateway, String, String, [smol::Task<()>; 2]) {
    let (gw, ws, tcp) = gateway(GatewayConfig::default()).await;
    let a = spawn_device(&ws, NodeOptions::new("dev-a"));
    let b = spawn_device(&tcp, NodeOptions::new("dev-b"));
    assert!(gw.wait_for_node("dev-a", Duration::from_secs(5)).await);
    assert!(gw.wait_for_node("dev-b", Duration::from_secs(5)).await);
    (gw, ws, tcp, [a, b])
}

#[test]
fn controller_lists_calls_sees_progress_and_cancels() {
    smol::block_on(async {
        let (gw, ws, tcp, _devices) = two_devices().await;
        for url in [&ws, &tcp] {
            let client = Client::connect(&Endpoint::parse(url).unwrap(), ClientOptions::default())
                .await
                .unwrap();
            let nodes = client.nodes().await.unwrap();
            assert_eq!(
                nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
                vec!["dev-a", "dev-b"]
            );
            let tools = client.tools(Some("read"), None).await.unwrap();
            assert_eq!(tools.len(), 2);
            assert_eq!(tools[0].input_schema["properties"]["channel"]["maximum"], 3);
            assert_eq!(
                client.resolve("sample").await.unwrap(),
                vec!["dev-a", "dev-b"]
            );
            let (ptx, prx) = bounded(64);
            let opts = ClientCallOptions {
                progress: Some(ptx),
                ..Default::default()
            };
            let r = client
                .call(
                    "dev-b",
                    "sample",
                    &json!({"channel": 1, "count": 4, "interval_ms": 10}),
                    opts,
                )
                .await
                .unwrap();
            assert_eq!(r["count"], 4);
            let steps: Vec<u64> = std::iter::from_fn(|| prx.try_recv().ok())
                .map(|p| p.progress)
                .collect();
            assert_eq!(steps, vec![1, 2, 3, 4]);
            let e = client
                .call(
                    "dev-a",
                    "read_sensor",
                    &json!({"channel": 7}),
                    Default::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(e.known(), Some(ErrorCode::InvalidArguments));
            // Timeout through a controller.
            let opts = ClientCallOptions {
                timeout: Some(Duration::from_millis(200)),
                ..Default::default()
            };
            let e = client
                .call(
                    "dev-a",
                    "sample",
                    &json!({"channel": 0, "count": 100, "interval_ms": 1000}),
                    opts,
                )
                .await
                .unwrap_err();
            assert_eq!(e.known(), Some(ErrorCode::Timeout));
        }
        // Cancelling from the controller stops the call on the node.
        let client = Client::connect(&Endpoint::parse(&ws).unwrap(), ClientOptions::default())
            .await
            .unwrap();
        let args = json!({"channel": 0, "count": 100, "interval_ms": 1000});
        let call = client.call("dev-a", "sample", &args, Default::default());
        let timer = async {
            smol::Timer::after(Duration::from_millis(200)).await;
            Err(toolwire_smol::CallError::new(
                ErrorCode::Cancelled,
                "test gave up",
            ))
        };
        assert!(smol::future::or(call, timer).await.is_err());
        let ok = wait_until(Duration::from_secs(2), || {
            gw.nodes().iter().all(|n| n.in_flight == 0)
        })
        .await;
        assert!(ok, "cancel did not reach the node: {:?}", gw.nodes());
    });
}

#[test]
fn a_client_narrows_its_tool_set() {
    smol::block_on(async {
        let (_gw, ws, tcp, _devices) = two_devices().await;
        for url in [&ws, &tcp] {
            let client = Client::connect(&Endpoint::parse(url).unwrap(), ClientOptions::default())
                .await
                .unwrap();
            let every = client.tools(None, None).await.unwrap().len();
            client.set_tool_scope(&["dev-b/read_*"]).await.unwrap();
            let seen: Vec<String> = client
                .tools(None, None)
                .await
                .unwrap()
                .iter()
                .map(|t| format!("{}/{}", t.node, t.name))
                .collect();
            assert_eq!(seen, ["dev-b/read_sensor"], "{url}");
            assert_eq!(client.resolve("read_sensor").await.unwrap(), ["dev-b"]);
            let e = client
                .call(
                    "dev-a",
                    "read_sensor",
                    &json!({"channel": 0}),
                    Default::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(e.known(), Some(ErrorCode::Unauthorized), "{e}");
            let v = client
                .call(
                    "dev-b",
                    "read_sensor",
                    &json!({"channel": 0}),
                    Default::default(),
                )
                .await
                .unwrap();
            assert_eq!(v["channel"], 0, "{v}");
            let e = client.set_tool_scope(&["a/b/c"]).await.unwrap_err();
            assert_eq!(e.known(), Some(ErrorCode::InvalidParams), "{e}");
            client.set_tool_scope::<&str>(&[]).await.unwrap();
            assert_eq!(client.tools(None, None).await.unwrap().len(), every);
        }
    });
}

#[test]
fn a_clients_ask_rules_answer_its_calls_asks() {
    use toolwire_core::frame::Decision;
    use toolwire_core::router::AskRule;
    smol::block_on(async {
        let (gw, ws, tcp) = gateway(GatewayConfig::default()).await;
        let tool = Tool::new(
            "valve",
            "opens a valve if allowed, by the amount asked for",
            json!({"type":"object"}),
            |ctx, _| async move {
                let ok = ctx.ask(AskKind::Permission, "Open valve 3?", None).await?;
                if ok != json!(true) {
                    return Err(ToolError::failed("not allowed"));
                }
                let litres = ctx.ask(AskKind::Input, "How many litres?", None).await?;
                Ok(json!({ "opened": litres }))
            },
        );
        let _node = spawn_node(&ws, HostNode::new(NodeOptions::new("n1")).tool(tool));
        assert!(gw.wait_for_node("n1", Duration::from_secs(5)).await);
        let events = gw.events();
        let client = Client::connect(&Endpoint::parse(&tcp).unwrap(), ClientOptions::default())
            .await
            .unwrap();
        let rules = vec![
            AskRule {
                tool: "n1/valve".into(),
                kind: Some(AskKind::Permission),
                prompt: Some("Open valve *".into()),
                decision: Decision::Allow,
                answer: None,
            },
            AskRule {
                tool: "valve".into(),
                kind: Some(AskKind::Input),
                prompt: None,
                decision: Decision::Allow,
                answer: Some("2".into()),
            },
        ];
        client.set_ask_rules(&rules).await.unwrap();
        assert_eq!(client.ask_rules().await.unwrap(), rules);
        // No ask handler: without the rules both asks would be declined.
        let v = client
            .call("n1", "valve", &json!({}), Default::default())
            .await
            .unwrap();
        assert_eq!(v, json!({"opened": 2}));
        let mut decided = vec![];
        while let Ok(e) = events.try_recv() {
            if let GatewayEvent::AskDecided { rule, decision, .. } = e {
                decided.push((rule, decision));
            }
        }
        assert_eq!(decided, [(0, Decision::Allow), (1, Decision::Allow)]);
        // Deny the permission: the tool is refused.
        let deny = AskRule {
            decision: Decision::Deny,
            ..rules[0].clone()
        };
        client.set_ask_rules(&[deny]).await.unwrap();
        let e = client
            .call("n1", "valve", &json!({}), Default::default())
            .await
            .unwrap_err();
        assert!(e.message.contains("not allowed"), "{e}");
    });
}

#[test]
fn auth_acl_and_rate_limit() {
    smol::block_on(async {
        let cfg = GatewayConfig {
            tokens: vec![
                TokenSpec {
                    token: "node-secret".into(),
                    node: true,
                    controller: false,
                    acl: Acl::default(),
                },
                TokenSpec {
                    token: "reader".into(),
                    node: false,
                    controller: true,
                    acl: Acl {
                        allow: vec!["read_*".into(), "dev/uptime".into()],
                        deny: vec![],
                    },
                },
            ],
            rate_limit: Some(RateLimit {
                per_second: 1.0,
                burst: 3,
            }),
            ..Default::default()
        };
        let (gw, ws, tcp) = gateway(cfg).await;
        // Wrong node token: refused, and the node stops retrying.
        let mut bad = NodeOptions::new("dev");
        bad.token = Some("guess".into());
        let end = HostNode::new(bad)
            .run(&Endpoint::parse(&ws).unwrap(), None)
            .await;
        assert_eq!(
            end,
            toolwire_smol::node::SessionEnd::Refused(ErrorCode::Unauthorized.code())
        );
        let mut good = NodeOptions::new("dev");
        good.token = Some("node-secret".into());
        let _node = spawn_device(&tcp, good);
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        // A controller without the token is refused; a node token is not a controller token.
        for token in [None, Some("node-secret")] {
            let opts = ClientOptions {
                token: token.map(Into::into),
                ..Default::default()
            };
            let e = Client::connect(&Endpoint::parse(&ws).unwrap(), opts)
                .await
                .err()
                .expect("refused");
            assert!(e.to_string().contains("unauthorized"), "{e}");
        }
        let opts = ClientOptions {
            token: Some("reader".into()),
            ..Default::default()
        };
        let client = Client::connect(&Endpoint::parse(&ws).unwrap(), opts)
            .await
            .unwrap();
        client
            .call(
                "dev",
                "read_sensor",
                &json!({"channel": 0}),
                Default::default(),
            )
            .await
            .unwrap();
        client
            .call("dev", "uptime", &json!({}), Default::default())
            .await
            .unwrap();
        let e = client
            .call(
                "dev",
                "set_led",
                &json!({"led": 0, "on": true}),
                Default::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Unauthorized));
        // Burst of 3 spent (2 above + 1 now); the next is rate limited.
        client
            .call(
                "dev",
                "read_sensor",
                &json!({"channel": 0}),
                Default::default(),
            )
            .await
            .unwrap();
        let e = client
            .call(
                "dev",
                "read_sensor",
                &json!({"channel": 0}),
                Default::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::RateLimited));
    });
}

#[test]
fn killed_node_fails_pending_calls_promptly_and_reconnects() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        let events = gw.events();
        let node = spawn_device(&ws, NodeOptions::new("dev"));
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        let args = json!({"channel": 0, "count": 100, "interval_ms": 1000});
        let call = gw.call("dev", "sample", &args, CallOptions::default());
        let kill = async {
            smol::Timer::after(Duration::from_millis(200)).await;
            drop(node); // the node's task and its socket go away mid-call
            std::future::pending::<()>().await;
            unreachable!()
        };
        let t0 = std::time::Instant::now();
        let e = smol::future::or(call, kill).await.unwrap_err();
        assert_eq!(e.known(), Some(ErrorCode::Disconnected), "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t0.elapsed()
        );
        let mut evs = vec![];
        while let Some(e) = recv_within(&events, Duration::from_secs(2)).await {
            let done = e == GatewayEvent::NodeDisconnected("dev".into());
            evs.push(e);
            if done {
                break;
            }
        }
        assert_eq!(
            evs.last(),
            Some(&GatewayEvent::NodeDisconnected("dev".into())),
            "{evs:?}"
        );
        assert!(gw.nodes().is_empty());
        // A new node process with the same id registers again.
        let _node = spawn_device(&ws, NodeOptions::new("dev"));
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        gw.call("dev", "uptime", &json!({}), CallOptions::default())
            .await
            .unwrap();
    });
}

#[test]
fn nodes_survive_a_gateway_restart() {
    smol::block_on(async {
        let port = free_port();
        let url = format!("ws://127.0.0.1:{port}");
        let ep = Endpoint::parse(&url).unwrap();
        let gw1 = Gateway::new(GatewayConfig::default());
        let l1 = gw1.listen(&ep, None).await.unwrap();
        let (stx, srx) = unbounded();
        let mut opts = NodeOptions::new("dev");
        opts.backoff_initial = Duration::from_millis(50);
        opts.backoff_max = Duration::from_millis(200);
        let node = HostNode::new(opts).tools(common::device::tools());
        let ep2 = ep.clone();
        let _task = smol::spawn(async move { node.run(&ep2, Some(stx)).await });
        assert!(gw1.wait_for_node("dev", Duration::from_secs(5)).await);
        // Stop the gateway: listener and connections go.
        gw1.shutdown();
        drop(l1);
        drop(gw1);
        assert_eq!(
            recv_within(&srx, Duration::from_secs(5)).await,
            Some(NodeStatus::Ready)
        );
        let ended = recv_within(&srx, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(ended, NodeStatus::Ended(_)), "{ended:?}");
        // Start a new gateway on the same port: the node finds it and registers again.
        let gw2 = Gateway::new(GatewayConfig::default());
        let _l2 = listen_retry(&gw2, &ep).await;
        assert!(gw2.wait_for_node("dev", Duration::from_secs(10)).await);
        gw2.call("dev", "uptime", &json!({}), CallOptions::default())
            .await
            .unwrap();
    });
}

#[test]
fn refuses_public_bind_without_token() {
    smol::block_on(async {
        let gw = Gateway::new(GatewayConfig::default());
        let e = gw
            .listen(&Endpoint::parse("ws://0.0.0.0:0").unwrap(), None)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("without a token"), "{e}");
    });
}

#[test]
fn concurrency_limit_and_many_calls_in_flight() {
    smol::block_on(async {
        let (gw, _, tcp) = gateway(GatewayConfig::default()).await;
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let tool = Tool::new("work", "", json!({"type":"object"}), move |_, v| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                smol::Timer::after(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(v)
            }
        })
        .concurrency(2);
        let echo = Tool::new(
            "echo",
            "",
            json!({"type":"object"}),
            |_, v| async move { Ok(v) },
        );
        let _node = spawn_node(
            &tcp,
            HostNode::new(NodeOptions::new("n")).tool(tool).tool(echo),
        );
        assert!(gw.wait_for_node("n", Duration::from_secs(5)).await);
        let calls = (0..6).map(|i| {
            let gw = gw.clone();
            async move {
                gw.call("n", "work", &json!({"i": i}), CallOptions::default())
                    .await
            }
        });
        for (i, r) in futures_join(calls).await.into_iter().enumerate() {
            assert_eq!(r.unwrap(), json!({"i": i}));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // 200 concurrent calls on one connection (more than the 32 in flight allowed: the
        // excess is refused as busy, never lost).
        let calls = (0..200).map(|i| {
            let gw = gw.clone();
            async move {
                gw.call("n", "echo", &json!({"i": i}), CallOptions::default())
                    .await
            }
        });
        let results = futures_join(calls).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(e) if e.known() == Some(ErrorCode::Busy)))
            .count();
        assert_eq!(ok + busy, 200);
        assert!(ok >= 32, "{ok} ok, {busy} busy");
    });
}

#[test]
fn controllers_hear_of_tool_changes() {
    smol::block_on(async {
        let (gw, ws, tcp) = gateway(GatewayConfig::default()).await;
        let client = Client::connect(&Endpoint::parse(&tcp).unwrap(), ClientOptions::default())
            .await
            .unwrap();
        let events = client.events();
        let node = spawn_device(&ws, NodeOptions::new("dev"));
        assert!(gw.wait_for_node("dev", Duration::from_secs(5)).await);
        let e = recv_within(&events, Duration::from_secs(2)).await;
        assert_eq!(
            e,
            Some(toolwire_smol::client::ClientEvent::ToolsChanged(
                "dev".into()
            ))
        );
        drop(node);
        // Connect, register, then leave: each is announced.
        let mut seen = 0;
        while let Some(e) = recv_within(&events, Duration::from_secs(2)).await {
            assert_eq!(
                e,
                toolwire_smol::client::ClientEvent::ToolsChanged("dev".into())
            );
            seen += 1;
            if gw.nodes().is_empty() && events.is_empty() {
                break;
            }
        }
        assert!(seen >= 1);
        assert!(client.tools(None, None).await.unwrap().is_empty());
    });
}

#[test]
fn tool_listings_page_and_shrink_pages_to_fit_the_frame() {
    smol::block_on(async {
        // 3 nodes × 50 tools of ~300 bytes: each register frame fits a 16 KiB frame, but a default
        // page of 100 (~30 KB) does not, so the gateway halves the page until it fits; the client
        // follows the cursors.
        let cfg = GatewayConfig {
            max_frame: 16 * 1024,
            ..Default::default()
        };
        let (gw, ws, _) = gateway(cfg).await;
        let mut nodes = vec![];
        for n in 0..3 {
            let tools = (0..50).map(|i| {
                let name = format!("tool_{:03}", n * 50 + i);
                Tool::new(
                    &name,
                    &"d".repeat(200),
                    json!({"type": "object"}),
                    |_, v| async move { Ok(v) },
                )
            });
            let node = HostNode::new(NodeOptions::new(&format!("many-{n}"))).tools(tools);
            nodes.push(spawn_node(&ws, node));
        }
        assert!(wait_until(Duration::from_secs(5), || gw.tools(None, None).len() == 150).await);
        let client = Client::connect(&Endpoint::parse(&ws).unwrap(), ClientOptions::default())
            .await
            .unwrap();
        let listed = client.tools(None, None).await.unwrap();
        let names: Vec<String> = listed.iter().map(|t| t.name.clone()).collect();
        let expected: Vec<String> = (0..150).map(|i| format!("tool_{i:03}")).collect();
        assert_eq!(names, expected);
        assert_eq!(client.tools(Some("tool_14"), None).await.unwrap().len(), 10);
    });
}

#[test]
fn a_panicking_tool_fails_its_call_and_the_node_goes_on() {
    smol::block_on(async {
        let (gw, ws, _) = gateway(GatewayConfig::default()).await;
        // One panics as it is called, one after waiting; a third answers with progress first
        // without ever waiting (its result must not overtake its progress).
        let now = Tool::new("now", "panics", json!({"type":"object"}), |_, _| async {
            panic!("at once")
        });
        let later = Tool::new("later", "panics", json!({"type":"object"}), |_, _| async {
            smol::Timer::after(Duration::from_millis(10)).await;
            panic!("after a wait")
        });
        let quick = Tool::new(
            "quick",
            "progress then result",
            json!({"type":"object"}),
            |ctx, _| async move {
                ctx.progress(1, Some(2), Some("half"), None).await;
                Ok(json!("done"))
            },
        );
        let node = HostNode::new(NodeOptions::new("p1"))
            .tool(now)
            .tool(later)
            .tool(quick);
        let _node = spawn_node(&ws, node);
        assert!(gw.wait_for_node("p1", Duration::from_secs(5)).await);
        let opts = || CallOptions {
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        for tool in ["now", "later", "now"] {
            let e = gw.call("p1", tool, &json!({}), opts()).await.unwrap_err();
            assert_eq!(e.known(), Some(ErrorCode::ToolFailed), "{tool}: {e}");
            assert!(e.message.contains("panicked"), "{e}");
        }
        let (tx, rx) = unbounded();
        let r = gw
            .call(
                "p1",
                "quick",
                &json!({}),
                CallOptions {
                    progress: Some(tx),
                    ..opts()
                },
            )
            .await
            .unwrap();
        assert_eq!(r, json!("done"));
        let p = rx
            .try_recv()
            .expect("the progress arrived before the result");
        assert_eq!((p.progress, p.total), (1, Some(2)));
    });
}

/// A node with one `echo` tool that retries quickly (a flood hammers the gateway).
fn echo_node(id: &str, json_only: bool) -> HostNode {
    let mut opts = NodeOptions::new(id);
    opts.backoff_initial = Duration::from_millis(50);
    opts.backoff_max = Duration::from_millis(500);
    if json_only {
        opts.encodings = toolwire_core::frame::Encodings::JSON;
    }
    HostNode::new(opts).tool(Tool::new(
        "echo",
        "returns its arguments",
        json!({"type": "object"}),
        |_, args| async move { Ok(args) },
    ))
}

#[test]
fn a_node_flood_leaves_room_for_controllers() {
    smol::block_on(async {
        const NODES: usize = 24;
        let cfg = GatewayConfig {
            max_nodes: NODES,
            max_controllers: 2,
            ..Default::default()
        };
        let (gw, ws, tcp) = gateway(cfg).await;
        let urls = [&ws, &tcp];
        let connected = |prefix: &str| {
            gw.nodes()
                .iter()
                .filter(|n| n.id.starts_with(prefix) && n.tools == 1)
                .count()
        };
        // Both transports, both encodings.
        let mut fleet: Vec<_> = (0..NODES)
            .map(|i| spawn_node(urls[i % 2], echo_node(&format!("dev-{i}"), i % 4 >= 2)))
            .collect();
        assert!(wait_until(Duration::from_secs(10), || connected("dev-") == NODES).await);
        let events = gw.events();

        // Twice as many nodes again, each retrying as soon as it is refused.
        let _flood: Vec<_> = (0..2 * NODES)
            .map(|i| spawn_node(urls[i % 2], echo_node(&format!("flood-{i}"), i % 4 >= 2)))
            .collect();
        // A node past the limit is told why.
        let end = echo_node("flood-x", false)
            .run_once(&Endpoint::parse(&tcp).unwrap(), None)
            .await;
        assert_eq!(end, SessionEnd::Refused(ErrorCode::Busy.code()));

        // The operator still gets in while the flood goes on, and calls a node.
        let client = Client::connect(&Endpoint::parse(&ws).unwrap(), ClientOptions::default())
            .await
            .expect("a controller connects during a node flood");
        let second = Client::connect(&Endpoint::parse(&tcp).unwrap(), ClientOptions::default())
            .await
            .expect("a second controller");
        for (c, node) in [(&client, "dev-3"), (&second, "dev-6")] {
            let r = c
                .call(node, "echo", &json!({"x": 1}), ClientCallOptions::default())
                .await
                .unwrap();
            assert_eq!(r, json!({"x": 1}));
        }
        // A third controller is one too many, and is told so.
        let third = Client::connect(&Endpoint::parse(&ws).unwrap(), ClientOptions::default()).await;
        let err = third.err().expect("the third controller is refused");
        assert!(err.to_string().contains("busy"), "{err}");

        // Nothing else moved: the same nodes, none came or went.
        assert_eq!(connected("dev-"), NODES);
        assert_eq!(gw.nodes().len(), NODES);
        while let Ok(e) = events.try_recv() {
            assert!(
                matches!(e, GatewayEvent::CallFinished { .. }),
                "during the flood: {e:?}"
            );
        }

        // A place freed is taken by a node of the flood, which kept retrying.
        drop(fleet.pop());
        assert!(wait_until(Duration::from_secs(10), || connected("flood-") == 1).await);
        assert_eq!(gw.nodes().len(), NODES);
        let r = client
            .call(
                "dev-0",
                "echo",
                &json!({"y": 2}),
                ClientCallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(r, json!({"y": 2}));
    });
}

#[test]
fn every_gateway_runs_its_timers() {
    // A gateway's timer task may start on the executor's thread before `Gateway::new` has
    // returned; it must still serve that gateway. A silent socket, closed at the handshake
    // timeout, shows the timer of each of many gateways at work.
    smol::block_on(async {
        let mut held = vec![];
        for _ in 0..50 {
            let gw = Gateway::new(GatewayConfig {
                handshake_timeout: Duration::from_millis(100),
                ..Default::default()
            });
            let l = gw
                .listen(&Endpoint::parse("tcp://127.0.0.1:0").unwrap(), None)
                .await
                .unwrap();
            let s = std::net::TcpStream::connect(l.addr).unwrap();
            held.push((gw, l, s));
        }
        for (i, (_, _, s)) in held.iter_mut().enumerate() {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let r = s.read(&mut [0u8; 16]);
            assert!(
                matches!(r, Ok(0)),
                "gateway {i}: a silent socket outlived the handshake timeout: {r:?}"
            );
        }
    });
}
