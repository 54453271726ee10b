//! The transform test fixture: a transformer over a temporary lake and SQLite catalog, with
//! read-back helpers. Shared by the integration tests of the transform stage.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use deftunes::config::Env;
use deftunes::storage::Lake;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::{ObjectOutcome, TransformConfig, Transformer};
use futures::TryStreamExt;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub transformer: Arc<Transformer>,
}

pub fn env_of(dir: &std::path::Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("LAKE_URI", format!("file://{}/lake", dir.display())),
        ("CATALOG", "sql".into()),
        (
            "CATALOG_URI",
            format!("sqlite:{}/catalog/catalog.db?mode=rwc", dir.display()),
        ),
        ("SPOOL_DIR", dir.display().to_string()),
        (
            "PIPELINE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes").to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub async fn fixture(extra: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let env = env_of(dir.path(), extra);
    let cfg = TransformConfig::from_env(&env).unwrap();
    let transformer = Arc::new(Transformer::new(cfg, &env as &dyn Env).await.unwrap());
    Fixture { dir, transformer }
}

impl Fixture {
    pub fn lake(&self) -> &Lake {
        self.transformer.lake()
    }

    pub async fn land(&self, key: &str, body: &[u8]) -> ObjectRef {
        self.lake().put_bytes(key, body).await.unwrap();
        ObjectRef {
            key: key.to_string(),
            version: None,
        }
    }

    pub async fn table(&self, kind: &str) -> iceberg::table::Table {
        self.transformer
            .catalog()
            .load_table(&self.transformer.table_ident(kind))
            .await
            .unwrap()
    }

    pub async fn scan(&self, kind: &str) -> Vec<RecordBatch> {
        read_table(&self.table(kind).await, None).await
    }

    pub async fn rows(&self, kind: &str) -> usize {
        self.scan(kind).await.iter().map(|b| b.num_rows()).sum()
    }

    /// The quarantine entries (`{"line", "reason", "record"...}`) of an outcome.
    pub async fn quarantined(&self, o: &ObjectOutcome) -> Vec<serde_json::Value> {
        let key = o.quarantine_key.as_deref().expect("a quarantine object");
        let text = String::from_utf8(self.lake().get_bytes(key).await.unwrap()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn snapshots(&self, kind: &str) -> usize {
        let table = self.table(kind).await;
        table.metadata().snapshots().count()
    }
}

/// Every row of the table's current snapshot, or of `snapshot`.
pub async fn read_table(table: &iceberg::table::Table, snapshot: Option<i64>) -> Vec<RecordBatch> {
    let mut scan = table.scan().select_all();
    if let Some(id) = snapshot {
        scan = scan.snapshot_id(id);
    }
    let stream = scan.build().unwrap().to_arrow().await.unwrap();
    stream.try_collect().await.unwrap()
}

pub fn ndjson<T: serde::Serialize>(records: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        serde_json::to_writer(&mut out, r).unwrap();
        out.push(b'\n');
    }
    out
}

pub fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                b.column_by_name(name).unwrap().data_type()
            )
        })
}

/// A copy of the DeFtunes pipeline folder whose spec is `edit`ed.
pub fn pipeline_copy(to: &std::path::Path, edit: impl FnOnce(String) -> String) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/deftunes");
    std::fs::create_dir_all(to.join("rules")).unwrap();
    for f in [
        "rules/users.json",
        "rules/sessions.json",
        "rules/songs.json",
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    let spec = std::fs::read_to_string(from.join("pipeline.toml")).unwrap();
    // The dbt project is not part of this test.
    let spec = spec.replace("[dbt]\nproject = \"../../dbt_modeling\"\n", "");
    std::fs::write(to.join("pipeline.toml"), edit(spec)).unwrap();
}
