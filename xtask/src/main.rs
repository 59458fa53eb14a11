//! Developer tasks: `cargo xtask <task>`. The README's two commands are `cargo xtask demo`
//! and `cargo xtask test`; both install what they need first (`setup`).
mod bench;
mod dist;
mod dist_check;
mod fixtures;
mod fuzz;
mod run;
mod tree;
mod zeek_scripts;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces (rust-src, LLVM 22, bpf-linker, g++, bpftrace, promtool, tmux).
    Setup,
    /// Build the Zeek-shaped fixture programs into target/fixtures/.
    Fixtures,
    /// Profile the default workload (a real `zeek` if installed, else the fixture).
    Demo,
    /// Every check and test: formatting, clippy, unit and end-to-end tests, the package's
    /// install test, fuzzing.
    Test,
    /// Benchmarks: per-call cost with no probe, an empty probe, zeek-probe and bpftrace;
    /// sampling cost; cluster attach; start-up.
    Bench {
        /// Only these parts (default: all).
        #[arg(value_enum)]
        parts: Vec<bench::Part>,
    },
    /// Build the Debian package and the release tarball into target/dist/.
    Dist,
    /// Build them and run their install test in a clean Debian root (part of `test`).
    DistCheck,
    /// Fuzz every decoder of outside input for a while (part of `test`, 20 s each).
    Fuzz {
        /// Seconds per fuzz target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

/// Seconds each fuzz target runs in `test`: bounded, so CI stays well inside its hour.
const FUZZ_SECONDS_IN_TEST: u64 = 20;

fn main() {
    let result = match Cli::parse().task {
        Task::Setup => run::setup(),
        Task::Fixtures => run::setup().and_then(|()| fixtures::build_all()),
        Task::Demo => demo(),
        Task::Test => test(),
        Task::Bench { parts } => run::setup().and_then(|()| fixtures::build_all()).and_then(|()| bench::run(&parts)),
        Task::Dist => run::setup().and_then(|()| dist::build()).map(drop),
        Task::DistCheck => run::setup().and_then(|()| dist_check()),
        Task::Fuzz { seconds } => run::setup().and_then(|()| fuzz::run(seconds)),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn demo() -> Result<()> {
    run::setup()?;
    run::cargo(&["build", "--release", "--package", "zeek-probe"])?;
    let out = run::workspace_root().join("target/demo");
    std::fs::create_dir_all(&out)?;
    let probe = run::workspace_root().join("target/release/zeek-probe");
    let mut cmd = std::process::Command::new(&probe);
    // Zeek writes its logs to the working directory: keep them with the report.
    cmd.current_dir(&out).args(["record", "--count-calls", "--out"]).arg(&out).arg("--");
    match run::find_zeek() {
        Some(zeek) => {
            eprintln!("xtask: profiling the installed Zeek ({}) on a built-in script", zeek.display());
            cmd.arg(zeek).arg(run::workspace_root().join("xtask/demo.zeek"));
        }
        None => {
            fixtures::build_all()?;
            eprintln!("xtask: no zeek installed; profiling the Zeek-shaped fixture workload");
            cmd.arg(fixtures::path(fixtures::DEFAULT)).args(["--seconds", "3"]);
        }
    }
    run::status(&mut cmd)
}

fn test() -> Result<()> {
    run::setup()?;
    fixtures::build_all()?;
    zeek_scripts::check()?;
    run::cargo(&["fmt", "--all", "--check"])?;
    run::cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    without_zmq()?;
    run::cargo(&["test", "--workspace", "--exclude", "profiler-ebpf"])?;
    dist_check()?;
    fuzz::run(FUZZ_SECONDS_IN_TEST)
}

fn dist_check() -> Result<()> {
    fixtures::build_all()?;
    dist_check::run(&dist::build()?)
}

/// zeek-probe built without its `zmq` feature: warning-free, its own unit tests pass, and the
/// binary does not link libzmq nor say it has the feature (`--version`).
fn without_zmq() -> Result<()> {
    let no_zmq = ["-p", "zeek-probe", "--no-default-features"];
    run::cargo(&[&["clippy", "--all-targets"][..], &no_zmq, &["--", "-D", "warnings"]].concat())?;
    run::cargo(&[&["test", "--lib"][..], &no_zmq].concat())?;
    run::cargo(&[&["build", "--bin", "zeek-probe"][..], &no_zmq].concat())?;
    let binary = run::workspace_root().join("target/debug/zeek-probe");
    let dynamic = std::process::Command::new("readelf").arg("--dynamic").arg(&binary).output()?;
    anyhow::ensure!(dynamic.status.success(), "readelf --dynamic {} failed", binary.display());
    let needed = String::from_utf8_lossy(&dynamic.stdout);
    anyhow::ensure!(!needed.contains("libzmq"), "{} built without zmq links libzmq:\n{needed}", binary.display());
    let version = std::process::Command::new(&binary).arg("--version").output()?;
    let version = String::from_utf8_lossy(&version.stdout);
    anyhow::ensure!(
        version.lines().any(|l| l == "features: none"),
        "{} built without zmq says {version:?}",
        binary.display()
    );
    Ok(())
}
