//! Data quality rules, kept as data: one JSON rule file per table under `pipelines/<name>/rules/`.
//!
//! Record rules decide, row by row, what is committed and what is quarantined (with the rule as
//! the reason). Dataset rules are measured on the rows that were committed and end up in the
//! quality report; a failed dataset rule fails the stage (`DataQualityFailed`).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::tables::{Cell, ColumnType};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordRule {
    /// The value is present (not null, not missing).
    Complete { column: String },
    /// A present string has exactly `value` characters.
    Length { column: String, value: usize },
    /// A present number is at most `value`.
    Max { column: String, value: f64 },
    /// A present number is at least `value`.
    Min { column: String, value: f64 },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetRule {
    /// Distinct present values / present values >= `min`.
    Uniqueness { column: String, min: f64 },
    /// Present values / rows >= `min`.
    Completeness { column: String, min: f64 },
}

impl RecordRule {
    pub fn column(&self) -> &str {
        match self {
            RecordRule::Complete { column }
            | RecordRule::Length { column, .. }
            | RecordRule::Max { column, .. }
            | RecordRule::Min { column, .. } => column,
        }
    }
}

impl DatasetRule {
    pub fn column(&self) -> &str {
        match self {
            DatasetRule::Uniqueness { column, .. } | DatasetRule::Completeness { column, .. } => {
                column
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub table: String,
    #[serde(default)]
    pub description: String,
    pub record_rules: Vec<RecordRule>,
    pub dataset_rules: Vec<DatasetRule>,
}

impl RuleSet {
    /// A rule file's text, for `table`.
    pub fn parse(raw: &str, table: &str) -> Result<RuleSet> {
        let rules: RuleSet = serde_json::from_str(raw)
            .map_err(|e| Error::Configuration(format!("rules for {table}: {e}")))?;
        if rules.table != table {
            return Err(Error::Configuration(format!(
                "rules file for {table} names table {:?}",
                rules.table
            )));
        }
        Ok(rules)
    }

    /// The columns the rules name.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        let record = self.record_rules.iter().map(RecordRule::column);
        record.chain(self.dataset_rules.iter().map(DatasetRule::column))
    }

    /// Resolves column names against the table; an unknown column is a configuration error.
    pub fn compile(&self, table: &str, cols: &[(String, ColumnType)]) -> Result<CompiledRules> {
        let index = |c: &str| {
            cols.iter().position(|(n, _)| n == c).ok_or_else(|| {
                Error::Configuration(format!("rules for {table}: unknown column {c:?}"))
            })
        };
        let record = self
            .record_rules
            .iter()
            .map(|r| Ok((index(r.column())?, r.clone())))
            .collect::<Result<Vec<_>>>()?;
        let dataset = self
            .dataset_rules
            .iter()
            .map(|r| Ok((index(r.column())?, r.clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(CompiledRules { record, dataset })
    }
}

#[derive(Debug, Clone)]
pub struct CompiledRules {
    record: Vec<(usize, RecordRule)>,
    dataset: Vec<(usize, DatasetRule)>,
}

fn number(c: Cell<'_>) -> Option<f64> {
    match c {
        Cell::F64(v) => Some(v),
        Cell::F32(v) => Some(v as f64),
        Cell::I32(v) => Some(v as f64),
        Cell::I64(v) => Some(v as f64),
        _ => None,
    }
}

impl CompiledRules {
    /// The first record rule `row` breaks, as a quarantine reason.
    pub fn check_row(&self, row: &[Cell<'_>]) -> Option<String> {
        for (i, rule) in &self.record {
            let cell = row.get(*i).copied().unwrap_or(Cell::Null);
            let broken = match rule {
                RecordRule::Complete { column } => {
                    (cell == Cell::Null).then(|| format!("{column} is missing (rule complete)"))
                }
                RecordRule::Length { column, value } => match cell {
                    Cell::Str(s) if s.chars().count() != *value => Some(format!(
                        "{column} has length {} (rule length = {value})",
                        s.chars().count()
                    )),
                    _ => None,
                },
                RecordRule::Max { column, value } => number(cell)
                    .filter(|v| v > value)
                    .map(|v| format!("{column} = {v} is above {value} (rule max)")),
                RecordRule::Min { column, value } => number(cell)
                    .filter(|v| v < value)
                    .map(|v| format!("{column} = {v} is below {value} (rule min)")),
            };
            if broken.is_some() {
                return broken;
            }
        }
        None
    }

    pub fn metrics(&self) -> DatasetMetrics {
        DatasetMetrics {
            rows: 0,
            present: vec![0; self.dataset.len()],
            distinct: self.dataset.iter().map(|_| HashSet::new()).collect(),
            seen: self.dataset.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Feeds a committed row to the dataset metrics.
    pub fn observe(&self, m: &mut DatasetMetrics, row: &[Cell<'_>]) {
        m.rows += 1;
        for (k, (i, rule)) in self.dataset.iter().enumerate() {
            let cell = row.get(*i).copied().unwrap_or(Cell::Null);
            if cell == Cell::Null {
                continue;
            }
            m.present[k] += 1;
            if matches!(rule, DatasetRule::Uniqueness { .. }) {
                m.seen[k].push(value_hash(&cell));
            }
        }
    }

    pub fn evaluate(&self, m: &DatasetMetrics) -> Vec<RuleResult> {
        self.dataset
            .iter()
            .enumerate()
            .map(|(k, (_, rule))| {
                let (column, min, value) = match rule {
                    DatasetRule::Uniqueness { column, min } => (
                        column,
                        *min,
                        ratio(m.distinct_count(k) as u64, m.present[k]),
                    ),
                    DatasetRule::Completeness { column, min } => {
                        (column, *min, ratio(m.present[k], m.rows))
                    }
                };
                RuleResult {
                    rule: serde_json::to_value(rule).unwrap_or_default(),
                    column: column.clone(),
                    value,
                    threshold: min,
                    // Nothing committed: nothing to hold against the rule.
                    passed: m.rows == 0 || value >= min,
                }
            })
            .collect()
    }
}

fn value_hash(cell: &Cell<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same value hashes alike in every process.
    let mut h = std::hash::DefaultHasher::new();
    match cell {
        Cell::Str(s) => s.hash(&mut h),
        other => format!("{other:?}").hash(&mut h),
    }
    h.finish()
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

pub struct DatasetMetrics {
    rows: u64,
    present: Vec<u64>,
    /// 64-bit hashes of the values seen, not the values: 8 bytes per distinct id however long it
    /// is. Two of 10 million distinct ids collide with probability ~3e-6, which could only make
    /// a ratio look lower by one row in 10 million.
    distinct: Vec<HashSet<u64>>,
    /// Hashes observed and not counted yet: observing pushes, counting (a merge) inserts once.
    seen: Vec<Vec<u64>>,
}

impl DatasetMetrics {
    /// Adds the rows `other` observed (of the same rules): a chunk's metrics into the object's.
    /// A chunk only lists the hashes it saw; they are counted here, once.
    pub fn merge(&mut self, other: DatasetMetrics) {
        self.rows += other.rows;
        for (a, b) in self.present.iter_mut().zip(other.present) {
            *a += b;
        }
        for ((set, seen), (theirs, their_seen)) in self
            .distinct
            .iter_mut()
            .zip(&self.seen)
            .zip(other.distinct.into_iter().zip(other.seen))
        {
            debug_assert!(seen.is_empty(), "merged metrics observe nothing themselves");
            set.extend(theirs);
            set.extend(their_seen);
        }
    }

    /// Distinct values of rule `k`.
    fn distinct_count(&self, k: usize) -> usize {
        if self.seen[k].is_empty() {
            return self.distinct[k].len();
        }
        let mut all = self.distinct[k].clone();
        all.extend(&self.seen[k]);
        all.len()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleResult {
    pub rule: serde_json::Value,
    pub column: String,
    pub value: f64,
    pub threshold: f64,
    pub passed: bool,
}

/// The JSON report written under `quality/` for each landing object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityReport {
    pub table: String,
    pub source_key: String,
    pub source_version: String,
    pub ingest_on: String,
    pub records_in: u64,
    pub records_committed: u64,
    #[serde(default)]
    pub records_unchanged: u64,
    pub records_quarantined: u64,
    pub rows_committed: u64,
    #[serde(default)]
    pub rows_unchanged: u64,
    #[serde(default)]
    pub rows_quarantined: u64,
    pub quarantine_reasons: BTreeMap<String, u64>,
    pub unknown_fields: BTreeMap<String, u64>,
    pub dataset_rules: Vec<RuleResult>,
    pub passed: bool,
}

/// The reason without the value, so reports count reasons by kind.
pub fn reason_kind(reason: &str) -> String {
    let cut = [" = ", " has length ", ": "]
        .iter()
        .filter_map(|sep| reason.find(sep))
        .min()
        .unwrap_or(reason.len());
    let head = &reason[..cut];
    match reason.rfind("(rule ") {
        Some(r) if cut < r => format!("{head} {}", &reason[r..]),
        _ => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(table: &str) -> CompiledRules {
        super::super::tables::repo_tables("deftunes")
            .unwrap()
            .get(table)
            .unwrap()
            .rules()
            .clone()
    }

    fn users_columns() -> Vec<(String, ColumnType)> {
        vec![("user_id".into(), ColumnType::String)]
    }

    #[test]
    fn bad_rule_files_are_configuration_errors() {
        let e = RuleSet::parse(r#"{"table":"users","record_rules":[{"check":"complete","column":"nope"}],"dataset_rules":[]}"#, "users")
            .unwrap()
            .compile("users", &users_columns())
            .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = RuleSet::parse(r#"{"table":"users","record_rules":[{"check":"regex","column":"user_id"}],"dataset_rules":[]}"#, "users")
            .unwrap_err();
        assert_eq!(e.error_type(), "Configuration");
        assert!(RuleSet::parse(
            r#"{"table":"songs","record_rules":[],"dataset_rules":[]}"#,
            "users"
        )
        .is_err());
    }

    #[test]
    fn session_rules_quarantine_bad_ids_and_prices() {
        let rules = rules_of("sessions");
        let uuid = "6b287203-7cab-4f1a-b1a4-2b5076294682";
        let row = |user: Cell<'static>, price: Cell<'static>| {
            vec![
                user,
                Cell::Str(uuid),
                Cell::I32(0),
                Cell::Str("TRXKAGX128F9342DD7"),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                price,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
            ]
        };
        assert_eq!(
            rules.check_row(&row(Cell::Str(uuid), Cell::F64(1.99))),
            None
        );
        assert_eq!(rules.check_row(&row(Cell::Str(uuid), Cell::F64(2.0))), None);
        let r = rules
            .check_row(&row(Cell::Str(uuid), Cell::F64(2.5)))
            .unwrap();
        assert!(r.contains("price = 2.5 is above 2"), "{r}");
        assert!(rules
            .check_row(&row(Cell::Str(uuid), Cell::F64(-0.1)))
            .unwrap()
            .contains("below"));
        assert!(rules
            .check_row(&row(Cell::Str("short"), Cell::F64(1.0)))
            .unwrap()
            .contains("user_id has length 5"));
        assert!(rules
            .check_row(&row(Cell::Null, Cell::F64(1.0)))
            .unwrap()
            .contains("user_id is missing"));
        assert!(rules
            .check_row(&row(Cell::Str(uuid), Cell::Null))
            .unwrap()
            .contains("price is missing"));
    }

    #[test]
    fn uniqueness_is_measured_on_committed_rows() {
        let rules = rules_of("users");
        let mut m = rules.metrics();
        let ids: Vec<String> = (0..100).map(|i| format!("{i:036}")).collect();
        for id in &ids {
            rules.observe(&mut m, &[Cell::Str(id)]);
        }
        assert!(rules.evaluate(&m)[0].passed);
        for id in &ids[..10] {
            rules.observe(&mut m, &[Cell::Str(id)]);
        }
        let r = &rules.evaluate(&m)[0];
        assert!((r.value - 100.0 / 110.0).abs() < 1e-9);
        assert!(!r.passed, "{r:?}");
    }

    #[test]
    fn reasons_are_grouped_by_kind() {
        assert_eq!(
            reason_kind("price = 2.5 is above 2 (rule max)"),
            "price (rule max)"
        );
        assert_eq!(
            reason_kind("user_id has length 5 (rule length = 36)"),
            "user_id (rule length = 36)"
        );
        assert_eq!(
            reason_kind("malformed JSON: expected value at line 1 column 2"),
            "malformed JSON"
        );
        assert_eq!(
            reason_kind("user_id is missing (rule complete)"),
            "user_id is missing (rule complete)"
        );
    }
}
