//! The configurations compared, each started once on private servers:
//! one MariaDB (direct), HAProxy in TCP mode in front of it, MariaDB
//! semi-sync replication (primary + one replica, AFTER_SYNC), lockstep in
//! front of three nodes, and lockstep with a standby instance (`[ha]`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mariadb::{self, MariaDb, ServerOptions};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    MariaDb(#[from] mariadb::MariaDbError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        what: what.to_string(),
        source,
    }
}

/// Where clients connect, and with which credentials.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// Every server's durability settings (issue: "every server is configured
/// with innodb_flush_log_at_trx_commit=1").
fn durable() -> Vec<String> {
    vec![
        "--innodb-flush-log-at-trx-commit=1".into(),
        "--innodb-buffer-pool-size=256M".into(),
        "--max-connections=500".into(),
    ]
}

fn server(dir: &Path, extra: &[&str]) -> Result<MariaDb, SetupError> {
    mariadb::install_datadir(dir)?;
    let mut args = durable();
    args.extend(extra.iter().map(|s| s.to_string()));
    Ok(MariaDb::start_on_a_free_port(dir, &ServerOptions { args })?)
}

fn root(port: u16) -> Endpoint {
    Endpoint {
        port,
        user: "root".into(),
        password: String::new(),
    }
}

/// Runs `sql` on 127.0.0.1:`port` as root with the `mariadb` client.
pub fn root_sql(port: u16, sql: &str) -> Result<String, SetupError> {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--batch",
            "-N",
        ])
        .arg(format!("-P{port}"))
        .args(["-e", sql])
        .output()
        .map_err(io("run mariadb"))?;
    if !out.status.success() {
        return Err(SetupError::Failed(format!(
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Direct {
    pub server: MariaDb,
}

impl Direct {
    pub fn start(dir: &Path) -> Result<Direct, SetupError> {
        Ok(Direct {
            server: server(&dir.join("direct"), &[])?,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        root(self.server.port)
    }
}

/// HAProxy in TCP mode in front of a server.
pub struct Haproxy {
    child: Child,
    port: u16,
}

impl Haproxy {
    pub fn start(dir: &Path, backend: u16) -> Result<Haproxy, SetupError> {
        let port = mariadb::free_port().map_err(io("free port"))?;
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                 timeout client 1h\n  timeout server 1h\nlisten mysql\n  \
                 bind 127.0.0.1:{port}\n  server db 127.0.0.1:{backend}\n"
            ),
        )
        .map_err(io("write haproxy.cfg"))?;
        let child = Command::new(mariadb::find_binary("haproxy").ok_or_else(|| {
            SetupError::Failed("haproxy not found: apt-get install -y haproxy".into())
        })?)
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("start haproxy"))?;
        wait_for_port(port)?;
        Ok(Haproxy { child, port })
    }

    pub fn endpoint(&self) -> Endpoint {
        root(self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        crate::process::stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

/// A semi-synchronous pair: binlog with sync_binlog=1 on the primary,
/// AFTER_SYNC, one replica.
pub struct Semisync {
    pub primary: MariaDb,
    /// Kept for their lifetime: dropping them stops the servers.
    _replicas: Vec<MariaDb>,
}

impl Semisync {
    /// A primary and `replicas` semi-sync replicas (`name` names their
    /// directories). MariaDB's semi-sync commit waits for one replica's
    /// acknowledgement, whichever comes first, however many there are.
    pub fn start(dir: &Path, name: &str, replicas: usize) -> Result<Semisync, SetupError> {
        let primary = server(
            &dir.join(format!("{name}-primary")),
            &["--log-bin=binlog", "--sync-binlog=1", "--server-id=1"],
        )?;
        root_sql(
            primary.port,
            "SET GLOBAL rpl_semi_sync_master_enabled = ON; \
             SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'; \
             SET GLOBAL rpl_semi_sync_master_timeout = 10000",
        )?;
        let mut started = Vec::with_capacity(replicas);
        for i in 0..replicas {
            let replica = server(
                &dir.join(format!("{name}-replica-{i}")),
                &[&format!("--server-id={}", i + 2), "--log-bin=binlog"],
            )?;
            root_sql(
                replica.port,
                &format!(
                    "SET GLOBAL rpl_semi_sync_slave_enabled = ON; \
                     CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                     MASTER_USER = 'root', MASTER_USE_GTID = slave_pos; START SLAVE",
                    primary.port
                ),
            )?;
            started.push(replica);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let clients = root_sql(
                primary.port,
                "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'",
            )?;
            if clients.trim().ends_with(&replicas.to_string()) {
                break;
            }
            if Instant::now() > deadline {
                return Err(SetupError::Failed(format!(
                    "the semi-sync replica did not connect: {clients}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Semisync {
            primary,
            _replicas: started,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        root(self.primary.port)
    }
}

/// lockstep (the release binary running this) in front of three nodes.
pub struct Lockstep {
    /// Kept for their lifetime: dropping them stops the servers (lockstep
    /// itself is stopped first, in `Drop`).
    nodes: Vec<MariaDb>,
    child: Child,
    pub port: u16,
    pub admin_port: u16,
}

impl Lockstep {
    pub fn start(dir: &Path) -> Result<Lockstep, SetupError> {
        let nodes = three_nodes(dir, "lockstep")?;
        let port = mariadb::free_port().map_err(io("free port"))?;
        let admin_port = mariadb::free_port().map_err(io("free port"))?;
        let journal_dir = dir.join("lockstep-journal");
        let mut config = format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             journal_dir = \"{}\"\n\n[[users]]\nname = \"bench\"\npassword = \"bench\"\n",
            journal_dir.display()
        );
        config.push_str(&nodes_section(&nodes));
        let child = serve(dir, "lockstep", &config)?;
        wait_for_port(port)?;
        Ok(Lockstep {
            nodes,
            child,
            port,
            admin_port,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.port,
            user: "bench".into(),
            password: "bench".into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tail node's (the third node's) server process.
    pub fn tail_pid(&self) -> Option<u32> {
        self.nodes.get(2)?.pid()
    }
}

impl Drop for Lockstep {
    fn drop(&mut self) {
        crate::process::stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(30));
    }
}

/// The bench's lease: every server, sysbench and etcd share two cores
/// here, and under that load etcd confirmed heartbeats too late for the
/// default 1 s lease (the active stopped and the standby took over in the
/// middle of other configurations' runs). A lease does not change
/// throughput, only how fast a dead active is replaced.
const HA_LEASE_MS: u64 = 3000;

/// lockstep with a standby (`[ha]`): two instances over a private etcd in
/// front of three nodes of their own. Clients use the active one; every
/// commit also waits for the standby's copy of its journal records.
pub struct LockstepHa {
    /// Stopped in `Drop`, the standby first (else it would take over).
    instances: Vec<Child>,
    _etcd: crate::ha::local_etcd::LocalEtcd,
    _nodes: Vec<MariaDb>,
    pub port: u16,
}

impl LockstepHa {
    pub fn start(dir: &Path) -> Result<LockstepHa, SetupError> {
        let nodes = three_nodes(dir, "ha")?;
        let etcd = crate::ha::local_etcd::LocalEtcd::start(&dir.join("ha-etcd"))
            .map_err(|e| SetupError::Failed(e.to_string()))?;
        let mut setup = LockstepHa {
            instances: Vec::new(),
            _etcd: etcd,
            _nodes: nodes,
            port: 0,
        };
        let mut admins = Vec::new();
        for name in ["ls1", "ls2"] {
            let port = mariadb::free_port().map_err(io("free port"))?;
            let admin_port = mariadb::free_port().map_err(io("free port"))?;
            let journal_port = mariadb::free_port().map_err(io("free port"))?;
            let mut config = format!(
                "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
                 journal_dir = \"{}\"\n\n[ha]\netcd = [\"{}\"]\nname = \"{name}\"\nlease_ms = {HA_LEASE_MS}\n\
                 journal_listen = \"127.0.0.1:{journal_port}\"\n\n[[users]]\nname = \"bench\"\npassword = \"bench\"\n",
                dir.join(format!("ha-journal-{name}")).display(),
                setup._etcd.endpoint()
            );
            config.push_str(&nodes_section(&setup._nodes));
            setup.instances.push(serve(dir, name, &config)?);
            admins.push(admin_port);
            if name == "ls1" {
                setup.port = port;
                wait_for_status(admin_port, |s| s.contains("\"role\":\"active\""))?;
            }
        }
        wait_for_status(admins[0], |s| s.contains("\"in_step\":true"))?;
        Ok(setup)
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.port,
            user: "bench".into(),
            password: "bench".into(),
        }
    }
}

impl Drop for LockstepHa {
    fn drop(&mut self) {
        for child in self.instances.iter_mut().rev() {
            crate::process::stop_child(child, libc::SIGTERM, Duration::from_secs(30));
        }
    }
}

/// Waits until `/status` on `admin_port` answers something `ready` accepts.
fn wait_for_status(admin_port: u16, ready: impl Fn(&str) -> bool) -> Result<(), SetupError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://127.0.0.1:{admin_port}/status");
    loop {
        let body = ureq::get(&url)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        if ready(&body) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SetupError::Failed(format!(
                "lockstep with a standby did not get ready: {body}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three nodes (`a`, `b`, `c`) in `dir/PREFIX-NAME`.
fn three_nodes(dir: &Path, prefix: &str) -> Result<Vec<MariaDb>, SetupError> {
    ["a", "b", "c"]
        .iter()
        .map(|name| server(&dir.join(format!("{prefix}-{name}")), &[]))
        .collect()
}

/// The `[[nodes]]` tables of a lockstep configuration for `nodes`.
fn nodes_section(nodes: &[MariaDb]) -> String {
    ["a", "b", "c"]
        .iter()
        .zip(nodes)
        .map(|(name, node)| format!("\n[[nodes]]\nname = \"{name}\"\nurl = \"{}\"\n", node.url()))
        .collect()
}

/// `lockstep serve` (this release binary) with `config`, written to
/// `dir/NAME.toml`, its log in `dir/NAME.log`.
fn serve(dir: &Path, name: &str, config: &str) -> Result<Child, SetupError> {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).map_err(io("write the lockstep configuration"))?;
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(io("lockstep log"))?;
    Command::new(std::env::current_exe().map_err(io("current exe"))?)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().map_err(io("lockstep log"))?)
        .stderr(log)
        .spawn()
        .map_err(io("start lockstep"))
}

fn wait_for_port(port: u16) -> Result<(), SetupError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(SetupError::Failed(format!("nothing listens on {port}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
