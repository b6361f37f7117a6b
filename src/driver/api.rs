//! The operators' HTTP API (axum): `GET /healthz`, `GET /metrics`, and the
//! CTI API under `/v1` (bearer tokens from `[api] tokens`; docs/api.md).
//!
//! `/healthz` and `/metrics` answer from shared read-only state (the drain
//! flag, the Prometheus handle); `/v1` requests go through a channel to the
//! core loop ([`ApiRequest`]) and wait for its answer, never through a lock
//! on the core.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::acd::AcdError;
use crate::call::b2bua::{AgentCommand, AgentView, QueueView};
use crate::config::Secret;
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
    /// Requests to the core loop.
    pub core: mpsc::Sender<ApiRequest>,
    /// Accepted bearer tokens (`[api] tokens`).
    pub tokens: Arc<Vec<Secret>>,
}

/// What the API asks of the core loop; each carries where to answer.
#[derive(Debug)]
pub enum ApiRequest {
    /// Every agent.
    Agents(oneshot::Sender<Vec<AgentView>>),
    /// Every queue's live figures.
    Queues(oneshot::Sender<Vec<QueueView>>),
    /// An agent command; the answer is the agent after it.
    Agent {
        /// The agent's id.
        id: String,
        /// What to do.
        cmd: AgentCommand,
        /// The agent after it, or why not.
        reply: oneshot::Sender<Result<Option<AgentView>, AcdError>>,
    },
}

/// The API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/agents", get(agents))
        .route("/v1/agents/{id}", get(agent))
        .route("/v1/agents/{id}/{action}", post(agent_action))
        .route("/v1/queues", get(queues))
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

/// An error answer: `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The bearer token check of every `/v1` route: `None` when the request may
/// go on, else the answer (401 with `WWW-Authenticate`, or 403 when the
/// configuration has no tokens).
fn unauthorized(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    if s.tokens.is_empty() {
        return Some(error(
            StatusCode::FORBIDDEN,
            "the CTI API is off: no [api] tokens are configured",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        s.tokens
            .iter()
            .any(|t| crate::sip::digest::constant_time_eq(t.reveal(), g.as_bytes()))
    });
    if ok {
        return None;
    }
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (Authorization: Bearer <token>)",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"hotline\""),
    );
    Some(r)
}

/// Ask the core loop and wait for its answer.
async fn ask<T>(
    s: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> ApiRequest,
) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    let unavailable = || error(StatusCode::SERVICE_UNAVAILABLE, "the core is not running");
    s.core.send(make(tx)).await.map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())
}

/// `GET /v1/agents`
async fn agents(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    match ask(&s, ApiRequest::Agents).await {
        Ok(list) => Json(list).into_response(),
        Err(r) => r,
    }
}

/// `GET /v1/agents/{id}`
async fn agent(State(s): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    match ask(&s, ApiRequest::Agents).await {
        Ok(list) => match list.into_iter().find(|a| a.id == id) {
            Some(a) => Json(a).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no agent {id:?}")),
        },
        Err(r) => r,
    }
}

/// The body of `POST /v1/agents/{id}/not_ready`.
#[derive(Debug, serde::Deserialize)]
struct NotReadyBody {
    reason: String,
}

/// `POST /v1/agents/{id}/{login|logout|ready|not_ready|end_wrap_up}`
async fn agent_action(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    let cmd = match action.as_str() {
        "login" => AgentCommand::Login,
        "logout" => AgentCommand::Logout,
        "ready" => AgentCommand::Ready,
        "end_wrap_up" => AgentCommand::EndWrapUp,
        "not_ready" => match serde_json::from_slice::<NotReadyBody>(&body) {
            Ok(b) => AgentCommand::NotReady(b.reason),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("not_ready needs a JSON body {{\"reason\": \"...\"}}: {e}"),
                )
            }
        },
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no action {other:?}; expected login, logout, ready, not_ready or end_wrap_up"
                ),
            )
        }
    };
    let answer = ask(&s, |reply| ApiRequest::Agent {
        id: id.clone(),
        cmd,
        reply,
    })
    .await;
    match answer {
        Ok(Ok(Some(a))) => Json(a).into_response(),
        Ok(Ok(None)) | Ok(Err(AcdError::UnknownAgent)) => {
            error(StatusCode::NOT_FOUND, format!("no agent {id:?}"))
        }
        Ok(Err(e @ AcdError::UnknownReason(_))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(r) => r,
    }
}

/// `GET /v1/queues`
async fn queues(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    match ask(&s, ApiRequest::Queues).await {
        Ok(list) => Json(list).into_response(),
        Err(r) => r,
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
        let (core, _core_rx) = tokio::sync::mpsc::channel(1);
        let state = ApiState {
            metrics: super::super::metrics::install(),
            summaries: vec![super::super::latency::Summary::new("t_seconds", "test")],
            draining: draining.clone(),
            core,
            tokens: Arc::new(Vec::new()),
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
