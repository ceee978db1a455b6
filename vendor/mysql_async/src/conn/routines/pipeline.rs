//! lockstep patch 5: several commands written back to back, their answers
//! read afterwards in order: one round trip for all of them.

use std::collections::VecDeque;

use futures_core::future::BoxFuture;
use futures_util::FutureExt;
use mysql_common::{constants::Command, packets::ComStmtExecuteRequestBuilder, proto::MySerialize};

use crate::{conn::MAX_STATEMENT_PARAMS, Conn, DriverError, Params, Statement};

use super::Routine;

/// One command of a pipeline.
#[derive(Debug, Clone)]
pub enum PipelinedCommand<'a> {
    /// A `COM_QUERY` with this text.
    Query(&'a [u8]),
    /// A `COM_STMT_EXECUTE` of a statement prepared on this connection
    /// (its long data, if any, written just before it).
    Exec(&'a Statement, Params),
}

/// The answers a written pipeline still owes, in the order of its
/// commands: the length of each command, which numbers its answer's
/// packets (`Stream::seq_id_after_command`).
#[derive(Debug, Default)]
pub struct Pipeline {
    owed: VecDeque<usize>,
}

impl Pipeline {
    /// How many answers are still to be read.
    pub fn owed(&self) -> usize {
        self.owed.len()
    }
}

/// Writes every command without reading anything in between.
pub struct WritePipelineRoutine<'a> {
    commands: Vec<PipelinedCommand<'a>>,
}

impl<'a> WritePipelineRoutine<'a> {
    pub fn new(commands: Vec<PipelinedCommand<'a>>) -> Self {
        Self { commands }
    }
}

impl Routine<Pipeline> for WritePipelineRoutine<'_> {
    fn call<'a>(self, conn: &'a mut Conn) -> BoxFuture<'a, crate::Result<Pipeline>>
    where
        Self: 'a,
    {
        async move {
            if conn.opts().compression().is_some() {
                // Compressed packets keep a second sequence that this
                // patch does not rewind.
                Err(DriverError::Pipeline {
                    what: "not on a compressed connection",
                })?
            }
            let mut pipeline = Pipeline::default();
            let count = self.commands.len();
            for command in self.commands {
                // Buffered, then sent in one write (lockstep patch 6).
                let written = match command {
                    PipelinedCommand::Query(text) => conn
                        .write_command_data_buffered(Command::COM_QUERY, text)
                        .await
                        .map(|()| 1 + text.len()),
                    PipelinedCommand::Exec(stmt, params) => write_exec(conn, stmt, params).await,
                };
                match written {
                    Ok(len) => pipeline.owed.push_back(len),
                    Err(err) => {
                        // Some commands may wait unsent in the buffer: none
                        // may leave later, out of turn.
                        conn.abandon_written();
                        return Err(err);
                    }
                }
            }
            conn.flush_written().await?;
            // One wait for all of them.
            conn.inner.commands_unanswered += count.saturating_sub(1) as u64;
            Ok(pipeline)
        }
        .boxed()
    }
}

/// Writes one execution (and its long data); returns its length.
async fn write_exec(conn: &mut Conn, stmt: &Statement, params: Params) -> crate::Result<usize> {
    let params =
        params.into_values(Some(stmt.named_params.as_slice()).filter(|x| !x.is_empty()))?;
    if params.len() > MAX_STATEMENT_PARAMS {
        Err(DriverError::StmtParamsNumberExceedsLimit {
            supplied: params.len(),
        })?
    }
    if stmt.num_params() as usize != params.len() {
        Err(DriverError::StmtParamsMismatch {
            required: stmt.num_params(),
            supplied: params.len(),
        })?
    }
    let (body, as_long_data) = ComStmtExecuteRequestBuilder::new(stmt.id()).build(&params);
    let mut exec = crate::buffer_pool().get();
    body.serialize(exec.as_mut());
    let len = exec.len();
    if as_long_data {
        conn.send_long_data(stmt.id(), params.iter()).await?;
    }
    conn.write_command_raw_buffered(exec).await?;
    Ok(len)
}

/// Reads the header of the next answer a pipeline owes; its rows (if
/// any) are then pending on the connection as a `QueryResult`'s.
pub struct NextAnswerRoutine<'a, 's> {
    pipeline: &'a mut Pipeline,
    stmt: Option<&'s Statement>,
}

impl<'a, 's> NextAnswerRoutine<'a, 's> {
    pub fn new(pipeline: &'a mut Pipeline, stmt: Option<&'s Statement>) -> Self {
        Self { pipeline, stmt }
    }
}

impl Routine<()> for NextAnswerRoutine<'_, '_> {
    fn call<'a>(self, conn: &'a mut Conn) -> BoxFuture<'a, crate::Result<()>>
    where
        Self: 'a,
    {
        async move {
            let Some(len) = self.pipeline.owed.pop_front() else {
                Err(DriverError::Pipeline {
                    what: "no answer is owed",
                })?
            };
            // The previous answer's rows, if its reader left any.
            conn.drop_result().await?;
            // Numbered as if read right after its command was written.
            conn.seq_id_after_command(len)?;
            match self.stmt {
                Some(stmt) => {
                    conn.read_result_set::<crate::BinaryProtocol>(true, Some(stmt))
                        .await
                }
                None => conn.read_result_set::<crate::TextProtocol>(true, None).await,
            }
        }
        .boxed()
    }
}
