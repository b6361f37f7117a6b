//! The operators' HTTP API (axum): `GET /healthz` and `GET /metrics`.
//!
//! The API answers from shared read-only state (the drain flag, the
//! Prometheus handle); commands to the core will go through a channel to the
//! core loop, never through a lock on the core.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Latency summaries appended to `/metrics`.
    pub summaries: Vec<super::latency::Summary>,
    /// Set by the core loop when the drain starts.
    pub draining: Arc<AtomicBool>,
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serve the API on `listener` until `shutdown` completes.
///
/// # Errors
/// The server failed.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `200 ok`, or `503 draining` once the drain started (load balancers stop
/// sending new work).
async fn healthz(State(s): State<ApiState>) -> impl IntoResponse {
    if s.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// The Prometheus text exposition.
async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    let mut text = s.metrics.render();
    for summary in &s.summaries {
        summary.render(&mut text);
    }
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET path` over a fresh HTTP/1.1 connection; the whole response.
    pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}"),
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if let Err(e) = s.write_all(req.as_bytes()).await {
            panic!("write: {e}");
        }
        let mut out = String::new();
        if let Err(e) = s.read_to_string(&mut out).await {
            panic!("read: {e}");
        }
        out
    }

    #[tokio::test]
    async fn healthz_flips_to_503_when_draining_and_metrics_render() {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let draining = Arc::new(AtomicBool::new(false));
        let state = ApiState {
            metrics: super::super::metrics::install(),
            summaries: vec![super::super::latency::Summary::new("t_seconds", "test")],
            draining: draining.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));

        let ok = get(addr, "/healthz").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("ok\n"), "{ok}");
        draining.store(true, Ordering::Relaxed);
        let drain = get(addr, "/healthz").await;
        assert!(drain.starts_with("HTTP/1.1 503"), "{drain}");
        assert!(drain.ends_with("draining\n"), "{drain}");
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("content-type: text/plain; version=0.0.4"), "{m}");
        assert!(m.contains("hotline_up 1"), "{m}");
        assert!(m.contains("# TYPE t_seconds summary"), "{m}");

        let _ = stop.send(());
        assert!(matches!(server.await, Ok(Ok(()))));
    }
}
