//! What a firmware implements ([`Tools`]) and what a running call may use ([`Context`]).

use core::fmt;

use toolwire_core::frame::{AskKind, LogLevel, ToolDef};
use toolwire_core::{ErrorCode, Json};

/// A node's tool table and the code behind it.
///
/// [`Tools::defs`] is the table sent in `register`; [`Tools::call`] runs tool `tool` (an index
/// into it). Up to `N` calls run at once (the runner's const parameter), each in its own future
/// over `&self`, so state shared between calls needs a `Cell`/`RefCell` (borrowed briefly,
/// never across an `.await`) or a mutex.
///
/// When the gateway cancels a call, or its deadline passes, its future is dropped at its next
/// `.await`: write tools so that stopping at any `.await` leaves the device consistent.
///
/// ```
/// use toolwire_core::frame::{Annotations, ToolDef};
/// use toolwire_core::{Json, Str};
/// use toolwire_embassy::{Context, ToolError, Tools};
///
/// struct Blink;
///
/// static DEFS: [ToolDef<'static>; 1] = [ToolDef {
///     name: Str::new("blink"),
///     description: Str::new("Blink the LED n times."),
///     input_schema: Json::trusted(br#"{"type":"object","properties":{"n":{"type":"integer"}}}"#),
///     output_schema: None,
///     annotations: Annotations::NONE,
/// }];
///
/// impl Tools for Blink {
///     fn defs(&self) -> &[ToolDef<'_>] {
///         &DEFS
///     }
///     async fn call<C: Context>(
///         &self,
///         _tool: usize,
///         _args: Json<'_>,
///         cx: &mut C,
///         out: &mut [u8],
///     ) -> Result<usize, ToolError> {
///         for i in 0..3 {
///             cx.progress(i + 1, Some(3), Some("blinking")).await;
///             cx.sleep_ms(100).await;
///         }
///         let result = b"{}";
///         out.get_mut(..result.len())
///             .ok_or(ToolError::new(toolwire_core::ErrorCode::InternalError, "out too small"))?
///             .copy_from_slice(result);
///         Ok(result.len())
///     }
/// }
/// ```
#[allow(async_fn_in_trait)] // Futures stay on one executor; no `Send` bound is wanted.
pub trait Tools {
    /// The tool table, registered on every connect. Its order gives the `tool` indices.
    fn defs(&self) -> &[ToolDef<'_>];

    /// Runs tool `tool` with `args` (a JSON object, checked as strict JSON but not against the
    /// schema), writing the result (one JSON value) into `out` and returning its length.
    ///
    /// The runtime checks that what was written is valid JSON and answers `-32603` if not.
    async fn call<C: Context>(
        &self,
        tool: usize,
        args: Json<'_>,
        cx: &mut C,
        out: &mut [u8],
    ) -> Result<usize, ToolError>;
}

/// What the runtime offers a running call.
#[allow(async_fn_in_trait)]
pub trait Context {
    /// Waits `ms` milliseconds (embassy time). A cancel stops the call here too.
    async fn sleep_ms(&mut self, ms: u64);

    /// Sends a `progress` notification for this call now: `progress` out of `total`.
    async fn progress(&mut self, progress: u64, total: Option<u64>, message: Option<&str>);

    /// Sends a chunk of partial output (`partial` in a `progress` notification).
    async fn partial(&mut self, progress: u64, chunk: Json<'_>);

    /// Sends a line of this call's log (a `log` notification): the caller sees it (an MCP
    /// client as `notifications/message`). Costs nothing in flash unless a tool calls it.
    async fn log(&mut self, level: LogLevel, message: &str);

    /// Asks the gateway (and through it the caller) for permission or input, and waits for the
    /// answer, which is copied into `answer` (the length is returned). `schema` describes the
    /// expected answer for [`AskKind::Input`].
    async fn ask(
        &mut self,
        kind: AskKind,
        prompt: &str,
        schema: Option<Json<'_>>,
        answer: &mut [u8],
    ) -> Result<usize, AskError>;
}

/// Why a tool failed: sent to the gateway as an error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ToolError {
    /// A protocol code (`-32002` invalid arguments, `-32014` tool failed, …) or a positive code
    /// of the tool's own.
    pub code: i32,
    /// One line for humans.
    pub message: &'static str,
}

impl ToolError {
    /// An error with a protocol code.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        ToolError {
            code: code.code(),
            message,
        }
    }

    /// An error with a tool-defined code (positive, by convention).
    pub const fn custom(code: i32, message: &'static str) -> Self {
        ToolError { code, message }
    }
}

impl From<ErrorCode> for ToolError {
    fn from(code: ErrorCode) -> Self {
        ToolError::new(code, code.message())
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl core::error::Error for ToolError {}

/// Why [`Context::ask`] has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AskError {
    /// The gateway answered with an error: `-32013` when the ask was declined.
    Declined(i32),
    /// The answer does not fit the buffer given (or [`crate::MAX_ANSWER`]).
    TooLarge,
    /// The call has ended (cancelled or expired) or the connection is closing.
    Gone,
    /// This call already has an ask outstanding.
    Busy,
    /// The ask does not fit the transmit buffer or the gateway's frame limit.
    Encode,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Declined(code) => write!(f, "ask declined ({code})"),
            AskError::TooLarge => f.write_str("answer too large"),
            AskError::Gone => f.write_str("call or connection ended"),
            AskError::Busy => f.write_str("an ask is already outstanding"),
            AskError::Encode => f.write_str("ask does not fit a frame"),
        }
    }
}

impl core::error::Error for AskError {}
