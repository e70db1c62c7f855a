//! The `riskwatch` command: parses arguments and runs one subcommand.
//! All work lives in the library and in `cli`.

mod cli;

/// jemalloc: the hub's memory stays flat under connection churn where
/// glibc's arenas kept growing (`riskwatch::server::heap`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: riskwatch::server::heap::Jemalloc = riskwatch::server::heap::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
