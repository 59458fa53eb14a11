//! Copies a sample's user registers and the top of its user stack into the `NATIVE_STACKS`
//! ring buffer, for user space to unwind with the target's `.eh_frame`. The copy ends where
//! the thread's stack does: the main thread's end comes from /proc/PID/maps (in the layout);
//! another thread's is its thread pointer, the FS base, which glibc puts at the top of the
//! mapping that holds the thread's stack (`THREAD_STACK_SPAN_MAX`).
//! Nothing wakes user space: it drains the ring on its own timer. A full ring drops the record
//! and counts it; the sample itself is counted in `SAMPLES` either way.

use aya_ebpf::{
    bindings::{BPF_RB_NO_WAKEUP, pt_regs},
    cty::c_void,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_user, bpf_task_pt_regs},
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use profiler_common::{
    ProbeStat, TargetLayout,
    native_stacks::{HEADER_BYTES, NativeStackHeader, NativeStackRecord, THREAD_STACK_SPAN_MAX, USER_STACK_MAX},
};

use crate::maps::bump;

/// Most stack bytes to copy (`names::NATIVE_STACK_BYTES`), set by user space at load; 0 copies
/// nothing.
#[unsafe(no_mangle)]
static NATIVE_STACK_BYTES: u64 = 0;

/// Where `thread.fsbase` is in the kernel's `task_struct` (`names::TASK_FSBASE_OFFSET`), set
/// by user space at load from the kernel's BTF; 0 copies no stacks of threads but the main one.
#[unsafe(no_mangle)]
static TASK_FSBASE_OFFSET: u64 = 0;

/// The records for user space. Sized by user space from its memory budget.
#[map]
static NATIVE_STACKS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Per-CPU room to assemble a record (far larger than the BPF stack).
#[map]
static NATIVE_SCRATCH: PerCpuArray<NativeStackRecord> = PerCpuArray::with_max_entries(1, 0);

/// Sends the current thread's user registers and stack, counted under `stack` (a `SAMPLES`
/// key's stack hash).
#[inline(always)]
pub fn copy_native_stack(pid: u32, layout: &TargetLayout, stack: u64) -> Option<()> {
    // SAFETY: a global of this object, written only by the loader.
    let wanted = unsafe { core::ptr::read_volatile(&raw const NATIVE_STACK_BYTES) };
    if wanted == 0 {
        return None;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the current task; what is read of it is read, not trusted.
    let task = unsafe { bpf_get_current_task_btf() };
    // The registers of user mode, also when the sample interrupted a system call or fault:
    // the kernel saved them at its entry.
    // SAFETY: as above.
    let regs: pt_regs = unsafe { bpf_probe_read_kernel(bpf_task_pt_regs(task) as *const pt_regs).ok()? };
    let sp = regs.rsp;
    let stack_end = if tid == pid { layout.main_stack_end } else { thread_stack_end(sp)? };
    if stack_end <= sp {
        return None;
    }
    let record = NATIVE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: a per-CPU slot, ours while this program runs.
    let record = unsafe { &mut *record };
    // From the stack pointer to the stack's end: reading past the end would fail as a whole.
    let room = stack_end - sp;
    let mut len = if room < wanted { room } else { wanted };
    if len > USER_STACK_MAX as u64 {
        len = USER_STACK_MAX as u64;
    }
    // SAFETY: `len` bytes fit `record.stack`, as bounded above; a failed read writes zeros.
    let read = unsafe { bpf_probe_read_user(record.stack.as_mut_ptr().cast(), len as u32, sp as *const c_void) };
    // Without the stack the registers still name the leaf.
    record.header.stack_len = if read == 0 { len as u32 } else { 0 };
    record.header = NativeStackHeader {
        pid,
        tid,
        stack,
        ip: regs.rip,
        sp,
        bp: regs.rbp,
        stack_len: record.header.stack_len,
        _pad: 0,
    };
    let size = HEADER_BYTES + record.header.stack_len as usize;
    if size > HEADER_BYTES + USER_STACK_MAX {
        return None;
    }
    // SAFETY: `size` bytes of the record, bounded by its size above.
    let bytes = unsafe { core::slice::from_raw_parts((record as *const NativeStackRecord).cast::<u8>(), size) };
    if NATIVE_STACKS.output::<[u8]>(bytes, BPF_RB_NO_WAKEUP as u64).is_err() {
        bump(ProbeStat::NativeStackDropped);
    }
    Some(())
}

/// The end of a thread's stack other than the main one's: its FS base, when that is above
/// `sp` and close enough to be the top of the same stack mapping; `None` when the kernel's
/// offset is unknown, the read fails or the two do not fit (a thread not made by glibc's
/// `pthread_create`, one running on another stack).
#[inline(always)]
fn thread_stack_end(sp: u64) -> Option<u64> {
    // SAFETY: a global of this object, written only by the loader.
    let offset = unsafe { core::ptr::read_volatile(&raw const TASK_FSBASE_OFFSET) };
    if offset == 0 {
        return None;
    }
    // The task as a plain address (not the BTF pointer): no pointer arithmetic for the
    // verifier to judge, on any kernel.
    // SAFETY: a read of the current task's memory, checked below, not trusted.
    let fs_base: u64 =
        unsafe { bpf_probe_read_kernel(bpf_get_current_task().wrapping_add(offset) as *const u64) }.unwrap_or(0);
    let fits = fs_base > sp && fs_base - sp <= THREAD_STACK_SPAN_MAX;
    if !fits {
        bump(ProbeStat::ThreadStackEndUnknown);
    }
    fits.then_some(fs_base)
}
