//! A Zeek process's cluster node name (zeek-abi.md §5): `CLUSTER_NODE` in the environment
//! (zeekctl), else `zeek.<name>` as the thread name (supervisor and management framework,
//! which fork without exec), else `standalone`.

pub const STANDALONE: &str = "standalone";

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
}
