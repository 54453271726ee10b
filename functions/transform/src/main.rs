//! transform: landing objects into the Iceberg tables of the transform zone, exactly once.
//! Event parsing and the answer's shape live in `deftunes::transform::events`, the transform in
//! `deftunes::transform`; this binary only wires the Lambda runtime.

use deftunes::transform::Transformer;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start: the catalog, the lake client and the table cache are reused.
    let transformer = Transformer::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let transformer = &transformer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        deftunes::telemetry::invocation("transform", transformer.handle(&event.payload)).await
    }))
    .await
}
