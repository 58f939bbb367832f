//! Interrupt-driven driver for UART0, an ARM PL011 (Stellaris variant) at `0x4000_C000`.
//!
//! * **RX**: the UART0 interrupt (IRQ 5) drains the hardware FIFO into a [`RX_BUFFER_LEN`]-byte
//!   ring buffer and wakes the reader. When the ring is full the handler masks the RX interrupts
//!   and leaves bytes in the FIFO; the reader unmasks them once it has taken bytes out. Under QEMU
//!   a full FIFO stops QEMU from reading its chardev (the TCP socket), so nothing is lost and the
//!   host sees back-pressure. On real hardware a full FIFO would overrun, reported as
//!   [`UartError::Overrun`].
//! * **Start-up**: the FIFOs are switched on in `init` only if the host has sent nothing yet,
//!   because switching them on discards what they hold (see [`fifo_enabled`]). Otherwise the UART
//!   stays in one-byte mode: lossless, about 3x slower under QEMU. So a host gets the fast mode
//!   by sending nothing until it has heard from the device (or by waiting briefly after
//!   connecting).
//! * **TX**: bytes go straight into the transmit FIFO. If it is full, the writer enables the TX
//!   interrupt and sleeps until the FIFO drains. (QEMU's PL011 transmits synchronously, so its FIFO
//!   never fills there.)
//!
//! Between bytes the executor sleeps: nothing polls the UART.
//!
//! [`Uart`] implements the `embedded-io-async` `Read`/`Write` traits and the blocking
//! `embedded-io` ones; [`Uart::split`] gives halves that a reader task and a writer task can own
//! separately.

use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use core::task::{Poll, Waker};

use cortex_m::peripheral::NVIC;
use critical_section::Mutex;

use crate::board::Irq;
use crate::mmio::Reg;

/// Base address of UART0.
pub const UART0_BASE: usize = 0x4000_C000;
/// NVIC interrupt number of UART0 on the lm3s6965.
pub const UART0_IRQ: u16 = 5;
/// Capacity of the receive ring buffer, in bytes (a power of two).
pub const RX_BUFFER_LEN: usize = 128;
/// Line rate programmed into the divisors (ignored by QEMU, correct for a 12.5 MHz UART clock).
pub const BAUD: u32 = 115_200;

const _: () = assert!(RX_BUFFER_LEN.is_power_of_two());

// Registers.
const DR: Reg = Reg::at(UART0_BASE, 0x00);
const FR: Reg = Reg::at(UART0_BASE, 0x18);
const IBRD: Reg = Reg::at(UART0_BASE, 0x24);
const FBRD: Reg = Reg::at(UART0_BASE, 0x28);
const LCRH: Reg = Reg::at(UART0_BASE, 0x2C);
const CR: Reg = Reg::at(UART0_BASE, 0x30);
const IFLS: Reg = Reg::at(UART0_BASE, 0x34);
const IMSC: Reg = Reg::at(UART0_BASE, 0x38);
const MIS: Reg = Reg::at(UART0_BASE, 0x40);
const ICR: Reg = Reg::at(UART0_BASE, 0x44);

// FR bits.
const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
// DR error bits (status of the byte just read).
const DR_FE: u32 = 1 << 8;
const DR_PE: u32 = 1 << 9;
const DR_BE: u32 = 1 << 10;
const DR_OE: u32 = 1 << 11;
// Interrupt bits (IMSC, RIS, MIS, ICR).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const INT_ALL: u32 = 0x7FF;
// LCRH: 8 data bits (1 stop bit, no parity); FIFOs enable.
const LCRH_WLEN8: u32 = 0b11 << 5;
const LCRH_FEN: u32 = 1 << 4;
// CR: UART, TX and RX enabled.
const CR_EN_TX_RX: u32 = 1 | (1 << 8) | (1 << 9);

/// UART clock: the system clock.
const UART_CLK_HZ: u32 = crate::time::SYSCLK_HZ;
/// Baud divisor in 1/64ths: UART_CLK / (16 * BAUD), rounded.
const DIV_X64: u32 = (UART_CLK_HZ * 4 + BAUD / 2) / BAUD;

/// A receive error reported by the PL011.
///
/// An error is reported once, by the next read, before any byte still buffered; bytes received
/// with a framing, parity or break error are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartError {
    /// The receive FIFO overflowed: bytes were lost.
    Overrun,
    /// A byte had a framing error (bad stop bit).
    Framing,
    /// A byte had a parity error.
    Parity,
    /// A break condition was received.
    Break,
}

impl fmt::Display for UartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Overrun => "UART receive overrun",
            Self::Framing => "UART framing error",
            Self::Parity => "UART parity error",
            Self::Break => "UART break received",
        })
    }
}

impl core::error::Error for UartError {}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Overrun => embedded_io::ErrorKind::OutOfMemory,
            Self::Framing | Self::Parity | Self::Break => embedded_io::ErrorKind::InvalidData,
        }
    }
}

// ----------------------------------------------------------------------------------------------
// State shared between the interrupt handler and the driver halves.

/// Single-producer (the interrupt handler) single-consumer (`UartRx`) byte ring.
struct Ring {
    buf: [AtomicU8; RX_BUFFER_LEN],
    /// Total bytes ever pushed (wrapping); written only by the producer.
    head: AtomicUsize,
    /// Total bytes ever popped (wrapping); written only by the consumer.
    tail: AtomicUsize,
}

impl Ring {
    const fn new() -> Self {
        Self {
            buf: [const { AtomicU8::new(0) }; RX_BUFFER_LEN],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Relaxed)
    }

    /// Producer side. Returns `false` (and drops nothing) when full.
    fn push(&self, byte: u8) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) == RX_BUFFER_LEN {
            return false;
        }
        self.buf[head % RX_BUFFER_LEN].store(byte, Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    fn is_full(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        head.wrapping_sub(self.tail.load(Ordering::Acquire)) == RX_BUFFER_LEN
    }

    /// Consumer side: moves up to `out.len()` bytes out; returns how many.
    fn pop_into(&self, out: &mut [u8]) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let available = self.head.load(Ordering::Acquire).wrapping_sub(tail);
        let n = available.min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.buf[tail.wrapping_add(i) % RX_BUFFER_LEN].load(Ordering::Relaxed);
        }
        self.tail.store(tail.wrapping_add(n), Ordering::Release);
        n
    }
}

/// One parked waker, set by a driver half and taken by the interrupt handler.
struct WakerSlot(Mutex<RefCell<Option<Waker>>>);

impl WakerSlot {
    const fn new() -> Self {
        Self(Mutex::new(RefCell::new(None)))
    }

    fn register(&self, waker: &Waker) {
        critical_section::with(|cs| {
            let mut slot = self.0.borrow_ref_mut(cs);
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        });
    }

    fn wake(&self) {
        if let Some(waker) = critical_section::with(|cs| self.0.borrow_ref_mut(cs).take()) {
            waker.wake();
        }
    }
}

static RX_RING: Ring = Ring::new();
static RX_WAKER: WakerSlot = WakerSlot::new();
static TX_WAKER: WakerSlot = WakerSlot::new();
/// Set by the handler when it masked RX interrupts because the ring was full.
static RX_PAUSED: AtomicBool = AtomicBool::new(false);
/// Pending receive error, as a `UartError` discriminant + 1 (0: none).
static RX_ERROR: AtomicU8 = AtomicU8::new(0);

fn record_error(dr: u32) {
    let err = if dr & DR_OE != 0 {
        UartError::Overrun
    } else if dr & DR_BE != 0 {
        UartError::Break
    } else if dr & DR_PE != 0 {
        UartError::Parity
    } else {
        UartError::Framing
    };
    RX_ERROR.store(err as u8 + 1, Ordering::Relaxed);
}

fn take_error() -> Option<UartError> {
    match RX_ERROR.swap(0, Ordering::Relaxed) {
        0 => None,
        1 => Some(UartError::Overrun),
        2 => Some(UartError::Framing),
        3 => Some(UartError::Parity),
        _ => Some(UartError::Break),
    }
}

/// Moves bytes from the hardware FIFO into the ring until the FIFO is empty or the ring full.
/// Returns `true` if anything (a byte or an error) was taken.
fn drain_rx() -> bool {
    let mut took = false;
    while FR.read() & FR_RXFE == 0 {
        if RX_RING.is_full() {
            // Leave the rest in the FIFO (QEMU then stops reading the socket). Masked, so real
            // hardware does not re-raise the interrupt forever; `UartRx` resumes us.
            IMSC.modify(|m| m & !(INT_RX | INT_RT));
            RX_PAUSED.store(true, Ordering::Relaxed);
            break;
        }
        let dr = DR.read();
        took = true;
        if dr & (DR_FE | DR_PE | DR_BE | DR_OE) != 0 {
            record_error(dr);
            if dr & (DR_FE | DR_PE | DR_BE) != 0 {
                continue; // the byte itself is bad
            }
        }
        RX_RING.push(dr as u8);
    }
    took
}

/// UART0 interrupt handler (installed in the vector table by `crate::vectors`).
///
/// The RX interrupt is acknowledged *before* the FIFO is drained: QEMU raises it only when a byte
/// lands in an empty FIFO, so acknowledging after the last read could swallow the interrupt of
/// a byte that arrived in between and stall reception. RX is handled on every entry (not only
/// when `MIS` says so) so that a software pend (`NVIC::pend`) also drains the FIFO.
pub(crate) extern "C" fn on_interrupt() {
    let mis = MIS.read();
    if !RX_PAUSED.load(Ordering::Relaxed) {
        ICR.write(INT_RX | INT_RT);
        if drain_rx() {
            RX_WAKER.wake();
        }
    }
    if mis & INT_TX != 0 {
        IMSC.modify(|m| m & !INT_TX);
        TX_WAKER.wake();
    }
}

/// How long the RX line must stay quiet before the FIFO is switched on, in guest cycles of
/// `cortex_m::asm::delay`: about 190 µs under QEMU (measured), 8 ms on a real 12.5 MHz part.
/// The wait must not touch device registers: each MMIO access takes QEMU's global lock, which
/// QEMU's I/O thread needs to deliver bytes.
const QUIET_CYCLES: u32 = 100_000;

static FIFO_ON: AtomicBool = AtomicBool::new(false);

/// Configures UART0 (8N1, FIFOs on if the host is silent) and enables its interrupts at the
/// UART; the caller unmasks the IRQ in the NVIC and pends it once.
pub(crate) fn init() -> Uart {
    // The PL011 latches IBRD/FBRD on the next LCRH write. The UART is never disabled (CR = 0) on
    // the way: QEMU drops bytes that arrive while it is.
    IBRD.write(DIV_X64 / 64);
    FBRD.write(DIV_X64 % 64);
    LCRH.write(LCRH_WLEN8);
    enable_fifo_if_silent();
    IFLS.write(0); // RX and TX interrupts at 1/8 full / empty.
    // Clear stale TX/error/modem interrupt state, but not RX, which `board::init` handles by
    // pending the IRQ once: the handler then takes whatever arrived during start-up.
    ICR.write(INT_ALL & !(INT_RX | INT_RT));
    IMSC.write(INT_RX | INT_RT);
    CR.write(CR_EN_TX_RX);
    Uart {
        rx: UartRx { _private: () },
        tx: UartTx { _private: () },
    }
}

/// Switches the 16-byte FIFOs on, but only if the host has sent nothing so far.
///
/// UART0 leaves reset with its FIFO off (a one-byte holding register), and QEMU feeds it from
/// the moment the host connects, maybe before the firmware runs. Switching the FIFO on discards
/// what it holds, and there is no way to do it while bytes stream in without risking one:
/// QEMU's I/O thread delivers them whenever it gets its turn, possibly hundreds of microseconds
/// after the guest made room, and possibly between the guest's last look at `FR` and its `LCRH`
/// write (seen in testing). So:
///
/// * nothing received, and still nothing after [`QUIET_CYCLES`]: the host is waiting for the
///   device; switch the FIFOs on (the common case for a device that speaks first, and for a host
///   that connects and waits for replies);
/// * otherwise the host talks first: stay in one-byte mode for good. That is lossless (QEMU holds
///   back further bytes until the guest reads the held one) and only slower: QEMU moves one byte
///   per interrupt.
///
/// What remains is a host whose very first byte reaches QEMU's I/O thread during the quiet wait
/// and is delivered in the few microseconds between the final `FR` read and the `LCRH` write.
fn enable_fifo_if_silent() {
    if FR.read() & FR_RXFE == 0 {
        return;
    }
    cortex_m::asm::delay(QUIET_CYCLES);
    if FR.read() & FR_RXFE == 0 {
        return;
    }
    LCRH.write(LCRH_WLEN8 | LCRH_FEN);
    FIFO_ON.store(true, Ordering::Relaxed);
}

/// `true` if [`crate::board::init`] switched UART0's 16-byte FIFOs on; `false` if the host had
/// already sent something and the UART stays in (lossless but slower) one-byte mode.
pub fn fifo_enabled() -> bool {
    FIFO_ON.load(Ordering::Relaxed)
}

// ----------------------------------------------------------------------------------------------
// Public driver types.

/// UART0, both directions. Obtained from [`crate::board::init`].
pub struct Uart {
    rx: UartRx,
    tx: UartTx,
}

/// The receiving half of UART0.
pub struct UartRx {
    _private: (),
}

/// The transmitting half of UART0.
pub struct UartTx {
    _private: (),
}

impl Uart {
    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (UartRx, UartTx) {
        (self.rx, self.tx)
    }

    /// Borrows both halves.
    pub fn split_ref(&mut self) -> (&mut UartRx, &mut UartTx) {
        (&mut self.rx, &mut self.tx)
    }
}

impl UartRx {
    /// Takes buffered bytes without waiting: `Ok(0)` means nothing was buffered (or `buf` is
    /// empty). A pending receive error is returned first.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if let Some(err) = take_error() {
            return Err(err);
        }
        let n = RX_RING.pop_into(buf);
        if n > 0 && RX_PAUSED.load(Ordering::Relaxed) {
            // There is room again: unmask RX and run the handler, which drains the FIFO (its
            // interrupt was acknowledged when it paused, so nothing else would raise it).
            critical_section::with(|_| {
                RX_PAUSED.store(false, Ordering::Relaxed);
                IMSC.modify(|m| m | INT_RX | INT_RT);
                NVIC::pend(Irq(UART0_IRQ));
            });
        }
        Ok(n)
    }

    /// Number of bytes buffered and ready to read.
    pub fn available(&self) -> usize {
        RX_RING
            .head
            .load(Ordering::Acquire)
            .wrapping_sub(RX_RING.tail.load(Ordering::Relaxed))
    }
}

impl UartTx {
    /// Writes as many bytes as fit in the transmit FIFO now; returns how many (maybe 0).
    pub fn try_write(&mut self, buf: &[u8]) -> usize {
        let mut n = 0;
        for &byte in buf {
            if FR.read() & FR_TXFF != 0 {
                break;
            }
            DR.write(u32::from(byte));
            n += 1;
        }
        n
    }

    /// `true` while the UART is still shifting out bytes.
    pub fn is_busy(&self) -> bool {
        FR.read() & FR_BUSY != 0
    }
}

/// Enables the TX interrupt if the FIFO is (still) full; `true` if the caller must wait for it.
fn arm_tx_interrupt() -> bool {
    critical_section::with(|_| {
        ICR.write(INT_TX);
        IMSC.modify(|m| m | INT_TX);
        if FR.read() & FR_TXFF == 0 {
            // Drained meanwhile: no edge will come; don't wait.
            IMSC.modify(|m| m & !INT_TX);
            false
        } else {
            true
        }
    })
}

impl embedded_io::ErrorType for UartRx {
    type Error = UartError;
}

impl embedded_io::ErrorType for UartTx {
    type Error = UartError;
}

impl embedded_io::ErrorType for Uart {
    type Error = UartError;
}

impl embedded_io_async::Read for UartRx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            // Register before checking, so a byte arriving in between still wakes us.
            RX_WAKER.register(cx.waker());
            match self.try_read(buf) {
                Ok(0) => Poll::Pending,
                other => Poll::Ready(other),
            }
        })
        .await
    }
}

impl embedded_io_async::Write for UartTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let n = self.try_write(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            TX_WAKER.register(cx.waker());
            if arm_tx_interrupt() {
                Poll::Pending
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), UartError> {
        // The hardware gives no interrupt for "transmitter idle"; this is at most one FIFO's worth
        // of line time, so yield to other tasks while waiting.
        poll_fn(|cx| {
            if self.is_busy() {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        })
        .await
    }
}

impl embedded_io::Read for UartRx {
    /// Blocks until at least one byte is available, sleeping (`WFI`) in between.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // A byte that arrives between the check and WFI is picked up on the next interrupt at
            // the latest: SysTick interrupts every millisecond.
            cortex_m::asm::wfi();
        }
    }
}

impl embedded_io::Write for UartTx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_write(buf);
            if n > 0 {
                return Ok(n);
            }
        }
    }

    fn flush(&mut self) -> Result<(), UartError> {
        while self.is_busy() {}
        Ok(())
    }
}

impl embedded_io::ReadReady for UartRx {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        Ok(!RX_RING.is_empty() || RX_ERROR.load(Ordering::Relaxed) != 0)
    }
}

impl embedded_io::WriteReady for UartTx {
    fn write_ready(&mut self) -> Result<bool, UartError> {
        Ok(FR.read() & FR_TXFF == 0)
    }
}

// `Uart` forwards to its halves.

impl embedded_io_async::Read for Uart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        embedded_io_async::Read::read(&mut self.rx, buf).await
    }
}

impl embedded_io_async::Write for Uart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        embedded_io_async::Write::write(&mut self.tx, buf).await
    }

    async fn flush(&mut self) -> Result<(), UartError> {
        embedded_io_async::Write::flush(&mut self.tx).await
    }
}

impl embedded_io::Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        embedded_io::Read::read(&mut self.rx, buf)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        embedded_io::Write::write(&mut self.tx, buf)
    }

    fn flush(&mut self) -> Result<(), UartError> {
        embedded_io::Write::flush(&mut self.tx)
    }
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        embedded_io::ReadReady::read_ready(&mut self.rx)
    }
}

impl embedded_io::WriteReady for Uart {
    fn write_ready(&mut self) -> Result<bool, UartError> {
        embedded_io::WriteReady::write_ready(&mut self.tx)
    }
}
