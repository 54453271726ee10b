//! The three transform-zone tables and their Iceberg schemas, the typed cells of a row, and the
//! parsed landing record (how a record becomes rows is the pipeline spec's: `records.rs`).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type, UnboundPartitionSpec};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::quality::{CompiledRules, RuleSet};
use super::records::RecordShape;
use crate::error::{Error, Result};
use crate::extract::LandingKey;
use crate::pipeline::{FileFormat, PartitionTransform, Pipeline, SourceSpec, ValueFrom};

pub use crate::pipeline::ColumnType;

/// A typed value of one row, borrowing strings from the parsed record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(&'a str),
    F64(f64),
    F32(f32),
    I32(i32),
    Bool(bool),
    /// Microseconds since the epoch, UTC, no zone.
    Ts(i64),
    I64(i64),
    /// Days since the epoch.
    Date(i32),
    /// The unscaled value of a `decimal(p,s)` (its column gives the scale).
    Decimal(i128),
}

/// One parsed landing record: the shape of `serde_json::Value`, but strings without escapes
/// borrow from the line and objects keep their members in a small vector (records have a
/// handful of fields), so parsing a record allocates little. Duplicate keys: the last value
/// wins, in the first one's place (as `serde_json::Value` with `preserve_order`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(JsonMap<'a>),
}

/// The members of a JSON object, in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonMap<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> JsonMap<'a> {
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    fn insert(&mut self, key: Cow<'a, str>, value: Json<'a>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }
}

impl<'a> Json<'a> {
    pub fn as_object(&self) -> Option<&JsonMap<'a>> {
        match self {
            Json::Object(m) => Some(m),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor(std::marker::PhantomData))
    }
}

pub(crate) struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl JsonVisitor<'_> {
    pub(crate) fn new() -> Self {
        JsonVisitor(std::marker::PhantomData)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Json<'a>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Json<'a>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Json<'a>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Json<'a>, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Json<'a>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> std::result::Result<Json<'a>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Json<'a>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Json<'a>, D::Error> {
        Json::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json<'a>, A::Error> {
        let mut obj = JsonMap(Vec::with_capacity(map.size_hint().unwrap_or(8).min(64)));
        while let Some(JsonKey(k)) = map.next_key()? {
            let v = map.next_value()?;
            obj.insert(k, v);
        }
        Ok(Json::Object(obj))
    }
}

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct JsonKey<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonKey<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = JsonKey<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<JsonKey<'a>, E> {
                Ok(JsonKey(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<JsonKey<'a>, E> {
                Ok(JsonKey(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<JsonKey<'a>, E> {
                Ok(JsonKey(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

/// The content hash of a row's source record (see [`record_hash`]), between the data and the
/// metadata columns: with the natural key it is the row's identity.
pub const RECORD_HASH_COLUMN: &str = "record_hash";

/// Columns every table ends with, constant per landing object.
pub const METADATA_COLUMNS: [(&str, PrimitiveType); 4] = [
    ("ingest_on", PrimitiveType::Date),
    ("processing_timestamp", PrimitiveType::Timestamp),
    ("source_from", PrimitiveType::String),
    ("source_object", PrimitiveType::String),
];

/// The Iceberg schema of a table: its data columns (optional, as quality rules and not the writer
/// decide what is required, but for the natural key: required, and the schema's identifier
/// fields), then `record_hash` and the metadata columns (required).
pub fn table_schema<'n>(
    table: &str,
    data_columns: impl Iterator<Item = (&'n str, PrimitiveType)>,
    key: &[&str],
) -> Result<Schema> {
    let mut fields = Vec::new();
    let mut key_ids = Vec::new();
    let mut id = 1;
    for (name, t) in data_columns {
        let ty = Type::Primitive(t);
        fields.push(Arc::new(if key.contains(&name) {
            key_ids.push(id);
            NestedField::required(id, name, ty)
        } else {
            NestedField::optional(id, name, ty)
        }));
        id += 1;
    }
    for (name, t) in
        std::iter::once((RECORD_HASH_COLUMN, PrimitiveType::String)).chain(METADATA_COLUMNS)
    {
        fields.push(Arc::new(NestedField::required(
            id,
            name,
            Type::Primitive(t),
        )));
        id += 1;
    }
    Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(key_ids)
        .build()
        .map_err(|e| Error::Catalog(format!("schema of {table}: {e}")))
}

/// A transform-zone table as its pipeline spec declares it, compiled once at start: its columns,
/// key, partitioning, record shape and quality rules, and the source it is built from. Cheap to
/// clone; equal, ordered and hashed by name (a pipeline's tables have distinct names).
#[derive(Clone)]
pub struct TableDef(Arc<TableInner>);

struct TableInner {
    name: String,
    /// The source's landing folder (`api/users`, `song_data`).
    landing: String,
    source_from: String,
    format: FileFormat,
    columns: Vec<(String, ColumnType)>,
    key: Vec<String>,
    key_positions: Vec<usize>,
    identity_scope: Option<String>,
    item_index: Option<usize>,
    schema: Schema,
    partition_spec: UnboundPartitionSpec,
    shape: RecordShape,
    rules: CompiledRules,
}

impl std::fmt::Debug for TableDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableDef({})", self.name())
    }
}

impl PartialEq for TableDef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}
impl Eq for TableDef {}
impl std::hash::Hash for TableDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}
impl PartialOrd for TableDef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TableDef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl Serialize for TableDef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl TableDef {
    /// Compiles table `name` of a loaded pipeline (its spec is validated: errors here are the
    /// spec's, named by table).
    pub fn compile(pipeline: &Pipeline, name: &str) -> Result<TableDef> {
        let cfg = |m: String| {
            Error::Configuration(format!(
                "pipeline {}: table {name}: {m}",
                pipeline.spec.name
            ))
        };
        let spec = pipeline
            .table(name)
            .ok_or_else(|| cfg("not declared".into()))?;
        let source = pipeline
            .spec
            .sources
            .get(&spec.source)
            .map(|s| s.get_ref())
            .ok_or_else(|| cfg(format!("unknown source {}", spec.source)))?;
        let format = match source {
            SourceSpec::Files { format, .. } => *format,
            // Our extractors land NDJSON parts.
            SourceSpec::Rest { .. } | SourceSpec::Sql { .. } => FileFormat::Ndjson,
        };
        let columns = spec.data_columns();
        let position = |c: &str| columns.iter().position(|(n, _)| n == c);
        let key_positions = spec
            .key
            .iter()
            .map(|k| position(k).ok_or_else(|| cfg(format!("no key column {k}"))))
            .collect::<Result<Vec<_>>>()?;
        let identity_scope = (spec.partition.transform == PartitionTransform::Day
            && position(&spec.partition.column)
                .is_some_and(|p| columns[p].1 == ColumnType::Timestamp))
        .then(|| spec.partition.column.clone());
        let item_index = spec
            .columns
            .iter()
            .position(|c| c.get_ref().from == Some(ValueFrom::ItemIndex));
        let shape = RecordShape::compile(name, spec).map_err(cfg)?;
        let empty = RuleSet {
            table: name.to_string(),
            description: String::new(),
            record_rules: vec![],
            dataset_rules: vec![],
        };
        let rules = pipeline
            .rules
            .get(name)
            .unwrap_or(&empty)
            .compile(name, &columns)?;
        Ok(TableDef(Arc::new(TableInner {
            name: name.to_string(),
            landing: source.landing().to_string(),
            source_from: source.source_from().to_string(),
            format,
            schema: spec.iceberg_schema(name)?,
            partition_spec: spec.partition_spec(name)?,
            key: spec.key.clone(),
            columns,
            key_positions,
            identity_scope,
            item_index,
            shape,
            rules,
        })))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The landing folder of the table's source (`landing_zone/<folder>/...`).
    pub fn landing(&self) -> &str {
        &self.0.landing
    }

    /// The `source_from` column value.
    pub fn source_from(&self) -> &str {
        &self.0.source_from
    }

    /// How its landing objects hold records.
    pub fn format(&self) -> FileFormat {
        self.0.format
    }

    pub fn data_columns(&self) -> &[(String, ColumnType)] {
        &self.0.columns
    }

    /// The natural key: a row's identity is its key and its [`record_hash`]. Recorded as the
    /// schema's identifier fields.
    pub fn key_columns(&self) -> &[String] {
        &self.0.key
    }

    /// The timestamp column whose day bounds the identity check of an object (the rows it is
    /// compared with are those of the same days): the column of a `day` partition. `None` for
    /// tables partitioned otherwise (dimension-sized: their whole identity index is kept in
    /// memory).
    pub fn identity_scope(&self) -> Option<&str> {
        self.0.identity_scope.as_deref()
    }

    /// The column of a row holding the index of the array item it was exploded from: a bad item
    /// is quarantined alone and its siblings are kept.
    pub fn item_index_column(&self) -> Option<usize> {
        self.0.item_index
    }

    /// Positions of the key columns in a row of data cells.
    pub fn key_positions(&self) -> &[usize] {
        &self.0.key_positions
    }

    pub fn schema(&self) -> &Schema {
        &self.0.schema
    }

    /// The spec's partitioning. A table partitioned by the day of an event timestamp has its
    /// identity check read only the days an object touches: the manifest list's partition bounds
    /// alone tell which manifests hold them, however many snapshots the table has.
    pub fn partition_spec(&self) -> &UnboundPartitionSpec {
        &self.0.partition_spec
    }

    pub fn shape(&self) -> &RecordShape {
        &self.0.shape
    }

    pub fn rules(&self) -> &CompiledRules {
        &self.0.rules
    }
}

/// The tables of one pipeline, and where their landing objects are.
#[derive(Debug, Clone)]
pub struct Tables {
    pipeline: String,
    namespace: String,
    landing_prefix: String,
    tables: Vec<TableDef>,
}

impl Tables {
    pub fn compile(pipeline: &Pipeline) -> Result<Tables> {
        Ok(Tables {
            pipeline: pipeline.spec.name.clone(),
            namespace: pipeline.spec.namespace.clone(),
            landing_prefix: pipeline.spec.landing.prefix.clone(),
            tables: pipeline
                .spec
                .tables
                .keys()
                .map(|name| TableDef::compile(pipeline, name))
                .collect::<Result<_>>()?,
        })
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The spec's Iceberg namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn iter(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.iter()
    }

    pub fn get(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name() == name)
    }

    /// Which table a landing key feeds, and the `ingest_on` date its key carries (`None` for
    /// objects landed by others without one: their landing day is the object's).
    pub fn locate(&self, key: &str) -> Result<(&TableDef, Option<NaiveDate>)> {
        let k = LandingKey::parse(
            &self.landing_prefix,
            self.tables.iter().map(TableDef::landing),
            key,
        )?;
        let table = self
            .tables
            .iter()
            .find(|t| t.landing() == k.source)
            .ok_or_else(|| Error::InvalidInput(format!("{key}: no table of {}", k.source)))?;
        Ok((table, k.ingest_on))
    }
}

/// ISO 8601 timestamps as the API sends them (no zone, microseconds), or with a zone (converted to UTC).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Some(t) = parse_api_timestamp(s) {
        return Some(t);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map(|t| t.and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()))
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Fast path for the API's own shape, `YYYY-MM-DDTHH:MM:SS` (or a space for `T`) with an optional
/// fraction of 1 to 9 digits; `None` sends anything else (and leap seconds) to chrono.
fn parse_api_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match b.len() {
        19 => 0,
        n if (21..=29).contains(&n) && b[19] == b'.' => num(20..n)? * 10u32.pow((29 - n) as u32),
        _ => return None,
    };
    let second = num(17..19)?;
    if second >= 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, second, nanos)?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// The tables of a pipeline of this repository's `pipelines/` folder, for tests.
#[doc(hidden)]
pub fn repo_tables(pipeline: &str) -> Result<Tables> {
    Tables::compile(&crate::pipeline::repo_pipeline(pipeline)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::Transform;

    #[test]
    fn keys_locate_tables_and_partitions() {
        let tables = repo_tables("deftunes").unwrap();
        let (k, d) = tables.locate("landing_zone/api/sessions/ingest_on=2020-01-01/sessions_2020-01-01_2020-01-31.part-00000.jsonl").unwrap();
        assert_eq!(
            (k.name(), d.unwrap().to_string().as_str()),
            ("sessions", "2020-01-01")
        );
        let (k, d) = tables
            .locate("landing_zone/rds/songs/ingest_on=2020_02_01/x.jsonl")
            .unwrap();
        assert_eq!(
            (k.name(), d.unwrap().to_string().as_str()),
            ("songs", "2020-02-01")
        );
        for bad in [
            "landing_zone/api/other/ingest_on=2020-01-01/x",
            "landing_zone/api/users/ingest_on=2020-13-01/x",
            "landing_zone/song_data/A/B/C/x.json",
        ] {
            assert_eq!(
                tables.locate(bad).unwrap_err().error_type(),
                "InvalidInput",
                "{bad}"
            );
        }
        let sparkify = repo_tables("sparkify").unwrap();
        let (k, d) = sparkify
            .locate("landing_zone/song_data/A/B/C/TRABCEI128F424C983.json")
            .unwrap();
        assert_eq!((k.name(), d), ("staging_songs", None));
        assert_eq!(k.format(), FileFormat::JsonDocument);
    }

    #[test]
    fn schemas_end_with_metadata_and_partition_by_identity_scope_or_ingest_on() {
        let (deftunes, sparkify) = (
            repo_tables("deftunes").unwrap(),
            repo_tables("sparkify").unwrap(),
        );
        for t in deftunes.iter().chain(sparkify.iter()) {
            let s = t.schema();
            assert_eq!(s.as_struct().fields().len(), t.data_columns().len() + 5);
            assert_eq!(
                s.field_by_name("ingest_on").unwrap().id,
                t.data_columns().len() as i32 + 2
            );
            let mut ids: Vec<i32> = s.identifier_field_ids().collect();
            ids.sort();
            let names: Vec<&str> = ids
                .iter()
                .map(|id| s.field_by_id(*id).unwrap().name.as_str())
                .collect();
            assert_eq!(names, t.key_columns());
            assert!(ids.iter().all(|id| s.field_by_id(*id).unwrap().required));
            let spec = t.partition_spec().clone().bind(s.clone()).unwrap();
            let field = &spec.fields()[0];
            let source = s.field_by_id(field.source_id).unwrap().name.as_str();
            match t.identity_scope() {
                Some(scope) => {
                    assert_eq!((source, field.transform), (scope, Transform::Day));
                }
                None => assert_eq!(
                    (source, field.transform),
                    ("ingest_on", Transform::Identity)
                ),
            }
            assert_eq!(spec.fields().len(), 1);
        }
    }
}
