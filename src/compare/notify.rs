//! Notifications: what the compare module decided that someone must know
//! (a node quarantined, an entry that passed only after retries). Each event
//! is a structured log line, and a JSON POST to `[compare] notify_url` when
//! one is configured.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Something the compare module did that is worth telling.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A node re-ran an entry it had failed until it passed.
    PassedAfterRetry {
        request_id: String,
        node: String,
        attempts: usize,
    },
    /// A node gets no more traffic.
    NodeQuarantined { node: String, reason: String },
    /// A node caught up from the journal and took the synchronous role.
    NodeRejoined { node: String },
    /// The master died and `new` took its place.
    MasterReplaced { old: String, new: String },
}

/// Sends events; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    posts: Option<mpsc::UnboundedSender<String>>,
}

impl Notifier {
    /// Events go to the log, and to `url` when given (in order, by a task
    /// of their own, so a slow receiver never slows the write path).
    pub fn new(url: Option<String>) -> Notifier {
        let posts = url.map(|url| {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Some(body) = rx.recv().await {
                    post(&url, body).await;
                }
            });
            tx
        });
        Notifier { posts }
    }

    /// A notifier that only logs (tests, tools).
    pub fn log_only() -> Notifier {
        Notifier { posts: None }
    }

    pub fn notify(&self, event: Event) {
        let body = serde_json::to_string(&event).unwrap_or_default();
        info!(event = %body, "compare event");
        if let Some(posts) = &self.posts {
            let _ = posts.send(body);
        }
    }
}

/// POSTs one event, retrying a few times: a receiver that is down for long
/// misses events, which the log still has.
async fn post(url: &str, body: String) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=5 {
        let url_owned = url.to_string();
        let payload = body.clone();
        let sent = tokio::task::spawn_blocking(move || {
            ureq::post(&url_owned)
                .timeout(Duration::from_secs(5))
                .set("Content-Type", "application/json")
                .send_string(&payload)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        match sent {
            Ok(Ok(())) => return,
            Ok(Err(e)) => warn!(%url, attempt, error = %e, "notification not delivered"),
            Err(e) => warn!(%url, attempt, error = %e, "notification task failed"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}
