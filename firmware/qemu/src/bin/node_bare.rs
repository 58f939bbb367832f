//! The footprint floor of a toolwire node: `toolwire-embassy` on UART0 with one trivial tool
//! (`ping`, answering `{}` without parsing its arguments), so that `scripts/footprint.sh` can
//! tell the runtime and core apart from the demo tools' own code (`node`).
#![no_std]
#![no_main]

use static_cell::ConstStaticCell;
use toolwire_core::frame::{Annotations, ToolDef};
use toolwire_core::{Json, Str};
use toolwire_embassy::{Config, Context, Resources, Serial, ToolError, Tools};
use toolwire_fw_qemu::{Uart, board};

type Res = Resources<1, 256, 512>;

static RESOURCES: ConstStaticCell<Res> = ConstStaticCell::new(Res::new());

static DEFS: [ToolDef<'static>; 1] = [ToolDef {
    name: Str::new("ping"),
    description: Str::new("Answers {}."),
    input_schema: Json::trusted(br#"{"type":"object"}"#),
    output_schema: None,
    annotations: Annotations::NONE,
}];

struct Bare;

impl Tools for Bare {
    fn defs(&self) -> &[ToolDef<'_>] {
        &DEFS
    }
    async fn call<C: Context>(
        &self,
        _tool: usize,
        _args: Json<'_>,
        _cx: &mut C,
        out: &mut [u8],
    ) -> Result<usize, ToolError> {
        let r = b"{}";
        out.get_mut(..r.len())
            .ok_or(ToolError::new(
                toolwire_core::ErrorCode::InternalError,
                "out",
            ))?
            .copy_from_slice(r);
        Ok(r.len())
    }
}

static BARE: Bare = Bare;

#[embassy_executor::task]
async fn node(uart: Uart) -> ! {
    let (rx, tx) = uart.split();
    let (_handle, mut runner) =
        toolwire_embassy::new(&BARE, Config::new("qemu-bare"), RESOURCES.take());
    runner.run(&mut Serial { rx, tx }).await
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let board = board::init();
    toolwire_fw_qemu::run(|spawner| {
        spawner.spawn(node(board.uart).expect("node task already spawned"));
    })
}
