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
    /// The warehouse (Redshift, its Data API) could not run a statement now: throttled, 5xx,
    /// unreachable, paused, or a statement outlived its deadline.
    #[error("warehouse unavailable: {0}")]
    WarehouseUnavailable(String),
    /// The warehouse refused a statement (SQL error, permission, validation): retrying will not help.
    #[error("warehouse rejected the statement: {0}")]
    WarehouseRejected(String),
    /// The function panicked (a bug): reported, never retried, and the process lives on.
    #[error("panicked: {0}")]
    Panicked(String),
}

/// Error types a state machine should retry. Everything else goes to its Catch.
pub const RETRYABLE_ERROR_TYPES: &[&str] = &[
    "SourceUnavailable",
    "StorageUnavailable",
    "CatalogUnavailable",
    "CommitConflict",
    "WarehouseUnavailable",
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
            Error::WarehouseUnavailable(_) => "WarehouseUnavailable",
            Error::WarehouseRejected(_) => "WarehouseRejected",
            Error::Panicked(_) => "Panicked",
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

/// How an AWS SDK call failed, for every service alike: transport failures, timeouts, throttling
/// (429) and 5xx are transient, as are the service's own `transient_codes`; the rest (validation,
/// access denied, missing resources) will fail again. Returns (transient, "Code: message").
pub(crate) fn aws_sdk_failure<E>(
    e: &aws_sdk_s3::error::SdkError<E>,
    transient_codes: &[&str],
) -> (bool, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let transient = match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status >= 500
                || status == 429
                || se
                    .err()
                    .code()
                    .is_some_and(|code| transient_codes.contains(&code))
        }
        _ => false,
    };
    let detail = match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("no message")),
        None => DisplayErrorContext(e).to_string(),
    };
    (transient, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_error(
        status: u16,
        code: &str,
    ) -> aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError> {
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let err = aws_sdk_s3::operation::get_object::GetObjectError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("told by the service")
                .build(),
        );
        let status = StatusCode::try_from(status).expect("valid status");
        aws_sdk_s3::error::SdkError::service_error(err, Response::new(status, SdkBody::empty()))
    }

    #[test]
    fn aws_failures_are_transient_on_5xx_throttling_and_listed_codes_only() {
        let (transient, detail) = aws_sdk_failure(&service_error(503, "SlowDown"), &[]);
        assert!(transient);
        assert_eq!(detail, "SlowDown: told by the service");
        assert!(aws_sdk_failure(&service_error(429, "TooManyRequests"), &[]).0);
        assert!(aws_sdk_failure(&service_error(400, "Busy"), &["Busy"]).0);
        assert!(!aws_sdk_failure(&service_error(400, "Busy"), &["Other"]).0);
        let (transient, detail) = aws_sdk_failure(&service_error(403, "AccessDenied"), &[]);
        assert!(!transient);
        assert!(detail.starts_with("AccessDenied"));
    }

    /// What each failure means for a retry, decided per variant here and not derived from
    /// `RETRYABLE_ERROR_TYPES`: the match is exhaustive, so a new variant must be decided too.
    fn should_retry(e: &Error) -> bool {
        match e {
            // Transient: the same call can succeed later.
            Error::SourceUnavailable(_)
            | Error::StorageUnavailable(_)
            | Error::CatalogUnavailable(_)
            | Error::CommitConflict(_)
            | Error::WarehouseUnavailable(_) => true,
            // The same input fails the same way again: a retry only delays the Catch.
            Error::InvalidInput(_)
            | Error::Configuration(_)
            | Error::SourceRejected(_)
            | Error::InvalidSourcePayload(_)
            | Error::Catalog(_)
            | Error::DataQualityFailed(_)
            | Error::WarehouseRejected(_)
            | Error::Panicked(_) => false,
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_the_rest_are_not() {
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
            Error::WarehouseUnavailable("x".into()),
            Error::WarehouseRejected("x".into()),
            Error::Panicked("x".into()),
        ];
        for e in &all {
            assert_eq!(e.is_retryable(), should_retry(e), "{}", e.error_type());
        }
        // A misspelt name in the list would leave its variant silently final.
        let types: Vec<_> = all.iter().map(Error::error_type).collect();
        for t in RETRYABLE_ERROR_TYPES {
            assert!(types.contains(t), "{t} is no variant's error type");
        }
    }

    #[test]
    fn diagnostic_carries_type_and_message() {
        let d: lambda_runtime::Diagnostic =
            Error::SourceRejected("HTTP 404 from /users".into()).into();
        assert_eq!(d.error_type, "SourceRejected");
        assert!(d.error_message.contains("HTTP 404 from /users"));
    }
}
