//! Typed configuration, one struct per function, read once at start-up from the environment.
//! Every variable is documented in the function's README table; errors name the variable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::window::{Granularity, Tz};

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned().filter(|v| !v.trim().is_empty())
    }
}

pub fn required(env: &dyn Env, name: &str) -> Result<String> {
    env.var(name).ok_or_else(|| {
        Error::Configuration(format!(
            "environment variable {name} is required but not set"
        ))
    })
}

pub fn parse_or<T>(env: &dyn Env, name: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match env.var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| {
            Error::Configuration(format!(
                "environment variable {name}={raw:?} is invalid: {e}"
            ))
        }),
    }
}

pub(crate) fn at_most(name: &str, v: u64, max: u64) -> Result<u64> {
    if v > max {
        return Err(Error::Configuration(format!(
            "environment variable {name}={v} is too large (at most {max})"
        )));
    }
    Ok(v)
}

pub(crate) fn positive<T: PartialEq + Default>(name: &str, v: T) -> Result<T> {
    if v == T::default() {
        return Err(Error::Configuration(format!(
            "environment variable {name} must be greater than 0"
        )));
    }
    Ok(v)
}

/// `WINDOW_GRANULARITY`: the period of a scheduled run (`day` or `month`).
pub fn window_granularity(env: &dyn Env) -> Result<Granularity> {
    parse_or(env, "WINDOW_GRANULARITY", Granularity::Day)
}

/// `WINDOW_TIMEZONE`: the IANA zone whose calendar a scheduled run's previous period follows.
pub fn window_timezone(env: &dyn Env) -> Result<Tz> {
    parse_or(env, "WINDOW_TIMEZONE", Tz::UTC)
}

/// A lake key prefix (`reports/runs/deftunes`): `name`, else `default`; slashes at the ends are
/// dropped, and a prefix that would leave the lake or name an empty folder is refused.
pub fn key_prefix(env: &dyn Env, name: &str, default: String) -> Result<String> {
    let raw = env.var(name).unwrap_or(default);
    let prefix = raw.trim().trim_matches('/');
    if prefix.is_empty()
        || prefix
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Error::Configuration(format!(
            "environment variable {name}={raw:?} is not a key prefix inside the lake (e.g. reports/runs/deftunes)"
        )));
    }
    Ok(prefix.to_string())
}

/// Settings both extract functions share: where the lake is and how parts are cut.
#[derive(Debug, Clone)]
pub struct LandingConfig {
    pub lake_uri: String,
    pub part_max_bytes: u64,
    pub spool_dir: PathBuf,
    pub s3_force_path_style: bool,
    /// The calendar of scheduled runs (`WINDOW_TIMEZONE`, the schedule's IANA zone).
    pub timezone: Tz,
}

pub const DEFAULT_PART_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl LandingConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        Ok(LandingConfig {
            lake_uri: required(env, "LAKE_URI")?,
            part_max_bytes: positive(
                "PART_MAX_BYTES",
                parse_or(env, "PART_MAX_BYTES", DEFAULT_PART_MAX_BYTES)?,
            )?,
            spool_dir: env
                .var("SPOOL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            s3_force_path_style: parse_or(env, "S3_FORCE_PATH_STYLE", false)?,
            timezone: window_timezone(env)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ApiExtractConfig {
    pub landing: LandingConfig,
    pub api_base_url: url::Url,
    /// The REST sources of the pipeline (`PIPELINE`, see [`crate::pipeline::pipeline_dir`]).
    pub endpoints: Vec<crate::extract::api::Endpoint>,
    pub granularity: Granularity,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
    /// The longest `Retry-After` of a 429 or 503 waited out within the invocation
    /// (`API_RETRY_AFTER_MAX_SECS`); a longer one fails as `SourceUnavailable` for the state
    /// machine to retry later.
    pub retry_after_max: Duration,
    /// `OAUTH_*`: present when a source of the pipeline authenticates with OAuth 2.0.
    pub oauth: Option<OAuthConfig>,
    /// One EMF line per source extracted (`METRICS`, see [`crate::metrics::Metrics`]).
    pub metrics: crate::metrics::Metrics,
}

/// OAuth 2.0 client credentials of the REST sources with `auth = "oauth2_client_credentials"`.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `OAUTH_TOKEN_URL`: the token endpoint (`https://accounts.example.com/api/token`).
    pub token_url: url::Url,
    /// `OAUTH_CLIENT_ID`.
    pub client_id: String,
    /// `OAUTH_CLIENT_SECRET_ARN` (Secrets Manager: the secret as a plain string, or JSON with
    /// `client_secret`) or `OAUTH_CLIENT_SECRET` (local only).
    pub client_secret: PasswordSource,
    /// `OAUTH_SCOPE`: sent when set.
    pub scope: Option<String>,
}

impl OAuthConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let raw = required(env, "OAUTH_TOKEN_URL")?;
        let token_url = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Configuration(format!("OAUTH_TOKEN_URL={raw:?} is not an http(s) URL"))
            })?;
        let client_secret = match (
            env.var("OAUTH_CLIENT_SECRET_ARN"),
            env.var("OAUTH_CLIENT_SECRET"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::Configuration(
                    "set either OAUTH_CLIENT_SECRET_ARN or OAUTH_CLIENT_SECRET, not both".into(),
                ))
            }
            (Some(arn), None) => PasswordSource::Secret { arn },
            (None, Some(p)) => PasswordSource::Plain(p),
            (None, None) => {
                return Err(Error::Configuration(
                    "environment variable OAUTH_CLIENT_SECRET_ARN (or OAUTH_CLIENT_SECRET) is required by an OAuth 2.0 source".into(),
                ))
            }
        };
        Ok(OAuthConfig {
            token_url,
            client_id: required(env, "OAUTH_CLIENT_ID")?,
            client_secret,
            scope: env.var("OAUTH_SCOPE"),
        })
    }
}

impl ApiExtractConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let raw = required(env, "API_BASE_URL")?;
        let mut api_base_url = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Configuration(format!("API_BASE_URL={raw:?} is not an http(s) URL"))
            })?;
        // `https://host/prod` names a folder: without the slash, joining `users` would drop `prod`.
        if !api_base_url.path().ends_with('/') {
            let path = format!("{}/", api_base_url.path());
            api_base_url.set_path(&path);
        }
        let pipeline = crate::pipeline::Pipeline::load(&crate::pipeline::pipeline_dir(env))?;
        let endpoints = crate::extract::api::Endpoint::all(&pipeline)?;
        if endpoints.is_empty() {
            return Err(Error::Configuration(format!(
                "pipeline {} declares no REST source for api-extract",
                pipeline.spec.name
            )));
        }
        let oauth = match endpoints.iter().any(|e| e.auth.is_some()) {
            true => Some(OAuthConfig::from_env(env)?),
            false => None,
        };
        Ok(ApiExtractConfig {
            oauth,
            metrics: crate::metrics::Metrics::from_env(env, &pipeline.spec.name)?,
            landing: LandingConfig::from_env(env)?,
            api_base_url,
            endpoints,
            granularity: window_granularity(env)?,
            timeout: Duration::from_secs(positive(
                "API_TIMEOUT_SECS",
                parse_or(env, "API_TIMEOUT_SECS", 30)?,
            )?),
            max_attempts: positive("API_MAX_ATTEMPTS", parse_or(env, "API_MAX_ATTEMPTS", 5u32)?)?,
            retry_base_delay: Duration::from_millis(at_most(
                "API_RETRY_BASE_MS",
                parse_or(env, "API_RETRY_BASE_MS", 500)?,
                60_000,
            )?),
            retry_after_max: Duration::from_secs(at_most(
                "API_RETRY_AFTER_MAX_SECS",
                parse_or(env, "API_RETRY_AFTER_MAX_SECS", 120)?,
                900,
            )?),
        })
    }
}

/// How the database connection is encrypted, named as libpq names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Encrypted, server certificate not verified (libpq's `require`).
    Require,
    /// Encrypted, certificate chain and host name verified.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "unknown sslmode {other:?} (expected disable, require or verify-full)"
            )),
        }
    }
}

/// Where the database password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// A Secrets Manager secret: a plain string or JSON with a `password` field (RDS-managed secrets).
    Secret {
        arn: String,
    },
    /// A literal, for the local stack only.
    Plain(String),
    None,
}

/// A database connection of a SQL source: `PG_*` variables for PostgreSQL, `MYSQL_*` for
/// MySQL/MariaDB, one struct for both.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub engine: SqlEngine,
    pub host: String,
    pub port: u16,
    /// The database connected to (PostgreSQL) or the default schema (MySQL; empty: none).
    pub database: String,
    pub user: String,
    pub password: PasswordSource,
    pub sslmode: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Server-side limit of one statement (`SET statement_timeout`, `max_execution_time`), so a
    /// stuck read fails with a typed error before the Lambda's own timeout.
    pub statement_timeout: Duration,
}

/// The PostgreSQL connection (`PG_*`).
pub type PgConfig = DbConfig;

pub use crate::pipeline::SqlEngine;

#[derive(Debug, Clone)]
pub struct SongsExtractConfig {
    pub landing: LandingConfig,
    /// `PG_*`: required when the pipeline has a PostgreSQL source.
    pub pg: Option<DbConfig>,
    /// `MYSQL_*`: required when the pipeline has a MySQL source.
    pub mysql: Option<DbConfig>,
    /// The SQL sources of the pipeline (`PIPELINE`, see [`crate::pipeline::pipeline_dir`]).
    pub sources: Vec<crate::extract::songs::SqlSource>,
    /// Reads of one source before a lost connection or an unavailable server fails the
    /// invocation (`SQL_MAX_ATTEMPTS`); each attempt starts the read over.
    pub max_attempts: u32,
    /// The first wait between attempts, doubled after each (`SQL_RETRY_BASE_MS`).
    pub retry_base_delay: Duration,
    /// One EMF line per source extracted (`METRICS`, see [`crate::metrics::Metrics`]).
    pub metrics: crate::metrics::Metrics,
}

impl DbConfig {
    /// The prefix of this engine's variables (`PG`, `MYSQL`), for messages.
    pub fn prefix(&self) -> &'static str {
        Self::prefix_of(self.engine)
    }

    fn prefix_of(engine: SqlEngine) -> &'static str {
        match engine {
            SqlEngine::Postgres => "PG",
            SqlEngine::Mysql => "MYSQL",
        }
    }

    /// `postgresql://user@host:port/database` or `mysql://...`, for messages (no password).
    pub fn target(&self) -> String {
        let scheme = match self.engine {
            SqlEngine::Postgres => "postgresql",
            SqlEngine::Mysql => "mysql",
        };
        format!(
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// The `PG_*` variables of songs-extract (also read by `deftunes load-songs`).
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        Self::from_env_for(env, SqlEngine::Postgres)
    }

    /// The variables of `engine`: `<P>_HOST` (required), `<P>_PORT`, `<P>_DATABASE`,
    /// `<P>_USER`, `<P>_PASSWORD` or `<P>_SECRET_ARN`, `<P>_SSLMODE`, `<P>_SSL_ROOT_CERT`,
    /// `<P>_CONNECT_TIMEOUT_SECS`, `<P>_STATEMENT_TIMEOUT_SECS`, with `P` = `PG` or `MYSQL`.
    pub fn from_env_for(env: &dyn Env, engine: SqlEngine) -> Result<Self> {
        // Each engine's names spelled out: a search for a variable finds where it is read.
        let raw = match engine {
            SqlEngine::Postgres => RawDb {
                host: required(env, "PG_HOST")?,
                port: parse_or(env, "PG_PORT", 5432)?,
                database: Some(parse_or(env, "PG_DATABASE", "postgres".to_string())?),
                user: Some(parse_or(env, "PG_USER", "postgres".to_string())?),
                secret_arn: env.var("PG_SECRET_ARN"),
                password: env.var("PG_PASSWORD"),
                sslmode: parse_or(env, "PG_SSLMODE", SslMode::Require)?,
                ssl_root_cert: env.var("PG_SSL_ROOT_CERT"),
                connect_timeout: parse_or(env, "PG_CONNECT_TIMEOUT_SECS", 10)?,
                statement_timeout: parse_or(env, "PG_STATEMENT_TIMEOUT_SECS", 600)?,
            },
            // MySQL has no default account worth assuming; tables name their schema.
            SqlEngine::Mysql => RawDb {
                host: required(env, "MYSQL_HOST")?,
                port: parse_or(env, "MYSQL_PORT", 3306)?,
                database: env.var("MYSQL_DATABASE"),
                user: env.var("MYSQL_USER"),
                secret_arn: env.var("MYSQL_SECRET_ARN"),
                password: env.var("MYSQL_PASSWORD"),
                sslmode: parse_or(env, "MYSQL_SSLMODE", SslMode::Require)?,
                ssl_root_cert: env.var("MYSQL_SSL_ROOT_CERT"),
                connect_timeout: parse_or(env, "MYSQL_CONNECT_TIMEOUT_SECS", 10)?,
                statement_timeout: parse_or(env, "MYSQL_STATEMENT_TIMEOUT_SECS", 600)?,
            },
        };
        let p = Self::prefix_of(engine);
        let password = match (raw.secret_arn, raw.password) {
            (Some(_), Some(_)) => {
                return Err(Error::Configuration(format!(
                    "set either {p}_SECRET_ARN or {p}_PASSWORD, not both"
                )))
            }
            (Some(arn), None) => PasswordSource::Secret { arn },
            (None, Some(pw)) => PasswordSource::Plain(pw),
            (None, None) => PasswordSource::None,
        };
        Ok(DbConfig {
            engine,
            host: raw.host,
            port: raw.port,
            database: raw.database.unwrap_or_default(),
            user: raw.user.ok_or_else(|| {
                Error::Configuration(format!(
                    "environment variable {p}_USER is required but not set"
                ))
            })?,
            password,
            sslmode: raw.sslmode,
            ssl_root_cert: raw.ssl_root_cert.map(PathBuf::from),
            connect_timeout: Duration::from_secs(positive(
                &format!("{p}_CONNECT_TIMEOUT_SECS"),
                raw.connect_timeout,
            )?),
            statement_timeout: Duration::from_secs(positive(
                &format!("{p}_STATEMENT_TIMEOUT_SECS"),
                raw.statement_timeout,
            )?),
        })
    }
}

/// The variables of one engine's connection, as read.
struct RawDb {
    host: String,
    port: u16,
    database: Option<String>,
    user: Option<String>,
    secret_arn: Option<String>,
    password: Option<String>,
    sslmode: SslMode,
    ssl_root_cert: Option<String>,
    connect_timeout: u64,
    statement_timeout: u64,
}

impl SongsExtractConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let pipeline = crate::pipeline::Pipeline::load(&crate::pipeline::pipeline_dir(env))?;
        let mut sources = crate::extract::songs::SqlSource::all(&pipeline)?;
        if sources.is_empty() {
            return Err(Error::Configuration(format!(
                "pipeline {} declares no SQL source for songs-extract",
                pipeline.spec.name
            )));
        }
        // Only the engines the pipeline reads need their settings.
        let uses = |e: SqlEngine| sources.iter().any(|s| s.engine == e);
        let pg = match uses(SqlEngine::Postgres) {
            true => Some(DbConfig::from_env_for(env, SqlEngine::Postgres)?),
            false => None,
        };
        let mysql = match uses(SqlEngine::Mysql) {
            true => Some(DbConfig::from_env_for(env, SqlEngine::Mysql)?),
            false => None,
        };
        if let Some(table) = env.var("SONGS_TABLE") {
            crate::extract::songs::quote_table(&table)
                .map_err(|e| Error::Configuration(format!("SONGS_TABLE: {e}")))?;
            let mut tables = sources
                .iter_mut()
                .filter(|s| matches!(s.relation, crate::extract::songs::Relation::Table(_)));
            match (tables.next(), tables.next()) {
                (Some(s), None) => s.relation = crate::extract::songs::Relation::Table(table),
                _ => {
                    return Err(Error::Configuration(format!(
                        "SONGS_TABLE={table:?}: the pipeline {} needs exactly one SQL table source to override",
                        pipeline.spec.name
                    )))
                }
            }
        }
        Ok(SongsExtractConfig {
            landing: LandingConfig::from_env(env)?,
            pg,
            mysql,
            sources,
            max_attempts: positive("SQL_MAX_ATTEMPTS", parse_or(env, "SQL_MAX_ATTEMPTS", 3u32)?)?,
            retry_base_delay: Duration::from_millis(at_most(
                "SQL_RETRY_BASE_MS",
                parse_or(env, "SQL_RETRY_BASE_MS", 1_000)?,
                60_000,
            )?),
            metrics: crate::metrics::Metrics::from_env(env, &pipeline.spec.name)?,
        })
    }

    /// The connection of `engine`'s sources (present whenever the pipeline has one).
    pub fn db(&self, engine: SqlEngine) -> Result<&DbConfig> {
        match engine {
            SqlEngine::Postgres => self.pg.as_ref(),
            SqlEngine::Mysql => self.mysql.as_ref(),
        }
        .ok_or_else(|| {
            Error::Configuration(format!(
                "no {}_HOST settings for a {} source",
                DbConfig::prefix_of(engine),
                engine.as_str()
            ))
        })
    }
}

/// An environment of exactly `pairs`, for tests of settings read from it.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        [(
            "PIPELINE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
        )]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn api_config_defaults_and_overrides() {
        let c = ApiExtractConfig::from_env(&env(&[
            ("LAKE_URI", "s3://lake"),
            ("API_BASE_URL", "http://127.0.0.1:8080"),
            ("WINDOW_GRANULARITY", "month"),
        ]))
        .unwrap();
        assert_eq!(c.granularity, Granularity::Month);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.landing.part_max_bytes, DEFAULT_PART_MAX_BYTES);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.landing.timezone, Tz::UTC);
    }

    #[test]
    fn api_config_base_path_time_zone_and_bounds() {
        let base = [
            ("LAKE_URI", "s3://lake"),
            ("API_BASE_URL", "https://api.example.com/prod"),
        ];
        let c =
            ApiExtractConfig::from_env(&env(
                &[&base[..], &[("WINDOW_TIMEZONE", "Asia/Tokyo")]].concat()
            ))
            .unwrap();
        // A base path without its trailing slash still prefixes the endpoints.
        assert_eq!(
            c.api_base_url.join("users").unwrap().as_str(),
            "https://api.example.com/prod/users"
        );
        assert_eq!(c.landing.timezone.name(), "Asia/Tokyo");
        for (name, value) in [
            ("WINDOW_TIMEZONE", "Mars/Olympus"),
            ("API_MAX_ATTEMPTS", "4294967296"),
            ("API_MAX_ATTEMPTS", "0"),
            ("API_RETRY_BASE_MS", "3600000"),
        ] {
            let e = ApiExtractConfig::from_env(&env(&[&base[..], &[(name, value)]].concat()))
                .unwrap_err();
            assert_eq!(e.error_type(), "Configuration", "{name}={value}: {e}");
            assert!(e.to_string().contains(name), "{name}={value}: {e}");
        }
    }

    #[test]
    fn config_errors_name_the_variable() {
        let e = ApiExtractConfig::from_env(&env(&[("LAKE_URI", "s3://lake")])).unwrap_err();
        assert!(e.to_string().contains("API_BASE_URL"), "{e}");
        let e = ApiExtractConfig::from_env(&env(&[
            ("LAKE_URI", "s3://lake"),
            ("API_BASE_URL", "ftp://x"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("API_BASE_URL"), "{e}");
        let e = ApiExtractConfig::from_env(&env(&[
            ("LAKE_URI", "s3://lake"),
            ("API_BASE_URL", "http://x"),
            ("API_MAX_ATTEMPTS", "many"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("API_MAX_ATTEMPTS=\"many\""), "{e}");
        let e = ApiExtractConfig::from_env(&env(&[
            ("LAKE_URI", "s3://lake"),
            ("API_BASE_URL", "http://x"),
            ("PART_MAX_BYTES", "0"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("PART_MAX_BYTES"), "{e}");
    }

    #[test]
    fn songs_config_password_sources() {
        let base = [("LAKE_URI", "/tmp/lake"), ("PG_HOST", "db")];
        let c = SongsExtractConfig::from_env(&env(&base)).unwrap();
        assert!(matches!(
            c.pg.as_ref().unwrap().password,
            PasswordSource::None
        ));
        assert_eq!(c.pg.as_ref().unwrap().sslmode, SslMode::Require);
        assert_eq!(
            c.sources[0].relation,
            crate::extract::songs::Relation::Table("deftunes.songs".into())
        );
        let mut e = env(&base);
        e.insert(
            "PG_SECRET_ARN".into(),
            "arn:aws:secretsmanager:eu-west-1:1:secret:x".into(),
        );
        assert!(matches!(
            SongsExtractConfig::from_env(&e)
                .unwrap()
                .pg
                .unwrap()
                .password,
            PasswordSource::Secret { .. }
        ));
        e.insert("PG_PASSWORD".into(), "p".into());
        assert!(SongsExtractConfig::from_env(&e)
            .unwrap_err()
            .to_string()
            .contains("not both"));
        let mut e = env(&base);
        e.insert("PG_SSLMODE".into(), "prefer".into());
        assert!(SongsExtractConfig::from_env(&e)
            .unwrap_err()
            .to_string()
            .contains("PG_SSLMODE"));
        let mut e = env(&base);
        e.insert("SONGS_TABLE".into(), "songs; drop table x".into());
        assert!(SongsExtractConfig::from_env(&e)
            .unwrap_err()
            .to_string()
            .contains("SONGS_TABLE"));
    }

    #[test]
    fn a_mysql_pipeline_needs_the_mysql_settings_only() {
        let cm = [(
            "PIPELINE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/classicmodels"),
        )];
        let e =
            SongsExtractConfig::from_env(&env(&[&cm[..], &[("LAKE_URI", "/tmp/lake")]].concat()))
                .unwrap_err();
        assert_eq!(e.error_type(), "Configuration");
        assert!(e.to_string().contains("MYSQL_HOST"), "{e}");
        let base = [
            ("LAKE_URI", "/tmp/lake"),
            ("MYSQL_HOST", "shop-db"),
            ("MYSQL_USER", "reader"),
            (
                "MYSQL_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:shop",
            ),
        ];
        let c = SongsExtractConfig::from_env(&env(&[&cm[..], &base[..]].concat())).unwrap();
        assert!(c.pg.is_none(), "no PostgreSQL source, no PG_HOST needed");
        let m = c.db(SqlEngine::Mysql).unwrap();
        assert_eq!(
            (m.port, m.sslmode, m.target().as_str()),
            (3306, SslMode::Require, "mysql://reader@shop-db:3306/")
        );
        assert!(matches!(m.password, PasswordSource::Secret { .. }));
        assert_eq!(c.sources.len(), 8);
        assert_eq!(c.max_attempts, 3);
        assert!(c.db(SqlEngine::Postgres).is_err());
        let e =
            SongsExtractConfig::from_env(&env(
                &[&cm[..], &base[..], &[("MYSQL_PASSWORD", "p")]].concat()
            ))
            .unwrap_err();
        assert!(
            e.to_string().contains("MYSQL_SECRET_ARN or MYSQL_PASSWORD"),
            "{e}"
        );
        let e =
            SongsExtractConfig::from_env(&env(
                &[&cm[..], &base[..], &[("SQL_MAX_ATTEMPTS", "0")]].concat()
            ))
            .unwrap_err();
        assert!(e.to_string().contains("SQL_MAX_ATTEMPTS"), "{e}");
    }
}
