//! Process health from /proc: CPU time, start time, resident memory.
use std::fs;

use super::process::stat_fields;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    /// Unix time the process started.
    pub start_time_seconds: f64,
    pub resident_bytes: u64,
}

impl ProcessStats {
    /// `None` once the process is gone.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&stat, clock_ticks(), page_size(), boot_time()?)
    }
}

fn parse_stat(stat: &str, ticks: f64, page: u64, boot_time: f64) -> Option<ProcessStats> {
    let fields: Vec<&str> = stat_fields(stat)?.collect();
    // `rest` starts at field 3 (state); utime is field 14, stime 15, starttime 22, rss 24.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        start_time_seconds: boot_time + field(22)? as f64 / ticks,
        resident_bytes: field(24)? * page,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64
}

fn boot_time() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_comm() {
        let line = "4242 (zeek) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1000000 2560 18446744073709551615";
        let s = parse_stat(line, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.resident_bytes, 2560 * 4096);
    }

    #[test]
    fn reads_itself() {
        let s = ProcessStats::read(std::process::id()).unwrap();
        assert!(s.resident_bytes > 0);
        assert!(s.start_time_seconds > 1_000_000_000.0);
    }
}
