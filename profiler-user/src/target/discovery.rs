//! Finding every Zeek process on the host by what its executable is (the Zeek symbols in it),
//! not by its name: zeekctl, the supervisor, containers and hand-started runs all name their
//! processes differently, but all run a binary with `ScriptFunc::Invoke` in it.
//!
//! A scan costs one `stat` per process; each distinct executable is inspected once and the
//! verdict kept while some process runs it.
use std::{
    collections::{HashMap, HashSet},
    fs,
    path::Path,
    sync::Arc,
};

use super::{
    ProcessInfo,
    node::{NodeType, STEM, SUPERVISOR},
};
use crate::binary::{BinaryError, FileId, ZeekBinary};

/// What an executable is to us.
#[derive(Debug, Clone)]
pub enum Verdict {
    Zeek(Arc<ZeekBinary>),
    /// Zeek, but not one zeek-probe can probe (the reason, in one line).
    Unsupported(Arc<str>),
    NotZeek,
}

/// A Zeek process found by a scan.
#[derive(Debug, Clone)]
pub struct Found {
    pub process: ProcessInfo,
    pub file: FileId,
    /// `Err` holds why it cannot be probed.
    pub binary: Result<Arc<ZeekBinary>, Arc<str>>,
}

#[derive(Default)]
pub struct Discovery {
    verdicts: HashMap<FileId, Verdict>,
}

impl Discovery {
    /// Every Zeek process running now, by PID, with node names completed across the process
    /// tree. Processes that vanish or cannot be read mid-scan are left for the next scan.
    pub fn scan(&mut self) -> HashMap<u32, Found> {
        let me = std::process::id();
        let mut seen_files = HashSet::new();
        let mut found = HashMap::new();
        let Ok(entries) = fs::read_dir("/proc") else { return found };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            // Kernel threads have no executable; other users' processes need CAP_SYS_PTRACE.
            let exe = Path::new("/proc").join(pid.to_string()).join("exe");
            let Ok(file) = FileId::of(&exe) else { continue };
            seen_files.insert(file);
            let cached = self.verdicts.get(&file).cloned();
            // What is known not to be Zeek costs nothing more than the stat.
            if matches!(cached, Some(Verdict::NotZeek)) {
                continue;
            }
            let Ok(process) = ProcessInfo::read(pid) else { continue };
            let verdict = cached.unwrap_or_else(|| {
                let v = inspect(&process);
                self.verdicts.insert(file, v.clone());
                v
            });
            let binary = match verdict {
                Verdict::Zeek(binary) => Ok(binary),
                Verdict::Unsupported(why) => Err(why),
                Verdict::NotZeek => continue,
            };
            if ProcessInfo::is_alive(pid) {
                found.insert(pid, Found { process, file, binary });
            }
        }
        // Forget executables nothing runs any more (upgrades leave old inodes behind).
        self.verdicts.retain(|file, _| seen_files.contains(file));
        name_supervisor_tree(&mut found);
        found
    }
}

fn inspect(process: &ProcessInfo) -> Verdict {
    match ZeekBinary::inspect(&process.exe, &process.exe_link) {
        Ok(binary) => {
            binary.sort_functions_now();
            Verdict::Zeek(Arc::new(binary))
        }
        // A debug-information file cannot be run: never met here.
        Err(BinaryError::NotZeek { .. } | BinaryError::Elf(_) | BinaryError::DebugInfoOnly { .. }) => Verdict::NotZeek,
        Err(err @ BinaryError::Unsupported { .. }) => Verdict::Unsupported(format!("{err}").into()),
    }
}

/// The supervisor forks its stem and the stem forks the nodes, all without exec: the nodes
/// are named by their thread name, the two above them by their place in the tree.
fn name_supervisor_tree(found: &mut HashMap<u32, Found>) {
    let unnamed = |f: &Found| f.process.node_type == NodeType::Standalone;
    let parents_of = |found: &HashMap<u32, Found>, child: &dyn Fn(&Found) -> bool| -> Vec<u32> {
        found.values().filter(|f| child(f)).map(|f| f.process.ppid).collect()
    };
    let stems: Vec<u32> = parents_of(found, &|f| !unnamed(f) && f.process.node_type != NodeType::Supervisor);
    for pid in stems {
        if let Some(f) = found.get_mut(&pid).filter(|f| unnamed(f)) {
            f.process.node = STEM.to_owned();
            f.process.node_type = NodeType::Supervisor;
        }
    }
    let supervisors = parents_of(found, &|f| f.process.node == STEM);
    for pid in supervisors {
        if let Some(f) = found.get_mut(&pid).filter(|f| unnamed(f)) {
            f.process.node = SUPERVISOR.to_owned();
            f.process.node_type = NodeType::Supervisor;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn found(pid: u32, ppid: u32, node: &str) -> (u32, Found) {
        let process = ProcessInfo {
            pid,
            exe: PathBuf::from("/usr/bin/zeek"),
            exe_link: PathBuf::from("/usr/bin/zeek"),
            cmdline: vec!["zeek".into()],
            node: node.into(),
            node_type: NodeType::of(node, &[]),
            ppid,
            zam: false,
        };
        let file = FileId { dev: 1, ino: 2, size: 3, mtime_ns: 4 };
        (pid, Found { process, file, binary: Err("test".into()) })
    }

    #[test]
    fn names_the_supervisor_and_its_stem_by_their_children() {
        let mut tree: HashMap<u32, Found> = [
            found(10, 1, "standalone"),
            found(11, 10, "standalone"),
            found(12, 11, "logger-1"),
            found(13, 11, "worker-1"),
            found(20, 1, "standalone"),
        ]
        .into_iter()
        .collect();
        name_supervisor_tree(&mut tree);
        let node = |pid: u32| (tree[&pid].process.node.as_str(), tree[&pid].process.node_type);
        assert_eq!(node(10), (SUPERVISOR, NodeType::Supervisor));
        assert_eq!(node(11), (STEM, NodeType::Supervisor));
        assert_eq!(node(12), ("logger-1", NodeType::Logger));
        assert_eq!(node(20), ("standalone", NodeType::Standalone), "a lone Zeek stays standalone");
    }

    #[test]
    fn a_scan_does_not_find_non_zeek_processes() {
        let mut discovery = Discovery::default();
        let found = discovery.scan();
        assert!(!found.contains_key(&std::process::id()));
        let parent = std::os::unix::process::parent_id();
        assert!(!found.contains_key(&parent), "cargo (or a shell) is not Zeek");
        let parent_file = FileId::of(Path::new(&format!("/proc/{parent}/exe"))).unwrap();
        assert!(matches!(discovery.verdicts.get(&parent_file), Some(Verdict::NotZeek)));
    }
}
