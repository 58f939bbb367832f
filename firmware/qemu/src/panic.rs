//! Panic handler: report over semihosting and exit QEMU with a failure status.

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    #[cfg(feature = "panic-message")]
    cortex_m_semihosting::heprintln!("panic: {}", info);
    #[cfg(not(feature = "panic-message"))]
    {
        let _ = info;
        cortex_m_semihosting::hio::hstderr()
            .and_then(|mut err| err.write_all(b"panic\n"))
            .ok();
    }
    crate::board::exit(false)
}
