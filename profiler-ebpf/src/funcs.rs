//! Knowing Zeek function objects: validating them, recording their names (once per name
//! hash) and caching the name hash per live object.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_probe_read_user_str_bytes};
use profiler_common::{
    FuncInfo, FuncPtrKey, ProbeStat, TargetLayout,
    maps::{CALLER_UNRESOLVED, FLAVOR_EVENT, FLAVOR_FUNCTION, FLAVOR_HOOK, FUNC_KIND_BIF, FUNC_KIND_SCRIPT},
};

use crate::{
    maps::{FUNC_HASHES, FUNC_SCRATCH, FUNCS, bump},
    target_memory::{StdString, copy_string_prefix, hash_std_string, read, read_std_string},
};

const FUNC_KIND_MAX: u8 = FUNC_KIND_BIF;
const FUNC_FLAVOR_MAX: u8 = FLAVOR_HOOK;
/// Zeek source lines fit easily; larger values are misreads.
const MAX_SANE_LINE: i32 = 10_000_000;

/// Notes `func`'s name hash for when it calls others; writes only when it changed.
///
/// A function's own `Invoke` entry always comes before its frame is anyone's parent, and its
/// address cannot be reused while it runs, so an entry is never stale for a live caller
/// (lambdas reuse freed addresses all the time: this is why it is refreshed on every entry).
#[inline(always)]
pub fn remember_hash(pid: u32, func: u64, hash: u64) {
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
pub fn caller_hash(pid: u32, layout: &TargetLayout, func: u64) -> u64 {
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

/// Records the name, kind, flavor and source location of the function at `func` under
/// `hash` unless known. Returns false (and counts it) when the object does not look like a
/// Zeek function.
#[inline(always)]
pub fn remember_func(layout: &TargetLayout, func: u64, hash: u64) -> bool {
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
    let info = record_name(&name, kind, flavor)?;
    // Where it is defined: BIFs and some internal functions have no location.
    if let Some(location) = definition_location(layout, func, kind, flavor) {
        if let (Some(file), Some(line)) = (read::<u64>(location), read::<i32>(location + 8)) {
            // SAFETY: `info` is our per-CPU scratch slot; the copy is bounded by its size.
            let copied = unsafe { bpf_probe_read_user_str_bytes(file as *const u8, &mut info.file) };
            if copied.is_err() {
                info.file[0] = 0;
            }
            info.line = if (0..MAX_SANE_LINE).contains(&line) { line as u32 } else { 0 };
        }
    }
    // A concurrent insert of the same hash by another CPU is as good as ours.
    let _ = FUNCS.insert(&hash, info, BPF_NOEXIST as u64);
    Some(())
}

/// The `Location*` of a function's definition, as Zeek's own profiler reports it: for script
/// functions their first body's (a lambda's object carries the line of its `{`, a `when`
/// closure's none), for events and hooks, whose bodies are spread over many scripts, and for
/// BIFs, the object's own.
#[inline(always)]
fn definition_location(layout: &TargetLayout, func: u64, kind: u8, flavor: u8) -> Option<u64> {
    let own = || read::<u64>(func + layout.obj_location as u64).filter(|l| *l != 0);
    if kind != FUNC_KIND_SCRIPT || flavor != FLAVOR_FUNCTION {
        return own();
    }
    let bodies = func + layout.func_bodies as u64;
    let (first, end): (u64, u64) = (read(bodies)?, read(bodies + 8)?);
    let stmts = (first != 0 && first < end).then(|| read::<u64>(first)).flatten().filter(|s| *s != 0);
    stmts.and_then(|stmts| read::<u64>(stmts + layout.obj_location as u64)).filter(|l| *l != 0).or_else(own)
}

/// Fills the per-CPU scratch `FuncInfo` with a name (no location yet) and returns it.
#[inline(always)]
fn record_name(name: &StdString, kind: u8, flavor: u8) -> Option<&'static mut FuncInfo> {
    let info = FUNC_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot, exclusively ours while this program runs.
    let info = unsafe { &mut *info };
    info.name_len = name.len as u32;
    info.kind = kind;
    info.flavor = flavor;
    info.line = 0;
    info.file[0] = 0;
    copy_string_prefix(name, info.name.as_mut_ptr())?;
    Some(info)
}

/// Records an event name read from an `EventHandler` (no function object at hand).
#[inline(always)]
pub fn remember_event_name(name_addr: u64, hash: u64) {
    // SAFETY: read-only lookup.
    if unsafe { FUNCS.get(&hash) }.is_some() {
        return;
    }
    if let Some(name) = read_std_string(name_addr) {
        if let Some(info) = record_name(&name, FUNC_KIND_SCRIPT, FLAVOR_EVENT) {
            let _ = FUNCS.insert(&hash, info, BPF_NOEXIST as u64);
        }
    }
}
