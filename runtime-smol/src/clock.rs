//! The runtime's clock: `std::time::Instant` mapped to the core's milliseconds.

use std::time::Instant as StdInstant;

/// Milliseconds since this clock was made, as the core counts time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: StdInstant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            epoch: StdInstant::now(),
        }
    }

    /// Now, for the core.
    pub fn now(&self) -> toolwire_core::Instant {
        toolwire_core::Instant(self.epoch.elapsed().as_millis() as u64)
    }

    /// A core instant as a `std` instant (for timers).
    pub fn instant(&self, t: toolwire_core::Instant) -> StdInstant {
        self.epoch + std::time::Duration::from_millis(t.0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
