//! One module per subcommand.
pub mod attach;
pub mod check;
pub mod live_targets;
pub mod record;
pub mod targets;
pub mod top;
pub mod zmq_feeds;

use crate::{
    cli::{NativeStacks, ProbeArgs},
    probes::{AttachPlan, InvokeProgram},
};

impl ProbeArgs {
    pub fn plan(&self, hz: u64) -> AttachPlan {
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
            NativeStacks::On if sample.is_some() => self.native_stack_bytes,
            _ => 0,
        };
        AttachPlan {
            invoke,
            log_writes: !self.empty_probes,
            sample,
            map_budget_mib: self.bpf_memory,
            native_stack_bytes,
        }
    }
}
