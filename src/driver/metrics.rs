//! Prometheus metrics: the recorder, and the driver's own measurements.
//!
//! Rendered by our own axum route (`GET /metrics`); the exporter's default
//! features (its own HTTP server) are off. Every metric is listed in
//! `docs/metrics.md`.

use super::{transport_label, DriverError};
use crate::sip::transport::{Packet, Transmit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::time::Duration;

/// Install the global recorder (once per process) and return its handle.
pub fn install() -> Result<PrometheusHandle, DriverError> {
    let recorder = PrometheusBuilder::new()
        .set_quantiles(&[0.5, 0.9, 0.99, 0.999])
        .map_err(|e| DriverError::Metrics(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| DriverError::Metrics(e.to_string()))?;
    metrics::describe_histogram!(
        "hotline_sip_processing_seconds",
        metrics::Unit::Seconds,
        "Time the signalling core spent per input, outputs drained"
    );
    metrics::gauge!("hotline_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("hotline_up").set(1.0);
    Ok(handle)
}

/// Periodic upkeep of the recorder (histogram windows).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut t = tokio::time::interval(Duration::from_secs(5));
    loop {
        t.tick().await;
        handle.run_upkeep();
    }
}

/// A message arrived.
pub fn received(p: &Packet) {
    let t = transport_label(p.transport);
    metrics::counter!("hotline_sip_messages_received_total", "transport" => t).increment(1);
    metrics::counter!("hotline_sip_bytes_received_total", "transport" => t)
        .increment(p.data.len() as u64);
}

/// A message left.
pub fn sent(t: &Transmit) {
    let l = transport_label(t.transport);
    metrics::counter!("hotline_sip_messages_sent_total", "transport" => l).increment(1);
    metrics::counter!("hotline_sip_bytes_sent_total", "transport" => l)
        .increment(t.data.len() as u64);
}

/// The core processed `n` inputs in `d` (recorded per input).
pub fn processing(d: Duration, n: usize) {
    let per = d.as_secs_f64() / n.max(1) as f64;
    let h = metrics::histogram!("hotline_sip_processing_seconds");
    for _ in 0..n {
        h.record(per);
    }
}

/// A transport-level failure.
pub fn transport_error(kind: &'static str) {
    metrics::counter!("hotline_sip_transport_errors_total", "kind" => kind).increment(1);
}

/// A message dropped by the driver.
pub fn dropped(reason: &'static str) {
    metrics::counter!("hotline_sip_dropped_total", "reason" => reason).increment(1);
}
