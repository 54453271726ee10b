//! One error type for every stage. Each variant maps to an `error_type` that Step Functions
//! `Retry`/`Catch` match on, so the split between retryable and fatal lives here and nowhere else.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// The event or request handed to a function is not usable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The deployment is misconfigured (missing env var, unknown bucket, access denied).
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The source (API or database) could not be reached or answered with a transient failure.
    #[error("source unavailable: {0}")]
    SourceUnavailable(String),
    /// The source refused the request (4xx, SQL error): retrying will not help.
    #[error("source rejected the request: {0}")]
    SourceRejected(String),
    /// The source answered, but with something that is not the agreed contract.
    #[error("invalid source payload: {0}")]
    InvalidSourcePayload(String),
    /// The lake (S3 or local directory) failed transiently.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// The Iceberg catalog (Glue, SQLite) failed transiently.
    #[error("catalog unavailable: {0}")]
    CatalogUnavailable(String),
    /// Concurrent commits kept winning until the attempts ran out.
    #[error("commit conflict: {0}")]
    CommitConflict(String),
    /// The catalog refused an operation (schema mismatch, invalid metadata).
    #[error("catalog error: {0}")]
    Catalog(String),
    /// A dataset-level quality rule failed on committed data.
    #[error("data quality failed: {0}")]
    DataQualityFailed(String),
}

/// Error types a state machine should retry. Everything else goes to its Catch.
pub const RETRYABLE_ERROR_TYPES: &[&str] = &[
    "SourceUnavailable",
    "StorageUnavailable",
    "CatalogUnavailable",
    "CommitConflict",
];

impl Error {
    /// The name Step Functions sees as the Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "InvalidInput",
            Error::Configuration(_) => "Configuration",
            Error::SourceUnavailable(_) => "SourceUnavailable",
            Error::SourceRejected(_) => "SourceRejected",
            Error::InvalidSourcePayload(_) => "InvalidSourcePayload",
            Error::StorageUnavailable(_) => "StorageUnavailable",
            Error::CatalogUnavailable(_) => "CatalogUnavailable",
            Error::CommitConflict(_) => "CommitConflict",
            Error::Catalog(_) => "CatalogError",
            Error::DataQualityFailed(_) => "DataQualityFailed",
        }
    }

    pub fn is_retryable(&self) -> bool {
        RETRYABLE_ERROR_TYPES.contains(&self.error_type())
    }
}

/// Iceberg errors keep their retryability; conflicts get their own type.
impl From<iceberg::Error> for Error {
    fn from(e: iceberg::Error) -> Self {
        let msg = format!("{e:#}");
        if e.kind() == iceberg::ErrorKind::CatalogCommitConflicts {
            Error::CommitConflict(msg)
        } else if e.retryable() {
            Error::CatalogUnavailable(msg)
        } else {
            Error::Catalog(msg)
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_matches_the_retryable_list() {
        let all = [
            Error::InvalidInput("x".into()),
            Error::Configuration("x".into()),
            Error::SourceUnavailable("x".into()),
            Error::SourceRejected("x".into()),
            Error::InvalidSourcePayload("x".into()),
            Error::StorageUnavailable("x".into()),
            Error::CatalogUnavailable("x".into()),
            Error::CommitConflict("x".into()),
            Error::Catalog("x".into()),
            Error::DataQualityFailed("x".into()),
        ];
        let retryable: Vec<_> = all
            .iter()
            .filter(|e| e.is_retryable())
            .map(|e| e.error_type())
            .collect();
        assert_eq!(retryable, RETRYABLE_ERROR_TYPES);
    }

    #[test]
    fn diagnostic_carries_type_and_message() {
        let d: lambda_runtime::Diagnostic =
            Error::SourceRejected("HTTP 404 from /users".into()).into();
        assert_eq!(d.error_type, "SourceRejected");
        assert!(d.error_message.contains("HTTP 404 from /users"));
    }
}
