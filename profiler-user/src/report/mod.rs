//! What `record` leaves behind: files in the output directory and a table on the terminal.
pub mod flamegraph;
pub mod folded;
pub mod pprof;
pub mod summary_json;
pub mod top_table;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::profile::Profile;

#[derive(Debug, thiserror::Error)]
#[error("cannot write to {}: {error}; {hint}", place.display())]
pub struct PlaceError {
    place: PathBuf,
    error: io::Error,
    hint: String,
}

/// Makes sure, before anything runs, that the report can be written into `dir` (`--out`),
/// creating it.
pub fn prepare_dir(dir: &Path) -> Result<(), PlaceError> {
    let checked = match fs::metadata(dir) {
        Ok(_) => try_writing_in(dir),
        Err(_) => fs::create_dir_all(dir).and_then(|()| try_writing_in(dir)),
    };
    checked.map_err(|error| PlaceError {
        place: dir.to_owned(),
        error,
        hint: "give --out a directory zeek-probe can write to".into(),
    })
}

/// Makes sure, before anything runs, that a file can be written at `path` (given by `option`):
/// its directory exists and takes new files, and it is not itself a directory.
pub fn check_file_place(path: &Path, option: &str) -> Result<(), PlaceError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let checked = match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(io::ErrorKind::IsADirectory, "it is a directory")),
        _ => try_writing_in(dir),
    };
    checked.map_err(|error| PlaceError {
        place: path.to_owned(),
        error,
        hint: format!("give {option} a file in an existing directory zeek-probe can write to"),
    })
}

/// Creates and removes a file in `dir`: the one test that holds alike for root (whom
/// permissions do not stop), read-only mounts and /proc.
fn try_writing_in(dir: &Path) -> io::Result<()> {
    if !fs::metadata(dir)?.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotADirectory, "it is not a directory"));
    }
    let probe = dir.join(format!(".zeek-probe-{}.tmp", std::process::id()));
    fs::File::options().write(true).create_new(true).open(&probe)?;
    fs::remove_file(&probe)
}

/// Writes every report file for `profile` into `dir`: summary.json always; the folded
/// stacks, flame graph and pprof profile when CPU was sampled. Each is made on a thread of its
/// own (the flame graph and the compressed profile take milliseconds, which `record` would
/// otherwise add up); the first failure, in that order, is returned.
pub fn write_all(dir: &Path, profile: &Profile, duration: std::time::Duration) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let cannot_write = |file: &str| format!("cannot write {}", dir.join(file).display());
    std::thread::scope(|scope| {
        let mut writers = vec![
            scope.spawn(|| summary_json::write(dir, profile).with_context(|| cannot_write(summary_json::FILE_NAME))),
        ];
        if let Some(sampling) = &profile.sampling {
            let t = &profile.target;
            // The folded lines are rendered once, for their file and the flame graph, which is
            // drawn from them while they are written.
            writers.push(scope.spawn(move || {
                let lines = folded::render(sampling);
                let title = format!("zeek-probe: {} (PID {}, Zeek {})", t.node, t.pid, t.zeek_version);
                std::thread::scope(|drawing| {
                    let flame_graph = drawing.spawn(|| flamegraph::write(dir, sampling, &lines, &title));
                    let written = folded::write(dir, &lines).with_context(|| cannot_write(folded::FILE_NAME));
                    let drawn = flame_graph.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    written.and(drawn.map_err(anyhow::Error::from))
                })
            }));
            writers.push(scope.spawn(move || {
                let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
                pprof::write(dir, pprof::ProcessSamples { node: &t.node, pid: t.pid, sampling }, nanos)
                    .with_context(|| cannot_write(pprof::FILE_NAME))
            }));
        }
        let written: Vec<anyhow::Result<()>> = writers
            .into_iter()
            .map(|writer| writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        written.into_iter().collect()
    })
}
