//! Zeek's ZeroMQ side (zeek-abi.md §7): decoding what the cluster publishes. Only the
//! `broker-bin-v1` payload decoder exists so far; the subscriber sockets come next (issue #6).
pub mod broker_bin;
