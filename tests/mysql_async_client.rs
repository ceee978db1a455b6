//! mysql_async as a client of lockstep: text and binary protocol, multiple
//! results, parameters of every type, large packets, and the session commands
//! lockstep must answer with its own connection ids.

mod support;

use std::time::{Duration, Instant};

use lockstep::mariadb::ServerOptions;
use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Column, Conn, Opts, OptsBuilder, Row, Value};
use support::{load_types_fixture, root_sql, runtime, Cluster, Lockstep};

fn setup() -> (Cluster, Lockstep) {
    let options = ServerOptions {
        args: vec!["--max-allowed-packet=64M".into()],
    };
    let cluster = Cluster::start_with(1, &options);
    let master = cluster.master();
    load_types_fixture(master);
    root_sql(
        master,
        "DELIMITER //
         CREATE PROCEDURE fx.two_sets() BEGIN SELECT 1 AS one; SELECT id, t_datetime6 FROM fx.types ORDER BY id; END//",
    );
    let lockstep = Lockstep::start(&cluster, "");
    (cluster, lockstep)
}

fn direct_opts(cluster: &Cluster) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(cluster.master().port)
        .user(Some("root"))
        .prefer_socket(false)
        .into()
}

fn via_opts(lockstep: &Lockstep) -> Opts {
    lockstep.client_opts().prefer_socket(false).into()
}

/// Everything a client can see of a column.
fn describe(c: &Column) -> String {
    format!(
        "{}.{}({}).{}({}) type={:?} flags={:?} charset={} len={} dec={}",
        c.schema_str(),
        c.table_str(),
        c.org_table_str(),
        c.name_str(),
        c.org_name_str(),
        c.column_type(),
        c.flags(),
        c.character_set(),
        c.column_length(),
        c.decimals()
    )
}

/// Each result set of a response: its columns, rows, and OK-packet numbers.
type Sets = Vec<(Vec<String>, Vec<Vec<Value>>, u64, Option<u64>, u16)>;

async fn collect_sets<P: mysql_async::prelude::Protocol + Unpin>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
) -> Sets {
    let mut sets = Vec::new();
    loop {
        let columns: Vec<String> = result.columns_ref().iter().map(describe).collect();
        let rows: Vec<Row> = result.collect().await.expect("rows");
        sets.push((
            columns,
            rows.into_iter().map(Row::unwrap).collect(),
            result.affected_rows(),
            result.last_insert_id(),
            result.warnings(),
        ));
        if result.is_empty() {
            return sets;
        }
    }
}

async fn text_sets(conn: &mut Conn, sql: &str) -> Sets {
    collect_sets(conn.query_iter(sql).await.expect(sql)).await
}

async fn binary_sets(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Sets {
    let stmt = conn.prep(sql).await.expect(sql);
    let sets = collect_sets(conn.exec_iter(&stmt, params).await.expect(sql)).await;
    conn.close(stmt).await.expect("close");
    sets
}

#[test]
fn results_are_identical_to_direct_in_both_protocols() {
    let (cluster, lockstep) = setup();
    runtime().block_on(async {
        let mut direct = Conn::new(direct_opts(&cluster)).await.expect("direct");
        let mut via = Conn::new(via_opts(&lockstep)).await.expect("lockstep");
        for conn in [&mut direct, &mut via] {
            conn.query_drop("USE fx").await.expect("use");
        }
        for sql in [
            "SELECT * FROM types ORDER BY id",
            "SELECT 1/0, CAST('12x' AS INT), NULL, 1.5e300, -0.0, 'x' = 'X'",
            "SELECT 1 AS a; SELECT * FROM types WHERE id = 3; DO 1; SELECT 2 AS b",
            "CALL two_sets()",
            "SET @v = 42; SELECT @v",
        ] {
            assert_eq!(
                text_sets(&mut via, sql).await,
                text_sets(&mut direct, sql).await,
                "text: {sql}"
            );
        }
        for (sql, params) in [
            (
                "SELECT * FROM types WHERE id >= ? ORDER BY id",
                vec![Value::Int(0)],
            ),
            (
                "SELECT t_bigint_u, t_time, t_datetime6, t_float FROM types WHERE id = ?",
                vec![Value::UInt(1)],
            ),
            ("CALL two_sets()", vec![]),
            (
                "SELECT ? AS p1, ? AS p2, ? AS p3",
                vec![
                    Value::NULL,
                    Value::Bytes(b"a\0b".to_vec()),
                    Value::Double(0.1),
                ],
            ),
        ] {
            assert_eq!(
                binary_sets(&mut via, sql, params.clone()).await,
                binary_sets(&mut direct, sql, params).await,
                "binary: {sql}"
            );
        }
        // The second and later executes of a statement send no types.
        let stmt = via
            .prep("SELECT t_varchar FROM types WHERE id = ?")
            .await
            .expect("prep");
        for id in [1u32, 2, 3, 1] {
            let v: Option<Option<String>> = via.exec_first(&stmt, (id,)).await.expect("exec");
            let d: Option<Option<String>> = direct
                .exec_first("SELECT t_varchar FROM types WHERE id = ?", (id,))
                .await
                .expect("exec");
            assert_eq!(v, d, "id {id}");
        }
    });
}

#[test]
fn parameters_of_every_type_round_trip() {
    let (cluster, lockstep) = setup();
    runtime().block_on(async {
        let mut via = Conn::new(via_opts(&lockstep)).await.expect("lockstep");
        via.query_drop("CREATE TABLE fx.p LIKE fx.types")
            .await
            .expect("create");
        let insert =
            "INSERT INTO fx.p (id, t_tinyint, t_bigint, t_bigint_u, t_decimal, t_float, t_double, \
                      t_date, t_datetime6, t_time6, t_varchar, t_longblob, t_json) \
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let rows: Vec<Vec<Value>> = vec![
            vec![
                Value::Int(1),
                Value::Int(-128),
                Value::Int(i64::MIN),
                Value::UInt(u64::MAX),
                Value::Bytes(b"-12345678901234567890.000000000000000000000000000001".to_vec()),
                Value::Float(3.25),
                Value::Double(-1.7976931348623157e308),
                Value::Date(2024, 2, 29, 0, 0, 0, 0),
                Value::Date(1999, 12, 31, 23, 59, 59, 999_999),
                Value::Time(true, 0, 0, 0, 1, 1),
                Value::Bytes("grüße 😀".as_bytes().to_vec()),
                Value::Bytes(blob.clone()),
                Value::Bytes(br#"{"a": [1, null]}"#.to_vec()),
            ],
            std::iter::once(Value::Int(2))
                .chain(std::iter::repeat_n(Value::NULL, 12))
                .collect(),
        ];
        let stmt = via.prep(insert).await.expect("prep");
        for row in &rows {
            via.exec_drop(&stmt, row.clone()).await.expect("insert");
        }
        let select =
            "SELECT id, t_tinyint, t_bigint, t_bigint_u, t_decimal, t_float, t_double, t_date, \
                      t_datetime6, t_time6, t_varchar, t_longblob, t_json FROM fx.p ORDER BY id";
        let mut direct = Conn::new(direct_opts(&cluster)).await.expect("direct");
        let stored: Vec<Row> = direct.exec(select, ()).await.expect("select");
        let first = stored[0].clone().unwrap();
        assert_eq!(first[1], Value::Int(-128));
        assert_eq!(first[2], Value::Int(i64::MIN));
        assert_eq!(first[3], Value::UInt(u64::MAX));
        assert_eq!(
            first[4],
            Value::Bytes(b"-12345678901234567890.000000000000000000000000000001".to_vec())
        );
        assert_eq!(first[5], Value::Float(3.25));
        assert_eq!(first[6], Value::Double(-1.7976931348623157e308));
        assert_eq!(first[7], Value::Date(2024, 2, 29, 0, 0, 0, 0));
        assert_eq!(first[8], Value::Date(1999, 12, 31, 23, 59, 59, 999_999));
        assert_eq!(first[9], Value::Time(true, 0, 0, 0, 1, 1));
        assert_eq!(first[10], Value::Bytes("grüße 😀".as_bytes().to_vec()));
        assert_eq!(first[11], Value::Bytes(blob));
        assert!(stored[1].clone().unwrap()[1..]
            .iter()
            .all(|v| *v == Value::NULL));
        // And through lockstep the binary rows read back the same.
        let read_back: Vec<Row> = via.exec(select, ()).await.expect("select via");
        assert_eq!(
            read_back.into_iter().map(Row::unwrap).collect::<Vec<_>>(),
            stored.into_iter().map(Row::unwrap).collect::<Vec<_>>()
        );
    });
}

#[test]
fn packets_over_16_mib_go_both_ways() {
    let (cluster, lockstep) = setup();
    runtime().block_on(async {
        let mut via = Conn::new(via_opts(&lockstep)).await.expect("lockstep");
        via.query_drop("CREATE TABLE fx.big (id INT PRIMARY KEY, b LONGBLOB)")
            .await
            .expect("create");
        let big: Vec<u8> = (0..20 * 1024 * 1024)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        // Binary protocol: a 20 MiB parameter (two client packets).
        via.exec_drop("INSERT INTO fx.big VALUES (1, ?)", (big.clone(),))
            .await
            .expect("insert ps");
        // Text protocol: a 40 MiB statement text (hex literal).
        let hex: String = big.iter().map(|b| format!("{b:02x}")).collect();
        via.query_drop(format!("INSERT INTO fx.big VALUES (2, x'{hex}')"))
            .await
            .expect("insert text");
        for id in [1, 2] {
            let got: Option<Vec<u8>> = via
                .query_first(format!("SELECT b FROM fx.big WHERE id = {id}"))
                .await
                .expect("select");
            assert!(got.as_deref() == Some(&big[..]), "text row {id} differs");
            let got: Option<Vec<u8>> = via
                .exec_first("SELECT b FROM fx.big WHERE id = ?", (id,))
                .await
                .expect("select ps");
            assert!(got.as_deref() == Some(&big[..]), "binary row {id} differs");
        }
        let _ = cluster;
    });
}

#[test]
fn connection_id_and_kill_use_lockstep_ids() {
    let (cluster, lockstep) = setup();
    runtime().block_on(async {
        let mut a = Conn::new(via_opts(&lockstep)).await.expect("a");
        let mut b = Conn::new(via_opts(&lockstep)).await.expect("b");
        // CONNECTION_ID() is the id of lockstep's handshake, not the master's thread id.
        let a_id: u32 = a
            .query_first("SELECT CONNECTION_ID()")
            .await
            .expect("id")
            .expect("row");
        assert_eq!(a_id, a.id());
        let named: Vec<Row> = a.query("SELECT CONNECTION_ID()").await.expect("id");
        assert_eq!(named[0].columns_ref()[0].name_str(), "CONNECTION_ID()");
        assert_ne!(a.id(), b.id());

        // KILL QUERY stops A's statement; A's connection stays usable.
        let started = Instant::now();
        let sleeper = tokio::spawn(async move {
            let r: mysql_async::Result<Option<i64>> = a.query_first("SELECT SLEEP(20)").await;
            (a, r)
        });
        // Wait until the master runs it: a KILL QUERY before that kills nothing.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let running: Option<i64> = b
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SELECT SLEEP(20)'",
                )
                .await
                .expect("processlist");
            if running == Some(1) {
                break;
            }
            assert!(Instant::now() < deadline, "SLEEP never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.query_drop(format!("KILL QUERY {a_id}"))
            .await
            .expect("kill query");
        let (mut a, result) = sleeper.await.expect("join");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "KILL QUERY did not stop SLEEP"
        );
        // MariaDB answers a killed SLEEP with 1 (or error 1317, depending on timing).
        match result {
            Ok(v) => assert_eq!(v, Some(1)),
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317),
            Err(e) => panic!("unexpected {e}"),
        }
        let one: Option<i64> = a.query_first("SELECT 1").await.expect("a still works");
        assert_eq!(one, Some(1));

        // An id lockstep does not know.
        match b.query_drop("KILL 999999").await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1094),
            other => panic!("expected 1094, got {other:?}"),
        }
        // KILL CONNECTION ends A.
        b.query_drop(format!("KILL CONNECTION {a_id}"))
            .await
            .expect("kill connection");
        assert!(
            a.query_drop("SELECT 1").await.is_err(),
            "A survived KILL CONNECTION"
        );
        let _ = cluster;
    });
}

#[test]
fn socket_preferring_clients_stay_on_lockstep() {
    let (_cluster, lockstep) = setup();
    runtime().block_on(async {
        // mysql_async's default asks @@socket and reconnects to it when the
        // server is local; lockstep answers NULL so it stays.
        let opts: Opts = lockstep.client_opts().prefer_socket(true).into();
        let mut conn = Conn::new(opts).await.expect("connect");
        let id: u32 = conn
            .query_first("SELECT CONNECTION_ID()")
            .await
            .expect("id")
            .expect("row");
        assert_eq!(id, conn.id(), "the client went around lockstep");
        let socket: Option<Option<String>> =
            conn.query_first("SELECT @@socket").await.expect("socket");
        assert_eq!(socket, Some(None));
    });
}

#[test]
fn reset_connection_and_change_user() {
    let (_cluster, lockstep) = setup();
    runtime().block_on(async {
        let mut conn = Conn::new(via_opts(&lockstep)).await.expect("connect");
        conn.query_drop("SET @x = 1").await.expect("set");
        conn.query_drop("CREATE TEMPORARY TABLE fx.tmp (a INT)")
            .await
            .expect("tmp");
        assert!(
            conn.reset().await.expect("reset"),
            "COM_RESET_CONNECTION supported"
        );
        let x: Option<Option<i64>> = conn.query_first("SELECT @x").await.expect("select");
        assert_eq!(x, Some(None), "user variable survived COM_RESET_CONNECTION");
        assert!(
            conn.query_drop("SELECT * FROM fx.tmp").await.is_err(),
            "temporary table survived"
        );

        conn.query_drop("SET @y = 2").await.expect("set");
        conn.change_user(ChangeUserOpts::default().with_db_name(Some("fx".into())))
            .await
            .expect("change user");
        let row: Option<(Option<String>, Option<i64>)> = conn
            .query_first("SELECT DATABASE(), @y")
            .await
            .expect("select");
        assert_eq!(row, Some((Some("fx".into()), None)));

        // A wrong password on COM_CHANGE_USER is refused and the connection closed.
        let bad = conn
            .change_user(ChangeUserOpts::default().with_pass(Some("wrong".into())))
            .await;
        match bad {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045),
            other => panic!("expected 1045, got {other:?}"),
        }
    });
}
