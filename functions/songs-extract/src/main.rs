//! songs-extract: the `deftunes.songs` table (RDS PostgreSQL) into the landing zone.
//! All logic lives in `deftunes::extract::songs`; this binary only wires the Lambda runtime.

use deftunes::extract::songs::SongsExtractor;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start; the password is fetched per invocation so rotation is seen.
    let extractor = SongsExtractor::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let extractor = &extractor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        deftunes::telemetry::invocation("extraction", extractor.handle(&event.payload)).await
    }))
    .await
}
