//! Long event dispatches of one process: the histogram per event and the longest ones, each
//! with the stack sampled most in it. Durations are samples times the sample period, so
//! accurate to one period; dispatches of fewer than `MIN_LONG_DISPATCH_PERIODS` samples are not
//! recorded at all.
use std::collections::BTreeMap;

use profiler_common::dispatches::{DISPATCH_BUCKET_BOUNDS, MIN_LONG_DISPATCH_PERIODS};

use super::{DispatchHistogram, LongDispatchRow, LongDispatches};
use crate::{
    probes::MapSnapshot,
    symbolize::{FunctionNames, StackDecoder},
};

/// How many of the longest dispatches a profile lists.
pub const LONGEST_LISTED: usize = 20;

/// The line `check` and `record` show on long dispatches, given why they are unavailable.
pub fn dispatch_line(unavailable: Option<&str>) -> String {
    match unavailable {
        None => format!(
            "long dispatches: measured (event dispatches of {MIN_LONG_DISPATCH_PERIODS} sample periods or more)"
        ),
        Some(why) => format!("long dispatches: unavailable ({why})"),
    }
}

/// `pid`'s long dispatches in `snapshot`, sampled at `hz`.
pub(super) fn long_dispatches(
    snapshot: &MapSnapshot,
    pid: u32,
    hz: u64,
    names: &FunctionNames,
    decoder: &mut StackDecoder,
) -> LongDispatches {
    let period_seconds = 1.0 / hz.max(1) as f64;
    let mut events: BTreeMap<&str, DispatchHistogram> = BTreeMap::new();
    for (key, count) in snapshot.dispatch_buckets.iter().filter(|(k, _)| k.pid == pid) {
        let h = histogram(&mut events, names.shown_name(key.event));
        if let Some(bucket) = h.bucket_counts.get_mut(key.bucket as usize) {
            *bucket += count;
            h.count += count;
        }
    }
    for (key, nanos) in snapshot.dispatch_nanos.iter().filter(|(k, _)| k.pid == pid) {
        histogram(&mut events, names.shown_name(key.event)).sum_seconds += *nanos as f64 * 1e-9;
    }

    let mut longest: Vec<_> = snapshot.long_dispatches.iter().filter(|(k, _)| k.pid == pid).collect();
    longest.sort_by(|(ka, a), (kb, b)| b.nanos.cmp(&a.nanos).then(ka.seq.cmp(&kb.seq)));
    let longest = longest
        .into_iter()
        .take(LONGEST_LISTED)
        .map(|(key, d)| {
            let top_stack = snapshot
                .stacks
                .get(&d.top_stack)
                .and_then(|t| decoder.decode(t))
                .map(|frames| frames.into_iter().map(|f| f.frame).collect())
                .unwrap_or_default();
            LongDispatchRow {
                event: names.shown_name(d.event).to_owned(),
                seq: key.seq,
                seconds: d.nanos as f64 * 1e-9,
                samples: d.samples,
                top_stack,
                top_stack_samples: d.top_stack_samples,
            }
        })
        .collect();
    LongDispatches {
        period_seconds,
        min_periods: MIN_LONG_DISPATCH_PERIODS,
        bucket_bounds_seconds: DISPATCH_BUCKET_BOUNDS.iter().map(|b| f64::from(*b) * period_seconds).collect(),
        events: events.into_values().collect(),
        longest,
    }
}

/// The histogram of `event`, empty when new.
fn histogram<'m, 'n>(
    events: &'m mut BTreeMap<&'n str, DispatchHistogram>,
    event: &'n str,
) -> &'m mut DispatchHistogram {
    events.entry(event).or_insert_with(|| DispatchHistogram {
        event: event.to_owned(),
        bucket_counts: vec![0; DISPATCH_BUCKET_BOUNDS.len() + 1],
        count: 0,
        sum_seconds: 0.0,
    })
}

/// The event and stack hashes `pid`'s long dispatches name, for `FunctionNames`.
pub(super) fn named_hashes(snapshot: &MapSnapshot, pid: u32) -> impl Iterator<Item = u64> + '_ {
    let buckets = snapshot.dispatch_buckets.iter().filter(move |(k, _)| k.pid == pid).map(|(k, _)| k.event);
    let listed = snapshot.long_dispatches.iter().filter(move |(k, _)| k.pid == pid);
    let top_stacks = listed.clone().filter_map(|(_, d)| snapshot.stacks.get(&d.top_stack));
    buckets
        .chain(listed.map(|(_, d)| d.event))
        .chain(top_stacks.flat_map(|t| t.frames().iter().copied().chain([t.leaf])))
}

#[cfg(test)]
mod tests {
    use profiler_common::{
        DispatchBucketKey, DispatchEventKey, DispatchKey, LongDispatch, StackKind, StackTrace,
        name_hash::name_hash_bytes,
    };

    use super::*;
    use crate::{
        binary::symbols::NativeSymbols,
        symbolize::{KernelSymbols, LibrarySymbols, NativeCode, function_names::func_info},
    };

    #[test]
    fn histogram_per_event_and_the_longest_first_with_their_top_stacks() {
        let (slow, fast, helper) =
            (name_hash_bytes(b"slow_event"), name_hash_bytes(b"fast_event"), name_hash_bytes(b"Site::helper"));
        let mut snap = MapSnapshot::default();
        snap.funcs.insert(slow, func_info("slow_event", 0, 1, "", 0));
        snap.funcs.insert(fast, func_info("fast_event", 0, 1, "", 0));
        snap.funcs.insert(helper, func_info("Site::helper", 0, 0, "site.zeek", 3));
        let mut trace = StackTrace::zeroed();
        trace.kind = StackKind::Script as u32;
        trace.depth = 2;
        trace.frames[..2].copy_from_slice(&[slow, helper]);
        snap.stacks.insert(77, trace);
        let bucket = |pid, bucket, event| DispatchBucketKey { pid, bucket, event };
        snap.dispatch_buckets =
            vec![(bucket(5, 0, fast), 3), (bucket(5, 3, slow), 1), (bucket(5, 6, slow), 1), (bucket(6, 0, slow), 9)];
        let event = |pid, event| DispatchEventKey { pid, _pad: 0, event };
        let ms = 1_000_000;
        snap.dispatch_nanos = vec![(event(5, fast), 6 * ms), (event(5, slow), 80 * ms), (event(6, slow), 18 * ms)];
        let dispatch = |seq, event, samples: u32| {
            let nanos = u64::from(samples) * ms;
            let d = LongDispatch { event, top_stack: 77, nanos, samples, top_stack_samples: samples - 1 };
            (DispatchKey { pid: 5, _pad: 0, seq }, d)
        };
        snap.long_dispatches = vec![dispatch(10, fast, 2), dispatch(11, slow, 15), dispatch(12, slow, 65)];

        let names = FunctionNames::new(&snap.funcs, named_hashes(&snap, 5));
        let (natives, libraries, kernel) = (NativeSymbols::default(), LibrarySymbols::new(0), KernelSymbols::default());
        let code = NativeCode::symbols_only(&natives, &libraries, &kernel);
        let mut decoder = StackDecoder::new(&names, code);
        let d = long_dispatches(&snap, 5, 1000, &names, &mut decoder);

        assert_eq!(d.bucket_bounds_seconds.first(), Some(&0.002));
        let slow_row = d.events.iter().find(|h| h.event == "slow_event").unwrap();
        assert_eq!((slow_row.count, slow_row.bucket_counts[3], slow_row.bucket_counts[6]), (2, 1, 1));
        assert!((slow_row.sum_seconds - 0.080).abs() < 1e-9, "{}", slow_row.sum_seconds);
        assert_eq!(d.events.len(), 2, "pid 6 stays out");
        let longest: Vec<_> = d.longest.iter().map(|r| (r.seq, r.event.as_str(), r.samples)).collect();
        assert_eq!(longest, [(12, "slow_event", 65), (11, "slow_event", 15), (10, "fast_event", 2)]);
        assert!((d.longest[0].seconds - 0.065).abs() < 1e-9);
        let top: Vec<_> = d.longest[0].top_stack.iter().map(|f| f.name.as_str()).collect();
        assert_eq!((top, d.longest[0].top_stack_samples), (vec!["slow_event", "Site::helper"], 64));
    }
}
