//! The application's view of a running node: link state and counters.

use core::cell::Cell;
use core::future::poll_fn;
use core::task::Poll;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::waitqueue::AtomicWaker;

/// Where the node's connection is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Link {
    /// Not connected: dialing, or waiting before the next attempt.
    #[default]
    Down,
    /// Connected; hello and register under way.
    Handshake,
    /// Registered: the gateway may call tools.
    Ready,
}

/// A snapshot of the node's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Status {
    /// The link now.
    pub link: Link,
    /// Transport connections made (each starts a fresh protocol session).
    pub connects: u32,
    /// Sessions that reached [`Link::Ready`].
    pub registrations: u32,
    /// Tool calls started.
    pub calls: u32,
}

/// Shared between the runner and its handles (lives in [`crate::Resources`]).
pub(crate) struct State {
    status: Mutex<CriticalSectionRawMutex, Cell<Status>>,
    waker: AtomicWaker,
}

impl State {
    pub(crate) const fn new() -> Self {
        State {
            status: Mutex::new(Cell::new(Status {
                link: Link::Down,
                connects: 0,
                registrations: 0,
                calls: 0,
            })),
            waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn get(&self) -> Status {
        self.status.lock(|s| s.get())
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        self.status.lock(|s| {
            let mut v = s.get();
            f(&mut v);
            s.set(v);
        });
        self.waker.wake();
    }
}

/// A cheap, copyable view of a node runner, for other tasks.
#[derive(Clone, Copy)]
pub struct Handle<'d> {
    pub(crate) state: &'d State,
}

impl Handle<'_> {
    /// The node's state now.
    pub fn status(&self) -> Status {
        self.state.get()
    }

    /// Waits until the node is registered with a gateway. One task at a time may wait.
    pub async fn wait_ready(&self) {
        self.wait_for(|s| s.link == Link::Ready).await;
    }

    /// Waits until `f` holds for the status. One task at a time may wait.
    pub async fn wait_for(&self, mut f: impl FnMut(&Status) -> bool) -> Status {
        poll_fn(|cx| {
            self.state.waker.register(cx.waker());
            let s = self.state.get();
            if f(&s) { Poll::Ready(s) } else { Poll::Pending }
        })
        .await
    }
}
