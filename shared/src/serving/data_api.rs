//! Statements through the Redshift Data API: submitted, polled to a final status within a
//! deadline, cancelled when late; errors classified as the warehouse being unavailable
//! (retryable) or rejecting the statement. Used by the Redshift setup and by the run report's
//! charts.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::types::{Field, StatusString};
use serde::Serialize;

use crate::config::{parse_or, positive, Env};
use crate::error::{aws_sdk_failure, Error, Result};

/// Where statements run: a Serverless workgroup or a provisioned cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Workgroup(String),
    Cluster(String),
}

/// Where and how statements run (`REDSHIFT_*`, `POLL_INTERVAL_MS` and a function's timeout
/// variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataApiConfig {
    pub target: Target,
    pub database: String,
    /// Admin secret the Data API authenticates with (required for a provisioned cluster; without
    /// it Serverless uses the caller's IAM identity).
    pub secret_arn: Option<String>,
    /// Deadline of one statement, from submission to a final status.
    pub statement_timeout: Duration,
    pub poll_interval: Duration,
}

impl DataApiConfig {
    /// `REDSHIFT_WORKGROUP` or `REDSHIFT_CLUSTER_ID` (one is required), `REDSHIFT_DATABASE`,
    /// `REDSHIFT_SECRET_ARN`, `POLL_INTERVAL_MS`, and the statement timeout from `timeout_var`.
    pub fn from_env(env: &dyn Env, timeout_var: &str, timeout_secs: u64) -> Result<Self> {
        Self::optional_from_env(env, timeout_var, timeout_secs)?.ok_or_else(|| {
            Error::Configuration(
                "environment variable REDSHIFT_WORKGROUP (Serverless) or REDSHIFT_CLUSTER_ID (provisioned) is required"
                    .to_string(),
            )
        })
    }

    /// [`Self::from_env`], `None` when neither `REDSHIFT_WORKGROUP` nor `REDSHIFT_CLUSTER_ID` is set.
    pub fn optional_from_env(
        env: &dyn Env,
        timeout_var: &str,
        timeout_secs: u64,
    ) -> Result<Option<Self>> {
        let secret_arn = env.var("REDSHIFT_SECRET_ARN");
        let target = match (env.var("REDSHIFT_WORKGROUP"), env.var("REDSHIFT_CLUSTER_ID")) {
            (Some(w), None) => Target::Workgroup(w),
            (None, Some(c)) => {
                if secret_arn.is_none() {
                    return Err(Error::Configuration(
                        "environment variable REDSHIFT_SECRET_ARN is required with REDSHIFT_CLUSTER_ID"
                            .to_string(),
                    ));
                }
                Target::Cluster(c)
            }
            (Some(_), Some(_)) => {
                return Err(Error::Configuration(
                    "set either REDSHIFT_WORKGROUP (Serverless) or REDSHIFT_CLUSTER_ID (provisioned), not both"
                        .to_string(),
                ))
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(DataApiConfig {
            target,
            database: super::redshift::identifier(env, "REDSHIFT_DATABASE", "dev")?,
            secret_arn,
            statement_timeout: Duration::from_secs(positive(
                timeout_var,
                parse_or(env, timeout_var, timeout_secs)?,
            )?),
            poll_interval: Duration::from_millis(positive(
                "POLL_INTERVAL_MS",
                parse_or(env, "POLL_INTERVAL_MS", 500u64)?,
            )?),
        }))
    }
}

/// What happened to one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementReport {
    pub sql: String,
    /// Data API statement id; `None` when the statement was skipped.
    pub id: Option<String>,
    /// `FINISHED`, or `SKIPPED` for a guarded statement whose probe found a row.
    pub status: String,
    pub duration_ms: u64,
}

/// A Data API client with its target; built once per cold start.
#[derive(Debug, Clone)]
pub struct DataApi {
    client: aws_sdk_redshiftdata::Client,
    config: DataApiConfig,
    /// `StatementName` of every statement: who ran it, in `SYS_QUERY_HISTORY` and `ListStatements`.
    statement_name: &'static str,
}

impl DataApi {
    pub fn new(
        client: aws_sdk_redshiftdata::Client,
        config: DataApiConfig,
        statement_name: &'static str,
    ) -> Self {
        DataApi {
            client,
            config,
            statement_name,
        }
    }

    pub fn config(&self) -> &DataApiConfig {
        &self.config
    }

    /// Runs one query and answers its first `max_rows` rows, each value as text (`None`: null).
    pub async fn query(
        &self,
        sql: &str,
        deadline: Option<Instant>,
        max_rows: usize,
    ) -> Result<Vec<Vec<Option<String>>>> {
        let (report, _) = self.execute(sql, deadline).await?;
        let Some(id) = report.id else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        // Pages of up to 100 MB each; the first page almost always holds `max_rows`.
        loop {
            let fetch = self
                .client
                .get_statement_result()
                .id(&id)
                .set_next_token(token.take())
                .send();
            let out = tokio::time::timeout(self.config.statement_timeout, fetch)
                .await
                .map_err(|_| {
                    Error::WarehouseUnavailable(format!(
                        "GetStatementResult did not answer within {:.1} s: `{sql}`",
                        self.config.statement_timeout.as_secs_f64()
                    ))
                })?
                .map_err(|e| sdk_err("GetStatementResult", sql, e))?;
            for record in out.records() {
                if rows.len() == max_rows {
                    return Ok(rows);
                }
                rows.push(record.iter().map(field_text).collect());
            }
            match out.next_token() {
                Some(t) if rows.len() < max_rows => token = Some(t.to_string()),
                _ => return Ok(rows),
            }
        }
    }

    /// Submits one statement and polls it to a final status within the statement timeout and
    /// `run_deadline`, whichever comes first; every Data API call is bounded by it too.
    /// Returns its report and `ResultRows` (rows returned or affected).
    pub async fn execute(
        &self,
        sql: &str,
        run_deadline: Option<Instant>,
    ) -> Result<(StatementReport, i64)> {
        let started = Instant::now();
        let own = started + self.config.statement_timeout;
        let deadline = run_deadline.map_or(own, |d| d.min(own));
        let late = |what: &str| {
            Error::WarehouseUnavailable(format!(
                "{what} did not answer before the deadline ({:.1} s after submitting): `{sql}`",
                started.elapsed().as_secs_f64()
            ))
        };
        let mut request = self
            .client
            .execute_statement()
            .sql(sql)
            .database(&self.config.database)
            .statement_name(self.statement_name)
            .set_secret_arn(self.config.secret_arn.clone());
        request = match &self.config.target {
            Target::Workgroup(w) => request.workgroup_name(w),
            Target::Cluster(c) => request.cluster_identifier(c),
        };
        let out = tokio::time::timeout_at(deadline.into(), request.send())
            .await
            .map_err(|_| late("ExecuteStatement"))?
            .map_err(|e| sdk_err("ExecuteStatement", sql, e))?;
        let id = out
            .id()
            .ok_or_else(|| {
                Error::WarehouseUnavailable(format!(
                    "ExecuteStatement returned no statement id for `{sql}`"
                ))
            })?
            .to_string();
        tracing::debug!(id = %id, sql = %sql, "statement submitted");
        loop {
            let wake = (Instant::now() + self.config.poll_interval).min(deadline);
            tokio::time::sleep_until(wake.into()).await;
            let described = tokio::time::timeout_at(
                deadline.into(),
                self.client.describe_statement().id(&id).send(),
            )
            .await;
            let d = match described {
                Ok(d) => d.map_err(|e| sdk_err("DescribeStatement", sql, e))?,
                Err(_) => {
                    self.cancel(&id).await;
                    return Err(late("DescribeStatement"));
                }
            };
            match d.status() {
                Some(StatusString::Finished) => {
                    let duration_ms = started.elapsed().as_millis() as u64;
                    tracing::info!(id = %id, sql = %sql, duration_ms, "statement finished");
                    return Ok((
                        StatementReport {
                            sql: sql.to_string(),
                            id: Some(id),
                            status: "FINISHED".to_string(),
                            duration_ms,
                        },
                        d.result_rows(),
                    ));
                }
                Some(status @ (StatusString::Failed | StatusString::Aborted)) => {
                    return Err(statement_failed(
                        &id,
                        status.as_str(),
                        d.error().unwrap_or("no error text"),
                        sql,
                    ));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                self.cancel(&id).await;
                return Err(Error::WarehouseUnavailable(format!(
                    "statement {id} did not finish within {:.1} s (cancelled): `{sql}`",
                    (deadline - started).as_secs_f64()
                )));
            }
        }
    }

    /// Best effort, a few seconds at most: the caller reports the timeout either way.
    async fn cancel(&self, id: &str) {
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            self.client.cancel_statement().id(id).send(),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(id = %id, error = %DisplayErrorContext(&e), "cannot cancel the statement")
            }
            Err(_) => tracing::warn!(id = %id, "cancelling the statement timed out"),
        }
    }
}

/// A Data API value as text; numbers as Redshift prints them (DECIMAL arrives as a string).
fn field_text(f: &Field) -> Option<String> {
    match f {
        Field::IsNull(true) => None,
        Field::StringValue(s) => Some(s.clone()),
        Field::LongValue(v) => Some(v.to_string()),
        Field::DoubleValue(v) => Some(v.to_string()),
        Field::BooleanValue(v) => Some(v.to_string()),
        Field::BlobValue(b) => Some(format!("<{} bytes>", b.as_ref().len())),
        _ => Some(format!("{f:?}")),
    }
}

/// FAILED/ABORTED statements are SQL or permission problems, unless the text says the warehouse
/// itself was not there (paused, resuming, unreachable).
pub fn statement_failed(id: &str, status: &str, text: &str, sql: &str) -> Error {
    const TRANSIENT: &[&str] = &[
        "unavailable",
        "not available",
        "is paused",
        "is resuming",
        "could not connect",
        "connection refused",
        "connection reset",
    ];
    let lowered = text.to_ascii_lowercase();
    let msg = format!("statement {id} {status}: {text}: `{sql}`");
    if TRANSIENT.iter().any(|t| lowered.contains(t)) {
        Error::WarehouseUnavailable(msg)
    } else {
        Error::WarehouseRejected(msg)
    }
}

/// Transport failures, throttling, 5xx and the Data API's capacity errors are transient; the
/// rest (validation, access denied, unknown workgroup) is not.
fn sdk_err<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    sql: &str,
    e: SdkError<E>,
) -> Error {
    let (transient, detail) = aws_sdk_failure(
        &e,
        &[
            "ThrottlingException",
            "InternalServerException",
            "ActiveStatementsExceededException",
            "ActiveSessionsExceededException",
            "ActiveWaitingRequestsExceededException",
            "DatabaseConnectionException",
            "ExecuteStatementException",
        ],
    );
    let detail = format!("{what}: {detail}: `{sql}`");
    if transient {
        Error::WarehouseUnavailable(detail)
    } else {
        Error::WarehouseRejected(detail)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
    use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput;
    use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultOutput;
    use aws_sdk_redshiftdata::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn config() -> DataApiConfig {
        DataApiConfig {
            target: Target::Cluster("c1".into()),
            database: "dev".into(),
            secret_arn: Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:s".into()),
            statement_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(1),
        }
    }

    fn page(records: Vec<Vec<Field>>, next: Option<&str>) -> GetStatementResultOutput {
        GetStatementResultOutput::builder()
            .set_records(Some(records))
            .set_next_token(next.map(str::to_string))
            .build()
            .unwrap()
    }

    fn text(s: &str) -> Field {
        Field::StringValue(s.into())
    }

    /// A query reads every value as text, follows the result's pages, and stops at `max_rows`.
    #[tokio::test]
    async fn a_query_answers_its_first_rows_as_text() {
        let execute = mock!(Client::execute_statement)
            .match_requests(|r| {
                r.cluster_identifier() == Some("c1")
                    && r.statement_name() == Some("deftunes-test")
                    && r.secret_arn().is_some()
            })
            .then_output(|| ExecuteStatementOutput::builder().id("q1").build());
        let describe = mock!(Client::describe_statement).then_output(|| {
            DescribeStatementOutput::builder()
                .id("q1")
                .status(StatusString::Finished)
                .result_rows(4)
                .has_result_set(true)
                .build()
                .unwrap()
        });
        let first = mock!(Client::get_statement_result)
            .match_requests(|r| r.id() == Some("q1") && r.next_token().is_none())
            .then_output(|| {
                page(
                    vec![
                        vec![text("2020-01"), text("1234.50")],
                        vec![Field::IsNull(true), Field::LongValue(7)],
                    ],
                    Some("t2"),
                )
            });
        let second = mock!(Client::get_statement_result)
            .match_requests(|r| r.next_token() == Some("t2"))
            .then_output(|| {
                page(
                    vec![
                        vec![text("x"), Field::DoubleValue(0.5)],
                        vec![text("y"), Field::BooleanValue(true)],
                    ],
                    None,
                )
            });
        let client = mock_client!(
            aws_sdk_redshiftdata,
            RuleMode::MatchAny,
            &[&execute, &describe, &first, &second]
        );
        let api = DataApi::new(client, config(), "deftunes-test");
        let rows = api.query("SELECT 1", None, 3).await.unwrap();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            rows,
            vec![
                vec![s("2020-01"), s("1234.50")],
                vec![None, s("7")],
                vec![s("x"), s("0.5")],
            ]
        );
        assert_eq!(second.num_calls(), 1);
        let all = api.query("SELECT 1", None, 10).await.unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], vec![s("y"), s("true")]);
    }

    /// A failed statement is the warehouse rejecting it, with its text and the query.
    #[tokio::test]
    async fn a_failed_query_says_why() {
        let execute = mock!(Client::execute_statement)
            .then_output(|| ExecuteStatementOutput::builder().id("q2").build());
        let describe = mock!(Client::describe_statement).then_output(|| {
            DescribeStatementOutput::builder()
                .id("q2")
                .status(StatusString::Failed)
                .error("relation \"deftunes_bi.v\" does not exist")
                .build()
                .unwrap()
        });
        let client = mock_client!(
            aws_sdk_redshiftdata,
            RuleMode::MatchAny,
            &[&execute, &describe]
        );
        let api = DataApi::new(client, config(), "deftunes-test");
        let e = api
            .query("SELECT a, b FROM deftunes_bi.v", None, 3)
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "WarehouseRejected");
        let shown = e.to_string();
        assert!(
            shown.contains("does not exist") && shown.contains("deftunes_bi.v"),
            "{shown}"
        );
    }
}
