//! What `record` leaves behind: files in the output directory and a table on the terminal.
pub mod summary_json;
pub mod top_table;
