//! The HTTP layer's one error type, [`ApiError`], and its RFC 9457 `application/problem+json`
//! rendering. Every failure a handler or an extractor can meet becomes one of these, with a
//! stable `code` clients switch on and, when a field is at fault, its path.
//!
//! Must never: put a secret, a stack trace or a database message in a response body; answer
//! 500 for anything but a broken invariant inside the service.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kembali_app::error::{AppError, FieldProblem, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying a 503 (the store was busy or lost a race).
const RETRY_AFTER_SECS: &str = "1";

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:kembali:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the status.
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
    /// A stable machine code (`invalid_request`, `customer_not_found`, `unauthorized`...).
    pub code: String,
    /// The (first) field at fault, as a path such as `lines[2].quantity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field problem, for `invalid_request`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// A failed request, rendered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    pub field: Option<String>,
    pub errors: Vec<FieldProblem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
        }
    }

    /// One field is wrong: 422 `invalid_request`, listing it.
    pub fn invalid(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        AppError::invalid(field, code, message).into()
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn malformed_json(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", detail)
    }

    pub fn payload_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body exceeds {} bytes",
                kembali_core::limits::MAX_BODY_BYTES
            ),
        )
    }

    pub fn unsupported_media_type() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// A bug or a damaged database: the only source of 500s.
    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("urn:kembali:problem:{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.clone(),
            field: self.field.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let code = e.code();
        match e {
            AppError::Invalid(problems) => {
                let detail = match problems.as_slice() {
                    [] => "the request is invalid".to_string(),
                    [one] => format!("{}: {}", one.field, one.message),
                    [first, rest @ ..] => format!(
                        "{}: {} (and {} more problem{})",
                        first.field,
                        first.message,
                        rest.len(),
                        if rest.len() == 1 { "" } else { "s" }
                    ),
                };
                ApiError {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: code.into(),
                    detail,
                    field: problems.first().map(|p| p.field.clone()),
                    errors: problems,
                }
            }
            AppError::NotFound { what, field } => {
                ApiError::new(StatusCode::NOT_FOUND, code, format!("{what} not found"))
                    .with_field(field)
            }
            AppError::Conflict { message, .. } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            AppError::Rejected { field, message, .. } => {
                let e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
                match field {
                    Some(f) => e.with_field(f),
                    None => e,
                }
            }
            AppError::Forbidden(message) => ApiError::forbidden(message),
            AppError::Store(StoreError::Unavailable(why)) => {
                tracing::warn!(error = %why, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the database is unavailable; retry shortly",
                )
            }
            AppError::Store(StoreError::Conflict(why)) => {
                tracing::warn!(error = %why, "write conflict after retries");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the request lost a race with a concurrent one; retry it",
                )
            }
            AppError::Store(StoreError::Corrupt(why)) => {
                tracing::error!(error = %why, "store corrupt");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_request_names_the_first_field_and_lists_all() {
        let e: ApiError = AppError::Invalid(vec![
            FieldProblem::new("lines[0].quantity", "out_of_range", "too small"),
            FieldProblem::new("currency", "invalid_currency", "bad"),
        ])
        .into();
        let p = e.problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.code, "invalid_request");
        assert_eq!(p.field.as_deref(), Some("lines[0].quantity"));
        assert_eq!(p.errors.len(), 2);
        assert!(p.detail.contains("and 1 more problem"));
    }

    #[test]
    fn a_corrupt_store_is_the_only_internal_error_and_hides_its_cause() {
        let e: ApiError = AppError::Store(StoreError::Corrupt("table x broken".into())).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.detail.contains("table x"));
        let busy: ApiError = AppError::Store(StoreError::Conflict("race".into())).into();
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
