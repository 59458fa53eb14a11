//! Who Prometheus should scrape, in its service discovery format (one JSON list of target
//! groups, the same for `file_sd_configs` and `http_sd_configs`): one zeek-probe per sensor
//! host, either this host alone or every host of a zeekctl `node.cfg`.
use std::{collections::BTreeMap, fs, path::Path};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read the zeekctl node configuration {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}: {detail} (expected zeekctl's node.cfg: [node] sections with type= and host=)")]
    Parse { path: String, line: usize, detail: String },
    #[error("{path} names no host (no [node] section with host=)")]
    NoHosts { path: String },
}

/// A target group: addresses to scrape and the labels they share. `__meta_*` labels are only
/// visible to relabeling rules, so they add no series labels unless asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The hosts of a zeekctl `node.cfg`, with the node names each runs, in file order.
pub fn node_cfg_hosts(text: &str, path: &str) -> Result<Vec<(String, Vec<String>)>, DiscoveryError> {
    let mut hosts: Vec<(String, Vec<String>)> = Vec::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parse_error =
            |detail: &str| DiscoveryError::Parse { path: path.to_owned(), line: n + 1, detail: detail.to_owned() };
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| parse_error("unterminated section header"))?.trim();
            section = Some(name.to_owned());
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| parse_error("not a key=value line"))?;
        if key.trim() != "host" {
            continue;
        }
        let node = section.clone().ok_or_else(|| parse_error("host= outside a [node] section"))?;
        let host = value.trim().to_owned();
        match hosts.iter_mut().find(|(h, _)| *h == host) {
            Some((_, nodes)) => nodes.push(node),
            None => hosts.push((host, vec![node])),
        }
    }
    if hosts.is_empty() {
        return Err(DiscoveryError::NoHosts { path: path.to_owned() });
    }
    Ok(hosts)
}

/// One group per host, each scraped at `port`.
pub fn groups(hosts: &[(String, Vec<String>)], port: u16) -> Vec<TargetGroup> {
    hosts
        .iter()
        .map(|(host, nodes)| {
            // An IPv6 literal needs brackets before the port.
            let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            group(address, host, nodes)
        })
        .collect()
}

pub fn group(address: String, host: &str, nodes: &[String]) -> TargetGroup {
    let labels = BTreeMap::from([
        ("__meta_zeek_probe_host".to_owned(), host.to_owned()),
        ("__meta_zeek_probe_nodes".to_owned(), nodes.join(",")),
    ]);
    TargetGroup { targets: vec![address], labels }
}

/// The groups for `--node-cfg FILE`, or for this host's exporter at `advertise`.
pub fn discover(
    node_cfg: Option<&Path>,
    advertise: &str,
    port: u16,
    local_nodes: &[String],
) -> Result<Vec<TargetGroup>, DiscoveryError> {
    match node_cfg {
        Some(path) => {
            let shown = path.display().to_string();
            let text =
                fs::read_to_string(path).map_err(|source| DiscoveryError::Read { path: shown.clone(), source })?;
            Ok(groups(&node_cfg_hosts(&text, &shown)?, port))
        }
        None => Ok(vec![group(advertise.to_owned(), &hostname(), local_nodes)]),
    }
}

/// This host's name, as Prometheus should reach it when nothing else is said.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub fn to_json(groups: &[TargetGroup]) -> String {
    serde_json::to_string_pretty(groups).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_CFG: &str = "\
# zeekctl node.cfg
[logger-1]
type=logger
host=10.0.0.1

[manager]
type=manager
host=10.0.0.1 ; the manager shares the logger's host

[worker-1]
type=worker
host=sensor-a.example
interface=af_packet::eth0
lb_procs=8

[worker-2]
type = worker
host = fd00::2
";

    #[test]
    fn one_group_per_host_of_a_zeekctl_cluster() {
        let hosts = node_cfg_hosts(NODE_CFG, "node.cfg").unwrap();
        let groups = groups(&hosts, 9180);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].targets, ["10.0.0.1:9180"]);
        assert_eq!(groups[0].labels["__meta_zeek_probe_nodes"], "logger-1,manager");
        assert_eq!(groups[1].targets, ["sensor-a.example:9180"]);
        assert_eq!(groups[2].targets, ["[fd00::2]:9180"]);
        let json: serde_json::Value = serde_json::from_str(&to_json(&groups)).unwrap();
        assert_eq!(json[1]["labels"]["__meta_zeek_probe_host"], "sensor-a.example");
    }

    #[test]
    fn malformed_node_cfg_names_the_line() {
        let err = node_cfg_hosts("[manager]\nhost 10.0.0.1\n", "node.cfg").unwrap_err();
        assert_eq!(err.to_string().split(" (").next().unwrap(), "node.cfg:2: not a key=value line");
        assert!(matches!(node_cfg_hosts("[manager]\ntype=manager\n", "x"), Err(DiscoveryError::NoHosts { .. })));
        assert!(matches!(node_cfg_hosts("host=a\n", "x"), Err(DiscoveryError::Parse { line: 1, .. })));
    }
}
