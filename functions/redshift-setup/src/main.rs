//! redshift-setup: prepares Redshift for the serving layer (external schema over the Glue silver
//! database, serving and BI schemas, analysts role and grants), idempotently.
//! All logic lives in `deftunes::serving::redshift`; this binary only wires the Lambda runtime.

use deftunes::serving::redshift::RedshiftSetup;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Time kept back from the invocation's deadline to cancel a statement and answer.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start: the Data API client is reused across invocations.
    let setup = RedshiftSetup::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let setup = &setup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Answer before Lambda's own deadline, so a slow statement is cancelled and reported.
        let remaining = event
            .context
            .deadline()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let deadline = std::time::Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN);
        deftunes::telemetry::invocation(
            "redshift setup",
            setup.handle(&event.payload, Some(deadline)),
        )
        .await
    }))
    .await
}
