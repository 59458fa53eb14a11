//! `zeek-probe record -- CMD...`: profile one run from its first instruction to its exit.
use std::{num::NonZeroU32, sync::Arc};

use anyhow::Context as _;

use crate::{
    cli::RecordArgs,
    output,
    probes::{ProbeScope, Probes, StoppedTarget, uprobe_multi::UprobeLinkKind},
    report::{self, top_table},
    session::Session,
    symbolize::{SymbolPrefetch, symbol_prefetch::NewAddressFeed},
    target::{Tracee, stats::ProcessStats},
};

pub fn run(args: RecordArgs) -> anyhow::Result<i32> {
    // A missing privilege must not cost a run, nor an output directory that cannot take the
    // report: both are checked before anything starts.
    Probes::check_privileges()?;
    UprobeLinkKind::for_this_kernel()?;
    report::prepare_dir(&args.out)?;
    let (program, program_args) = args.command.split_first().context("no command given")?;
    let tracee = Tracee::spawn(program, program_args)?;
    let started = std::time::Instant::now();
    // The command waits, stopped after exec, while its binary is inspected on one core and the
    // probes go through the verifier on the other: the two longest steps of the start-up. Its
    // uprobes go in as soon as both their programs and its probe points are there.
    let pid = tracee.pid();
    let mut inspected = None;
    let probes = std::thread::scope(|scope| {
        let inspection = scope.spawn(move || Session::inspect(pid));
        let target = StoppedTarget {
            pid: NonZeroU32::new(pid).context("the command has no PID")?,
            inspected: Box::new(|| {
                let result = inspection.join();
                let found = match &result {
                    Ok(Ok((process, binary))) => Some((process.exe.clone(), binary.probe_points.clone())),
                    _ => None,
                };
                inspected = Some(result);
                found
            }),
        };
        anyhow::Ok(Probes::load_for_stopped(args.probes.plan(args.hz, true), target)?)
    });
    let attached = probes.and_then(|mut probes| {
        let inspected = inspected.context("the binary was not inspected")?;
        let (process, binary) = inspected.map_err(|_| anyhow::anyhow!("the inspection of the binary failed"))??;
        let session = Session::start(&mut probes, process, Arc::new(binary), ProbeScope::OneProcess)?;
        Ok((probes, session))
    });
    let (probes, mut session) = match attached {
        Ok(attached) => attached,
        Err(err) => {
            // It has not executed a single instruction yet.
            tracee.kill();
            return Err(err);
        }
    };

    // The symbols and lines samples will be named by are read while the command runs.
    let prefetch = probes.plan().sample.map(|_| {
        let pid = session.pid();
        // Followed only for lines: the unwinder would otherwise note addresses nobody takes.
        let unwound = probes.plan().source_lines.then(|| probes.new_native_addresses()).flatten();
        let feed = unwound.map(|new| Box::new(move || new.take(pid)) as NewAddressFeed);
        SymbolPrefetch::start(pid, session.code(), feed)
    });
    // Ctrl-C, SIGTERM and SIGHUP reach the command (Tracee::spawn); we stay to write the
    // report once it has stopped. At its exit stop it is held only to read what needs it
    // alive: its counts, mappings and names, and its CPU time, every thread's summed.
    let mut at_exit = None;
    let exiting = tracee.run_to_exit(|| {
        session.learn_names(&probes.log_write_keys());
        let snapshot = probes.snapshot();
        at_exit = Some((snapshot, ProcessStats::read(session.pid()).map(|s| s.cpu_seconds)));
    })?;
    // Killed without passing the exit stop (SIGKILL): the counts are still in the maps.
    let (snapshot, cpu_seconds) = at_exit.unwrap_or_else(|| (probes.snapshot(), None));
    if let Some(prefetch) = prefetch {
        prefetch.finish();
    }
    let mut profile = session.profile(&snapshot);
    profile.target.cpu_seconds = cpu_seconds;
    // What was read of the debug files' units, for the next record of the same binary: beside
    // the report (a cache: failing to keep it costs the next run time, nothing else).
    let code = session.code();
    let keeping_units = std::thread::spawn(move || code.keep_read_units());

    // The table is shown even when the files could not be written.
    let written = report::write_all(&args.out, &profile, started.elapsed());
    let files = if profile.sampling.is_some() { ", flamegraph.svg, profile.folded, profile.pb.gz" } else { "" };
    let report_line = match written {
        Ok(()) => format!("report: {}/ (summary.json{files})\n", args.out.display()),
        Err(_) => String::new(),
    };
    // The report was made while the kernel ended the command.
    let exit = exiting.reap()?;
    output::print(&(top_table::render(&profile) + &report_line))?;
    written?;
    let _ = keeping_units.join();
    // The kernel takes ~0.1 s per uprobe to release it: after we (and the command) have ended.
    probes.release_after_exit();
    // What the report was made from (symbol tables, parsed DWARF, the samples: tens of MB with
    // source lines) is not freed piece by piece (~5 ms) but with the address space, which the
    // release child tears down in its exit, after ours (`probes::release`).
    std::mem::forget((session, profile, snapshot));
    Ok(exit.status())
}
