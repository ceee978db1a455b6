//! Private MariaDB servers on this machine: used by `lockstep up` and by the
//! test harness. Each has its own datadir, free port and socket, listens on
//! 127.0.0.1 only, and is stopped (by its PID) when dropped.

mod server;

pub use server::{free_port, install_datadir, MariaDb, MariaDbError, ServerOptions};

/// The one-line hint printed when the server binaries are missing.
pub const INSTALL_HINT: &str =
    "mariadbd not found: install it with `apt-get install -y mariadb-server mariadb-client`";

/// The path of `name` if it is an executable on PATH or in /usr/sbin
/// (where Debian puts mariadbd).
pub fn find_binary(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
