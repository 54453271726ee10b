//! Rows to Arrow record batches, and batches to Parquet data files of an Iceberg table.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::SchemaRef;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::tables::{Cell, ColType, TableKind};
use crate::error::{Error, Result};

enum Col {
    Str(StringBuilder),
    F64(Float64Builder),
    F32(Float32Builder),
    I32(Int32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl Col {
    fn new(t: ColType, cap: usize) -> Col {
        match t {
            ColType::Str => Col::Str(StringBuilder::with_capacity(cap, cap * 16)),
            ColType::F64 => Col::F64(Float64Builder::with_capacity(cap)),
            ColType::F32 => Col::F32(Float32Builder::with_capacity(cap)),
            ColType::I32 => Col::I32(Int32Builder::with_capacity(cap)),
            ColType::Bool => Col::Bool(BooleanBuilder::with_capacity(cap)),
            ColType::Ts => Col::Ts(TimestampMicrosecondBuilder::with_capacity(cap)),
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
        }
    }
}

/// Metadata stamped on every row of one landing object.
#[derive(Debug, Clone)]
pub struct RowMeta {
    pub ingest_on_days: i32,
    pub processing_micros: i64,
    pub source_from: &'static str,
    pub source_object: String,
}

/// Accumulates rows column by column.
pub struct BatchBuilder {
    schema: SchemaRef,
    cols: Vec<Col>,
    hashes: StringBuilder,
    rows: usize,
    capacity: usize,
    types: &'static [(&'static str, ColType)],
    meta: RowMeta,
}

impl BatchBuilder {
    pub fn new(table: TableKind, schema: SchemaRef, capacity: usize, meta: RowMeta) -> Self {
        let types = table.data_columns();
        BatchBuilder {
            cols: types.iter().map(|(_, t)| Col::new(*t, capacity)).collect(),
            hashes: StringBuilder::with_capacity(capacity, capacity * 32),
            schema,
            rows: 0,
            capacity,
            types,
            meta,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends a row and its `record_hash`.
    pub fn push(&mut self, row: &[Cell<'_>], hash: u128) -> Result<()> {
        for (col, cell) in self.cols.iter_mut().zip(row.iter().copied()) {
            col.push(cell)
                .map_err(|e| Error::Catalog(format!("internal: {e}")))?;
        }
        let mut hex = [0u8; 32];
        self.hashes
            .append_value(super::identity::hash_hex(hash, &mut hex));
        self.rows += 1;
        Ok(())
    }

    /// Takes the accumulated rows as a batch and starts a new one.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let n = self.rows;
        let mut arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        arrays.push(Arc::new(self.hashes.finish()));
        arrays.push(Arc::new(Date32Array::from(vec![
            self.meta.ingest_on_days;
            n
        ])));
        arrays.push(Arc::new(TimestampMicrosecondArray::from(
            vec![self.meta.processing_micros; n],
        )));
        arrays.push(Arc::new(StringArray::from(vec![self.meta.source_from; n])));
        arrays.push(Arc::new(StringArray::from(vec![
            self.meta
                .source_object
                .as_str();
            n
        ])));
        self.rows = 0;
        self.cols = self
            .types
            .iter()
            .map(|(_, t)| Col::new(*t, self.capacity))
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::Catalog(format!("building a record batch: {e}")))
    }
}

fn record_hash_path() -> parquet::schema::types::ColumnPath {
    parquet::schema::types::ColumnPath::from(super::tables::RECORD_HASH_COLUMN)
}

pub type TableWriter =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// A writer of data files into the `ingest_on` partition of `table`, rolling files at
/// `target_file_size`. Row groups are kept small so memory stays bounded while writing.
pub async fn data_file_writer(
    table: &Table,
    ingest_on_days: i32,
    file_prefix: String,
    target_file_size: usize,
) -> Result<TableWriter> {
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| Error::Catalog(e.to_string()))?,
        ))
        .set_max_row_group_row_count(Some(128 * 1024))
        // Random hashes: a dictionary never pays and min/max prune nothing.
        .set_column_dictionary_enabled(record_hash_path(), false)
        .set_column_statistics_enabled(
            record_hash_path(),
            parquet::file::properties::EnabledStatistics::None,
        )
        .build();
    let parquet = ParquetWriterBuilder::new(props, schema.clone());
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        target_file_size,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(file_prefix, None, DataFileFormat::Parquet),
    );
    let key = PartitionKey::new(
        metadata.default_partition_spec().as_ref().clone(),
        schema,
        Struct::from_iter([Some(Literal::date(ingest_on_days))]),
    );
    Ok(DataFileWriterBuilder::new(rolling).build(Some(key)).await?)
}

/// The data files of one landing object, opened on its first batch: an object whose records are
/// all quarantined (or that is empty) writes no file at all.
pub struct ObjectWriter<'t> {
    table: &'t Table,
    ingest_on_days: i32,
    file_prefix: String,
    target_file_size: usize,
    inner: Option<TableWriter>,
}

impl<'t> ObjectWriter<'t> {
    pub fn new(
        table: &'t Table,
        ingest_on_days: i32,
        file_prefix: String,
        target_file_size: usize,
    ) -> Self {
        Self {
            table,
            ingest_on_days,
            file_prefix,
            target_file_size,
            inner: None,
        }
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let w = match &mut self.inner {
            Some(w) => w,
            None => self.inner.insert(
                data_file_writer(
                    self.table,
                    self.ingest_on_days,
                    self.file_prefix.clone(),
                    self.target_file_size,
                )
                .await?,
            ),
        };
        Ok(w.write(batch).await?)
    }

    /// The data files written (none when no batch came).
    pub async fn close(self) -> Result<Vec<DataFile>> {
        match self.inner {
            Some(mut w) => Ok(w.close().await?),
            None => Ok(Vec::new()),
        }
    }
}

/// Writes `files` again without the rows whose `record_hash` is in `drop` (rows a concurrent
/// commit appended first). Returns the new files and the number of rows left out. Only staged,
/// never-committed files are read here: they are at most one landing object's rows.
pub async fn rewrite_without(
    table: &Table,
    files: &[DataFile],
    drop: &std::collections::HashSet<u128>,
    ingest_on_days: i32,
    file_prefix: String,
    target_file_size: usize,
) -> Result<(Vec<DataFile>, u64)> {
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(
        table.metadata().current_schema(),
    )?);
    let mut out = ObjectWriter::new(table, ingest_on_days, file_prefix, target_file_size);
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
