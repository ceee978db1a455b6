//! `lockstep up [--dir DIR] [--port PORT] [--ha]`: the one-command way to
//! try lockstep. Three private MariaDB nodes under DIR, lockstep in front of
//! them (with `--ha`: a private etcd and two lockstep instances, one active,
//! one standby), everything stopped on Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::config::Config;
use crate::ha::local_etcd::{Durability, LocalEtcd};
use crate::mariadb::{self, MariaDb, ServerOptions};
use crate::process::stop_child;

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
    /// Two lockstep instances over a private etcd (`[ha]`): the second on
    /// PORT + 2. Clients may connect to either.
    #[arg(long)]
    pub ha: bool,
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

    if args.ha {
        let served = run_two_instances(&dir, &nodes, args.port).await;
        drop(nodes);
        return served;
    }
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

/// `--ha`: a private etcd and two `lockstep serve` processes, each with
/// its own journal; prints both addresses and waits for Ctrl-C.
async fn run_two_instances(dir: &Path, nodes: &[MariaDb], port: u16) -> Result<(), CliError> {
    let etcd = LocalEtcd::start(&dir.join("etcd"), Durability::Disk)
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    let mut children = Vec::new();
    println!(
        "lockstep is up: 3 MariaDB nodes (a = master, b, c), etcd on {}, two lockstep instances:",
        etcd.endpoint()
    );
    for (i, name) in ["ls1", "ls2"].iter().enumerate() {
        let listen_port = port + 2 * i as u16;
        let journal_port = mariadb::free_port()?;
        let ha = format!(
            "\n[ha]\netcd = [\"{}\"]\nname = \"{name}\"\njournal_listen = \"127.0.0.1:{journal_port}\"\n",
            etcd.endpoint()
        );
        let text = config_text(nodes, &dir.join(name), listen_port) + &ha;
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, text)?;
        let config = Config::load(&config_path)?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        println!(
            "  {name}: 127.0.0.1:{listen_port}  (status http://{}/status while active; log {})",
            config.admin_listen,
            dir.join(format!("{name}.log")).display()
        );
        children.push(child);
    }
    println!("Connect to either:  mariadb -h 127.0.0.1 -P {port} -u {USER} -p{PASSWORD}");
    println!("Ctrl-C stops everything.");
    super::shutdown_signal().await;
    // The standby first: stopping the active first would hand it the role.
    for child in children.iter_mut().rev() {
        stop_child(child, libc::SIGTERM, std::time::Duration::from_secs(30));
    }
    drop(etcd);
    Ok(())
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
