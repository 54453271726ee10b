//! What a Distributed Map's `ResultWriter` leaves in S3, read back: `manifest.json` (at the key
//! the Map's output names) lists the result files by status, and each result file holds one
//! entry per child execution, with its input and output as JSON *strings*.
//!
//! ```json
//! {"DestinationBucket": "lake", "MapRunArn": "arn:aws:states:...:mapRun:...",
//!  "ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": [{"Key": ".../SUCCEEDED_0.json", "Size": 1094}]}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::extract::{ExtractBatch, ExtractSummary};
use crate::storage::{Lake, LakeUri};
use crate::transform::events::Answer;
use crate::transform::ObjectOutcome;

/// The Map state's output with a `ResultWriter` (`$.windows_processed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRun {
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    #[serde(rename = "ResultWriterDetails")]
    pub result_writer_details: S3Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    #[serde(rename = "ResultFiles")]
    result_files: BTreeMap<String, Vec<ResultFile>>,
}

#[derive(Debug, Clone, Deserialize)]
struct ResultFile {
    #[serde(rename = "Key")]
    key: String,
}

/// One child execution (one window) as the result file records it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChildExecution {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "StartDate", default)]
    pub start_date: Option<String>,
    #[serde(rename = "StopDate", default)]
    pub stop_date: Option<String>,
    #[serde(rename = "Input", default)]
    pub input: Option<String>,
    #[serde(rename = "Output", default)]
    pub output: Option<String>,
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// A window's output (the state machine's "Window done" state): the request the extracts got
/// and what each source landed and committed.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowOutput {
    #[serde(default)]
    pub window: Value,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceOutput>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceOutput {
    pub landed: Landed,
    pub transformed: Answer<ObjectOutcome>,
}

/// An extract's answer: one summary, or several from one invocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Landed {
    Batch(ExtractBatch),
    One(ExtractSummary),
}

impl Landed {
    pub fn summaries(&self) -> &[ExtractSummary] {
        match self {
            Landed::Batch(b) => &b.extracts,
            Landed::One(s) => std::slice::from_ref(s),
        }
    }
}

/// The lake key of an S3 object the Map wrote (`bucket`, bucket-relative `key`): it must be in
/// the lake's bucket, under its prefix. A local lake has no bucket: keys are lake-relative.
pub fn lake_key(lake: &LakeUri, bucket: &str, key: &str, what: &str) -> Result<String> {
    let LakeUri::S3 {
        bucket: lake_bucket,
        prefix,
    } = lake
    else {
        return Ok(key.to_string());
    };
    if bucket != lake_bucket {
        return Err(Error::InvalidInput(format!(
            "{what}: s3://{bucket}/{key} is in bucket {bucket:?}, not in the lake's bucket {lake_bucket:?}: the Map's ResultWriter must write into the lake"
        )));
    }
    if prefix.is_empty() {
        return Ok(key.to_string());
    }
    key.strip_prefix(prefix.as_str())
        .and_then(|k| k.strip_prefix('/'))
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{what}: s3://{bucket}/{key} is not under the lake's prefix {prefix}/"
            ))
        })
}

/// Every child execution the Map run's result files record (files of every status: `SUCCEEDED`,
/// `FAILED`, `PENDING`).
pub async fn read(lake: &Lake, uri: &LakeUri, run: &MapRun) -> Result<Vec<ChildExecution>> {
    let loc = &run.result_writer_details;
    let manifest_key = lake_key(uri, &loc.bucket, &loc.key, "map_run.ResultWriterDetails")?;
    let raw = lake.get_optional(&manifest_key).await?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "map_run {}: no manifest at {}",
            run.map_run_arn,
            lake.uri_of(&manifest_key)
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| {
        Error::InvalidInput(format!(
            "{} is not a Map run manifest: {e}",
            lake.uri_of(&manifest_key)
        ))
    })?;
    let mut out = Vec::new();
    for files in manifest.result_files.values() {
        for file in files {
            let key = lake_key(uri, &loc.bucket, &file.key, "manifest.json ResultFiles")?;
            let raw = lake.get_optional(&key).await?.ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the manifest of {} lists {}, which does not exist",
                    run.map_run_arn,
                    lake.uri_of(&key)
                ))
            })?;
            out.extend(parse_result_file(&raw, &lake.uri_of(&key))?);
        }
    }
    Ok(out)
}

/// A result file: a JSON array of child executions (or JSON Lines, `OutputType: JSONL`).
fn parse_result_file(raw: &[u8], uri: &str) -> Result<Vec<ChildExecution>> {
    let bad = |e: serde_json::Error| {
        Error::InvalidInput(format!("{uri} is not a Map run result file: {e}"))
    };
    let text = std::str::from_utf8(raw)
        .map_err(|e| Error::InvalidInput(format!("{uri} is not UTF-8: {e}")))?;
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(bad)
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(bad))
            .collect()
    }
}

impl ChildExecution {
    /// Its input (the Map item selector's object), parsed.
    pub fn input_value(&self) -> Result<Option<Value>> {
        self.input
            .as_deref()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| {
                    Error::InvalidInput(format!("window {}: Input is not JSON: {e}", self.name))
                })
            })
            .transpose()
    }

    /// Its output, parsed as a window's output.
    pub fn window_output(&self) -> Result<Option<WindowOutput>> {
        self.output
            .as_deref()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| {
                    Error::InvalidInput(format!(
                        "window {}: Output is not a window's output ({e})",
                        self.name
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_keys_must_be_in_the_lakes_bucket_and_prefix() {
        let s3 = LakeUri::parse("s3://lake/dev").unwrap();
        assert_eq!(
            lake_key(&s3, "lake", "dev/reports/map-results/x/manifest.json", "w").unwrap(),
            "reports/map-results/x/manifest.json"
        );
        let e = lake_key(&s3, "other-bucket", "dev/r/manifest.json", "map_run").unwrap_err();
        assert_eq!(e.error_type(), "InvalidInput");
        assert!(e.to_string().contains("\"other-bucket\""), "{e}");
        assert!(e.to_string().contains("\"lake\""), "{e}");
        let e = lake_key(&s3, "lake", "prod/r/manifest.json", "map_run").unwrap_err();
        assert!(e.to_string().contains("prefix dev/"), "{e}");
        let root = LakeUri::parse("s3://lake").unwrap();
        assert_eq!(
            lake_key(&root, "lake", "r/m.json", "w").unwrap(),
            "r/m.json"
        );
        let local = LakeUri::parse("/tmp/lake").unwrap();
        assert_eq!(
            lake_key(&local, "any", "r/m.json", "w").unwrap(),
            "r/m.json"
        );
    }

    #[test]
    fn result_files_are_json_arrays_or_lines() {
        let entry = r#"{"Name":"w1","Status":"FAILED","StartDate":"2021-03-10T02:00:01.123Z","Error":"DataQualityFailed","Cause":"c","Input":"{}","InputDetails":{"Included":true}}"#;
        let array = format!("[{entry}]");
        let lines = format!("{entry}\n{entry}\n");
        assert_eq!(parse_result_file(array.as_bytes(), "u").unwrap().len(), 1);
        let two = parse_result_file(lines.as_bytes(), "u").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].error.as_deref(), Some("DataQualityFailed"));
        assert!(two[0].output.is_none());
        let e = parse_result_file(b"[{\"Name\": 3}]", "s3://lake/x.json").unwrap_err();
        assert!(e.to_string().contains("s3://lake/x.json"), "{e}");
    }
}
