//! End-to-end tests: the real `zeek-probe` binary, real BPF programs in the kernel, the
//! Zeek-shaped fixture as the target. They need root (CAP_SYS_ADMIN for uprobes, CAP_SYS_PTRACE);
//! without it they are skipped, except under CI=true, where they fail.
mod attach;
mod bad_input;
mod binary;
mod check;
mod cluster;
mod common;
mod dispatches;
mod faults;
mod hard_kills;
mod map_memory;
mod native_chains;
mod native_stacks;
mod perf_agreement;
mod pprof_endpoint;
mod real_zeek;
mod real_zeek_support;
mod record;
mod sampling;
mod top;
mod version;
// The ZeroMQ feeds exist with the `zmq` feature only (the default).
#[cfg(feature = "zmq")]
mod zeromq;
