//! Extraction of the DeFtunes API (`/users`, `/sessions`) into `landing_zone/api/<endpoint>/`.

use std::fmt;

use std::time::Duration;

use backon::ExponentialBuilder;
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
use crate::pipeline::{Paging, Pipeline, RecordsPath, RestAuth, SourceSpec, WindowParams};
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
    /// OAuth 2.0 bearer token on every request.
    pub auth: Option<RestAuth>,
    /// Pages read one after another into the same extraction.
    pub paging: Option<PageWalk>,
}

/// How to find the pages of a paged source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageWalk {
    /// The next page's URL at this path of each response.
    NextUrl(RecordsPath),
    Offset {
        limit: u32,
        offset_param: String,
        limit_param: String,
    },
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
                auth,
                paging,
                ..
            } = source.get_ref()
            {
                let paging = match paging {
                    None => None,
                    Some(Paging::NextUrl { next }) => Some(PageWalk::NextUrl(
                        RecordsPath::parse(next).map_err(|m| {
                            Error::Configuration(format!(
                                "pipeline {}: source {name}: paging next: {m}",
                                pipeline.spec.name
                            ))
                        })?,
                    )),
                    Some(Paging::Offset {
                        limit,
                        offset_param,
                        limit_param,
                    }) => Some(PageWalk::Offset {
                        limit: *limit,
                        offset_param: offset_param.clone(),
                        limit_param: limit_param.clone(),
                    }),
                };
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
                    auth: *auth,
                    paging,
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

/// Sets (or replaces) query parameters of `url`, keeping the others in order.
fn set_query(url: &mut url::Url, params: &[(&String, &str)]) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !params.iter().any(|(p, _)| p.as_str() == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    for (k, v) in params {
        q.append_pair(k, v);
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
fn transport_err(request: &str, e: reqwest::Error) -> Error {
    use std::error::Error as _;
    let mut msg = format!("{request}: {e}");
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
    /// For an OAuth client secret kept in Secrets Manager.
    secrets: Option<aws_sdk_secretsmanager::Client>,
    /// The bearer token of the OAuth sources, until it expires or is refused.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    /// Refreshed from this instant on: a little before the server's expiry.
    refresh_at: std::time::Instant,
}

/// A request that failed, with what the server said of the next one.
struct Failure {
    error: Error,
    /// The `Retry-After` of a 429 or 503.
    retry_after: Option<Duration>,
    /// HTTP 401: the bearer token was refused.
    unauthorized: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
            unauthorized: false,
        }
    }
}

/// The delay of a `Retry-After` header: seconds, or an HTTP date.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let raw = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or_default())
}

/// Pages of one extraction at most: a paging that never ends is refused rather than followed.
pub const MAX_PAGES: usize = 100_000;

impl ApiExtractor {
    pub fn new(cfg: ApiExtractConfig, lake: Lake) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .read_timeout(cfg.timeout)
            .user_agent(concat!("deftunes-api-extract/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Configuration(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiExtractor {
            http,
            cfg,
            lake,
            secrets: None,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Builds everything from the environment (the Lambda's cold start).
    pub async fn from_env() -> Result<Self> {
        let cfg = ApiExtractConfig::from_env(&crate::config::ProcessEnv)?;
        let lake = Lake::from_uri(&cfg.landing.lake_uri, cfg.landing.s3_force_path_style).await?;
        let secrets = match &cfg.oauth {
            Some(o) => super::songs::secrets_client(&o.client_secret).await,
            None => None,
        };
        let mut ex = Self::new(cfg, lake)?;
        ex.secrets = secrets;
        Ok(ex)
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

    /// A bearer token for the OAuth sources: the cached one, or a new one from the token
    /// endpoint (client credentials in HTTP Basic, as RFC 6749 prefers).
    async fn bearer(&self) -> std::result::Result<String, Failure> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached
            .as_ref()
            .filter(|t| std::time::Instant::now() < t.refresh_at)
        {
            return Ok(t.value.clone());
        }
        let oauth = self.cfg.oauth.as_ref().ok_or_else(|| {
            Error::Configuration(
                "a source needs OAuth 2.0 but no OAUTH_* settings were read".into(),
            )
        })?;
        let secret = super::songs::resolve_password(&oauth.client_secret, self.secrets.as_ref())
            .await?
            .unwrap_or_default();
        let url = &oauth.token_url;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &oauth.scope {
            form.push(("scope", scope));
        }
        let sent = self
            .http
            .post(url.clone())
            .basic_auth(&oauth.client_id, Some(&secret))
            .form(&form)
            .send();
        let resp = match tokio::time::timeout(self.cfg.timeout, sent).await {
            Err(_) => {
                return Err(Error::SourceUnavailable(format!(
                    "POST {url}: no response within {:?}",
                    self.cfg.timeout
                ))
                .into())
            }
            Ok(r) => r.map_err(|e| transport_err(&format!("POST {url}"), e))?,
        };
        let status = resp.status();
        let wait = retry_after(&resp);
        let body = resp.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(300).collect();
        if !status.is_success() {
            let msg = format!(
                "POST {url} (token for client {}): HTTP {status}: {excerpt}",
                oauth.client_id
            );
            return Err(
                if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Failure {
                        error: Error::SourceUnavailable(msg),
                        retry_after: wait,
                        unauthorized: false,
                    }
                } else {
                    // Wrong client id or secret, or a grant the server does not allow.
                    Error::Configuration(format!(
                        "{msg} (check OAUTH_CLIENT_ID and the client secret)"
                    ))
                    .into()
                },
            );
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_str(&body).map_err(|e| {
            Error::InvalidSourcePayload(format!(
                "POST {url}: not a token response ({e}): {excerpt}"
            ))
        })?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        // Refresh a little early (a tenth of the lifetime, at most a minute): a token never
        // expires between the check and the request.
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        tracing::info!(token_url = %url, ?lifetime, "new OAuth token");
        *cached = Some(CachedToken {
            value: t.access_token.clone(),
            refresh_at: std::time::Instant::now() + lifetime - margin,
        });
        Ok(t.access_token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends a GET with the source's authentication; a status other than 2xx is a [`Failure`]:
    /// 408, 429 and 5xx retryable (with their `Retry-After`), other 4xx final, 401 marked so a
    /// new token is tried once.
    async fn send(
        &self,
        url: &url::Url,
        auth: bool,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let mut req = self.http.get(url.clone());
        if auth {
            req = req.bearer_auth(self.bearer().await?);
        }
        let resp = match tokio::time::timeout(self.cfg.timeout, req.send()).await {
            Err(_) => {
                return Err(Error::SourceUnavailable(format!(
                    "GET {url}: no response within {:?}",
                    self.cfg.timeout
                ))
                .into())
            }
            Ok(r) => r.map_err(|e| transport_err(&format!("GET {url}"), e))?,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let wait = retry_after(&resp);
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let msg = format!("GET {url}: HTTP {status}: {body}");
        let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
        Err(Failure {
            error: if retryable {
                Error::SourceUnavailable(msg)
            } else {
                Error::SourceRejected(msg)
            },
            retry_after: wait,
            unauthorized: status.as_u16() == 401,
        })
    }

    /// Runs `attempt` until it succeeds, retrying timeouts (also in the middle of a body),
    /// connection failures, 408, 429 and 5xx with exponential backoff and jitter, never
    /// sooner than the server's `Retry-After`; a refused token (401) is replaced once.
    async fn with_retries<T, F, Fut>(&self, auth: bool, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Failure>>,
    {
        use backon::BackoffBuilder;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.cfg.retry_base_delay)
            .with_max_delay(self.cfg.retry_base_delay.saturating_mul(32))
            .with_max_times(self.cfg.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let mut refreshed = false;
        loop {
            let failure = match attempt().await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if failure.unauthorized && auth && !refreshed {
                refreshed = true;
                tracing::info!(error = %failure.error, "token refused, fetching a new one");
                self.forget_token().await;
                continue;
            }
            if !failure.error.is_retryable() {
                return Err(failure.error);
            }
            let Some(mut wait) = delays.next() else {
                return Err(failure.error);
            };
            if let Some(asked) = failure.retry_after {
                if asked > self.cfg.retry_after_max {
                    return Err(Error::SourceUnavailable(format!(
                        "{}: the server asks to wait {asked:?} (Retry-After), more than API_RETRY_AFTER_MAX_SECS ({:?})",
                        failure.error, self.cfg.retry_after_max
                    )));
                }
                wait = wait.max(asked);
            }
            tracing::warn!(error = %failure.error, ?wait, "request failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt at a bare-array response: streams the whole body into fresh parts (each
    /// attempt starts from an empty spool, so a retry never mixes two responses).
    async fn download_array(
        &self,
        url: &url::Url,
        auth: bool,
    ) -> std::result::Result<Vec<SpooledPart>, Failure> {
        let resp = self.send(url, auth).await?;
        let mut spooler =
            PartSpooler::new(&self.cfg.landing.spool_dir, self.cfg.landing.part_max_bytes);
        let mut body = resp.bytes_stream();
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
        Ok(spooler.finish()?)
    }

    /// One attempt at a wrapped response (a page): read whole, up to
    /// [`MAX_WRAPPED_RESPONSE_BYTES`], and parsed.
    async fn get_document(
        &self,
        url: &url::Url,
        auth: bool,
        records: &RecordsPath,
    ) -> std::result::Result<Value, Failure> {
        let resp = self.send(url, auth).await?;
        let what = format!("GET {url}");
        let mut body = resp.bytes_stream();
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
                    records.text
                ))
                .into());
            }
            whole.extend_from_slice(&chunk);
        }
        Ok(serde_json::from_slice(&whole)
            .map_err(|e| Error::InvalidSourcePayload(format!("{what}: not JSON: {e}")))?)
    }

    /// Reads every page of a wrapped (and possibly paged) source in order into one spool. A page
    /// lands its records only once read whole, so a page retried is never counted twice; a
    /// page URL seen twice (a paging loop) is refused.
    async fn fetch_pages(
        &self,
        first: url::Url,
        endpoint: &Endpoint,
        records: &RecordsPath,
    ) -> Result<Vec<SpooledPart>> {
        let auth = endpoint.auth.is_some();
        let mut spooler =
            PartSpooler::new(&self.cfg.landing.spool_dir, self.cfg.landing.part_max_bytes);
        let mut url = first;
        let mut offset: u64 = 0;
        if let Some(PageWalk::Offset {
            limit,
            offset_param,
            limit_param,
        }) = &endpoint.paging
        {
            set_query(
                &mut url,
                &[(offset_param, "0"), (limit_param, &limit.to_string())],
            );
        }
        let mut seen = std::collections::HashSet::new();
        for page in 1.. {
            if page > MAX_PAGES {
                return Err(Error::InvalidSourcePayload(format!(
                    "source {}: more than {MAX_PAGES} pages",
                    endpoint.name
                )));
            }
            if !seen.insert(url.to_string()) {
                return Err(Error::InvalidSourcePayload(format!(
                    "source {}: page {url} comes a second time: the paging loops",
                    endpoint.name
                )));
            }
            let doc = self
                .with_retries(auth, || self.get_document(&url, auth, records))
                .await?;
            let what = format!("GET {url}");
            let items = records.records(&doc, &what)?;
            for record in items {
                let line = serde_json::to_vec(record).map_err(|e| {
                    Error::InvalidSourcePayload(format!("{what}: cannot re-encode a record: {e}"))
                })?;
                spooler.write_line(&line)?;
            }
            url = match &endpoint.paging {
                None => break,
                Some(PageWalk::NextUrl(path)) => match path.value_at(&doc) {
                    None | Some(Value::Null) => break,
                    Some(Value::String(s)) if s.is_empty() => break,
                    Some(Value::String(s)) => self.next_page(&url, s, &what)?,
                    Some(other) => {
                        return Err(Error::InvalidSourcePayload(format!(
                            "{what}: the next page ({}) is {other}, not a URL",
                            path.text
                        )))
                    }
                },
                Some(PageWalk::Offset {
                    limit,
                    offset_param,
                    ..
                }) => {
                    if items.len() < *limit as usize {
                        break;
                    }
                    offset += items.len() as u64;
                    let mut next = url.clone();
                    set_query(&mut next, &[(offset_param, &offset.to_string())]);
                    next
                }
            };
            tracing::debug!(source = %endpoint.name, page, "next page");
        }
        spooler.finish()
    }

    /// The next page's URL, resolved against the current one; it must stay on the API's own
    /// scheme, host and port, since the bearer token goes with it.
    fn next_page(&self, current: &url::Url, next: &str, what: &str) -> Result<url::Url> {
        let url = current.join(next).map_err(|e| {
            Error::InvalidSourcePayload(format!("{what}: next page {next:?} is not a URL: {e}"))
        })?;
        let base = &self.cfg.api_base_url;
        if url.origin() != base.origin() {
            return Err(Error::InvalidSourcePayload(format!(
                "{what}: next page {url} leaves the API ({}): refused, the token would go with it",
                base.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// Reads the whole answer of `endpoint` at `url`: one streamed array, or its pages.
    async fn fetch(&self, url: &url::Url, endpoint: &Endpoint) -> Result<Vec<SpooledPart>> {
        match &endpoint.records {
            Some(records) => self.fetch_pages(url.clone(), endpoint, records).await,
            None => {
                let auth = endpoint.auth.is_some();
                self.with_retries(auth, || self.download_array(url, auth))
                    .await
            }
        }
    }

    /// Extracts one (endpoint, window) into the landing zone.
    pub async fn extract(&self, job: &ApiJob) -> Result<ExtractSummary> {
        let started = std::time::Instant::now();
        let url = self.url(job)?;
        tracing::info!(endpoint = %job.endpoint, window = %job.window, ingest_date = %job.ingest_date, url = %url, "extracting");
        // Boxed: the paging, retry and token futures nest deep enough to overflow the
        // compiler's layout recursion limit in the handler's own future.
        let parts = Box::pin(self.fetch(&url, &job.endpoint)).await?;
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

    #[test]
    fn query_parameters_are_set_in_place_and_pages_stay_on_the_api() {
        let mut u = url::Url::parse("http://api.test/v1/artists?market=FR&offset=50").unwrap();
        set_query(
            &mut u,
            &[(&"offset".to_string(), "100"), (&"limit".to_string(), "50")],
        );
        assert_eq!(
            u.as_str(),
            "http://api.test/v1/artists?market=FR&offset=100&limit=50"
        );
        let env: std::collections::HashMap<String, String> = [
            ("LAKE_URI", "/tmp/lake"),
            ("API_BASE_URL", "http://api.test/"),
            (
                "PIPELINE_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ex = ApiExtractor::new(
            ApiExtractConfig::from_env(&env).unwrap(),
            Lake::local("/tmp/lake"),
        )
        .unwrap();
        let here = url::Url::parse("http://api.test/v1/albums?offset=0").unwrap();
        assert_eq!(
            ex.next_page(&here, "/v1/albums?offset=20", "GET x")
                .unwrap()
                .as_str(),
            "http://api.test/v1/albums?offset=20"
        );
        for foreign in [
            "http://evil.test/v1/albums",
            "https://api.test/v1/albums",
            "http://api.test:81/x",
        ] {
            let e = ex.next_page(&here, foreign, "GET x").unwrap_err();
            assert_eq!(e.error_type(), "InvalidSourcePayload", "{foreign}");
            assert!(e.to_string().contains("leaves the API"), "{e}");
        }
    }
}
