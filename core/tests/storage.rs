//! One connection state machine, two ways of storing its tables: fixed arrays (`Fixed`, no
//! allocation) and vectors that grow as used (`Heap`, feature `alloc`). Both keep the same
//! bounds and say the same things on the wire.

use toolwire_core::frame::Role;
use toolwire_core::gateway::{
    CallId, Connection, Event, Fixed, GatewayConfig, Heap, SendError, State, Storage,
};
use toolwire_core::{Duration, ErrorCode, Instant, Json};

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Two calls pending and three tools at most: the welcome, a register of four tools, calls past
/// the limit, a timeout and a disconnect, written out as the wire carries them.
fn transcript<S: Storage>() -> Vec<String> {
    let mut log = vec![];
    let now = Instant(0);
    let mut gw: Connection<'static, S> = Connection::new(GatewayConfig::new("gw"), now);
    let mut out = [0u8; 1024];
    let h = gw.handle_frame(now, br#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"min_version":1,"max_version":1,"role":"node","id":"dev-1","encodings":{"json":true,"postcard":false},"max_frame":4096,"max_in_flight":8}}"#, &mut out);
    log.push(text(&out[..h.reply]));
    assert_eq!(gw.state(), State::Ready(Role::Node));
    // Three tools, then a fourth: one frame may not carry more than the table holds.
    for (id, range) in [(1, 0..3), (2, 3..4)] {
        let tools: Vec<String> = range
            .map(|i| format!(r#"{{"name":"t{i}","description":"","input_schema":{{}}}}"#))
            .collect();
        let reg = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"register","params":{{"tools":[{}]}}}}"#,
            tools.join(",")
        );
        let reg: &'static [u8] = Box::leak(reg.into_boxed_str()).as_bytes();
        let h = gw.handle_frame(now, reg, &mut out);
        log.push(text(&out[..h.reply]));
    }
    log.push(format!("tools {:?}", gw.tools().collect::<Vec<_>>()));
    let args = Json::trusted(b"{}");
    let mut calls: Vec<CallId> = vec![];
    for tool in ["t0", "t1", "t2", "t3"] {
        match gw.call(now, tool, args, Some(Duration::from_secs(1)), &mut out) {
            Ok((call, n)) => {
                calls.push(call);
                log.push(text(&out[..n]));
            }
            Err(e) => log.push(format!("{tool}: {e:?}")),
        }
    }
    assert_eq!(gw.in_flight(), 2, "{log:#?}");
    gw.handle_timeout(Instant(1000));
    while let Some(e) = gw.poll_event() {
        if let Event::CallDone { call, result } = e {
            log.push(format!("done {call:?} {:?}", result.map_err(|e| e.code)));
        }
    }
    while let Some(Ok(n)) = gw.poll_transmit(&mut out) {
        log.push(text(&out[..n]));
    }
    assert_eq!(gw.in_flight(), 0);
    let (_, n) = gw
        .call(Instant(1000), "t0", args, None, &mut out)
        .expect("a slot is free again");
    log.push(text(&out[..n]));
    gw.transport_closed();
    while let Some(e) = gw.poll_event() {
        log.push(format!("{e:?}"));
    }
    assert_eq!(gw.state(), State::Closed);
    log
}

#[test]
fn fixed_and_heap_tables_behave_alike() {
    let fixed = transcript::<Fixed<2, 3>>();
    let heap = transcript::<Heap<2, 3>>();
    assert_eq!(fixed, heap);
    // The bounds hold: the welcome offers 2 in flight, the fourth tool is refused, the third
    // call is busy, both pending calls time out, a disconnect ends the one after.
    assert!(fixed[0].contains(r#""max_in_flight":2"#), "{}", fixed[0]);
    assert!(
        fixed[1].contains(r#""accepted":["t0","t1","t2"]"#),
        "{}",
        fixed[1]
    );
    assert!(fixed[2].contains("too_many"), "{}", fixed[2]);
    assert_eq!(fixed[3], r#"tools ["t0", "t1", "t2"]"#);
    assert!(
        fixed
            .iter()
            .any(|l| l == &format!("t2: {:?}", SendError::Busy))
    );
    assert_eq!(
        fixed
            .iter()
            .filter(
                |l| l.starts_with("done") && l.contains(&format!("{}", ErrorCode::Timeout.code()))
            )
            .count(),
        2,
        "{fixed:#?}"
    );
    assert!(
        fixed.iter().any(|l| l.contains("Disconnected")),
        "{fixed:#?}"
    );
}

#[test]
fn an_idle_heap_connection_is_small() {
    use std::mem::size_of;
    // What a gateway pays per idle peer for the state machine itself, before any table grows:
    // the fixed tables of 256 calls and 256 tools are over 32 KiB.
    let heap = size_of::<Connection<'static, Heap<256, 256>>>();
    let fixed = size_of::<Connection<'static, Fixed<256, 256>>>();
    assert!(heap <= 1024, "{heap} bytes");
    assert!(fixed >= 32 * 1024, "{fixed} bytes");
}
