//! `zeek-probe targets`: the Zeek processes `attach --cluster` would serve on this host, or
//! the exporters Prometheus should scrape (file_sd_configs).
use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    cli::{TargetsArgs, TargetsFormat},
    exporter::service_discovery,
    output,
    probes::privileges,
    target::{discovery::Discovery, node::NodeType},
};

#[derive(Serialize)]
struct Row {
    node: String,
    node_type: NodeType,
    pid: u32,
    zeek_version: Option<String>,
    binary: String,
    /// Why it cannot be probed, if it cannot.
    error: Option<String>,
}

pub fn run(args: TargetsArgs) -> anyhow::Result<i32> {
    let sees_all = !privileges::missing().contains(&"CAP_SYS_PTRACE");
    if !sees_all {
        output::note("warning: without CAP_SYS_PTRACE other users' Zeek processes are not visible (run as root)");
    }
    let mut found: Vec<_> = Discovery::default().scan().into_values().collect();
    found.sort_by(|a, b| (&a.process.node, a.process.pid).cmp(&(&b.process.node, b.process.pid)));
    let rows: Vec<Row> = found
        .into_iter()
        .map(|f| Row {
            node: f.process.node,
            node_type: f.process.node_type,
            pid: f.process.pid,
            zeek_version: f.binary.as_ref().ok().map(|b| b.version.to_string()),
            binary: f.process.exe_link.display().to_string(),
            error: f.binary.err().map(|e| e.to_string()),
        })
        .collect();
    let out = match args.format {
        TargetsFormat::Table => table(&rows, sees_all),
        TargetsFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
        TargetsFormat::FileSd => {
            let advertise = args
                .discovery
                .advertise
                .clone()
                .unwrap_or_else(|| format!("{}:{}", service_discovery::hostname(), args.port));
            let nodes: Vec<String> = rows.iter().map(|r| r.node.clone()).collect();
            let groups =
                service_discovery::discover(args.discovery.node_cfg.as_deref(), &advertise, args.port, &nodes)?;
            service_discovery::to_json(&groups) + "\n"
        }
    };
    output::print(&out)?;
    Ok(0)
}

/// The rows as a table; with none, whether that means none runs (`sees_all`) or none is visible.
fn table(rows: &[Row], sees_all: bool) -> String {
    match (rows.is_empty(), sees_all) {
        (true, true) => return "no Zeek process is running on this host\n".to_owned(),
        (true, false) => {
            return "no Zeek process visible: without CAP_SYS_PTRACE zeek-probe cannot see other users' processes (run it as root to see them all)\n".to_owned();
        }
        _ => {}
    }
    let mut out = format!("{:<16} {:<10} {:>8} {:<8} {:<40} STATUS\n", "NODE", "TYPE", "PID", "ZEEK", "BINARY");
    for r in rows {
        let status = r.error.as_deref().unwrap_or("ready");
        let version = r.zeek_version.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:>8} {:<8} {:<40} {status}",
            r.node,
            r.node_type.as_str(),
            r.pid,
            version,
            r.binary
        );
    }
    out
}
