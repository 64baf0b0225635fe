//! The one place where a kpi [`Error`] becomes an HTTP response.
//!
//! Clients get a stable `code` and a message; internal details are logged once and hidden.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{Error, ErrorClass};

/// The JSON body of every error answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong: a stable code and a message that says what to do.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Stable code, such as `bad_range` or `unauthorized`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// An error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = match error.class {
            ErrorClass::Input => StatusCode::BAD_REQUEST,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if error.class == ErrorClass::Internal {
            tracing::error!(code = error.code, "{}", error.message);
            "internal error; the server log has the details".to_string()
        } else {
            tracing::debug!(code = error.code, "{}", error.message);
            error.message
        };
        let busy = error.code == super::gate::BUSY;
        let body = ErrorBody {
            error: ErrorDetail {
                code: error.code.to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if busy {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(super::gate::RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
