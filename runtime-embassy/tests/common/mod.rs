//! Shared test support: a thread-parking `block_on`, the demo tools plugged into
//! `toolwire-embassy`, and a stand-in gateway driving `toolwire_core::gateway::Connection` over
//! any `embedded-io-async` stream, for the in-memory tests (`duplex.rs`). The end-to-end tests
//! (`qemu.rs`, `netns.rs`) use the real gateway, `toolwire_smol::Gateway`.
//!
//! Each test binary uses part of this module.
#![allow(dead_code)]

pub mod demo;
pub mod gateway;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread, sleeping while it is pending.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}
