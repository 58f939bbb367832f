//! # toolwire-embassy
//!
//! The device side of toolwire on [embassy](https://embassy.dev): a `no_std`, no-alloc *node*
//! that registers a table of tools with a gateway and runs the calls it receives, over a UART
//! (or any `embedded-io-async` stream) or an embassy-net TCP socket.
//!
//! The protocol lives in `toolwire-core`'s sans-IO [`Node`](toolwire_core::node::Node); this
//! crate only moves bytes and time in and out of it:
//!
//! * a firmware implements [`Tools`]: a tool table and an async `call`;
//! * [`new`] takes the tools, a [`Config`] and caller-owned [`Resources`] (buffers sized by const
//!   generics) and returns a [`Handle`] and a [`Runner`], embassy-style;
//! * [`Runner::run`] connects over a [`Transport`] ([`Serial`], or `TcpTransport` with the `tcp`
//!   feature), serves the gateway and reconnects with exponential backoff, forever;
//!   [`Runner::session`] serves one connection and returns.
//!
//! Up to `N` calls run at once, each in a fixed slot (no allocation): the runner joins `N`
//! worker futures with the reader and the timer in the caller's task. A cancel (from the
//! gateway, or the call's deadline) drops the tool's future; a call's progress and result are
//! written from its worker as soon as they exist. Deadlines, heartbeats and `busy` answers come
//! from the core.
//!
//! Byte streams carry COBS frames (`toolwire_core::stream`). The node speaks first (hello),
//! which suits UARTs that must not receive while the firmware boots.
//!
//! ## Features
//!
//! * `tcp`: `TcpTransport` over embassy-net (with its `proto-ipv4` and `medium-ethernet`
//!   features; enable others on `embassy-net` in the firmware).
//! * `json`, `postcard` (both by default): the frame encodings the node speaks. A firmware that
//!   needs the flash keeps one (`default-features = false, features = ["postcard"]`); the
//!   gateway speaks both and picks one the node offers.
//! * `defmt`: log connection events with defmt.
//!
//! The crate selects no embassy-time driver or tick rate: the firmware's HAL (or a test's `std`
//! driver) does.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod fmt;

mod cobs;
mod config;
mod handle;
mod runner;
mod session;
#[cfg(feature = "tcp")]
mod tcp;
mod tools;
mod transport;

pub use config::Config;
pub use handle::{Handle, Link, Status};
pub use runner::{Ended, Resources, Runner, new};
#[cfg(feature = "tcp")]
pub use tcp::{TcpError, TcpTransport};
pub use tools::{AskError, Context, ToolError, Tools};
pub use transport::{Serial, Transport};

/// Longest answer to [`Context::ask`] the runtime keeps (bytes of JSON), per call slot.
pub const MAX_ANSWER: usize = 64;

/// Now, as the core counts time: milliseconds of embassy time.
fn now() -> toolwire_core::Instant {
    toolwire_core::Instant(embassy_time::Instant::now().as_millis())
}

/// Wraps a `Debug` value for the log macros.
#[cfg(feature = "defmt")]
fn fmt_debug<T: core::fmt::Debug>(v: &T) -> defmt::Debug2Format<'_, T> {
    defmt::Debug2Format(v)
}

#[cfg(not(feature = "defmt"))]
fn fmt_debug<T>(v: &T) -> &T {
    v
}
