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

    /// What was added since `earlier` (a copy of this table taken before): a window of time,
    /// as `profile::window` cuts the other counters. A count below its earlier value was
    /// started again (the process forgotten, its PID reused): all of it is new.
    pub fn since(self, earlier: &Self) -> Self {
        let mut stacks = self.stacks;
        for (key, natives) in &mut stacks {
            let before = earlier.stacks.get(key);
            for (frames, n) in natives.iter_mut() {
                match before.and_then(|b| b.get(frames)) {
                    Some(&then) if then <= *n => *n -= then,
                    _ => {}
                }
            }
            natives.retain(|_, n| *n > 0);
        }
        stacks.retain(|_, natives| !natives.is_empty());
        Self { stacks }
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
        let earlier = table.clone();
        table.add(1, 10, vec![2, 3]);
        table.add(1, 12, vec![5]);
        let mut grown: Vec<_> = table.clone().since(&earlier).stacks.into_iter().collect();
        grown.sort_by_key(|(key, _)| *key);
        let expected = [((1, 10), HashMap::from([(vec![2, 3], 1)])), ((1, 12), HashMap::from([(vec![5], 1)]))];
        assert_eq!(grown, expected);
        table.forget(1);
        assert_eq!(table.stacks_of(1, 10).count(), 0);
        assert_eq!(table.stacks_of(1, 11).count(), 0);
        assert_eq!(table.stacks_of(2, 10).count(), 1);
    }
}
