//! Zeek's ZeroMQ side (zeek-abi.md §7).
pub mod broker_bin;
pub mod broker_json;
pub mod encode;
