//! The `zeek-probe` command: a thin shell over the library.
fn main() {
    zeek_probe::own_memory::tune();
    std::process::exit(zeek_probe::cli::main());
}
