//! A private single-member etcd (Debian `etcd-server`) for `lockstep up
//! --ha` and the tests: temp data dir, free ports on 127.0.0.1, stopped
//! by PID when dropped.
//!
//! Its heartbeat (25 ms) and election timeout (250 ms) are shorter than
//! etcd's defaults: etcd grants no lease shorter than 1.5 election
//! timeouts, so with its defaults a 1 s lease would become 2 s.
//!
//! The tests start it with `Durability::PageCache` (etcd's
//! `--unsafe-no-fsync`): they kill processes, never the machine, and a
//! killed process's writes stay in the page cache. On a loaded 2-core
//! machine whose disk also takes three MariaDB servers' fsyncs, etcd's own
//! fsync made a heartbeat take 300 ms and more, past a 1 s lease's 400 ms
//! authority: the active lost its lease for a reason the tests are not
//! about. `lockstep up --ha` and the bench keep etcd's fsync.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mariadb::{find_binary, free_port};
use crate::process::stop_child;

#[derive(Debug, thiserror::Error)]
pub enum LocalEtcdError {
    #[error("etcd is not installed (Debian: apt-get install etcd-server)")]
    NotInstalled,
    #[error("etcd: {0}")]
    Io(#[from] std::io::Error),
    #[error("etcd did not answer on port {port} within 20 s (see {log})")]
    StartTimeout { port: u16, log: String },
}

/// Whether etcd syncs its log to disk before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// etcd's default: what it confirmed survives a machine crash.
    Disk,
    /// `--unsafe-no-fsync`: what it confirmed survives etcd's process being
    /// killed, not the machine crashing.
    PageCache,
}

pub struct LocalEtcd {
    pub port: u16,
    durability: Durability,
    name: String,
    peer: u16,
    /// Every member's `name=peer URL`, comma-separated.
    cluster: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl LocalEtcd {
    /// Starts a one-member etcd with its data and log in `dir`.
    pub fn start(dir: &Path, durability: Durability) -> Result<LocalEtcd, LocalEtcdError> {
        let mut members = LocalEtcd::start_members(dir, 1, durability)?;
        members.pop().ok_or(LocalEtcdError::NotInstalled)
    }

    /// Starts an etcd of `count` members, each in `dir/mN`.
    pub fn start_members(
        dir: &Path,
        count: usize,
        durability: Durability,
    ) -> Result<Vec<LocalEtcd>, LocalEtcdError> {
        let mut members = Vec::with_capacity(count);
        for i in 0..count {
            let dir = dir.join(format!("m{i}"));
            std::fs::create_dir_all(&dir)?;
            members.push(LocalEtcd {
                port: free_port()?,
                durability,
                name: format!("m{i}"),
                peer: free_port()?,
                cluster: String::new(),
                dir,
                child: None,
            });
        }
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        for member in &mut members {
            member.cluster = cluster.clone();
            member.launch()?;
        }
        for member in &mut members {
            member.wait_until_listening()?;
        }
        Ok(members)
    }

    /// Every member's endpoint.
    pub fn endpoints(members: &[LocalEtcd]) -> Vec<String> {
        members.iter().map(LocalEtcd::endpoint).collect()
    }

    /// Starts it again after `stop`, on the same ports with the same data.
    pub fn restart(&mut self) -> Result<(), LocalEtcdError> {
        self.stop();
        self.launch()?;
        self.wait_until_listening()
    }

    fn launch(&mut self) -> Result<(), LocalEtcdError> {
        let etcd = find_binary("etcd").ok_or(LocalEtcdError::NotInstalled)?;
        let log_path = self.dir.join("etcd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let client_url = format!("http://127.0.0.1:{}", self.port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer);
        let mut command = Command::new(etcd);
        if self.durability == Durability::PageCache {
            command.arg("--unsafe-no-fsync");
        }
        let child = command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", self.cluster))
            .arg("--heartbeat-interval=25")
            .arg("--election-timeout=250")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Members of a new cluster wait for each other: each is waited for
    /// once all are started.
    fn wait_until_listening(&mut self) -> Result<(), LocalEtcdError> {
        let log_path = self.dir.join("etcd.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                self.stop();
                return Err(LocalEtcdError::StartTimeout {
                    port: self.port,
                    log: log_path.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(5));
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}
