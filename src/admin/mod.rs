//! The admin endpoint (`admin_listen`, HTTP): `GET /metrics` in the
//! Prometheus text format, `GET /status` as JSON, `GET /check` (what
//! `lockstep check` asks a running lockstep). Bound to 127.0.0.1 by
//! default: it has no authentication.

mod check;
mod journal;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::shared::Shared;

/// Binds `addr` (an error here stops lockstep from starting, as for the
/// client port) and serves the endpoint until lockstep stops.
pub async fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(status::metrics))
        .route("/status", get(status::status))
        .route("/check", get(check::check))
        .route("/journal/stats", get(journal::stats))
        .route("/journal/show/{id}", get(journal::show))
        .route("/journal/list", get(journal::list))
        .route("/journal/export", get(journal::export))
        .with_state(shared);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the admin endpoint stopped");
        }
    });
    info!(addr = %bound, "admin endpoint listening (/metrics, /status)");
    Ok(bound)
}

/// What a standby instance (`[ha]`) shows at `/status`, asked at each call.
pub type StandbyView = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What a standby answers where only the active instance can.
fn standby_refusal(view: &serde_json::Value) -> String {
    match view["active_instance"].as_str() {
        Some(active) => format!(
            "this lockstep instance is a standby: ask the active instance ({active}) at its admin address"
        ),
        None => "this lockstep instance is a standby, and no instance is active now".to_string(),
    }
}

/// A standby's admin endpoint: `GET /status` only (it has no nodes nor
/// journal of its own to show). Stopped through the returned sender, and
/// gone (its port free again) once the returned task ends: the instance
/// binds the full endpoint there when it becomes active.
pub async fn start_standby(
    addr: SocketAddr,
    view: StandbyView,
) -> std::io::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = TcpListener::bind(addr).await?;
    let status = view.clone();
    let app = Router::new()
        .route(
            "/status",
            get(move || {
                let view = status.clone();
                async move { axum::Json(view()) }
            }),
        )
        // Everything else (`/check`, `/journal/…`, `/metrics`) is the
        // active's: say so, rather than an empty 404 a tool cannot explain.
        .fallback(move || {
            let view = view.clone();
            async move {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    standby_refusal(&view()),
                )
            }
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "the standby's admin endpoint stopped");
        }
    });
    info!(%addr, "standby admin endpoint listening (/status)");
    Ok((stop, task))
}
