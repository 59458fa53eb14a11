//! What /proc says about a process: its executable, command line, node name and load bias.
use std::{fs, io, path::PathBuf};

use crate::probes::privileges;

use super::{
    mappings,
    node::{NodeType, node_name},
};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process with PID {pid}: it is not running (check the PID, e.g. with `pgrep zeek`)")]
    Gone { pid: u32 },
    #[error("cannot inspect PID {pid}: permission denied (run zeek-probe as root or with CAP_SYS_PTRACE)")]
    PermissionDenied { pid: u32 },
    #[error(
        "cannot inspect PID {pid}: the kernel refused to let zeek-probe read /proc/{pid}/{what} although it has CAP_SYS_PTRACE (a security module such as Yama, AppArmor or SELinux, or the process's user namespace, forbids it)"
    )]
    Refused { pid: u32, what: &'static str },
    #[error("cannot read /proc/{pid}/{what}")]
    Read { pid: u32, what: &'static str, source: io::Error },
    #[error("PID {pid} does not map its executable {exe}: cannot find where it is loaded")]
    ExeNotMapped { pid: u32, exe: PathBuf },
}

#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The executable, readable by us through /proc/PID/root (also across mount namespaces).
    pub exe: PathBuf,
    /// The executable's path as the process sees it, for people.
    pub exe_link: PathBuf,
    pub cmdline: Vec<String>,
    pub node: String,
    pub node_type: NodeType,
    /// Its parent: supervised nodes are children of the supervisor's stem.
    pub ppid: u32,
    /// Runs scripts compiled by ZAM (`-O ZAM`): small functions are inlined into their
    /// callers, whose time then includes theirs.
    pub zam: bool,
}

/// Whether a Zeek command line or environment turns on ZAM script optimisation.
pub fn uses_zam(cmdline: &[String], environ: &[u8]) -> bool {
    let flag = cmdline.windows(2).any(|w| matches!((w[0].as_str(), w[1].as_str()), ("-O" | "--optimize", "ZAM")));
    let joined = cmdline.iter().any(|a| a == "-OZAM" || a == "--optimize=ZAM");
    let env = environ.split(|b| *b == 0).any(|e| e.starts_with(b"ZEEK_ZAM"));
    flag || joined || env
}

fn proc_read(pid: u32, what: &'static str) -> Result<Vec<u8>, ProcessError> {
    fs::read(format!("/proc/{pid}/{what}")).map_err(|source| classify(pid, what, source))
}

fn classify(pid: u32, what: &'static str, source: io::Error) -> ProcessError {
    match source.kind() {
        io::ErrorKind::NotFound => ProcessError::Gone { pid },
        io::ErrorKind::PermissionDenied if privileges::missing().contains(&"CAP_SYS_PTRACE") => {
            ProcessError::PermissionDenied { pid }
        }
        io::ErrorKind::PermissionDenied => ProcessError::Refused { pid, what },
        _ if source.raw_os_error() == Some(libc::ESRCH) => ProcessError::Gone { pid },
        _ => ProcessError::Read { pid, what, source },
    }
}

impl ProcessInfo {
    pub fn read(pid: u32) -> Result<Self, ProcessError> {
        if pid == 0 {
            return Err(ProcessError::Gone { pid });
        }
        let exe_link = fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| classify(pid, "exe", e))?;
        let exe = PathBuf::from(format!("/proc/{pid}/root")).join(exe_link.strip_prefix("/").unwrap_or(&exe_link));
        let cmdline: Vec<String> = proc_read(pid, "cmdline")?
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let environ = proc_read(pid, "environ")?;
        let comm = String::from_utf8_lossy(&proc_read(pid, "comm")?).trim_end().to_owned();
        let zam = uses_zam(&cmdline, &environ);
        let stat = String::from_utf8_lossy(&proc_read(pid, "stat")?).into_owned();
        let ppid = parent_pid(&stat).ok_or(ProcessError::Gone { pid })?;
        let node = node_name(&environ, &comm);
        let node_type = NodeType::of(&node, &cmdline);
        Ok(Self { pid, exe, exe_link, cmdline, node, node_type, ppid, zam })
    }

    /// The load bias of the executable: runtime address minus link-time address. Found from
    /// the mapping of the file offset of the first loadable segment.
    pub fn load_bias(&self, first_load_vaddr: u64, first_load_offset: u64) -> Result<u64, ProcessError> {
        let page = 4096;
        let maps = String::from_utf8_lossy(&proc_read(self.pid, "maps")?).into_owned();
        let exe = self.exe_link.to_string_lossy();
        mappings::parse(&maps)
            .into_iter()
            .find(|m| m.path == exe && m.offset == first_load_offset & !(page - 1))
            .map(|m| m.start.wrapping_sub(first_load_vaddr & !(page - 1)))
            .ok_or_else(|| ProcessError::ExeNotMapped { pid: self.pid, exe: self.exe_link.clone() })
    }

    /// Whether the process still exists (a zombie counts as gone).
    pub fn is_alive(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat_is_alive(&stat))
    }
}

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
pub(super) fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace())
}

/// Not a zombie (`Z`) nor dead (`X`).
pub fn stat_is_alive(stat: &str) -> bool {
    stat_fields(stat).and_then(|mut f| f.next()).is_some_and(|state| state != "Z" && state != "X")
}

fn parent_pid(stat: &str) -> Option<u32> {
    stat_fields(stat)?.nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_zam_however_it_is_asked_for() {
        assert!(uses_zam(&args(&["zeek", "-O", "ZAM", "-r", "x.pcap"]), b""));
        assert!(uses_zam(&args(&["zeek", "--optimize=ZAM"]), b""));
        assert!(uses_zam(&args(&["zeek", "-OZAM"]), b""));
        assert!(uses_zam(&args(&["zeek"]), b"PATH=/bin\0ZEEK_ZAM=1\0"));
        assert!(!uses_zam(&args(&["zeek", "-O", "gen-C++", "-r", "ZAM.pcap"]), b"PATH=/bin\0"));
    }

    #[test]
    fn reads_state_and_parent_past_odd_command_names() {
        let stat = "4242 (zeek.a) b) S 17 4242 4242 0 -1";
        assert_eq!(parent_pid(stat), Some(17));
        assert!(stat_is_alive(stat));
        assert!(!stat_is_alive("4242 (zeek) Z 17 4242"));
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn reads_itself() {
        let me = ProcessInfo::read(std::process::id()).unwrap();
        assert!(me.exe.is_file());
        assert!(!me.zam);
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
    }
}
