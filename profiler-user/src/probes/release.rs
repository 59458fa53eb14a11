//! Letting the probes go without waiting for the kernel to release them. Closing the last file
//! descriptor of a uprobe costs the closer an RCU grace period (~0.1 s each on 6.x kernels, one
//! after the other whatever thread closes them), and an exiting process closes its descriptors
//! before its parent sees it exit: `record` would end that long after its command did.
//!
//! Instead a child process holds copies of the probes' descriptors, waits for zeek-probe to
//! end (the pipe between them closing), and exits: the kernel releases the probes in that
//! exit, which nobody waits for. It is only done once every target has exited, so the probes
//! it keeps a moment longer serve no process. It holds nothing else: files, pipes and sockets
//! (someone may read zeek-probe's output to its end) are closed in it at once.
//!
//! The child shares zeek-probe's memory (`CLONE_VM`) rather than copying it (`fork`: ~2 ms of
//! page tables for a report's symbol tables and DWARF), so that memory is also torn down in
//! the child's exit, not in zeek-probe's (and what `record` has not freed by then costs it
//! nothing). Sharing it, the child makes its system calls itself: libc's wrappers write
//! `errno`, which is zeek-probe's thread's.
use std::{
    fs, io,
    os::fd::{AsRawFd as _, IntoRawFd as _, RawFd},
};

/// The child's stack: its few calls, and a signal handler of zeek-probe's run on it.
const CHILD_STACK: usize = 64 * 1024;

/// What the child is given, left to it: it lives in memory the child shares.
struct Handover {
    to_close: Vec<RawFd>,
    reader: RawFd,
    writer: RawFd,
}

/// Starts the child that keeps the probes' descriptors until this process has ended. Returns
/// once it is started; afterwards closing ours costs nothing.
pub fn hand_over() -> io::Result<()> {
    // Everything the child uses is prepared here, and never freed: it shares this memory.
    let to_close = descriptors_to_close()?;
    let (reader, writer) = io::pipe()?;
    let handover = Box::leak(Box::new(Handover { to_close, reader: reader.as_raw_fd(), writer: writer.as_raw_fd() }));
    let stack: &mut [u8] = Box::leak(vec![0u8; CHILD_STACK].into_boxed_slice());
    // The stack grows down from its end, 16-byte aligned as the ABI wants it.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: the child runs `keep_until_parent_ends` on its own stack, with memory leaked
    // above (never freed, never written again by us); it makes raw system calls only.
    let pid = unsafe {
        libc::clone(
            keep_until_parent_ends,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            (handover as *mut Handover).cast(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(reader);
    // Ours stays open until this process ends: its closing is the child's signal.
    let _ = writer.into_raw_fd();
    Ok(())
}

/// This process's descriptors but the kernel objects the probes are made of (perf events,
/// BPF programs, maps and links are all anonymous inodes).
fn descriptors_to_close() -> io::Result<Vec<RawFd>> {
    let mut to_close = Vec::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        // A descriptor gone meanwhile (the directory's own) reads as an error: closed anyway.
        let target = fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("anon_inode:") {
            to_close.push(fd);
        }
    }
    Ok(to_close)
}

/// The child's side of `hand_over`: never returns.
extern "C" fn keep_until_parent_ends(handover: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `hand_over` passes its leaked `Handover`, which nothing writes any more.
    let Handover { to_close, reader, writer } = unsafe { &*handover.cast::<Handover>() };
    // Seen in `ps` for the moment it lives: what it is.
    let name = c"zeek-probe-rel";
    // SAFETY: system calls on memory that stays valid (leaked, or this stack's).
    unsafe {
        syscall(libc::SYS_prctl, libc::PR_SET_NAME as usize, name.as_ptr() as usize, 0);
        for fd in to_close.iter().filter(|fd| *fd != reader) {
            syscall(libc::SYS_close, *fd as usize, 0, 0);
        }
        syscall(libc::SYS_close, *writer as usize, 0, 0);
        let mut byte = 0u8;
        // Nothing is ever written: this returns at the parent's end (0) or on an error.
        while syscall(libc::SYS_read, *reader as usize, (&raw mut byte) as usize, 1) == -(libc::EINTR as isize) {}
        syscall(libc::SYS_exit_group, 0, 0, 0);
    }
    0
}

/// A system call of up to three arguments, its result as the kernel returns it (`-errno` on
/// failure), `errno` untouched.
///
/// # Safety
/// As the call itself: pointers passed must be valid for it.
unsafe fn syscall(number: libc::c_long, a: usize, b: usize, c: usize) -> isize {
    let result: isize;
    // SAFETY: the x86-64 system call convention: number and result in rax, arguments in rdi,
    // rsi and rdx; the kernel clobbers rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file, pipe and socket is closed in the child, anonymous inodes (what the probes
    /// are) are kept.
    #[test]
    fn closes_all_but_anonymous_inodes() {
        let file = fs::File::open("/proc/self/status").unwrap();
        let (pipe_reader, _pipe_writer) = io::pipe().unwrap();
        // SAFETY: eventfd creates a descriptor; nothing else is touched.
        let event = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(event >= 0);
        let to_close = descriptors_to_close().unwrap();
        assert!(to_close.contains(&file.as_raw_fd()), "a file");
        assert!(to_close.contains(&pipe_reader.as_raw_fd()), "a pipe");
        assert!(to_close.contains(&1), "standard output (whatever it is here: a file, a pipe, a terminal)");
        assert!(!to_close.contains(&event), "an anonymous inode");
        // SAFETY: ours, closed once.
        unsafe { libc::close(event) };
    }
}
