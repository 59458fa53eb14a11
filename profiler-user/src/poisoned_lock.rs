//! Taking a lock whose holder panicked. What zeek-probe's locks guard (symbols read, lines
//! resolved, native stacks counted) is kept consistent by each holder between its steps: a
//! panic on one thread must not take the other threads' reports down with it.
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The lock's guard, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
