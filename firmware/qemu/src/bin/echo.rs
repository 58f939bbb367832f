//! Echo firmware: every byte received on UART0 is sent back.
//!
//! Proves the board layer (executor, time driver, interrupt-driven UART) under QEMU; driven by
//! `tests/echo.py`. The firmware never writes anything of its own.
#![no_std]
#![no_main]

use embedded_io_async::{Read, Write};
use toolwire_fw_qemu::{Uart, board};

/// Reads whatever has arrived and writes it back, forever.
#[embassy_executor::task]
async fn echo(mut uart: Uart) {
    let mut buf = [0u8; 64];
    loop {
        // A receive error means bytes were lost before the ones still buffered; an echo can only
        // carry on.
        if let Ok(n) = uart.read(&mut buf).await {
            uart.write_all(&buf[..n]).await.expect("UART write failed");
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let board = board::init();
    // Diagnostics for the test harness, over semihosting (QEMU's stdout).
    board::log(if toolwire_fw_qemu::uart::fifo_enabled() {
        "echo: UART FIFO on\n"
    } else {
        "echo: UART FIFO off (the host spoke first)\n"
    });
    toolwire_fw_qemu::run(|spawner| {
        spawner.spawn(echo(board.uart).expect("echo task already spawned"));
    })
}
