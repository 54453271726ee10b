//! redshift-setup: prepares Redshift for the serving layer (external schema over the Glue silver
//! database, serving and BI schemas, analysts role and grants), idempotently.
//! All logic lives in `deftunes::serving::redshift`; this binary only wires the Lambda runtime.

use deftunes::serving::redshift::RedshiftSetup;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start: the Data API client is reused across invocations.
    let setup = RedshiftSetup::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let setup = &setup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        setup.handle(&event.payload).await.map_err(|e| {
            tracing::error!(error_type = e.error_type(), retryable = e.is_retryable(), error = %e, "redshift setup failed");
            Diagnostic::from(e)
        })
    }))
    .await
}
