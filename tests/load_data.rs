//! `LOAD DATA LOCAL INFILE`: the file is on the client's machine. lockstep
//! asks the client for it, as MariaDB does, and gives the same bytes to B,
//! the master, the tail and every replay (the content is journaled).
//! `LOAD DATA INFILE` without LOCAL: the file is on the master's machine
//! (here in its data directory, where no other node has it); lockstep
//! reads it there and the others load the same bytes.
//!
//! Oracles: every answer through lockstep (affected rows, the OK packet's
//! info line, warnings, errors) equals MariaDB's for the same statements
//! run directly; every node's rows equal those direct rows; the journal
//! replayed onto a fresh server equals them too.

mod support;

use std::process::Output;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{runtime, Cluster, Lockstep};

const TABLES: [&str; 2] = ["ld.t", "ld.auto"];

const SETUP: &str = "CREATE DATABASE ld; \
     CREATE TABLE ld.t (id INT PRIMARY KEY, s VARCHAR(40), n INT) ENGINE=InnoDB; \
     CREATE TABLE ld.auto (id INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(40), n INT) ENGINE=InnoDB";

/// A field of a CSV line: plain, quoted with separators and quotes inside,
/// escaped, NULL, or not UTF-8 at all.
fn field(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..6) {
        0 => b"\\N".to_vec(),
        1 => format!("\"a,\"\"b\"\" {}\"", rng.gen_range(0..100)).into_bytes(),
        2 => b"tab\\there \\\\ back".to_vec(),
        3 => "caf\u{e9} \u{1f600}".as_bytes().to_vec(),
        4 => vec![b'x', 0xe9, b'y'],
        _ => format!("word{}", rng.gen_range(0..1000)).into_bytes(),
    }
}

/// A seeded CSV file: `rows` lines of `id,s,n`, ids from `ids`.
fn csv(rng: &mut StdRng, rows: usize, ids: std::ops::Range<i32>) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rows {
        out.extend(rng.gen_range(ids.clone()).to_string().as_bytes());
        out.push(b',');
        out.extend(field(rng));
        out.push(b',');
        if rng.gen_range(0..8) == 0 {
            out.extend(b"not a number");
        } else {
            out.extend(rng.gen_range(-50..50).to_string().as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// A seeded mix of loads: into a keyed table (plain, IGNORE, REPLACE,
/// IGNORE 1 LINES, SET from a column), into an AUTO_INCREMENT table
/// without ids, inside transactions that commit or roll back, and an
/// empty file.
fn statements(rng: &mut StdRng) -> Vec<(String, Vec<u8>)> {
    let fields = "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'";
    (0..24)
        .map(|i| {
            let rows = rng.gen_range(1..40);
            let file = csv(rng, rows, 0..60);
            let sql = match rng.gen_range(0..8) {
                0 => format!("LOAD DATA LOCAL INFILE 'f{i}.csv' INTO TABLE ld.t {fields}"),
                1 => format!("LOAD DATA LOCAL INFILE 'f{i}.csv' IGNORE INTO TABLE ld.t {fields}"),
                2 => format!("LOAD DATA LOCAL INFILE 'f{i}.csv' REPLACE INTO TABLE ld.t {fields}"),
                3 => format!(
                    "LOAD DATA LOCAL INFILE 'f{i}.csv' REPLACE INTO TABLE ld.t {fields} \
                     IGNORE 1 LINES (id, s, @n) SET n = CHAR_LENGTH(@n)"
                ),
                4 => format!(
                    "LOAD DATA LOCAL INFILE 'f{i}.csv' INTO TABLE ld.auto {fields} (@id, s, n)"
                ),
                5 => format!("BEGIN; LOAD DATA LOCAL INFILE 'f{i}.csv' IGNORE INTO TABLE ld.t {fields}; COMMIT"),
                6 => format!("BEGIN; LOAD DATA LOCAL INFILE 'f{i}.csv' INTO TABLE ld.auto {fields} (@id, s, n); ROLLBACK"),
                _ => {
                    return (
                        format!("LOAD DATA LOCAL INFILE 'empty{i}.csv' INTO TABLE ld.t {fields}"),
                        Vec::new(),
                    )
                }
            };
            (sql, file)
        })
        .collect()
}

/// Runs every statement (a `BEGIN; …; COMMIT` text one by one), answering
/// each file request with the statement's file; the answers, in order.
async fn answers(opts: mysql_async::Opts, statements: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut c = Conn::new(opts).await.expect("connect");
    c.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("sql_mode");
    let mut answers = Vec::new();
    for (text, file) in statements {
        for sql in text.split("; ") {
            let content = bytes::Bytes::from(file.clone());
            c.set_infile_handler(async move {
                use futures_util::StreamExt;
                Ok(futures_util::stream::once(async move { Ok(content) }).boxed())
            });
            answers.push(answer_of(&mut c, sql).await);
        }
    }
    answers
}

/// Three nodes behind lockstep and one server of its own, each given
/// `setup` (through lockstep, and directly).
fn three_nodes_and_direct(setup: &str) -> (Cluster, Lockstep, Cluster) {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let direct = Cluster::start(1);
    support::lockstep_sql(&lockstep, setup);
    support::root_sql(&direct.nodes[0], setup);
    (cluster, lockstep, direct)
}

/// Runs `sql`; its answer as MariaDB gave it: affected rows, the info
/// line, warnings or the error, then SHOW WARNINGS and LAST_INSERT_ID().
async fn answer_of(c: &mut Conn, sql: &str) -> String {
    let answer = match c.query_drop(sql).await {
        Ok(()) => format!(
            "ok {} rows, {:?}, {} warnings",
            c.affected_rows(),
            c.info(),
            c.get_warnings()
        ),
        Err(e) => format!("error {:?}: {e}", support::server_code(&e)),
    };
    let warnings: Vec<(String, u16, String)> = c.query("SHOW WARNINGS").await.expect("warnings");
    let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
    format!("{sql}: {answer} {warnings:?}, LAST_INSERT_ID() {id:?}")
}

#[test]
fn client_files_load_alike_on_every_node_and_in_the_journal() {
    let seed = support::seed();
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    let statements = statements(&mut StdRng::seed_from_u64(seed));
    let (cluster, lockstep, direct) = three_nodes_and_direct(SETUP);
    let rt = runtime();
    let through = rt.block_on(answers(lockstep.client_opts().into(), &statements));
    let direct_opts = mysql_async::Opts::from_url(&direct.nodes[0].url()).expect("url");
    let directly = rt.block_on(answers(direct_opts, &statements));
    support::assert_same_as_direct(
        seed,
        (&through, &directly),
        &cluster,
        &lockstep,
        &direct.nodes[0],
        &TABLES,
    );
    let loaded = support::root_rows(cluster.master(), "SELECT COUNT(*) FROM ld.t");
    println!(
        "seed {seed}: {} loads, {loaded:?} rows, the same answers and rows everywhere",
        statements.len()
    );
}

/// The `mariadb` client, as a user runs it: with `--local-infile` the file
/// loads (its answer as direct); without, MariaDB's 4166; a file the
/// client cannot read, the client's own error; a text of several
/// statements with a load in it is refused (1235) and loads nothing.
#[test]
fn the_mariadb_client_loads_its_file_as_directly() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let direct = Cluster::start(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, "1,one\n2,two\n3,\\N\n").expect("write");
    let file = file.to_str().expect("utf-8 path");
    let missing = dir.path().join("missing.csv");
    let missing = missing.to_str().expect("utf-8 path");
    let setup = "CREATE DATABASE cli; CREATE TABLE cli.t (id INT PRIMARY KEY, s CHAR(5))";
    support::lockstep_sql(&lockstep, setup);
    support::root_sql(&direct.nodes[0], setup);
    let load = format!("LOAD DATA LOCAL INFILE '{file}' INTO TABLE cli.t FIELDS TERMINATED BY ','");
    let run = |port: u16, user: &str, password: &str, args: &[&str], sql: &str| -> String {
        let out: Output = support::mariadb_cli(port, user, password, args, sql);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let direct_port = direct.nodes[0].port;
    for (args, sql) in [
        (&["--local-infile=0"][..], load.clone()),
        (
            &["--local-infile=1", "--table"][..],
            format!("{load}; SHOW WARNINGS"),
        ),
        (
            &["--local-infile=1"][..],
            format!("LOAD DATA LOCAL INFILE '{missing}' INTO TABLE cli.t"),
        ),
    ] {
        let through = run(lockstep.port, "app", "secret", args, &sql);
        let directly = run(direct_port, "root", "", args, &sql);
        assert_eq!(through, directly, "{args:?} {sql}");
    }
    let several = run(
        lockstep.port,
        "app",
        "secret",
        &["--local-infile=1", "--delimiter=//"],
        &format!("SELECT 1; {load}//"),
    );
    assert!(several.contains("ERROR 1235"), "{several}");
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    let rows = support::root_rows(&direct.nodes[0], "SELECT * FROM cli.t ORDER BY id");
    assert_eq!(rows.len(), 3);
    for node in &cluster.nodes {
        assert_eq!(
            support::root_rows(node, "SELECT * FROM cli.t ORDER BY id"),
            rows,
            "port {}",
            node.port
        );
    }
}

/// A file larger than lockstep journals is read to its end (the client
/// sends it all) and refused with 1235; the session goes on and no node
/// has a row of it.
#[test]
fn a_file_over_the_limit_is_refused_and_the_session_goes_on() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SETUP);
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let line = b"1,a,1\n";
        // 65 chunks of 1 MiB (a client sends a file in packets).
        let chunk: bytes::Bytes = line.repeat((1 << 20) / line.len()).into();
        let chunks = vec![chunk; 65];
        c.set_infile_handler(async move {
            use futures_util::StreamExt;
            Ok(futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed())
        });
        let err = c
            .query_drop("LOAD DATA LOCAL INFILE 'big.csv' INTO TABLE ld.t FIELDS TERMINATED BY ','")
            .await
            .expect_err("over the limit");
        assert_eq!(support::server_code(&err), Some(1235), "{err}");
        let one: Option<u32> = c
            .query_first("SELECT 1")
            .await
            .expect("the session goes on");
        assert_eq!(one, Some(1));
    });
    for node in &cluster.nodes {
        assert_eq!(support::root_rows(node, "SELECT COUNT(*) FROM ld.t"), ["0"]);
    }
}

/// A seeded mix of server-side loads of files in the master's data
/// directory (`ld/` there, where a bare name is looked for): plain (a
/// duplicate key fails the load, as it does not with LOCAL), IGNORE,
/// REPLACE, into an AUTO_INCREMENT table, inside transactions, a missing
/// file, a name with a directory; each file is the statement's or `None`
/// (missing). Between them, `SELECT … INTO OUTFILE` of the table, loaded
/// back into a copy: the file exists on the master only.
fn server_statements(rng: &mut StdRng) -> Vec<(String, Option<Vec<u8>>)> {
    let fields = "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'";
    let mut out = Vec::new();
    for i in 0..24 {
        let rows = rng.gen_range(1..30);
        let file = Some(csv(rng, rows, 0..60));
        let (sql, file) = match rng.gen_range(0..9) {
            0 => (format!("LOAD DATA INFILE 's{i}.csv' INTO TABLE ld.t {fields}"), file),
            1 => (format!("LOAD DATA INFILE 's{i}.csv' IGNORE INTO TABLE ld.t {fields}"), file),
            2 => (format!("LOAD DATA CONCURRENT INFILE 's{i}.csv' REPLACE INTO TABLE ld.t {fields}"), file),
            3 => (format!("LOAD DATA INFILE 's{i}.csv' INTO TABLE ld.auto {fields} (@id, s, n)"), file),
            4 => (format!("BEGIN; LOAD DATA INFILE 's{i}.csv' IGNORE INTO TABLE ld.t {fields}; COMMIT"), file),
            5 => (format!("BEGIN; LOAD DATA INFILE 's{i}.csv' INTO TABLE ld.auto {fields} (@id, s, n); ROLLBACK"), file),
            6 => (format!("LOAD DATA INFILE 'missing{i}.csv' INTO TABLE ld.t {fields}"), None),
            7 => (format!("LOAD DATA INFILE 'ld/s{i}.csv' IGNORE INTO TABLE ld.t {fields}"), file),
            _ => (
                format!(
                    "SELECT * FROM ld.t ORDER BY id INTO OUTFILE 'out{i}.csv' {fields}; \
                     LOAD DATA INFILE 'out{i}.csv' REPLACE INTO TABLE ld.copy {fields}"
                ),
                None,
            ),
        };
        out.push((sql, file));
    }
    out
}

/// Puts each statement's file where a load of its bare name looks for it
/// on the server whose data directory is `datadir`: `datadir/ld/`.
fn place_server_files(datadir: &std::path::Path, statements: &[(String, Option<Vec<u8>>)]) {
    for (i, (_, file)) in statements.iter().enumerate() {
        if let Some(content) = file {
            std::fs::write(datadir.join("ld").join(format!("s{i}.csv")), content).expect("file");
        }
    }
}

/// Runs every statement (a text of several one by one); the answers, in
/// order, with the server's data directory written `<datadir>`.
async fn server_answers(opts: mysql_async::Opts, statements: &[String]) -> Vec<String> {
    let mut c = Conn::new(opts).await.expect("connect");
    c.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("sql_mode");
    // `INTO OUTFILE` writes a bare name in the session's database.
    c.query_drop("USE ld").await.expect("use");
    let datadir: Option<String> = c.query_first("SELECT @@datadir").await.expect("datadir");
    let datadir = datadir.expect("a data directory");
    let mut answers = Vec::new();
    for text in statements {
        for sql in text.split("; ") {
            let answer = answer_of(&mut c, sql).await;
            answers.push(answer.replace(&datadir, "<datadir>/"));
        }
    }
    answers
}

#[test]
fn server_files_load_alike_on_every_node_and_in_the_journal() {
    let seed = support::seed();
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    let statements = server_statements(&mut StdRng::seed_from_u64(seed));
    let setup = format!("{SETUP}; CREATE TABLE ld.copy LIKE ld.t");
    let (cluster, lockstep, direct) = three_nodes_and_direct(&setup);
    place_server_files(&cluster.master().dir.join("data"), &statements);
    place_server_files(&direct.nodes[0].dir.join("data"), &statements);
    let texts: Vec<String> = statements.iter().map(|(sql, _)| sql.clone()).collect();
    let rt = runtime();
    let through = rt.block_on(server_answers(lockstep.client_opts().into(), &texts));
    let direct_opts = mysql_async::Opts::from_url(&direct.nodes[0].url()).expect("url");
    let directly = rt.block_on(server_answers(direct_opts, &texts));
    let mut tables = TABLES.to_vec();
    tables.push("ld.copy");
    support::assert_same_as_direct(
        seed,
        (&through, &directly),
        &cluster,
        &lockstep,
        &direct.nodes[0],
        &tables,
    );
    let failed = through.iter().filter(|a| a.contains(": error ")).count();
    println!(
        "seed {seed}: {} server-side loads ({failed} refused as directly), the same answers and rows everywhere",
        through.len()
    );
}
