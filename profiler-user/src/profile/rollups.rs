//! Sampled time rolled up: self time per script file and per installed package, inclusive
//! time per Zeek component.
use std::collections::BTreeMap;

use super::{ComponentTime, SourceTime};

/// Self time per script file and per package, busiest first.
pub(super) struct Rollups {
    pub files: Vec<SourceTime>,
    pub packages: Vec<SourceTime>,
}

/// The package a script belongs to: the directory under `site/packages/` (zkg's layout).
pub fn package_of(file: &str) -> Option<&str> {
    let (_, rest) = file.split_once("/site/packages/")?;
    rest.split('/').next().filter(|p| !p.is_empty())
}

/// Rolls up `leaf_samples`, the samples per script file of the sampled leaf function.
pub(super) fn roll_up(leaf_samples: BTreeMap<String, u64>, seconds: impl Fn(u64) -> f64) -> Rollups {
    let mut packages: BTreeMap<String, u64> = BTreeMap::new();
    for (file, samples) in &leaf_samples {
        if let Some(package) = package_of(file) {
            *packages.entry(package.to_owned()).or_default() += samples;
        }
    }
    let by_time = |m: BTreeMap<String, u64>| {
        let mut v: Vec<SourceTime> =
            m.into_iter().map(|(source, n)| SourceTime { source, self_seconds: seconds(n) }).collect();
        v.sort_by(|a, b| b.self_seconds.total_cmp(&a.self_seconds).then_with(|| a.source.cmp(&b.source)));
        v
    };
    Rollups { files: by_time(leaf_samples), packages: by_time(packages) }
}

/// Inclusive time per component from its samples, busiest first.
pub(super) fn components(samples: BTreeMap<String, u64>, seconds: impl Fn(u64) -> f64) -> Vec<ComponentTime> {
    let mut v: Vec<ComponentTime> =
        samples.into_iter().map(|(component, n)| ComponentTime { component, seconds: seconds(n) }).collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.component.cmp(&b.component)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_directories_under_site_packages() {
        assert_eq!(package_of("/usr/local/zeek/share/zeek/site/packages/zeek-ja4/main.zeek"), Some("zeek-ja4"));
        assert_eq!(package_of("/usr/local/zeek/share/zeek/base/init-bare.zeek"), None);
    }
}
