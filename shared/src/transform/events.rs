//! What the transform function is invoked with, turned into the landing objects to transform,
//! and the driver that runs them and shapes the answer for the invoker.
//!
//! Accepted payloads (`functions/transform/README.md`):
//! - an SQS batch (event source mapping) whose message bodies are EventBridge `Object Created`
//!   events, S3 event notifications or `s3:TestEvent`s; the answer reports partial batch failures
//!   so only the failed messages are redelivered;
//! - an S3 event notification or an EventBridge `Object Created` event invoking the function
//!   directly (asynchronous invocation);
//! - `{"keys": [...]}` or `{"extracts": [{"keys": [...]}, ...]}` from Step Functions or a person.
//!
//! Keys in S3 events are URL-encoded (form encoding: `+` is a space) and relative to the bucket:
//! they are decoded, checked against the lake's bucket and prefix and made relative to the lake
//! root. Whatever is not a landing object (another bucket, another zone, a folder marker, another
//! event type, a test event) is skipped with a log line, never an error.

use std::future::Future;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::SqsEvent;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::extract::LANDING_ZONE;
use crate::storage::LakeUri;

/// One landing object to transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Relative to the lake root (`landing_zone/...`, the `LAKE_URI` prefix stripped), URL-decoded.
    pub key: String,
    /// Content version: the S3 `versionId` if present, else the eTag (quotes stripped); `None`
    /// when unknown (direct invocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One SQS message of a batch: its objects, or why the message is unusable.
#[derive(Debug)]
pub struct SqsItem {
    pub message_id: String,
    pub objects: Result<Vec<ObjectRef>>,
}

#[derive(Debug)]
pub enum Invocation {
    /// SQS batch (event source mapping): each message body is an S3 event notification, an
    /// EventBridge `Object Created` event or an `s3:TestEvent`.
    Sqs(Vec<SqsItem>),
    /// A direct S3 event notification or EventBridge `Object Created` event (async invocation).
    Notification(Vec<ObjectRef>),
    /// `{"keys": [...]}` / `{"extracts": [{"keys": [...]}, ...]}` from Step Functions or a person.
    Direct(Vec<ObjectRef>),
}

/// Which S3 objects belong to the lake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeFilter {
    /// The lake's bucket: events from other buckets are skipped. `None` accepts any bucket.
    pub bucket: Option<String>,
    /// The lake's key prefix inside the bucket: `""` or e.g. `"dev"` (slashes at the ends ignored).
    pub prefix: String,
}

impl From<&LakeUri> for LakeFilter {
    fn from(uri: &LakeUri) -> Self {
        match uri {
            LakeUri::S3 { bucket, prefix } => LakeFilter {
                bucket: Some(bucket.clone()),
                prefix: prefix.clone(),
            },
            LakeUri::Local(_) => LakeFilter::default(),
        }
    }
}

impl LakeFilter {
    /// The lake-relative key of an object named by an S3 event (key already decoded), or `None`
    /// (logged) when it is not a landing object of this lake.
    fn lake_key(&self, bucket: Option<&str>, key: &str) -> Option<String> {
        if let (Some(lake_bucket), Some(bucket)) = (self.bucket.as_deref(), bucket) {
            if lake_bucket != bucket {
                tracing::warn!(
                    bucket,
                    key,
                    lake_bucket,
                    "object of another bucket, skipped"
                );
                return None;
            }
        }
        let prefix = self.prefix.trim_matches('/');
        let relative = if prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(prefix).and_then(|k| k.strip_prefix('/'))
        };
        match relative {
            Some(relative) if is_landing_object(relative) => Some(relative.to_string()),
            _ => {
                tracing::info!(key, prefix, "not a landing object of the lake, skipped");
                None
            }
        }
    }
}

/// `landing_zone/<something>`, not a folder marker.
fn is_landing_object(key: &str) -> bool {
    key.strip_prefix(LANDING_ZONE)
        .and_then(|k| k.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/'))
}

/// Parse failures carry a bare reason; callers add where it happened.
type Parse<T> = std::result::Result<T, String>;

/// S3 event keys are form-urlencoded: `+` is a space, `%XX` a byte of UTF-8.
fn decode_key(raw: &str) -> Parse<String> {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| format!("object key {raw:?} does not decode to UTF-8: {e}"))
}

/// The S3 version id if there is one, else the eTag without quotes.
fn content_version(version_id: Option<&str>, etag: Option<&str>) -> Option<String> {
    [version_id, etag.map(|e| e.trim_matches('"'))]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty() && *v != "null")
        .map(str::to_string)
}

fn dedupe(objects: Vec<ObjectRef>) -> Vec<ObjectRef> {
    let mut unique: Vec<ObjectRef> = Vec::with_capacity(objects.len());
    for o in objects {
        if !unique.contains(&o) {
            unique.push(o);
        }
    }
    unique
}

fn is_test_event(v: &Value) -> bool {
    v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

/// Objects of an S3 event notification, an EventBridge event or an `s3:TestEvent`; `None` when
/// `v` is none of those.
fn notification_objects(v: &Value, lake: &LakeFilter) -> Option<Parse<Vec<ObjectRef>>> {
    if v.get("Records").is_some() {
        Some(s3_notification_objects(v, lake))
    } else if v.get("detail-type").is_some() {
        Some(eventbridge_objects(v, lake))
    } else if is_test_event(v) {
        tracing::info!(bucket = ?v.get("Bucket"), "s3:TestEvent, nothing to transform");
        Some(Ok(Vec::new()))
    } else {
        None
    }
}

fn s3_notification_objects(v: &Value, lake: &LakeFilter) -> Parse<Vec<ObjectRef>> {
    let event =
        S3Event::deserialize(v).map_err(|e| format!("not a valid S3 event notification: {e}"))?;
    let mut objects = Vec::with_capacity(event.records.len());
    for (i, record) in event.records.iter().enumerate() {
        let raw_key = record
            .s3
            .object
            .key
            .as_deref()
            .ok_or_else(|| format!("S3 event record {i} has no s3.object.key"))?;
        let name = record.event_name.as_deref().unwrap_or_default();
        // S3 writes `ObjectCreated:Put`; some S3-compatible stores prefix `s3:`.
        if !name
            .strip_prefix("s3:")
            .unwrap_or(name)
            .starts_with("ObjectCreated:")
        {
            tracing::info!(
                event_name = name,
                key = raw_key,
                "not an object-created event, skipped"
            );
            continue;
        }
        let key = decode_key(raw_key)?;
        if let Some(key) = lake.lake_key(record.s3.bucket.name.as_deref(), &key) {
            let object = &record.s3.object;
            objects.push(ObjectRef {
                key,
                version: content_version(object.version_id.as_deref(), object.e_tag.as_deref()),
            });
        }
    }
    Ok(dedupe(objects))
}

fn eventbridge_objects(v: &Value, lake: &LakeFilter) -> Parse<Vec<ObjectRef>> {
    let event = EventBridgeEvent::<Value>::deserialize(v)
        .map_err(|e| format!("not a valid EventBridge event: {e}"))?;
    if event.source != "aws.s3" {
        return Err(format!(
            "unsupported EventBridge event {:?} from {:?}: expected an aws.s3 \"Object Created\" event",
            event.detail_type, event.source
        ));
    }
    let str_at = |pointer: &str| event.detail.pointer(pointer).and_then(Value::as_str);
    if event.detail_type != "Object Created" {
        tracing::info!(
            detail_type = %event.detail_type,
            key = str_at("/object/key"),
            "not an Object Created event, skipped"
        );
        return Ok(Vec::new());
    }
    let raw_key = str_at("/object/key")
        .ok_or_else(|| "EventBridge Object Created event has no detail.object.key".to_string())?;
    let key = decode_key(raw_key)?;
    Ok(lake
        .lake_key(str_at("/bucket/name"), &key)
        .map(|key| ObjectRef {
            key,
            version: content_version(str_at("/object/version-id"), str_at("/object/etag")),
        })
        .into_iter()
        .collect())
}

fn sqs_items(v: &Value, lake: &LakeFilter) -> Result<Vec<SqsItem>> {
    let batch = SqsEvent::deserialize(v)
        .map_err(|e| Error::InvalidInput(format!("not a valid SQS batch: {e}")))?;
    Ok(batch
        .records
        .iter()
        .map(|message| {
            // An empty itemIdentifier makes Lambda retry the whole batch: safe, never lossy.
            let message_id = message.message_id.clone().unwrap_or_default();
            let objects = message_objects(message.body.as_deref(), lake).map_err(|reason| {
                Error::InvalidInput(format!("SQS message {message_id:?}: {reason}"))
            });
            SqsItem {
                message_id,
                objects,
            }
        })
        .collect())
}

fn message_objects(body: Option<&str>, lake: &LakeFilter) -> Parse<Vec<ObjectRef>> {
    let body = body.ok_or("no body")?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    notification_objects(&v, lake).unwrap_or_else(|| Err(UNKNOWN_BODY.to_string()))
}

const UNKNOWN_BODY: &str =
    "body is not an S3 event notification, an EventBridge Object Created event or an s3:TestEvent";

fn direct_objects(fields: &Map<String, Value>) -> Parse<Vec<ObjectRef>> {
    let unknown: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "keys" && *k != "extracts")
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown field(s) {unknown:?}: expected {{\"keys\": [...]}} or \
             {{\"extracts\": [{{\"keys\": [...]}}, ...]}}"
        ));
    }
    let mut keys = Vec::new();
    if let Some(list) = fields.get("keys") {
        push_keys(list, "keys", &mut keys)?;
    }
    if let Some(extracts) = fields.get("extracts") {
        let extracts = extracts
            .as_array()
            .ok_or("\"extracts\" must be an array of extract summaries")?;
        for (i, extract) in extracts.iter().enumerate() {
            let list = extract
                .get("keys")
                .ok_or_else(|| format!("extracts[{i}] has no \"keys\""))?;
            push_keys(list, &format!("extracts[{i}].keys"), &mut keys)?;
        }
    }
    // Named on purpose (unlike an event, which may carry anything under the bucket): a key that
    // is no landing object is a mistake to report, not an object to skip.
    if let Some(key) = keys.iter().find(|k| !is_landing_object(k)) {
        return Err(format!(
            "{key:?} is not a landing object: keys are relative to the lake root and name an object under {LANDING_ZONE}/"
        ));
    }
    let objects = keys
        .into_iter()
        .map(|key| ObjectRef { key, version: None })
        .collect();
    Ok(dedupe(objects))
}

fn push_keys(list: &Value, path: &str, keys: &mut Vec<String>) -> Parse<()> {
    let list = list
        .as_array()
        .ok_or_else(|| format!("{path:?} must be an array of keys"))?;
    for (i, key) in list.iter().enumerate() {
        match key.as_str() {
            Some(key) if !key.is_empty() => keys.push(key.to_string()),
            _ => return Err(format!("{path}[{i}] is not a non-empty string: {key}")),
        }
    }
    Ok(())
}

/// What `payload` asks the transform to do. Only a payload that is none of the accepted shapes
/// (or a malformed one) is an error; SQS messages fail one by one in their [`SqsItem`].
pub fn parse_invocation(payload: &Value, lake: &LakeFilter) -> Result<Invocation> {
    let Some(fields) = payload.as_object() else {
        return Err(Error::InvalidInput(format!(
            "transform payload must be a JSON object, got {payload}"
        )));
    };
    if let Some(records) = fields.get("Records") {
        let first_source = records.pointer("/0/eventSource").and_then(Value::as_str);
        if first_source == Some("aws:sqs") {
            return sqs_items(payload, lake).map(Invocation::Sqs);
        }
    }
    if let Some(objects) = notification_objects(payload, lake) {
        return objects
            .map(Invocation::Notification)
            .map_err(Error::InvalidInput);
    }
    if fields.contains_key("keys") || fields.contains_key("extracts") {
        return direct_objects(fields)
            .map(Invocation::Direct)
            .map_err(Error::InvalidInput);
    }
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    Err(Error::InvalidInput(format!(
        "unrecognised transform payload with fields {names:?}: expected {{\"keys\": [...]}}, \
         {{\"extracts\": [...]}}, an S3 event notification, an EventBridge Object Created event \
         or an SQS batch of those"
    )))
}

/// Runs `transform` on what `payload` names and shapes the answer:
/// - SQS batch: `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}` listing the
///   messages that were unusable or had an object fail (`ReportBatchItemFailures`);
/// - anything else: `{"outcomes": [...], "failed": 0}` when every object succeeded; otherwise,
///   after trying every object, an error of the kind of the first retryable failure (else the
///   first failure) whose message lists every failed key. Objects that succeeded are committed,
///   and a retry skips them (exactly once), so retrying the whole payload is safe.
pub async fn handle<F, Fut, O>(payload: &Value, filter: &LakeFilter, transform: F) -> Result<Value>
where
    F: Fn(ObjectRef) -> Fut,
    Fut: Future<Output = Result<O>>,
    O: Serialize,
{
    match parse_invocation(payload, filter)? {
        Invocation::Sqs(items) => {
            let mut failures = Vec::new();
            for item in items {
                let ok = match item.objects {
                    Ok(objects) => run_all(objects, &transform).await.1.is_empty(),
                    Err(e) => {
                        tracing::error!(
                            message_id = %item.message_id,
                            error_type = e.error_type(),
                            error = %e,
                            "unusable SQS message"
                        );
                        false
                    }
                };
                if !ok {
                    failures.push(json!({ "itemIdentifier": item.message_id }));
                }
            }
            if !failures.is_empty() {
                tracing::warn!(failed = failures.len(), "SQS messages left for redelivery");
            }
            Ok(json!({ "batchItemFailures": failures }))
        }
        Invocation::Notification(objects) | Invocation::Direct(objects) => {
            let total = objects.len();
            if total == 0 {
                tracing::info!("no landing object to transform");
            }
            let (outcomes, failures) = run_all(objects, &transform).await;
            if failures.is_empty() {
                serde_json::to_value(Answer {
                    outcomes,
                    failed: 0,
                })
                .map_err(|e| Error::InvalidInput(format!("cannot serialize the answer: {e}")))
            } else {
                Err(combined_failure(&failures, total))
            }
        }
    }
}

/// One landing object's entry in the answer to a direct or notification invocation
/// (`{"outcomes": [...], "failed": 0}`): what the state machine keeps of a window's transform,
/// and what its run reports read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerEntry<O> {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub status: EntryStatus,
    /// The object's outcome (`status` ok).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub outcome: Option<O>,
    /// Why it failed (`status` error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

fn none<O>() -> Option<O> {
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Ok,
    Error,
}

/// The answer to a direct or notification invocation that succeeded (failures fail the call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer<O> {
    pub outcomes: Vec<AnswerEntry<O>>,
    pub failed: usize,
}

/// Transforms each object in turn (a failure does not stop the others). Returns one outcome
/// entry per object and the failures.
async fn run_all<F, Fut, O>(
    objects: Vec<ObjectRef>,
    transform: &F,
) -> (Vec<AnswerEntry<O>>, Vec<(ObjectRef, Error)>)
where
    F: Fn(ObjectRef) -> Fut,
    Fut: Future<Output = Result<O>>,
    O: Serialize,
{
    let mut outcomes = Vec::with_capacity(objects.len());
    let mut failures = Vec::new();
    for object in objects {
        let mut entry = AnswerEntry {
            key: object.key.clone(),
            version: object.version.clone(),
            status: EntryStatus::Ok,
            outcome: None,
            error_type: None,
            error_message: None,
        };
        match transform(object.clone()).await {
            Ok(outcome) => entry.outcome = Some(outcome),
            Err(e) => {
                tracing::error!(
                    key = %object.key,
                    version = ?object.version,
                    error_type = e.error_type(),
                    retryable = e.is_retryable(),
                    error = %e,
                    "transform failed"
                );
                entry.status = EntryStatus::Error;
                entry.error_type = Some(e.error_type().to_string());
                entry.error_message = Some(e.to_string());
                failures.push((object, e));
            }
        }
        outcomes.push(entry);
    }
    (outcomes, failures)
}

/// At most this many failures are spelled out (Step Functions keeps 32 KiB of a cause).
const MAX_LISTED_FAILURES: usize = 20;

/// One error for several failed objects: the kind of the first retryable failure (a retry may
/// fix it; the rest fail the same way again and surface on the last attempt), else of the first.
fn combined_failure(failures: &[(ObjectRef, Error)], total: usize) -> Error {
    let mut message = format!("{} of {total} landing object(s) failed: ", failures.len());
    let listed: Vec<String> = failures
        .iter()
        .take(MAX_LISTED_FAILURES)
        .map(|(o, e)| format!("{} ({}: {e})", o.key, e.error_type()))
        .collect();
    message.push_str(&listed.join("; "));
    if failures.len() > MAX_LISTED_FAILURES {
        message.push_str(&format!(
            "; and {} more",
            failures.len() - MAX_LISTED_FAILURES
        ));
    }
    let kind = failures
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.is_retryable())
        .or_else(|| failures.first().map(|(_, e)| e));
    match kind {
        Some(kind) => same_kind(kind, message),
        None => Error::InvalidInput(message),
    }
}

/// An error of the same variant (so the same Step Functions `errorType`) with another message.
fn same_kind(kind: &Error, message: String) -> Error {
    match kind {
        Error::InvalidInput(_) => Error::InvalidInput(message),
        Error::Configuration(_) => Error::Configuration(message),
        Error::SourceUnavailable(_) => Error::SourceUnavailable(message),
        Error::SourceRejected(_) => Error::SourceRejected(message),
        Error::InvalidSourcePayload(_) => Error::InvalidSourcePayload(message),
        Error::StorageUnavailable(_) => Error::StorageUnavailable(message),
        Error::CatalogUnavailable(_) => Error::CatalogUnavailable(message),
        Error::CommitConflict(_) => Error::CommitConflict(message),
        Error::Catalog(_) => Error::Catalog(message),
        Error::DataQualityFailed(_) => Error::DataQualityFailed(message),
        Error::WarehouseUnavailable(_) => Error::WarehouseUnavailable(message),
        Error::WarehouseRejected(_) => Error::WarehouseRejected(message),
        Error::Panicked(_) => Error::Panicked(message),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const BUCKET: &str = "deftunes-lake-123456789012-us-east-1";
    const USERS: &str =
        "landing_zone/api/users/ingest_on=2020-01-01/users_2020-01-01_2020-01-31.part-00000.jsonl";
    const SESSIONS: &str = "landing_zone/api/sessions/ingest_on=2020-01-01/sessions_2020-01-01_2020-01-31.part-00000.jsonl";
    const SONGS: &str = "landing_zone/rds/songs/ingest_on=2020-01-01/songs.part-00000.jsonl";

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn lake() -> LakeFilter {
        LakeFilter {
            bucket: Some(BUCKET.to_string()),
            prefix: String::new(),
        }
    }

    fn obj(key: &str, version: Option<&str>) -> ObjectRef {
        ObjectRef {
            key: key.to_string(),
            version: version.map(str::to_string),
        }
    }

    fn notification(payload: &Value, lake: &LakeFilter) -> Vec<ObjectRef> {
        match parse_invocation(payload, lake).unwrap() {
            Invocation::Notification(objects) => objects,
            other => panic!("expected a notification, got {other:?}"),
        }
    }

    fn direct(payload: &Value) -> Vec<ObjectRef> {
        match parse_invocation(payload, &lake()).unwrap() {
            Invocation::Direct(objects) => objects,
            other => panic!("expected a direct invocation, got {other:?}"),
        }
    }

    fn invalid_input(payload: &Value) -> String {
        match parse_invocation(payload, &lake()) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    /// The S3 notification fixture with its one record's key replaced.
    fn s3_event_with_key(key: &str) -> Value {
        let mut event = fixture("transform-s3-notification.json");
        event["Records"][0]["s3"]["object"]["key"] = json!(key);
        event
    }

    #[test]
    fn s3_notification_key_is_decoded_and_versioned() {
        let objects = notification(&fixture("transform-s3-notification.json"), &lake());
        assert_eq!(
            objects,
            [obj(USERS, Some("096fKKXTRTtl3on89fVO.nfljtsv6qko"))]
        );
    }

    #[test]
    fn plus_is_a_space_and_percent_escapes_decode() {
        let event = s3_event_with_key(
            "landing_zone/api/users/ingest_on%3D2020-01-01/my+file%2B1%C3%A9.jsonl",
        );
        let objects = notification(&event, &lake());
        assert_eq!(
            objects[0].key,
            "landing_zone/api/users/ingest_on=2020-01-01/my file+1é.jsonl"
        );
        let bad = s3_event_with_key("landing_zone/api/users/%FF.jsonl");
        assert!(invalid_input(&bad).contains("UTF-8"));
    }

    #[test]
    fn etag_is_the_version_without_a_version_id() {
        let mut event = fixture("transform-s3-notification.json");
        let object = &mut event["Records"][0]["s3"]["object"];
        object.as_object_mut().unwrap().remove("versionId");
        object["eTag"] = json!("\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert_eq!(
            notification(&event, &lake()),
            [obj(USERS, Some("d41d8cd98f00b204e9800998ecf8427e"))]
        );
        event["Records"][0]["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("eTag");
        assert_eq!(notification(&event, &lake()), [obj(USERS, None)]);
    }

    #[test]
    fn duplicate_records_give_one_object() {
        let mut event = fixture("transform-s3-notification.json");
        let record = event["Records"][0].clone();
        event["Records"].as_array_mut().unwrap().push(record);
        assert_eq!(notification(&event, &lake()).len(), 1);
    }

    #[test]
    fn only_object_created_events_count() {
        let mut event = fixture("transform-s3-notification.json");
        event["Records"][0]["eventName"] = json!("ObjectRemoved:Delete");
        assert!(notification(&event, &lake()).is_empty());
        event["Records"][0]["eventName"] = json!("ObjectCreated:CompleteMultipartUpload");
        assert_eq!(notification(&event, &lake()).len(), 1);

        let mut event = fixture("transform-eventbridge.json");
        event["detail-type"] = json!("Object Deleted");
        assert!(notification(&event, &lake()).is_empty());
    }

    #[test]
    fn eventbridge_object_created() {
        let objects = notification(&fixture("transform-eventbridge.json"), &lake());
        assert_eq!(
            objects,
            [obj(SESSIONS, Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"))]
        );
    }

    #[test]
    fn other_eventbridge_events_are_refused() {
        let schedule = fixture("api-extract-scheduled-event.json");
        let message = invalid_input(&schedule);
        assert!(message.contains("Scheduled Event"), "{message}");
        let mut no_key = fixture("transform-eventbridge.json");
        no_key["detail"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        assert!(invalid_input(&no_key).contains("detail.object.key"));
    }

    #[test]
    fn s3_test_event_is_skipped() {
        let objects = notification(&fixture("transform-s3-test-event.json"), &lake());
        assert!(objects.is_empty());
    }

    #[test]
    fn keys_outside_the_landing_zone_are_skipped() {
        for key in [
            "transform_zone/users/data/x.parquet",
            "landing_zone/api/users/",
            "landing_zone/",
            "landing_zone_old/x.jsonl",
        ] {
            assert!(
                notification(&s3_event_with_key(key), &lake()).is_empty(),
                "{key}"
            );
        }
    }

    #[test]
    fn other_buckets_are_skipped() {
        let mut event = fixture("transform-s3-notification.json");
        event["Records"][0]["s3"]["bucket"]["name"] = json!("someone-elses-bucket");
        assert!(notification(&event, &lake()).is_empty());
        let any_bucket = LakeFilter::default();
        assert_eq!(notification(&event, &any_bucket).len(), 1);

        let mut event = fixture("transform-eventbridge.json");
        event["detail"]["bucket"]["name"] = json!("someone-elses-bucket");
        assert!(notification(&event, &lake()).is_empty());
    }

    #[test]
    fn a_prefixed_lake_strips_its_prefix() {
        let dev = LakeFilter {
            bucket: Some(BUCKET.to_string()),
            prefix: "dev".to_string(),
        };
        let event = s3_event_with_key(
            "dev/landing_zone/rds/songs/ingest_on%3D2020-01-01/songs.part-00000.jsonl",
        );
        assert_eq!(notification(&event, &dev)[0].key, SONGS);
        for key in [
            "landing_zone/rds/songs/ingest_on%3D2020-01-01/songs.part-00000.jsonl",
            "devx/landing_zone/rds/songs/x.jsonl",
            "dev/transform_zone/songs/x.parquet",
        ] {
            assert!(
                notification(&s3_event_with_key(key), &dev).is_empty(),
                "{key}"
            );
        }
        let slashes = LakeFilter {
            bucket: None,
            prefix: "/dev/".to_string(),
        };
        assert_eq!(notification(&event, &slashes)[0].key, SONGS);
    }

    #[test]
    fn lake_filter_from_lake_uri() {
        let uri = LakeUri::parse(&format!("s3://{BUCKET}/dev")).unwrap();
        assert_eq!(
            LakeFilter::from(&uri),
            LakeFilter {
                bucket: Some(BUCKET.to_string()),
                prefix: "dev".to_string()
            }
        );
        let local = LakeUri::parse("/tmp/lake").unwrap();
        assert_eq!(LakeFilter::from(&local), LakeFilter::default());
    }

    #[test]
    fn sqs_batch_fails_only_the_bad_message() {
        let mut batch = fixture("transform-sqs.json");
        let mut garbage = batch["Records"][0].clone();
        garbage["messageId"] = json!("garbage-1");
        garbage["body"] = json!("this is not json");
        let mut unknown = batch["Records"][0].clone();
        unknown["messageId"] = json!("unknown-1");
        unknown["body"] = json!(r#"{"hello": "world"}"#);
        let records = batch["Records"].as_array_mut().unwrap();
        records.push(garbage);
        records.push(unknown);

        let Invocation::Sqs(items) = parse_invocation(&batch, &lake()).unwrap() else {
            panic!("expected an SQS batch");
        };
        let summary: Vec<(&str, std::result::Result<&Vec<ObjectRef>, String>)> = items
            .iter()
            .map(|i| {
                (
                    i.message_id.as_str(),
                    i.objects.as_ref().map_err(|e| e.to_string()),
                )
            })
            .collect();
        assert_eq!(summary.len(), 5);
        assert_eq!(
            summary[0].1,
            Ok(&vec![obj(
                SESSIONS,
                Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
            )])
        );
        // S3 version ids are not URL-encoded: their `+` stays.
        assert_eq!(
            summary[1].1,
            Ok(&vec![obj(SONGS, Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH"))])
        );
        assert_eq!(summary[2].1, Ok(&vec![])); // s3:TestEvent
        let garbage = summary[3].1.as_ref().unwrap_err();
        assert!(
            garbage.contains("garbage-1") && garbage.contains("not JSON"),
            "{garbage}"
        );
        let unknown = summary[4].1.as_ref().unwrap_err();
        assert!(unknown.contains("unknown-1"), "{unknown}");
    }

    #[test]
    fn direct_keys() {
        let objects = direct(&fixture("transform-direct.json"));
        assert_eq!(
            objects,
            [obj(USERS, None), obj(SESSIONS, None), obj(SONGS, None)]
        );
        // Direct keys are lake-relative and not URL-encoded.
        let objects = direct(&json!({"keys": [USERS, USERS]}));
        assert_eq!(objects, [obj(USERS, None)]);
        assert!(direct(&json!({"keys": []})).is_empty());
    }

    #[test]
    fn direct_extract_summaries() {
        let payload = json!({"extracts": [
            {"source": "api/users", "ingest_date": "2020-01-01", "keys": [USERS], "records": 10},
            {"source": "api/sessions", "ingest_date": "2020-01-01", "keys": [SESSIONS, USERS]},
        ]});
        assert_eq!(direct(&payload), [obj(USERS, None), obj(SESSIONS, None)]);
        let both = json!({"keys": [SONGS], "extracts": [{"keys": [USERS]}]});
        assert_eq!(direct(&both), [obj(SONGS, None), obj(USERS, None)]);
    }

    #[test]
    fn malformed_direct_payloads_are_invalid_input() {
        let cases = [
            (json!({"keys": [USERS], "records": 3}), "records"),
            (json!({"keys": USERS}), "array"),
            (json!({"keys": [USERS, 3]}), "keys[1]"),
            (json!({"keys": [""]}), "keys[0]"),
            // Another zone, a folder, or a key with the bucket's URI: named, not skipped.
            (
                json!({"keys": [USERS, "quality/users.json"]}),
                "\"quality/users.json\" is not a landing object",
            ),
            (
                json!({"keys": ["landing_zone/api/users/"]}),
                "not a landing object",
            ),
            (
                json!({"keys": [format!("s3://bucket/{USERS}")]}),
                "relative to the lake root",
            ),
            (
                json!({"extracts": [{"keys": ["transform_zone/x.parquet"]}]}),
                "transform_zone/x.parquet",
            ),
            (json!({"extracts": {"keys": [USERS]}}), "extracts"),
            (json!({"extracts": [{"keys": [USERS]}, {}]}), "extracts[1]"),
            (json!({"endpoint": "users"}), "endpoint"),
            (json!([USERS]), "JSON object"),
            (json!({"Records": [{"eventSource": "aws:s3"}]}), "S3 event"),
        ];
        for (payload, needle) in cases {
            let message = invalid_input(&payload);
            assert!(message.contains(needle), "{payload}: {message}");
        }
    }

    /// A transform that records its calls and fails for keys containing `fail`.
    struct Fake {
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                calls: Mutex::new(Vec::new()),
            }
        }

        async fn transform_object(&self, o: &ObjectRef) -> Result<Value> {
            self.calls.lock().unwrap().push(o.key.clone());
            if o.key.contains("fail-retry") {
                Err(Error::StorageUnavailable(format!("slow down on {}", o.key)))
            } else if o.key.contains("fail") {
                Err(Error::InvalidSourcePayload(format!(
                    "bad bytes in {}",
                    o.key
                )))
            } else {
                Ok(json!({"rows": 3}))
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn driver_reports_sqs_batch_item_failures() {
        let mut batch = fixture("transform-sqs.json");
        let mut failing = batch["Records"][1].clone();
        failing["messageId"] = json!("failing-object");
        let body = failing["body"]
            .as_str()
            .unwrap()
            .replace("songs.part-00000", "songs-fail.part-00000");
        failing["body"] = json!(body);
        let mut garbage = batch["Records"][0].clone();
        garbage["messageId"] = json!("garbage-1");
        garbage["body"] = json!("{not json");
        let records = batch["Records"].as_array_mut().unwrap();
        records.insert(1, failing);
        records.push(garbage);

        let fake = Fake::new();
        let t = &fake;
        let answer = handle(
            &batch,
            &lake(),
            |o| async move { t.transform_object(&o).await },
        )
        .await
        .unwrap();
        assert_eq!(
            answer,
            json!({"batchItemFailures": [
                {"itemIdentifier": "failing-object"},
                {"itemIdentifier": "garbage-1"},
            ]})
        );
        assert_eq!(fake.calls().len(), 3);
    }

    #[tokio::test]
    async fn driver_sqs_all_good_reports_no_failure() {
        let fake = Fake::new();
        let t = &fake;
        let answer = handle(&fixture("transform-sqs.json"), &lake(), |o| async move {
            t.transform_object(&o).await
        })
        .await
        .unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert_eq!(fake.calls(), [SESSIONS, SONGS]);
    }

    #[tokio::test]
    async fn driver_direct_outcomes() {
        let fake = Fake::new();
        let t = &fake;
        let answer = handle(&fixture("transform-direct.json"), &lake(), |o| async move {
            t.transform_object(&o).await
        })
        .await
        .unwrap();
        assert_eq!(answer["failed"], 0);
        assert_eq!(
            answer["outcomes"][0],
            json!({"key": USERS, "status": "ok", "outcome": {"rows": 3}})
        );
        assert_eq!(answer["outcomes"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn driver_direct_failure_lists_every_failed_key() {
        let bad = "landing_zone/api/users/ingest_on=2020-01-01/fail.jsonl";
        let slow = "landing_zone/api/users/ingest_on=2020-01-01/fail-retry.jsonl";
        let payload = json!({"keys": [USERS, bad, SESSIONS, slow, SONGS]});
        let fake = Fake::new();
        let t = &fake;
        let e = handle(&payload, &lake(), |o| async move {
            t.transform_object(&o).await
        })
        .await
        .unwrap_err();
        // Every key was tried; the retryable failure decides the type, both are listed.
        assert_eq!(fake.calls().len(), 5);
        assert_eq!(e.error_type(), "StorageUnavailable");
        let message = e.to_string();
        assert!(message.contains("2 of 5"), "{message}");
        assert!(
            message.contains(&format!("{bad} (InvalidSourcePayload")),
            "{message}"
        );
        assert!(
            message.contains(&format!("{slow} (StorageUnavailable")),
            "{message}"
        );
        assert!(!message.contains(USERS), "{message}");

        let only_bad = json!({"keys": [bad, USERS]});
        let e = handle(&only_bad, &lake(), |o| async move {
            t.transform_object(&o).await
        })
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "InvalidSourcePayload");
    }

    #[tokio::test]
    async fn driver_notification_failure_is_an_error() {
        let event = s3_event_with_key("landing_zone/api/users/ingest_on%3D2020-01-01/fail.jsonl");
        let fake = Fake::new();
        let t = &fake;
        let e = handle(
            &event,
            &lake(),
            |o| async move { t.transform_object(&o).await },
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "InvalidSourcePayload");

        let test_event = fixture("transform-s3-test-event.json");
        let answer = handle(&test_event, &lake(), |o| async move {
            t.transform_object(&o).await
        })
        .await
        .unwrap();
        assert_eq!(answer, json!({"outcomes": [], "failed": 0}));
    }

    #[test]
    fn long_failure_lists_are_capped() {
        let failures: Vec<(ObjectRef, Error)> = (0..50)
            .map(|i| {
                (
                    obj(&format!("landing_zone/x/{i}.jsonl"), None),
                    Error::Catalog(format!("boom {i}")),
                )
            })
            .collect();
        let e = combined_failure(&failures, 60);
        assert_eq!(e.error_type(), "CatalogError");
        let message = e.to_string();
        assert!(message.contains("50 of 60") && message.contains("and 30 more"));
        assert!(!message.contains("landing_zone/x/20.jsonl"));
    }
}
