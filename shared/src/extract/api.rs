//! Extraction of the DeFtunes API (`/users`, `/sessions`) into `landing_zone/api/<endpoint>/`.

use std::fmt;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::ndjson::{ArraySplitter, PartSpooler, SpooledPart};
use super::{
    date_field, eventbridge_schedule_time, parse_request, publish_parts, summary, time_field,
    ExtractBatch, ExtractSummary, LandingKey,
};
use crate::config::ApiExtractConfig;
use crate::error::{Error, Result};
use crate::pipeline::{Pipeline, RecordsPath, SourceSpec, WindowParams};
use crate::storage::Lake;
use crate::window::{Granularity, Tz, Window};

/// A REST source of the pipeline spec: where to call and where its records land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The source's name in the spec (`users`): requests name it and it starts the file names.
    pub name: String,
    /// The landing-zone source folder (`api/users`).
    pub landing: String,
    /// Path under the base URL (`/users`).
    pub path: String,
    /// Query parameters carrying the window's first and last day; `None`: the endpoint takes no
    /// window and each extraction reads what it serves.
    pub window: Option<WindowParams>,
    /// Where the record array sits in a response wrapping it (`data.items`: fields and indexes
    /// from the top); `None`: the response is the array, streamed.
    pub records: Option<RecordsPath>,
}

/// The largest wrapped response read (it is parsed whole, unlike a bare array, which streams):
/// a larger one is refused, naming the limit. Paged sources keep pages far below it.
pub const MAX_WRAPPED_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

impl Endpoint {
    /// The REST sources of `pipeline`, in spec order.
    pub fn all(pipeline: &Pipeline) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for (name, source) in &pipeline.spec.sources {
            if let SourceSpec::Rest {
                landing,
                path,
                window,
                records,
                ..
            } = source.get_ref()
            {
                let records = records
                    .as_deref()
                    .map(RecordsPath::parse)
                    .transpose()
                    .map_err(|m| {
                        Error::Configuration(format!(
                            "pipeline {}: source {name}: {m}",
                            pipeline.spec.name
                        ))
                    })?;
                out.push(Endpoint {
                    name: name.clone(),
                    landing: landing.clone(),
                    path: path.clone(),
                    window: window.clone(),
                    records,
                });
            }
        }
        Ok(out)
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The landing-zone source folder, e.g. `api/users`.
    pub fn source(&self) -> &str {
        &self.landing
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// One extraction to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiJob {
    pub endpoint: Endpoint,
    pub window: Window,
    /// The landing partition. Defaults to the window's first day (the run's logical date, as
    /// Airflow's `ds`), so the keys of a window never depend on when it ran.
    pub ingest_date: NaiveDate,
}

impl ApiJob {
    pub fn new(endpoint: Endpoint, window: Window, ingest_date: Option<NaiveDate>) -> Self {
        ApiJob {
            endpoint,
            window,
            ingest_date: ingest_date.unwrap_or(window.start_date),
        }
    }

    /// Every part of this (endpoint, window) starts with this key prefix.
    pub fn stem(&self) -> String {
        format!(
            "{}{}_{}_{}.",
            LandingKey::partition(self.endpoint.source(), self.ingest_date),
            self.endpoint,
            self.window.start_date,
            self.window.end_date
        )
    }
}

/// The request a state machine (or a person) sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiExtractRequest {
    /// The spec's source name (`endpoint`, its older name, is accepted).
    #[serde(alias = "endpoint")]
    source: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    ingest_date: Option<String>,
    /// Set by EventBridge Scheduler (`<aws.scheduler.scheduled-time>`) when no dates are given.
    scheduled_time: Option<String>,
}

/// Turns an invocation payload into jobs of `endpoints`:
/// - `{"source", "start_date", "end_date", "ingest_date"?}`: that window;
/// - `{"source", "scheduled_time"?}`: the previous period before the scheduled time (or now);
/// - an EventBridge "Scheduled Event": the previous period, for every endpoint.
///
/// "Previous" is on the calendar of `tz`, the schedule's time zone.
pub fn plan(
    payload: &Value,
    endpoints: &[Endpoint],
    granularity: Granularity,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<ApiJob>> {
    if let Some(time) = eventbridge_schedule_time(payload)? {
        let window = Window::previous(granularity, time, tz);
        return Ok(endpoints
            .iter()
            .map(|e| ApiJob::new(e.clone(), window, None))
            .collect());
    }
    const WHAT: &str = "api-extract request";
    let req: ApiExtractRequest = parse_request(payload, WHAT)?;
    let start_date = date_field(WHAT, "start_date", req.start_date.as_deref())?;
    let end_date = date_field(WHAT, "end_date", req.end_date.as_deref())?;
    let ingest_date = date_field(WHAT, "ingest_date", req.ingest_date.as_deref())?;
    let scheduled_time = time_field(WHAT, "scheduled_time", req.scheduled_time.as_deref())?;
    let names = || {
        endpoints
            .iter()
            .map(|e| format!("{:?}", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = req.source.as_deref().ok_or_else(|| {
        Error::InvalidInput(format!(
            "api-extract request: \"source\" is required (one of {})",
            names()
        ))
    })?;
    let endpoint = endpoints
        .iter()
        .find(|e| e.name == name)
        .cloned()
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "api-extract request: unknown source {name:?}: expected one of {}",
                names()
            ))
        })?;
    let window = match (start_date, end_date) {
        (Some(s), Some(e)) => Window::new(s, e)?,
        (None, None) => Window::previous(granularity, scheduled_time.unwrap_or(now), tz),
        _ => {
            return Err(Error::InvalidInput(
                "api-extract request: give both start_date and end_date, or neither".into(),
            ))
        }
    };
    Ok(vec![ApiJob::new(endpoint, window, ingest_date)])
}

/// Maps a transport failure; all of them may succeed on a later try.
fn transport_err(url: &str, e: reqwest::Error) -> Error {
    use std::error::Error as _;
    let mut msg = format!("GET {url}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    Error::SourceUnavailable(msg)
}

pub struct ApiExtractor {
    http: reqwest::Client,
    cfg: ApiExtractConfig,
    lake: Lake,
}

impl ApiExtractor {
    pub fn new(cfg: ApiExtractConfig, lake: Lake) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .read_timeout(cfg.timeout)
            .user_agent(concat!("deftunes-api-extract/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Configuration(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiExtractor { http, cfg, lake })
    }

    /// Builds everything from the environment (the Lambda's cold start).
    pub async fn from_env() -> Result<Self> {
        let cfg = ApiExtractConfig::from_env(&crate::config::ProcessEnv)?;
        let lake = Lake::from_uri(&cfg.landing.lake_uri, cfg.landing.s3_force_path_style).await?;
        Self::new(cfg, lake)
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Handles one invocation payload; the output is an [`ExtractSummary`] for one job, an
    /// [`ExtractBatch`] for several.
    pub async fn handle(&self, payload: &Value) -> Result<Value> {
        self.handle_at(payload, Utc::now()).await
    }

    /// [`Self::handle`] with an explicit clock (windows derived from "now").
    pub async fn handle_at(&self, payload: &Value, now: DateTime<Utc>) -> Result<Value> {
        let jobs = plan(
            payload,
            &self.cfg.endpoints,
            self.cfg.granularity,
            self.cfg.landing.timezone,
            now,
        )?;
        let mut done = Vec::with_capacity(jobs.len());
        for job in &jobs {
            done.push(self.extract(job).await?);
        }
        let out = if done.len() == 1 {
            serde_json::to_value(&done[0])
        } else {
            serde_json::to_value(ExtractBatch::new(done))
        };
        out.map_err(|e| Error::InvalidInput(format!("cannot serialize the summary: {e}")))
    }

    fn url(&self, job: &ApiJob) -> Result<url::Url> {
        let mut url = self
            .cfg
            .api_base_url
            // Relative: the base URL's path (`/prod/`) is kept.
            .join(job.endpoint.path.trim_start_matches('/'))
            .map_err(|e| {
                Error::Configuration(format!(
                    "API_BASE_URL cannot be joined with {}: {e}",
                    job.endpoint.path
                ))
            })?;
        if let Some(w) = &job.endpoint.window {
            url.query_pairs_mut()
                .append_pair(&w.start, &job.window.start_date.to_string())
                .append_pair(&w.end, &job.window.end_date.to_string());
        }
        Ok(url)
    }

    /// One attempt: sends the request and streams the whole body into fresh parts. A 4xx other
    /// than 408/429 is final; so is a body that is not a JSON array (or, with `records`, an
    /// object holding one there).
    async fn download(
        &self,
        url: &url::Url,
        records: Option<&RecordsPath>,
    ) -> Result<Vec<SpooledPart>> {
        let sent = tokio::time::timeout(self.cfg.timeout, self.http.get(url.clone()).send()).await;
        let resp = match sent {
            Err(_) => {
                return Err(Error::SourceUnavailable(format!(
                    "GET {url}: no response within {:?}",
                    self.cfg.timeout
                )))
            }
            Ok(r) => r.map_err(|e| transport_err(url.as_str(), e))?,
        };
        let status = resp.status();
        if !status.is_success() {
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let msg = format!("GET {url}: HTTP {status}: {body}");
            return if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                Err(Error::SourceUnavailable(msg))
            } else {
                Err(Error::SourceRejected(msg))
            };
        }
        let mut spooler =
            PartSpooler::new(&self.cfg.landing.spool_dir, self.cfg.landing.part_max_bytes);
        let mut body = resp.bytes_stream();
        if let Some(path) = records {
            let what = format!("GET {url}");
            let mut whole = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::SourceUnavailable(format!(
                        "{what}: response body interrupted after {} bytes: {e}",
                        whole.len()
                    ))
                })?;
                if whole.len() + chunk.len() > MAX_WRAPPED_RESPONSE_BYTES {
                    return Err(Error::InvalidSourcePayload(format!(
                        "{what}: a response wrapping its records (records = {:?}) is read whole, and this one is larger than {MAX_WRAPPED_RESPONSE_BYTES} bytes",
                        path.text
                    )));
                }
                whole.extend_from_slice(&chunk);
            }
            let doc: Value = serde_json::from_slice(&whole)
                .map_err(|e| Error::InvalidSourcePayload(format!("{what}: not JSON: {e}")))?;
            for record in path.records(&doc, &what)? {
                let line = serde_json::to_vec(record).map_err(|e| {
                    Error::InvalidSourcePayload(format!("{what}: cannot re-encode a record: {e}"))
                })?;
                spooler.write_line(&line)?;
            }
            return spooler.finish();
        }
        let mut splitter = ArraySplitter::new(format!("GET {url}"));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::SourceUnavailable(format!(
                    "GET {url}: response body interrupted after {} records: {e}",
                    splitter.records()
                ))
            })?;
            splitter.feed(&chunk, &mut |rec| spooler.write_line(rec))?;
        }
        splitter.finish()?;
        spooler.finish()
    }

    /// [`Self::download`], retrying timeouts (also in the middle of the body), connection
    /// failures, 408, 429 and 5xx with exponential backoff and jitter. Each attempt starts
    /// from an empty spool, so a retry never mixes two responses.
    async fn fetch(
        &self,
        url: &url::Url,
        records: Option<&RecordsPath>,
    ) -> Result<Vec<SpooledPart>> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.cfg.retry_base_delay)
            .with_max_delay(self.cfg.retry_base_delay.saturating_mul(32))
            .with_max_times(self.cfg.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        (|| self.download(url, records))
            .retry(backoff)
            .when(Error::is_retryable)
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "request failed, retrying"))
            .await
    }

    /// Extracts one (endpoint, window) into the landing zone.
    pub async fn extract(&self, job: &ApiJob) -> Result<ExtractSummary> {
        let started = std::time::Instant::now();
        let url = self.url(job)?;
        tracing::info!(endpoint = %job.endpoint, window = %job.window, ingest_date = %job.ingest_date, url = %url, "extracting");
        let parts = self.fetch(&url, job.endpoint.records.as_ref()).await?;
        let (objects, removed) = publish_parts(&self.lake, &job.stem(), parts).await?;
        let s = summary(
            job.endpoint.source(),
            Some(job.window),
            job.ingest_date,
            objects,
            removed,
        );
        tracing::info!(endpoint = %job.endpoint, records = s.records, bytes = s.bytes, objects = s.objects.len(), "extracted");
        super::emit_metrics(&self.cfg.metrics, &job.endpoint.name, &s, started);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 4, 2, 6, 0, 0).unwrap()
    }
    fn endpoints() -> Vec<Endpoint> {
        Endpoint::all(&crate::pipeline::repo_pipeline("deftunes").unwrap()).unwrap()
    }

    fn plan(
        payload: &Value,
        granularity: Granularity,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Result<Vec<ApiJob>> {
        super::plan(payload, &endpoints(), granularity, tz, now)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn explicit_window_with_default_ingest_date() {
        let jobs = plan(
            &json!({"endpoint": "sessions", "start_date": "2020-01-01", "end_date": "2020-01-31"}),
            Granularity::Day,
            Tz::UTC,
            now(),
        )
        .unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].endpoint.name, "sessions");
        assert_eq!(
            jobs[0].window,
            Window::new(d("2020-01-01"), d("2020-01-31")).unwrap()
        );
        assert_eq!(jobs[0].ingest_date, d("2020-01-01"));
        assert_eq!(
            jobs[0].stem(),
            "landing_zone/api/sessions/ingest_on=2020-01-01/sessions_2020-01-01_2020-01-31."
        );
    }

    #[test]
    fn ingest_date_override_moves_the_partition() {
        let jobs = plan(
            &json!({"endpoint": "users", "start_date": "2020-01-01", "end_date": "2020-01-31", "ingest_date": "2020-02-01"}),
            Granularity::Day,
            Tz::UTC,
            now(),
        )
        .unwrap();
        assert!(jobs[0].stem().starts_with(
            "landing_zone/api/users/ingest_on=2020-02-01/users_2020-01-01_2020-01-31."
        ));
    }

    #[test]
    fn missing_dates_mean_the_previous_period() {
        let jobs = plan(
            &json!({"endpoint": "users"}),
            Granularity::Month,
            Tz::UTC,
            now(),
        )
        .unwrap();
        assert_eq!(
            jobs[0].window,
            Window::new(d("2020-03-01"), d("2020-03-31")).unwrap()
        );
        let jobs = plan(
            &json!({"endpoint": "users", "start_date": null, "end_date": null, "scheduled_time": "2020-02-01T00:00:00Z"}),
            Granularity::Day,
            Tz::UTC,
            now(),
        )
        .unwrap();
        assert_eq!(
            jobs[0].window,
            Window::new(d("2020-01-31"), d("2020-01-31")).unwrap()
        );
    }

    #[test]
    fn scheduled_eventbridge_event_extracts_both_endpoints() {
        let jobs = plan(
            &json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                    "account": "1", "time": "2020-03-01T02:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}),
            Granularity::Month,
            Tz::UTC,
            now(),
        )
        .unwrap();
        assert_eq!(
            jobs.iter()
                .map(|j| j.endpoint.name.as_str())
                .collect::<Vec<_>>(),
            ["sessions", "users"]
        );
        assert!(jobs
            .iter()
            .all(|j| j.window == Window::new(d("2020-02-01"), d("2020-02-29")).unwrap()));
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let cases = [
            (
                json!({"start_date": "2020-01-01", "end_date": "2020-01-31"}),
                "\"source\" is required (one of \"sessions\", \"users\")",
            ),
            (json!({"endpoint": "songs"}), "unknown source \"songs\""),
            (
                json!({"source": "playlists"}),
                "unknown source \"playlists\"",
            ),
            (
                json!({"endpoint": "users", "start_date": "2020-01-01"}),
                "both",
            ),
            (
                json!({"endpoint": "users", "start_date": "2020-13-01", "end_date": "2020-12-31"}),
                "2020-13-01",
            ),
            (
                json!({"endpoint": "users", "start_date": "2020-02-01", "end_date": "2020-01-01"}),
                "before",
            ),
            (
                json!({"endpoint": "users", "start-date": "2020-02-01"}),
                "start-date",
            ),
            (json!(["users"]), "api-extract request"),
        ];
        for (payload, needle) in cases {
            let e = plan(&payload, Granularity::Day, Tz::UTC, now()).unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{payload}");
            assert!(e.to_string().contains(needle), "{payload}: {e}");
        }
    }
}
