//! The board: QEMU's `lm3s6965evb` (TI Stellaris LM3S6965, Cortex-M3).
//!
//! Memory map used here (from the LM3S6965 datasheet, as QEMU models it): 256 KiB flash at
//! `0x0000_0000`, 64 KiB SRAM at `0x2000_0000`, UART0 (PL011) at `0x4000_C000` on IRQ 5.
//! The processor clock is left at its reset value, 12.5 MHz in QEMU ([`crate::time::SYSCLK_HZ`]).
//!
//! The firmware talks to the outside world through UART0; under QEMU that is whatever
//! `-serial` names (a TCP socket in the tests). Semihosting (`-semihosting-config enable=on`)
//! carries diagnostics and the exit status.

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::peripheral::NVIC;

use crate::uart::{self, Uart};

/// Flash: origin and size in bytes.
pub const FLASH: (usize, usize) = (0x0000_0000, 256 * 1024);
/// RAM: origin and size in bytes.
pub const RAM: (usize, usize) = (0x2000_0000, 64 * 1024);

/// What [`init`] hands out.
pub struct Board {
    /// UART0, interrupt-driven.
    pub uart: Uart,
}

/// An lm3s6965 interrupt number, for the NVIC.
#[derive(Clone, Copy)]
pub(crate) struct Irq(pub(crate) u16);

// SAFETY: `Irq` only ever holds a valid lm3s6965 interrupt number (UART0's).
#[allow(unsafe_code)]
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Brings the board up: starts the embassy time driver (SysTick at 1 kHz) and configures UART0
/// with its interrupt enabled.
///
/// Call once, early in `main`, before anything uses embassy time.
///
/// # Panics
/// If called twice, or if something else already took the `cortex_m::Peripherals`.
pub fn init() -> Board {
    assert!(
        !TAKEN.swap(true, Ordering::AcqRel),
        "board::init called twice"
    );
    let core = cortex_m::Peripherals::take().expect("core peripherals already taken");
    crate::time::init(core.SYST);
    let uart = uart::init();
    #[allow(unsafe_code)]
    // SAFETY: unmasking can break a critical section that relies on this interrupt staying
    // masked; nothing in this program does (critical sections here disable all interrupts), and
    // the handler and the state it touches are set up by `uart::init` just above.
    unsafe {
        NVIC::unmask(Irq(uart::UART0_IRQ));
    }
    // Run the handler once: it picks up bytes that arrived before the UART was configured.
    NVIC::pend(Irq(uart::UART0_IRQ));
    Board { uart }
}

/// Writes `msg` to the host's stdout via semihosting (QEMU prints it on its own stdout).
/// Does nothing if the host does not answer. Only under QEMU or a debugger: see [`exit`].
pub fn log(msg: &str) {
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        out.write_all(msg.as_bytes()).ok();
    }
}

/// Ends the QEMU run via semihosting: exit status 0 if `success`, 1 otherwise.
///
/// Only meaningful under a debugger or QEMU with semihosting enabled; on bare hardware the
/// semihosting call would fault.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Not reached under QEMU (it exits); without a semihosting host, park the CPU.
    loop {
        cortex_m::asm::wfi();
    }
}
