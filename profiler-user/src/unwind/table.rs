//! The unwound stacks: counts per (process, script-side stack hash, native frames), so memory
//! follows the distinct stacks, not the samples.
use std::collections::HashMap;

/// Native frame addresses root first (see `ProcessUnwinder::unwind`).
pub type NativeFrames = Vec<u64>;

#[derive(Debug, Clone, Default)]
pub struct NativeStackTable {
    /// (pid, `SampleKey::stack`) → native frames → samples.
    stacks: HashMap<(u32, u64), HashMap<NativeFrames, u64>>,
}

impl NativeStackTable {
    pub fn add(&mut self, pid: u32, stack: u64, frames: NativeFrames) {
        *self.stacks.entry((pid, stack)).or_default().entry(frames).or_default() += 1;
    }

    /// The native stacks of the samples counted under `stack` in `pid`, and how many each.
    pub fn stacks_of(&self, pid: u32, stack: u64) -> impl Iterator<Item = (&NativeFrames, u64)> {
        self.stacks.get(&(pid, stack)).into_iter().flatten().map(|(frames, n)| (frames, *n))
    }

    pub fn forget(&mut self, pid: u32) {
        self.stacks.retain(|(p, _), _| *p != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_distinct_stacks_per_process_and_script_stack() {
        let mut table = NativeStackTable::default();
        table.add(1, 10, vec![1, 2, 3]);
        table.add(1, 10, vec![1, 2, 3]);
        table.add(1, 10, vec![2, 3]);
        table.add(1, 11, vec![1, 4]);
        table.add(2, 10, vec![1, 2, 3]);
        let mut of_10: Vec<_> = table.stacks_of(1, 10).map(|(f, n)| (f.clone(), n)).collect();
        of_10.sort();
        assert_eq!(of_10, [(vec![1, 2, 3], 2), (vec![2, 3], 1)]);
        table.forget(1);
        assert_eq!(table.stacks_of(1, 10).count(), 0);
        assert_eq!(table.stacks_of(1, 11).count(), 0);
        assert_eq!(table.stacks_of(2, 10).count(), 1);
    }
}
