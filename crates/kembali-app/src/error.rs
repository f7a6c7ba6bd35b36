//! The use cases' one error type. Every variant has a stable machine code; the HTTP layer
//! maps variants to statuses and never needs to look inside messages.

use serde::Serialize;

/// A problem with one field of a request, with the path of the field (`lines[2].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// What the storage adapters may report. `sqlx`/`rusqlite` errors never cross this line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the transaction; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness race with another writer, or a job rolled back with another of its
    /// batch ([`crate::store::Store::write_repeatable`]); the use case is safe to run again.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// Data read back breaks an invariant: a bug or a damaged database.
    #[error("store corrupt: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The request is well-formed JSON but some fields are wrong; all of them are listed.
    #[error("invalid request")]
    Invalid(Vec<FieldProblem>),
    /// Something the request names does not exist.
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        field: &'static str,
    },
    /// The request contradicts the state: a replay with another body, a capture of a voided
    /// hold, an order already returned.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A business rule refuses the request (above the quote, above the hold...).
    #[error("{message}")]
    Rejected {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    /// The caller's key may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(vec![FieldProblem::new(field, code, message)])
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A client id (order, return, redemption) sent again with a different request.
    pub fn id_reused(code: &'static str, what: &str) -> Self {
        AppError::conflict(
            code,
            format!("this {what} id was already used with a different request"),
        )
    }

    pub fn rejected(
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        AppError::Rejected {
            code,
            field,
            message: message.into(),
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid(_) => "invalid_request",
            AppError::NotFound { what, .. } => match *what {
                "customer" => "customer_not_found",
                "order" => "order_not_found",
                "redemption" => "redemption_not_found",
                "campaign" => "campaign_not_found",
                _ => "not_found",
            },
            AppError::Conflict { code, .. } | AppError::Rejected { code, .. } => code,
            AppError::Forbidden(_) => "forbidden",
            AppError::Store(StoreError::Unavailable(_)) => "store_unavailable",
            AppError::Store(StoreError::Conflict(_)) => "write_conflict",
            AppError::Store(StoreError::Corrupt(_)) => "internal",
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
