//! CPU sampling: a `perf_event` program on the software CPU clock of every CPU. For a target's
//! main thread it reads Zeek's script call stack (`zeek::detail::call_stack`); with no script
//! running it names the event being dispatched (7.2+) or the native instruction pointer; other
//! threads are named by their thread name. A sample that interrupted the kernel also takes the
//! kernel's own stack (its unwinder, through `bpf_get_stack`), under whichever of those it is.
//! Main-thread samples also measure long event dispatches (`dispatches`); every sample sends
//! its user registers and stack for unwinding (`native_stacks`). Counts accumulate per
//! distinct stack in maps that user space reads when it likes: nothing wakes it per sample.
//! The cost follows the sample rate, not Zeek's call rate.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_comm, bpf_get_stack},
    },
    macros::{map, perf_event},
    maps::{PerCpuArray, ProgramArray},
    programs::PerfEventContext,
};
use profiler_common::{
    ProbeStat, SampleKey, StackKind, StackTrace, TargetLayout,
    maps::{CALLER_UNRESOLVED, FLAVOR_EVENT, FUNC_KIND_BIF},
    names::{SAMPLE_FINISH_SLOT, SAMPLE_STEP_SLOT},
    samples::{MAX_KERNEL_DEPTH, MAX_STACK_DEPTH},
};

use crate::{
    dispatches::track_dispatch,
    funcs::{remember_event_name, remember_func},
    maps::{SAMPLES, STACK_SCRATCH, STACKS, bump, current_target, increment, increment_existing},
    native_stacks::copy_native_stack,
    target_memory::{hash_std_string, read, read_global},
};

/// More entries than this is not a call stack but a misread vector.
const MAX_SANE_ENTRIES: u64 = 1 << 20;
/// `call_stack` entries read per program run. The verifier walks every iteration, so the
/// frames are read in steps chained by tail calls (`bpf_loop` needs kernel 5.17). Three keep
/// the verifier's work (what `record` makes Zeek wait for) small (this program: 6,400
/// instructions verified, 8,200 for four), and a full stack's chain (1 + ⌈MAX_STACK_DEPTH / 3⌉
/// + 1 = 24 programs) within the kernel's 33 tail calls.
const FRAMES_PER_STEP: u32 = 3;
const _: () = assert!(1 + MAX_STACK_DEPTH.div_ceil(FRAMES_PER_STEP as usize) < 33);

/// Where the frame walk of the current sample stands, between tail calls.
#[derive(Clone, Copy)]
pub struct Cursor {
    begin: u64,
    next: u64,
    entries: u64,
    /// Bytes per entry of the walked vector, and where in an entry its pointer is.
    entry_size: u64,
    pointer_offset: u64,
    /// 1 when the pointer is a `Frame*` (its function at `frame_function`), 0 a `Func*`.
    via_frame: u64,
    previous_frame: u64,
    /// Name hash of a BIF running on top of the walked script frames (0: none).
    bif_leaf: u64,
    /// The outermost entry's `Frame*` where it may be a leftover (8.1+, a stack of at most
    /// `MAX_STACK_DEPTH` entries), else 0; `bottom_reused` 1 once a live call further up is
    /// seen in the same frame (the leftover's freed memory, reused: it would show that call
    /// twice); `bottom_kept` 1 when the first frame of the trace is that entry's, which is then
    /// marked to be left out (`StackTrace::leftover_outermost`).
    bottom_frame: u64,
    bottom_reused: u64,
    bottom_kept: u64,
}

#[map]
static SAMPLE_CURSOR: PerCpuArray<Cursor> = PerCpuArray::with_max_entries(1, 0);

/// Holds `sample_frames` at `SAMPLE_STEP_SLOT` (set by user space), the step program tail-called
/// per frame batch, and `sample_finish` at `SAMPLE_FINISH_SLOT`, which every sample ends in (so
/// the verifier checks the counting and the stack copy once, not at every place a sample can
/// end). Its name is `names::SAMPLE_STEPS`.
#[map]
static SAMPLE_STEPS: ProgramArray = ProgramArray::with_max_entries(2, 0);

#[perf_event]
pub fn cpu_sample(ctx: PerfEventContext) -> u32 {
    let _ = start_sample(&ctx);
    0
}

#[perf_event]
pub fn sample_frames(ctx: PerfEventContext) -> u32 {
    let _ = continue_sample(&ctx);
    0
}

#[perf_event]
pub fn sample_finish(_ctx: PerfEventContext) -> u32 {
    let _ = finish_sample();
    0
}

/// Sets a field of the per-CPU scratch to `value` with a store of its own: fields set to zero
/// side by side are merged by LLVM into a `memset` call, a byte loop that the verifier walks
/// once per byte and per path (~900 of `cpu_sample`'s instructions verified).
#[inline(always)]
fn store_alone<T>(field: &mut T, value: T) {
    // SAFETY: a valid, aligned place of the scratch, exclusively ours (`scratch`).
    unsafe { core::ptr::write_volatile(field, value) };
}

/// Clears the trace's thread name as two words: cleared as an array, it was a `memset` of a
/// temporary copied in.
#[inline(always)]
fn clear_comm(trace: &mut StackTrace) {
    const _: () = assert!(core::mem::offset_of!(StackTrace, comm) % 8 == 0 && StackTrace::zeroed().comm.len() == 16);
    let words = (&raw mut trace.comm).cast::<u64>();
    // SAFETY: `comm` is 16 bytes at an 8-aligned offset of the (8-aligned) trace: two words.
    unsafe {
        words.write_volatile(0);
        words.add(1).write_volatile(0);
    }
}

/// The layout of the sampled process, if it is a target whose stacks are wanted.
#[inline(always)]
fn target() -> Option<(u32, &'static TargetLayout)> {
    current_target().filter(|(_, layout)| layout.call_stack != 0)
}

#[inline(always)]
fn scratch() -> Option<(&'static mut StackTrace, &'static mut Cursor)> {
    let trace = STACK_SCRATCH.get_ptr_mut(0)?;
    let cursor = SAMPLE_CURSOR.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slots, exclusively ours while this sample is taken (BPF
    // programs do not nest on one CPU, and a tail call keeps the CPU).
    Some(unsafe { (&mut *trace, &mut *cursor) })
}

#[inline(always)]
fn start_sample(ctx: &PerfEventContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (pid, layout) = target()?;
    let (trace, cursor) = scratch()?;
    store_alone(&mut trace.kind, StackKind::Script as u32);
    store_alone(&mut trace.depth, 0);
    store_alone(&mut trace.leftover_outermost, 0);
    store_alone(&mut trace.leaf, 0);
    clear_comm(trace);
    trace.kernel_depth = kernel_stack(ctx, &mut trace.kernel_frames);

    if pid_tgid as u32 != pid {
        trace.kind = StackKind::Thread as u32;
        // Straight into the trace: aya's wrapper zeroes a buffer of its own first (a `memset`).
        // SAFETY: `comm` is 16 bytes, as passed; the helper fills it, zero-padded.
        if unsafe { bpf_get_current_comm(trace.comm.as_mut_ptr().cast(), 16) } != 0 {
            return None;
        }
        // Its function's self time, whether or not its stack is copied and unwinds.
        trace.leaf = user_ip(ctx);
        return to_finish(ctx);
    }
    let entries = plan_walk(layout, cursor);
    if entries == 0 {
        name_outside_scripts(ctx, layout, trace);
        return to_finish(ctx);
    }
    // SAFETY: a tail call either does not return or fails; on failure we count what we have.
    unsafe { SAMPLE_STEPS.tail_call(ctx, SAMPLE_STEP_SLOT) };
    to_finish(ctx)
}

/// Ends the sample in `sample_finish`. Its chain is at most ⌈MAX_STACK_DEPTH /
/// FRAMES_PER_STEP⌉ + 1 tail calls, below the kernel's limit of 33 (asserted above): a failure
/// means the slot is empty, and the sample is counted as lost.
#[inline(always)]
fn to_finish(ctx: &PerfEventContext) -> Option<()> {
    // SAFETY: as above.
    unsafe { SAMPLE_STEPS.tail_call(ctx, SAMPLE_FINISH_SLOT) };
    bump(ProbeStat::SampleLost);
    None
}

/// The end of every sample: counts the assembled stack and sends its native stack.
#[inline(always)]
fn finish_sample() -> Option<()> {
    let (pid, layout) = target()?;
    let trace = STACK_SCRATCH.get_ptr(0)?;
    // SAFETY: the per-CPU slot the sample was assembled in, by the programs that tail-called us.
    let trace = unsafe { &*trace };
    let stack = finish(pid, layout, trace);
    copy_native_stack(pid, layout, stack);
    Some(())
}

/// The bounds of the global `std::vector` at `address` of `entry_size`-byte entries; `None`
/// when implausible.
#[inline(always)]
fn vector_entries(address: u64, entry_size: u64) -> Option<(u64, u64)> {
    let [begin, end] = read_global::<[u64; 2]>(address)?;
    if entry_size == 0 || end < begin {
        return None;
    }
    let entries = (end - begin) / entry_size;
    (entries <= MAX_SANE_ENTRIES).then_some((begin, entries))
}

/// Chooses what to walk and sets the cursor; returns how many entries there are. Deeper
/// stacks keep their innermost `MAX_STACK_DEPTH` entries.
///
/// An exception thrown through a BIF leaves an entry at the bottom of `call_stack` that is
/// never popped. Before 8.0, Zeek also keeps `g_frame_stack`, the script frames alone, which
/// stays balanced: it is walked instead, plus the BIF running on top of it, if any. From 8.0
/// on, `call_stack` is walked with its leftovers recognised and skipped.
#[inline(always)]
fn plan_walk(layout: &TargetLayout, cursor: &mut Cursor) -> u64 {
    let call_info = layout.call_info_size as u64;
    let Some((call_stack, calls)) = vector_entries(layout.call_stack, call_info) else { return 0 };
    let (begin, entries, entry_size, pointer_offset, via_frame, bif_leaf) = if layout.frame_stack != 0 {
        let Some((frames, entries)) = vector_entries(layout.frame_stack, 8) else { return 0 };
        let bif_leaf = if calls > 0 { bif_hash(layout, call_stack + (calls - 1) * call_info) } else { 0 };
        (frames, entries, 8, 0, 1, bif_leaf)
    } else {
        (call_stack, calls, call_info, 8, u64::from(layout.call_info_holds_frame), 0)
    };
    let first = entries.saturating_sub(MAX_STACK_DEPTH as u64);
    cursor.begin = begin;
    cursor.next = first;
    cursor.entries = entries;
    cursor.entry_size = entry_size;
    cursor.pointer_offset = pointer_offset;
    cursor.via_frame = via_frame;
    cursor.bif_leaf = bif_leaf;
    store_alone(&mut cursor.previous_frame, 0);
    store_alone(&mut cursor.bottom_frame, 0);
    store_alone(&mut cursor.bottom_reused, 0);
    store_alone(&mut cursor.bottom_kept, 0);
    if first == 0 && layout.frame_stack == 0 {
        let stale = if layout.call_info_holds_frame != 0 {
            match live_bottom_frame(layout, cursor) {
                // Whether a live call reuses it is seen as the frames are walked.
                Some(frame) => {
                    cursor.bottom_frame = frame;
                    false
                }
                None => true,
            }
        } else {
            layout.event_mgr_current != 0 && bottom_event_not_dispatched(layout, cursor)
        };
        cursor.next = u64::from(stale).min(entries);
    }
    entries
}

/// The name hash of the BIF of a `CallInfo` holding a `Func*` (before 8.1), 0 if it is not a
/// BIF or cannot be read.
#[inline(always)]
fn bif_hash(layout: &TargetLayout, entry: u64) -> u64 {
    let Some(func) = read::<u64>(entry + 8) else { return 0 };
    if read::<u8>(func + layout.func_kind as u64) != Some(FUNC_KIND_BIF) {
        return 0;
    }
    match hash_std_string(func + layout.func_name as u64) {
        Some(hash) if remember_func(layout, func, hash) => hash,
        _ => 0,
    }
}

/// 7.2 and 8.0: an event at the bottom must be the one being dispatched, and an event never
/// calls itself: otherwise it is a leftover.
#[inline(always)]
fn bottom_event_not_dispatched(layout: &TargetLayout, cursor: &Cursor) -> bool {
    let Some(func) = read::<u64>(cursor.begin + 8) else { return false };
    let flavor =
        read::<u64>(func + layout.func_type as u64).and_then(|t| read::<u8>(t + layout.func_type_flavor as u64));
    if flavor != Some(FLAVOR_EVENT) {
        return false;
    }
    if cursor.entries > 1 && read::<u64>(cursor.begin + layout.call_info_size as u64 + 8) == Some(func) {
        return true;
    }
    let current = read_global::<u64>(layout.event_mgr + layout.event_mgr_current as u64).unwrap_or(0);
    if current == 0 {
        return true;
    }
    let dispatched = read::<u64>(current + layout.event_handler as u64)
        .and_then(|handler| hash_std_string(handler + layout.event_handler_name as u64));
    dispatched.is_some() && dispatched != hash_std_string(func + layout.func_name as u64)
}

/// The bottom entry's `Frame*` (0 when it cannot be read: not judged), `None` when it is a
/// leftover of an exception thrown through a BIF, which stays at the bottom of `call_stack`,
/// whose `Frame` is freed (no Frame vtable any more). A leftover whose memory a live call further up reuses is recognised during the
/// walk (`entry_function`). Not caught: the instants in which its memory holds a frame being
/// set up for a call not pushed yet.
#[inline(always)]
fn live_bottom_frame(layout: &TargetLayout, cursor: &Cursor) -> Option<u64> {
    let Some(frame) = read::<u64>(cursor.begin + 8) else { return Some(0) };
    if layout.frame_vptr != 0 && read::<u64>(frame) != Some(layout.frame_vptr) {
        return None;
    }
    Some(frame)
}

/// One step of the frame walk: up to `FRAMES_PER_STEP` entries, outermost first, then the
/// next step or the end. At this point in `Invoke` the callee is pushed already.
#[inline(always)]
fn continue_sample(ctx: &PerfEventContext) -> Option<()> {
    let (_, layout) = target()?;
    let (trace, cursor) = scratch()?;
    for _ in 0..FRAMES_PER_STEP {
        if cursor.next >= cursor.entries {
            break;
        }
        let entry = cursor.begin + cursor.next * cursor.entry_size;
        cursor.next += 1;
        let Some(func) = entry_function(layout, cursor, entry) else { continue };
        let hash = match hash_std_string(func + layout.func_name as u64) {
            Some(h) if remember_func(layout, func, h) => h,
            _ => CALLER_UNRESOLVED,
        };
        let slot = trace.depth as usize;
        if slot < MAX_STACK_DEPTH {
            trace.frames[slot] = hash;
            trace.depth += 1;
            if cursor.next == 1 {
                cursor.bottom_kept = 1;
            }
        }
    }
    if cursor.next < cursor.entries {
        // SAFETY: as above; a failed tail call (limit reached) keeps the frames read so far.
        unsafe { SAMPLE_STEPS.tail_call(ctx, SAMPLE_STEP_SLOT) };
    }
    // Not when that would leave no frame (the live call's own unreadable): shown once, then.
    if cursor.bottom_reused != 0 && cursor.bottom_kept != 0 && trace.depth > 1 {
        trace.leftover_outermost = 1;
    }
    let slot = trace.depth as usize;
    if cursor.bif_leaf != 0 && slot < MAX_STACK_DEPTH {
        trace.frames[slot] = cursor.bif_leaf;
        trace.depth += 1;
    }
    if trace.depth == 0 {
        // Every entry was stale: Zeek is outside scripts.
        name_outside_scripts(ctx, layout, trace);
    }
    to_finish(ctx)
}

/// errno's "exists", which a map's insert returns negated.
const EEXIST: i32 = 17;

/// Counts the sample under its stack, recording the stack the first time it is seen; a
/// main-thread sample also goes to the dispatch it falls in. Returns the stack's hash.
#[inline(always)]
fn finish(pid: u32, layout: &TargetLayout, trace: &StackTrace) -> u64 {
    let key = SampleKey { pid, _pad: 0, stack: stack_hash(trace) };
    if trace.kind != StackKind::Thread as u32 {
        track_dispatch(pid, layout, key.stack);
    }
    if increment_existing(&SAMPLES, &key) {
        return key.stack;
    }
    // SAFETY: read-only lookup.
    if unsafe { STACKS.get(&key.stack) }.is_none()
        && let Err(err) = STACKS.insert(&key.stack, trace, BPF_NOEXIST as u64)
        // Another CPU recorded the same new stack first: nothing lost.
        && err != -EEXIST
    {
        // Full: the sample is still counted (its seconds add up), without a name
        // (`unnamed_samples`), and said as a map-full drop, which is alerted on.
        bump(ProbeStat::MapFull);
    }
    increment(&SAMPLES, &key);
    key.stack
}

/// The function of one entry, or `None` for an entry to leave out: a frame that is no frame
/// (freed: no Frame vtable any more) or a repeat of the frame just read (freed memory reused
/// by the live frame above it). A frame further up that is the bottom entry's marks that one
/// a leftover (`Cursor::bottom_frame`).
#[inline(always)]
fn entry_function(layout: &TargetLayout, cursor: &mut Cursor, entry: u64) -> Option<u64> {
    let pointer: u64 = read(entry + cursor.pointer_offset)?;
    if cursor.via_frame == 0 {
        return Some(pointer);
    }
    if layout.frame_vptr != 0 && read::<u64>(pointer)? != layout.frame_vptr {
        return None;
    }
    if pointer == cursor.previous_frame {
        return None;
    }
    // `next` is past this entry already: 1 is the bottom's own.
    if cursor.next > 1 && cursor.bottom_frame != 0 && pointer == cursor.bottom_frame {
        cursor.bottom_reused = 1;
    }
    cursor.previous_frame = pointer;
    read(pointer + layout.frame_function as u64)
}

/// With no script running: the event being dispatched where Zeek records it (7.2+), else the
/// native instruction pointer (symbolised in user space).
#[inline(always)]
fn name_outside_scripts(ctx: &PerfEventContext, layout: &TargetLayout, trace: &mut StackTrace) {
    if layout.event_mgr != 0 && layout.event_mgr_current != 0 {
        let handler = read_global::<u64>(layout.event_mgr + layout.event_mgr_current as u64)
            .filter(|event| *event != 0)
            .and_then(|event| read::<u64>(event + layout.event_handler as u64));
        if let Some(handler) = handler.filter(|h| *h != 0) {
            let name = handler + layout.event_handler_name as u64;
            if let Some(hash) = hash_std_string(name) {
                remember_event_name(name, hash);
                trace.kind = StackKind::EventDispatch as u32;
                trace.leaf = hash;
                return;
            }
        }
    }
    trace.kind = StackKind::Native as u32;
    trace.leaf = user_ip(ctx);
}

/// The interrupted thread's user-space instruction pointer, 0 if unreadable: without frame
/// pointers, the only user frame the kernel's unwinder gets right.
#[inline(always)]
fn user_ip(ctx: &PerfEventContext) -> u64 {
    let mut ip = [0u64; 1];
    // SAFETY: the buffer is 8 bytes, as passed.
    let n = unsafe { bpf_get_stack(ctx.as_ptr(), ip.as_mut_ptr().cast(), 8, BPF_F_USER_STACK as u64) };
    if n >= 8 { ip[0] } else { 0 }
}

/// The kernel frames under the interrupted instruction, innermost first, into `frames`;
/// returns how many. None when the sample interrupted user mode. The helper reads the sampled
/// registers, so the frames are those of the interrupted code, not of this program.
#[inline(always)]
fn kernel_stack(ctx: &PerfEventContext, frames: &mut [u64; MAX_KERNEL_DEPTH]) -> u32 {
    const BYTES: u32 = (MAX_KERNEL_DEPTH * 8) as u32;
    // SAFETY: the buffer is `BYTES` long, as passed; flags 0 ask for the kernel stack.
    let n = unsafe { bpf_get_stack(ctx.as_ptr(), frames.as_mut_ptr().cast(), BYTES, 0) };
    if n > 0 { (n as u32 / 8).min(MAX_KERNEL_DEPTH as u32) } else { 0 }
}

/// Identifies a stack by its contents (FNV-style over kind, leaf, thread name, frames and
/// kernel frames).
#[inline(always)]
fn stack_hash(trace: &StackTrace) -> u64 {
    const MULTIPLIER: u64 = 0x0000_0100_0000_01b3;
    let shape = (trace.kind as u64) << 32 | (trace.leftover_outermost as u64) << 16 | trace.depth as u64;
    let mut h = 0xcbf2_9ce4_8422_2325 ^ shape;
    h = (h ^ trace.leaf).wrapping_mul(MULTIPLIER);
    h = (h ^ u64::from_le_bytes([
        trace.comm[0],
        trace.comm[1],
        trace.comm[2],
        trace.comm[3],
        trace.comm[4],
        trace.comm[5],
        trace.comm[6],
        trace.comm[7],
    ]))
    .wrapping_mul(MULTIPLIER);
    h = (h ^ u64::from_le_bytes([
        trace.comm[8],
        trace.comm[9],
        trace.comm[10],
        trace.comm[11],
        trace.comm[12],
        trace.comm[13],
        trace.comm[14],
        trace.comm[15],
    ]))
    .wrapping_mul(MULTIPLIER);
    for i in 0..MAX_STACK_DEPTH {
        if i >= trace.depth as usize {
            break;
        }
        h = (h ^ trace.frames[i]).wrapping_mul(MULTIPLIER);
        h ^= h >> 29;
    }
    h = (h ^ u64::from(trace.kernel_depth)).wrapping_mul(MULTIPLIER);
    for i in 0..MAX_KERNEL_DEPTH {
        if i >= trace.kernel_depth as usize {
            break;
        }
        h = (h ^ trace.kernel_frames[i]).wrapping_mul(MULTIPLIER);
        h ^= h >> 29;
    }
    h
}
