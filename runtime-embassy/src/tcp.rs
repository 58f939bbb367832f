//! Dialing a gateway over TCP with embassy-net.

use embassy_net::tcp::{ConnectError, TcpReader, TcpSocket, TcpWriter};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, with_timeout};

use crate::Transport;

/// Why [`TcpTransport`] could not connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TcpError {
    /// The stack refused or the gateway reset the connection.
    Connect(ConnectError),
    /// No answer within the connect timeout.
    Timeout,
}

/// A TCP connection to the gateway at `remote`, made again after every session. Waits for the
/// stack's configuration (address, DHCP lease) before dialing.
///
/// Nagle's algorithm is off: the node writes small frames (progress, results) that should leave
/// at once.
pub struct TcpTransport<'d> {
    stack: Stack<'d>,
    socket: TcpSocket<'d>,
    remote: IpEndpoint,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
}

impl<'d> TcpTransport<'d> {
    /// A transport dialing `remote`, with the socket's receive and transmit buffers (a frame
    /// need not fit in them: they are streamed).
    pub fn new(
        stack: Stack<'d>,
        remote: impl Into<IpEndpoint>,
        rx_buffer: &'d mut [u8],
        tx_buffer: &'d mut [u8],
    ) -> Self {
        TcpTransport {
            stack,
            socket: TcpSocket::new(stack, rx_buffer, tx_buffer),
            remote: remote.into(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Transport for TcpTransport<'_> {
    type Rx<'a>
        = TcpReader<'a>
    where
        Self: 'a;
    type Tx<'a>
        = TcpWriter<'a>
    where
        Self: 'a;
    type Error = TcpError;
    const FLUSH: bool = false;

    async fn connect(&mut self) -> Result<(TcpReader<'_>, TcpWriter<'_>), TcpError> {
        self.stack.wait_config_up().await;
        self.socket.set_nagle_enabled(false);
        match with_timeout(self.connect_timeout, self.socket.connect(self.remote)).await {
            Ok(Ok(())) => Ok(self.socket.split()),
            Ok(Err(e)) => Err(TcpError::Connect(e)),
            Err(_) => Err(TcpError::Timeout),
        }
    }

    async fn disconnect(&mut self) {
        // FIN after what is still queued, then a reset to be sure the socket is closed before
        // it dials again; each step bounded, the gateway may be gone.
        self.socket.close();
        let _ = with_timeout(Duration::from_millis(500), self.socket.flush()).await;
        self.socket.abort();
        let _ = with_timeout(Duration::from_millis(500), self.socket.flush()).await;
    }
}
