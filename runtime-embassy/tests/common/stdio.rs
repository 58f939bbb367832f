//! A blocking `std::net::TcpStream` as an `embedded-io-async` stream, for a gateway run with
//! [`super::block_on`] on its own thread. Reads give up after a short timeout with
//! `ErrorKind::TimedOut`, which [`super::gateway::Gw`] treats as "nothing yet".

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

#[derive(Debug)]
pub struct IoError(pub ErrorKind);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for IoError {}

impl embedded_io_async::Error for IoError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

fn kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrorKind::TimedOut,
        io::ErrorKind::ConnectionReset => ErrorKind::ConnectionReset,
        io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
        _ => ErrorKind::Other,
    }
}

pub struct StdStream(pub TcpStream);

impl StdStream {
    /// Nagle off and a 20 ms read timeout.
    pub fn new(s: TcpStream) -> Self {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        StdStream(s)
    }
}

impl ErrorType for StdStream {
    type Error = IoError;
}

impl Read for StdStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        self.0.read(buf).map_err(|e| IoError(kind(&e)))
    }
}

impl Write for StdStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        self.0.write(buf).map_err(|e| IoError(kind(&e)))
    }
    async fn flush(&mut self) -> Result<(), IoError> {
        self.0.flush().map_err(|e| IoError(kind(&e)))
    }
}
