//! A thread-mode embassy executor that sleeps in `WFI`.
//!
//! embassy-executor's own Cortex-M thread executor (`executor-thread`) sleeps with `WFE` and
//! wakes with `SEV`. QEMU (10.0) emulates `WFE` as a mere yield, so that executor keeps a host
//! core busy while the firmware has nothing to do. `WFI` really halts the emulated CPU until an
//! interrupt, so this executor uses it. On hardware both work; this one also suits real chips.
//!
//! Wake-ups: embassy calls `__pender` whenever a task is woken (from an interrupt handler or
//! from another task). It sets a flag; the run loop checks the flag with interrupts masked before
//! `WFI`, so a wake-up that lands between the check and `WFI` cannot be lost (a pending interrupt
//! ends `WFI` even while masked, and runs as soon as the loop unmasks).

use core::sync::atomic::{AtomicBool, Ordering};

use embassy_executor::{Spawner, raw};
use static_cell::StaticCell;

static WOKEN: AtomicBool = AtomicBool::new(true);

#[allow(unsafe_code)]
// SAFETY (attribute): `__pender` is the symbol embassy-executor's raw executor calls to signal
// work (it declares it `extern "Rust"` with this signature). The crate's own Cortex-M pender is
// compiled only with its `executor-thread`/`executor-interrupt` features, which this crate leaves
// off, so this is the only definition.
#[unsafe(export_name = "__pender")]
fn __pender(_context: *mut ()) {
    WOKEN.store(true, Ordering::Release);
}

/// Runs the executor forever: calls `init` with a [`Spawner`] to spawn the first tasks, then polls
/// tasks whenever one is woken and sleeps (`WFI`) in between.
///
/// # Panics
/// If called more than once.
pub fn run(init: impl FnOnce(Spawner)) -> ! {
    static EXECUTOR: StaticCell<raw::Executor> = StaticCell::new();
    let executor: &'static raw::Executor = EXECUTOR.init(raw::Executor::new(core::ptr::null_mut()));
    init(executor.spawner());
    loop {
        if WOKEN.swap(false, Ordering::Acquire) {
            #[allow(unsafe_code)]
            // SAFETY: `poll` must not be re-entered and must run on the executor's own thread:
            // this loop, in thread mode, is its only caller, and `run` cannot be entered twice
            // (`StaticCell::init` panics on the second call).
            unsafe {
                executor.poll();
            }
        }
        cortex_m::interrupt::free(|_| {
            if !WOKEN.load(Ordering::Acquire) {
                cortex_m::asm::wfi();
            }
        });
        // Interrupts are enabled again here: the one that ended `WFI` runs now.
    }
}
