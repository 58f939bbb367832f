//! Fixtures and peer types for the criterion benchmarks in `benches/framing.rs`.
//!
//! [`fixtures`] builds the frames every benchmark uses, once, with toolwire-core's own encoders:
//! a `register` of ten tools, an `execute` with ~20 bytes and with 4 KiB of arguments, and a
//! `result`, each in JSON-RPC and in postcard. [`peers`] holds the types the other libraries
//! decode the very same bytes into. The tests at the bottom check that every peer reads the same
//! values out of the same bytes as toolwire-core does (and, for encoders, writes the same bytes),
//! so the benchmarks compare like with like. See `benches/README.md` for how to run them and
//! the results.
//!
//! [`e2e`] holds the end-to-end measurement (gateway and nodes over loopback against the raw
//! transports), shared by `src/bin/e2e.rs` and the `peers` binary in `benches/peers/`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod e2e;
pub mod fixtures;
pub mod peers;

#[cfg(test)]
mod tests;
