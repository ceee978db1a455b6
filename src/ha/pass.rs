//! A standby's MySQL listener: each client is passed, byte for byte, to
//! the active instance, so that clients may connect to any instance. With
//! no active instance known, the client gets a MySQL error packet instead
//! of a greeting (as a server refusing a connection sends), and may retry.

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tracing::{debug, info};

use super::coordinator::ActiveInstance;

/// MariaDB's ER_SERVER_SHUTDOWN: drivers take it for a connection they may
/// open again.
const NO_ACTIVE_CODE: u16 = 1053;

/// How long a client waits for an active instance to be known.
const WAIT_FOR_ACTIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// Passes the clients `listener` accepts to the active instance until
/// `stop` fires; then gives the listener back (the instance serves on it
/// once it is active).
pub async fn pass_clients(
    listener: TcpListener,
    active: watch::Receiver<Option<ActiveInstance>>,
    mut stop: oneshot::Receiver<()>,
) -> TcpListener {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => return listener,
        };
        let Ok((client, peer)) = accepted else {
            continue;
        };
        let mut active = active.clone();
        tokio::spawn(async move {
            let target = active_soon(&mut active).await;
            match target {
                Some(target) => {
                    debug!(%peer, active = %target.name, "passing a client to the active instance");
                    pass(client, &target).await;
                }
                None => refuse(client, "no lockstep instance is active yet: retry").await,
            }
        });
    }
}

/// The active instance; when none is known, waits for one a little (a
/// standby that just started has not asked etcd yet, and a takeover takes
/// about a lease).
async fn active_soon(
    active: &mut watch::Receiver<Option<ActiveInstance>>,
) -> Option<ActiveInstance> {
    let known = tokio::time::timeout(WAIT_FOR_ACTIVE, active.wait_for(Option::is_some)).await;
    match known {
        Ok(Ok(target)) => target.clone(),
        _ => None,
    }
}

async fn pass(mut client: TcpStream, target: &ActiveInstance) {
    let _ = client.set_nodelay(true);
    match TcpStream::connect(target.listen).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => {
            info!(active = %target.name, error = %e, "the active instance does not answer");
            refuse(
                client,
                "the active lockstep instance does not answer: retry",
            )
            .await;
        }
    }
}

/// An ERR packet in place of the server's greeting (sequence 0; before
/// the handshake it carries no SQLSTATE, as MariaDB's own).
async fn refuse(mut client: TcpStream, message: &str) {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&NO_ACTIVE_CODE.to_le_bytes());
    payload.extend_from_slice(message.as_bytes());
    let len = payload.len() as u32;
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&payload);
    let _ = client.write_all(&packet).await;
    let _ = client.shutdown().await;
}
