//! A window of time out of the BPF maps' cumulative counters: what two snapshots differ by.
use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

use crate::probes::MapSnapshot;

/// `later` with every counter (calls, log writes, probe stats, samples, unwound native stacks)
/// replaced by how much it grew since `earlier`: a profile built from it covers only the time
/// between the two.
/// Names and stacks are kept whole, they are not counts; long dispatches are those listed since.
pub fn counted_since(earlier: &MapSnapshot, later: MapSnapshot) -> MapSnapshot {
    let listed: HashSet<_> = earlier.long_dispatches.iter().map(|(k, _)| *k).collect();
    MapSnapshot {
        calls: growth(&earlier.calls, later.calls),
        log_writes: growth(&earlier.log_writes, later.log_writes),
        stats: growth(&earlier.stats, later.stats),
        samples: growth(&earlier.samples, later.samples),
        dispatch_buckets: growth(&earlier.dispatch_buckets, later.dispatch_buckets),
        dispatch_nanos: growth(&earlier.dispatch_nanos, later.dispatch_nanos),
        long_dispatches: later.long_dispatches.into_iter().filter(|(k, _)| !listed.contains(k)).collect(),
        native_stacks: later.native_stacks.since(&earlier.native_stacks),
        ..later
    }
}

/// Each key's growth, those that did not grow left out. A count below its earlier value was
/// started again (a PID's counts deleted after it exited, then the PID reused): all of it is new.
fn growth<K: Copy + Eq + Hash>(earlier: &[(K, u64)], later: Vec<(K, u64)>) -> Vec<(K, u64)> {
    let before: HashMap<K, u64> = earlier.iter().copied().collect();
    later
        .into_iter()
        .map(|(key, now)| match before.get(&key) {
            Some(&then) if then <= now => (key, now - then),
            _ => (key, now),
        })
        .filter(|(_, grown)| *grown > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use profiler_common::{CallKey, SampleKey};

    use super::*;

    fn sample(stack: u64) -> SampleKey {
        SampleKey { pid: 7, _pad: 0, stack }
    }

    #[test]
    fn counts_are_what_grew_between_the_snapshots() {
        let earlier = MapSnapshot {
            samples: vec![(sample(1), 10), (sample(2), 5), (sample(3), 9)],
            calls: vec![(CallKey { pid: 7, _pad: 0, callee: 1, caller: 0 }, 100)],
            ..Default::default()
        };
        let later = MapSnapshot {
            // Stack 2 did not grow, stack 3 was counted again from zero, stack 4 is new.
            samples: vec![(sample(1), 14), (sample(2), 5), (sample(3), 2), (sample(4), 6)],
            calls: vec![(CallKey { pid: 7, _pad: 0, callee: 1, caller: 0 }, 130)],
            ..Default::default()
        };
        let window = counted_since(&earlier, later);
        assert_eq!(window.samples, [(sample(1), 4), (sample(3), 2), (sample(4), 6)]);
        assert_eq!(window.calls[0].1, 30);
    }
}
