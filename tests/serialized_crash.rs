//! lockstep killed in the middle of a statement that commits by itself
//! (a DDL): it ran on the synchronous slave B, and waits on the master
//! (held there by `FLUSH TABLES WITH READ LOCK`, taken directly) when
//! lockstep is SIGKILLed. B then holds a change the journal never
//! numbered. The restarted lockstep cannot undo it; it must say so, naming
//! the statement, and `lockstep check` must see the difference (README,
//! "lockstep stopped during a serialized statement").

mod support;

use std::time::{Duration, Instant};

use support::{root_rows, Cluster, Lockstep, PASSWORD, USER};

#[test]
fn a_ddl_cut_between_the_slave_and_the_master_is_named_at_restart() {
    let cluster = Cluster::start(3);
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY)",
    );

    // Held on the master directly: a DDL there waits for it.
    let mut hold = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root"])
        .arg("-P")
        .arg(cluster.master().port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    {
        use std::io::Write;
        let input = hold.stdin.as_mut().expect("stdin");
        input
            .write_all(b"FLUSH TABLES WITH READ LOCK;\n")
            .expect("write");
        input.flush().expect("flush");
    }
    std::thread::sleep(Duration::from_millis(500));
    let ddl = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1"])
        .arg("-P")
        .arg(lockstep.port.to_string())
        .arg("-u")
        .arg(USER)
        .arg(format!("--password={PASSWORD}"))
        .args(["-e", "CREATE TABLE d.cut (a INT)"])
        .spawn()
        .expect("mariadb");
    // Until B has the table: the DDL then waits on the master.
    let b = &cluster.nodes[1];
    let deadline = Instant::now() + Duration::from_secs(20);
    while root_rows(b, "SHOW TABLES FROM d LIKE 'cut'").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the DDL never ran on B:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lockstep.kill();
    drop(hold.stdin.take());
    let _ = hold.wait();
    let mut ddl = ddl;
    let _ = ddl.wait();

    lockstep.respawn();
    // Looked for in the background once lockstep serves.
    let named = |log: &str| {
        log.contains("lockstep stopped while this statement that commits by itself was running")
            && log.contains("CREATE TABLE d.cut")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !named(&lockstep.log()) {
        assert!(
            Instant::now() < deadline,
            "the restart did not name the cut statement:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The master may have run it too once the lock went (its thread
    // outlives lockstep's connection); the tail never did. The difference
    // is there, and `lockstep check` sees it.
    assert!(root_rows(&cluster.nodes[2], "SHOW TABLES FROM d LIKE 'cut'").is_empty());
    let check = std::process::Command::new(support::lockstep_bin())
        .args(["check", "--config"])
        .arg(&lockstep.config_path)
        .output()
        .expect("lockstep check");
    assert_ne!(
        check.status.code(),
        Some(0),
        "lockstep check found the nodes equal"
    );
}
