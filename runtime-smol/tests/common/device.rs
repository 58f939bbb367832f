//! The simulated demo device as a test fixture: the tools of `toolwire-device-tools` (the code
//! the firmware runs) served by a host node. The `toolwire` crate has the same adapter for its
//! demo (`toolwire::device`); this copy keeps the library's tests free of its CLI crate.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use toolwire_core::{ErrorCode, Json};
use toolwire_device_tools::{Board, Context, SimBoard, TOOLS};
use toolwire_smol::node::{Tool, ToolContext, ToolError};

/// A simulated board shared by the calls of one simulated device.
#[derive(Clone)]
struct SharedBoard {
    board: Arc<Mutex<SimBoard>>,
    boot: Instant,
}

impl Board for SharedBoard {
    fn temperature_milli_c(&mut self, channel: u8) -> i32 {
        self.board.lock().unwrap().temperature_milli_c(channel)
    }
    fn set_led(&mut self, led: u8, on: bool) {
        self.board.lock().unwrap().set_led(led, on)
    }
    fn uptime_ms(&self) -> u64 {
        self.boot.elapsed().as_millis() as u64
    }
}

struct HostContext {
    ctx: ToolContext,
}

impl Context for HostContext {
    async fn sleep_ms(&mut self, ms: u64) {
        smol::Timer::after(std::time::Duration::from_millis(ms)).await;
    }
    async fn progress(&mut self, done: u64, total: u64, message: &str) {
        self.ctx
            .progress(done, Some(total), Some(message), None)
            .await;
    }
}

/// The device's tools as host-node tools over a fresh simulated board.
pub fn tools() -> Vec<Tool> {
    let board = SharedBoard {
        board: Arc::new(Mutex::new(SimBoard::default())),
        boot: Instant::now(),
    };
    TOOLS
        .iter()
        .enumerate()
        .map(|(index, def)| {
            let schema: Value =
                serde_json::from_slice(def.input_schema.as_bytes()).unwrap_or(Value::Null);
            let board = board.clone();
            Tool::new(
                def.name.raw(),
                def.description.raw(),
                schema,
                move |ctx, args| {
                    let mut board = board.clone();
                    async move {
                        let text = args.to_string();
                        let args = Json::parse(text.as_bytes()).map_err(|e| {
                            ToolError::new(ErrorCode::InvalidArguments, e.to_string())
                        })?;
                        let mut out = [0u8; 512];
                        let mut hctx = HostContext { ctx };
                        let n = toolwire_device_tools::call(
                            index, args, &mut board, &mut hctx, &mut out,
                        )
                        .await
                        .map_err(|e| ToolError::new(e.code, e.message))?;
                        serde_json::from_slice(&out[..n])
                            .map_err(|e| ToolError::failed(e.to_string()))
                    }
                },
            )
            .annotations(def.annotations)
        })
        .collect()
}
