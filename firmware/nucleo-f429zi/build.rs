//! Linker scripts: cortex-m-rt's `link.x` (with the `memory.x` embassy-stm32 generates), and
//! defmt's `defmt.x` when logging is on.

fn main() {
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
