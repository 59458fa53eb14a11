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
use std::{
    fs, io,
    os::fd::{AsRawFd as _, IntoRawFd as _, RawFd},
};

use nix::unistd::{ForkResult, fork};

/// Forks the child that keeps the probes' descriptors until this process has ended. Returns
/// once it is started; afterwards closing ours costs nothing.
pub fn hand_over() -> io::Result<()> {
    // Everything the child does is prepared here: after fork it may not allocate.
    let to_close = descriptors_to_close()?;
    let (reader, writer) = io::pipe()?;
    let (reader_fd, writer_fd) = (reader.as_raw_fd(), writer.as_raw_fd());
    // SAFETY: the child only makes async-signal-safe calls (prctl, close, read, _exit) on
    // memory prepared before the fork.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Child => keep_until_parent_ends(&to_close, reader_fd, writer_fd),
        ForkResult::Parent { .. } => {
            drop(reader);
            // Ours stays open until this process ends: its closing is the child's signal.
            let _ = writer.into_raw_fd();
            Ok(())
        }
    }
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
fn keep_until_parent_ends(to_close: &[RawFd], reader: RawFd, writer: RawFd) -> ! {
    // SAFETY: prctl, close, read and _exit are async-signal-safe system calls on memory
    // prepared before the fork.
    unsafe {
        // Seen in `ps` for the moment it lives: what it is.
        libc::prctl(libc::PR_SET_NAME, c"zeek-probe-rel".as_ptr());
        for fd in to_close.iter().filter(|fd| **fd != reader) {
            libc::close(*fd);
        }
        libc::close(writer);
        let mut byte = 0u8;
        // Nothing is ever written: this returns at the parent's end (0) or on an error.
        while libc::read(reader, (&raw mut byte).cast(), 1) < 0 && *libc::__errno_location() == libc::EINTR {}
        libc::_exit(0)
    }
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
