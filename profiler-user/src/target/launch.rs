//! Starting the profiled command ourselves (`record`): under ptrace, so that it stops right
//! after exec (nothing has run before the probes are attached) and again on its way out,
//! while its memory can still be read. Nothing else is traced: no syscalls, no breakpoints,
//! no writes. If zeek-probe dies, the kernel detaches the tracee and it runs on.
//!
//! Stopping zeek-probe stops the command the way stopping it directly would: SIGINT, SIGTERM
//! and SIGHUP sent to zeek-probe are passed on to it, and zeek-probe stays to see it exit.
use std::{
    ffi::{CString, OsStr},
    io::{self, Read, Write},
    os::unix::ffi::OsStrExt,
    sync::atomic::{AtomicI32, Ordering},
};

use nix::{
    sys::{
        ptrace::{self, Event, Options},
        signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction},
        wait::{WaitStatus, waitpid},
    },
    unistd::{ForkResult, Pid, execvp, fork},
};

/// The signals that ask a command to stop, passed on to the one we follow.
const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The PID of the command signals are passed on to; 0 when there is none (not started yet, or
/// exited: its PID may be reused).
static FOLLOWED: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A terminal's Ctrl-C (sent by the kernel) already reached the command, which is in our
    // process group; a signal from a process (kill, timeout, systemd) reached only us.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let from_kernel = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let pid = FOLLOWED.load(Ordering::SeqCst);
    if pid > 0 && !from_kernel {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start `{command}`")]
    Start { command: String, source: io::Error },
    #[error("`{command}` exited with status {code} before it started running")]
    ExitedEarly { command: String, code: i32 },
    #[error("lost control of PID {pid}")]
    Trace { pid: u32, source: nix::Error },
    #[error("cannot pass {signal} on to the command")]
    Signals { signal: Signal, source: nix::Error },
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn status(self) -> i32 {
        match self {
            Self::Code(c) => c,
            Self::Signal(s) => 128 + s as i32,
        }
    }
}

pub struct Tracee {
    pid: Pid,
}

impl Tracee {
    /// Starts `program args...`, stopped before its first instruction; from now on the
    /// signals that ask zeek-probe to stop are passed on to it.
    ///
    /// The child is seized (`PTRACE_SEIZE`) before it execs, so the stop after exec is an
    /// event stop: a zeek-probe killed there leaves a command that simply runs on. (Under
    /// `PTRACE_TRACEME` that stop is a SIGTRAP delivery, which kills the command when the
    /// tracer dies.) Seizing needs the child to wait for it, hence our own fork and exec.
    pub fn spawn(program: &OsStr, args: &[impl AsRef<OsStr>]) -> Result<Self, LaunchError> {
        let command = program.to_string_lossy().into_owned();
        let start_err = |source: io::Error| LaunchError::Start { command: command.clone(), source };
        // Everything the child needs is prepared here: after fork it may not allocate.
        let argv = std::iter::once(program)
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| start_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // Parent to child: "seized, exec now". Child to parent: exec's errno, or end of file
        // once exec succeeded (both ends close on exec).
        let (go_reader, mut go_writer) = io::pipe().map_err(start_err)?;
        let (mut errno_reader, errno_writer) = io::pipe().map_err(start_err)?;
        // SAFETY: the child only makes async-signal-safe calls (read, signal, execvp, write,
        // _exit) on memory prepared before the fork.
        let pid = match unsafe { fork() }.map_err(|e| start_err(e.into()))? {
            ForkResult::Child => exec_when_seized(go_reader, errno_writer, &argv),
            ForkResult::Parent { child } => child,
        };
        drop((go_reader, errno_writer));
        let tracee = Self { pid };
        let seized = ptrace::seize(pid, Options::PTRACE_O_TRACEEXIT | Options::PTRACE_O_TRACEEXEC);
        if let Err(source) = seized {
            tracee.kill();
            return Err(trace_err(pid, source));
        }
        if let Err(source) = go_writer.write_all(&[1]) {
            tracee.kill();
            return Err(start_err(source));
        }
        let mut errno = [0u8; 4];
        if errno_reader.read_exact(&mut errno).is_ok() {
            tracee.kill();
            return Err(start_err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))));
        }
        FOLLOWED.store(pid.as_raw(), Ordering::SeqCst);
        let handler = SigAction::new(SigHandler::SigAction(pass_on), SaFlags::SA_RESTART, SigSet::empty());
        for signal in FORWARDED {
            // SAFETY: the handler only reads an atomic and calls kill, both async-signal-safe.
            if let Err(source) = unsafe { sigaction(signal, &handler) } {
                tracee.kill();
                return Err(LaunchError::Signals { signal, source });
            }
        }
        match waitpid(pid, None).map_err(|source| trace_err(pid, source))? {
            WaitStatus::PtraceEvent(_, _, event) if event == Event::PTRACE_EVENT_EXEC as i32 => Ok(tracee),
            WaitStatus::Exited(_, code) => {
                FOLLOWED.store(0, Ordering::SeqCst);
                Err(LaunchError::ExitedEarly { command, code })
            }
            other => {
                tracee.kill();
                Err(start_err(io::Error::other(format!("unexpected state after exec: {other:?}"))))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Ends a command that must not run (it cannot be profiled) and reaps it.
    pub fn kill(self) {
        FOLLOWED.store(0, Ordering::SeqCst);
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        // It may pass through its exit stop on the way out.
        while let Ok(status) = waitpid(self.pid, None) {
            if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                break;
            }
            let _ = ptrace::cont(self.pid, None);
        }
    }

    /// Lets the command run until it is on its way out: `at_exit` runs once while it is
    /// stopped there (its memory still readable), then it is let go and this returns, while
    /// the kernel ends it (releasing a big Zeek's memory takes milliseconds, which the caller
    /// need not wait for: `Exiting::reap`). Signals sent to it are passed on unchanged; those
    /// passed on from zeek-probe stop once it is on its way out (its PID is about to be freed).
    pub fn run_to_exit(self, at_exit: impl FnOnce()) -> Result<Exiting, LaunchError> {
        let pid = self.pid;
        ptrace::cont(pid, None).map_err(|source| trace_err(pid, source))?;
        let mut at_exit = Some(at_exit);
        let ended = follow(pid, &mut || {
            if let Some(at_exit) = at_exit.take() {
                at_exit();
            }
        })?;
        Ok(Exiting { pid, ended })
    }
}

/// A command let go on its way out (or already ended: killed past its exit stop).
pub struct Exiting {
    pid: Pid,
    ended: Option<Exit>,
}

impl Exiting {
    /// How the command ended, once it has.
    pub fn reap(self) -> Result<Exit, LaunchError> {
        match self.ended {
            Some(exit) => Ok(exit),
            None => loop {
                // Any later exit stop (none is expected) is passed through.
                if let Some(exit) = follow(self.pid, &mut || ())? {
                    return Ok(exit);
                }
            },
        }
    }
}

fn trace_err(pid: Pid, source: nix::Error) -> LaunchError {
    LaunchError::Trace { pid: pid.as_raw() as u32, source }
}

/// Resumes the command from each stop until it has ended (returned), or until it stopped on
/// its way out: then `at_exit` runs, it is resumed, and `None` is returned.
fn follow(pid: Pid, at_exit: &mut dyn FnMut()) -> Result<Option<Exit>, LaunchError> {
    loop {
        let status = waitpid(pid, None).map_err(|source| trace_err(pid, source))?;
        if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
            FOLLOWED.store(0, Ordering::SeqCst);
        }
        match status {
            WaitStatus::Exited(_, code) => return Ok(Some(Exit::Code(code))),
            WaitStatus::Signaled(_, signal, _) => return Ok(Some(Exit::Signal(signal))),
            WaitStatus::PtraceEvent(_, _, event) if event == Event::PTRACE_EVENT_EXIT as i32 => {
                FOLLOWED.store(0, Ordering::SeqCst);
                at_exit();
                resume(pid, None)?;
                return Ok(None);
            }
            WaitStatus::PtraceEvent(..) => resume(pid, None)?,
            WaitStatus::Stopped(_, signal) => resume(pid, Some(signal))?,
            _ => resume(pid, None)?,
        }
    }
}

/// The child's side of `Tracee::spawn`: waits to be seized, then execs; never returns.
fn exec_when_seized(mut go: io::PipeReader, mut errno_out: io::PipeWriter, argv: &[CString]) -> ! {
    let mut byte = [0u8];
    // End of file instead of the byte: zeek-probe is gone before tracing us; run nothing.
    if go.read_exact(&mut byte).is_ok() {
        // Rust ignores SIGPIPE and an ignored signal stays ignored across exec; the command
        // gets the default, as `std::process::Command` gives it.
        // SAFETY: signal() is async-signal-safe.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let errno = execvp(&argv[0], argv).unwrap_err();
        let _ = errno_out.write_all(&(errno as i32).to_ne_bytes());
    }
    // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

/// Resumes the tracee; one that vanished meanwhile (killed) is reported by the next wait.
fn resume(pid: Pid, signal: Option<Signal>) -> Result<(), LaunchError> {
    match ptrace::cont(pid, signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(trace_err(pid, source)),
    }
}
