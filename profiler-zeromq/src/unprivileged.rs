//! Threads that hold no capabilities, for everything that reads outside input.
//!
//! zeek-probe runs with CAP_SYS_ADMIN and CAP_SYS_PTRACE (for the BPF side), while the ZeroMQ
//! feeds parse whatever the network sends: ZMTP and CURVE in libzmq's I/O threads, then the
//! payloads in ours. Linux capabilities belong to a thread, not a process: `capset(2)` with pid 0
//! changes only the calling thread, and threads inherit their creator's. So each feed thread
//! gives up every capability (and, with `no_new_privs`, the means to regain one through
//! `execve`) before it opens its socket, and libzmq, which starts its I/O threads when the first
//! socket of a context is created, starts them from such a thread: they inherit nothing either.
//!
//! What is dropped is the capabilities; the thread still runs as the process's user (root, for a
//! plain `sudo zeek-probe`), so files root owns stay within its reach. Binding a port below 1024
//! would need CAP_NET_BIND_SERVICE, which the socket thread no longer has: the bind error says to
//! choose a port above 1023.
use std::{sync::mpsc::sync_channel, thread::JoinHandle};

use crate::{SocketError, ZmqError};

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot set no_new_privs on a ZeroMQ thread: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot drop the capabilities of a ZeroMQ thread: {0}")]
    Capabilities(std::io::Error),
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Gives up every capability of the calling thread, for good.
pub fn drop_capabilities() -> Result<(), PrivilegeError> {
    // SAFETY: prctl with integer arguments only; affects the calling thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    let header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    // Empty effective, permitted and inheritable sets; the ambient set follows the permitted one.
    let data = [CapData::default(); 2];
    // SAFETY: the raw syscall (glibc has no wrapper that stays on one thread) with a valid header
    // and the two data structs version 3 reads.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(PrivilegeError::Capabilities(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Starts thread `name`, which drops its capabilities, then `open`s what it works on (its
/// socket: created only now, so that libzmq's threads start capability-less too) and hands the
/// caller `open`'s reply, then `run`s. Returns once the thread has opened, or failed to.
pub fn spawn<State, Reply: Send + 'static>(
    name: String,
    open: impl FnOnce() -> Result<(State, Reply), ZmqError> + Send + 'static,
    run: impl FnOnce(State) + Send + 'static,
) -> Result<(JoinHandle<()>, Reply), ZmqError> {
    let (opened_tx, opened_rx) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            match drop_capabilities().map_err(ZmqError::from).and_then(|()| open()) {
                Ok((state, reply)) => {
                    // The caller waits for this; gone, it wants nothing run.
                    if opened_tx.send(Ok(reply)).is_ok() {
                        run(state);
                    }
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            }
        })
        .map_err(SocketError::Thread)?;
    match opened_rx.recv() {
        Ok(Ok(reply)) => Ok((thread, reply)),
        Ok(Err(e)) => {
            // It has returned already.
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ZmqError::ThreadDied(name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field of /proc/thread-self/status.
    fn status(field: &str) -> String {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line[field.len()..].trim().to_owned()
    }

    #[test]
    fn only_the_calling_thread_loses_its_capabilities() {
        let before = status("CapEff:");
        let (thread, reply) = spawn(
            "drop-test".into(),
            || Ok(((), (status("CapEff:"), status("CapPrm:"), status("NoNewPrivs:")))),
            |()| {},
        )
        .unwrap();
        thread.join().unwrap();
        assert_eq!(reply, ("0000000000000000".into(), "0000000000000000".into(), "1".into()));
        assert_eq!(status("CapEff:"), before, "the spawning thread keeps what it had");
    }

    #[test]
    fn a_failed_open_is_the_callers_error() {
        let result = spawn::<(), ()>("open-fails".into(), || Err(ZmqError::BadLimits), |()| {});
        assert!(matches!(result, Err(ZmqError::BadLimits)));
    }
}
