//! The CPU sampler: one perf event per online CPU on the software CPU clock, serving every
//! target at once (the program samples only registered PIDs).
use aya::{
    Ebpf,
    programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    util::online_cpus,
};
use profiler_common::names;

use super::{ProbeError, programs::perf_event};

#[derive(Default)]
pub struct Sampler {
    started: bool,
}

impl Sampler {
    /// Starts sampling at `hz` on every online CPU, once.
    pub fn start(&mut self, ebpf: &mut Ebpf, hz: u64) -> Result<(), ProbeError> {
        if self.started {
            return Ok(());
        }
        let program = perf_event(ebpf, names::CPU_SAMPLE)?;
        for cpu in online_cpus().map_err(|(_, source)| ProbeError::Cpus { source })? {
            program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|source| ProbeError::Sampling { hz, source })?;
        }
        self.started = true;
        Ok(())
    }
}
