//! Command-line interface: parses arguments, runs a command, turns errors into one line.
use std::{ffi::OsString, net::SocketAddr, path::PathBuf, sync::OnceLock};

use clap::{Args, Parser, Subcommand};

use crate::{commands, output, probes::map_sizes, unwind as native_stacks};

#[derive(Debug, Parser)]
#[command(
    name = "zeek-probe",
    version,
    long_version = long_version(),
    about = "External eBPF profiler for unmodified Zeek processes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The optional features, by name, and whether this binary has them: a copied binary or a
/// package says what it can do.
const FEATURES: &[(&str, bool)] = &[("zmq", cfg!(feature = "zmq"))];

/// `--version`: the version, the git commit it was built from (build.rs) and the features built
/// in, e.g. `0.1.0 (commit 1a2b3c4)` and `features: zmq` on the next line.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let on: Vec<&str> = FEATURES.iter().filter(|(_, built_in)| *built_in).map(|(name, _)| *name).collect();
        let features = if on.is_empty() { "none".to_owned() } else { on.join(" ") };
        format!("{} (commit {})\nfeatures: {features}", env!("CARGO_PKG_VERSION"), env!("ZEEK_PROBE_GIT_COMMIT"))
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Zeek command under the profiler from its first instruction to its exit and write a report.
    Record(RecordArgs),
    /// Attach to a running Zeek process and serve Prometheus metrics.
    Attach(Box<AttachArgs>),
    /// A live terminal view, like top, of running Zeek processes: hottest functions, native code, log writes.
    Top(Box<TopArgs>),
    /// Say whether and how zeek-probe can profile a Zeek binary or process on this host.
    Check(CheckArgs),
    /// List the Zeek processes on this host, or write Prometheus service discovery targets.
    Targets(TargetsArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A running Zeek process.
    #[arg(long, conflicts_with = "path")]
    pub pid: Option<u32>,
    /// A Zeek executable.
    #[arg(required_unless_present = "pid")]
    pub path: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Count every script function, event, hook and BIF call, per caller (costs ~1 µs per call).
    #[arg(long)]
    pub count_calls: bool,
    /// Attach an empty program to the call probe points instead (benchmarks: the kernel's floor).
    #[arg(long, hide = true, conflicts_with = "count_calls")]
    pub empty_probes: bool,
    /// Do not sample CPU (only counts, with --count-calls, and log writes).
    #[arg(long)]
    pub no_sample: bool,
    /// Kernel memory the BPF maps hold, MiB, for every target together. Raise it when
    /// zeek_probe_map_full_drops_total grows (many nodes, deep or varied stacks).
    #[arg(long, value_name = "MIB", default_value_t = map_sizes::DEFAULT_BUDGET_MIB,
          value_parser = clap::value_parser!(u32).range(i64::from(map_sizes::DEFAULT_BUDGET_MIB)..=4096))]
    pub bpf_memory: u32,
    /// Full native stacks, unwound from the binaries' .eh_frame (no frame pointers needed):
    /// the main thread's with the script frames spliced in, the other threads' where the
    /// kernel's BTF tells where their stacks end; `off` names native code by its leaf alone
    /// (cheaper: no stack copied per sample).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Switch::On)]
    pub native_stacks: Switch,
    /// User stack bytes copied per sample (measurements).
    #[arg(long, hide = true, default_value_t = native_stacks::DEFAULT_STACK_BYTES,
          value_parser = clap::value_parser!(u32).range(1024..=native_stacks::USER_STACK_MAX as i64))]
    pub native_stack_bytes: u32,
    /// The calls inlined at native frames and their source lines, from DWARF (the binary's, a
    /// library's, or their debug files'), in flame graphs, folded stacks and pprof. On by
    /// default for `record`; off by default for `attach` and `top`, where the debug information
    /// parsed (tens of MB for a real Zeek) would stay resident in a long-running exporter.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub source_lines: Option<Switch>,
}

/// `--native-stacks`, `--source-lines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    Off,
    On,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub probes: ProbeArgs,
    /// CPU samples per second per thread.
    #[arg(long, default_value_t = 999, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub hz: u64,
    /// Directory for the report files.
    #[arg(long, default_value = "zeek-probe-report")]
    pub out: PathBuf,
    /// The command to run, e.g. `zeek -r trace.pcap local`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Which running Zeek processes `attach` and `top` follow.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["pid", "cluster"]))]
pub struct TargetArgs {
    /// The Zeek process to attach to.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Every Zeek process on this host (found by the Zeek symbols in its executable), followed
    /// as nodes start, exit and restart.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: how long an exited node's final counts stay exported (attach) or listed (top).
    #[arg(long, default_value_t = 300, value_name = "SECS", requires = "cluster")]
    pub retain_exited: u64,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub probes: ProbeArgs,
    /// CPU samples per second per thread.
    #[arg(long, default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub hz: u64,
    /// Also export sampled CPU seconds per caller→callee edge (the busiest edges, see
    /// --caller-series).
    #[arg(long)]
    pub caller_metrics: bool,
    /// With --caller-metrics: series per node before the rest is summed into caller="<other>".
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub caller_series: usize,
    /// Series per node of sampled CPU per script file, and of per package, before the rest is
    /// summed into file="<other>" / package="<other>".
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub source_series: usize,
    /// Write a flame graph of the samples to FILE on exit and on SIGUSR1.
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
    /// Address to serve /metrics (and /services.json) on. Loopback unless told otherwise: use
    /// --web-config for anything wider.
    #[arg(long, default_value = "127.0.0.1:9180")]
    pub listen: SocketAddr,
    /// TLS and basic authentication, in the Prometheus exporter-toolkit web config format.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub zmq: ZmqArgs,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub probes: ProbeArgs,
    /// CPU samples per second per thread.
    #[arg(long, default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub hz: u64,
    /// Seconds per interval: what the screen shows is the last interval's CPU and rates.
    #[arg(long, default_value_t = 2, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
}

/// The companion Zeek package's memory statistics and logs, over ZeroMQ (zeek-abi.md §7).
#[derive(Debug, Args)]
pub struct ZmqArgs {
    /// Subscribe to the cluster's ZeroMQ XPUB (e.g. tcp://127.0.0.1:5555; zeekctl 8.1+:
    /// tcp://MANAGER:27760) for ZeekProbe::memory_stats events.
    #[arg(long, value_name = "ENDPOINT")]
    pub zmq_cluster: Option<String>,
    /// Bind here for the NCSA ZeroMQ log writer's records (e.g. tcp://127.0.0.1:5557): records
    /// per log path and node, and the package's zeek_probe_memory / zeek_probe_stats logs.
    #[arg(long, value_name = "ENDPOINT")]
    pub zmq_logs: Option<String>,
    /// CURVE: this client's public key (Z85, a key file or a ZeroMQ certificate).
    #[arg(long, value_name = "KEY|FILE", requires_all = ["zmq_curve_secret", "zmq_curve_server"])]
    pub zmq_curve_public: Option<String>,
    /// CURVE: this client's secret key.
    #[arg(long, value_name = "KEY|FILE", requires_all = ["zmq_curve_public", "zmq_curve_server"])]
    pub zmq_curve_secret: Option<String>,
    /// CURVE: the cluster's (server's) public key.
    #[arg(long, value_name = "KEY|FILE", requires_all = ["zmq_curve_public", "zmq_curve_secret"])]
    pub zmq_curve_server: Option<String>,
    /// Memory footprints exported per node; the rest are summed into module="<other>".
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub zmq_top_n: usize,
    /// The package's ZeekProbe::stats_interval: a node silent for 3 of them is dropped.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub zmq_interval: u64,
    /// Messages waiting to be decoded per feed before new ones are dropped (and counted).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub zmq_queue: usize,
}

/// What the Prometheus service discovery output lists: this host's exporter, or every host of
/// a zeekctl cluster.
#[derive(Debug, Args)]
pub struct DiscoveryArgs {
    /// List the exporter on every host of this zeekctl node.cfg (one zeek-probe per host).
    #[arg(long, value_name = "FILE")]
    pub node_cfg: Option<PathBuf>,
    /// The address Prometheus scrapes this exporter at (default: this host's name and the
    /// --listen port).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// table: the Zeek processes on this host; json: the same, machine-readable; file-sd:
    /// Prometheus file_sd_configs targets for the exporters (this host, or --node-cfg's hosts).
    #[arg(long, value_enum, default_value = "table")]
    pub format: TargetsFormat,
    /// The exporters' port, for file-sd.
    #[arg(long, default_value_t = 9180)]
    pub port: u16,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TargetsFormat {
    Table,
    Json,
    FileSd,
}

/// Runs the command line; returns the process exit status.
/// A command-line error as one line, what was wrong and where to read more (clap's own layout
/// spreads it over several, with a usage block).
fn usage_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("error: {message} (see zeek-probe --help)")
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors.
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return 0;
        }
        // No subcommand: the help, as a usage error.
        Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return 2;
        }
        Err(err) => {
            output::note(format_args!("{}", usage_error(&err)));
            return 2;
        }
    };
    let result = match cli.command {
        Command::Record(args) => commands::record::run(args),
        Command::Attach(args) => commands::attach::run(*args),
        Command::Top(args) => commands::top::run(*args),
        Command::Check(args) => commands::check::run(args),
        Command::Targets(args) => commands::targets::run(args),
    };
    match result {
        Ok(status) => status,
        Err(err) => {
            output::note(format_args!("error: {err:#}"));
            1
        }
    }
}
