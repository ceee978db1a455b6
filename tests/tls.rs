//! TLS on the client port: with `tls_cert`/`tls_key` configured, `mariadb
//! --ssl` connects encrypted; without them, a client that requires TLS is
//! refused rather than silently served in clear text.

mod support;

use std::process::Command;

use support::{mariadb_cli, Cluster, Lockstep, PASSWORD, USER};

fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn clients_connect_over_tls_when_configured() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(dir.path());
    let lockstep = Lockstep::start(
        &cluster,
        &format!("tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"),
    );
    let out = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--ssl"],
        "status\nSELECT 6 * 7 AS answer;",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lockstep.log()
    );
    assert!(
        stdout.contains("Cipher in use is"),
        "not encrypted:\n{stdout}"
    );
    assert!(stdout.contains("42"), "{stdout}");
    // Clients that do not ask for TLS still connect.
    let plain = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--skip-ssl", "--batch", "-N"],
        "SELECT 1",
    );
    assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "1");
}

#[test]
fn tls_required_without_tls_configured_is_refused() {
    let cluster = Cluster::start(1);
    let lockstep = Lockstep::start(&cluster, "");
    let out = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--ssl", "--ssl-verify-server-cert"],
        "SELECT 1",
    );
    assert!(
        !out.status.success(),
        "a client requiring TLS was served in clear text"
    );
}
