//! How many entries each BPF map gets. The kernel preallocates hash maps in full (the sampler
//! runs in perf-event context, where 5.15 kernels allow no other kind), so their size is memory
//! held from load to exit whatever the target does. The sizes follow one budget: at the
//! default, every map fits in 16 MiB; `--bpf-memory` scales the ones that grow with the target.
//! A full map drops what does not fit and counts it (`zeek_probe_map_full_drops_total`).
use std::mem::size_of;

use profiler_common::{CallKey, FuncInfo, FuncPtrKey, SampleKey, StackTrace, names};

/// The default budget, MiB.
pub const DEFAULT_BUDGET_MIB: u32 = 16;

/// What the kernel adds to each preallocated hash map element, bytes: `struct htab_elem` (48)
/// and its share of the bucket array (16), as fdinfo's `memlock` shows on 6.18.
const ELEMENT_OVERHEAD: usize = 64;

/// A map that grows with the target, its entries at the default budget, and one entry's bytes.
struct Scaled {
    name: &'static str,
    entries: u32,
    entry_bytes: usize,
}

const fn entry(key: usize, value: usize) -> usize {
    ELEMENT_OVERHEAD + key.next_multiple_of(8) + value.next_multiple_of(8)
}

/// Distinct stacks are most of it; functions next; calls per caller edge and samples per
/// (process, stack) follow them. (7/8 of powers of two: the native stack ring takes the rest.)
const SCALED: [Scaled; 5] = [
    Scaled { name: names::STACKS, entries: 7_168, entry_bytes: entry(8, size_of::<StackTrace>()) },
    Scaled { name: names::FUNCS, entries: 7_168, entry_bytes: entry(8, size_of::<FuncInfo>()) },
    Scaled { name: names::CALLS, entries: 28_672, entry_bytes: entry(size_of::<CallKey>(), 8) },
    Scaled { name: names::SAMPLES, entries: 14_336, entry_bytes: entry(size_of::<SampleKey>(), 8) },
    Scaled { name: names::FUNC_HASHES, entries: 7_168, entry_bytes: entry(size_of::<FuncPtrKey>(), 8) },
];

/// The native stack ring's share of the budget: a 16th, as a power of two (the kernel's rule
/// for ring buffers), 1 MiB at the default. Records are a header and the copied stack
/// (typically 5–15 KiB), so the default holds ~100 samples: 100 ms of one busy Zeek's main
/// thread at 999 Hz, five times the drain period (`unwind::DRAIN_PERIOD`); its other threads'
/// samples (shallower stacks, smaller records) share it.
fn native_ring_bytes(budget_mib: u32) -> u32 {
    let sixteenth = (u64::from(budget_mib.max(DEFAULT_BUDGET_MIB)) << 20) / 16;
    1 << sixteenth.ilog2().min(30)
}

/// The maps' entries for a budget of `budget_mib` (at least the default's); a ring buffer's
/// "entries" are its bytes.
pub fn entries(budget_mib: u32) -> impl Iterator<Item = (&'static str, u32)> {
    let scale = f64::from(budget_mib.max(DEFAULT_BUDGET_MIB)) / f64::from(DEFAULT_BUDGET_MIB);
    SCALED
        .iter()
        .map(move |m| (m.name, (f64::from(m.entries) * scale).min(f64::from(u32::MAX >> 1)) as u32))
        .chain(std::iter::once((names::NATIVE_STACKS, native_ring_bytes(budget_mib))))
}

/// Bytes the scaled maps (the ring among them) take at `budget_mib`, as the kernel allocates them.
pub fn scaled_bytes(budget_mib: u32) -> usize {
    let hashes: usize = entries(budget_mib).zip(&SCALED).map(|((_, n), map)| n as usize * map.entry_bytes).sum();
    hashes + native_ring_bytes(budget_mib) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aya ignores a size for a map name the object lacks: every sized map must be a known one.
    #[test]
    fn every_scaled_map_is_a_map_of_the_object() {
        for map in &SCALED {
            assert!(names::MAPS.contains(&map.name), "{} is not in names::MAPS", map.name);
        }
    }

    #[test]
    fn the_scaled_maps_fit_the_budget_with_room_for_the_fixed_ones() {
        // TARGETS, LOG_WRITES, STATS, the dispatch maps and the per-CPU scratch maps take
        // under 1.5 MiB.
        for budget in [DEFAULT_BUDGET_MIB, 64, 256] {
            let mib = scaled_bytes(budget) as f64 / f64::from(1 << 20);
            assert!(mib <= f64::from(budget) - 1.5, "{budget} MiB budget: {mib:.1} MiB in the scaled maps");
            assert!(mib >= f64::from(budget) * 0.8, "{budget} MiB budget mostly used: {mib:.1} MiB");
        }
    }

    #[test]
    fn a_budget_below_the_default_keeps_the_default() {
        assert_eq!(entries(1).collect::<Vec<_>>(), entries(DEFAULT_BUDGET_MIB).collect::<Vec<_>>());
        let doubled: Vec<_> = entries(2 * DEFAULT_BUDGET_MIB).collect();
        assert!(entries(DEFAULT_BUDGET_MIB).zip(doubled).all(|((_, one), (_, two))| two == 2 * one));
    }

    #[test]
    fn the_native_stack_ring_is_a_power_of_two_share_of_the_budget() {
        assert_eq!(native_ring_bytes(DEFAULT_BUDGET_MIB), 1 << 20);
        assert_eq!(native_ring_bytes(100), 4 << 20);
        assert_eq!(native_ring_bytes(4096), 256 << 20);
        let ring = entries(64).find(|(name, _)| *name == names::NATIVE_STACKS);
        assert_eq!(ring, Some((names::NATIVE_STACKS, 4 << 20)));
    }
}
