//! One connection: a fresh core [`Node`] driven by three kinds of futures joined in one.
//!
//! * the **reader** reads bytes, deframes them and feeds [`Node::handle_frame`]; it starts calls,
//!   forwards cancels and answers;
//! * the **timer** sleeps until [`Node::poll_timeout`] and calls [`Node::handle_timeout`];
//! * **N workers**, one per call slot of the core, each run one tool call at a time. A worker
//!   races the tool's future against a cancel for that call; a cancel drops the tool's future.
//!
//! They share the node in a `RefCell` (never borrowed across an `.await`) and the writer and the
//! transmit buffer behind an async mutex, so a worker sends its progress and result itself, in
//! one write, without passing through the reader. Everything runs inside the caller's task: the
//! futures are polled together by `embassy_futures` combinators, with no allocation and no
//! spawning.

use core::cell::{Cell, RefCell};

use embassy_futures::join::join_array;
use embassy_futures::select::{Either, Either4, select, select4};
use embassy_futures::yield_now;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::Timer;
use embedded_io_async::{Error as _, Read, Write};
use toolwire_core::frame::{AskKind, LogLevel};
use toolwire_core::node::{CallHandle, Node, NodeError, NodeEvent};
use toolwire_core::stream::{Deframed, Deframer};
use toolwire_core::{ErrorCode, ErrorObject, Json, Str};

use crate::handle::{Link, State};
use crate::{AskError, Context, Ended, MAX_ANSWER, ToolError, Tools, cobs, now};

/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 64;

/// A call handed from the reader to a worker: its arguments are in the slot's buffer.
#[derive(Clone, Copy)]
struct Job {
    call: CallHandle,
    tool: usize,
    len: usize,
}

type Answer = (CallHandle, Result<heapless::Vec<u8, MAX_ANSWER>, AskError>);

/// Per call slot: the arguments-and-result buffer and the signals to its worker.
struct Slot<'s> {
    /// Arguments at the start, the tool's result after them. The worker takes it for the whole
    /// call and puts it back; the reader writes arguments only while it is here (worker idle).
    buf: Cell<Option<&'s mut [u8]>>,
    job: Signal<NoopRawMutex, Job>,
    /// The last call cancelled in this slot (a stale one is ignored: handles differ).
    cancel: Signal<NoopRawMutex, CallHandle>,
    answer: Signal<NoopRawMutex, Answer>,
}

/// Writes a frame into the transmit buffer: [`Session::send_with`]'s argument.
type Encode<'f, 'd, const N: usize> =
    dyn FnMut(&mut Node<'d, N>, &mut [u8]) -> Result<usize, NodeError> + 'f;

/// The writer, its buffer, and whether to flush after each frame.
struct Tx<'s, W> {
    w: W,
    buf: &'s mut [u8],
    flush: bool,
}

impl<W: Write> Tx<'_, W> {
    /// Where a frame's payload is written before [`Tx::send`].
    fn payload(&mut self) -> &mut [u8] {
        let start = cobs::payload_offset(self.buf.len());
        &mut self.buf[start..]
    }

    /// COBS-encodes the `n` payload bytes and writes them.
    async fn send(&mut self, n: usize) -> Result<(), Ended> {
        let m = cobs::encode_in_place(self.buf, n);
        self.w
            .write_all(&self.buf[..m])
            .await
            .map_err(|e| Ended::Io(e.kind()))?;
        if self.flush {
            self.w.flush().await.map_err(|e| Ended::Io(e.kind()))?;
        }
        Ok(())
    }
}

pub(crate) struct Session<'s, 'd, W, const N: usize> {
    node: RefCell<Node<'d, N>>,
    tx: Mutex<NoopRawMutex, Tx<'s, W>>,
    slots: [Slot<'s>; N],
    /// Deadlines may have moved: the timer re-reads `poll_timeout`.
    timer: Signal<NoopRawMutex, ()>,
    /// A worker's write failed.
    failed: Signal<NoopRawMutex, Ended>,
    state: &'d State,
}

impl<'s, 'd, W: Write, const N: usize> Session<'s, 'd, W, N> {
    pub(crate) fn new(
        node: Node<'d, N>,
        w: W,
        tx_buf: &'s mut [u8],
        flush: bool,
        slot_bufs: [&'s mut [u8]; N],
        state: &'d State,
    ) -> Self {
        Session {
            node: RefCell::new(node),
            tx: Mutex::new(Tx {
                w,
                buf: tx_buf,
                flush,
            }),
            slots: slot_bufs.map(|buf| Slot {
                buf: Cell::new(Some(buf)),
                job: Signal::new(),
                cancel: Signal::new(),
                answer: Signal::new(),
            }),
            timer: Signal::new(),
            failed: Signal::new(),
            state,
        }
    }

    /// Runs the connection until it ends.
    pub(crate) async fn run<R: Read, T: Tools>(
        &self,
        rx: R,
        rx_buf: &mut [u8],
        tools: &T,
    ) -> Ended {
        let workers = join_array(core::array::from_fn::<_, N, _>(|i| self.worker(i, tools)));
        match select4(
            self.reader(rx, rx_buf),
            self.timer(),
            workers,
            self.failed.wait(),
        )
        .await
        {
            Either4::First(e) | Either4::Second(e) | Either4::Fourth(e) => e,
            Either4::Third(never) => match never[0] {},
        }
    }

    // ----- sending

    /// Sends what the node has queued (hello, register, errors, goodbye).
    async fn drain(&self, tx: &mut Tx<'s, W>) -> Result<(), Ended> {
        loop {
            let r = self.node.borrow_mut().poll_transmit(tx.payload());
            match r {
                None => return Ok(()),
                Some(Ok(n)) => tx.send(n).await?,
                Some(Err(e)) => {
                    // Only `register` can be this large: the TX buffer is too small for the
                    // tool table, and the handshake will time out.
                    warn!("frame dropped: {}", defmt_display(&e));
                }
            }
        }
    }

    /// Encodes a frame with `f` and sends it (a worker's progress, ask or result). `f` is a
    /// `dyn` closure so that the locking and sending are compiled once, not once per call site.
    async fn send_with(&self, f: &mut Encode<'_, 'd, N>) -> Result<(), NodeError> {
        let mut tx = self.tx.lock().await;
        let n = f(&mut self.node.borrow_mut(), tx.payload())?;
        if let Err(e) = tx.send(n).await {
            self.failed.signal(e);
        }
        Ok(())
    }

    // ----- the reader

    async fn reader<R: Read>(&self, mut rx: R, rx_buf: &mut [u8]) -> Ended {
        {
            let mut tx = self.tx.lock().await;
            // A leading delimiter ends whatever a previous session left half-written on the
            // line (the peer drops it as garbage), so the hello starts clean.
            if let Err(e) = tx.w.write_all(&[0]).await {
                return Ended::Io(e.kind());
            }
            if let Err(e) = self.drain(&mut tx).await {
                return e;
            }
        }
        let mut deframer = Deframer::new(rx_buf);
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let n = match rx.read(&mut chunk).await {
                Ok(0) => return Ended::Eof,
                Ok(n) => n,
                Err(e) => return Ended::Io(e.kind()),
            };
            let mut input = &chunk[..n];
            while !input.is_empty() {
                let (used, out) = deframer.push(input);
                input = &input[used..];
                match out {
                    Deframed::Frame(frame) => {
                        if let Err(e) = self.on_frame(frame).await {
                            return e;
                        }
                    }
                    Deframed::Error(e) => warn!("stream: {}", defmt_display(&e)),
                    Deframed::NeedMore => {}
                }
            }
        }
    }

    async fn on_frame(&self, frame: &[u8]) -> Result<(), Ended> {
        let event = {
            let mut tx = self.tx.lock().await;
            let h = self
                .node
                .borrow_mut()
                .handle_frame(now(), frame, tx.payload());
            if let Some(e) = h.error {
                debug!("bad frame: {}", defmt_display(&e));
            }
            if h.reply > 0 {
                tx.send(h.reply).await?;
            }
            self.drain(&mut tx).await?;
            h.event
        };
        self.timer.signal(());
        match event {
            Some(NodeEvent::Execute { call, tool, args }) => self.start(call, tool, args).await,
            Some(NodeEvent::Cancel { call }) => self.slots[call.slot()].cancel.signal(call),
            Some(NodeEvent::Answer { call, answer, .. }) => {
                let answer = match answer {
                    Ok(json) => {
                        heapless::Vec::from_slice(json.as_bytes()).map_err(|_| AskError::TooLarge)
                    }
                    Err(e) => Err(AskError::Declined(e.code)),
                };
                self.slots[call.slot()].answer.signal((call, answer));
            }
            Some(NodeEvent::Ready { rejected }) => {
                // Only logged: without defmt the list is not even walked.
                #[cfg(feature = "defmt")]
                if !rejected.is_empty() {
                    warn!("gateway rejected {} tools", rejected.len());
                }
                #[cfg(not(feature = "defmt"))]
                let _ = rejected;
                info!("registered");
                self.state.update(|s| {
                    s.link = Link::Ready;
                    s.registrations += 1;
                });
            }
            Some(NodeEvent::Closed(reason)) => return Err(Ended::Closed(reason)),
            Some(_) | None => {}
        }
        Ok(())
    }

    /// Hands a call to its slot's worker.
    async fn start(&self, call: CallHandle, tool: usize, args: Json<'_>) {
        let slot = &self.slots[call.slot()];
        let args = args.as_bytes();
        // The core frees a slot as soon as a call is cancelled; its worker lets go of the buffer
        // when it next runs and drops the tool's future.
        let copied = loop {
            if let Some(buf) = slot.buf.take() {
                let fits = match buf.get_mut(..args.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(args);
                        true
                    }
                    None => false,
                };
                slot.buf.set(Some(buf));
                break fits;
            }
            yield_now().await;
        };
        if !copied {
            // Not reached: arguments come in a frame no larger than the slot buffer.
            let _ = self
                .send_with(&mut |node, out| {
                    node.finish(
                        call,
                        Err(ErrorObject::new(
                            ErrorCode::FrameTooLarge,
                            "arguments too large",
                        )),
                        out,
                    )
                })
                .await;
            return;
        }
        self.state.update(|s| s.calls = s.calls.wrapping_add(1));
        slot.job.signal(Job {
            call,
            tool,
            len: args.len(),
        });
    }

    // ----- the timer

    async fn timer(&self) -> Ended {
        loop {
            let next = self.node.borrow().poll_timeout();
            match next {
                Some(at) => {
                    let at = embassy_time::Instant::from_millis(at.as_millis());
                    select(Timer::at(at), self.timer.wait()).await;
                }
                None => self.timer.wait().await,
            }
            self.node.borrow_mut().handle_timeout(now());
            {
                let mut tx = self.tx.lock().await;
                if let Err(e) = self.drain(&mut tx).await {
                    return e;
                }
            }
            loop {
                let event = self.node.borrow_mut().poll_event();
                match event {
                    None => break,
                    Some(NodeEvent::Cancel { call }) => {
                        debug!("call deadline passed");
                        self.slots[call.slot()].cancel.signal(call);
                    }
                    Some(NodeEvent::Closed(reason)) => return Ended::Closed(reason),
                    Some(_) => {}
                }
            }
        }
    }

    // ----- workers

    async fn worker<T: Tools>(&self, i: usize, tools: &T) -> core::convert::Infallible {
        let slot = &self.slots[i];
        loop {
            let job = slot.job.wait().await;
            // Here whenever a job is signalled: the reader signals only after putting it back.
            let Some(buf) = slot.buf.take() else { continue };
            let (args, out) = buf.split_at_mut(job.len);
            let mut cx = Cx {
                session: self,
                call: job.call,
                slot: i,
            };
            let cancelled = async { while slot.cancel.wait().await != job.call {} };
            let r = select(
                tools.call(job.tool, Json::trusted(args), &mut cx, out),
                cancelled,
            )
            .await;
            match r {
                Either::First(result) => self.finish(job.call, result, out).await,
                Either::Second(()) => debug!("call stopped"),
            }
            slot.buf.set(Some(buf));
        }
    }

    async fn finish(&self, call: CallHandle, result: Result<usize, ToolError>, out: &[u8]) {
        let r = self
            .send_with(&mut |node, buf| {
                let result = match result {
                    Ok(n) => match out.get(..n).map(Json::parse) {
                        Some(Ok(json)) => Ok(json),
                        _ => Err(ErrorObject::new(
                            ErrorCode::InternalError,
                            "tool wrote invalid JSON",
                        )),
                    },
                    Err(e) => Err(ErrorObject {
                        code: e.code,
                        message: Str::new(e.message),
                        data: None,
                    }),
                };
                node.finish(call, result, buf)
            })
            .await;
        match r {
            // Cancelled or expired while finishing: the gateway no longer waits for it.
            Ok(()) | Err(NodeError::StaleCall) => {}
            Err(e) => warn!("result not sent: {}", defmt_display(&e)),
        }
    }
}

/// The [`Context`] a worker gives its tool.
struct Cx<'a, 's, 'd, W, const N: usize> {
    session: &'a Session<'s, 'd, W, N>,
    call: CallHandle,
    slot: usize,
}

impl<W: Write, const N: usize> Context for Cx<'_, '_, '_, W, N> {
    async fn sleep_ms(&mut self, ms: u64) {
        Timer::after_millis(ms).await;
    }

    async fn progress(&mut self, progress: u64, total: Option<u64>, message: Option<&str>) {
        let call = self.call;
        let r = self
            .session
            .send_with(&mut |node, buf| node.progress(call, progress, total, message, None, buf))
            .await;
        if let Err(e) = r {
            debug!("progress not sent: {}", defmt_display(&e));
        }
    }

    async fn partial(&mut self, progress: u64, chunk: Json<'_>) {
        let call = self.call;
        let r = self
            .session
            .send_with(&mut |node, buf| node.progress(call, progress, None, None, Some(chunk), buf))
            .await;
        if let Err(e) = r {
            debug!("progress not sent: {}", defmt_display(&e));
        }
    }

    async fn log(&mut self, level: LogLevel, message: &str) {
        let call = self.call;
        let r = self
            .session
            .send_with(&mut |node, buf| node.log(Some(call), level, message, None, buf))
            .await;
        if let Err(e) = r {
            debug!("log line not sent: {}", defmt_display(&e));
        }
    }

    async fn ask(
        &mut self,
        kind: AskKind,
        prompt: &str,
        schema: Option<Json<'_>>,
        answer: &mut [u8],
    ) -> Result<usize, AskError> {
        let call = self.call;
        self.session
            .send_with(&mut |node, buf| node.ask(call, kind, prompt, schema, buf).map(|(_, n)| n))
            .await
            .map_err(|e| match e {
                NodeError::StaleCall | NodeError::NotReady => AskError::Gone,
                NodeError::TooManyAsks => AskError::Busy,
                _ => AskError::Encode,
            })?;
        let slot = &self.session.slots[self.slot];
        loop {
            let (c, v) = slot.answer.wait().await;
            if c != call {
                continue; // meant for an earlier call of this slot
            }
            let v = v?;
            let dst = answer.get_mut(..v.len()).ok_or(AskError::TooLarge)?;
            dst.copy_from_slice(&v);
            return Ok(v.len());
        }
    }
}

/// Wraps a `core::fmt::Display` value for the log macros (defmt needs `Format`).
#[cfg(feature = "defmt")]
fn defmt_display<T: core::fmt::Display>(v: &T) -> defmt::Display2Format<'_, T> {
    defmt::Display2Format(v)
}

#[cfg(not(feature = "defmt"))]
fn defmt_display<T>(v: &T) -> &T {
    v
}
