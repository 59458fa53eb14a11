//! The embedded BPF object: loading the programs a plan uses into the kernel up front (a
//! verifier rejection is seen before anything is attached; the verifier is most of the
//! start-up, so unused programs are not loaded, and the others are verified side by side)
//! and wiring the sampler's tail call. A process not started yet gets its uprobes while the
//! sampler's programs are still in the verifier (`StoppedTarget`).
use std::{num::NonZeroU32, path::PathBuf, thread};

use aya::{
    Ebpf, EbpfLoader, include_bytes_aligned,
    maps::ProgramArray,
    programs::{PerfEvent, Program, ProgramError, uprobe::UProbeScope},
};
use profiler_common::names;

use super::{
    AttachPlan, ProbeError, kernel_btf,
    links::{self, StoppedLinks, UprobePrograms},
    map_sizes, privileges,
    uprobe_multi::UprobeLinkKind,
};
use crate::{binary::ProbePoint, thread_nice};

/// The nice value of the threads verifying the sampler's programs while a stopped target's
/// binary is inspected (`StoppedTarget`).
const VERIFIER_NICENESS: libc::c_int = 5;

/// A process stopped at exec (`record`): nothing of it runs before its probes are all in
/// place, so its uprobes need not wait for the rest. Registering a uprobe waits an RCU grace
/// period (10–40 ms), which then passes while the sampler's programs are verified.
pub struct StoppedTarget<'a> {
    pub pid: NonZeroU32,
    /// Its executable and probe points, once the binary is inspected (the loading thread
    /// waits for them); `None` if it could not be.
    pub inspected: Box<dyn FnOnce() -> Option<(PathBuf, Vec<ProbePoint>)> + 'a>,
}

pub(super) static BPF_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zeek-probe-bpf"));

/// Whether this process may load and attach the programs.
pub fn check_privileges() -> Result<(), ProbeError> {
    let missing = privileges::missing();
    if missing.is_empty() { Ok(()) } else { Err(ProbeError::NoPrivilege { missing: missing.join(", ") }) }
}

/// Loads the programs `plan` uses, its uprobes for `link_kind` links. Nothing is attached, but
/// for a `stopped` target's uprobes: those links are returned with its PID.
pub fn load(
    plan: AttachPlan,
    link_kind: UprobeLinkKind,
    stopped: Option<StoppedTarget>,
) -> Result<(Ebpf, Option<StoppedLinks>), ProbeError> {
    check_privileges()?;
    // The loader (aya patched: third_party/README.md) parses no kernel BTF: these programs
    // relocate nothing against it. The one offset they take from it is zeek-probe's reading.
    let task_fsbase_offset = kernel_btf::task_fsbase_offset();
    let mut loader = EbpfLoader::new();
    for (map, entries) in map_sizes::entries(plan.map_budget_mib) {
        loader.map_max_entries(map, entries);
    }
    // The kernel turns a CPU-clock frequency into a fixed period of 1 s / hz; long dispatches
    // are measured in it.
    let sample_period_ns: u64 = plan.sample.map_or(0, |hz| 1_000_000_000 / hz.max(1));
    loader.override_global(names::SAMPLE_PERIOD_NS, &sample_period_ns, true);
    let native_stack_bytes: u64 = plan.native_stack_bytes.into();
    loader.override_global(names::NATIVE_STACK_BYTES, &native_stack_bytes, true);
    let task_fsbase_offset: u64 = task_fsbase_offset.map_or(0, u64::from);
    loader.override_global(names::TASK_FSBASE_OFFSET, &task_fsbase_offset, true);
    let map_mib = map_sizes::scaled_bytes(plan.map_budget_mib).div_ceil(1 << 20) as u32;
    let mut ebpf = loader.load(BPF_OBJECT).map_err(|source| ProbeError::Load { map_mib, source })?;
    let mut wanted: Vec<&'static str> = plan.uprobes().collect();
    if plan.sample.is_some() {
        wanted.extend(names::PERF_EVENTS);
    }
    let attached = load_side_by_side(&mut ebpf, &wanted, plan, link_kind, stopped)?;
    if plan.sample.is_some() {
        wire_sample_step(&mut ebpf, names::SAMPLE_FRAMES, names::SAMPLE_STEP_SLOT)?;
        wire_sample_step(&mut ebpf, names::SAMPLE_FINISH, names::SAMPLE_FINISH_SLOT)?;
    }
    Ok((ebpf, attached))
}

/// Loads the `wanted` programs side by side: the kernel verifies a program on the loading
/// thread, and the sampler's take tens of milliseconds each, which `record` makes Zeek wait
/// for. Each of those has a thread of its own; the uprobes (small) are loaded on this one,
/// then attached to a `stopped` target (on failure, dropping the `Ebpf` detaches them).
fn load_side_by_side(
    ebpf: &mut Ebpf,
    wanted: &[&'static str],
    plan: AttachPlan,
    link_kind: UprobeLinkKind,
    stopped: Option<StoppedTarget>,
) -> Result<Option<StoppedLinks>, ProbeError> {
    let programs: Vec<(&'static str, &mut Program)> = ebpf
        .programs_mut()
        .filter_map(|(name, program)| Some((*wanted.iter().find(|w| **w == name)?, program)))
        .collect();
    if let Some(missing) = wanted.iter().find(|w| !programs.iter().any(|(name, _)| name == *w)) {
        return Err(ProbeError::Missing { what: "program", name: missing });
    }
    let (uprobes, others): (Vec<_>, Vec<_>) = programs.into_iter().partition(|(_, p)| matches!(p, Program::UProbe(_)));
    // A stopped target's uprobes wait for its binary's inspection, then a grace period: the
    // inspection goes first, the verifier has time until the grace period is over.
    let yield_to_inspection = stopped.is_some();
    thread::scope(|scope| {
        let verifying: Vec<_> = others
            .into_iter()
            .map(|(name, program)| {
                scope.spawn(move || {
                    if yield_to_inspection {
                        thread_nice::lower_this_thread(VERIFIER_NICENESS);
                    }
                    load_one(name, program, link_kind)
                })
            })
            .collect();
        let attached = load_and_attach(uprobes, plan, link_kind, stopped);
        let verified =
            verifying.into_iter().try_for_each(|l| l.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        verified.and(attached)
    })
}

/// Loads the uprobe programs and attaches them at a `stopped` target's probe points.
fn load_and_attach(
    mut uprobes: Vec<(&'static str, &mut Program)>,
    plan: AttachPlan,
    link_kind: UprobeLinkKind,
    stopped: Option<StoppedTarget>,
) -> Result<Option<StoppedLinks>, ProbeError> {
    for (name, program) in &mut uprobes {
        load_one(name, program, link_kind)?;
    }
    let Some(StoppedTarget { pid, inspected }) = stopped else { return Ok(None) };
    let Some((exe, points)) = inspected() else { return Ok(None) };
    let mut programs = UprobePrograms::of(uprobes, link_kind);
    let links = links::attach_points(&mut programs, pid.get(), &exe, &points, plan, UProbeScope::OneProcess(pid))?;
    Ok(Some((pid.get(), links)))
}

fn load_one(name: &'static str, program: &mut Program, link_kind: UprobeLinkKind) -> Result<(), ProbeError> {
    let loaded = match program {
        Program::UProbe(p) if link_kind == UprobeLinkKind::Multi => p.load_for_uprobe_multi(),
        Program::UProbe(p) => p.load(),
        Program::PerfEvent(p) => p.load(),
        _ => return Err(ProbeError::Missing { what: "uprobe or perf_event program", name }),
    };
    loaded.map_err(|source| load_error(name, source))
}

/// Puts a step of the sampler (the frame walk, the end) where the sampler tail-calls it.
fn wire_sample_step(ebpf: &mut Ebpf, program: &'static str, slot: u32) -> Result<(), ProbeError> {
    let step = perf_event(ebpf, program)?
        .fd()
        .map_err(|source| ProbeError::Program { program, source })?
        .try_clone()
        .map_err(|source| ProbeError::Program { program, source: source.into() })?;
    let map = names::SAMPLE_STEPS;
    let mut steps = ProgramArray::try_from(ebpf.map_mut(map).ok_or(ProbeError::Missing { what: "map", name: map })?)
        .map_err(|source| ProbeError::Map { map, source })?;
    steps.set(slot, &step, 0).map_err(|source| ProbeError::Map { map, source })
}

/// A load error as one line: the verifier's log can be a million lines long; its last
/// lines say why.
fn load_error(program: &'static str, source: ProgramError) -> ProbeError {
    match source {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().filter(|l| !l.trim().is_empty()).take(2).collect();
            let summary = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
            ProbeError::Rejected { program, summary: format!("{io_error}: {summary}") }
        }
        source => ProbeError::Program { program, source },
    }
}

pub fn perf_event<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut PerfEvent, ProbeError> {
    let program = ebpf.program_mut(name).ok_or(ProbeError::Missing { what: "program", name })?;
    program.try_into().map_err(|source| ProbeError::Program { program: name, source })
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol};

    use super::*;

    /// The BPF side names its maps and programs by its statics and functions; user space by
    /// `profiler_common::names`. Both lists must agree, or loading fails at run time.
    #[test]
    fn the_embedded_object_has_every_map_and_program_user_space_names() {
        let object = object::File::parse(BPF_OBJECT).expect("the embedded BPF object parses");
        let in_section = |name: &str, section: &dyn Fn(&str) -> bool| {
            object.symbols().any(|s| {
                s.name() == Ok(name)
                    && s.section_index()
                        .and_then(|i| object.section_by_index(i).ok())
                        .is_some_and(|sec| sec.name().is_ok_and(section))
            })
        };
        for map in names::MAPS {
            assert!(in_section(map, &|s| s == "maps"), "no map {map} in the BPF object");
        }
        for global in [names::SAMPLE_PERIOD_NS, names::NATIVE_STACK_BYTES, names::TASK_FSBASE_OFFSET] {
            assert!(in_section(global, &|s| s.starts_with(".rodata")), "no global {global}");
        }
        for program in names::UPROBES {
            assert!(in_section(program, &|s| s.starts_with("uprobe")), "no uprobe program {program}");
        }
        for program in names::PERF_EVENTS {
            assert!(in_section(program, &|s| s.starts_with("perf_event")), "no perf_event program {program}");
        }
    }

    /// No program calls the compiler's `memset` or `memcpy` (or their kin): a byte loop, which
    /// the verifier walks once per byte and per path. Seven 128-byte ones were a third of the
    /// sampler's verification, which `record`'s command waits for.
    #[test]
    fn no_program_calls_a_byte_loop() {
        use object::ObjectSymbolTable as _;
        let object = object::File::parse(BPF_OBJECT).expect("the embedded BPF object parses");
        let symbols = object.symbol_table().expect("a symbol table");
        let programs = object
            .sections()
            .filter(|s| s.name().is_ok_and(|n| n.starts_with("perf_event") || n.starts_with("uprobe")));
        for section in programs {
            for (offset, relocation) in section.relocations() {
                let object::RelocationTarget::Symbol(index) = relocation.target() else { continue };
                let called = symbols.symbol_by_index(index).and_then(|s| s.name()).unwrap_or_default();
                assert!(
                    !["memset", "memcpy", "memmove", "memcmp", "bcmp"].contains(&called),
                    "{} calls {called} at {offset:#x}",
                    section.name().unwrap_or_default()
                );
            }
        }
    }
}
