//! The toolwire demo node on a NUCLEO-F429ZI, over Ethernet.
//!
//! * network: the on-board LAN8742 PHY (RMII) through embassy-stm32's Ethernet driver, an
//!   embassy-net stack with an address from DHCP;
//! * node: `toolwire-embassy` dialing the gateway at [`GATEWAY`]:[`GATEWAY_PORT`] over TCP,
//!   reconnecting with backoff and registering again on every connect;
//! * tools: `toolwire-device-tools` over the board: `read_sensor` reads the chip's internal
//!   temperature sensor (channel 0 as measured, channels 1–3 offset by 0.5 °C each, to keep the
//!   demo's four channels), `set_led` drives LD1–LD3 (LED 3 has no pin and only keeps its state),
//!   `uptime` is embassy time.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_net::{Ipv4Address, Stack, StackResources};
use embassy_stm32::adc::{Adc, SampleTime, Temperature};
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::gpio::{Level, Output, Speed};
use embassy_stm32::peripherals::{ADC1, ETH, ETH_SMA, RNG};
use embassy_stm32::rng::{self, Rng};
use embassy_stm32::{bind_interrupts, time::Hertz};
use static_cell::{ConstStaticCell, StaticCell};
use toolwire_device_tools::{Board, DemoTools};
use toolwire_embassy::{Config, Resources, TcpTransport};
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

/// The gateway this node dials (edit for your network).
const GATEWAY: Ipv4Address = Ipv4Address::new(192, 168, 1, 10);
/// The gateway's TCP port for nodes.
const GATEWAY_PORT: u16 = 7411;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

/// The board as the demo tools see it.
struct Nucleo {
    adc: Adc<'static, ADC1>,
    temperature: Temperature,
    leds: [Output<'static>; 3],
    led3: bool,
}

impl Board for Nucleo {
    fn temperature_milli_c(&mut self, channel: u8) -> i32 {
        let raw = i32::from(
            self.adc
                .blocking_read(&mut self.temperature, SampleTime::CYCLES480),
        );
        // RM0090: T = (V_sense - 0.76 V) / 2.5 mV/°C + 25 °C, V_sense = raw * 3.3 V / 4095.
        let millivolts = raw * 3300 / 4095;
        (millivolts - 760) * 400 + 25_000 + 500 * i32::from(channel)
    }
    fn set_led(&mut self, led: u8, on: bool) {
        match self.leds.get_mut(usize::from(led)) {
            Some(pin) => pin.set_level(Level::from(on)),
            None => self.led3 = on,
        }
    }
    fn uptime_ms(&self) -> u64 {
        embassy_time::Instant::now().as_millis()
    }
}

/// The demo tools over this board.
type Demo = DemoTools<Nucleo>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn node_task(stack: Stack<'static>, demo: &'static Demo) -> ! {
    static RESOURCES: ConstStaticCell<Resources<2, 512, 2048>> =
        ConstStaticCell::new(Resources::new());
    static SOCKET: ConstStaticCell<([u8; 1024], [u8; 1024])> =
        ConstStaticCell::new(([0; 1024], [0; 1024]));
    let (rx, tx) = SOCKET.take();
    let mut tcp = TcpTransport::new(stack, (GATEWAY, GATEWAY_PORT), rx, tx);
    let (_handle, mut runner) =
        toolwire_embassy::new(demo, Config::new("nucleo-f429zi"), RESOURCES.take());
    runner.run(&mut tcp).await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(clocks());

    // Locally administered MAC from the chip's unique id.
    let uid = embassy_stm32::uid::uid();
    let mac = [0x02, 0x00, uid[0], uid[4], uid[8], uid[11]];
    static PACKETS: ConstStaticCell<PacketQueue<4, 4>> = ConstStaticCell::new(PacketQueue::new());
    let device = Ethernet::new(
        PACKETS.take(),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        mac,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );
    let seed = Rng::new(p.RNG, Irqs).next_u64();
    static STACK: StaticCell<StackResources<2>> = StaticCell::new();
    let (stack, net) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        STACK.init(StackResources::new()),
        seed,
    );

    let adc = Adc::new(p.ADC1);
    let temperature = adc.enable_temperature();
    static DEMO: StaticCell<Demo> = StaticCell::new();
    let demo = DEMO.init(DemoTools::new(Nucleo {
        adc,
        temperature,
        leds: [
            Output::new(p.PB0, Level::Low, Speed::Low),
            Output::new(p.PB7, Level::Low, Speed::Low),
            Output::new(p.PB14, Level::Low, Speed::Low),
        ],
        led3: false,
    }));

    spawner.spawn(net_task(net).expect("net task spawned twice"));
    spawner.spawn(node_task(stack, demo).expect("node task spawned twice"));
}

/// 168 MHz from the ST-LINK's 8 MHz clock (HSE bypass), with the 48 MHz PLL output the RNG
/// needs; APB1 42 MHz, APB2 84 MHz.
fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    config.rcc.hse = Some(Hse {
        freq: Hertz(8_000_000),
        mode: HseMode::Bypass,
    });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL168,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV7),
        divr: None,
    });
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config
}

#[cfg(not(feature = "defmt"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
