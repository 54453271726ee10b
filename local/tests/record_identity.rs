//! Every source record counted once: re-runs, overlapping windows, re-extracts, redeliveries after
//! snapshot expiry, lost commit acknowledgements, crashes and concurrent writers from several
//! processes. Each test counts rows per natural key afterwards.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow_array::{Array, Float64Array, Int32Array, StringArray};
use async_trait::async_trait;
use chrono::NaiveDate;
use deftunes::transform::catalog::{Hooked, UpdateHook};
use deftunes::transform::maintenance::{referenced_files, remove_unreferenced};
use deftunes::transform::{Preparation, Status, TransformConfig, Transformer};
use deftunes_local::{Dataset, Scale, Session};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableCommit};

mod common;
use common::{col, env_of, fixture, ndjson, Fixture};

fn dataset() -> Dataset {
    Dataset::generate(
        11,
        &Scale {
            songs: 300,
            users: 80,
            sessions: 600,
            ..Scale::default()
        },
    )
}

fn sessions_key(ingest_on: &str, from: &str, to: &str, part: usize) -> String {
    format!(
        "landing_zone/api/sessions/ingest_on={ingest_on}/sessions_{from}_{to}.part-{part:05}.jsonl"
    )
}

fn users_key(ingest_on: &str, part: usize) -> String {
    format!("landing_zone/api/users/ingest_on={ingest_on}/users_{ingest_on}_{ingest_on}.part-{part:05}.jsonl")
}

fn songs_key(ingest_on: &str) -> String {
    format!("landing_zone/rds/songs/ingest_on={ingest_on}/songs.part-00000.jsonl")
}

/// The sessions the API returns for a window (by session start day, both ends inclusive).
fn window(ds: &Dataset, from: &str, to: &str) -> Vec<Session> {
    let (from, to) = (day(from), day(to));
    ds.sessions
        .iter()
        .filter(|s| (from..=to).contains(&s.session_start_time.date()))
        .cloned()
        .collect()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn items(sessions: &[Session]) -> HashSet<(String, i32)> {
    sessions
        .iter()
        .flat_map(|s| (0..s.session_items.len()).map(|i| (s.session_id.clone(), i as i32)))
        .collect()
}

/// Rows per natural key of a table: every count must be 1 for a table without changes.
async fn rows_per_key(f: &Fixture, kind: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for b in f.scan(kind).await {
        for i in 0..b.num_rows() {
            let key = match kind {
                "sessions" => format!(
                    "{}#{}",
                    col::<StringArray>(&b, "session_id").value(i),
                    col::<Int32Array>(&b, "item_index").value(i)
                ),
                "users" => col::<StringArray>(&b, "user_id").value(i).to_string(),
                "songs" => col::<StringArray>(&b, "track_id").value(i).to_string(),
                other => panic!("no key of table {other}"),
            };
            *out.entry(key).or_default() += 1;
        }
    }
    out
}

async fn assert_once_each(f: &Fixture, kind: &str, expected_keys: usize) {
    let per_key = rows_per_key(f, kind).await;
    let dup: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).take(3).collect();
    assert!(dup.is_empty(), "{}: keys held twice: {dup:?}", kind);
    assert_eq!(per_key.len(), expected_keys, "{}", kind);
}

async fn transform(f: &Fixture, key: &str, body: &[u8]) -> deftunes::transform::ObjectOutcome {
    let obj = f.land(key, body).await;
    f.transformer.transform_object(&obj).await.unwrap()
}

/// The files under the table's folder, as full paths, next to what its metadata references.
async fn files_on_disk_and_referenced(
    f: &Fixture,
    kind: &str,
) -> (HashSet<String>, HashSet<String>) {
    let table = f.table(kind).await;
    let root = table
        .metadata()
        .location()
        .trim_start_matches("file://")
        .to_string();
    let mut on_disk = HashSet::new();
    let mut stack = vec![std::path::PathBuf::from(&root)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                on_disk.insert(p.display().to_string());
            }
        }
    }
    let referenced = referenced_files(&table)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.trim_start_matches("file://").to_string())
        .collect();
    (on_disk, referenced)
}

async fn every_referenced_file_exists(f: &Fixture, kind: &str) {
    let (on_disk, referenced) = files_on_disk_and_referenced(f, kind).await;
    let missing: Vec<_> = referenced.difference(&on_disk).collect();
    assert!(missing.is_empty(), "referenced but missing: {missing:?}");
}

/// Removes unreferenced files of any age; afterwards disk and metadata agree exactly.
async fn cleanup_and_compare(f: &Fixture, kind: &str) {
    let table = f.table(kind).await;
    let later = SystemTime::now() + Duration::from_secs(60);
    remove_unreferenced(f.lake(), &table, Duration::ZERO, later)
        .await
        .unwrap();
    let (on_disk, referenced) = files_on_disk_and_referenced(f, kind).await;
    assert_eq!(on_disk, referenced, "after cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_windows_and_backfills_hold_each_item_once() {
    let f = fixture(&[]).await;
    let ds = dataset();
    // January daily-style, then a backfill Jan 15 - Feb 15, then Jan 20 alone with another
    // ingest_on (an override), each landing what the API returns for its window.
    let runs = [
        ("2020-01-01", "2020-01-01", "2020-01-31"),
        ("2020-02-16", "2020-01-15", "2020-02-15"),
        ("2020-03-01", "2020-01-20", "2020-01-20"),
    ];
    let mut expected = HashSet::new();
    let mut appended = 0;
    for (ingest_on, from, to) in runs {
        let w = window(&ds, from, to);
        let fresh = items(&w).difference(&expected).count() as u64;
        expected.extend(items(&w));
        let o = transform(&f, &sessions_key(ingest_on, from, to, 0), &ndjson(&w)).await;
        assert_eq!(o.rows_committed, fresh, "{from}..{to}: {o:?}");
        assert_eq!(
            o.records_in,
            o.records_committed + o.records_unchanged + o.records_quarantined
        );
        appended += o.rows_committed;
    }
    assert!(expected.len() > 100, "the windows hold data");
    assert_eq!(appended as usize, expected.len());
    assert_once_each(&f, "sessions", expected.len()).await;

    // The same users landed by every window: held once.
    for (ingest_on, _, _) in runs {
        transform(&f, &users_key(ingest_on, 0), &ndjson(&ds.users)).await;
    }
    assert_once_each(&f, "users", ds.users.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_check_reads_only_the_files_of_the_days_it_touches() {
    let f = fixture(&[]).await;
    let ds = dataset();
    for (from, to) in [
        ("2020-01-01", "2020-01-31"),
        ("2020-02-01", "2020-02-29"),
        ("2020-03-01", "2020-03-31"),
    ] {
        let o = transform(
            &f,
            &sessions_key(from, from, to, 0),
            &ndjson(&window(&ds, from, to)),
        )
        .await;
        assert_eq!(o.status, Status::Committed);
    }
    // A re-extract of Feb 10 touches one day: of the three monthly files, only February's is read.
    let day = window(&ds, "2020-02-10", "2020-02-10");
    assert!(!day.is_empty());
    let o = transform(
        &f,
        &sessions_key("2020-04-01", "2020-02-10", "2020-02-10", 0),
        &ndjson(&day),
    )
    .await;
    assert_eq!(
        (o.status, o.identity_files_read),
        (Status::Unchanged, 1),
        "{o:?}"
    );
    // A day in no file's range reads none.
    let mut late = day[0].clone();
    late.session_id = "5b3fc37d-0000-4000-8000-000000000000".into();
    late.session_start_time = day[0].session_start_time + chrono::Duration::days(400);
    let o = transform(
        &f,
        &sessions_key("2021-04-01", "2021-03-15", "2021-03-15", 0),
        &ndjson(&[late]),
    )
    .await;
    assert_eq!(
        (o.status, o.identity_files_read),
        (Status::Committed, 0),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_extracts_other_parts_new_etags_and_a_changed_session() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let jan = window(&ds, "2020-01-01", "2020-01-31");
    let n = items(&jan).len();
    let key = |part| sessions_key("2020-01-01", "2020-01-01", "2020-01-31", part);
    transform(&f, &key(0), &ndjson(&jan)).await;

    // The same window re-extracted with a smaller part size: three objects, nothing new.
    let third = jan.len() / 3;
    for (part, chunk) in [&jan[..third], &jan[third..2 * third], &jan[2 * third..]]
        .iter()
        .enumerate()
    {
        let o = transform(&f, &key(part + 10), &ndjson(chunk)).await;
        assert_eq!(
            (o.status, o.rows_committed),
            (Status::Unchanged, 0),
            "{o:?}"
        );
    }
    // The same records as other bytes (a new ETag): pretty-printed keys in another order.
    let mut body = Vec::new();
    for s in jan.iter().rev() {
        let v = serde_json::to_value(s).unwrap();
        body.extend_from_slice(format!("{v}  \n").as_bytes());
    }
    let o = transform(&f, &key(0), &body).await;
    assert_eq!(
        (o.status, o.records_unchanged),
        (Status::Unchanged, jan.len() as u64)
    );
    assert_once_each(&f, "sessions", n).await;

    // One session changed at the source, re-landed later: one new version, latest = new price.
    let mut changed = jan.clone();
    changed[0].session_items[0].price = 1.99;
    let o = transform(
        &f,
        &sessions_key("2020-02-01", "2020-01-01", "2020-01-31", 0),
        &ndjson(&changed),
    )
    .await;
    assert_eq!((o.rows_committed, o.records_committed), (1, 1), "{o:?}");
    let per_key = rows_per_key(&f, "sessions").await;
    assert_eq!(per_key.len(), n);
    assert_eq!(per_key.values().sum::<usize>(), n + 1);
    let changed_key = format!("{}#0", changed[0].session_id);
    assert_eq!(per_key[&changed_key], 2);
    let mut versions = Vec::new();
    for b in f.scan("sessions").await {
        for i in 0..b.num_rows() {
            if col::<StringArray>(&b, "session_id").value(i) == changed[0].session_id
                && col::<Int32Array>(&b, "item_index").value(i) == 0
            {
                versions.push((
                    col::<arrow_array::Date32Array>(&b, "ingest_on").value(i),
                    col::<Float64Array>(&b, "price").value(i),
                ));
            }
        }
    }
    versions.sort_by_key(|v| v.0);
    assert_eq!(
        versions.last().unwrap().1,
        1.99,
        "the latest version has the new price"
    );

    // Changed back at the source: appended again, so the latest version is the source's.
    let o = transform(
        &f,
        &sessions_key("2020-03-01", "2020-01-01", "2020-01-31", 0),
        &ndjson(&jan),
    )
    .await;
    assert_eq!(o.rows_committed, 1, "{o:?}");
    // ... but the old object redelivered appends nothing.
    let o = transform(&f, &key(10), &ndjson(&jan[..third])).await;
    assert_eq!(o.rows_committed, 0, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_extracted_three_times_grow_by_the_changed_songs() {
    let f = fixture(&[]).await;
    let mut songs = dataset().songs;
    let first = transform(&f, &songs_key("2020-01-01"), &ndjson(&songs)).await;
    assert_eq!(first.rows_committed, songs.len() as u64);
    for s in songs.iter_mut().take(5) {
        s.title.push_str(" (Remastered)");
    }
    let second = transform(&f, &songs_key("2020-02-01"), &ndjson(&songs)).await;
    assert_eq!(
        (second.rows_committed, second.rows_unchanged),
        (5, songs.len() as u64 - 5)
    );
    let third = transform(&f, &songs_key("2020-03-01"), &ndjson(&songs)).await;
    assert_eq!((third.status, third.rows_committed), (Status::Unchanged, 0));
    assert_eq!(f.rows("songs").await, songs.len() + 5);
    assert_eq!(rows_per_key(&f, "songs").await.len(), songs.len());

    // A warm transformer's index and a cold one (new process) agree.
    let env = env_of(f.dir.path(), &[]);
    let cold = Transformer::new(TransformConfig::from_env(&env).unwrap(), &env)
        .await
        .unwrap();
    let obj = f.land(&songs_key("2020-04-01"), &ndjson(&songs)).await;
    let o = cold.transform_object(&obj).await.unwrap();
    assert_eq!((o.status, o.rows_committed), (Status::Unchanged, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_after_snapshot_expiry_appends_nothing() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let old = sessions_key("2020-01-01", "2020-01-01", "2020-01-31", 0);
    let jan = window(&ds, "2020-01-01", "2020-01-31");
    transform(&f, &old, &ndjson(&jan)).await;
    let feb = window(&ds, "2020-02-01", "2020-02-29");
    transform(
        &f,
        &sessions_key("2020-02-01", "2020-02-01", "2020-02-29", 0),
        &ndjson(&feb),
    )
    .await;

    // Expire every snapshot but the current one: the record of the old object is gone.
    let ident = f.transformer.table_ident("sessions");
    let catalog = f.transformer.catalog();
    let table = catalog.load_table(&ident).await.unwrap();
    let current = table.metadata().current_snapshot_id().unwrap();
    let old_ids: Vec<i64> = table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .filter(|id| *id != current)
        .collect();
    assert_eq!(old_ids.len(), 1);
    let tx = Transaction::new(&table);
    let tx = tx
        .expire_snapshots()
        .expire_snapshot_ids(old_ids)
        .apply(tx)
        .unwrap();
    tx.commit(catalog.as_ref()).await.unwrap();
    let table = catalog.load_table(&ident).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);

    let o = f
        .transformer
        .transform_object(&deftunes::transform::events::ObjectRef {
            key: old.clone(),
            version: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (o.status, o.rows_committed),
        (Status::Unchanged, 0),
        "{o:?}"
    );
    let mut all = jan.clone();
    all.extend(feb);
    assert_once_each(&f, "sessions", items(&all).len()).await;
}

/// Applies the commit, then reports a retryable failure (the acknowledgement is lost) on the
/// calls listed in `lose_ack_on` (1-based).
#[derive(Debug)]
struct LoseAck {
    calls: AtomicUsize,
    lose_ack_on: Vec<usize>,
}

#[async_trait]
impl UpdateHook for LoseAck {
    async fn update_table(
        &self,
        inner: &dyn Catalog,
        commit: TableCommit,
    ) -> iceberg::Result<iceberg::table::Table> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let table = inner.update_table(commit).await?;
        if self.lose_ack_on.contains(&call) {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::CatalogCommitConflicts,
                "ConcurrentModificationException (the first response was lost)",
            )
            .with_retryable(true));
        }
        Ok(table)
    }
}

/// Refuses every commit with a retryable conflict, applying nothing.
#[derive(Debug)]
struct AlwaysConflict;

#[async_trait]
impl UpdateHook for AlwaysConflict {
    async fn update_table(
        &self,
        _: &dyn Catalog,
        _: TableCommit,
    ) -> iceberg::Result<iceberg::table::Table> {
        Err(
            iceberg::Error::new(iceberg::ErrorKind::CatalogCommitConflicts, "conflict")
                .with_retryable(true),
        )
    }
}

/// A fixture whose transformer commits through `hook`, with the given table retry count.
async fn hooked_fixture<H: UpdateHook + 'static>(
    hook: H,
    extra: &[(&str, &str)],
    table_retries: Option<&str>,
) -> (Fixture, Arc<dyn Catalog>) {
    let plain = fixture(extra).await;
    let catalog = plain.transformer.catalog().clone();
    // The table exists first (so its retry properties can be set).
    let users = plain.land(&users_key("2019-12-31", 0), b"").await;
    plain.transformer.transform_object(&users).await.unwrap();
    if let Some(n) = table_retries {
        let table = catalog
            .load_table(&plain.transformer.table_ident("users"))
            .await
            .unwrap();
        let tx = Transaction::new(&table);
        let tx = tx
            .update_table_properties()
            .set("commit.retry.num-retries".into(), n.into())
            .set("commit.retry.min-wait-ms".into(), "1".into())
            .apply(tx)
            .unwrap();
        tx.commit(catalog.as_ref()).await.unwrap();
    }
    let env = env_of(plain.dir.path(), extra);
    let hooked: Arc<dyn Catalog> = Arc::new(Hooked {
        inner: catalog.clone(),
        hook,
    });
    let transformer = Transformer::with_catalog(TransformConfig::from_env(&env).unwrap(), hooked)
        .await
        .unwrap();
    (
        Fixture {
            dir: plain.dir,
            transformer: Arc::new(transformer),
        },
        catalog,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_on_the_first_attempt_is_our_commit() {
    let hook = LoseAck {
        calls: AtomicUsize::new(0),
        lose_ack_on: vec![1],
    };
    let (f, _) = hooked_fixture(hook, &[], None).await;
    let ds = dataset();
    let o = transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    assert_eq!(o.status, Status::Committed, "{o:?}");
    assert!(o.snapshot_id.is_some());
    assert_once_each(&f, "users", ds.users.len()).await;
    every_referenced_file_exists(&f, "users").await;
    // A redelivery returns the recorded outcome.
    let again = transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    assert_eq!(again.status, Status::AlreadyCommitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_on_the_last_attempt_is_our_commit_and_keeps_its_files() {
    // One attempt only (no iceberg retry, one outer attempt): the lost acknowledgement ends it.
    let hook = LoseAck {
        calls: AtomicUsize::new(0),
        lose_ack_on: vec![1],
    };
    let (f, _) = hooked_fixture(hook, &[("COMMIT_MAX_ATTEMPTS", "1")], Some("0")).await;
    let ds = dataset();
    let o = transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    assert_eq!(o.status, Status::Committed, "{o:?}");
    assert_once_each(&f, "users", ds.users.len()).await;
    every_referenced_file_exists(&f, "users").await;
    // The table is readable: every data file is there.
    assert_eq!(f.rows("users").await, ds.users.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_commit_leaves_no_file_behind_after_cleanup() {
    let (f, _) = hooked_fixture(AlwaysConflict, &[("COMMIT_MAX_ATTEMPTS", "2")], Some("0")).await;
    let ds = dataset();
    let obj = f
        .land(&users_key("2020-01-01", 0), &ndjson(&ds.users))
        .await;
    let e = f.transformer.transform_object(&obj).await.unwrap_err();
    assert_eq!(e.error_type(), "CommitConflict", "{e}");
    assert!(e.is_retryable());
    // Our data files are gone already; the attempts' metadata files go with the cleanup.
    let (on_disk, referenced) = files_on_disk_and_referenced(&f, "users").await;
    let stray_data: Vec<_> = on_disk
        .difference(&referenced)
        .filter(|p| p.contains("/data/"))
        .collect();
    assert!(stray_data.is_empty(), "{stray_data:?}");
    cleanup_and_compare(&f, "users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_writing_and_committing_then_a_retry_and_cleanup() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let obj = f
        .land(&users_key("2020-01-01", 0), &ndjson(&ds.users))
        .await;
    let Preparation::Staged(staged) = f.transformer.prepare(&obj).await.unwrap() else {
        panic!("expected staged data files")
    };
    let orphans = staged.file_paths();
    drop(staged); // the invocation dies here
    let o = f.transformer.transform_object(&obj).await.unwrap();
    assert_eq!(o.status, Status::Committed);
    assert_once_each(&f, "users", ds.users.len()).await;

    // Young orphans are kept by the safety age; old ones go, referenced files never.
    let table = f.table("users").await;
    let r = remove_unreferenced(
        f.lake(),
        &table,
        Duration::from_secs(3600),
        SystemTime::now(),
    )
    .await
    .unwrap();
    assert!(
        r.deleted.is_empty() && r.kept_young >= orphans.len() as u64,
        "{r:?}"
    );
    let refused = deftunes::transform::maintenance::remove_orphan_files(
        f.lake(),
        &table,
        Duration::from_secs(60),
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.error_type(), "InvalidInput");
    cleanup_and_compare(&f, "users").await;
    for p in orphans {
        assert!(
            !std::path::Path::new(p.trim_start_matches("file://")).exists(),
            "{p}"
        );
    }
    assert_eq!(f.rows("users").await, ds.users.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_objects_with_overlapping_records_from_several_processes() {
    let f = fixture(&[]).await;
    let ds = dataset();
    // Six objects, each the whole of January plus a slice of its own: every January item is
    // in all six. Transformed by three processes at once, two objects each.
    let jan = window(&ds, "2020-01-01", "2020-01-31");
    let feb = window(&ds, "2020-02-01", "2020-02-29");
    let mut keys = Vec::new();
    for (i, extra) in feb.chunks(feb.len().div_ceil(6)).enumerate() {
        let mut body = jan.clone();
        body.extend_from_slice(extra);
        let key = sessions_key("2020-02-01", "2020-01-01", "2020-02-29", i);
        f.land(&key, &ndjson(&body)).await;
        keys.push(key);
    }
    // The table exists before the race (creation is not what is tested here).
    transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    let bin = env!("CARGO_BIN_EXE_deftunes");
    let children: Vec<_> = keys
        .chunks(2)
        .map(|pair| {
            std::process::Command::new(bin)
                .arg("transform")
                .arg("--dir")
                .arg(f.dir.path())
                .args(pair)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut committed = 0u64;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for o in v["outcomes"].as_array().unwrap() {
            committed += o["outcome"]["rows_committed"].as_u64().unwrap_or(0);
        }
    }
    let mut all = jan.clone();
    all.extend(feb);
    let expected = items(&all).len();
    assert_eq!(
        committed as usize, expected,
        "rows appended over all processes"
    );
    assert_once_each(&f, "sessions", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_published_window_rerun_converges() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let jan = window(&ds, "2020-01-01", "2020-01-31");
    let parts: Vec<&[Session]> = jan.chunks(jan.len().div_ceil(3)).collect();
    let key = |p| sessions_key("2020-01-01", "2020-01-01", "2020-01-31", p);
    // The first run published two parts of three, then failed.
    for (p, part) in parts.iter().take(2).enumerate() {
        transform(&f, &key(p), &ndjson(part)).await;
    }
    // The rerun publishes all three again (with a source fix: one more session in part 2).
    let feb = window(&ds, "2020-02-01", "2020-02-29");
    let mut last = parts[2].to_vec();
    last.push(feb[0].clone());
    for (p, body) in [ndjson(parts[0]), ndjson(parts[1]), ndjson(&last)]
        .iter()
        .enumerate()
    {
        transform(&f, &key(p), body).await;
    }
    let mut all = jan.clone();
    all.push(feb[0].clone());
    assert_once_each(&f, "sessions", items(&all).len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_item_is_quarantined_alone_and_its_siblings_commit() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let mut s = ds
        .sessions
        .iter()
        .find(|s| s.session_items.len() >= 3)
        .unwrap()
        .clone();
    s.session_items[1].price = 7.5; // breaks the max price rule
    let mut v = serde_json::to_value(&s).unwrap();
    v["session_items"][2]["price"] = serde_json::json!("cheap"); // not a number
    let mut body = serde_json::to_vec(&v).unwrap();
    body.push(b'\n');
    let o = transform(
        &f,
        &sessions_key("2020-01-01", "2020-01-01", "2020-01-31", 0),
        &body,
    )
    .await;
    let n = s.session_items.len() as u64;
    assert_eq!(
        (
            o.records_in,
            o.records_committed,
            o.records_quarantined,
            o.rows_committed,
            o.rows_quarantined
        ),
        (1, 1, 0, n - 2, 2),
        "{o:?}"
    );
    let q = f.quarantined(&o).await;
    let by_item: HashMap<i64, &str> = q
        .iter()
        .map(|e| {
            (
                e["item_index"].as_i64().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        by_item[&1].contains("price") && by_item[&1].contains("max"),
        "{q:?}"
    );
    assert!(by_item[&2].contains("session_items[2].price"), "{q:?}");
    let held: HashSet<i32> = f
        .scan("sessions")
        .await
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .map(|i| col::<Int32Array>(b, "item_index").value(i))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !held.contains(&1) && !held.contains(&2) && held.contains(&0),
        "{held:?}"
    );

    // Every item bad for the same reason: the whole record is quarantined, in one entry.
    let mut bad = ds.sessions[0].clone();
    for it in &mut bad.session_items {
        it.price = -1.0;
    }
    let o = transform(
        &f,
        &sessions_key("2020-01-02", "2020-01-02", "2020-01-02", 0),
        &ndjson(&[bad.clone()]),
    )
    .await;
    assert_eq!(
        (o.records_quarantined, o.rows_committed, o.status),
        (1, 0, Status::NothingToCommit)
    );
    let q = f.quarantined(&o).await;
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].get("item_index").is_none(), "{q:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_its_natural_key_is_quarantined() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let mut v = serde_json::to_value(&ds.songs[0]).unwrap();
    v["track_id"] = serde_json::Value::Null;
    let mut body = serde_json::to_vec(&v).unwrap();
    body.push(b'\n');
    body.extend(ndjson(&ds.songs[1..3]));
    let o = transform(&f, &songs_key("2020-01-01"), &body).await;
    assert_eq!((o.records_quarantined, o.rows_committed), (1, 2), "{o:?}");
    let q = f.quarantined(&o).await;
    assert!(
        q[0]["reason"].as_str().unwrap().contains("track_id"),
        "{q:?}"
    );
}

#[test]
fn the_record_hash_column_is_hex_and_unique_per_version() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let f = fixture(&[]).await;
        let ds = dataset();
        transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
        let mut seen = HashSet::new();
        for b in f.scan("users").await {
            let h = col::<StringArray>(&b, "record_hash");
            for i in 0..b.num_rows() {
                assert!(!h.is_null(i));
                assert_eq!(h.value(i).len(), 32);
                assert!(h.value(i).bytes().all(|c| c.is_ascii_hexdigit()));
                assert!(seen.insert(h.value(i).to_string()));
            }
        }
        assert_eq!(seen.len(), ds.users.len());
    });
}

/// (name, transform) of each field of the table's partition spec.
fn partition_fields(table: &iceberg::table::Table) -> Vec<(String, String)> {
    table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .map(|p| (p.name.clone(), p.transform.to_string()))
        .collect()
}

async fn plan_all(table: &iceberg::table::Table) -> Vec<iceberg::scan::FileScanTask> {
    use futures::TryStreamExt;
    table
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_declare_their_key_and_partition_each_file_by_ingest_on() {
    let f = fixture(&[]).await;
    let ds = dataset();
    transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    transform(&f, &users_key("2020-02-01", 0), &ndjson(&ds.users[..1])).await; // unchanged
    let mut changed = ds.users[..2].to_vec();
    changed[0].user_name.push('x');
    transform(&f, &users_key("2020-03-01", 0), &ndjson(&changed)).await;
    let table = f.table("users").await;
    let schema = table.metadata().current_schema();
    let keys: Vec<&str> = schema
        .identifier_field_ids()
        .map(|id| schema.field_by_id(id).unwrap().name.as_str())
        .collect();
    assert_eq!(keys, ["user_id"]);
    assert_eq!(
        partition_fields(&table),
        [("ingest_on".into(), "identity".into())]
    );
    let tasks = plan_all(&table).await;
    let mut days: Vec<String> = tasks
        .iter()
        .map(|t| format!("{:?}", t.partition.as_ref().unwrap()))
        .collect();
    days.sort();
    // Two files: January's users and March's one changed user (February appended nothing).
    assert_eq!(days.len(), 2, "{days:?}");
    assert!(
        days[0].contains("18262") && days[1].contains("18322"),
        "{days:?}"
    );
}

/// Reads every data file of the sessions table: each holds one event day, the one its partition
/// value names. Returns the files per day and the rows read.
async fn files_per_day(table: &iceberg::table::Table) -> (HashMap<i64, usize>, usize) {
    use arrow_array::TimestampMicrosecondArray;
    let mut per_day = HashMap::new();
    let mut rows = 0;
    for t in &plan_all(table).await {
        let partition = format!("{:?}", t.partition.as_ref().unwrap());
        let bytes = table
            .file_io()
            .new_input(&t.data_file_path)
            .unwrap()
            .read()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let mut file_days = HashSet::new();
        for b in reader {
            let b = b.unwrap();
            rows += b.num_rows();
            let ts = b
                .column_by_name("session_start_time")
                .unwrap()
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            file_days.extend(ts.iter().map(|v| v.unwrap().div_euclid(86_400_000_000)));
        }
        assert_eq!(file_days.len(), 1, "{}: {file_days:?}", t.data_file_path);
        let day = file_days.into_iter().next().unwrap();
        assert!(
            partition.contains(&day.to_string()),
            "{partition} vs day {day}"
        );
        *per_day.entry(day).or_default() += 1;
    }
    (per_day, rows)
}

fn event_days(sessions: &[Session]) -> HashSet<i64> {
    sessions
        .iter()
        .map(|s| {
            s.session_start_time
                .and_utc()
                .timestamp()
                .div_euclid(86_400)
        })
        .collect()
}

/// January's sessions transformed as one object: the sessions, the outcome, the table.
async fn january_committed(
    f: &Fixture,
) -> (
    Vec<Session>,
    deftunes::transform::ObjectOutcome,
    iceberg::table::Table,
) {
    let january = window(&dataset(), "2020-01-01", "2020-01-31");
    let o = transform(
        f,
        &sessions_key("2020-02-01", "2020-01-01", "2020-01-31", 0),
        &ndjson(&january),
    )
    .await;
    assert_eq!(o.status, Status::Committed);
    (january, o, f.table("sessions").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_partitioned_by_event_day_one_file_per_day_of_an_object() {
    let f = fixture(&[]).await;
    let (january, o, table) = january_committed(&f).await;
    assert_eq!(
        partition_fields(&table),
        [("session_start_time_day".into(), "day".into())]
    );
    // A month of sessions: one file per event day (a daily object writes one file), each
    // holding only its day's rows, as its partition value says.
    let (per_day, rows) = files_per_day(&table).await;
    assert_eq!(
        per_day.keys().copied().collect::<HashSet<_>>(),
        event_days(&january)
    );
    assert!(per_day.values().all(|&n| n == 1), "{per_day:?}");
    assert_eq!(rows, items(&january).len());
    assert_eq!(o.data_files as usize, per_day.len());
}

/// The natural key's string column is written without a dictionary (it is unique per record:
/// a dictionary only costs hashing), the repetitive ones with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_keys_are_written_without_a_dictionary() {
    let f = fixture(&[]).await;
    let (_, _, table) = january_committed(&f).await;
    let task = plan_all(&table).await.into_iter().next().unwrap();
    let bytes = table
        .file_io()
        .new_input(&task.data_file_path)
        .unwrap()
        .read()
        .await
        .unwrap();
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap(),
    )
    .clone();
    let dictionary = |name: &str| {
        let rg = meta.row_group(0);
        let col = (0..rg.num_columns())
            .map(|i| rg.column(i))
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        col.dictionary_page_offset().is_some()
    };
    assert!(!dictionary("session_id"));
    assert!(dictionary("user_agent"));
    assert!(dictionary("artist_name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_roll_at_the_target_size_with_every_row_kept() {
    // Tiny files and batches. A file rolls between writes (a day's parts of batches joined up
    // to BATCH_ROWS rows) once its written and buffered bytes pass the target, so the busier
    // days get a second file.
    let f = fixture(&[("TARGET_FILE_SIZE_BYTES", "1024"), ("BATCH_ROWS", "16")]).await;
    let (january, o, table) = january_committed(&f).await;
    let (per_day, rows) = files_per_day(&table).await;
    let files: usize = per_day.values().sum();
    assert!(
        files > per_day.len(),
        "{files} files for {} days",
        per_day.len()
    );
    assert_eq!(o.data_files as usize, files);
    assert_eq!(rows, items(&january).len());
    assert_once_each(&f, "sessions", items(&january).len()).await;
}

/// Fails every commit in a way that leaves its outcome unknown (a timeout after sending).
#[derive(Debug)]
struct UnknownOutcome;

#[async_trait]
impl UpdateHook for UnknownOutcome {
    async fn update_table(
        &self,
        _: &dyn Catalog,
        _: TableCommit,
    ) -> iceberg::Result<iceberg::table::Table> {
        Err(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            "operation timed out after the request was sent",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_a_commit_with_an_unknown_outcome_are_left_to_the_maintenance() {
    let (f, _) = hooked_fixture(UnknownOutcome, &[], None).await;
    let ds = dataset();
    let obj = f
        .land(&users_key("2020-01-01", 0), &ndjson(&ds.users))
        .await;
    let e = f.transformer.transform_object(&obj).await.unwrap_err();
    assert_eq!(e.error_type(), "CatalogError", "{e}");
    // The update might still land: its data files must still be there.
    let (on_disk, referenced) = files_on_disk_and_referenced(&f, "users").await;
    let kept: Vec<_> = on_disk
        .difference(&referenced)
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    assert!(!kept.is_empty(), "the staged files were deleted");
    cleanup_and_compare(&f, "users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_version_of_the_same_ingest_on_does_not_become_current() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let v1 = ds.users[..3].to_vec();
    let mut v2 = v1.clone();
    v2[0].user_lastname.push_str("-Smith");
    transform(&f, &users_key("2020-01-01", 0), &ndjson(&v1)).await;
    let o = transform(&f, &users_key("2020-01-01", 1), &ndjson(&v2)).await;
    assert_eq!(o.rows_committed, 1);
    // v1 replayed under another part of the same day: nothing appended, v2 stays the latest.
    let o = transform(&f, &users_key("2020-01-01", 2), &ndjson(&v1)).await;
    assert_eq!(
        (o.status, o.rows_committed),
        (Status::Unchanged, 0),
        "{o:?}"
    );
    assert_eq!(f.rows("users").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_concurrent_commit_took_first_move_to_unchanged_by_record() {
    let f = fixture(&[]).await;
    let ds = dataset();
    let jan = window(&ds, "2020-01-01", "2020-01-31");
    let (a, b) = (&jan[..6], &jan[3..10]);
    // B holds three of A's sessions, and one of its own twice (the copy is unchanged).
    let mut b_body = b.to_vec();
    b_body.push(b[5].clone());
    let b_obj = f
        .land(
            &sessions_key("2020-02-01", "2020-01-01", "2020-01-31", 1),
            &ndjson(&b_body),
        )
        .await;
    // The table exists, so B's identity check is made against a snapshot without A's rows.
    transform(&f, &users_key("2020-01-01", 0), &ndjson(&ds.users)).await;
    transform(
        &f,
        &sessions_key("2020-01-15", "2020-01-01", "2020-01-31", 0),
        &ndjson(&jan[20..21]),
    )
    .await;
    let Preparation::Staged(staged) = f.transformer.prepare(&b_obj).await.unwrap() else {
        panic!("expected staged data files")
    };
    // A lands between B's check and B's commit.
    let first = transform(
        &f,
        &sessions_key("2020-02-01", "2020-01-01", "2020-01-31", 0),
        &ndjson(a),
    )
    .await;
    assert_eq!(first.status, Status::Committed);
    let o = f.transformer.commit_staged(staged).await.unwrap();
    let shared = items(&b[..3]).len() as u64;
    let own = items(&b[3..]).len() as u64;
    let copy = items(&b[5..6]).len() as u64;
    assert_eq!(o.status, Status::Committed, "{o:?}");
    assert_eq!(
        (
            o.records_in,
            o.records_committed,
            o.records_unchanged,
            o.rows_committed,
            o.rows_unchanged
        ),
        (8, 4, 4, own, shared + copy),
        "{o:?}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&f.lake().get_bytes(&o.quality_report_key).await.unwrap()).unwrap();
    assert_eq!(
        (
            report["records_committed"].as_u64(),
            report["records_unchanged"].as_u64(),
            report["rows_committed"].as_u64()
        ),
        (Some(4), Some(4), Some(own)),
        "{report}"
    );
    let mut all = jan[..10].to_vec();
    all.push(jan[20].clone());
    assert_once_each(&f, "sessions", items(&all).len()).await;
}
