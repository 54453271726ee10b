//! Logging set-up: JSON in Lambda (format and level from the Lambda logging configuration),
//! human-readable on a terminal.

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
