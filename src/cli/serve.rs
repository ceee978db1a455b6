//! `lockstep serve --config FILE [--listen ADDR]`

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tracing::info;

use super::{shutdown_signal, CliError};
use crate::config::Config;
use crate::frontend::Frontend;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides `listen` of the configuration.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A quarantined node the operator has re-synced from the master (its
    /// data and its `lockstep` database): lockstep trusts it again.
    /// Repeatable.
    #[arg(long = "resynced", value_name = "NODE")]
    pub resynced: Vec<String>,
}

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let mut config = Config::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.resynced = args.resynced;
    serve(&config).await
}

/// Serves `config` until Ctrl-C or SIGTERM: alone, or as one of several
/// instances with `[ha]`.
pub async fn serve(config: &Config) -> Result<(), CliError> {
    if let Some(ha) = &config.ha {
        return Ok(crate::ha::run(config, ha, shutdown_signal()).await?);
    }
    let shared = crate::app::assemble(config).await?;
    let frontend = Frontend::new(shared, config).map_err(crate::app::StartError::from)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| CliError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    crate::admin::start(config.admin_listen, frontend.shared())
        .await
        .map_err(|source| CliError::Bind {
            addr: config.admin_listen,
            source,
        })?;
    info!(%addr, "lockstep listening");
    frontend.serve(listener, shutdown_signal()).await?;
    Ok(())
}
