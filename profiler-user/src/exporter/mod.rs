//! Prometheus: the profiles of attached targets as metrics, served over HTTP, and where to
//! find the exporters (service discovery); CPU profiles over HTTP for Parca and Pyroscope.
mod dispatch_metrics;
pub mod metrics;
pub mod pprof_endpoint;
pub mod server;
pub mod service_discovery;
mod source_metrics;
pub mod web_config;
#[cfg(feature = "zmq")]
pub mod zeromq_metrics;

pub use metrics::{Exposition, FailingTarget, TargetMetrics, encode};
