//! The toolwire demo node on UART0: the tools of `toolwire-device-tools` (sensor, LEDs, uptime,
//! echo, sampling) served by `toolwire-embassy` to a gateway on the other end of the line.
//!
//! The "hardware" is simulated: the temperature sensor is a pseudo-random walk around
//! 20 °C + 0.5 °C per channel, the LEDs are bits of a static register, uptime is embassy time.
//! Run it with `scripts/qemu-uart.sh target/thumbv7m-none-eabi/release/node PORT` and connect a
//! gateway to 127.0.0.1:PORT; `runtime-embassy/tests/qemu.rs` does exactly that.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use static_cell::ConstStaticCell;
use toolwire_device_tools::{Board, DemoTools};
use toolwire_embassy::{Config, Resources, Serial};
use toolwire_fw_qemu::{Uart, board};

/// Two calls at once; 512-byte frames in; 2 KiB out (the `register` frame with five schemas is
/// ~1.6 KiB in JSON).
type Res = Resources<2, 512, 2048>;

static RESOURCES: ConstStaticCell<Res> = ConstStaticCell::new(Res::new());

/// The LED register: bit `i` is LED `i`.
static LEDS: AtomicU8 = AtomicU8::new(0);
/// State of the sensor's pseudo-random generator.
static NOISE: AtomicU32 = AtomicU32::new(0x2545_F491);

/// The simulated board. State lives in atomics, so every call can have its own handle.
struct QemuBoard;

impl Board for QemuBoard {
    fn temperature_milli_c(&mut self, channel: u8) -> i32 {
        // xorshift32, mixed with the tick count so readings drift over time.
        let mut x = NOISE.load(Ordering::Relaxed) ^ embassy_time::Instant::now().as_ticks() as u32;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        NOISE.store(x, Ordering::Relaxed);
        20_000 + 500 * i32::from(channel) + (x % 201) as i32 - 100
    }
    fn set_led(&mut self, led: u8, on: bool) {
        if on {
            LEDS.fetch_or(1 << led, Ordering::Relaxed);
        } else {
            LEDS.fetch_and(!(1 << led), Ordering::Relaxed);
        }
    }
    fn uptime_ms(&self) -> u64 {
        embassy_time::Instant::now().as_millis()
    }
}

#[embassy_executor::task]
async fn node(uart: Uart) -> ! {
    let (rx, tx) = uart.split();
    // The task never ends, so the tools may live on its stack.
    let tools = DemoTools::new(QemuBoard);
    let (_handle, mut runner) =
        toolwire_embassy::new(&tools, Config::new("qemu-1"), RESOURCES.take());
    runner.run(&mut Serial { rx, tx }).await
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let board = board::init();
    board::log(if toolwire_fw_qemu::uart::fifo_enabled() {
        "node: UART FIFO on\n"
    } else {
        "node: UART FIFO off (the host spoke first)\n"
    });
    toolwire_fw_qemu::run(|spawner| {
        spawner.spawn(node(board.uart).expect("node task already spawned"));
    })
}
