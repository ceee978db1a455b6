//! Installing, starting and stopping one `mariadbd`.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_binary, INSTALL_HINT};

#[derive(Debug, thiserror::Error)]
pub enum MariaDbError {
    #[error("{INSTALL_HINT}")]
    NotInstalled,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("mariadb-install-db failed for {datadir} (see {log})")]
    InstallFailed { datadir: PathBuf, log: PathBuf },
    #[error("mariadbd on port {port} did not start within {seconds} s (see {log})")]
    StartTimeout {
        port: u16,
        seconds: u64,
        log: PathBuf,
    },
    #[error("mariadbd on port {port} exited while starting ({log} ends: {tail})")]
    Exited {
        port: u16,
        log: PathBuf,
        tail: String,
    },
    #[error("mariadbd found port {port} taken (see {log})")]
    PortTaken { port: u16, log: PathBuf },
}

/// How many free ports `start_on_a_free_port` tries.
const PORT_TRIES: usize = 5;

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MariaDbError {
    let what = what.into();
    move |source| MariaDbError::Io { what, source }
}

/// Extra server settings.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `--name=value` arguments for mariadbd.
    pub args: Vec<String>,
}

/// A running private server.
#[derive(Debug)]
pub struct MariaDb {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A port nobody listens on right now (the kernel picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `mariadb-install-db` into `dir/data`, with its own tmpdir so that
/// parallel installs do not collide. Root may log in without a password.
pub fn install_datadir(dir: &Path) -> Result<(), MariaDbError> {
    let install = find_binary("mariadb-install-db").ok_or(MariaDbError::NotInstalled)?;
    let datadir = dir.join("data");
    let tmpdir = dir.join("tmp");
    fs::create_dir_all(&datadir).map_err(io_err(format!("create {}", datadir.display())))?;
    fs::create_dir_all(&tmpdir).map_err(io_err(format!("create {}", tmpdir.display())))?;
    let log = dir.join("install.log");
    let log_file = fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
    let status = Command::new(install)
        .arg("--no-defaults")
        .arg("--user=root")
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(io_err("log file"))?)
        .stderr(log_file)
        .status()
        .map_err(io_err("run mariadb-install-db"))?;
    if !status.success() {
        return Err(MariaDbError::InstallFailed { datadir, log });
    }
    Ok(())
}

impl MariaDb {
    /// `start` on a free port. A port found free can be taken before
    /// mariadbd binds it (by another server starting, or as the local end of
    /// an outgoing connection): then another port is tried.
    pub fn start_on_a_free_port(
        dir: &Path,
        options: &ServerOptions,
    ) -> Result<MariaDb, MariaDbError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let port = free_port().map_err(io_err("find a free port"))?;
            match MariaDb::start(dir, port, options) {
                Err(MariaDbError::PortTaken { .. }) if tries < PORT_TRIES => continue,
                other => return other,
            }
        }
    }

    /// Starts mariadbd on `dir/data` (made by `install_datadir`) and waits
    /// until it greets clients.
    pub fn start(dir: &Path, port: u16, options: &ServerOptions) -> Result<MariaDb, MariaDbError> {
        let mariadbd = find_binary("mariadbd").ok_or(MariaDbError::NotInstalled)?;
        let tmpdir = dir.join("tmp");
        fs::create_dir_all(&tmpdir).map_err(io_err(format!("create {}", tmpdir.display())))?;
        // Root over TCP from 127.0.0.1: the install creates root@localhost
        // only, and name resolution is off.
        let init = dir.join("init.sql");
        fs::write(
            &init,
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
        )
        .map_err(io_err(format!("write {}", init.display())))?;
        let log = dir.join("error.log");
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--init-file={}", init.display()))
            .arg("--skip-name-resolve")
            .arg("--max-connections=1000")
            // What lockstep needs of a node (`chain::requirements`), stated
            // rather than left to the default; a later argument overrides it.
            .arg("--innodb-autoinc-lock-mode=1")
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("start mariadbd"))?;
        let mut server = MariaDb {
            port,
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        server.wait_until_ready(Duration::from_secs(60), &log)?;
        Ok(server)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `mysql://root@127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn wait_until_ready(&mut self, timeout: Duration, log: &Path) -> Result<(), MariaDbError> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.stop();
                    let said = fs::read_to_string(log).unwrap_or_default();
                    return Err(if said.contains("Address already in use") {
                        MariaDbError::PortTaken {
                            port: self.port,
                            log: log.to_path_buf(),
                        }
                    } else {
                        let lines: Vec<&str> = said.lines().collect();
                        MariaDbError::Exited {
                            port: self.port,
                            log: log.to_path_buf(),
                            tail: lines[lines.len().saturating_sub(5)..].join(" | "),
                        }
                    });
                }
            }
            if greets(&addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(MariaDbError::StartTimeout {
            port: self.port,
            seconds: timeout.as_secs(),
            log: log.to_path_buf(),
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited after 30 s; reaps it.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM, Duration::from_secs(30));
    }

    /// SIGKILL: a crash, for failure tests.
    pub fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    }

    fn signal_and_wait(&mut self, signal: i32, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            crate::process::stop_child(&mut child, signal, grace);
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when something on `addr` sends a MySQL greeting (protocol 10) or a
/// MySQL error packet: the server is up.
fn greets(addr: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).is_ok() && (header[4] == 10 || header[4] == 0xff)
}
