//! Shared helpers: finding the binaries, privilege policy, reading truth and summaries.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub fn zeek_probe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zeek-probe"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every ABI generation's fixture, with the version and ABI zeek-probe must report for it.
pub const GENERATIONS: [(&str, &str, &str); 6] = [
    ("zeek-shaped-6.0", "6.0.0", "6.0"),
    ("zeek-shaped-7.0", "7.0.0", "7.0"),
    ("zeek-shaped-7.2", "7.2.0", "7.2"),
    ("zeek-shaped-8.0", "8.0.0", "8.0"),
    ("zeek-shaped-8.1", "8.1.0", "8.1"),
    ("zeek-shaped-8.2", "8.2.2", "8.2"),
];

/// Build variants of two generations: CET prologues, stripped of .symtab and DWARF, debug
/// builds (whose `EnumVal` layout differs before 8.2).
pub const VARIANTS: [&str; 7] = [
    "zeek-shaped-8.2-cet",
    "zeek-shaped-7.0-cet",
    "zeek-shaped-8.2-stripped",
    "zeek-shaped-7.0-stripped",
    "zeek-shaped-8.2-debug",
    "zeek-shaped-7.0-debug",
    "zeek-shaped-8.2-debuglink",
];

/// One measurement under perf, made once more if perf 6.1's `perf script` rejected a
/// kernel-symbol record of a BPF program loaded or unloaded meanwhile (by this machine's other
/// users too): "failed to process type: 17 [Bad address]", even with --no-bpf-event.
pub fn measured_under_perf<T>(mut measure: impl FnMut() -> Result<T, String>) -> T {
    match measure() {
        Err(error) if error.contains("failed to process type: 17") => {
            measure().unwrap_or_else(|error| panic!("perf script: {error}"))
        }
        result => result.unwrap_or_else(|error| panic!("perf script: {error}")),
    }
}

/// A fixture built by `cargo xtask fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    let path = workspace_root().join("target/fixtures").join(name);
    assert!(path.is_file(), "{} is missing: run `cargo xtask fixtures`", path.display());
    path
}

/// Whether privileged tests can run here. Under CI=true a missing privilege is a failure.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("privileged end-to-end tests must run as root in CI");
    }
    // Straight to the file descriptor: the test harness would hide what eprintln! says.
    let test = thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "skipped {test}: needs root (CAP_SYS_ADMIN, CAP_SYS_PTRACE)");
    false
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Shown name → Zeek's own name (they differ for lambdas, shown as `lambda@file:line`).
pub fn zeek_names(doc: &Value) -> BTreeMap<String, String> {
    doc["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter_map(|f| Some((f["name"].as_str()?.to_owned(), f["zeek_name"].as_str()?.to_owned())))
        .collect()
}

/// (Zeek name, kind) → calls, from a `functions` array (rows without counted calls left out).
pub fn functions(doc: &Value) -> BTreeMap<(String, String), u64> {
    let names = zeek_names(doc);
    doc["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str().unwrap();
            let name = names.get(name).map_or(name, String::as_str).to_owned();
            Some(((name, f["kind"].as_str().unwrap().to_owned()), f["calls"].as_u64()?))
        })
        .collect()
}

/// The name zeek-probe must show for each of the truth's functions that Zeek's profiler places
/// somewhere (lambdas): `lambda@<path below share/zeek/>:<line>`, by Zeek name.
pub fn expected_lambda_names(truth: &Value) -> BTreeMap<String, String> {
    truth["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter_map(|f| {
            let location = f["location"].as_str()?;
            let relative = location.strip_prefix("/usr/local/zeek/share/zeek/").unwrap_or(location);
            Some((f["name"].as_str()?.to_owned(), format!("lambda@{relative}")))
        })
        .collect()
}

/// (caller Zeek name or "", callee Zeek name) → calls, from a `callers` array.
pub fn callers(doc: &Value) -> BTreeMap<(String, String), u64> {
    let names = zeek_names(doc);
    let zeek = |n: &str| names.get(n).map_or(n, String::as_str).to_owned();
    doc["callers"]
        .as_array()
        .expect("callers array")
        .iter()
        .filter_map(|c| {
            let caller = c["caller"].as_str().map_or_else(String::new, zeek);
            Some(((caller, zeek(c["callee"].as_str().unwrap())), c["calls"].as_u64()?))
        })
        .collect()
}

/// stream → writes from a `log_writes` array.
pub fn log_writes(doc: &Value) -> BTreeMap<String, u64> {
    doc["log_writes"]
        .as_array()
        .expect("log_writes array")
        .iter()
        .map(|l| (l["stream"].as_str().unwrap().to_owned(), l["writes"].as_u64().unwrap()))
        .collect()
}

/// Asserts a failed run said what went wrong in exactly one line.
pub fn assert_one_line_error(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected failure, got {:?}; stderr: {stderr}", output.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got: {stderr}");
    assert!(lines[0].starts_with("zeek-probe: error: "), "{stderr}");
    assert!(lines[0].contains(expected), "expected {expected:?} in: {stderr}");
}

/// Kills the child when the test ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `poll` until it gives a value, for up to `timeout` (generous: the machine may be
/// loaded); then fails, saying what was awaited and how things stood at the last try.
pub fn wait_until<T>(what: &str, timeout: Duration, mut poll: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match poll() {
            Ok(value) => return value,
            Err(now) => assert!(Instant::now() < deadline, "{what}: not within {timeout:?}; last seen:\n{now}"),
        }
        thread::sleep(Duration::from_millis(100));
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "cannot signal {pid}");
}

/// What an HTTP server answered.
pub struct HttpResponse {
    /// The status line, e.g. `HTTP/1.0 200 OK`.
    pub status: String,
    /// Everything before the body, the status line included.
    pub head: String,
    pub body: String,
}

/// A GET over HTTP/1.0, so that the body comes unchunked; None when nothing answered.
pub fn http_get(address: &str, path: &str) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some(HttpResponse { status: head.lines().next()?.to_owned(), head: head.to_owned(), body: body.to_owned() })
}

/// The exposition an exporter serves, asserted to be a 200 in Prometheus' text format.
pub fn scrape(address: &str) -> String {
    let response = http_get(address, "/metrics").unwrap_or_else(|| panic!("no HTTP answer from {address}"));
    let head = &response.head;
    assert!(response.status.starts_with("HTTP/1.") && response.status.contains(" 200 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    response.body
}

/// Parses `name{k="v",...} value` samples of one metric into (labels, value).
pub fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("labels then value");
            let mut map = BTreeMap::new();
            let mut chars = labels.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'));
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().unwrap()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                map.insert(key.trim_start_matches(',').to_owned(), value);
            }
            (map, value.parse().unwrap())
        })
        .collect()
}

/// Asserts an exposition's calls, caller edges and log writes for one node and PID equal the
/// fixture's truth. Lambdas are exported by where they are defined (the truth says where).
pub fn assert_exported_counts_match_truth(text: &str, node: &str, pid: u32, truth: &Value) {
    assert_counts_match_truth(|metric| samples(text, metric), node, pid, truth);
}

/// As `assert_exported_counts_match_truth`, with the series of a metric from `fetch` (an
/// exposition, or a Prometheus server's query API).
pub fn assert_counts_match_truth(
    fetch: impl Fn(&str) -> Vec<(BTreeMap<String, String>, f64)>,
    node: &str,
    pid: u32,
    truth: &Value,
) {
    let ours = |l: &BTreeMap<String, String>| l["node"] == node && l["pid"] == pid.to_string();
    let exported: BTreeMap<(String, String), u64> = fetch("zeek_probe_function_calls_total")
        .into_iter()
        .filter(|(l, _)| ours(l))
        .map(|(l, v)| ((l["function"].clone(), l["kind"].clone()), v as u64))
        .collect();
    let lambdas = expected_lambda_names(truth);
    assert!(lambdas.len() >= 2, "the fixture's truth places its lambdas: {lambdas:?}");
    let shown = |name: String| lambdas.get(&name).cloned().unwrap_or(name);
    let true_functions: BTreeMap<(String, String), u64> =
        functions(truth).into_iter().map(|((name, kind), calls)| ((shown(name), kind), calls)).collect();
    assert_eq!(exported, true_functions, "calls per function of {node}");
    let edges: BTreeMap<(String, String), u64> = fetch("zeek_probe_caller_calls_total")
        .into_iter()
        .filter(|(l, _)| ours(l))
        .map(|(l, v)| {
            let caller = if l["caller"] == "<native>" { String::new() } else { l["caller"].clone() };
            ((caller, l["function"].clone()), v as u64)
        })
        .collect();
    let true_edges: BTreeMap<(String, String), u64> = callers(truth)
        .into_iter()
        .map(|((caller, callee), calls)| {
            ((if caller.is_empty() { caller } else { shown(caller) }, shown(callee)), calls)
        })
        .collect();
    assert_eq!(edges, true_edges, "calls per caller edge of {node}");
    let streams: BTreeMap<String, u64> = fetch("zeek_probe_log_writes_total")
        .into_iter()
        .filter(|(l, _)| ours(l))
        .map(|(l, v)| (l["stream"].clone(), v as u64))
        .collect();
    assert_eq!(streams, log_writes(truth), "writes per log stream of {node}");
}

/// A running `zeek-probe attach`: where it serves, and what it has said so far.
pub struct Exporter {
    pub child: Reaped,
    pub address: String,
    pub log: Arc<Mutex<String>>,
    /// Reads stderr into `log` until the exporter closes it.
    reader: Option<thread::JoinHandle<()>>,
}

impl Exporter {
    /// Starts `cmd` and reads what it says up to the line saying where the metrics are served
    /// (nodes already running are reported before it).
    pub fn start(mut cmd: Command, scheme: &str) -> Self {
        let mut child = Reaped(cmd.stderr(Stdio::piped()).spawn().unwrap());
        let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
        let mut said = String::new();
        let address = loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "the exporter ended: {said}");
            said.push_str(&line);
            if let Some(rest) =
                line.split_once(" metrics on ").and_then(|(_, r)| r.strip_prefix(&format!("{scheme}://")))
            {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        let log = Arc::new(Mutex::new(said));
        let log_writer = log.clone();
        let reader = thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                log_writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push_str(&(line + "\n"));
            }
        });
        Self { child, address, log, reader: Some(reader) }
    }

    /// Waits for the exporter to exit: its status and everything it said, to the last line.
    pub fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.0.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.log.lock().unwrap().clone())
    }

    /// Polls the exposition until `done` holds for it.
    pub fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        wait_until(what, Duration::from_secs(60), || {
            let text = scrape(&self.address);
            if done(&text) { Ok(text) } else { Err(format!("{text}\nexporter log:\n{}", self.log.lock().unwrap())) }
        })
    }
}

/// The PID of `parent`'s child running `program`, once it runs (past the stop before its
/// first instruction, where `record` holds it until the probes are attached).
pub fn running_child(parent: u32, program: &Path) -> u32 {
    wait_until("the command runs under record", Duration::from_secs(60), || match command_state(parent, program) {
        Some((child, 'R' | 'S' | 'D')) => Ok(child),
        other => Err(format!("{} under {parent} (PID, state): {other:?}", program.display())),
    })
}

/// `parent`'s child once it runs `program` (past exec), and its state from /proc (`t`: in a
/// tracing stop; `R`, `S`, `D`: running).
pub fn command_state(parent: u32, program: &Path) -> Option<(u32, char)> {
    let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    let child: u32 = children.split_whitespace().next()?.parse().ok()?;
    let exe = fs::read_link(format!("/proc/{child}/exe")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())?;
    (exe == program).then_some((child, state))
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, as PEM files.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names: a leaf whose subject equals its issuer looks self-signed to verifiers.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "zeek-probe test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (dir.join("ca.crt"), dir.join("server.crt"), dir.join("server.key"));
    fs::write(&paths.0, ca.pem()).unwrap();
    fs::write(&paths.1, cert.pem()).unwrap();
    fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// The part of pprof's profile.proto the tests read.
pub mod pprof {
    use prost::Message;

    #[derive(Clone, PartialEq, Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    /// Its lines: the calls inlined there first, the machine frame's function last.
    #[derive(Clone, PartialEq, Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }

    /// A gzipped profile, decoded.
    pub fn decode(gzipped: &[u8]) -> Profile {
        use std::io::Read as _;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gzipped).read_to_end(&mut raw).expect("gzip");
        Profile::decode(raw.as_slice()).expect("a pprof protobuf")
    }

    impl Profile {
        /// Each location's lines as (function name, file name, line), in the location's order.
        pub fn location_lines(&self) -> Vec<Vec<(&str, &str, i64)>> {
            let s = |i: i64| self.string_table[i as usize].as_str();
            self.location
                .iter()
                .map(|location| {
                    location
                        .line
                        .iter()
                        .map(|line| {
                            let f = self.function.iter().find(|f| f.id == line.function_id).expect("a line's function");
                            (s(f.name), s(f.filename), line.line)
                        })
                        .collect()
                })
                .collect()
        }

        /// The value of a sample's label `key`.
        pub fn label(&self, sample: &Sample, key: &str) -> Option<&str> {
            let s = |i: i64| self.string_table[i as usize].as_str();
            sample.label.iter().find(|l| s(l.key) == key).map(|l| s(l.str))
        }
    }
}

/// Asserts promtool (Debian's prometheus package) accepts `text` as an exposition.
pub fn assert_promtool_accepts(text: &str) {
    use std::io::Write as _;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by cargo xtask setup");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool rejects the exposition: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
