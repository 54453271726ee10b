//! A table evolves in place when its declared columns change: one schema update in the catalog,
//! the same table, and older snapshots stay readable with the schema they were written with.

use std::sync::Arc;

use arrow_array::{Array, StringArray};
use deftunes::transform::catalog::{evolve_schema, SchemaChange};
use deftunes::transform::tables::TableKind;
use deftunes_local::{Dataset, Scale};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

mod common;
use common::{col, fixture, ndjson, read_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_gains_and_loses_columns_in_place_and_old_rows_stay_readable() {
    let f = fixture(&[]).await;
    let ds = Dataset::generate(
        7,
        &Scale {
            songs: 50,
            users: 40,
            sessions: 10,
            ..Scale::default()
        },
    );
    let key =
        "landing_zone/api/users/ingest_on=2020-01-01/users_2020-01-01_2020-01-31.part-00000.jsonl";
    let obj = f.land(key, &ndjson(&ds.users)).await;
    f.transformer.transform_object(&obj).await.unwrap();
    let before = f.table(TableKind::Users).await;
    let first_snapshot = before.metadata().current_snapshot_id().unwrap();

    // The spec gains `email` and loses `timezone`.
    let current = before.metadata().current_schema().clone();
    let mut fields: Vec<Arc<NestedField>> = current
        .as_struct()
        .fields()
        .iter()
        .filter(|c| c.name != "timezone")
        .cloned()
        .collect();
    fields.push(Arc::new(NestedField::optional(
        1000,
        "email",
        Type::Primitive(PrimitiveType::String),
    )));
    let desired = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(current.identifier_field_ids())
        .build()
        .unwrap();
    let catalog = f.transformer.catalog().clone();
    let (after, change) = evolve_schema(catalog.as_ref(), before, &desired)
        .await
        .unwrap();
    assert_eq!(
        change,
        SchemaChange {
            add: vec![("email".into(), PrimitiveType::String)],
            drop: vec!["timezone".into()],
        }
    );

    // One table, evolved: reloaded from the catalog, the new schema is current.
    let reloaded = f.table(TableKind::Users).await;
    let schema = reloaded.metadata().current_schema();
    assert!(schema.field_by_name("email").is_some());
    assert!(schema.field_by_name("timezone").is_none());
    assert_eq!(reloaded.metadata().schemas_iter().count(), 2);
    assert_eq!(
        reloaded.metadata().location(),
        after.metadata().location(),
        "the same table"
    );

    // The first snapshot still reads with the schema it was written with (iceberg-rust scans a
    // snapshot with its own schema, so the new columns show from the first commit after the
    // change, older files reading them as null by field id).
    let old = read_table(&reloaded, Some(first_snapshot)).await;
    let rows: usize = old.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, ds.users.len());
    let timezones: usize = old
        .iter()
        .map(|b| b.num_rows() - col::<StringArray>(b, "timezone").null_count())
        .sum();
    assert!(timezones > 0, "old rows keep their timezone");

    // Evolving again to the same schema changes nothing.
    let (_, again) = evolve_schema(catalog.as_ref(), reloaded, &desired)
        .await
        .unwrap();
    assert_eq!(again, SchemaChange::default());
}
