//! # toolwire-smol
//!
//! toolwire on smol: a [`gateway::Gateway`] that nodes and controllers connect to over
//! WebSocket or TCP (TLS optional), a host [`node`] and a controller [`client`]. Each connection
//! is a thin loop around a `toolwire-core` state machine; the protocol logic lives in the core.
//!
//! The `toolwire` CLI, the MCP bridge, the built-in host tools and the demo live in the
//! `toolwire` crate (`cli/`), so that a program embedding a gateway or a node compiles none of
//! their dependencies.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod clock;
mod driver;
pub mod gateway;
pub mod http;
pub mod mcp;
pub mod node;
pub mod tls;
pub mod transport;

pub use gateway::{CallError, CallOptions, Gateway, GatewayConfig};
pub use transport::Endpoint;
