//! Bounded coverage-guided fuzzing of every decoder of outside input (`profiler-user/fuzz/`,
//! cargo-fuzz and libFuzzer on nightly). Each target starts from its committed corpus; what it
//! finds on the way is kept under target/, not in the checkout. A crash fails the run, naming
//! the input that caused it.
use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::run;

/// The fuzz targets, one per kind of outside input (`fuzz/fuzz_targets/<name>.rs`).
const TARGETS: [&str; 6] = ["broker_bin", "broker_json", "ncsa_log_record", "web_config", "node_cfg", "zeek_binary"];

/// Fuzzes every target for `seconds` each.
pub fn run(seconds: u64) -> Result<()> {
    // cargo-fuzz runs from the fuzzed crate's directory and finds `fuzz/` in it.
    let crate_dir = run::workspace_root().join("profiler-user");
    let fuzz_dir = crate_dir.join("fuzz");
    run::status(Command::new("cargo").args(["+nightly", "fuzz", "build", "--release"]).current_dir(&crate_dir))?;
    // `zeek_binary` inspects each input through the layout cache, which keeps an entry per
    // file: thousands per run, in the host's /var/cache/zeek-probe (as root) but for this.
    let cache = run::workspace_root().join("target/fuzz-layout-cache");
    let _ = fs::remove_dir_all(&cache);
    for target in TARGETS {
        let seeds = fuzz_dir.join("corpus").join(target);
        let found = run::workspace_root().join("target/fuzz-corpus").join(target);
        fs::create_dir_all(&found).with_context(|| format!("cannot create {}", found.display()))?;
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--release", target])
            .arg(&found)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
            .current_dir(&crate_dir)
            .env("CACHE_DIRECTORY", &cache)
            .env_remove("ZEEK_PROBE_CACHE")
            .status()
            .context("cannot run cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}): the input is in {}; make it a test",
                fuzz_dir.join("artifacts").join(target).display()
            );
        }
    }
    Ok(())
}
