//! `zeek-probe top --pid` against a running fixture, on a real (tmux) terminal: the fixture's
//! hottest function on screen, the sort keys reordering the rows, `q` exiting 0 with the
//! terminal as it was.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;

use crate::common::*;

/// A tmux server of our own (its socket in the test's directory), killed when the test ends
/// however it ends.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        assert!(self.run(&["send-keys", "-t", "top", keys]).status.success(), "send-keys {keys}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is here; under CI=true its absence is a failure (`cargo xtask setup` installs it).
fn tmux_installed() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "tmux is missing: run `cargo xtask setup`");
    eprintln!("skipped: tmux is not installed");
    false
}

/// A row of the functions table: (self %, total %, calls/s, name).
type Row = (f64, f64, f64, String);

/// The functions table's rows as on `screen`, top first; `None` before it is drawn.
fn function_rows(screen: &str) -> Option<Vec<Row>> {
    let mut lines = screen.lines().skip_while(|l| !(l.contains("SELF%") && l.contains("FUNCTION")));
    lines.next()?;
    let rows = lines
        .take_while(|l| !l.contains('└'))
        .map(|l| l.replace('│', " "))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let [own, total, calls, _kind, name, ..] = fields.as_slice() else { return None };
            Some((own.parse().ok()?, total.parse().ok()?, calls.parse().ok()?, (*name).to_owned()))
        })
        .collect();
    Some(rows)
}

/// Waits until the functions table is sorted by `column` (busiest first) with its first row
/// passing `first`, as the header says it is (`sorted by LABEL`).
fn wait_for_order(tmux: &Tmux, label: &str, column: fn(&Row) -> f64, first: impl Fn(&str) -> bool) -> Vec<Row> {
    wait_until(&format!("the rows sorted by {label}"), Duration::from_secs(60), || {
        let screen = tmux.screen();
        let rows = function_rows(&screen).unwrap_or_default();
        let sorted = rows.windows(2).all(|w| column(&w[0]) >= column(&w[1]));
        let shown = screen.contains(&format!("sorted by {label}"));
        match rows.first() {
            Some(top) if shown && sorted && rows.len() >= 3 && first(&top.3) => Ok(rows),
            _ => Err(screen),
        }
    })
}

/// The script function the fixture spends most self CPU in, by its own measurement, as
/// zeek-probe names it.
fn hottest_function(dir: &Path) -> String {
    let truth_path = dir.join("truth.json");
    let status =
        Command::new(fixture("zeek-shaped-8.2")).args(["--seconds", "2", "--truth"]).arg(&truth_path).status().unwrap();
    assert!(status.success(), "the fixture's run for its truth: {status:?}");
    let truth = read_json(&truth_path);
    let (name, _) = truth["cpu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| (c["name"].as_str().unwrap().to_owned(), c["self_seconds"].as_f64().unwrap()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("the truth times functions");
    expected_lambda_names(&truth).get(&name).cloned().unwrap_or(name)
}

/// `zeek-probe top --pid PID ARGS` in a tmux pane of its own (160x50), with what the shell
/// gets back afterwards written to files.
struct TopInTmux {
    tmux: Tmux,
    /// `EXIT=<top's exit status>`.
    exit: PathBuf,
    /// `stty -a` run after top: the terminal's modes.
    stty: PathBuf,
}

impl TopInTmux {
    fn start(dir: &Path, pid: u32, args: &str) -> Self {
        let (exit, stty) = (dir.join("exit"), dir.join("stty"));
        let shell = format!(
            "{} top --pid {pid} {args}; echo EXIT=$? > {}; stty -a > {}; exec sleep 600",
            zeek_probe().display(),
            exit.display(),
            stty.display()
        );
        let tmux = Tmux { socket: dir.join("tmux") };
        let started = tmux.run(&["new-session", "-d", "-s", "top", "-x", "160", "-y", "50", &shell]);
        assert!(started.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&started.stderr));
        Self { tmux, exit, stty }
    }

    /// `top --interval 1` of `pid`, once it has drawn the fixture's node.
    fn drawing(dir: &Path, pid: u32) -> Self {
        let top = Self::start(dir, pid, "--interval 1");
        wait_until("top draws the fixture's node", Duration::from_secs(60), || {
            let screen = top.tmux.screen();
            if screen.contains("node worker-3") && screen.contains("SELF%") { Ok(()) } else { Err(screen) }
        });
        top
    }

    /// top's PID: the pane runs a shell, top its only child.
    fn pid(&self) -> u32 {
        let shell = String::from_utf8_lossy(&self.tmux.run(&["display", "-p", "-t", "top", "#{pane_pid}"]).stdout)
            .trim()
            .to_owned();
        let children = fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("top runs in the pane")
    }

    /// Asserts top exited 0 and left the terminal as a shell wants it: cooked mode, the
    /// alternate screen left, the cursor shown, its screen gone.
    fn assert_exited_0_leaving_the_terminal_sane(&self) {
        let tmux = &self.tmux;
        let status = wait_until("top exits", Duration::from_secs(30), || {
            fs::read_to_string(&self.exit).ok().filter(|s| s.ends_with('\n')).ok_or_else(|| tmux.screen())
        });
        assert_eq!(status.trim(), "EXIT=0", "{}", tmux.screen());
        let modes = wait_until("stty runs after top", Duration::from_secs(30), || {
            fs::read_to_string(&self.stty).ok().filter(|s| s.contains("icanon")).ok_or_else(|| tmux.screen())
        });
        for sane in ["icanon", "echo", "icrnl", "opost"] {
            assert!(modes.split_whitespace().any(|m| m == sane), "raw mode left on ({sane} is off): {modes}");
        }
        let flags = tmux.run(&["display", "-p", "-t", "top", "#{alternate_on} #{cursor_flag}"]);
        assert_eq!(String::from_utf8_lossy(&flags.stdout).trim(), "0 1", "alternate screen left, cursor shown");
        assert!(!tmux.screen().contains("SELF%"), "the shell's screen is back:\n{}", tmux.screen());
    }
}

fn start_fixture(args: &[&str]) -> Reaped {
    Reaped(
        Command::new(fixture("zeek-shaped-8.2"))
            .args(["--seconds", "600"])
            .args(args)
            .env("CLUSTER_NODE", "worker-3")
            .spawn()
            .unwrap(),
    )
}

#[test]
fn top_shows_the_hottest_function_sorts_and_quits_leaving_the_terminal_sane() {
    if !privileged() || !tmux_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hottest = hottest_function(dir.path());
    let fixture = start_fixture(&[]);
    let top = TopInTmux::start(dir.path(), fixture.0.id(), "--count-calls --hz 999 --interval 1");
    let tmux = &top.tmux;

    let by_self = wait_for_order(tmux, "self CPU", |r| r.0, |name| name == hottest);
    let screen = tmux.screen();
    assert!(screen.contains("node worker-3"), "{screen}");
    assert!(screen.contains(" long dispatches ") && !screen.contains("not measured"), "measured:\n{screen}");
    assert!(screen.contains("zeek::Connection::NextPacket"), "native code sampled:\n{screen}");

    tmux.keys("t");
    let by_total = wait_for_order(tmux, "total CPU", |r| r.1, |name| name != hottest);
    assert!(by_total[0].1 >= by_self[0].1, "the busiest caller includes {hottest}: {by_total:?}");
    tmux.keys("c");
    wait_for_order(tmux, "calls/s", |r| r.2, |_| true);

    tmux.keys("q");
    top.assert_exited_0_leaving_the_terminal_sane();
}

/// SIGTERM (a service manager's stop, `kill`) ends top like `q`.
#[test]
fn top_restores_the_terminal_on_sigterm() {
    if !privileged() || !tmux_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = start_fixture(&[]);
    let top = TopInTmux::drawing(dir.path(), fixture.0.id());
    signal(top.pid(), libc::SIGTERM);
    top.assert_exited_0_leaving_the_terminal_sane();
}

/// A terminal that hangs up (an ssh connection dropped; here the tmux server killed) ends top:
/// it must not stay behind reading a dead terminal.
#[test]
fn top_exits_when_its_terminal_hangs_up() {
    if !privileged() || !tmux_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = start_fixture(&[]);
    let top = TopInTmux::drawing(dir.path(), fixture.0.id());
    let top_pid = top.pid();
    top.tmux.run(&["kill-server"]);
    wait_until("top exits with its terminal gone", Duration::from_secs(30), || {
        if Path::new(&format!("/proc/{top_pid}")).exists() { Err(format!("PID {top_pid} still runs")) } else { Ok(()) }
    });
}

/// The fixture's 80 ms dispatches, again and again: the pane lists one of them as the
/// interval's longest, with its length and where it spent its time.
#[test]
fn top_lists_the_intervals_long_dispatches() {
    if !privileged() || !tmux_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = start_fixture(&["--long-dispatches"]);
    let top = TopInTmux::start(dir.path(), fixture.0.id(), "--hz 999 --interval 2");
    wait_until("an 80 ms dispatch in the pane", Duration::from_secs(90), || {
        let screen = top.tmux.screen();
        // Rows of the long-dispatches table (the right-hand pane): milliseconds, then the event.
        // Measured on the wall clock, a dispatch preempted on a loaded machine shows longer.
        let long = screen.lines().filter_map(|line| {
            let pane = line.rsplit("││").next()?;
            let cells: Vec<&str> = pane.trim_matches(|c| c == '│' || c == ' ').split_whitespace().collect();
            let ms: f64 = cells.first()?.parse().ok()?;
            cells.get(1)?.starts_with("Dispatch::slow_work").then_some(ms)
        });
        if long.into_iter().any(|ms| ms >= 79.0) { Ok(()) } else { Err(screen) }
    });
    top.tmux.keys("q");
    top.assert_exited_0_leaving_the_terminal_sane();
}
