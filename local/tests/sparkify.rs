//! The Sparkify pipeline on the same transform, from its spec alone: files others land (one JSON
//! document per song, NDJSON event logs, keys without an `ingest_on=` partition) become the
//! `staging_songs` and `staging_events` tables of namespace `sparkify`, every record once.

use std::collections::HashMap;

use arrow_array::{Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use deftunes::transform::events::ObjectRef;
use deftunes::transform::Status;
use deftunes_local::sparkify::{count_plays_in_files, SparkifyData, SparkifyScale};

mod common;
use common::{col, fixture, Fixture};

const SPARKIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/sparkify");

fn small() -> SparkifyScale {
    SparkifyScale {
        songs: 80,
        users: 30,
        days: 5,
        sessions_per_day: 12,
        ..SparkifyScale::default()
    }
}

async fn transform_all(f: &Fixture, keys: &[String]) -> Vec<deftunes::transform::ObjectOutcome> {
    let mut out = Vec::new();
    for key in keys {
        let obj = ObjectRef {
            key: key.clone(),
            version: None,
        };
        out.push(f.transformer.transform_object(&obj).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkify_files_become_its_staging_tables_once_each() {
    let f = fixture(&[("PIPELINE_DIR", SPARKIFY)]).await;
    assert_eq!(f.transformer.config().namespace, "sparkify");
    let data = SparkifyData::generate(42, &small());
    let lake_root = f.dir.path().join("lake");
    let keys = data.land(&lake_root).unwrap();
    let counts = count_plays_in_files(&lake_root).unwrap();
    assert_eq!(keys.len(), data.songs.len() + data.days.len());

    let outcomes = transform_all(&f, &keys).await;
    for o in &outcomes {
        assert_eq!(o.status, Status::Committed, "{}", o.key);
        assert_eq!(o.records_quarantined, 0, "{}", o.key);
    }
    // One JSON document is one record.
    let song_outcome = &outcomes[0];
    assert_eq!(
        (song_outcome.records_in, song_outcome.rows_committed),
        (1, 1)
    );

    assert_eq!(f.rows("staging_songs").await, data.songs.len());
    let events = f.scan("staging_events").await;
    let total: usize = events.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total as u64, counts.events);
    let mut per_key: HashMap<(i64, i32), usize> = HashMap::new();
    let mut next_song = 0;
    let mut logged_out = 0;
    for b in &events {
        let (s, i) = (
            col::<Int64Array>(b, "session_id"),
            col::<Int32Array>(b, "item_in_session"),
        );
        let (page, user) = (
            col::<StringArray>(b, "page"),
            col::<StringArray>(b, "user_id"),
        );
        let ts = col::<TimestampMicrosecondArray>(b, "ts");
        assert_eq!(ts.null_count(), 0);
        for r in 0..b.num_rows() {
            *per_key.entry((s.value(r), i.value(r))).or_default() += 1;
            next_song += usize::from(page.value(r) == "NextSong");
            logged_out += usize::from(user.value(r).is_empty());
        }
    }
    assert!(per_key.values().all(|n| *n == 1), "a key held twice");
    assert_eq!(next_song as u64, counts.next_song);
    assert!(logged_out > 0, "logged-out events are kept");
    // Others' keys carry no partition: ingest_on is the day the object was written.
    let ingest = f.scan("staging_songs").await;
    let today = chrono::Utc::now().date_naive();
    let days = col::<arrow_array::Date32Array>(&ingest[0], "ingest_on");
    assert_eq!(
        days.value_as_date(0),
        Some(today),
        "ingest_on of an unpartitioned key"
    );

    // Redelivered, and landed again under the same keys (same content): the recorded outcomes.
    let again = transform_all(&f, &keys[..3]).await;
    assert!(again.iter().all(|o| o.status == Status::AlreadyCommitted));
    data.land(&lake_root).unwrap();
    let relanded = transform_all(&f, &keys).await;
    assert!(relanded
        .iter()
        .all(|o| o.status == Status::AlreadyCommitted));
    // A log rewritten with one more event: only that event is new.
    let (day, events) = &data.days[0];
    let log = deftunes_local::sparkify::log_key(*day);
    let mut body = std::fs::read(lake_root.join(&log)).unwrap();
    let mut extra = serde_json::to_value(&events[0]).unwrap();
    extra["sessionId"] = 999_999.into();
    body.extend(serde_json::to_vec(&extra).unwrap());
    body.push(b'\n');
    f.land(&log, &body).await;
    let rewritten = transform_all(&f, &[log]).await;
    assert_eq!(
        (
            rewritten[0].status,
            rewritten[0].rows_committed,
            rewritten[0].rows_unchanged
        ),
        (Status::Committed, 1, events.len() as u64)
    );
    assert_eq!(f.rows("staging_songs").await, data.songs.len());
    assert_eq!(f.rows("staging_events").await as u64, counts.events + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_song_document_is_quarantined_and_an_unknown_key_refused() {
    let f = fixture(&[("PIPELINE_DIR", SPARKIFY)]).await;
    let bad = f
        .land(
            "landing_zone/song_data/A/B/C/TRBAD.json",
            b"{\"song_id\": \"SOBAD\", \"title\": \"x\",\n \"duration\": \"long\"",
        )
        .await;
    let o = f.transformer.transform_object(&bad).await.unwrap();
    assert_eq!((o.records_in, o.records_quarantined), (1, 1));
    let q = f.quarantined(&o).await;
    assert!(
        q[0]["reason"].as_str().unwrap().contains("malformed JSON"),
        "{q:?}"
    );
    let elsewhere = f.land("landing_zone/other/x.json", b"{}").await;
    let e = f
        .transformer
        .transform_object(&elsewhere)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    assert!(e.to_string().contains("landing_zone/song_data/"), "{e}");
}
