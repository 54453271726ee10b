//! How one landing record becomes rows, as a pipeline spec declares it: each column reads a field
//! path of the record (or of an item of the explode array), typed by the column's type.
//!
//! A field that cannot be read as its column's type rejects the record (a column of the record)
//! or only its item (a column of the explode array's item: the siblings are kept). Fields no
//! column reads are reported as unknown.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::tables::{parse_timestamp, Cell, Json, JsonKey, JsonMap, JsonVisitor};
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
    /// Where the path's first field is kept in a decoded record (or item): its index in
    /// `known` (or `known_item`).
    slot: Option<usize>,
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
    /// The explode path is one top-level field: its items are decoded straight into slots.
    flat_explode: bool,
    /// The explode path's first field in `known`.
    explode_slot: Option<usize>,
    /// Columns read from the record, and from each item, in column order: a row visits only its
    /// own.
    record_columns: Vec<usize>,
    item_columns: Vec<usize>,
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
                slot: None,
            });
        }
        let slot = |list: &[String], path: &[Step]| match path.first() {
            Some(Step::Field(f)) => list.iter().position(|k| k == f),
            _ => None,
        };
        for c in &mut columns {
            if let Source::Path(p) = &c.source {
                c.slot = slot(if c.item { &known_item } else { &known }, p);
            }
        }
        let (item_columns, record_columns) = (0..columns.len()).partition(|&i| columns[i].item);
        Ok(RecordShape {
            record_columns,
            item_columns,
            flat_explode: matches!(explode.as_deref(), Some([Step::Field(_)])),
            explode_slot: explode.as_deref().and_then(|e| slot(&known, e)),
            columns,
            explode,
            explode_label: spec.explode.clone().unwrap_or_default(),
            item_prefix: format!("{}[].", spec.explode.as_deref().unwrap_or_default()),
            known,
            known_item,
        })
    }

    /// Decodes one landing record's JSON text into the fields this shape reads: no tree of the
    /// whole record, fields no column reads are only named. The error is the JSON parser's.
    pub fn read<'a>(&self, text: &'a str) -> Result<Record<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let record = RecordSeed(self).deserialize(&mut de)?;
        de.end()?;
        Ok(record)
    }

    /// Empty rows for this shape in `buffer`'s allocations (a previous record's, from
    /// [`Rows::into_buffer`], or a new one).
    pub fn rows<'r>(&self, buffer: RowBuffer) -> Rows<'r> {
        Rows {
            cells: relabel(buffer.cells),
            record: relabel(buffer.record),
            width: self.columns.len(),
        }
    }

    /// Appends the rows of one landing record to `out`. The error is the quarantine reason of
    /// the whole record; a bad item of the explode array is pushed to `rejected_items` (its
    /// index and reason) and its siblings are kept.
    pub fn parse<'r>(
        &self,
        record: &'r Record<'_>,
        out: &mut Rows<'r>,
        unknown: &mut Vec<String>,
        rejected_items: &mut Vec<(i32, String)>,
    ) -> Result<(), String> {
        let Some(fields) = &record.fields else {
            return Err("record is not a JSON object".into());
        };
        unknown.extend(record.unknown.iter().map(|k| k.to_string()));
        let obj = Obj::Slots(fields, &record.held);
        // The record's cells, its items' still null: each item's row starts as a copy.
        let Rows {
            cells, record: row, ..
        } = out;
        row.clear();
        row.resize(self.columns.len(), Cell::Null);
        for &i in &self.record_columns {
            let c = &self.columns[i];
            if let Source::Path(p) = &c.source {
                row[i] = c.read(obj, p)?;
            }
        }
        let Some(explode) = &self.explode else {
            cells.extend_from_slice(row);
            return Ok(());
        };
        let name = &self.explode_label;
        let missing = || Err(format!("{name} is missing"));
        let not_array = |found: &str| Err(format!("{name}: expected an array, found {found}"));
        let items = if self.flat_explode {
            match &record.items {
                None | Some(Items::Other(Json::Null)) => return missing(),
                Some(Items::Other(other)) => return not_array(kind(Value::of(other))),
                Some(Items::List(list)) => ItemsOf::List(list),
            }
        } else {
            match walk(obj.first(explode, self.explode_slot), explode, false)? {
                Some(Value::Array(items)) => ItemsOf::Tree(items),
                None | Some(Value::Null) => return missing(),
                Some(other) => return not_array(kind(other)),
            }
        };
        if items.is_empty() {
            return Err(format!("{name} is empty: the record has no item to record"));
        }
        for i in 0..items.len() {
            let it = match items.get(i, self.known_item.len()) {
                (Obj::Other(v), _) => {
                    rejected_items.push((
                        i as i32,
                        format!(
                            "{name}[{i}]: expected an object, found {}",
                            kind(Value::of(v))
                        ),
                    ));
                    continue;
                }
                (it @ Obj::Map(m), _) => {
                    note_unknown(m, &self.known_item, &self.item_prefix, unknown);
                    it
                }
                (it @ Obj::Slots(..), item_unknown) => {
                    unknown.extend(
                        item_unknown
                            .iter()
                            .map(|k| format!("{}{k}", self.item_prefix)),
                    );
                    it
                }
            };
            let at = cells.len();
            cells.extend_from_slice(row);
            let item_row = &mut cells[at..];
            let filled = self.item_columns.iter().try_for_each(|&c| {
                let column = &self.columns[c];
                item_row[c] = match &column.source {
                    Source::ItemIndex => Cell::I32(i as i32),
                    Source::Path(p) => column.read(it, p)?,
                };
                Ok::<_, String>(())
            });
            if let Err(e) = filled {
                cells.truncate(at);
                rejected_items.push((i as i32, format!("{name}[{i}].{e}")));
            }
        }
        Ok(())
    }
}

/// The rows of one record, cell after cell in one buffer, a row `width` cells (a vector per row
/// was an allocation per row).
#[derive(Debug)]
pub struct Rows<'r> {
    cells: Vec<Cell<'r>>,
    /// The record's own cells, the start of each of its items' rows.
    record: Vec<Cell<'r>>,
    /// Cells per row: a table has at least its key's columns.
    width: usize,
}

impl<'r> Rows<'r> {
    pub fn len(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[Cell<'r>]> + '_ {
        (0..self.len()).map(|i| &self[i])
    }

    /// Keeps the rows `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&[Cell<'r>]) -> bool) {
        let w = self.width;
        let mut kept = 0;
        for i in 0..self.len() {
            if keep(&self[i]) {
                if kept < i {
                    self.cells.copy_within(i * w..(i + 1) * w, kept * w);
                }
                kept += 1;
            }
        }
        self.cells.truncate(kept * w);
    }

    /// The emptied buffers, their allocations kept for the next record's rows.
    pub fn into_buffer(self) -> RowBuffer {
        RowBuffer {
            cells: relabel(self.cells),
            record: relabel(self.record),
        }
    }
}

impl<'r> std::ops::Index<usize> for Rows<'r> {
    type Output = [Cell<'r>];
    fn index(&self, i: usize) -> &[Cell<'r>] {
        &self.cells[i * self.width..(i + 1) * self.width]
    }
}

/// The allocations of [`Rows`] between records.
#[derive(Debug, Default)]
pub struct RowBuffer {
    cells: Vec<Cell<'static>>,
    record: Vec<Cell<'static>>,
}

/// `cells` emptied, its allocation reused for cells of another lifetime (in place: the
/// element type's layout is the same).
fn relabel<'b>(mut cells: Vec<Cell<'_>>) -> Vec<Cell<'b>> {
    cells.clear();
    cells.into_iter().map(|_| Cell::Null).collect()
}

/// The items of the explode array of one record.
#[derive(Clone, Copy)]
enum ItemsOf<'r, 'a> {
    List(&'r ItemList<'a>),
    Tree(&'r [Json<'a>]),
}

impl<'r, 'a> ItemsOf<'r, 'a> {
    fn len(self) -> usize {
        match self {
            ItemsOf::List(l) => l.items.len(),
            ItemsOf::Tree(t) => t.len(),
        }
    }

    fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Item `i` and the item fields no column reads (only a list keeps them; a tree's are
    /// found from its map). `width`: slots per object item of a list.
    fn get(self, i: usize, width: usize) -> (Obj<'r, 'a>, &'r [Cow<'a, str>]) {
        match self {
            ItemsOf::List(list) => match &list.items[i] {
                Item::Object { start, unknown } => (
                    Obj::Slots(&list.slots[*start..*start + width], &list.held),
                    &list.unknown[unknown.clone()],
                ),
                Item::Other(v) => (Obj::Other(v), &[]),
            },
            ItemsOf::Tree(t) => match &t[i] {
                Json::Object(m) => (Obj::Map(m), &[]),
                other => (Obj::Other(other), &[]),
            },
        }
    }
}

fn labelled(path: &str, column: &str) -> String {
    if path == column {
        path.to_string()
    } else {
        format!("{path} ({column})")
    }
}

/// The value at `path`, `None` when a field on the way is missing or null; `first` is the value
/// of its first step, already looked up. A wrong shape on the way is an error naming the value
/// that had it (`a.b: expected an object, found a string`).
fn walk<'r>(
    first: Option<Value<'r>>,
    path: &[Step],
    optional: bool,
) -> Result<Option<Value<'r>>, String> {
    let mut cur = first;
    for (n, step) in path.iter().enumerate().skip(1) {
        let wrong = |what: String| Err(format!("{}: {what}", render(&path[..n])));
        cur = match (step, cur) {
            (Step::Field(f), Some(Value::Object(m))) => m.get(f).map(Value::of),
            (Step::Index(i), Some(Value::Array(a))) => match a.get(*i) {
                Some(v) => Some(Value::of(v)),
                None if optional => return Ok(None),
                None => {
                    return wrong(format!(
                        "expected at least {} items, found {}",
                        i + 1,
                        a.len()
                    ))
                }
            },
            (_, None | Some(Value::Null)) => return Ok(None),
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

/// An object a path starts from: a decoded record or item (its fields by slot), an object of a
/// tree, or a value that is no object (an item of the explode array can be anything).
#[derive(Clone, Copy)]
enum Obj<'r, 'a> {
    /// The slots, and the values they hold aside.
    Slots(&'r [Option<Slot<'a>>], &'r [Json<'a>]),
    Map(&'r JsonMap<'a>),
    Other(&'r Json<'a>),
}

impl<'r, 'a> Obj<'r, 'a> {
    /// The value of the path's first field (`slot`: where a decoded record keeps it).
    fn first(self, path: &[Step], slot: Option<usize>) -> Option<Value<'r>> {
        match (self, path.first()) {
            (Obj::Slots(fields, held), _) => slot
                .and_then(|i| fields.get(i))
                .and_then(Option::as_ref)
                .map(|s| s.value(held)),
            (Obj::Map(m), Some(Step::Field(f))) => m.get(f).map(Value::of),
            _ => None,
        }
    }
}

/// A field of a decoded record (or item) in its slot: scalars in place, values that own memory
/// (a string with escapes, an array, an object) held aside in a list of the record (or of its
/// items), so the slots need no drop (dropping them value by value was 2.8% of the transform's
/// CPU on the bench object, perf).
#[derive(Debug, Clone)]
enum Slot<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(&'a str),
    /// Its index among the values held aside.
    Held(usize),
}

impl<'a> Slot<'a> {
    fn value<'r>(&'r self, held: &'r [Json<'a>]) -> Value<'r> {
        match self {
            Slot::Null => Value::Null,
            Slot::Bool(b) => Value::Bool(*b),
            Slot::Number(n) => Value::Number(n),
            Slot::Str(s) => Value::Str(s),
            Slot::Held(i) => held.get(*i).map_or(Value::Null, Value::of),
        }
    }
}

/// A value a column reads: from a slot, or from a tree.
#[derive(Clone, Copy)]
enum Value<'r> {
    Null,
    Bool(bool),
    Number(&'r serde_json::Number),
    Str(&'r str),
    Array(&'r [Json<'r>]),
    Object(&'r JsonMap<'r>),
}

impl<'r> Value<'r> {
    fn of(v: &'r Json<'_>) -> Value<'r> {
        match v {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::Str(s),
            Json::Array(a) => Value::Array(a),
            Json::Object(m) => Value::Object(m),
        }
    }
}

/// Decodes a field's value into its slot, holding aside what owns memory. Its own visitor, not
/// `Json`'s followed by a conversion: that way cost 3% more CPU on the bench object (A/B, 10
/// pairs).
struct SlotSeed<'h, 'a>(&'h mut Vec<Json<'a>>);

impl<'de> DeserializeSeed<'de> for SlotSeed<'_, 'de> {
    type Value = Slot<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> SlotSeed<'_, 'de> {
    fn hold(self, v: Json<'de>) -> Slot<'de> {
        self.0.push(v);
        Slot::Held(self.0.len() - 1)
    }
}

impl<'de> Visitor<'de> for SlotSeed<'_, 'de> {
    type Value = Slot<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Slot<'de>, E> {
        Ok(Slot::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Slot<'de>, E> {
        Ok(Slot::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Slot<'de>, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Slot::Null, Slot::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Slot<'de>, E> {
        Ok(self.hold(Json::String(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Slot<'de>, E> {
        Ok(self.hold(Json::String(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_none<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot<'de>, A::Error> {
        let v = JsonVisitor::new().visit_seq(seq)?;
        Ok(self.hold(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot<'de>, A::Error> {
        let v = JsonVisitor::new().visit_map(map)?;
        Ok(self.hold(v))
    }
}

/// A landing record decoded by its shape ([`RecordShape::read`]): the values of the fields
/// some column reads, and the names of the others.
#[derive(Debug)]
pub struct Record<'a> {
    /// By slot (the shape's `known`); `None` when the record is no JSON object.
    fields: Option<Vec<Option<Slot<'a>>>>,
    /// Values of the fields that own memory, for their slots.
    held: Vec<Json<'a>>,
    /// Fields no column reads, in document order.
    unknown: Vec<Cow<'a, str>>,
    /// The explode array, when its path is one top-level field; `None` when absent.
    items: Option<Items<'a>>,
}

#[derive(Debug)]
enum Items<'a> {
    List(ItemList<'a>),
    /// Not an array (null included).
    Other(Json<'a>),
}

/// The items of the explode array: the fields of every object item in one buffer.
#[derive(Debug, Default)]
struct ItemList<'a> {
    items: Vec<Item<'a>>,
    /// `known_item.len()` slots per object item.
    slots: Vec<Option<Slot<'a>>>,
    /// Values of the item fields that own memory, for their slots.
    held: Vec<Json<'a>>,
    /// Item fields no column reads; each item holds its range.
    unknown: Vec<Cow<'a, str>>,
}

#[derive(Debug)]
enum Item<'a> {
    Object {
        start: usize,
        unknown: std::ops::Range<usize>,
    },
    Other(Json<'a>),
}

/// Reads an object's fields: the value of one `names` lists into its slot (unless `take`, given
/// the slot, reads it itself and says so), any other only named in `unknown` after `from`, once
/// (a repeated field's last value wins, as in a JSON object). Names are tried first where the
/// previous one's successor is: records usually list their fields in the spec's order.
fn read_fields<'de, A: MapAccess<'de>>(
    mut map: A,
    names: &[String],
    slots: &mut [Option<Slot<'de>>],
    held: &mut Vec<Json<'de>>,
    unknown: &mut Vec<Cow<'de, str>>,
    mut take: impl FnMut(usize, &mut A) -> Result<bool, A::Error>,
) -> Result<(), A::Error> {
    let (from, mut hint) = (unknown.len(), 0);
    while let Some(JsonKey(k)) = map.next_key()? {
        let at = match names.get(hint) {
            Some(n) if same_key(n, &k) => Some(hint),
            _ => names.iter().position(|n| same_key(n, &k)),
        };
        match at {
            Some(i) => {
                hint = i + 1;
                if !take(i, &mut map)? {
                    slots[i] = Some(map.next_value_seed(SlotSeed(held))?);
                }
            }
            None => {
                map.next_value::<IgnoredAny>()?;
                if !unknown[from..].contains(&k) {
                    unknown.push(k);
                }
            }
        }
    }
    Ok(())
}

/// Field names are short: compared in line, byte by byte, they cost less than the call to
/// `memcmp` that `==` makes (2.5% of the transform's CPU on the bench object, perf).
#[inline]
fn same_key(name: &str, key: &str) -> bool {
    name.len() == key.len() && name.bytes().zip(key.bytes()).all(|(a, b)| a == b)
}

/// Any value that is no object (or, for the explode array, no array) is kept as a tree: it is
/// only reported. A macro, as serde's visitor has one method per kind of value.
macro_rules! other_values {
    ($wrap:expr) => {
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_bool(v).map($wrap)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_i64(v).map($wrap)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_u64(v).map($wrap)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_f64(v).map($wrap)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_borrowed_str(v).map($wrap)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_str(v).map($wrap)
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_string(v).map($wrap)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            JsonVisitor::new().visit_unit().map($wrap)
        }
    };
}

struct RecordSeed<'s>(&'s RecordShape);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON record")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Record<'de>, A::Error> {
        let shape = self.0;
        let mut fields = vec![None; shape.known.len()];
        let (mut held, mut unknown, mut items) = (Vec::new(), Vec::new(), None);
        let explode = shape.explode_slot.filter(|_| shape.flat_explode);
        let fill = |i, map: &mut A| {
            if Some(i) != explode {
                return Ok(false);
            }
            items = Some(map.next_value_seed(ItemsSeed(shape))?);
            Ok(true)
        };
        read_fields(
            map,
            &shape.known,
            &mut fields,
            &mut held,
            &mut unknown,
            fill,
        )?;
        Ok(Record {
            fields: Some(fields),
            held,
            unknown,
            items,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record::NOT_AN_OBJECT)
    }

    other_values!(|_| Record::NOT_AN_OBJECT);
}

impl Record<'_> {
    const NOT_AN_OBJECT: Record<'static> = Record {
        fields: None,
        held: Vec::new(),
        unknown: Vec::new(),
        items: None,
    };
}

struct ItemsSeed<'s>(&'s RecordShape);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Items<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Items<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Items<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
        // Sized for a few items: growing from empty reallocated per record.
        let mut list = ItemList {
            items: Vec::with_capacity(4),
            slots: Vec::with_capacity(4 * self.0.known_item.len()),
            held: Vec::new(),
            unknown: Vec::new(),
        };
        while let Some(item) = seq.next_element_seed(ItemSeed(self.0, &mut list))? {
            list.items.push(item);
        }
        Ok(Items::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items<'de>, A::Error> {
        JsonVisitor::new().visit_map(map).map(Items::Other)
    }

    other_values!(Items::Other);
}

/// One item of the explode array, its fields into the list's slots.
struct ItemSeed<'s, 'l, 'a>(&'s RecordShape, &'l mut ItemList<'a>);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_, 'de> {
    type Value = Item<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_, 'de> {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an item")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'de>, A::Error> {
        let (shape, list) = (self.0, self.1);
        let start = list.slots.len();
        list.slots.resize(start + shape.known_item.len(), None);
        let first_unknown = list.unknown.len();
        read_fields(
            map,
            &shape.known_item,
            &mut list.slots[start..],
            &mut list.held,
            &mut list.unknown,
            |_, _| Ok(false),
        )?;
        Ok(Item::Object {
            start,
            unknown: first_unknown..list.unknown.len(),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item<'de>, A::Error> {
        JsonVisitor::new().visit_seq(seq).map(Item::Other)
    }

    other_values!(Item::Other);
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

    fn read<'r>(&self, obj: Obj<'r, '_>, path: &[Step]) -> Result<Cell<'r>, String> {
        let name = &self.label;
        let value = walk(obj.first(path, self.slot), path, self.optional)?;
        let cell = match (self.ty, value) {
            (_, None | Some(Value::Null)) => Cell::Null,
            (ColumnType::String, Some(Value::Str(s))) => Cell::Str(s),
            (ColumnType::String, Some(v)) => {
                return Err(format!("{name}: expected a string, found {}", kind(v)))
            }
            (ColumnType::Boolean, Some(Value::Bool(b))) => Cell::Bool(b),
            (ColumnType::Boolean, Some(v)) => {
                return Err(format!("{name}: expected a boolean, found {}", kind(v)))
            }
            (ColumnType::Timestamp, Some(v)) => match (self.format, v) {
                (Some(ValueFormat::EpochMillis), Value::Number(n)) => n
                    .as_i64()
                    .and_then(|ms| ms.checked_mul(1000))
                    .map(Cell::Ts)
                    .ok_or_else(|| format!("{name}: {n} is not epoch milliseconds"))?,
                (Some(ValueFormat::EpochMillis), v) => {
                    return Err(format!(
                        "{name}: expected epoch milliseconds, found {}",
                        kind(v)
                    ))
                }
                (_, Value::Str(s)) => parse_timestamp(s)
                    .map(Cell::Ts)
                    .ok_or_else(|| format!("{name}: {s:?} is not an ISO 8601 timestamp"))?,
                (_, v) => {
                    return Err(format!(
                        "{name}: expected a timestamp string, found {}",
                        kind(v)
                    ))
                }
            },
            (ColumnType::Int, Some(Value::Number(n))) => {
                let v = n
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| format!("{name}: {n} is not a 32-bit integer"))?;
                self.check_range(f64::from(v))?;
                Cell::I32(v)
            }
            (ColumnType::Int, Some(v)) => {
                return Err(format!("{name}: expected an integer, found {}", kind(v)))
            }
            (ColumnType::Float | ColumnType::Double, Some(v)) => {
                let x = match (v, self.format) {
                    (Value::Number(n), _) => n
                        .as_f64()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("{name}: {n} is not a finite number"))?,
                    (Value::Str(s), Some(ValueFormat::NumberText)) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("{name}: {s:?} is not a number"))?,
                    (v, _) => return Err(format!("{name}: expected a number, found {}", kind(v))),
                };
                self.check_range(x)?;
                if self.ty == ColumnType::Float {
                    Cell::F32(x as f32)
                } else {
                    Cell::F64(x)
                }
            }
            (ColumnType::Long, Some(Value::Number(n))) => {
                let v = n
                    .as_i64()
                    .ok_or_else(|| format!("{name}: {n} is not a 64-bit integer"))?;
                self.check_range(v as f64)?;
                Cell::I64(v)
            }
            (ColumnType::Long, Some(v)) => {
                return Err(format!("{name}: expected an integer, found {}", kind(v)))
            }
            (ColumnType::Date, Some(Value::Str(s))) => {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .map(|d| d.to_epoch_days())
                    .map(Cell::Date)
                    .ok_or_else(|| format!("{name}: {s:?} is not a date (YYYY-MM-DD)"))?
            }
            (ColumnType::Date, Some(v)) => {
                return Err(format!("{name}: expected a date string, found {}", kind(v)))
            }
            (ColumnType::Decimal { precision, scale }, Some(v)) => {
                let text = match (v, self.format) {
                    (Value::Number(n), _) => n.to_string(),
                    // Exact digits in a string (how SQL extracts land DECIMAL) need no format.
                    (Value::Str(s), _) => s.trim().to_string(),
                    (v, _) => return Err(format!("{name}: expected a number, found {}", kind(v))),
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

fn kind(v: Value<'_>) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::Str(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
            let record: &'static Record<'static> = Box::leak(Box::new(shape.read(text).unwrap()));
            let mut out = shape.rows(RowBuffer::default());
            let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
            shape
                .parse(record, &mut out, &mut unknown, &mut rejected)
                .map(|_| out[0].to_vec())
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
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get(table).unwrap().shape();
        let record: &'static Record<'static> = Box::leak(Box::new(shape.read(text).unwrap()));
        let mut out = shape.rows(RowBuffer::default());
        let mut unknown = Vec::new();
        let mut rejected = Vec::new();
        shape.parse(record, &mut out, &mut unknown, &mut rejected)?;
        if let Some((_, reason)) = rejected.into_iter().next() {
            return Err(reason);
        }
        Ok((out.iter().map(<[Cell]>::to_vec).collect(), unknown))
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
    fn slots_need_no_drop_and_hold_aside_what_owns_memory() {
        assert!(!std::mem::needs_drop::<Option<Slot<'static>>>());
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get("users").unwrap().shape();
        let text = r#"{"user_id": "a\u0062", "user_name": "n", "user_location": ["1", "2", "P", "FR", "E/P"]}"#;
        let record = shape.read(text).unwrap();
        // The escaped string and the array are held aside; the plain string is borrowed.
        assert_eq!(record.held.len(), 2);
        let mut rows = shape.rows(RowBuffer::default());
        let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
        shape
            .parse(&record, &mut rows, &mut unknown, &mut rejected)
            .unwrap();
        assert_eq!(rows[0][0], Cell::Str("ab"));
        assert_eq!(rows[0][1], Cell::Str("n"));
        assert_eq!(rows[0][5], Cell::Str("P"));
    }

    #[test]
    fn rows_of_records_in_turn_share_one_buffer_and_keep_their_order() {
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get("sessions").unwrap().shape();
        let record = |session: &str, items: usize| {
            let items: Vec<_> = (0..items)
                .map(|i| json!({"song_id": format!("{session}-{i}"), "price": 1.0}))
                .collect();
            json!({"user_id": "u", "session_id": session, "user_agent": "ua",
                "session_start_time": "2020-02-07T18:05:25.824461", "session_items": items})
            .to_string()
        };
        let (first, second) = (record("a", 3), record("b", 2));
        let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
        let a = shape.read(&first).unwrap();
        let mut rows = shape.rows(RowBuffer::default());
        shape
            .parse(&a, &mut rows, &mut unknown, &mut rejected)
            .unwrap();
        assert_eq!(rows.len(), 3);
        // A row left out moves the later ones up, whole.
        rows.retain(|r| r[3] != Cell::Str("a-1"));
        let songs: Vec<_> = rows.iter().map(|r| (r[2], r[3])).collect();
        assert_eq!(
            songs,
            [
                (Cell::I32(0), Cell::Str("a-0")),
                (Cell::I32(2), Cell::Str("a-2"))
            ]
        );
        let buffer = rows.into_buffer();
        let capacity = buffer.cells.capacity();
        assert!(capacity >= 3 * shape.columns.len());
        let b = shape.read(&second).unwrap();
        let mut rows = shape.rows(buffer);
        assert!(rows.is_empty());
        shape
            .parse(&b, &mut rows, &mut unknown, &mut rejected)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][1], Cell::Str("b"));
        assert_eq!(rows[1][3], Cell::Str("b-1"));
        assert_eq!(rows.into_buffer().cells.capacity(), capacity);
        assert!(rejected.is_empty());
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

    #[test]
    fn repeated_fields_keep_the_last_value_and_are_named_once() {
        let text = r#"{"user_id": "a", "session_id": "s", "user_id": "b", "x": 1, "x": {"y": 2},
            "session_start_time": "2020-02-07T18:05:25", "user_agent": "ua",
            "session_items": [{"song_id": "old"}],
            "session_items": [{"song_id": "t1", "song_id": "t2", "z": 1, "z": 2, "price": 1.0}]}"#;
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get("sessions").unwrap().shape();
        let record = shape.read(text).unwrap();
        let mut out = shape.rows(RowBuffer::default());
        let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
        shape
            .parse(&record, &mut out, &mut unknown, &mut rejected)
            .unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0], Cell::Str("b"));
        assert_eq!(out[0][3], Cell::Str("t2"));
        assert_eq!(unknown, ["x", "session_items[].z"]);
    }

    #[test]
    fn escaped_names_values_and_odd_items() {
        let text = r#"{"user\u005fid": "caf\u00e9", "session_id": "s", "session_start_time": "2020-02-07T18:05:25",
            "session_items": ["song", {"song_id": "t"}, null, [1], {"price": "x"}]}"#;
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get("sessions").unwrap().shape();
        let record = shape.read(text).unwrap();
        let mut out = shape.rows(RowBuffer::default());
        let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
        shape
            .parse(&record, &mut out, &mut unknown, &mut rejected)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0], Cell::Str("café"));
        assert_eq!(out[0][2], Cell::I32(1));
        let reasons: Vec<_> = rejected.iter().map(|(i, r)| (*i, r.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (0, "session_items[0]: expected an object, found a string"),
                (2, "session_items[2]: expected an object, found null"),
                (3, "session_items[3]: expected an object, found an array"),
                (
                    4,
                    "session_items[4].price: expected a number, found a string"
                ),
            ]
        );
        assert!(unknown.is_empty());
    }

    #[test]
    fn malformed_json_is_an_error_also_in_fields_no_column_reads() {
        let tables = crate::transform::tables::repo_tables("deftunes").unwrap();
        let shape = tables.get("users").unwrap().shape();
        for bad in [
            r#"{"user_id": "a", "extra": [1, }"#,
            r#"{"user_id": "a", "extra": "\x"}"#,
            r#"{"user_id": "a"} trailing"#,
            r#"{"user_id": "a""#,
            r#"[1, 2"#,
        ] {
            assert!(shape.read(bad).is_err(), "{bad}");
        }
        for not_object in ["[1, {\"a\": 2}]", "\"text\"", "null", "12"] {
            let record = shape.read(not_object).unwrap();
            let mut out = shape.rows(RowBuffer::default());
            let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
            let e = shape
                .parse(&record, &mut out, &mut unknown, &mut rejected)
                .unwrap_err();
            assert_eq!(e, "record is not a JSON object", "{not_object}");
        }
    }

    #[test]
    fn a_nested_explode_path_reads_its_items() {
        let text = r#"
name = "t"
namespace = "t"
[sources.orders]
kind = "files"
landing = "orders"
format = "ndjson"
source_from = "orders"
[tables.orders]
source = "orders"
explode = "order.lines"
key = ["id", "line"]
partition = { column = "ingest_on" }
columns = [
  { name = "id", type = "long", path = "order.id" },
  { name = "line", type = "int", from = "item_index" },
  { name = "sku", type = "string", path = "order.lines[].sku" },
]
"#;
        let spec = PipelineSpec::parse(Path::new("t.toml"), text).unwrap();
        let shape = RecordShape::compile("orders", spec.table("orders").unwrap()).unwrap();
        let read = |text: &'static str| {
            let record: &'static Record<'static> = Box::leak(Box::new(shape.read(text).unwrap()));
            let mut out = shape.rows(RowBuffer::default());
            let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
            shape
                .parse(record, &mut out, &mut unknown, &mut rejected)
                .map(|()| {
                    let rows: Vec<Vec<Cell>> = out.iter().map(<[Cell]>::to_vec).collect();
                    (rows, unknown, rejected)
                })
        };
        let (rows, unknown, rejected) = read(
            r#"{"order": {"id": 7, "lines": [{"sku": "a", "n": 1}, 5, {"sku": "b"}]}, "at": 1}"#,
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                vec![Cell::I64(7), Cell::I32(0), Cell::Str("a")],
                vec![Cell::I64(7), Cell::I32(2), Cell::Str("b")]
            ]
        );
        assert_eq!(unknown, ["at", "order.lines[].n"]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            read(r#"{"order": {"id": 7}}"#).unwrap_err(),
            "order.lines is missing"
        );
        assert_eq!(
            read(r#"{"order": {"id": 7, "lines": {}}}"#).unwrap_err(),
            "order.lines: expected an array, found an object"
        );
        assert_eq!(
            read(r#"{"order": 3}"#).unwrap_err(),
            "order: expected an object, found a number"
        );
    }
}
