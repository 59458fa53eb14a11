//! `zeek-probe attach --cluster` scraped by a real Prometheus server: several fixture "nodes"
//! (zeekctl-style `CLUSTER_NODE=…` and one named the supervisor way), found by their symbols,
//! counted exactly, followed through a restart; one that cannot be attached; TLS and basic
//! auth; the HTTP service discovery endpoint; the alert rules evaluated.
use std::{
    collections::BTreeMap,
    fs,
    net::TcpListener,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use serde_json::Value;

use crate::common::*;

/// A Prometheus server (Debian's `prometheus`) on loopback, with its own storage.
struct Prometheus {
    _server: Reaped,
    address: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    fn start(config: &Path, dir: &Path) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let server = Reaped(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address={address}"))
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("prometheus.log")).unwrap())
                .spawn()
                .expect("prometheus (Debian package) is installed by cargo xtask setup"),
        );
        wait_until("Prometheus gets ready", Duration::from_secs(60), || match http_get(&address, "/-/ready") {
            Some(r) if r.status.contains(" 200") => Ok(()),
            _ => Err(format!("see {}", dir.join("prometheus.log").display())),
        });
        Self { _server: server, address }
    }

    /// An instant query's series as (labels, value).
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some(HttpResponse { status, body, .. }) =
            http_get(&self.address, &format!("/api/v1/query?query={}", percent_encode(promql)))
        else {
            return Vec::new();
        };
        assert!(status.contains(" 200"), "query {promql}: {status} {body}");
        let doc: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {promql}: {e}: {body}"));
        doc["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let labels = s["metric"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                            .collect();
                        (labels, s["value"][1].as_str().unwrap().parse().unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls `promql` until `done` holds for its result.
    fn wait_for(
        &self,
        promql: &str,
        what: &str,
        exporter_log: &Mutex<String>,
        done: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        wait_until(what, Duration::from_secs(60), || {
            let result = self.query(promql);
            if done(&result) {
                Ok(result)
            } else {
                Err(format!("`{promql}` gave {result:?}\nexporter log:\n{}", exporter_log.lock().unwrap()))
            }
        })
    }
}

/// A fixture started as a cluster node: `CLUSTER_NODE` as zeekctl sets it, or none.
fn node(binary: &Path, cluster_node: Option<&str>, args: &[impl AsRef<std::ffi::OsStr>]) -> Reaped {
    let mut cmd = Command::new(binary);
    cmd.args(args).stdout(Stdio::null()).env_remove("CLUSTER_NODE");
    if let Some(name) = cluster_node {
        cmd.env("CLUSTER_NODE", name);
    }
    Reaped(cmd.spawn().unwrap())
}

/// A copy of a fixture whose version symbol names Zeek 5.2, which zeek-probe does not support:
/// a Zeek process that cannot be attached.
fn unsupported_zeek(dir: &Path) -> PathBuf {
    let mut bytes = fs::read(fixture("zeek-shaped-8.2")).unwrap();
    let (from, to) = (b"zeek_version_8_2_2_plugin_7", b"zeek_version_5_2_2_plugin_7");
    let mut replaced = 0;
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
        }
    }
    assert!(replaced > 0, "the fixture has a version symbol");
    let path = dir.join("zeek-5.2");
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const PASSWORD: &str = "scrape-secret";

fn prometheus_config(dir: &Path, exporter: &str, ca: &Path) -> PathBuf {
    let alerts = workspace_root().join("prometheus/alerts.yml");
    let ca = ca.display();
    let config = format!(
        r#"
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{alerts}"]
scrape_configs:
  - job_name: zeek-probe
    scheme: https
    tls_config: {{ca_file: "{ca}", server_name: localhost}}
    basic_auth: {{username: prometheus, password: "{PASSWORD}"}}
    http_sd_configs:
      - url: "https://{exporter}/services.json"
        refresh_interval: 1s
        tls_config: {{ca_file: "{ca}", server_name: localhost}}
        basic_auth: {{username: prometheus, password: "{PASSWORD}"}}
  - job_name: unauthenticated
    scheme: https
    tls_config: {{ca_file: "{ca}", server_name: localhost}}
    static_configs: [{{targets: ["{exporter}"]}}]
  - job_name: plaintext
    static_configs: [{{targets: ["{exporter}"]}}]
"#,
        alerts = alerts.display()
    );
    let path = dir.join("prometheus.yml");
    fs::write(&path, config).unwrap();
    path
}

/// The HTTP status curl got ("000": no HTTP answer), with what curl said about it.
fn curl_status(args: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed by cargo xtask setup");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cluster_exporter_scraped_by_prometheus() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path());
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web_config = dir.path().join("web.yml");
    fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: '{hash}'\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();

    // The exporter starts first: every node is picked up as it appears.
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--count-calls", "--listen", "127.0.0.1:0", "--duration", "300"])
        .arg("--web-config")
        .arg(&web_config);
    let Exporter { child: mut exporter, address, log, .. } = Exporter::start(cmd, "https");

    // TLS and basic auth turn away whoever does not bring both.
    let port = address.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/metrics");
    let ca_path = ca.display().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let tls = ["--cacert", &ca_path, "--resolve", &resolve];
    let expect = |args: &[&str], url: &str, status: &str, what: &str| {
        let (got, said) = curl_status(args, url);
        assert_eq!(got, status, "{what}: {said}");
    };
    expect(&tls, &url, "401", "no credentials");
    expect(&[&tls[..], &["-u", "prometheus:wrong"]].concat(), &url, "401", "wrong password");
    let good = format!("prometheus:{PASSWORD}");
    expect(&[&tls[..], &["-u", &good]].concat(), &url, "200", "right credentials");
    expect(&[], &format!("http://{address}/metrics"), "000", "plain HTTP gets no answer");

    let prometheus = Prometheus::start(&prometheus_config(dir.path(), &address, &ca), dir.path());

    // Nodes: two zeekctl workers of different ABI generations, a proxy named the supervisor
    // way (thread name zeek.proxy-1, no CLUSTER_NODE), and one that cannot be attached.
    let truth = |name: &str| dir.path().join(format!("{name}.json"));
    let run = |name: &str| -> Vec<String> {
        ["--wait-for-signal", "--seconds", "2", "--truth"]
            .into_iter()
            .map(str::to_owned)
            .chain([truth(name).display().to_string()])
            .collect()
    };
    let supervised = dir.path().join("zeek.proxy-1");
    symlink(fixture("zeek-shaped-8.2"), &supervised).unwrap();
    let mut counted = vec![
        ("worker-1", node(&fixture("zeek-shaped-8.2"), Some("worker-1"), &run("worker-1"))),
        ("worker-2", node(&fixture("zeek-shaped-7.0"), Some("worker-2"), &run("worker-2"))),
        ("proxy-1", node(&supervised, None, &run("proxy-1"))),
    ];
    let _broken = node(&unsupported_zeek(dir.path()), Some("worker-9"), &["--seconds", "300"]);
    let long_lived = node(&fixture("zeek-shaped-8.2"), Some("worker-3"), &["--seconds", "300"]);

    let pids: BTreeMap<&str, u32> = counted.iter().map(|(n, c)| (*n, c.0.id())).collect();
    let up_query = r#"zeek_probe_target_up{job="zeek-probe",node=~"worker-1|worker-2|proxy-1|worker-3"} == 1"#;
    prometheus.wait_for(up_query, "every node attached and scraped through service discovery", &log, |r| r.len() == 4);
    let info = prometheus.query(r#"zeek_probe_target_info{job="zeek-probe",node="proxy-1"}"#);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0["node_type"], "proxy");
    assert_eq!(info[0].0["pid"], pids["proxy-1"].to_string());
    let info = prometheus.query(r#"zeek_probe_target_info{job="zeek-probe",node="worker-2"}"#);
    assert_eq!((info[0].0["node_type"].as_str(), info[0].0["zeek_version"].as_str()), ("worker", "7.0.0"));

    // The three run their workload now that the probes are in place, and exit.
    for (_, child) in &counted {
        signal(child.0.id(), libc::SIGUSR1);
    }
    for (name, child) in &mut counted {
        assert!(child.0.wait().unwrap().success(), "{name} exits cleanly under the probes");
    }
    let exited = r#"zeek_probe_target_up{job="zeek-probe",node=~"worker-1|worker-2|proxy-1"} == 0"#;
    prometheus.wait_for(exited, "the exited nodes' final counts scraped", &log, |r| r.len() == 3);
    for (name, pid) in &pids {
        let fetch = |metric: &str| prometheus.query(&format!(r#"{metric}{{job="zeek-probe",node="{name}"}}"#));
        assert_counts_match_truth(fetch, name, *pid, &read_json(&truth(name)));
    }

    // The unsupported node is reported, as a metric, an alert and a log line, and retried.
    let failing = r#"zeek_probe_attach_failing{job="zeek-probe",node="worker-9"} == 1"#;
    let failing = prometheus.wait_for(failing, "the unsupported node reported", &log, |r| r.len() == 1);
    assert!(failing[0].0["error"].contains("6.0"), "the reason names what is supported: {failing:?}");
    let errors = r#"zeek_probe_attach_errors_total{job="zeek-probe",node="worker-9"}"#;
    prometheus.wait_for(errors, "attach retried", &log, |r| r.first().is_some_and(|(_, v)| *v >= 2.0));
    let alert = r#"ALERTS{alertname="ZeekProbeAttachFailing",node="worker-9"}"#;
    prometheus.wait_for(alert, "the alert rule sees the failing node", &log, |r| !r.is_empty());
    assert!(log.lock().unwrap().contains("cannot attach to node worker-9"), "{}", log.lock().unwrap());

    // A node killed and restarted keeps its name and is attached again under its new PID.
    let old_pid = long_lived.0.id();
    drop(long_lived);
    let restarted = node(&fixture("zeek-shaped-8.2"), Some("worker-3"), &["--seconds", "300"]);
    let new_pid = restarted.0.id();
    let reattached = format!(r#"zeek_probe_target_up{{job="zeek-probe",node="worker-3",pid="{new_pid}"}} == 1"#);
    prometheus.wait_for(&reattached, "the restarted node attached again", &log, |r| r.len() == 1);
    let old = prometheus.query(&format!(r#"zeek_probe_target_up{{job="zeek-probe",pid="{old_pid}"}}"#));
    assert!(old.iter().all(|(_, v)| *v == 0.0), "the killed process is down: {old:?}");
    let calls = format!(r#"sum(zeek_probe_function_calls_total{{job="zeek-probe",node="worker-3",pid="{new_pid}"}})"#);
    prometheus.wait_for(&calls, "the restarted node counted", &log, |r| r.first().is_some_and(|(_, v)| *v > 0.0));

    // Scrapes without credentials or without TLS fail; the exporter itself stays healthy.
    let up = |job: &str| prometheus.query(&format!(r#"up{{job="{job}"}}"#));
    prometheus.wait_for(r#"up{job="unauthenticated"} == 0"#, "unauthenticated scrape refused", &log, |r| r.len() == 1);
    assert_eq!(up("plaintext").first().map(|(_, v)| *v), Some(0.0), "plain HTTP scrape refused");
    assert_eq!(up("zeek-probe").first().map(|(_, v)| *v), Some(1.0));
    assert!(exporter.0.try_wait().unwrap().is_none(), "the exporter still runs: {}", log.lock().unwrap());
}

#[test]
fn alert_rules_and_example_config_pass_promtool() {
    let dir = workspace_root().join("prometheus");
    let rules = Command::new("promtool").args(["check", "rules"]).arg(dir.join("alerts.yml")).output().unwrap();
    assert!(
        rules.status.success(),
        "{}",
        String::from_utf8_lossy(&rules.stdout) + String::from_utf8_lossy(&rules.stderr)
    );
    // The example's CA and password files live on a Prometheus server, not here.
    let config = Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(dir.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stdout) + String::from_utf8_lossy(&config.stderr)
    );
}

#[test]
fn exited_nodes_are_dropped_after_their_retention() {
    if !privileged() {
        return;
    }
    let mut cmd = Command::new(zeek_probe());
    cmd.args(["attach", "--cluster", "--no-sample", "--retain-exited", "1", "--listen", "127.0.0.1:0"])
        .args(["--duration", "120"]);
    let exporter = Exporter::start(cmd, "http");
    let mut short = node(&fixture("zeek-shaped-8.2"), Some("retention-1"), &["--wait-for-signal", "--seconds", "0.5"]);
    let up = format!("zeek_probe_target_up{{node=\"retention-1\",pid=\"{}\"}}", short.0.id());
    exporter.wait_for("attached", |t| t.contains(&format!("{up} 1")));
    signal(short.0.id(), libc::SIGUSR1);
    assert!(short.0.wait().unwrap().success());
    exporter.wait_for("exited, final counts served", |t| t.contains(&format!("{up} 0")));
    exporter.wait_for("dropped after --retain-exited", |t| !t.contains(&up) && !t.contains("node=\"retention-1\""));
}

/// The capabilities the systemd unit grants, as setpriv names them (`bpf`, `perfmon`, …).
fn unit_capabilities() -> Vec<String> {
    let unit = fs::read_to_string(workspace_root().join("prometheus/zeek-probe.service")).unwrap();
    let caps = |key: &str| -> Vec<String> {
        let line = unit.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("the unit sets {key}"));
        let mut caps: Vec<String> =
            line.split_whitespace().map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase()).collect();
        caps.sort();
        caps
    };
    let ambient = caps("AmbientCapabilities=");
    assert_eq!(ambient, caps("CapabilityBoundingSet="), "the unit grants what it bounds");
    assert!(unit.lines().any(|l| l.starts_with("DynamicUser=yes")), "the unit runs as an unprivileged user");
    ambient
}

#[test]
fn the_systemd_units_capabilities_suffice_without_root() {
    if !privileged() {
        return;
    }
    let caps = unit_capabilities().iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(",");
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    // Log streams are named from the running process at the exporter's refreshes (1 s apart,
    // later on a loaded machine): a workload of a few of them.
    let mut worker = node(
        &fixture("zeek-shaped-8.2"),
        Some("worker-unit"),
        &["--wait-for-signal".as_ref(), "--seconds".as_ref(), "3".as_ref(), "--truth".as_ref(), truth.as_os_str()],
    );
    // As systemd runs it: another user than the Zeek process, with only the unit's capabilities.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps=-all,{caps}"))
        .arg(format!("--ambient-caps=-all,{caps}"))
        .arg(format!("--bounding-set=-all,{caps}"))
        .arg("--")
        .arg(zeek_probe())
        .args(["attach", "--cluster", "--count-calls", "--listen", "127.0.0.1:0", "--duration", "120"]);
    let exporter = Exporter::start(cmd, "http");
    let pid = worker.0.id();
    let up = format!("zeek_probe_target_up{{node=\"worker-unit\",pid=\"{pid}\"}}");
    exporter.wait_for("attached with the unit's capabilities", |t| t.contains(&format!("{up} 1")));
    signal(pid, libc::SIGUSR1);
    assert!(worker.0.wait().unwrap().success());
    let text = exporter.wait_for("exit noticed", |t| t.contains(&format!("{up} 0")));
    assert_exported_counts_match_truth(&text, "worker-unit", pid, &read_json(&truth));
}

#[test]
fn attach_refuses_bad_configuration_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let attach = |extra: &[&std::ffi::OsStr]| {
        Command::new(zeek_probe())
            .args(["attach", "--cluster", "--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap()
    };
    let web = dir.path().join("web.yml");
    fs::write(&web, "basic_auth_users:\n  prometheus: plaintext\n").unwrap();
    assert_one_line_error(&attach(&["--web-config".as_ref(), web.as_os_str()]), "not a bcrypt hash");
    let missing = dir.path().join("missing.yml");
    assert_one_line_error(&attach(&["--web-config".as_ref(), missing.as_os_str()]), "cannot read the web config");
    let node_cfg = dir.path().join("node.cfg");
    fs::write(&node_cfg, "[manager]\nhost 10.0.0.1\n").unwrap();
    assert_one_line_error(&attach(&["--node-cfg".as_ref(), node_cfg.as_os_str()]), "node.cfg:2: not a key=value line");
}
