//! `GET /debug/pprof/profile?seconds=N[&node=NAME]`: the CPU profile of the next N seconds as
//! gzipped pprof, from the path and query Go services serve it on, which Parca (`process_cpu`)
//! and Grafana Alloy's `pyroscope.scrape` pull by default (passing their interval as `seconds`).
//!
//! The BPF maps count cumulatively, so a window is the difference of two snapshots: one when
//! the request arrives, one `seconds` later (slept asynchronously, holding no lock).
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::StatusCode;
use tokio::sync::Semaphore;

use crate::{
    probes::MapSnapshot,
    profile::{Profile, window},
    report::pprof,
};

/// Where Go serves its profiles; the other names there (`allocs`, `block`, `goroutine`,
/// `mutex`, …) that the scrapers ask for by default have no counterpart here.
pub const PREFIX: &str = "/debug/pprof/";
/// The one profile served under `PREFIX`.
const CPU_PROFILE: &str = "profile";
/// Without `seconds`, as Go's own handler.
const DEFAULT_SECONDS: u64 = 30;
/// The longest window: longer ones are better served by several profiles.
pub const MAX_SECONDS: u64 = 300;
/// Profiles being taken at once: each holds two snapshots of the maps in memory meanwhile.
pub const MAX_CONCURRENT: usize = 4;

/// What profiles are cut from.
pub trait ProfileSource: Send + Sync + 'static {
    /// The probes' counters now, and the node names of the targets they count; `None` when
    /// they cannot be read.
    fn snapshot(&self) -> Option<(MapSnapshot, Vec<String>)>;
    /// The profile of every target (of `node`'s, if given) built from `counts`.
    fn profiles(&self, counts: &MapSnapshot, node: Option<&str>) -> Vec<Profile>;
}

/// A profile request, from its query string.
#[derive(Debug, PartialEq, Eq)]
struct ProfileQuery {
    seconds: u64,
    node: Option<String>,
}

/// Why a request was refused, in one line that says what to do instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PprofError {
    #[error(
        "no {0:?} profile here: zeek-probe serves only {PREFIX}{CPU_PROFILE} (CPU); turn the others off in the scraper"
    )]
    UnknownProfile(String),
    #[error("seconds={0:?} is not a whole number: ask for 1 to {MAX_SECONDS} seconds")]
    NotANumber(String),
    #[error("seconds={0} is out of range: ask for 1 to {MAX_SECONDS} seconds")]
    OutOfRange(u64),
    #[error("the query {0:?} is not percent-encoded UTF-8")]
    BadEncoding(String),
    #[error("no attached node is named {0:?} (see zeek_probe_target_info in /metrics)")]
    UnknownNode(String),
    #[error("{MAX_CONCURRENT} profiles are being taken already: retry when one has finished")]
    Busy,
    #[error("the probes' counters cannot be read (see the exporter's log)")]
    Unavailable,
}

impl PprofError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownProfile(_) | Self::UnknownNode(_) => StatusCode::NOT_FOUND,
            Self::NotANumber(_) | Self::OutOfRange(_) | Self::BadEncoding(_) => StatusCode::BAD_REQUEST,
            Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What the endpoint answers.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl From<PprofError> for Reply {
    fn from(err: PprofError) -> Self {
        Self { status: err.status(), content_type: "text/plain; charset=utf-8", body: Bytes::from(format!("{err}\n")) }
    }
}

pub struct PprofEndpoint {
    source: Arc<dyn ProfileSource>,
    taking: Arc<Semaphore>,
}

impl PprofEndpoint {
    pub fn new(source: impl ProfileSource) -> Self {
        Self { source: Arc::new(source), taking: Arc::new(Semaphore::new(MAX_CONCURRENT)) }
    }

    /// Answers `GET {PREFIX}{name}?{query}`.
    pub async fn respond(&self, name: &str, query: Option<&str>) -> Reply {
        match self.profile(name, query).await {
            Ok(body) => Reply { status: StatusCode::OK, content_type: "application/octet-stream", body: body.into() },
            Err(err) => err.into(),
        }
    }

    async fn profile(&self, name: &str, query: Option<&str>) -> Result<Vec<u8>, PprofError> {
        if name != CPU_PROFILE {
            return Err(PprofError::UnknownProfile(name.to_owned()));
        }
        let query = ProfileQuery::parse(query.unwrap_or(""))?;
        // Held until the profile is sent, or until the client goes away and the request is dropped.
        let _taking = self.taking.clone().try_acquire_owned().map_err(|_| PprofError::Busy)?;
        let source = self.source.clone();
        let (start, began, nodes) = blocking(move || {
            let (snapshot, nodes) = source.snapshot()?;
            Some((snapshot, Instant::now(), nodes))
        })
        .await?;
        if let Some(node) = &query.node
            && !nodes.contains(node)
        {
            return Err(PprofError::UnknownNode(node.clone()));
        }
        tokio::time::sleep(Duration::from_secs(query.seconds)).await;
        let source = self.source.clone();
        blocking(move || {
            let (end, _) = source.snapshot()?;
            let duration = began.elapsed();
            let node = query.node.as_deref();
            let profiles = source.profiles(&window::counted_since(&start, end), node);
            let processes: Vec<pprof::ProcessSamples> = profiles
                .iter()
                .filter_map(|p| {
                    let sampling = p.sampling.as_ref()?;
                    Some(pprof::ProcessSamples { node: &p.target.node, pid: p.target.pid, sampling })
                })
                .collect();
            Some(pprof::encode(&processes, i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)))
        })
        .await
    }
}

/// Reads the maps and builds profiles off the async threads (they take the targets' lock).
async fn blocking<T: Send + 'static>(read: impl FnOnce() -> Option<T> + Send + 'static) -> Result<T, PprofError> {
    tokio::task::spawn_blocking(read).await.ok().flatten().ok_or(PprofError::Unavailable)
}

impl ProfileQuery {
    /// `seconds` (default 30) and `node`; other parameters are ignored, as Go's handler does.
    fn parse(query: &str) -> Result<Self, PprofError> {
        let mut parsed = Self { seconds: DEFAULT_SECONDS, node: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decoded(value).ok_or_else(|| PprofError::BadEncoding(query.to_owned()))?;
            match key {
                "seconds" => {
                    let seconds: u64 = value.parse().map_err(|_| PprofError::NotANumber(value.clone()))?;
                    if !(1..=MAX_SECONDS).contains(&seconds) {
                        return Err(PprofError::OutOfRange(seconds));
                    }
                    parsed.seconds = seconds;
                }
                "node" => parsed.node = Some(value),
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// A query value with `%XX` escapes and `+` (a space, in forms) decoded.
fn percent_decoded(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.bytes();
    while let Some(b) = rest.next() {
        bytes.push(match b {
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b'+' => b' ',
            b => b,
        });
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use profiler_common::SampleKey;

    use super::*;

    fn parse(query: &str) -> Result<ProfileQuery, PprofError> {
        ProfileQuery::parse(query)
    }

    #[test]
    fn seconds_and_node_from_the_query() {
        assert_eq!(parse(""), Ok(ProfileQuery { seconds: 30, node: None }));
        assert_eq!(parse("seconds=14"), Ok(ProfileQuery { seconds: 14, node: None }));
        assert_eq!(
            parse("node=worker%2D1&seconds=300&debug=0"),
            Ok(ProfileQuery { seconds: 300, node: Some("worker-1".into()) })
        );
    }

    #[test]
    fn bad_seconds_are_refused_with_the_range() {
        assert_eq!(parse("seconds=ten"), Err(PprofError::NotANumber("ten".into())));
        assert_eq!(parse("seconds=-1"), Err(PprofError::NotANumber("-1".into())));
        assert_eq!(parse("seconds=0"), Err(PprofError::OutOfRange(0)));
        assert_eq!(parse("seconds=301"), Err(PprofError::OutOfRange(301)));
        assert_eq!(parse("node=%G1"), Err(PprofError::BadEncoding("node=%G1".into())));
        let line = PprofError::OutOfRange(0).to_string();
        assert!(!line.contains('\n') && line.contains("1 to 300"), "{line}");
    }

    /// One process whose one stack gains a sample per snapshot taken; what each window
    /// counted is kept.
    #[derive(Default)]
    struct Counting {
        snapshots: Mutex<u64>,
        windows: Arc<Mutex<Vec<u64>>>,
    }

    impl ProfileSource for Counting {
        fn snapshot(&self) -> Option<(MapSnapshot, Vec<String>)> {
            let mut n = self.snapshots.lock().ok()?;
            *n += 1;
            let samples = vec![(SampleKey { pid: 1, _pad: 0, stack: 1 }, 100 + *n)];
            Some((MapSnapshot { samples, ..Default::default() }, vec!["worker-1".into()]))
        }

        fn profiles(&self, counts: &MapSnapshot, _: Option<&str>) -> Vec<Profile> {
            self.windows.lock().unwrap().push(counts.samples[0].1);
            Vec::new()
        }
    }

    fn endpoint() -> PprofEndpoint {
        PprofEndpoint::new(Counting::default())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
    }

    #[test]
    fn other_profiles_and_unknown_nodes_are_not_found() {
        runtime().block_on(async {
            let reply = endpoint().respond("allocs", None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
            assert!(String::from_utf8_lossy(&reply.body).starts_with("no \"allocs\" profile here"));
            let reply = endpoint().respond("profile", Some("seconds=1&node=proxy-1")).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
        });
    }

    #[test]
    fn a_window_is_the_growth_between_two_snapshots() {
        let source = Counting::default();
        let windows = source.windows.clone();
        runtime().block_on(async {
            let reply = PprofEndpoint::new(source).respond("profile", Some("seconds=5&node=worker-1")).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.content_type, "application/octet-stream");
        });
        assert_eq!(*windows.lock().unwrap(), [1], "the samples taken in between, not since the start");
    }

    #[test]
    fn profiles_beyond_the_bound_are_refused() {
        runtime().block_on(async {
            let endpoint = Arc::new(endpoint());
            let taking: Vec<_> = (0..MAX_CONCURRENT)
                .map(|_| {
                    let endpoint = endpoint.clone();
                    tokio::spawn(async move { endpoint.respond("profile", Some("seconds=10")).await.status })
                })
                .collect();
            // Let them all start their windows.
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(endpoint.respond("profile", Some("seconds=1")).await.status, StatusCode::TOO_MANY_REQUESTS);
            for t in taking {
                assert_eq!(t.await.unwrap(), StatusCode::OK);
            }
            assert_eq!(endpoint.respond("profile", Some("seconds=1")).await.status, StatusCode::OK);
        });
    }
}
