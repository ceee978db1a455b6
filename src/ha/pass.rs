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
///
/// Clients passed to an instance that is no longer the active one are cut
/// off, when another becomes active and when this one takes over: their
/// sessions there are over (the new active fences the old one's node
/// connections), and an old active that is only paused would hold them
/// until it wakes. Cut off, a client reconnects and is served at once
/// (measured in `tests/ha.rs`: a 2 s pause of the active was a 2.6–2.9 s
/// write outage before, as every passed client waited for the sleeper).
pub async fn pass_clients(
    listener: TcpListener,
    active: watch::Receiver<Option<ActiveInstance>>,
    mut stop: oneshot::Receiver<()>,
) -> TcpListener {
    let mut relays = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => {
                relays.abort_all();
                return listener;
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => continue,
        };
        let Ok((client, peer)) = accepted else {
            continue;
        };
        let mut active = active.clone();
        relays.spawn(async move {
            let target = active_soon(&mut active).await;
            match target {
                Some(target) => {
                    debug!(%peer, active = %target.name, "passing a client to the active instance");
                    pass(client, &target, active).await;
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

/// Relays `client` to `target` until either side closes, or `target` is no
/// longer the active instance.
async fn pass(
    mut client: TcpStream,
    target: &ActiveInstance,
    mut active: watch::Receiver<Option<ActiveInstance>>,
) {
    let _ = client.set_nodelay(true);
    match TcpStream::connect(target.listen).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let replaced =
                active.wait_for(|now| now.as_ref().map(|a| &a.name) != Some(&target.name));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = replaced => {
                    debug!(old = %target.name, "the active instance changed: a passed client is cut off");
                }
            }
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
