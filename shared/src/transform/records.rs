//! How one landing record becomes rows, as a pipeline spec declares it: each column reads a field
//! path of the record (or of an item of the explode array), typed by the column's type.
//!
//! A field that cannot be read as its column's type rejects the record (a column of the record)
//! or only its item (a column of the explode array's item: the siblings are kept). Fields no
//! column reads are reported as unknown.

use super::tables::{parse_timestamp, Cell, Json, JsonMap};
use crate::pipeline::{parse_path, ColumnType, PathStep, TableSpec, ValueFormat, ValueFrom};

/// One step into a JSON value.
#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone)]
enum Source {
    /// A field path from the record (or from the item, for item columns).
    Path(Vec<Step>),
    /// The position of the item in the explode array.
    ItemIndex,
}

#[derive(Debug, Clone)]
struct Column {
    /// How errors name the value: the path, and the column when it differs.
    label: String,
    source: Source,
    ty: ColumnType,
    format: Option<ValueFormat>,
    range: Option<[f64; 2]>,
    /// Read from the explode array's item.
    item: bool,
    /// A short array on the path gives null.
    optional: bool,
}

/// A table's record shape, compiled from its spec.
#[derive(Debug, Clone)]
pub struct RecordShape {
    columns: Vec<Column>,
    explode: Option<Vec<Step>>,
    explode_label: String,
    /// `<explode>[].`, how unknown item fields are reported.
    item_prefix: String,
    /// Top-level fields some column (or the explode path) reads.
    known: Vec<String>,
    /// Item fields some item column reads.
    known_item: Vec<String>,
}

impl RecordShape {
    /// Compiles a validated table spec. Errors name the column.
    pub fn compile(table: &str, spec: &TableSpec) -> Result<RecordShape, String> {
        let steps = |p: &str| -> Result<Vec<PathStep>, String> {
            parse_path(p).map_err(|e| format!("table {table}: {e}"))
        };
        let plain = |s: &[PathStep]| -> Vec<Step> {
            s.iter()
                .filter_map(|s| match s {
                    PathStep::Field(f) => Some(Step::Field(f.clone())),
                    PathStep::Index(i) => Some(Step::Index(*i)),
                    PathStep::Each => None,
                })
                .collect()
        };
        let explode = match &spec.explode {
            Some(p) => Some(plain(&steps(p)?)),
            None => None,
        };
        let mut columns = Vec::new();
        let (mut known, mut known_item) = (Vec::<String>::new(), Vec::<String>::new());
        let note = |list: &mut Vec<String>, s: &[Step]| {
            if let Some(Step::Field(f)) = s.first() {
                if !list.contains(f) {
                    list.push(f.clone());
                }
            }
        };
        if let Some(e) = &explode {
            note(&mut known, e);
        }
        for c in &spec.columns {
            let c = c.get_ref();
            let ty: ColumnType =
                c.ty.parse()
                    .map_err(|e| format!("table {table}: column {}: {e}", c.name))?;
            let (source, item, label) = match (c.from, &c.path) {
                (Some(ValueFrom::ItemIndex), _) => (Source::ItemIndex, true, c.name.clone()),
                (None, path) => {
                    let text = path.clone().unwrap_or_else(|| c.name.clone());
                    let s = steps(&text)?;
                    match s.iter().position(|x| *x == PathStep::Each) {
                        Some(each) => {
                            let rest = plain(&s[each + 1..]);
                            note(&mut known_item, &rest);
                            let inner = text
                                .split_once("[].")
                                .map_or(text.clone(), |(_, r)| r.to_string());
                            (Source::Path(rest), true, labelled(&inner, &c.name))
                        }
                        None => {
                            let p = plain(&s);
                            note(&mut known, &p);
                            (Source::Path(p), false, labelled(&text, &c.name))
                        }
                    }
                }
            };
            columns.push(Column {
                label,
                source,
                ty,
                format: c.format,
                range: c.range,
                item,
                optional: c.optional,
            });
        }
        Ok(RecordShape {
            columns,
            explode,
            explode_label: spec.explode.clone().unwrap_or_default(),
            item_prefix: format!("{}[].", spec.explode.as_deref().unwrap_or_default()),
            known,
            known_item,
        })
    }

    /// Appends the rows of one landing record to `out`. The error is the quarantine reason of
    /// the whole record; a bad item of the explode array is pushed to `rejected_items` (its
    /// index and reason) and its siblings are kept.
    pub fn parse<'a>(
        &self,
        record: &'a Json<'_>,
        out: &mut Vec<Vec<Cell<'a>>>,
        unknown: &mut Vec<String>,
        rejected_items: &mut Vec<(i32, String)>,
    ) -> Result<(), String> {
        let obj = record.as_object().ok_or("record is not a JSON object")?;
        note_unknown(obj, &self.known, "", unknown);
        let mut row: Vec<Cell<'a>> = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            row.push(match (&c.source, c.item) {
                (Source::Path(p), false) => c.read(obj, p)?,
                _ => Cell::Null,
            });
        }
        let Some(explode) = &self.explode else {
            out.push(row);
            return Ok(());
        };
        let name = &self.explode_label;
        let items = match walk(obj, explode, false)? {
            Some(Json::Array(items)) => items,
            None | Some(Json::Null) => return Err(format!("{name} is missing")),
            Some(other) => return Err(format!("{name}: expected an array, found {}", kind(other))),
        };
        if items.is_empty() {
            return Err(format!("{name} is empty: the record has no item to record"));
        }
        for (i, item) in items.iter().enumerate() {
            let Some(it) = item.as_object() else {
                rejected_items.push((
                    i as i32,
                    format!("{name}[{i}]: expected an object, found {}", kind(item)),
                ));
                continue;
            };
            note_unknown(it, &self.known_item, &self.item_prefix, unknown);
            let mut r = row.clone();
            let filled = self
                .columns
                .iter()
                .zip(r.iter_mut())
                .try_for_each(|(c, cell)| {
                    match (&c.source, c.item) {
                        (Source::ItemIndex, _) => *cell = Cell::I32(i as i32),
                        (Source::Path(p), true) => *cell = c.read(it, p)?,
                        _ => {}
                    }
                    Ok::<_, String>(())
                });
            match filled {
                Ok(()) => out.push(r),
                Err(e) => rejected_items.push((i as i32, format!("{name}[{i}].{e}"))),
            }
        }
        Ok(())
    }
}

fn labelled(path: &str, column: &str) -> String {
    if path == column {
        path.to_string()
    } else {
        format!("{path} ({column})")
    }
}

/// The value at `path`, `None` when a field on the way is missing or null. A wrong shape on the
/// way is an error naming the value that had it (`a.b: expected an object, found a string`).
fn walk<'j, 'a>(
    obj: &'j JsonMap<'a>,
    path: &[Step],
    optional: bool,
) -> Result<Option<&'j Json<'a>>, String> {
    let mut cur: Option<&Json<'a>> = None;
    for (n, step) in path.iter().enumerate() {
        let wrong = |what: String| Err(format!("{}: {what}", render(&path[..n])));
        cur = match (step, cur) {
            (Step::Field(f), None) if n == 0 => obj.get(f),
            (Step::Field(f), Some(Json::Object(m))) => m.get(f),
            (Step::Index(i), Some(Json::Array(a))) => match a.get(*i) {
                Some(v) => Some(v),
                None if optional => return Ok(None),
                None => {
                    return wrong(format!(
                        "expected at least {} items, found {}",
                        i + 1,
                        a.len()
                    ))
                }
            },
            (_, None | Some(Json::Null)) => return Ok(None),
            (Step::Field(_), Some(other)) => {
                return wrong(format!("expected an object, found {}", kind(other)))
            }
            (Step::Index(_), Some(other)) => {
                return wrong(format!("expected an array, found {}", kind(other)))
            }
        };
    }
    Ok(cur)
}

/// `a.b[0].c`.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Field(f) if out.is_empty() => out.push_str(f),
            Step::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl Column {
    fn check_range(&self, x: f64) -> Result<(), String> {
        match self.range {
            Some([lo, hi]) if !(lo..=hi).contains(&x) => {
                Err(format!("{}: {x} is out of range", self.label))
            }
            _ => Ok(()),
        }
    }

    fn read<'a>(&self, obj: &'a JsonMap<'_>, path: &[Step]) -> Result<Cell<'a>, String> {
        let name = &self.label;
        let value = walk(obj, path, self.optional)?;
        let found = |v: &Json<'_>| kind(v);
        let cell = match (self.ty, value) {
            (_, None | Some(Json::Null)) => Cell::Null,
            (ColumnType::String, Some(Json::String(s))) => Cell::Str(s),
            (ColumnType::String, Some(v)) => {
                return Err(format!("{name}: expected a string, found {}", found(v)))
            }
            (ColumnType::Boolean, Some(Json::Bool(b))) => Cell::Bool(*b),
            (ColumnType::Boolean, Some(v)) => {
                return Err(format!("{name}: expected a boolean, found {}", found(v)))
            }
            (ColumnType::Timestamp, Some(v)) => match (self.format, v) {
                (Some(ValueFormat::EpochMillis), Json::Number(n)) => n
                    .as_i64()
                    .and_then(|ms| ms.checked_mul(1000))
                    .map(Cell::Ts)
                    .ok_or_else(|| format!("{name}: {n} is not epoch milliseconds"))?,
                (Some(ValueFormat::EpochMillis), v) => {
                    return Err(format!(
                        "{name}: expected epoch milliseconds, found {}",
                        found(v)
                    ))
                }
                (_, Json::String(s)) => parse_timestamp(s)
                    .map(Cell::Ts)
                    .ok_or_else(|| format!("{name}: {s:?} is not an ISO 8601 timestamp"))?,
                (_, v) => {
                    return Err(format!(
                        "{name}: expected a timestamp string, found {}",
                        found(v)
                    ))
                }
            },
            (ColumnType::Int, Some(Json::Number(n))) => {
                let v = n
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| format!("{name}: {n} is not a 32-bit integer"))?;
                self.check_range(f64::from(v))?;
                Cell::I32(v)
            }
            (ColumnType::Int, Some(v)) => {
                return Err(format!("{name}: expected an integer, found {}", found(v)))
            }
            (ColumnType::Float | ColumnType::Double, Some(v)) => {
                let x = match (v, self.format) {
                    (Json::Number(n), _) => n
                        .as_f64()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("{name}: {n} is not a finite number"))?,
                    (Json::String(s), Some(ValueFormat::NumberText)) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("{name}: {s:?} is not a number"))?,
                    (v, _) => return Err(format!("{name}: expected a number, found {}", found(v))),
                };
                self.check_range(x)?;
                if self.ty == ColumnType::Float {
                    Cell::F32(x as f32)
                } else {
                    Cell::F64(x)
                }
            }
            (ColumnType::Long, Some(Json::Number(n))) => {
                let v = n
                    .as_i64()
                    .ok_or_else(|| format!("{name}: {n} is not a 64-bit integer"))?;
                self.check_range(v as f64)?;
                Cell::I64(v)
            }
            (ColumnType::Long, Some(v)) => {
                return Err(format!("{name}: expected an integer, found {}", found(v)))
            }
            (ColumnType::Date, Some(Json::String(s))) => {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .map(|d| d.to_epoch_days())
                    .map(Cell::Date)
                    .ok_or_else(|| format!("{name}: {s:?} is not a date (YYYY-MM-DD)"))?
            }
            (ColumnType::Date, Some(v)) => {
                return Err(format!(
                    "{name}: expected a date string, found {}",
                    found(v)
                ))
            }
            (ColumnType::Decimal { precision, scale }, Some(v)) => {
                let text = match (v, self.format) {
                    (Json::Number(n), _) => n.to_string(),
                    // Exact digits in a string (how SQL extracts land DECIMAL) need no format.
                    (Json::String(s), _) => s.trim().to_string(),
                    (v, _) => return Err(format!("{name}: expected a number, found {}", found(v))),
                };
                let unscaled =
                    decimal(&text, precision, scale).map_err(|e| format!("{name}: {text}: {e}"))?;
                self.check_range(unscaled as f64 / 10f64.powi(scale as i32))?;
                Cell::Decimal(unscaled)
            }
        };
        Ok(cell)
    }
}

/// The unscaled value of decimal text (`-12.5`, `1e3`, `0.000125E+2`) in `decimal(precision,
/// scale)`: exact, so digits beyond the scale or the precision are an error, not a rounding.
fn decimal(text: &str, precision: u32, scale: u32) -> Result<i128, String> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (
            &text[..i],
            text[i + 1..]
                .parse::<i32>()
                .map_err(|_| "not a decimal number".to_string())?,
        ),
        None => (text, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err("not a decimal number".into());
    }
    // All digits, and where the point falls after applying the exponent.
    let all: String = format!("{int}{frac}");
    let point = int.len() as i64 + i64::from(exp);
    let frac_digits = all.len() as i64 - point;
    let shift = i64::from(scale) - frac_digits;
    let (kept, dropped) = if shift >= 0 {
        (format!("{all}{}", "0".repeat(shift as usize)), "")
    } else {
        let cut = all.len() - ((-shift) as usize).min(all.len());
        (all[..cut].to_string(), &all[cut..])
    };
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!("more than {scale} decimal places"));
    }
    let kept = kept.trim_start_matches('0');
    if kept.len() > precision as usize {
        return Err(format!("more than {precision} digits"));
    }
    let v: i128 = if kept.is_empty() {
        0
    } else {
        kept.parse()
            .map_err(|_| "not a decimal number".to_string())?
    };
    Ok(if neg { -v } else { v })
}

fn note_unknown(obj: &JsonMap<'_>, known: &[String], prefix: &str, unknown: &mut Vec<String>) {
    for k in obj.keys() {
        if !known.iter().any(|n| n == k) {
            unknown.push(format!("{prefix}{k}"));
        }
    }
}

fn kind(v: &Json<'_>) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineSpec;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal("12.5", 5, 2), Ok(1250));
        assert_eq!(decimal("-0.07", 5, 2), Ok(-7));
        assert_eq!(decimal("1e3", 6, 2), Ok(100_000));
        assert_eq!(decimal("1.250", 5, 2), Ok(125));
        assert_eq!(decimal("0.000125E+2", 5, 4), Ok(125));
        assert!(decimal("1.255", 5, 2)
            .unwrap_err()
            .contains("2 decimal places"));
        assert!(decimal("12345.6", 5, 2).unwrap_err().contains("5 digits"));
        for bad in ["", ".", "1.2.3", "abc", "1e", "--1"] {
            assert!(decimal(bad, 5, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_types_long_date_decimal_and_epoch_millis() {
        let text = r#"
name = "t"
namespace = "t"
[sources.events]
kind = "files"
landing = "events"
format = "ndjson"
source_from = "events"
[tables.events]
source = "events"
key = ["id"]
partition = { column = "ts", transform = "day" }
columns = [
  { name = "id", type = "long" },
  { name = "ts", type = "timestamp", format = "epoch_millis" },
  { name = "day", type = "date", path = "meta.day" },
  { name = "amount", type = "decimal(9,2)", format = "number_text" },
  { name = "score", type = "int", range = [0.0, 10.0] },
]
"#;
        let spec = PipelineSpec::parse(Path::new("t.toml"), text).unwrap();
        let shape = RecordShape::compile("events", spec.table("events").unwrap()).unwrap();
        let parse = |v: serde_json::Value| {
            let text: &'static str = Box::leak(v.to_string().into_boxed_str());
            let record: &'static Json<'static> =
                Box::leak(Box::new(serde_json::from_str(text).unwrap()));
            let (mut out, mut unknown, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
            shape
                .parse(record, &mut out, &mut unknown, &mut rejected)
                .map(|_| out.remove(0))
        };
        let row = parse(json!({"id": 5_000_000_000i64, "ts": 1541903636796i64,
            "meta": {"day": "2018-11-11"}, "amount": "12.30", "score": 7}))
        .unwrap();
        assert_eq!(
            row,
            vec![
                Cell::I64(5_000_000_000),
                Cell::Ts(1_541_903_636_796_000),
                Cell::Date(17_846),
                Cell::Decimal(1230),
                Cell::I32(7)
            ]
        );
        for (v, needle) in [
            (
                json!({"ts": "2018-11-11"}),
                "ts: expected epoch milliseconds",
            ),
            (
                json!({"meta": {"day": "11/11/2018"}}),
                "meta.day (day): \"11/11/2018\" is not a date",
            ),
            (
                json!({"meta": "x"}),
                "meta: expected an object, found a string",
            ),
            (
                json!({"amount": "1.234"}),
                "amount: 1.234: more than 2 decimal places",
            ),
            (json!({"score": 11}), "score: 11 is out of range"),
            (json!({"id": 1.5}), "id: 1.5 is not a 64-bit integer"),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    /// Parses the record as the transform does (from its JSON text); leaked: tests only.
    fn rows(
        table: &str,
        v: &serde_json::Value,
    ) -> std::result::Result<(Vec<Vec<Cell<'static>>>, Vec<String>), String> {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        let record: &'static Json<'static> =
            Box::leak(Box::new(serde_json::from_str(text).unwrap()));
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        let mut rejected = Vec::new();
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        tables
            .get(table)
            .unwrap()
            .shape()
            .parse(record, &mut out, &mut unknown, &mut rejected)?;
        if let Some((_, reason)) = rejected.into_iter().next() {
            return Err(reason);
        }
        Ok((out, unknown))
    }

    #[test]
    fn users_are_flattened_and_typed() {
        let v = json!({"user_id": "a3141825-3a8c-4968-a3af-5362011ef7d5", "user_name": "Elizabeth", "user_lastname": "Carey",
            "user_location": ["46.32313", "-0.45877", "Niort", "FR", "Europe/Paris"], "user_since": "2020-12-22T14:15:35.936090"});
        let (r, unknown) = rows("users", &v).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0][3], Cell::F64(46.32313));
        assert_eq!(r[0][4], Cell::F64(-0.45877));
        assert_eq!(r[0][5], Cell::Str("Niort"));
        assert_eq!(r[0][7], Cell::Str("Europe/Paris"));
        assert_eq!(r[0][8], Cell::Ts(1_608_646_535_936_090));
        assert_eq!(r[0].len(), 9);
    }

    #[test]
    fn sessions_explode_one_row_per_item() {
        let v = json!({"user_id": "u", "session_id": "s", "user_agent": "ua", "session_start_time": "2020-02-07T18:05:25.824461",
            "session_items": [
                {"song_id": "TRXKAGX128F9342DD7", "song_name": "3 Cards", "artist_id": "AR475MP1187B9A5449", "artist_name": "B",
                 "price": 1.03, "currency": "USD", "liked": true, "liked_since": "2023-01-27T08:29:54.970697"},
                {"song_id": "TRCPHWV128F4228647", "song_name": "L", "artist_id": "ARRLMTZ1187B9AB6DD", "artist_name": "C",
                 "price": 0.69, "currency": "USD", "liked": false, "liked_since": null, "promo": "x"}],
            "device": "phone"});
        let (r, unknown) = rows("sessions", &v).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1][2], Cell::I32(1));
        assert_eq!(r[1][7], Cell::F64(0.69));
        assert_eq!(r[1][9], Cell::Bool(false));
        assert_eq!(r[1][10], Cell::Null);
        assert_eq!(r[0][12], r[1][12]);
        assert_eq!(unknown, ["device", "session_items[].promo"]);
    }

    #[test]
    fn songs_keep_their_types() {
        let v = json!({"track_id": "TRMBFJC12903CE2A89", "title": "Mystery Babylon", "song_id": "SOGOPFY12AB018E5B1",
            "release": "Healing of All Nations", "artist_id": "ARP06GY1187B98B0F0", "artist_mbid": "106e0414-95a7-45e9-8176-bbc938deed68",
            "artist_name": "Yami Bolo", "duration": 146.49425, "artist_familiarity": 0.4955022, "artist_hotttnesss": 0.3224826,
            "year": 2001, "track_7digitalid": 8562838, "shs_perf": -1, "shs_work": 0});
        let (r, _) = rows("songs", &v).unwrap();
        assert_eq!(r[0][7], Cell::F32(146.49425));
        assert_eq!(r[0][10], Cell::I32(2001));
        assert_eq!(r[0][12], Cell::I32(-1));
    }

    #[test]
    fn wrong_shapes_give_reasons_naming_the_field() {
        let cases = [
            ("users", json!({"user_id": 5}), "user_id: expected a string"),
            (
                "users",
                json!({"user_location": ["1", "2"]}),
                "user_location",
            ),
            (
                "users",
                json!({"user_location": ["abc", "2", "p", "FR", "tz"]}),
                "latitude",
            ),
            ("users", json!({"user_since": "yesterday"}), "user_since"),
            (
                "sessions",
                json!({"session_items": "none"}),
                "session_items: expected an array",
            ),
            ("sessions", json!({"session_items": []}), "empty"),
            (
                "sessions",
                json!({"user_id": "u"}),
                "session_items is missing",
            ),
            (
                "sessions",
                json!({"session_items": [{"price": "1.00"}]}),
                "session_items[0].price",
            ),
            ("songs", json!({"year": 2001.5}), "year"),
            ("songs", json!({"duration": "long"}), "duration"),
            ("songs", json!([1, 2]), "not a JSON object"),
        ];
        for (kind, v, needle) in cases {
            let e = rows(kind, &v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
