//! What the real-Zeek tests need: finding the installed Zeek and its traces, a replay made of
//! them, reading Zeek's logs and its `--profile-scripts` output, and a ZeroMQ cluster of real
//! nodes.
use std::{
    collections::BTreeMap,
    io::Write as _,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    thread,
    time::Duration,
};

use crate::common::*;

/// Where `cargo xtask setup` installs the shared build.
const INSTALLED: &str = "/usr/local/zeek/bin/zeek";

/// A real Zeek installation.
pub struct RealZeek {
    pub path: PathBuf,
    /// Its default script search path (`zeek-config --zeekpath`), to extend for a cluster layout.
    zeekpath: String,
}

impl RealZeek {
    /// A command running this Zeek in `dir` (where it writes its logs).
    pub fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.current_dir(dir).envs(self.env()).stdin(Stdio::null());
        cmd
    }

    /// The environment every test run of Zeek gets: no site-wide ZEEKPATH or node name leaks in.
    pub fn env(&self) -> [(&'static str, String); 1] {
        [("ZEEKPATH", self.zeekpath.clone())]
    }
}

/// The real Zeek under test: `$ZEEK`, else the shared build where `cargo xtask setup` installs
/// it, else `zeek` on PATH. `None` (the test is skipped, and says so) when there is none, except
/// under CI=true, where that fails the test.
pub fn real_zeek() -> Option<RealZeek> {
    let path = std::env::var_os("ZEEK")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(INSTALLED)).filter(|p| p.is_file()))
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("zeek")).find(|p| p.is_file()));
    let Some(path) = path else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the real-Zeek tests need a Zeek: `cargo xtask setup` installs ../shared/zeek/, or set ZEEK");
        }
        let test = thread::current().name().unwrap_or("a test").to_owned();
        let _ = writeln!(std::io::stderr(), "skipped {test}: no real Zeek installed (cargo xtask setup, or ZEEK=…)");
        return None;
    };
    let config = path.with_file_name("zeek-config");
    let output = Command::new(&config).arg("--zeekpath").output();
    let zeekpath = match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => panic!("{} --zeekpath failed: is {} a Zeek installation?", config.display(), path.display()),
    };
    Some(RealZeek { path, zeekpath })
}

/// A real Zeek, for a test that also needs root.
pub fn real_zeek_privileged() -> Option<RealZeek> {
    if !privileged() {
        return None;
    }
    real_zeek()
}

/// One of Zeek's own test traces, by its path under `traces/`.
pub fn trace(name: &str) -> PathBuf {
    let path = traces_dir().join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Zeek's own test traces shipped beside the checkout.
fn traces_dir() -> PathBuf {
    let dir = workspace_root().join("../shared/zeek/traces");
    assert!(dir.is_dir(), "{} is missing: the real-Zeek tests replay Zeek's own test traces", dir.display());
    dir
}

/// One replay of every Ethernet trace in `traces/` (HTTP, DNS, TLS, FTP, DHCP, …), back to back:
/// Zeek reads a single file. Built once per test run, under target/.
pub fn merged_trace() -> PathBuf {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| write_replay("replay.pcap", 1)).clone()
}

/// The replay of `merged_trace` three times over, back to back: ~3 s of Zeek's main thread,
/// for comparisons whose chance differences shrink with the samples taken.
pub fn thrice_merged_trace() -> PathBuf {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| write_replay("replay-x3.pcap", 3)).clone()
}

/// Writes the traces of `traces/`, `copies` times over, as target/real-zeek/`name`.
fn write_replay(name: &str, copies: usize) -> PathBuf {
    let out = workspace_root().join("target/real-zeek").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut traces = Vec::new();
    collect_pcaps(&traces_dir(), &mut traces);
    traces.sort();
    let replay = pcap::concatenate(&vec![traces; copies].concat());
    assert!(replay.packets > 10_000 * copies, "a replay of many packets: {}", replay.packets);
    let partial = out.with_extension("partial");
    std::fs::write(&partial, &replay.bytes).unwrap();
    std::fs::rename(&partial, &out).unwrap();
    out
}

fn collect_pcaps(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            collect_pcaps(&path, into);
        } else if path.extension().is_some_and(|e| e == "pcap") {
            into.push(path);
        }
    }
}

/// Classic pcap files (microsecond, little-endian, Ethernet), concatenated in time.
mod pcap {
    use std::path::PathBuf;

    const MAGIC_USEC_LE: u32 = 0xa1b2_c3d4;
    const LINKTYPE_ETHERNET: u32 = 1;
    /// Between two traces: long enough that their connections do not mix.
    const GAP_USEC: u64 = 1_000_000;

    pub struct Replay {
        pub bytes: Vec<u8>,
        pub packets: usize,
    }

    /// Every trace of the right format, each shifted to start after the previous one ended;
    /// others (pcapng, other link types) are left out.
    pub fn concatenate(traces: &[PathBuf]) -> Replay {
        let mut bytes = Vec::new();
        for field in [MAGIC_USEC_LE, 0x0004_0002, 0, 0, 65_535, LINKTYPE_ETHERNET] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        let (mut packets, mut clock) = (0, 1_700_000_000_000_000u64);
        for trace in traces {
            let data = std::fs::read(trace).unwrap();
            let word = |at: usize| data.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
            if word(0) != Some(MAGIC_USEC_LE) || word(20) != Some(LINKTYPE_ETHERNET) {
                continue;
            }
            let (mut at, mut first, mut last) = (24, None, clock);
            while let (Some(secs), Some(usecs), Some(len)) = (word(at), word(at + 4), word(at + 8)) {
                let Some(packet) = data.get(at + 16..at + 16 + len as usize) else { break };
                let ts = u64::from(secs) * 1_000_000 + u64::from(usecs);
                let start = *first.get_or_insert(ts);
                let shifted = clock + ts.saturating_sub(start);
                last = last.max(shifted);
                for field in [(shifted / 1_000_000) as u32, (shifted % 1_000_000) as u32, len] {
                    bytes.extend_from_slice(&field.to_le_bytes());
                }
                bytes.extend_from_slice(&data[at + 12..at + 16]);
                bytes.extend_from_slice(packet);
                packets += 1;
                at += 16 + len as usize;
            }
            clock = last + GAP_USEC;
        }
        Replay { bytes, packets }
    }
}

/// A Zeek ASCII log: its `#fields` and its records.
pub fn read_zeek_log(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fields = text
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .unwrap_or_else(|| panic!("{}: no #fields", path.display()))
        .split('\t')
        .map(str::to_owned)
        .collect();
    let rows =
        text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split('\t').map(str::to_owned).collect()).collect();
    (fields, rows)
}

/// One row of `--profile-scripts`: a function body (or a BIF) where it is defined.
#[derive(Debug, Clone)]
pub struct ProfiledBody {
    pub location: String,
    pub calls: u64,
}

/// Zeek's `--profile-scripts` output: its per-body rows by function name (the aggregate rows
/// of multi-bodied functions and the totals left out).
pub struct ScriptProfile {
    pub bodies: BTreeMap<String, Vec<ProfiledBody>>,
}

impl ScriptProfile {
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut bodies: BTreeMap<String, Vec<ProfiledBody>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let columns: Vec<&str> = line.split('\t').collect();
            let [name, location, kind, calls, ..] = columns[..] else {
                panic!("{}: malformed row {line:?}", path.display())
            };
            if kind == "TOTAL" || location.ends_with("-locations") {
                continue;
            }
            let calls = calls.parse().unwrap_or_else(|_| panic!("{}: calls in {line:?}", path.display()));
            bodies.entry(name.to_owned()).or_default().push(ProfiledBody { location: location.to_owned(), calls });
        }
        Self { bodies }
    }
}

/// The companion package measuring every second from a second after start.
pub const PACKAGE_EVERY_SECOND: &str =
    "redef ZeekProbe::initial_delay = 1sec;\nredef ZeekProbe::stats_interval = 1sec;\n";

/// The cluster backends a real cluster can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Zeek's ZeroMQ backend (7.1+): the manager runs the XPUB/XSUB proxy.
    ZeroMq,
    /// Broker, the default before 8.1.
    Broker,
}

/// A manager (also the logger) and workers on this host, with the companion package loaded;
/// every node runs in its own directory and is killed at the end.
pub struct RealCluster<'a> {
    zeek: &'a RealZeek,
    dir: tempfile::TempDir,
    /// The manager's port (ZeroMQ: its log endpoint; Broker: where it listens), then the
    /// ZeroMQ proxy's XPUB and XSUB.
    ports: [u16; 3],
    nodes: BTreeMap<String, Reaped>,
}

impl<'a> RealCluster<'a> {
    pub fn start(zeek: &'a RealZeek, backend: Backend, workers: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Ports the OS says are free now: tests run side by side.
        let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports = [0, 1, 2].map(|i| listeners[i].local_addr().unwrap().port());
        drop(listeners);
        let [manager, xpub, xsub] = ports;
        let mut layout = format!(
            "redef Cluster::manager_is_logger = T;\nredef Cluster::nodes = {{\n\
             \t[\"manager\"] = [$node_type=Cluster::MANAGER, $ip=127.0.0.1, $p={manager}/tcp],\n"
        );
        for worker in workers {
            layout.push_str(&format!(
                "\t[\"{worker}\"] = [$node_type=Cluster::WORKER, $ip=127.0.0.1, $manager=\"manager\"],\n"
            ));
        }
        layout.push_str("};\n");
        std::fs::write(dir.path().join("cluster-layout.zeek"), layout).unwrap();
        let backend_script = match backend {
            Backend::ZeroMq => format!(
                "@load policy/frameworks/cluster/backend/zeromq\n\
                 redef Cluster::Backend::ZeroMQ::listen_xpub_endpoint = \"tcp://127.0.0.1:{xpub}\";\n\
                 redef Cluster::Backend::ZeroMQ::listen_xsub_endpoint = \"tcp://127.0.0.1:{xsub}\";\n\
                 redef Cluster::Backend::ZeroMQ::connect_xpub_endpoint = \"tcp://127.0.0.1:{xsub}\";\n\
                 redef Cluster::Backend::ZeroMQ::connect_xsub_endpoint = \"tcp://127.0.0.1:{xpub}\";\n"
            ),
            Backend::Broker => "@load policy/frameworks/cluster/backend/broker\n".to_owned(),
        };
        let site = format!("{backend_script}redef Log::default_rotation_interval = 0secs;\n{PACKAGE_EVERY_SECOND}");
        std::fs::write(dir.path().join("site.zeek"), site).unwrap();
        let mut cluster = Self { zeek, dir, ports, nodes: BTreeMap::new() };
        // Workers started before the manager listens would report failed connection attempts.
        cluster.spawn("manager");
        let listening = match backend {
            Backend::ZeroMq => xpub,
            Backend::Broker => manager,
        };
        wait_until("the manager listening", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", listening)).map(drop).map_err(|e| e.to_string())
        });
        for worker in workers {
            cluster.spawn(worker);
        }
        cluster
    }

    fn spawn(&mut self, node: &str) {
        let cwd = self.dir.path().join(node);
        std::fs::create_dir_all(&cwd).unwrap();
        let stderr = std::fs::File::create(cwd.join("stderr.txt")).unwrap();
        let child = Command::new(&self.zeek.path)
            .arg(workspace_root().join("scripts"))
            .arg(self.dir.path().join("site.zeek"))
            .current_dir(&cwd)
            .env("ZEEKPATH", format!("{}:{}", self.dir.path().display(), self.zeek.zeekpath))
            .env("CLUSTER_NODE", node)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.nodes.insert(node.to_owned(), Reaped(child));
    }

    /// The manager's XPUB, where zeek-probe subscribes.
    pub fn xpub_endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.ports[1])
    }

    pub fn pid(&self, node: &str) -> u32 {
        self.nodes[node].0.id()
    }

    /// SIGKILL, then the same node started again.
    pub fn restart(&mut self, node: &str) {
        let old = self.nodes.remove(node).expect("a node of this cluster");
        drop(old);
        thread::sleep(Duration::from_millis(200));
        self.spawn(node);
    }

    /// Waits until every node's measurements reached the manager's log, `runs` each.
    pub fn wait_for_every_nodes_runs(&self, runs: usize) {
        let log = self.dir.path().join("manager/zeek_probe_stats.log");
        wait_until("every node's runs in the manager's zeek_probe_stats.log", Duration::from_secs(60), || {
            let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
            let (fields, rows) = read_zeek_log(&log);
            let node = fields.iter().position(|f| f == "node").ok_or("no node field")?;
            let logged = |name: &String| rows.iter().filter(|r| r.get(node) == Some(name)).count();
            if self.nodes.keys().all(|name| logged(name) >= runs) { Ok(()) } else { Err(text) }
        });
    }

    /// No node said anything on stderr, and the manager's reporter.log holds no warning or error.
    pub fn assert_every_node_loaded_cleanly(&self) {
        for node in self.nodes.keys() {
            let stderr = std::fs::read_to_string(self.dir.path().join(node).join("stderr.txt")).unwrap();
            let problems: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("error") || l.contains("warning") || l.contains("fatal"))
                .collect();
            assert!(problems.is_empty(), "{node} reported:\n{stderr}");
        }
        let reporter = self.dir.path().join("manager/reporter.log");
        if reporter.is_file() {
            let (fields, rows) = read_zeek_log(&reporter);
            let level = fields.iter().position(|f| f == "level").unwrap();
            let reported: Vec<&Vec<String>> = rows.iter().filter(|r| r[level] != "Reporter::INFO").collect();
            assert!(reported.is_empty(), "the cluster reported: {reported:?}");
        }
    }
}
