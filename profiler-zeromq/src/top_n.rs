//! The top N entries of one run by footprint, kept as the entries arrive, with the rest summed
//! into one `<other>` row: memory stays bounded however many entries a run reports.
use crate::run::MemoryEntry;

/// Label value of the row summing the entries past the top N.
pub const OTHER: &str = "<other>";
/// Longest module or variable name kept (label values; longer ones are cut).
pub const MAX_NAME: usize = 128;

impl MemoryEntry {
    /// Biggest first: by footprint, then bytes.
    fn rank(&self) -> (u64, u64) {
        (self.footprint.unwrap_or(0), self.bytes.unwrap_or(0))
    }

    fn same_key(&self, other: &MemoryEntry) -> bool {
        self.module == other.module && self.variable == other.variable
    }
}

/// `s` cut to at most `MAX_NAME` bytes, at a character boundary.
pub fn cut(mut s: String) -> String {
    if s.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The top N entries of one run and the sums of the rest, built as entries arrive.
#[derive(Debug, Clone)]
pub struct TopN {
    pub run: u64,
    cap: usize,
    kept: Vec<MemoryEntry>,
    other_footprint: u64,
    other_bytes: Option<u64>,
    other_entries: u64,
    /// Whether a whole run arrived at once (an event) rather than row by row (logs).
    pub whole: bool,
}

impl TopN {
    pub fn new(run: u64, cap: usize, whole: bool) -> Self {
        TopN { run, cap, kept: Vec::new(), other_footprint: 0, other_bytes: None, other_entries: 0, whole }
    }

    fn fold(&mut self, e: &MemoryEntry) {
        self.other_entries += 1;
        self.other_footprint = self.other_footprint.saturating_add(e.footprint.unwrap_or(0));
        if let Some(b) = e.bytes {
            self.other_bytes = Some(self.other_bytes.unwrap_or(0).saturating_add(b));
        }
    }

    pub fn push(&mut self, mut e: MemoryEntry) {
        e.module = cut(e.module);
        e.variable = cut(e.variable);
        // A repeated row replaces the kept one (were it already folded, it would count twice
        // in the sums: rows are not repeated within a run).
        if let Some(kept) = self.kept.iter_mut().find(|k| k.same_key(&e)) {
            *kept = e;
            return;
        }
        if self.kept.len() < self.cap {
            self.kept.push(e);
            return;
        }
        let smallest = self.kept.iter().enumerate().min_by_key(|(_, k)| k.rank()).map(|(i, _)| i);
        match smallest {
            Some(i) if e.rank() > self.kept[i].rank() => {
                let out = std::mem::replace(&mut self.kept[i], e);
                self.fold(&out);
            }
            _ => self.fold(&e),
        }
    }

    pub fn rows(&self) -> Vec<MemoryEntry> {
        let mut rows = self.kept.clone();
        rows.sort_by(|a, b| {
            b.rank().cmp(&a.rank()).then_with(|| (&a.module, &a.variable).cmp(&(&b.module, &b.variable)))
        });
        if self.other_entries > 0 {
            rows.push(MemoryEntry {
                module: OTHER.into(),
                variable: OTHER.into(),
                footprint: Some(self.other_footprint),
                bytes: self.other_bytes,
            });
        }
        rows
    }

    pub fn entries(&self) -> u64 {
        self.kept.len() as u64 + self.other_entries
    }
}
