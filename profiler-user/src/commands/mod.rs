//! One module per subcommand.
pub mod attach;
pub mod check;
pub mod live_targets;
pub mod record;
pub mod targets;
pub mod top;
pub mod zmq_feeds;

use crate::{
    cli::{ProbeArgs, Switch},
    probes::{AttachPlan, InvokeProgram},
};

impl ProbeArgs {
    /// The plan of these arguments; `source_lines` unless `--source-lines` says otherwise.
    pub fn plan(&self, hz: u64, source_lines: bool) -> AttachPlan {
        let invoke = if self.count_calls {
            Some(InvokeProgram::CountCalls)
        } else if self.empty_probes {
            Some(InvokeProgram::Empty)
        } else {
            None
        };
        // The benchmark's floor measures the call probes alone.
        let sample = (!self.no_sample && !self.empty_probes).then_some(hz);
        let native_stack_bytes = match self.native_stacks {
            Switch::On if sample.is_some() => self.native_stack_bytes,
            _ => 0,
        };
        AttachPlan {
            invoke,
            log_writes: !self.empty_probes,
            sample,
            map_budget_mib: self.bpf_memory,
            native_stack_bytes,
            source_lines: self.source_lines.map_or(source_lines, |s| s == Switch::On),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::{Cli, Command};

    fn record_plan(args: &[&str], by_default: bool) -> crate::probes::AttachPlan {
        let argv = ["zeek-probe", "record"].iter().chain(args).chain(&["--", "zeek"]).copied();
        match Cli::try_parse_from(argv).expect("valid arguments").command {
            Command::Record(record) => record.probes.plan(record.hz, by_default),
            _ => unreachable!("a record command line"),
        }
    }

    /// Source lines follow the command's default unless `--source-lines` says otherwise.
    #[test]
    fn source_lines_are_the_commands_default_unless_asked() {
        assert!(record_plan(&[], true).source_lines);
        assert!(!record_plan(&[], false).source_lines);
        assert!(!record_plan(&["--source-lines", "off"], true).source_lines);
        assert!(record_plan(&["--source-lines", "on"], false).source_lines);
    }
}
