//! A Zeek process's cluster node (zeek-abi.md §5): its name from `CLUSTER_NODE` in the
//! environment (zeekctl), else `zeek.<name>` as the thread name (supervisor and management
//! framework, which fork without exec), else `standalone`; and its type where it can be known.

pub const STANDALONE: &str = "standalone";
/// The supervisor's own processes (the supervisor and its stem) run no cluster role.
pub const SUPERVISOR: &str = "supervisor";
pub const STEM: &str = "stem";

/// The node name from a process's environment (`NUL`-separated `KEY=value`) and its comm.
pub fn node_name(environ: &[u8], comm: &str) -> String {
    let from_env = environ
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(b"CLUSTER_NODE="))
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if let Some(name) = from_env {
        return name;
    }
    match comm.strip_prefix("zeek.") {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => STANDALONE.to_owned(),
    }
}

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Manager,
    Logger,
    Proxy,
    Worker,
    Standalone,
    Supervisor,
    Unknown,
}

impl NodeType {
    /// From the node name (zeekctl and the management framework name nodes `manager`,
    /// `logger-1`, `proxy-1`, `worker-1-3` …), else a worker if it sniffs an interface.
    pub fn of(name: &str, cmdline: &[String]) -> Self {
        let by_name =
            [("manager", Self::Manager), ("logger", Self::Logger), ("proxy", Self::Proxy), ("worker", Self::Worker)]
                .into_iter()
                .find(|(prefix, _)| name.starts_with(prefix))
                .map(|(_, t)| t);
        if let Some(t) = by_name {
            return t;
        }
        match name {
            STANDALONE => return Self::Standalone,
            SUPERVISOR | STEM => return Self::Supervisor,
            _ => {}
        }
        let sniffs = cmdline.iter().skip(1).any(|a| {
            a == "-i"
                || a == "--iface"
                || a.starts_with("--iface=")
                || (a.starts_with("-i") && a.len() > 2 && !a.starts_with("--"))
        });
        if sniffs { Self::Worker } else { Self::Unknown }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manager => "manager",
            Self::Logger => "logger",
            Self::Proxy => "proxy",
            Self::Worker => "worker",
            Self::Standalone => "standalone",
            Self::Supervisor => "supervisor",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeekctl_environment_wins() {
        assert_eq!(node_name(b"PATH=/bin\0CLUSTER_NODE=worker-1-2\0", "zeek"), "worker-1-2");
    }

    #[test]
    fn supervisor_nodes_are_named_by_comm() {
        assert_eq!(node_name(b"PATH=/bin\0", "zeek.logger-1"), "logger-1");
    }

    #[test]
    fn otherwise_standalone() {
        assert_eq!(node_name(b"CLUSTER_NODE=\0", "zeek"), STANDALONE);
        assert_eq!(node_name(b"", "zeek."), STANDALONE);
    }

    #[test]
    fn types_from_names_then_from_the_command_line() {
        let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(NodeType::of("worker-1-3", &[]), NodeType::Worker);
        assert_eq!(NodeType::of("manager", &[]), NodeType::Manager);
        assert_eq!(NodeType::of("logger-1", &[]), NodeType::Logger);
        assert_eq!(NodeType::of("proxy-2", &[]), NodeType::Proxy);
        assert_eq!(NodeType::of(STANDALONE, &cmd(&["zeek", "-r", "x.pcap"])), NodeType::Standalone);
        assert_eq!(NodeType::of(STEM, &[]), NodeType::Supervisor);
        assert_eq!(NodeType::of("sensor-a", &cmd(&["zeek", "-i", "af_packet::eth0", "local"])), NodeType::Worker);
        assert_eq!(NodeType::of("sensor-a", &cmd(&["zeek", "-ieth0"])), NodeType::Worker);
        assert_eq!(NodeType::of("sensor-a", &cmd(&["zeek", "local"])), NodeType::Unknown);
    }
}
