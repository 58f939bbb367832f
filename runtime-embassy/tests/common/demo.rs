//! The demo device's tools over a simulated board, and a tool that asks.

use toolwire_core::frame::{AskKind, LogLevel, ToolDef};
use toolwire_core::{ErrorCode, Json};
use toolwire_device_tools::SimBoard;
use toolwire_embassy::{Context, ToolError, Tools};

/// The demo tools over a simulated board (the adapter firmware uses too).
pub type Demo = toolwire_device_tools::DemoTools<SimBoard>;

/// A `Demo` over a fresh simulated board.
pub fn sim() -> Demo {
    Demo::new(SimBoard::default())
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
        cx.log(LogLevel::Notice, "asking before anything").await;
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
