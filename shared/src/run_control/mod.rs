//! Run control of the pipeline's state machine: the catch-up plan of a scheduled run (every
//! period missed since the last successful window) and the run report of each execution
//! (`report.json` and `report.html` under `<REPORTS_PREFIX>/<execution>/`), which also moves the
//! last successful window forward. `functions/run-control/README.md` has the contract.
//!
//! Both events are idempotent: a plan reads and writes nothing but its answer; a report event
//! sent again (an answer lost) finds the report it made, by the event's hash, and writes the same
//! bytes again.

pub mod charts;
pub mod config;
pub mod html;
pub mod map_results;
pub mod plan;
pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::RunControlConfig;
use plan::{advance, Frontier};
use report::{
    event_hash, timings, totals, window_report, FrontierReport, ReportRequest, RunReport, TableRows,
};

use crate::config::{Env, ProcessEnv};
use crate::error::{Error, Result};
use crate::serving::warehouse::Warehouse;
use crate::storage::{Lake, LakeUri};
use crate::transform::catalog::{build_catalog, current_rows};
use crate::transform::quality::QualityReport;
use crate::transform::totals::observe_rule;
use crate::window::Window;

/// Quality reports read at once while reporting (small objects; S3 latency bound).
const REPORT_READS_IN_FLIGHT: usize = 16;

/// What the function is invoked with.
#[derive(Debug, Clone)]
pub enum Event {
    /// `{"plan": <execution input>}`: the windows of a scheduled run.
    Plan(Value),
    /// `{"report": {...}}`: an execution ended.
    Report(Box<ReportRequest>),
}

impl Event {
    pub fn parse(payload: &Value) -> Result<Event> {
        let expected = "expected {\"plan\": <execution input>} or {\"report\": {...}}";
        let fields = payload.as_object().ok_or_else(|| {
            Error::InvalidInput(format!("run-control event: {expected}, got {payload}"))
        })?;
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        match (keys.as_slice(), fields.values().next()) {
            (["plan"], Some(input)) => Ok(Event::Plan(input.clone())),
            (["report"], Some(report)) => serde_json::from_value(report.clone())
                .map(|r| Event::Report(Box::new(r)))
                .map_err(|e| Error::InvalidInput(format!("run-control report: {e}"))),
            _ => Err(Error::InvalidInput(format!(
                "run-control event: {expected}, got the fields {keys:?}"
            ))),
        }
    }
}

/// The answer to a plan: the windows for the state machine's Map, and how they were chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAnswer {
    pub windows: Vec<Window>,
    pub catch_up: CatchUp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    pub last_successful: Option<Window>,
    pub planned: usize,
    /// More periods were missed than one run plans (`CATCH_UP_MAX_WINDOWS`).
    pub capped: bool,
}

/// The answer to a report: where it is, and the last successful window after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAnswer {
    pub json: String,
    pub html: String,
    pub last_successful_window: Option<Window>,
}

pub struct RunControl {
    cfg: RunControlConfig,
    lake: Lake,
    lake_uri: LakeUri,
    catalog: Arc<dyn Catalog>,
    /// Where the BI charts are read; `None` without a warehouse or without charts.
    warehouse: Option<Box<dyn Warehouse>>,
}

impl RunControl {
    /// Builds everything from the environment (the Lambda's cold start).
    pub async fn from_env() -> Result<Self> {
        let cfg = RunControlConfig::from_env(&ProcessEnv)?;
        Self::new(cfg, &ProcessEnv).await
    }

    pub async fn new(cfg: RunControlConfig, env: &dyn Env) -> Result<Self> {
        let store = &cfg.store;
        let catalog = build_catalog(
            &store.catalog,
            &store.warehouse,
            env,
            store.s3_force_path_style,
        )
        .await?;
        let lake = Lake::from_uri(&cfg.store.lake_uri, cfg.store.s3_force_path_style).await?;
        let warehouse = match &cfg.warehouse {
            Some(w) if !cfg.charts.is_empty() => Some(w.connect().await?),
            _ => None,
        };
        Ok(RunControl {
            warehouse,
            lake_uri: LakeUri::parse(&cfg.store.lake_uri)?,
            cfg,
            lake,
            catalog,
        })
    }

    pub fn config(&self) -> &RunControlConfig {
        &self.cfg
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// One invocation, as the Lambda handles it.
    pub async fn handle(&self, payload: &Value) -> Result<Value> {
        self.handle_at(payload, Utc::now()).await
    }

    /// [`Self::handle`] with an explicit clock: `now` is when a new report says the run ended.
    pub async fn handle_at(&self, payload: &Value, now: DateTime<Utc>) -> Result<Value> {
        let answer = match Event::parse(payload)? {
            Event::Plan(input) => serde_json::to_value(self.plan(&input).await?),
            Event::Report(req) => {
                let hash = event_hash(&payload["report"]);
                serde_json::to_value(self.report(&req, &hash, now).await?)
            }
        };
        answer.map_err(|e| Error::InvalidInput(format!("cannot serialize the answer: {e}")))
    }

    /// The windows of the scheduled run whose execution input is `input`.
    pub async fn plan(&self, input: &Value) -> Result<PlanAnswer> {
        let raw = input.get("scheduled_time").ok_or_else(|| {
            Error::InvalidInput(format!(
                "plan: the execution input has no \"scheduled_time\" (what EventBridge Scheduler sets): {input}"
            ))
        })?;
        let raw = raw.as_str().ok_or_else(|| {
            Error::InvalidInput(format!("plan: scheduled_time {raw} is not a string"))
        })?;
        let at = crate::extract::time_field("plan", "scheduled_time", Some(raw))?
            .ok_or_else(|| Error::InvalidInput("plan: scheduled_time is required".into()))?;
        let target = Window::previous(self.cfg.granularity, at, self.cfg.timezone);
        let frontier = self.frontier().await?.map(|f| f.window);
        let p = plan::plan(
            target,
            frontier.as_ref(),
            self.cfg.granularity,
            self.cfg.catch_up_max_windows,
        );
        tracing::info!(
            %target, frontier = ?frontier.map(|f| f.to_string()), planned = p.windows.len(),
            capped = p.capped, "planned"
        );
        Ok(PlanAnswer {
            catch_up: CatchUp {
                last_successful: frontier,
                planned: p.windows.len(),
                capped: p.capped,
            },
            windows: p.windows,
        })
    }

    /// The last successful window, if any run has set one.
    pub async fn frontier(&self) -> Result<Option<Frontier>> {
        let key = self.cfg.frontier_key();
        self.lake
            .get_optional(&key)
            .await?
            .map(|raw| Frontier::parse(&raw, &self.lake.uri_of(&key)))
            .transpose()
    }

    /// Writes the execution's report (or finds the one this same event made) and moves the
    /// last successful window as the run allows.
    pub async fn report(
        &self,
        req: &ReportRequest,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ReportAnswer> {
        let started = req.started()?;
        let json_key = self.cfg.report_key(&req.execution_name, "report.json");
        let html_key = self.cfg.report_key(&req.execution_name, "report.html");
        // An unreadable frontier (not a passing failure) still lets the run have its report;
        // the error is answered once the report is written.
        let current = match self.frontier().await {
            Err(e) if !matches!(e, Error::Configuration(_)) => return Err(e),
            other => other,
        };
        let made = match self.lake.get_optional(&json_key).await? {
            // Another event (a redriven execution, say) makes a new report over it.
            Some(raw) => serde_json::from_slice::<RunReport>(&raw)
                .ok()
                .filter(|r| r.event_hash == hash),
            None => None,
        };
        let report = match made {
            Some(r) => {
                tracing::info!(key = %json_key, "this event's report exists: writing it again");
                r
            }
            None => {
                let before = match &current {
                    Ok(f) => Ok(f.as_ref().map(|f| f.window)),
                    Err(e) => Err(e.to_string()),
                };
                self.build(req, hash, started, now, before).await?
            }
        };
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::InvalidInput(format!("cannot serialize the report: {e}")))?;
        self.lake
            .put_bytes_as(&json_key, &json, "application/json")
            .await?;
        let page = html::render(&report, &self.lake.uri_of(&json_key));
        self.lake
            .put_bytes_as(&html_key, page.as_bytes(), "text/html; charset=utf-8")
            .await?;
        let current = current?;
        // Against the frontier as it is now: a retried event after a later run moves nothing.
        let windows = self.run_windows(req, &report.windows, started)?;
        let step = advance(
            current.as_ref().map(|f| &f.window),
            req.status == report::ExecutionStatus::Succeeded,
            req.scheduled,
            &windows,
        );
        if step.advanced {
            if let Some(w) = step.after {
                let body = serde_json::to_vec_pretty(&Frontier {
                    window: w,
                    execution_arn: Some(req.execution_arn.clone()),
                })
                .map_err(|e| Error::InvalidInput(format!("cannot serialize the frontier: {e}")))?;
                self.lake
                    .put_bytes_as(&self.cfg.frontier_key(), &body, "application/json")
                    .await?;
                tracing::info!(frontier = %w, reason = %step.reason, "last successful window moved");
            }
        }
        Ok(ReportAnswer {
            json: self.lake.uri_of(&json_key),
            html: self.lake.uri_of(&html_key),
            last_successful_window: step.after,
        })
    }

    /// The windows the run processed, as dates: those it was given, else its Map's.
    fn run_windows(
        &self,
        req: &ReportRequest,
        results: &[report::WindowReport],
        started: DateTime<Utc>,
    ) -> Result<Vec<Window>> {
        Ok(
            match req.resolved_windows(self.cfg.granularity, self.cfg.timezone, started)? {
                Some(ws) => ws,
                None => results.iter().filter_map(|w| w.window).collect(),
            },
        )
    }

    async fn build(
        &self,
        req: &ReportRequest,
        hash: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        before: std::result::Result<Option<Window>, String>,
    ) -> Result<RunReport> {
        let (granularity, tz) = (self.cfg.granularity, self.cfg.timezone);
        let requested = req
            .resolved_windows(granularity, tz, started)?
            .unwrap_or_default();
        let mut notes = Vec::new();
        let mut windows = Vec::new();
        if let Some(run) = &req.map_run {
            for child in map_results::read(&self.lake, &self.lake_uri, run).await? {
                windows.push(window_report(&child, granularity, tz, started)?);
            }
        }
        windows.sort_by(|a, b| {
            (a.window.map(|w| (w.start_date, w.end_date)), &a.name)
                .cmp(&(b.window.map(|w| (w.start_date, w.end_date)), &b.name))
        });
        for w in windows.iter().filter(|w| w.window.is_none()) {
            notes.push(format!(
                "window {}: its dates are not known from its result",
                w.name
            ));
        }
        let totals = totals(&windows);
        let all = totals.values().fold(
            crate::transform::totals::OutcomeTotals::default(),
            |mut a, t| {
                a.merge(t);
                a
            },
        );
        let rules = self.rules(&windows, &mut notes).await?;
        let table_rows = self.table_rows(&mut notes).await?;
        let charts = self.charts(&mut notes).await;
        // The step [`Self::report`] then takes: a report says what its run found and did.
        let frontier = match before {
            Ok(before) => {
                let step = advance(
                    before.as_ref(),
                    req.status == report::ExecutionStatus::Succeeded,
                    req.scheduled,
                    &self.run_windows(req, &windows, started)?,
                );
                FrontierReport {
                    before,
                    after: step.after,
                    advanced: step.advanced,
                    reason: step.reason,
                }
            }
            Err(e) => FrontierReport {
                before: None,
                after: None,
                advanced: false,
                reason: e,
            },
        };
        Ok(RunReport {
            pipeline: self.cfg.pipeline.clone(),
            execution_arn: req.execution_arn.clone(),
            execution_name: req.execution_name.clone(),
            state_machine: req.state_machine.clone(),
            status: req.status,
            scheduled: req.scheduled,
            started_at: started,
            finished_at: now,
            duration_secs: (now - started).num_milliseconds().max(0) as f64 / 1000.0,
            input: req.input.clone(),
            error: req.error.clone(),
            requested_windows: requested,
            map_run_arn: req.map_run.as_ref().map(|m| m.map_run_arn.clone()),
            timings_ms: timings(started, now, &windows),
            windows,
            quarantine_rate: all.quarantine_rate(),
            totals,
            table_rows,
            rules,
            frontier,
            charts_from: (!charts.is_empty())
                .then(|| self.cfg.warehouse.as_ref().map(|w| w.describe()))
                .flatten(),
            charts,
            notes,
            event_hash: hash.to_string(),
        })
    }

    /// The spec's BI charts from the warehouse; none (and a note) without a warehouse.
    async fn charts(&self, notes: &mut Vec<String>) -> Vec<charts::ChartReport> {
        let cfg = &self.cfg;
        if cfg.charts.is_empty() {
            return Vec::new();
        }
        let Some(warehouse) = &self.warehouse else {
            notes.push(format!(
                "{} BI charts of the spec not drawn: no warehouse is configured (REDSHIFT_WORKGROUP, REDSHIFT_CLUSTER_ID or WAREHOUSE_URL)",
                cfg.charts.len()
            ));
            return Vec::new();
        };
        charts::read(
            warehouse.as_ref(),
            &cfg.charts,
            &cfg.serving_schema,
            &cfg.bi_schema,
        )
        .await
    }

    /// Dataset rules per table, from the quality reports of the run's objects.
    async fn rules(
        &self,
        windows: &[report::WindowReport],
        notes: &mut Vec<String>,
    ) -> Result<BTreeMap<String, BTreeMap<String, crate::transform::totals::RuleSummary>>> {
        let keys: Vec<&String> = windows
            .iter()
            .flat_map(|w| w.sources.values())
            .flat_map(|s| s.tables.values())
            .flat_map(|t| &t.quality_reports)
            .collect();
        let lake = &self.lake;
        let reports: Vec<(&String, Option<Vec<u8>>)> = futures::stream::iter(keys)
            .map(|k| async move { Ok::<_, Error>((k, lake.get_optional(k).await?)) })
            .buffered(REPORT_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut rules: BTreeMap<String, BTreeMap<_, _>> = BTreeMap::new();
        for (key, raw) in reports {
            let parsed = raw.map(|raw| serde_json::from_slice::<QualityReport>(&raw));
            match parsed {
                Some(Ok(q)) => {
                    let table = rules.entry(q.table.clone()).or_default();
                    for r in &q.dataset_rules {
                        observe_rule(table, r, Some(key));
                    }
                }
                Some(Err(e)) => notes.push(format!("quality report {key} is not readable: {e}")),
                None => notes.push(format!("quality report {key} is missing")),
            }
        }
        Ok(rules)
    }

    /// Each table of the pipeline at its current snapshot; one not created yet counts 0.
    async fn table_rows(&self, notes: &mut Vec<String>) -> Result<BTreeMap<String, TableRows>> {
        let ns = NamespaceIdent::new(self.cfg.store.namespace.clone());
        let ns_exists = self.catalog.namespace_exists(&ns).await?;
        let mut out = BTreeMap::new();
        for name in &self.cfg.tables {
            let ident = TableIdent::new(ns.clone(), name.clone());
            let rows = if ns_exists && self.catalog.table_exists(&ident).await? {
                let table = self.catalog.load_table(&ident).await?;
                TableRows {
                    rows: current_rows(&table),
                    created: true,
                }
            } else {
                notes.push(format!("table {ident} is not created yet: counted 0 rows"));
                TableRows {
                    rows: 0,
                    created: false,
                }
            };
            out.insert(name.clone(), rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_a_plan_or_a_report_and_nothing_else() {
        assert!(matches!(
            Event::parse(&json!({"plan": {"scheduled_time": "2021-03-10T02:00:00Z"}})).unwrap(),
            Event::Plan(_)
        ));
        for bad in [
            json!([]),
            json!({}),
            json!({"plan": {}, "report": {}}),
            json!({"windows": []}),
        ] {
            let e = Event::parse(&bad).unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{bad}");
            assert!(e.to_string().contains("\"plan\""), "{e}");
        }
        let e = Event::parse(&json!({"report": {"execution_arn": "a"}})).unwrap_err();
        assert!(e.to_string().contains("run-control report"), "{e}");
    }
}
