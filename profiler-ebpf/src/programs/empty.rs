//! A program that does nothing: attached by `cargo xtask bench` to the same probe points to
//! measure the kernel's own cost of a uprobe hit, the floor under every other program.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};

#[uprobe]
pub fn empty_probe(_ctx: ProbeContext) -> u32 {
    0
}
