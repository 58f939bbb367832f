//! The demo device's tools (`toolwire-device-tools`) as a `toolwire_embassy::Tools`: the few
//! lines a firmware writes to plug them in.

use std::cell::RefCell;

use toolwire_core::frame::{AskKind, ToolDef};
use toolwire_core::{ErrorCode, Json};
use toolwire_device_tools::{self as dt, Board, SimBoard};
use toolwire_embassy::{Context, ToolError, Tools};

/// The demo tools over a board shared by concurrent calls.
pub struct Demo<B> {
    pub board: RefCell<B>,
}

impl Demo<SimBoard> {
    pub fn sim() -> Self {
        Demo {
            board: RefCell::new(SimBoard::default()),
        }
    }
}

/// Lends the board to one call; each access borrows it only for that access.
struct Shared<'a, B>(&'a RefCell<B>);

impl<B: Board> Board for Shared<'_, B> {
    fn temperature_milli_c(&mut self, channel: u8) -> i32 {
        self.0.borrow_mut().temperature_milli_c(channel)
    }
    fn set_led(&mut self, led: u8, on: bool) {
        self.0.borrow_mut().set_led(led, on)
    }
    fn uptime_ms(&self) -> u64 {
        self.0.borrow().uptime_ms()
    }
}

/// The runtime's context as the demo tools' context.
struct Cx<'a, C>(&'a mut C);

impl<C: Context> dt::Context for Cx<'_, C> {
    async fn sleep_ms(&mut self, ms: u64) {
        self.0.sleep_ms(ms).await
    }
    async fn progress(&mut self, done: u64, total: u64, message: &str) {
        self.0.progress(done, Some(total), Some(message)).await
    }
}

impl<B: Board> Tools for Demo<B> {
    fn defs(&self) -> &[ToolDef<'_>] {
        &dt::TOOLS
    }
    async fn call<C: Context>(
        &self,
        tool: usize,
        args: Json<'_>,
        cx: &mut C,
        out: &mut [u8],
    ) -> Result<usize, ToolError> {
        dt::call(tool, args, &mut Shared(&self.board), &mut Cx(cx), out)
            .await
            .map_err(|e| ToolError::new(e.code, e.message))
    }
}

/// A tool that asks for permission before answering: `{"granted": <answer>}`.
pub struct Asker;

static ASKER: [ToolDef<'static>; 1] = [ToolDef {
    name: toolwire_core::Str::new("confirm"),
    description: toolwire_core::Str::new("Asks before doing anything."),
    input_schema: Json::trusted(br#"{"type":"object"}"#),
    output_schema: None,
    annotations: toolwire_core::frame::Annotations::NONE,
}];

impl Tools for Asker {
    fn defs(&self) -> &[ToolDef<'_>] {
        &ASKER
    }
    async fn call<C: Context>(
        &self,
        _tool: usize,
        _args: Json<'_>,
        cx: &mut C,
        out: &mut [u8],
    ) -> Result<usize, ToolError> {
        let mut answer = [0u8; 16];
        let n = cx
            .ask(AskKind::Permission, "may I?", None, &mut answer)
            .await
            .map_err(|_| ToolError::new(ErrorCode::AskDeclined, "no answer"))?;
        let text = format!(
            r#"{{"granted":{}}}"#,
            std::str::from_utf8(&answer[..n]).unwrap()
        );
        out[..text.len()].copy_from_slice(text.as_bytes());
        Ok(text.len())
    }
}
