//! The `riskwatch-desktop` binary: everything lives in the library crate.

// No console window beside the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    riskwatch_desktop::run()
}
