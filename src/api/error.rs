//! The one place where errors become HTTP: Rekor's `{"code","message"}` body
//! (rekor-v1.md G-07) with the status each client acts on.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::entries::EntryError;
use crate::log::AppendError;
use crate::storage::StoreError;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a message.
    #[error("{0}")]
    BadRequest(String),
    /// 422 with a go-openapi 6xx (or 422) code in the body.
    #[error("{message}")]
    Unprocessable {
        /// Body `code`.
        code: u16,
        /// Body `message`.
        message: String,
    },
    /// 404 with an empty body (GET entry endpoints, G-07).
    #[error("not found")]
    EntryNotFound,
    /// 404 for an unknown route.
    #[error("path {0} was not found")]
    PathNotFound(String),
    /// 405 with `Allow`.
    #[error("method {method} is not allowed, but [{allowed}] are")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// Allowed methods, comma-separated for the header.
        allowed: &'static str,
    },
    /// 409 with `Location` (E-04).
    #[error("an equivalent entry already exists in the transparency log with UUID {entry_id}")]
    Duplicate {
        /// 80-hex entry ID of the existing entry.
        entry_id: String,
        /// Relative URL of the existing entry.
        location: String,
    },
    /// 408, closing the connection: the body did not arrive in time.
    #[error("the request body was not received within {} ms", .0.as_millis())]
    BodyTimeout(std::time::Duration),
    /// 413 (G-12).
    #[error("Request Entity Too Large. Limit set to {0}")]
    TooLarge(usize),
    /// 415 (G-03).
    #[error("unsupported media type {0:?}, only [application/json] are allowed")]
    UnsupportedMediaType(String),
    /// 503 with `Retry-After`: the pool is full.
    #[error("the log is busy; retry later")]
    Pushback,
    /// 503 with `Retry-After`: storage is unavailable.
    #[error("the log is temporarily unavailable; retry later")]
    Unavailable,
    /// 401 with `WWW-Authenticate`: a create without a listed bearer token
    /// (`write_policy.bearer_tokens_file`).
    #[error("a valid bearer token is required to add entries to this log")]
    Unauthorized,
    /// 403: the entry's signers are outside the write policy; names the rule.
    #[error("entry refused by the write policy: {0}")]
    Forbidden(#[from] crate::policy::Refusal),
    /// 405: the server is a read-only replica.
    #[error("this server is a read-only replica of the log; it does not accept new entries")]
    ReadOnly,
    /// 500.
    #[error("{0}")]
    Internal(&'static str),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: u16,
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::EntryNotFound | ApiError::PathNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } | ApiError::ReadOnly => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::Duplicate { .. } => StatusCode::CONFLICT,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Pushback | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::EntryNotFound => return response.finish(),
            ApiError::Duplicate { location, .. } => {
                response.insert_header((header::LOCATION, location.as_str()));
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                response.insert_header((header::ALLOW, *allowed));
            }
            ApiError::ReadOnly => {
                response.insert_header((header::ALLOW, "GET"));
            }
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tlog\""));
            }
            ApiError::Pushback | ApiError::Unavailable => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            // The rest of the body may still be on its way: drop the connection.
            ApiError::BodyTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        let code = match self {
            ApiError::Unprocessable { code, .. } => *code,
            _ => status.as_u16(),
        };
        let message = self.to_string();
        let mut body = serde_json::to_vec(&ErrorBody {
            code,
            message: &message,
        })
        .expect("error body serialises");
        body.push(b'\n');
        response.content_type("application/json").body(body)
    }
}

impl From<EntryError> for ApiError {
    fn from(err: EntryError) -> Self {
        match err {
            EntryError::Malformed(message) => ApiError::BadRequest(message),
            EntryError::Schema { code, message } => ApiError::Unprocessable { code, message },
            EntryError::UnknownKind(_) => ApiError::Unprocessable {
                code: 422,
                message: err.to_string(),
            },
            EntryError::Invalid(message) => {
                ApiError::BadRequest(format!("error processing entry: {message}"))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::warn!(error = %err, "storage error on the read path");
        match err {
            StoreError::Unavailable(_) | StoreError::Conflict(_) | StoreError::Fenced => {
                ApiError::Unavailable
            }
            StoreError::Corrupt(_) => ApiError::Internal("unexpected error reading the log"),
            StoreError::ReadOnly => ApiError::ReadOnly,
            StoreError::Rejected { .. } => ApiError::Internal("unexpected error reading the log"),
        }
    }
}

impl ApiError {
    /// Maps an append failure; `Duplicate` needs the entry ID and URL, so the
    /// caller passes a builder for it.
    pub fn from_append(err: AppendError, duplicate: impl FnOnce(u64) -> ApiError) -> Self {
        match err {
            AppendError::Duplicate(index) => duplicate(index),
            AppendError::Pushback => ApiError::Pushback,
            AppendError::ReadOnly => ApiError::ReadOnly,
            AppendError::Rejected(why) => {
                ApiError::BadRequest(format!("the entry can't be stored: {why}"))
            }
            AppendError::Unavailable(reason) => {
                tracing::warn!(%reason, "append failed");
                ApiError::Unavailable
            }
        }
    }

    /// go-openapi's "required" error (code 602).
    pub fn required(name: &str, place: &str) -> Self {
        ApiError::Unprocessable {
            code: 602,
            message: format!("{name} in {place} is required"),
        }
    }

    /// go-openapi's "must be of type int64" error (code 601).
    pub fn not_int64(name: &str, place: &str, value: &str) -> Self {
        ApiError::Unprocessable {
            code: 601,
            message: format!("{name} in {place} must be of type int64: {value:?}"),
        }
    }

    /// go-openapi's minimum error (code 609).
    pub fn below_minimum(name: &str, place: &str, min: u64) -> Self {
        ApiError::Unprocessable {
            code: 609,
            message: format!("{name} in {place} should be greater than or equal to {min}"),
        }
    }

    /// go-openapi's pattern error (code 605).
    pub fn pattern(name: &str, place: &str, pattern: &str) -> Self {
        ApiError::Unprocessable {
            code: 605,
            message: format!("{name} in {place} should match '{pattern}'"),
        }
    }
}
