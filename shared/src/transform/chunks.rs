//! A landing object's records in chunks: read in order, each chunk parsed on a thread of its own
//! (JSON decode, typing, quality rules, record hashes, Arrow columns: the order-free work), then
//! applied in order by the caller (identity, quarantine, counts). On two cores the parsing of one
//! chunk overlaps with the next's and with Parquet encoding, instead of one thread doing all.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::identity::{record_hash, scope_day};
use super::quality::{reason_kind, DatasetMetrics};
use super::records::RowBuffer;
use super::tables::{Cell, TableDef};
use super::writer::{BatchBuilder, RowMeta};
use super::{read_all_limited, read_line_limited, MAX_RECORD_BYTES, QUARANTINE_KEEP_BYTES};
use crate::error::{Error, Result};
use crate::pipeline::FileFormat;

/// A chunk ends after this many bytes of records (or `BATCH_ROWS` records): a few chunks in
/// flight keep memory bounded, and each is large enough that handing it to a thread costs
/// nothing measurable. Measured on the 1 GB bench object: 4 MB chunks peaked at 366-384 MB of
/// RSS, 2 MB ones at 318-322 MB, in the same time.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// Room past `CHUNK_BYTES` for the line that crosses it.
const CHUNK_SLACK: usize = 64 * 1024;

/// One record's line in a chunk's text.
struct Line {
    /// Its bytes in `Chunk::text` (without the line break; at most `MAX_RECORD_BYTES`).
    start: usize,
    end: usize,
    /// Its 1-based line number in the object.
    no: u64,
    /// Bytes it took in the object (line break included).
    consumed: usize,
    oversized: bool,
}

/// Consecutive records of an object (blank lines left out).
#[derive(Default)]
pub struct Chunk {
    text: Vec<u8>,
    lines: Vec<Line>,
}

/// Reads records in order, a chunk at a time.
pub struct ChunkReader<R> {
    reader: R,
    format: FileFormat,
    records: usize,
    line_no: u64,
    done: bool,
}

impl<R: tokio::io::AsyncBufRead + Unpin> ChunkReader<R> {
    /// Chunks of at most `records` records (and about [`CHUNK_BYTES`]).
    pub fn new(reader: R, format: FileFormat, records: usize) -> Self {
        ChunkReader {
            reader,
            format,
            records: records.max(1),
            line_no: 0,
            done: false,
        }
    }

    /// The next chunk; `None` at the end of the object.
    pub async fn next(&mut self) -> std::io::Result<Option<Chunk>> {
        // Sized for a whole chunk (and its last line, usually): growing it by doubling copied
        // the text and touched fresh pages each time.
        let mut chunk = Chunk {
            text: Vec::with_capacity(CHUNK_BYTES + CHUNK_SLACK),
            lines: Vec::new(),
        };
        while !self.done && chunk.lines.len() < self.records && chunk.text.len() < CHUNK_BYTES {
            let start = chunk.text.len();
            let read = match self.format {
                FileFormat::Ndjson => {
                    read_line_limited(&mut self.reader, &mut chunk.text, MAX_RECORD_BYTES).await
                }
                // The whole object is the record: read once.
                FileFormat::JsonDocument => {
                    self.done = true;
                    read_all_limited(&mut self.reader, &mut chunk.text, MAX_RECORD_BYTES).await
                }
            };
            let (consumed, oversized) = read?;
            if consumed == 0 {
                self.done = true;
                break;
            }
            self.line_no += 1;
            while chunk.text.len() > start && matches!(chunk.text.last(), Some(b'\n' | b'\r')) {
                chunk.text.pop();
            }
            if chunk.text[start..].iter().all(u8::is_ascii_whitespace) && !oversized {
                chunk.text.truncate(start);
                continue;
            }
            chunk.lines.push(Line {
                start,
                end: chunk.text.len(),
                no: self.line_no,
                consumed,
                oversized,
            });
        }
        Ok((!chunk.lines.is_empty()).then_some(chunk))
    }
}

/// What parsing a chunk needs of its object, shared by the threads.
pub struct ChunkContext {
    pub kind: TableDef,
    pub schema: SchemaRef,
    pub meta: RowMeta,
    /// The identity scope column's position among the data columns.
    pub scope: Option<usize>,
    /// Sizes the next chunk's builders.
    last: LastChunk,
}

/// What the last chunk parsed held: records that gave rows, their rows, and each data column's
/// text bytes. Builders sized from it for the next chunk do not grow by doubling, each step a
/// copy (the string columns' copies were 2.5% of the samples on the bench object).
#[derive(Default)]
struct LastChunk(std::sync::Mutex<(usize, usize, Vec<usize>)>);

impl LastChunk {
    /// Rows expected of `records` records (one each before the first chunk), and each data
    /// column's text bytes in them (empty: unknown).
    fn sizes(&self, records: usize) -> (usize, Vec<usize>) {
        let last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            (0, _, _) | (_, 0, _) => (records.max(1), Vec::new()),
            (n, rows_n, ref text) => {
                let rows = (records.saturating_mul(rows_n) / n).max(1);
                let text = text
                    .iter()
                    .map(|b| b.saturating_mul(rows) / rows_n)
                    .collect();
                (rows, text)
            }
        }
    }

    fn note(&self, records: usize, rows: usize, text: Vec<usize>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (records, rows, text);
    }
}

impl ChunkContext {
    pub fn new(kind: TableDef, schema: SchemaRef, meta: RowMeta, scope: Option<usize>) -> Self {
        ChunkContext {
            kind,
            schema,
            meta,
            scope,
            last: LastChunk::default(),
        }
    }
}

/// A record (or one item of it) for the quarantine, in line order.
pub struct Reject {
    pub line: u64,
    pub item: Option<i32>,
    pub reason: String,
    /// The record's first bytes (at most what the quarantine keeps).
    pub raw: Vec<u8>,
    pub consumed: usize,
}

/// A parsed chunk: its rows as one Arrow batch, and what the object's totals need.
pub struct Parsed {
    pub rejects: Vec<Reject>,
    pub reasons: BTreeMap<String, u64>,
    pub unknown_fields: BTreeMap<String, u64>,
    pub metrics: DatasetMetrics,
    pub records_in: u64,
    pub records_quarantined: u64,
    pub rows_quarantined: u64,
    /// Records that gave rows, in order: line number and row count.
    pub records: Vec<(u64, usize)>,
    /// Every row that passed the quality rules (not yet checked against the table).
    pub batch: Option<RecordBatch>,
    /// Each row's `record_hash`.
    pub hashes: Vec<u128>,
    /// Each row's identity scope day (empty for a table checked whole).
    pub days: Vec<Option<i64>>,
}

/// Parses a chunk's records into rows, quarantining those that break the shape or the rules.
/// The only error is an internal one (a cell that does not fit its column).
pub fn parse(ctx: &ChunkContext, chunk: Chunk) -> Result<Parsed> {
    let kind = &ctx.kind;
    let (rules, shape) = (kind.rules(), kind.shape());
    let key_positions = kind.key_positions();
    let item_column = kind.item_index_column();
    let (capacity, text) = ctx.last.sizes(chunk.lines.len());
    let mut batch = BatchBuilder::new(kind, ctx.schema.clone(), capacity, &text, ctx.meta.clone())?;
    let mut out = Parsed {
        rejects: Vec::new(),
        reasons: BTreeMap::new(),
        unknown_fields: BTreeMap::new(),
        metrics: rules.metrics(),
        records_in: 0,
        records_quarantined: 0,
        rows_quarantined: 0,
        records: Vec::with_capacity(chunk.lines.len()),
        batch: None,
        hashes: Vec::with_capacity(capacity),
        days: Vec::new(),
    };
    let mut unknown = Vec::new();
    let mut rejected_items = Vec::new();
    let mut hash_buf = Vec::with_capacity(256);
    let mut row_buffer = RowBuffer::default();
    for l in &chunk.lines {
        let line = &chunk.text[l.start..l.end];
        out.records_in += 1;
        let reject = |item: Option<i32>, reason: &str, out: &mut Parsed| {
            *out.reasons.entry(reason_kind(reason)).or_default() += 1;
            out.rejects.push(Reject {
                line: l.no,
                item,
                reason: reason.to_string(),
                raw: line[..line.len().min(QUARANTINE_KEEP_BYTES)].to_vec(),
                consumed: l.consumed,
            });
        };
        if l.oversized {
            out.records_quarantined += 1;
            reject(
                None,
                &format!("record is larger than {MAX_RECORD_BYTES} bytes"),
                &mut out,
            );
            continue;
        }
        // The SIMD check first (core's took 1.5% of the transform's CPU on the bench object);
        // core's again for the position of a bad byte.
        let text = simdutf8::basic::from_utf8(line).or_else(|_| std::str::from_utf8(line));
        let parsed = match text {
            Err(e) => Err(format!("malformed record: invalid UTF-8: {e}")),
            Ok(text) => shape.read(text).map_err(|e| format!("malformed JSON: {e}")),
        };
        let value = match parsed {
            Ok(v) => v,
            Err(reason) => {
                out.records_quarantined += 1;
                reject(None, &reason, &mut out);
                continue;
            }
        };
        let mut rows = shape.rows(std::mem::take(&mut row_buffer));
        unknown.clear();
        rejected_items.clear();
        if let Err(reason) = shape.parse(&value, &mut rows, &mut unknown, &mut rejected_items) {
            out.records_quarantined += 1;
            reject(None, &reason, &mut out);
            continue;
        }
        for u in unknown.drain(..) {
            *out.unknown_fields.entry(u).or_default() += 1;
        }
        // A row breaking a rule (or without its key) rejects its item, or its whole record
        // when the table does not explode records into items.
        let mut record_reason = None;
        rows.retain(|r| {
            if record_reason.is_some() {
                return false;
            }
            let reason = key_positions
                .iter()
                .find(|&&p| r.get(p).copied().unwrap_or(Cell::Null) == Cell::Null)
                .map(|&p| format!("{} is missing (natural key)", kind.data_columns()[p].0))
                .or_else(|| rules.check_row(r));
            match (reason, item_column.and_then(|i| r.get(i))) {
                (None, _) => true,
                (Some(reason), Some(Cell::I32(item))) => {
                    rejected_items.push((*item, reason));
                    false
                }
                (Some(reason), _) => {
                    record_reason = Some(reason);
                    false
                }
            }
        });
        if let Some(reason) = record_reason {
            out.records_quarantined += 1;
            reject(None, &reason, &mut out);
            continue;
        }
        rejected_items.sort_by_key(|(i, _)| *i);
        if rows.is_empty() && rejected_items.windows(2).all(|w| w[0].1 == w[1].1) {
            // Every item failed alike (a bad session field): one entry for the record.
            if let Some((_, reason)) = rejected_items.first() {
                out.records_quarantined += 1;
                reject(None, reason, &mut out);
                continue;
            }
        }
        for (item, reason) in &rejected_items {
            reject(Some(*item), reason, &mut out);
        }
        out.rows_quarantined += rejected_items.len() as u64;
        if rows.is_empty() {
            out.records_quarantined += 1;
            continue;
        }
        for r in rows.iter() {
            rules.observe(&mut out.metrics, r);
            let h = record_hash(r, &mut hash_buf);
            batch.push(r, h)?;
            out.hashes.push(h);
            if let Some(p) = ctx.scope {
                out.days
                    .push(scope_day(r.get(p).copied().unwrap_or(Cell::Null)));
            }
        }
        out.records.push((l.no, rows.len()));
        row_buffer = rows.into_buffer();
    }
    if !batch.is_empty() {
        ctx.last
            .note(out.records.len(), batch.len(), batch.text_bytes());
        out.batch = Some(batch.into_batch()?);
    }
    Ok(out)
}

/// Parses `chunk` on a worker of the runtime: a chunk is a few milliseconds of work, and the
/// runtime's workers are as many as the cores (more threads, as the blocking pool starts, each
/// took an allocator arena of their own: +100 MB of peak RSS on the bench object).
pub fn spawn(ctx: &Arc<ChunkContext>, chunk: Chunk) -> tokio::task::JoinHandle<Result<Parsed>> {
    let ctx = ctx.clone();
    tokio::spawn(async move { parse(&ctx, chunk) })
}

/// A chunk parsed by [`spawn`]; a panic in its parsing resumes here.
pub async fn parsed(task: tokio::task::JoinHandle<Result<Parsed>>) -> Result<Parsed> {
    match task.await {
        Ok(parsed) => parsed,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Catalog(format!("internal: parsing task: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn chunks(text: &[u8], format: FileFormat, records: usize) -> Vec<Vec<(u64, String)>> {
        let mut r = ChunkReader::new(text, format, records);
        let mut out = Vec::new();
        while let Some(c) = r.next().await.expect("reading from memory") {
            out.push(
                c.lines
                    .iter()
                    .map(|l| {
                        (
                            l.no,
                            String::from_utf8_lossy(&c.text[l.start..l.end]).into_owned(),
                        )
                    })
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn builders_are_sized_by_the_last_chunk() {
        let last = LastChunk::default();
        assert_eq!(last.sizes(100), (100, vec![]), "a row a record at first");
        assert_eq!(last.sizes(0), (1, vec![]));
        // 100 records gave 400 rows.
        last.note(100, 400, vec![14_400, 0, 1_200]);
        assert_eq!(last.sizes(250), (1000, vec![36_000, 0, 3_000]));
        last.note(1, 10, vec![usize::MAX, 5]);
        assert_eq!(
            last.sizes(2),
            (20, vec![usize::MAX / 10, 10]),
            "no overflow"
        );
    }

    #[tokio::test]
    async fn lines_keep_their_numbers_across_chunks_and_blank_lines_are_skipped() {
        let text = b"{\"a\":1}\r\n\n  \r\n{\"a\":2}\n{\"a\":3}\n\n{\"a\":4}";
        let got = chunks(text, FileFormat::Ndjson, 2).await;
        let want: Vec<Vec<(u64, String)>> = vec![
            vec![(1, "{\"a\":1}".into()), (4, "{\"a\":2}".into())],
            vec![(5, "{\"a\":3}".into()), (7, "{\"a\":4}".into())],
        ];
        assert_eq!(got, want);
        assert!(chunks(b"\n \n", FileFormat::Ndjson, 8).await.is_empty());
    }

    #[tokio::test]
    async fn a_chunk_ends_near_its_byte_budget() {
        let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1000));
        let n = 2 * CHUNK_BYTES / line.len() + 10;
        let text = line.repeat(n);
        let got = chunks(text.as_bytes(), FileFormat::Ndjson, usize::MAX).await;
        assert!(got.len() >= 3, "{} chunks", got.len());
        assert_eq!(got.iter().map(Vec::len).sum::<usize>(), n);
        let numbers: Vec<u64> = got.iter().flatten().map(|(no, _)| *no).collect();
        assert_eq!(numbers, (1..=n as u64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_oversized_line_is_cut_and_flagged_and_the_next_line_is_whole() {
        let mut text = vec![b'x'; MAX_RECORD_BYTES + 10];
        text.extend_from_slice(b"\n{\"a\":2}\n");
        let mut r = ChunkReader::new(&text[..], FileFormat::Ndjson, 100);
        // The cut record fills its chunk's byte budget: the next record starts another.
        let c = r.next().await.expect("read").expect("a chunk");
        assert_eq!(c.lines.len(), 1);
        let big = &c.lines[0];
        assert!(big.oversized);
        assert_eq!((big.no, big.end - big.start), (1, MAX_RECORD_BYTES));
        assert_eq!(big.consumed, MAX_RECORD_BYTES + 11);
        let c = r.next().await.expect("read").expect("a second chunk");
        let next = &c.lines[0];
        assert!(!next.oversized);
        assert_eq!(next.no, 2);
        assert_eq!(&c.text[next.start..next.end], b"{\"a\":2}");
        assert!(r.next().await.expect("read").is_none());
    }

    #[tokio::test]
    async fn a_json_document_is_one_record() {
        let got = chunks(
            b"[\n{\"a\":1},\n{\"a\":2}\n]\n",
            FileFormat::JsonDocument,
            1,
        )
        .await;
        assert_eq!(
            got,
            vec![vec![(1, "[\n{\"a\":1},\n{\"a\":2}\n]".to_string())]]
        );
    }
}
