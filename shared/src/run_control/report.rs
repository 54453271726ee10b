//! The run report of one state machine execution: what it was asked, what each window landed and
//! committed (from the Map run's result files), the tables' rows (from the catalog), quarantine,
//! dataset rules and timings. Written as `report.json`, and drawn from it as `report.html`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::charts::ChartReport;
use super::map_results::{ChildExecution, MapRun};
use super::plan::WindowRequest;
use crate::error::{Error, Result};
use crate::transform::events::EntryStatus;
use crate::transform::totals::{OutcomeTotals, RuleSummary};
use crate::window::{Granularity, Tz, Window};

/// `{"report": {...}}`: how an execution ended, sent by its state machine's last states.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub execution_arn: String,
    pub execution_name: String,
    pub state_machine: String,
    /// RFC 3339 (`$$.Execution.StartTime`).
    pub started_at: String,
    pub status: ExecutionStatus,
    /// The execution's input, as it was given.
    pub input: Value,
    /// Started by the schedule (its windows planned by the catch-up), not by a person.
    pub scheduled: bool,
    /// The windows it ran (`null`: none known, e.g. a files-only pipeline).
    #[serde(default)]
    pub windows: Option<Vec<WindowRequest>>,
    /// The Map's `ResultWriter` output (`null`: the Map wrote nothing, e.g. it never started).
    #[serde(default)]
    pub map_run: Option<MapRun>,
    /// What failed the execution (`null` when it succeeded).
    #[serde(default)]
    pub error: Option<ExecutionError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
        }
    }
}

/// A Step Functions error: `{"Error": ..., "Cause": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ReportRequest {
    /// Checks what becomes a key or a time: the execution name names the report's folder.
    pub fn started(&self) -> Result<DateTime<Utc>> {
        let name = &self.execution_name;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidInput(format!(
                "report: execution_name {name:?} cannot name a report folder (an execution name has no '/')"
            )));
        }
        crate::extract::time_field("report", "started_at", Some(&self.started_at))?
            .ok_or_else(|| Error::InvalidInput("report: started_at is required".into()))
    }

    /// The execution's windows as dates (those without dates: the previous period of their
    /// scheduled time, else of the execution's start).
    pub fn resolved_windows(
        &self,
        granularity: Granularity,
        tz: Tz,
        started: DateTime<Utc>,
    ) -> Result<Option<Vec<Window>>> {
        self.windows
            .as_ref()
            .map(|ws| {
                ws.iter()
                    .enumerate()
                    .map(|(i, w)| {
                        w.resolve(&format!("report: windows[{i}]"), granularity, tz, started)
                    })
                    .collect()
            })
            .transpose()
    }
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub pipeline: String,
    pub execution_arn: String,
    pub execution_name: String,
    pub state_machine: String,
    pub status: ExecutionStatus,
    pub scheduled: bool,
    pub started_at: DateTime<Utc>,
    /// When the report was first made: the execution's last state.
    pub finished_at: DateTime<Utc>,
    pub duration_secs: f64,
    pub input: Value,
    pub error: Option<ExecutionError>,
    /// The windows the execution was given, as dates.
    pub requested_windows: Vec<Window>,
    pub map_run_arn: Option<String>,
    /// Each window's child execution, oldest window first.
    pub windows: Vec<WindowReport>,
    /// Per table, over every window.
    pub totals: BTreeMap<String, OutcomeTotals>,
    /// Quarantined records per record read, over every table and window.
    pub quarantine_rate: f64,
    /// Each table of the pipeline at its current snapshot, when the report was made.
    pub table_rows: BTreeMap<String, TableRows>,
    /// Dataset rules per table (`<check> <column>`), worst value over the run's objects, with
    /// the quality report that holds it.
    pub rules: BTreeMap<String, BTreeMap<String, RuleSummary>>,
    pub timings_ms: BTreeMap<String, u64>,
    pub frontier: FrontierReport,
    /// The pipeline's BI charts, as the warehouse answered when the report was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartReport>,
    /// The warehouse the charts were read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charts_from: Option<String>,
    /// What the report could not tell exactly (a table not created yet, a missing report...).
    pub notes: Vec<String>,
    /// Hash of the report event: the same event answers from this report, unchanged.
    pub event_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub rows: u64,
    /// `false`: no run has created the table yet (counted 0).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontierReport {
    pub before: Option<Window>,
    pub after: Option<Window>,
    pub advanced: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// The child execution's name.
    pub name: String,
    pub status: String,
    /// The dates it processed (`None`: not known from its result).
    pub window: Option<Window>,
    /// The request its extracts got.
    pub request: Value,
    pub started_at: Option<String>,
    pub stopped_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub error: Option<ExecutionError>,
    pub sources: BTreeMap<String, SourceReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub objects_landed: u64,
    pub records_landed: u64,
    pub bytes_landed: u64,
    /// The tables its objects were committed to.
    pub tables: BTreeMap<String, TableWindow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableWindow {
    #[serde(flatten)]
    pub outcomes: OutcomeTotals,
    /// Every object's dataset rules passed.
    pub quality_passed: bool,
    /// The objects' quality reports (lake keys).
    pub quality_reports: Vec<String>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b - a).num_milliseconds().max(0) as u64
}

/// One window's report from its child execution's result entry.
pub fn window_report(
    child: &ChildExecution,
    granularity: Granularity,
    tz: Tz,
    execution_start: DateTime<Utc>,
) -> Result<WindowReport> {
    let output = child.window_output()?;
    let input = child.input_value()?;
    let request = output
        .as_ref()
        .map(|o| o.window.clone())
        .filter(|w| !w.is_null())
        .or_else(|| input.as_ref().and_then(|i| i.get("window").cloned()))
        .unwrap_or(Value::Null);
    let started = child.start_date.as_deref().and_then(parse_time);
    let stopped = child.stop_date.as_deref().and_then(parse_time);
    let mut sources = BTreeMap::new();
    let mut landed_window = None;
    for (name, source) in output.iter().flat_map(|o| &o.sources) {
        let mut s = SourceReport::default();
        for summary in source.landed.summaries() {
            s.objects_landed += summary.objects.len() as u64;
            s.records_landed += summary.records;
            s.bytes_landed += summary.bytes;
            if let (Some(start), Some(end)) = (summary.start_date, summary.end_date) {
                landed_window.get_or_insert(Window::new(start, end)?);
            }
        }
        for entry in &source.transformed.outcomes {
            let Some(o) = entry
                .outcome
                .as_ref()
                .filter(|_| entry.status == EntryStatus::Ok)
            else {
                continue;
            };
            let t = s.tables.entry(o.table.clone()).or_insert(TableWindow {
                quality_passed: true,
                ..Default::default()
            });
            t.outcomes.add(o);
            t.quality_passed &= o.quality_passed;
            t.quality_reports.push(o.quality_report_key.clone());
        }
        sources.insert(name.clone(), s);
    }
    let req: WindowRequest = serde_json::from_value(request.clone()).unwrap_or_default();
    let window = match (&req.start_date, &req.end_date, landed_window) {
        (None, None, Some(landed)) => Some(landed),
        _ => req
            .resolve(
                &format!("window {}", child.name),
                granularity,
                tz,
                started.unwrap_or(execution_start),
            )
            .ok(),
    };
    Ok(WindowReport {
        name: child.name.clone(),
        status: child.status.clone(),
        window,
        request,
        started_at: child.start_date.clone(),
        stopped_at: child.stop_date.clone(),
        duration_ms: started.zip(stopped).map(|(a, b)| millis_between(a, b)),
        error: child.error.clone().map(|error| ExecutionError {
            error,
            cause: child.cause.clone(),
        }),
        sources,
    })
}

/// Per table, over every window and source.
pub fn totals(windows: &[WindowReport]) -> BTreeMap<String, OutcomeTotals> {
    let mut out: BTreeMap<String, OutcomeTotals> = BTreeMap::new();
    for t in windows
        .iter()
        .flat_map(|w| w.sources.values())
        .flat_map(|s| &s.tables)
    {
        out.entry(t.0.clone()).or_default().merge(&t.1.outcomes);
    }
    out
}

/// The execution's duration, and its windows': wall-clock from the first start to the last
/// stop, summed, and the slowest.
pub fn timings(
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    windows: &[WindowReport],
) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::from([("execution".to_string(), millis_between(started, finished))]);
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = windows
        .iter()
        .filter_map(|w| {
            w.started_at
                .as_deref()
                .and_then(parse_time)
                .zip(w.stopped_at.as_deref().and_then(parse_time))
        })
        .collect();
    if let (Some(first), Some(last)) = (
        spans.iter().map(|s| s.0).min(),
        spans.iter().map(|s| s.1).max(),
    ) {
        t.insert("windows_wall".into(), millis_between(first, last));
        t.insert(
            "windows_sum".into(),
            spans.iter().map(|(a, b)| millis_between(*a, *b)).sum(),
        );
        t.insert(
            "slowest_window".into(),
            spans
                .iter()
                .map(|(a, b)| millis_between(*a, *b))
                .max()
                .unwrap_or(0),
        );
    }
    t
}

/// A content hash of a JSON value that does not depend on its objects' key order.
pub fn event_hash(v: &Value) -> String {
    fn canonical(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for k in keys {
                    out.extend(serde_json::to_string(k).unwrap_or_default().as_bytes());
                    out.push(b':');
                    canonical(&m[k.as_str()], out);
                    out.push(b',');
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for x in a {
                    canonical(x, out);
                    out.push(b',');
                }
                out.push(b']');
            }
            other => out.extend(other.to_string().as_bytes()),
        }
    }
    let mut buf = Vec::new();
    canonical(v, &mut buf);
    format!("{:032x}", twox_hash::XxHash3_128::oneshot(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_event_hash_ignores_key_order_only() {
        let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let b: Value = serde_json::from_str(r#"{"b": {"d": "x", "c": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(event_hash(&a), event_hash(&b));
        assert_ne!(
            event_hash(&a),
            event_hash(&json!({"a": 1, "b": {"c": [2, 1], "d": "x"}}))
        );
        assert_ne!(event_hash(&json!({"a": "1"})), event_hash(&json!({"a": 1})));
    }

    #[test]
    fn report_requests_are_checked_where_they_name_keys_and_times() {
        let mut req: ReportRequest = serde_json::from_value(json!({
            "execution_arn": "arn:aws:states:eu-west-1:1:execution:p:x",
            "execution_name": "x", "state_machine": "arn:aws:states:eu-west-1:1:stateMachine:p",
            "started_at": "2021-03-10T02:00:00.123Z", "status": "SUCCEEDED", "input": {},
            "scheduled": true, "windows": null, "map_run": null, "error": null
        }))
        .unwrap();
        assert_eq!(req.started().unwrap().timestamp_millis() % 1000, 123);
        for bad in ["", "a/b", ".."] {
            req.execution_name = bad.into();
            let e = req.started().unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{bad}");
        }
        req.execution_name = "x".into();
        req.started_at = "yesterday".into();
        assert!(req
            .started()
            .unwrap_err()
            .to_string()
            .contains("started_at"));
        // Unknown fields are refused: a misspelt field would silently empty the report.
        let e = serde_json::from_value::<ReportRequest>(json!({
            "execution_arn": "a", "execution_name": "x", "state_machine": "s",
            "started_at": "2021-03-10T02:00:00Z", "status": "SUCCEEDED", "input": {},
            "scheduled": true, "map_runs": null
        }))
        .unwrap_err();
        assert!(e.to_string().contains("map_runs"), "{e}");
        let e = serde_json::from_value::<ReportRequest>(json!({
            "execution_arn": "a", "execution_name": "x", "state_machine": "s",
            "started_at": "2021-03-10T02:00:00Z", "status": "RUNNING", "input": {},
            "scheduled": true
        }))
        .unwrap_err();
        assert!(e.to_string().contains("RUNNING"), "{e}");
    }

    #[test]
    fn timings_span_the_windows() {
        let w = |s: &str, e: &str| WindowReport {
            name: "w".into(),
            status: "SUCCEEDED".into(),
            window: None,
            request: Value::Null,
            started_at: Some(s.into()),
            stopped_at: Some(e.into()),
            duration_ms: None,
            error: None,
            sources: BTreeMap::new(),
        };
        let start = parse_time("2021-03-10T02:00:00Z").unwrap();
        let t = timings(
            start,
            parse_time("2021-03-10T02:10:00Z").unwrap(),
            &[
                w("2021-03-10T02:00:01Z", "2021-03-10T02:01:01Z"),
                w("2021-03-10T02:00:31Z", "2021-03-10T02:03:01.500Z"),
            ],
        );
        assert_eq!(t["execution"], 600_000);
        assert_eq!(t["windows_wall"], 180_500);
        assert_eq!(t["windows_sum"], 60_000 + 150_500);
        assert_eq!(t["slowest_window"], 150_500);
    }
}
