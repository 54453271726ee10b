//! Metrics in CloudWatch's embedded metric format (EMF): one JSON line per outcome on stdout.
//! Lambda sends stdout to CloudWatch Logs, which extracts the metrics from such lines: no API
//! call, no latency and no permission beyond writing logs. The names, units and dimension sets
//! are the contract of the alarms and dashboards in `terraform/modules/operations_settings`.

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::config::Env;
use crate::error::{Error, Result};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "DeFtunes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Where metric lines go.
#[derive(Debug, Clone, Default)]
enum Sink {
    /// Not emitted (local runs print their own summary).
    #[default]
    Off,
    Stdout,
    /// Kept in memory, for tests.
    Captured(Arc<Mutex<Vec<String>>>),
}

/// The metrics of one pipeline's function. `METRICS=emf|off`; default `emf` in Lambda
/// (`AWS_LAMBDA_FUNCTION_NAME` set), `off` elsewhere.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pipeline: String,
    sink: Sink,
}

/// One metric line's values: (name, unit, value).
pub type Values<'a> = &'a [(&'a str, Unit, u64)];

impl Metrics {
    pub fn from_env(env: &dyn Env, pipeline: &str) -> Result<Metrics> {
        let sink = match env.var("METRICS").as_deref() {
            Some("emf") => Sink::Stdout,
            Some("off") => Sink::Off,
            None if env.var("AWS_LAMBDA_FUNCTION_NAME").is_some() => Sink::Stdout,
            None => Sink::Off,
            Some(other) => {
                return Err(Error::Configuration(format!(
                    "METRICS={other:?}: expected emf or off"
                )))
            }
        };
        Ok(Metrics {
            pipeline: pipeline.to_string(),
            sink,
        })
    }

    /// Metrics kept in memory; the second value reads the lines emitted so far.
    pub fn captured(pipeline: &str) -> (Metrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Metrics {
                pipeline: pipeline.to_string(),
                sink: Sink::Captured(lines.clone()),
            },
            lines,
        )
    }

    /// Emits `values` with the dimension `dimension` = `value` besides `Pipeline`, aggregated
    /// both per (Pipeline, dimension) and per Pipeline; `properties` ride along for searching the
    /// logs (an object key, a status) without becoming dimensions.
    pub fn emit(
        &self,
        dimension: &str,
        value: &str,
        values: Values<'_>,
        properties: &[(&str, &str)],
    ) {
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let line = self.line(dimension, value, values, properties, chrono::Utc::now());
        match &self.sink {
            Sink::Off => {}
            Sink::Stdout => println!("{line}"),
            Sink::Captured(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        }
    }

    fn line(
        &self,
        dimension: &str,
        value: &str,
        values: Values<'_>,
        properties: &[(&str, &str)],
        at: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let mut root = Map::new();
        for (k, v) in properties {
            root.insert((*k).to_string(), Value::from(*v));
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Pipeline", dimension], ["Pipeline"]],
                    "Metrics": values
                        .iter()
                        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        root.insert("Pipeline".into(), Value::from(self.pipeline.as_str()));
        root.insert(dimension.into(), Value::from(value));
        for (name, _, v) in values {
            root.insert((*name).to_string(), Value::from(*v));
        }
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_line_is_emf_with_both_dimension_sets() {
        let (m, lines) = Metrics::captured("deftunes");
        m.emit(
            "Table",
            "users",
            &[("RecordsIn", Unit::Count, 7), ("Bytes", Unit::Bytes, 512)],
            &[("key", "landing_zone/api/users/x.jsonl")],
        );
        let lines = lines.lock().unwrap();
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "DeFtunes");
        assert_eq!(
            cw["Dimensions"],
            json!([["Pipeline", "Table"], ["Pipeline"]])
        );
        assert_eq!(cw["Metrics"][1], json!({"Name": "Bytes", "Unit": "Bytes"}));
        assert!(v["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(
            (
                &v["Pipeline"],
                &v["Table"],
                &v["RecordsIn"],
                &v["Bytes"],
                &v["key"]
            ),
            (
                &json!("deftunes"),
                &json!("users"),
                &json!(7),
                &json!(512),
                &json!("landing_zone/api/users/x.jsonl")
            )
        );
    }

    #[test]
    fn on_in_lambda_off_locally_and_refused_when_unknown() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let sink = |pairs: &[(&str, &str)]| Metrics::from_env(&env(pairs), "p").map(|m| m.sink);
        assert!(matches!(sink(&[]).unwrap(), Sink::Off));
        assert!(matches!(
            sink(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]).unwrap(),
            Sink::Stdout
        ));
        assert!(matches!(
            sink(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), ("METRICS", "off")]).unwrap(),
            Sink::Off
        ));
        assert!(matches!(sink(&[("METRICS", "emf")]).unwrap(), Sink::Stdout));
        let e = sink(&[("METRICS", "statsd")]).unwrap_err();
        assert!(e.to_string().contains("METRICS=\"statsd\""), "{e}");
    }
}
