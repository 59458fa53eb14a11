//! Prometheus: the profiles of attached targets as metrics, served over HTTP.
pub mod metrics;
pub mod server;

pub use metrics::{TargetMetrics, encode};
