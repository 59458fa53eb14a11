//! What `record` leaves behind: files in the output directory and a table on the terminal.
pub mod flamegraph;
pub mod folded;
pub mod pprof;
pub mod summary_json;
pub mod top_table;

use std::path::Path;

use crate::profile::Profile;

/// Writes every report file for `profile` into `dir`: summary.json always; the folded
/// stacks, flame graph and pprof profile when CPU was sampled.
pub fn write_all(dir: &Path, profile: &Profile, duration: std::time::Duration) -> anyhow::Result<()> {
    use anyhow::Context as _;
    summary_json::write(dir, profile)
        .with_context(|| format!("cannot write {}", dir.join(summary_json::FILE_NAME).display()))?;
    if let Some(sampling) = &profile.sampling {
        folded::write(dir, sampling)
            .with_context(|| format!("cannot write {}", dir.join(folded::FILE_NAME).display()))?;
        let t = &profile.target;
        let title = format!("zeek-probe: {} (PID {}, Zeek {})", t.node, t.pid, t.zeek_version);
        flamegraph::write(dir, sampling, &title)?;
        let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        pprof::write(dir, sampling, nanos)
            .with_context(|| format!("cannot write {}", dir.join(pprof::FILE_NAME).display()))?;
    }
    Ok(())
}
