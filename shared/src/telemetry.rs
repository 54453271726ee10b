//! Logging set-up: JSON in Lambda (format and level from the Lambda logging configuration),
//! human-readable on a terminal; and the handlers' invocation wrapper.

use crate::error::{Error, Result};

/// For Lambda handlers: honours `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// For the local tool: readable lines on stderr, level from `RUST_LOG`, else `default_level`.
pub fn init_local(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// One invocation of a handler: its error, or a panic inside it as [`Error::Panicked`], is
/// logged with its `error_type` and becomes the Lambda's typed error answer (what Step
/// Functions' Retry and Catch match), instead of an untyped report or a dead process.
pub async fn invocation<T>(
    what: &str,
    work: impl std::future::Future<Output = Result<T>>,
) -> std::result::Result<T, lambda_runtime::Diagnostic> {
    use futures::FutureExt;
    // Boxed: the handlers' futures are deep already, and wrapping them again overflows the
    // compiler's layout query depth.
    let result = match std::panic::AssertUnwindSafe(Box::pin(work))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            Err(Error::Panicked(format!("{what}: {message}")))
        }
    };
    result.map_err(|e| {
        tracing::error!(error_type = e.error_type(), retryable = e.is_retryable(), error = %e, "{what} failed");
        e.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_a_typed_error_and_errors_keep_their_type() {
        let d = invocation::<()>("transform", async { panic!("index out of bounds") })
            .await
            .unwrap_err();
        assert_eq!(d.error_type, "Panicked");
        assert!(
            d.error_message.contains("transform: index out of bounds"),
            "{}",
            d.error_message
        );
        let owned = invocation::<()>("x", async { panic!("{}", String::from("owned")) })
            .await
            .unwrap_err();
        assert!(owned.error_message.contains("owned"));
        let d = invocation::<()>("x", async { Err(Error::CommitConflict("c".into())) })
            .await
            .unwrap_err();
        assert_eq!(d.error_type, "CommitConflict");
        assert_eq!(invocation("x", async { Ok(7) }).await.unwrap(), 7);
    }
}
