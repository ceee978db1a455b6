//! The vendored mysql_async's patches 4 (`Conn::exec_iter_after_query`) and 5
//! (`Conn::write_pipeline`),
//! against a real MariaDB: lockstep writes its pinning text and a prepared
//! statement's execution back to back and reads both answers, one round
//! trip. The execution's answer arrives whole after a text of several
//! statements; a failed text is reported as such, the execution still ran
//! (which is why lockstep then drops the connection), and the connection
//! stays usable; the round trips are counted as one.

mod support;

use mysql_async::prelude::Queryable;
use mysql_async::{AfterQuery, Conn, Params, PipelinedCommand, Row, Statement};
use support::{runtime, Cluster};

#[test]
fn a_text_and_an_execution_written_back_to_back() {
    let cluster = Cluster::start(1);
    let opts = mysql_async::Opts::from_url(&cluster.master().url()).expect("url");
    runtime().block_on(async {
        let mut c = Conn::new(opts).await.expect("connect");
        c.query_drop("CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY, v VARCHAR(20))")
            .await
            .expect("schema");
        let insert = c.prep("INSERT INTO p.t VALUES (?, ?)").await.expect("prep");
        let select = c
            .prep("SELECT id, v, @pinned FROM p.t WHERE id <= ? ORDER BY id")
            .await
            .expect("prep");

        // A text of three statements, then an insert: one round trip,
        // one write (patch 6; two without it).
        let trips = c.round_trips();
        let sent = c.commands_sent();
        let flushed = c.flushed_writes();
        match c
            .exec_iter_after_query(
                b"BEGIN; SET @pinned = 'yes'; DO 1",
                &insert,
                Params::Positional(vec![1.into(), "one".into()]),
            )
            .await
            .expect("pipelined")
        {
            AfterQuery::Ran(result) => {
                result.drop_result().await.expect("insert's answer");
            }
            AfterQuery::QueryFailed(e) => panic!("the text failed: {e}"),
        }
        assert_eq!(c.affected_rows(), 1);
        assert_eq!((c.round_trips() - trips, c.commands_sent() - sent), (1, 2));
        assert_eq!(
            c.flushed_writes() - flushed,
            1,
            "text and execution in one write"
        );

        // Rows after the text: the variable it set is seen, every row read.
        let rows: Vec<Row> = match c
            .exec_iter_after_query(
                b"SET @pinned = 'again'",
                &select,
                Params::Positional(vec![10.into()]),
            )
            .await
            .expect("pipelined")
        {
            AfterQuery::Ran(mut result) => result.collect().await.expect("rows"),
            AfterQuery::QueryFailed(e) => panic!("the text failed: {e}"),
        };
        let rows: Vec<(i32, String, String)> =
            rows.into_iter().map(mysql_async::from_row).collect();
        assert_eq!(rows, [(1, "one".to_string(), "again".to_string())]);

        // The text's second statement fails: its error comes back, the
        // execution ran anyway, and the connection goes on.
        let code = text_failure(
            &mut c,
            b"SET @x = 1; SELECT no_such_column FROM p.t",
            &insert,
            2,
            "two",
        )
        .await;
        assert_eq!(code, 1054);
        // The execution's own failure after a failed text is dropped with it.
        let code = text_failure(
            &mut c,
            b"SELECT no_such_column FROM p.t",
            &insert,
            2,
            "duplicate",
        )
        .await;
        assert_eq!(code, 1054);
        // An execution that fails after a text that passed: its error.
        let duplicate = match c
            .exec_iter_after_query(
                b"DO 1",
                &insert,
                Params::Positional(vec![1.into(), "again".into()]),
            )
            .await
        {
            Err(mysql_async::Error::Server(e)) => e.code,
            Ok(_) => panic!("a duplicate key should fail"),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(duplicate, 1062);
        c.query_drop("COMMIT").await.expect("commit");
        let all: Vec<(i32, String)> = c
            .query("SELECT id, v FROM p.t ORDER BY id")
            .await
            .expect("in sync");
        assert_eq!(all, [(1, "one".to_string()), (2, "two".to_string())]);
        c.disconnect().await.expect("disconnect");
    });
}

/// The code of the error of `text`, written ahead of `insert (id, v)`,
/// which must fail.
async fn text_failure(c: &mut Conn, text: &[u8], insert: &Statement, id: i32, v: &str) -> u16 {
    let params = Params::Positional(vec![id.into(), v.into()]);
    match c
        .exec_iter_after_query(text, insert, params)
        .await
        .expect("pipelined")
    {
        AfterQuery::QueryFailed(e) => e.code,
        AfterQuery::Ran(_) => panic!("the text should have failed"),
    }
}

/// Patch 5 (`Conn::write_pipeline`): texts and executions written back to
/// back, one round trip; each answer read in order is its own command's
/// (rows, affected rows, errors); a command that fails does not stop the
/// ones behind it, and the connection stays in step afterwards.
#[test]
fn a_pipeline_of_texts_and_executions() {
    let cluster = Cluster::start(1);
    let opts = mysql_async::Opts::from_url(&cluster.master().url()).expect("url");
    runtime().block_on(async {
        let mut c = Conn::new(opts).await.expect("connect");
        c.query_drop("CREATE DATABASE q; CREATE TABLE q.t (id INT PRIMARY KEY, v INT)")
            .await
            .expect("schema");
        let insert = c.prep("INSERT INTO q.t VALUES (?, ?)").await.expect("prep");
        let trips = c.round_trips();
        let sent = c.commands_sent();
        let flushed = c.flushed_writes();
        let mut pipeline = c
            .write_pipeline(vec![
                PipelinedCommand::Query(b"SET @p = 7; INSERT INTO q.t VALUES (1, @p)"),
                PipelinedCommand::Exec(&insert, Params::Positional(vec![2.into(), 20.into()])),
                // Fails: the ones behind it still run.
                PipelinedCommand::Exec(&insert, Params::Positional(vec![1.into(), 99.into()])),
                PipelinedCommand::Query(b"UPDATE q.t SET v = v + 1"),
                PipelinedCommand::Query(b"SELECT id, v FROM q.t ORDER BY id"),
            ])
            .await
            .expect("written");
        assert_eq!(pipeline.owed(), 5);
        // Five commands, one write (patch 6; five without it).
        assert_eq!(c.flushed_writes() - flushed, 1, "the pipeline in one write");

        c.next_text_answer(&mut pipeline)
            .await
            .expect("first text")
            .drop_result()
            .await
            .expect("its results");
        assert_eq!(c.affected_rows(), 1);
        c.next_exec_answer(&mut pipeline, &insert)
            .await
            .expect("first execution")
            .drop_result()
            .await
            .expect("its answer");
        assert_eq!(c.affected_rows(), 1);
        match c.next_exec_answer(&mut pipeline, &insert).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1062),
            Ok(_) => panic!("the duplicate key was taken"),
            Err(e) => panic!("not the server's error: {e}"),
        }
        c.next_text_answer(&mut pipeline)
            .await
            .expect("update")
            .drop_result()
            .await
            .expect("its answer");
        assert_eq!(c.affected_rows(), 2);
        let rows: Vec<(i32, i32)> = c
            .next_text_answer(&mut pipeline)
            .await
            .expect("select")
            .collect()
            .await
            .expect("rows");
        assert_eq!(rows, [(1, 8), (2, 21)]);
        assert_eq!(pipeline.owed(), 0);
        assert_eq!((c.round_trips() - trips, c.commands_sent() - sent), (1, 5));

        // Nothing owed any more: asking is an error, not a hang.
        assert!(c.next_text_answer(&mut pipeline).await.is_err());
        // In step: the next statement gets its own answer.
        let n: Option<i64> = c
            .query_first("SELECT COUNT(*) FROM q.t")
            .await
            .expect("count");
        assert_eq!(n, Some(2));
    });
}

/// A pipeline that cannot be written whole (an execution given the wrong
/// number of parameters, found after the commands before it were
/// buffered) sends nothing: the connection is given up rather than send
/// the buffered commands later, out of turn, with another command's write.
#[test]
fn a_pipeline_refused_half_way_sends_none_of_it() {
    let cluster = Cluster::start(1);
    let opts = mysql_async::Opts::from_url(&cluster.master().url()).expect("url");
    runtime().block_on(async {
        let mut c = Conn::new(opts.clone()).await.expect("connect");
        c.query_drop("CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY)")
            .await
            .expect("schema");
        let insert = c.prep("INSERT INTO r.t VALUES (?)").await.expect("prep");
        let written = c
            .write_pipeline(vec![
                PipelinedCommand::Query(b"INSERT INTO r.t VALUES (1)"),
                PipelinedCommand::Exec(&insert, Params::Positional(vec![2.into()])),
                PipelinedCommand::Exec(&insert, Params::Positional(vec![3.into(), 4.into()])),
            ])
            .await;
        assert!(written.is_err(), "the mismatched execution is refused");
        assert!(
            c.query_drop("INSERT INTO r.t VALUES (5)").await.is_err(),
            "the connection is given up"
        );
        let mut other = Conn::new(opts).await.expect("connect again");
        let rows: Vec<i32> = other.query("SELECT id FROM r.t").await.expect("rows");
        assert!(rows.is_empty(), "nothing of the pipeline ran: {rows:?}");
    });
}
