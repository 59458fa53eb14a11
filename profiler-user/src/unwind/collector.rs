//! The thread that drains the native stack ring every `DRAIN_PERIOD` and unwinds what it
//! finds; `snapshot` drains once more first, so a profile includes every record sent so far.
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use aya::maps::{MapData, RingBuf};

use super::{DRAIN_PERIOD, NativeStackTable, binary_unwind_data::BinaryCache, process_unwinder::ProcessUnwinder, ring};

struct Collector {
    ring: RingBuf<MapData>,
    binaries: BinaryCache,
    processes: HashMap<u32, ProcessUnwinder>,
    table: NativeStackTable,
}

impl Collector {
    fn drain(&mut self) {
        let Self { ring, binaries, processes, table } = self;
        ring::drain(ring, |header, stack| {
            let unwinder = processes.entry(header.pid).or_insert_with(|| ProcessUnwinder::new(header.pid));
            table.add(header.pid, header.stack, unwinder.unwind(header, stack, binaries));
        });
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

    /// Drops what was unwound for `pid` (a detached process's counts are deleted too).
    pub fn forget(&self, pid: u32) {
        let mut collector = lock(&self.collector);
        collector.table.forget(pid);
        collector.processes.remove(&pid);
    }
}

/// The collector, also after a panic elsewhere left the lock poisoned (its state is counts).
fn lock(collector: &Mutex<Collector>) -> MutexGuard<'_, Collector> {
    collector.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
