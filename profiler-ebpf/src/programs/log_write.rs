//! Entry of `logging::Manager::Write(EnumVal* id, RecordVal* columns)`: once per `Log::write`.
//! `this` is RDI, the stream id RSI. The stream's name is resolved in user space from the
//! `EnumType` recorded in the key.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use profiler_common::{LogKey, ProbeStat};

use crate::{
    maps::{LOG_WRITES, bump, current_target, increment},
    target_memory::read,
};

/// Zeek has a few dozen log streams; a larger ordinal is a misread.
const MAX_SANE_ORDINAL: i64 = 1 << 16;

#[uprobe]
pub fn log_write(ctx: ProbeContext) -> u32 {
    let _ = count_log_write(&ctx);
    0
}

#[inline(always)]
fn count_log_write(ctx: &ProbeContext) -> Option<()> {
    let (pid, layout) = current_target()?;
    let stream_id: u64 = ctx.arg(1)?;
    let ordinal: i64 = read(stream_id + layout.enum_val_int as u64)?;
    let enum_type: u64 = read(stream_id + layout.val_type as u64)?;
    if !(0..MAX_SANE_ORDINAL).contains(&ordinal) || enum_type == 0 {
        bump(ProbeStat::InvalidFunc);
        return None;
    }
    increment(&LOG_WRITES, &LogKey { pid, _pad: 0, enum_type, ordinal });
    Some(())
}
