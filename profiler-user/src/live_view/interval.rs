//! One node's last interval as `top` shows it: CPU as a share of one core, calls and log
//! writes per second.
use crate::{
    profile::Profile,
    symbolize::{FuncKind, kernel_symbols::is_kernel_frame},
};

/// A function (script function, event, hook or BIF) or a native row, over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRate {
    pub name: String,
    pub kind: FuncKind,
    /// Sampled CPU on top of the stack, percent of one core.
    pub self_percent: f64,
    /// Sampled CPU anywhere on the stack, percent of one core.
    pub total_percent: f64,
    /// Exact calls per second (with `--count-calls`).
    pub calls_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamRate {
    pub stream: String,
    pub writes_per_second: f64,
}

/// One of the longest recent dispatches (an event that held the event loop).
#[derive(Debug, Clone, PartialEq)]
pub struct LongDispatch {
    pub name: String,
    pub seconds: f64,
    /// The innermost non-kernel frame of the stack sampled most in it: where the time went.
    pub hottest: Option<String>,
}

/// What the screen shows for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node: String,
    pub pid: u32,
    pub zeek_version: String,
    pub running: bool,
    /// The interval's length, seconds.
    pub seconds: f64,
    /// The CPU sampling rate, when sampling.
    pub sample_hz: Option<u64>,
    pub calls_counted: bool,
    /// All CPU sampled in the interval, percent of one core (every thread).
    pub cpu_percent: f64,
    /// Script functions, events, hooks and BIFs.
    pub functions: Vec<FunctionRate>,
    /// Native code and other threads: sampled leaf symbols (or their library) only, so their
    /// self time is all there is.
    pub natives: Vec<FunctionRate>,
    pub streams: Vec<StreamRate>,
    /// The interval's longest dispatches, longest first; or why they are not measured.
    pub long_dispatches: Result<Vec<LongDispatch>, String>,
}

impl NodeView {
    /// `profile` is of one interval `seconds` long (`profile::window::counted_since`).
    pub fn of_interval(profile: &Profile, running: bool, seconds: f64) -> Self {
        let seconds = seconds.max(f64::EPSILON);
        let percent = |cpu: f64| 100.0 * cpu / seconds;
        let (natives, functions): (Vec<FunctionRate>, Vec<FunctionRate>) = profile
            .functions
            .iter()
            .map(|f| FunctionRate {
                name: f.name.clone(),
                kind: f.kind,
                self_percent: percent(f.self_seconds),
                total_percent: percent(f.total_seconds),
                calls_per_second: f.calls.map(|c| c as f64 / seconds),
            })
            .partition(|f| matches!(f.kind, FuncKind::Native | FuncKind::Thread | FuncKind::Kernel));
        let t = &profile.target;
        Self {
            node: t.node.clone(),
            pid: t.pid,
            zeek_version: t.zeek_version.clone(),
            running,
            seconds,
            sample_hz: t.sample_hz,
            calls_counted: t.calls_counted,
            cpu_percent: profile.functions.iter().map(|f| percent(f.self_seconds)).sum(),
            functions,
            natives,
            streams: profile
                .log_writes
                .iter()
                .map(|s| StreamRate { stream: s.stream.clone(), writes_per_second: s.writes as f64 / seconds })
                .collect(),
            long_dispatches: long_dispatches(profile),
        }
    }
}

/// The profile's longest dispatches (already longest first), or why there are none.
fn long_dispatches(profile: &Profile) -> Result<Vec<LongDispatch>, String> {
    if let Some(why) = &profile.target.long_dispatches_unavailable {
        return Err(format!("unavailable ({why})"));
    }
    let measured = profile.long_dispatches.as_ref().ok_or("not measured without sampling")?;
    Ok(measured
        .longest
        .iter()
        .map(|d| LongDispatch {
            name: d.event.clone(),
            seconds: d.seconds,
            // Zeek's innermost frame: a kernel frame under it says less about which handler.
            hottest: d.top_stack.iter().rev().find(|f| !is_kernel_frame(&f.name)).map(|f| f.name.clone()),
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        profile::{FunctionStats, LongDispatchRow, LongDispatches, ProbeHealth, StreamWrites, TargetSummary},
        symbolize::StackFrame,
    };

    pub(crate) fn function(
        name: &str,
        kind: FuncKind,
        self_seconds: f64,
        total_seconds: f64,
        calls: Option<u64>,
    ) -> FunctionStats {
        FunctionStats { name: name.into(), zeek_name: None, kind, file: None, calls, self_seconds, total_seconds }
    }

    pub(crate) fn profile(pid: u32, node: &str, functions: Vec<FunctionStats>) -> Profile {
        Profile {
            target: TargetSummary {
                pid,
                node: node.into(),
                zeek_version: "8.2.2".into(),
                abi: "8.2".into(),
                layout_source: crate::binary::LayoutSource::Table,
                binary: "/usr/bin/zeek".into(),
                calls_counted: true,
                uprobe_links: crate::probes::uprobe_multi::UprobeLinkKind::Multi,
                sample_hz: Some(99),
                zam: false,
                cpu_seconds: None,
                long_dispatches_unavailable: None,
            },
            functions,
            callers: Vec::new(),
            log_writes: vec![StreamWrites { stream: "Conn::LOG".into(), writes: 40 }],
            files: Vec::new(),
            packages: Vec::new(),
            components: Vec::new(),
            sampling: None,
            long_dispatches: None,
            probe_health: ProbeHealth::default(),
        }
    }

    #[test]
    fn seconds_become_shares_of_a_core_and_counts_rates() {
        let p = profile(
            7,
            "worker-1",
            vec![
                function("new_connection", FuncKind::Event, 0.1, 1.0, Some(200)),
                function("zeek::Connection::NextPacket", FuncKind::Native, 0.5, 0.5, None),
            ],
        );
        let view = NodeView::of_interval(&p, true, 2.0);
        assert_eq!(view.functions.len(), 1, "natives apart from script functions");
        let ev = &view.functions[0];
        assert_eq!((ev.self_percent, ev.total_percent, ev.calls_per_second), (5.0, 50.0, Some(100.0)));
        assert_eq!(view.natives[0].name, "zeek::Connection::NextPacket");
        assert_eq!(view.natives[0].self_percent, 25.0);
        assert!((view.cpu_percent - 30.0).abs() < 1e-9);
        assert_eq!(view.streams, vec![StreamRate { stream: "Conn::LOG".into(), writes_per_second: 20.0 }]);
        assert_eq!(view.long_dispatches, Err("not measured without sampling".into()));
    }

    #[test]
    fn long_dispatches_keep_their_order_and_where_they_spent_most() {
        let mut p = profile(7, "worker-1", Vec::new());
        let frame = |name: &str| StackFrame::named(name);
        let row = |seq, seconds, leaf: &str| LongDispatchRow {
            event: "ssl_established".into(),
            seq,
            seconds,
            samples: 10,
            top_stack: vec![frame("ssl_established"), frame(leaf), frame("[k] do_syscall_64")],
            top_stack_samples: 6,
        };
        p.long_dispatches = Some(LongDispatches {
            period_seconds: 0.001,
            min_periods: 2,
            bucket_bounds_seconds: vec![0.002],
            events: Vec::new(),
            longest: vec![row(9, 0.068, "x509_verify"), row(4, 0.012, "fmt")],
        });
        let view = NodeView::of_interval(&p, true, 2.0).long_dispatches.unwrap();
        assert_eq!(
            view.iter().map(|d| (d.seconds, d.hottest.as_deref())).collect::<Vec<_>>(),
            [(0.068, Some("x509_verify")), (0.012, Some("fmt"))]
        );
        p.target.long_dispatches_unavailable = Some("Zeek < 7.2".into());
        assert_eq!(NodeView::of_interval(&p, true, 2.0).long_dispatches, Err("unavailable (Zeek < 7.2)".into()));
    }
}
