//! What happened to the messages of one feed, counted lock-free: the receiving thread and the
//! consumer both update them while `/metrics` reads them.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Why a message was counted as malformed (a fixed set: these are label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not the feed's number of frames (4 for cluster events, 2 for log records).
    Frames,
    /// A frame larger than the configured limit (dropped without being queued).
    Oversized,
    /// A frame that must be text is not UTF-8.
    Utf8,
    /// The payload does not decode (`broker-bin-v1`, `broker-json-v1`, or a log record's JSON).
    Payload,
    /// Decodes, but not in the shape the wire contract says (wrong field types, missing fields).
    Schema,
    /// A format frame other than `broker-bin-v1` / `broker-json-v1`.
    Format,
}

impl Reason {
    pub const ALL: [Reason; 6] =
        [Reason::Frames, Reason::Oversized, Reason::Utf8, Reason::Payload, Reason::Schema, Reason::Format];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Frames => "frames",
            Reason::Oversized => "oversized",
            Reason::Utf8 => "utf8",
            Reason::Payload => "payload",
            Reason::Schema => "schema",
            Reason::Format => "format",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A message's fate once the consumer has looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Decoded,
    Malformed(Reason),
    /// Well-formed but not kept: a cardinality limit (nodes) was reached.
    Dropped,
}

/// Every received message ends up decoded, malformed or dropped (queue full, too many bytes
/// queued, or a limit): `received = decoded + malformed + dropped + queued`.
#[derive(Debug, Default)]
pub struct Counters {
    received: AtomicU64,
    decoded: AtomicU64,
    malformed: [AtomicU64; Reason::ALL.len()],
    dropped: AtomicU64,
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_queued: AtomicUsize,
}

/// A consistent-enough copy of the counters for export (each value is read atomically).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub received: u64,
    pub decoded: u64,
    pub dropped: u64,
    /// Per reason, in `Reason::ALL` order.
    pub malformed: Vec<(Reason, u64)>,
    /// Messages waiting for the consumer now, and the most there ever were.
    pub queued: usize,
    pub queued_bytes: usize,
    pub max_queued: usize,
}

impl CountersSnapshot {
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().map(|(_, n)| n).sum()
    }
}

impl Counters {
    pub fn received(&self) {
        self.received.fetch_add(1, Relaxed);
    }

    pub fn outcome(&self, outcome: Outcome) {
        match outcome {
            Outcome::Decoded => self.decoded.fetch_add(1, Relaxed),
            Outcome::Malformed(reason) => self.malformed[reason.index()].fetch_add(1, Relaxed),
            Outcome::Dropped => self.dropped.fetch_add(1, Relaxed),
        };
    }

    /// Reserves queue room for a message of `bytes` unless that would pass `max_messages` or
    /// `max_bytes`. Reserving before the message is queued keeps the counts from ever going
    /// below zero (the consumer may take it at once) and within the bounds.
    pub fn try_enqueue(&self, bytes: usize, max_messages: usize, max_bytes: usize) -> bool {
        let bounded = |max: usize, add: usize| move |now: usize| now.checked_add(add).filter(|&total| total <= max);
        let Ok(depth) = self.queued.fetch_update(Relaxed, Relaxed, bounded(max_messages, 1)) else { return false };
        if self.queued_bytes.fetch_update(Relaxed, Relaxed, bounded(max_bytes, bytes)).is_err() {
            self.queued.fetch_sub(1, Relaxed);
            return false;
        }
        self.max_queued.fetch_max(depth + 1, Relaxed);
        true
    }

    /// Gives back what `try_enqueue` reserved (the consumer took the message, or sending failed).
    pub fn dequeued(&self, bytes: usize) {
        self.queued.fetch_sub(1, Relaxed);
        self.queued_bytes.fetch_sub(bytes, Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            received: self.received.load(Relaxed),
            decoded: self.decoded.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            malformed: Reason::ALL.iter().map(|&r| (r, self.malformed[r.index()].load(Relaxed))).collect(),
            queued: self.queued.load(Relaxed),
            queued_bytes: self.queued_bytes.load(Relaxed),
            max_queued: self.max_queued.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_reservations_respect_the_byte_bound() {
        let c = Counters::default();
        assert!(c.try_enqueue(60, 2, 100));
        assert!(!c.try_enqueue(41, 2, 100), "would pass the byte bound");
        assert!(c.try_enqueue(40, 2, 100));
        assert!(!c.try_enqueue(0, 2, 100), "would pass the message bound");
        c.dequeued(60);
        let s = c.snapshot();
        assert_eq!((s.queued, s.queued_bytes, s.max_queued), (1, 40, 2));
    }

    #[test]
    fn outcomes_are_counted_per_reason() {
        let c = Counters::default();
        c.received();
        c.received();
        c.outcome(Outcome::Malformed(Reason::Utf8));
        c.outcome(Outcome::Decoded);
        let s = c.snapshot();
        assert_eq!((s.received, s.decoded, s.malformed_total()), (2, 1, 1));
        assert!(s.malformed.contains(&(Reason::Utf8, 1)));
    }
}
