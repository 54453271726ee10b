//! api-emulator: the DeFtunes API emulator of the local stack (`deftunes_local::emulator`) behind a
//! Lambda function URL, so that an account without the DeFtunes API can run the pipeline.
//! The dataset is generated once per cold start from [`EmulatorConfig`]; the routes are the
//! emulator's, without fault control (faults are never injected here).

use std::sync::Arc;

use deftunes::config::{parse_or, Env};
use deftunes::{Error, Result};
use deftunes_local::dataset::DEFAULT_SEED;
use deftunes_local::{Dataset, Scale};
use lambda_http::http::uri::PathAndQuery;
use lambda_http::http::Uri;
use lambda_http::tower::util::MapRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Request, RequestExt};

/// What data the emulator serves: the same seed and scale as `deftunes run` / `deftunes
/// load-songs` give the same records (and sessions that reference the same songs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    pub seed: u64,
    pub scale: Scale,
}

impl EmulatorConfig {
    /// `DATA_SEED`, `DATA_SONGS`, `DATA_USERS`, `DATA_SESSIONS`, `DATA_FROM`, `DATA_TO`; each
    /// defaults to the `deftunes` tool's default.
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let default = Scale::default();
        let scale = Scale {
            songs: parse_or(env, "DATA_SONGS", default.songs)?,
            users: parse_or(env, "DATA_USERS", default.users)?,
            sessions: parse_or(env, "DATA_SESSIONS", default.sessions)?,
            start: parse_or(env, "DATA_FROM", default.start)?,
            end: parse_or(env, "DATA_TO", default.end)?,
        };
        if scale.start > scale.end {
            return Err(Error::Configuration(format!(
                "DATA_FROM={} is after DATA_TO={}",
                scale.start, scale.end
            )));
        }
        Ok(EmulatorConfig {
            seed: parse_or(env, "DATA_SEED", DEFAULT_SEED)?,
            scale,
        })
    }
}

/// The HTTP service of the function: the emulator's API routes, routed on the path at the root
/// of the function URL.
pub type App = MapRequest<axum::Router, fn(Request) -> Request>;

pub fn app(dataset: Arc<Dataset>) -> App {
    deftunes_local::emulator::api_router(dataset).map_request(at_url_root as fn(Request) -> Request)
}

/// A function URL serves at its root: `https://<id>.lambda-url.<region>.on.aws/sessions` arrives
/// with `rawPath` `/sessions`. lambda_http prefixes the path with the request context's stage
/// unless it is `$default` (what function URLs send); routing on `rawPath` keeps `/sessions`
/// whatever the stage says.
pub fn at_url_root(mut req: Request) -> Request {
    let raw = req.raw_http_path();
    if raw.is_empty() || raw == req.uri().path() {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{raw}?{q}"),
        None => raw.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    match PathAndQuery::try_from(path_and_query) {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(e) => {
            tracing::warn!(raw_path = raw, error = %e, "rawPath is not a valid URI path; routing on the event path");
            return req;
        }
    }
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => {
            tracing::warn!(error = %e, "cannot rebuild the request URI; routing on the event path")
        }
    }
    req
}
