//! One module per program kind.
pub mod empty;
pub mod invoke;
pub mod log_write;
pub mod sample;
