//! The demo device's tools, written once and run unchanged by the QEMU firmware (through
//! `toolwire-embassy`) and by the host demo's simulated device (`toolwire::device`, a host node
//! of `toolwire-smol`).
//!
//! Tools are plain async functions over two small traits: [`Board`] (the hardware: a
//! temperature sensor with four channels, four LEDs, a clock) and [`Context`] (what the runtime
//! offers a running call: sleeping and reporting progress). Arguments arrive as validated JSON
//! and are read with `serde-json-core`; results are written as JSON into the caller's buffer.
//! No allocation anywhere.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "embassy")]
mod embassy;
#[cfg(feature = "embassy")]
pub use embassy::DemoTools;

use serde::{Deserialize, Serialize};
use toolwire_core::frame::{Annotations, ToolDef};
use toolwire_core::json::{from_args, to_result};
use toolwire_core::{ErrorCode, Json, Str};

/// The hardware the tools drive.
pub trait Board {
    /// Temperature of `channel` (0..=3) in milli-degrees Celsius.
    fn temperature_milli_c(&mut self, channel: u8) -> i32;
    /// Switches LED `led` (0..=3).
    fn set_led(&mut self, led: u8, on: bool);
    /// Milliseconds since boot.
    fn uptime_ms(&self) -> u64;
}

/// What a running call can ask of its runtime.
#[allow(async_fn_in_trait)]
pub trait Context {
    /// Waits `ms` milliseconds.
    async fn sleep_ms(&mut self, ms: u64);
    /// Reports progress of the call.
    async fn progress(&mut self, done: u64, total: u64, message: &str);
}

/// Why a tool failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolError {
    /// Protocol error code.
    pub code: ErrorCode,
    /// One line for humans.
    pub message: &'static str,
}

impl ToolError {
    const fn new(code: ErrorCode, message: &'static str) -> Self {
        ToolError { code, message }
    }
}

const fn tool(
    name: &'static str,
    description: &'static str,
    schema: &'static str,
    annotations: Annotations,
) -> ToolDef<'static> {
    ToolDef {
        name: Str::new(name),
        description: Str::new(description),
        input_schema: Json::trusted(schema.as_bytes()),
        output_schema: None,
        annotations,
    }
}

const READ_ONLY: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
};

/// Index of each tool in [`TOOLS`].
pub mod index {
    /// `read_sensor`.
    pub const READ_SENSOR: usize = 0;
    /// `set_led`.
    pub const SET_LED: usize = 1;
    /// `uptime`.
    pub const UPTIME: usize = 2;
    /// `echo`.
    pub const ECHO: usize = 3;
    /// `sample`.
    pub const SAMPLE: usize = 4;
}

/// The tool table, in the order of [`index`].
pub static TOOLS: [ToolDef<'static>; 5] = [
    tool(
        "read_sensor",
        "Read the temperature of one channel, in milli-degrees Celsius.",
        r#"{"type":"object","properties":{"channel":{"type":"integer","minimum":0,"maximum":3}},"required":["channel"],"additionalProperties":false}"#,
        READ_ONLY,
    ),
    tool(
        "set_led",
        "Switch an LED on or off.",
        r#"{"type":"object","properties":{"led":{"type":"integer","minimum":0,"maximum":3},"on":{"type":"boolean"}},"required":["led","on"],"additionalProperties":false}"#,
        Annotations {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
    ),
    tool(
        "uptime",
        "Milliseconds since the device booted.",
        r#"{"type":"object","properties":{},"additionalProperties":false}"#,
        READ_ONLY,
    ),
    tool(
        "echo",
        "Return the text it is given (up to 64 bytes).",
        r#"{"type":"object","properties":{"text":{"type":"string","maxLength":64}},"required":["text"],"additionalProperties":false}"#,
        READ_ONLY,
    ),
    tool(
        "sample",
        "Average `count` readings of a channel taken `interval_ms` apart, reporting progress.",
        r#"{"type":"object","properties":{"channel":{"type":"integer","minimum":0,"maximum":3},"count":{"type":"integer","minimum":1,"maximum":100},"interval_ms":{"type":"integer","minimum":0,"maximum":1000}},"required":["channel","count"],"additionalProperties":false}"#,
        READ_ONLY,
    ),
];

const BAD_ARGS: ToolError = ToolError::new(
    ErrorCode::InvalidArguments,
    "arguments do not match the schema",
);
const TOO_BIG: ToolError = ToolError::new(ErrorCode::InternalError, "result buffer too small");

fn write<T: Serialize>(v: &T, out: &mut [u8]) -> Result<usize, ToolError> {
    to_result(v, out).ok_or(TOO_BIG)
}

#[derive(Deserialize)]
struct ChannelArgs {
    channel: u8,
}

#[derive(Deserialize)]
struct LedArgs {
    led: u8,
    on: bool,
}

#[derive(Deserialize)]
struct EchoArgs {
    // Owned: a borrowed `&str` cannot hold a string that had escapes in the JSON.
    text: heapless::String<64>,
}

#[derive(Deserialize)]
struct SampleArgs {
    channel: u8,
    count: u16,
    #[serde(default)]
    interval_ms: u16,
}

#[derive(Serialize)]
struct Reading {
    channel: u8,
    milli_c: i32,
}

#[derive(Serialize)]
struct Led {
    led: u8,
    on: bool,
}

#[derive(Serialize)]
struct Uptime {
    ms: u64,
}

#[derive(Serialize)]
struct Echo<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Sampled {
    channel: u8,
    count: u16,
    mean_milli_c: i32,
}

/// Runs tool `tool` (an index into [`TOOLS`]) with `args`, writing its JSON result into `out`
/// and returning the length. Arguments are checked again here (ranges included): a device does
/// not trust the gateway's schema check.
pub async fn call<B: Board, C: Context>(
    tool: usize,
    args: Json<'_>,
    board: &mut B,
    ctx: &mut C,
    out: &mut [u8],
) -> Result<usize, ToolError> {
    match tool {
        index::READ_SENSOR => {
            let a: ChannelArgs = from_args(args, &mut []).map_err(|_| BAD_ARGS)?;
            if a.channel > 3 {
                return Err(BAD_ARGS);
            }
            let milli_c = board.temperature_milli_c(a.channel);
            write(
                &Reading {
                    channel: a.channel,
                    milli_c,
                },
                out,
            )
        }
        index::SET_LED => {
            let a: LedArgs = from_args(args, &mut []).map_err(|_| BAD_ARGS)?;
            if a.led > 3 {
                return Err(BAD_ARGS);
            }
            board.set_led(a.led, a.on);
            write(
                &Led {
                    led: a.led,
                    on: a.on,
                },
                out,
            )
        }
        index::UPTIME => write(
            &Uptime {
                ms: board.uptime_ms(),
            },
            out,
        ),
        index::ECHO => {
            let mut scratch = [0u8; 64];
            let a: EchoArgs = from_args(args, &mut scratch).map_err(|_| BAD_ARGS)?;
            write(&Echo { text: &a.text }, out)
        }
        index::SAMPLE => {
            let a: SampleArgs = from_args(args, &mut []).map_err(|_| BAD_ARGS)?;
            if a.channel > 3 || a.count == 0 || a.count > 100 || a.interval_ms > 1000 {
                return Err(BAD_ARGS);
            }
            let mut sum: i64 = 0;
            for i in 0..a.count {
                if i > 0 {
                    ctx.sleep_ms(u64::from(a.interval_ms)).await;
                }
                sum += i64::from(board.temperature_milli_c(a.channel));
                ctx.progress(u64::from(i) + 1, u64::from(a.count), "sampling")
                    .await;
            }
            let mean = (sum / i64::from(a.count)) as i32;
            write(
                &Sampled {
                    channel: a.channel,
                    count: a.count,
                    mean_milli_c: mean,
                },
                out,
            )
        }
        _ => Err(ToolError::new(ErrorCode::ToolNotFound, "no such tool")),
    }
}

/// A deterministic board for hosts and tests: channel `c` reads `20_000 + 500·c` milli-degrees
/// plus a small wobble, LEDs are bits of a register, time comes from the caller.
#[derive(Debug, Default)]
pub struct SimBoard {
    /// LED register: bit `i` is LED `i`.
    pub leds: u8,
    /// Milliseconds since boot (set by the host).
    pub now_ms: u64,
    reads: u32,
}

impl Board for SimBoard {
    fn temperature_milli_c(&mut self, channel: u8) -> i32 {
        self.reads = self.reads.wrapping_add(1);
        20_000 + 500 * i32::from(channel) + (self.reads % 7) as i32 * 10
    }
    fn set_led(&mut self, led: u8, on: bool) {
        if on {
            self.leds |= 1 << led;
        } else {
            self.leds &= !(1 << led);
        }
    }
    fn uptime_ms(&self) -> u64 {
        self.now_ms
    }
}
