//! Long event dispatches, told apart by the event manager's dispatch counter and measured in
//! main-thread samples (`profiler_common::dispatches`). Bounded work per sample: two reads of
//! the event manager, the clock, one state lookup, `DISPATCH_STACK_SLOTS` comparisons; a finished long
//! dispatch costs three map updates, a new dispatch the reads that name its event.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns};
use profiler_common::{
    DispatchBucketKey, DispatchEventKey, DispatchKey, DispatchState, LongDispatch, ProbeStat, TargetLayout,
    dispatches::{DISPATCH_STACK_SLOTS, MIN_LONG_DISPATCH_PERIODS, dispatch_bucket},
};

use crate::{
    funcs::remember_event_name,
    maps::{DISPATCH_BUCKETS, DISPATCH_NANOS, DISPATCH_STATE, LONG_DISPATCHES, add, bump, increment},
    target_memory::{hash_std_string, read, read_global},
};

/// The sampler's period, ns (`names::SAMPLE_PERIOD_NS`): set by user space when it loads the
/// object for sampling, 0 otherwise.
#[unsafe(no_mangle)]
static SAMPLE_PERIOD_NS: u64 = 0;

/// A new process's state, inserted from here: one made on the stack was zeroed by a `memset`
/// call, a byte loop that the verifier walked once per byte and per path (~3,000 of
/// `sample_finish`'s instructions verified).
static NO_DISPATCH: DispatchState = DispatchState::ZEROED;

/// Notes one sample of `pid`'s main thread, whose stack hashed to `stack`: it is in the
/// dispatch in progress, or starts a new one (ending the one before), or is outside any.
#[inline(always)]
pub fn track_dispatch(pid: u32, layout: &TargetLayout, stack: u64) {
    // SAFETY: a plain read of a constant the loader set; volatile, or it would be folded.
    let period_ns = unsafe { core::ptr::read_volatile(&raw const SAMPLE_PERIOD_NS) };
    if period_ns == 0 || layout.event_mgr == 0 || layout.event_mgr_current == 0 || layout.event_mgr_dispatched == 0 {
        return;
    }
    let running = match running_dispatch(layout) {
        Dispatching::Running { seq, event } => Some((seq, event)),
        Dispatching::Idle => None,
        // The event manager could not be read (the kernel refuses user reads in some windows,
        // e.g. while the thread's address space is being switched): this sample says nothing
        // of the dispatch, which must not end for it. Ending it would start it again at the
        // next sample, and list its rest as the whole.
        Dispatching::Unreadable => return,
    };
    let Some(state) = state_of(pid) else { return };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some((seq, _)) = running
        && state.samples > 0
        && state.seq == seq
    {
        state.last_ns = now;
        note_stack(state, stack);
        return;
    }
    if state.samples > 0 {
        finish_dispatch(pid, state, period_ns);
    }
    state.samples = 0;
    if let Some((seq, event)) = running {
        state.seq = seq;
        state.event = event_hash(layout, event);
        state.first_ns = now;
        state.last_ns = now;
        // A slot counts only with samples (`note_stack`): clearing its count clears it. One
        // store each: the state cleared whole was a `memset` call, a byte loop that the
        // verifier walked once per byte (~80 of `sample_finish`'s instructions verified).
        for count in state.stack_samples.iter_mut() {
            // SAFETY: a valid, aligned place of the map value `state_of` gave.
            unsafe { core::ptr::write_volatile(count, 0) };
        }
        note_stack(state, stack);
    }
}

/// What the event manager is doing, as one sample reads it.
enum Dispatching {
    /// Dispatching the event `event` (an `Event*`); the dispatch counter reads `seq`. Zeek
    /// increments the counter after each dispatched event, so it holds still during one.
    Running {
        seq: u64,
        event: u64,
    },
    /// No event is being dispatched.
    Idle,
    Unreadable,
}

#[inline(always)]
fn running_dispatch(layout: &TargetLayout) -> Dispatching {
    let Some(event) = read_global::<u64>(layout.event_mgr + layout.event_mgr_current as u64) else {
        return Dispatching::Unreadable;
    };
    if event == 0 {
        return Dispatching::Idle;
    }
    match read_global::<u64>(layout.event_mgr + layout.event_mgr_dispatched as u64) {
        Some(seq) => Dispatching::Running { seq, event },
        None => Dispatching::Unreadable,
    }
}

/// The name hash of the event `event` dispatches (0 when unreadable), its name recorded.
#[inline(always)]
fn event_hash(layout: &TargetLayout, event: u64) -> u64 {
    let Some(handler) = read::<u64>(event + layout.event_handler as u64).filter(|h| *h != 0) else { return 0 };
    let name = handler + layout.event_handler_name as u64;
    match hash_std_string(name) {
        Some(hash) => {
            remember_event_name(name, hash);
            hash
        }
        None => 0,
    }
}

#[inline(always)]
fn state_of(pid: u32) -> Option<&'static mut DispatchState> {
    if DISPATCH_STATE.get_ptr_mut(&pid).is_none() {
        let _ = DISPATCH_STATE.insert(&pid, &NO_DISPATCH, BPF_NOEXIST as u64);
    }
    // SAFETY: only this process's main thread updates its entry, and a thread is sampled on
    // one CPU at a time: nothing else writes it while we do.
    DISPATCH_STATE.get_ptr_mut(&pid).map(|state| unsafe { &mut *state })
}

/// One more sample in the dispatch, on `stack`. A stack not in a slot takes over the least
/// sampled one, with that one's count plus one (space-saving: the most sampled stack is kept
/// whenever it has more samples than the other slots together).
#[inline(always)]
fn note_stack(state: &mut DispatchState, stack: u64) {
    state.samples = state.samples.saturating_add(1);
    let mut least = 0;
    for slot in 0..DISPATCH_STACK_SLOTS {
        if state.stacks[slot] == stack && state.stack_samples[slot] > 0 {
            state.stack_samples[slot] += 1;
            return;
        }
        if state.stack_samples[slot] < state.stack_samples[least] {
            least = slot;
        }
    }
    if let (Some(s), Some(n)) = (state.stacks.get_mut(least), state.stack_samples.get_mut(least)) {
        *s = stack;
        *n += 1;
    }
}

/// Counts the dispatch in the histogram and lists it, if it was long: first to last sample
/// plus the period its last sample stands for.
#[inline(always)]
fn finish_dispatch(pid: u32, state: &DispatchState, period_ns: u64) {
    let nanos = state.last_ns.saturating_sub(state.first_ns) + period_ns;
    if nanos < u64::from(MIN_LONG_DISPATCH_PERIODS) * period_ns {
        return;
    }
    let bucket = dispatch_bucket(nanos, period_ns);
    increment(&DISPATCH_BUCKETS, &DispatchBucketKey { pid, bucket, event: state.event });
    add(&DISPATCH_NANOS, &DispatchEventKey { pid, _pad: 0, event: state.event }, nanos);
    let mut top = 0;
    for slot in 1..DISPATCH_STACK_SLOTS {
        if state.stack_samples[slot] > state.stack_samples[top] {
            top = slot;
        }
    }
    let (Some(top_stack), Some(top_stack_samples)) = (state.stacks.get(top), state.stack_samples.get(top)) else {
        return;
    };
    let dispatch = LongDispatch {
        event: state.event,
        top_stack: *top_stack,
        nanos,
        samples: state.samples,
        top_stack_samples: *top_stack_samples,
    };
    if LONG_DISPATCHES.insert(&DispatchKey { pid, _pad: 0, seq: state.seq }, &dispatch, 0).is_err() {
        bump(ProbeStat::MapFull);
    }
}
