//! Sampled CPU per script file and per zkg package (`record`'s summary.json has the same rows):
//! the busiest `--source-series` of each per node, the rest summed into `<other>`.
use prometheus::proto::{MetricFamily, MetricType};

use super::metrics::{OTHER, TargetMetrics, base_labels, busiest, family, with};
use crate::profile::SourceTime;

pub(super) fn families(targets: &[TargetMetrics]) -> [Option<MetricFamily>; 2] {
    let sampled = || targets.iter().filter(|t| t.profile.sampling.is_some());
    [
        family(
            "zeek_probe_file_self_seconds_total",
            "Sampled CPU time with a function of the script file on top of the stack (busiest files per node, the rest as <other>)",
            MetricType::COUNTER,
            sampled().flat_map(|t| rows(t, "file", &t.profile.files)),
        ),
        family(
            "zeek_probe_package_self_seconds_total",
            "Sampled CPU time with a function of the zkg package on top of the stack (busiest packages per node, the rest as <other>)",
            MetricType::COUNTER,
            sampled().flat_map(|t| rows(t, "package", &t.profile.packages)),
        ),
    ]
}

/// One target's rows for `label`, from `sources` sorted busiest first.
fn rows(t: &TargetMetrics, label: &'static str, sources: &[SourceTime]) -> Vec<(super::metrics::Labels, f64)> {
    let labelled = sources.iter().map(|s| (with(base_labels(t), &[(label, &s.source)]), s.self_seconds));
    busiest(labelled, t.source_series, with(base_labels(t), &[(label, OTHER)]), |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::{Exposition, encode, metrics::tests::target};

    fn source(name: &str, self_seconds: f64) -> SourceTime {
        SourceTime { source: name.into(), self_seconds }
    }

    #[test]
    fn files_and_packages_are_capped_with_the_rest_summed() {
        let mut t = target();
        t.profile.files =
            vec![source("a.zeek", 3.0), source("b.zeek", 2.0), source("c.zeek", 0.5), source("d.zeek", 0.25)];
        t.profile.packages = vec![source("ja4", 1.5)];
        t.source_series = 2;
        let text = encode(&Exposition { targets: vec![t], ..Exposition::default() });
        assert!(
            text.contains(r#"zeek_probe_file_self_seconds_total{node="worker-1",pid="42",file="a.zeek"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"file="b.zeek"} 2"#), "{text}");
        assert!(!text.contains(r#"file="c.zeek""#), "{text}");
        assert!(
            text.contains(r#"zeek_probe_file_self_seconds_total{node="worker-1",pid="42",file="<other>"} 0.75"#),
            "{text}"
        );
        assert!(
            text.contains(r#"zeek_probe_package_self_seconds_total{node="worker-1",pid="42",package="ja4"} 1.5"#),
            "{text}"
        );
        assert!(!text.contains(r#"package="<other>""#), "nothing left over: {text}");
    }

    #[test]
    fn nothing_without_sampling() {
        let mut t = target();
        t.profile.sampling = None;
        let text = encode(&Exposition { targets: vec![t], ..Exposition::default() });
        assert!(!text.contains("zeek_probe_file_self_seconds_total"), "{text}");
    }
}
