//! A thread's CPU priority (Linux: each thread has a nice value of its own), lowered for work
//! that must give way to what matters more: the profiled process, or the step of our own
//! start-up it waits for.

/// Lowers the calling thread's priority to `nice` (never raises it); the threads it starts
/// inherit it. Its id and its nice value before, if it was lowered.
pub fn lower_this_thread(nice: libc::c_int) -> Option<(i32, i32)> {
    // SAFETY: gettid, getpriority and setpriority on this thread only.
    unsafe {
        let tid = libc::gettid();
        *libc::__errno_location() = 0;
        let before = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if before == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        (libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice.max(before)) == 0).then_some((tid, before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_lowered_never_raised() {
        std::thread::spawn(|| {
            let (tid, before) = lower_this_thread(7).expect("lowered");
            // SAFETY: getpriority on this thread.
            let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
            assert_eq!(now, 7.max(before));
            assert!(lower_this_thread(3).is_some());
            // SAFETY: as above.
            assert_eq!(
                unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) },
                7.max(before),
                "not raised"
            );
        })
        .join()
        .unwrap();
    }
}
