//! Stage 1: extraction from the DeFtunes sources into the landing zone.
//!
//! Both extractors share one shape: stream the source into spooled NDJSON parts (bounded memory,
//! nothing visible yet), then publish the parts under deterministic keys and remove parts a
//! previous run of the same window left behind, so a rerun replaces rather than duplicates.

pub mod api;
pub mod mysql;
pub mod ndjson;
pub mod songs;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::storage::Lake;
use ndjson::SpooledPart;

pub const LANDING_ZONE: &str = "landing_zone";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandedObject {
    pub key: String,
    pub records: u64,
    pub bytes: u64,
}

/// What one extraction landed; the output a state machine passes on (`$.keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractSummary {
    /// `api/users`, `api/sessions` or `rds/songs`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    pub ingest_date: NaiveDate,
    pub objects: Vec<LandedObject>,
    pub keys: Vec<String>,
    pub records: u64,
    pub bytes: u64,
    /// Parts of an earlier run of the same window that this run replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// Several extractions from one invocation (a scheduled event covering both endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractBatch {
    pub extracts: Vec<ExtractSummary>,
    pub keys: Vec<String>,
    pub records: u64,
    pub bytes: u64,
}

impl ExtractBatch {
    pub fn new(extracts: Vec<ExtractSummary>) -> Self {
        ExtractBatch {
            keys: extracts
                .iter()
                .flat_map(|s| s.keys.iter().cloned())
                .collect(),
            records: extracts.iter().map(|s| s.records).sum(),
            bytes: extracts.iter().map(|s| s.bytes).sum(),
            extracts,
        }
    }
}

/// The landing zone's key layout, `<prefix>/<source folder>/ingest_on=YYYY-MM-DD/<file>` for what
/// our extractors land, `<prefix>/<source folder>/<any path>` for files other systems land: the
/// one place that writes or reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingKey<'k> {
    /// The source's folder, e.g. `api/users` (one or more segments).
    pub source: &'k str,
    /// The `ingest_on=` partition, when the key has one.
    pub ingest_on: Option<NaiveDate>,
    /// What follows the source folder and partition (a file name, or a path of others' layout).
    pub file: &'k str,
}

impl<'k> LandingKey<'k> {
    /// The folder of a source's objects of one day.
    pub fn partition(source: &str, ingest_on: NaiveDate) -> String {
        format!(
            "{LANDING_ZONE}/{source}/ingest_on={}/",
            ingest_on.format("%Y-%m-%d")
        )
    }

    /// Reads a key (relative to the lake root) as an object of one of the `sources` folders
    /// under `prefix`. Dates are `YYYY-MM-DD`, or `YYYY_MM_DD` as the original Glue jobs wrote
    /// them.
    pub fn parse<'s>(
        prefix: &str,
        sources: impl IntoIterator<Item = &'s str> + Clone,
        key: &'k str,
    ) -> Result<LandingKey<'k>> {
        let bad = |why: &str| Error::InvalidInput(format!("{key}: {why}"));
        let rest = key
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad(&format!("not under {prefix}/")))?;
        let source = sources
            .clone()
            .into_iter()
            .filter(|s| {
                rest.strip_prefix(*s)
                    .is_some_and(|r| r.starts_with('/') && r.len() > 1)
            })
            .max_by_key(|s| s.len())
            .map(|s| &rest[..s.len()]);
        let source = source.ok_or_else(|| {
            let known: Vec<String> = sources
                .into_iter()
                .map(|s| format!("{prefix}/{s}/"))
                .collect();
            bad(&format!(
                "not the object of a known source ({})",
                known.join(", ")
            ))
        })?;
        let after = &rest[source.len() + 1..];
        let (ingest_on, file) = match after.strip_prefix("ingest_on=") {
            Some(p) => {
                let (date, file) = p.split_once('/').unwrap_or((p, ""));
                let d = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .or_else(|_| NaiveDate::parse_from_str(date, "%Y_%m_%d"))
                    .map_err(|_| bad(&format!("ingest_on={date} is not a date")))?;
                (Some(d), file)
            }
            None => (None, after),
        };
        if file.is_empty() || file.ends_with('/') {
            return Err(bad("no object name after the source folder"));
        }
        Ok(LandingKey {
            source,
            ingest_on,
            file,
        })
    }
}

/// The key of part `n` of a run whose parts all start with `stem`.
pub fn part_key(stem: &str, n: usize) -> String {
    format!("{}{n:05}.jsonl", part_key_prefix(stem))
}

fn part_key_prefix(stem: &str) -> String {
    format!("{stem}part-")
}

/// Publishes spooled parts as `part_key(stem, i)` and deletes other objects under `stem`
/// (left by an earlier, larger run of the same window). Returns the landed objects and removed keys.
pub async fn publish_parts(
    lake: &Lake,
    stem: &str,
    parts: Vec<SpooledPart>,
) -> Result<(Vec<LandedObject>, Vec<String>)> {
    let mut landed = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let key = part_key(stem, i);
        let bytes = lake.put_file(&key, part.path()).await?;
        tracing::info!(key = %key, records = part.records, bytes, "landed part");
        landed.push(LandedObject {
            key,
            records: part.records,
            bytes,
        });
    }
    let mut removed = Vec::new();
    // Only this stem's parts: another run's stem may extend it (`songs.since-…` after `songs.`).
    for key in lake.list(&part_key_prefix(stem)).await? {
        if !landed.iter().any(|o| o.key == key) {
            lake.delete(&key).await?;
            tracing::info!(key = %key, "removed part of an earlier run");
            removed.push(key);
        }
    }
    Ok((landed, removed))
}

pub(crate) fn summary(
    source: &str,
    window: Option<crate::window::Window>,
    ingest_date: NaiveDate,
    objects: Vec<LandedObject>,
    removed: Vec<String>,
) -> ExtractSummary {
    ExtractSummary {
        source: source.to_string(),
        start_date: window.map(|w| w.start_date),
        end_date: window.map(|w| w.end_date),
        ingest_date,
        keys: objects.iter().map(|o| o.key.clone()).collect(),
        records: objects.iter().map(|o| o.records).sum(),
        bytes: objects.iter().map(|o| o.bytes).sum(),
        objects,
        removed,
    }
}

/// The metric line of one extraction of the spec source `source` (dimension `Source`).
pub(crate) fn emit_metrics(
    metrics: &crate::metrics::Metrics,
    source: &str,
    s: &ExtractSummary,
    started: std::time::Instant,
) {
    use crate::metrics::Unit;
    metrics.emit(
        "Source",
        source,
        &[
            ("RecordsExtracted", Unit::Count, s.records),
            ("Bytes", Unit::Bytes, s.bytes),
            (
                "DurationMs",
                Unit::Milliseconds,
                started.elapsed().as_millis() as u64,
            ),
        ],
        &[("landing", &s.source)],
    );
}

/// The time of an EventBridge "Scheduled Event" (a rule's schedule), if `payload` is one.
/// Any other EventBridge event is refused: these functions are not meant to be wired to it.
pub fn eventbridge_schedule_time(payload: &Value) -> Result<Option<DateTime<Utc>>> {
    let Some(detail_type) = payload.get("detail-type") else {
        return Ok(None);
    };
    if detail_type != "Scheduled Event" {
        return Err(Error::InvalidInput(format!(
            "unsupported EventBridge event with detail-type {detail_type}: expected \"Scheduled Event\""
        )));
    }
    let time = payload
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidInput("scheduled event has no \"time\"".to_string()))?;
    DateTime::parse_from_rfc3339(time)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            Error::InvalidInput(format!(
                "scheduled event time {time:?} is not RFC 3339: {e}"
            ))
        })
}

/// Parses an optional `YYYY-MM-DD` request field, naming the field and value when it is wrong.
pub(crate) fn date_field(what: &str, field: &str, raw: Option<&str>) -> Result<Option<NaiveDate>> {
    raw.map(|v| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|e| {
            Error::InvalidInput(format!(
                "{what}: {field} {v:?} is not a date (YYYY-MM-DD): {e}"
            ))
        })
    })
    .transpose()
}

/// Parses an optional RFC 3339 request field.
pub(crate) fn time_field(
    what: &str,
    field: &str,
    raw: Option<&str>,
) -> Result<Option<DateTime<Utc>>> {
    raw.map(|v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "{what}: {field} {v:?} is not an RFC 3339 time: {e}"
                ))
            })
    })
    .transpose()
}

/// Parses a request object, with an error naming the bad field.
pub(crate) fn parse_request<T: serde::de::DeserializeOwned>(
    payload: &Value,
    what: &str,
) -> Result<T> {
    T::deserialize(payload).map_err(|e| Error::InvalidInput(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_keys_round_trip_through_one_layout() {
        let d = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let sources = ["api/users", "api/sessions", "rds/songs", "log_data"];
        let parse = |k| LandingKey::parse(LANDING_ZONE, sources, k);
        let key = format!(
            "{}users_x.part-00000.jsonl",
            LandingKey::partition("api/users", d)
        );
        assert_eq!(
            parse(&key).unwrap(),
            LandingKey {
                source: "api/users",
                ingest_on: Some(d),
                file: "users_x.part-00000.jsonl"
            }
        );
        let old = parse("landing_zone/rds/songs/ingest_on=2020_01_01/x.csv").unwrap();
        assert_eq!((old.source, old.ingest_on), ("rds/songs", Some(d)));
        // Others' layout below the source folder, without a partition.
        let theirs = parse("landing_zone/log_data/2018/11/2018-11-01-events.json").unwrap();
        assert_eq!(
            (theirs.source, theirs.ingest_on, theirs.file),
            ("log_data", None, "2018/11/2018-11-01-events.json")
        );
        for bad in [
            "other/api/users/ingest_on=2020-01-01/x",
            "landing_zone/api/other/ingest_on=2020-01-01/x",
            "landing_zone/ingest_on=2020-01-01/x",
            "landing_zone/api/users/ingest_on=2020-13-01/x",
            "landing_zone/api/users/ingest_on=2020-01-01/",
            "landing_zone/api/users/",
            "landing_zone/api/usersx/ingest_on=2020-01-01/x",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn key_layout() {
        let d = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert_eq!(
            LandingKey::partition("api/users", d),
            "landing_zone/api/users/ingest_on=2020-01-01/"
        );
        assert_eq!(
            part_key("landing_zone/rds/songs/ingest_on=2020-01-01/songs.", 3),
            "landing_zone/rds/songs/ingest_on=2020-01-01/songs.part-00003.jsonl"
        );
    }

    #[test]
    fn scheduled_event_detection() {
        let ev: Value =
            serde_json::json!({"detail-type": "Scheduled Event", "time": "2020-02-01T00:00:00Z"});
        assert_eq!(
            eventbridge_schedule_time(&ev)
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2020-02-01T00:00:00+00:00"
        );
        assert!(
            eventbridge_schedule_time(&serde_json::json!({"endpoint": "users"}))
                .unwrap()
                .is_none()
        );
        let other =
            serde_json::json!({"detail-type": "Object Created", "time": "2020-02-01T00:00:00Z"});
        assert_eq!(
            eventbridge_schedule_time(&other).unwrap_err().error_type(),
            "InvalidInput"
        );
        let bad = serde_json::json!({"detail-type": "Scheduled Event", "time": "yesterday"});
        assert!(eventbridge_schedule_time(&bad)
            .unwrap_err()
            .to_string()
            .contains("yesterday"));
    }

    #[tokio::test]
    async fn publishing_a_smaller_run_removes_stale_parts() {
        let dir = tempfile::tempdir().unwrap();
        let spool = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path());
        let stem = "landing_zone/api/users/ingest_on=2020-01-01/users_2020-01-01_2020-01-31.";
        let spooled = |n: usize| {
            let mut sp = ndjson::PartSpooler::new(spool.path(), 10);
            for i in 0..n {
                sp.write_line(format!("{{\"i\":{i}}}").as_bytes()).unwrap();
            }
            sp.finish().unwrap()
        };
        // Another window beside it must survive.
        lake.put_bytes("landing_zone/api/users/ingest_on=2020-01-01/users_2020-01-01_2020-01-02.part-00000.jsonl", b"{}\n")
            .await
            .unwrap();
        let (first, removed) = publish_parts(&lake, stem, spooled(3)).await.unwrap();
        assert_eq!(first.len(), 3);
        assert!(removed.is_empty());
        let (second, removed) = publish_parts(&lake, stem, spooled(1)).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(removed.len(), 2);
        assert_eq!(lake.list(stem).await.unwrap(), vec![second[0].key.clone()]);
        assert_eq!(lake.list("landing_zone/api/users/").await.unwrap().len(), 2);
    }
}
