//! Statically allocated buffers handed out exactly once as `&'static mut`.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A `static` value that can be taken mutably once.
pub struct Once<T> {
    value: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the value is reachable only through `take`, which hands out at most one reference.
unsafe impl<T: Send> Sync for Once<T> {}

impl<T> Once<T> {
    /// Wraps `value` (use in a `static`).
    pub const fn new(value: T) -> Self {
        Self {
            value: UnsafeCell::new(value),
            taken: AtomicBool::new(false),
        }
    }

    /// The value, the first time; `None` after that.
    #[allow(clippy::mut_from_ref)] // the atomic flag makes the one `&mut` unique
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `taken` was false, so no other reference to the value exists or ever will.
        Some(unsafe { &mut *self.value.get() })
    }
}
