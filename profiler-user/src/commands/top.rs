//! `zeek-probe top --pid PID | --cluster`: a live terminal view of where running Zeek
//! processes spend their time, interval by interval.
use std::{
    io::{self, IsTerminal as _},
    sync::{Arc, atomic::AtomicBool, mpsc},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::live_targets::{self, HostScan};
use crate::{
    cli::TopArgs,
    live_view::{self, App, NodeView},
    output,
    probes::Probes,
    profile::window,
    target_set::{TargetSet, live::LiveBackend},
};

pub fn run(args: TopArgs) -> anyhow::Result<i32> {
    if !io::stdout().is_terminal() {
        output::note(
            "error: top draws on a terminal and standard output is not one (run it in a terminal, over ssh with -t; \
             attach and record write to pipes and files)",
        );
        return Ok(2);
    }
    let (targets, host) = live_targets::open(Probes::load(args.probes.plan(args.hz, false))?, &args.targets)?;
    // In raw mode Ctrl-C is a key; these come from outside (kill, systemd, a closed ssh session).
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, stop.clone()).context("cannot watch SIGTERM, SIGINT and SIGHUP")?;
    }
    let (sender, intervals) = mpsc::channel();
    let every = Duration::from_secs(args.interval);
    // Off the screen's thread: a --cluster scan inspecting a new binary takes seconds.
    thread::Builder::new()
        .name("top-intervals".into())
        .spawn(move || send_intervals(targets, &host, every, &sender))
        .context("cannot start the profiling thread")?;

    let notes = output::hold_notes();
    let mut app = App::new(every.as_secs_f64());
    let shown = live_view::terminal::run(&mut app, &intervals, &stop, &notes);
    // The terminal is restored by now: what was said while it was drawn can be read.
    drop(notes);
    shown.context("cannot draw on the terminal")?;
    Ok(0)
}

/// Every `every`, follows the host and sends each node's last interval, until the screen is
/// gone.
fn send_intervals(
    mut targets: TargetSet<LiveBackend>,
    host: &HostScan,
    every: Duration,
    sender: &mpsc::Sender<Vec<NodeView>>,
) {
    let (mut earlier, mut since) = (targets.backend().snapshot(), Instant::now());
    loop {
        thread::sleep(every.saturating_sub(since.elapsed()));
        live_targets::refresh(&mut targets, host.scan());
        let (later, now) = (targets.backend().snapshot(), Instant::now());
        let counted = window::counted_since(&earlier, later.clone());
        let seconds = now.duration_since(since).as_secs_f64();
        (earlier, since) = (later, now);
        let nodes = targets
            .targets()
            .map(|(_, t)| NodeView::of_interval(&t.session.profile(&counted), t.is_running(), seconds))
            .collect();
        if sender.send(nodes).is_err() {
            return;
        }
    }
}
