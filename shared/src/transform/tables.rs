//! The three transform-zone tables and their Iceberg schemas, the typed cells of a row, and the
//! parsed landing record (how a record becomes rows is the pipeline spec's: `records.rs`).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

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
struct JsonKey<'a>(Cow<'a, str>);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Users,
    Sessions,
    Songs,
}

const USERS: &[(&str, ColumnType)] = &[
    ("user_id", ColumnType::String),
    ("user_name", ColumnType::String),
    ("user_lastname", ColumnType::String),
    ("latitude", ColumnType::Double),
    ("longitude", ColumnType::Double),
    ("place_name", ColumnType::String),
    ("country_code", ColumnType::String),
    ("timezone", ColumnType::String),
    ("user_since", ColumnType::Timestamp),
];

const SESSIONS: &[(&str, ColumnType)] = &[
    ("user_id", ColumnType::String),
    ("session_id", ColumnType::String),
    ("item_index", ColumnType::Int),
    ("song_id", ColumnType::String),
    ("song_name", ColumnType::String),
    ("artist_id", ColumnType::String),
    ("artist_name", ColumnType::String),
    ("price", ColumnType::Double),
    ("currency", ColumnType::String),
    ("liked", ColumnType::Boolean),
    ("liked_since", ColumnType::Timestamp),
    ("user_agent", ColumnType::String),
    ("session_start_time", ColumnType::Timestamp),
];

const SONGS: &[(&str, ColumnType)] = &[
    ("track_id", ColumnType::String),
    ("title", ColumnType::String),
    ("song_id", ColumnType::String),
    ("release", ColumnType::String),
    ("artist_id", ColumnType::String),
    ("artist_mbid", ColumnType::String),
    ("artist_name", ColumnType::String),
    ("duration", ColumnType::Float),
    ("artist_familiarity", ColumnType::Float),
    ("artist_hotttnesss", ColumnType::Float),
    ("year", ColumnType::Int),
    ("track_7digitalid", ColumnType::Int),
    ("shs_perf", ColumnType::Int),
    ("shs_work", ColumnType::Int),
];

impl TableKind {
    pub const ALL: [TableKind; 3] = [TableKind::Users, TableKind::Sessions, TableKind::Songs];

    pub fn name(self) -> &'static str {
        match self {
            TableKind::Users => "users",
            TableKind::Sessions => "sessions",
            TableKind::Songs => "songs",
        }
    }

    /// The landing folder of the table's source (`landing_zone/<folder>/...`).
    pub fn landing(self) -> &'static str {
        match self {
            TableKind::Users => crate::extract::api::Endpoint::Users.source(),
            TableKind::Sessions => crate::extract::api::Endpoint::Sessions.source(),
            TableKind::Songs => crate::extract::songs::SOURCE,
        }
    }

    /// The `source_from` column value.
    pub fn source_from(self) -> &'static str {
        match self {
            TableKind::Users => "api_users",
            TableKind::Sessions => "api_sessions",
            TableKind::Songs => "postgres_rds",
        }
    }

    pub fn data_columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            TableKind::Users => USERS,
            TableKind::Sessions => SESSIONS,
            TableKind::Songs => SONGS,
        }
    }

    /// The natural key: a row's identity is its key and its [`record_hash`]. Recorded as the
    /// schema's identifier fields.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            TableKind::Users => &["user_id"],
            TableKind::Sessions => &["session_id", "item_index"],
            TableKind::Songs => &["track_id"],
        }
    }

    /// The timestamp column whose day bounds the identity check of an object (the rows it is
    /// compared with are those of the same days), or `None` for dimension-sized tables whose
    /// whole identity index is kept in memory.
    pub fn identity_scope(self) -> Option<&'static str> {
        match self {
            TableKind::Sessions => Some("session_start_time"),
            TableKind::Users | TableKind::Songs => None,
        }
    }

    /// The column of a row holding the index of the array item it was exploded from: a bad item
    /// is quarantined alone and its siblings are kept.
    pub fn item_index_column(self) -> Option<usize> {
        match self {
            TableKind::Sessions => Some(2),
            TableKind::Users | TableKind::Songs => None,
        }
    }

    /// Positions of the key columns in a row of data cells.
    pub fn key_positions(self) -> Vec<usize> {
        let cols = self.data_columns();
        self.key_columns()
            .iter()
            .filter_map(|k| cols.iter().position(|(n, _)| n == k))
            .collect()
    }

    pub fn schema(self) -> Result<Schema> {
        table_schema(
            self.name(),
            self.data_columns().iter().map(|(n, t)| (*n, t.iceberg())),
            self.key_columns(),
        )
    }

    /// Tables with an identity scope are partitioned by its day: the identity check of an object
    /// reads the days it touches, and the manifest list's partition bounds alone then tell which
    /// manifests hold them, however many snapshots the table has. The others by `ingest_on`.
    pub fn partition_spec(self) -> Result<UnboundPartitionSpec> {
        let err = |e: &dyn std::fmt::Display| {
            Error::Catalog(format!("partition spec of {}: {e}", self.name()))
        };
        let (source_id, name, transform) = match self.identity_scope() {
            Some(column) => {
                let position = self
                    .data_columns()
                    .iter()
                    .position(|(n, _)| *n == column)
                    .ok_or_else(|| err(&format!("no column {column}")))?;
                (position as i32 + 1, format!("{column}_day"), Transform::Day)
            }
            // Data columns, then record_hash, then ingest_on.
            None => (
                (self.data_columns().len() + 2) as i32,
                "ingest_on".to_string(),
                Transform::Identity,
            ),
        };
        UnboundPartitionSpec::builder()
            .add_partition_field(source_id, name, transform)
            .map_err(|e| err(&e))
            .map(|b| b.build())
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

/// Which table a landing key feeds, and its `ingest_on` partition.
pub fn locate(key: &str) -> Result<(TableKind, NaiveDate)> {
    let k = crate::extract::LandingKey::parse(key)?;
    let kind = TableKind::ALL
        .into_iter()
        .find(|t| t.landing() == k.source)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{key}: not a landing object of a known source (landing_zone/api/users, api/sessions, rds/songs)"
            ))
        })?;
    Ok((kind, k.ingest_on))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_locate_tables_and_partitions() {
        let (k, d) = locate("landing_zone/api/sessions/ingest_on=2020-01-01/sessions_2020-01-01_2020-01-31.part-00000.jsonl").unwrap();
        assert_eq!(
            (k, d.to_string().as_str()),
            (TableKind::Sessions, "2020-01-01")
        );
        let (k, d) = locate("landing_zone/rds/songs/ingest_on=2020_02_01/x.jsonl").unwrap();
        assert_eq!(
            (k, d.to_string().as_str()),
            (TableKind::Songs, "2020-02-01")
        );
        for bad in [
            "landing_zone/api/other/ingest_on=2020-01-01/x",
            "landing_zone/api/users/x.jsonl",
            "landing_zone/api/users/ingest_on=2020-13-01/x",
        ] {
            assert_eq!(
                locate(bad).unwrap_err().error_type(),
                "InvalidInput",
                "{bad}"
            );
        }
    }

    #[test]
    fn schemas_end_with_metadata_and_partition_by_identity_scope_or_ingest_on() {
        for t in TableKind::ALL {
            let s = t.schema().unwrap();
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
            let spec = t.partition_spec().unwrap().bind(s.clone()).unwrap();
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
