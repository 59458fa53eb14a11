//! `profile.folded`: one line per stack, `root;caller;leaf samples` (Brendan Gregg's format).
