//! Test support: private MariaDB nodes and a real `lockstep serve` process in
//! front of them. Everything started here is stopped by PID when dropped,
//! also when a test fails.

#![allow(dead_code)]

pub mod raw;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lockstep::mariadb::{self, MariaDb, ServerOptions};
use lockstep::process::stop_child;

pub const USER: &str = "app";
pub const PASSWORD: &str = "secret";

/// A pristine datadir, installed once per test binary and copied per node
/// (a copy takes a fraction of a second, an install about a second).
///
/// A static is never dropped, so the directory outlives its test binary:
/// it is named after the binary's process id, and each new one removes
/// those of processes that have ended (before, every run left 114 MB in
/// the temp directory until the disk was full).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            remove_templates_of_ended_runs();
            let dir = tempfile::Builder::new()
                .prefix(&format!("{TEMPLATE_PREFIX}{}-", std::process::id()))
                .tempdir()
                .expect("temp dir");
            mariadb::install_datadir(dir.path())
                .expect("mariadb-install-db (is mariadb-server installed?)");
            dir
        })
        .path()
}

const TEMPLATE_PREFIX: &str = "lockstep-template-";

fn remove_templates_of_ended_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMPLATE_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let ended = !pid.is_empty() && !Path::new("/proc").join(pid).exists();
        if ended {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// MariaDB nodes, each in its own temp dir.
pub struct Cluster {
    pub nodes: Vec<MariaDb>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(count: usize) -> Cluster {
        Self::start_with(count, &ServerOptions::default())
    }

    pub fn start_with(count: usize, options: &ServerOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("lockstep-test")
            .tempdir()
            .expect("temp dir");
        let nodes = (0..count)
            .map(|i| {
                let node_dir = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir).expect("node dir");
                copy_dir(&template().join("data"), &node_dir.join("data"));
                MariaDb::start_on_a_free_port(&node_dir, options).expect("mariadbd starts")
            })
            .collect();
        Cluster { nodes, _dir: dir }
    }

    pub fn master(&self) -> &MariaDb {
        &self.nodes[0]
    }
}

/// A `lockstep serve` process.
pub struct Lockstep {
    pub port: u16,
    /// The admin endpoint's port (`/metrics`, `/status`).
    pub admin_port: u16,
    pub config_path: PathBuf,
    pub journal_dir: PathBuf,
    child: Option<Child>,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lockstep {
    /// Serves `cluster` with the default user (`app`/`secret`); `extra`
    /// (top-level keys) goes into the configuration before the tables.
    pub fn start(cluster: &Cluster, extra: &str) -> Lockstep {
        Self::start_with_journal(cluster, extra, None)
    }

    /// Like `start`, with the journal in `journal` (kept across restarts)
    /// instead of a fresh directory.
    pub fn start_with_journal(cluster: &Cluster, extra: &str, journal: Option<&Path>) -> Lockstep {
        Self::start_with_args(cluster, extra, journal, &[])
    }

    /// Like `start_with_journal`, with more `serve` arguments.
    pub fn start_with_args(
        cluster: &Cluster,
        extra: &str,
        journal: Option<&Path>,
        args: &[&str],
    ) -> Lockstep {
        Self::start_with_fail_points(cluster, extra, journal, args, "")
    }

    /// Like `start_with_args`, with fail points on (`src/fail_points.rs`:
    /// `name=action;…`) in this process only: `respawn` starts without.
    pub fn start_with_fail_points(
        cluster: &Cluster,
        extra: &str,
        journal: Option<&Path>,
        args: &[&str],
        fail_points: &str,
    ) -> Lockstep {
        let dir = tempfile::Builder::new()
            .prefix("lockstep-serve")
            .tempdir()
            .expect("temp dir");
        let port = mariadb::free_port().expect("free port");
        let admin_port = mariadb::free_port().expect("free port");
        let journal_dir = journal
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("journal"));
        let mut config = format!(
            "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\njournal_dir = \"{}\"\n{extra}\n\n[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            journal_dir.display()
        );
        for (i, node) in cluster.nodes.iter().enumerate() {
            config.push_str(&format!(
                "\n[[nodes]]\nname = \"n{i}\"\nurl = \"{}\"\n",
                node.url()
            ));
        }
        let config_path = dir.path().join("lockstep.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.path().join("lockstep.log");
        let child = spawn_lockstep(
            &["serve", "--config"],
            &config_path,
            args,
            &log_path,
            fail_points,
        );
        let mut lockstep = Lockstep {
            port,
            admin_port,
            config_path,
            journal_dir,
            child: Some(child),
            log_path,
            _dir: dir,
        };
        lockstep.wait_until_listening();
        lockstep
    }

    /// Until lockstep itself listens on its port: a connection alone may
    /// reach another process that took the port after `free_port` let it
    /// go (seen in CI: lockstep could not bind, the test's client got
    /// another test's server and 1045), so its log must say it listens.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let said = format!("addr=127.0.0.1:{}", self.port);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("lockstep exited with {status}: {}", self.log());
            }
            let listens = self
                .log()
                .lines()
                .any(|l| l.contains("listening") && l.contains(&said));
            if listens && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("lockstep did not listen within 30 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// mysql_async options for a client of lockstep.
    pub fn client_opts(&self) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(PASSWORD))
    }

    /// `mysql://app:secret@127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Starts it again, on the same port with the same configuration and
    /// journal, after `stop` or `kill`.
    pub fn respawn(&mut self) {
        if self.child.is_none() {
            let child = spawn_lockstep(
                &["serve", "--config"],
                &self.config_path,
                &[],
                &self.log_path,
                "",
            );
            self.child = Some(child);
            self.wait_until_listening();
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, …) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) on the PID of a child this test started and
            // has not reaped.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit
    /// code, if it did (it is then reaped and can be respawned).
    pub fn exited_within(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(10));
        }
    }
}

impl Drop for Lockstep {
    fn drop(&mut self) {
        self.stop();
        // `LOCKSTEP_KEEP_LOGS=DIR` keeps every lockstep log whole.
        // An empty value keeps nothing (it would write into the checkout).
        let keep = std::env::var_os("LOCKSTEP_KEEP_LOGS").filter(|dir| !dir.is_empty());
        if let Some(dir) = keep {
            let name = format!("lockstep-{}-{}.log", std::process::id(), self.port);
            let _ = std::fs::copy(&self.log_path, Path::new(&dir).join(name));
            // A failing test's journal too, for `lockstep journal`.
            if std::thread::panicking() {
                let name = format!("journal-{}-{}", std::process::id(), self.port);
                let _ = Command::new("cp")
                    .arg("-a")
                    .arg(&self.journal_dir)
                    .arg(Path::new(&dir).join(name))
                    .status();
            }
        }
        // A failing test shows what lockstep said.
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG ")).collect();
            let tail = lines[lines.len().saturating_sub(150)..].join("\n");
            eprintln!("--- lockstep log (last 150 lines above DEBUG) ---\n{tail}");
        }
    }
}

/// `lockstep check` through the running `lockstep` exits 0: every node holds
/// the master's data at one point.
pub fn assert_check_passes(lockstep: &Lockstep) {
    if let Err(said) = check_passes(lockstep) {
        panic!("{said}");
    }
}

/// `lockstep check` through `lockstep` found every node equal; else what
/// it said.
pub fn check_passes(lockstep: &Lockstep) -> Result<(), String> {
    let check = Command::new(lockstep_bin())
        .args(["check", "--config"])
        .arg(&lockstep.config_path)
        .output()
        .expect("lockstep check");
    if check.status.code() == Some(0) {
        return Ok(());
    }
    Err(format!(
        "lockstep check:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    ))
}

pub fn lockstep_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lockstep")
}

fn spawn_lockstep(
    args: &[&str],
    config: &Path,
    more: &[&str],
    log: &Path,
    fail_points: &str,
) -> Child {
    // Appended: a restarted lockstep's log follows the one before.
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(lockstep_bin())
        .args(args)
        .arg(config)
        .args(more)
        .env("RUST_LOG", "info,lockstep=debug")
        .env("LOCKSTEP_FAIL_POINTS", fail_points)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start lockstep")
}

/// Runs the `mariadb` command-line client against 127.0.0.1:`port`.
pub fn mariadb_cli(port: u16, user: &str, password: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("mariadb")
        .arg("--no-defaults")
        .arg("-h")
        .arg("127.0.0.1")
        .arg("-P")
        .arg(port.to_string())
        .arg("-u")
        .arg(user)
        .arg(format!("--password={password}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mariadb (is mariadb-client installed?)");
    if let Some(mut input) = child.stdin.take() {
        // A client that could not connect exits without reading its input:
        // the broken pipe is not the failure, its exit status tells.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("mariadb output")
}

/// Runs `sql` through lockstep with the `mariadb` client as the test user;
/// fails the test when the client does.
pub fn lockstep_sql(lockstep: &Lockstep, sql: &str) {
    let out = mariadb_cli(lockstep.port, USER, PASSWORD, &[], sql);
    assert!(
        out.status.success(),
        "through lockstep: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `sql` on the node as root (for setting up and checking tests).
/// The rows `sql` gives on `c`, each column as text (NULL as "").
pub async fn text_rows(c: &mut mysql_async::Conn, sql: &str) -> Vec<Vec<String>> {
    use mysql_async::prelude::Queryable;
    let rows: Vec<mysql_async::Row> = c.query(sql).await.expect(sql);
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.get_opt::<Option<String>, usize>(i)
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

pub fn root_sql(node: &MariaDb, sql: &str) -> String {
    let out = mariadb_cli(node.port, "root", "", &["--batch"], sql);
    assert!(
        out.status.success(),
        "root sql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates database `fx` on the node and loads `fixtures/types.sql` into it.
pub fn load_types_fixture(node: &MariaDb) {
    root_sql(node, "CREATE DATABASE fx");
    let out = mariadb_cli(node.port, "root", "", &["fx"], &fixture("types.sql"));
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of `sql` run as root on `node`, columns separated by tabs.
pub fn root_rows(node: &MariaDb, sql: &str) -> Vec<String> {
    root_sql(node, sql)
        .lines()
        .skip(1)
        .map(|l| l.to_string())
        .collect()
}

/// Makes `node` alone refuse inserting `value` into `table` (column `v`)
/// with SIGNAL `message`: a trigger on that node only, to make nodes differ.
pub fn refuse_on(node: &MariaDb, table: &str, value: i64, message: &str) {
    let (schema, name) = table.split_once('.').expect("schema.table");
    root_sql(
        node,
        &format!(
            "DELIMITER //\nCREATE TRIGGER {schema}.refuse_{name}_{value} BEFORE INSERT ON {table} \
             FOR EACH ROW IF NEW.v = {value} THEN SIGNAL SQLSTATE '45000' \
             SET MESSAGE_TEXT = '{message}'; END IF//\n"
        ),
    );
}

/// `CHECKSUM TABLE` of each of `tables` on `node`; `lockstep.commits` by
/// its requestIds (`commits_of`): the master's rows carry no numbers.
pub fn checksums(node: &MariaDb, tables: &[&str]) -> Vec<String> {
    tables
        .iter()
        .flat_map(|table| match *table {
            "lockstep.commits" => commits_of(node),
            table => root_rows(node, &format!("CHECKSUM TABLE {table}")),
        })
        .collect()
}

/// Every node's `CHECKSUM TABLE` of `tables` equals the master's;
/// `context` (a seed) goes into the failure.
pub fn assert_nodes_equal_master(cluster: &Cluster, tables: &[&str], context: &str) {
    let master = checksums(cluster.master(), tables);
    for node in &cluster.nodes {
        assert_eq!(
            checksums(node, tables),
            master,
            "port {} differs from the master ({context})",
            node.port
        );
    }
}

/// Waits until every node has the master's commits (the tail caught up),
/// at most `timeout`. Compared by their requestIds: the master's rows
/// carry no commit numbers.
pub fn wait_for_tail(cluster: &Cluster, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let last = commits_of;
    loop {
        let master = last(cluster.master());
        let behind: Vec<_> = cluster
            .nodes
            .iter()
            .filter_map(|n| {
                let at = last(n);
                (at != master).then(|| format!("port {} at {at:?}", n.port))
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not catch up with the master's commit {master:?} within {timeout:?}: {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Which commits `node` has, as one comparable value: how many and a hash
/// of their requestIds (the master's rows carry no commit numbers).
pub fn commits_of(node: &MariaDb) -> Vec<String> {
    root_rows(
        node,
        "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(request_id)), 0) FROM lockstep.commits",
    )
}

/// The seed of a randomized workload: `LOCKSTEP_SEED` replays one, else
/// the clock's seconds. Printed, so that a failing run can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("LOCKSTEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    seed
}

/// The MariaDB error code of a server's error.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// MariaDB's answers to contention: deadlock (1213), lock wait timeout
/// (1205). A client of MariaDB directly gets them too.
pub fn is_timing_error(e: &mysql_async::Error) -> bool {
    matches!(server_code(e), Some(1213 | 1205))
}

/// A tokio runtime for tests that drive async clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The role of `node` in `SHOW LOCKSTEP NODES`, asked on `c`.
pub async fn role(c: &mut mysql_async::Conn, node: &str) -> String {
    use mysql_async::prelude::Queryable;
    let rows: Vec<mysql_async::Row> = c.query("SHOW LOCKSTEP NODES").await.expect("show nodes");
    rows.iter()
        .find(|r| {
            r.get_opt::<String, usize>(0)
                .and_then(Result::ok)
                .as_deref()
                == Some(node)
        })
        .and_then(|r| r.get_opt::<String, usize>(2).and_then(Result::ok))
        .unwrap_or_default()
}

/// `SHOW LOCKSTEP NODES` through the `mariadb` client: (node, role) pairs;
/// empty while lockstep does not answer.
pub fn roles(lockstep: &Lockstep) -> Vec<(String, String)> {
    let out = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--batch", "-N", "--connect-timeout=2"],
        "SHOW LOCKSTEP NODES",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?.to_string(), cols.nth(1)?.to_string()))
        })
        .collect()
}

/// The journal of a running lockstep replayed onto a server of its own.
pub fn replayed_onto_a_fresh_server(lockstep: &Lockstep) -> Cluster {
    match replay_onto_a_fresh_server(lockstep) {
        Ok(fresh) => fresh,
        Err(said) => panic!("{said}"),
    }
}

/// `replayed_onto_a_fresh_server`, or what the replay said.
pub fn replay_onto_a_fresh_server(lockstep: &Lockstep) -> Result<Cluster, String> {
    let fresh = Cluster::start(1);
    let config = lockstep.config_path.to_str().expect("utf-8 path");
    let out = std::process::Command::new(lockstep_bin())
        .args([
            "replay",
            "--config",
            config,
            "--target",
            &fresh.nodes[0].url(),
        ])
        .output()
        .expect("lockstep replay");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The journal's record of the statement that stopped the replay.
        let shown = stderr
            .split_whitespace()
            .skip_while(|w| *w != "statement")
            .nth(1)
            .map(|id| {
                let shown = Command::new(lockstep_bin())
                    .args(["journal", "--config", config, "show", id])
                    .output()
                    .expect("lockstep journal show");
                String::from_utf8_lossy(&shown.stdout).into_owned()
            })
            .unwrap_or_default();
        return Err(format!("{stderr}\n{shown}"));
    }
    Ok(fresh)
}

/// The oracle of a single-session workload run through lockstep and on a
/// server of its own (`direct`): the same answers in order, and `tables`
/// the same on every node and in the journal replayed onto a fresh server
/// as MariaDB left them directly.
pub fn assert_same_as_direct(
    seed: u64,
    (through, directly): (&[String], &[String]),
    cluster: &Cluster,
    lockstep: &Lockstep,
    direct: &MariaDb,
    tables: &[&str],
) {
    assert_eq!(through.len(), directly.len(), "seed {seed}: answers");
    for (i, (one, other)) in through.iter().zip(directly).enumerate() {
        assert_eq!(
            one,
            other,
            "seed {seed}: through lockstep, then directly, after {:#?}",
            &through[i.saturating_sub(3)..i]
        );
    }
    let reference = checksums(direct, tables);
    wait_for_tail(cluster, Duration::from_secs(60));
    for node in &cluster.nodes {
        assert_eq!(
            checksums(node, tables),
            reference,
            "seed {seed}: port {} differs from MariaDB's own rows",
            node.port
        );
    }
    assert_check_passes(lockstep);
    let fresh = replayed_onto_a_fresh_server(lockstep);
    assert_eq!(
        checksums(&fresh.nodes[0], tables),
        reference,
        "seed {seed}: the journal replayed differs from MariaDB's own rows"
    );
}
