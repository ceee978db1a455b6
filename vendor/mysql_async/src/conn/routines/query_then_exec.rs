//! lockstep patch 4: a text command and a prepared statement's execution
//! written back to back, then both answers read: one round trip.

use futures_core::future::BoxFuture;
use futures_util::FutureExt;
use mysql_common::{
    constants::Command, packets::ComStmtExecuteRequestBuilder, params::Params,
    proto::MySerialize,
};

use crate::{
    conn::MAX_STATEMENT_PARAMS, BinaryProtocol, Conn, DriverError, Error, ServerError, Statement,
    TextProtocol,
};

use super::Routine;

/// `COM_QUERY` then `COM_STMT_EXECUTE` without waiting in between. Its
/// value is the text's error, if any (the execution's answer then read and
/// dropped); otherwise the execution's result is pending on the connection.
#[derive(Debug, Clone)]
pub struct QueryThenExecRoutine<'a> {
    query: &'a [u8],
    stmt: &'a Statement,
    params: Params,
}

impl<'a> QueryThenExecRoutine<'a> {
    pub fn new(query: &'a [u8], stmt: &'a Statement, params: Params) -> Self {
        Self {
            query,
            stmt,
            params,
        }
    }
}

impl Routine<Option<ServerError>> for QueryThenExecRoutine<'_> {
    fn call<'a>(self, conn: &'a mut Conn) -> BoxFuture<'a, crate::Result<Option<ServerError>>>
    where
        Self: 'a,
    {
        let stmt = self.stmt;
        let params = self
            .params
            .into_values(Some(stmt.named_params.as_slice()).filter(|x| !x.is_empty()));
        let query = self.query;
        async move {
            let params = params?;
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
            let exec_len = exec.len();
            if conn.opts().compression().is_some() {
                // Compressed packets keep a second sequence: no pipelining.
                conn.write_command_data(Command::COM_QUERY, query).await?;
                let text = read_every_result(conn).await;
                if let Err(Error::Server(error)) = text {
                    return Ok(Some(error));
                }
                text?;
                if as_long_data {
                    conn.send_long_data(stmt.id(), params.iter()).await?;
                }
                conn.write_command_raw(exec).await?;
                conn.read_result_set::<BinaryProtocol>(true, Some(stmt))
                    .await?;
                return Ok(None);
            }
            // One write for both (lockstep patch 6): long data, if any,
            // sends the text with it.
            conn.write_command_data_buffered(Command::COM_QUERY, query)
                .await?;
            if as_long_data {
                conn.send_long_data(stmt.id(), params.iter()).await?;
            }
            conn.write_command_raw(exec).await?;
            // Written before the text's answer was read.
            conn.inner.commands_unanswered += 1;
            let text = read_every_result(conn).await;
            // The execution's answer is numbered as if read right after it
            // was written.
            conn.seq_id_after_command(exec_len)?;
            match text {
                Ok(()) => {
                    conn.read_result_set::<BinaryProtocol>(true, Some(stmt))
                        .await?;
                    Ok(None)
                }
                Err(Error::Server(error)) => {
                    match conn.read_result_set::<BinaryProtocol>(true, Some(stmt)).await {
                        Ok(()) => conn.drop_result().await.or_else(server_error_is_done)?,
                        Err(err) => server_error_is_done(err)?,
                    }
                    Ok(Some(error))
                }
                Err(fatal) => Err(fatal),
            }
        }
        .boxed()
    }
}

/// Every result of the text (it may hold several statements), dropped.
async fn read_every_result(conn: &mut Conn) -> crate::Result<()> {
    conn.read_result_set::<TextProtocol>(true, None).await?;
    conn.drop_result().await
}

/// The execution's own error, after the text failed, is dropped with it.
fn server_error_is_done(err: Error) -> crate::Result<()> {
    match err {
        Error::Server(_) => Ok(()),
        fatal => Err(fatal),
    }
}
