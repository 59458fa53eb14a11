//! Log records counted per path and node, with bounded cardinality: past `MAX_PATHS` distinct
//! paths, `MAX_NODES` distinct nodes or `MAX_SERIES` pairs, records are counted under `<other>`.
use std::collections::{BTreeMap, BTreeSet};

use super::memory_stats::OTHER;

pub const MAX_PATHS: usize = 64;
pub const MAX_NODES: usize = 256;
pub const MAX_SERIES: usize = 1024;
/// Node label of records that name none.
pub const UNKNOWN_NODE: &str = "unknown";

#[derive(Debug, Clone, Default)]
pub struct LogCounts {
    paths: BTreeSet<String>,
    nodes: BTreeSet<String>,
    counts: BTreeMap<(String, String), u64>,
}

impl LogCounts {
    fn label(set: &mut BTreeSet<String>, max: usize, value: &str) -> String {
        if set.contains(value) {
            return value.to_owned();
        }
        if set.len() < max {
            set.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }

    pub fn count(&mut self, path: &str, node: Option<&str>) {
        let path = Self::label(&mut self.paths, MAX_PATHS, path);
        let node = Self::label(&mut self.nodes, MAX_NODES, node.unwrap_or(UNKNOWN_NODE));
        let mut key = (path, node);
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_SERIES {
            key = (OTHER.to_owned(), OTHER.to_owned());
        }
        *self.counts.entry(key).or_default() += 1;
    }

    /// (path, node, records), by path then node.
    pub fn snapshot(&self) -> Vec<(String, String, u64)> {
        self.counts.iter().map(|((p, n), c)| (p.clone(), n.clone(), *c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_path_and_node_with_bounded_labels() {
        let mut c = LogCounts::default();
        c.count("conn", Some("worker-1"));
        c.count("conn", Some("worker-1"));
        c.count("dns", None);
        assert_eq!(c.snapshot(), vec![("conn".into(), "worker-1".into(), 2), ("dns".into(), UNKNOWN_NODE.into(), 1)]);
        for i in 0..MAX_PATHS * 2 {
            c.count(&format!("p{i}"), Some("worker-1"));
        }
        for i in 0..MAX_NODES * 2 {
            c.count("conn", Some(&format!("n{i}")));
        }
        let s = c.snapshot();
        assert!(s.len() <= MAX_SERIES + 1);
        let other_paths: u64 = s.iter().filter(|(p, _, _)| p == OTHER).map(|(_, _, n)| n).sum();
        let other_nodes: u64 = s.iter().filter(|(p, n, _)| p == "conn" && n == OTHER).map(|(_, _, n)| n).sum();
        assert_eq!(other_paths, (MAX_PATHS * 2 - (MAX_PATHS - 2)) as u64, "paths past the limit");
        assert_eq!(other_nodes, (MAX_NODES * 2 - (MAX_NODES - 2)) as u64, "nodes past the limit");
        let total: u64 = s.iter().map(|(_, _, n)| n).sum();
        assert_eq!(total, 3 + (MAX_PATHS * 2 + MAX_NODES * 2) as u64, "nothing is lost");
    }
}
