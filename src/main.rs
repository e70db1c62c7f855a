//! The `riskwatch` command: parses arguments and runs one subcommand.
//! All work lives in the library and in `cli`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
