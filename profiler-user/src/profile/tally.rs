//! What calls and samples add up per function and per caller edge, keyed by the names shown,
//! until the samples become seconds and the rows are sorted busiest first.
use std::collections::BTreeMap;

use super::{CallerEdge, FunctionStats};
use crate::symbolize::FuncKind;

#[derive(Default)]
pub(super) struct FunctionRow {
    pub zeek_name: Option<String>,
    pub file: Option<String>,
    pub calls: Option<u64>,
    pub self_samples: u64,
    pub total_samples: u64,
}

#[derive(Default)]
pub(super) struct EdgeRow {
    pub calls: Option<u64>,
    pub self_samples: u64,
    pub total_samples: u64,
}

/// A caller edge: (caller, callee) by shown name, no caller for a call from C++.
pub(super) type Edge = (Option<String>, String);

#[derive(Default)]
pub(super) struct Tally {
    functions: BTreeMap<(String, FuncKind), FunctionRow>,
    edges: BTreeMap<Edge, EdgeRow>,
}

impl Tally {
    pub(super) fn function(&mut self, name: &str, kind: FuncKind) -> &mut FunctionRow {
        self.functions.entry((name.to_owned(), kind)).or_default()
    }

    pub(super) fn edge(&mut self, edge: Edge) -> &mut EdgeRow {
        self.edges.entry(edge).or_default()
    }

    /// The function rows and caller edges, busiest first: by sampled total time, then calls.
    pub(super) fn into_rows(self, seconds: impl Fn(u64) -> f64) -> (Vec<FunctionStats>, Vec<CallerEdge>) {
        let mut functions: Vec<FunctionStats> = self
            .functions
            .into_iter()
            .map(|((name, kind), row)| FunctionStats {
                name,
                zeek_name: row.zeek_name,
                kind,
                file: row.file,
                calls: row.calls,
                self_seconds: seconds(row.self_samples),
                total_seconds: seconds(row.total_samples),
            })
            .collect();
        functions.sort_by(|a, b| {
            b.total_seconds.total_cmp(&a.total_seconds).then(b.calls.cmp(&a.calls)).then_with(|| a.name.cmp(&b.name))
        });
        let mut callers: Vec<CallerEdge> = self
            .edges
            .into_iter()
            .map(|((caller, callee), row)| CallerEdge {
                caller,
                callee,
                calls: row.calls,
                self_seconds: seconds(row.self_samples),
                total_seconds: seconds(row.total_samples),
            })
            .collect();
        callers.sort_by(|a, b| {
            b.total_seconds
                .total_cmp(&a.total_seconds)
                .then(b.calls.cmp(&a.calls))
                .then_with(|| (&a.callee, &a.caller).cmp(&(&b.callee, &b.caller)))
        });
        (functions, callers)
    }
}
