//! Table maintenance: removing the files no snapshot references (Iceberg's
//! `remove_orphan_files`).
//!
//! A failed or abandoned commit leaves files behind: the data files of a crashed invocation,
//! and the manifests, manifest lists and metadata files each lost commit attempt writes. The
//! transform deletes its own data files when an attempt ends without landing; what a crash leaves
//! is removed here. A file is deleted only when no snapshot, manifest or metadata file of the
//! table references it *and* it is older than the safety age, so files of a commit in flight
//! (written, not yet referenced) are never touched.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use iceberg::table::Table;
use iceberg::{Catalog, NamespaceIdent};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Lake;

/// The shortest safety age accepted: a commit in flight (files written, snapshot not yet
/// committed) never lasts that long (a Lambda invocation lasts at most 15 minutes).
pub const MIN_SAFETY_AGE: Duration = Duration::from_secs(3600);

/// What the cleanup did to one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrphanReport {
    pub table: String,
    /// Files under the table's location.
    pub files: u64,
    /// Files some snapshot or metadata file references.
    pub referenced: u64,
    /// Unreferenced files kept because they are younger than the safety age.
    pub kept_young: u64,
    /// Lake keys of the files deleted.
    pub deleted: Vec<String>,
}

/// Every file the table's metadata references: metadata files (current and logged), manifest
/// lists, manifests and data files of every snapshot.
pub async fn referenced_files(table: &Table) -> Result<HashSet<String>> {
    let metadata = table.metadata();
    let mut out: HashSet<String> = metadata
        .metadata_log()
        .iter()
        .map(|m| m.metadata_file.clone())
        .collect();
    if let Some(loc) = table.metadata_location() {
        out.insert(loc.to_string());
    }
    let mut manifests = HashSet::new();
    for snapshot in metadata.snapshots() {
        out.insert(snapshot.manifest_list().to_string());
        let list = table.manifest_list_reader(snapshot).load().await?;
        for m in list.entries() {
            if manifests.insert(m.manifest_path.clone()) {
                let manifest = m.load_manifest(table.file_io()).await?;
                out.extend(manifest.entries().iter().map(|e| e.file_path().to_string()));
            }
        }
    }
    out.extend(manifests);
    out.extend(
        metadata
            .statistics_iter()
            .map(|s| s.statistics_path.clone()),
    );
    Ok(out)
}

/// Deletes the files under `table`'s location that nothing references and that are older than
/// `older_than` at `now`.
pub async fn remove_orphan_files(
    lake: &Lake,
    table: &Table,
    older_than: Duration,
    now: SystemTime,
) -> Result<OrphanReport> {
    if older_than < MIN_SAFETY_AGE {
        return Err(Error::InvalidInput(format!(
            "older_than {older_than:?} is below the safety age of {MIN_SAFETY_AGE:?}: files of a commit in flight could be deleted"
        )));
    }
    remove_unreferenced(lake, table, older_than, now).await
}

/// [`remove_orphan_files`] without the safety-age floor: tests only, with no commit in flight.
pub async fn remove_unreferenced(
    lake: &Lake,
    table: &Table,
    older_than: Duration,
    now: SystemTime,
) -> Result<OrphanReport> {
    let location = table.metadata().location().trim_end_matches('/');
    let prefix = lake.key_of(location).ok_or_else(|| {
        Error::Configuration(format!(
            "table location {location} is outside the lake {}",
            lake.uri_of("")
        ))
    })?;
    // A reference the lake cannot map (another spelling of the address) fails the run: its file
    // would otherwise look unreferenced.
    let referenced: HashSet<String> = referenced_files(table)
        .await?
        .iter()
        .map(|uri| {
            lake.key_of(uri).ok_or_else(|| {
                Error::Configuration(format!(
                    "table {}: referenced file {uri} is outside the lake {}: nothing removed",
                    table.identifier(),
                    lake.uri_of("")
                ))
            })
        })
        .collect::<Result<_>>()?;
    let mut report = OrphanReport {
        table: table.identifier().to_string(),
        ..OrphanReport::default()
    };
    for (key, modified) in lake.list_modified(&format!("{prefix}/")).await? {
        report.files += 1;
        if referenced.contains(&key) {
            report.referenced += 1;
            continue;
        }
        let age = now.duration_since(modified).unwrap_or_default();
        if age < older_than {
            report.kept_young += 1;
            continue;
        }
        lake.delete(&key).await?;
        report.deleted.push(key);
    }
    if !report.deleted.is_empty() {
        tracing::info!(table = %report.table, deleted = report.deleted.len(), "removed orphan files");
    }
    Ok(report)
}

/// Runs [`remove_orphan_files`] on every table of `namespace`.
pub async fn remove_orphan_files_in(
    catalog: &dyn Catalog,
    lake: &Lake,
    namespace: &str,
    older_than: Duration,
) -> Result<Vec<OrphanReport>> {
    let ns = NamespaceIdent::new(namespace.to_string());
    if !catalog.namespace_exists(&ns).await? {
        return Ok(Vec::new());
    }
    let now = SystemTime::now();
    let mut reports = Vec::new();
    for ident in catalog.list_tables(&ns).await? {
        let table = catalog.load_table(&ident).await?;
        reports.push(remove_orphan_files(lake, &table, older_than, now).await?);
    }
    Ok(reports)
}

/// A maintenance request: `{"maintenance": "remove_orphan_files", "older_than_hours": 72}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "maintenance", rename_all = "snake_case", deny_unknown_fields)]
pub enum Maintenance {
    RemoveOrphanFiles { older_than_hours: u64 },
}

impl Maintenance {
    /// The request in `payload`, if it is one.
    pub fn parse(payload: &serde_json::Value) -> Option<Result<Maintenance>> {
        payload.get("maintenance")?;
        Some(serde_json::from_value(payload.clone()).map_err(|e| {
            Error::InvalidInput(format!(
                "maintenance payload {payload}: {e} (expected {{\"maintenance\": \"remove_orphan_files\", \"older_than_hours\": N}})"
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maintenance_payloads_parse_or_name_the_problem() {
        assert_eq!(
            Maintenance::parse(
                &json!({"maintenance": "remove_orphan_files", "older_than_hours": 72})
            )
            .unwrap()
            .unwrap(),
            Maintenance::RemoveOrphanFiles {
                older_than_hours: 72
            }
        );
        assert!(Maintenance::parse(&json!({"keys": []})).is_none());
        for bad in [
            json!({"maintenance": "compact"}),
            json!({"maintenance": "remove_orphan_files"}),
            json!({"maintenance": "remove_orphan_files", "older_than_hours": -1}),
        ] {
            let e = Maintenance::parse(&bad).unwrap().unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{bad}");
            assert!(e.to_string().contains("remove_orphan_files"), "{e}");
        }
    }
}
