//! Entry of `ScriptFunc::Invoke` and `BuiltinFunc::Invoke`: one count per call, keyed by the
//! callee's and the caller's name hashes.
//!
//! `Invoke` returns a `ValPtr` through a hidden pointer, so on x86-64 `this` is the second
//! argument register (RSI), `args` the third and the caller's `Frame*` the fourth (RCX);
//! the frame is null for calls from C++ (zeek-abi.md §1).

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_get_current_pid_tgid, macros::uprobe, programs::ProbeContext};
use profiler_common::{
    CallKey, FuncPtrKey, ProbeStat, TargetLayout,
    maps::{CALLER_NATIVE, CALLER_UNRESOLVED},
};

use crate::{
    maps::{CALLS, FUNC_HASHES, FUNC_SCRATCH, FUNCS, TARGETS, bump, increment, increment_existing},
    target_memory::{copy_string_prefix, hash_std_string, read, read_std_string},
};

const FUNC_KIND_MAX: u8 = 1;
const FUNC_FLAVOR_MAX: u8 = 2;

#[uprobe]
pub fn func_invoke(ctx: ProbeContext) -> u32 {
    let _ = count_call(&ctx);
    0
}

#[inline(always)]
fn count_call(ctx: &ProbeContext) -> Option<()> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: read-only use of the map value while this program runs.
    let layout = unsafe { TARGETS.get(&pid) }?;
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

/// Notes `func`'s name hash for when it calls others; writes only when it changed.
#[inline(always)]
fn remember_hash(pid: u32, func: u64, hash: u64) {
    let key = FuncPtrKey { pid, _pad: 0, func };
    match FUNC_HASHES.get_ptr_mut(&key) {
        // SAFETY: the pointer comes from the map; a plain store of our own value.
        Some(known) => unsafe {
            if *known != hash {
                *known = hash;
            }
        },
        None => {
            // LRU: a full cache evicts; losing an entry only costs a name read later.
            let _ = FUNC_HASHES.insert(&key, &hash, 0);
        }
    }
}

/// The calling function's name hash: cached from its own entry, else read (a caller that was
/// already running when the probes were attached).
#[inline(always)]
fn caller_hash(pid: u32, layout: &TargetLayout, func: u64) -> u64 {
    let key = FuncPtrKey { pid, _pad: 0, func };
    // SAFETY: read-only lookup.
    if let Some(hash) = unsafe { FUNC_HASHES.get(&key) } {
        return *hash;
    }
    match hash_std_string(func + layout.func_name as u64) {
        Some(hash) => {
            let _ = FUNC_HASHES.insert(&key, &hash, 0);
            hash
        }
        None => CALLER_UNRESOLVED,
    }
}

/// Records the name, kind and flavor of the function at `func` under `hash` unless known.
/// Returns false (and counts it) when the object does not look like a Zeek function.
#[inline(always)]
fn remember_func(layout: &TargetLayout, func: u64, hash: u64) -> bool {
    // SAFETY: read-only lookup.
    if unsafe { FUNCS.get(&hash) }.is_some() {
        return true;
    }
    let valid = describe_func(layout, func, hash).is_some();
    if !valid {
        bump(ProbeStat::InvalidFunc);
    }
    valid
}

#[inline(always)]
fn describe_func(layout: &TargetLayout, func: u64, hash: u64) -> Option<()> {
    let vptr: u64 = read(func)?;
    let known_vtables = layout.script_func_vptr != 0 || layout.builtin_func_vptr != 0;
    if known_vtables && vptr != layout.script_func_vptr && vptr != layout.builtin_func_vptr {
        return None;
    }
    let kind: u8 = read(func + layout.func_kind as u64)?;
    let func_type: u64 = read(func + layout.func_type as u64)?;
    let flavor: u8 = read(func_type + layout.func_type_flavor as u64)?;
    if kind > FUNC_KIND_MAX || flavor > FUNC_FLAVOR_MAX {
        return None;
    }
    let name = read_std_string(func + layout.func_name as u64)?;

    let info = FUNC_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot, exclusively ours while this program runs.
    let info = unsafe { &mut *info };
    info.name_len = name.len as u32;
    info.kind = kind;
    info.flavor = flavor;
    copy_string_prefix(&name, info.name.as_mut_ptr())?;
    // A concurrent insert of the same hash by another CPU is as good as ours.
    let _ = FUNCS.insert(&hash, info, BPF_NOEXIST as u64);
    Some(())
}
