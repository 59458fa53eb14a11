//! `cargo xtask bench`: what probing every script call costs, measured side by side in one
//! run on the fixture's tight call loop (this machine is shared and noisy: only ratios of
//! interleaved runs mean anything). No assertions: it reports.
//!
//! Per-call counting: (a) no probe, (b) an empty BPF program on the same probe points (the
//! kernel's floor), (c) `zeek-probe --count-calls`, (d) bpftrace counting calls per name.
//! Sampling: the fixture's workload throughput at 99, 999 and 4999 Hz against none (at 999 Hz
//! also with native stacks off: the cost of copying the main thread's stack per sample), and
//! what zeek-probe itself uses (CPU, peak memory) while sampling a running target.
//! Cluster: how long `attach --cluster` takes to start, to attach 8 nodes that appear (of the
//! fixture, and of the real Zeek), and the exporter's memory once attached.
//! Start-up: `check`'s time and peak memory on the real Zeek (its 360 MB debug file) and on
//! the fixture's debug variant, with the layout cache cold and warm; `record` of a trivial real
//! Zeek run against the run alone; the verifier's time per BPF program.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{fixtures, run};

const CALLS: &str = "1000000";
const ROUNDS: usize = 5;

const SCRIPT_INVOKE: &str =
    "_ZNK4zeek6detail10ScriptFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
const BIF_INVOKE: &str =
    "_ZNK4zeek6detail11BuiltinFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";

#[derive(Clone, Copy)]
enum Variant {
    NoProbe,
    EmptyProgram,
    ZeekProbe,
    Bpftrace,
}

impl Variant {
    const ALL: [Variant; 4] = [Self::NoProbe, Self::EmptyProgram, Self::ZeekProbe, Self::Bpftrace];

    fn label(self) -> &'static str {
        match self {
            Self::NoProbe => "(a) no probe",
            Self::EmptyProgram => "(b) empty BPF program",
            Self::ZeekProbe => "(c) zeek-probe --count-calls",
            Self::Bpftrace => "(d) bpftrace count per name",
        }
    }

    fn command(self) -> Command {
        let fixture = fixtures::path(fixtures::DEFAULT);
        let probe = run::workspace_root().join("target/release/zeek-probe");
        let out = run::workspace_root().join("target/bench-report");
        // Per-call cost only: no sampling on top.
        let record = |flag: &str| {
            let mut c = Command::new(&probe);
            c.args(["record", flag, "--no-sample", "--out"])
                .arg(&out)
                .arg("--")
                .arg(&fixture)
                .args(["--tight-loop", CALLS]);
            c
        };
        match self {
            Self::NoProbe => {
                let mut c = Command::new(&fixture);
                c.args(["--tight-loop", CALLS]);
                c
            }
            Self::EmptyProgram => record("--empty-probes"),
            Self::ZeekProbe => record("--count-calls"),
            Self::Bpftrace => {
                let f = fixture.display();
                let program = format!(
                    "uprobe:{f}:{SCRIPT_INVOKE}, uprobe:{f}:{BIF_INVOKE} {{ @calls[str(*(uint64 *)(reg(\"si\") + 72))] = count(); }}"
                );
                let mut c = Command::new("bpftrace");
                c.args(["-e", &program, "-c", &format!("{f} --tight-loop {CALLS}")]);
                c
            }
        }
    }
}

/// Runs one variant; the fixture prints `ns_per_call=<float>`.
fn measure(variant: Variant) -> Result<f64> {
    let output = variant.command().output().with_context(|| format!("cannot run {}", variant.label()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find_map(|l| l.trim().strip_prefix("ns_per_call=")) {
        Some(v) => v.parse().with_context(|| format!("bad ns_per_call in {}", variant.label())),
        None => bail!("{} printed no ns_per_call: {}", variant.label(), String::from_utf8_lossy(&output.stderr).trim()),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The parts of the benchmark, to run some alone.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    PerCall,
    Sampling,
    Cluster,
    Startup,
}

pub fn run(parts: &[Part]) -> Result<()> {
    run::cargo(&["build", "--release", "--package", "zeek-probe"])?;
    for part in [Part::PerCall, Part::Sampling, Part::Cluster, Part::Startup] {
        if parts.is_empty() || parts.contains(&part) {
            match part {
                Part::PerCall => per_call(),
                Part::Sampling => sampling(),
                Part::Cluster => cluster_attach(),
                Part::Startup => startup(),
            }?;
        }
    }
    Ok(())
}

fn per_call() -> Result<()> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    for round in 0..ROUNDS {
        // Rotate the order so no variant always runs first (cold) or last.
        for i in 0..Variant::ALL.len() {
            let idx = (i + round) % Variant::ALL.len();
            match measure(Variant::ALL[idx]) {
                Ok(ns) => samples[idx].push(ns),
                Err(err) => eprintln!("xtask: bench: {err:#}"),
            }
        }
    }
    let medians: Vec<Option<f64>> = samples.iter_mut().map(|s| (!s.is_empty()).then(|| median(s))).collect();
    println!("per-call cost on the fixture's tight loop ({CALLS} calls, median of {ROUNDS} interleaved rounds)");
    for (v, m) in Variant::ALL.iter().zip(&medians) {
        match m {
            Some(ns) => println!("  {:<30} {:>9.1} ns/call", v.label(), ns),
            None => println!("  {:<30} {:>9} (did not run)", v.label(), "-"),
        }
    }
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => format!("{:.3}", x / y),
        _ => "n/a".into(),
    };
    println!("  c/b = {}   (target <= 1.10)", ratio(medians[2], medians[1]));
    println!("  c/d = {}   (target <= 1.00)", ratio(medians[2], medians[3]));
    println!("  c/a = {}   (slowdown of the call loop itself)", ratio(medians[2], medians[0]));
    Ok(())
}

/// Sampling rates (and `--native-stacks`) compared against no profiling.
const SAMPLING_RATES: [Option<(u64, &str)>; 5] =
    [None, Some((99, "on")), Some((999, "on")), Some((999, "off")), Some((4999, "on"))];
const WORKLOAD_SECONDS: &str = "3";

/// Rounds per second of the fixture's workload, unprofiled or under `record --hz HZ
/// --native-stacks NATIVE`.
fn throughput(sampling: Option<(u64, &str)>, dir: &Path) -> Result<f64> {
    let truth = dir.join("truth.json");
    let fixture = fixtures::path(fixtures::DEFAULT);
    let mut cmd = match sampling {
        None => Command::new(&fixture),
        Some((hz, native)) => {
            let mut c = Command::new(run::workspace_root().join("target/release/zeek-probe"));
            c.args(["record", "--hz", &hz.to_string(), "--native-stacks", native, "--out"])
                .arg(dir.join("report"))
                .arg("--")
                .arg(&fixture);
            c
        }
    };
    let status = cmd.args(["--seconds", WORKLOAD_SECONDS, "--truth"]).arg(&truth).stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth)?)?;
    let rounds = truth["rounds"].as_f64().context("truth has rounds")?;
    let wall = truth["wall_seconds"].as_f64().context("truth has wall_seconds")?;
    Ok(rounds / wall)
}

/// zeek-probe's own CPU seconds and peak resident memory (KiB) while attached to a running
/// fixture at `hz` (native stacks `native`) for the whole workload.
fn own_cost(hz: u64, native: &str) -> Result<(f64, i64)> {
    let fixture = Command::new(fixtures::path(fixtures::DEFAULT)).args(["--seconds", "4"]).spawn()?;
    let mut probe = Command::new(run::workspace_root().join("target/release/zeek-probe"));
    probe
        .args(["attach", "--hz", &hz.to_string(), "--native-stacks", native])
        .args(["--listen", "127.0.0.1:0", "--duration", "5", "--pid"])
        .arg(fixture.id().to_string())
        .stderr(Stdio::null());
    let child = probe.spawn()?;
    let usage = wait_with_usage(child);
    let mut fixture = fixture;
    fixture.wait()?;
    usage
}

/// Waits for `child`, which must succeed; its CPU seconds (user + system) and peak resident
/// memory (KiB).
fn wait_with_usage(child: Child) -> Result<(f64, i64)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; the pid is our child's.
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if waited < 0 {
        bail!("cannot wait for PID {}: {}", child.id(), std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("PID {} failed (wait status {status:#x}): a measurement of a failed run means nothing", child.id());
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((seconds(usage.ru_utime) + seconds(usage.ru_stime), usage.ru_maxrss))
}

fn sampling() -> Result<()> {
    let dir = run::workspace_root().join("target/bench-sampling");
    std::fs::create_dir_all(&dir)?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); SAMPLING_RATES.len()];
    for round in 0..3 {
        for i in 0..SAMPLING_RATES.len() {
            let idx = (i + round) % SAMPLING_RATES.len();
            match throughput(SAMPLING_RATES[idx], &dir) {
                Ok(rate) => rates[idx].push(rate),
                Err(err) => eprintln!("xtask: bench: {err:#}"),
            }
        }
    }
    let medians: Vec<Option<f64>> = rates.iter_mut().map(|r| (!r.is_empty()).then(|| median(r))).collect();
    println!(
        "\nsampling cost: fixture workload throughput ({WORKLOAD_SECONDS} s runs, median of 3 interleaved rounds)"
    );
    for (hz, m) in SAMPLING_RATES.iter().zip(&medians) {
        let label = hz.map_or_else(
            || "no profiling".to_owned(),
            |(hz, native)| format!("sampling at {hz} Hz, native stacks {native}"),
        );
        match (m, medians[0]) {
            (Some(rate), Some(base)) => println!("  {label:<40} {rate:>9.1} rounds/s   slowdown {:.3}", base / rate),
            _ => println!("  {label:<40} (did not run)"),
        }
    }
    println!("  target: slowdown <= 1.01 at 999 Hz");
    real_replay_cost(&dir)?;
    std::thread::sleep(Duration::from_millis(100));
    for (hz, native) in [(99, "on"), (999, "on"), (999, "off")] {
        match own_cost(hz, native) {
            Ok((cpu, rss)) => println!(
                "  zeek-probe itself at {hz} Hz, native stacks {native}, over 5 s: {cpu:.2} s CPU, peak {:.1} MiB",
                rss as f64 / 1024.0
            ),
            Err(err) => eprintln!("xtask: bench: {err:#}"),
        }
    }
    Ok(())
}

/// Native stacks off and on under `record --hz 999`, against no profiling.
const REPLAY_VARIANTS: [Option<&str>; 3] = [None, Some("off"), Some("on")];

/// What sampling costs a real Zeek: its CPU seconds replaying Zeek's test traces with `local`
/// (the replay the real-Zeek tests write), alone and under `record`, in interleaved rounds.
fn real_replay_cost(dir: &Path) -> Result<()> {
    let replay = run::workspace_root().join("target/real-zeek/replay.pcap");
    let Some(zeek) = run::find_zeek().filter(|_| replay.is_file()) else {
        println!("  (no real Zeek replay: `cargo xtask test` installs Zeek and writes {})", replay.display());
        return Ok(());
    };
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); REPLAY_VARIANTS.len()];
    for round in 0..3 {
        for i in 0..REPLAY_VARIANTS.len() {
            let idx = (i + round) % REPLAY_VARIANTS.len();
            match replay_cpu(&zeek, &replay, REPLAY_VARIANTS[idx], dir) {
                Ok(seconds) => cpu[idx].push(seconds),
                Err(err) => eprintln!("xtask: bench: {err:#}"),
            }
        }
    }
    let medians: Vec<Option<f64>> = cpu.iter_mut().map(|c| (!c.is_empty()).then(|| median(c))).collect();
    println!("\nsampling cost on a real Zeek: its CPU seconds replaying the test traces with `local` (median of 3)");
    for (native, m) in REPLAY_VARIANTS.iter().zip(&medians) {
        let label = native.map_or_else(|| "no profiling".to_owned(), |n| format!("record --hz 999, native stacks {n}"));
        match (m, medians[0]) {
            (Some(seconds), Some(base)) => println!("  {label:<40} {seconds:>7.2} s   slowdown {:.3}", seconds / base),
            _ => println!("  {label:<40} (did not run)"),
        }
    }
    Ok(())
}

/// Zeek's CPU seconds for one replay: from wait4 alone, from `summary.json` under `record`.
fn replay_cpu(zeek: &Path, replay: &Path, native: Option<&str>, dir: &Path) -> Result<f64> {
    let logs = dir.join("replay-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let report = dir.join("replay-report");
    let mut cmd = match native {
        None => Command::new(zeek),
        Some(native) => {
            let mut c = Command::new(run::workspace_root().join("target/release/zeek-probe"));
            c.args(["record", "--hz", "999", "--native-stacks", native, "--out"]).arg(&report).arg("--").arg(zeek);
            c
        }
    };
    cmd.arg("-r").arg(replay).arg("local").current_dir(&logs).stdout(Stdio::null()).stderr(Stdio::null());
    let (seconds, _) = wait_with_usage(cmd.spawn()?)?;
    if native.is_none() {
        return Ok(seconds);
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("summary.json"))?)?;
    summary["target"]["cpu_seconds"].as_f64().context("summary.json has the target's cpu_seconds")
}

const CLUSTER_NODES: usize = 8;

/// Kills the child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metrics(address: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else { return String::new() };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// Seconds until the exporter at `address` has every bench node attached.
fn until_attached(address: &str, nodes: &[Reaped], since: Instant) -> Result<f64> {
    let deadline = since + Duration::from_secs(30);
    loop {
        let text = metrics(address);
        if nodes.iter().all(|n| text.contains(&format!("pid=\"{}\"}} 1", n.0.id()))) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("the exporter did not attach {CLUSTER_NODES} nodes within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The binaries the cluster bench runs 8 nodes of: the fixture, and the real Zeek if installed.
#[derive(Clone, Copy)]
enum NodeKind {
    Fixture,
    RealZeek,
}

impl NodeKind {
    fn label(self) -> &'static str {
        match self {
            Self::Fixture => "fixture",
            Self::RealZeek => "real Zeek",
        }
    }

    fn command(self) -> Option<Command> {
        match self {
            Self::Fixture => {
                let mut c = Command::new(fixtures::path(fixtures::DEFAULT));
                c.args(["--wait-for-signal", "--seconds", "1"]);
                Some(c)
            }
            Self::RealZeek => {
                // A bare Zeek that stays up until it is killed: 8 of one binary, as on a sensor.
                let mut c = Command::new(run::find_zeek()?);
                c.args(["-b", "-e", "redef exit_only_after_terminate = T;"]).stdout(Stdio::null());
                Some(c)
            }
        }
    }
}

fn start_nodes(kind: NodeKind) -> Result<Vec<Reaped>> {
    (1..=CLUSTER_NODES)
        .map(|n| {
            let mut command = kind.command().context("no such node binary")?;
            // A real Zeek given CLUSTER_NODE wants a cluster layout: it runs as a standalone
            // node, found all the same.
            if matches!(kind, NodeKind::Fixture) {
                command.env("CLUSTER_NODE", format!("bench-worker-{n}"));
            }
            command.current_dir(std::env::temp_dir()).spawn().map(Reaped).context("cannot start a node")
        })
        .collect()
}

/// Resident and peak resident memory of a process (MiB), from /proc.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// One round's measurements of `attach --cluster`.
struct ClusterRound {
    /// Exporter start to serving (BPF load, first scan), s.
    startup: f64,
    /// 8 new nodes appearing to all attached, s.
    attach: f64,
    /// With 8 nodes running already (a sensor's exporter restarted): exporter start to all
    /// attached, s.
    restart: f64,
    /// Resident memory after 3 s attached with scrapes, and the peak, MiB.
    steady_rss: f64,
    peak_rss: f64,
}

/// An `attach --cluster` exporter and the address it serves on, once it serves.
fn start_exporter() -> Result<(Reaped, String)> {
    let mut exporter = Reaped(
        Command::new(run::workspace_root().join("target/release/zeek-probe"))
            .args(["attach", "--cluster", "--count-calls", "--listen", "127.0.0.1:0", "--duration", "60"])
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let mut stderr = BufReader::new(exporter.0.stderr.take().context("stderr")?);
    let address = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            bail!("the exporter ended before serving");
        }
        if let Some(rest) = line.split_once("metrics on http://") {
            break rest.1.split('/').next().unwrap_or_default().to_owned();
        }
    };
    // Keep reading so the exporter never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    Ok((exporter, address))
}

fn cluster_round(kind: NodeKind) -> Result<ClusterRound> {
    let started = Instant::now();
    let (exporter, address) = start_exporter()?;
    let startup = started.elapsed().as_secs_f64();
    let appeared = Instant::now();
    let nodes = start_nodes(kind)?;
    let attach = until_attached(&address, &nodes, appeared)?;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        metrics(&address);
    }
    let (steady_rss, peak_rss) = memory_mib(exporter.0.id()).context("the exporter's memory")?;
    drop(exporter);
    // The same nodes, up and idle by now, and a new exporter.
    let restarted = Instant::now();
    let (_exporter, address) = start_exporter()?;
    let restart = until_attached(&address, &nodes, restarted)?;
    Ok(ClusterRound { startup, attach, restart, steady_rss, peak_rss })
}

fn cluster_attach() -> Result<()> {
    for kind in [NodeKind::Fixture, NodeKind::RealZeek] {
        println!("\nattach --cluster ({CLUSTER_NODES} {} nodes of one binary, median of 3 rounds)", kind.label());
        if kind.command().is_none() {
            println!("  (no real Zeek: `cargo xtask setup` installs the shared build)");
            continue;
        }
        let rounds: Vec<ClusterRound> =
            (0..3).filter_map(|_| cluster_round(kind).map_err(|err| eprintln!("xtask: bench: {err:#}")).ok()).collect();
        if rounds.is_empty() {
            println!("  (did not run)");
            continue;
        }
        let of = |f: fn(&ClusterRound) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
        println!("  exporter start to serving (BPF load, first scan): {:.2} s", of(|r| r.startup));
        println!("  {CLUSTER_NODES} new nodes appearing to all attached: {:.2} s   (target < 2 s)", of(|r| r.attach));
        println!(
            "  {CLUSTER_NODES} nodes running, exporter start to all attached: {:.2} s   (target < 2 s)",
            of(|r| r.restart)
        );
        println!(
            "  exporter memory attached: {:.1} MiB resident (target <= 40), {:.1} MiB peak",
            of(|r| r.steady_rss),
            of(|r| r.peak_rss)
        );
    }
    Ok(())
}

/// Wall seconds and peak resident memory (KiB) of one command.
fn timed(mut command: Command) -> Result<(f64, i64)> {
    let started = Instant::now();
    let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let (_, rss) = wait_with_usage(child)?;
    Ok((started.elapsed().as_secs_f64(), rss))
}

/// `check BINARY` with the layout cache in `cache`.
fn check(binary: &Path, cache: &Path) -> Command {
    let mut c = Command::new(run::workspace_root().join("target/release/zeek-probe"));
    c.arg("check").arg(binary).env("CACHE_DIRECTORY", cache);
    c
}

/// Median wall seconds and the largest peak memory (MiB) of `ROUNDS` runs of `command`.
fn rounds_of(mut command: impl FnMut() -> Command) -> Result<(f64, f64)> {
    let (mut walls, mut peak) = (Vec::new(), 0);
    for _ in 0..ROUNDS {
        let (wall, rss) = timed(command())?;
        walls.push(wall);
        peak = peak.max(rss);
    }
    Ok((median(&mut walls), peak as f64 / 1024.0))
}

fn startup() -> Result<()> {
    let zeek = run::find_zeek();
    let mut binaries = vec![fixtures::path("zeek-shaped-7.0-debug")];
    binaries.extend(zeek.clone());
    let caches = run::workspace_root().join("target/bench-cache");
    println!("\nstart-up: `check` (median of {ROUNDS}, peak memory the largest)");
    for binary in &binaries {
        // Cold: a cache directory of its own each time; warm: one filled by the first run.
        let mut n = 0;
        let cold = rounds_of(|| {
            n += 1;
            check(binary, &caches.join(format!("cold-{n}")))
        })?;
        let warm_dir = caches.join("warm");
        timed(check(binary, &warm_dir))?;
        let warm = rounds_of(|| check(binary, &warm_dir))?;
        println!("  {}", binary.display());
        println!("    layout read from DWARF: {:.3} s, peak {:.1} MiB   (target <= 64 MiB)", cold.0, cold.1);
        println!("    layout from the cache:  {:.3} s, peak {:.1} MiB", warm.0, warm.1);
    }
    let _ = std::fs::remove_dir_all(&caches);
    let Some(zeek) = zeek else {
        println!("  (no real Zeek: `cargo xtask setup` installs the shared build)");
        return Ok(());
    };
    record_startup(&zeek)?;
    verifier_times()
}

const TRIVIAL_RUN: [&str; 3] = ["-b", "-e", "event zeek_init() { }"];

fn record_trivial(zeek: &Path, source_lines: &str) -> Command {
    let mut record = Command::new(run::workspace_root().join("target/release/zeek-probe"));
    record
        .args(["record", "--source-lines", source_lines, "--out"])
        .arg(run::workspace_root().join("target/bench-startup"));
    record.arg("--").arg(zeek).args(TRIVIAL_RUN);
    record
}

/// Rounds of the record start-up: a ratio of two runs of ~0.1 s each moves by a tenth from
/// one round to the next on a shared machine; 5 rounds' median moved as much between benches.
const RECORD_ROUNDS: usize = 15;

/// How long the kernel may still be releasing a finished `record`'s uprobes (~0.1 s each, in
/// the child it hands them to): a record started meanwhile waits for that in its own attach.
const RELEASED: Duration = Duration::from_millis(500);

/// A trivial run, alone and under `record` (the layout cache warm, as on a host that ran it
/// before), with and without source lines (which parse the debug file's units that samples
/// land in), in alternated rounds, each after the previous record's probes are released: one
/// record's wall time, as someone running it sees it. The ratio is each round's (a record
/// against the run alone just before it), the median of the rounds': a shared machine's load
/// drifts between rounds, less within one.
fn record_startup(zeek: &Path) -> Result<()> {
    let (mut alone, mut with_lines, mut without_lines) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RECORD_ROUNDS {
        let mut plain = Command::new(zeek);
        plain.args(TRIVIAL_RUN);
        alone.push(timed(plain)?.0);
        std::thread::sleep(RELEASED);
        with_lines.push(timed(record_trivial(zeek, "on"))?.0);
        std::thread::sleep(RELEASED);
        without_lines.push(timed(record_trivial(zeek, "off"))?.0);
        std::thread::sleep(RELEASED);
    }
    let alone_median = median(&mut alone.clone());
    for (label, runs) in
        [("source lines on (the default)", &mut with_lines), ("--source-lines off", &mut without_lines)]
    {
        let mut ratios: Vec<f64> = runs.iter().zip(&alone).map(|(recorded, alone)| recorded / alone).collect();
        let (recorded, ratio) = (median(runs), median(&mut ratios));
        println!(
            "  record of a trivial Zeek run, {label}: {recorded:.3} s against {alone_median:.3} s alone ({ratio:.2}x, the median of {RECORD_ROUNDS} rounds' ratios; target 1.5x)"
        );
    }
    // A record in a loop: each starts while the kernel may still release the last one's probes.
    let mut back_to_back = Vec::new();
    for _ in 0..RECORD_ROUNDS {
        back_to_back.push(timed(record_trivial(zeek, "on"))?.0);
    }
    let loop_median = median(&mut back_to_back);
    let slowest = back_to_back.last().copied().unwrap_or_default();
    println!(
        "  the same with source lines, {RECORD_ROUNDS} records back to back: median {loop_median:.3} s ({:.2}x the run alone), slowest {slowest:.3} s",
        loop_median / alone_median
    );
    Ok(())
}

/// How long the kernel takes to load each BPF program (the verifier), from `strace -f -T` of an
/// `attach` to one bare node (the programs load on threads of their own; `record` cannot run
/// under `strace -f`, which takes the ptrace of its command): median of `ROUNDS` starts.
fn verifier_times() -> Result<()> {
    let mut per_program: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let node = Reaped(NodeKind::RealZeek.command().context("no real Zeek")?.spawn().context("cannot start a node")?);
    let traces = run::workspace_root().join("target/bench-verifier");
    for _ in 0..ROUNDS {
        let _ = std::fs::remove_dir_all(&traces);
        std::fs::create_dir_all(&traces)?;
        // One file per thread (`-ff`), so that no call is split by another thread's.
        let status = Command::new("strace")
            .args(["-ff", "-T", "-e", "trace=bpf", "-e", "signal=none", "-o"])
            .arg(traces.join("trace"))
            .arg("--")
            .arg(run::workspace_root().join("target/release/zeek-probe"))
            .args(["attach", "--listen", "127.0.0.1:0", "--duration", "1", "--pid"])
            .arg(node.0.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run strace (`cargo xtask setup` installs it)")?;
        if !status.success() {
            bail!("zeek-probe attach under strace failed: {status}");
        }
        for file in std::fs::read_dir(&traces)? {
            let text = std::fs::read_to_string(file?.path())?;
            for line in text.lines().filter(|l| l.contains("BPF_PROG_LOAD")) {
                let name = line.split("prog_name=\"").nth(1).and_then(|rest| rest.split('"').next());
                let took = line.rsplit_once('<').and_then(|(_, t)| t.trim_end_matches('>').parse::<f64>().ok());
                if let (Some(name), Some(took)) = (name, took)
                    && !name.is_empty()
                {
                    per_program.entry(name.to_owned()).or_default().push(took * 1000.0);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&traces);
    println!("  BPF program load (verifier) per program, median of {ROUNDS}:");
    for (name, mut times) in per_program {
        println!("    {name:<16} {:.1} ms", median(&mut times));
    }
    Ok(())
}
