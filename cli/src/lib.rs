//! # toolwire
//!
//! The `toolwire` command line and what it runs beyond the library `toolwire-smol`: the
//! [`mcp`] bridge (an MCP server on stdio over a gateway's tools; re-exported from `toolwire-smol`), the opt-in [`builtin`] host
//! tools (a confined filesystem, an allow-listed shell), the simulated [`device`] (the demo
//! device's tools from `toolwire-device-tools` on a host node) and the [`demo`].
//!
//! A program that only embeds a gateway or a node depends on `toolwire-smol` alone.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod builtin;
pub mod demo;
pub mod device;
/// The MCP layer, which lives in `toolwire-smol` (the gateway serves it at `/mcp` too).
pub use toolwire_smol::mcp;
