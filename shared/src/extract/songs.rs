//! Extraction of the SQL sources of a pipeline spec (DeFtunes: the songs catalogue,
//! `deftunes.songs` in PostgreSQL / RDS) into `landing_zone/<landing>/ingest_on=YYYY-MM-DD/`.
//!
//! PostgreSQL renders each row as JSON itself (`row_to_json`), so numbers stay numbers, nulls stay
//! null and the column order is the table's: the landing zone keeps the source types.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::{pin_mut, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ndjson::PartSpooler;
use super::{
    date_field, eventbridge_schedule_time, parse_request, publish_parts, summary, time_field,
    ExtractSummary, LandingKey,
};
use crate::config::{DbConfig, PasswordSource, PgConfig, SongsExtractConfig, SslMode};
use crate::error::{aws_sdk_failure, Error, Result};
use crate::pipeline::{Pipeline, SourceSpec, SqlEngine};
use crate::storage::Lake;
use crate::window::{local_date, Tz};

/// A SQL source of the pipeline spec: what to read and where it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSource {
    /// The source's name in the spec (`songs`): requests name it and it starts the file names.
    pub name: String,
    /// The landing-zone source folder (`rds/songs`).
    pub landing: String,
    /// The server kind: which connection reads it and how identifiers are quoted.
    pub engine: SqlEngine,
    pub relation: Relation,
    /// Incremental extraction (spec `incremental_column`); `None`: every run reads it all.
    pub incremental: Option<Incremental>,
}

/// An incremental SQL source: the column growing with new rows and where its high-water mark
/// is kept between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    pub column: String,
    /// Lake key of the watermark: `state/<pipeline>/<source>.watermark.json`.
    pub state_key: String,
}

/// The high-water mark of an incremental source: the largest value of its column landed so far,
/// as PostgreSQL's text of it, with the column's type to read it back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub column: String,
    #[serde(rename = "type")]
    pub pg_type: String,
    pub value: String,
    pub ingest_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// `[schema.]table`, plain identifiers.
    Table(String),
    /// A `SELECT` whose rows are the records.
    Query(String),
}

impl SqlSource {
    /// The SQL sources of `pipeline`, in spec order.
    pub fn all(pipeline: &Pipeline) -> Result<Vec<SqlSource>> {
        let mut out = Vec::new();
        for (name, source) in &pipeline.spec.sources {
            if let SourceSpec::Sql {
                engine,
                landing,
                table,
                query,
                incremental_column,
                ..
            } = source.get_ref()
            {
                let incremental = match incremental_column {
                    None => None,
                    Some(c) => {
                        quote_ident(c).map_err(|m| {
                            Error::Configuration(format!(
                                "pipeline {}: source {name}: incremental_column: {m}",
                                pipeline.spec.name
                            ))
                        })?;
                        Some(Incremental {
                            column: c.clone(),
                            state_key: format!(
                                "{STATE_ZONE}/{}/{name}.watermark.json",
                                pipeline.spec.name
                            ),
                        })
                    }
                };
                let relation = match (table, query) {
                    (Some(t), None) => {
                        quote_table(t)?;
                        Relation::Table(t.clone())
                    }
                    (None, Some(q)) => Relation::Query(q.clone()),
                    // The spec loader refuses both and neither.
                    _ => {
                        return Err(Error::Configuration(format!(
                            "source {name}: give exactly one of table and query"
                        )))
                    }
                };
                out.push(SqlSource {
                    name: name.clone(),
                    landing: landing.clone(),
                    engine: *engine,
                    relation,
                    incremental,
                });
            }
        }
        Ok(out)
    }

    /// Every part of one day's extraction starts with this key prefix.
    pub fn stem(&self, ingest_date: NaiveDate) -> String {
        format!(
            "{}{}.",
            LandingKey::partition(&self.landing, ingest_date),
            self.name
        )
    }

    /// The parts of an incremental run reading from the watermark `since` (`None`: from the
    /// start) start with this: each range has its own objects, so a run never replaces the
    /// rows of an earlier range, and a rerun of the same range replaces its own.
    pub fn incremental_stem(&self, ingest_date: NaiveDate, since: Option<&str>) -> String {
        let token = match since {
            None => "start".to_string(),
            Some(v) => {
                let readable: String = v
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .take(32)
                    .collect();
                format!(
                    "{readable}-{:016x}",
                    twox_hash::XxHash3_64::oneshot(v.as_bytes())
                )
            }
        };
        format!(
            "{}{}.since-{token}.",
            LandingKey::partition(&self.landing, ingest_date),
            self.name
        )
    }

    /// What the extraction selects from, as SQL of its engine.
    fn select_from(&self) -> Result<String> {
        match &self.relation {
            Relation::Table(t) => quote_table_for(self.engine, t),
            Relation::Query(q) => Ok(format!("({q})")),
        }
    }

    fn describe(&self) -> String {
        match &self.relation {
            Relation::Table(t) => t.clone(),
            Relation::Query(_) => format!("the query of source {}", self.name),
        }
    }
}

/// Where extractors keep state between runs (watermarks), beside the landing zone.
pub const STATE_ZONE: &str = "state";

fn is_plain_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates a column name (a plain identifier) and returns it quoted.
pub fn quote_ident(name: &str) -> std::result::Result<String, String> {
    if is_plain_ident(name) {
        Ok(format!("\"{name}\""))
    } else {
        Err(format!(
            "{name:?} is not a column name made of letters, digits and underscores"
        ))
    }
}

/// Validates `schema.table` (plain identifiers only) and returns it quoted for PostgreSQL.
pub fn quote_table(name: &str) -> Result<String> {
    quote_table_for(SqlEngine::Postgres, name)
}

/// Validates `schema.table` (plain identifiers only) and returns it quoted for `engine`.
pub fn quote_table_for(engine: SqlEngine, name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty() || parts.len() > 2 || !parts.iter().all(|p| is_plain_ident(p)) {
        return Err(Error::Configuration(format!(
            "table {name:?} is not a [schema.]table name made of letters, digits and underscores"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| quote_for(engine, p))
        .collect::<Vec<_>>()
        .join("."))
}

/// A validated plain identifier, quoted for `engine`.
fn quote_for(engine: SqlEngine, ident: &str) -> String {
    match engine {
        SqlEngine::Postgres => format!("\"{ident}\""),
        SqlEngine::Mysql => super::mysql::quote(ident),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SongsExtractRequest {
    /// The spec's source name; absent: every SQL source of the pipeline.
    source: Option<String>,
    ingest_date: Option<String>,
    scheduled_time: Option<String>,
    /// Incremental sources: read everything, not only what follows the watermark.
    #[serde(default)]
    full: bool,
}

/// What an invocation asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRequest {
    /// Which source; `None`: all.
    pub source: Option<String>,
    /// The landing partition: `ingest_date` if given, else the day of the schedule (EventBridge
    /// event or Scheduler's `scheduled_time`), else today, on the calendar of `tz`.
    pub ingest_date: NaiveDate,
    /// Incremental sources read their whole relation (a re-extract after a source repair);
    /// the watermark then moves to its end.
    pub full: bool,
}

pub fn plan(payload: &Value, tz: Tz, now: DateTime<Utc>) -> Result<SqlRequest> {
    if let Some(time) = eventbridge_schedule_time(payload)? {
        return Ok(SqlRequest {
            source: None,
            ingest_date: local_date(time, tz),
            full: false,
        });
    }
    const WHAT: &str = "songs-extract request";
    let req: SongsExtractRequest = parse_request(payload, WHAT)?;
    let ingest_date = date_field(WHAT, "ingest_date", req.ingest_date.as_deref())?;
    let scheduled_time = time_field(WHAT, "scheduled_time", req.scheduled_time.as_deref())?;
    Ok(SqlRequest {
        source: req.source,
        ingest_date: ingest_date.unwrap_or_else(|| local_date(scheduled_time.unwrap_or(now), tz)),
        full: req.full,
    })
}

/// Classifies database failures: connection trouble, shutdowns, resource exhaustion and
/// serialization failures are worth retrying; SQL and authentication errors are not.
fn pg_err(context: &str, e: tokio_postgres::Error) -> Error {
    use std::error::Error as _;
    let retryable = match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "40001"
                || c == "40P01"
                // statement_timeout: a busy or locked database, worth another try later.
                || c == "57014"
        }
        // No SQLSTATE: I/O, timeout, closed connection; or TLS, below.
        None => true,
    };
    let mut msg = format!("{context}: {e}");
    if let Some(src) = e.source() {
        msg.push_str(&format!(": {src}"));
    }
    if is_tls_setup_failure(&e) {
        // A server without TLS, an untrusted or mismatched certificate: retrying cannot help.
        return Error::Configuration(format!(
            "{msg} (check PG_SSLMODE and PG_SSL_ROOT_CERT against the server)"
        ));
    }
    if retryable {
        Error::SourceUnavailable(msg)
    } else {
        Error::SourceRejected(msg)
    }
}

/// A TLS handshake that failed for a reason of configuration, not of the network: every cause
/// but an I/O interruption (reset, EOF, timeout) during the handshake.
fn is_tls_setup_failure(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    if e.code().is_some() || !e.to_string().contains("TLS") {
        return false;
    }
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | UnexpectedEof | TimedOut | BrokenPipe
            ) {
                return false;
            }
        }
        src = s.source();
    }
    true
}

/// Accepts any server certificate: libpq's `sslmode=require` (encryption without authentication).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(pg: &PgConfig) -> Result<rustls::ClientConfig> {
    // Both ring and aws-lc-rs are linked (the AWS SDK brings the latter): name the provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Configuration(format!("TLS setup: {e}")))?;
    let config = match pg.sslmode {
        SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if let Some(path) = &pg.ssl_root_cert {
                use rustls::pki_types::pem::PemObject;
                let certs =
                    rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                        Error::Configuration(format!("PG_SSL_ROOT_CERT {}: {e}", path.display()))
                    })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        Error::Configuration(format!("PG_SSL_ROOT_CERT {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::Configuration(format!("PG_SSL_ROOT_CERT {}: {e}", path.display()))
                    })?;
                }
            }
            if roots.is_empty() {
                return Err(Error::Configuration(
                    "PG_SSLMODE=verify-full but no CA certificates were found (set PG_SSL_ROOT_CERT)".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Opens a connection; the connection task runs in the background until the client is dropped.
pub async fn connect(pg: &PgConfig, password: Option<&str>) -> Result<tokio_postgres::Client> {
    let mut c = tokio_postgres::Config::new();
    c.host(&pg.host)
        .port(pg.port)
        .dbname(&pg.database)
        .user(&pg.user)
        .connect_timeout(pg.connect_timeout)
        .application_name("deftunes-songs-extract");
    if let Some(p) = password {
        c.password(p);
    }
    let context = format!("connecting to {}", pg.target());
    let client = match pg.sslmode {
        SslMode::Disable => {
            let (client, conn) = c
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| pg_err(&context, e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "database connection closed with an error");
                }
            });
            client
        }
        _ => {
            c.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(pg)?);
            let (client, conn) = c.connect(tls).await.map_err(|e| pg_err(&context, e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "database connection closed with an error");
                }
            });
            client
        }
    };
    Ok(client)
}

/// Fetches the password named by the configuration (per invocation, so rotation is picked up).
pub async fn resolve_password(
    source: &PasswordSource,
    secrets: Option<&aws_sdk_secretsmanager::Client>,
) -> Result<Option<String>> {
    match source {
        PasswordSource::None => Ok(None),
        PasswordSource::Plain(p) => Ok(Some(p.clone())),
        PasswordSource::Secret { arn } => {
            let client = secrets.ok_or_else(|| {
                Error::Configuration(
                    "a database secret ARN is set but no Secrets Manager client was built".into(),
                )
            })?;
            let out = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    let (transient, detail) =
                        aws_sdk_failure(&e, &["InternalServiceError", "ThrottlingException"]);
                    let msg = format!("GetSecretValue {arn}: {detail}");
                    if transient {
                        Error::SourceUnavailable(msg)
                    } else {
                        Error::Configuration(msg)
                    }
                })?;
            let raw = out
                .secret_string()
                .ok_or_else(|| Error::Configuration(format!("secret {arn} has no SecretString")))?;
            Ok(Some(password_from_secret(raw).map_err(|m| {
                Error::Configuration(format!("secret {arn}: {m}"))
            })?))
        }
    }
}

/// The Secrets Manager client [`resolve_password`] needs for `source`: only for a secret.
pub async fn secrets_client(source: &PasswordSource) -> Option<aws_sdk_secretsmanager::Client> {
    match source {
        PasswordSource::Secret { .. } => Some(aws_sdk_secretsmanager::Client::new(
            &aws_config::load_from_env().await,
        )),
        _ => None,
    }
}

/// RDS-managed secrets are JSON (`{"username", "password", ...}`); a plain string is the password.
fn password_from_secret(raw: &str) -> std::result::Result<String, String> {
    if raw.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| format!("SecretString is not valid JSON: {e}"))?;
        // RDS-managed database secrets say `password`; OAuth client secrets `client_secret`.
        ["password", "client_secret"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| {
                "SecretString JSON has no string field \"password\" (or \"client_secret\")"
                    .to_string()
            })
    } else {
        Ok(raw.to_string())
    }
}

/// What one read of a source selects, in its engine's SQL.
pub(crate) struct ReadPlan<'a> {
    /// The relation, for messages.
    pub what: String,
    /// `FROM` target: the quoted table or the parenthesised query.
    pub from: String,
    /// The quoted incremental column.
    pub column: Option<String>,
    /// Read from this watermark on (inclusive); `None`: everything.
    pub since: Option<&'a Watermark>,
    pub source: &'a str,
    pub incremental: Option<&'a Incremental>,
    /// Where the watermark is kept, for messages.
    pub state_uri: String,
}

impl ReadPlan<'_> {
    /// Refuses a watermark kept for another type of the column: its text would compare wrongly.
    pub fn check_type(&self, db_type: &str) -> Result<()> {
        match (self.since, self.incremental) {
            (Some(w), Some(inc)) if w.pg_type != db_type => Err(Error::Configuration(format!(
                "source {}: column {} is now {db_type}, the watermark {} was kept as {}: delete it or run with \"full\": true",
                self.source, inc.column, self.state_uri, w.pg_type
            ))),
            _ => Ok(()),
        }
    }
}

/// What one read gave.
pub(crate) struct SourceRead {
    /// `false`: an incremental source's relation is empty: nothing lands, no watermark yet.
    pub rows: bool,
    /// An incremental source's new high-water mark: the largest value read and its type.
    pub upto: Option<(String, String)>,
}

/// Reads the relation of `plan` from PostgreSQL in one REPEATABLE READ snapshot into `spooler`.
async fn read_postgres(
    db: &DbConfig,
    password: Option<&str>,
    plan: &ReadPlan<'_>,
    spooler: &mut PartSpooler,
) -> Result<SourceRead> {
    let from = &plan.from;
    let client = connect(db, password).await?;
    let context = format!("reading {}", plan.what);
    // A SET rather than a startup option: RDS Proxy refuses startup options.
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            db.statement_timeout.as_millis()
        ))
        .await
        .map_err(|e| pg_err(&context, e))?;
    let (sql, params, upto) = match &plan.column {
        None => (
            format!("SELECT row_to_json(t)::text FROM {from} AS t"),
            vec![],
            None,
        ),
        Some(col) => {
            let row = client
                .query_one(
                    &format!(
                        "SELECT max(t.{col})::text, pg_typeof(max(t.{col}))::text FROM {from} AS t"
                    ),
                    &[],
                )
                .await
                .map_err(|e| pg_err(&context, e))?;
            let max: Option<String> = row.try_get(0).map_err(|e| pg_err(&context, e))?;
            let pg_type: String = row.try_get(1).map_err(|e| pg_err(&context, e))?;
            plan.check_type(&pg_type)?;
            let Some(max) = max else {
                // An empty relation: nothing to read, and no watermark yet.
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| pg_err(&context, e))?;
                return Ok(SourceRead {
                    rows: false,
                    upto: None,
                });
            };
            // The type comes from the server itself (pg_typeof), never from a request.
            let ty = &pg_type;
            let mut cond = format!("t.{col} <= CAST($1::text AS {ty})");
            let mut params = vec![max.clone()];
            if let Some(w) = plan.since {
                cond.push_str(&format!(" AND t.{col} >= CAST($2::text AS {ty})"));
                params.push(w.value.clone());
            }
            let sql = format!("SELECT row_to_json(t)::text FROM {from} AS t WHERE {cond}");
            (sql, params, Some((max, pg_type)))
        }
    };
    let rows = client
        .query_raw(sql.as_str(), params.iter())
        .await
        .map_err(|e| pg_err(&context, e))?;
    pin_mut!(rows);
    let mut n: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(|e| pg_err(&context, e))? {
        let line: &str = row.try_get(0).map_err(|e| pg_err(&context, e))?;
        spooler.write_line(line.as_bytes())?;
        n += 1;
        if n.is_multiple_of(100_000) {
            tracing::info!(rows = n, relation = %plan.what, "streaming");
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| pg_err(&context, e))?;
    Ok(SourceRead { rows: true, upto })
}

pub struct SongsExtractor {
    cfg: SongsExtractConfig,
    lake: Lake,
    secrets: Option<aws_sdk_secretsmanager::Client>,
}

impl SongsExtractor {
    pub fn new(
        cfg: SongsExtractConfig,
        lake: Lake,
        secrets: Option<aws_sdk_secretsmanager::Client>,
    ) -> Self {
        SongsExtractor { cfg, lake, secrets }
    }

    /// Builds everything from the environment (the Lambda's cold start).
    pub async fn from_env() -> Result<Self> {
        let cfg = SongsExtractConfig::from_env(&crate::config::ProcessEnv)?;
        let lake = Lake::from_uri(&cfg.landing.lake_uri, cfg.landing.s3_force_path_style).await?;
        let secret = [&cfg.pg, &cfg.mysql]
            .into_iter()
            .flatten()
            .find(|db| matches!(db.password, PasswordSource::Secret { .. }));
        let secrets = match secret {
            Some(db) => secrets_client(&db.password).await,
            None => None,
        };
        Ok(Self::new(cfg, lake, secrets))
    }

    /// Handles one invocation payload; the output is an [`ExtractSummary`] for one source, an
    /// [`ExtractBatch`] for several.
    pub async fn handle(&self, payload: &Value) -> Result<Value> {
        self.handle_at(payload, Utc::now()).await
    }

    /// [`Self::handle`] with an explicit clock (the default ingest date is today).
    pub async fn handle_at(&self, payload: &Value, now: DateTime<Utc>) -> Result<Value> {
        let SqlRequest {
            source,
            ingest_date,
            full,
        } = plan(payload, self.cfg.landing.timezone, now)?;
        let sources: Vec<&SqlSource> = match &source {
            None => self.cfg.sources.iter().collect(),
            Some(name) => vec![self
                .cfg
                .sources
                .iter()
                .find(|s| s.name == *name)
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "songs-extract request: unknown source {name:?}: expected one of {}",
                        self.cfg
                            .sources
                            .iter()
                            .map(|s| format!("{:?}", s.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?],
        };
        let mut done = Vec::with_capacity(sources.len());
        for s in sources {
            done.push(self.extract(s, ingest_date, full).await?);
        }
        let out = if done.len() == 1 {
            serde_json::to_value(&done[0])
        } else {
            serde_json::to_value(super::ExtractBatch::new(done))
        };
        out.map_err(|e| Error::InvalidInput(format!("cannot serialize the summary: {e}")))
    }

    /// Streams the relation of `source` into
    /// `landing_zone/<landing>/ingest_on=<ingest_date>/<name>.part-*.jsonl`: all of it, or for
    /// an incremental source (unless `full`) the rows from its watermark on, into
    /// `<name>.since-<watermark>.part-*.jsonl`.
    ///
    /// Incremental runs read the column's maximum and the rows up to it in one REPEATABLE READ
    /// snapshot, from the watermark *inclusive*: rows sharing the last value that commit later
    /// are still read, and the rows read twice are the same records, which the transform's
    /// record identity keeps once. The watermark moves only after the parts are published: a
    /// crash in between re-reads the same range into the same objects.
    pub async fn extract(
        &self,
        source: &SqlSource,
        ingest_date: NaiveDate,
        full: bool,
    ) -> Result<ExtractSummary> {
        let started = std::time::Instant::now();
        // A full read neither needs the old watermark nor trusts it.
        let watermark = match &source.incremental {
            Some(inc) if !full => self.watermark(source, inc).await?,
            _ => None,
        };
        let since = watermark.as_ref();
        let db = self.cfg.db(source.engine)?;
        let plan = ReadPlan {
            what: source.describe(),
            from: source.select_from()?,
            column: match &source.incremental {
                Some(inc) => Some(
                    quote_ident(&inc.column)
                        .map_err(Error::Configuration)
                        .map(|_| quote_for(source.engine, &inc.column))?,
                ),
                None => None,
            },
            since,
            source: &source.name,
            incremental: source.incremental.as_ref(),
            state_uri: source
                .incremental
                .as_ref()
                .map(|inc| self.lake.uri_of(&inc.state_key))
                .unwrap_or_default(),
        };
        tracing::info!(host = %db.host, source = %source.name, relation = %plan.what, %ingest_date, since = ?since.map(|w| &w.value), "extracting");
        let mut attempt = 1;
        let (read, parts) = loop {
            // Each attempt starts over in a fresh spool: a read cut short lands nothing.
            let mut spooler =
                PartSpooler::new(&self.cfg.landing.spool_dir, self.cfg.landing.part_max_bytes);
            let password = resolve_password(&db.password, self.secrets.as_ref()).await?;
            let result = match source.engine {
                SqlEngine::Postgres => {
                    read_postgres(db, password.as_deref(), &plan, &mut spooler).await
                }
                SqlEngine::Mysql => {
                    super::mysql::read(db, password.as_deref(), &plan, &mut spooler).await
                }
            };
            match result {
                Ok(read) => break (read, spooler),
                Err(e @ Error::SourceUnavailable(_)) if attempt < self.cfg.max_attempts => {
                    let wait = self.cfg.retry_base_delay * 2u32.saturating_pow(attempt - 1);
                    tracing::warn!(source = %source.name, attempt, error = %e, ?wait, "read failed, starting it over");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let (objects, removed) = if read.rows {
            let stem = match &source.incremental {
                None => source.stem(ingest_date),
                Some(_) => source.incremental_stem(ingest_date, since.map(|w| w.value.as_str())),
            };
            publish_parts(&self.lake, &stem, parts.finish()?).await?
        } else {
            (vec![], vec![])
        };
        if let (Some(inc), Some((value, db_type))) = (&source.incremental, read.upto) {
            let w = Watermark {
                column: inc.column.clone(),
                pg_type: db_type,
                value,
                ingest_date,
            };
            let body = serde_json::to_vec_pretty(&w)
                .map_err(|e| Error::InvalidInput(format!("cannot serialize the watermark: {e}")))?;
            self.lake.put_bytes(&inc.state_key, &body).await?;
        }
        let s = summary(&source.landing, None, ingest_date, objects, removed);
        tracing::info!(
            source = %source.name,
            records = s.records,
            bytes = s.bytes,
            objects = s.objects.len(),
            attempts = attempt,
            "extracted"
        );
        super::emit_metrics(&self.cfg.metrics, &source.name, &s, started);
        Ok(s)
    }

    /// The watermark of an incremental source, `None` before its first run.
    pub async fn watermark(
        &self,
        source: &SqlSource,
        inc: &Incremental,
    ) -> Result<Option<Watermark>> {
        let Some(raw) = self.lake.get_optional(&inc.state_key).await? else {
            return Ok(None);
        };
        let w: Watermark = serde_json::from_slice(&raw).map_err(|e| {
            Error::Configuration(format!(
                "source {}: the watermark {} is not readable ({e}): repair or delete it (a run with \"full\": true rewrites it)",
                source.name,
                self.lake.uri_of(&inc.state_key)
            ))
        })?;
        if w.column != inc.column {
            return Err(Error::Configuration(format!(
                "source {}: the watermark {} was kept for column {:?}, the spec now says {:?}: delete it or run with \"full\": true",
                source.name,
                self.lake.uri_of(&inc.state_key),
                w.column,
                inc.column
            )));
        }
        Ok(Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_smithy_mocks::{mock, mock_client};
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn sql_sources_come_from_the_spec_with_their_landing_stems() {
        let p = crate::pipeline::repo_pipeline("deftunes").unwrap();
        let sources = SqlSource::all(&p).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(
            sources[0].relation,
            Relation::Table("deftunes.songs".into())
        );
        let d = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert_eq!(
            sources[0].stem(d),
            "landing_zone/rds/songs/ingest_on=2020-01-01/songs."
        );
        let query = SqlSource {
            name: "recent".into(),
            landing: "rds/recent".into(),
            engine: SqlEngine::Postgres,
            relation: Relation::Query("SELECT * FROM deftunes.songs WHERE year > 2000".into()),
            incremental: None,
        };
        // Each incremental range has its own objects, never the full run's.
        let first = query.incremental_stem(d, None);
        assert_eq!(
            first,
            "landing_zone/rds/recent/ingest_on=2020-01-01/recent.since-start."
        );
        let later = query.incremental_stem(d, Some("2020-03-01 10:00:00.5"));
        assert!(
            later.starts_with(
                "landing_zone/rds/recent/ingest_on=2020-01-01/recent.since-2020-03-01-10-00-00-5-"
            ),
            "{later}"
        );
        assert_ne!(
            later,
            query.incremental_stem(d, Some("2020-03-01 10:00:00/5"))
        );
        assert_eq!(
            query.select_from().unwrap(),
            "(SELECT * FROM deftunes.songs WHERE year > 2000)"
        );
    }

    #[test]
    fn table_names_are_validated_and_quoted() {
        assert_eq!(
            quote_table("deftunes.songs").unwrap(),
            "\"deftunes\".\"songs\""
        );
        assert_eq!(quote_table("songs").unwrap(), "\"songs\"");
        for bad in [
            "",
            "a.b.c",
            "songs;drop",
            "1abc",
            "a b",
            "deftunes.\"songs\"",
        ] {
            assert!(quote_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ingest_date_from_request_schedule_or_now() {
        let now = Utc.with_ymd_and_hms(2020, 4, 2, 6, 0, 0).unwrap();
        assert_eq!(
            plan(&json!({}), Tz::UTC, now)
                .unwrap()
                .ingest_date
                .to_string(),
            "2020-04-02"
        );
        assert_eq!(
            plan(&json!({"ingest_date": "2020-01-01"}), Tz::UTC, now)
                .unwrap()
                .ingest_date
                .to_string(),
            "2020-01-01"
        );
        assert_eq!(
            plan(
                &json!({"scheduled_time": "2020-03-01T00:00:00Z"}),
                Tz::UTC,
                now
            )
            .unwrap()
            .ingest_date
            .to_string(),
            "2020-03-01"
        );
        assert_eq!(
            plan(
                &json!({"detail-type": "Scheduled Event", "time": "2020-02-01T00:00:00Z"}),
                Tz::UTC,
                now
            )
            .unwrap()
            .ingest_date
            .to_string(),
            "2020-02-01"
        );
        assert_eq!(
            plan(&json!({"source": "songs"}), Tz::UTC, now)
                .unwrap()
                .source
                .as_deref(),
            Some("songs")
        );
        // A 01:30 run in Tokyo lands under Tokyo's date, not UTC's day before.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(
            plan(
                &json!({"scheduled_time": "2020-02-29T16:30:00Z"}),
                tokyo,
                now
            )
            .unwrap()
            .ingest_date
            .to_string(),
            "2020-03-01"
        );
        let e = plan(&json!({"ingest": "2020-01-01"}), Tz::UTC, now).unwrap_err();
        assert!(e.to_string().contains("ingest"), "{e}");
    }

    #[test]
    fn secret_formats() {
        assert_eq!(password_from_secret("s3cr3t").unwrap(), "s3cr3t");
        assert_eq!(
            password_from_secret(r#"{"username":"u","password":"p w"}"#).unwrap(),
            "p w"
        );
        assert_eq!(
            password_from_secret(r#"{"client_id":"c","client_secret":"s"}"#).unwrap(),
            "s"
        );
        assert!(password_from_secret(r#"{"username":"u"}"#)
            .unwrap_err()
            .contains("password"));
        assert!(password_from_secret("{not json")
            .unwrap_err()
            .contains("JSON"));
    }

    #[tokio::test]
    async fn password_comes_from_secrets_manager() {
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(|r| r.secret_id() == Some("arn:db"))
            .then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(r#"{"username":"postgres","password":"from-secret"}"#)
                    .build()
            });
        let client = mock_client!(aws_sdk_secretsmanager, [&rule]);
        let got = resolve_password(
            &PasswordSource::Secret {
                arn: "arn:db".into(),
            },
            Some(&client),
        )
        .await
        .unwrap();
        assert_eq!(got.as_deref(), Some("from-secret"));
    }

    #[tokio::test]
    async fn missing_secret_is_a_configuration_error() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no such secret")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_secretsmanager, [&rule]);
        let e = resolve_password(
            &PasswordSource::Secret {
                arn: "arn:gone".into(),
            },
            Some(&client),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "Configuration", "{e}");
        assert!(e.to_string().contains("arn:gone"), "{e}");
    }
}
