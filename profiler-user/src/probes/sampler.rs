//! The CPU sampler's perf events: for each target, one task-clock event per thread, each
//! inherited by the threads (and processes) that thread starts, running the `cpu_sample`
//! program every `1/hz` seconds of that thread's own CPU time.
//!
//! Why the thread's clock and not each CPU's: a CPU-clock timer fires at wall-clock instants on
//! every CPU, whoever runs there, and costs a program run on each CPU of a 64-core sensor. The
//! task clock runs only while the thread does and starts each period where its CPU time left
//! off, so every sample stands for `1/hz` seconds of that thread's CPU time, however loaded the
//! machine.
use std::fs;

use aya::programs::{
    PerfEvent, ProgramError,
    perf_event::{PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy, SoftwareEvent},
};

/// Rounds of listing `/proc/PID/task`: a thread started by a not yet sampled thread while
/// the events are opened is found by the next round.
const MAX_ROUNDS: usize = 16;

/// Opens the sampler's events on every thread of `pid`; all or nothing. A thread that exits
/// meanwhile is skipped; the process itself having gone is an error.
pub fn sample_threads(program: &mut PerfEvent, pid: u32, hz: u64) -> Result<Vec<PerfEventLinkId>, ProgramError> {
    let period = 1_000_000_000 / hz.max(1);
    let mut links = Vec::new();
    let mut sampled = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let new: Vec<u32> = threads(pid)?.into_iter().filter(|tid| !sampled.contains(tid)).collect();
        if new.is_empty() {
            break;
        }
        for tid in new {
            let opened = program.attach(
                PerfEventConfig::Software(SoftwareEvent::TaskClock),
                PerfEventScope::OneProcess { pid: tid, cpu: None },
                SamplePolicy::Period(period),
                true,
            );
            match opened {
                Ok(link) => links.push(link),
                // Gone between the listing and the open: it has no CPU time left to sample.
                Err(_) if tid != pid && !is_thread_of(pid, tid) => {}
                Err(err) => {
                    release(program, links);
                    return Err(err);
                }
            }
            sampled.push(tid);
        }
    }
    Ok(links)
}

/// Closes a target's sampler events (those of exited threads are closed as well).
pub fn release(program: &mut PerfEvent, links: Vec<PerfEventLinkId>) {
    for link in links {
        let _ = program.detach(link);
    }
}

/// The threads of `pid` now.
fn threads(pid: u32) -> Result<Vec<u32>, ProgramError> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task"))?;
    Ok(tasks.filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok()).collect())
}

fn is_thread_of(pid: u32, tid: u32) -> bool {
    fs::metadata(format!("/proc/{pid}/task/{tid}")).is_ok()
}
