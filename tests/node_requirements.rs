//! What lockstep needs of its nodes' configuration (`chain::requirements`)
//! is checked before a node takes part: at start lockstep refuses to run,
//! naming the node and the setting; a tail node restarted with such a
//! setting stays out (its applier says why and retries) until it is
//! restarted with a fitting one, and then catches up.
//!
//! Why `innodb_autoinc_lock_mode = 2` is refused is measured here too: the
//! copies below get AUTO_INCREMENT values with gaps on such a server, which
//! a node given only the first value (as lockstep gives A, the journal and
//! the tail) cannot repeat.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use lockstep::mariadb::{MariaDb, ServerOptions};
use mysql_async::prelude::Queryable;
use support::{lockstep_bin, root_rows, root_sql, Cluster, Lockstep};

fn interleaved() -> ServerOptions {
    ServerOptions {
        args: vec!["--innodb-autoinc-lock-mode=2".into()],
    }
}

fn named(cluster: &Cluster) -> Vec<(String, String)> {
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("n{i}"), n.url()))
        .collect()
}

#[test]
fn a_node_with_interleaved_autoinc_locks_is_refused_at_start_and_kept_out_after() {
    let mut cluster = Cluster::start(3);

    // The hazard, on the node as it will be configured: concurrent copies
    // into an AUTO_INCREMENT table get numbers with gaps.
    let (dir, port) = (cluster.nodes[2].dir.clone(), cluster.nodes[2].port);
    cluster.nodes[2].stop();
    cluster.nodes[2] = MariaDb::start(&dir, port, &interleaved()).expect("node restarts");
    let gapped = copies_with_gaps(&cluster.nodes[2]);
    assert!(gapped > 0, "no copy got numbers with gaps at lock mode 2");

    // Refused at start, naming the node and the setting.
    let (code, said) = serve_refused(&named(&cluster));
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("\"n2\"") && said.contains("innodb_autoinc_lock_mode is 2"),
        "the refusal names the node and the setting: {said}"
    );

    // With the node fixed, lockstep runs; the node restarted unfit while
    // lockstep runs stays behind and says why.
    cluster.nodes[2].stop();
    cluster.nodes[2] = MariaDb::start(&dir, port, &Default::default()).expect("node restarts");
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE r; CREATE TABLE r.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
    );
    support::wait_for_tail(&cluster, Duration::from_secs(20));
    cluster.nodes[2].stop();
    cluster.nodes[2] = MariaDb::start(&dir, port, &interleaved()).expect("node restarts");
    support::lockstep_sql(&lockstep, "INSERT INTO r.t (v) VALUES (1), (2), (3)");
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let nodes = show_nodes(&lockstep);
        let n2 = nodes
            .iter()
            .find(|r| r[0] == "n2")
            .expect("n2 listed")
            .clone();
        if n2[5].contains("innodb_autoinc_lock_mode is 2") {
            break n2;
        }
        assert!(
            Instant::now() < deadline,
            "n2 does not say why it is out: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(said[2], "sync", "{said:?}");
    assert_eq!(
        root_rows(&cluster.nodes[2], "SELECT COUNT(*) FROM r.t"),
        ["0"],
        "an unfit node applies nothing"
    );

    // Fixed and restarted: it catches up by itself.
    cluster.nodes[2].stop();
    cluster.nodes[2] = MariaDb::start(&dir, port, &Default::default()).expect("node restarts");
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    support::assert_nodes_equal_master(&cluster, &["r.t"], "after the node was fixed");
}

#[test]
fn a_node_account_that_cannot_number_binlog_transactions_is_refused_where_nodes_log() {
    let logging = ServerOptions {
        args: vec!["--log-bin=binlog".into(), "--server-id=1".into()],
    };
    let cluster = Cluster::start_with(2, &logging);
    for node in &cluster.nodes {
        root_sql(
            node,
            "CREATE USER ls@'127.0.0.1' IDENTIFIED BY 'pw'; \
             GRANT ALL ON *.* TO ls@'127.0.0.1'; \
             REVOKE SUPER, BINLOG REPLAY ON *.* FROM ls@'127.0.0.1'",
        );
    }
    let urls: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                format!("n{i}"),
                format!("mysql://ls:pw@127.0.0.1:{}", n.port),
            )
        })
        .collect();
    let (code, said) = serve_refused(&urls);
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("\"n0\"") && said.contains("BINLOG REPLAY"),
        "the refusal names the node and the privilege: {said}"
    );

    // Granted, lockstep serves them.
    for node in &cluster.nodes {
        root_sql(node, "GRANT BINLOG REPLAY ON *.* TO ls@'127.0.0.1'");
    }
    if let Some((code, said)) = serve(&urls) {
        panic!("lockstep exited with {code:?}: {said}");
    }
}

/// Starts `lockstep serve` on `nodes` (name, url) and stops it once it
/// listens: `None` when it listened, else its exit code and what it said.
fn serve(nodes: &[(String, String)]) -> Option<(Option<i32>, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = lockstep::mariadb::free_port().expect("port");
    let admin = lockstep::mariadb::free_port().expect("port");
    let mut config = format!(
        "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\njournal_dir = \"{}\"\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n",
        dir.path().join("journal").display()
    );
    for (name, url) in nodes {
        config.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    let path = dir.path().join("lockstep.toml");
    std::fs::write(&path, config).expect("config");
    let mut child = Command::new(lockstep_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lockstep");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return Some((status.code(), said));
        }
        assert!(
            Instant::now() < deadline,
            "lockstep neither served nor exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `serve`, which must refuse: its exit code and what it said.
fn serve_refused(nodes: &[(String, String)]) -> (Option<i32>, String) {
    serve(nodes).expect("lockstep served nodes it cannot work with")
}

/// How many of 4 clients' concurrent `INSERT … SELECT` copies of 50 rows
/// got AUTO_INCREMENT numbers with gaps on `node`.
fn copies_with_gaps(node: &MariaDb) -> usize {
    root_sql(
        node,
        "CREATE DATABASE g; CREATE TABLE g.a (id INT AUTO_INCREMENT PRIMARY KEY, s INT, k INT); \
         CREATE TABLE g.src (x INT); INSERT INTO g.src SELECT seq FROM g.seq_1_to_50",
    );
    let rt = support::runtime();
    let url = node.url();
    let gapped = rt.block_on(async {
        let clients = (0..4).map(|s| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut c = mysql_async::Conn::from_url(url).await.expect("connect");
                let mut gapped = 0;
                for k in 0..100 {
                    c.query_drop(format!(
                        "INSERT INTO g.a (s, k) SELECT {s}, {k} FROM g.src ORDER BY x"
                    ))
                    .await
                    .expect("copy");
                    let span: Option<(u64, u64, u64)> = c
                        .query_first(format!(
                            "SELECT MIN(id), MAX(id), COUNT(*) FROM g.a WHERE s = {s} AND k = {k}"
                        ))
                        .await
                        .expect("span");
                    let (low, high, n) = span.expect("a row");
                    if high - low + 1 != n {
                        gapped += 1;
                    }
                }
                gapped
            })
        });
        let mut total = 0;
        for client in clients.collect::<Vec<_>>() {
            total += client.await.expect("client");
        }
        total
    });
    root_sql(node, "DROP DATABASE g");
    gapped
}

fn show_nodes(lockstep: &Lockstep) -> Vec<Vec<String>> {
    support::runtime().block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts())
            .await
            .expect("connect");
        support::text_rows(&mut c, "SHOW LOCKSTEP NODES").await
    })
}

#[test]
fn a_node_whose_binary_log_filters_databases_is_refused() {
    let filtered = ServerOptions {
        args: vec![
            "--log-bin=binlog".into(),
            "--server-id=1".into(),
            "--binlog-ignore-db=audit".into(),
        ],
    };
    let cluster = Cluster::start_with(1, &filtered);
    let (code, said) = serve_refused(&named(&cluster));
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("\"n0\"") && said.contains("binlog_ignore_db = 'audit'"),
        "the refusal names the node and the filter: {said}"
    );
}
