//! run-control: the catch-up plan of a scheduled run and the run report of each execution of the
//! pipeline's state machine. The logic lives in `deftunes::run_control`; this binary only wires
//! the Lambda runtime.

use deftunes::run_control::RunControl;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deftunes::telemetry::init_lambda();
    // Built once per cold start: the catalog and the lake client are reused.
    let control = RunControl::from_env().await.inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    let control = &control;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        deftunes::telemetry::invocation("run-control", control.handle(&event.payload)).await
    }))
    .await
}
