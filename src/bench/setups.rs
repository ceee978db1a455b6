//! The configurations compared, each started once on private servers:
//! one MariaDB (direct), HAProxy in TCP mode in front of it, MariaDB
//! semi-sync replication (primary + one or two replicas, AFTER_SYNC), a
//! three-node Galera cluster, lockstep in front of three nodes, and
//! lockstep with a standby instance (`[ha]`).

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

/// A three-node Galera cluster (MariaDB's `galera-4` provider), clients on
/// its first node: the synchronous, no-loss setup users most often weigh
/// lockstep against. Every commit is certified by the whole cluster before
/// the client's OK; each node flushes InnoDB's log per commit like every
/// other server here.
///
/// The joiners take the first node's data by rsync (Galera's state
/// transfer). rsync's daemon, started as root, writes as `nobody`: so the
/// three servers run as `nobody`, their directories owned by it, and the
/// bench directory is opened for traversal (mode 0711).
pub struct Galera {
    /// Kept for their lifetime: dropping them stops the servers.
    nodes: Vec<MariaDb>,
}

/// What a Galera node needs besides the common durability settings.
struct GaleraPorts {
    group: u16,
    state_transfer: u16,
    incremental: u16,
}

impl Galera {
    pub fn start(dir: &Path) -> Result<Galera, SetupError> {
        let provider = Path::new(GALERA_PROVIDER);
        if !provider.exists() {
            return Err(SetupError::Failed(format!(
                "{GALERA_PROVIDER} not found: apt-get install -y galera-4 rsync"
            )));
        }
        open_for_traversal(dir)?;
        let ports = (0..3)
            .map(|_| {
                Ok(GaleraPorts {
                    group: mariadb::free_port().map_err(io("free port"))?,
                    state_transfer: mariadb::free_port().map_err(io("free port"))?,
                    incremental: mariadb::free_port().map_err(io("free port"))?,
                })
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        let cluster = ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.group))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(3);
        for (i, own) in ports.iter().enumerate() {
            let node_dir = dir.join(format!("galera-{i}"));
            if i == 0 {
                mariadb::install_datadir(&node_dir)?;
            } else {
                // Filled by the state transfer from the first node.
                for sub in ["data", "tmp"] {
                    std::fs::create_dir_all(node_dir.join(sub))
                        .map_err(io("create a galera node's directories"))?;
                }
            }
            owned_by_nobody(&node_dir)?;
            let mut args = durable();
            args.extend(galera_args(i, own, &cluster));
            nodes.push(MariaDb::start_on_a_free_port(
                &node_dir,
                &ServerOptions { args },
            )?);
        }
        wait_until_synced(&nodes)?;
        Ok(Galera { nodes })
    }

    pub fn endpoint(&self) -> Endpoint {
        root(self.nodes[0].port)
    }
}

const GALERA_PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

fn galera_args(i: usize, own: &GaleraPorts, cluster: &str) -> Vec<String> {
    let mut args = vec![
        "--user=nobody".to_string(),
        "--wsrep-on=ON".into(),
        format!("--wsrep-provider={GALERA_PROVIDER}"),
        format!("--wsrep-cluster-address=gcomm://{cluster}"),
        "--wsrep-cluster-name=bench".into(),
        format!("--wsrep-node-name=galera-{i}"),
        format!("--wsrep-node-address=127.0.0.1:{}", own.group),
        format!(
            "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};ist.recv_addr=127.0.0.1:{}",
            own.group, own.incremental
        ),
        format!("--wsrep-sst-receive-address=127.0.0.1:{}", own.state_transfer),
        "--wsrep-sst-method=rsync".into(),
        // Galera's requirements.
        "--binlog-format=ROW".into(),
        "--innodb-autoinc-lock-mode=2".into(),
    ];
    if i == 0 {
        args.push("--wsrep-new-cluster".into());
    }
    args
}

/// `chown -R nobody` (see `Galera`).
fn owned_by_nobody(dir: &Path) -> Result<(), SetupError> {
    let status = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(dir)
        .status()
        .map_err(io("run chown"))?;
    if !status.success() {
        return Err(SetupError::Failed(format!(
            "chown -R nobody {} failed",
            dir.display()
        )));
    }
    Ok(())
}

/// Mode 0711 on `dir` and its parents up to a world-traversable one, so
/// that servers running as `nobody` reach their own directories in it.
fn open_for_traversal(dir: &Path) -> Result<(), SetupError> {
    use std::os::unix::fs::PermissionsExt;
    for d in dir.ancestors() {
        let meta = std::fs::metadata(d).map_err(io("stat the bench directory"))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 != 0 {
            break;
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711))
            .map_err(io("open the bench directory for traversal"))?;
    }
    Ok(())
}

/// Until every node counts three members and says it is synced.
fn wait_until_synced(nodes: &[MariaDb]) -> Result<(), SetupError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<String> = nodes
            .iter()
            .map(|n| {
                root_sql(
                    n.port,
                    "SELECT CONCAT(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS \
                     WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_LOCAL_STATE_COMMENT') \
                     ORDER BY VARIABLE_NAME",
                )
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
            })
            .collect();
        if states.iter().all(|s| s == "3 Synced") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SetupError::Failed(format!(
                "the Galera cluster did not form: {states:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
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

/// Which lockstep a configuration runs, and in front of how many nodes.
pub struct LockstepSetup<'a> {
    /// The configuration's name: its servers, journal and log are named so.
    pub name: &'a str,
    /// 3: a master, a synchronous slave and a tail; 2: no tail.
    pub nodes: usize,
    /// Another lockstep binary (an A/B run against an earlier build); None:
    /// this one.
    pub binary: Option<&'a Path>,
}

impl Lockstep {
    pub fn start(dir: &Path, setup: LockstepSetup<'_>) -> Result<Lockstep, SetupError> {
        let mut nodes = three_nodes(dir, setup.name)?;
        nodes.truncate(setup.nodes);
        let port = mariadb::free_port().map_err(io("free port"))?;
        let admin_port = mariadb::free_port().map_err(io("free port"))?;
        let journal_dir = dir.join(format!("{}-journal", setup.name));
        let mut config = format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             journal_dir = \"{}\"\n\n[[users]]\nname = \"bench\"\npassword = \"bench\"\n",
            journal_dir.display()
        );
        config.push_str(&nodes_section(&nodes));
        let child = serve_with(dir, setup.name, &config, setup.binary)?;
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
        let etcd = crate::ha::local_etcd::LocalEtcd::start(
            &dir.join("ha-etcd"),
            crate::ha::local_etcd::Durability::Disk,
        )
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
    serve_with(dir, name, config, None)
}

/// `serve`, with another lockstep binary when one is given.
fn serve_with(
    dir: &Path,
    name: &str,
    config: &str,
    binary: Option<&Path>,
) -> Result<Child, SetupError> {
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).map_err(io("write the lockstep configuration"))?;
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(io("lockstep log"))?;
    let binary = match binary {
        Some(binary) => binary.to_path_buf(),
        None => std::env::current_exe().map_err(io("current exe"))?,
    };
    Command::new(binary)
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
