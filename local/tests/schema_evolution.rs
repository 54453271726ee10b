//! A table evolves in place when its pipeline spec's columns change: the next object the
//! transform takes brings the table to the spec in one schema update; the same table, older rows
//! read the added column as null, and older snapshots stay readable with their own schema.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::{Array, StringArray};
use deftunes::config::Env;
use deftunes::transform::{TransformConfig, Transformer};
use deftunes_local::{Dataset, Scale};

mod common;
use common::{col, env_of, ndjson, read_table};

/// A copy of the DeFtunes pipeline folder whose spec is `edit`ed.
fn pipeline_copy(to: &Path, edit: impl FnOnce(String) -> String) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/deftunes");
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

async fn transformer(env: &HashMap<String, String>) -> Transformer {
    Transformer::new(TransformConfig::from_env(env).unwrap(), env as &dyn Env)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_gains_and_loses_columns_evolves_its_table_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let spec_dir = dir.path().join("pipeline");
    pipeline_copy(&spec_dir, |s| s);
    let spec = spec_dir.display().to_string();
    let env = env_of(dir.path(), &[("PIPELINE_DIR", &spec)]);
    let ds = Dataset::generate(
        7,
        &Scale {
            songs: 50,
            users: 40,
            sessions: 10,
            ..Scale::default()
        },
    );
    let (first, second) = ds.users.split_at(20);
    let t = transformer(&env).await;
    let key = |d: &str| format!("landing_zone/api/users/ingest_on={d}/users.part-00000.jsonl");
    t.lake()
        .put_bytes(&key("2020-01-01"), &ndjson(first))
        .await
        .unwrap();
    t.transform_object(&deftunes::transform::events::ObjectRef {
        key: key("2020-01-01"),
        version: None,
    })
    .await
    .unwrap();
    let ident = t.table_ident("users");
    let before = t.catalog().load_table(&ident).await.unwrap();
    let first_snapshot = before.metadata().current_snapshot_id().unwrap();

    // The spec gains `email` (after `user_lastname`) and loses `timezone`.
    pipeline_copy(&spec_dir, |s| {
        s.replace(
            "  { name = \"timezone\", type = \"string\", path = \"user_location[4]\" },\n",
            "",
        )
        .replace(
            "  { name = \"user_lastname\", type = \"string\" },\n",
            "  { name = \"user_lastname\", type = \"string\" },\n  { name = \"email\", type = \"string\" },\n",
        )
    });
    let t = transformer(&env).await;
    let mut records: Vec<serde_json::Value> = second
        .iter()
        .map(|u| serde_json::to_value(u).unwrap())
        .collect();
    for (i, r) in records.iter_mut().enumerate() {
        r["email"] = format!("user{i}@example.com").into();
    }
    t.lake()
        .put_bytes(&key("2020-02-01"), &ndjson(&records))
        .await
        .unwrap();
    let outcome = t
        .transform_object(&deftunes::transform::events::ObjectRef {
            key: key("2020-02-01"),
            version: None,
        })
        .await
        .unwrap();
    assert_eq!(outcome.rows_committed, second.len() as u64);

    // One table, evolved in place.
    let after = t.catalog().load_table(&ident).await.unwrap();
    assert_eq!(after.metadata().location(), before.metadata().location());
    assert_eq!(after.metadata().schemas_iter().count(), 2);
    let schema = after.metadata().current_schema();
    assert!(schema.field_by_name("email").is_some());
    assert!(schema.field_by_name("timezone").is_none());

    // Every row reads at the current snapshot: the older ones with a null email.
    let now = read_table(&after, None).await;
    let rows: usize = now.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, ds.users.len());
    let emails: usize = now
        .iter()
        .map(|b| b.num_rows() - col::<StringArray>(b, "email").null_count())
        .sum();
    assert_eq!(
        emails,
        second.len(),
        "older rows read the added column as null"
    );
    assert!(now.iter().all(|b| b.column_by_name("timezone").is_none()));

    // The first snapshot still reads with the schema it was written with.
    let old = read_table(&after, Some(first_snapshot)).await;
    assert_eq!(old.iter().map(|b| b.num_rows()).sum::<usize>(), first.len());
    let timezones: usize = old
        .iter()
        .map(|b| b.num_rows() - col::<StringArray>(b, "timezone").null_count())
        .sum();
    assert!(timezones > 0, "old rows keep their timezone");

    // A change Iceberg cannot make in place is refused, naming the table and the column.
    pipeline_copy(&spec_dir, |s| {
        s.replace(
            "  { name = \"user_name\", type = \"string\" },",
            "  { name = \"user_name\", type = \"int\" },",
        )
    });
    let t = transformer(&env).await;
    t.lake()
        .put_bytes(&key("2020-03-01"), &ndjson(&records))
        .await
        .unwrap();
    let e = t
        .transform_object(&deftunes::transform::events::ObjectRef {
            key: key("2020-03-01"),
            version: None,
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("user_name") && e.to_string().contains("users"),
        "{e}"
    );
    let unchanged = t.catalog().load_table(&ident).await.unwrap();
    assert_eq!(unchanged.metadata().schemas_iter().count(), 2);
}
