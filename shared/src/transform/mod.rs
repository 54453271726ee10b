//! Stage 2: landing objects into the Iceberg tables of the transform zone, exactly once, with
//! record identity, record-level quarantine and dataset-level quality reports.
//!
//! One landing object is one unit of work: it is streamed in chunks of records, parsed on the
//! runtime's workers and applied in order (bounded memory, [`chunks`]), each record becomes rows (or a quarantine entry with its reason; a bad item of a session alone),
//! rows the table does not hold yet ([`identity`]) are written as Parquet data files of the
//! object's `ingest_on` partition, and the files are committed in one snapshot whose properties
//! record the object's key, content version, outcome and the commit attempt's id. A redelivered
//! object finds that snapshot and returns the recorded outcome; once the snapshot is expired, its
//! rows are found held and nothing is appended.

pub mod catalog;
mod chunks;
pub mod events;
pub mod identity;
pub mod maintenance;
pub mod quality;
pub mod records;
pub mod tables;
pub mod totals;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableIdent};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use crate::config::{parse_or, Env, ProcessEnv};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Unit};
use crate::pipeline::{pipeline_dir, Pipeline};
use crate::storage::{Lake, LakeUri, ObjectMeta};
use catalog::{
    build_catalog, ensure_table, find_commit, find_own_commit, refused_before_update,
    CatalogConfig, CatalogKind, CommitGuard, Hooked, ALREADY_COMMITTED,
};
use events::{LakeFilter, ObjectRef};
use identity::IdentityCache;
use quality::QualityReport;
use tables::{TableDef, Tables};
use writer::RowMeta;

/// A landing record larger than this is quarantined by reference (its first bytes are kept; the
/// whole record stays in the landing zone).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
const QUARANTINE_KEEP_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct TransformConfig {
    pub lake_uri: String,
    pub catalog: CatalogKind,
    pub warehouse: String,
    pub namespace: String,
    pub target_file_size: usize,
    pub batch_rows: usize,
    pub commit_max_attempts: u32,
    pub s3_force_path_style: bool,
    pub spool_dir: PathBuf,
    /// The pipeline whose landing objects this transform takes ([`pipeline_dir`]).
    pub pipeline: Pipeline,
    /// One EMF line per object transformed (`METRICS`, see [`crate::metrics::Metrics`]).
    pub metrics: Metrics,
}

impl TransformConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self> {
        let pipeline = Pipeline::load(&pipeline_dir(env))?;
        let CatalogConfig {
            lake_uri,
            catalog,
            warehouse,
            namespace,
            s3_force_path_style,
        } = CatalogConfig::from_env(env, &pipeline)?;
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(Error::Configuration(format!(
                    "{name} must be greater than 0"
                )))
            } else {
                Ok(v)
            }
        };
        let metrics = Metrics::from_env(env, &pipeline.spec.name)?;
        Ok(TransformConfig {
            metrics,
            lake_uri,
            catalog,
            warehouse,
            namespace,
            pipeline,
            target_file_size: positive(
                "TARGET_FILE_SIZE_BYTES",
                parse_or(env, "TARGET_FILE_SIZE_BYTES", 128 << 20)?,
            )?,
            batch_rows: positive("BATCH_ROWS", parse_or(env, "BATCH_ROWS", 8192)?)?,
            commit_max_attempts: positive(
                "COMMIT_MAX_ATTEMPTS",
                parse_or(env, "COMMIT_MAX_ATTEMPTS", 20)?,
            )? as u32,
            s3_force_path_style,
            spool_dir: env
                .var("SPOOL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        })
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Committed => "committed",
        Status::AlreadyCommitted => "already_committed",
        Status::NothingToCommit => "nothing_to_commit",
        Status::Unchanged => "unchanged",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// This invocation committed the object.
    Committed,
    /// An earlier (or concurrent) invocation committed it; this is its recorded outcome.
    AlreadyCommitted,
    /// No row to commit (empty object, or every record quarantined).
    NothingToCommit,
    /// Every valid record is already held by the table (a re-run, an overlapping window, a
    /// redelivery after its snapshot expired): nothing appended.
    Unchanged,
}

/// What became of one landing object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectOutcome {
    pub key: String,
    pub version: String,
    pub table: String,
    pub ingest_on: NaiveDate,
    pub status: Status,
    /// Source records (lines) read: committed + unchanged + quarantined.
    pub records_in: u64,
    /// Records with at least one row appended.
    pub records_committed: u64,
    /// Records whose rows the table already held.
    #[serde(default)]
    pub records_unchanged: u64,
    /// Records with no valid row (each bad item has its quarantine entry).
    pub records_quarantined: u64,
    pub rows_committed: u64,
    #[serde(default)]
    pub rows_unchanged: u64,
    /// Items quarantined one by one (their record's other items kept).
    #[serde(default)]
    pub rows_quarantined: u64,
    pub data_files: u64,
    /// Data files the record-identity check read (its cost; see the transform README).
    #[serde(default)]
    pub identity_files_read: u64,
    pub snapshot_id: Option<i64>,
    pub quarantine_key: Option<String>,
    pub quality_report_key: String,
    pub quality_passed: bool,
}

impl ObjectOutcome {
    /// A failed dataset rule is the state machine's `DataQualityFailed`, also when recorded earlier.
    fn into_result(self) -> Result<ObjectOutcome> {
        if self.quality_passed {
            Ok(self)
        } else {
            Err(Error::DataQualityFailed(format!(
                "{}: dataset rules failed for table {} (report: {})",
                self.key, self.table, self.quality_report_key
            )))
        }
    }
}

/// Data files written for one object and not committed yet.
pub struct Staged {
    /// What its chunks were parsed with (parsed again if a concurrent commit takes rows).
    ctx: Arc<chunks::ChunkContext>,
    /// How its data files are laid out (rewritten the same way).
    layout: writer::FileLayout,
    outcome: ObjectOutcome,
    report: QualityReport,
    files: Vec<iceberg::spec::DataFile>,
    /// The rows the files hold: record hash -> the record (line) it came from.
    appended: identity::Appended,
    /// The snapshot the identity check was made against.
    base: Option<i64>,
    file_prefix: String,
    /// Size of the landing object, and when its transform began (for its metrics).
    bytes: u64,
    started: std::time::Instant,
}

impl Staged {
    pub fn outcome(&self) -> &ObjectOutcome {
        &self.outcome
    }
    pub fn file_paths(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| f.file_path().to_string())
            .collect()
    }
}

// Built and moved once per landing object: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Preparation {
    /// Committed before: its recorded outcome.
    Recorded(ObjectOutcome),
    Staged(Staged),
}

pub struct Transformer {
    cfg: TransformConfig,
    lake: Lake,
    catalog: Arc<dyn Catalog>,
    /// The pipeline's tables: how a landing record becomes rows, the quality rules.
    tables: Tables,
    /// Which event-borne objects belong to this lake (its bucket and prefix).
    filter: LakeFilter,
    /// Dimension tables' identity indexes, kept between warm invocations.
    identities: IdentityCache,
}

/// How a commit ended.
enum Committed {
    /// Our snapshot.
    Snapshot(i64),
    /// Another invocation committed the object first: its recorded outcome.
    Recorded(Box<ObjectOutcome>),
    /// Concurrent commits appended every row we staged.
    Nothing,
}

/// `landing_zone/api/users/ingest_on=D/users_x.part-00000.jsonl` -> `users_x.part-00000`, plus a
/// short form of the version so each content version has its own quarantine and report.
fn artifact_stem(key: &str, version: &str) -> String {
    let base = key.rsplit('/').next().unwrap_or(key);
    let base = [".jsonl", ".json"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    let v: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    format!("{base}.{v}")
}

fn jitter_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos % max.max(1)
}

impl Transformer {
    pub async fn new(cfg: TransformConfig, env: &dyn Env) -> Result<Self> {
        let catalog =
            build_catalog(&cfg.catalog, &cfg.warehouse, env, cfg.s3_force_path_style).await?;
        Self::with_catalog(cfg, catalog).await
    }

    /// A transformer committing through `catalog` (a wrapper of the configured one, say).
    pub async fn with_catalog(cfg: TransformConfig, catalog: Arc<dyn Catalog>) -> Result<Self> {
        let lake = Lake::from_uri(&cfg.lake_uri, cfg.s3_force_path_style).await?;
        let filter = LakeFilter::from(&LakeUri::parse(&cfg.lake_uri)?);
        let tables = Tables::compile(&cfg.pipeline)?;
        Ok(Transformer {
            cfg,
            lake,
            catalog,
            tables,
            filter,
            identities: IdentityCache::default(),
        })
    }

    /// Builds everything from the environment (the Lambda's cold start).
    pub async fn from_env() -> Result<Self> {
        let cfg = TransformConfig::from_env(&ProcessEnv)?;
        Self::new(cfg, &ProcessEnv).await
    }

    pub fn config(&self) -> &TransformConfig {
        &self.cfg
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Handles one invocation payload (S3/EventBridge/SQS event or direct keys) as the Lambda
    /// does: see [`events::handle`] for the answer's shape.
    pub async fn handle(&self, payload: &serde_json::Value) -> Result<serde_json::Value> {
        if let Some(request) = maintenance::Maintenance::parse(payload) {
            // Boxed like the transform below: keeps the caller's future shallow.
            return Box::pin(self.maintain(request?)).await;
        }
        events::handle(payload, &self.filter, |object| async move {
            // Boxed: the Iceberg write future is too deeply nested to inline in the caller's.
            Box::pin(self.transform_object(&object)).await
        })
        .await
    }

    /// Runs a maintenance request on every table of the namespace; answers with what it did.
    pub async fn maintain(&self, request: maintenance::Maintenance) -> Result<serde_json::Value> {
        match request {
            maintenance::Maintenance::RemoveOrphanFiles { older_than_hours } => {
                let reports = maintenance::remove_orphan_files_in(
                    &*self.catalog,
                    &self.lake,
                    &self.cfg.namespace,
                    Duration::from_secs(older_than_hours.saturating_mul(3600)),
                )
                .await?;
                Ok(serde_json::json!({ "remove_orphan_files": reports }))
            }
        }
    }

    pub fn table_ident(&self, table: &str) -> TableIdent {
        TableIdent::new(
            iceberg::NamespaceIdent::new(self.cfg.namespace.clone()),
            table.to_string(),
        )
    }

    /// The pipeline's tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Transforms one landing object exactly once and returns its outcome (the recorded one
    /// when it was committed before). A failed dataset rule is a `DataQualityFailed` error.
    pub async fn transform_object(&self, obj: &ObjectRef) -> Result<ObjectOutcome> {
        match self.prepare(obj).await? {
            Preparation::Recorded(outcome) => outcome.into_result(),
            Preparation::Staged(staged) => self.commit_staged(staged).await,
        }
    }

    /// First half of [`Self::transform_object`]: writes data files, quarantine and report, and
    /// commits nothing. A crash after this leaves the table unchanged (the files are unreferenced).
    pub async fn prepare(&self, obj: &ObjectRef) -> Result<Preparation> {
        let (kind, ingest_on) = self.tables.locate(&obj.key)?;
        let started = std::time::Instant::now();
        // The version read now is the content this run will see; the event's may be stale.
        let head = self.lake.head(&obj.key).await?;
        tracing::debug!(key = %obj.key, ms = started.elapsed().as_millis() as u64, "version read");
        let version = &head.version;
        // An object landed by others without a partition in its key: the day it landed.
        let ingest_on = ingest_on.unwrap_or_else(|| head.last_modified.date_naive());
        let table =
            ensure_table(&*self.catalog, &self.cfg.catalog, &self.cfg.namespace, kind).await?;
        tracing::debug!(key = %obj.key, ms = started.elapsed().as_millis() as u64, "table loaded");
        if let Some(outcome) = recorded_outcome(&table, &obj.key, version) {
            tracing::info!(key = %obj.key, %version, "already committed, returning the recorded outcome");
            return Ok(Preparation::Recorded(outcome));
        }
        let staged = self
            .process(kind, ingest_on, &obj.key, &head, &table, started)
            .await?;
        Ok(Preparation::Staged(staged))
    }

    /// Second half of [`Self::transform_object`]: the exactly-once commit.
    pub async fn commit_staged(&self, mut staged: Staged) -> Result<ObjectOutcome> {
        let kind = staged.ctx.kind.clone();
        if staged.files.is_empty() {
            staged.outcome.status = empty_status(&staged.outcome);
        } else {
            match self.commit(&mut staged).await? {
                Committed::Snapshot(id) => staged.outcome.snapshot_id = Some(id),
                Committed::Recorded(recorded) => {
                    tracing::info!(key = %staged.outcome.key, "a concurrent invocation committed it first");
                    return recorded.into_result();
                }
                Committed::Nothing => staged.outcome.status = Status::Unchanged,
            }
        }
        let outcome = staged.outcome;
        tracing::info!(
            key = %outcome.key, table = kind.name(), status = ?outcome.status, records_in = outcome.records_in,
            rows = outcome.rows_committed, unchanged = outcome.rows_unchanged,
            quarantined = outcome.records_quarantined, "transformed"
        );
        // Only the invocation that did the work counts it: a redelivery answered from the
        // recorded outcome emits nothing, so sums over time are records, not deliveries.
        let failed_rules = staged
            .report
            .dataset_rules
            .iter()
            .filter(|r| !r.passed)
            .count();
        self.cfg.metrics.emit(
            "Table",
            kind.name(),
            &[
                ("RecordsIn", Unit::Count, outcome.records_in),
                ("RecordsCommitted", Unit::Count, outcome.records_committed),
                ("RecordsUnchanged", Unit::Count, outcome.records_unchanged),
                (
                    "RecordsQuarantined",
                    Unit::Count,
                    outcome.records_quarantined,
                ),
                ("DatasetRuleFailures", Unit::Count, failed_rules as u64),
                ("Bytes", Unit::Bytes, staged.bytes),
                (
                    "DurationMs",
                    Unit::Milliseconds,
                    staged.started.elapsed().as_millis() as u64,
                ),
            ],
            &[
                ("key", &outcome.key),
                ("status", status_name(outcome.status)),
            ],
        );
        outcome.into_result()
    }

    /// Streams the object into data files, the quarantine object and the quality report.
    async fn process(
        &self,
        kind: &TableDef,
        ingest_on: NaiveDate,
        key: &str,
        head: &ObjectMeta,
        table: &iceberg::table::Table,
        started: std::time::Instant,
    ) -> Result<Staged> {
        let version = head.version.as_str();
        let rules = kind.rules();
        let stem = artifact_stem(key, version);
        let partition = format!("{}/ingest_on={ingest_on}", kind.name());
        let quarantine_key = format!("quarantine/{partition}/{stem}.jsonl");
        let report_key = format!("quality/{partition}/{stem}.json");
        let days = epoch_days(ingest_on);
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(
            table.metadata().current_schema(),
        )?);
        let meta = RowMeta {
            ingest_on_days: days,
            processing_micros: Utc::now().timestamp_micros(),
            source_from: kind.source_from().to_string(),
            source_object: key.to_string(),
        };
        let file_prefix = format!("{stem}-{}", uuid::Uuid::new_v4().simple());
        let layout = writer::FileLayout::for_object(
            self.cfg.target_file_size,
            head.size,
            self.cfg.batch_rows,
        );
        let mut writer = writer::ObjectWriter::new(table, file_prefix.clone(), layout);
        let mut identity = self.identities.for_object(table, kind, days).await?;
        let ctx = Arc::new(chunks::ChunkContext::new(
            kind.clone(),
            arrow_schema,
            meta,
            identity.scope_position(),
        ));
        let key_columns = kind.key_columns();
        let mut metrics = rules.metrics();
        let mut quarantine = QuarantineSpool::new(&self.cfg.spool_dir, key, version)?;
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut unknown_fields: BTreeMap<String, u64> = BTreeMap::new();
        let mut c = Counts::default();

        let reader = self.lake.open_version(key, Some(version)).await?;
        let mut chunks = chunks::ChunkReader::new(reader, kind.format(), self.cfg.batch_rows);
        // Chunks parse on the runtime's workers, a few ahead of the one applied in order here.
        let ahead = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let mut parsing = std::collections::VecDeque::new();
        let mut key_buf = Vec::with_capacity(64);
        let mut more = true;
        loop {
            while more && parsing.len() < ahead {
                match chunks
                    .next()
                    .await
                    .map_err(|e| Error::StorageUnavailable(format!("reading {key}: {e}")))?
                {
                    Some(chunk) => parsing.push_back(chunks::spawn(&ctx, chunk)),
                    None => more = false,
                }
            }
            let Some(next) = parsing.pop_front() else {
                break;
            };
            let p = chunks::parsed(next).await?;
            for r in &p.rejects {
                quarantine.push(r.line, r.item, &r.reason, &r.raw, r.consumed)?;
            }
            for (k, n) in p.reasons {
                *reasons.entry(k).or_default() += n;
            }
            for (k, n) in p.unknown_fields {
                *unknown_fields.entry(k).or_default() += n;
            }
            metrics.merge(p.metrics);
            c.records_in += p.records_in;
            c.records_quarantined += p.records_quarantined;
            c.rows_quarantined += p.rows_quarantined;
            let Some(batch) = p.batch else {
                continue;
            };
            let keys: Vec<&arrow_array::ArrayRef> = key_columns
                .iter()
                .map(|k| {
                    batch.column_by_name(k).ok_or_else(|| {
                        Error::Catalog(format!("internal: no key column {k} in a batch"))
                    })
                })
                .collect::<Result<_>>()?;
            let mut keep = Vec::with_capacity(p.hashes.len());
            let mut row = 0;
            for (_, count) in p.records {
                let mut appended = false;
                for _ in 0..count {
                    if let Some(day) = p.days.get(row).and_then(|d| identity.day_to_read(*d)) {
                        identity.read_day(day).await?;
                    }
                    let new = identity.admit(p.hashes[row], || {
                        identity::key_hash(&keys, row, &mut key_buf)
                    });
                    if new {
                        c.rows_committed += 1;
                        appended = true;
                    } else {
                        c.rows_unchanged += 1;
                    }
                    keep.push(new);
                    row += 1;
                }
                if appended {
                    c.records_committed += 1;
                } else {
                    c.records_unchanged += 1;
                }
            }
            drop(keys);
            if keep.iter().all(|k| *k) {
                writer.write(batch).await?;
            } else if keep.iter().any(|k| *k) {
                let keep = arrow_array::BooleanArray::from(keep);
                let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
                    .map_err(|e| Error::Catalog(format!("internal: filtering a batch: {e}")))?;
                writer.write(kept).await?;
            }
        }
        tracing::debug!(
            key,
            ms = started.elapsed().as_millis() as u64,
            "records parsed"
        );
        let files = writer.close().await?;
        tracing::debug!(
            key,
            ms = started.elapsed().as_millis() as u64,
            "data files written"
        );
        let base = identity.base();
        let identity_files_read = identity.files_read();
        let appended = identity.into_appended();

        let quarantine_key = quarantine.publish(&self.lake, &quarantine_key).await?;
        let dataset_rules = rules.evaluate(&metrics);
        let passed = dataset_rules.iter().all(|r| r.passed);
        debug_assert_eq!(
            c.records_in,
            c.records_committed + c.records_unchanged + c.records_quarantined
        );
        let report = QualityReport {
            table: kind.name().to_string(),
            source_key: key.to_string(),
            source_version: version.to_string(),
            ingest_on: ingest_on.to_string(),
            records_in: c.records_in,
            records_committed: c.records_committed,
            records_unchanged: c.records_unchanged,
            records_quarantined: c.records_quarantined,
            rows_committed: c.rows_committed,
            rows_unchanged: c.rows_unchanged,
            rows_quarantined: c.rows_quarantined,
            quarantine_reasons: reasons,
            unknown_fields,
            dataset_rules,
            passed,
        };
        self.write_report(&report_key, &report).await?;
        let outcome = ObjectOutcome {
            key: key.to_string(),
            version: version.to_string(),
            table: kind.name().to_string(),
            ingest_on,
            status: Status::Committed,
            records_in: c.records_in,
            records_committed: c.records_committed,
            records_unchanged: c.records_unchanged,
            records_quarantined: c.records_quarantined,
            rows_committed: c.rows_committed,
            rows_unchanged: c.rows_unchanged,
            rows_quarantined: c.rows_quarantined,
            data_files: files.len() as u64,
            identity_files_read,
            snapshot_id: None,
            quarantine_key,
            quality_report_key: report_key,
            quality_passed: passed,
        };
        Ok(Staged {
            ctx,
            layout,
            outcome,
            report,
            files,
            appended,
            base,
            file_prefix,
            bytes: head.size,
            started,
        })
    }

    async fn write_report(&self, key: &str, report: &QualityReport) -> Result<()> {
        let json = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::Configuration(format!("serializing the quality report: {e}")))?;
        self.lake.put_bytes(key, &json).await?;
        Ok(())
    }

    /// Appends the staged files in one snapshot recording (key, version, outcome, attempt id).
    ///
    /// After any failed attempt the table is read again: a snapshot carrying one of our attempt
    /// ids means the commit landed and only its acknowledgement was lost (committed, and its
    /// files are never touched); a snapshot recording the object means another invocation won
    /// (our files, which nothing references, are deleted); rows a concurrent commit appended
    /// meanwhile are removed from our files before the next attempt.
    async fn commit(&self, staged: &mut Staged) -> Result<Committed> {
        let kind = staged.ctx.kind.clone();
        let ident = self.table_ident(kind.name());
        let (key, version) = (staged.outcome.key.clone(), staged.outcome.version.clone());
        let checked = tokio::sync::Mutex::new(staged.base);
        let mut attempt_ids: Vec<String> = Vec::new();
        let mut last_err = String::new();
        // Set once an attempt failed in a way that may still land it: from then on our files are
        // never deleted here (the orphan-file maintenance removes them after its safety age).
        let mut outcome_unknown = false;
        for attempt in 1..=self.cfg.commit_max_attempts {
            let table = self.catalog.load_table(&ident).await?;
            if let Some(id) = find_own_commit(&table, &attempt_ids) {
                return Ok(Committed::Snapshot(id));
            }
            if let Some(recorded) = recorded_outcome(&table, &key, &version) {
                discard_files(&table, &staged.files, outcome_unknown).await;
                return Ok(Committed::Recorded(Box::new(recorded)));
            }
            let attempt_id = uuid::Uuid::new_v4().to_string();
            attempt_ids.push(attempt_id.clone());
            let outcome_json = serde_json::to_string(&staged.outcome)
                .map_err(|e| Error::Configuration(format!("serializing the outcome: {e}")))?;
            let props = HashMap::from([
                (catalog::PROP_SOURCE_KEY.to_string(), key.clone()),
                (catalog::PROP_SOURCE_VERSION.to_string(), version.clone()),
                (catalog::PROP_OUTCOME.to_string(), outcome_json),
                (catalog::PROP_COMMIT_ID.to_string(), attempt_id),
            ]);
            let overlap = std::sync::Mutex::new(std::collections::HashSet::new());
            let guard = CommitGuard {
                kind: &kind,
                key: &key,
                version: &version,
                attempt_ids: &attempt_ids,
                appended: &staged.appended,
                checked: &checked,
                overlap: &overlap,
            };
            let guarded = Hooked {
                inner: &*self.catalog,
                hook: guard,
            };
            let tx = Transaction::new(&table);
            let tx = tx
                .fast_append()
                .add_data_files(staged.files.clone())
                // Staged file names are new on every attempt, and a retry after a lost
                // acknowledgement is stopped by the guard (our attempt id): the check would
                // only read every manifest of the table on each commit.
                .with_check_duplicate(false)
                .set_snapshot_properties(props)
                .apply(tx)?;
            let committing = std::time::Instant::now();
            let result = tx.commit(&guarded).await;
            tracing::debug!(key = %key, attempt, ms = committing.elapsed().as_millis() as u64, ok = result.is_ok(), "commit attempted");
            let err = match result {
                Ok(t) => {
                    let id = find_own_commit(&t, &attempt_ids).unwrap_or_default();
                    return Ok(Committed::Snapshot(id));
                }
                Err(e) => e,
            };
            // Whatever failed, the catalog may have applied the commit (a lost acknowledgement).
            let table = self.catalog.load_table(&ident).await?;
            if let Some(id) = find_own_commit(&table, &attempt_ids) {
                tracing::warn!(key = %key, error = %err, "the commit landed although it reported a failure");
                return Ok(Committed::Snapshot(id));
            }
            let overlap = overlap.into_inner().unwrap_or_else(|p| p.into_inner());
            last_err = format!("{err:#}");
            outcome_unknown |= !refused_before_update(&err);
            if !overlap.is_empty() {
                tracing::info!(key = %key, rows = overlap.len(), "a concurrent commit appended some of these rows: rewriting without them");
                if self
                    .drop_rows(&table, staged, &overlap, outcome_unknown)
                    .await?
                {
                    return Ok(Committed::Nothing);
                }
                continue;
            }
            if err.message().contains(ALREADY_COMMITTED) {
                continue;
            }
            if !err.retryable() {
                discard_files(&table, &staged.files, outcome_unknown).await;
                return Err(err.into());
            }
            let backoff = 50u64.saturating_mul(1 << attempt.min(6));
            tracing::debug!(attempt, error = %err, "commit conflict, retrying");
            tokio::time::sleep(Duration::from_millis(backoff / 2 + jitter_ms(backoff))).await;
        }
        let table = self.catalog.load_table(&ident).await?;
        if let Some(id) = find_own_commit(&table, &attempt_ids) {
            return Ok(Committed::Snapshot(id));
        }
        discard_files(&table, &staged.files, outcome_unknown).await;
        Err(Error::CommitConflict(format!(
            "{key}: gave up after {} commit attempts: {last_err}",
            self.cfg.commit_max_attempts
        )))
    }

    /// Rewrites the staged files without the rows `held` (appended meanwhile by a concurrent
    /// commit) and moves those rows to the unchanged counts. Returns whether nothing is left.
    async fn drop_rows(
        &self,
        table: &iceberg::table::Table,
        staged: &mut Staged,
        held: &std::collections::HashSet<u128>,
        outcome_unknown: bool,
    ) -> Result<bool> {
        let prefix = format!("{}-{}", staged.file_prefix, uuid::Uuid::new_v4().simple());
        let (files, removed) =
            writer::rewrite_without(table, &staged.files, held, prefix, staged.layout).await?;
        // The old files are referenced by no snapshot (none carries our attempt ids).
        discard_files(table, &staged.files, outcome_unknown).await;
        staged.files = files;
        staged.appended.retain(|h| !held.contains(&h));
        let records_committed = self.records_appending(staged).await?;
        let o = &mut staged.outcome;
        o.rows_committed -= removed;
        o.rows_unchanged += removed;
        o.records_committed = records_committed;
        o.records_unchanged = o.records_in - o.records_quarantined - o.records_committed;
        o.data_files = staged.files.len() as u64;
        let r = &mut staged.report;
        (r.rows_committed, r.rows_unchanged) = (o.rows_committed, o.rows_unchanged);
        (r.records_committed, r.records_unchanged) = (o.records_committed, o.records_unchanged);
        self.write_report(&o.quality_report_key, &staged.report)
            .await?;
        Ok(staged.files.is_empty())
    }

    /// How many records of the staged object still append a row. Rows do not remember their
    /// record (4 bytes a row, for this rare path), so the object is parsed again: a record
    /// counts for the first of its rows that the object appends, as when it was staged (a row
    /// repeated in a later record is that record's unchanged row).
    async fn records_appending(&self, staged: &Staged) -> Result<u64> {
        let (key, version) = (&staged.outcome.key, &staged.outcome.version);
        let mut unclaimed: std::collections::HashSet<u128> = staged.appended.hashes().collect();
        let reader = self.lake.open_version(key, Some(version)).await?;
        let mut chunks =
            chunks::ChunkReader::new(reader, staged.ctx.kind.format(), self.cfg.batch_rows);
        let mut records = 0;
        while let Some(chunk) = chunks
            .next()
            .await
            .map_err(|e| Error::StorageUnavailable(format!("reading {key} again: {e}")))?
        {
            let p = chunks::parsed(chunks::spawn(&staged.ctx, chunk)).await?;
            let mut rows = p.hashes.iter();
            for (_, count) in &p.records {
                // Every row claims its hash, whether or not an earlier one of the record did.
                let claimed = rows
                    .by_ref()
                    .take(*count)
                    .fold(false, |any, h| unclaimed.remove(h) | any);
                records += u64::from(claimed);
            }
        }
        Ok(records)
    }
}

/// An Iceberg `date`: days since 1970-01-01.
fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

#[derive(Default)]
struct Counts {
    records_in: u64,
    records_committed: u64,
    records_unchanged: u64,
    records_quarantined: u64,
    rows_committed: u64,
    rows_unchanged: u64,
    rows_quarantined: u64,
}

/// The status of an object that staged no file.
fn empty_status(o: &ObjectOutcome) -> Status {
    if o.records_unchanged > 0 {
        Status::Unchanged
    } else {
        Status::NothingToCommit
    }
}

/// Deletes staged data files that no snapshot references (a lost race, exhausted attempts). Kept
/// when an attempt's outcome is unknown (it may still land and reference them): the orphan-file
/// maintenance removes them after its safety age. A failure to delete only leaves orphans too.
async fn discard_files(
    table: &iceberg::table::Table,
    files: &[iceberg::spec::DataFile],
    outcome_unknown: bool,
) {
    if outcome_unknown {
        tracing::warn!(files = files.len(), "a commit attempt's outcome is unknown: its files are left to the orphan-file maintenance");
        return;
    }
    for f in files {
        if let Err(e) = table.file_io().delete(f.file_path()).await {
            tracing::warn!(file = f.file_path(), error = %e, "could not delete an unreferenced data file");
        }
    }
}

fn recorded_outcome(
    table: &iceberg::table::Table,
    key: &str,
    version: &str,
) -> Option<ObjectOutcome> {
    let snap = find_commit(table, key, version)?;
    let raw = snap
        .summary()
        .additional_properties
        .get(catalog::PROP_OUTCOME)?;
    let mut o: ObjectOutcome = serde_json::from_str(raw).ok()?;
    o.status = Status::AlreadyCommitted;
    o.snapshot_id = Some(snap.snapshot_id());
    Some(o)
}

/// Reads one line (through `\n`) onto the end of `buf`, keeping at most `limit` bytes of it;
/// returns the bytes consumed and whether the line was longer than the limit.
async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    read_limited(r, buf, limit, Some(b'\n')).await
}

/// Reads the rest of the stream (one JSON document) as [`read_line_limited`] reads a line.
async fn read_all_limited<R: tokio::io::AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    read_limited(r, buf, limit, None).await
}

async fn read_limited<R: tokio::io::AsyncBufRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
    until: Option<u8>,
) -> std::io::Result<(usize, bool)> {
    let (mut total, start) = (0, buf.len());
    let mut oversized = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok((total, oversized));
        }
        let (take, done) = match until.and_then(|u| memchr::memchr(u, chunk)) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = limit.saturating_sub(buf.len() - start);
        if take > room {
            oversized = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        total += take;
        if done {
            return Ok((total, oversized));
        }
    }
}

/// Quarantined records, spooled to a local file and published as one NDJSON object.
struct QuarantineSpool {
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    dir: PathBuf,
    key: String,
    version: String,
    count: u64,
}

#[derive(Serialize)]
struct QuarantineEntry<'a> {
    source_key: &'a str,
    source_version: &'a str,
    line: u64,
    /// The bad item's index when only that item of the record is quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    item_index: Option<i32>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a str>,
    /// The raw bytes when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
    /// Set when only the first bytes of an oversized record are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_bytes: Option<usize>,
}

impl QuarantineSpool {
    fn new(dir: &std::path::Path, key: &str, version: &str) -> Result<Self> {
        Ok(QuarantineSpool {
            file: None,
            dir: dir.to_path_buf(),
            key: key.to_string(),
            version: version.to_string(),
            count: 0,
        })
    }

    fn push(
        &mut self,
        line_no: u64,
        item_index: Option<i32>,
        reason: &str,
        raw: &[u8],
        raw_len: usize,
    ) -> Result<()> {
        let spool_err = |e: std::io::Error| {
            Error::Configuration(format!("quarantine spool in {}: {e}", self.dir.display()))
        };
        if self.file.is_none() {
            let f = tempfile::Builder::new()
                .prefix("deftunes-quarantine-")
                .tempfile_in(&self.dir)
                .map_err(spool_err)?;
            self.file = Some(std::io::BufWriter::new(f));
        }
        let kept = &raw[..raw.len().min(QUARANTINE_KEEP_BYTES)];
        let (record, record_base64) = match std::str::from_utf8(kept) {
            Ok(s) => (Some(s), None),
            Err(_) => {
                use base64::Engine;
                (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(kept)),
                )
            }
        };
        let entry = QuarantineEntry {
            source_key: &self.key,
            source_version: &self.version,
            line: line_no,
            item_index,
            reason,
            record,
            record_base64,
            record_bytes: (kept.len() < raw_len.saturating_sub(1)).then_some(raw_len),
        };
        let json = serde_json::to_vec(&entry)
            .map_err(|e| Error::Configuration(format!("quarantine entry: {e}")))?;
        if let Some(w) = &mut self.file {
            w.write_all(&json)
                .and_then(|_| w.write_all(b"\n"))
                .map_err(spool_err)?;
        }
        self.count += 1;
        Ok(())
    }

    async fn publish(self, lake: &Lake, key: &str) -> Result<Option<String>> {
        let Some(w) = self.file else {
            return Ok(None);
        };
        let f = w
            .into_inner()
            .map_err(|e| Error::Configuration(format!("quarantine spool: {}", e.error())))?;
        lake.put_file(key, f.path()).await?;
        Ok(Some(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_with_a_size_limit() {
        let data = b"short\nthis line is long\n\nlast";
        let mut r = tokio::io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            buf.clear();
            let (n, over) = read_line_limited(&mut r, &mut buf, 8).await.unwrap();
            if n == 0 {
                break;
            }
            got.push((String::from_utf8(buf.clone()).unwrap(), n, over));
        }
        assert_eq!(
            got,
            vec![
                ("short\n".to_string(), 6, false),
                ("this lin".to_string(), 18, true),
                ("\n".to_string(), 1, false),
                ("last".to_string(), 4, false)
            ]
        );
    }

    #[test]
    fn artifact_names_carry_the_version() {
        assert_eq!(
            artifact_stem(
                "landing_zone/api/users/ingest_on=2020-01-01/users_a_b.part-00000.jsonl",
                "\"9b2c-1a\""
            ),
            "users_a_b.part-00000.9b2c1a"
        );
    }

    #[test]
    fn config_defaults_derive_the_warehouse() {
        let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes");
        let env: HashMap<String, String> = [
            ("LAKE_URI", "s3://lake/dev"),
            ("CATALOG", "glue"),
            ("PIPELINE_DIR", pipeline),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = TransformConfig::from_env(&env).unwrap();
        assert_eq!(c.warehouse, "s3://lake/dev/transform_zone");
        assert_eq!(c.namespace, "deftunes_transform");
        let env: HashMap<String, String> = [("LAKE_URI", "/tmp/lake"), ("PIPELINE_DIR", pipeline)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(TransformConfig::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("CATALOG_URI"));
    }
}
