//! HTTP emulator of the DeFtunes purchases API (`GET /users`, `GET /sessions`), with fault
//! injection for testing retries and error handling.
//!
//! Data endpoints return a bare JSON array of the records whose timestamp date falls within
//! `start_date..=end_date`, serialized exactly as [`crate::dataset`] does. Missing or malformed
//! dates, or `start_date > end_date`, give HTTP 422 with `{"detail": "..."}` naming the
//! parameter, like FastAPI.
//!
//! Faults ([`Faults`]) apply to data requests only, before parameter validation (like a flaky
//! gateway in front of the service), in this order: latency, injected error, then the response
//! shape faults (`non_array`, `truncate`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dataset::Dataset;

/// Faults injected into data requests (`/users`, `/sessions`). `Faults::default()` injects none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Status for injected errors; 0 (or anything that is not a valid status) means 503.
    pub error_status: u16,
    /// The next N data requests fail with `error_status` (decremented on each).
    pub error_next: u32,
    /// Additionally, each data request fails with this probability (seeded rng: the sequence
    /// of draws is deterministic for a given router).
    pub error_rate: f64,
    /// Delay before answering data requests...
    pub latency_ms: u64,
    /// ...only for the next N data requests if > 0 (when it counts down to 0, `latency_ms`
    /// is reset to 0), else for all requests while `latency_ms > 0`.
    pub latency_next: u32,
    /// Data responses are cut in the middle: 200 OK, chunked body ending cleanly after about
    /// half the bytes, without the closing `]`.
    pub truncate: bool,
    /// Data responses are a JSON object `{"data": [...]}` instead of a bare array.
    pub non_array: bool,
    /// The next N data responses send about half their body, then stall (the connection stays
    /// open, no more bytes) until the client gives up: a read timeout in the middle of a body.
    pub stall_body_next: u32,
}

/// Seed of the rng that draws `error_rate` failures.
const FAULT_RNG_SEED: u64 = 0x5EED_FA17;

#[derive(Clone)]
struct AppState {
    dataset: Arc<Dataset>,
    faults: Arc<Mutex<Faults>>,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

/// Number of records in a data response, attached to the response for the request log.
#[derive(Clone, Copy)]
struct RecordCount(usize);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The emulator's routes, for callers that serve it themselves; `PUT /_emulator/faults` changes
/// `faults`.
pub fn router(dataset: Arc<Dataset>, faults: Arc<Mutex<Faults>>) -> Router {
    build_router(dataset, faults, true)
}

/// The API only (`/users`, `/sessions`, `/openapi.json`, `/health`), never injecting faults:
/// no `/_emulator/faults` route, for a deployment reachable by anyone.
pub fn api_router(dataset: Arc<Dataset>) -> Router {
    build_router(dataset, Arc::new(Mutex::new(Faults::default())), false)
}

fn build_router(dataset: Arc<Dataset>, faults: Arc<Mutex<Faults>>, fault_control: bool) -> Router {
    let state = AppState {
        dataset,
        faults,
        rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(FAULT_RNG_SEED))),
    };
    let mut routes = Router::new()
        .route("/users", get(users))
        .route("/sessions", get(sessions))
        .route("/openapi.json", get(openapi))
        .route("/health", get(health));
    if fault_control {
        routes = routes.route("/_emulator/faults", get(get_faults).put(put_faults));
    }
    routes
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// An emulator serving in a background task.
pub struct RunningEmulator {
    pub addr: SocketAddr,
    /// `http://<addr>`, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    faults: Arc<Mutex<Faults>>,
    server: crate::serve::Server,
}

impl RunningEmulator {
    /// Replaces the injected faults (takes effect for the next request).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// The current faults (counters as decremented so far).
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Graceful shutdown: stops accepting, lets in-flight requests finish (at most 5 s).
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Binds `bind` (port 0: any free port) and serves the emulator in a background task.
pub async fn start(dataset: Arc<Dataset>, bind: SocketAddr) -> std::io::Result<RunningEmulator> {
    let faults = Arc::new(Mutex::new(Faults::default()));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let server =
        crate::serve::Server::spawn("emulator", listener, router(dataset, faults.clone()))?;
    Ok(RunningEmulator {
        addr: server.addr,
        base_url: server.base_url(),
        faults,
        server,
    })
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let records = resp.extensions().get::<RecordCount>().map(|r| r.0 as u64);
    tracing::info!(
        %method,
        %path,
        %query,
        status = resp.status().as_u16(),
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

fn detail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "detail": msg.into() }))).into_response()
}

/// What the faults say about one data request (counters are consumed here).
struct Decision {
    delay: Option<Duration>,
    error: Option<StatusCode>,
    truncate: bool,
    non_array: bool,
    stall_body: bool,
}

impl AppState {
    fn decide(&self) -> Decision {
        let mut f = lock(&self.faults);
        let delay = if f.latency_ms > 0 {
            let d = Duration::from_millis(f.latency_ms);
            if f.latency_next > 0 {
                f.latency_next -= 1;
                if f.latency_next == 0 {
                    f.latency_ms = 0;
                }
            }
            Some(d)
        } else {
            None
        };
        let fail = if f.error_next > 0 {
            f.error_next -= 1;
            true
        } else if f.error_rate > 0.0 {
            let draw: f64 = lock(&self.rng).random();
            draw < f.error_rate
        } else {
            false
        };
        let error = fail.then(|| {
            StatusCode::from_u16(f.error_status)
                .ok()
                .filter(|s| f.error_status != 0 && !s.is_informational())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        });
        let stall_body = f.stall_body_next > 0;
        f.stall_body_next = f.stall_body_next.saturating_sub(1);
        Decision {
            delay,
            error,
            truncate: f.truncate,
            non_array: f.non_array,
            stall_body,
        }
    }
}

/// The date parameter `name`, or the 422 detail message naming it.
fn parse_date(params: &HashMap<String, String>, name: &str) -> Result<NaiveDate, String> {
    let raw = params
        .get(name)
        .ok_or_else(|| format!("{name}: field required (query parameter, YYYY-MM-DD)"))?;
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|e| format!("{name}: invalid date {raw:?}, expected YYYY-MM-DD ({e})"))
}

#[derive(Clone, Copy)]
enum Endpoint {
    Users,
    Sessions,
}

#[derive(Serialize)]
struct Wrapped<'a, T> {
    data: &'a [T],
}

fn serialize_records<T: Serialize>(
    records: &[T],
    non_array: bool,
    size_hint: usize,
) -> serde_json::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(records.len().saturating_mul(size_hint) + 16);
    if non_array {
        serde_json::to_writer(&mut buf, &Wrapped { data: records })?;
    } else {
        serde_json::to_writer(&mut buf, records)?;
    }
    Ok(buf)
}

async fn data(
    state: AppState,
    endpoint: Endpoint,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let decision = state.decide();
    if let Some(d) = decision.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(status) = decision.error {
        return detail(status, "injected fault");
    }
    let params = match query {
        Ok(Query(p)) => p,
        Err(e) => {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid query string: {e}"),
            )
        }
    };
    let (start, end) = match (
        parse_date(&params, "start_date"),
        parse_date(&params, "end_date"),
    ) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(msg), _) | (_, Err(msg)) => return detail(StatusCode::UNPROCESSABLE_ENTITY, msg),
    };
    if start > end {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("start_date: {start} is after end_date {end}"),
        );
    }

    let dataset = state.dataset.clone();
    let non_array = decision.non_array;
    // Serializing a large window takes a few ms: keep it off the async workers.
    let serialized = tokio::task::spawn_blocking(move || match endpoint {
        Endpoint::Users => {
            let records = dataset.users_between(start, end);
            serialize_records(records, non_array, 256).map(|b| (b, records.len()))
        }
        Endpoint::Sessions => {
            let records = dataset.sessions_between(start, end);
            serialize_records(records, non_array, 1024).map(|b| (b, records.len()))
        }
    })
    .await;
    let (mut bytes, count) = match serialized {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("serialization failed: {e}"),
            )
        }
        Err(e) => {
            return detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("serialization task failed: {e}"),
            )
        }
    };

    let mut resp = if decision.stall_body || decision.truncate {
        bytes.truncate(bytes.len() / 2);
        // A stream body has no Content-Length: sent chunked, then either ending cleanly but
        // incomplete (truncate) or never ending (stall).
        let half = futures::stream::once(futures::future::ready(Ok::<_, Infallible>(Bytes::from(
            bytes,
        ))));
        let body = if decision.stall_body {
            Body::from_stream(half.chain(futures::stream::pending()))
        } else {
            Body::from_stream(half)
        };
        Response::new(body)
    } else {
        Response::new(Body::from(bytes))
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.extensions_mut().insert(RecordCount(count));
    resp
}

async fn users(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Users, query).await
}

async fn sessions(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    data(state, Endpoint::Sessions, query).await
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn get_faults(State(state): State<AppState>) -> Response {
    Json(lock(&state.faults).clone()).into_response()
}

async fn put_faults(State(state): State<AppState>, Json(faults): Json<Faults>) -> Response {
    tracing::info!(?faults, "faults set");
    *lock(&state.faults) = faults.clone();
    Json(faults).into_response()
}

async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The OpenAPI 3.0 document of the emulated API.
pub fn openapi_document() -> serde_json::Value {
    let date_param = |name: &str, what: &str| {
        json!({
            "name": name,
            "in": "query",
            "required": true,
            "description": what,
            "schema": { "type": "string", "format": "date", "title": name, "example": "2020-01-01" }
        })
    };
    let endpoint = |summary: &str, description: &str, schema: &str, op: &str| {
        json!({
            "get": {
                "summary": summary,
                "description": description,
                "operationId": op,
                "parameters": [
                    date_param("start_date", "First day of the window (inclusive), YYYY-MM-DD."),
                    date_param("end_date", "Last day of the window (inclusive), YYYY-MM-DD.")
                ],
                "responses": {
                    "200": {
                        "description": "All records in the window, as a bare JSON array (no pagination).",
                        "content": { "application/json": { "schema": {
                            "type": "array",
                            "items": { "$ref": format!("#/components/schemas/{schema}") }
                        } } }
                    },
                    "422": {
                        "description": "Missing or malformed date, or start_date after end_date.",
                        "content": { "application/json": { "schema": {
                            "$ref": "#/components/schemas/HTTPValidationError"
                        } } }
                    }
                }
            }
        })
    };
    let timestamp = |description: &str| {
        json!({
            "type": "string",
            "description": format!("{description} ISO 8601, microseconds, no time zone (e.g. 2020-02-07T18:05:25.824461)."),
            "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{6}$"
        })
    };
    let uuid = |description: &str| json!({ "type": "string", "format": "uuid", "minLength": 36, "maxLength": 36, "description": description });
    let msd = |prefix: &str, description: &str| {
        json!({
            "type": "string", "minLength": 18, "maxLength": 18,
            "pattern": format!("^{prefix}[A-Z0-9]{{16}}$"),
            "description": description
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "DeFtunes purchases API (local emulator)",
            "version": "1.0.0",
            "description": "Users and purchase sessions of the DeFtunes music store. Windows are inclusive dates."
        },
        "paths": {
            "/users": endpoint(
                "Users who signed up in the window",
                "Users whose user_since date falls within start_date..=end_date.",
                "User",
                "get_users"
            ),
            "/sessions": endpoint(
                "Purchase sessions in the window",
                "Sessions whose session_start_time date falls within start_date..=end_date.",
                "Session",
                "get_sessions"
            ),
            "/health": {
                "get": {
                    "summary": "Liveness probe",
                    "operationId": "health",
                    "responses": { "200": { "description": "The emulator is up." } }
                }
            }
        },
        "components": {
            "schemas": {
                "User": {
                    "type": "object",
                    "required": ["user_id", "user_name", "user_lastname", "user_location", "user_since"],
                    "properties": {
                        "user_id": uuid("User id."),
                        "user_name": { "type": "string" },
                        "user_lastname": { "type": "string" },
                        "user_location": {
                            "type": "array",
                            "description": "latitude, longitude, place name, ISO country code, IANA time zone.",
                            "items": { "type": "string" },
                            "minItems": 5,
                            "maxItems": 5,
                            "example": ["46.32313", "-0.45877", "Niort", "FR", "Europe/Paris"]
                        },
                        "user_since": timestamp("Sign-up time.")
                    }
                },
                "SessionItem": {
                    "type": "object",
                    "required": ["song_id", "song_name", "artist_id", "artist_name", "price", "currency", "liked", "liked_since"],
                    "properties": {
                        "song_id": msd("TR", "Million Song Dataset track id: matches songs.track_id (not songs.song_id)."),
                        "song_name": { "type": "string" },
                        "artist_id": msd("AR", "Matches songs.artist_id."),
                        "artist_name": { "type": "string" },
                        "price": { "type": "number", "format": "double", "minimum": 0, "maximum": 2 },
                        "currency": { "type": "string", "enum": ["USD"] },
                        "liked": { "type": "boolean" },
                        "liked_since": {
                            "allOf": [timestamp("When the song was liked; null whenever liked is false.")],
                            "nullable": true
                        }
                    }
                },
                "Session": {
                    "type": "object",
                    "required": ["user_id", "session_id", "session_items", "user_agent", "session_start_time"],
                    "properties": {
                        "user_id": uuid("The purchasing user."),
                        "session_id": uuid("Session id."),
                        "session_items": {
                            "type": "array",
                            "items": { "$ref": "#/components/schemas/SessionItem" }
                        },
                        "user_agent": { "type": "string" },
                        "session_start_time": timestamp("Session start.")
                    }
                },
                "HTTPValidationError": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": { "detail": { "type": "string" } }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(faults: Faults) -> AppState {
        AppState {
            dataset: Arc::new(Dataset {
                songs: vec![],
                users: vec![],
                sessions: vec![],
            }),
            faults: Arc::new(Mutex::new(faults)),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(FAULT_RNG_SEED))),
        }
    }

    #[test]
    fn error_next_counts_down() {
        let st = state(Faults {
            error_next: 2,
            ..Faults::default()
        });
        assert_eq!(st.decide().error, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(st.decide().error, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(st.decide().error, None);
        assert_eq!(lock(&st.faults).error_next, 0);
    }

    #[test]
    fn error_status_is_used_and_sanitized() {
        for (given, want) in [(500, 500), (429, 429), (0, 503), (42, 503), (1000, 503)] {
            let st = state(Faults {
                error_next: 1,
                error_status: given,
                ..Faults::default()
            });
            assert_eq!(st.decide().error.map(|s| s.as_u16()), Some(want), "{given}");
        }
    }

    #[test]
    fn error_rate_is_deterministic_and_roughly_right() {
        let run = || {
            let st = state(Faults {
                error_rate: 0.3,
                ..Faults::default()
            });
            (0..1000)
                .map(|_| st.decide().error.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let failures = a.iter().filter(|x| **x).count();
        assert!((200..400).contains(&failures), "{failures}");
        let never = state(Faults {
            error_rate: 0.0,
            ..Faults::default()
        });
        assert!((0..100).all(|_| never.decide().error.is_none()));
        let always = state(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        assert!((0..100).all(|_| always.decide().error.is_some()));
    }

    #[test]
    fn latency_next_then_off() {
        let st = state(Faults {
            latency_ms: 10,
            latency_next: 2,
            ..Faults::default()
        });
        assert_eq!(st.decide().delay, Some(Duration::from_millis(10)));
        assert_eq!(st.decide().delay, Some(Duration::from_millis(10)));
        assert_eq!(st.decide().delay, None);
        let st = state(Faults {
            latency_ms: 10,
            ..Faults::default()
        });
        assert!((0..5).all(|_| st.decide().delay.is_some()));
    }

    #[test]
    fn faults_json_defaults() {
        let f: Faults = serde_json::from_str(r#"{"error_next": 3}"#).unwrap();
        assert_eq!(
            f,
            Faults {
                error_next: 3,
                ..Faults::default()
            }
        );
        let f: Faults = serde_json::from_str("{}").unwrap();
        assert_eq!(f, Faults::default());
    }

    #[test]
    fn openapi_mentions_both_endpoints() {
        let doc = openapi_document();
        assert_eq!(doc["openapi"], "3.0.3");
        for p in ["/users", "/sessions"] {
            let params = doc["paths"][p]["get"]["parameters"].as_array().unwrap();
            let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["start_date", "end_date"]);
        }
        for s in ["User", "Session", "SessionItem"] {
            assert!(doc["components"]["schemas"][s]["properties"].is_object());
        }
    }
}
