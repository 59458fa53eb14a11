//! What zeek-probe says. Results go to standard output, and losing them (a full disk, a closed
//! pipe) is an error; notes go to standard error and never stop the work when they cannot be
//! written (a full log must not end a profiling run). Neither panics.
use std::{
    fmt,
    io::{self, Write as _},
};

#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0} (a full disk or a closed pipe? send it somewhere that takes it)")]
pub struct OutputError(io::Error);

/// Writes `text` to standard output, all of it or an error.
pub fn print(text: &str) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(OutputError)
}

/// Writes `zeek-probe: MESSAGE` to standard error, if it can.
pub fn note(message: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "zeek-probe: {message}");
}
