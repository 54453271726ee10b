//! `report.html`: a run report as one self-contained page (no script, no external resource),
//! with the local dashboards' stylesheet, drawn from `report.json` alone so that the same report
//! always draws the same bytes. Every string from the report is escaped.

use std::fmt::Write as _;

use super::charts::ChartReport;
use super::report::{ExecutionStatus, RunReport};
use crate::window::Window;

/// The stylesheet of the local run's dashboards (`local/python/dashboard.py` reads it too).
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// `s` as HTML text or attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` -> `1,234,567`, as the local dashboards print counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn window_text(w: Option<&Window>) -> String {
    w.map(|w| w.to_string()).unwrap_or_else(|| "unknown".into())
}

/// A cell: its text escaped, right-aligned when numeric, marked when it says a failure.
enum Cell {
    Text(String),
    Num(String),
    Failed(String),
    /// Already HTML (built from escaped parts).
    Html(String),
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn num(n: u64) -> Cell {
    Cell::Num(thousands(n))
}

fn verdict(passed: bool) -> Cell {
    if passed {
        text("passed")
    } else {
        Cell::Failed("FAILED".into())
    }
}

fn table(headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = match cell {
                Cell::Text(s) => write!(out, "<td>{}</td>", escape(s)),
                Cell::Num(s) => write!(out, "<td class=\"num\">{}</td>", escape(s)),
                Cell::Failed(s) => write!(out, "<td class=\"failed\">{}</td>", escape(s)),
                Cell::Html(s) => write!(out, "<td>{s}</td>"),
            };
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn panel(title: &str, note: Option<&str>, body: &str, wide: bool) -> String {
    let note = note
        .map(|n| format!("<p class=\"note\">{}</p>", escape(n)))
        .unwrap_or_default();
    let class = if wide { "panel wide" } else { "panel" };
    format!(
        "<section class=\"{class}\"><h2>{}</h2>{note}{body}</section>\n",
        escape(title)
    )
}

fn empty(why: &str) -> String {
    format!("<p class=\"empty\">{}</p>", escape(why))
}

/// Several lake keys in one cell, one per line.
fn keys_cell(keys: &[String]) -> Cell {
    Cell::Html(
        keys.iter()
            .map(|k| escape(k))
            .collect::<Vec<_>>()
            .join("<br>"),
    )
}

/// `v` with thousands separators after `unit`: whole numbers as counts, others with cents.
fn amount(v: f64, unit: &str) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    let cents = (a.fract() * 100.0).round() as u64;
    let (whole, cents) = if cents == 100 {
        (a.trunc() as u64 + 1, 0)
    } else {
        (a.trunc() as u64, cents)
    };
    if a.fract() == 0.0 {
        format!("{sign}{unit}{}", thousands(whole))
    } else {
        format!("{sign}{unit}{}.{cents:02}", thousands(whole))
    }
}

/// Longer labels are cut (the whole label is the bar's tooltip).
const LABEL_CHARS: usize = 28;
const ROW_PX: usize = 20;

/// A horizontal bar chart as inline SVG: the label, the bar from zero, the value.
fn bar_chart(c: &ChartReport) -> String {
    let (label_w, bar_w, value_w) = (190.0, 330.0, 100.0);
    let values = c.bars.iter().filter_map(|b| b.value);
    let lo = values.clone().fold(0.0_f64, f64::min);
    let hi = values.fold(0.0_f64, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |v: f64| label_w + (v - lo) / span * bar_w;
    let height = c.bars.len() * ROW_PX + 4;
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {height}\" width=\"100%\" role=\"img\" aria-label=\"{title}\" data-marks=\"{marks}\">",
        w = label_w + bar_w + value_w,
        title = escape(&c.title),
        marks = c.bars.iter().filter(|b| b.value.is_some()).count(),
    );
    let zero = x(0.0);
    for (i, b) in c.bars.iter().enumerate() {
        let y = i * ROW_PX + 2;
        let shown: String = if b.label.chars().count() > LABEL_CHARS {
            b.label.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
        } else {
            b.label.clone()
        };
        let value = b
            .value
            .map_or_else(|| "null".into(), |v| amount(v, &c.unit));
        let _ = write!(
            out,
            "<g><title>{label}: {value}</title><text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{shown}</text>",
            label = escape(&b.label),
            value = escape(&value),
            lx = label_w - 6.0,
            ty = y + 13,
            shown = escape(&shown),
        );
        if let Some(v) = b.value {
            let (from, to) = (zero.min(x(v)), zero.max(x(v)));
            let _ = write!(
                out,
                "<rect class=\"bar\" x=\"{from:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" fill=\"var(--accent)\"></rect>",
                w = (to - from).max(0.5),
                h = ROW_PX - 4,
            );
        }
        let _ = write!(
            out,
            "<text x=\"{vx}\" y=\"{ty}\">{value}</text></g>",
            vx = label_w + bar_w + 6.0,
            ty = y + 13,
            value = escape(&value),
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{zero:.1}\" y1=\"0\" x2=\"{zero:.1}\" y2=\"{height}\"></line></svg>"
    );
    out
}

/// A chart's panel: its bars, or why it has none, and the query it ran.
fn chart_panel(c: &ChartReport, from: Option<&str>) -> String {
    let mut note = match from {
        Some(w) => format!("From {w} as the report was made."),
        None => "As the report was made.".into(),
    };
    if c.truncated {
        let _ = write!(note, " The query's first {} rows.", c.bars.len());
    }
    let body = match (&c.error, c.bars.is_empty()) {
        (Some(e), _) => format!("<p class=\"failed\">Not drawn: {}</p>", escape(e)),
        (None, true) => empty("The query answered no rows."),
        (None, false) => bar_chart(c),
    };
    let query = format!(
        "<details><summary>query</summary><pre>{}</pre></details>",
        escape(&c.sql)
    );
    panel(&c.title, Some(&note), &format!("{body}{query}"), false)
}

/// The page of `report`; `json_uri` is where its `report.json` is.
pub fn render(report: &RunReport, json_uri: &str) -> String {
    let r = report;
    let ok = r.status == ExecutionStatus::Succeeded;
    let records_in: u64 = r.totals.values().map(|t| t.records_in).sum();
    let rows_committed: u64 = r.totals.values().map(|t| t.rows_committed).sum();
    let quarantined: u64 = r.totals.values().map(|t| t.records_quarantined).sum();
    let failed_rules = r
        .rules
        .values()
        .flat_map(|rules| rules.values())
        .filter(|s| !s.passed)
        .count();
    let failed_windows = r.windows.iter().filter(|w| w.status != "SUCCEEDED").count();

    let kpi = |value: String, label: &str, bad: bool| {
        format!(
            "<div class=\"kpi\"><b{}>{}</b><span>{}</span></div>",
            if bad { " class=\"failed\"" } else { "" },
            escape(&value),
            escape(label)
        )
    };
    let kpis = [
        kpi(r.status.as_str().into(), "status", !ok),
        kpi(
            format!("{} / {}", r.windows.len() - failed_windows, r.windows.len()),
            "windows succeeded",
            failed_windows > 0,
        ),
        kpi(thousands(records_in), "records in", false),
        kpi(thousands(rows_committed), "rows committed", false),
        kpi(
            format!(
                "{} ({})",
                thousands(quarantined),
                percent(r.quarantine_rate)
            ),
            "records quarantined",
            false,
        ),
        kpi(
            if failed_rules == 0 {
                "all passed".into()
            } else {
                format!("{failed_rules} failed")
            },
            "dataset rules",
            failed_rules > 0,
        ),
        kpi(
            seconds(r.timings_ms.get("execution").copied().unwrap_or(0)),
            "duration",
            false,
        ),
    ]
    .concat();

    let mut main = format!("<div class=\"kpis\">{kpis}</div>\n");

    if let Some(e) = &r.error {
        let body = format!(
            "<p><b>{}</b></p><pre>{}</pre>",
            escape(&e.error),
            escape(e.cause.as_deref().unwrap_or(""))
        );
        main.push_str(&panel("Error", None, &body, true));
    }

    for c in &r.charts {
        main.push_str(&chart_panel(c, r.charts_from.as_deref()));
    }

    let total_rows: Vec<Vec<Cell>> = r
        .totals
        .iter()
        .map(|(name, t)| {
            vec![
                text(name.as_str()),
                num(t.objects),
                num(t.records_in),
                num(t.records_committed),
                num(t.records_unchanged),
                num(t.records_quarantined),
                Cell::Num(percent(t.quarantine_rate())),
                num(t.rows_committed),
                num(t.rows_quarantined),
                num(r.table_rows.get(name).map_or(0, |t| t.rows)),
            ]
        })
        .collect();
    let totals = if total_rows.is_empty() {
        empty("No object was committed by this run's windows.")
    } else {
        table(
            &[
                "table",
                "objects",
                "records in",
                "committed",
                "unchanged",
                "quarantined",
                "quarantine rate",
                "rows committed",
                "rows quarantined",
                "rows in table",
            ],
            &total_rows,
        )
    };
    main.push_str(&panel(
        "Totals per table",
        Some("Summed over the run's windows; rows in table: the current snapshot when the run ended."),
        &totals,
        true,
    ));

    let mut window_rows = Vec::new();
    for w in &r.windows {
        let head = |first: bool| -> Vec<Cell> {
            if first {
                vec![
                    text(window_text(w.window.as_ref())),
                    if w.status == "SUCCEEDED" {
                        text(w.status.as_str())
                    } else {
                        Cell::Failed(w.status.clone())
                    },
                    Cell::Num(w.duration_ms.map(seconds).unwrap_or_default()),
                ]
            } else {
                vec![text(""), text(""), text("")]
            }
        };
        let mut first = true;
        if w.sources.is_empty() {
            let mut row = head(true);
            let why = w
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.error, e.cause.as_deref().unwrap_or("")))
                .unwrap_or_else(|| "no output".into());
            row.push(text(why));
            row.extend((0..11).map(|_| text("")));
            window_rows.push(row);
            continue;
        }
        for (source, s) in &w.sources {
            let tables: Vec<(Option<&String>, Option<&super::report::TableWindow>)> =
                if s.tables.is_empty() {
                    vec![(None, None)]
                } else {
                    s.tables.iter().map(|(n, t)| (Some(n), Some(t))).collect()
                };
            for (i, (name, t)) in tables.into_iter().enumerate() {
                let mut row = head(first);
                first = false;
                row.push(text(if i == 0 { source.as_str() } else { "" }));
                if i == 0 {
                    row.extend([num(s.objects_landed), num(s.records_landed)]);
                } else {
                    row.extend([text(""), text("")]);
                }
                match (name, t) {
                    (Some(name), Some(t)) => row.extend([
                        text(name.as_str()),
                        num(t.outcomes.records_in),
                        num(t.outcomes.records_committed),
                        num(t.outcomes.records_unchanged),
                        num(t.outcomes.records_quarantined),
                        num(t.outcomes.rows_committed),
                        num(t.outcomes.rows_quarantined),
                        verdict(t.quality_passed),
                        keys_cell(&t.quality_reports),
                    ]),
                    _ => row.extend((0..9).map(|_| text(""))),
                }
                window_rows.push(row);
            }
        }
    }
    let windows = if window_rows.is_empty() {
        let requested: Vec<String> = r.requested_windows.iter().map(|w| w.to_string()).collect();
        empty(&if requested.is_empty() {
            "No window results (the run had no Map run).".to_string()
        } else {
            format!(
                "No window results (no Map run); windows requested: {}.",
                requested.join(", ")
            )
        })
    } else {
        table(
            &[
                "window",
                "status",
                "duration",
                "source",
                "objects landed",
                "records landed",
                "table",
                "records in",
                "committed",
                "unchanged",
                "quarantined",
                "rows committed",
                "rows quarantined",
                "data quality",
                "quality report",
            ],
            &window_rows,
        )
    };
    main.push_str(&panel(
        "Windows",
        r.map_run_arn
            .as_deref()
            .map(|a| format!("Map run {a}"))
            .as_deref(),
        &windows,
        true,
    ));

    let rule_rows: Vec<Vec<Cell>> = r
        .rules
        .iter()
        .flat_map(|(table_name, rules)| {
            rules.iter().map(move |(rule, s)| {
                vec![
                    text(table_name.as_str()),
                    text(rule.as_str()),
                    Cell::Num(format!("{:.4}", s.worst_value)),
                    Cell::Num(format!("{}", s.threshold)),
                    verdict(s.passed),
                    text(s.worst_report.clone().unwrap_or_default()),
                ]
            })
        })
        .collect();
    let rules = if rule_rows.is_empty() {
        empty("No dataset rule was evaluated.")
    } else {
        table(
            &[
                "table",
                "rule",
                "worst value",
                "threshold",
                "result",
                "report (worst value)",
            ],
            &rule_rows,
        )
    };
    main.push_str(&panel("Data quality rules", None, &rules, true));

    let row_rows: Vec<Vec<Cell>> = r
        .table_rows
        .iter()
        .map(|(name, t)| {
            vec![
                text(name.as_str()),
                num(t.rows),
                text(if t.created { "" } else { "not created yet" }),
            ]
        })
        .collect();
    main.push_str(&panel(
        "Rows per table",
        Some("Iceberg current snapshot (total-records)."),
        &table(&["table", "rows", ""], &row_rows),
        false,
    ));

    let f = &r.frontier;
    let frontier = table(
        &["", ""],
        &[
            vec![text("before"), text(window_text(f.before.as_ref()))],
            vec![text("after"), text(window_text(f.after.as_ref()))],
            vec![text("moved"), text(if f.advanced { "yes" } else { "no" })],
            vec![text("why"), text(f.reason.as_str())],
        ],
    );
    main.push_str(&panel("Last successful window", None, &frontier, false));

    let timing_rows: Vec<Vec<Cell>> = r
        .timings_ms
        .iter()
        .map(|(k, v)| vec![text(k.as_str()), Cell::Num(seconds(*v))])
        .collect();
    main.push_str(&panel(
        "Timings",
        None,
        &table(&["what", "time"], &timing_rows),
        false,
    ));

    if !r.notes.is_empty() {
        let body = format!(
            "<ul>{}</ul>",
            r.notes
                .iter()
                .map(|n| format!("<li>{}</li>", escape(n)))
                .collect::<String>()
        );
        main.push_str(&panel("Notes", None, &body, false));
    }

    let input = serde_json::to_string_pretty(&r.input).unwrap_or_default();
    main.push_str(&panel(
        "Execution input",
        None,
        &format!("<pre>{}</pre>", escape(&input)),
        false,
    ));

    let kind = if r.scheduled { "scheduled" } else { "manual" };
    format!(
        "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>{pipeline}: run {name}</title>
<style>
{STYLE}</style>
</head>
<body>
<header>
<h1>{pipeline} run {name} <span class=\"status {class}\">{status}</span></h1>
<p>A {kind} run of {state_machine}: started {started}, finished {finished} ({duration:.1} s). Execution {arn}. Data: {json}.</p>
</header>
<main>
{main}</main>
</body>
</html>
",
        pipeline = escape(&r.pipeline),
        name = escape(&r.execution_name),
        class = if ok { "ok" } else { "failed" },
        status = r.status.as_str(),
        state_machine = escape(&r.state_machine),
        started = escape(&r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        finished = escape(&r.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        duration = r.duration_secs,
        arn = escape(&r.execution_arn),
        json = escape(json_uri),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(percent(0.0123), "1.23 %");
        assert_eq!(amount(1234.5, "$"), "$1,234.50");
        assert_eq!(amount(1234.0, ""), "1,234");
        assert_eq!(amount(-0.994, "$"), "-$0.99");
        assert_eq!(amount(9.999, ""), "10.00");
    }

    #[test]
    fn a_chart_draws_one_bar_per_value_and_escapes_its_labels() {
        use super::super::charts::Bar;
        let bar = |label: &str, value: Option<f64>| Bar {
            label: label.into(),
            value,
        };
        let c = ChartReport {
            title: "Sales <per> month".into(),
            sql: "SELECT a, b FROM bi.v WHERE x < 1".into(),
            unit: "$".into(),
            bars: vec![
                bar("<script>alert(1)</script>", Some(10.0)),
                bar(
                    "a label much longer than twenty-eight characters",
                    Some(-5.0),
                ),
                bar("none", None),
            ],
            truncated: true,
            error: None,
        };
        let html = chart_panel(&c, Some("Redshift workgroup wg, database dev"));
        assert_eq!(html.matches("<rect class=\"bar\"").count(), 2);
        assert!(html.contains("data-marks=\"2\""), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("a label much longer than tw…"), "{html}");
        assert!(html.contains("$10") && html.contains("-$5") && html.contains(">null<"));
        assert!(html.contains("first 3 rows") && html.contains("Redshift workgroup wg"));
        assert!(html.contains("WHERE x &lt; 1"), "{html}");
        // Zero is at a third of the bars' width (from -5 to 10): the positive bar starts there,
        // the negative one ends there.
        assert!(
            html.contains("x=\"300.0\" y=\"2\" width=\"220.0\""),
            "{html}"
        );
        assert!(
            html.contains("x=\"190.0\" y=\"22\" width=\"110.0\""),
            "{html}"
        );
        let failed = ChartReport {
            error: Some("relation bi.v does not exist".into()),
            bars: Vec::new(),
            truncated: false,
            ..c
        };
        let html = chart_panel(&failed, None);
        assert!(
            html.contains("Not drawn: relation bi.v does not exist"),
            "{html}"
        );
        assert!(!html.contains("<svg"), "{html}");
    }

    #[test]
    fn the_stylesheet_is_the_dashboards() {
        assert!(STYLE.contains(".kpi b"), "shared/assets/dashboard.css");
        assert!(!STYLE.contains("http"), "the page loads nothing");
    }
}
