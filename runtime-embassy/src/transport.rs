//! Where the bytes go: [`Transport`] connects; [`Serial`] is a UART (or any stream).

use core::convert::Infallible;
use core::fmt::Debug;

use embedded_io_async::{Read, Write};

/// Something [`crate::Runner::run`] can (re)connect over: gives a reader and a writer per
/// connection.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The reading half of a connection.
    type Rx<'a>: Read
    where
        Self: 'a;
    /// The writing half of a connection.
    type Tx<'a>: Write
    where
        Self: 'a;
    /// Why connecting failed (logged, then retried after a backoff).
    type Error: Debug;
    /// Flush after every frame. True for streams whose writes may sit in a buffer; false where
    /// a write already hands the bytes to something that sends them (a TCP stack, whose flush
    /// would wait for the peer's ACK).
    const FLUSH: bool = true;

    /// Opens a connection.
    async fn connect(&mut self) -> Result<(Self::Rx<'_>, Self::Tx<'_>), Self::Error>;

    /// Closes the connection after a session ended (nothing to do for a UART).
    async fn disconnect(&mut self) {}
}

/// A serial line (or any already-open stream) as two halves. "Connecting" is immediate: after a
/// session ends (the gateway went silent, or said goodbye) the next one starts with a new hello
/// on the same line.
#[derive(Debug)]
pub struct Serial<R, W> {
    /// The receiving half.
    pub rx: R,
    /// The transmitting half.
    pub tx: W,
}

impl<R: Read, W: Write> Transport for Serial<R, W> {
    type Rx<'a>
        = &'a mut R
    where
        Self: 'a;
    type Tx<'a>
        = &'a mut W
    where
        Self: 'a;
    type Error = Infallible;

    async fn connect(&mut self) -> Result<(&mut R, &mut W), Infallible> {
        Ok((&mut self.rx, &mut self.tx))
    }
}
