//! Accepts clients and runs one session task per connection; drains them
//! at shutdown. The application is assembled before, in `app`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opensrv_mysql::{
    plain_run_with_options, secure_run_with_options, AsyncMysqlIntermediary, IntermediaryOptions,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tracing::{debug, info, info_span, warn, Instrument};

use super::session::Session;
use super::tls::{self, TlsError};
use crate::config::Config;
use crate::shared::Shared;

/// How long a shutdown waits for writes in flight.
const DRAIN: Duration = Duration::from_secs(30);

pub struct Frontend {
    shared: Arc<Shared>,
    tls: Option<Arc<ServerConfig>>,
}

impl Frontend {
    /// The front door of an assembled lockstep (`app::assemble`): TLS
    /// when `tls_cert` and `tls_key` are set.
    pub fn new(shared: Arc<Shared>, config: &Config) -> Result<Frontend, TlsError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        Ok(Frontend { shared, tls })
    }

    /// Ends every session (an idle one at once, its open transaction rolled
    /// back with its connections; a busy one after its current command) and
    /// waits for the writes in flight to finish, so that none is cut between
    /// the master's commit and the synchronous slave's.
    async fn drain(&self) {
        self.shared.registry.kill_all();
        let gate = self.shared.chain.gate.close();
        match tokio::time::timeout(DRAIN, gate).await {
            Ok(_) => info!("writes in flight finished"),
            Err(_) => warn!(
                waited_s = DRAIN.as_secs(),
                "writes in flight did not finish; their commits are in doubt and resolved at the next start"
            ),
        }
    }

    /// What the admin endpoint reads.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Accepts clients until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => {
                    info!(sessions = self.shared.registry.len(), "shutting down: no new clients");
                    self.drain().await;
                    // No applier between a node's commit and its result:
                    // held until the process ends.
                    let _appliers = tokio::time::timeout(
                        DRAIN,
                        self.shared.chain.appliers.clone().write_owned(),
                    )
                    .await;
                    // What is queued for the journal (results, commit
                    // records) reaches the disk before the process ends.
                    let journal = self.shared.chain.journal.clone();
                    let _ = tokio::task::spawn_blocking(move || journal.close()).await;
                    info!("journal synced and closed");
                    return Ok(());
                }
            };
            let session = Session::new(self.shared.clone(), peer);
            let id = session.id();
            let tls = self.tls.clone();
            let task = tokio::spawn(
                run_session(session, stream, peer, tls)
                    .instrument(info_span!("session", conn_id = id, %peer)),
            );
            self.shared.registry.set_abort(id, task.abort_handle());
        }
    }
}

async fn run_session(
    mut session: Session,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let opts = IntermediaryOptions::default();
    let result = async {
        let (wants_tls, init) =
            AsyncMysqlIntermediary::init_before_ssl(&mut session, reader, &mut writer, &tls)
                .await?;
        match (wants_tls, tls) {
            (true, Some(tls)) => secure_run_with_options(session, writer, opts, tls, init).await,
            _ => plain_run_with_options(session, writer, opts, init).await,
        }
    }
    .await;
    match result {
        Ok(()) => debug!(%peer, "client disconnected"),
        Err(e) => info!(%peer, error = %e, "client connection ended"),
    }
}
