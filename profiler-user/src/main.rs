//! The `zeek-probe` command: a thin shell over the library.
fn main() {
    std::process::exit(zeek_probe::cli::main());
}
