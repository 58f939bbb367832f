//! [`new`], [`Resources`] and [`Runner`]: the node as an application sets it up.

use embassy_time::{Duration, Timer};
use embedded_io_async::{ErrorKind, Read, Write};
use toolwire_core::node::{CloseReason, Node, NodeConfig};

use crate::config::Config;
use crate::handle::{Handle, Link, State};
use crate::session::Session;
use crate::transport::Transport;
use crate::{Tools, now};

/// Buffers and shared state of a node, lent to [`new`] (put them in a `static`, e.g. with
/// `static_cell::ConstStaticCell`).
///
/// * `N`: calls run at once (announced as `max_in_flight`; the gateway sends no more).
/// * `RX`: the largest frame received (announced as `max_frame`). Each call slot has an `RX`-byte
///   buffer too, holding the call's arguments and then its result, so a call's arguments and
///   result together must fit in `RX` bytes.
/// * `TX`: the transmit buffer; the largest frame sent is a little smaller (COBS overhead is
///   encoded in place: `TX / 254 + 2` bytes). The `register` frame, which carries every tool's
///   schema, is usually the largest.
///
/// Static RAM is about `RX * (N + 1) + TX` plus the runner's future.
pub struct Resources<const N: usize, const RX: usize, const TX: usize> {
    state: State,
    rx: [u8; RX],
    tx: [u8; TX],
    slots: [[u8; RX]; N],
}

impl<const N: usize, const RX: usize, const TX: usize> Resources<N, RX, TX> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        const {
            assert!(N >= 1 && N <= 255, "N (calls in flight) must be 1..=255");
            assert!(RX >= 64, "RX must be at least 64 bytes");
            assert!(TX >= 256, "TX must be at least 256 bytes");
        }
        Resources {
            state: State::new(),
            rx: [0; RX],
            tx: [0; TX],
            slots: [[0; RX]; N],
        }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for Resources<N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a session ([`Runner::session`]) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The protocol closed the connection: the gateway said goodbye or refused the handshake,
    /// the handshake timed out, or nothing was heard for three heartbeat intervals.
    Closed(CloseReason),
    /// The peer closed the stream (a read returned 0 bytes).
    Eof,
    /// Reading or writing the transport failed.
    Io(ErrorKind),
}

/// Creates a node: a [`Handle`] for the application and the [`Runner`] that does the work.
///
/// ```no_run
/// # async fn example<R: embedded_io_async::Read, W: embedded_io_async::Write>(uart_rx: R, uart_tx: W) -> ! {
/// use static_cell::ConstStaticCell;
/// use toolwire_embassy::{Config, Resources, Serial};
/// # struct MyTools;
/// # impl toolwire_embassy::Tools for MyTools {
/// #     fn defs(&self) -> &[toolwire_core::ToolDef<'_>] { &[] }
/// #     async fn call<C: toolwire_embassy::Context>(&self, _: usize, _: toolwire_core::Json<'_>, _: &mut C, _: &mut [u8]) -> Result<usize, toolwire_embassy::ToolError> { Ok(0) }
/// # }
///
/// static RESOURCES: ConstStaticCell<Resources<2, 512, 2048>> =
///     ConstStaticCell::new(Resources::new());
/// static TOOLS: MyTools = MyTools;
///
/// let (handle, mut runner) = toolwire_embassy::new(&TOOLS, Config::new("dev-1"), RESOURCES.take());
/// // In a task of its own: connects, registers, serves calls, reconnects, forever.
/// runner.run(&mut Serial { rx: uart_rx, tx: uart_tx }).await
/// # }
/// ```
pub fn new<'d, T: Tools, const N: usize, const RX: usize, const TX: usize>(
    tools: &'d T,
    config: Config<'d>,
    resources: &'d mut Resources<N, RX, TX>,
) -> (Handle<'d>, Runner<'d, T, N, RX, TX>) {
    let Resources {
        state,
        rx,
        tx,
        slots,
    } = resources;
    let state: &'d State = state;
    (
        Handle { state },
        Runner {
            tools,
            config,
            state,
            rx,
            tx,
            slots,
        },
    )
}

/// Runs the node: connects, says hello, registers the tools, serves calls.
pub struct Runner<'d, T, const N: usize, const RX: usize, const TX: usize> {
    tools: &'d T,
    config: Config<'d>,
    state: &'d State,
    rx: &'d mut [u8; RX],
    tx: &'d mut [u8; TX],
    slots: &'d mut [[u8; RX]; N],
}

impl<'d, T: Tools, const N: usize, const RX: usize, const TX: usize> Runner<'d, T, N, RX, TX> {
    /// Serves the gateway over `transport` forever: connect, one session, disconnect, wait,
    /// again. Each connection starts a fresh protocol session (hello and register again; calls
    /// of an old connection are never answered on a new one). The wait doubles from
    /// `Config::backoff_min` to `Config::backoff_max` while attempts fail to register, and
    /// starts over after a session that registered.
    pub async fn run<X: Transport>(&mut self, transport: &mut X) -> ! {
        let mut backoff = self.config.backoff_min;
        loop {
            match transport.connect().await {
                Ok((rx, tx)) => {
                    let before = self.state.get().registrations;
                    let ended = self.serve(rx, tx, X::FLUSH).await;
                    info!("session ended: {}", crate::fmt_debug(&ended));
                    if self.state.get().registrations != before {
                        backoff = self.config.backoff_min;
                    }
                }
                Err(e) => warn!("connect failed: {}", crate::fmt_debug(&e)),
            }
            transport.disconnect().await;
            Timer::after(backoff).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    /// Runs one session over a stream already connected (`rx` and `tx` may be two halves of one
    /// UART or socket) and returns when it ends: the caller decides whether and when to start
    /// another (a UART has no "connect": the next session simply says hello again).
    ///
    /// Every frame is flushed after it is written.
    pub async fn session<R: Read, W: Write>(&mut self, rx: R, tx: W) -> Ended {
        self.serve(rx, tx, true).await
    }

    /// The application's handle (the same [`new`] returned).
    pub fn handle(&self) -> Handle<'d> {
        Handle { state: self.state }
    }

    async fn serve<R: Read, W: Write>(&mut self, rx: R, tx: W, flush: bool) -> Ended {
        let tools: &'d T = self.tools;
        let c = &self.config;
        let node = Node::new(
            NodeConfig {
                id: c.id,
                token: c.token,
                tools: tools.defs(),
                encodings: c.encodings,
                hello_encoding: c.hello_encoding,
                max_frame: RX as u32,
                limits: c.limits,
                handshake_timeout: core_duration(c.handshake_timeout),
            },
            now(),
        );
        self.state.update(|s| {
            s.link = Link::Handshake;
            s.connects = s.connects.wrapping_add(1);
        });
        let slots = self.slots.each_mut().map(|b| &mut b[..]);
        let session = Session::new(node, tx, &mut self.tx[..], flush, slots, self.state);
        let ended = session.run(rx, &mut self.rx[..], tools).await;
        self.state.update(|s| s.link = Link::Down);
        ended
    }
}

fn core_duration(d: Duration) -> toolwire_core::Duration {
    toolwire_core::Duration::from_millis(d.as_millis())
}
