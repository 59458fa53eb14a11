//! `zeek-probe attach --pid PID`: probe a running Zeek and serve its metrics until stopped.
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::AttachArgs,
    exporter::{self, TargetMetrics, server},
    probes::{Probes, loader::MapSnapshot},
    report::flamegraph,
    session::Session,
    target::{ProcessInfo, stats::ProcessStats},
};

/// How often names are learnt and process stats read between scrapes.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

struct Attached {
    probes: Probes,
    session: Session,
    process: Option<ProcessStats>,
    up: bool,
    caller_series: Option<usize>,
}

impl Attached {
    /// Reads what can only be read while the target lives (names, process stats); notices
    /// when it has gone. Returns the maps as read.
    fn observe(&mut self) -> MapSnapshot {
        let snapshot = self.probes.snapshot();
        let pid = self.session.pid();
        if self.up {
            self.session.learn_names(&snapshot);
            match ProcessStats::read(pid).filter(|_| ProcessInfo::is_alive(pid)) {
                Some(stats) => self.process = Some(stats),
                None => {
                    self.up = false;
                    self.probes.detach(pid);
                    eprintln!("zeek-probe: PID {pid} exited; serving its final counts");
                }
            }
        }
        snapshot
    }

    /// Everything exported, as of now.
    fn metrics(&mut self) -> TargetMetrics {
        let snapshot = self.observe();
        TargetMetrics {
            profile: self.session.profile(&snapshot),
            process: self.process,
            up: self.up,
            attach_errors: 0,
            caller_series: self.caller_series,
        }
    }
}

/// Writes the flame graph of everything sampled so far, if one was asked for. A failure is
/// reported and the exporter carries on.
fn write_flamegraph(attached: &Mutex<Attached>, path: Option<&Path>) {
    let Some(path) = path else { return };
    let Ok(metrics) = attached.lock().map(|mut a| a.metrics()) else { return };
    let Some(sampling) = metrics.profile.sampling else { return };
    let t = &metrics.profile.target;
    let title = format!("zeek-probe: {} (PID {}, Zeek {})", t.node, t.pid, t.zeek_version);
    match flamegraph::write_file(path, &sampling, &title) {
        Ok(()) => eprintln!("zeek-probe: flame graph written to {}", path.display()),
        Err(err) => eprintln!("zeek-probe: {:#}", anyhow::Error::from(err)),
    }
}

pub fn run(args: AttachArgs) -> anyhow::Result<i32> {
    let mut probes = Probes::load()?;
    let session = Session::attach(&mut probes, args.pid, args.probes.plan(args.hz))?;
    let summary = session.summary();
    let attached = Arc::new(Mutex::new(Attached {
        probes,
        session,
        process: None,
        up: true,
        caller_series: args.caller_metrics.then_some(args.caller_series),
    }));

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = server::bind(args.listen).await?;
        let address = listener.local_addr().unwrap_or(args.listen);
        eprintln!(
            "zeek-probe: attached to PID {} (node {}, Zeek {}); metrics on http://{address}/metrics",
            summary.pid, summary.node, summary.zeek_version
        );
        let for_scrapes = attached.clone();
        let render: server::Render = Arc::new(move || {
            let metrics = for_scrapes.lock().map(|mut a| a.metrics());
            metrics.map(|m| exporter::encode(&[m])).unwrap_or_default()
        });
        let serving = tokio::spawn(server::serve(listener, render));

        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut flamegraph_request = signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?;
        let deadline = async {
            match args.duration {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let attached = attached.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Ok(mut a) = attached.lock() {
                            a.observe();
                        }
                    })
                    .await;
                }
                _ = flamegraph_request.recv() => write_flamegraph(&attached, args.flamegraph.as_deref()),
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = &mut deadline => break,
            }
        }
        serving.abort();
        write_flamegraph(&attached, args.flamegraph.as_deref());
        Ok(0)
    })
}
