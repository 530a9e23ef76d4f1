//! Liveness and readiness probes (deployment.md): `/healthz` answers while the
//! process serves HTTP; `/readyz` answers 200 only while a verified log is
//! loaded, so a load balancer sends reads only to servers that can answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::{json_response, ApiState};

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 with the served tree size, or 503 while not ready. A
/// writable log is not ready while its storage fails (set by the sequencer,
/// and by the database probe in `app`). Reads only flags: never blocks.
pub async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    if state.is_ready() && !state.log().is_degraded() {
        let size = state.log().checkpoint().size;
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
