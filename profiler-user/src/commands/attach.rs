//! `zeek-probe attach --pid PID | --cluster`: probe running Zeek processes and serve their
//! metrics until stopped.
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use prometheus::proto::MetricFamily;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::AttachArgs,
    exporter::{
        self, Exposition, FailingTarget, TargetMetrics,
        pprof_endpoint::{PprofEndpoint, ProfileSource},
        server::{self, Routes},
        service_discovery,
        web_config::WebConfig,
    },
    output,
    probes::{MapSnapshot, Probes},
    profile::{Profile, Sampling, StackFrame},
    report::{self, flamegraph},
    target_set::{TargetSet, live::LiveBackend},
};

use super::{live_targets, zmq_feeds::ZmqFeeds};

/// How often the host is scanned for Zeek nodes, names learnt and process stats read: new
/// and exited nodes are noticed within two of these.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

type Targets = Mutex<TargetSet<LiveBackend>>;

/// How many series per node the bounded families may have (`--caller-series`, `--source-series`).
struct SeriesLimits {
    /// `None` without `--caller-metrics`.
    callers: Option<usize>,
    sources: usize,
}

/// Every target's profile as of now, the processes that could not be attached, and the
/// families from other sources (`extra`).
fn exposition(targets: &TargetSet<LiveBackend>, series: &SeriesLimits, extra: Vec<MetricFamily>) -> Exposition {
    let snapshot = targets.backend().snapshot();
    Exposition {
        targets: targets
            .targets()
            .map(|(_, t)| TargetMetrics {
                profile: t.session.profile(&snapshot),
                node_type: t.session.process.node_type,
                process: t.process,
                up: t.is_running(),
                caller_series: series.callers,
                source_series: series.sources,
            })
            .collect(),
        failing: targets
            .failing()
            .map(|(pid, f)| FailingTarget { node: f.node.clone(), pid, error: f.error.clone() })
            .collect(),
        attach_errors: targets.attach_errors().clone().into_iter().collect(),
        extra,
    }
}

/// The samples of every target in one flame graph; with several targets, each one's stacks
/// hang under a root frame naming its node.
fn host_sampling(targets: &Targets) -> Option<(Sampling, String)> {
    let profiles: Vec<Profile> = {
        let targets = targets.lock().ok()?;
        let snapshot = targets.backend().snapshot();
        targets.targets().map(|(_, t)| t.session.profile(&snapshot)).collect()
    };
    let sampled: Vec<_> = profiles.iter().filter_map(|p| Some((&p.target, p.sampling.as_ref()?))).collect();
    match sampled.as_slice() {
        [] => None,
        [(t, sampling)] => {
            Some(((*sampling).clone(), format!("zeek-probe: {} (PID {}, Zeek {})", t.node, t.pid, t.zeek_version)))
        }
        many => {
            let mut merged = Sampling { hz: many[0].1.hz, ..Sampling::default() };
            for (t, sampling) in many {
                merged.native_stacks.add(&sampling.native_stacks);
                let root = StackFrame::named(format!("{} (PID {})", t.node, t.pid));
                merged.stacks.extend(sampling.stacks.iter().map(|s| {
                    let mut stack = s.clone();
                    stack.frames.insert(0, root.clone());
                    stack
                }));
            }
            Some((merged, format!("zeek-probe: {} Zeek processes on {}", many.len(), service_discovery::hostname())))
        }
    }
}

/// The targets' counters and profiles, for CPU profiles of a window of time.
struct HostProfiles(Arc<Targets>);

impl ProfileSource for HostProfiles {
    fn snapshot(&self) -> Option<(MapSnapshot, Vec<String>)> {
        let targets = self.0.lock().ok()?;
        let nodes = targets.targets().map(|(_, t)| t.session.process.node.clone()).collect();
        Some((targets.backend().snapshot(), nodes))
    }

    fn profiles(&self, counts: &MapSnapshot, node: Option<&str>) -> Vec<Profile> {
        let Ok(targets) = self.0.lock() else { return Vec::new() };
        targets
            .targets()
            .filter(|(_, t)| node.is_none_or(|node| t.session.process.node == node))
            .map(|(_, t)| t.session.profile(counts))
            .collect()
    }
}

/// Writes the flame graph of everything sampled so far, if one was asked for.
fn write_flamegraph(targets: &Targets, path: Option<&Path>) -> Result<(), flamegraph::FlamegraphError> {
    let Some(path) = path else { return Ok(()) };
    let Some((sampling, title)) = host_sampling(targets) else { return Ok(()) };
    flamegraph::write_file(path, &sampling, &title)?;
    output::note(format_args!("flame graph written to {}", path.display()));
    Ok(())
}

pub fn run(args: AttachArgs) -> anyhow::Result<i32> {
    // Everything that can be wrong with the command line is said before anything is attached.
    let web = args.web_config.as_deref().map(WebConfig::load).transpose()?.unwrap_or_default();
    let node_cfg = args.discovery.node_cfg.clone();
    service_discovery::discover(node_cfg.as_deref(), "", args.listen.port(), &[])?;
    if let Some(path) = &args.flamegraph {
        report::check_file_place(path, "--flamegraph")?;
    }
    if !args.listen.ip().is_loopback() && (web.tls.is_none() || web.auth.is_none()) {
        output::note(format_args!(
            "warning: serving {} without {} (see --web-config)",
            args.listen,
            if web.tls.is_none() { "TLS" } else { "authentication" }
        ));
    }

    let feeds = Arc::new(ZmqFeeds::start(&args.zmq)?);
    let series =
        SeriesLimits { callers: args.caller_metrics.then_some(args.caller_series), sources: args.source_series };
    let (targets, host) = live_targets::open(Probes::load(args.probes.plan(args.hz, false))?, &args.targets)?;
    let (targets, host) = (Arc::new(Mutex::new(targets)), Arc::new(host));

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = server::bind(args.listen).await?;
        let address = listener.local_addr().unwrap_or(args.listen);
        // Where Prometheus reaches us: as told, else the address listened on (the host's name
        // when listening on every address).
        let advertise = args.discovery.advertise.clone().unwrap_or_else(|| {
            if address.ip().is_unspecified() {
                format!("{}:{}", service_discovery::hostname(), address.port())
            } else {
                address.to_string()
            }
        });
        let scheme = if web.tls.is_some() { "https" } else { "http" };
        let serving = {
            let t = targets.lock().map_err(|_| anyhow::anyhow!("the exporter's state is poisoned"))?;
            match t.running().next().map(|s| s.summary()) {
                Some(s) if args.targets.pid.is_some() => {
                    format!("attached to PID {} (node {}, Zeek {})", s.pid, s.node, s.zeek_version)
                }
                _ => format!("attached to {} Zeek process(es), following the host", t.running().count()),
            }
        };
        output::note(format_args!(
            "{serving}; metrics on {scheme}://{address}/metrics, CPU profiles on {scheme}://{address}/debug/pprof/profile"
        ));

        feeds.announce();
        let for_scrapes = targets.clone();
        let for_discovery = targets.clone();
        let pprof = Arc::new(PprofEndpoint::new(HostProfiles(targets.clone())));
        let routes = Routes {
            metrics: Arc::new(move || {
                let extra = feeds.families();
                let Ok(exposition) = for_scrapes.lock().map(|t| exposition(&t, &series, extra)) else {
                    return String::new();
                };
                exporter::encode(&exposition)
            }),
            // node.cfg is read per request, so an edited cluster layout is served without a restart.
            services: Arc::new(move || {
                let nodes: Vec<String> = for_discovery
                    .lock()
                    .map(|t| t.running().map(|s| s.process.node.clone()).collect())
                    .unwrap_or_default();
                service_discovery::discover(node_cfg.as_deref(), &advertise, address.port(), &nodes)
                    .map(|groups| service_discovery::to_json(&groups))
                    .unwrap_or_else(|_| "[]".to_owned())
            }),
            pprof,
        };
        let serving = tokio::spawn(server::serve(listener, routes, web));

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
                    let (targets, host) = (targets.clone(), host.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        let found = host.scan();
                        if let Ok(mut t) = targets.lock() {
                            live_targets::refresh(&mut t, found);
                        }
                    })
                    .await;
                }
                // A failure on request is said and the exporter carries on; at exit it is the exit status.
                _ = flamegraph_request.recv() => {
                    if let Err(err) = write_flamegraph(&targets, args.flamegraph.as_deref()) {
                        output::note(format_args!("error: {:#}", anyhow::Error::from(err)));
                    }
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = &mut deadline => break,
            }
        }
        serving.abort();
        write_flamegraph(&targets, args.flamegraph.as_deref())?;
        Ok(0)
    })
}
