//! The `lockstep` command line: one subcommand per file.

mod bench;
mod check;
mod journal;
mod logging;
mod replay;
mod serve;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::StartError;
use crate::config::ConfigError;
use crate::mariadb::MariaDbError;

#[derive(Debug, Parser)]
#[command(
    name = "lockstep",
    version,
    about = "MySQL middleware: no acknowledged write lost, service up when a server dies"
)]
pub struct Cli {
    /// Log lines as `text` or `json` (filter with RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve clients on the MySQL protocol, in front of the configured nodes.
    Serve(serve::ServeArgs),
    /// Try it: start three private MariaDB nodes and serve in front of them.
    Up(up::UpArgs),
    /// Apply committed work from a journal to any MySQL/MariaDB server, in
    /// commit order (or print it as SQL).
    Replay(replay::ReplayArgs),
    /// Compare the data of every node at one consistent point; exit 1 when
    /// one differs.
    Check(check::CheckArgs),
    /// Look into the journal: stats, one request, entries by state and time.
    Journal(journal::JournalArgs),
    /// Measure lockstep against direct MariaDB, HAProxy and semi-sync
    /// replication on this machine (see bench/run).
    Bench(bench::BenchArgs),
}

/// Why a command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    MariaDb(#[from] MariaDbError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("replay: {0}")]
    Replay(#[from] crate::chain::replay::ReplayError),
    #[error("check: {0}")]
    Check(#[from] check::CheckFailed),
    #[error("journal: {0}")]
    JournalCli(#[from] journal::JournalCliError),
    #[error(transparent)]
    Ha(#[from] crate::ha::HaError),
}

impl CliError {
    /// 2: the setup is wrong (configuration, unreachable master, port taken,
    /// missing MariaDB); 1: it failed while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Io(_) | CliError::Replay(_) => 1,
            _ => 2,
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    logging::init(cli.log_format);
    crate::fail_points::install_from_env();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockstep: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Up(args) => up::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Replay(args) => replay::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Check(args) => check::run(args).await,
            Command::Journal(args) => journal::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
        }
    });
    // Sessions still running hold backend connections: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lockstep: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
