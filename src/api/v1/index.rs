//! `POST /api/v1/index/retrieve` (E-08).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::{ApiError, ApiState};

/// E-08: entry IDs matching a hash, public key, e-mail or subject.
///
/// # Errors
/// 422 for schema errors, 400 for a key that does not parse.
pub async fn search_index(
    _req: HttpRequest,
    _payload: web::Payload,
    _state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::Internal("search index not implemented yet"))
}
