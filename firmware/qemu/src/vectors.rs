//! The device-specific part of the vector table (cortex-m-rt's `device` feature).
//!
//! cortex-m-rt lays out the 16 core exception vectors itself and expects the device interrupts in
//! a static named `__INTERRUPTS` placed in `.vector_table.interrupts`. Without the `device`
//! feature it would emit 240 entries (960 bytes of flash); this board only needs IRQs 0..=5, so
//! the table stops at UART0 (IRQ 5). Interrupts beyond it are never enabled.

use crate::uart;

/// IRQs 0..=4 (GPIO ports A..E) are never enabled; if one fires anyway, fail loudly.
extern "C" fn unexpected_irq() {
    panic!("unexpected interrupt");
}

type Handler = extern "C" fn();

#[allow(unsafe_code)]
// SAFETY (attributes): `no_mangle` gives the symbol the name cortex-m-rt's linker script looks
// for (`EXTERN(__INTERRUPTS)`), and `link_section` puts it right after the core exceptions, where
// the hardware reads IRQ vectors. Nothing else in the program defines `__INTERRUPTS` (the
// `device` feature turns off cortex-m-rt's default one) or uses this section.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [Handler; 6] = [
    unexpected_irq,     // 0: GPIO A
    unexpected_irq,     // 1: GPIO B
    unexpected_irq,     // 2: GPIO C
    unexpected_irq,     // 3: GPIO D
    unexpected_irq,     // 4: GPIO E
    uart::on_interrupt, // 5: UART0
];
