//! zeek-probe's BPF programs. Built for `bpfel-unknown-none` by profiler-user's build script
//! and embedded in the `zeek-probe` binary.
//!
//! Entry probes only: the `Invoke` functions are crossed by C++ exceptions, and a uretprobe's
//! trampoline has no unwind information (zeek-abi.md §1). Every program reads target memory
//! through `bpf_probe_read_user`, which fails softly, and never writes to it.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod dispatches;
mod funcs;
mod maps;
mod native_stacks;
mod programs;
mod target_memory;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path; this only satisfies the compiler.
    loop {}
}

// GPL-compatible: bpf_probe_read_user is a GPL-only helper.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual BSD/GPL\0";
