//! api-extract: the DeFtunes API (`/users`, `/sessions`) into the landing zone.
//! All logic lives in `deftunes::extract::api`; this binary only wires the Lambda runtime.

use deftunes::extract::api::ApiExtractor;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start: the HTTP connection pool and the S3 client are reused.
    let extractor = ApiExtractor::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let extractor = &extractor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        deftunes::telemetry::invocation("extraction", extractor.handle(&event.payload)).await
    }))
    .await
}
