//! The embassy-time driver: the Cortex-M SysTick timer interrupting at [`TICK_HZ`].
//!
//! SysTick counts the processor clock ([`SYSCLK_HZ`]) and reloads every `SYSCLK_HZ / TICK_HZ`
//! cycles; each reload raises the SysTick exception, which advances a 64-bit tick count and fires
//! the timers that are due. Timers live in embassy's integrated timer queue
//! ([`embassy_time_queue_utils::Queue`]), so there is no fixed limit on pending timers.
//!
//! Resolution is one tick (1 ms); a timer fires on the first tick at or after its deadline. The
//! crate enables `embassy-time-driver/tick-hz-1_000` to match, and a compile-time check below
//! keeps the two in step. No other crate in the firmware may choose a `tick-hz-*` feature.
//!
//! Under QEMU the SysTick counts virtual time, which follows the host's wall clock (QEMU is run
//! without `-icount`), so embassy time tracks real time; `tests/echo.py` checks that.
//!
//! Time advances by counting interrupts, so a tick is lost if its interrupt cannot be taken
//! before the next one is due: keep critical sections far below 1 ms. (Under embassy's own
//! `WFE`-based executor QEMU spins, and embassy time ran ~17% slow in testing; the `WFI`
//! executor in [`crate::executor`] avoids that.)

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// Ticks per second of embassy time (and SysTick interrupts per second).
pub const TICK_HZ: u32 = 1_000;

/// Processor clock, which SysTick counts, in Hz.
///
/// QEMU derives it from the reset value of the Stellaris `RCC` register (PLL 200 MHz, SYSDIV
/// field 15, i.e. /16): 12.5 MHz. The firmware does not reprogram `RCC`.
pub const SYSCLK_HZ: u32 = 12_500_000;

const RELOAD: u32 = SYSCLK_HZ / TICK_HZ - 1;

const _: () = assert!(
    embassy_time_driver::TICK_HZ == TICK_HZ as u64,
    "tick-hz feature mismatch"
);
const _: () = assert!(
    SYSCLK_HZ.is_multiple_of(TICK_HZ),
    "SysTick period must be a whole number of cycles"
);
const _: () = assert!(RELOAD < (1 << 24), "SysTick reload is a 24-bit value");

struct SysTickDriver {
    /// Ticks since `init`.
    ticks: Mutex<Cell<u64>>,
    /// Tick at which the queue next has a timer due (`u64::MAX`: none).
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            if queue.schedule_wake(at, waker) {
                // `next_expiration` also wakes timers already due (`at <= now`).
                let now = self.ticks.borrow(cs).get();
                self.alarm.borrow(cs).set(queue.next_expiration(now));
            }
        });
    }
}

impl SysTickDriver {
    fn on_tick(&self) {
        critical_section::with(|cs| {
            let ticks = self.ticks.borrow(cs);
            let now = ticks.get() + 1;
            ticks.set(now);
            let alarm = self.alarm.borrow(cs);
            if now >= alarm.get() {
                alarm.set(self.queue.borrow_ref_mut(cs).next_expiration(now));
            }
        });
    }
}

#[exception]
fn SysTick() {
    DRIVER.on_tick();
}

/// Starts SysTick; embassy time begins at 0.
pub(crate) fn init(mut syst: SYST) {
    syst.disable_counter();
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}
