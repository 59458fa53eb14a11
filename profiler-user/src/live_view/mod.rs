//! `top`'s live terminal view. `interval` turns one interval's profile of a node into the
//! rates shown (CPU shares, calls and log writes per second); `app` is the view's state (which
//! node, which order, paused) and what each key does, testable without a terminal; `draw`
//! lays one frame out with ratatui; `terminal` owns the terminal (raw mode, alternate screen,
//! restored on every way out) and runs the loop of keys, intervals and redraws.
pub mod app;
pub mod draw;
pub mod interval;
pub mod terminal;

pub use app::App;
pub use interval::{LongDispatch, NodeView};
