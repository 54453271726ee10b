//! Redshift setup for the serving layer, through the Redshift Data API.
//!
//! Creates, idempotently: the external (Spectrum) schema over the Glue silver database, the
//! serving and BI schemas dbt builds into, and the analysts role with read access on all three.
//! Every statement is safe to rerun, so the state machine runs this before every dbt build.
//!
//! Redshift has no `CREATE ROLE IF NOT EXISTS`: the role is created by a guarded step
//! ([`Step::UnlessAnyRow`]) that first selects the role from `svv_roles` and reads the row count
//! from `DescribeStatement` (no result fetch needed). A stored procedure wrapping `CREATE ROLE`
//! would leave an object in a dbt-managed schema, and matching the "already exists" error text
//! would make a real failure and a rerun look alike.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

pub use super::data_api::{statement_failed, DataApi, DataApiConfig, StatementReport, Target};
use crate::config::{parse_or, required, Env, ProcessEnv};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct RedshiftSetupConfig {
    /// Where statements run (`STATEMENT_TIMEOUT_SECS`: 300 s by default).
    pub api: DataApiConfig,
    pub glue_database: String,
    pub spectrum_role_arn: String,
    pub external_schema: String,
    pub serving_schema: String,
    pub bi_schema: String,
    pub analysts_role: String,
}

/// Letters, digits and underscores, not starting with a digit: safe unquoted in SQL.
pub(crate) fn identifier(env: &dyn Env, name: &str, default: &str) -> Result<String> {
    check_identifier(name, parse_or(env, name, default.to_string())?)
}

fn check_identifier(name: &str, value: String) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 127
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::Configuration(format!(
            "environment variable {name}={value:?} is not an identifier made of letters, digits and underscores"
        )));
    }
    Ok(value)
}

/// `arn:<partition>:iam::<account>:role/<path/name>`.
fn role_arn(env: &dyn Env, name: &str) -> Result<String> {
    let value = required(env, name)?;
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            partition.starts_with("aws")
                && partition
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|r| {
                    !r.is_empty()
                        && r.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
                })
        }
        _ => false,
    };
    if !ok {
        return Err(Error::Configuration(format!(
            "environment variable {name}={value:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )));
    }
    Ok(value)
}

impl RedshiftSetupConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let glue_database = check_identifier("GLUE_DATABASE", required(env, "GLUE_DATABASE")?)?;
        let cfg = RedshiftSetupConfig {
            api: DataApiConfig::from_env(env, "STATEMENT_TIMEOUT_SECS", 300)?,
            glue_database,
            spectrum_role_arn: role_arn(env, "SPECTRUM_ROLE_ARN")?,
            external_schema: identifier(env, "EXTERNAL_SCHEMA", "deftunes_transform")?,
            serving_schema: identifier(env, "SERVING_SCHEMA", "deftunes_serving")?,
            bi_schema: identifier(env, "BI_SCHEMA", "deftunes_bi")?,
            analysts_role: identifier(env, "ANALYSTS_ROLE", "analysts")?,
        };
        let schemas = [
            ("EXTERNAL_SCHEMA", &cfg.external_schema),
            ("SERVING_SCHEMA", &cfg.serving_schema),
            ("BI_SCHEMA", &cfg.bi_schema),
        ];
        for (i, (a, x)) in schemas.iter().enumerate() {
            for (b, y) in &schemas[i + 1..] {
                if x.eq_ignore_ascii_case(y) {
                    return Err(Error::Configuration(format!(
                        "environment variables {a} and {b} name the same schema {x:?}"
                    )));
                }
            }
        }
        Ok(cfg)
    }
}

/// One step of the setup plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A statement that is idempotent by itself (`IF NOT EXISTS`, `GRANT`).
    Run(String),
    /// `sql` runs only when the `probe` query returns no row.
    UnlessAnyRow { probe: String, sql: String },
}

impl Step {
    /// The statement that changes the warehouse.
    pub fn sql(&self) -> &str {
        match self {
            Step::Run(sql) | Step::UnlessAnyRow { sql, .. } => sql,
        }
    }
}

/// The setup, in order: schemas, then the role, then its grants. Every step is safe to rerun.
///
/// The external schema gets `USAGE` only: Spectrum tables over the Glue catalog are readable by
/// anyone with usage on their external schema (table-level grants need Lake Formation).
/// Default privileges apply to tables later created by the user this runs as (the admin).
pub fn plan(cfg: &RedshiftSetupConfig) -> Vec<Step> {
    let role = &cfg.analysts_role;
    let (ext, serving, bi) = (&cfg.external_schema, &cfg.serving_schema, &cfg.bi_schema);
    let mut steps = vec![
        Step::Run(format!(
            "CREATE EXTERNAL SCHEMA IF NOT EXISTS {ext} FROM DATA CATALOG DATABASE '{}' IAM_ROLE '{}' CREATE EXTERNAL DATABASE IF NOT EXISTS",
            cfg.glue_database, cfg.spectrum_role_arn
        )),
        Step::Run(format!("CREATE SCHEMA IF NOT EXISTS {serving}")),
        Step::Run(format!("CREATE SCHEMA IF NOT EXISTS {bi}")),
        // Unquoted identifiers are folded to lower case: so is the stored role name.
        Step::UnlessAnyRow {
            probe: format!(
                "SELECT role_name FROM svv_roles WHERE role_name = '{}'",
                role.to_ascii_lowercase()
            ),
            sql: format!("CREATE ROLE {role}"),
        },
    ];
    for schema in [ext, serving, bi] {
        steps.push(Step::Run(format!(
            "GRANT USAGE ON SCHEMA {schema} TO ROLE {role}"
        )));
    }
    for schema in [serving, bi] {
        steps.push(Step::Run(format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO ROLE {role}"
        )));
    }
    for schema in [serving, bi] {
        steps.push(Step::Run(format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO ROLE {role}"
        )));
    }
    steps
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    pub statements: Vec<StatementReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub database: String,
}

/// Runs the plan with a Data API client; built once per cold start.
pub struct RedshiftSetup {
    api: DataApi,
    config: RedshiftSetupConfig,
}

const STATEMENT_NAME: &str = "deftunes-redshift-setup";

impl RedshiftSetup {
    pub fn new(client: aws_sdk_redshiftdata::Client, config: RedshiftSetupConfig) -> Self {
        RedshiftSetup {
            api: DataApi::new(client, config.api.clone(), STATEMENT_NAME),
            config,
        }
    }

    /// Configuration from the process environment, client from the SDK's default chain.
    pub async fn from_env() -> Result<Self> {
        let config = RedshiftSetupConfig::from_env(&ProcessEnv)?;
        let client = aws_sdk_redshiftdata::Client::new(&aws_config::load_from_env().await);
        Ok(RedshiftSetup::new(client, config))
    }

    pub fn config(&self) -> &RedshiftSetupConfig {
        &self.config
    }

    /// The Lambda handler: the payload is ignored (the setup takes no input). `deadline` is when
    /// the invocation must have answered (the Lambda's, less a margin): a statement still
    /// running then is cancelled and reported, rather than the function being killed.
    pub async fn handle(&self, _payload: &Value, deadline: Option<Instant>) -> Result<Value> {
        let report = self.run_until(deadline).await?;
        serde_json::to_value(report)
            .map_err(|e| Error::InvalidInput(format!("cannot serialize the setup report: {e}")))
    }

    /// Runs every step in order; stops at the first failure.
    pub async fn run(&self) -> Result<SetupReport> {
        self.run_until(None).await
    }

    /// [`Self::run`], with every statement bounded by `deadline` as well as by its own timeout.
    pub async fn run_until(&self, deadline: Option<Instant>) -> Result<SetupReport> {
        let mut statements = Vec::new();
        for step in plan(&self.config) {
            match step {
                Step::Run(sql) => statements.push(self.api.execute(&sql, deadline).await?.0),
                Step::UnlessAnyRow { probe, sql } => {
                    let (report, rows) = self.api.execute(&probe, deadline).await?;
                    statements.push(report);
                    if rows > 0 {
                        tracing::info!(sql = %sql, "skipped: already in place");
                        statements.push(StatementReport {
                            sql,
                            id: None,
                            status: "SKIPPED".to_string(),
                            duration_ms: 0,
                        });
                    } else {
                        statements.push(self.api.execute(&sql, deadline).await?.0);
                    }
                }
            }
        }
        let (workgroup, cluster_id) = match &self.config.api.target {
            Target::Workgroup(w) => (Some(w.clone()), None),
            Target::Cluster(c) => (None, Some(c.clone())),
        };
        Ok(SetupReport {
            statements,
            workgroup,
            cluster_id,
            database: self.config.api.database.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::env_of as env;
    use std::time::Duration;

    use aws_sdk_redshiftdata::types::StatusString;

    use aws_sdk_redshiftdata::operation::cancel_statement::CancelStatementOutput;
    use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
    use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput;
    use aws_sdk_redshiftdata::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    use super::*;

    const ARN: &str = "arn:aws:iam::123456789012:role/deftunes-spectrum";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf";

    fn serverless_env() -> HashMap<String, String> {
        env(&[
            ("REDSHIFT_WORKGROUP", "deftunes"),
            ("GLUE_DATABASE", "deftunes_transform"),
            ("SPECTRUM_ROLE_ARN", ARN),
        ])
    }

    fn fast(mut cfg: RedshiftSetupConfig) -> RedshiftSetupConfig {
        cfg.api.poll_interval = Duration::from_millis(1);
        cfg
    }

    #[test]
    fn config_defaults() {
        let c = RedshiftSetupConfig::from_env(&serverless_env()).unwrap();
        assert_eq!(c.api.target, Target::Workgroup("deftunes".into()));
        assert_eq!(c.api.database, "dev");
        assert_eq!(c.api.secret_arn, None);
        assert_eq!(c.external_schema, "deftunes_transform");
        assert_eq!(c.serving_schema, "deftunes_serving");
        assert_eq!(c.bi_schema, "deftunes_bi");
        assert_eq!(c.analysts_role, "analysts");
        assert_eq!(c.api.statement_timeout, Duration::from_secs(300));
        assert_eq!(c.api.poll_interval, Duration::from_millis(500));
    }

    #[test]
    fn config_errors_name_the_variable() {
        // (variables set, variables removed, text the error must contain)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], &["REDSHIFT_WORKGROUP"], "REDSHIFT_CLUSTER_ID"),
            (
                &[("REDSHIFT_CLUSTER_ID", "c")],
                &[],
                "not both", // workgroup and cluster together
            ),
            (&[], &["GLUE_DATABASE"], "GLUE_DATABASE"),
            (&[], &["SPECTRUM_ROLE_ARN"], "SPECTRUM_ROLE_ARN"),
            (
                &[("SPECTRUM_ROLE_ARN", "arn:aws:iam::1:role/x")],
                &[],
                "SPECTRUM_ROLE_ARN",
            ),
            (
                &[("SPECTRUM_ROLE_ARN", "arn:aws:iam::123456789012:user/x")],
                &[],
                "SPECTRUM_ROLE_ARN",
            ),
            (
                &[("SPECTRUM_ROLE_ARN", "arn:aws:iam::123456789012:role/x' --")],
                &[],
                "SPECTRUM_ROLE_ARN",
            ),
            (&[("GLUE_DATABASE", "silver-db")], &[], "GLUE_DATABASE"),
            (&[("REDSHIFT_DATABASE", "dev;")], &[], "REDSHIFT_DATABASE"),
            (&[("EXTERNAL_SCHEMA", "a.b")], &[], "EXTERNAL_SCHEMA"),
            (&[("SERVING_SCHEMA", "1x")], &[], "SERVING_SCHEMA"),
            (&[("BI_SCHEMA", "bi schema")], &[], "BI_SCHEMA"),
            (&[("ANALYSTS_ROLE", "\"x\"")], &[], "ANALYSTS_ROLE"),
            (
                &[("STATEMENT_TIMEOUT_SECS", "0")],
                &[],
                "STATEMENT_TIMEOUT_SECS",
            ),
            (&[("POLL_INTERVAL_MS", "soon")], &[], "POLL_INTERVAL_MS"),
            (&[("BI_SCHEMA", "deftunes_serving")], &[], "SERVING_SCHEMA"),
        ];
        for (set, unset, expected) in cases {
            let mut e = serverless_env();
            for (k, v) in *set {
                e.insert(k.to_string(), v.to_string());
            }
            for k in *unset {
                e.remove(*k);
            }
            let err = RedshiftSetupConfig::from_env(&e).unwrap_err();
            assert_eq!(err.error_type(), "Configuration");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn provisioned_cluster_needs_the_secret() {
        let mut e = serverless_env();
        e.remove("REDSHIFT_WORKGROUP");
        e.insert("REDSHIFT_CLUSTER_ID".into(), "deftunes-cluster".into());
        let err = RedshiftSetupConfig::from_env(&e).unwrap_err();
        assert!(err.to_string().contains("REDSHIFT_SECRET_ARN"), "{err}");
        e.insert("REDSHIFT_SECRET_ARN".into(), SECRET.into());
        let c = RedshiftSetupConfig::from_env(&e).unwrap();
        assert_eq!(c.api.target, Target::Cluster("deftunes-cluster".into()));
        assert_eq!(c.api.secret_arn.as_deref(), Some(SECRET));
    }

    #[test]
    fn plan_is_the_idempotent_setup() {
        let c = RedshiftSetupConfig::from_env(&serverless_env()).unwrap();
        let steps = plan(&c);
        assert_eq!(steps, plan(&c));
        let sql: Vec<&str> = steps.iter().map(Step::sql).collect();
        assert_eq!(
            sql,
            [
                "CREATE EXTERNAL SCHEMA IF NOT EXISTS deftunes_transform FROM DATA CATALOG DATABASE 'deftunes_transform' IAM_ROLE 'arn:aws:iam::123456789012:role/deftunes-spectrum' CREATE EXTERNAL DATABASE IF NOT EXISTS",
                "CREATE SCHEMA IF NOT EXISTS deftunes_serving",
                "CREATE SCHEMA IF NOT EXISTS deftunes_bi",
                "CREATE ROLE analysts",
                "GRANT USAGE ON SCHEMA deftunes_transform TO ROLE analysts",
                "GRANT USAGE ON SCHEMA deftunes_serving TO ROLE analysts",
                "GRANT USAGE ON SCHEMA deftunes_bi TO ROLE analysts",
                "GRANT SELECT ON ALL TABLES IN SCHEMA deftunes_serving TO ROLE analysts",
                "GRANT SELECT ON ALL TABLES IN SCHEMA deftunes_bi TO ROLE analysts",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA deftunes_serving GRANT SELECT ON TABLES TO ROLE analysts",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA deftunes_bi GRANT SELECT ON TABLES TO ROLE analysts",
            ]
        );
        assert_eq!(
            steps[3],
            Step::UnlessAnyRow {
                probe: "SELECT role_name FROM svv_roles WHERE role_name = 'analysts'".into(),
                sql: "CREATE ROLE analysts".into(),
            }
        );
    }

    #[test]
    fn failed_statements_are_classified_by_their_text() {
        let e = statement_failed(
            "id-1",
            "FAILED",
            "permission denied for schema x",
            "SELECT 1",
        );
        assert_eq!(e.error_type(), "WarehouseRejected");
        assert!(e.to_string().contains("permission denied for schema x"));
        assert!(e.to_string().contains("SELECT 1"));
        let e = statement_failed(
            "id-1",
            "FAILED",
            "Cluster is currently unavailable",
            "SELECT 1",
        );
        assert_eq!(e.error_type(), "WarehouseUnavailable");
    }

    fn describe(id: &str, status: StatusString, rows: i64) -> DescribeStatementOutput {
        DescribeStatementOutput::builder()
            .id(id)
            .status(status)
            .result_rows(rows)
            .build()
            .unwrap()
    }

    /// Rules for one statement that goes SUBMITTED -> STARTED -> FINISHED, in order.
    fn finishing(id: &'static str, sql: String, rows: i64) -> [Rule; 2] {
        [
            mock!(Client::execute_statement)
                .match_requests(move |r| {
                    r.sql() == Some(sql.as_str())
                        && r.workgroup_name() == Some("deftunes")
                        && r.cluster_identifier().is_none()
                        && r.secret_arn().is_none()
                        && r.database() == Some("dev")
                })
                .then_output(move || ExecuteStatementOutput::builder().id(id).build()),
            mock!(Client::describe_statement)
                .match_requests(move |r| r.id() == Some(id))
                .sequence()
                .output(move || describe(id, StatusString::Submitted, 0))
                .output(move || describe(id, StatusString::Started, 0))
                .output(move || describe(id, StatusString::Finished, rows))
                .build(),
        ]
    }

    const IDS: [&str; 12] = [
        "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
    ];

    /// The statements a run sends: the probe finds `role_rows` rows.
    fn expected_sql(cfg: &RedshiftSetupConfig, role_rows: i64) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for step in plan(cfg) {
            match step {
                Step::Run(sql) => out.push((sql, 0)),
                Step::UnlessAnyRow { probe, sql } => {
                    out.push((probe, role_rows));
                    if role_rows == 0 {
                        out.push((sql, 0));
                    }
                }
            }
        }
        out
    }

    async fn run_against(cfg: &RedshiftSetupConfig, role_rows: i64) -> SetupReport {
        let rules: Vec<Rule> = expected_sql(cfg, role_rows)
            .into_iter()
            .zip(IDS)
            .flat_map(|((sql, rows), id)| finishing(id, sql, rows))
            .collect();
        let client = mock_client!(aws_sdk_redshiftdata, RuleMode::Sequential, &rules);
        let report = RedshiftSetup::new(client, cfg.clone()).run().await.unwrap();
        for rule in &rules {
            assert!(rule.num_calls() > 0, "a planned call was not made");
        }
        report
    }

    #[tokio::test]
    async fn setup_runs_every_statement_and_reruns_the_same() {
        let cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        let first = run_against(&cfg, 0).await;
        let sent: Vec<&str> = first.statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sent.len(), 12);
        assert!(first.statements.iter().all(|s| s.status == "FINISHED"));
        assert_eq!(first.statements[0].id.as_deref(), Some("s0"));
        assert!(sent.contains(&"CREATE ROLE analysts"));

        // Second run: the role exists, so the same statements run except CREATE ROLE.
        let second = run_against(&cfg, 1).await;
        let rerun: Vec<&str> = second
            .statements
            .iter()
            .filter(|s| s.status == "FINISHED")
            .map(|s| s.sql.as_str())
            .collect();
        let without_create: Vec<&str> = sent
            .iter()
            .copied()
            .filter(|s| *s != "CREATE ROLE analysts")
            .collect();
        assert_eq!(rerun, without_create);
        let skipped = &second.statements[4];
        assert_eq!(
            (
                skipped.sql.as_str(),
                skipped.status.as_str(),
                skipped.id.as_deref()
            ),
            ("CREATE ROLE analysts", "SKIPPED", None)
        );

        let out = serde_json::to_value(&second).unwrap();
        assert_eq!(out["workgroup"], "deftunes");
        assert_eq!(out["database"], "dev");
        assert!(out.get("cluster_id").is_none());
        assert!(out["statements"][0]["duration_ms"].is_u64());
    }

    #[tokio::test]
    async fn a_failed_statement_stops_the_setup() {
        let cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        let steps = plan(&cfg);
        let [exec0, desc0] = finishing("s0", steps[0].sql().to_string(), 0);
        let exec1 = mock!(Client::execute_statement)
            .match_requests(|r| r.sql() == Some("CREATE SCHEMA IF NOT EXISTS deftunes_serving"))
            .then_output(|| ExecuteStatementOutput::builder().id("s1").build());
        let desc1 = mock!(Client::describe_statement)
            .sequence()
            .output(|| describe("s1", StatusString::Started, 0))
            .output(|| {
                DescribeStatementOutput::builder()
                    .id("s1")
                    .status(StatusString::Failed)
                    .error("ERROR: permission denied for database dev")
                    .build()
                    .unwrap()
            })
            .build();
        let client = mock_client!(
            aws_sdk_redshiftdata,
            RuleMode::Sequential,
            [&exec0, &desc0, &exec1, &desc1]
        );
        let e = RedshiftSetup::new(client, cfg).run().await.unwrap_err();
        assert_eq!(e.error_type(), "WarehouseRejected", "{e}");
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(msg.contains("permission denied for database dev"), "{msg}");
        assert!(
            msg.contains("CREATE SCHEMA IF NOT EXISTS deftunes_serving"),
            "{msg}"
        );
        assert!(msg.contains("s1"), "{msg}");
        // Nothing after the failed statement was submitted.
        assert_eq!(exec0.num_calls() + exec1.num_calls(), 2);
        assert_eq!(desc1.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_statement_past_its_deadline_is_cancelled() {
        let mut cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        cfg.api.statement_timeout = Duration::from_millis(30);
        let exec = mock!(Client::execute_statement)
            .then_output(|| ExecuteStatementOutput::builder().id("slow-1").build());
        let desc = mock!(Client::describe_statement)
            .then_output(|| describe("slow-1", StatusString::Started, 0));
        let cancel = mock!(Client::cancel_statement)
            .match_requests(|r| r.id() == Some("slow-1"))
            .then_output(|| CancelStatementOutput::builder().status(true).build());
        let client = mock_client!(
            aws_sdk_redshiftdata,
            RuleMode::MatchAny,
            [&exec, &desc, &cancel]
        );
        let e = RedshiftSetup::new(client, cfg).run().await.unwrap_err();
        assert_eq!(e.error_type(), "WarehouseUnavailable", "{e}");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("slow-1"), "{e}");
        assert_eq!(cancel.num_calls(), 1);
        assert_eq!(exec.num_calls(), 1);
        assert!(desc.num_calls() >= 2);
    }

    #[tokio::test]
    async fn the_invocation_deadline_bounds_a_statement() {
        // Statement timeout of an hour, but the invocation must answer within 50 ms.
        let mut cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        cfg.api.statement_timeout = Duration::from_secs(3600);
        let exec = mock!(Client::execute_statement)
            .then_output(|| ExecuteStatementOutput::builder().id("long-1").build());
        let desc = mock!(Client::describe_statement)
            .then_output(|| describe("long-1", StatusString::Started, 0));
        let cancel = mock!(Client::cancel_statement)
            .match_requests(|r| r.id() == Some("long-1"))
            .then_output(|| CancelStatementOutput::builder().status(true).build());
        let client = mock_client!(
            aws_sdk_redshiftdata,
            RuleMode::MatchAny,
            [&exec, &desc, &cancel]
        );
        let started = Instant::now();
        let e = RedshiftSetup::new(client, cfg)
            .run_until(Some(started + Duration::from_millis(50)))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.error_type(), "WarehouseUnavailable", "{e}");
        assert!(e.to_string().contains("long-1"), "{e}");
        assert_eq!(cancel.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_aborted_statement_is_an_error() {
        let cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        let exec = mock!(Client::execute_statement)
            .then_output(|| ExecuteStatementOutput::builder().id("ab-1").build());
        let desc = mock!(Client::describe_statement).then_output(|| {
            DescribeStatementOutput::builder()
                .id("ab-1")
                .status(StatusString::Aborted)
                .error("Query cancelled by user")
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&exec, &desc]);
        let e = RedshiftSetup::new(client, cfg).run().await.unwrap_err();
        assert_eq!(e.error_type(), "WarehouseRejected", "{e}");
        assert!(e.to_string().contains("ABORTED"), "{e}");
        assert!(e.to_string().contains("Query cancelled by user"), "{e}");
    }

    #[tokio::test]
    async fn provisioned_cluster_sends_cluster_and_secret() {
        let mut e = serverless_env();
        e.remove("REDSHIFT_WORKGROUP");
        e.insert("REDSHIFT_CLUSTER_ID".into(), "deftunes-cluster".into());
        e.insert("REDSHIFT_SECRET_ARN".into(), SECRET.into());
        e.insert("REDSHIFT_DATABASE".into(), "warehouse".into());
        let cfg = fast(RedshiftSetupConfig::from_env(&e).unwrap());
        let exec = mock!(Client::execute_statement)
            .match_requests(|r| {
                r.cluster_identifier() == Some("deftunes-cluster")
                    && r.workgroup_name().is_none()
                    && r.secret_arn() == Some(SECRET)
                    && r.database() == Some("warehouse")
            })
            .then_output(|| ExecuteStatementOutput::builder().id("c-1").build());
        let desc = mock!(Client::describe_statement)
            .then_output(|| describe("c-1", StatusString::Finished, 1));
        let client = mock_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&exec, &desc]);
        let report = RedshiftSetup::new(client, cfg).run().await.unwrap();
        assert_eq!(exec.num_calls(), 11); // the role exists: CREATE ROLE skipped
        assert_eq!(report.cluster_id.as_deref(), Some("deftunes-cluster"));
        assert_eq!(report.workgroup, None);
        assert_eq!(report.database, "warehouse");
    }

    /// A Data API (awsJson1_1) error response.
    fn api_error(status: u16, kind: &'static str) -> Rule {
        mock!(Client::execute_statement).then_http_response(move || {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::from(format!(
                    r#"{{"__type": "{kind}", "Message": "said {kind}"}}"#
                )),
            )
        })
    }

    #[tokio::test]
    async fn data_api_errors_are_classified() {
        let cfg = fast(RedshiftSetupConfig::from_env(&serverless_env()).unwrap());
        for (status, kind, expected) in [
            (
                400,
                "ActiveStatementsExceededException",
                "WarehouseUnavailable",
            ),
            (400, "ThrottlingException", "WarehouseUnavailable"),
            (500, "InternalServerException", "WarehouseUnavailable"),
            (400, "ValidationException", "WarehouseRejected"),
            (400, "ResourceNotFoundException", "WarehouseRejected"),
        ] {
            let rule = api_error(status, kind);
            // No SDK retries: the classification is under test, not the backoff.
            let client = mock_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&rule], |c| c
                .retry_config(aws_sdk_redshiftdata::config::retry::RetryConfig::disabled()));
            let e = RedshiftSetup::new(client, cfg.clone())
                .run()
                .await
                .unwrap_err();
            assert_eq!(e.error_type(), expected, "{kind}: {e}");
            assert!(e.to_string().contains(&format!("said {kind}")), "{e}");
        }
    }
}
