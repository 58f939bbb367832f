//! Logging that compiles to nothing without the `defmt` feature.
//!
//! Without the feature the arguments are still borrowed, so variables used only for logging do
//! not trigger unused warnings, but nothing is formatted or stored.

macro_rules! log {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( &$x ),*);
    }};
}

macro_rules! debug {
    ($($t:tt)*) => { log!(debug, $($t)*) };
}

macro_rules! info {
    ($($t:tt)*) => { log!(info, $($t)*) };
}

macro_rules! warn {
    ($($t:tt)*) => { log!(warn, $($t)*) };
}
