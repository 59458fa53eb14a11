//! What zeek-probe says. Results go to standard output, and losing them (a full disk, a closed
//! pipe) is an error; notes go to standard error and never stop the work when they cannot be
//! written (a full log must not end a profiling run). Neither panics.
//!
//! While `top` draws on the terminal, notes would scribble over its screen: they are held
//! (`hold_notes`), shown on its status line, and written out once the terminal is restored.
use std::{
    fmt,
    io::{self, Write as _},
    sync::Mutex,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0} (a full disk or a closed pipe? send it somewhere that takes it)")]
pub struct OutputError(io::Error);

/// Notes said while held, oldest first; `None` when notes go straight to standard error.
static HELD: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Writes `text` to standard output, all of it or an error.
pub fn print(text: &str) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(OutputError)
}

/// Writes `zeek-probe: MESSAGE` to standard error, if it can (or holds it, see `hold_notes`).
pub fn note(message: impl fmt::Display) {
    if let Ok(mut held) = HELD.lock()
        && let Some(held) = held.as_mut()
    {
        held.push(message.to_string());
        return;
    }
    let _ = writeln!(io::stderr().lock(), "zeek-probe: {message}");
}

/// Holds the notes said from now on until the guard is dropped, which writes them out.
pub fn hold_notes() -> HeldNotes {
    if let Ok(mut held) = HELD.lock() {
        held.get_or_insert_with(Vec::new);
    }
    HeldNotes
}

/// Notes are held while this lives.
pub struct HeldNotes;

impl HeldNotes {
    /// The last note said while held.
    pub fn latest(&self) -> Option<String> {
        HELD.lock().ok()?.as_ref()?.last().cloned()
    }
}

impl Drop for HeldNotes {
    fn drop(&mut self) {
        let held = HELD.lock().map(|mut h| h.take()).unwrap_or_default();
        for message in held.into_iter().flatten() {
            note(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_notes_are_kept_until_released() {
        let held = hold_notes();
        note("a note said while top draws (output::tests)");
        let kept = HELD.lock().unwrap().clone().unwrap_or_default();
        assert!(kept.iter().any(|n| n.contains("while top draws")), "held, not written: {kept:?}");
        assert!(held.latest().is_some());
        drop(held);
        assert!(HELD.lock().unwrap().is_none(), "written out and no longer held");
    }
}
