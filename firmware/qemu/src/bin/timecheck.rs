//! Time-driver check: prints `T <embassy milliseconds>` on UART0 every 250 ms for 3 s, then `DONE`,
//! and exits QEMU with success. `tests/echo.py` compares the numbers with the host's clock.
#![no_std]
#![no_main]

use embassy_time::{Duration, Instant, Ticker};
use embedded_io_async::Write;
use toolwire_fw_qemu::{Uart, board};

/// Formats `v` in decimal into the end of `buf`; returns the digits.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[embassy_executor::task]
async fn report(mut uart: Uart) {
    let mut ticker = Ticker::every(Duration::from_millis(250));
    for _ in 0..=12 {
        let mut digits = [0u8; 20];
        let ms = decimal(Instant::now().as_millis(), &mut digits);
        let ok = uart.write_all(b"T ").await.is_ok()
            && uart.write_all(ms).await.is_ok()
            && uart.write_all(b"\n").await.is_ok();
        assert!(ok, "UART write failed");
        ticker.next().await;
    }
    assert!(uart.write_all(b"DONE\n").await.is_ok(), "UART write failed");
    uart.flush().await.ok();
    board::exit(true);
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let board = board::init();
    toolwire_fw_qemu::run(|spawner| {
        spawner.spawn(report(board.uart).expect("report task already spawned"));
    })
}
