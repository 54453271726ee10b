//! What the transform did, summed: per table over landing objects, and dataset rules over their
//! quality reports. The local run's summary and the run reports of the state machine both sum
//! outcomes this way, so their numbers mean the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quality::RuleResult;
use super::ObjectOutcome;

/// Object outcomes of one table, summed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeTotals {
    pub objects: u64,
    pub records_in: u64,
    pub records_committed: u64,
    /// Records the table already held (re-landed by an overlapping window or a full extract).
    pub records_unchanged: u64,
    pub records_quarantined: u64,
    pub rows_committed: u64,
    pub rows_unchanged: u64,
    /// Items quarantined one by one, their records' other items kept.
    pub rows_quarantined: u64,
}

/// One object's counts.
impl From<&ObjectOutcome> for OutcomeTotals {
    fn from(o: &ObjectOutcome) -> Self {
        OutcomeTotals {
            objects: 1,
            records_in: o.records_in,
            records_committed: o.records_committed,
            records_unchanged: o.records_unchanged,
            records_quarantined: o.records_quarantined,
            rows_committed: o.rows_committed,
            rows_unchanged: o.rows_unchanged,
            rows_quarantined: o.rows_quarantined,
        }
    }
}

impl OutcomeTotals {
    pub fn add(&mut self, o: &ObjectOutcome) {
        self.merge(&o.into());
    }

    pub fn merge(&mut self, other: &OutcomeTotals) {
        self.objects += other.objects;
        self.records_in += other.records_in;
        self.records_committed += other.records_committed;
        self.records_unchanged += other.records_unchanged;
        self.records_quarantined += other.records_quarantined;
        self.rows_committed += other.rows_committed;
        self.rows_unchanged += other.rows_unchanged;
        self.rows_quarantined += other.rows_quarantined;
    }

    /// Quarantined records per record read (0 when none was read).
    pub fn quarantine_rate(&self) -> f64 {
        if self.records_in == 0 {
            0.0
        } else {
            self.records_quarantined as f64 / self.records_in as f64
        }
    }

    /// Every record read is committed, unchanged or quarantined, exactly one of them.
    pub fn balanced(&self) -> bool {
        self.records_in
            == self.records_committed + self.records_unchanged + self.records_quarantined
    }
}

/// One dataset rule over several quality reports: its worst value and whether it always passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub worst_value: f64,
    pub threshold: f64,
    pub passed: bool,
    /// The quality report holding the worst value, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_report: Option<String>,
}

/// `<check> <column>` (`uniqueness user_id`): how a dataset rule is named in summaries.
pub fn rule_name(r: &RuleResult) -> String {
    format!(
        "{} {}",
        r.rule["check"].as_str().unwrap_or("rule"),
        r.column
    )
}

/// Adds one report's result of a rule to `rules` (by [`rule_name`]); `report` is the key of the
/// quality report it comes from, if it should be kept.
pub fn observe_rule(
    rules: &mut BTreeMap<String, RuleSummary>,
    r: &RuleResult,
    report: Option<&str>,
) {
    let e = rules.entry(rule_name(r)).or_insert(RuleSummary {
        worst_value: r.value,
        threshold: r.threshold,
        passed: true,
        worst_report: report.map(str::to_string),
    });
    if r.value < e.worst_value {
        e.worst_value = r.value;
        e.worst_report = report.map(str::to_string);
    }
    e.passed &= r.passed;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, value: f64, passed: bool) -> RuleResult {
        RuleResult {
            rule: serde_json::json!({"check": check, "column": "user_id", "min": 0.99}),
            column: "user_id".into(),
            value,
            threshold: 0.99,
            passed,
        }
    }

    #[test]
    fn rules_keep_the_worst_value_its_report_and_any_failure() {
        let mut rules = BTreeMap::new();
        observe_rule(
            &mut rules,
            &result("uniqueness", 1.0, true),
            Some("quality/a"),
        );
        observe_rule(
            &mut rules,
            &result("uniqueness", 0.5, false),
            Some("quality/b"),
        );
        observe_rule(
            &mut rules,
            &result("uniqueness", 0.9, true),
            Some("quality/c"),
        );
        let r = &rules["uniqueness user_id"];
        assert_eq!((r.worst_value, r.passed), (0.5, false));
        assert_eq!(r.worst_report.as_deref(), Some("quality/b"));
        // Without report keys the summary serializes as the local run's always did.
        let mut plain = BTreeMap::new();
        observe_rule(&mut plain, &result("completeness", 1.0, true), None);
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"completeness user_id": {"worst_value": 1.0, "threshold": 0.99, "passed": true}})
        );
    }

    #[test]
    fn totals_sum_merge_and_rate() {
        let mut a = OutcomeTotals {
            objects: 1,
            records_in: 10,
            records_committed: 6,
            records_unchanged: 2,
            records_quarantined: 2,
            ..Default::default()
        };
        assert!(a.balanced());
        assert_eq!(a.quarantine_rate(), 0.2);
        let b = a.clone();
        a.merge(&b);
        assert_eq!((a.objects, a.records_in, a.records_quarantined), (2, 20, 4));
        assert_eq!(OutcomeTotals::default().quarantine_rate(), 0.0);
        a.records_in += 1;
        assert!(!a.balanced());
    }
}
