//! The set of Zeek processes an exporter serves: attached ones, exited ones kept a while for
//! their final counts, and ones that could not be attached, retried with backoff. With
//! `--cluster` a discovery scan each refresh picks up new nodes, drops exited ones and attaches
//! restarted ones again (same node name, new PID); with `--pid` it is one process, attached up
//! front. The state machine is generic over a `Backend` (the probes and /proc in `live`), so
//! its timing rules are tested without a kernel.
pub mod live;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use profiler_common::LogKey;

use crate::{output, target::stats::ProcessStats};

/// First retry of a node that failed to attach; doubled per failure up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A process a discovery scan found.
pub trait Candidate {
    fn node(&self) -> &str;
}

/// An attached process, as far as the set follows it.
pub trait Tracked {
    fn node(&self) -> &str;
    /// A supervisor's processes are named once their children show up.
    fn rename(&mut self, node: &str);
    /// Names what only the live process can name, from the log streams written so far.
    fn learn_names(&mut self, log_writes: &[LogKey]);
}

/// What the set does to processes: attach probes, detach them, drop their counts, see
/// whether they still run.
pub trait Backend {
    type Candidate: Candidate;
    type Session: Tracked;
    /// Attaches the probes; the error is one line, said and exported as is.
    fn attach(&mut self, candidate: Self::Candidate) -> Result<Self::Session, String>;
    /// Stops probing `pid`; its counts stay.
    fn detach(&mut self, pid: u32);
    /// Deletes a detached process's counts.
    fn forget(&mut self, pid: u32);
    /// The log streams written so far (all a refresh reads from the maps).
    fn log_write_keys(&self) -> Vec<LogKey>;
    /// `None` once `pid` has exited.
    fn process_stats(&self, pid: u32) -> Option<ProcessStats>;
}

/// Which processes to serve.
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    /// Every Zeek process on the host, followed as nodes come and go; an exited one is
    /// served this long after its exit.
    Discover { retain_exited: Duration },
    /// One process, attached up front; once it exits its final counts are served until stop.
    Pid,
}

pub struct Target<S> {
    pub session: S,
    /// Last stats read while it ran (kept after it exits).
    pub process: Option<ProcessStats>,
    exited_at: Option<Instant>,
}

impl<S> Target<S> {
    pub fn is_running(&self) -> bool {
        self.exited_at.is_none()
    }
}

/// A process that could not be attached.
pub struct Failure {
    pub node: String,
    /// Why, in one line.
    pub error: String,
    failures: u32,
    next_try: Instant,
}

pub struct TargetSet<B: Backend> {
    backend: B,
    selection: Selection,
    targets: BTreeMap<u32, Target<B::Session>>,
    failing: BTreeMap<u32, Failure>,
    /// Failed attach attempts per node name (kept across restarts, like the node label).
    attach_errors: BTreeMap<String, u64>,
}

impl<B: Backend> TargetSet<B> {
    /// Every Zeek on the host; nothing is attached until the first refresh.
    pub fn discover(backend: B, retain_exited: Duration) -> Self {
        Self::new(backend, Selection::Discover { retain_exited })
    }

    /// One process, already attached.
    pub fn one(backend: B, pid: u32, session: B::Session) -> Self {
        let mut set = Self::new(backend, Selection::Pid);
        set.targets.insert(pid, Target { session, process: None, exited_at: None });
        set
    }

    fn new(backend: B, selection: Selection) -> Self {
        Self { backend, selection, targets: BTreeMap::new(), failing: BTreeMap::new(), attach_errors: BTreeMap::new() }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Every target by PID, running or exited and still served.
    pub fn targets(&self) -> impl Iterator<Item = (u32, &Target<B::Session>)> {
        self.targets.iter().map(|(pid, t)| (*pid, t))
    }

    /// The attached processes that still run.
    pub fn running(&self) -> impl Iterator<Item = &B::Session> {
        self.targets.values().filter(|t| t.is_running()).map(|t| &t.session)
    }

    /// Processes found but not attached, by PID.
    pub fn failing(&self) -> impl Iterator<Item = (u32, &Failure)> {
        self.failing.iter().map(|(pid, f)| (*pid, f))
    }

    /// Failed attach attempts per node name.
    pub fn attach_errors(&self) -> &BTreeMap<String, u64> {
        &self.attach_errors
    }

    /// Follows the host as a discovery scan `found` it (with `Selection::Discover`): attaches
    /// new Zeek processes, retries failed ones when due, drops exited ones served long enough;
    /// notices exits, and reads what can only be read while a process lives (names, process
    /// stats). The scan is the caller's, so that inspecting a new binary does not hold up
    /// scrapes.
    pub fn refresh(&mut self, found: Option<HashMap<u32, B::Candidate>>, now: Instant) {
        if let (Selection::Discover { retain_exited }, Some(found)) = (self.selection, found) {
            self.failing.retain(|pid, _| found.contains_key(pid));
            for (pid, candidate) in found {
                match self.targets.get_mut(&pid) {
                    Some(target) => target.session.rename(candidate.node()),
                    None => self.try_attach(pid, candidate, now),
                }
            }
            let backend = &mut self.backend;
            self.targets.retain(|pid, target| match target.exited_at {
                Some(at) if now.duration_since(at) > retain_exited => {
                    backend.forget(*pid);
                    false
                }
                _ => true,
            });
        }
        self.observe(now);
    }

    fn try_attach(&mut self, pid: u32, candidate: B::Candidate, now: Instant) {
        let previous = self.failing.get(&pid);
        if previous.is_some_and(|f| now < f.next_try) {
            return;
        }
        let node = candidate.node().to_owned();
        match self.backend.attach(candidate) {
            Ok(session) => {
                self.failing.remove(&pid);
                self.targets.insert(pid, Target { session, process: None, exited_at: None });
            }
            Err(error) => {
                *self.attach_errors.entry(node.clone()).or_default() += 1;
                let failures = previous.map_or(0, |f| f.failures) + 1;
                if previous.is_none_or(|f| f.error != error) {
                    output::note(format_args!(
                        "cannot attach to node {node} (PID {pid}): {error}; retrying every {}s at most",
                        MAX_RETRY.as_secs()
                    ));
                }
                let next_try = now + retry_after(failures);
                self.failing.insert(pid, Failure { node, error, failures, next_try });
            }
        }
    }

    fn observe(&mut self, now: Instant) {
        let log_writes = self.backend.log_write_keys();
        for (pid, target) in self.targets.iter_mut().filter(|(_, t)| t.is_running()) {
            target.session.learn_names(&log_writes);
            match self.backend.process_stats(*pid) {
                Some(stats) => target.process = Some(stats),
                None => {
                    target.exited_at = Some(now);
                    self.backend.detach(*pid);
                    output::note(format_args!(
                        "node {} (PID {pid}) exited; serving its final counts",
                        target.session.node()
                    ));
                }
            }
        }
    }
}

/// How long to wait after the `failures`-th failed attach in a row.
fn retry_after(failures: u32) -> Duration {
    FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(MAX_RETRY)
}
