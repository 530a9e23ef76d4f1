//! Liveness and readiness probes (deployment.md): `/healthz` answers 200 while
//! the process can do its job, and 503 once a writable log's sequencer is gone
//! for good (it died, or stopped because another writer moved the log), so the
//! orchestrator restarts it; `/readyz` answers 200 only while a verified log is
//! loaded and, for a writable log, the sequencer can commit, so a load balancer
//! sends requests only to servers that can answer them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::{json_response, ApiState};

/// `GET /healthz`: the process is up and, unless read-only, still sequencing.
pub async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    let log = state.log();
    if !log.is_read_only() && log.sequencer_is_dead() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "status": "sequencer stopped",
                "sequencer": log.sequencer_state().name(),
            }),
        );
    }
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 with the served tree size, or 503 while not ready. A
/// writable log is not ready while its sequencer cannot commit: storage
/// fails (set by the sequencer, and by the database probe in `app`), another
/// writer moved the log, or the sequencer is gone. Reads only flags: never
/// blocks.
pub async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let log = state.log();
    if state.is_ready() && (log.is_read_only() || log.accepts_appends()) {
        let size = log.checkpoint().size;
        json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "treeSize": size}),
        )
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready"}),
        )
    }
}
