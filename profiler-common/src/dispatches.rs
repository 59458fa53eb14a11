//! Long event dispatches. The sampler tells one dispatch from the next by the event manager's
//! dispatch counter (`EventMgr::num_events_dispatched`, 7.2+), which Zeek increments after each
//! event it dispatches: consecutive main-thread samples that see the same counter value with an
//! event being dispatched fall into the same dispatch. Its duration is the time from its first
//! sample to its last plus one sample period (each sample stands for one period): within one
//! period of how long it ran. The time between samples, not their number, because a thread that
//! moves between CPUs meets their timers out of phase, and a stalled virtual CPU misses ticks.
//! The sampler keeps the dispatch in progress per process and, once it is over, counts it in a
//! histogram and lists it if it lasted `MIN_LONG_DISPATCH_PERIODS` periods or more. User space
//! is not woken: it reads the maps when it likes.

/// Shorter dispatches are not recorded: a sampler cannot time them.
pub const MIN_LONG_DISPATCH_PERIODS: u32 = 2;

/// The histogram's upper bounds in sample periods (2 ms … 1.024 s at 1000 Hz); a bucket's
/// index is its position here, and `DISPATCH_BUCKET_BOUNDS.len()` is the +Inf bucket.
pub const DISPATCH_BUCKET_BOUNDS: [u32; 10] = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Distinct stacks tracked per dispatch to find the one sampled most (space-saving: a new
/// stack takes over the least sampled slot).
pub const DISPATCH_STACK_SLOTS: usize = 4;

/// The dispatch in progress on one process's main thread: value of `DISPATCH_STATE`, keyed by
/// PID. Only that thread's samples touch it, and a thread is sampled on one CPU at a time.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchState {
    /// The dispatch counter's value while it runs.
    pub seq: u64,
    /// Name hash of the event.
    pub event: u64,
    /// `bpf_ktime_get_ns` of its first and latest sample.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Samples in it so far (0: no dispatch in progress).
    pub samples: u32,
    pub _pad: u32,
    /// Stack hashes sampled in it, and how often each.
    pub stacks: [u64; DISPATCH_STACK_SLOTS],
    pub stack_samples: [u32; DISPATCH_STACK_SLOTS],
}

impl DispatchState {
    /// No dispatch in progress (a `const` for a static the BPF side inserts from).
    pub const ZEROED: Self = Self {
        seq: 0,
        event: 0,
        first_ns: 0,
        last_ns: 0,
        samples: 0,
        _pad: 0,
        stacks: [0; DISPATCH_STACK_SLOTS],
        stack_samples: [0; DISPATCH_STACK_SLOTS],
    };
}

/// One finished long dispatch: key of `LONG_DISPATCHES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DispatchKey {
    pub pid: u32,
    pub _pad: u32,
    /// The dispatch counter's value while it ran: which dispatch of the process it was.
    pub seq: u64,
}

/// What a finished long dispatch was: value of `LONG_DISPATCHES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LongDispatch {
    /// Name hash of the event.
    pub event: u64,
    /// Hash of the stack sampled most in it (key of `STACKS`).
    pub top_stack: u64,
    /// Its duration: first to last sample plus one period.
    pub nanos: u64,
    /// Samples in it.
    pub samples: u32,
    /// Samples of `top_stack` in it.
    pub top_stack_samples: u32,
}

/// Finished dispatches of one event of one process in one histogram bucket: key of
/// `DISPATCH_BUCKETS` (value: u64 count).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DispatchBucketKey {
    pub pid: u32,
    /// An index into `DISPATCH_BUCKET_BOUNDS`, or its length for +Inf.
    pub bucket: u32,
    pub event: u64,
}

/// One event of one process: key of `DISPATCH_NANOS` (value: u64, the durations of all its
/// recorded dispatches added up, the histogram's sum).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DispatchEventKey {
    pub pid: u32,
    pub _pad: u32,
    pub event: u64,
}

/// The histogram bucket of a dispatch of `nanos` at a sample period of `period_ns`: the first
/// whose bound holds it.
#[inline(always)]
pub fn dispatch_bucket(nanos: u64, period_ns: u64) -> u32 {
    let mut bucket = 0;
    while bucket < DISPATCH_BUCKET_BOUNDS.len() && nanos > u64::from(DISPATCH_BUCKET_BOUNDS[bucket]) * period_ns {
        bucket += 1;
    }
    bucket as u32
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]` plain-old-data with explicit padding.
    unsafe impl aya::Pod for super::DispatchState {}
    unsafe impl aya::Pod for super::DispatchKey {}
    unsafe impl aya::Pod for super::LongDispatch {}
    unsafe impl aya::Pod for super::DispatchBucketKey {}
    unsafe impl aya::Pod for super::DispatchEventKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispatch_falls_in_the_first_bucket_that_holds_it() {
        let ms = 1_000_000;
        assert_eq!(dispatch_bucket(2 * ms, ms), 0);
        assert_eq!(dispatch_bucket(2 * ms + 1, ms), 1);
        assert_eq!(dispatch_bucket(4 * ms, ms), 1);
        assert_eq!(dispatch_bucket(1024 * ms, ms), 9);
        assert_eq!(dispatch_bucket(1024 * ms + 1, ms), 10, "+Inf");
        assert_eq!(dispatch_bucket(30 * ms, 10 * ms), 1, "bounds follow the period");
    }
}
