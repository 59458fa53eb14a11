//! Long event dispatches as a Prometheus histogram per node, pid and event: how long the main
//! thread stayed in one event before it got back to the packet source. Buckets start at two
//! sample periods (shorter dispatches are not observed); targets that cannot tell dispatches
//! apart (Zeek < 7.2) export no series.
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};

use super::metrics::{TargetMetrics, assemble, base_labels, labelled, with};

pub const NAME: &str = "zeek_probe_event_dispatch_seconds";

pub(super) fn family(targets: &[TargetMetrics]) -> Option<MetricFamily> {
    let metrics: Vec<Metric> = targets
        .iter()
        .filter_map(|t| Some((t, t.profile.long_dispatches.as_ref()?)))
        .flat_map(|(t, d)| {
            d.events.iter().map(move |h| {
                let mut cumulative = 0;
                let buckets = d.bucket_bounds_seconds.iter().zip(&h.bucket_counts).map(|(bound, count)| {
                    cumulative += count;
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative);
                    b
                });
                let mut histogram = Histogram::default();
                histogram.set_bucket(buckets.collect());
                histogram.set_sample_count(h.count);
                histogram.set_sample_sum(h.sum_seconds);
                let mut m = labelled(with(base_labels(t), &[("event", &h.event)]));
                m.set_histogram(histogram);
                m
            })
        })
        .collect();
    assemble(
        NAME,
        "Event dispatches on the main thread by duration, first to last sample plus one period (2 sample periods and up; shorter ones are not observed)",
        MetricType::HISTOGRAM,
        metrics,
    )
}

#[cfg(test)]
mod tests {
    use crate::{
        exporter::{Exposition, encode, metrics::tests::target},
        profile::{DispatchHistogram, LongDispatches},
    };

    #[test]
    fn a_histogram_per_event_with_cumulative_buckets() {
        let mut t = target();
        t.profile.long_dispatches = Some(LongDispatches {
            period_seconds: 0.001,
            min_periods: 2,
            bucket_bounds_seconds: vec![0.002, 0.004, 0.008],
            events: vec![DispatchHistogram {
                event: "new_connection".into(),
                bucket_counts: vec![3, 0, 1, 2],
                count: 6,
                sum_seconds: 0.1,
            }],
            longest: vec![],
        });
        let text = encode(&Exposition { targets: vec![t], ..Exposition::default() });
        let series = |le: &str| {
            format!(
                "zeek_probe_event_dispatch_seconds_bucket{{node=\"worker-1\",pid=\"42\",event=\"new_connection\",le=\"{le}\"}}"
            )
        };
        for (le, n) in [("0.002", 3), ("0.004", 3), ("0.008", 4), ("+Inf", 6)] {
            assert!(text.contains(&format!("{} {n}\n", series(le))), "le={le}:\n{text}");
        }
        assert!(text.contains("# TYPE zeek_probe_event_dispatch_seconds histogram"), "{text}");
        assert!(text.contains(
            "zeek_probe_event_dispatch_seconds_count{node=\"worker-1\",pid=\"42\",event=\"new_connection\"} 6"
        ));
    }

    #[test]
    fn no_series_without_the_measurement() {
        let text = encode(&Exposition { targets: vec![target()], ..Exposition::default() });
        assert!(!text.contains("zeek_probe_event_dispatch_seconds"), "{text}");
    }
}
