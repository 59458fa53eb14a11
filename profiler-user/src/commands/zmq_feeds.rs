//! `attach`'s `--zmq-*` options: the ZeroMQ feeds they ask for, started, with what they export.
//! Built without the `zmq` feature, zeek-probe has no feeds and refuses the options in one line.
use prometheus::proto::MetricFamily;

use crate::cli::ZmqArgs;

/// The feeds `attach` runs (possibly none). Dropping it stops them.
pub struct ZmqFeeds {
    #[cfg(feature = "zmq")]
    feeds: Option<zeek_probe_zeromq::Feeds>,
}

impl ZmqArgs {
    fn requested(&self) -> bool {
        self.zmq_cluster.is_some() || self.zmq_logs.is_some()
    }
}

#[cfg(feature = "zmq")]
impl ZmqFeeds {
    /// Starts the feeds asked for (sockets bound or connecting).
    pub fn start(args: &ZmqArgs) -> anyhow::Result<Self> {
        use zeek_probe_zeromq::{CurveKeys, FeedConfig, Feeds};
        if !args.requested() {
            return Ok(ZmqFeeds { feeds: None });
        }
        let curve = match (&args.zmq_curve_public, &args.zmq_curve_secret, &args.zmq_curve_server) {
            (Some(public), Some(secret), Some(server)) => Some(CurveKeys::load(public, secret, server)?),
            _ => None,
        };
        let config = FeedConfig {
            cluster: args.zmq_cluster.clone(),
            logs: args.zmq_logs.clone(),
            curve,
            top_n: args.zmq_top_n,
            interval: std::time::Duration::from_secs(args.zmq_interval.max(1)),
            queue: args.zmq_queue,
            ..FeedConfig::default()
        };
        Ok(ZmqFeeds { feeds: Some(Feeds::start(config)?) })
    }

    /// Says where each feed listens or connects.
    pub fn announce(&self) {
        for (kind, endpoint) in self.feeds.iter().flat_map(|f| f.endpoints()) {
            crate::output::note(format_args!("ZeroMQ {} feed on {endpoint}", kind.as_str()));
        }
    }

    /// The feeds' metrics at this moment.
    pub fn families(&self) -> Vec<MetricFamily> {
        let snapshot = self.feeds.as_ref().map(zeek_probe_zeromq::Feeds::snapshot);
        snapshot.map(|s| crate::exporter::zeromq_metrics::families(&s)).unwrap_or_default()
    }
}

#[cfg(not(feature = "zmq"))]
impl ZmqFeeds {
    /// Refuses the `--zmq-*` feeds: this build has none.
    pub fn start(args: &ZmqArgs) -> anyhow::Result<Self> {
        if args.requested() {
            anyhow::bail!(
                "this zeek-probe was built without ZeroMQ support (feature zmq): --zmq-cluster and --zmq-logs \
                 need a build with default features"
            );
        }
        Ok(ZmqFeeds {})
    }

    pub fn announce(&self) {}

    pub fn families(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn zmq_args(args: &[&str]) -> ZmqArgs {
        let cli = Cli::try_parse_from(["zeek-probe", "attach", "--pid", "1"].iter().chain(args)).unwrap();
        let Command::Attach(attach) = cli.command else { panic!("not attach") };
        attach.zmq
    }

    #[test]
    fn no_feeds_asked_for_none_run() {
        let feeds = ZmqFeeds::start(&zmq_args(&[])).unwrap();
        assert!(feeds.families().is_empty());
    }

    #[cfg(not(feature = "zmq"))]
    #[test]
    fn a_build_without_zmq_refuses_the_feeds_in_one_line() {
        for option in ["--zmq-cluster", "--zmq-logs"] {
            let Err(e) = ZmqFeeds::start(&zmq_args(&[option, "tcp://127.0.0.1:5557"])) else { panic!("{option}") };
            let e = e.to_string();
            assert!(e.starts_with("this zeek-probe was built without ZeroMQ support (feature zmq)"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
