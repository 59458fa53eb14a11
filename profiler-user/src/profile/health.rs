//! The probes' own counters → the profile's probe health.
use profiler_common::ProbeStat;

use super::ProbeHealth;
use crate::probes::MapSnapshot;

/// What the probes counted against `pid`: reads that failed, entries dropped, callers not
/// resolved. The user-space counts (`unnamed_*`) are left at zero for the build to fill in.
pub(super) fn probe_health(snapshot: &MapSnapshot, pid: u32) -> ProbeHealth {
    let mut health = ProbeHealth::default();
    for (key, count) in snapshot.stats.iter().filter(|(k, _)| k.pid == pid) {
        match ProbeStat::try_from(key.stat) {
            Ok(ProbeStat::ReadFailed) => health.read_failed += count,
            Ok(ProbeStat::InvalidFunc) => health.invalid_func += count,
            Ok(ProbeStat::MapFull) => health.map_full += count,
            Ok(ProbeStat::CallerUnresolved) => health.caller_unresolved += count,
            Ok(ProbeStat::BeforeInit) => health.before_init += count,
            Ok(ProbeStat::NativeStackDropped) => health.native_stacks_dropped += count,
            Ok(ProbeStat::SampleLost) => health.samples_lost += count,
            Ok(ProbeStat::ThreadStackEndUnknown) => health.thread_stack_end_unknown += count,
            Err(_) => {}
        }
    }
    health
}
