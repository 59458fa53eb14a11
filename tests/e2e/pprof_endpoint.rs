//! `/debug/pprof/profile` fetched by a real pprof client (`go tool pprof`, Debian's golang-go)
//! over HTTP and over TLS with basic auth, against the sampled CPU the exporter counts; and the
//! per file and per package counters against `record`'s summary.json for the same run.
use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::Duration,
};

use crate::{common::*, sampling::tolerance};

const HZ: u64 = 499;
/// The exporter's bound on profiles taken at once (README, "A cluster host").
const MAX_CONCURRENT: usize = 4;

/// `go tool pprof` fetching `url` into `out` (gzipped protobuf), its own files kept in `dir`,
/// trusting the certificates in `ca` for https.
fn go_pprof(dir: &Path, ca: Option<&Path>, url: &str, out: &Path) -> Child {
    let mut cmd = Command::new("go");
    cmd.args(["tool", "pprof", "-symbolize=none", "-proto", "-output"]).arg(out).arg(url);
    cmd.env("PPROF_TMPDIR", dir).env("HOME", dir);
    // Go's own way to trust a CA; Debian's pprof (Go 1.19) verifies against the system's
    // roots despite its -tls_ca.
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("go tool pprof (Debian package golang-go) is installed by cargo xtask setup")
}

fn succeeded(what: &str, output: Output) {
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what}: go tool pprof failed: {said}");
}

/// Sampled seconds per node of the given nodes, from an exposition.
fn sampled_seconds(text: &str, nodes: &[&str]) -> BTreeMap<String, f64> {
    let mut per_node: BTreeMap<String, f64> = nodes.iter().map(|n| ((*n).to_owned(), 0.0)).collect();
    for (labels, value) in samples(text, "zeek_probe_function_self_seconds_total") {
        if let Some(sum) = per_node.get_mut(&labels["node"]) {
            *sum += value;
        }
    }
    per_node
}

/// CPU nanoseconds per `node` label in a profile.
fn profiled_nanos(profile: &pprof::Profile) -> BTreeMap<String, i64> {
    let mut per_node = BTreeMap::new();
    for sample in &profile.sample {
        let node = profile.label(sample, "node").expect("every sample has a node label");
        assert!(profile.label(sample, "pid").is_some_and(|p| p.parse::<u32>().is_ok()), "and a pid label");
        *per_node.entry(node.to_owned()).or_default() += sample.value[1];
    }
    per_node
}

/// The status line and body of a GET whose answer may be binary.
fn get_bytes(address: &str, path: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let body = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(Vec::new(), |i| response[i + 4..].to_vec());
    (String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned(), body)
}

/// A fixture node that waits for SIGUSR1, then works for 2 s and exits.
fn waiting_node(node: &str, dir: &Path) -> Reaped {
    Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--wait-for-signal", "--seconds", "2", "--truth"])
            .arg(dir.join(format!("{node}.json")))
            .env("CLUSTER_NODE", node)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn pprof_profile_is_the_sampled_cpu_of_its_window_per_node() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes = ["pprof-a", "pprof-b"];
    let mut fixtures: Vec<Reaped> = nodes.iter().map(|n| waiting_node(n, dir.path())).collect();
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--hz", &HZ.to_string(), "--listen", "127.0.0.1:0", "--duration", "300"]);
    let exporter = Exporter::start(cmd, "http");
    let up = |text: &str, node: &str| text.contains(&format!("zeek_probe_target_up{{node=\"{node}\""));
    let before = exporter.wait_for("both nodes attached", |t| nodes.iter().all(|n| up(t, n)));
    let before = sampled_seconds(&before, &nodes);

    // Both windows open before the nodes start working and close well after they have ended.
    let url = format!("http://{}/debug/pprof/profile?seconds=10", exporter.address);
    let (all, one) = (dir.path().join("all.pb.gz"), dir.path().join("one.pb.gz"));
    let fetching_all = go_pprof(dir.path(), None, &url, &all);
    let fetching_one = go_pprof(dir.path(), None, &format!("{url}&node=pprof-a"), &one);
    thread::sleep(Duration::from_secs(3));
    for f in &fixtures {
        signal(f.0.id(), libc::SIGUSR1);
    }
    for f in &mut fixtures {
        assert!(f.0.wait().unwrap().success(), "the fixture exits cleanly");
    }
    succeeded("every node", fetching_all.wait_with_output().unwrap());
    succeeded("?node=pprof-a", fetching_one.wait_with_output().unwrap());
    let after = sampled_seconds(&scrape(&exporter.address), &nodes);

    let all = pprof::decode(&fs::read(&all).unwrap());
    let period = 1_000_000_000 / HZ as i64;
    assert_eq!(all.period, period);
    let types: Vec<&str> = all.sample_type.iter().map(|t| all.string_table[t.r#type as usize].as_str()).collect();
    assert_eq!(types, ["samples", "cpu"]);
    let profiled = profiled_nanos(&all);
    for node in nodes {
        let window = (after[node] - before[node]) * 1e9;
        let got = profiled.get(node).copied().unwrap_or(0) as f64;
        assert!(window > 0.5e9, "{node} worked in the window: {window} ns");
        assert!((got - window).abs() <= period as f64, "{node}: profiled {got} ns, sampled {window} ns in the window");
    }
    let fib = all.string_table.iter().position(|s| s == "fib").expect("fib named") as i64;
    let fib = all.function.iter().find(|f| f.name == fib).expect("fib is a function");
    assert!(all.string_table[fib.filename as usize].ends_with("site/packages/math/fib.zeek"));
    // attach leaves the fixture's inlined calls out by default (`--source-lines on` adds them,
    // as the TLS test below asks): the parsed DWARF would stay resident in the exporter.
    let inlined = all.location_lines().iter().filter(|lines| lines.len() > 1).count();
    assert_eq!(inlined, 0, "locations with inlined calls without --source-lines on");

    let one = pprof::decode(&fs::read(&one).unwrap());
    let selected = profiled_nanos(&one);
    assert_eq!(selected.keys().collect::<Vec<_>>(), ["pprof-a"], "?node= selects one node");
    assert_eq!(selected["pprof-a"], profiled["pprof-a"]);

    // A window after the nodes ended holds none of their samples: it is not everything so far.
    let (status, body) = get_bytes(&exporter.address, "/debug/pprof/profile?seconds=1");
    assert!(status.contains(" 200 "), "{status}");
    let idle = profiled_nanos(&pprof::decode(&body));
    assert!(nodes.iter().all(|n| !idle.contains_key(*n)), "an idle window: {idle:?}");

    // Bad requests: one line saying what to do; the other pprof paths do not exist.
    let get = |path: &str| http_get(&exporter.address, path).unwrap_or_else(|| panic!("no answer to {path}"));
    for (path, status, says) in [
        ("/debug/pprof/profile?seconds=ten", " 400 ", "not a whole number"),
        ("/debug/pprof/profile?seconds=0", " 400 ", "ask for 1 to 300 seconds"),
        ("/debug/pprof/profile?seconds=301", " 400 ", "out of range"),
        ("/debug/pprof/profile?seconds=1&node=nope", " 404 ", "no attached node is named \"nope\""),
        ("/debug/pprof/allocs", " 404 ", "serves only /debug/pprof/profile"),
        ("/debug/pprof/goroutine?debug=1", " 404 ", "serves only /debug/pprof/profile"),
    ] {
        let r = get(path);
        assert!(r.status.contains(status), "{path}: {}", r.head);
        assert_eq!(r.body.lines().count(), 1, "{path}: {}", r.body);
        assert!(r.body.contains(says), "{path}: {}", r.body);
    }

    // Beyond the bound, a profile is refused at once rather than queued.
    let address = exporter.address.clone();
    let taking: Vec<_> = (0..MAX_CONCURRENT)
        .map(|_| {
            let address = address.clone();
            thread::spawn(move || get_bytes(&address, "/debug/pprof/profile?seconds=4").0)
        })
        .collect();
    thread::sleep(Duration::from_secs(2));
    let refused = get("/debug/pprof/profile?seconds=1");
    assert!(refused.status.contains(" 429 "), "{}", refused.head);
    assert!(refused.body.contains("retry when one has finished"), "{}", refused.body);
    for t in taking {
        let status = t.join().unwrap();
        assert!(status.contains(" 200 "), "{status}");
    }
}

#[test]
fn pprof_profile_over_tls_with_basic_auth() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path());
    let password = "profile-secret";
    let web_config = dir.path().join("web.yml");
    let hash = bcrypt::hash(password, 4).unwrap();
    let config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  parca: '{hash}'\n",
        cert.display(),
        key.display()
    );
    fs::write(&web_config, config).unwrap();
    let node = Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--seconds", "30"])
            .env("CLUSTER_NODE", "pprof-tls")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--hz", &HZ.to_string(), "--listen", "127.0.0.1:0", "--duration", "120", "--pid"])
        .arg(node.0.id().to_string())
        .args(["--source-lines", "on"])
        .arg("--web-config")
        .arg(&web_config);
    let exporter = Exporter::start(cmd, "https");
    let port = exporter.address.rsplit_once(':').unwrap().1;
    let ca = Some(ca.as_path());

    let out = dir.path().join("tls.pb.gz");
    let url = format!("https://parca:{password}@localhost:{port}/debug/pprof/profile?seconds=2");
    succeeded("TLS with basic auth", go_pprof(dir.path(), ca, &url, &out).wait_with_output().unwrap());
    let profile = pprof::decode(&fs::read(&out).unwrap());
    let profiled = profiled_nanos(&profile);
    assert_eq!(profiled.keys().collect::<Vec<_>>(), ["pprof-tls"]);
    // Two seconds of a busy process, well below the CPU a loaded machine still gives it.
    assert!(profiled["pprof-tls"] > 100_000_000, "{profiled:?}");
    // Asked for, the fixture's inlined calls (its script bodies run through std::function)
    // are lines of their callers' locations, with their source files.
    let inlined: Vec<_> = profile.location_lines().into_iter().filter(|lines| lines.len() > 1).collect();
    let with_files = inlined.iter().filter(|lines| lines.iter().all(|(_, file, _)| !file.is_empty())).count();
    assert!(with_files > 0, "no location with inlined calls and their files under --source-lines on: {inlined:?}");

    let wrong = format!("https://parca:wrong@localhost:{port}/debug/pprof/profile?seconds=1");
    let refused = go_pprof(dir.path(), ca, &wrong, &dir.path().join("no.pb.gz")).wait_with_output().unwrap();
    assert!(!refused.status.success(), "a wrong password gets no profile");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// Each source's share of `total`, the sampled CPU, in percent.
fn shares(rows: impl IntoIterator<Item = (String, f64)>, total: f64) -> BTreeMap<String, f64> {
    rows.into_iter().map(|(source, seconds)| (source, 100.0 * seconds / total)).collect()
}

#[test]
fn file_and_package_counters_match_records_summary_for_the_same_run() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = fixture("zeek-shaped-8.2");
    let out = dir.path().join("report");
    let record = Reaped(
        Command::new(zeek_probe())
            .args(["record", "--hz", "999", "--out"])
            .arg(&out)
            .arg("--")
            .arg(&program)
            .args(["--wait-for-signal", "--seconds", "3"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = running_child(record.0.id(), &program);
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--hz", "999", "--listen", "127.0.0.1:0", "--duration", "120", "--pid", &pid.to_string()]);
    let exporter = Exporter::start(cmd, "http");
    signal(pid, libc::SIGUSR1);
    let mut record = record;
    assert!(record.0.wait().unwrap().success(), "record ends with its command");
    let text = exporter
        .wait_for("the exporter notices the exit", |t| t.contains("zeek_probe_target_up{") && t.contains("} 0"));
    let summary = read_json(&out.join("summary.json"));

    let sampled: f64 =
        summary["functions"].as_array().unwrap().iter().map(|f| f["self_seconds"].as_f64().unwrap()).sum();
    let samples = sampled * 999.0;
    let exported_total: f64 =
        samples_of(&text, "zeek_probe_function_self_seconds_total", "function").iter().map(|(_, s)| s).sum();
    for (family, label, key) in [
        ("zeek_probe_file_self_seconds_total", "file", "files"),
        ("zeek_probe_package_self_seconds_total", "package", "packages"),
    ] {
        let recorded = shares(
            summary[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["source"].as_str().unwrap().to_owned(), r["self_seconds"].as_f64().unwrap())),
            sampled,
        );
        let exported = shares(samples_of(&text, family, label), exported_total);
        assert!(key != "packages" || exported.contains_key("math"), "the fixture's package is exported: {exported:?}");
        assert!(!recorded.is_empty() && !exported.contains_key("<other>"), "{family}: {exported:?}");
        // A source sampled rarely may be missing from one of the two: its share is 0 there.
        let sources: std::collections::BTreeSet<&String> = recorded.keys().chain(exported.keys()).collect();
        for source in sources {
            let want = recorded.get(source).copied().unwrap_or(0.0);
            let got = exported.get(source).copied().unwrap_or(0.0);
            // Two independent estimates of one share: twice the variance of one.
            let bound = tolerance(want, samples / 2.0);
            assert!(
                (got - want).abs() <= bound,
                "{family}{{{label}={source:?}}}: {got:.2}% exported, {want:.2}% recorded (± {bound:.2})"
            );
        }
    }
}

/// (label value, value) of one family's series.
fn samples_of(text: &str, family: &str, label: &str) -> Vec<(String, f64)> {
    samples(text, family).into_iter().map(|(l, v)| (l[label].clone(), v)).collect()
}
