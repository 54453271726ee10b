//! The run-control function on a local lake and the SQLite catalog: run reports read from a Map
//! run's result files as Step Functions writes them (manifest.json and SUCCEEDED_0.json) and from
//! tables the transform really committed; and the catch-up of scheduled runs over the frontier
//! the reports keep.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use deftunes::config::Env;
use deftunes::extract::{ExtractSummary, LandedObject};
use deftunes::run_control::html::{escape, thousands};
use deftunes::run_control::report::RunReport;
use deftunes::run_control::{PlanAnswer, ReportAnswer, RunControl, RunControlConfig};
use deftunes::transform::totals::OutcomeTotals;
use deftunes::transform::ObjectOutcome;
use deftunes_local::{Dataset, Scale};
use serde_json::{json, Value};

mod common;
use common::{env_of, fixture, ndjson};

const BUCKET: &str = "deftunes-lake";
const STATE_MACHINE: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:deftunes-pipeline";
const MAP_RUN_ID: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
const HOSTILE: &str = "<script>alert('pwned')</script>";

async fn run_control(dir: &std::path::Path, extra: &[(&str, &str)]) -> RunControl {
    let env: HashMap<String, String> = env_of(dir, extra);
    let cfg = RunControlConfig::from_env(&env).unwrap();
    RunControl::new(cfg, &env as &dyn Env).await.unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn report_event(
    name: &str,
    status: &str,
    scheduled: bool,
    input: Value,
    windows: Value,
    map_run: Value,
) -> Value {
    let error = match status {
        "FAILED" => json!({"Error": "SourceUnavailable", "Cause": "the API answered 503"}),
        _ => Value::Null,
    };
    json!({"report": {
        "execution_arn": format!("arn:aws:states:eu-west-1:123456789012:execution:deftunes-pipeline:{name}"),
        "execution_name": name,
        "state_machine": STATE_MACHINE,
        "started_at": "2020-03-01T02:00:00.250Z",
        "status": status,
        "input": input,
        "scheduled": scheduled,
        "windows": windows,
        "map_run": map_run,
        "error": error,
    }})
}

/// One window's extract summary for `keys` (what the extract function answers).
fn landed(source: &str, window: (&str, &str), key: &str, body: &[u8]) -> ExtractSummary {
    let records = body.iter().filter(|b| **b == b'\n').count() as u64;
    ExtractSummary {
        source: source.to_string(),
        start_date: Some(day(window.0)),
        end_date: Some(day(window.1)),
        ingest_date: day(window.0),
        objects: vec![LandedObject {
            key: key.to_string(),
            records,
            bytes: body.len() as u64,
        }],
        keys: vec![key.to_string()],
        records,
        bytes: body.len() as u64,
        removed: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_report_counts_what_the_tables_hold_and_escapes_the_input() {
    let f = fixture(&[]).await;
    let rc = run_control(f.dir.path(), &[]).await;

    // Before any commit: a failed run with no Map results still gets its report, every table 0.
    let early = report_event(
        "early-failure",
        "FAILED",
        false,
        json!({}),
        json!(null),
        json!(null),
    );
    rc.handle_at(&early, at("2020-03-01T02:01:00Z"))
        .await
        .unwrap();
    let raw = f
        .lake()
        .get_bytes("reports/runs/deftunes/early-failure/report.json")
        .await
        .unwrap();
    let r: RunReport = serde_json::from_slice(&raw).unwrap();
    assert!(r.table_rows.values().all(|t| t.rows == 0 && !t.created));
    // Three tables not created yet, and the charts without a warehouse.
    assert_eq!(r.notes.len(), 4, "{:?}", r.notes);
    assert!(r.notes[0].contains("not created yet"), "{:?}", r.notes);
    assert!(
        r.notes[3].contains("charts of the spec not drawn"),
        "{:?}",
        r.notes
    );
    assert_eq!(r.error.as_ref().unwrap().error, "SourceUnavailable");

    // Two monthly windows extracted and transformed, as the Map's child executions do.
    let ds = Dataset::generate(
        5,
        &Scale {
            songs: 200,
            users: 90,
            sessions: 400,
            ..Scale::default()
        },
    );
    let windows = [("2020-01-01", "2020-01-31"), ("2020-02-01", "2020-02-29")];
    let mut entries = Vec::new();
    let mut outcomes: Vec<ObjectOutcome> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let (from, to) = (day(w.0), day(w.1));
        let mut users = ndjson(ds.users_between(from, to));
        // A record the transform must quarantine.
        users.extend_from_slice(b"{\"user_id\": \n");
        let bodies = [
            (
                "users",
                format!(
                    "landing_zone/api/users/ingest_on={}/users_{}_{}.part-00000.jsonl",
                    w.0, w.0, w.1
                ),
                users,
            ),
            (
                "sessions",
                format!(
                    "landing_zone/api/sessions/ingest_on={}/sessions_{}_{}.part-00000.jsonl",
                    w.0, w.0, w.1
                ),
                ndjson(ds.sessions_between(from, to)),
            ),
            (
                "songs",
                format!(
                    "landing_zone/rds/songs/ingest_on={}/songs.part-00000.jsonl",
                    w.0
                ),
                ndjson(&ds.songs),
            ),
        ];
        let mut sources = serde_json::Map::new();
        for (source, key, body) in &bodies {
            f.land(key, body).await;
            // The transform function's own answer to the state machine's {"keys": [...]}.
            let answer = f.transformer.handle(&json!({"keys": [key]})).await.unwrap();
            for o in answer["outcomes"].as_array().unwrap() {
                outcomes.push(serde_json::from_value(o["outcome"].clone()).unwrap());
            }
            sources.insert(
                source.to_string(),
                json!({"landed": landed(source, *w, key, body), "transformed": answer}),
            );
        }
        let window = json!({"start_date": w.0, "end_date": w.1});
        let input = json!({
            "window": window, "users_request": {"source": "users"},
            "sessions_request": {"source": "sessions"}, "songs_request": {"source": "songs"},
            "request": {}
        });
        let output = json!({"window": window, "sources": sources});
        let name = format!("{MAP_RUN_ID}-{i}");
        entries.push(json!({
            "ExecutionArn": format!("arn:aws:states:eu-west-1:123456789012:execution:deftunes-pipeline/windows:{MAP_RUN_ID}:{name}"),
            "Input": input.to_string(),
            "InputDetails": {"Included": true},
            "Name": name,
            "Output": output.to_string(),
            "OutputDetails": {"Included": true},
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
            "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
            "StartDate": format!("2020-03-01T02:00:0{}.100Z", 1 + i * 2),
            "StateMachineArn": format!("arn:aws:states:eu-west-1:123456789012:stateMachine:deftunes-pipeline/windows:{MAP_RUN_ID}"),
            "Status": "SUCCEEDED",
            "StopDate": format!("2020-03-01T02:00:0{}.600Z", 2 + i * 2),
        }));
    }
    // The ResultWriter's files, as Step Functions lays them out under its prefix.
    let prefix = format!("reports/map-results/deftunes/{MAP_RUN_ID}");
    let results_key = format!("{prefix}/SUCCEEDED_0.json");
    let results = serde_json::to_vec(&entries).unwrap();
    f.lake().put_bytes(&results_key, &results).await.unwrap();
    let manifest_key = format!("{prefix}/manifest.json");
    let manifest = json!({
        "DestinationBucket": BUCKET,
        "MapRunArn": format!("arn:aws:states:eu-west-1:123456789012:mapRun:deftunes-pipeline/windows:{MAP_RUN_ID}"),
        "ResultFiles": {
            "FAILED": [],
            "PENDING": [],
            "SUCCEEDED": [{"Key": results_key, "Size": results.len()}]
        }
    });
    f.lake()
        .put_bytes(&manifest_key, manifest.to_string().as_bytes())
        .await
        .unwrap();

    let input = json!({"windows": windows.iter().map(|w| json!({"start_date": w.0, "end_date": w.1})).collect::<Vec<_>>(), "Comment": HOSTILE});
    let event = report_event(
        "backfill-q1",
        "SUCCEEDED",
        false,
        input.clone(),
        input["windows"].clone(),
        json!({
            "MapRunArn": manifest["MapRunArn"],
            "ResultWriterDetails": {"Bucket": BUCKET, "Key": manifest_key}
        }),
    );
    let answer: ReportAnswer = serde_json::from_value(
        rc.handle_at(&event, at("2020-03-01T02:05:00Z"))
            .await
            .unwrap(),
    )
    .unwrap();
    let json_key = "reports/runs/deftunes/backfill-q1/report.json";
    let html_key = "reports/runs/deftunes/backfill-q1/report.html";
    assert_eq!(answer.json, f.lake().uri_of(json_key));
    assert_eq!(answer.html, f.lake().uri_of(html_key));
    // A manual run never sets a first frontier.
    assert_eq!(answer.last_successful_window, None);

    let json_bytes = f.lake().get_bytes(json_key).await.unwrap();
    let html_bytes = f.lake().get_bytes(html_key).await.unwrap();
    let r: RunReport = serde_json::from_slice(&json_bytes).unwrap();
    let html = String::from_utf8(html_bytes.clone()).unwrap();

    // Rows per table: the table's rows read back.
    for table in ["users", "sessions", "songs"] {
        let rows = f.rows(table).await as u64;
        assert!(rows > 0, "{table}");
        assert_eq!(r.table_rows[table].rows, rows, "{table}");
        assert!(r.table_rows[table].created);
        assert!(html.contains(&format!("<td class=\"num\">{}</td>", thousands(rows))));
    }
    // Totals per table: the outcomes the transform answered, summed.
    let mut expected: BTreeMap<String, OutcomeTotals> = BTreeMap::new();
    for o in &outcomes {
        expected.entry(o.table.clone()).or_default().add(o);
    }
    assert_eq!(r.totals, expected);
    assert_eq!(r.totals["users"].records_quarantined, 2);
    assert_eq!(r.totals["songs"].records_unchanged, ds.songs.len() as u64);
    let (quarantined, read): (u64, u64) = expected.values().fold((0, 0), |(q, n), t| {
        (q + t.records_quarantined, n + t.records_in)
    });
    assert_eq!(r.quarantine_rate, quarantined as f64 / read as f64);
    for t in expected.values() {
        assert!(html.contains(&format!(
            "<td class=\"num\">{}</td>",
            thousands(t.records_in)
        )));
    }

    // Per window: dates, status, timings and what each source landed and committed.
    assert_eq!(r.windows.len(), 2);
    let w0 = &r.windows[0];
    assert_eq!(w0.window.unwrap().to_string(), "2020-01-01..2020-01-31");
    assert_eq!(
        (w0.status.as_str(), w0.duration_ms),
        ("SUCCEEDED", Some(1500))
    );
    let users = &w0.sources["users"];
    assert_eq!(
        users.records_landed,
        ds.users_between(day("2020-01-01"), day("2020-01-31")).len() as u64 + 1
    );
    let users_table = &users.tables["users"];
    assert!(users_table.quality_passed);
    assert_eq!(users_table.outcomes.records_quarantined, 1);
    assert_eq!(users_table.quality_reports.len(), 1);
    assert!(users_table.quality_reports[0].starts_with("quality/users/ingest_on=2020-01-01/"));
    assert_eq!(r.timings_ms["windows_wall"], 3500);
    assert_eq!(r.timings_ms["execution"], 299_750);

    // Dataset rules from the quality reports, with the report holding the worst value.
    let rules = &r.rules["users"];
    assert!(!rules.is_empty());
    for s in rules.values() {
        assert!(s.passed);
        let worst = s.worst_report.as_deref().unwrap();
        assert!(
            outcomes.iter().any(|o| o.quality_report_key == worst),
            "{worst}"
        );
        assert!(html.contains(&escape(worst)));
    }
    // Nothing unexact but the charts, which need a warehouse.
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(
        r.notes[0].contains("charts of the spec not drawn"),
        "{:?}",
        r.notes
    );

    // The page: self-contained, the hostile input escaped wherever it shows.
    assert!(html.contains(&escape(HOSTILE)));
    assert!(!html.contains(HOSTILE));
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("@import"));
    assert!(html.contains("status ok\">SUCCEEDED"));

    // The same event again (an answer lost): the same objects, byte for byte.
    let again: ReportAnswer = serde_json::from_value(
        rc.handle_at(&event, at("2020-03-01T02:09:00Z"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(again, answer);
    assert_eq!(f.lake().get_bytes(json_key).await.unwrap(), json_bytes);
    assert_eq!(f.lake().get_bytes(html_key).await.unwrap(), html_bytes);

    // The Map's files must be in the lake: a local lake takes keys as lake keys, so a key
    // outside it is simply not there.
    let mut moved = event.clone();
    moved["report"]["map_run"]["ResultWriterDetails"]["Key"] = json!("elsewhere/manifest.json");
    moved["report"]["execution_name"] = json!("moved");
    let e = rc.handle(&moved).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    assert!(e.to_string().contains("elsewhere/manifest.json"), "{e}");
}

fn plan_event(scheduled_time: &str) -> Value {
    json!({"plan": {"scheduled_time": scheduled_time}})
}

async fn plan(rc: &RunControl, scheduled_time: &str) -> PlanAnswer {
    serde_json::from_value(rc.handle(&plan_event(scheduled_time)).await.unwrap()).unwrap()
}

fn days(p: &PlanAnswer) -> Vec<String> {
    p.windows.iter().map(|w| w.start_date.to_string()).collect()
}

async fn report(rc: &RunControl, name: &str, status: &str, p: &PlanAnswer) -> ReportAnswer {
    let event = report_event(
        name,
        status,
        true,
        json!({"scheduled_time": "ignored by the report"}),
        serde_json::to_value(&p.windows).unwrap(),
        json!(null),
    );
    serde_json::from_value(rc.handle(&event).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_catch_up_every_missed_day_and_a_failure_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rc = run_control(dir.path(), &[]).await;

    // First deployment: no frontier, only the run's own day (no backfill of history).
    let first = plan(&rc, "2020-02-02T02:00:00Z").await;
    assert_eq!(days(&first), ["2020-02-01"]);
    assert_eq!(
        (first.catch_up.last_successful, first.catch_up.capped),
        (None, false)
    );
    let done = report(&rc, "first", "SUCCEEDED", &first).await;
    assert_eq!(done.last_successful_window, Some(first.windows[0]));

    // Four days later (three schedules missed): the missed days and its own, oldest first.
    let late = plan(&rc, "2020-02-06T02:00:00Z").await;
    assert_eq!(
        days(&late),
        ["2020-02-02", "2020-02-03", "2020-02-04", "2020-02-05"]
    );
    assert_eq!(late.catch_up.planned, 4);
    assert_eq!(late.catch_up.last_successful, Some(first.windows[0]));

    // It fails: the frontier stays, and the next attempt plans the same days again.
    let failed = report(&rc, "late-1", "FAILED", &late).await;
    assert_eq!(failed.last_successful_window, Some(first.windows[0]));
    assert_eq!(plan(&rc, "2020-02-06T02:00:00Z").await, late);

    let done = report(&rc, "late-2", "SUCCEEDED", &late).await;
    assert_eq!(done.last_successful_window, Some(late.windows[3]));
    let raw = rc
        .lake()
        .get_bytes("state/deftunes/last-successful-window.json")
        .await
        .unwrap();
    let kept: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(kept["end_date"], "2020-02-05");
    assert!(kept["execution_arn"].as_str().unwrap().ends_with(":late-2"));

    // A repeated delivery of that schedule runs its own day again, nothing more.
    assert_eq!(
        days(&plan(&rc, "2020-02-06T02:00:00Z").await),
        ["2020-02-05"]
    );
    // The report of the failed attempt, sent again, still moves nothing back.
    let failed_again = report(&rc, "late-1", "FAILED", &late).await;
    assert_eq!(failed_again.last_successful_window, Some(late.windows[3]));

    // A capped catch-up: at most CATCH_UP_MAX_WINDOWS, the oldest, and the next run goes on.
    let capped_rc = run_control(dir.path(), &[("CATCH_UP_MAX_WINDOWS", "3")]).await;
    let capped = plan(&capped_rc, "2020-02-12T02:00:00Z").await;
    assert_eq!(days(&capped), ["2020-02-06", "2020-02-07", "2020-02-08"]);
    assert!(capped.catch_up.capped);
    report(&capped_rc, "capped", "SUCCEEDED", &capped).await;
    let rest = plan(&capped_rc, "2020-02-12T02:00:00Z").await;
    assert_eq!(days(&rest), ["2020-02-09", "2020-02-10", "2020-02-11"]);
    assert!(!rest.catch_up.capped);

    // A frontier someone broke: a non-retryable error naming it and the fix.
    rc.lake()
        .put_bytes(
            "state/deftunes/last-successful-window.json",
            b"{\"end_date\": 5}",
        )
        .await
        .unwrap();
    let e = rc
        .handle(&plan_event("2020-02-13T02:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "Configuration");
    assert!(!e.is_retryable());
    let msg = e.to_string();
    assert!(
        msg.contains("state/deftunes/last-successful-window.json"),
        "{msg}"
    );
    assert!(msg.contains("delete it"), "{msg}");

    // The run that ends meanwhile still gets its report, then the same error.
    let e = rc
        .handle(&report_event(
            "after-breakage",
            "SUCCEEDED",
            true,
            json!({}),
            json!([{"start_date": "2020-02-12", "end_date": "2020-02-12"}]),
            json!(null),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "Configuration");
    let raw = rc
        .lake()
        .get_bytes("reports/runs/deftunes/after-breakage/report.json")
        .await
        .unwrap();
    let r: RunReport = serde_json::from_slice(&raw).unwrap();
    assert!(!r.frontier.advanced);
    assert!(
        r.frontier.reason.contains("delete it"),
        "{}",
        r.frontier.reason
    );

    // A plan needs the schedule's time.
    let e = rc
        .handle(&json!({"plan": {"windows": []}}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    assert!(e.to_string().contains("scheduled_time"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_answers_the_sample_events_through_the_lambda_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let rc = run_control(dir.path(), &[]).await;
    let sample = |name: &str| -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    // What src/main.rs does with each payload.
    let invoke = |payload: Value| {
        let rc = &rc;
        async move { deftunes::telemetry::invocation("run-control", rc.handle(&payload)).await }
    };
    let planned: PlanAnswer =
        serde_json::from_value(invoke(sample("run-control-plan.json")).await.unwrap()).unwrap();
    assert_eq!(planned.windows.len(), 1);
    let reported: ReportAnswer =
        serde_json::from_value(invoke(sample("run-control-report.json")).await.unwrap()).unwrap();
    assert!(reported.html.ends_with("/report.html"), "{}", reported.html);
    assert!(std::path::Path::new(&reported.html).exists());
    let d = invoke(json!({"report": {"execution_name": "x"}}))
        .await
        .unwrap_err();
    assert_eq!(d.error_type, "InvalidInput");
    assert!(
        d.error_message.contains("run-control report"),
        "{}",
        d.error_message
    );
}

/// The BI views of the DeFtunes spec's charts, as tables in a real PostgreSQL (Redshift speaks
/// its protocol; the Data API adapter is tested with mocks in shared).
async fn bi_warehouse(pg: &deftunes_local::LocalPostgres) {
    let client = pg.connect().await.unwrap();
    client
        .batch_execute(
            "CREATE SCHEMA deftunes_bi;
             CREATE TABLE deftunes_bi.sales_per_country_per_month (
               session_year int, session_month int, country_code text, items_sold int,
               total_sales numeric(12, 2));
             INSERT INTO deftunes_bi.sales_per_country_per_month VALUES
               (2020, 1, 'US', 3, 10.50), (2020, 1, 'FR', 1, 0.99), (2020, 2, 'US', 2, 4.00),
               (2019, 12, 'DE', 5, 1234.56), (2020, 2, '<b>XX</b>', 1, 1.00);",
        )
        .await
        .unwrap();
}

/// A report event for an execution with no Map run, on 2020-01-01.
fn plain_event(name: &str) -> Value {
    report_event(
        name,
        "SUCCEEDED",
        false,
        json!({}),
        json!([{"start_date": "2020-01-01", "end_date": "2020-01-01"}]),
        json!(null),
    )
}

async fn read_report(answer: &Value) -> (RunReport, String) {
    let a: ReportAnswer = serde_json::from_value(answer.clone()).unwrap();
    let json = std::fs::read(&a.json).unwrap();
    (
        serde_json::from_slice(&json).unwrap(),
        std::fs::read_to_string(&a.html).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_report_draws_the_specs_charts_from_the_warehouse() {
    let pg_dir = tempfile::tempdir().unwrap();
    let mut pg = deftunes_local::LocalPostgres::start(pg_dir.path())
        .await
        .unwrap();
    bi_warehouse(&pg).await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.connection_string();
    let rc = run_control(dir.path(), &[("WAREHOUSE_URL", &url)]).await;

    let answer = rc.handle(&plain_event("charts-1")).await.unwrap();
    let (r, html) = read_report(&answer).await;
    let titles: Vec<&str> = r.charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Sales per month",
            "Top 15 artists by sales",
            "Top 15 buyer countries by sales"
        ]
    );
    let bars = |i: usize| -> Vec<(String, Option<f64>)> {
        r.charts[i]
            .bars
            .iter()
            .map(|b| (b.label.clone(), b.value))
            .collect()
    };
    let months = bars(0);
    assert_eq!(
        months,
        [
            ("2019-12".to_string(), Some(1234.56)),
            ("2020-01".to_string(), Some(11.49)),
            ("2020-02".to_string(), Some(5.0)),
        ]
    );
    assert_eq!(r.charts[0].sql.matches("deftunes_bi.").count(), 1);
    // The artists' view is not there (dbt has not built it): that chart says why, the others draw.
    let artists = &r.charts[1];
    assert!(artists.bars.is_empty());
    let why = artists.error.as_deref().unwrap();
    assert!(
        why.contains("sales_per_artist_per_year") && why.contains("42P01"),
        "{why}"
    );
    assert_eq!(bars(2)[0], ("DE".to_string(), Some(1234.56)));
    assert_eq!(bars(2).len(), 4);
    assert!(r
        .charts_from
        .as_deref()
        .unwrap()
        .starts_with("PostgreSQL 127.0.0.1"));
    // The page: two charts drawn (3 + 4 bars), one "not drawn", every label escaped.
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 7, "{html}");
    assert!(html.contains("Not drawn:"), "{html}");
    assert!(html.contains("&lt;b&gt;XX&lt;/b&gt;") && !html.contains("<b>XX</b>"));
    assert!(html.contains("$1,234.56"), "{html}");

    // The same event again (an answer lost) writes the same bytes, with the charts it drew then,
    // even though the warehouse has changed since.
    let before = std::fs::read(
        dir.path()
            .join("lake/reports/runs/deftunes/charts-1/report.json"),
    )
    .unwrap();
    let client = pg.connect().await.unwrap();
    client
        .batch_execute("UPDATE deftunes_bi.sales_per_country_per_month SET total_sales = 0")
        .await
        .unwrap();
    rc.handle(&plain_event("charts-1")).await.unwrap();
    let after = std::fs::read(
        dir.path()
            .join("lake/reports/runs/deftunes/charts-1/report.json"),
    )
    .unwrap();
    assert_eq!(before, after);
    // A new execution reads the warehouse as it is now.
    let (r2, _) = read_report(&rc.handle(&plain_event("charts-2")).await.unwrap()).await;
    assert!(r2.charts[0].bars.iter().all(|b| b.value == Some(0.0)));

    // Without a warehouse the report says its charts were not drawn.
    let bare = run_control(dir.path(), &[]).await;
    let (r3, _) = read_report(&bare.handle(&plain_event("charts-3")).await.unwrap()).await;
    assert!(r3.charts.is_empty());
    assert!(
        r3.notes
            .iter()
            .any(|n| n.contains("3 BI charts of the spec not drawn")),
        "{:?}",
        r3.notes
    );
    pg.stop().unwrap();
}
