//! Draining the native stack ring buffer: at most a bounded number of records per call, so one
//! drain's work stays bounded however fast the sampler fills the ring.
use aya::maps::{MapData, RingBuf};
use profiler_common::native_stacks::NativeStackHeader;

/// Records handled per drain; the rest wait for the next one (the ring holds them).
pub const MAX_RECORDS_PER_DRAIN: usize = 4096;

/// Hands each waiting record, parsed, to `each`; returns how many were malformed.
pub fn drain(ring: &mut RingBuf<MapData>, mut each: impl FnMut(&NativeStackHeader, &[u8])) -> u64 {
    let mut malformed = 0;
    for _ in 0..MAX_RECORDS_PER_DRAIN {
        let Some(record) = ring.next() else { break };
        match NativeStackHeader::parse(&record) {
            Some((header, stack)) => each(&header, stack),
            None => malformed += 1,
        }
    }
    malformed
}
