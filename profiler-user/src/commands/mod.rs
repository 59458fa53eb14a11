//! One module per subcommand.
pub mod attach;
pub mod record;

use crate::{
    cli::ProbeArgs,
    probes::loader::{AttachPlan, InvokeProgram},
};

impl ProbeArgs {
    pub fn plan(&self) -> AttachPlan {
        let invoke = if self.count_calls {
            Some(InvokeProgram::CountCalls)
        } else if self.empty_probes {
            Some(InvokeProgram::Empty)
        } else {
            None
        };
        AttachPlan { invoke, log_writes: !self.empty_probes }
    }
}
