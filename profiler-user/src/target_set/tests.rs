//! The target set's rules over a fake host: attaching, backoff, exits, retention, restarts.
use std::collections::{HashMap, HashSet};

use super::*;

struct FakeCandidate {
    pid: u32,
    node: &'static str,
}

impl Candidate for FakeCandidate {
    fn node(&self) -> &str {
        self.node
    }
}

struct FakeSession {
    node: String,
    /// How many times names were learnt, and from how many log keys the last time.
    learnt: (usize, usize),
}

impl Tracked for FakeSession {
    fn node(&self) -> &str {
        &self.node
    }

    fn rename(&mut self, node: &str) {
        node.clone_into(&mut self.node);
    }

    fn learn_names(&mut self, log_writes: &[LogKey]) {
        self.learnt = (self.learnt.0 + 1, log_writes.len());
    }
}

/// A host whose processes run while in `running`; attaching to a PID in `refuse` fails.
#[derive(Default)]
struct FakeHost {
    refuse: HashMap<u32, &'static str>,
    running: HashSet<u32>,
    /// What the set asked for, in order.
    attempts: Vec<u32>,
    detached: Vec<u32>,
    forgotten: Vec<u32>,
    log_writes: Vec<LogKey>,
}

impl Backend for FakeHost {
    type Candidate = FakeCandidate;
    type Session = FakeSession;

    fn attach(&mut self, candidate: FakeCandidate) -> Result<FakeSession, String> {
        self.attempts.push(candidate.pid);
        match self.refuse.get(&candidate.pid) {
            Some(error) => Err((*error).to_owned()),
            None => Ok(FakeSession { node: candidate.node.to_owned(), learnt: (0, 0) }),
        }
    }

    fn detach(&mut self, pid: u32) {
        self.detached.push(pid);
    }

    fn forget(&mut self, pid: u32) {
        self.forgotten.push(pid);
    }

    fn log_write_keys(&self) -> Vec<LogKey> {
        self.log_writes.clone()
    }

    fn process_stats(&self, pid: u32) -> Option<ProcessStats> {
        let stats = ProcessStats { cpu_seconds: 1.0, start_time_seconds: 0.0, resident_bytes: 4096 };
        self.running.contains(&pid).then_some(stats)
    }
}

const RETAIN: Duration = Duration::from_secs(60);

/// A set over a host running `pids`, and a clock `at(seconds)` from a fixed start.
fn host(pids: &[u32]) -> (TargetSet<FakeHost>, impl Fn(f64) -> Instant) {
    let backend = FakeHost { running: pids.iter().copied().collect(), ..FakeHost::default() };
    let start = Instant::now();
    (TargetSet::discover(backend, RETAIN), move |s: f64| start + Duration::from_secs_f64(s))
}

/// What a scan finds: `(pid, node)` pairs.
fn scan(found: &[(u32, &'static str)]) -> Option<HashMap<u32, FakeCandidate>> {
    Some(found.iter().map(|&(pid, node)| (pid, FakeCandidate { pid, node })).collect())
}

fn running_nodes(set: &TargetSet<FakeHost>) -> Vec<String> {
    set.running().map(|s| s.node.clone()).collect()
}

#[test]
fn found_processes_are_attached_once_and_renamed_as_the_scan_names_them() {
    let (mut set, at) = host(&[10, 11]);
    set.refresh(scan(&[(10, "zeek"), (11, "worker-1")]), at(0.0));
    assert_eq!(running_nodes(&set), ["zeek", "worker-1"]);
    // The supervisor's process is named once its children show up.
    set.refresh(scan(&[(10, "manager"), (11, "worker-1")]), at(1.0));
    assert_eq!(running_nodes(&set), ["manager", "worker-1"]);
    let mut attempts = set.backend().attempts.clone();
    attempts.sort_unstable();
    assert_eq!(attempts, [10, 11], "attached once each");
    assert!(set.targets().all(|(_, t)| t.process.is_some_and(|p| p.resident_bytes == 4096)));
}

#[test]
fn a_failed_attach_is_retried_after_a_backoff_doubling_up_to_thirty_seconds() {
    let (mut set, at) = host(&[20]);
    set.backend.refuse.insert(20, "not a Zeek binary");
    // Due after 1, 2, 4, 8, 16, then every 30 seconds.
    let due = [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0];
    for t in (0..=190).map(|half_seconds| f64::from(half_seconds) / 2.0) {
        set.refresh(scan(&[(20, "worker-2")]), at(t));
        let expected = due.iter().filter(|d| **d <= t).count();
        assert_eq!(set.backend().attempts.len(), expected, "attempts by {t} s");
    }
    let failing: Vec<_> = set.failing().map(|(pid, f)| (pid, f.node.as_str(), f.error.as_str())).collect();
    assert_eq!(failing, [(20, "worker-2", "not a Zeek binary")]);
    assert_eq!(set.attach_errors().get("worker-2"), Some(&(due.len() as u64)));
    assert_eq!(set.running().count(), 0);
}

#[test]
fn a_failure_is_cleared_by_a_later_attach_or_when_its_process_is_gone() {
    let (mut set, at) = host(&[30, 31]);
    set.backend.refuse.extend([(30, "busy"), (31, "busy")]);
    set.refresh(scan(&[(30, "worker-1"), (31, "worker-2")]), at(0.0));
    assert_eq!(set.failing().count(), 2);

    set.backend.refuse.remove(&30);
    set.refresh(scan(&[(30, "worker-1")]), at(1.0));
    assert_eq!(set.failing().count(), 0, "30 attached, 31 gone from the scan");
    assert_eq!(running_nodes(&set), ["worker-1"]);
    // The count of failed attempts stays: it is a counter.
    assert_eq!(set.attach_errors().values().sum::<u64>(), 2);
}

#[test]
fn an_exited_node_is_served_with_its_final_counts_until_retention_ends() {
    let (mut set, at) = host(&[40]);
    set.refresh(scan(&[(40, "worker-1")]), at(0.0));
    set.backend.running.clear();
    set.refresh(scan(&[]), at(5.0));
    assert_eq!(set.backend().detached, [40], "detached once it exited");
    assert_eq!(set.running().count(), 0);
    let served: Vec<_> = set.targets().map(|(pid, t)| (pid, t.is_running(), t.process.is_some())).collect();
    assert_eq!(served, [(40, false, true)], "still served, with its last process stats");

    set.refresh(scan(&[]), at(5.0 + RETAIN.as_secs_f64()));
    assert_eq!(set.targets().count(), 1, "served for exactly the retention");
    assert!(set.backend().forgotten.is_empty());
    set.refresh(scan(&[]), at(6.0 + RETAIN.as_secs_f64()));
    assert_eq!(set.targets().count(), 0);
    assert_eq!(set.backend().forgotten, [40], "its counts deleted from the maps");
    assert_eq!(set.backend().detached, [40], "detached only once");
}

#[test]
fn a_restarted_node_is_attached_under_its_new_pid_beside_its_old_final_counts() {
    let (mut set, at) = host(&[50]);
    set.refresh(scan(&[(50, "worker-2")]), at(0.0));
    // Killed and restarted by the supervisor: the new process fails once, then attaches.
    let host = &mut set.backend;
    host.running = HashSet::from([51]);
    host.refuse.insert(51, "still starting");
    set.refresh(scan(&[(51, "worker-2")]), at(1.0));
    set.backend.refuse.clear();
    set.refresh(scan(&[(51, "worker-2")]), at(2.0));

    let targets: Vec<_> = set.targets().map(|(pid, t)| (pid, t.session.node.as_str(), t.is_running())).collect();
    assert_eq!(targets, [(50, "worker-2", false), (51, "worker-2", true)]);
    assert_eq!(set.attach_errors().get("worker-2"), Some(&1), "kept per node name across PIDs");
    assert_eq!(set.backend().attempts, [50, 51, 51]);
}

#[test]
fn names_are_learnt_from_the_log_streams_while_a_process_runs() {
    let (mut set, at) = host(&[60, 61]);
    set.backend.log_writes = vec![LogKey::default(); 3];
    set.refresh(scan(&[(60, "worker-1"), (61, "worker-2")]), at(0.0));
    set.backend.running.remove(&61);
    set.refresh(scan(&[(60, "worker-1")]), at(1.0));
    set.refresh(scan(&[(60, "worker-1")]), at(2.0));
    let learnt: Vec<_> = set.targets().map(|(pid, t)| (pid, t.session.learnt)).collect();
    // 61 learnt at attach and once more on the refresh that found it gone, then no more.
    assert_eq!(learnt, [(60, (3, 3)), (61, (2, 3))]);
}

#[test]
fn one_pid_is_never_rediscovered_and_is_served_after_exit_until_stop() {
    let backend = FakeHost { running: HashSet::from([70]), ..FakeHost::default() };
    let session = FakeSession { node: "standalone".into(), learnt: (0, 0) };
    let mut set = TargetSet::one(backend, 70, session);
    let start = Instant::now();
    set.refresh(scan(&[(71, "worker-1")]), start);
    assert!(set.backend().attempts.is_empty(), "--pid follows no scan");
    set.backend.running.clear();
    set.refresh(None, start + Duration::from_secs(1));
    set.refresh(None, start + RETAIN * 10);
    let served: Vec<_> = set.targets().map(|(pid, t)| (pid, t.is_running())).collect();
    assert_eq!(served, [(70, false)]);
    assert!(set.backend().forgotten.is_empty());
    assert_eq!(set.backend().detached, [70]);
}
