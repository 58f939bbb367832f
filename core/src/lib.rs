//! # toolwire-core
//!
//! The sans-IO core of toolwire, a protocol for remote tool calling: devices and host processes
//! (*nodes*) register tools with a *gateway*, which calls them and gets results, progress, or
//! errors back.
//!
//! This crate has no sockets, no clock, no async and no allocation (`#![no_std]`). Bytes and the
//! current time go in; bytes to send, events and the next deadline come out:
//!
//! - [`codec`]: every frame as JSON-RPC 2.0 or postcard, zero-copy decoding, encoding into a
//!   caller's buffer.
//! - [`json`]: the strict RFC 8259 scanner behind the JSON codec, and helpers tools use to read
//!   their arguments.
//! - [`stream`]: COBS framing for byte streams (TCP, UART).
//! - [`node`], [`gateway`] and [`controller`]: the connection state machines of each role.
//! - `router` (feature `alloc`): the gateway across all its connections: routing, relaying,
//!   listings, tokens, ACLs, rate limits.
//!
//! The wire format is specified in `PROTOCOL.md` at the repository root.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod codec;
pub mod controller;
mod error;
pub mod frame;
pub mod gateway;
pub mod node;
#[cfg(feature = "alloc")]
pub mod router;

pub mod json;

pub mod stream;
pub mod table;
mod time;
pub mod wire;

pub use codec::{DecodeError, EncodeError, Limits, Message, Payload, Rejected};
pub use error::ErrorCode;
pub use frame::{Encoding, ErrorObject, PROTOCOL_VERSION, ToolDef};
pub use time::{Duration, Instant, MISSED_HEARTBEATS};
pub use wire::{Id, Json, List, OwnedId, Str};
