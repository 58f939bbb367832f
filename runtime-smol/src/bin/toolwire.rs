//! The `toolwire` command line (being written).
fn main() {}
