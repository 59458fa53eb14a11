//! zeek-probe: an external eBPF profiler for unmodified Zeek processes.
//!
//! The data flows through the modules in this order:
//! - `binary`: what a Zeek executable is (version, symbols, layout, probe points), inspected
//!   once per file and shared by every process running it;
//! - `target`: one running process (identity, node name, mappings, memory; launching one under
//!   our control for `record`); `target_set`: the processes an exporter follows, as they come,
//!   fail to attach, exit and restart;
//! - `probes`: the BPF programs loaded (`programs`), attached at the probe points (`links`,
//!   `sampler`), and the BPF maps they fill (`maps`); `session` ties one process to them;
//! - `unwind`: the sampled threads' native stacks, copied by the sampler into a ring buffer and
//!   unwound here from the binaries' `.eh_frame`, counted per distinct stack;
//! - `profile`: aggregation of the maps' counts and samples into one process's profile,
//!   through `symbolize` (name hashes, enum ordinals and stacks into the names people read;
//!   unwound native frames with the script frames spliced in, and the calls inlined into
//!   them with their source lines, from DWARF read only when the samples are named);
//! - `report` (the files and table `record` writes), `exporter` (Prometheus, for `attach`) and
//!   `live_view` (`top`'s terminal view of each node's last interval).
//!
//! `commands` runs each subcommand over them; `cli` is its command line. With the `zmq` feature
//! (default), `attach` also subscribes to the companion Zeek package over ZeroMQ: the
//! `profiler-zeromq` crate, its families exported beside the probes' metrics.
pub mod binary;
pub mod cache_dir;
pub mod cli;
pub mod commands;
pub mod exporter;
pub mod live_view;
pub mod output;
pub mod own_memory;
mod poisoned_lock;
pub mod probes;
pub mod profile;
pub mod report;
pub mod session;
pub mod symbolize;
pub mod target;
pub mod target_set;
pub mod thread_nice;
pub mod unwind;

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, fs, path::Path};

    /// The README's "How it works" map of `profiler-user/src/` names exactly the crate's modules
    /// (folders and files but `lib.rs`, `main.rs`, `cli.rs`, `output.rs`), so that it cannot
    /// drift from the tree.
    #[test]
    fn the_readmes_module_map_matches_the_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = fs::read_to_string(root.join("../README.md")).expect("README.md");
        let map = readme.split("\nprofiler-user/src/\n").nth(1).expect("a map of profiler-user/src/ in the README");
        let listed: BTreeSet<String> = map
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter(|l| !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        let unlisted = ["lib.rs", "main.rs", "cli.rs", "output.rs"];
        let tree: BTreeSet<String> = fs::read_dir(root.join("src"))
            .expect("src/")
            .filter_map(Result::ok)
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() { format!("{name}/") } else { name }
            })
            .filter(|name| !unlisted.contains(&name.as_str()))
            .collect();
        assert_eq!(listed, tree, "README.md's module map against profiler-user/src/");
    }
}
