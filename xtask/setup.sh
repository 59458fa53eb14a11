#!/usr/bin/env bash
# Installs what building and testing zeek-probe needs on a fresh Debian machine.
# Idempotent and quick when everything is already there. Called by `cargo xtask setup`
# (and therefore by the README's two commands) before anything else is built.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $* (re-run as root or install it by hand)"; exit 1
  fi
}

# Debian packages: LLVM 22 for bpf-linker (must match the nightly's LLVM), g++ for the
# Zeek-shaped fixtures, bpftrace for the benchmark baseline, libzmq for the ZeroMQ side,
# prometheus for promtool and the end-to-end scrape tests, binutils for strip/objcopy, curl
# for the TLS and basic-auth checks, tmux to drive `zeek-probe top` in the end-to-end tests;
# dpkg-dev, debootstrap and lintian build the Debian package and test it in a clean root
# (`cargo xtask dist`, xtask/src/dist_check.rs); strace times the verifier per BPF program in
# `cargo xtask bench`.
# Installs those of the named Debian packages that are missing; $1 says what they are.
install_debs() {
  local what=$1 missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing $what: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
# golang-go for `go tool pprof`, the pprof client the profile endpoint's tests fetch with (~20 s);
# dwz to make debug files as Debian's -dbgsym packages ship them (the source lines' tests);
# dpkg-dev, debootstrap and lintian to build the .deb and test it in a clean Debian root.
install_debs "Debian packages" llvm-22-dev libpolly-22-dev g++ binutils bpftrace prometheus libzmq3-dev \
  pkg-config zlib1g-dev libzstd-dev curl tmux golang-go dwz dpkg-dev debootstrap lintian strace

# The BPF crate builds with nightly and needs the standard library's source for core.
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  say "adding rust-src to the nightly toolchain"
  rustup component add rust-src --toolchain nightly
fi

# bpf-linker linked against LLVM 22 (zeek-abi.md §9).
if ! command -v bpf-linker >/dev/null || ! bpf-linker --version 2>/dev/null | grep -q '0.13'; then
  say "building bpf-linker 0.13 against LLVM 22 (once, a few minutes)"
  PATH="/usr/lib/llvm-22/bin:$PATH" cargo +stable install --locked bpf-linker@^0.13 \
    --no-default-features --features llvm-22
fi
# cargo-fuzz (libFuzzer) for the bounded fuzzing of every decoder of outside input.
if ! cargo fuzz --version 2>/dev/null | grep -q '0.13.2'; then
  say "installing cargo-fuzz 0.13.2 (once, a minute)"
  cargo +stable install --locked cargo-fuzz@0.13.2
fi
# zeekscript (Zeek's own parser and formatter, from PyPI) checks the companion Zeek package's
# scripts (xtask/src/zeek_scripts.rs). Pinned, in a venv under the workspace's target/ so that
# nothing outside the checkout changes; it pins its tree-sitter grammar itself.
zeekscript_version=1.3.6
zeekscript_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/zeekscript-venv"
if [ "$("$zeekscript_venv/bin/zeek-format" --version 2>/dev/null || true)" != "$zeekscript_version" ]; then
  say "installing zeekscript $zeekscript_version into target/zeekscript-venv"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  rm -rf "$zeekscript_venv"
  python3 -m venv "$zeekscript_venv"
  "$zeekscript_venv/bin/pip" install --quiet --disable-pip-version-check "zeekscript==$zeekscript_version"
fi

# A real Zeek for the real-Zeek end-to-end tests (tests/e2e/real_zeek.rs) and the demo: the
# binary build laid beside the checkout in ../shared/zeek/ (its README says what it is), with
# its separate debug file and the Debian libraries it links. Elsewhere a Zeek on PATH or in
# $ZEEK is used, and none is installed.
shared_zeek="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/zeek"
runtime_tarball=$(ls "$shared_zeek"/zeek-*-x86_64.tar.xz 2>/dev/null | head -n 1 || true)
if [ -n "$runtime_tarball" ]; then
  zeek_version=$(basename "$runtime_tarball" | sed -E 's/^zeek-(.*)-x86_64\.tar\.xz$/\1/')
  # eu-unstrip (elfutils) rejoins the binary with its debug file for the DWARF-in-binary check.
  install_debs "Zeek's run-time libraries" libpcap0.8 libssl3 libzmq5 libmaxminddb0 libkrb5-3 libgssapi-krb5-2 elfutils
  # A stamp per tarball (its name, size and mtime) keeps this quick once done, and a changed
  # tarball in shared/ is installed again.
  stamp_of() { printf '%s %s\n' "$(basename "$1")" "$(stat -c '%s %Y' "$1")"; }
  for tarball in "$runtime_tarball" "$shared_zeek/zeek-$zeek_version-x86_64-debug.tar.xz"; do
    [ -f "$tarball" ] || continue
    stamp="/usr/local/zeek/.installed-$(basename "$tarball").stamp"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(stamp_of "$tarball")" ] || ! /usr/local/zeek/bin/zeek --version >/dev/null 2>&1; then
      say "installing Zeek $zeek_version from $(basename "$tarball")"
      as_root tar -C / -xJf "$tarball"
      stamp_of "$tarball" | as_root tee "$stamp" >/dev/null
    fi
  done
  /usr/local/zeek/bin/zeek --version | grep -q "version $zeek_version\$" \
    || { say "the Zeek installed from $runtime_tarball does not run"; exit 1; }
fi
say "toolchain ready"
