//! The HTTP API: `GET /healthz` and `GET /metrics` (the CTI API grows here).

use super::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
}

/// The router (public for tests).
pub fn router(metrics: PrometheusHandle, shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .with_state(AppState { metrics, shared })
}

/// Serve the API until the process exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
) {
    if let Err(e) = axum::serve(listener, router(metrics, shared)).await {
        tracing::error!(error = %e, "API server stopped");
    }
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.shared.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn render(State(s): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("hotline_calls_live").set(s.shared.live_calls.load(Ordering::Relaxed) as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
