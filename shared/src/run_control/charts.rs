//! The run report's BI charts: each `[[report.charts]]` of the pipeline's spec, queried on the
//! warehouse dbt built as the report is made, and kept in `report.json` as the bars it draws.
//!
//! A chart that cannot be read (the warehouse paused or unreachable, a view dbt has not built
//! yet, an answer that is not label and number) says why in its panel; it never fails the report,
//! whose run and frontier matter more than its pictures.

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::pipeline::ChartSpec;
use crate::serving::warehouse::{Rows, Warehouse};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartReport {
    pub title: String,
    /// The query as it ran (schemas in place).
    pub sql: String,
    /// Written before each value, e.g. `$`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// In the query's order.
    pub bars: Vec<Bar>,
    /// The query answered more rows than the chart draws.
    #[serde(default)]
    pub truncated: bool,
    /// Why there are no bars, when the query failed or its answer was not a chart's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub label: String,
    /// `None`: the value was null (a label without a bar).
    pub value: Option<f64>,
}

/// Every chart, read at once (each bounded by the warehouse's timeout).
pub async fn read(
    warehouse: &dyn Warehouse,
    charts: &[ChartSpec],
    serving: &str,
    bi: &str,
) -> Vec<ChartReport> {
    join_all(charts.iter().map(|c| async move {
        let sql = c.sql_for(serving, bi);
        // One row more than drawn tells whether there were more.
        let answer = warehouse.query(&sql, c.bars + 1).await;
        let drawn = answer
            .map_err(|e| e.to_string())
            .and_then(|rows| bars(rows, c.bars));
        if let Err(e) = &drawn {
            tracing::warn!(chart = %c.title, error = %e, "chart not drawn");
        }
        let (bars, truncated, error) = match drawn {
            Ok((bars, truncated)) => (bars, truncated, None),
            Err(e) => (Vec::new(), false, Some(e)),
        };
        ChartReport {
            title: c.title.clone(),
            sql,
            unit: c.unit.clone(),
            bars,
            truncated,
            error,
        }
    }))
    .await
}

/// The bars of a query's answer: label, then a number (text as the warehouse prints it).
fn bars(rows: Rows, max: usize) -> Result<(Vec<Bar>, bool), String> {
    let truncated = rows.len() > max;
    let mut out = Vec::with_capacity(rows.len().min(max));
    for (i, row) in rows.into_iter().take(max).enumerate() {
        let [label, value] = <[Option<String>; 2]>::try_from(row).map_err(|row| {
            format!(
                "row {} has {} columns; a chart's query answers two: the label, then the value",
                i + 1,
                row.len()
            )
        })?;
        let value = match value {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    return Err(format!(
                        "row {}: the value {v:?} is not a number (the second column is the bar's length)",
                        i + 1
                    ))
                }
            },
        };
        out.push(Bar {
            label: label.unwrap_or_else(|| "(null)".into()),
            value,
        });
    }
    Ok((out, truncated))
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::error::{Error, Result};

    fn row(label: Option<&str>, value: Option<&str>) -> Vec<Option<String>> {
        vec![label.map(str::to_string), value.map(str::to_string)]
    }

    #[test]
    fn a_label_and_a_number_make_a_bar() {
        let rows = vec![
            row(Some("2020-01"), Some("1234.50")),
            row(None, Some("7")),
            row(Some("no sales"), None),
            row(Some("more"), Some("1")),
        ];
        let (drawn, truncated) = bars(rows, 3).unwrap();
        assert!(truncated);
        assert_eq!(
            drawn,
            [
                Bar {
                    label: "2020-01".into(),
                    value: Some(1234.5)
                },
                Bar {
                    label: "(null)".into(),
                    value: Some(7.0)
                },
                Bar {
                    label: "no sales".into(),
                    value: None
                },
            ]
        );
        let (all, truncated) = bars(vec![row(Some("a"), Some("-2e3"))], 3).unwrap();
        assert!(!truncated);
        assert_eq!(all[0].value, Some(-2000.0));
    }

    #[test]
    fn an_answer_that_is_no_chart_is_named() {
        let e = bars(vec![vec![Some("a".into())]], 5).unwrap_err();
        assert!(e.contains("row 1 has 1 columns"), "{e}");
        let e = bars(
            vec![row(Some("a"), Some("1")), row(Some("b"), Some("abc"))],
            5,
        )
        .unwrap_err();
        assert!(e.contains("row 2") && e.contains("\"abc\""), "{e}");
        let e = bars(vec![row(Some("a"), Some("NaN"))], 5).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
    }

    /// Answers by the query's text: rows, or an error.
    struct Canned;

    #[async_trait]
    impl Warehouse for Canned {
        async fn query(&self, sql: &str, max_rows: usize) -> Result<Rows> {
            if sql.contains("missing") {
                return Err(Error::WarehouseRejected(format!(
                    "relation does not exist: `{sql}`"
                )));
            }
            Ok((0..50)
                .map(|i| row(Some(&format!("r{i}")), Some(&i.to_string())))
                .take(max_rows)
                .collect())
        }
    }

    fn spec(title: &str, sql: &str, bars: usize) -> ChartSpec {
        ChartSpec {
            title: title.into(),
            sql: sql.into(),
            bars,
            unit: "$".into(),
        }
    }

    #[tokio::test]
    async fn each_chart_is_read_and_a_failed_one_says_why() {
        let charts = [
            spec("ok", "SELECT a, b FROM {bi}.v", 10),
            spec("gone", "SELECT a, b FROM {serving}.missing", 10),
        ];
        let out = read(&Canned, &charts, "s", "b").await;
        assert_eq!(out[0].sql, "SELECT a, b FROM b.v");
        assert_eq!((out[0].bars.len(), out[0].truncated), (10, true));
        assert_eq!(out[0].error, None);
        assert_eq!(out[1].sql, "SELECT a, b FROM s.missing");
        assert!(out[1].bars.is_empty());
        let e = out[1].error.as_deref().unwrap();
        assert!(e.contains("relation does not exist"), "{e}");
    }
}
