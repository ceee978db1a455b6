//! The etcd members, one client each, and the one requests go to now.
//!
//! etcd-client's own client over several endpoints (a balanced channel)
//! kept sending requests to a member that was stopped, failing heartbeats
//! and lease renewals for seconds until the active lost its lease, with the
//! two other members up (`tests/ha.rs`, a three-member etcd with each
//! member stopped in turn, failed in CI twice). Here a request that fails
//! or times out moves the next request to the next member: one member down
//! costs one failed request, not the lease.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use etcd_client::{Client, ConnectOptions};

#[derive(Clone)]
pub struct Members {
    clients: Arc<Vec<Client>>,
    current: Arc<AtomicUsize>,
}

impl Members {
    /// A client per endpoint; none connects before its first request.
    pub async fn connect(
        endpoints: &[String],
        options: ConnectOptions,
    ) -> Result<Members, etcd_client::Error> {
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            clients.push(Client::connect([endpoint], Some(options.clone())).await?);
        }
        if clients.is_empty() {
            return Err(etcd_client::Error::InvalidArgs("no etcd endpoint".into()));
        }
        Ok(Members {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The member requests go to now: its place and its client.
    pub fn pick(&self) -> (usize, Client) {
        let place = self.current.load(Ordering::Relaxed) % self.clients.len();
        (place, self.clients[place].clone())
    }

    /// The member at `place` failed a request: the next ones go to the
    /// next member (unless another failure moved them already).
    pub fn failed(&self, place: usize) {
        let next = (place + 1) % self.clients.len();
        let _ = self
            .current
            .compare_exchange(place, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs `request` on the current member; when it fails, the next
    /// request goes to the next member.
    pub async fn call<T, F, Fut>(&self, request: F) -> Result<T, etcd_client::Error>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let (place, client) = self.pick();
        let answer = request(client).await;
        if answer.is_err() {
            self.failed(place);
        }
        answer
    }
}
