//! `lockstep serve` and `lockstep up` as a user runs them: bad
//! configurations exit with code 2 and a message naming the key or node, and
//! `up` starts a working three-node setup and stops it all on SIGTERM.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockstep::mariadb::free_port;
use support::{lockstep_bin, mariadb_cli, Cluster};

fn serve_with(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.toml");
    std::fs::write(&path, config).expect("write");
    let out = Command::new(lockstep_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run lockstep");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configurations_exit_2_naming_the_problem() {
    let closed_port = free_port().expect("port");
    let node = format!("[[nodes]]\nname = \"a\"\nurl = \"mysql://root@127.0.0.1:{closed_port}\"\n");
    for (config, expected) in [
        ("listen = [\n".to_string(), "lockstep.toml"),
        (format!("lisen = \"127.0.0.1:1\"\n{node}"), "lisen"),
        ("listen = \"127.0.0.1:0\"\n".to_string(), "nodes"),
        (
            "[[nodes]]\nname = \"a\"\nurl = \"http://x\"\n".to_string(),
            "nodes[0].url",
        ),
        (format!("{node}[[users]]\nname = \"app\"\n"), "users[0]"),
        // Valid, but the master does not answer.
        (
            format!("listen = \"127.0.0.1:0\"\n{node}"),
            "master node \"a\"",
        ),
    ] {
        let (code, stderr) = serve_with(&config);
        assert_eq!(code, Some(2), "config {config:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
    }
    let missing = Command::new(lockstep_bin())
        .args(["serve", "--config", "/nonexistent/lockstep.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn listen_flag_overrides_the_file() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:0\"\n[[users]]\nname = \"app\"\npassword_hash = \"*14E65567ABDB5135D0CFD9A70B3032C179A49EE7\"\n[[nodes]]\nname = \"a\"\nurl = \"{}\"\n",
            cluster.master().url()
        ),
    )
    .expect("write");
    let port = free_port().expect("port");
    let mut child = Command::new(lockstep_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .arg(format!("--listen=127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let answer = wait_for_answer(port, "secret");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.as_deref(), Some("42"));
}

/// Polls until `SELECT 6 * 7` through lockstep on `port` answers.
fn wait_for_answer(port: u16, password: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let out = mariadb_cli(port, "app", password, &["--batch", "-N"], "SELECT 6 * 7");
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

fn mariadbd_running_under(dir: &Path) -> usize {
    let out = Command::new("ps")
        .args(["-eo", "args="])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("mariadbd") && l.contains(&*dir.to_string_lossy()))
        .count()
}

#[test]
fn up_starts_three_nodes_and_stops_them_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("port");
    let mut child = Command::new(lockstep_bin())
        .arg("up")
        .arg("--dir")
        .arg(dir.path())
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lockstep up");
    let answer = wait_for_answer(port, "secret");
    let running = mariadbd_running_under(dir.path());
    // SIGTERM, as Ctrl-C would: lockstep stops its nodes and exits.
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let status = child.wait().expect("wait");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
    }
    assert_eq!(
        answer.as_deref(),
        Some("42"),
        "lockstep up did not serve:\n{stdout}"
    );
    assert_eq!(running, 3, "three nodes while up");
    assert!(status.success(), "exit status {status}");
    assert!(
        stdout.contains(&format!("mariadb -h 127.0.0.1 -P {port} -u app -psecret")),
        "{stdout}"
    );
    assert_eq!(mariadbd_running_under(dir.path()), 0, "nodes left running");
}
