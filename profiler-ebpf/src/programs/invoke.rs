//! Entry of `ScriptFunc::Invoke` and `BuiltinFunc::Invoke`: one count per call, keyed by the
//! callee's and the caller's name hashes.
//!
//! `Invoke` returns a `ValPtr` through a hidden pointer, so on x86-64 `this` is the second
//! argument register (RSI), `args` the third and the caller's `Frame*` the fourth (RCX);
//! the frame is null for calls from C++ (zeek-abi.md §1).

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use profiler_common::{
    CallKey, ProbeStat,
    maps::{CALLER_NATIVE, CALLER_UNRESOLVED},
};

use crate::{
    funcs::{caller_hash, remember_func, remember_hash},
    maps::{CALLS, bump, current_target, increment, increment_existing},
    target_memory::{hash_std_string, read},
};

#[uprobe]
pub fn func_invoke(ctx: ProbeContext) -> u32 {
    let _ = count_call(&ctx);
    0
}

#[inline(always)]
fn count_call(ctx: &ProbeContext) -> Option<()> {
    let (pid, layout) = current_target()?;
    let callee_func: u64 = ctx.arg(1)?;
    let parent_frame: u64 = ctx.arg(3)?;

    // The callee's name is read on every call: its object may be new at a reused address.
    let callee = hash_std_string(callee_func + layout.func_name as u64)?;
    remember_hash(pid, callee_func, callee);
    let (caller_func, mut caller) = if parent_frame == 0 {
        (0, CALLER_NATIVE)
    } else {
        match read::<u64>(parent_frame + layout.frame_function as u64) {
            Some(f) => (f, caller_hash(pid, layout, f)),
            None => (0, CALLER_UNRESOLVED),
        }
    };

    let mut key = CallKey { pid, _pad: 0, callee, caller };
    if increment_existing(&CALLS, &key) {
        return Some(());
    }

    // First call on this edge: only validated functions get names and counts.
    if !remember_func(layout, callee_func, callee) {
        return None;
    }
    if caller != CALLER_NATIVE && caller != CALLER_UNRESOLVED && !remember_func(layout, caller_func, caller) {
        caller = CALLER_UNRESOLVED;
    }
    if caller == CALLER_UNRESOLVED {
        bump(ProbeStat::CallerUnresolved);
    }
    key.caller = caller;
    increment(&CALLS, &key);
    Some(())
}
