//! Pipeline specs: a pipeline is a folder of declarative files (`pipelines/<name>/pipeline.toml`,
//! its rule files and its dbt project), loaded and validated before any work starts.
//!
//! A spec declares its sources (REST endpoints, SQL tables, files others land in S3), where they
//! land, and the Iceberg tables built from them: typed columns with field paths into the landing
//! records, an optional explode path, the natural key and the partitioning. Every error names the
//! file, the line and what is wrong. `pipelines/pipeline.schema.json` is this module's JSON
//! Schema ([`json_schema`]), for editors.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use iceberg::spec::{PrimitiveType, Schema, Transform, UnboundPartitionSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::transform::quality::RuleSet;
use crate::transform::tables::{table_schema, METADATA_COLUMNS, RECORD_HASH_COLUMN};

/// The spec file of a pipeline folder.
pub const SPEC_FILE: &str = "pipeline.toml";

/// A spec that cannot be used: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is the file as a whole.
    pub line: Option<usize>,
    pub message: String,
}

impl SpecError {
    /// An error at a byte span of the spec file's `text`.
    fn at(file: &Path, text: &str, span: Option<Range<usize>>, message: String) -> SpecError {
        SpecError {
            file: file.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        }
    }
}

impl From<SpecError> for crate::error::Error {
    fn from(e: SpecError) -> Self {
        crate::error::Error::Configuration(format!("pipeline spec {e}"))
    }
}

/// `pipelines/<name>/pipeline.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name: its folder under `pipelines/`.
    pub name: String,
    /// Iceberg namespace (the Glue database in AWS) of its tables.
    pub namespace: String,
    /// Where landing objects go, under the lake's `landing_zone/`.
    #[serde(default)]
    pub landing: LandingSpec,
    /// Sources by name.
    #[schemars(with = "BTreeMap<String, SourceSpec>")]
    pub sources: BTreeMap<String, Spanned<SourceSpec>>,
    /// Iceberg tables by name.
    #[schemars(with = "BTreeMap<String, TableSpec>")]
    pub tables: BTreeMap<String, Spanned<TableSpec>>,
    /// The dbt project the serving stage builds, relative to the pipeline folder.
    #[serde(default)]
    pub dbt: Option<DbtSpec>,
    /// What each run report draws besides the run itself.
    #[serde(default)]
    pub report: ReportSpec,
}

/// The run report's BI panels: charts over the warehouse dbt builds (Redshift in AWS), drawn by
/// run-control in each execution's `report.html`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// Bar charts, in the order the page shows them.
    #[serde(default)]
    #[schemars(with = "Vec<ChartSpec>")]
    pub charts: Vec<Spanned<ChartSpec>>,
}

/// Bars drawn at most by default, and the most a chart may ask for.
pub const DEFAULT_CHART_BARS: usize = 25;
pub const MAX_CHART_BARS: usize = 200;

/// One horizontal bar chart: one bar per row of a query.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// The panel's heading.
    pub title: String,
    /// One SELECT answering two columns: each bar's label, then its value (a number; a null
    /// value draws no bar). `{serving}` and `{bi}` stand for the pipeline's serving and BI
    /// schemas. It runs on Redshift in AWS, and the local run checks it on DuckDB: keep to SQL
    /// both speak (CAST(x AS VARCHAR), no `::`).
    pub sql: String,
    /// Bars drawn at most (the query's first rows).
    #[serde(default = "default_chart_bars")]
    pub bars: usize,
    /// Written before each value, e.g. `$`.
    #[serde(default)]
    pub unit: String,
}

fn default_chart_bars() -> usize {
    DEFAULT_CHART_BARS
}

impl ChartSpec {
    /// The chart's SQL with the schemas in place.
    pub fn sql_for(&self, serving: &str, bi: &str) -> String {
        self.sql.replace("{serving}", serving).replace("{bi}", bi)
    }

    fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("title is empty".into());
        }
        if !(1..=MAX_CHART_BARS).contains(&self.bars) {
            return Err(format!(
                "bars = {} must be between 1 and {MAX_CHART_BARS}",
                self.bars
            ));
        }
        let sql = self.sql.trim().trim_end_matches(';');
        let first = sql.split_whitespace().next().unwrap_or("");
        if !(first.eq_ignore_ascii_case("select") || first.eq_ignore_ascii_case("with")) {
            return Err(format!(
                "sql must be one SELECT (or WITH ... SELECT), got {:?}",
                sql.chars().take(40).collect::<String>()
            ));
        }
        if sql.contains(';') {
            return Err("sql must be one statement (a `;` inside it)".into());
        }
        let mut rest = self.sql.as_str();
        while let Some(i) = rest.find('{') {
            let after = &rest[i..];
            if !(after.starts_with("{serving}") || after.starts_with("{bi}")) {
                let shown: String = after.chars().take(20).collect();
                return Err(format!(
                    "sql: unknown placeholder at {shown:?} (known: {{serving}}, {{bi}})"
                ));
            }
            rest = &after[1..];
        }
        Ok(())
    }
}

/// Landing keys: `landing_zone/<source folder>/ingest_on=<YYYY-MM-DD>/<file>`.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LandingSpec {
    /// The landing zone's folder under the lake root.
    #[serde(default = "default_landing_prefix")]
    pub prefix: String,
}

impl Default for LandingSpec {
    fn default() -> Self {
        LandingSpec {
            prefix: default_landing_prefix(),
        }
    }
}

fn default_landing_prefix() -> String {
    "landing_zone".into()
}

#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DbtSpec {
    /// The dbt project folder, relative to the pipeline folder.
    pub project: String,
}

/// One source of landing objects.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A REST endpoint the extractor calls (base URL from the function's configuration).
    Rest {
        /// Landing folder under the landing zone, e.g. `api/users`.
        landing: String,
        /// Path under the base URL, e.g. `/users`.
        path: String,
        /// Query parameters carrying the extraction window (both ends inclusive, `YYYY-MM-DD`).
        #[serde(default)]
        window: Option<WindowParams>,
        /// Field path of the record array in the response; absent: the response is the array.
        #[serde(default)]
        records: Option<String>,
        /// How the API authenticates the extractor; absent: no authentication.
        #[serde(default)]
        auth: Option<RestAuth>,
        /// How the records are paged; absent: one response holds them all. Needs `records`.
        #[serde(default)]
        paging: Option<Paging>,
        /// The tables' `source_from` value.
        source_from: String,
    },
    /// A SQL table or query the extractor reads.
    Sql {
        /// The database server's kind; its connection comes from the function's configuration
        /// (`PG_*` for PostgreSQL, `MYSQL_*` for MySQL/MariaDB).
        #[serde(default)]
        engine: SqlEngine,
        landing: String,
        /// `schema.table`; exactly one of `table` and `query`.
        #[serde(default)]
        table: Option<String>,
        #[serde(default)]
        query: Option<String>,
        /// A column only growing with new rows: an extraction reads the rows after the last one
        /// landed. Absent: every extraction reads the whole table.
        #[serde(default)]
        incremental_column: Option<String>,
        source_from: String,
    },
    /// Objects another system lands under `prefix` (no extractor).
    Files {
        landing: String,
        format: FileFormat,
        source_from: String,
    },
}

impl SourceSpec {
    pub fn landing(&self) -> &str {
        match self {
            SourceSpec::Rest { landing, .. }
            | SourceSpec::Sql { landing, .. }
            | SourceSpec::Files { landing, .. } => landing,
        }
    }

    pub fn source_from(&self) -> &str {
        match self {
            SourceSpec::Rest { source_from, .. }
            | SourceSpec::Sql { source_from, .. }
            | SourceSpec::Files { source_from, .. } => source_from,
        }
    }
}

/// Authentication of a REST source.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestAuth {
    /// OAuth 2.0 client credentials (RFC 6749 4.4): a bearer token from the token endpoint of
    /// the function's `OAUTH_*` settings, cached until it expires or the API answers 401.
    Oauth2ClientCredentials,
}

/// Paging of a REST source: every page is read, in order, into the same extraction.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paging {
    /// Each response names the next page's URL at a field path (`next`); null, absent or empty:
    /// the last page. The URL must be on the API's own host (the token goes with it).
    NextUrl { next: String },
    /// `offset`/`limit` query parameters: pages of `limit` records from offset 0 until a page
    /// has fewer.
    Offset {
        limit: u32,
        #[serde(default = "default_offset_param")]
        offset_param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
    },
}

fn default_offset_param() -> String {
    "offset".into()
}

fn default_limit_param() -> String {
    "limit".into()
}

/// The SQL dialect and wire protocol of a SQL source.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlEngine {
    #[default]
    Postgres,
    /// MySQL 8 or MariaDB 10.6+.
    Mysql,
}

impl SqlEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlEngine::Postgres => "postgres",
            SqlEngine::Mysql => "mysql",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowParams {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON record per line.
    Ndjson,
    /// One JSON document per object.
    JsonDocument,
}

/// An Iceberg table built from one source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The source whose landing objects feed this table.
    pub source: String,
    /// Field path of an array whose items each become a row (`session_items`); columns reach
    /// into the item with `<explode>[].field`.
    #[serde(default)]
    pub explode: Option<String>,
    /// The natural key: column names, required in every row.
    pub key: Vec<String>,
    pub partition: PartitionSpecDef,
    /// Rule file (record and dataset rules), relative to the pipeline folder.
    #[serde(default)]
    pub rules: Option<String>,
    /// Data columns in table order; `record_hash` and the metadata columns follow them.
    #[schemars(with = "Vec<ColumnSpec>")]
    pub columns: Vec<Spanned<ColumnSpec>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpecDef {
    /// A data column, or `ingest_on`.
    pub column: String,
    #[serde(default)]
    pub transform: PartitionTransform,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTransform {
    #[default]
    Identity,
    Day,
    Month,
    Year,
}

impl From<PartitionTransform> for Transform {
    fn from(t: PartitionTransform) -> Transform {
        match t {
            PartitionTransform::Identity => Transform::Identity,
            PartitionTransform::Day => Transform::Day,
            PartitionTransform::Month => Transform::Month,
            PartitionTransform::Year => Transform::Year,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    /// `string`, `int`, `long`, `float`, `double`, `decimal(p,s)`, `date`, `timestamp`,
    /// `boolean`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Field path into the record: `a.b`, `a[0]`, `<explode>[].c`. Absent: the column's name.
    #[serde(default)]
    pub path: Option<String>,
    /// Where the value comes from when not from a field: `item_index`, the position of the
    /// exploded item.
    #[serde(default)]
    pub from: Option<ValueFrom>,
    /// How text is read: `iso` (timestamps, the default), `epoch_millis` (timestamps from
    /// numbers), `number_text` (numbers sent as strings).
    #[serde(default)]
    pub format: Option<ValueFormat>,
    /// Inclusive bounds of a number; a value outside quarantines the record.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// An array on the path may be shorter than its index: the value is then null (the first
    /// genre of an artist without genres). Without it a short array quarantines the record.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValueFrom {
    ItemIndex,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    Iso,
    EpochMillis,
    NumberText,
}

/// A column type of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u32, scale: u32 },
    Date,
    Timestamp,
    Boolean,
}

impl ColumnType {
    pub fn iceberg(self) -> PrimitiveType {
        match self {
            ColumnType::String => PrimitiveType::String,
            ColumnType::Int => PrimitiveType::Int,
            ColumnType::Long => PrimitiveType::Long,
            ColumnType::Float => PrimitiveType::Float,
            ColumnType::Double => PrimitiveType::Double,
            ColumnType::Decimal { precision, scale } => PrimitiveType::Decimal { precision, scale },
            ColumnType::Date => PrimitiveType::Date,
            // Glue rejects timestamptz: UTC in a zone-less timestamp.
            ColumnType::Timestamp => PrimitiveType::Timestamp,
            ColumnType::Boolean => PrimitiveType::Boolean,
        }
    }

    fn is_number(self) -> bool {
        matches!(
            self,
            ColumnType::Int
                | ColumnType::Long
                | ColumnType::Float
                | ColumnType::Double
                | ColumnType::Decimal { .. }
        )
    }
}

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        Ok(match t {
            "string" => ColumnType::String,
            "int" => ColumnType::Int,
            "long" => ColumnType::Long,
            "float" => ColumnType::Float,
            "double" => ColumnType::Double,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "boolean" => ColumnType::Boolean,
            _ => {
                let bad = || {
                    format!(
                        "unknown type {s:?}: expected string, int, long, float, double, \
                         decimal(p,s), date, timestamp or boolean"
                    )
                };
                let args = t
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                let (p, sc) = args.split_once(',').ok_or_else(bad)?;
                let precision: u32 = p.trim().parse().map_err(|_| bad())?;
                let scale: u32 = sc.trim().parse().map_err(|_| bad())?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(format!(
                        "{s:?}: a decimal needs 1 <= precision <= 38 and scale <= precision"
                    ));
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Field(String),
    Index(usize),
    /// `[]`: every item of the explode array.
    Each,
}

/// The path of the record array inside a wrapped REST response (a source's `records`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsPath {
    pub text: String,
    pub steps: Vec<PathStep>,
}

impl RecordsPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let steps = parse_path(text)?;
        if steps.contains(&PathStep::Each) {
            return Err(format!(
                "records {text:?}: [] has no place here; the path leads to the array itself"
            ));
        }
        Ok(RecordsPath {
            text: text.to_string(),
            steps,
        })
    }

    /// The value at this path of `body`, if every step exists.
    pub fn value_at<'v>(&self, body: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.steps.iter().try_fold(body, |at, step| match step {
            PathStep::Field(f) => at.get(f.as_str()),
            PathStep::Index(i) => at.get(*i),
            PathStep::Each => None,
        })
    }

    /// The records of the wrapped response `body`, each a JSON object; an error (naming
    /// `what`, the path and what was found) when the response does not have that shape.
    pub fn records<'v>(
        &self,
        body: &'v serde_json::Value,
        what: &str,
    ) -> crate::error::Result<&'v [serde_json::Value]> {
        let invalid = |m: String| {
            crate::error::Error::InvalidSourcePayload(format!(
                "{what}: records = {:?}: {m}",
                self.text
            ))
        };
        let mut at = body;
        for step in &self.steps {
            at = match step {
                PathStep::Field(f) => at
                    .get(f.as_str())
                    .ok_or_else(|| invalid(format!("no field {f:?} in {}", json_kind(at))))?,
                PathStep::Index(n) => at
                    .get(*n)
                    .ok_or_else(|| invalid(format!("no item [{n}] in {}", json_kind(at))))?,
                PathStep::Each => return Err(invalid("[] in a records path".to_string())),
            };
        }
        let array = at
            .as_array()
            .ok_or_else(|| invalid(format!("found {}, not an array", json_kind(at))))?;
        if let Some(i) = array.iter().position(|r| !r.is_object()) {
            return Err(invalid(format!(
                "record {i} is {}, not an object",
                json_kind(&array[i])
            )));
        }
        Ok(array)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `a.b[0].c`, `items[].price`.
pub fn parse_path(p: &str) -> Result<Vec<PathStep>, String> {
    let bad = |why: &str| format!("bad path {p:?}: {why}");
    let mut steps = Vec::new();
    for part in p.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(bad("an empty field name"));
        }
        if name.contains(']') {
            return Err(bad("an unopened ]"));
        }
        steps.push(PathStep::Field(name.to_string()));
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .filter(|_| rest.starts_with('['))
                .ok_or_else(|| bad("expected [index] or []"))?;
            let inner = &rest[1..close];
            steps.push(if inner.is_empty() {
                PathStep::Each
            } else {
                PathStep::Index(
                    inner
                        .parse()
                        .map_err(|_| bad(&format!("{inner:?} is not an index")))?,
                )
            });
            rest = &rest[close + 1..];
        }
    }
    Ok(steps)
}

/// The folder of the pipeline a function runs, from its configuration: `PIPELINE_DIR`, or else
/// `<PIPELINES_ROOT>/<PIPELINE>`. `PIPELINE` defaults to `deftunes`; `PIPELINES_ROOT` to the
/// `pipelines/` folder bundled in the Lambda package (`$LAMBDA_TASK_ROOT/pipelines`), or to
/// `pipelines` under the working directory elsewhere.
pub fn pipeline_dir(env: &dyn crate::config::Env) -> PathBuf {
    if let Some(dir) = env.var("PIPELINE_DIR") {
        return PathBuf::from(dir);
    }
    let root = env
        .var("PIPELINES_ROOT")
        .map(PathBuf::from)
        .or_else(|| {
            env.var("LAMBDA_TASK_ROOT")
                .map(|r| Path::new(&r).join("pipelines"))
        })
        .unwrap_or_else(|| PathBuf::from("pipelines"));
    root.join(env.var("PIPELINE").unwrap_or_else(|| "deftunes".into()))
}

impl PipelineSpec {
    /// Parses and validates a spec's text (`file` names it in errors); the files it names are
    /// not read.
    pub fn parse(file: &Path, text: &str) -> Result<PipelineSpec, SpecError> {
        let at =
            |span: Option<Range<usize>>, message: String| SpecError::at(file, text, span, message);
        let spec: PipelineSpec =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        if spec.tables.is_empty() {
            return Err(at(None, "no [tables.<name>] declared".into()));
        }
        for (name, table) in &spec.tables {
            let span = Some(table.span());
            let t = table.get_ref();
            if !spec.sources.contains_key(&t.source) {
                return Err(at(
                    span,
                    format!(
                        "table {name}: unknown source {:?} (declared: {})",
                        t.source,
                        spec.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            t.validate(name)
                .map_err(|(s, m)| at(s.or(span.clone()), m))?;
        }
        for (i, chart) in spec.report.charts.iter().enumerate() {
            let c = chart.get_ref();
            c.validate().map_err(|m| {
                at(
                    Some(chart.span()),
                    format!("report chart {} ({:?}): {m}", i + 1, c.title),
                )
            })?;
        }
        let mut landings = HashSet::new();
        for (name, source) in &spec.sources {
            let s = source.get_ref();
            let span = Some(source.span());
            if s.landing().is_empty() || s.landing().starts_with('/') || s.landing().contains("..")
            {
                return Err(at(
                    span,
                    format!(
                        "source {name}: landing {:?} must be a relative folder",
                        s.landing()
                    ),
                ));
            }
            if !landings.insert(s.landing().to_string()) {
                return Err(at(
                    span,
                    format!("source {name}: landing {:?} is used twice", s.landing()),
                ));
            }
            if let SourceSpec::Sql { table, query, .. } = s {
                if table.is_some() == query.is_some() {
                    return Err(at(
                        span,
                        format!("source {name}: give exactly one of table and query"),
                    ));
                }
            }
            if let SourceSpec::Rest {
                records, paging, ..
            } = s
            {
                if let Some(p) = records {
                    RecordsPath::parse(p)
                        .map_err(|m| at(span.clone(), format!("source {name}: {m}")))?;
                }
                match (paging, records) {
                    (Some(_), None) => {
                        return Err(at(
                            span,
                            format!("source {name}: paging needs records (the field path of each page's record array)"),
                        ))
                    }
                    (Some(Paging::NextUrl { next }), _) => {
                        RecordsPath::parse(next).map_err(|m| {
                            at(span.clone(), format!("source {name}: paging next: {m}"))
                        })?;
                    }
                    (Some(Paging::Offset { limit: 0, .. }), _) => {
                        return Err(at(span, format!("source {name}: paging limit must be at least 1")))
                    }
                    _ => {}
                }
            }
        }
        Ok(spec)
    }

    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.get(name).map(|t| t.get_ref())
    }
}

/// A loaded, validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub dir: PathBuf,
    pub spec: PipelineSpec,
    pub rules: BTreeMap<String, RuleSet>,
}

impl Pipeline {
    /// Loads `<dir>/pipeline.toml` and the files it names, and validates them.
    pub fn load(dir: &Path) -> Result<Pipeline, SpecError> {
        let file = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| SpecError {
            file: file.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::from_str_in(dir, &file, &text)
    }

    /// `text` as the spec file `file` of the folder `dir`: the spec, then the files it names.
    pub fn from_str_in(dir: &Path, file: &Path, text: &str) -> Result<Pipeline, SpecError> {
        let spec = PipelineSpec::parse(file, text)?;
        let at =
            |span: Option<Range<usize>>, message: String| SpecError::at(file, text, span, message);
        let mut rules = BTreeMap::new();
        for (name, table) in &spec.tables {
            let span = Some(table.span());
            let t = table.get_ref();
            let Some(r) = &t.rules else { continue };
            let path = dir.join(r);
            let raw = std::fs::read_to_string(&path).map_err(|e| {
                at(
                    span.clone(),
                    format!("table {name}: rules {r:?}: cannot read: {e}"),
                )
            })?;
            let rule_err = |message: String| SpecError {
                file: path.clone(),
                line: None,
                message,
            };
            let set: RuleSet = serde_json::from_str(&raw).map_err(|e| SpecError {
                file: path.clone(),
                line: Some(e.line()),
                message: e.to_string(),
            })?;
            if set.table != *name {
                return Err(rule_err(format!(
                    "names table {:?}, but the spec uses it for {name}",
                    set.table
                )));
            }
            let columns = t.data_columns();
            for c in set.columns() {
                if !columns.iter().any(|(n, _)| n == c) {
                    return Err(rule_err(format!("unknown column {c:?} of table {name}")));
                }
            }
            rules.insert(name.clone(), set);
        }
        if let Some(dbt) = &spec.dbt {
            if !dir.join(&dbt.project).is_dir() {
                return Err(at(
                    None,
                    format!(
                        "dbt project {:?}: no such folder beside the spec",
                        dbt.project
                    ),
                ));
            }
        }
        Ok(Pipeline {
            dir: dir.to_path_buf(),
            spec,
            rules,
        })
    }

    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.spec.table(name)
    }

    /// What a deployment of this pipeline wires (`pipelines/<name>/deploy.json`, read by
    /// Terraform, which cannot read TOML): the extract function and request of each source our
    /// functions extract (one state machine branch each), the landing prefixes whose new objects
    /// trigger the transform, the namespace, the tables and the dbt project.
    pub fn deploy_plan(&self) -> DeployPlan {
        let spec = &self.spec;
        let prefix = |landing: &str| format!("{}/{landing}/", spec.landing.prefix);
        DeployPlan {
            name: spec.name.clone(),
            namespace: spec.namespace.clone(),
            landing_prefixes: spec
                .sources
                .values()
                .map(|s| prefix(s.get_ref().landing()))
                .collect(),
            extracts: spec
                .sources
                .iter()
                .filter_map(|(name, s)| {
                    let (function, windowed, engine, auth) = match s.get_ref() {
                        SourceSpec::Rest { window, auth, .. } => {
                            ("api-extract", window.is_some(), None, *auth)
                        }
                        SourceSpec::Sql { engine, .. } => {
                            ("songs-extract", false, Some(*engine), None)
                        }
                        SourceSpec::Files { .. } => return None,
                    };
                    Some(DeployExtract {
                        source: name.clone(),
                        function: function.into(),
                        windowed,
                        engine,
                        auth,
                        landing_prefix: prefix(s.get_ref().landing()),
                    })
                })
                .collect(),
            tables: spec.tables.keys().cloned().collect(),
            dbt_project: spec.dbt.as_ref().map(|d| d.project.clone()),
            dbt_project_dir: spec.dbt.as_ref().map(|d| {
                let folder = self
                    .dir
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                repo_relative(&format!("pipelines/{folder}/{}", d.project))
            }),
        }
    }
}

/// `path` with its `.` and `..` components resolved lexically (no file system access).
fn repo_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A pipeline of this repository's `pipelines/` folder, for tests.
#[doc(hidden)]
pub fn repo_pipeline(name: &str) -> Result<Pipeline, SpecError> {
    Pipeline::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pipelines")
            .join(name),
    )
}

/// The file beside a spec that Terraform reads ([`Pipeline::deploy_plan`]).
pub const DEPLOY_FILE: &str = "deploy.json";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeployPlan {
    pub name: String,
    pub namespace: String,
    /// `<landing prefix>/<source folder>/` of every source: object-created events under them
    /// trigger the transform.
    pub landing_prefixes: Vec<String>,
    /// The sources our functions extract, one state machine branch each.
    pub extracts: Vec<DeployExtract>,
    pub tables: Vec<String>,
    /// Relative to the pipeline folder.
    pub dbt_project: Option<String>,
    /// The same folder relative to the repository root (`pipelines/<folder>/<dbt_project>`,
    /// `..` resolved): where the dbt image holds it (its build context is the repository root).
    pub dbt_project_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeployExtract {
    pub source: String,
    /// The function crate that extracts it (`functions/<function>`); its request is
    /// `{"source": <source>}`, plus `start_date`/`end_date` when `windowed`.
    pub function: String,
    pub windowed: bool,
    /// A SQL source's server kind: which connection settings its function needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<SqlEngine>,
    /// A REST source's authentication: which settings (and secret) its function needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RestAuth>,
    pub landing_prefix: String,
}

type Located = (Option<Range<usize>>, String);

impl TableSpec {
    /// Checks the table and returns its data columns with their types.
    fn validate(&self, table: &str) -> Result<Vec<(String, ColumnType)>, Located> {
        let err = |span: Option<Range<usize>>, m: String| (span, format!("table {table}: {m}"));
        let explode = match &self.explode {
            Some(p) => {
                let steps = parse_path(p).map_err(|m| err(None, m))?;
                if steps.iter().any(|s| !matches!(s, PathStep::Field(_))) {
                    return Err(err(
                        None,
                        format!("explode {p:?} must be a plain field path"),
                    ));
                }
                Some(steps)
            }
            None => None,
        };
        let mut columns: Vec<(String, ColumnType)> = Vec::new();
        for c in &self.columns {
            let span = Some(c.span());
            let c = c.get_ref();
            let cerr = |m: String| err(span.clone(), format!("column {}: {m}", c.name));
            if c.name.is_empty() {
                return Err(err(span, "a column without a name".into()));
            }
            let reserved =
                c.name == RECORD_HASH_COLUMN || METADATA_COLUMNS.iter().any(|(n, _)| *n == c.name);
            if reserved {
                return Err(cerr(
                    "the name is reserved for a column every table has".into(),
                ));
            }
            if columns.iter().any(|(n, _)| *n == c.name) {
                return Err(cerr("declared twice".into()));
            }
            let ty: ColumnType = c.ty.parse().map_err(cerr)?;
            match (c.from, &c.path) {
                (Some(ValueFrom::ItemIndex), None) => {
                    if explode.is_none() {
                        return Err(cerr("item_index needs the table's explode path".into()));
                    }
                    if !matches!(ty, ColumnType::Int | ColumnType::Long) {
                        return Err(cerr("item_index is an int or long column".into()));
                    }
                }
                (Some(_), Some(_)) => return Err(cerr("give either path or from".into())),
                (None, path) => {
                    let p = path.clone().unwrap_or_else(|| c.name.clone());
                    let steps = parse_path(&p).map_err(cerr)?;
                    if let Some(each) = steps.iter().position(|s| *s == PathStep::Each) {
                        let prefix = &steps[..each];
                        if explode.as_deref() != Some(prefix) {
                            return Err(cerr(format!(
                                "bad path {p:?}: [] must follow the explode path ({})",
                                self.explode.as_deref().unwrap_or("none declared")
                            )));
                        }
                        if steps[each + 1..].contains(&PathStep::Each) {
                            return Err(cerr(format!("bad path {p:?}: [] twice")));
                        }
                    }
                }
            }
            match c.format {
                Some(ValueFormat::Iso | ValueFormat::EpochMillis)
                    if ty != ColumnType::Timestamp =>
                {
                    return Err(cerr(
                        "iso and epoch_millis are formats of timestamps".into(),
                    ));
                }
                Some(ValueFormat::NumberText) if !ty.is_number() => {
                    return Err(cerr("number_text is a format of numbers".into()));
                }
                _ => {}
            }
            if let Some([lo, hi]) = c.range {
                if !ty.is_number() || lo > hi {
                    return Err(cerr("range [low, high] bounds a number column".into()));
                }
            }
            columns.push((c.name.clone(), ty));
        }
        if columns.is_empty() {
            return Err(err(None, "no columns".into()));
        }
        if self.key.is_empty() {
            return Err(err(None, "key: at least one column".into()));
        }
        for k in &self.key {
            match columns.iter().find(|(n, _)| n == k) {
                None => return Err(err(None, format!("key column {k:?} is not a column"))),
                // The types record identity reads back from the table to compare keys.
                Some((
                    _,
                    ColumnType::String
                    | ColumnType::Int
                    | ColumnType::Long
                    | ColumnType::Date
                    | ColumnType::Timestamp,
                )) => {}
                Some((_, t)) => {
                    return Err(err(
                        None,
                        format!("key column {k:?} is a {t}: a key is a string, int, long, date or timestamp"),
                    ))
                }
            }
        }
        let p = &self.partition;
        let source_type = if p.column == "ingest_on" {
            Some(ColumnType::Date)
        } else {
            columns
                .iter()
                .find(|(n, _)| *n == p.column)
                .map(|(_, t)| *t)
        };
        match (source_type, p.transform) {
            (None, _) => {
                return Err(err(
                    None,
                    format!("partition column {:?} is not a column", p.column),
                ))
            }
            (Some(ColumnType::Date | ColumnType::Timestamp), _)
            | (Some(_), PartitionTransform::Identity) => {}
            (Some(t), tr) => {
                return Err(err(
                    None,
                    format!(
                        "partition {} of {:?} needs a date or timestamp, not {t}",
                        format!("{tr:?}").to_lowercase(),
                        p.column
                    ),
                ))
            }
        }
        Ok(columns)
    }

    /// The data columns with their types (the spec is validated: types parse).
    pub fn data_columns(&self) -> Vec<(String, ColumnType)> {
        self.columns
            .iter()
            .filter_map(|c| {
                let c = c.get_ref();
                c.ty.parse().ok().map(|t| (c.name.clone(), t))
            })
            .collect()
    }

    /// The Iceberg schema: data columns (optional but for the key), `record_hash`, metadata.
    pub fn iceberg_schema(&self, table: &str) -> crate::error::Result<Schema> {
        let cols = self.data_columns();
        table_schema(
            table,
            cols.iter().map(|(n, t)| (n.as_str(), t.iceberg())),
            &self.key.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    pub fn partition_spec(&self, table: &str) -> crate::error::Result<UnboundPartitionSpec> {
        let schema = self.iceberg_schema(table)?;
        let p = &self.partition;
        let field = schema.field_by_name(&p.column).ok_or_else(|| {
            crate::error::Error::Configuration(format!("table {table}: no column {}", p.column))
        })?;
        let name = match p.transform {
            PartitionTransform::Identity => p.column.clone(),
            t => format!("{}_{}", p.column, format!("{t:?}").to_lowercase()),
        };
        UnboundPartitionSpec::builder()
            .add_partition_field(field.id, name, p.transform.into())
            .map(|b| b.build())
            .map_err(|e| {
                crate::error::Error::Configuration(format!("partition spec of {table}: {e}"))
            })
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The JSON Schema of `pipeline.toml`, as published in `pipelines/pipeline.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PipelineSpec);
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_path_finds_the_array_or_names_what_it_found() {
        let body =
            serde_json::json!({"meta": {"n": 2}, "pages": [{"items": [{"a": 1}, {"a": 2}]}]});
        let p = RecordsPath::parse("pages[0].items").unwrap();
        assert_eq!(p.records(&body, "GET /x").unwrap().len(), 2);
        let err = |path: &str| {
            RecordsPath::parse(path)
                .unwrap()
                .records(&body, "GET /x")
                .unwrap_err()
                .to_string()
        };
        assert!(err("pages[1].items").contains("no item [1] in an array"));
        assert!(err("meta.items").contains("no field \"items\" in an object"));
        assert!(err("meta.n").contains("found a number, not an array"));
        let e = err("meta");
        assert!(e.contains("GET /x") && e.contains("\"meta\""), "{e}");
        let mixed = serde_json::json!({"data": [{"a": 1}, 7]});
        let e = RecordsPath::parse("data")
            .unwrap()
            .records(&mixed, "GET /x")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("record 1 is a number, not an object"),
            "{e}"
        );
        assert!(RecordsPath::parse("data[]").is_err());
    }

    #[test]
    fn repo_relative_resolves_dots_lexically() {
        assert_eq!(
            repo_relative("pipelines/deftunes/../../dbt_modeling"),
            "dbt_modeling"
        );
        assert_eq!(
            repo_relative("pipelines/sparkify/./dbt/"),
            "pipelines/sparkify/dbt"
        );
    }

    #[test]
    fn types_parse_with_decimal_bounds() {
        assert_eq!(
            "decimal(10, 2)".parse::<ColumnType>(),
            Ok(ColumnType::Decimal {
                precision: 10,
                scale: 2
            })
        );
        assert!("decimal(40,2)".parse::<ColumnType>().is_err());
        assert!("decimal(4,5)".parse::<ColumnType>().is_err());
        assert!("varchar"
            .parse::<ColumnType>()
            .unwrap_err()
            .contains("unknown type"));
        for t in [
            "string",
            "int",
            "long",
            "float",
            "double",
            "date",
            "timestamp",
            "boolean",
        ] {
            assert_eq!(t.parse::<ColumnType>().unwrap().to_string(), t);
        }
    }

    #[test]
    fn paths_parse_fields_indexes_and_each() {
        assert_eq!(
            parse_path("a.b[0][]").unwrap(),
            vec![
                PathStep::Field("a".into()),
                PathStep::Field("b".into()),
                PathStep::Index(0),
                PathStep::Each
            ]
        );
        for bad in ["", "a..b", "a[x]", "a[0", "a]"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
