//! The loop shared by the host node and the controller client: one task owns the connection,
//! writes every queued frame in one batch, then waits for the first of a frame (lent by the
//! reader in place), a command from the application or the core's deadline, and feeds it.
//!
//! The protocol lives in the cores (`toolwire_core::node::Node`,
//! `toolwire_core::controller::Controller`); a [`Session`] wraps one with what the application
//! side needs (tasks, reply channels) and [`run`] moves bytes, commands and time to it.

use std::io;
use std::time::Duration;

use smol::channel::Receiver;
use smol::future::FutureExt;
use toolwire_core::{EncodeError, Instant};

use crate::clock::Clock;
use crate::transport::{Close, FrameReader, FrameWriter};

/// One connection's state machine as [`run`] drives it.
///
/// Inputs are the `handle_*` methods, outputs the `drain_events` / `poll_*` methods. Each turn
/// of the loop calls, in order: [`Session::drain_events`], [`Session::poll_transmit`] until it
/// says `None` (the frames go out in one write), [`Session::is_closed`], then waits and calls
/// one of [`Session::handle_frame`], [`Session::handle_cmd`] or [`Session::handle_timeout`].
/// [`Session::end`] is called once, when the loop stops.
pub(crate) trait Session {
    /// What the application sends the connection.
    type Cmd;

    /// Handles a frame from the peer; frames to send in answer go into `out`.
    fn handle_frame(&mut self, now: Instant, frame: &[u8], out: &mut Batch);

    /// Handles a command; frames it makes go into `out`.
    fn handle_cmd(&mut self, cmd: Self::Cmd, out: &mut Batch);

    /// The deadline of [`Session::poll_timeout`] passed.
    fn handle_timeout(&mut self, now: Instant);

    /// Acts on the core's events not tied to an input (calls expired, connection timed out);
    /// frames they make at once (a tool that answered as it was called) go into `out`.
    fn drain_events(&mut self, out: &mut Batch);

    /// Writes the core's next queued frame into `out`; `None` when there is nothing to send.
    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Result<usize, EncodeError>>;

    /// When [`Session::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant>;

    /// True once the core closed: the loop sends what is queued and stops.
    fn is_closed(&self) -> bool;

    /// The loop stopped for this reason (the writer is closed next).
    fn end(&mut self, why: End);
}

/// Why [`run`] stopped.
#[derive(Debug)]
pub(crate) enum End {
    /// [`Session::is_closed`] said so; the session knows why.
    Closed,
    /// The peer closed the transport.
    PeerClosed,
    /// Reading or writing failed.
    Failed(io::Error),
    /// Every sender of commands is gone.
    Abandoned,
}

/// Frames to send, encoded in place one after another in one buffer that keeps its memory from
/// batch to batch: no `Vec` and no copy per frame.
pub(crate) struct Batch {
    /// Zeroed once; `[..used]` holds the frames.
    buf: Vec<u8>,
    used: usize,
    /// End of each frame in `buf`.
    ends: Vec<usize>,
    max_frame: usize,
}

impl Batch {
    /// An empty batch whose frames are at most `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        Batch {
            buf: Vec::new(),
            used: 0,
            ends: Vec::new(),
            max_frame,
        }
    }

    /// Room for the next frame (`max_frame` bytes): encode into it, then [`Batch::commit`].
    pub(crate) fn space(&mut self) -> &mut [u8] {
        let end = self.used + self.max_frame;
        if self.buf.len() < end {
            // Only the added part is zeroed; the buffer keeps it for later batches.
            self.buf.resize(end, 0);
        }
        &mut self.buf[self.used..end]
    }

    /// Keeps the first `n` bytes of [`Batch::space`] as a frame (`0`: no frame).
    pub(crate) fn commit(&mut self, n: usize) {
        if n > 0 {
            debug_assert!(n <= self.max_frame && self.used + n <= self.buf.len());
            self.used += n;
            self.ends.push(self.used);
        }
    }

    /// True if no frame is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The frames, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let f = &self.buf[start..end];
            start = end;
            f
        })
    }

    /// Forgets every frame, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.used = 0;
        self.ends.clear();
    }
}

enum Woke<'f, C> {
    Frame(io::Result<Option<&'f [u8]>>),
    Cmd(C),
    NoMoreCmds,
    Timer,
}

/// Drives `session` over one connection until it closes, the transport ends or every command
/// sender is gone. `out` may hold frames already (they are sent first).
pub(crate) async fn run<S: Session>(
    session: &mut S,
    clock: Clock,
    mut reader: FrameReader,
    mut writer: FrameWriter,
    cmds: &Receiver<S::Cmd>,
    mut out: Batch,
) {
    // One timer for the whole connection, moved only when the deadline moves: a timer made
    // and dropped every turn costs a reactor update (and a wake-up of the reactor thread) per
    // frame.
    let mut timer = smol::Timer::never();
    let mut armed: Option<std::time::Instant> = None;
    let end = loop {
        session.drain_events(&mut out);
        while let Some(r) = session.poll_transmit(out.space()) {
            match r {
                Ok(n) => out.commit(n),
                Err(e) => tracing::warn!("cannot encode: {e}"),
            }
        }
        if !out.is_empty() {
            if let Err(e) = writer.send_all(out.iter()).await {
                break End::Failed(e);
            }
            out.clear();
        }
        if session.is_closed() {
            break End::Closed;
        }
        let deadline = session.poll_timeout().map(|t| clock.instant(t));
        // Every branch is cancel-safe: the one that loses loses nothing (a frame half-read
        // stays in the reader's buffer, a command in the channel).
        let woke = async { Woke::Frame(reader.next().await) }
            .or(async {
                match cmds.recv().await {
                    Ok(c) => Woke::Cmd(c),
                    Err(_) => Woke::NoMoreCmds,
                }
            })
            .or(async {
                if deadline != armed {
                    armed = deadline;
                    match deadline {
                        Some(t) => timer.set_at(t),
                        None => timer = smol::Timer::never(),
                    }
                }
                (&mut timer).await;
                Woke::Timer
            })
            .await;
        match woke {
            Woke::Frame(Ok(Some(frame))) => session.handle_frame(clock.now(), frame, &mut out),
            Woke::Frame(Ok(None)) => break End::PeerClosed,
            Woke::Frame(Err(e)) => break End::Failed(e),
            Woke::Cmd(c) => session.handle_cmd(c, &mut out),
            Woke::NoMoreCmds => break End::Abandoned,
            Woke::Timer => {
                // A fired timer fires no more until set again.
                armed = None;
                session.handle_timeout(clock.now())
            }
        }
    };
    let close = match &end {
        End::Failed(e) => Close::after(e),
        _ => Close::Normal,
    };
    session.end(end);
    // Bounded: a peer that stopped reading must not hold the task.
    let _ = async {
        writer.close_with(close).await;
    }
    .or(async {
        smol::Timer::after(Duration::from_secs(1)).await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::channel::{Sender, unbounded};
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use smol::net::{TcpListener, TcpStream};
    use toolwire_core::stream::{Deframed, Deframer, encode_frame, max_encoded_len};

    #[derive(Debug, PartialEq)]
    enum Seen {
        Frame(Vec<u8>),
        Cmd(u8),
        Timeout,
        End(String),
    }

    /// Reports what it is fed; a command `c` is answered with the frame `[b'c', c]`.
    struct Echo {
        seen: Sender<Seen>,
        deadline: Option<Instant>,
    }

    impl Session for Echo {
        type Cmd = u8;
        fn handle_frame(&mut self, _now: Instant, frame: &[u8], _out: &mut Batch) {
            let _ = self.seen.try_send(Seen::Frame(frame.to_vec()));
        }
        fn handle_cmd(&mut self, cmd: u8, out: &mut Batch) {
            out.space()[..2].copy_from_slice(&[b'c', cmd]);
            out.commit(2);
            let _ = self.seen.try_send(Seen::Cmd(cmd));
        }
        fn handle_timeout(&mut self, _now: Instant) {
            self.deadline = None;
            let _ = self.seen.try_send(Seen::Timeout);
        }
        fn drain_events(&mut self, _out: &mut Batch) {}
        fn poll_transmit(&mut self, _out: &mut [u8]) -> Option<Result<usize, EncodeError>> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
        fn is_closed(&self) -> bool {
            false
        }
        fn end(&mut self, why: End) {
            let _ = self.seen.try_send(Seen::End(format!("{why:?}")));
        }
    }

    fn cobs(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; max_encoded_len(payload.len())];
        let n = encode_frame(payload, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    async fn read_frame(peer: &mut TcpStream) -> Vec<u8> {
        let mut deframer = Deframer::new(vec![0u8; 64]);
        let mut byte = [0u8; 1];
        loop {
            peer.read_exact(&mut byte).await.unwrap();
            if let (_, Deframed::Frame(f)) = deframer.push(&byte) {
                return f.to_vec();
            }
        }
    }

    async fn recv(seen: &Receiver<Seen>) -> Seen {
        seen.recv()
            .or(async {
                smol::Timer::after(Duration::from_secs(5)).await;
                panic!("nothing seen in 5 s");
            })
            .await
            .unwrap()
    }

    /// A command that arrives while a stream frame is half-read is served at once, and the
    /// frame still arrives whole afterwards: waiting for the command cancelled the read
    /// without losing its bytes.
    #[test]
    fn command_while_a_stream_frame_is_half_read() {
        smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (mine, accepted) =
                smol::future::zip(TcpStream::connect(addr), listener.accept()).await;
            let mut peer = accepted.unwrap().0;
            let (reader, writer) = crate::transport::stream(Box::new(mine.unwrap()), 64);
            let (seen_tx, seen) = unbounded();
            let (cmd_tx, cmds) = unbounded();
            let clock = Clock::new();
            let driver = smol::spawn(async move {
                let mut s = Echo {
                    seen: seen_tx,
                    deadline: None,
                };
                run(&mut s, clock, reader, writer, &cmds, Batch::new(64)).await;
            });

            let frame = cobs(b"hello, half a frame at a time");
            let (first, rest) = frame.split_at(frame.len() / 2);
            peer.write_all(first).await.unwrap();
            peer.flush().await.unwrap();
            // Let the driver read the first half and wait for more.
            smol::Timer::after(Duration::from_millis(50)).await;
            cmd_tx.send(7).await.unwrap();
            assert_eq!(recv(&seen).await, Seen::Cmd(7));
            assert_eq!(read_frame(&mut peer).await, [b'c', 7]);

            peer.write_all(rest).await.unwrap();
            peer.flush().await.unwrap();
            assert_eq!(
                recv(&seen).await,
                Seen::Frame(b"hello, half a frame at a time".to_vec())
            );

            drop(peer);
            assert_eq!(recv(&seen).await, Seen::End("PeerClosed".into()));
            driver.await;
        });
    }

    /// The session's deadline wakes the loop; dropping every command sender ends it.
    #[test]
    fn deadline_then_no_more_commands() {
        smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (mine, accepted) =
                smol::future::zip(TcpStream::connect(addr), listener.accept()).await;
            let _peer = accepted.unwrap().0;
            let (reader, writer) = crate::transport::stream(Box::new(mine.unwrap()), 64);
            let (seen_tx, seen) = unbounded();
            let (cmd_tx, cmds) = unbounded::<u8>();
            let clock = Clock::new();
            let driver = smol::spawn(async move {
                let mut s = Echo {
                    seen: seen_tx,
                    deadline: Some(clock.now() + toolwire_core::Duration::from_millis(20)),
                };
                run(&mut s, clock, reader, writer, &cmds, Batch::new(64)).await;
            });
            assert_eq!(recv(&seen).await, Seen::Timeout);
            drop(cmd_tx);
            assert_eq!(recv(&seen).await, Seen::End("Abandoned".into()));
            driver.await;
        });
    }

    #[test]
    fn batch_keeps_frames_in_order_and_its_memory() {
        let mut b = Batch::new(8);
        b.space()[..3].copy_from_slice(b"abc");
        b.commit(3);
        b.commit(0);
        b.space()[..2].copy_from_slice(b"de");
        b.commit(2);
        assert_eq!(b.iter().collect::<Vec<_>>(), [&b"abc"[..], b"de"]);
        let cap = b.buf.len();
        b.clear();
        assert!(b.is_empty());
        b.space()[..1].copy_from_slice(b"f");
        b.commit(1);
        assert_eq!(b.iter().collect::<Vec<_>>(), [&b"f"[..]]);
        assert_eq!(b.buf.len(), cap);
    }
}
