//! A minimal gateway for tests: one `toolwire_core::gateway::Connection` over a byte stream
//! with COBS framing, turned into owned events the test waits for.

use std::collections::VecDeque;

use embassy_time::{Duration, Instant, with_deadline};
use embedded_io_async::{Error as _, ErrorKind, Read, Write};
use toolwire_core::gateway::{self, AskId, CloseReason, Connection, Fixed, GatewayConfig};
use toolwire_core::stream::{Deframed, Deframer, encode_frame};
use toolwire_core::{ErrorObject, Json};

/// What the gateway saw, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Hello(String),
    Registered(Vec<String>),
    Done(u64, Result<String, (i32, String)>),
    Progress {
        call: u64,
        progress: u64,
        total: Option<u64>,
        message: Option<String>,
    },
    Ask(AskId, u64, String),
    Log(Option<u64>, toolwire_core::frame::LogLevel, String),
    Closed(CloseReason),
    Other(String),
}

fn owned(e: gateway::Event<'_>) -> Ev {
    match e {
        gateway::Event::Hello { id, .. } => Ev::Hello(id.to_string()),
        gateway::Event::Registered { tools, accepted } => Ev::Registered(
            tools
                .iter()
                .enumerate()
                .filter(|(i, _)| accepted.contains(*i))
                .map(|(_, t)| t.name.to_string())
                .collect(),
        ),
        gateway::Event::CallDone { call, result } => Ev::Done(
            call.0,
            result
                .map(|j| j.as_str().to_owned())
                .map_err(|e| (e.code, e.message.to_string())),
        ),
        gateway::Event::Progress {
            call,
            progress,
            total,
            message,
            ..
        } => Ev::Progress {
            call: call.0,
            progress,
            total,
            message: message.map(|m| m.to_string()),
        },
        gateway::Event::Ask {
            ask, call, prompt, ..
        } => Ev::Ask(ask, call.0, prompt.to_string()),
        gateway::Event::Closed(r) => Ev::Closed(r),
        gateway::Event::Log {
            call,
            level,
            message,
            ..
        } => Ev::Log(call.map(|c| c.0), level, message.to_string()),
        other => Ev::Other(format!("{other:?}")),
    }
}

/// The stream ended (EOF or an error other than a read timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost(pub Option<ErrorKind>);

pub type Result<T, E = (i32, String)> = std::result::Result<T, E>;

/// A gateway end of one connection.
pub struct Gw<R, W> {
    pub conn: Connection<'static, Fixed<8, 16>>,
    rx: R,
    tx: W,
    deframer: Deframer<Vec<u8>>,
    out: Vec<u8>,
    wire: Vec<u8>,
    /// Events not yet taken by a `wait_for`.
    pub events: VecDeque<Ev>,
    /// Every event, in order.
    pub seen: Vec<Ev>,
}

fn now() -> toolwire_core::Instant {
    toolwire_core::Instant(Instant::now().as_millis())
}

async fn send<W: Write>(tx: &mut W, wire: &mut [u8], payload: &[u8]) -> Result<(), Lost> {
    let n = encode_frame(payload, wire).expect("wire buffer");
    tx.write_all(&wire[..n])
        .await
        .map_err(|e| Lost(Some(e.kind())))?;
    tx.flush().await.map_err(|e| Lost(Some(e.kind())))
}

impl<R: Copy, W: Copy> Gw<R, W> {
    /// The streams, to start another gateway connection on them.
    pub fn rx_ref(&self) -> R {
        self.rx
    }
    pub fn tx_ref(&self) -> W {
        self.tx
    }
}

impl<R: Read, W: Write> Gw<R, W> {
    pub fn new(config: GatewayConfig<'static>, rx: R, tx: W) -> Self {
        Gw {
            conn: Connection::new(config, now()),
            rx,
            tx,
            deframer: Deframer::new(vec![0; 65536]),
            out: vec![0; 65536],
            wire: vec![0; 70000],
            events: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    fn push(&mut self, e: Ev) {
        self.seen.push(e.clone());
        self.events.push_back(e);
    }

    /// Sends what the connection queued and collects its events.
    async fn pump_out(&mut self) -> Result<(), Lost> {
        while let Some(r) = self.conn.poll_transmit(&mut self.out) {
            let n = r.expect("gateway encode");
            send(&mut self.tx, &mut self.wire, &self.out[..n]).await?;
        }
        while let Some(e) = self.conn.poll_event() {
            self.push(owned(e));
        }
        Ok(())
    }

    /// One round: timers, then (if they produced no event) bytes until `until` (or the next
    /// timer).
    pub async fn step(&mut self, until: Instant) -> Result<(), Lost> {
        let seen = self.seen.len();
        self.conn.handle_timeout(now());
        self.pump_out().await?;
        if self.seen.len() > seen {
            // E.g. a call timed out: the caller may be waiting for it, and the node, which was
            // sent a cancel, may have nothing more to say.
            return Ok(());
        }
        let wake = self
            .conn
            .poll_timeout()
            .map(|t| Instant::from_millis(t.as_millis()))
            .map_or(until, |t| t.min(until));
        let mut buf = [0u8; 1024];
        let n = match with_deadline(wake, self.rx.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => return Ok(()),
            Ok(Err(e)) => return Err(Lost(Some(e.kind()))),
            Ok(Ok(0)) => return Err(Lost(None)),
            Ok(Ok(n)) => n,
        };
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, d) = self.deframer.push(input);
            input = &input[used..];
            if let Deframed::Frame(frame) = d {
                let h = self.conn.handle_frame(now(), frame, &mut self.out);
                let event = h.event.map(owned);
                if h.reply > 0 {
                    send(&mut self.tx, &mut self.wire, &self.out[..h.reply]).await?;
                }
                if let Some(e) = event {
                    self.push(e);
                }
            }
        }
        self.pump_out().await
    }

    /// Waits (at most `timeout`) for the first event `f` picks, leaving the others queued.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&Ev) -> Option<T>,
    ) -> Result<T, Lost> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(|e| f(e).is_some()) {
                let e = self.events.remove(i).unwrap();
                return Ok(f(&e).unwrap());
            }
            assert!(
                Instant::now() < until,
                "timed out; unclaimed events: {:?}",
                self.events
            );
            self.step(until).await?;
        }
    }

    /// Waits for `hello` and `register`; returns the node id and its tools.
    pub async fn handshake(&mut self, timeout: Duration) -> (String, Vec<String>) {
        let id = self
            .wait_for(timeout, |e| match e {
                Ev::Hello(id) => Some(id.clone()),
                _ => None,
            })
            .await
            .expect("hello");
        let tools = self
            .wait_for(timeout, |e| match e {
                Ev::Registered(t) => Some(t.clone()),
                _ => None,
            })
            .await
            .expect("register");
        (id, tools)
    }

    /// Starts a call; returns its id.
    pub async fn call(&mut self, tool: &str, args: &str, deadline: Option<Duration>) -> u64 {
        let args = Json::parse(args.as_bytes()).expect("test args are JSON");
        let deadline = deadline.map(|d| toolwire_core::Duration::from_millis(d.as_millis()));
        let (id, n) = self
            .conn
            .call(now(), tool, args, deadline, &mut self.out)
            .unwrap_or_else(|e| panic!("call {tool}: {e}"));
        send(&mut self.tx, &mut self.wire, &self.out[..n])
            .await
            .expect("send execute");
        id.0
    }

    /// Waits for call `id` to end.
    pub async fn done(&mut self, id: u64, timeout: Duration) -> Result<String> {
        self.wait_for(timeout, |e| match e {
            Ev::Done(c, r) if *c == id => Some(r.clone()),
            _ => None,
        })
        .await
        .expect("connection lost during a call")
    }

    /// Calls and waits for the result.
    pub async fn call_wait(&mut self, tool: &str, args: &str, timeout: Duration) -> Result<String> {
        let id = self.call(tool, args, None).await;
        self.done(id, timeout).await
    }

    /// Cancels call `id` (the node gets a `cancel`).
    pub async fn cancel(&mut self, id: u64) {
        assert!(
            self.conn.cancel(gateway::CallId(id)),
            "call {id} not pending"
        );
        self.pump_out().await.expect("send cancel");
    }

    /// Answers an ask.
    pub async fn answer(&mut self, ask: &AskId, answer: Result<&str, ErrorObject<'_>>) {
        let answer = answer.map(|a| Json::parse(a.as_bytes()).expect("answer is JSON"));
        let n = self
            .conn
            .answer(ask, answer, &mut self.out)
            .expect("encode");
        send(&mut self.tx, &mut self.wire, &self.out[..n])
            .await
            .expect("send answer");
    }

    /// Says goodbye.
    pub async fn goodbye(&mut self) {
        self.conn
            .shutdown(toolwire_core::frame::GoodbyeReason::Restart);
        self.pump_out().await.expect("send goodbye");
    }

    /// Progress values reported for call `id` so far.
    pub fn progress_of(&self, id: u64) -> Vec<u64> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Ev::Progress { call, progress, .. } if *call == id => Some(*progress),
                _ => None,
            })
            .collect()
    }
}
