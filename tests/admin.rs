//! The admin endpoint: `/metrics` parses with the Prometheus project's own
//! (OpenMetrics) parser and its counters move with traffic; a quarantine is
//! counted; `/status` lists the nodes with their roles.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{root_sql, wait_for_tail, Cluster, Lockstep};

/// `GET http://127.0.0.1:{port}{path}`
fn get(port: u16, path: &str) -> String {
    ureq::get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("admin endpoint answers")
        .into_string()
        .expect("text")
}

/// Every sample of `/metrics`, as the `prometheus_client` Python package's
/// OpenMetrics parser reads it: `name{label="v",…}` → value. The parser
/// fails the test on anything that is not valid OpenMetrics text.
fn samples(lockstep: &Lockstep) -> HashMap<String, f64> {
    let text = get(lockstep.admin_port, "/metrics");
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}=\"{v}\"' for k, v in sorted(s.labels.items()))\n\
        \x20       print(f'{s.name}{{{labels}}} {s.value}')\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus-client installed)");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[test]
fn metrics_parse_move_with_traffic_and_count_quarantines() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE m; CREATE TABLE m.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;",
    );
    let status = support::mariadb_cli(
        lockstep.port,
        "app",
        "secret",
        &["--batch", "-N"],
        "SHOW LOCKSTEP STATUS",
    );
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("master\tn0\n"), "{status}");
    assert!(status.contains("sync_slave\tn1\n"), "{status}");
    assert!(status.contains("no_sync_slave_because\tNULL\n"), "{status}");
    let before = samples(&lockstep);
    let inserts: String = (1..=20)
        .map(|i| format!("INSERT INTO m.t VALUES ({i}, 0);\n"))
        .collect();
    // One statement per line: the client sends each on its own.
    let out = support::mariadb_cli(lockstep.port, "app", "secret", &[], &inserts);
    assert!(out.status.success());
    wait_for_tail(&cluster, Duration::from_secs(20));
    let after = samples(&lockstep);
    let writes = r#"lockstep_statements_total{route="write"}"#;
    assert_eq!(value(&after, writes) - value(&before, writes), 20.0);
    let agree = r#"lockstep_compare_verdicts_total{verdict="agree"}"#;
    // B's and the tail's result for each of the 20.
    assert!(
        value(&after, agree) - value(&before, agree) >= 40.0,
        "{after:?}"
    );
    assert!(value(&after, "lockstep_journal_batches_total{}") > 0.0);
    assert!(value(&after, "lockstep_write_seconds_count{}") >= 20.0);
    for node in ["n0", "n1", "n2"] {
        let key = format!("lockstep_node_seconds_count{{node=\"{node}\"}}");
        assert!(value(&after, &key) >= 20.0, "{key}: {after:?}");
    }
    assert_eq!(
        value(&after, r#"lockstep_node_role{node="n0",role="master"}"#),
        1.0
    );
    assert_eq!(
        value(&after, r#"lockstep_node_role{node="n1",role="sync"}"#),
        1.0
    );
    assert_eq!(
        value(&after, r#"lockstep_node_role{node="n2",role="tail"}"#),
        1.0
    );
    assert_eq!(
        value(&after, r#"lockstep_node_lag_commits{node="n2"}"#),
        0.0
    );

    // The tail's data changed behind lockstep's back: it diverges on the
    // next update of that row, and the quarantine is counted.
    root_sql(&cluster.nodes[2], "UPDATE m.t SET v = 99 WHERE id = 1");
    support::lockstep_sql(&lockstep, "UPDATE m.t SET v = v + 1 WHERE v = 0");
    let quarantined = r#"lockstep_quarantines_total{node="n2"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = samples(&lockstep);
        // The roles are read before the counters are encoded: a response
        // can count the quarantine and still show the role from just before.
        if value(&now, quarantined) == 1.0
            && value(&now, r#"lockstep_node_role{node="n2",role="quarantined"}"#) == 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no quarantine counted: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status: serde_json::Value =
        serde_json::from_str(&get(lockstep.admin_port, "/status")).expect("JSON");
    let roles: Vec<(&str, &str)> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or(""),
                n["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [("n0", "master"), ("n1", "sync"), ("n2", "quarantined")],
        "{status}"
    );
}
