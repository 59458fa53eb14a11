//! `profile.pb.gz`: the pprof protobuf format, for `go tool pprof` and Grafana Pyroscope.
use std::{collections::HashMap, fs, io, io::Write as _, path::Path};

use flate2::{Compression, write::GzEncoder};
use prost::Message as _;

use crate::profile::{Sampling, StackFrame};

pub const FILE_NAME: &str = "profile.pb.gz";

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One process's samples, labelled in the profile with its node and PID.
pub struct ProcessSamples<'a> {
    pub node: &'a str,
    pub pid: u32,
    pub sampling: &'a Sampling,
}

/// The gzip-compressed `Profile` message of `processes`, covering `duration_nanos` of wall time.
///
/// Each sample carries two values, its count and the CPU time it stands for, and the labels
/// `node` and `pid`, by which Parca, Pyroscope and `go tool pprof -tagfocus` tell the processes
/// of a host apart. CPU time comes last, so it is the default view (pprof shows the last sample
/// type unless told otherwise). The profile's period is the first process's: one run samples
/// every process at the same rate, and each sample's CPU time uses its own process's rate anyway.
pub fn encode(processes: &[ProcessSamples], duration_nanos: i64) -> Vec<u8> {
    let mut strings = StringTable::default();
    let mut functions = FunctionTable::default();
    let mut locations = LocationTable::default();
    let (node_key, pid_key) = (strings.index("node"), strings.index("pid"));
    let mut sample = Vec::new();
    for process in processes {
        let labels = vec![
            proto::Label { key: node_key, str: strings.index(process.node) },
            proto::Label { key: pid_key, str: strings.index(&process.pid.to_string()) },
        ];
        let period = period_nanos(process.sampling);
        sample.extend(process.sampling.stacks.iter().map(|stack| proto::Sample {
            location_id: locations.ids(&stack.frames, &mut functions, &mut strings),
            value: vec![saturating_i64(stack.samples), saturating_i64(stack.samples.saturating_mul(period))],
            label: labels.clone(),
        }));
    }
    let cpu_nanoseconds = strings.value_type("cpu", "nanoseconds");
    let profile = proto::Profile {
        sample_type: vec![strings.value_type("samples", "count"), cpu_nanoseconds.clone()],
        period_type: Some(cpu_nanoseconds),
        period: saturating_i64(processes.first().map_or(0, |p| period_nanos(p.sampling))),
        duration_nanos,
        sample,
        location: locations.locations,
        function: functions.functions,
        string_table: strings.strings,
    };
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail, so neither can compressing into one.
    gzip.write_all(&profile.encode_to_vec()).expect("gzip into memory cannot fail");
    gzip.finish().expect("gzip into memory cannot fail")
}

/// The CPU time one sample stands for. Without a rate a sample stands for no known CPU time:
/// the counts are still right.
fn period_nanos(sampling: &Sampling) -> u64 {
    NANOS_PER_SECOND.checked_div(sampling.hz).unwrap_or(0)
}

pub fn write(dir: &Path, process: ProcessSamples, duration_nanos: i64) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(FILE_NAME), encode(&[process], duration_nanos))
}

/// pprof's string table: every string once, referred to by index, with "" at index 0.
struct StringTable {
    strings: Vec<String>,
    index_of: HashMap<String, i64>,
}

impl Default for StringTable {
    fn default() -> Self {
        Self { strings: vec![String::new()], index_of: HashMap::from([(String::new(), 0)]) }
    }
}

impl StringTable {
    fn index(&mut self, s: &str) -> i64 {
        if let Some(&index) = self.index_of.get(s) {
            return index;
        }
        let index = saturating_i64(self.strings.len() as u64);
        self.strings.push(s.to_owned());
        self.index_of.insert(s.to_owned(), index);
        index
    }

    fn value_type(&mut self, r#type: &str, unit: &str) -> proto::ValueType {
        proto::ValueType { r#type: self.index(r#type), unit: self.index(unit) }
    }
}

/// One pprof function per distinct name, file and first line (what lines of a native
/// function, or inlined copies of it, share), numbered from 1 in order of first appearance.
#[derive(Default)]
struct FunctionTable<'a> {
    functions: Vec<proto::Function>,
    id_of: HashMap<(&'a str, Option<&'a str>, u32), u64>,
}

impl<'a> FunctionTable<'a> {
    fn id(&mut self, frame: &'a StackFrame, strings: &mut StringTable) -> u64 {
        let key = (frame.name.as_str(), frame.file.as_deref(), frame.line);
        if let Some(&id) = self.id_of.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = strings.index(&frame.name);
        self.functions.push(proto::Function {
            id,
            name,
            // We only have the demangled name; it is also what a symbolised binary would show.
            system_name: name,
            filename: frame.file.as_deref().map_or(0, |file| strings.index(file)),
            start_line: i64::from(frame.line),
        });
        self.id_of.insert(key, id);
        id
    }
}

/// One pprof location per distinct machine frame: a function, or (DWARF) a function and the
/// calls inlined into it there, each a line, callee first as pprof wants them ("the last
/// entry represents the caller into which the preceding entries were inlined"). Numbered
/// from 1 in order of first appearance.
#[derive(Default)]
struct LocationTable {
    locations: Vec<proto::Location>,
    id_of: HashMap<Vec<(u64, i64)>, u64>,
}

impl LocationTable {
    /// The locations of a stack (frames root first), leaf first as pprof lists them.
    fn ids<'a>(
        &mut self,
        frames: &'a [StackFrame],
        functions: &mut FunctionTable<'a>,
        strings: &mut StringTable,
    ) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut start = 0;
        while start < frames.len() {
            let end = start + 1 + frames[start + 1..].iter().take_while(|f| f.inlined).count();
            let lines: Vec<(u64, i64)> = frames[start..end]
                .iter()
                .rev()
                .map(|frame| {
                    // A script function's line is its first; a native frame's, the one it runs.
                    let line = if frame.at_line > 0 { frame.at_line } else { frame.line };
                    (functions.id(frame, strings), i64::from(line))
                })
                .collect();
            ids.push(self.id(lines));
            start = end;
        }
        ids.reverse();
        ids
    }

    fn id(&mut self, lines: Vec<(u64, i64)>) -> u64 {
        if let Some(&id) = self.id_of.get(&lines) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let line = lines.iter().map(|&(function_id, line)| proto::Line { function_id, line }).collect();
        self.locations.push(proto::Location { id, line });
        self.id_of.insert(lines, id);
        id
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The messages of github.com/google/pprof/proto/profile.proto that we fill, with its field numbers.
/// Fields we never set are left out; decoders treat them as absent.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    /// Indices into the string table.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        /// One per sample type, in the same order.
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A string label (`str`); numeric labels are not used.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::profile::SampledStack;

    fn frame(name: &str, file: Option<&str>, line: u32) -> StackFrame {
        StackFrame { file: file.map(Into::into), line, ..StackFrame::named(name) }
    }

    fn decode(gzipped: &[u8]) -> proto::Profile {
        let mut bytes = Vec::new();
        GzDecoder::new(gzipped).read_to_end(&mut bytes).unwrap();
        proto::Profile::decode(bytes.as_slice()).unwrap()
    }

    fn string(profile: &proto::Profile, index: i64) -> &str {
        &profile.string_table[usize::try_from(index).unwrap()]
    }

    /// The function names of a sample's locations, in the order the sample lists them.
    fn names(profile: &proto::Profile, sample: &proto::Sample) -> Vec<String> {
        sample
            .location_id
            .iter()
            .map(|id| {
                let location = profile.location.iter().find(|l| l.id == *id).unwrap();
                assert_eq!(location.line.len(), 1);
                let function = profile.function.iter().find(|f| f.id == location.line[0].function_id).unwrap();
                string(profile, function.name).to_owned()
            })
            .collect()
    }

    fn encode_one(sampling: &Sampling, duration_nanos: i64) -> Vec<u8> {
        encode(&[ProcessSamples { node: "worker-1", pid: 42, sampling }], duration_nanos)
    }

    /// A sample's labels as (key, value).
    fn labels<'a>(profile: &'a proto::Profile, sample: &proto::Sample) -> Vec<(&'a str, &'a str)> {
        sample.label.iter().map(|l| (string(profile, l.key), string(profile, l.str))).collect()
    }

    fn two_stacks() -> Sampling {
        let zeek = frame("zeek", None, 0);
        let handler = frame("new_connection", Some("base/init.zeek"), 12);
        Sampling {
            hz: 1000,
            native_stacks: Default::default(),
            stacks: vec![
                SampledStack { frames: vec![zeek.clone(), handler.clone(), frame("fmt", None, 0)], samples: 3 },
                SampledStack { frames: vec![zeek, handler], samples: 5 },
            ],
        }
    }

    #[test]
    fn header_describes_counts_and_cpu_time() {
        let p = decode(&encode_one(&two_stacks(), 2_000_000_000));
        assert_eq!(p.string_table[0], "");
        let types: Vec<(&str, &str)> =
            p.sample_type.iter().map(|t| (string(&p, t.r#type), string(&p, t.unit))).collect();
        assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
        let period_type = p.period_type.as_ref().unwrap();
        assert_eq!((string(&p, period_type.r#type), string(&p, period_type.unit)), ("cpu", "nanoseconds"));
        assert_eq!(p.period, 1_000_000);
        assert_eq!(p.duration_nanos, 2_000_000_000);
    }

    #[test]
    fn values_add_up_to_the_input() {
        let p = decode(&encode_one(&two_stacks(), 0));
        assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 8);
        assert_eq!(p.sample.iter().map(|s| s.value[1]).sum::<i64>(), 8 * 1_000_000);
    }

    #[test]
    fn every_sample_is_labelled_with_its_node_and_pid() {
        let (one, other) = (two_stacks(), Sampling { hz: 1000, ..two_stacks() });
        let processes = [
            ProcessSamples { node: "worker-1", pid: 42, sampling: &one },
            ProcessSamples { node: "worker-2", pid: 43, sampling: &other },
        ];
        let p = decode(&encode(&processes, 0));
        let per_node: Vec<Vec<(&str, &str)>> = p.sample.iter().map(|s| labels(&p, s)).collect();
        assert_eq!(
            per_node[..2],
            [vec![("node", "worker-1"), ("pid", "42")], vec![("node", "worker-1"), ("pid", "42")]]
        );
        assert_eq!(
            per_node[2..],
            [vec![("node", "worker-2"), ("pid", "43")], vec![("node", "worker-2"), ("pid", "43")]]
        );
        // Both processes' stacks share the functions they have in common.
        assert_eq!(p.function.len(), 3);
    }

    #[test]
    fn locations_resolve_to_named_functions_leaf_first() {
        let p = decode(&encode_one(&two_stacks(), 0));
        assert_eq!(names(&p, &p.sample[0]), ["fmt", "new_connection", "zeek"]);
        assert_eq!(names(&p, &p.sample[1]), ["new_connection", "zeek"]);
        let handler = p.function.iter().find(|f| string(&p, f.name) == "new_connection").unwrap();
        assert_eq!((string(&p, handler.filename), handler.start_line), ("base/init.zeek", 12));
    }

    #[test]
    fn stacks_sharing_frames_share_functions() {
        let p = decode(&encode_one(&two_stacks(), 0));
        assert_eq!(p.function.len(), 3);
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.function.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(p.sample[0].location_id[1..], p.sample[1].location_id[..]);
    }

    /// A native frame with a call inlined into it is one location of two lines, the inlined
    /// callee first; lines of one function at two places share its function; script frames
    /// keep their first line.
    #[test]
    fn inlined_calls_are_lines_of_their_callers_location() {
        let native = |name: &str, at_line, inlined| StackFrame {
            file: Some("/src/zeek/Conn.cc".into()),
            at_line,
            inlined,
            ..StackFrame::named(name)
        };
        let handler = frame("new_connection", Some("base/init.zeek"), 12);
        let stacks = vec![
            SampledStack {
                frames: vec![native("main", 40, false), native("zeek::Run", 7, true), handler.clone()],
                samples: 2,
            },
            SampledStack { frames: vec![native("main", 41, false), handler], samples: 1 },
        ];
        let p = decode(&encode_one(&Sampling { hz: 99, native_stacks: Default::default(), stacks }, 0));
        let lines = |id: u64| -> Vec<(String, String, i64)> {
            let location = p.location.iter().find(|l| l.id == id).unwrap();
            location
                .line
                .iter()
                .map(|line| {
                    let f = p.function.iter().find(|f| f.id == line.function_id).unwrap();
                    (string(&p, f.name).to_owned(), string(&p, f.filename).to_owned(), line.line)
                })
                .collect()
        };
        let owned = |name: &str, file: &str, line| (name.to_owned(), file.to_owned(), line);
        let first: Vec<_> = p.sample[0].location_id.iter().map(|id| lines(*id)).collect();
        assert_eq!(
            first,
            [
                vec![owned("new_connection", "base/init.zeek", 12)],
                vec![owned("zeek::Run", "/src/zeek/Conn.cc", 7), owned("main", "/src/zeek/Conn.cc", 40)],
            ]
        );
        assert_eq!(lines(p.sample[1].location_id[1]), [owned("main", "/src/zeek/Conn.cc", 41)]);
        assert_eq!(p.function.len(), 3, "main is one function at both lines");
        assert_eq!(p.location.len(), 3);
    }

    #[test]
    fn same_name_in_another_file_is_another_function() {
        let sampling = Sampling {
            hz: 99,
            native_stacks: Default::default(),
            stacks: vec![SampledStack {
                frames: vec![frame("f", Some("a.zeek"), 1), frame("f", Some("b.zeek"), 1)],
                samples: 1,
            }],
        };
        assert_eq!(decode(&encode_one(&sampling, 0)).function.len(), 2);
    }

    #[test]
    fn without_a_rate_cpu_time_is_zero() {
        let p = decode(&encode_one(&Sampling { hz: 0, ..two_stacks() }, 0));
        assert_eq!(p.period, 0);
        assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 8);
        assert!(p.sample.iter().all(|s| s.value[1] == 0));
    }

    #[test]
    fn writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ProcessSamples { node: "worker-1", pid: 42, sampling: &two_stacks() }, 5).unwrap();
        assert_eq!(decode(&fs::read(dir.path().join(FILE_NAME)).unwrap()).duration_nanos, 5);
    }
}
