//! Volatile access to 32-bit memory-mapped device registers.
//!
//! This is the only place where peripheral registers are dereferenced. Register addresses come
//! from the lm3s6965 memory map as QEMU's `lm3s6965evb` machine models it.

use core::ptr;

/// A 32-bit device register at a fixed physical address.
#[derive(Clone, Copy)]
pub(crate) struct Reg(usize);

impl Reg {
    /// The register at `base + offset`.
    ///
    /// Only call this with the address of an existing, word-aligned device register: `read` and
    /// `write` rely on it.
    pub(crate) const fn at(base: usize, offset: usize) -> Self {
        Self(base + offset)
    }

    /// Volatile 32-bit load.
    #[inline(always)]
    pub(crate) fn read(self) -> u32 {
        #[allow(unsafe_code)]
        // SAFETY: `Reg` is only constructed (crate-private `at`) for word-aligned addresses of
        // device registers that exist on this machine. Such an address is never a Rust object, so
        // no reference aliases it, and a volatile load is the access the hardware expects.
        unsafe {
            ptr::read_volatile(ptr::with_exposed_provenance::<u32>(self.0))
        }
    }

    /// Volatile 32-bit store.
    #[inline(always)]
    pub(crate) fn write(self, value: u32) {
        #[allow(unsafe_code)]
        // SAFETY: as in `read`: a valid, aligned device-register address outside any Rust object.
        // Each caller is responsible for the *meaning* of the value (see the driver modules).
        unsafe {
            ptr::write_volatile(ptr::with_exposed_provenance_mut::<u32>(self.0), value)
        }
    }

    /// Read-modify-write. Not atomic: callers make sure no interrupt handler modifies the same
    /// register concurrently (by running inside the handler or inside a critical section).
    #[inline(always)]
    pub(crate) fn modify(self, f: impl FnOnce(u32) -> u32) {
        self.write(f(self.read()));
    }
}
