use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lockstep::cli::run(lockstep::cli::Cli::parse())
}
