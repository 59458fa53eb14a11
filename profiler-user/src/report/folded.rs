//! `profile.folded`: one line per stack, `root;caller;leaf samples` (Brendan Gregg's format).
use std::{collections::BTreeMap, fs, io, path::Path};

use crate::profile::{Sampling, StackFrame};

pub const FILE_NAME: &str = "profile.folded";

/// The folded text: one `root;…;leaf samples` line per distinct stack, sorted.
///
/// Stacks whose frame names read the same once sanitised are one stack here, so their samples
/// are added. Stacks without frames or without samples have no line: the format can express
/// neither, and flame graph tools would skip or reject them.
pub fn render(sampling: &Sampling) -> String {
    let mut samples_by_stack: BTreeMap<String, u64> = BTreeMap::new();
    for stack in sampling.stacks.iter().filter(|s| !s.frames.is_empty()) {
        let folded = stack.frames.iter().map(folded_name).collect::<Vec<_>>().join(";");
        let samples = samples_by_stack.entry(folded).or_default();
        *samples = samples.saturating_add(stack.samples);
    }
    // Sorted as whole lines, not by stack: readers (inferno among them) expect sorted lines, and a
    // stack that is a prefix of another followed by a space can sort differently once the count is on.
    let mut lines: Vec<String> = samples_by_stack
        .into_iter()
        .filter(|(_, samples)| *samples > 0)
        .map(|(stack, samples)| format!("{stack} {samples}"))
        .collect();
    lines.sort_unstable();
    lines.into_iter().map(|line| line + "\n").collect()
}

/// Writes `folded` (`render`'s lines) to `dir/profile.folded`.
pub fn write(dir: &Path, folded: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(FILE_NAME), folded)
}

/// Marks a call inlined into the frame before it (DWARF), as perf marks one.
pub const INLINED_MARK: &str = " (inlined)";

/// The frame's name as it can stand in a folded line: `;` separates frames and a line ends at a
/// newline, so those become `:` and spaces. Spaces themselves are fine, as the count is read from
/// after the last one. An inlined call is marked so.
fn folded_name(frame: &StackFrame) -> String {
    let name: String = frame
        .name
        .chars()
        .map(|c| {
            if c == ';' {
                ':'
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    if frame.inlined { name + INLINED_MARK } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SampledStack;

    fn frame(name: &str) -> StackFrame {
        StackFrame::named(name)
    }

    fn stack(names: &[&str], samples: u64) -> SampledStack {
        SampledStack { frames: names.iter().map(|n| frame(n)).collect(), samples }
    }

    fn sampling(stacks: Vec<SampledStack>) -> Sampling {
        Sampling { hz: 999, stacks, ..Sampling::default() }
    }

    #[test]
    fn one_sorted_line_per_stack_root_first() {
        let text = render(&sampling(vec![
            stack(&["zeek", "new_connection", "fmt"], 3),
            stack(&["zeek", "log_write"], 5),
            stack(&["zeek"], 1),
        ]));
        assert_eq!(text, "zeek 1\nzeek;log_write 5\nzeek;new_connection;fmt 3\n");
    }

    #[test]
    fn stacks_with_the_same_names_are_merged() {
        let mut other_file = stack(&["zeek", "fmt"], 4);
        other_file.frames[1].file = Some("base/utils.zeek".into());
        let text = render(&sampling(vec![stack(&["zeek", "fmt"], 2), other_file]));
        assert_eq!(text, "zeek;fmt 6\n");
    }

    #[test]
    fn separators_and_control_characters_are_replaced() {
        let text = render(&sampling(vec![stack(&["zeek", "a;b\nc\td", "zeek::Foo::bar(int, char)"], 7)]));
        assert_eq!(text, "zeek;a:b c d;zeek::Foo::bar(int, char) 7\n");
    }

    #[test]
    fn inlined_calls_are_marked_and_lines_merged() {
        let mut at_one_line = stack(&["main", "zeek::Run", "zeek::Step"], 2);
        at_one_line.frames[2].inlined = true;
        let mut at_another = at_one_line.clone();
        (at_another.frames[2].at_line, at_another.samples) = (17, 3);
        let text = render(&sampling(vec![at_one_line, at_another]));
        assert_eq!(text, "main;zeek::Run;zeek::Step (inlined) 5\n");
    }

    #[test]
    fn lines_are_sorted_even_where_stack_order_differs() {
        // As stacks "x" < "x 1y"; as lines "x 1y 2" < "x 9".
        let text = render(&sampling(vec![stack(&["x"], 9), stack(&["x 1y"], 2)]));
        assert_eq!(text, "x 1y 2\nx 9\n");
    }

    #[test]
    fn empty_stacks_and_zero_counts_have_no_line() {
        assert_eq!(render(&sampling(vec![stack(&[], 4), stack(&["zeek"], 0)])), "");
        assert_eq!(render(&Sampling::default()), "");
    }

    #[test]
    fn writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = sampling(vec![stack(&["zeek", "fmt"], 2)]);
        write(dir.path(), &render(&s)).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(), render(&s));
    }
}
