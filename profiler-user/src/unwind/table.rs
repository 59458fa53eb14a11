//! The unwound stacks: counts per (process, script-side stack hash, native frames), so memory
//! follows the distinct stacks, not the samples; and per process how many records came and
//! how many unwound to the stack's root.
use std::collections::HashMap;

use super::process_unwinder::Unwound;

/// Native frame addresses root first (see `Unwound::frames`).
pub type NativeFrames = Vec<u64>;

/// What the records of one process came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativeStackCounts {
    /// Records received (each is one main-thread sample).
    pub records: u64,
    /// Of them, unwound to the stack's root.
    pub complete: u64,
}

#[derive(Debug, Clone, Default)]
pub struct NativeStackTable {
    /// (pid, `SampleKey::stack`) → native frames → samples.
    stacks: HashMap<(u32, u64), HashMap<NativeFrames, u64>>,
    counts: HashMap<u32, NativeStackCounts>,
}

impl NativeStackTable {
    pub fn add(&mut self, pid: u32, stack: u64, unwound: Unwound) {
        let counts = self.counts.entry(pid).or_default();
        counts.records += 1;
        counts.complete += u64::from(unwound.complete);
        *self.stacks.entry((pid, stack)).or_default().entry(unwound.frames).or_default() += 1;
    }

    /// The native stacks of the samples counted under `stack` in `pid`, and how many each.
    pub fn stacks_of(&self, pid: u32, stack: u64) -> impl Iterator<Item = (&NativeFrames, u64)> {
        self.stacks.get(&(pid, stack)).into_iter().flatten().map(|(frames, n)| (frames, *n))
    }

    pub fn counts(&self, pid: u32) -> NativeStackCounts {
        self.counts.get(&pid).copied().unwrap_or_default()
    }

    pub fn forget(&mut self, pid: u32) {
        self.stacks.retain(|(p, _), _| *p != pid);
        self.counts.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_distinct_stacks_per_process_and_script_stack() {
        let mut table = NativeStackTable::default();
        let unwound = |frames: &[u64], complete| Unwound { frames: frames.to_vec(), complete };
        table.add(1, 10, unwound(&[1, 2, 3], true));
        table.add(1, 10, unwound(&[1, 2, 3], true));
        table.add(1, 10, unwound(&[2, 3], false));
        table.add(1, 11, unwound(&[1, 4], true));
        table.add(2, 10, unwound(&[1, 2, 3], true));
        let mut of_10: Vec<_> = table.stacks_of(1, 10).map(|(f, n)| (f.clone(), n)).collect();
        of_10.sort();
        assert_eq!(of_10, [(vec![1, 2, 3], 2), (vec![2, 3], 1)]);
        assert_eq!(table.counts(1), NativeStackCounts { records: 4, complete: 3 });
        table.forget(1);
        assert_eq!(table.stacks_of(1, 10).count(), 0);
        assert_eq!(table.counts(1), NativeStackCounts::default());
        assert_eq!(table.stacks_of(2, 10).count(), 1);
    }
}
