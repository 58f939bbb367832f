//! Settings of a node runner.

use embassy_time::Duration;
use toolwire_core::Limits;
use toolwire_core::frame::{Encoding, Encodings};

/// Settings of a node: who it is, how it speaks, how it reconnects.
#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// The node's id: 1–32 bytes of `A-Z a-z 0-9 _ - .`.
    pub id: &'a str,
    /// Token the gateway requires, if any.
    pub token: Option<&'a str>,
    /// Encodings the node accepts; the gateway picks one.
    pub encodings: Encodings,
    /// Encoding of the `hello` frame.
    pub hello_encoding: Encoding,
    /// Decoder limits (JSON nesting depth).
    pub limits: Limits,
    /// Time allowed for welcome and register ack after connecting.
    pub handshake_timeout: Duration,
    /// First wait before reconnecting ([`crate::Runner::run`]); doubles after every attempt
    /// that did not get registered, up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait before reconnecting.
    pub backoff_max: Duration,
}

impl<'a> Config<'a> {
    /// Defaults: the encodings built in (features `json`, `postcard`; both by default), hello in
    /// JSON if built (else postcard), 10 s handshake, backoff from 250 ms to 30 s.
    pub const fn new(id: &'a str) -> Self {
        Config {
            id,
            token: None,
            encodings: Encodings::BUILT,
            hello_encoding: Encoding::HELLO,
            limits: Limits {
                max_depth: toolwire_core::json::DEFAULT_MAX_DEPTH,
            },
            handshake_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }
}
