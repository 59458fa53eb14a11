//! The Zeek processes an exporter serves: attached ones, exited ones kept a while for their
//! final counts, and ones that could not be attached, retried with backoff. In cluster mode a
//! discovery scan each refresh picks up new nodes, drops exited ones and attaches restarted
//! ones again (same node name, new PID); with `--pid` it is one process, attached up front.
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use crate::{
    exporter::{Exposition, FailingTarget, TargetMetrics},
    output,
    probes::{
        Probes,
        loader::{AttachPlan, MapSnapshot, ProbeScope},
    },
    session::{Session, SessionError},
    target::{ProcessInfo, discovery::Found, stats::ProcessStats},
};

/// First retry of a node that failed to attach; doubled per failure up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Which processes to serve.
pub enum Selection {
    /// Every Zeek process on the host, followed as nodes come and go.
    Discover { retain_exited: Duration },
    /// One process, attached up front; once it exits its final counts are served until stop.
    Pid,
}

struct Node {
    session: Session,
    process: Option<ProcessStats>,
    exited_at: Option<Instant>,
}

struct Failure {
    node: String,
    error: String,
    failures: u32,
    next_try: Instant,
}

pub struct Cluster {
    probes: Probes,
    plan: AttachPlan,
    selection: Selection,
    nodes: BTreeMap<u32, Node>,
    failing: HashMap<u32, Failure>,
    /// Failed attach attempts per node name (kept across restarts, like the node label).
    attach_errors: BTreeMap<String, u64>,
    caller_series: Option<usize>,
}

impl Cluster {
    /// An exporter for every Zeek on the host; nothing is attached until the first refresh.
    pub fn discover(probes: Probes, plan: AttachPlan, retain_exited: Duration, caller_series: Option<usize>) -> Self {
        Self::new(probes, plan, Selection::Discover { retain_exited }, caller_series)
    }

    /// An exporter for one process; fails if it cannot be attached.
    pub fn single(
        mut probes: Probes,
        pid: u32,
        plan: AttachPlan,
        caller_series: Option<usize>,
    ) -> Result<Self, SessionError> {
        let session = Session::attach(&mut probes, pid, plan)?;
        let mut cluster = Self::new(probes, plan, Selection::Pid, caller_series);
        cluster.nodes.insert(pid, Node { session, process: None, exited_at: None });
        Ok(cluster)
    }

    fn new(probes: Probes, plan: AttachPlan, selection: Selection, caller_series: Option<usize>) -> Self {
        Self {
            probes,
            plan,
            selection,
            nodes: BTreeMap::new(),
            failing: HashMap::new(),
            attach_errors: BTreeMap::new(),
            caller_series,
        }
    }

    /// The attached processes that still run.
    pub fn running(&self) -> impl Iterator<Item = &Session> {
        self.nodes.values().filter(|n| n.exited_at.is_none()).map(|n| &n.session)
    }

    /// Follows the host as a discovery scan `found` it (in cluster mode): attaches new Zeek
    /// processes, retries failed ones when due; notices exits, and reads what can only be read
    /// while a process lives (names, process stats). The scan is the caller's, so that
    /// inspecting a new binary does not hold up scrapes.
    pub fn refresh(&mut self, found: Option<HashMap<u32, Found>>) {
        let now = Instant::now();
        if let (Selection::Discover { retain_exited }, Some(found)) = (&self.selection, found) {
            let retain_exited = *retain_exited;
            self.failing.retain(|pid, _| found.contains_key(pid));
            for (pid, f) in found {
                match self.nodes.get_mut(&pid) {
                    // The supervisor's processes are named once their children show up.
                    Some(node) => node.session.process.node.clone_from(&f.process.node),
                    None => self.try_attach(f, now),
                }
            }
            self.nodes.retain(|pid, node| match node.exited_at {
                Some(at) if now.duration_since(at) > retain_exited => {
                    self.probes.forget(*pid);
                    false
                }
                _ => true,
            });
        }
        self.observe(now);
    }

    fn try_attach(&mut self, found: Found, now: Instant) {
        let Found { process, file, binary } = found;
        let pid = process.pid;
        if self.failing.get(&pid).is_some_and(|f| now < f.next_try) {
            return;
        }
        let node = process.node.clone();
        let attached = match binary {
            Ok(binary) => Session::start(&mut self.probes, process, binary, ProbeScope::SharedBy(file), self.plan)
                .map_err(|err| format!("{:#}", anyhow::Error::from(err))),
            Err(why) => Err(why.to_string()),
        };
        match attached {
            Ok(session) => {
                let s = session.summary();
                output::note(format_args!("attached to node {node} (PID {pid}, Zeek {})", s.zeek_version));
                self.failing.remove(&pid);
                self.nodes.insert(pid, Node { session, process: None, exited_at: None });
            }
            Err(error) => {
                *self.attach_errors.entry(node.clone()).or_default() += 1;
                let failures = self.failing.get(&pid).map_or(0, |f| f.failures) + 1;
                let backoff = FIRST_RETRY.saturating_mul(1 << (failures - 1).min(5)).min(MAX_RETRY);
                if self.failing.get(&pid).is_none_or(|f| f.error != error) {
                    output::note(format_args!(
                        "cannot attach to node {node} (PID {pid}): {error}; retrying every {}s at most",
                        MAX_RETRY.as_secs()
                    ));
                }
                self.failing.insert(pid, Failure { node, error, failures, next_try: now + backoff });
            }
        }
    }

    fn observe(&mut self, now: Instant) {
        let snapshot = self.probes.snapshot();
        for (pid, node) in self.nodes.iter_mut().filter(|(_, n)| n.exited_at.is_none()) {
            node.session.learn_names(&snapshot);
            match ProcessStats::read(*pid).filter(|_| ProcessInfo::is_alive(*pid)) {
                Some(stats) => node.process = Some(stats),
                None => {
                    node.exited_at = Some(now);
                    self.probes.detach(*pid);
                    output::note(format_args!(
                        "node {} (PID {pid}) exited; serving its final counts",
                        node.session.process.node
                    ));
                }
            }
        }
    }

    /// Everything exported, as of now.
    pub fn metrics(&mut self) -> Exposition {
        let snapshot: MapSnapshot = self.probes.snapshot();
        let targets = self
            .nodes
            .values()
            .map(|node| TargetMetrics {
                profile: node.session.profile(&snapshot),
                node_type: node.session.process.node_type,
                process: node.process,
                up: node.exited_at.is_none(),
                caller_series: self.caller_series,
            })
            .collect();
        let failing = self
            .failing
            .iter()
            .map(|(pid, f)| FailingTarget { node: f.node.clone(), pid: *pid, error: f.error.clone() })
            .collect();
        let attach_errors = self.attach_errors.clone().into_iter().collect();
        Exposition { targets, failing, attach_errors, extra: Vec::new() }
    }
}
