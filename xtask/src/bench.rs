//! `cargo xtask bench`: what probing every script call costs, measured side by side in one
//! run on the fixture's tight call loop (this machine is shared and noisy: only ratios of
//! interleaved runs mean anything). No assertions: it reports.
//!
//! (a) no probe, (b) an empty BPF program on the same probe points (the kernel's floor),
//! (c) `zeek-probe --count-calls`, (d) bpftrace counting calls per function name.
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{fixtures, run};

const CALLS: &str = "1000000";
const ROUNDS: usize = 5;

const SCRIPT_INVOKE: &str =
    "_ZNK4zeek6detail10ScriptFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";
const BIF_INVOKE: &str =
    "_ZNK4zeek6detail11BuiltinFunc6InvokeEPSt6vectorINS_12IntrusivePtrINS_3ValEEESaIS5_EEPNS0_5FrameE";

#[derive(Clone, Copy)]
enum Variant {
    NoProbe,
    EmptyProgram,
    ZeekProbe,
    Bpftrace,
}

impl Variant {
    const ALL: [Variant; 4] = [Self::NoProbe, Self::EmptyProgram, Self::ZeekProbe, Self::Bpftrace];

    fn label(self) -> &'static str {
        match self {
            Self::NoProbe => "(a) no probe",
            Self::EmptyProgram => "(b) empty BPF program",
            Self::ZeekProbe => "(c) zeek-probe --count-calls",
            Self::Bpftrace => "(d) bpftrace count per name",
        }
    }

    fn command(self) -> Command {
        let fixture = fixtures::path(fixtures::DEFAULT);
        let probe = run::workspace_root().join("target/release/zeek-probe");
        let out = run::workspace_root().join("target/bench-report");
        let record = |flag: &str| {
            let mut c = Command::new(&probe);
            c.args(["record", flag, "--out"]).arg(&out).arg("--").arg(&fixture).args(["--tight-loop", CALLS]);
            c
        };
        match self {
            Self::NoProbe => {
                let mut c = Command::new(&fixture);
                c.args(["--tight-loop", CALLS]);
                c
            }
            Self::EmptyProgram => record("--empty-probes"),
            Self::ZeekProbe => record("--count-calls"),
            Self::Bpftrace => {
                let f = fixture.display();
                let program = format!(
                    "uprobe:{f}:{SCRIPT_INVOKE}, uprobe:{f}:{BIF_INVOKE} {{ @calls[str(*(uint64 *)(reg(\"si\") + 72))] = count(); }}"
                );
                let mut c = Command::new("bpftrace");
                c.args(["-e", &program, "-c", &format!("{f} --tight-loop {CALLS}")]);
                c
            }
        }
    }
}

/// Runs one variant; the fixture prints `ns_per_call=<float>`.
fn measure(variant: Variant) -> Result<f64> {
    let output = variant.command().output().with_context(|| format!("cannot run {}", variant.label()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find_map(|l| l.trim().strip_prefix("ns_per_call=")) {
        Some(v) => v.parse().with_context(|| format!("bad ns_per_call in {}", variant.label())),
        None => bail!("{} printed no ns_per_call: {}", variant.label(), String::from_utf8_lossy(&output.stderr).trim()),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run() -> Result<()> {
    run::cargo(&["build", "--release", "--package", "zeek-probe"])?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    for round in 0..ROUNDS {
        // Rotate the order so no variant always runs first (cold) or last.
        for i in 0..Variant::ALL.len() {
            let idx = (i + round) % Variant::ALL.len();
            match measure(Variant::ALL[idx]) {
                Ok(ns) => samples[idx].push(ns),
                Err(err) => eprintln!("xtask: bench: {err:#}"),
            }
        }
    }
    let medians: Vec<Option<f64>> = samples.iter_mut().map(|s| (!s.is_empty()).then(|| median(s))).collect();
    println!("per-call cost on the fixture's tight loop ({CALLS} calls, median of {ROUNDS} interleaved rounds)");
    for (v, m) in Variant::ALL.iter().zip(&medians) {
        match m {
            Some(ns) => println!("  {:<30} {:>9.1} ns/call", v.label(), ns),
            None => println!("  {:<30} {:>9} (did not run)", v.label(), "-"),
        }
    }
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => format!("{:.3}", x / y),
        _ => "n/a".into(),
    };
    println!("  c/b = {}   (target <= 1.10)", ratio(medians[2], medians[1]));
    println!("  c/d = {}   (target <= 1.00)", ratio(medians[2], medians[3]));
    println!("  c/a = {}   (slowdown of the call loop itself)", ratio(medians[2], medians[0]));
    Ok(())
}
