//! api-emulator: the DeFtunes API emulator behind a Lambda function URL (response streaming).
//! All logic lives in the `api_emulator` library and `deftunes_local::emulator`; this binary
//! only wires the Lambda runtime.

use std::sync::Arc;

use api_emulator::EmulatorConfig;
use deftunes_local::Dataset;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    deftunes::telemetry::init_lambda();
    let cfg = EmulatorConfig::from_env(&deftunes::config::ProcessEnv).inspect_err(|e| {
        tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
    })?;
    // Generated once per cold start; every request of this instance reads it.
    let dataset = Arc::new(Dataset::generate(cfg.seed, &cfg.scale));
    tracing::info!(
        seed = cfg.seed,
        songs = dataset.songs.len(),
        users = dataset.users.len(),
        sessions = dataset.sessions.len(),
        from = %cfg.scale.start,
        to = %cfg.scale.end,
        "dataset generated"
    );
    lambda_http::run_with_streaming_response(api_emulator::app(dataset)).await
}
