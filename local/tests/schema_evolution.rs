//! A table evolves in place when its pipeline spec's columns change: the next object the
//! transform takes brings the table to the spec in one schema update; the same table, older rows
//! read the added column as null, and older snapshots stay readable with their own schema.

use std::collections::HashMap;

use arrow_array::{Array, StringArray};
use deftunes::config::Env;
use deftunes::transform::{TransformConfig, Transformer};
use deftunes_local::{Dataset, Scale};

mod common;
use common::{col, env_of, ndjson, pipeline_copy, read_table};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_widens_types_evolves_its_table_in_place_and_older_rows_read_promoted() {
    use arrow_array::{Float64Array, Int64Array};
    let dir = tempfile::tempdir().unwrap();
    let spec_dir = dir.path().join("pipeline");
    pipeline_copy(&spec_dir, |s| s);
    let spec = spec_dir.display().to_string();
    let env = env_of(dir.path(), &[("PIPELINE_DIR", &spec)]);
    let ds = Dataset::generate(
        11,
        &Scale {
            songs: 60,
            users: 5,
            sessions: 1,
            ..Scale::default()
        },
    );
    let (first, second) = ds.songs.split_at(25);
    let key = |d: &str| format!("landing_zone/rds/songs/ingest_on={d}/songs.part-00000.jsonl");
    let transform = |t: Transformer, day: &'static str, body: Vec<u8>| async move {
        t.lake().put_bytes(&key(day), &body).await.unwrap();
        let outcome = t
            .transform_object(&deftunes::transform::events::ObjectRef {
                key: key(day),
                version: None,
            })
            .await;
        (t, outcome)
    };
    let (t, first_outcome) = transform(transformer(&env).await, "2020-01-01", ndjson(first)).await;
    assert_eq!(first_outcome.unwrap().rows_committed, first.len() as u64);
    let ident = t.table_ident("songs");
    let before = t.catalog().load_table(&ident).await.unwrap();
    let first_snapshot = before.metadata().current_snapshot_id().unwrap();

    // int to long and float to double, as Iceberg allows in place.
    pipeline_copy(&spec_dir, |s| {
        s.replace(
            "  { name = \"year\", type = \"int\" },",
            "  { name = \"year\", type = \"long\" },",
        )
        .replace(
            "  { name = \"duration\", type = \"float\" },",
            "  { name = \"duration\", type = \"double\" },",
        )
    });
    // A year beyond int's range only a long column holds.
    let mut records: Vec<serde_json::Value> = second
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    records[0]["year"] = serde_json::json!(3_000_000_000_i64);
    records[0]["duration"] = serde_json::json!(123.456_789_012_345_f64);
    let (t, outcome) = transform(transformer(&env).await, "2020-02-01", ndjson(&records)).await;
    assert_eq!(outcome.unwrap().rows_committed, second.len() as u64);

    // The same table, its schema widened: every row reads as long and double, the older rows'
    // values promoted unchanged.
    let after = t.catalog().load_table(&ident).await.unwrap();
    assert_eq!(after.metadata().uuid(), before.metadata().uuid());
    assert_eq!(after.metadata().schemas_iter().count(), 2);
    let schema = after.metadata().current_schema();
    let year = schema.field_by_name("year").unwrap();
    assert_eq!(year.field_type.to_string(), "long");
    assert_eq!(
        year.id,
        before
            .metadata()
            .current_schema()
            .field_by_name("year")
            .unwrap()
            .id
    );
    assert_eq!(
        schema
            .field_by_name("duration")
            .unwrap()
            .field_type
            .to_string(),
        "double"
    );
    let now = read_table(&after, None).await;
    let mut years = HashMap::new();
    let mut durations = HashMap::new();
    for b in &now {
        let ids = col::<StringArray>(b, "song_id");
        let y = col::<Int64Array>(b, "year");
        let d = col::<Float64Array>(b, "duration");
        for i in 0..b.num_rows() {
            years.insert(ids.value(i).to_string(), y.value(i));
            durations.insert(ids.value(i).to_string(), d.value(i));
        }
    }
    assert_eq!(years.len(), ds.songs.len(), "every song once");
    for s in first {
        assert_eq!(years[&s.song_id], i64::from(s.year), "{}", s.song_id);
        assert_eq!(
            durations[&s.song_id],
            f64::from(s.duration),
            "{}",
            s.song_id
        );
    }
    assert_eq!(years[&second[0].song_id], 3_000_000_000);
    assert_eq!(durations[&second[0].song_id], 123.456_789_012_345);

    // The first snapshot still reads with its own schema.
    let old = read_table(&after, Some(first_snapshot)).await;
    assert_eq!(old.iter().map(|b| b.num_rows()).sum::<usize>(), first.len());

    // Narrowing back is refused, naming the table and the column, and changes nothing.
    pipeline_copy(&spec_dir, |s| s);
    let (t, refused) = transform(transformer(&env).await, "2020-03-01", ndjson(first)).await;
    let e = refused.unwrap_err();
    assert!(
        e.to_string().contains("songs") && e.to_string().contains("cannot change double to float"),
        "{e}"
    );
    let unchanged = t.catalog().load_table(&ident).await.unwrap();
    assert_eq!(unchanged.metadata().schemas_iter().count(), 2);
}

/// The widening swap is a compare-and-swap on the catalog's pointer: based on metadata another
/// commit has since replaced, it fails as a retryable conflict and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widening_based_on_stale_metadata_is_a_retryable_conflict() {
    use deftunes::transform::catalog::widen_columns;
    let dir = tempfile::tempdir().unwrap();
    let env = env_of(dir.path(), &[]);
    let ds = Dataset::generate(
        5,
        &Scale {
            songs: 20,
            users: 5,
            sessions: 1,
            ..Scale::default()
        },
    );
    let t = transformer(&env).await;
    let key = |d: &str| format!("landing_zone/rds/songs/ingest_on={d}/songs.part-00000.jsonl");
    for (day, part) in [
        ("2020-01-01", &ds.songs[..10]),
        ("2020-01-02", &ds.songs[10..]),
    ] {
        t.lake().put_bytes(&key(day), &ndjson(part)).await.unwrap();
        if day == "2020-01-02" {
            // Loaded before the second commit: stale once it lands.
            let stale = t
                .catalog()
                .load_table(&t.table_ident("songs"))
                .await
                .unwrap();
            t.transform_object(&deftunes::transform::events::ObjectRef {
                key: key(day),
                version: None,
            })
            .await
            .unwrap();
            let e = widen_columns(
                t.catalog().as_ref(),
                &t.config().catalog,
                stale,
                &[("year".into(), iceberg::spec::PrimitiveType::Long)],
            )
            .await
            .unwrap_err();
            assert_eq!(e.error_type(), "CommitConflict", "{e}");
            assert!(e.is_retryable());
        } else {
            t.transform_object(&deftunes::transform::events::ObjectRef {
                key: key(day),
                version: None,
            })
            .await
            .unwrap();
        }
    }
    let now = t
        .catalog()
        .load_table(&t.table_ident("songs"))
        .await
        .unwrap();
    assert_eq!(now.metadata().schemas_iter().count(), 1);
    assert_eq!(now.metadata().snapshots().count(), 2);
    let rows: usize = read_table(&now, None)
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, ds.songs.len());
}
