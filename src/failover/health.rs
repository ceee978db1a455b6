//! Health checks of the master and the synchronous slave: a ping every
//! `health_interval_ms` on a connection of lockstep's own, each bounded by
//! `health_timeout_ms`.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{info_span, warn, Instrument};

use super::fail_over;
use crate::backend::Node;
use crate::chain::handover;
use crate::shared::Shared;

/// Checks the master until lockstep stops; a master that fails a check is
/// replaced.
pub fn spawn(shared: Arc<Shared>) {
    tokio::spawn(monitor(shared).instrument(info_span!("health")));
}

async fn monitor(shared: Arc<Shared>) {
    let failover = &shared.failover;
    let mut master_conn: Option<(String, Conn)> = None;
    let mut sync_conn: Option<(String, Conn)> = None;
    loop {
        let _ = tokio::time::timeout(failover.interval, failover.wake.notified()).await;
        let master = shared.master_node();
        match check_on(&master, &mut master_conn, failover.timeout).await {
            Ok(()) => {}
            Err(reason) => {
                warn!(node = %master.name, %reason, "the master failed its health check");
                fail_over(shared.clone(), master.name.clone(), reason).await;
                continue;
            }
        }
        // A synchronous slave that hangs would hold up every write: it
        // leaves the role (and catches up once it answers again).
        if let Some(sync) = shared.sync_node() {
            if let Err(reason) = check_on(&sync, &mut sync_conn, failover.timeout).await {
                warn!(node = %sync.name, %reason, "the synchronous slave failed its health check");
                handover::sync_leaves(
                    &shared.chain,
                    &sync.name,
                    format!("health check: {reason}"),
                    true,
                );
            }
        }
    }
}

/// Pings `node` on the connection kept in `kept` (replaced when it is for
/// another node or broke).
async fn check_on(
    node: &Node,
    kept: &mut Option<(String, Conn)>,
    timeout: Duration,
) -> Result<(), String> {
    let conn = match kept.take() {
        Some((name, conn)) if name == node.name => Some(conn),
        _ => None,
    };
    let conn = ping(node, conn, timeout).await?;
    *kept = Some((node.name.clone(), conn));
    Ok(())
}

/// Pings `node` on `conn`; a broken connection is replaced once (it may
/// have been closed by the server's wait_timeout) before the node is
/// called down.
async fn ping(node: &Node, conn: Option<Conn>, timeout: Duration) -> Result<Conn, String> {
    if let Some(mut conn) = conn {
        if let Ok(Ok(())) = tokio::time::timeout(timeout, conn.ping()).await {
            return Ok(conn);
        }
    }
    let mut conn = connect(node, timeout).await?;
    match tokio::time::timeout(timeout, conn.query_drop("DO 1")).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn connect(node: &Node, timeout: Duration) -> Result<Conn, String> {
    match tokio::time::timeout(timeout, node.connect_admin()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {} ms", timeout.as_millis())),
    }
}

/// One check on a new connection.
pub async fn check(node: &Node, timeout: Duration) -> Result<(), String> {
    let conn = ping(node, None, timeout).await?;
    let _ = conn.disconnect().await;
    Ok(())
}
