//! `flamegraph.svg`, drawn by inferno from the folded stacks.
