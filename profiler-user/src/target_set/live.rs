//! The target set's backend on a real host: the BPF probes and /proc.
use profiler_common::LogKey;

use super::{Backend, Candidate, Tracked};
use crate::{
    output,
    probes::{MapSnapshot, ProbeScope, Probes},
    session::{Session, SessionError},
    target::{ProcessInfo, discovery::Found, stats::ProcessStats},
};

pub struct LiveBackend {
    probes: Probes,
}

impl LiveBackend {
    pub fn new(probes: Probes) -> Self {
        Self { probes }
    }

    /// Attaches to one process by PID, with uprobes of its own (`--pid`).
    pub fn attach_pid(&mut self, pid: u32) -> Result<Session, SessionError> {
        Session::attach(&mut self.probes, pid)
    }

    /// Copies the maps, for profiles.
    pub fn snapshot(&self) -> MapSnapshot {
        self.probes.snapshot()
    }
}

impl Candidate for Found {
    fn node(&self) -> &str {
        &self.process.node
    }
}

impl Tracked for Session {
    fn node(&self) -> &str {
        &self.process.node
    }

    fn rename(&mut self, node: &str) {
        node.clone_into(&mut self.process.node);
    }

    fn learn_names(&mut self, log_writes: &[LogKey]) {
        Session::learn_names(self, log_writes);
    }
}

impl Backend for LiveBackend {
    type Candidate = Found;
    type Session = Session;

    /// Found processes share their binary's uprobes (`ProbeScope::SharedBy`).
    fn attach(&mut self, found: Found) -> Result<Session, String> {
        let Found { process, file, binary } = found;
        let (node, pid) = (process.node.clone(), process.pid);
        let session = binary.map_err(|why| why.to_string()).and_then(|binary| {
            Session::start(&mut self.probes, process, binary, ProbeScope::SharedBy(file))
                .map_err(|err| format!("{:#}", anyhow::Error::from(err)))
        })?;
        output::note(format_args!("attached to node {node} (PID {pid}, Zeek {})", session.binary.version));
        Ok(session)
    }

    fn detach(&mut self, pid: u32) {
        self.probes.detach(pid);
    }

    fn forget(&mut self, pid: u32) {
        self.probes.forget(pid);
    }

    fn log_write_keys(&self) -> Vec<LogKey> {
        self.probes.log_write_keys()
    }

    fn process_stats(&self, pid: u32) -> Option<ProcessStats> {
        ProcessStats::read(pid).filter(|_| ProcessInfo::is_alive(pid))
    }
}
