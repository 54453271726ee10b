//! The warehouse dbt builds into, as the run report reads it: Redshift through the Data API in
//! AWS, or a PostgreSQL server reached without TLS (a local stack, the tests). Both answer a
//! query's first rows with every value as text, so a chart reads the same whichever answered.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

use super::data_api::{DataApi, DataApiConfig};
use crate::config::{parse_or, positive, Env};
use crate::error::{Error, Result};

/// A query's rows: each value as text, `None` for null.
pub type Rows = Vec<Vec<Option<String>>>;

#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Runs one query within the configured timeout and answers its first `max_rows` rows.
    async fn query(&self, sql: &str, max_rows: usize) -> Result<Rows>;
}

/// `StatementName` of the report's queries (who ran them, in `SYS_QUERY_HISTORY`).
const STATEMENT_NAME: &str = "deftunes-run-report";

#[async_trait]
impl Warehouse for DataApi {
    async fn query(&self, sql: &str, max_rows: usize) -> Result<Rows> {
        // Bounded by the statement timeout of its configuration.
        DataApi::query(self, sql, None, max_rows).await
    }
}

/// Which warehouse a function reads, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseConfig {
    /// `REDSHIFT_WORKGROUP` or `REDSHIFT_CLUSTER_ID` (and `REDSHIFT_DATABASE`, `REDSHIFT_SECRET_ARN`).
    Redshift(DataApiConfig),
    /// `WAREHOUSE_URL=postgres://user:password@host:port/database` (no TLS); each query within
    /// `timeout`.
    Postgres { url: String, timeout: Duration },
}

impl WarehouseConfig {
    /// `None` when no warehouse is configured; both kinds at once is an error. Each query answers
    /// within `timeout_var` seconds (`timeout_secs` by default).
    pub fn from_env(env: &dyn Env, timeout_var: &str, timeout_secs: u64) -> Result<Option<Self>> {
        let redshift = DataApiConfig::optional_from_env(env, timeout_var, timeout_secs)?;
        match (redshift, env.var("WAREHOUSE_URL")) {
            (Some(_), Some(_)) => Err(Error::Configuration(
                "set either REDSHIFT_WORKGROUP/REDSHIFT_CLUSTER_ID (Redshift) or WAREHOUSE_URL (PostgreSQL), not both"
                    .into(),
            )),
            (Some(r), None) => Ok(Some(WarehouseConfig::Redshift(r))),
            (None, Some(url)) => {
                let parsed = tokio_postgres::Config::from_str(&url).map_err(|e| {
                    Error::Configuration(format!(
                        "environment variable WAREHOUSE_URL is not a PostgreSQL URL (postgres://user:password@host:port/database): {e}"
                    ))
                })?;
                if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                    return Err(Error::Configuration(
                        "WAREHOUSE_URL: TLS is not supported here (reach Redshift through the Data API: REDSHIFT_WORKGROUP)"
                            .into(),
                    ));
                }
                let timeout = positive(timeout_var, parse_or(env, timeout_var, timeout_secs)?)?;
                Ok(Some(WarehouseConfig::Postgres {
                    url,
                    timeout: Duration::from_secs(timeout),
                }))
            }
            (None, None) => Ok(None),
        }
    }

    /// The warehouse's client (the Data API's from the SDK's default chain).
    pub async fn connect(&self) -> Result<Box<dyn Warehouse>> {
        Ok(match self {
            WarehouseConfig::Redshift(cfg) => {
                let client = aws_sdk_redshiftdata::Client::new(&aws_config::load_from_env().await);
                Box::new(DataApi::new(client, cfg.clone(), STATEMENT_NAME))
            }
            WarehouseConfig::Postgres { url, timeout } => Box::new(Postgres {
                url: url.clone(),
                timeout: *timeout,
            }),
        })
    }

    /// Where it is, for the report (no password).
    pub fn describe(&self) -> String {
        match self {
            WarehouseConfig::Redshift(cfg) => {
                let at = match &cfg.target {
                    super::data_api::Target::Workgroup(w) => format!("Redshift workgroup {w}"),
                    super::data_api::Target::Cluster(c) => format!("Redshift cluster {c}"),
                };
                format!("{at}, database {}", cfg.database)
            }
            WarehouseConfig::Postgres { url, .. } => {
                let c = tokio_postgres::Config::from_str(url).ok();
                let host = c
                    .as_ref()
                    .and_then(|c| c.get_hosts().first().cloned())
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h,
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_default();
                let db = c
                    .as_ref()
                    .and_then(|c| c.get_dbname().map(str::to_string))
                    .unwrap_or_default();
                format!("PostgreSQL {host}, database {db}")
            }
        }
    }
}

/// A PostgreSQL-protocol warehouse; one connection per report (reports are minutes apart).
struct Postgres {
    url: String,
    timeout: Duration,
}

#[async_trait]
impl Warehouse for Postgres {
    async fn query(&self, sql: &str, max_rows: usize) -> Result<Rows> {
        let timeout = self.timeout;
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            Error::WarehouseUnavailable(format!("PostgreSQL warehouse: {what}: {e}: `{sql}`"))
        };
        let work = async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .map_err(|e| unavailable("cannot connect", &e))?;
            let connection = tokio::spawn(conn);
            let answer = client.simple_query(sql).await;
            drop(client);
            // The connection ends with the client; its error, if any, is the query's.
            let _ = connection.await;
            let messages = answer.map_err(|e| match e.as_db_error() {
                Some(db) => Error::WarehouseRejected(format!(
                    "PostgreSQL warehouse: {}: {}: `{sql}`",
                    db.code().code(),
                    db.message()
                )),
                None => unavailable("query failed", &e),
            })?;
            let mut rows = Vec::new();
            for m in messages {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
                    if rows.len() == max_rows {
                        break;
                    }
                    rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    );
                }
            }
            Ok(rows)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            Error::WarehouseUnavailable(format!(
                "PostgreSQL warehouse: no answer within {:.1} s: `{sql}`",
                timeout.as_secs_f64()
            ))
        })?
    }
}

#[cfg(test)]
mod tests {
    use crate::config::env_of as env;

    use super::*;
    use crate::serving::data_api::Target;

    #[test]
    fn the_warehouse_comes_from_the_environment() {
        let none = WarehouseConfig::from_env(&env(&[]), "CHART_TIMEOUT_SECS", 60).unwrap();
        assert_eq!(none, None);
        let r = WarehouseConfig::from_env(
            &env(&[("REDSHIFT_WORKGROUP", "wg"), ("CHART_TIMEOUT_SECS", "7")]),
            "CHART_TIMEOUT_SECS",
            60,
        )
        .unwrap()
        .unwrap();
        let WarehouseConfig::Redshift(cfg) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(cfg.target, Target::Workgroup("wg".into()));
        assert_eq!(cfg.statement_timeout, Duration::from_secs(7));
        assert_eq!(r.describe(), "Redshift workgroup wg, database dev");
        let pg = WarehouseConfig::from_env(
            &env(&[("WAREHOUSE_URL", "postgres://u:secret@127.0.0.1:5433/wh")]),
            "CHART_TIMEOUT_SECS",
            60,
        )
        .unwrap()
        .unwrap();
        assert_eq!(pg.describe(), "PostgreSQL 127.0.0.1, database wh");
        assert!(!pg.describe().contains("secret"));
    }

    #[test]
    fn a_wrong_warehouse_setting_is_named() {
        let err = |pairs: &[(&str, &str)]| {
            WarehouseConfig::from_env(&env(pairs), "CHART_TIMEOUT_SECS", 60)
                .unwrap_err()
                .to_string()
        };
        let both = err(&[
            ("REDSHIFT_WORKGROUP", "wg"),
            ("WAREHOUSE_URL", "postgres://h/db"),
        ]);
        assert!(both.contains("not both"), "{both}");
        let bad = err(&[("WAREHOUSE_URL", "mysql://h/db")]);
        assert!(bad.contains("WAREHOUSE_URL"), "{bad}");
        let tls = err(&[("WAREHOUSE_URL", "postgres://h/db?sslmode=require")]);
        assert!(tls.contains("TLS"), "{tls}");
        let zero = err(&[("REDSHIFT_WORKGROUP", "wg"), ("CHART_TIMEOUT_SECS", "0")]);
        assert!(zero.contains("CHART_TIMEOUT_SECS"), "{zero}");
    }
}
