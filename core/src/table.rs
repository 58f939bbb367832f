//! The tables a gateway [`Connection`](crate::gateway::Connection) keeps, behind two small
//! traits, so that one state machine runs on fixed arrays (no allocation) or on vectors that
//! grow only as far as a connection uses them (feature `alloc`). See
//! [`Storage`](crate::gateway::Storage).

/// A bounded list: what a connection needs of `heapless::Vec` and `alloc::vec::Vec`.
///
/// Bounds are the connection's to enforce ([`Storage`](crate::gateway::Storage)'s limits); a
/// vector's `push` never fails, an array's fails when full.
pub trait Table<X> {
    /// Appends `x`, or gives it back when full.
    fn push(&mut self, x: X) -> Result<(), X>;
    /// The items.
    fn as_slice(&self) -> &[X];
    /// Removes item `i`, moving the last into its place.
    fn swap_remove(&mut self, i: usize) -> X;
    /// Keeps the items `f` says yes to.
    fn retain(&mut self, f: impl FnMut(&X) -> bool);
    /// Removes every item.
    fn clear(&mut self);
}

/// A bounded FIFO: what a connection needs of `heapless::Deque` and `VecDeque`.
pub trait Queue<X> {
    /// Appends `x` at the back, or gives it back when full.
    fn push_back(&mut self, x: X) -> Result<(), X>;
    /// Takes the front item.
    fn pop_front(&mut self) -> Option<X>;
}

impl<X, const N: usize> Table<X> for heapless::Vec<X, N> {
    fn push(&mut self, x: X) -> Result<(), X> {
        heapless::Vec::push(self, x)
    }
    fn as_slice(&self) -> &[X] {
        self
    }
    fn swap_remove(&mut self, i: usize) -> X {
        heapless::Vec::swap_remove(self, i)
    }
    fn retain(&mut self, f: impl FnMut(&X) -> bool) {
        heapless::Vec::retain(self, f)
    }
    fn clear(&mut self) {
        heapless::Vec::clear(self)
    }
}

impl<X, const N: usize> Queue<X> for heapless::Deque<X, N> {
    fn push_back(&mut self, x: X) -> Result<(), X> {
        heapless::Deque::push_back(self, x)
    }
    fn pop_front(&mut self) -> Option<X> {
        heapless::Deque::pop_front(self)
    }
}

#[cfg(feature = "alloc")]
impl<X> Table<X> for alloc::vec::Vec<X> {
    fn push(&mut self, x: X) -> Result<(), X> {
        alloc::vec::Vec::push(self, x);
        Ok(())
    }
    fn as_slice(&self) -> &[X] {
        self
    }
    fn swap_remove(&mut self, i: usize) -> X {
        alloc::vec::Vec::swap_remove(self, i)
    }
    fn retain(&mut self, f: impl FnMut(&X) -> bool) {
        alloc::vec::Vec::retain(self, f)
    }
    fn clear(&mut self) {
        alloc::vec::Vec::clear(self)
    }
}

#[cfg(feature = "alloc")]
impl<X> Queue<X> for alloc::collections::VecDeque<X> {
    fn push_back(&mut self, x: X) -> Result<(), X> {
        alloc::collections::VecDeque::push_back(self, x);
        Ok(())
    }
    fn pop_front(&mut self) -> Option<X> {
        alloc::collections::VecDeque::pop_front(self)
    }
}
