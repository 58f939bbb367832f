//! Board support for running toolwire firmware on QEMU's `lm3s6965evb` (Cortex-M3).
//!
//! * [`board::init`] brings the board up and returns a [`board::Board`] holding the UART;
//! * [`run`] is the executor: a thread-mode embassy executor that sleeps in `WFI`;
//! * [`uart`] is an interrupt-driven PL011 driver implementing `embedded-io(-async)`;
//! * [`time`] is the embassy-time driver (SysTick, 1 kHz);
//! * the panic handler reports over semihosting and exits QEMU with a failure status.
//!
//! A binary is `#![no_main]`, has a `#[cortex_m_rt::entry]` function that calls [`board::init`]
//! and then [`run`] to spawn its `#[embassy_executor::task]`s. See `src/bin/echo.rs`.
//! (`#[embassy_executor::main]` is not available: it needs embassy's own executor, which QEMU
//! cannot put to sleep; see [`executor`].)
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod board;
pub mod executor;
mod mmio;
mod panic;
pub mod time;
pub mod uart;
mod vectors;

pub use board::{Board, exit, init};
pub use executor::run;
pub use uart::{Uart, UartError, UartRx, UartTx};
