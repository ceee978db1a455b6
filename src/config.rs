//! The TOML configuration of `lockstep serve`.
//!
//! The key names are a contract: tests and tools outside the crate write these
//! files. Unknown keys are errors, so a typo never silently changes behaviour.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect (MySQL protocol).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// HTTP `/metrics` and `/status` (served from the operations issue on).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(default = "default_journal_dir")]
    pub journal_dir: PathBuf,
    /// How long commits every node has stay in the journal (`7d`, `12h`, `30s`).
    #[serde(default = "default_journal_retention")]
    pub journal_retention: String,
    /// Past this size the oldest settled commits are removed even when a
    /// node lacks them (that node then needs a rebuild). None: no limit.
    pub journal_max_bytes: Option<u64>,
    /// How often retention looks, in ms.
    #[serde(default = "default_journal_purge_interval_ms")]
    pub journal_purge_interval_ms: u64,
    /// PEM certificate chain and key; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub users: Vec<User>,
    /// Chain order: the master first, then the slaves.
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub compare: Compare,
    /// How often the master's health is checked, in ms.
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
    /// How long a health check may take before the master counts as down, in ms.
    #[serde(default = "default_health_timeout_ms")]
    pub health_timeout_ms: u64,
    /// 0: writes go on with the master and the journal while no slave is
    /// synchronous (availability); 1: they are refused (error 1290) until
    /// one is.
    #[serde(default)]
    pub min_sync_slaves: u8,
    /// `[ha]`: several lockstep instances, one active at a time, elected
    /// through etcd (`ha`). None: this instance runs alone.
    pub ha: Option<Ha>,
    /// Nodes the operator re-synced (`serve --resynced NODE`): their
    /// quarantine marks are lifted at start. Not a file key.
    #[serde(skip)]
    pub resynced: Vec<String>,
}

/// `[compare]`: how nodes that disagree with the master are treated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compare {
    /// First wait before re-running an entry a node failed, in ms.
    pub retry_initial_ms: u64,
    /// Longest wait between re-runs, in ms (the wait doubles up to it).
    pub retry_max_ms: u64,
    /// `http://…`: receives a JSON POST for each compare event.
    pub notify_url: Option<String>,
    /// What to do when the master refuses a statement the first slave ran.
    pub on_master_fail_slave_pass: MasterFailPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MasterFailPolicy {
    /// Undo it on the slave; the client has the master's error.
    #[default]
    RollbackSlave,
    /// Re-run it (B first, then the master) until the master passes it, and
    /// notify. Autocommit statements only: inside a client transaction the
    /// statement is rolled back on the slave, as the transaction's atomicity
    /// requires.
    RetryMaster,
}

impl Default for Compare {
    fn default() -> Compare {
        Compare {
            retry_initial_ms: 100,
            retry_max_ms: 30_000,
            notify_url: None,
            on_master_fail_slave_pass: MasterFailPolicy::RollbackSlave,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Clear text; `""` is an empty password, as in MySQL.
    pub password: Option<String>,
    /// `*` and 40 hex digits, as in `mysql.user` (SHA1(SHA1(password))).
    pub password_hash: Option<String>,
}

/// `[ha]`: this instance is one of several; etcd elects the active one,
/// the others keep a copy of its journal and pass clients to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ha {
    /// etcd endpoints (`http://host:port`); every instance names the same.
    pub etcd: Vec<String>,
    /// This instance's name, unique among the instances.
    pub name: String,
    /// How long the active may go without renewing its lease before another
    /// instance takes over, in ms (etcd counts whole seconds: rounded up).
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Where this instance, while active, serves its journal to the
    /// standbys (a reachable address: standbys connect to it as given).
    pub journal_listen: SocketAddr,
    /// The address other instances reach this one at, when it listens on
    /// one they cannot (`0.0.0.0` in a container, behind NAT): published in
    /// etcd with the ports of `listen` and `journal_listen`.
    pub advertise: Option<IpAddr>,
}

impl Ha {
    /// `addr` as other instances reach it: the advertised address, if any,
    /// with `addr`'s port.
    pub fn reachable(&self, addr: SocketAddr) -> SocketAddr {
        self.advertise
            .map_or(addr, |ip| SocketAddr::new(ip, addr.port()))
    }

    /// The lease etcd is asked for, in whole seconds.
    pub fn lease_seconds(&self) -> i64 {
        i64::try_from(self.lease_ms.div_ceil(1000).max(1)).unwrap_or(i64::MAX)
    }
}

fn default_lease_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// `mysql://user:password@host:port`
    pub url: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6033))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6034))
}

fn default_journal_retention() -> String {
    "7d".into()
}

fn default_journal_purge_interval_ms() -> u64 {
    60_000
}

fn default_health_interval_ms() -> u64 {
    1000
}

fn default_health_timeout_ms() -> u64 {
    2000
}

fn default_journal_dir() -> PathBuf {
    PathBuf::from("lockstep-data/journal")
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if let Some(ha) = &self.ha {
            if ha.etcd.is_empty() {
                return Err(invalid("ha.etcd", "names no endpoint".into()));
            }
            if ha.name.is_empty() {
                return Err(invalid("ha.name", "is empty".into()));
            }
            // Standbys and clients are sent to these addresses (or the
            // advertised one with their ports).
            if ha.advertise.is_some_and(|ip| ip.is_unspecified()) {
                return Err(invalid(
                    "ha.advertise",
                    "must be an address other instances reach".into(),
                ));
            }
            for (key, addr) in [
                ("listen", self.listen),
                ("ha.journal_listen", ha.journal_listen),
            ] {
                let reachable = ha.reachable(addr);
                if reachable.ip().is_unspecified() || addr.port() == 0 {
                    return Err(invalid(
                        key,
                        format!("{addr}: with [ha] other instances connect to it: give a reachable address and port, or set ha.advertise"),
                    ));
                }
            }
        }
        if self.nodes.is_empty() {
            return Err(invalid(
                "nodes",
                "no [[nodes]]: at least the master is needed".into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.name.is_empty() {
                return Err(invalid(&format!("nodes[{i}].name"), "is empty".into()));
            }
            if !names.insert(node.name.as_str()) {
                return Err(invalid(
                    &format!("nodes[{i}].name"),
                    format!("node name {:?} is used twice", node.name),
                ));
            }
            if let Err(e) = mysql_async::Opts::from_url(&node.url) {
                return Err(invalid(
                    &format!("nodes[{i}].url"),
                    format!("node {:?}: {e}", node.name),
                ));
            }
        }
        let mut users = HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if !users.insert(user.name.as_str()) {
                return Err(invalid(
                    &format!("users[{i}].name"),
                    format!("user {:?} is listed twice", user.name),
                ));
            }
            match (&user.password, &user.password_hash) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(invalid(
                        &format!("users[{i}]"),
                        format!(
                            "user {:?} needs exactly one of `password` and `password_hash`",
                            user.name
                        ),
                    ))
                }
                (None, Some(hash)) => {
                    if crate::auth::parse_password_hash(hash).is_none() {
                        return Err(invalid(
                            &format!("users[{i}].password_hash"),
                            "must be `*` followed by 40 hex digits, as in mysql.user".into(),
                        ));
                    }
                }
                (Some(_), None) => {}
            }
        }
        if self.compare.retry_initial_ms == 0
            || self.compare.retry_max_ms < self.compare.retry_initial_ms
        {
            return Err(invalid(
                "compare.retry_max_ms",
                "retry_initial_ms must be at least 1 and retry_max_ms at least retry_initial_ms"
                    .into(),
            ));
        }
        if let Some(url) = &self.compare.notify_url {
            if !url.starts_with("http://") {
                return Err(invalid(
                    "compare.notify_url",
                    "must be an http:// URL (https is not supported yet)".into(),
                ));
            }
        }
        if humantime::parse_duration(&self.journal_retention).is_err() {
            return Err(invalid(
                "journal_retention",
                format!(
                    "{:?} is not a duration (7d, 12h, 30s)",
                    self.journal_retention
                ),
            ));
        }
        if self.journal_purge_interval_ms == 0 {
            return Err(invalid(
                "journal_purge_interval_ms",
                "must be at least 1".into(),
            ));
        }
        if self.min_sync_slaves > 1 {
            return Err(invalid("min_sync_slaves", "must be 0 or 1".into()));
        }
        if self.health_interval_ms == 0 || self.health_timeout_ms == 0 {
            return Err(invalid(
                "health_interval_ms",
                "health_interval_ms and health_timeout_ms must be at least 1".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid(
                "tls_cert",
                "`tls_cert` and `tls_key` go together".into(),
            ));
        }
        Ok(())
    }

    /// How long settled commits stay in the journal (validated at load).
    pub fn retention(&self) -> std::time::Duration {
        humantime::parse_duration(&self.journal_retention)
            .unwrap_or(std::time::Duration::from_secs(7 * 24 * 3600))
    }

    /// The master: the first node of the chain.
    pub fn master(&self) -> &Node {
        &self.nodes[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).expect("write config");
        Config::load(&path)
    }

    const NODE: &str = "[[nodes]]\nname = \"a\"\nurl = \"mysql://root@127.0.0.1:3311\"\n";

    #[test]
    fn minimal_config_has_defaults() {
        let config = load_str(NODE).expect("valid");
        assert_eq!(config.listen.port(), 6033);
        assert_eq!(config.master().name, "a");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str(&format!("lisen = \"127.0.0.1:1\"\n{NODE}")).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn missing_nodes_is_named() {
        let err = load_str("listen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("nodes"), "{err}");
    }

    #[test]
    fn bad_hash_is_named() {
        let err = load_str(&format!(
            "{NODE}[[users]]\nname = \"app\"\npassword_hash = \"nothex\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("users[0].password_hash"), "{err}");
    }

    #[test]
    fn empty_password_is_valid() {
        let config = load_str(&format!(
            "{NODE}[[users]]\nname = \"app\"\npassword = \"\"\n"
        ))
        .expect("valid");
        assert_eq!(config.users[0].password.as_deref(), Some(""));
    }

    #[test]
    fn compare_section() {
        let config = load_str(&format!(
            "{NODE}\n[compare]\nretry_initial_ms = 10\nretry_max_ms = 20\n\
             on_master_fail_slave_pass = \"retry-master\"\nnotify_url = \"http://127.0.0.1:9/x\"\n"
        ))
        .expect("valid");
        assert_eq!(
            config.compare.on_master_fail_slave_pass,
            MasterFailPolicy::RetryMaster
        );
        assert_eq!(load_str(NODE).expect("valid").compare.retry_max_ms, 30_000);
        for bad in [
            "[compare]\non_master_fail_slave_pass = \"retry\"\n",
            "[compare]\nnotify_url = \"https://x\"\n",
            "[compare]\nretry_initial_ms = 0\n",
            "[compare]\nretry_initial_ms = 50\nretry_max_ms = 10\n",
            "[compare]\nretries = 3\n",
        ] {
            assert!(load_str(&format!("{NODE}\n{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn failover_keys() {
        let config = load_str(NODE).expect("valid");
        assert_eq!(
            (
                config.health_interval_ms,
                config.health_timeout_ms,
                config.min_sync_slaves
            ),
            (1000, 2000, 0)
        );
        let err = load_str(&format!("min_sync_slaves = 2\n{NODE}")).unwrap_err();
        assert!(err.to_string().contains("min_sync_slaves"), "{err}");
        let err = load_str(&format!("health_timeout_ms = 0\n{NODE}")).unwrap_err();
        assert!(err.to_string().contains("health_interval_ms"), "{err}");
    }

    #[test]
    fn ha_section() {
        let ha = "listen = \"127.0.0.1:7001\"\n[ha]\netcd = [\"http://127.0.0.1:2379\"]\nname = \"ls1\"\njournal_listen = \"127.0.0.1:7003\"\n";
        let config = load_str(&format!("{ha}{NODE}")).expect("valid");
        let parsed = config.ha.expect("ha");
        assert_eq!(
            (
                parsed.name.as_str(),
                parsed.lease_ms,
                parsed.lease_seconds()
            ),
            ("ls1", 1000, 1)
        );
        let err = load_str(&format!(
            "{}{NODE}",
            ha.replace("127.0.0.1:7001", "0.0.0.0:7001")
        ))
        .unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        // Listening everywhere, reached at the advertised address.
        let everywhere = ha
            .replace("127.0.0.1:7001", "0.0.0.0:7001")
            .replace("127.0.0.1:7003", "0.0.0.0:7003");
        let config =
            load_str(&format!("{everywhere}advertise = \"10.0.0.5\"\n{NODE}")).expect("valid");
        let parsed = config.ha.as_ref().expect("ha");
        assert_eq!(parsed.reachable(config.listen).to_string(), "10.0.0.5:7001");
        assert_eq!(
            parsed.reachable(parsed.journal_listen).to_string(),
            "10.0.0.5:7003"
        );
        let err = load_str(&format!("{everywhere}advertise = \"0.0.0.0\"\n{NODE}")).unwrap_err();
        assert!(err.to_string().contains("advertise"), "{err}");
        let err = load_str(&format!("{}lease_ms = 1500\n{NODE}", ha)).expect("valid");
        assert_eq!(err.ha.expect("ha").lease_seconds(), 2);
        let err = load_str(&format!("{}{NODE}", ha.replace("name = \"ls1\"\n", ""))).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }
}
