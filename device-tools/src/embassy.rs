//! The demo tools as a `toolwire_embassy::Tools` (feature `embassy`): what a firmware needs to
//! serve them is a [`Board`] and one line, `DemoTools::new(board)`.

use core::cell::RefCell;

use toolwire_core::Json;
use toolwire_core::frame::ToolDef;
use toolwire_embassy::{Context as RuntimeContext, ToolError, Tools};

use crate::{Board, Context, TOOLS, call};

/// The demo tools over a board shared by the calls that run at once.
pub struct DemoTools<B> {
    board: RefCell<B>,
}

impl<B: Board> DemoTools<B> {
    /// The tools over `board`.
    pub const fn new(board: B) -> Self {
        DemoTools {
            board: RefCell::new(board),
        }
    }

    /// The board (for inspection between calls).
    pub fn board(&self) -> &RefCell<B> {
        &self.board
    }
}

/// Lends the board to one call; each access borrows it only for that access, so calls that
/// interleave at await points never hold it together.
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

/// The runtime's call context as the tools' context.
struct Cx<'a, C>(&'a mut C);

impl<C: RuntimeContext> Context for Cx<'_, C> {
    async fn sleep_ms(&mut self, ms: u64) {
        self.0.sleep_ms(ms).await
    }
    async fn progress(&mut self, done: u64, total: u64, message: &str) {
        self.0.progress(done, Some(total), Some(message)).await
    }
}

impl<B: Board> Tools for DemoTools<B> {
    fn defs(&self) -> &[ToolDef<'_>] {
        &TOOLS
    }

    async fn call<C: RuntimeContext>(
        &self,
        tool: usize,
        args: Json<'_>,
        cx: &mut C,
        out: &mut [u8],
    ) -> Result<usize, ToolError> {
        call(tool, args, &mut Shared(&self.board), &mut Cx(cx), out)
            .await
            .map_err(|e| ToolError::new(e.code, e.message))
    }
}
