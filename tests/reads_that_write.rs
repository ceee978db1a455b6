//! Reads that write (issue "Let the server decide", first step): a SELECT
//! or DO whose stored function writes, `NEXTVAL` of a sequence, `VALUES
//! (f())`. The master runs every read outside a transaction read-only; one
//! that writes is refused there before its first row and takes the write
//! path. The client's answers equal MariaDB's directly, and every node holds
//! the rows the functions wrote.

mod support;

use std::time::Duration;

use support::{mariadb_cli, root_rows, wait_for_tail, Cluster, Lockstep, PASSWORD, USER};

// The function numbers its rows itself: one that makes AUTO_INCREMENT
// values is refused (tests/unrepeatable_bodies.rs).
const SCHEMA: &str = "CREATE DATABASE g;
CREATE TABLE g.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
CREATE SEQUENCE g.s;
CREATE TABLE g.src (n INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO g.src VALUES (1), (2);
DELIMITER //
CREATE FUNCTION g.f(x INT) RETURNS INT MODIFIES SQL DATA
BEGIN INSERT INTO g.t SELECT COALESCE(MAX(id), 0) + 1, x FROM g.t; RETURN x * 2; END//
DELIMITER ;
";

const STATEMENTS: &str = "SELECT g.f(5);
DO g.f(6);
SELECT NEXTVAL(g.s), NEXTVAL(g.s);
SELECT g.f(n) AS doubled FROM g.src ORDER BY n;
VALUES (g.f(7));
(SELECT g.f(8));
SELECT 1 + 1, COUNT(*) FROM g.t;
SELECT id, v FROM g.t ORDER BY id;
";

fn run(port: u16, user: &str, password: &str, sql: &str) -> String {
    let out = mariadb_cli(port, user, password, &["--batch", "--column-names"], sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `schema` then `statements`, directly on one server and through lockstep
/// in front of three nodes: the answers must be equal. Returns the three
/// nodes once the tail caught up.
fn answers_equal_directly_and_through(schema: &str, statements: &str) -> Cluster {
    let direct = Cluster::start(1);
    run(direct.nodes[0].port, "root", "", schema);
    let expected = run(direct.nodes[0].port, "root", "", statements);

    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    run(lockstep.port, USER, PASSWORD, schema);
    let through = run(lockstep.port, USER, PASSWORD, statements);
    assert_eq!(
        through, expected,
        "answers through lockstep differ from MariaDB's"
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    cluster
}

#[test]
fn reads_whose_functions_write_reach_every_node_with_mariadbs_answers() {
    let cluster = answers_equal_directly_and_through(SCHEMA, STATEMENTS);
    let master = root_rows(cluster.master(), "SELECT id, v FROM g.t ORDER BY id");
    assert_eq!(master.len(), 6, "{master:?}");
    // The sequence's next value, asked of each node (its table's cache
    // bookkeeping is each node's own: the value is taken once on B and set
    // on the others, `sql/sequences.rs`).
    let next = "SELECT NEXTVAL(g.s)";
    let sequence = root_rows(cluster.master(), next);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            root_rows(node, "SELECT id, v FROM g.t ORDER BY id"),
            master,
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, next),
            sequence,
            "the sequence on port {}",
            node.port
        );
    }
}

const VIEW: &str = "CREATE VIEW g.v AS SELECT g.f(n) AS w FROM g.src;";

/// The same reads inside client transactions (autocommit off, PyMySQL's
/// default, and BEGIN … COMMIT), through a view that calls the function,
/// and in a text of two statements: there the master cannot run them
/// read-only (MariaDB ignores a per-statement `tx_read_only` inside a
/// transaction), so lockstep recognises the stored functions and views it
/// knows of and sends those reads down the write path. Before, the rows the
/// functions wrote inside a transaction existed on the master alone.
#[test]
fn reads_whose_functions_write_inside_transactions_reach_every_node() {
    let statements = format!(
        "SET autocommit = 0;\n{STATEMENTS}SELECT w FROM g.v ORDER BY w;\nCOMMIT;\n\
         BEGIN;\nSELECT g.f(9); SELECT 1;\nSELECT * FROM g.v;\nCOMMIT;\n\
         SET autocommit = 1;\nSELECT g.f(10); SELECT 2;\nSELECT COUNT(*) FROM g.v;\n\
         SELECT id, v FROM g.t ORDER BY id;\n"
    );
    let schema = format!("{SCHEMA}{VIEW}\n");
    let cluster = answers_equal_directly_and_through(&schema, &statements);
    let master = root_rows(cluster.master(), "SELECT id, v FROM g.t ORDER BY id");
    assert_eq!(master.len(), 12, "{master:?}");
    for node in &cluster.nodes[1..] {
        assert_eq!(
            root_rows(node, "SELECT id, v FROM g.t ORDER BY id"),
            master,
            "port {}",
            node.port
        );
    }
}
