//! `lockstep up [--dir DIR] [--port PORT]`: the one-command way to try
//! lockstep. Three private MariaDB nodes under DIR, lockstep in front of
//! them, everything stopped on Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::config::Config;
use crate::mariadb::{self, MariaDb, ServerOptions};

const NODE_NAMES: [&str; 3] = ["a", "b", "c"];
const USER: &str = "app";
const PASSWORD: &str = "secret";

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the nodes' data, logs and the generated configuration live.
    #[arg(long, default_value = "lockstep-data")]
    pub dir: PathBuf,
    /// lockstep's client port on 127.0.0.1.
    #[arg(long, default_value_t = 6033)]
    pub port: u16,
}

pub async fn run(args: UpArgs) -> Result<(), CliError> {
    if mariadb::find_binary("mariadbd").is_none() {
        return Err(mariadb::MariaDbError::NotInstalled.into());
    }
    let dir = std::path::absolute(&args.dir)?;
    let nodes = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || start_nodes(&dir)
    })
    .await
    .map_err(std::io::Error::other)??;

    let config_path = dir.join("lockstep.toml");
    std::fs::write(&config_path, config_text(&nodes, &dir, args.port))?;
    let config = Config::load(&config_path)?;

    println!(
        "lockstep is up: 3 MariaDB nodes (a = master, b, c) and lockstep on 127.0.0.1:{}",
        args.port
    );
    for (name, node) in NODE_NAMES.iter().zip(&nodes) {
        println!(
            "  node {name}: 127.0.0.1:{} (data in {})",
            node.port,
            node.dir.display()
        );
    }
    println!(
        "Connect with:  mariadb -h 127.0.0.1 -P {} -u {USER} -p{PASSWORD}",
        args.port
    );
    if config.admin_listen.port() != 0 {
        println!(
            "Metrics and status: http://{0}/metrics  http://{0}/status",
            config.admin_listen
        );
    }
    println!(
        "Configuration: {}   Ctrl-C stops everything.",
        config_path.display()
    );

    let served = super::serve::serve(&config).await;
    // Dropping the nodes stops them (SIGTERM, by PID).
    drop(nodes);
    served
}

/// Installs the nodes' datadirs on first use (in parallel), then starts them.
fn start_nodes(dir: &Path) -> Result<Vec<MariaDb>, mariadb::MariaDbError> {
    let node_dirs: Vec<PathBuf> = NODE_NAMES
        .iter()
        .map(|n| dir.join("nodes").join(n))
        .collect();
    let installs: Vec<_> = node_dirs
        .iter()
        .filter(|d| !d.join("data").join("mysql").exists())
        .cloned()
        .map(|d| std::thread::spawn(move || mariadb::install_datadir(&d)))
        .collect();
    for install in installs {
        install.join().map_err(|_| mariadb::MariaDbError::Io {
            what: "mariadb-install-db".into(),
            source: std::io::Error::other("install thread panicked"),
        })??;
    }
    node_dirs
        .iter()
        .map(|d| MariaDb::start_on_a_free_port(d, &ServerOptions::default()))
        .collect()
}

fn config_text(nodes: &[MariaDb], dir: &Path, port: u16) -> String {
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    // The admin endpoint next to the client port when that one is free.
    let admin_port = port.checked_add(1).filter(|p| port_is_free(*p));
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port.unwrap_or(0)));
    let mut text = format!(
        "# Written by `lockstep up`.\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\njournal_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
        dir.join("journal").display()
    );
    for (name, node) in NODE_NAMES.iter().zip(nodes) {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nurl = \"{}\"\n",
            node.url()
        ));
    }
    text
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
