//! The install test of `cargo xtask dist`'s package (part of `cargo xtask test`): lintian, then
//! the .deb installed by apt into a clean Debian root made with debootstrap, which has no Rust
//! and no LLVM, where `zeek-probe --version`, `check` and `record` of the fixture must work and
//! `systemd-analyze verify` must accept the unit; last, `dpkg -r` must leave nothing behind but
//! configuration.
//!
//! The base root is cached under target/dist-root/ with a stamp of how it was made (a fresh
//! clone pays for debootstrap once); each run works on a copy of it. It needs root (chroot,
//! mounts, BPF): without root it is skipped, except under CI=true, where it fails.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail, ensure};

use crate::{
    dist::{self, Artifacts, remove_if_present},
    fixtures,
    run::{status, workspace_root},
};

/// The suite of the sensors targeted and of this build host (the binary's libc and libzmq).
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// libstdc++6 runs the C++ fixture; systemd brings `systemd-analyze` and the targets the unit
/// names. Nothing of Rust or LLVM.
const INCLUDE: &str = "libstdc++6,systemd";
/// What the root must not have, so that the package is tried without a toolchain.
const TOOLCHAIN: [&str; 5] = ["usr/bin/rustc", "usr/bin/cargo", "usr/bin/llc", "usr/bin/clang", "usr/bin/bpf-linker"];
/// Paths in the root that belong to the test, not to the package: the mounts (/run, as on a
/// booted system, holds what systemd-analyze leaves) and the test's files in /tmp.
const NOT_COMPARED: [&str; 5] = ["proc", "sys", "dev", "run", "tmp"];

pub fn run(artifacts: &Artifacts) -> Result<()> {
    tarball_matches_deb(artifacts)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        ensure!(std::env::var("CI").as_deref() != Ok("true"), "the install test must run as root in CI");
        eprintln!("xtask: skipped the install test of the package: needs root (chroot, mounts, BPF)");
        return Ok(());
    }
    lintian(&artifacts.deb)?;
    let base = base_root()?;
    let root = workspace_root().join("target/dist-root/work");
    forget_root(&root)?;
    status(Command::new("cp").arg("-a").arg(&base).arg(&root))?;
    let result = install_run_remove(&root, &artifacts.deb);
    // Kept on failure, to look into; the next run removes it.
    if result.is_ok() {
        forget_root(&root)?;
    }
    result
}

/// The tarball holds the package's files, under one top folder.
fn tarball_matches_deb(artifacts: &Artifacts) -> Result<()> {
    let names = |cmd: &str| -> Result<BTreeSet<String>> {
        let out = Command::new("sh").args(["-c", cmd, "sh"]).arg(&artifacts.deb).arg(&artifacts.tarball).output()?;
        ensure!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
        // `./usr/bin/` and `zeek-probe-<version>-x86_64-linux/usr/bin/` alike become `usr/bin`.
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(stdout
            .lines()
            .filter_map(|l| l.split_once('/'))
            .map(|(_, rest)| rest.trim_end_matches('/').to_owned())
            .filter(|rest| !rest.is_empty())
            .collect())
    };
    let in_deb = names(r#"dpkg-deb --fsys-tarfile "$1" | tar --list"#)?;
    let in_tarball = names(r#"tar --list --gzip --file "$2""#)?;
    ensure!(
        in_deb == in_tarball,
        "the tarball and the .deb differ: only in the .deb {:?}, only in the tarball {:?}",
        in_deb.difference(&in_tarball).collect::<Vec<_>>(),
        in_tarball.difference(&in_deb).collect::<Vec<_>>()
    );
    Ok(())
}

fn lintian(deb: &Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--pedantic"])
        .arg(deb)
        .output()
        .context("cannot run lintian")?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    ensure!(out.status.success(), "lintian reports errors on {}", deb.display());
    eprintln!("xtask: lintian: no errors");
    Ok(())
}

/// The cached debootstrap root, made again when how it is made changes.
fn base_root() -> Result<PathBuf> {
    let dir = workspace_root().join("target/dist-root");
    let base = dir.join(format!("base-{SUITE}"));
    let stamp = dir.join(format!("base-{SUITE}.stamp"));
    let recipe = format!("debootstrap --variant=minbase --include={INCLUDE} {SUITE} {MIRROR}\n");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(recipe.as_str()) && base.join("usr/bin").is_dir() {
        return Ok(base);
    }
    eprintln!("xtask: making a clean {SUITE} root with debootstrap (once, about a minute)");
    remove_if_present(&stamp)?;
    forget_root(&base)?;
    fs::create_dir_all(&dir)?;
    status(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
            .arg(&base)
            .arg(MIRROR),
    )?;
    fs::write(&stamp, recipe)?;
    Ok(base)
}

fn install_run_remove(root: &Path, deb: &Path) -> Result<()> {
    for tool in TOOLCHAIN {
        ensure!(!root.join(tool).exists(), "the clean root has {tool}");
    }
    fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).context("cannot give the root the host's resolver")?;
    fs::copy(deb, root.join("tmp/zeek-probe.deb"))?;
    fs::copy(fixtures::path(fixtures::DEFAULT), root.join("tmp/fixture"))?;
    // The fixture finds its library through its rpath's $ORIGIN.
    fs::copy(fixtures::path(fixtures::HELPERS_LIBRARY), root.join("tmp").join(fixtures::HELPERS_LIBRARY))?;
    let _mounts = Mounts::new(root)?;
    let chroot = Chroot(root);

    // apt resolves the declared dependencies from Debian's archive; removing the package then
    // leaves them, so that the second install below can be compared with its removal.
    chroot.ok(&["apt-get", "update", "-qq"])?;
    chroot.ok(&["apt-get", "install", "-y", "-qq", "--no-install-recommends", "/tmp/zeek-probe.deb"])?;
    chroot.ok(&["dpkg", "--remove", "zeek-probe"])?;
    let before = tree_listing(root)?;

    chroot.ok(&["dpkg", "--install", "/tmp/zeek-probe.deb"])?;
    let installed = chroot.ok(&["dpkg-query", "--listfiles", "zeek-probe"])?;
    let conffiles = chroot.ok(&["dpkg-query", "--show", "--showformat=${Conffiles}", "zeek-probe"])?;
    let conffiles: BTreeSet<PathBuf> =
        conffiles.lines().filter_map(|l| l.split_whitespace().next()).map(relative).collect();

    let version = chroot.ok(&["zeek-probe", "--version"])?;
    let expected = format!("zeek-probe {} (commit ", dist::VERSION);
    ensure!(version.starts_with(&expected), "zeek-probe --version says {version:?}, not {expected:?}…");
    ensure!(version.lines().any(|l| l == "features: zmq"), "the package's zeek-probe lacks zmq: {version:?}");
    chroot.ok(&["zeek-probe", "check", "/tmp/fixture"])?;
    chroot.ok(&["zeek-probe", "record", "--out", "/tmp/report", "--", "/tmp/fixture", "--seconds", "1"])?;
    let summary = root.join("tmp/report/summary.json");
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(&summary)?).with_context(|| format!("{} is not JSON", summary.display()))?;
    ensure!(
        summary["functions"].as_array().is_some_and(|f| !f.is_empty()),
        "record in the clean root profiled no function"
    );
    chroot.ok(&["systemd-analyze", "verify", "/usr/lib/systemd/system/zeek-probe.service"])?;

    chroot.ok(&["dpkg", "--remove", "zeek-probe"])?;
    for path in installed.lines().map(relative) {
        let left = root.join(&path);
        ensure!(
            !left.exists() || left.is_dir() || conffiles.contains(&path),
            "dpkg -r left /{} behind",
            path.display()
        );
    }
    let after = tree_listing(root)?;
    let left: Vec<&PathBuf> = after.difference(&before).filter(|p| !conffiles.contains(*p)).collect();
    ensure!(left.is_empty(), "installing, running and removing zeek-probe left {left:?}");
    eprintln!("xtask: the package installs, runs and removes cleanly in a clean {SUITE} root");
    Ok(())
}

/// A path as dpkg lists it (`/usr/bin/zeek-probe`), relative to the root.
fn relative(listed: &str) -> PathBuf {
    PathBuf::from(listed.trim().trim_start_matches('/'))
}

/// Every path in the root but the test's own, relative to it.
fn tree_listing(root: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut found = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(root)?.to_path_buf();
            if NOT_COMPARED.iter().any(|n| rel == Path::new(n)) {
                continue;
            }
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            }
            found.insert(rel);
        }
    }
    Ok(found)
}

/// Commands run inside the root, with a clean environment.
struct Chroot<'a>(&'a Path);

impl Chroot<'_> {
    /// Runs `args` in the root, failing unless it exits 0; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        eprintln!("xtask: in the clean root: {}", args.join(" "));
        let out: Output = Command::new("chroot")
            .arg(self.0)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .context("cannot run chroot")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "`{}` in the clean root failed ({}):\n{stdout}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }
}

/// /proc, /sys, /dev and /run in the root, for apt, systemd and the BPF programs, unmounted when dropped
/// (an error or a panic included). Bind mounts are slaves: unmounting them never reaches the
/// host's own mounts.
struct Mounts {
    points: Vec<PathBuf>,
}

impl Mounts {
    fn new(root: &Path) -> Result<Mounts> {
        let mut mounts = Mounts { points: Vec::new() };
        mounts.mount(&["-t", "proc", "proc"], root.join("proc"))?;
        mounts.mount(&["--rbind", "--make-rslave", "/sys"], root.join("sys"))?;
        mounts.mount(&["--rbind", "--make-rslave", "/dev"], root.join("dev"))?;
        mounts.mount(&["-t", "tmpfs", "tmpfs"], root.join("run"))?;
        Ok(mounts)
    }

    fn mount(&mut self, args: &[&str], point: PathBuf) -> Result<()> {
        status(Command::new("mount").args(args).arg(&point))?;
        self.points.push(point);
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for point in self.points.iter().rev() {
            if let Err(err) = status(Command::new("umount").args(["--recursive", "--lazy"]).arg(point)) {
                eprintln!("xtask: cannot unmount {}: {err:#}", point.display());
            }
        }
    }
}

/// Removes a root made by an earlier run, after unmounting whatever an interrupted run left
/// mounted in it: removing it with the host's /dev or /sys still bound inside would delete
/// theirs.
fn forget_root(root: &Path) -> Result<()> {
    let mounted_inside = || -> Result<Vec<PathBuf>> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
        Ok(mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(root))
            .collect())
    };
    for point in mounted_inside()? {
        // Already gone when an enclosing point was unmounted recursively.
        let _ = Command::new("umount").args(["--recursive", "--lazy"]).arg(&point).status();
    }
    let still = mounted_inside()?;
    ensure!(still.is_empty(), "cannot unmount {still:?}: {} is left as it is", root.display());
    remove_if_present(root)
}
