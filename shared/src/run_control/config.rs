//! The run-control function's settings, read once at start-up (`functions/run-control/README.md`).

use crate::config::{
    at_most, key_prefix, parse_or, positive, window_granularity, window_timezone, Env,
};
use crate::error::Result;
use crate::extract::songs::STATE_ZONE;
use crate::pipeline::{pipeline_dir, ChartSpec, Pipeline};
use crate::serving::redshift::identifier;
use crate::serving::warehouse::WarehouseConfig;
use crate::transform::catalog::CatalogConfig;
use crate::window::{Granularity, Tz};

/// A scheduled run plans at most this many windows by default.
pub const DEFAULT_CATCH_UP_MAX_WINDOWS: u64 = 400;
/// The planned windows travel in the execution's state (256 KiB at most): ~50 bytes each.
pub const MAX_CATCH_UP_MAX_WINDOWS: u64 = 2000;
/// A chart's query answers within this by default (Redshift Serverless may resume first).
pub const DEFAULT_CHART_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone)]
pub struct RunControlConfig {
    /// Where the lake and the pipeline's tables are, read as the transform reads it.
    pub store: CatalogConfig,
    /// The pipeline's name (`PIPELINE`, see [`pipeline_dir`]).
    pub pipeline: String,
    /// The pipeline's tables, whose rows each report counts.
    pub tables: Vec<String>,
    /// The period of a scheduled run, as the extracts take it (`WINDOW_GRANULARITY`).
    pub granularity: Granularity,
    /// The calendar of "previous period" (`WINDOW_TIMEZONE`).
    pub timezone: Tz,
    /// The most windows one scheduled run plans (`CATCH_UP_MAX_WINDOWS`).
    pub catch_up_max_windows: usize,
    /// Lake key prefix of the run reports (`REPORTS_PREFIX`).
    pub reports_prefix: String,
    /// Lake key prefix of the pipeline's state (`STATE_PREFIX`), beside the extracts' watermarks.
    pub state_prefix: String,
    /// The spec's `[[report.charts]]`.
    pub charts: Vec<ChartSpec>,
    /// Where the charts are read (`REDSHIFT_WORKGROUP`/`REDSHIFT_CLUSTER_ID`, or `WAREHOUSE_URL`),
    /// each query within `CHART_TIMEOUT_SECS`; `None`: no charts.
    pub warehouse: Option<WarehouseConfig>,
    /// The schemas `{serving}` and `{bi}` stand for (`SERVING_SCHEMA`, `BI_SCHEMA`).
    pub serving_schema: String,
    pub bi_schema: String,
}

impl RunControlConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let pipeline = Pipeline::load(&pipeline_dir(env))?;
        let name = pipeline.spec.name.clone();
        let max = at_most(
            "CATCH_UP_MAX_WINDOWS",
            positive(
                "CATCH_UP_MAX_WINDOWS",
                parse_or(env, "CATCH_UP_MAX_WINDOWS", DEFAULT_CATCH_UP_MAX_WINDOWS)?,
            )?,
            MAX_CATCH_UP_MAX_WINDOWS,
        )?;
        Ok(RunControlConfig {
            store: CatalogConfig::from_env(env, &pipeline)?,
            charts: pipeline
                .spec
                .report
                .charts
                .iter()
                .map(|c| c.get_ref().clone())
                .collect(),
            warehouse: WarehouseConfig::from_env(
                env,
                "CHART_TIMEOUT_SECS",
                DEFAULT_CHART_TIMEOUT_SECS,
            )?,
            serving_schema: identifier(env, "SERVING_SCHEMA", &format!("{name}_serving"))?,
            bi_schema: identifier(env, "BI_SCHEMA", &format!("{name}_bi"))?,
            tables: pipeline.spec.tables.keys().cloned().collect(),
            granularity: window_granularity(env)?,
            timezone: window_timezone(env)?,
            catch_up_max_windows: max as usize,
            reports_prefix: key_prefix(env, "REPORTS_PREFIX", format!("reports/runs/{name}"))?,
            state_prefix: key_prefix(env, "STATE_PREFIX", format!("{STATE_ZONE}/{name}"))?,
            pipeline: name,
        })
    }

    /// Lake key of the last successful window (the catch-up frontier).
    pub fn frontier_key(&self) -> String {
        format!("{}/last-successful-window.json", self.state_prefix)
    }

    /// Lake key of a run report's `file` (`report.json`, `report.html`).
    pub fn report_key(&self, execution_name: &str, file: &str) -> String {
        format!("{}/{execution_name}/{file}", self.reports_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        [
            (
                "PIPELINE_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
            ),
            ("LAKE_URI", "s3://lake/dev"),
            ("CATALOG", "glue"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_follow_the_pipeline_and_the_extracts() {
        let c = RunControlConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.pipeline, "deftunes");
        assert_eq!(c.tables, ["sessions", "songs", "users"]);
        assert_eq!((c.granularity, c.timezone), (Granularity::Day, Tz::UTC));
        assert_eq!(c.catch_up_max_windows, 400);
        assert_eq!(c.reports_prefix, "reports/runs/deftunes");
        // Beside songs-extract's watermarks (state/<pipeline>/<source>.watermark.json).
        assert_eq!(
            c.frontier_key(),
            "state/deftunes/last-successful-window.json"
        );
        assert_eq!(
            c.report_key("run-1", "report.html"),
            "reports/runs/deftunes/run-1/report.html"
        );
        assert_eq!(c.store.warehouse, "s3://lake/dev/transform_zone");
        assert_eq!(c.store.namespace, "deftunes_transform");
    }

    #[test]
    fn overrides_and_bad_values_name_the_variable() {
        let c = RunControlConfig::from_env(&env(&[
            ("WINDOW_GRANULARITY", "month"),
            ("WINDOW_TIMEZONE", "Asia/Tokyo"),
            ("CATCH_UP_MAX_WINDOWS", "31"),
            ("REPORTS_PREFIX", "/ops/reports/"),
            ("STATE_PREFIX", "ops/state"),
        ]))
        .unwrap();
        assert_eq!(c.granularity, Granularity::Month);
        assert_eq!(c.timezone.name(), "Asia/Tokyo");
        assert_eq!(c.catch_up_max_windows, 31);
        assert_eq!(
            c.report_key("r", "report.json"),
            "ops/reports/r/report.json"
        );
        assert_eq!(c.frontier_key(), "ops/state/last-successful-window.json");
        for (name, value) in [
            ("CATCH_UP_MAX_WINDOWS", "0"),
            ("CATCH_UP_MAX_WINDOWS", "2001"),
            ("CATCH_UP_MAX_WINDOWS", "many"),
            ("REPORTS_PREFIX", "../elsewhere"),
            ("STATE_PREFIX", "/"),
            ("STATE_PREFIX", "state//x"),
            ("WINDOW_GRANULARITY", "week"),
            ("WINDOW_TIMEZONE", "Mars/Olympus"),
        ] {
            let e = RunControlConfig::from_env(&env(&[(name, value)])).unwrap_err();
            assert_eq!(e.error_type(), "Configuration", "{name}={value}: {e}");
            assert!(
                e.to_string().contains(name) || e.to_string().contains(value),
                "{name}={value}: {e}"
            );
        }
        let e = RunControlConfig::from_env(&env(&[("CATALOG", "sql")])).unwrap_err();
        assert!(e.to_string().contains("CATALOG_URI"), "{e}");
    }
}
