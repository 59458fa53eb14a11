//! The thread that drains the native stack ring every `DRAIN_PERIOD` and unwinds what it
//! finds; `snapshot` drains once more first, so a profile includes every record sent so far.
//! Whoever symbolises ahead of the report (`record`) can follow the addresses as they are
//! first unwound (`NewAddresses`).
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use aya::maps::{MapData, RingBuf};

use super::{DRAIN_PERIOD, NativeStackTable, binary_unwind_data::BinaryCache, process_unwinder::ProcessUnwinder, ring};
use crate::poisoned_lock::lock;

struct Collector {
    ring: RingBuf<MapData>,
    binaries: BinaryCache,
    processes: HashMap<u32, ProcessUnwinder>,
    table: NativeStackTable,
    /// Followed once someone asks (`NativeStackCollector::new_addresses`).
    fresh: Option<FreshAddresses>,
}

/// The (pid, address) pairs unwound so far, and those not handed out yet.
#[derive(Default)]
struct FreshAddresses {
    seen: HashSet<(u32, u64)>,
    new: Vec<(u32, u64)>,
}

impl FreshAddresses {
    fn note(&mut self, pid: u32, frames: &[u64]) {
        let unseen = frames.iter().filter(|address| self.seen.insert((pid, **address)));
        self.new.extend(unseen.map(|address| (pid, *address)));
    }

    /// `pid`'s addresses noted since the last call (the others' stay for theirs).
    fn take(&mut self, pid: u32) -> Vec<u64> {
        let (ours, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.new).into_iter().partition(|(p, _)| *p == pid);
        self.new = others;
        ours.into_iter().map(|(_, address)| address).collect()
    }

    fn forget(&mut self, pid: u32) {
        self.seen.retain(|(p, _)| *p != pid);
        self.new.retain(|(p, _)| *p != pid);
    }
}

impl Collector {
    fn drain(&mut self) {
        let Self { ring, binaries, processes, table, fresh } = self;
        ring::drain(ring, |header, stack| {
            let unwinder = processes.entry(header.pid).or_insert_with(|| ProcessUnwinder::new(header.pid));
            let frames = unwinder.unwind(header, stack, binaries);
            if let Some(fresh) = fresh {
                fresh.note(header.pid, &frames);
            }
            table.add(header.pid, header.stack, frames);
        });
    }
}

/// The native addresses of a collector's stacks as they are first unwound.
#[derive(Clone)]
pub struct NewAddresses(Arc<Mutex<Collector>>);

impl NewAddresses {
    /// `pid`'s addresses first unwound since the last call (the others' stay for theirs),
    /// after unwinding what waits in the ring: a caller that looks more often than every
    /// `DRAIN_PERIOD` (`record`'s symbol prefetch) gets them sooner.
    pub fn take(&self, pid: u32) -> Vec<u64> {
        let mut collector = lock(&self.0);
        collector.drain();
        collector.fresh.as_mut().map(|fresh| fresh.take(pid)).unwrap_or_default()
    }
}

pub struct NativeStackCollector {
    collector: Arc<Mutex<Collector>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NativeStackCollector {
    /// Starts draining `ring` on a thread of its own.
    pub fn start(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        let collector = Arc::new(Mutex::new(Collector {
            ring,
            binaries: BinaryCache::default(),
            processes: HashMap::new(),
            table: NativeStackTable::default(),
            fresh: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (collector, stop) = (Arc::clone(&collector), Arc::clone(&stop));
            std::thread::Builder::new().name("native-stacks".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Woken early to stop: a report waits for this thread to end.
                    std::thread::park_timeout(DRAIN_PERIOD);
                    lock(&collector).drain();
                }
            })?
        };
        Ok(Self { collector, stop, thread: Some(thread) })
    }

    /// The stacks unwound so far, after draining what waits in the ring.
    pub fn snapshot(&self) -> NativeStackTable {
        let mut collector = lock(&self.collector);
        collector.drain();
        collector.table.clone()
    }

    /// Follows the addresses of the stacks unwound from now on, as they are first seen.
    pub fn new_addresses(&self) -> NewAddresses {
        lock(&self.collector).fresh.get_or_insert_with(FreshAddresses::default);
        NewAddresses(Arc::clone(&self.collector))
    }

    /// Drops what was unwound for `pid` (a detached process's counts are deleted too).
    pub fn forget(&self, pid: u32) {
        let mut collector = lock(&self.collector);
        collector.table.forget(pid);
        collector.processes.remove(&pid);
        if let Some(fresh) = &mut collector.fresh {
            fresh.forget(pid);
        }
    }
}

impl Drop for NativeStackCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_addresses_are_handed_out_once_per_process() {
        let mut fresh = FreshAddresses::default();
        fresh.note(1, &[10, 11, 12]);
        fresh.note(1, &[10, 11, 13]);
        fresh.note(2, &[10]);
        assert_eq!(fresh.take(1), [10, 11, 12, 13]);
        assert!(fresh.take(1).is_empty(), "handed out already");
        fresh.note(1, &[12, 14]);
        assert_eq!(fresh.take(1), [14], "only what was never seen");
        fresh.forget(2);
        assert!(fresh.take(2).is_empty(), "forgotten before it was taken");
        fresh.note(2, &[10]);
        assert_eq!(fresh.take(2), [10], "a forgotten process starts afresh");
    }
}
