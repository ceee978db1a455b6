//! `lockstep journal stats | show | list`, through a running lockstep and
//! on the directory of a stopped one.

mod support;

use std::process::Command;

use support::{lockstep_bin, Cluster, Lockstep};

fn journal(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(lockstep_bin())
        .arg("journal")
        .args(args)
        .output()
        .expect("lockstep journal");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_journal_is_readable_running_and_stopped() {
    let cluster = Cluster::start(2);
    let dir = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, "", Some(dir.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE j; CREATE TABLE j.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO j.t VALUES (1); SELECT LOCKSTEP_REQUEST_ID();",
    );
    // A write the master refuses: a failed entry.
    let out = support::mariadb_cli(
        lockstep.port,
        "app",
        "secret",
        &[],
        "INSERT INTO j.t VALUES (1)",
    );
    assert!(!out.status.success());
    let config = lockstep.config_path.to_str().expect("utf-8").to_string();

    let (code, out, err) = journal(&["--config", &config, "stats"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("running lockstep"), "{err}");
    assert!(out.contains("entries committed"), "{out}");
    assert!(out.contains("entries failed             1"), "{out}");
    // The group's options are accepted after the subcommand too.
    let (code, after, err) = journal(&["stats", "--config", &config]);
    assert_eq!(code, 0, "{err}");
    assert!(after.contains("entries failed             1"), "{after}");

    let (code, out, err) = journal(&["--config", &config, "list", "--state", "failed", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["statement"], "INSERT INTO j.t VALUES (1)");
    let failed_id = lines[0]["id"].as_str().expect("id").to_string();

    let (code, out, err) = journal(&["--config", &config, "show", &failed_id]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let nodes: Vec<&str> = shown["entry"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["node"].as_str())
        .collect();
    assert_eq!(nodes, ["n1", "n0"], "B ran it first, then A: {out}");
    assert_eq!(shown["entry"]["results"][1]["outcome"], "error", "{out}");

    // Stopped: the directory itself.
    lockstep.stop();
    let (code, out, err) = journal(&["--config", &config, "stats"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("read directly"), "{err}");
    assert!(out.contains("entries failed             1"), "{out}");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let (code, out, err) = journal(&["--journal", dir_arg, "list", "--state", "committed"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("INSERT INTO j.t VALUES (1)"), "{out}");
    assert!(out.contains("CREATE TABLE j.t"), "{out}");
    let (code, _, err) = journal(&[
        "--journal",
        dir_arg,
        "show",
        "00000000-0000-0000-0000-000000000000",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("no request"), "{err}");
}
