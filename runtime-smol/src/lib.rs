//! # toolwire-smol
//!
//! toolwire on smol: a [`gateway::Gateway`] that nodes and controllers connect to over
//! WebSocket or TCP (TLS optional), a host [`node`], a controller [`client`], and the `toolwire`
//! CLI. Each connection is a thin loop around a `toolwire-core` state machine; the protocol
//! logic lives in the core.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod builtin;
pub mod client;
pub mod clock;
pub mod demo;
pub mod device;
pub mod gateway;
pub mod mcp;
pub mod node;
pub mod tls;
pub mod transport;

pub use gateway::{CallError, CallOptions, Gateway, GatewayConfig};
pub use transport::Endpoint;
