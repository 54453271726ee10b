//! Record identity: which rows a table already holds, so that re-landed records are not
//! appended again.
//!
//! Every row carries `record_hash`, a 128-bit xxh3 of its typed data cells (the natural key
//! included), and the table declares its natural key. A row is appended unless the table holds
//! the same record (`record_hash`) *and* that record is still current for its key: the key's
//! latest version (by `ingest_on`, then `processing_timestamp`) has that hash, or is newer than
//! the object. So re-runs, overlapping backfills, re-extracts and late redeliveries append
//! nothing; a changed record is appended as a new version; a record that changed and then
//! changed back is appended again, so the latest version stays the source's.
//!
//! The check reads only the columns it needs (key, `record_hash`, `ingest_on`,
//! `processing_timestamp`), and only the rows the object can collide with:
//! - dimension-sized tables (no identity scope) keep the index of the whole table in memory
//!   between warm invocations, refreshed from the data files added since it was built;
//! - tables with an identity scope (sessions: `session_start_time`) are checked per event day: on
//!   the first row of a day, the data files whose column bounds overlap that day are read (the
//!   manifests' per-file bounds prune the rest), so the cost follows the days an object touches,
//!   not the table's size.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Date32Array, Int32Array, StringArray};
use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::scan::FileScanTask;
use iceberg::spec::Datum;
use iceberg::table::Table;

use super::tables::{Cell, TableDef, RECORD_HASH_COLUMN};
use crate::error::{Error, Result};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Keys that are already uniform hashes (xxh3 output) need no second hash: their low 64 bits.
#[derive(Default, Clone, Copy)]
pub struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only integer keys are hashed here; fold any other input anyway.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type BuildPrehashed = std::hash::BuildHasherDefault<Prehashed>;
/// A set of 128-bit record hashes.
pub type HashSet128 = HashSet<u128, BuildPrehashed>;
/// A record hash as four 32-bit words: 16-byte, 4-aligned entries (a `u128` is 16-aligned, and
/// beside anything else would take 32).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hash128([u32; 4]);

impl std::hash::Hash for Hash128 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

impl From<u128> for Hash128 {
    fn from(h: u128) -> Self {
        Hash128([
            h as u32,
            (h >> 32) as u32,
            (h >> 64) as u32,
            (h >> 96) as u32,
        ])
    }
}

impl From<Hash128> for u128 {
    fn from(h: Hash128) -> Self {
        h.0.iter()
            .rev()
            .fold(0u128, |acc, w| (acc << 32) | u128::from(*w))
    }
}

/// Shards of [`Appended`], chosen by the hash's top bits (its low ones index within a shard).
const APPENDED_SHARDS: usize = 16;

/// The record hash of every row one object appends: millions for a large object (a 1 GB object
/// appends 3.4 million rows, 17 bytes each with the table's control byte). Sharded, so that
/// growing never holds two copies of it all (a single table's rehash did: the peak memory of a
/// 1 GB object). Which record a row came from is not kept (4 bytes more per row, 17 MB at 1 GB):
/// the rare commit that must drop rows recounts its records from the object instead.
#[derive(Default)]
pub struct Appended {
    shards: [HashSet<Hash128, BuildPrehashed>; APPENDED_SHARDS],
}

impl Appended {
    fn shard(&self, hash: u128) -> usize {
        (hash >> (128 - APPENDED_SHARDS.trailing_zeros())) as usize
    }

    pub fn contains(&self, hash: u128) -> bool {
        self.shards[self.shard(hash)].contains(&hash.into())
    }

    pub fn insert(&mut self, hash: u128) {
        let i = self.shard(hash);
        self.shards[i].insert(hash.into());
    }

    pub fn hashes(&self) -> impl Iterator<Item = u128> + '_ {
        self.shards.iter().flat_map(|s| s.iter().map(|&k| k.into()))
    }

    /// Keeps the rows whose hash `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(u128) -> bool) {
        for s in &mut self.shards {
            s.retain(|&k| keep(k.into()));
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends a canonical encoding of `cell` (type tag, then value) to `buf`.
fn encode(buf: &mut Vec<u8>, cell: Cell<'_>) {
    match cell {
        Cell::Null => buf.push(0),
        Cell::Str(s) => {
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        Cell::F64(v) => {
            buf.push(2);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Cell::F32(v) => {
            buf.push(3);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Cell::I32(v) => {
            buf.push(4);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Cell::Bool(v) => buf.extend_from_slice(&[5, v as u8]),
        Cell::Ts(v) => {
            buf.push(6);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        // Tags of the types added with pipeline specs; the ones above never change.
        Cell::I64(v) => {
            buf.push(7);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Cell::Date(v) => {
            buf.push(8);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Cell::Decimal(v) => {
            buf.push(9);
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The content hash of a row: xxh3-128 of its typed data cells. Typed, so whitespace, key order
/// or number formatting in the landing record do not make a new version. Stable across releases:
/// it is stored in the tables.
pub fn record_hash(row: &[Cell<'_>], buf: &mut Vec<u8>) -> u128 {
    buf.clear();
    for c in row {
        encode(buf, *c);
    }
    twox_hash::XxHash3_128::oneshot(buf)
}

/// Appends `record_hash` as stored: 32 lowercase hex digits.
pub fn push_hash_hex(h: u128, out: &mut Vec<u8>) {
    // Both digits of a byte in one lookup: a row's hash is on the transform's hot path.
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut b = 0;
        while b < 256 {
            pairs[b] = [HEX[b >> 4], HEX[b & 0xf]];
            b += 1;
        }
        pairs
    };
    let mut hex = [0u8; 32];
    for (pair, b) in hex.chunks_exact_mut(2).zip(h.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[usize::from(b)]);
    }
    out.extend_from_slice(&hex);
}

/// The identity scope day of a row's scope cell (`None`: null).
pub fn scope_day(cell: Cell<'_>) -> Option<i64> {
    match cell {
        Cell::Ts(t) => Some(t.div_euclid(MICROS_PER_DAY)),
        _ => None,
    }
}

/// The latest version of one key.
#[derive(Debug, Clone, Copy)]
struct Latest {
    ingest_on: i32,
    processing: i64,
    hash: u128,
}

/// Identities held by (a part of) a table.
#[derive(Debug, Default)]
pub struct Held {
    hashes: HashSet128,
    latest: HashMap<u64, Latest, BuildPrehashed>,
}

impl Held {
    fn add(&mut self, key: u64, v: Latest) {
        self.hashes.insert(v.hash);
        let e = self.latest.entry(key).or_insert(v);
        if (v.ingest_on, v.processing) > (e.ingest_on, e.processing) {
            *e = v;
        }
    }

    /// Whether a row `(key, hash)` of an object of `ingest_on` is already held (see the module);
    /// the key is hashed only for records the table holds.
    fn holds(&self, hash: u128, ingest_on: i32, key: impl FnOnce() -> u64) -> bool {
        self.hashes.contains(&hash)
            && self
                .latest
                .get(&key())
                .is_some_and(|l| l.hash == hash || l.ingest_on >= ingest_on)
    }

    pub fn contains_hash(&self, hash: u128) -> bool {
        self.hashes.contains(&hash)
    }
}

/// The columns the identity check reads.
fn identity_columns(kind: &TableDef) -> Vec<&str> {
    let mut cols: Vec<&str> = kind.key_columns().iter().map(String::as_str).collect();
    cols.extend([RECORD_HASH_COLUMN, "ingest_on", "processing_timestamp"]);
    cols
}

fn column<'b, T: 'static>(batch: &'b arrow_array::RecordBatch, name: &str) -> Result<&'b T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Catalog(format!("identity read: column {name} missing or mistyped")))
}

/// Reads the identity columns of `tasks` into `held`.
async fn read_tasks(
    table: &Table,
    kind: &TableDef,
    tasks: Vec<FileScanTask>,
    held: &mut Held,
) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let keys = kind.key_columns();
    let stream = table
        .reader_builder()
        .build()
        .read(Box::pin(futures::stream::iter(tasks.into_iter().map(Ok))))?
        .stream();
    let mut stream = stream;
    let mut buf = Vec::with_capacity(64);
    // Folded in as they come: only one batch of identity columns is in memory at a time.
    while let Some(batch) = stream.try_next().await? {
        let b = &batch;
        let hashes = column::<StringArray>(b, RECORD_HASH_COLUMN)?;
        let ingest = column::<Date32Array>(b, "ingest_on")?;
        let processing = b
            .column_by_name("processing_timestamp")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            })
            .ok_or_else(|| Error::Catalog("identity read: processing_timestamp".into()))?;
        let key_cols: Vec<&ArrayRef> = keys
            .iter()
            .map(|k| {
                b.column_by_name(k)
                    .ok_or_else(|| Error::Catalog(format!("identity read: no key column {k}")))
            })
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            let Ok(hash) = u128::from_str_radix(hashes.value(i), 16) else {
                return Err(Error::Catalog(format!(
                    "{}: record_hash {:?} is not 32 hex digits",
                    kind.name(),
                    hashes.value(i)
                )));
            };
            let key = key_hash(&key_cols, i, &mut buf);
            held.add(
                key,
                Latest {
                    ingest_on: ingest.value(i),
                    processing: processing.value(i),
                    hash,
                },
            );
        }
    }
    Ok(())
}

/// The in-memory hash of row `i`'s natural key, `keys` its key columns (in key order): the
/// same for a row read back from the table and a row of a batch about to be written.
pub fn key_hash(keys: &[&ArrayRef], i: usize, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for a in keys {
        encode_arrow(buf, a, i);
    }
    twox_hash::XxHash3_64::oneshot(buf)
}

/// Encodes a key value read back from the table exactly as [`encode`] encodes its cell.
fn encode_arrow(buf: &mut Vec<u8>, a: &ArrayRef, i: usize) {
    if a.is_null(i) {
        encode(buf, Cell::Null);
    } else if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
        encode(buf, Cell::Str(s.value(i)));
    } else if let Some(v) = a.as_any().downcast_ref::<Int32Array>() {
        encode(buf, Cell::I32(v.value(i)));
    } else if let Some(v) = a.as_any().downcast_ref::<arrow_array::Int64Array>() {
        encode(buf, Cell::I64(v.value(i)));
    } else if let Some(v) = a.as_any().downcast_ref::<arrow_array::Date32Array>() {
        encode(buf, Cell::Date(v.value(i)));
    } else if let Some(v) = a
        .as_any()
        .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
    {
        encode(buf, Cell::Ts(v.value(i)));
    } else {
        // Key columns have one of the types above (the spec loader refuses others).
        encode(buf, Cell::Null);
    }
}

/// The data files of `table`'s current snapshot matching `filter` (all with `None`), planned
/// to read the identity columns.
async fn plan(
    table: &Table,
    kind: &TableDef,
    filter: Option<Predicate>,
) -> Result<Vec<FileScanTask>> {
    if table.metadata().current_snapshot().is_none() {
        return Ok(Vec::new());
    }
    let mut scan = table.scan().select(identity_columns(kind));
    if let Some(p) = filter {
        scan = scan.with_filter(p);
    }
    Ok(scan.build()?.plan_files().await?.try_collect().await?)
}

/// Paths of the data files `table` references at `snapshot_id`.
pub async fn data_files_at(table: &Table, snapshot_id: Option<i64>) -> Result<HashSet<String>> {
    let Some(id) = snapshot_id else {
        return Ok(HashSet::new());
    };
    let tasks: Vec<FileScanTask> = table
        .scan()
        .snapshot_id(id)
        .select_empty()
        .build()?
        .plan_files()
        .await?
        .try_collect()
        .await?;
    Ok(tasks.into_iter().map(|t| t.data_file_path).collect())
}

/// Identities held in the data files of `table`'s current snapshot that are not in `known`
/// (the files a concurrent commit added since `known` was listed).
pub async fn read_added(table: &Table, kind: &TableDef, known: &HashSet<String>) -> Result<Held> {
    let tasks = plan(table, kind, None)
        .await?
        .into_iter()
        .filter(|t| !known.contains(&t.data_file_path))
        .collect();
    let mut held = Held::default();
    read_tasks(table, kind, tasks, &mut held).await?;
    Ok(held)
}

/// The in-memory identity index of one dimension-sized table, kept between invocations.
#[derive(Debug, Default)]
pub struct TableIndex {
    table_uuid: Option<uuid::Uuid>,
    snapshot_id: Option<i64>,
    files: HashSet<String>,
    held: Held,
}

impl TableIndex {
    /// Brings the index to `table`'s current snapshot, reading only files not read before;
    /// returns how many files it read.
    async fn refresh(&mut self, table: &Table, kind: &TableDef) -> Result<u64> {
        let uuid = table.metadata().uuid();
        if self.table_uuid != Some(uuid) {
            // A table dropped and created again under the same name holds none of the old rows.
            *self = TableIndex {
                table_uuid: Some(uuid),
                ..TableIndex::default()
            };
        }
        let current = table.metadata().current_snapshot_id();
        if current == self.snapshot_id {
            return Ok(0);
        }
        let all = plan(table, kind, None).await?;
        let listed: HashSet<&str> = all.iter().map(|t| t.data_file_path.as_str()).collect();
        if self.files.iter().any(|f| !listed.contains(f.as_str())) {
            // Files left the table (a rollback, a compaction by another engine): the rows they
            // held may be gone, so the index is rebuilt from what the table references now.
            tracing::info!(
                table = kind.name(),
                "data files were removed: rebuilding the identity index"
            );
            *self = TableIndex {
                table_uuid: Some(uuid),
                ..TableIndex::default()
            };
        }
        let tasks: Vec<FileScanTask> = all
            .into_iter()
            .filter(|t| !self.files.contains(&t.data_file_path))
            .collect();
        let new_files: Vec<String> = tasks.iter().map(|t| t.data_file_path.clone()).collect();
        read_tasks(table, kind, tasks, &mut self.held).await?;
        let read = new_files.len() as u64;
        self.files.extend(new_files);
        self.snapshot_id = current;
        Ok(read)
    }
}

/// The dimension indexes of one transformer, by table.
#[derive(Debug, Default)]
pub struct IdentityCache {
    tables: std::sync::Mutex<HashMap<String, Arc<tokio::sync::RwLock<TableIndex>>>>,
}

impl IdentityCache {
    fn index(&self, kind: &TableDef) -> Arc<tokio::sync::RwLock<TableIndex>> {
        let mut map = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(kind.name().to_string()).or_default().clone()
    }

    /// The identity check of one landing object against `table` as loaded now.
    pub async fn for_object(
        &self,
        table: &Table,
        kind: &TableDef,
        ingest_on: i32,
    ) -> Result<ObjectIdentity> {
        let mut files_read = 0;
        let scope = match kind.identity_scope() {
            Some(col) => Source::Scoped(Scoped {
                column: col.to_string(),
                position: kind
                    .data_columns()
                    .iter()
                    .position(|(n, _)| *n == col)
                    .ok_or_else(|| {
                        Error::Configuration(format!("{}: no scope column {col}", kind.name()))
                    })?,
                last_day: None,
                days: HashSet::new(),
                files: HashSet::new(),
                held: Held::default(),
            }),
            None => {
                let index = self.index(kind);
                {
                    let mut w = index.write().await;
                    files_read = w.refresh(table, kind).await?;
                }
                Source::Table(index.read_owned().await)
            }
        };
        Ok(ObjectIdentity {
            kind: kind.clone(),
            table: table.clone(),
            base: table.metadata().current_snapshot_id(),
            ingest_on,
            source: scope,
            appended: Appended::default(),
            files_read,
        })
    }
}

struct Scoped {
    column: String,
    position: usize,
    /// The last day checked: rows come clustered by day, so most skip the `days` lookup.
    last_day: Option<Option<i64>>,
    /// Days (`None`: a null scope value) whose rows were read.
    days: HashSet<Option<i64>>,
    files: HashSet<String>,
    held: Held,
}

enum Source {
    /// The whole table's index, shared, read-locked for the object's lifetime.
    Table(tokio::sync::OwnedRwLockReadGuard<TableIndex>),
    Scoped(Scoped),
}

/// The identity check of one landing object: which of its rows are new.
pub struct ObjectIdentity {
    kind: TableDef,
    table: Table,
    base: Option<i64>,
    ingest_on: i32,
    source: Source,
    /// Rows this object appends: hash -> the record (line number) they came from.
    appended: Appended,
    /// Data files whose identity columns this object's check read.
    files_read: u64,
}

impl ObjectIdentity {
    /// The snapshot the check was made against.
    pub fn base(&self) -> Option<i64> {
        self.base
    }

    /// The data column whose day scopes the check (sessions: `session_start_time`), if any.
    pub fn scope_position(&self) -> Option<usize> {
        match &self.source {
            Source::Scoped(s) => Some(s.position),
            Source::Table(_) => None,
        }
    }

    /// `day` (of a row's scope column, [`scope_day`]) when the table's rows of that day are not
    /// read yet: read them ([`ObjectIdentity::read_day`]) before [`ObjectIdentity::admit`]. Only
    /// a new day awaits anything; an `await` per row moved the scan's future state per row (3% of
    /// the transform).
    pub fn day_to_read(&mut self, day: Option<i64>) -> Option<Option<i64>> {
        let Source::Scoped(s) = &mut self.source else {
            return None;
        };
        if s.last_day == Some(day) {
            return None;
        }
        s.last_day = Some(day);
        (!s.days.contains(&day)).then_some(day)
    }

    /// Reads the table's rows of one scope day (`None`: rows whose scope value is null).
    pub async fn read_day(&mut self, day: Option<i64>) -> Result<()> {
        let Source::Scoped(s) = &mut self.source else {
            return Ok(());
        };
        let filter = match day {
            Some(d) => Reference::new(s.column.as_str())
                .greater_than_or_equal_to(Datum::timestamp_micros(d * MICROS_PER_DAY))
                .and(
                    Reference::new(s.column.as_str())
                        .less_than(Datum::timestamp_micros((d + 1) * MICROS_PER_DAY)),
                ),
            None => Reference::new(s.column.as_str()).is_null(),
        };
        // The filter prunes files by their bounds; each file is then read whole (no row
        // filter), once, so the days it also covers are known too.
        let started = std::time::Instant::now();
        let tasks: Vec<FileScanTask> = plan(&self.table, &self.kind, Some(filter))
            .await?
            .into_iter()
            .filter(|t| !s.files.contains(&t.data_file_path))
            .map(|mut t| {
                t.predicate = None;
                t
            })
            .collect();
        s.files
            .extend(tasks.iter().map(|t| t.data_file_path.clone()));
        self.files_read += tasks.len() as u64;
        let files = tasks.len();
        let planned_us = started.elapsed().as_micros() as u64;
        read_tasks(&self.table, &self.kind, tasks, &mut s.held).await?;
        tracing::debug!(
            ?day,
            files,
            planned_us,
            us = started.elapsed().as_micros() as u64,
            "identity day read"
        );
        // Marked read only once read: a failed read is not taken for an empty day.
        s.days.insert(day);
        Ok(())
    }

    /// Decides whether a row (hash `hash`, natural key hashed by `key`) is appended (`true`) or
    /// already held (`false`), and remembers an appended row. Its day must be read
    /// ([`ObjectIdentity::day_to_read`]). The key is hashed only for rows whose hash the table
    /// holds.
    pub fn admit(&mut self, hash: u128, key: impl FnOnce() -> u64) -> bool {
        // The same record twice in one object is appended once.
        if self.appended.contains(hash) {
            return false;
        }
        let held = match &self.source {
            Source::Table(index) => index.held.holds(hash, self.ingest_on, key),
            Source::Scoped(s) => s.held.holds(hash, self.ingest_on, key),
        };
        if held {
            return false;
        }
        self.appended.insert(hash);
        true
    }

    /// Data files the check read (for a dimension table: those its warm index lacked).
    pub fn files_read(&self) -> u64 {
        self.files_read
    }

    /// The record hashes of the rows this object appends.
    pub fn into_appended(self) -> Appended {
        self.appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_rows_keep_their_whole_hash_across_shards() {
        let mut a = Appended::default();
        let low = 0x1234_5678_9abc_def0_u128;
        // Same low word (the in-shard hash), other high words: distinct rows, some in one shard.
        let hashes = [
            low,
            low | (1 << 64),
            low | (1 << 127),
            low | (0xf << 124) | (7 << 64),
            low | (1 << 96),
        ];
        for h in hashes {
            assert!(!a.contains(h));
            a.insert(h);
        }
        a.insert(hashes[0]);
        assert_eq!(a.len(), 5);
        assert!(hashes.iter().all(|h| a.contains(*h)));
        assert!(!a.contains(low | (2 << 64)));
        let mut seen: Vec<u128> = a.hashes().collect();
        seen.sort_unstable();
        let mut want = hashes.to_vec();
        want.sort_unstable();
        assert_eq!(seen, want);
        a.retain(|h| h >> 127 == 0);
        assert_eq!(a.len(), 3);
        assert!(!a.contains(hashes[2]) && !a.contains(hashes[3]));
        assert!(!a.is_empty());
    }

    #[test]
    fn an_appended_row_takes_16_bytes_and_its_hash_round_trips() {
        assert_eq!(std::mem::size_of::<Hash128>(), 16);
        assert_eq!(std::mem::align_of::<Hash128>(), 4);
        let h = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        assert_eq!(u128::from(Hash128::from(h)), h);
        assert_eq!(u128::from(Hash128::from(u128::MAX)), u128::MAX);
    }

    /// The hash of a row's natural key (only used in memory).
    fn key_hash(key: impl Iterator<Item = Cell<'static>>, buf: &mut Vec<u8>) -> u64 {
        buf.clear();
        for c in key {
            encode(buf, c);
        }
        twox_hash::XxHash3_64::oneshot(buf)
    }

    #[test]
    fn the_hash_is_stable_and_typed() {
        let mut buf = Vec::new();
        let a = record_hash(&[Cell::Str("u1"), Cell::I32(0), Cell::Null], &mut buf);
        // Stored in the tables: a change of encoding would re-append every row.
        let mut hex = b"x".to_vec();
        push_hash_hex(a, &mut hex);
        let hex = std::str::from_utf8(&hex[1..]).unwrap();
        assert_eq!(hex.len(), 32);
        assert_eq!(hex, hex.to_ascii_lowercase());
        assert_eq!(u128::from_str_radix(hex, 16).unwrap(), a);
        let mut hex = Vec::new();
        push_hash_hex(0x0123_4567_89ab_cdef_0011_2233_4455_6677, &mut hex);
        assert_eq!(hex, b"0123456789abcdef0011223344556677");
        assert_eq!(
            a,
            record_hash(&[Cell::Str("u1"), Cell::I32(0), Cell::Null], &mut buf)
        );
        // Type and boundaries matter: "ab","c" differs from "a","bc"; I32(1) from F64(1.0).
        assert_ne!(
            record_hash(&[Cell::Str("ab"), Cell::Str("c")], &mut buf),
            record_hash(&[Cell::Str("a"), Cell::Str("bc")], &mut buf)
        );
        assert_ne!(
            record_hash(&[Cell::I32(1)], &mut buf),
            record_hash(&[Cell::F64(1.0)], &mut buf)
        );
        assert_ne!(
            record_hash(&[Cell::Null], &mut buf),
            record_hash(&[Cell::Str("")], &mut buf)
        );
    }

    #[test]
    fn held_rows_follow_the_latest_version_per_key() {
        let mut held = Held::default();
        let v = |ingest_on, processing, hash| Latest {
            ingest_on,
            processing,
            hash,
        };
        held.add(1, v(10, 1, 0xa));
        held.add(1, v(20, 1, 0xb));
        // Replays of the current version, at any ingest_on, are held.
        let holds = |h: &Held, key: u64, hash: u128, on: i32| h.holds(hash, on, || key);
        assert!(holds(&held, 1, 0xb, 20) && holds(&held, 1, 0xb, 30) && holds(&held, 1, 0xb, 5));
        // The old version replayed from an older object: held (the newer one stays latest).
        assert!(holds(&held, 1, 0xa, 10));
        // The old version again in a newer object: the record changed back, appended.
        assert!(!holds(&held, 1, 0xa, 25));
        // ... but not from an object of the latest version's own ingest_on (a replay).
        assert!(holds(&held, 1, 0xa, 20));
        // A new version, a new key: appended.
        assert!(!holds(&held, 1, 0xc, 20) && !holds(&held, 2, 0xa, 20));
        // Ties on ingest_on go to the later processing.
        held.add(3, v(5, 2, 0xd));
        held.add(3, v(5, 1, 0xe));
        assert!(holds(&held, 3, 0xd, 5) && holds(&held, 3, 0xe, 5) && !holds(&held, 3, 0xe, 6));
    }

    #[test]
    fn key_hashes_match_between_rows_and_read_back_columns() {
        let mut buf = Vec::new();
        let from_cells = key_hash([Cell::Str("s"), Cell::I32(3)].into_iter(), &mut buf);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["s"]));
        let i: ArrayRef = Arc::new(Int32Array::from(vec![3]));
        buf.clear();
        encode_arrow(&mut buf, &s, 0);
        encode_arrow(&mut buf, &i, 0);
        assert_eq!(from_cells, twox_hash::XxHash3_64::oneshot(&buf));
    }
}
