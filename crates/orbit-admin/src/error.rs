//! The single mapping from core errors to admin API responses.

use crate::api::{ErrorBody, ErrorDetail};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orbit_types::Error;

pub(crate) struct ApiError(pub StatusCode, pub &'static str, pub String);

impl ApiError {
    pub(crate) fn unauthorized(msg: &str) -> Self {
        ApiError(StatusCode::UNAUTHORIZED, "Unauthorized", msg.to_owned())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "NotFound", msg),
            Error::AlreadyExists(_) => ApiError(StatusCode::CONFLICT, "Conflict", msg),
            Error::Conflict(_) => ApiError(StatusCode::CONFLICT, "Conflict", msg),
            Error::NotEmpty(_) => {
                ApiError(StatusCode::CONFLICT, "NotEmpty", format!("{msg}; use force to delete its contents too"))
            }
            Error::AccessDenied => ApiError(StatusCode::FORBIDDEN, "AccessDenied", msg),
            Error::SlowDown { .. } => ApiError(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", msg),
            Error::QuotaExceeded(_) => ApiError(StatusCode::FORBIDDEN, "QuotaExceeded", msg),
            Error::LimitExceeded(_) => ApiError(StatusCode::FORBIDDEN, "LimitExceeded", msg),
            Error::NotImplemented(_) => ApiError(StatusCode::NOT_IMPLEMENTED, "NotImplemented", msg),
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "admin request failed: unavailable");
                ApiError(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "service unavailable, retry".into())
            }
            Error::Internal(m) => {
                tracing::error!(error = %m, "admin request failed: internal error");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "internal error".into())
            }
            _ => ApiError(StatusCode::BAD_REQUEST, "InvalidArgument", msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: ErrorDetail { code: self.1.to_owned(), message: self.2 } })).into_response()
    }
}
