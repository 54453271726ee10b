//! Rows to Arrow record batches, and batches to Parquet data files of an Iceberg table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, StructArray};
use arrow_array::{ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::SchemaRef;
use iceberg::arrow::{arrow_struct_to_literal, PartitionValueCalculator};
use iceberg::spec::{
    DataFile, DataFileFormat, Literal, PartitionKey, PartitionSpec, SchemaRef as IcebergSchemaRef,
    Struct, StructType,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::tables::{Cell, ColumnType, TableDef, METADATA_COLUMNS, RECORD_HASH_COLUMN};
use crate::error::{Error, Result};

enum Col {
    Str(StringBuilder),
    F64(Float64Builder),
    F32(Float32Builder),
    I32(Int32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    I64(Int64Builder),
    Date(Date32Builder),
    Decimal(Decimal128Builder),
}

impl Col {
    /// A builder for `cap` rows; a string column's for `text` bytes (at least 16 per row).
    fn new(t: ColumnType, cap: usize, text: usize) -> Result<Col> {
        Ok(match t {
            ColumnType::String => Col::Str(StringBuilder::with_capacity(cap, text.max(cap * 16))),
            ColumnType::Double => Col::F64(Float64Builder::with_capacity(cap)),
            ColumnType::Float => Col::F32(Float32Builder::with_capacity(cap)),
            ColumnType::Int => Col::I32(Int32Builder::with_capacity(cap)),
            ColumnType::Boolean => Col::Bool(BooleanBuilder::with_capacity(cap)),
            ColumnType::Timestamp => Col::Ts(TimestampMicrosecondBuilder::with_capacity(cap)),
            ColumnType::Long => Col::I64(Int64Builder::with_capacity(cap)),
            ColumnType::Date => Col::Date(Date32Builder::with_capacity(cap)),
            ColumnType::Decimal { precision, scale } => Col::Decimal(
                Decimal128Builder::with_capacity(cap)
                    .with_precision_and_scale(precision as u8, scale as i8)
                    .map_err(|e| Error::Catalog(format!("internal: decimal column: {e}")))?,
            ),
        })
    }

    /// Builders for `cap` rows; `text`, each column's text bytes in the last batch, sizes the
    /// next one's (growing a string builder in steps reallocated per batch).
    fn all(types: &[(String, ColumnType)], cap: usize, text: &[usize]) -> Result<Vec<Col>> {
        types
            .iter()
            .enumerate()
            .map(|(i, (_, t))| {
                let last = text.get(i).copied().unwrap_or(0);
                Col::new(*t, cap, last + last / 8)
            })
            .collect()
    }

    fn text_bytes(&self) -> usize {
        match self {
            Col::Str(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    fn push(&mut self, c: Cell<'_>) -> std::result::Result<(), String> {
        match (self, c) {
            (Col::Str(b), Cell::Str(s)) => b.append_value(s),
            (Col::Str(b), Cell::Null) => b.append_null(),
            (Col::F64(b), Cell::F64(v)) => b.append_value(v),
            (Col::F64(b), Cell::Null) => b.append_null(),
            (Col::F32(b), Cell::F32(v)) => b.append_value(v),
            (Col::F32(b), Cell::Null) => b.append_null(),
            (Col::I32(b), Cell::I32(v)) => b.append_value(v),
            (Col::I32(b), Cell::Null) => b.append_null(),
            (Col::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Col::Bool(b), Cell::Null) => b.append_null(),
            (Col::Ts(b), Cell::Ts(v)) => b.append_value(v),
            (Col::Ts(b), Cell::Null) => b.append_null(),
            (Col::I64(b), Cell::I64(v)) => b.append_value(v),
            (Col::I64(b), Cell::Null) => b.append_null(),
            (Col::Date(b), Cell::Date(v)) => b.append_value(v),
            (Col::Date(b), Cell::Null) => b.append_null(),
            (Col::Decimal(b), Cell::Decimal(v)) => b.append_value(v),
            (Col::Decimal(b), Cell::Null) => b.append_null(),
            (_, c) => return Err(format!("cell {c:?} does not fit its column")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::F32(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            // The builder keeps its precision and scale across batches.
            Col::Decimal(b) => Arc::new(b.finish()),
        }
    }
}

/// Metadata stamped on every row of one landing object.
#[derive(Debug, Clone)]
pub struct RowMeta {
    pub ingest_on_days: i32,
    pub processing_micros: i64,
    pub source_from: String,
    pub source_object: String,
}

/// Accumulates rows column by column.
pub struct BatchBuilder {
    schema: SchemaRef,
    cols: Vec<Col>,
    /// `record_hash` of each row, 32 hex digits a row: one string array, built (and checked as
    /// UTF-8) once a batch instead of once a row.
    hashes: Vec<u8>,
    rows: usize,
    capacity: usize,
    table: TableDef,
    /// For each field of the table's current schema, its array among ours (data columns,
    /// `record_hash`, metadata): an evolved table's added columns come after the metadata.
    order: Vec<usize>,
    meta: RowMeta,
}

impl BatchBuilder {
    /// A builder for `capacity` rows; `text`, each data column's expected text bytes (empty:
    /// unknown), sizes its string columns.
    pub fn new(
        table: &TableDef,
        schema: SchemaRef,
        capacity: usize,
        text: &[usize],
        meta: RowMeta,
    ) -> Result<Self> {
        let ours: Vec<&str> = table
            .data_columns()
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(std::iter::once(RECORD_HASH_COLUMN))
            .chain(METADATA_COLUMNS.iter().map(|(n, _)| *n))
            .collect();
        let order = schema
            .fields()
            .iter()
            .map(|f| {
                ours.iter().position(|n| n == f.name()).ok_or_else(|| {
                    Error::Catalog(format!(
                        "table {} has a column {} its spec does not declare",
                        table.name(),
                        f.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if order.len() != ours.len() {
            return Err(Error::Catalog(format!(
                "table {}: its schema lacks columns of its spec",
                table.name()
            )));
        }
        Ok(BatchBuilder {
            cols: Col::all(table.data_columns(), capacity, text)?,
            hashes: Vec::with_capacity(capacity * HEX_DIGITS),
            schema,
            rows: 0,
            capacity,
            table: table.clone(),
            order,
            meta,
        })
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Each data column's text bytes so far (0 for columns that are no strings).
    pub fn text_bytes(&self) -> Vec<usize> {
        self.cols.iter().map(Col::text_bytes).collect()
    }

    /// Appends a row and its `record_hash`.
    pub fn push(&mut self, row: &[Cell<'_>], hash: u128) -> Result<()> {
        for (col, cell) in self.cols.iter_mut().zip(row.iter().copied()) {
            col.push(cell)
                .map_err(|e| Error::Catalog(format!("internal: {e}")))?;
        }
        super::identity::push_hash_hex(hash, &mut self.hashes);
        self.rows += 1;
        Ok(())
    }

    /// Takes the accumulated rows as a batch and starts a new one.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        self.take(true)
    }

    /// The accumulated rows as a batch, the builder's last.
    pub fn into_batch(mut self) -> Result<RecordBatch> {
        self.take(false)
    }

    fn take(&mut self, renew: bool) -> Result<RecordBatch> {
        let n = self.rows;
        // Only a full batch sizes the next: a short one is the object's last, and scaling it up
        // would size builders by its few rows (one long string could ask for gigabytes). The
        // builder's last batch sizes none.
        let text: Vec<usize> = if renew && n >= self.capacity {
            self.text_bytes()
        } else {
            Vec::new()
        };
        let mut arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let hex = std::mem::replace(
            &mut self.hashes,
            Vec::with_capacity(if renew { self.capacity * HEX_DIGITS } else { 0 }),
        );
        arrays.push(equal_width_strings(hex, HEX_DIGITS, n, "record hashes")?);
        arrays.push(Arc::new(Date32Array::from(vec![
            self.meta.ingest_on_days;
            n
        ])));
        arrays.push(Arc::new(TimestampMicrosecondArray::from(
            vec![self.meta.processing_micros; n],
        )));
        // Stamped on every row: its bytes repeated in one go (building the array value by value
        // was 1.7% of the transform's CPU on the bench object).
        for value in [&self.meta.source_from, &self.meta.source_object] {
            arrays.push(equal_width_strings(
                value.as_bytes().repeat(n),
                value.len(),
                n,
                "a constant column",
            )?);
        }
        self.rows = 0;
        if renew {
            // Fresh builders sized for a whole batch (finished ones restart empty).
            self.cols = Col::all(self.table.data_columns(), self.capacity, &text)?;
        }
        let arrays = self.order.iter().map(|&i| arrays[i].clone()).collect();
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::Catalog(format!("building a record batch: {e}")))
    }
}

/// Digits of a stored `record_hash`.
const HEX_DIGITS: usize = 32;

/// `n` strings of `width` bytes each, laid end to end in `bytes`, as one string array: its
/// offsets computed, not pushed value by value (the bytes are checked as UTF-8 once).
fn equal_width_strings(bytes: Vec<u8>, width: usize, n: usize, what: &str) -> Result<ArrayRef> {
    let array = StringArray::try_new(
        OffsetBuffer::from_lengths(std::iter::repeat_n(width, n)),
        bytes.into(),
        None,
    )
    .map_err(|e| Error::Catalog(format!("internal: {what}: {e}")))?;
    Ok(Arc::new(array))
}

fn record_hash_path() -> parquet::schema::types::ColumnPath {
    parquet::schema::types::ColumnPath::from(super::tables::RECORD_HASH_COLUMN)
}

type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
/// Landing objects smaller than this are written without compression. Each Parquet column
/// chunk read or written sets up its codec, and parquet's ZSTD codec allocates a compression and
/// a decompression context (about 1 MB, zeroed) whichever it is used for: on a 2.4 kB sessions
/// object, the contexts took 40% of the identity read of the day's earlier small files, and every
/// later small object of that day reads them again. A file of so few rows saves a few kB by
/// compressing.
pub const COMPRESS_FROM_BYTES: u64 = 1024 * 1024;

/// How one object's data files are laid out.
#[derive(Debug, Clone, Copy)]
pub struct FileLayout {
    /// Files roll at this size.
    pub target_file_size: usize,
    /// ZSTD pages (else uncompressed).
    pub compressed: bool,
    /// A partition's smaller parts of batches are joined up to this many rows per write (files
    /// roll between writes): the object's batch size.
    pub write_rows: usize,
}

impl FileLayout {
    /// The layout for a landing object of `object_bytes` parsed `batch_rows` records at a time.
    pub fn for_object(target_file_size: usize, object_bytes: u64, batch_rows: usize) -> Self {
        FileLayout {
            target_file_size,
            compressed: object_bytes >= COMPRESS_FROM_BYTES,
            write_rows: batch_rows.max(1),
        }
    }
}

/// The Parquet settings of a table's data files: ZSTD(1) pages when `compressed`, else
/// uncompressed. Also what `make bench` re-encodes the transform's own rows with, to measure the
/// encoding floor.
pub fn parquet_properties(
    schema: &iceberg::spec::Schema,
    compressed: bool,
) -> Result<WriterProperties> {
    let mut props = WriterProperties::builder();
    // String natural keys are (nearly) unique per record: a dictionary of them only costs its
    // hashing and falls back to plain pages at 1 MB. Measured on 20 MB of sessions (session_id):
    // 1% fewer instructions and 1.5% smaller files.
    //
    // Timestamps (event times, and the processing time, constant per object) too: measured on
    // 20 MB of sessions, 2% fewer instructions and 2.7% smaller files without their dictionary.
    use iceberg::spec::{PrimitiveType, Type};
    let string_keys = schema.identifier_field_ids().filter_map(|id| {
        schema
            .field_by_id(id)
            .filter(|f| matches!(*f.field_type, Type::Primitive(PrimitiveType::String)))
    });
    let timestamps = schema.as_struct().fields().iter().filter(|f| {
        matches!(
            *f.field_type,
            Type::Primitive(
                PrimitiveType::Timestamp
                    | PrimitiveType::Timestamptz
                    | PrimitiveType::TimestampNs
                    | PrimitiveType::TimestamptzNs
            )
        )
    });
    for f in string_keys.chain(timestamps) {
        props = props.set_column_dictionary_enabled(
            parquet::schema::types::ColumnPath::from(f.name.as_str()),
            false,
        );
    }
    // Level 1: on the bench object 11% faster than 3 and no larger (the columns are
    // dictionary-encoded already), with smaller compression contexts. Snappy would cost 1.5%
    // fewer instructions for 54% larger files (measured on 20 MB of sessions).
    let compression = if compressed {
        Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| Error::Catalog(e.to_string()))?)
    } else {
        Compression::UNCOMPRESSED
    };
    Ok(props
        .set_compression(compression)
        .set_max_row_group_row_count(Some(FLUSH_ROWS))
        // Random hashes: a dictionary never pays and min/max prune nothing.
        .set_column_dictionary_enabled(record_hash_path(), false)
        .set_column_statistics_enabled(
            record_hash_path(),
            parquet::file::properties::EnabledStatistics::None,
        )
        .build())
}

/// Data files of `table` laid out by `layout`. Row groups are kept small so memory stays bounded
/// while writing.
fn file_writer_builder(
    table: &Table,
    file_prefix: String,
    layout: FileLayout,
) -> Result<FileWriterBuilder> {
    let metadata = table.metadata();
    let props = parquet_properties(metadata.current_schema(), layout.compressed)?;
    let parquet = ParquetWriterBuilder::new(props, metadata.current_schema().clone());
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        layout.target_file_size,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(file_prefix, None, DataFileFormat::Parquet),
    );
    Ok(DataFileWriterBuilder::new(rolling))
}

/// Rows a partition gathers before they go to its file: one row group.
const FLUSH_ROWS: usize = 128 * 1024;
/// Rows gathered over all partitions before the largest goes to its file: with at most
/// `MAX_OPEN_FILES` open, memory stays bounded however large the object and however many event
/// days it spans. Measured on the 200 MB bench object (31 days, shuffled): 245 MB of RSS and 95
/// files, where a file open per day (iceberg's `FanoutWriter`) took 613 MB.
const BUFFERED_ROWS: usize = FLUSH_ROWS;
/// Open Parquet files: each holds a compression context, a dictionary and page buffers per
/// column (about 11 MB for sessions, measured).
const MAX_OPEN_FILES: usize = 2;

/// Splits batches by the table's partition spec, whatever its fields and transforms. One
/// vectorised pass computes every row's partition value; rows already in one partition (a daily
/// object) pass through untouched; others are ordered by partition once and each partition's
/// rows taken out. iceberg's own `RecordBatchPartitionSplitter` builds a literal per row and filters the
/// whole batch once per partition: 10% of the transform's CPU on the bench object (31 days,
/// shuffled).
struct Splitter {
    calculator: PartitionValueCalculator,
    partition_type: StructType,
    spec: PartitionSpec,
    schema: IcebergSchemaRef,
}

impl Splitter {
    fn new(table: &Table) -> Result<Option<Splitter>> {
        let metadata = table.metadata();
        let spec = metadata.default_partition_spec();
        if spec.is_unpartitioned() {
            return Ok(None);
        }
        let schema = metadata.current_schema().clone();
        let calculator = PartitionValueCalculator::try_new(spec, &schema)?;
        Ok(Some(Splitter {
            partition_type: calculator.partition_type().clone(),
            calculator,
            spec: spec.as_ref().clone(),
            schema,
        }))
    }

    fn split(&self, batch: &RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>> {
        let internal = |e: &dyn std::fmt::Display| {
            Error::Catalog(format!("internal: splitting a batch by partition: {e}"))
        };
        let fields = |values: &ArrayRef| -> Result<Vec<ArrayRef>> {
            values
                .as_any()
                .downcast_ref::<StructArray>()
                .map(|s| s.columns().to_vec())
                .ok_or_else(|| internal(&"partition values are not a struct"))
        };
        let values = self.calculator.calculate(batch)?;
        let runs = arrow_ord::partition::partition(&fields(&values)?).map_err(|e| internal(&e))?;
        let key = |values: &ArrayRef, at: usize| -> Result<PartitionKey> {
            let first = arrow_struct_to_literal(&values.slice(at, 1), &self.partition_type)?;
            let Some(Some(Literal::Struct(data))) = first.into_iter().next() else {
                return Err(internal(&"a partition value is not a struct"));
            };
            Ok(PartitionKey::new(
                self.spec.clone(),
                self.schema.clone(),
                data,
            ))
        };
        if runs.len() <= 1 {
            return Ok(vec![(key(&values, 0)?, batch.clone())]);
        }
        let order: Vec<arrow_ord::sort::SortColumn> = fields(&values)?
            .into_iter()
            .map(|values| arrow_ord::sort::SortColumn {
                values,
                options: None,
            })
            .collect();
        let indices =
            arrow_ord::sort::lexsort_to_indices(&order, None).map_err(|e| internal(&e))?;
        let values = arrow_select::take::take(&values, &indices, None).map_err(|e| internal(&e))?;
        let ranges = arrow_ord::partition::partition(&fields(&values)?)
            .map_err(|e| internal(&e))?
            .ranges();
        // One `take` per partition (each row copied once in all): every part owns its buffers,
        // so a pending part does not keep a whole batch alive (slices of one sorted copy did:
        // +50% peak RSS on the bench object).
        ranges
            .into_iter()
            .map(|r| {
                let rows = indices.slice(r.start, r.end - r.start);
                let part = arrow_select::take::take_record_batch(batch, &rows)
                    .map_err(|e| internal(&e))?;
                Ok((key(&values, r.start)?, part))
            })
            .collect()
    }
}

/// Rows of one partition not yet handed to its file.
struct Pending {
    key: Option<PartitionKey>,
    batches: Vec<RecordBatch>,
    rows: usize,
}

/// Batches queued for one file's encoder.
const FILE_QUEUE: usize = 1;

/// Batches into data files on a task of its own, fed through a bounded queue. Dropped without
/// `close`, the task is aborted; files it started are left to orphan-file maintenance.
struct Encoder {
    batches: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    task: Option<tokio::task::JoinHandle<Result<Vec<DataFile>>>>,
}

impl Encoder {
    /// Runs `work` on the batches sent, `queue` of them waiting at most.
    fn spawn<F>(
        queue: usize,
        work: impl FnOnce(tokio::sync::mpsc::Receiver<RecordBatch>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = Result<Vec<DataFile>>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<RecordBatch>(queue);
        Encoder {
            batches: Some(tx),
            task: Some(tokio::spawn(work(rx))),
        }
    }

    /// A data file of partition `key`, its encoder a task of its own: files of different
    /// partitions are encoded in parallel, and a file's close (which encodes its last row group)
    /// does not hold up the next.
    async fn file(builder: &FileWriterBuilder, key: Option<PartitionKey>) -> Result<Encoder> {
        let mut writer = builder.build(key).await?;
        Ok(Encoder::spawn(FILE_QUEUE, |mut rx| async move {
            while let Some(batch) = rx.recv().await {
                writer.write(batch).await?;
            }
            Ok(writer.close().await?)
        }))
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let sent = match &self.batches {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The task stopped taking batches: it failed, and its error says why.
        self.batches = None;
        Err(match self.join().await {
            Err(e) => e,
            Ok(_) => Error::Catalog("internal: a data file encoder stopped early".into()),
        })
    }

    /// Sends no more batches: the task finishes its last ones (await it with `join`).
    fn finish(&mut self) {
        self.batches = None;
    }

    /// The data files written, once the task is done.
    async fn join(&mut self) -> Result<Vec<DataFile>> {
        self.finish();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Catalog(format!("internal: data file encoder task: {e}")))?,
            None => Err(Error::Catalog(
                "internal: the data file encoder was already closed".into(),
            )),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Rows into data files laid out by the table's own partition spec (whatever it is: the writer
/// names no column). Rows are gathered per partition and written a row group at a time, to at
/// most `MAX_OPEN_FILES` open files: a daily object writes one file per day as before, and an
/// object spanning many days writes a few files per day instead of holding a file open for each.
struct Sink {
    builder: FileWriterBuilder,
    splitter: Option<Splitter>,
    pending: HashMap<Struct, Pending>,
    pending_rows: usize,
    /// Least recently written first.
    open: Vec<(Struct, Encoder)>,
    /// Files whose last rows are being encoded.
    closing: std::collections::VecDeque<Encoder>,
    files: Vec<DataFile>,
    layout: FileLayout,
}

impl Sink {
    fn new(table: &Table, file_prefix: String, layout: FileLayout) -> Result<Sink> {
        let splitter = Splitter::new(table)?;
        Ok(Sink {
            builder: file_writer_builder(table, file_prefix, layout)?,
            splitter,
            pending: HashMap::new(),
            pending_rows: 0,
            open: Vec::new(),
            closing: std::collections::VecDeque::new(),
            files: Vec::new(),
            layout,
        })
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let parts = match &self.splitter {
            None => vec![(None, batch)],
            Some(s) => s
                .split(&batch)?
                .into_iter()
                .map(|(k, b)| (Some(k), b))
                .collect(),
        };
        for (key, part) in parts {
            let id = key
                .as_ref()
                .map(|k| k.data().clone())
                .unwrap_or_else(Struct::empty);
            let p = self.pending.entry(id.clone()).or_insert_with(|| Pending {
                key,
                batches: Vec::new(),
                rows: 0,
            });
            p.rows += part.num_rows();
            self.pending_rows += part.num_rows();
            p.batches.push(part);
            if p.rows >= FLUSH_ROWS {
                self.flush(&id).await?;
            }
        }
        while self.pending_rows > BUFFERED_ROWS {
            let largest = self
                .pending
                .iter()
                .max_by_key(|(_, p)| p.rows)
                .map(|(id, _)| id.clone());
            match largest {
                Some(id) => self.flush(&id).await?,
                None => break,
            }
        }
        Ok(())
    }

    /// Hands a partition's gathered rows to its file, opening it (and closing the least recently
    /// written one when too many are open).
    async fn flush(&mut self, id: &Struct) -> Result<()> {
        let Some(p) = self.pending.remove(id) else {
            return Ok(());
        };
        self.pending_rows -= p.rows;
        // Bound first: a scrutinee's temporaries (an iterator over `open`, not `Sync`) would
        // live across the awaits below.
        let open = self.open.iter().position(|(k, _)| k == id);
        let mut file = match open {
            Some(i) => self.open.remove(i).1,
            None => {
                if self.open.len() >= MAX_OPEN_FILES {
                    let (_, mut oldest) = self.open.remove(0);
                    oldest.finish();
                    self.closing.push_back(oldest);
                    // Files closing in the background hold their buffers: as many as are open.
                    while self.closing.len() > MAX_OPEN_FILES {
                        if let Some(mut f) = self.closing.pop_front() {
                            self.files.extend(f.join().await?);
                        }
                    }
                }
                Encoder::file(&self.builder, p.key).await?
            }
        };
        // Small parts joined into writes of a batch's size: the Parquet writer's cost per write
        // (per column: levels, statistics, page checks) made the parts of batches spanning a
        // month (about 200 rows each) 10% of the transform's CPU on the bench object; copying
        // them once more saves that. A lone part, and parts of half a batch or more, are written
        // as they are.
        let join_err = |e: arrow_schema::ArrowError| {
            Error::Catalog(format!("internal: joining a partition's rows: {e}"))
        };
        let mut batches = p.batches;
        if batches.len() == 1 {
            if let Some(one) = batches.pop() {
                file.write(one).await?;
            }
        } else if let Some(schema) = batches.first().map(RecordBatch::schema) {
            let rows = self.layout.write_rows;
            let mut joined = arrow_select::coalesce::BatchCoalescer::new(schema, rows)
                .with_biggest_coalesce_batch_size(Some(rows / 2));
            for b in batches {
                joined.push_batch(b).map_err(join_err)?;
                while let Some(rows) = joined.next_completed_batch() {
                    file.write(rows).await?;
                }
            }
            joined.finish_buffered_batch().map_err(join_err)?;
            while let Some(rows) = joined.next_completed_batch() {
                file.write(rows).await?;
            }
        }
        self.open.push((id.clone(), file));
        Ok(())
    }

    async fn close(mut self) -> Result<Vec<DataFile>> {
        let ids: Vec<Struct> = self.pending.keys().cloned().collect();
        for id in ids {
            self.flush(&id).await?;
        }
        let open = std::mem::take(&mut self.open).into_iter().map(|(_, f)| f);
        let mut all: Vec<Encoder> = self.closing.drain(..).chain(open).collect();
        // Every queue closed first: the encoders finish their last row groups together.
        all.iter_mut().for_each(Encoder::finish);
        for mut f in all {
            self.files.extend(f.join().await?);
        }
        Ok(self.files)
    }
}

/// Batches in flight between the parser and the Parquet encoder.
const WRITE_QUEUE: usize = 2;

/// The data files of one landing object. Parquet encoding and compression run on a task of
/// their own, so on two cores (a Lambda of 1,769 MB or more) they overlap with parsing instead of
/// following it. Files are opened on the first batch: an object whose records are all
/// quarantined (or that is empty) writes no file at all. Dropped without `close`, the task is
/// aborted; files it started are left to orphan-file maintenance.
pub struct ObjectWriter(Encoder);

impl ObjectWriter {
    pub fn new(table: &Table, file_prefix: String, layout: FileLayout) -> Self {
        let table = table.clone();
        ObjectWriter(Encoder::spawn(WRITE_QUEUE, |mut rx| async move {
            let mut sink = None;
            while let Some(batch) = rx.recv().await {
                let s = match &mut sink {
                    Some(s) => s,
                    None => sink.insert(Sink::new(&table, file_prefix.clone(), layout)?),
                };
                s.write(batch).await?;
            }
            match sink {
                Some(s) => s.close().await,
                None => Ok(Vec::new()),
            }
        }))
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.0.write(batch).await
    }

    /// The data files written (none when no batch came).
    pub async fn close(mut self) -> Result<Vec<DataFile>> {
        self.0.join().await
    }
}

/// Writes `files` again without the rows whose `record_hash` is in `drop` (rows a concurrent
/// commit appended first). Returns the new files and the number of rows left out. Only staged,
/// never-committed files are read here: they are at most one landing object's rows.
pub async fn rewrite_without(
    table: &Table,
    files: &[DataFile],
    drop: &std::collections::HashSet<u128>,
    file_prefix: String,
    layout: FileLayout,
) -> Result<(Vec<DataFile>, u64)> {
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(
        table.metadata().current_schema(),
    )?);
    let mut out = ObjectWriter::new(table, file_prefix, layout);
    let mut removed = 0u64;
    let parquet_err =
        |path: &str, e: &dyn std::fmt::Display| Error::Catalog(format!("re-reading {path}: {e}"));
    for f in files {
        let path = f.file_path();
        let bytes = table.file_io().new_input(path)?.read().await?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| parquet_err(path, &e))?;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_err(path, &e))?;
            let hashes = batch
                .column_by_name(super::tables::RECORD_HASH_COLUMN)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| parquet_err(path, &"no record_hash column"))?;
            let keep: arrow_array::BooleanArray = hashes
                .iter()
                .map(|h| {
                    let held = h
                        .and_then(|h| u128::from_str_radix(h, 16).ok())
                        .is_some_and(|h| drop.contains(&h));
                    Some(!held)
                })
                .collect();
            removed += (batch.num_rows() - keep.true_count()) as u64;
            let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| parquet_err(path, &e))?;
            if kept.num_rows() > 0 {
                let kept = RecordBatch::try_new(schema.clone(), kept.columns().to_vec())
                    .map_err(|e| parquet_err(path, &e))?;
                out.write(kept).await?;
            }
        }
    }
    Ok((out.close().await?, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    #[test]
    fn equal_width_strings_are_cut_at_their_width() {
        let key = "api/sessions/ingest_on=2020-01-01/séance.jsonl";
        for n in [0, 1, 3] {
            let a = equal_width_strings(key.as_bytes().repeat(n), key.len(), n, "test").unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(a.len(), n);
            assert_eq!(a.null_count(), 0);
            assert!(a.iter().all(|v| v == Some(key)), "{n} rows");
        }
        let hashes = equal_width_strings(b"ab12cd34".to_vec(), 4, 2, "test").unwrap();
        let hashes = hashes.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            hashes.iter().collect::<Vec<_>>(),
            [Some("ab12"), Some("cd34")]
        );
        // A cut inside a character, or fewer bytes than the rows need, is an error, not a panic.
        assert!(equal_width_strings("é".as_bytes().to_vec(), 1, 2, "test").is_err());
        assert!(equal_width_strings(b"abc".to_vec(), 2, 2, "test").is_err());
    }

    #[test]
    fn every_spec_type_has_a_column_of_its_arrow_type() {
        let cases = [
            (ColumnType::String, Cell::Str("a"), DataType::Utf8),
            (ColumnType::Int, Cell::I32(1), DataType::Int32),
            (ColumnType::Long, Cell::I64(1 << 40), DataType::Int64),
            (ColumnType::Float, Cell::F32(1.5), DataType::Float32),
            (ColumnType::Double, Cell::F64(1.5), DataType::Float64),
            (
                ColumnType::Decimal {
                    precision: 9,
                    scale: 2,
                },
                Cell::Decimal(1230),
                DataType::Decimal128(9, 2),
            ),
            (ColumnType::Date, Cell::Date(17_846), DataType::Date32),
            (
                ColumnType::Timestamp,
                Cell::Ts(1),
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            ),
            (ColumnType::Boolean, Cell::Bool(true), DataType::Boolean),
        ];
        for (ty, cell, arrow) in cases {
            let mut col = Col::new(ty, 4, 0).unwrap();
            col.push(cell).unwrap();
            col.push(Cell::Null).unwrap();
            assert!(col.push(Cell::Str("x")).is_err() || ty == ColumnType::String);
            for _ in 0..2 {
                let a = col.finish();
                assert_eq!(a.data_type(), &arrow, "{ty}");
                assert_eq!(a.null_count(), usize::from(!a.is_empty()), "{ty}");
            }
        }
    }
}
