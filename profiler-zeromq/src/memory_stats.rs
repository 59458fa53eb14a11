//! What the nodes last said about their memory: per node, the latest run's biggest containers
//! (top N by footprint, the rest summed into one `<other>` row), the package's own cost, and the
//! node's cheap counters. Memory is bounded: at most `top_n` entries are kept per node however
//! many a run reports (the rest only add to the `<other>` sums as they arrive), at most
//! `MAX_NODES` nodes and `MAX_STATS` counters per node. A node that stops reporting for three
//! intervals is forgotten (interval: the configured one, or the node's own observed reporting
//! interval when that is longer).
//!
//! Reassembly is only what the transports need: a whole run (an event) replaces what was shown;
//! a run in parts (log records) is built up and shown once its summary comes, the next run
//! starts, or no part came for `SETTLE`. The records of one run travel over two connections (the
//! log writer has one per stream), so an entry may follow its run's summary: it still joins
//! that run. With both feeds, the same run comes both ways: its parts add nothing to the whole.
//!
//! Time is passed in (`now`) so that tests can drive it.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    run::{MemoryEntry, RunPart, RunReport},
    top_n::{TopN, cut},
};

pub use crate::top_n::OTHER;
/// Most nodes tracked; reports from further nodes are dropped (and counted so).
pub const MAX_NODES: usize = 256;
/// Most counters kept per node.
pub const MAX_STATS: usize = 64;
pub use crate::top_n::MAX_NAME;
/// Log rows of one run arrive in a burst; a run with no new row for this long is complete.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A node is forgotten after this many reporting intervals of silence.
pub const EXPIRY_INTERVALS: u32 = 3;

#[derive(Debug, Clone)]
struct NodeState {
    last_seen: Instant,
    run: Option<u64>,
    run_started: Option<Instant>,
    /// Time between the starts of the last two runs.
    observed_interval: Option<Duration>,
    cost_seconds: Option<f64>,
    /// The last complete run's entries: what is exported.
    complete: Option<TopN>,
    /// Log rows of a run still arriving, and when the last one came.
    building: Option<(TopN, Instant)>,
    stats: BTreeMap<String, f64>,
}

impl NodeState {
    fn new(now: Instant) -> Self {
        NodeState {
            last_seen: now,
            run: None,
            run_started: None,
            observed_interval: None,
            cost_seconds: None,
            complete: None,
            building: None,
            stats: BTreeMap::new(),
        }
    }

    /// Notes that the node reported for `run` now.
    fn seen(&mut self, run: u64, now: Instant) {
        self.last_seen = now;
        if self.run != Some(run) {
            // A lower run number is a restarted node: a new run all the same, but the time since
            // the old one says nothing about its interval.
            if let (Some(old), Some(started)) = (self.run, self.run_started)
                && run > old
            {
                self.observed_interval = Some(now.saturating_duration_since(started));
            }
            self.run = Some(run);
            self.run_started = Some(now);
        }
    }

    fn set_stats(&mut self, stats: impl IntoIterator<Item = (String, f64)>) {
        self.stats.clear();
        for (name, value) in stats.into_iter().take(MAX_STATS) {
            self.stats.insert(cut(name), value);
        }
    }

    fn promote(&mut self) {
        if let Some((top, _)) = self.building.take() {
            self.complete = Some(top);
        }
    }
}

/// What one node last reported, ready for export.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSnapshot {
    pub node: String,
    pub run: Option<u64>,
    pub cost_seconds: Option<f64>,
    /// How many entries the last complete run had (before the top-N cut).
    pub entries_total: Option<u64>,
    /// Top N by footprint, biggest first, then the `<other>` row if any entry was left out.
    pub entries: Vec<MemoryEntry>,
    pub stats: Vec<(String, f64)>,
}

/// Whether a report was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Yes,
    /// `MAX_NODES` nodes are tracked already.
    NodeLimit,
}

#[derive(Debug, Clone)]
pub struct MemoryStats {
    top_n: usize,
    interval: Duration,
    nodes: BTreeMap<String, NodeState>,
}

impl MemoryStats {
    pub fn new(top_n: usize, interval: Duration) -> Self {
        MemoryStats { top_n, interval, nodes: BTreeMap::new() }
    }

    fn node(&mut self, node: &str, now: Instant) -> Option<&mut NodeState> {
        if !self.nodes.contains_key(node) {
            if self.nodes.len() >= MAX_NODES {
                return None;
            }
            self.nodes.insert(cut(node.to_owned()), NodeState::new(now));
        }
        // Names are cut the same way on insertion.
        self.nodes.get_mut(&cut(node.to_owned()))
    }

    /// Keeps what one message says about a run.
    pub fn apply(&mut self, report: RunReport, now: Instant) -> Kept {
        let top_n = self.top_n;
        let Some(state) = self.node(&report.node, now) else { return Kept::NodeLimit };
        let run = report.run;
        state.seen(run, now);
        match report.part {
            RunPart::Whole { cost_seconds, entries, stats } => {
                state.cost_seconds = Some(cost_seconds);
                let mut top = TopN::new(run, top_n, true);
                entries.into_iter().for_each(|e| top.push(e));
                state.complete = Some(top);
                state.building = None;
                state.set_stats(stats);
            }
            RunPart::Entry(entry) => match (&mut state.complete, &mut state.building) {
                // Already have this run whole from an event (both feeds configured).
                (Some(c), _) if c.run == run && c.whole => {}
                (_, Some((b, last))) if b.run == run => {
                    b.push(entry);
                    *last = now;
                }
                // A straggler of a run already complete.
                (Some(c), _) if c.run == run => c.push(entry),
                _ => {
                    state.promote();
                    let mut top = TopN::new(run, top_n, false);
                    top.push(entry);
                    state.building = Some((top, now));
                }
            },
            RunPart::Summary { cost_seconds, stats } => {
                // The package writes a run's summary after its entries: the run is complete
                // (entries that still come, over the other connection, join it as stragglers).
                if state.building.as_ref().is_some_and(|(b, _)| b.run == run) {
                    state.promote();
                }
                if cost_seconds.is_some() {
                    state.cost_seconds = cost_seconds;
                }
                state.set_stats(stats);
            }
        }
        Kept::Yes
    }

    /// Completes runs whose rows stopped arriving and forgets silent nodes.
    pub fn tick(&mut self, now: Instant) {
        let interval = self.interval;
        self.nodes.retain(|_, state| {
            let expected = state.observed_interval.map_or(interval, |seen| seen.max(interval));
            now.saturating_duration_since(state.last_seen) <= expected * EXPIRY_INTERVALS
        });
        for state in self.nodes.values_mut() {
            if state.building.as_ref().is_some_and(|(_, last)| now.saturating_duration_since(*last) >= SETTLE) {
                state.promote();
            }
        }
    }

    /// Every node's last complete report, by node name.
    pub fn snapshot(&self) -> Vec<NodeSnapshot> {
        self.nodes
            .iter()
            .map(|(node, state)| NodeSnapshot {
                node: node.clone(),
                run: state.run,
                cost_seconds: state.cost_seconds,
                entries_total: state.complete.as_ref().map(TopN::entries),
                entries: state.complete.as_ref().map(TopN::rows).unwrap_or_default(),
                stats: state.stats.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three shapes a run arrives in, as the decoders produce them.
    impl MemoryStats {
        fn report(
            &mut self,
            node: &str,
            run: u64,
            cost_seconds: f64,
            entries: impl IntoIterator<Item = MemoryEntry>,
            stats: impl IntoIterator<Item = (String, f64)>,
            now: Instant,
        ) -> Kept {
            let part = RunPart::Whole {
                cost_seconds,
                entries: entries.into_iter().collect(),
                stats: stats.into_iter().collect(),
            };
            self.apply(RunReport { node: node.into(), run, part }, now)
        }

        fn row(&mut self, node: &str, run: u64, entry: MemoryEntry, now: Instant) -> Kept {
            self.apply(RunReport { node: node.into(), run, part: RunPart::Entry(entry) }, now)
        }

        fn stats(
            &mut self,
            node: &str,
            run: u64,
            cost_seconds: Option<f64>,
            stats: impl IntoIterator<Item = (String, f64)>,
            now: Instant,
        ) -> Kept {
            let part = RunPart::Summary { cost_seconds, stats: stats.into_iter().collect() };
            self.apply(RunReport { node: node.into(), run, part }, now)
        }
    }

    fn entry(module: &str, variable: &str, footprint: Option<u64>, bytes: Option<u64>) -> MemoryEntry {
        MemoryEntry { module: module.into(), variable: variable.into(), footprint, bytes }
    }

    fn names(rows: &[MemoryEntry]) -> Vec<(&str, Option<u64>, Option<u64>)> {
        rows.iter().map(|r| (r.variable.as_str(), r.footprint, r.bytes)).collect()
    }

    #[test]
    fn top_n_plus_an_other_row_summing_the_rest() {
        let t0 = Instant::now();
        let mut m = MemoryStats::new(2, Duration::from_secs(60));
        let entries = vec![
            entry("M", "small", Some(1), Some(10)),
            entry("M", "big", Some(100), None),
            entry("M", "mid", Some(50), Some(500)),
            entry("M", "tiny", Some(0), Some(5)),
            entry("M", "unsized", None, None),
        ];
        let counters = vec![("mem_bytes".to_string(), 1e6)];
        assert_eq!(m.report("worker-1", 1, 0.5, entries, counters, t0), Kept::Yes);
        let s = m.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(
            names(&s[0].entries),
            vec![("big", Some(100), None), ("mid", Some(50), Some(500)), (OTHER, Some(1), Some(15))]
        );
        assert_eq!((s[0].entries_total, s[0].run, s[0].cost_seconds), (Some(5), Some(1), Some(0.5)));
        assert_eq!(s[0].stats, vec![("mem_bytes".to_string(), 1e6)]);
        // A new run replaces the old one whole.
        m.report("worker-1", 2, 0.25, vec![entry("M", "only", Some(3), None)], vec![], t0);
        let s = m.snapshot();
        assert_eq!(names(&s[0].entries), vec![("only", Some(3), None)]);
        assert!(s[0].stats.is_empty());
    }

    #[test]
    fn top_n_is_exact_whatever_the_arrival_order() {
        let t0 = Instant::now();
        let mut state = 0x1234_5678_9abc_def1u64;
        for round in 0..50 {
            let mut values: Vec<u64> = (0..40).map(|i| i * 7 % 23 + i).collect();
            // Shuffle.
            for i in (1..values.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                values.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut m = MemoryStats::new(5, Duration::from_secs(60));
            let entries = values.iter().enumerate().map(|(i, v)| entry("M", &format!("v{i}"), Some(*v), None));
            m.report("n", round, 0.0, entries, vec![], t0);
            let rows = &m.snapshot()[0].entries;
            let mut sorted = values.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let top: Vec<u64> = rows[..5].iter().map(|r| r.footprint.unwrap()).collect();
            assert_eq!(top, sorted[..5]);
            assert_eq!(rows[5].footprint, Some(sorted[5..].iter().sum()));
        }
    }

    #[test]
    fn log_rows_become_visible_once_the_run_settles_or_the_next_starts() {
        let t0 = Instant::now();
        let mut m = MemoryStats::new(10, Duration::from_secs(60));
        m.row("w", 1, entry("M", "a", Some(1), None), t0);
        m.row("w", 1, entry("M", "b", Some(2), None), t0);
        m.tick(t0 + Duration::from_millis(100));
        assert!(m.snapshot()[0].entries.is_empty(), "run 1 still arriving");
        m.tick(t0 + SETTLE);
        assert_eq!(names(&m.snapshot()[0].entries), vec![("b", Some(2), None), ("a", Some(1), None)]);
        // Run 2's first row does not hide run 1; its arrival completes whatever was building.
        let t1 = t0 + Duration::from_secs(60);
        m.row("w", 2, entry("M", "c", Some(3), None), t1);
        assert_eq!(m.snapshot()[0].entries.len(), 2);
        m.row("w", 3, entry("M", "d", Some(4), None), t1 + Duration::from_secs(60));
        assert_eq!(names(&m.snapshot()[0].entries), vec![("c", Some(3), None)]);
        // Run 3's stats row completes it at once, and a straggler still joins it.
        m.stats("w", 3, Some(0.1), vec![("globals".into(), 800.0)], t1 + Duration::from_secs(60));
        m.row("w", 3, entry("M", "e", Some(5), None), t1 + Duration::from_secs(60));
        let s = &m.snapshot()[0];
        assert_eq!(names(&s.entries), vec![("e", Some(5), None), ("d", Some(4), None)]);
        assert_eq!((s.run, s.cost_seconds, s.stats.clone()), (Some(3), Some(0.1), vec![("globals".into(), 800.0)]));
    }

    #[test]
    fn rows_of_a_run_already_reported_whole_are_not_counted_twice() {
        let t0 = Instant::now();
        let mut m = MemoryStats::new(1, Duration::from_secs(60));
        m.report("w", 5, 0.0, vec![entry("M", "a", Some(9), None), entry("M", "b", Some(1), None)], vec![], t0);
        m.row("w", 5, entry("M", "b", Some(1), None), t0);
        m.tick(t0 + SETTLE);
        assert_eq!(names(&m.snapshot()[0].entries), vec![("a", Some(9), None), (OTHER, Some(1), None)]);
    }

    #[test]
    fn silent_nodes_expire_after_three_intervals() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut m = MemoryStats::new(10, minute);
        m.report("steady", 1, 0.0, vec![], vec![], t0);
        m.report("stopped", 1, 0.0, vec![], vec![], t0);
        // Both report every 5 minutes: their own interval is what counts for them.
        m.report("stopped", 2, 0.0, vec![], vec![], t0 + 5 * minute);
        m.report("steady", 2, 0.0, vec![], vec![], t0 + 5 * minute);
        m.report("steady", 3, 0.0, vec![], vec![], t0 + 10 * minute);
        m.tick(t0 + 20 * minute);
        assert_eq!(m.snapshot().len(), 2, "stopped: silent for exactly 3 × 5 min, still there");
        m.tick(t0 + 20 * minute + Duration::from_secs(1));
        let left: Vec<_> = m.snapshot().into_iter().map(|n| n.node).collect();
        assert_eq!(left, vec!["steady"], "stopped: silent for more than 3 × 5 min");
        // A node seen once: the configured interval.
        m.report("new", 1, 0.0, vec![], vec![], t0 + 20 * minute);
        m.tick(t0 + 23 * minute);
        assert_eq!(m.snapshot().len(), 2);
        m.tick(t0 + 23 * minute + Duration::from_secs(1));
        let left: Vec<_> = m.snapshot().into_iter().map(|n| n.node).collect();
        assert_eq!(left, vec!["steady"], "new: silent for more than 3 × 1 min");
        // A restarted node (run numbers start over) keeps being tracked.
        m.report("steady", 1, 0.0, vec![], vec![], t0 + 20 * minute);
        assert_eq!(m.snapshot()[0].run, Some(1));
    }

    #[test]
    fn node_count_and_names_are_bounded() {
        let t0 = Instant::now();
        let mut m = MemoryStats::new(1, Duration::from_secs(60));
        for i in 0..MAX_NODES {
            assert_eq!(m.stats(&format!("n{i}"), 1, None, vec![], t0), Kept::Yes);
        }
        assert_eq!(m.stats("one-too-many", 1, None, vec![], t0), Kept::NodeLimit);
        assert_eq!(m.stats("n0", 2, None, vec![], t0), Kept::Yes, "known nodes still report");
        let mut m = MemoryStats::new(1, Duration::from_secs(60));
        let long = "é".repeat(200);
        m.report(&long, 1, 0.0, vec![entry(&long, &long, Some(1), None)], (0..100).map(|i| (format!("s{i}"), 1.0)), t0);
        m.report(&long, 2, 0.0, vec![entry(&long, &long, Some(1), None)], vec![], t0);
        let s = m.snapshot();
        assert_eq!(s.len(), 1, "a cut name is the same node");
        assert!(s[0].node.len() <= MAX_NAME && s[0].entries[0].variable.len() <= MAX_NAME);
        m.report("x", 1, 0.0, vec![], (0..100).map(|i| (format!("s{i}"), 1.0)), t0);
        let x = m.snapshot().into_iter().find(|n| n.node == "x").unwrap();
        assert_eq!(x.stats.len(), MAX_STATS);
    }
}
