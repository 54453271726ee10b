//! The extract stage against the real local sources: the API emulator over HTTP and a real
//! PostgreSQL, landing into a real (local) lake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::NaiveDate;
use deftunes::config::{ApiExtractConfig, SongsExtractConfig};
use deftunes::extract::api::ApiExtractor;
use deftunes::extract::songs::SongsExtractor;
use deftunes::extract::ExtractSummary;
use deftunes::storage::Lake;
use deftunes_local::emulator::{self, RunningEmulator};
use deftunes_local::{pg, Dataset, Faults, LocalPostgres, Scale};
use serde_json::{json, Value};

mod common;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn small_scale() -> Scale {
    Scale {
        songs: 1_500,
        users: 300,
        sessions: 3_000,
        ..Scale::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    [(
        "PIPELINE_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
    )]
    .iter()
    .chain(pairs)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct ApiFixture {
    dataset: Arc<Dataset>,
    emulator: RunningEmulator,
    lake_dir: tempfile::TempDir,
    _spool: tempfile::TempDir,
    extractor: ApiExtractor,
}

async fn api_fixture(extra: &[(&str, &str)]) -> ApiFixture {
    let dataset = Arc::new(Dataset::generate(7, &small_scale()));
    let emulator = emulator::start(dataset.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let lake_dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let lake_uri = format!("file://{}", lake_dir.path().display());
    let spool_dir = spool.path().display().to_string();
    let mut vars = env(&[
        ("LAKE_URI", &lake_uri),
        ("API_BASE_URL", &emulator.base_url),
        ("SPOOL_DIR", &spool_dir),
        ("API_RETRY_BASE_MS", "20"),
        ("API_TIMEOUT_SECS", "5"),
    ]);
    vars.extend(env(extra));
    let cfg = ApiExtractConfig::from_env(&vars).unwrap();
    let lake = Lake::from_uri(&lake_uri, false).await.unwrap();
    let extractor = ApiExtractor::new(cfg, lake).unwrap();
    ApiFixture {
        dataset,
        emulator,
        lake_dir,
        _spool: spool,
        extractor,
    }
}

/// Every record of every landed object, in key order.
async fn landed_records(lake: &Lake, keys: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for key in keys {
        let bytes = lake.get_bytes(key).await.unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{key} does not end with a newline"
        );
        for line in text.lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}")));
        }
    }
    out
}

async fn all_keys(lake: &Lake) -> Vec<String> {
    lake.list("landing_zone/").await.unwrap()
}

async fn extract(f: &ApiFixture, payload: Value) -> deftunes::Result<ExtractSummary> {
    f.extractor
        .handle(&payload)
        .await
        .map(|v| serde_json::from_value(v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_extract_lands_exactly_the_source_records_and_reruns_replace() {
    // Small parts so that one window spans several objects.
    let f = api_fixture(&[("PART_MAX_BYTES", "65536")]).await;
    let lake = f.extractor.lake();
    let (start, end) = (d("2020-01-01"), d("2020-01-31"));
    for endpoint in ["users", "sessions"] {
        let req =
            json!({"endpoint": endpoint, "start_date": "2020-01-01", "end_date": "2020-01-31"});
        let s = extract(&f, req.clone()).await.unwrap();
        let expected: Vec<Value> = match endpoint {
            "users" => f
                .dataset
                .users_between(start, end)
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect(),
            _ => f
                .dataset
                .sessions_between(start, end)
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect(),
        };
        assert!(expected.len() > 50, "fixture too small for {endpoint}");
        assert_eq!(s.records, expected.len() as u64, "{endpoint}");
        assert_eq!(s.source, format!("api/{endpoint}"));
        assert_eq!(s.ingest_date, start);
        // Records arrive unchanged, in order, across parts.
        assert_eq!(landed_records(lake, &s.keys).await, expected, "{endpoint}");
        for (i, key) in s.keys.iter().enumerate() {
            assert_eq!(
                key,
                &format!("landing_zone/api/{endpoint}/ingest_on=2020-01-01/{endpoint}_2020-01-01_2020-01-31.part-{i:05}.jsonl")
            );
        }
        for o in &s.objects {
            assert!(o.bytes <= 65_536, "part {} has {} bytes", o.key, o.bytes);
        }
        if endpoint == "sessions" {
            assert!(
                s.objects.len() > 1,
                "expected several parts, got {}",
                s.objects.len()
            );
        }

        // A rerun of the same window: the same objects and counts, nothing added.
        let before = all_keys(lake).await;
        let again = extract(&f, req.clone()).await.unwrap();
        assert_eq!(again.keys, s.keys);
        assert_eq!(again.records, s.records);
        assert!(again.removed.is_empty());
        assert_eq!(all_keys(lake).await, before);
        assert_eq!(
            landed_records(lake, &again.keys).await.len(),
            expected.len()
        );
    }

    // A rerun with bigger parts replaces the old parts and removes the extra ones.
    let bigger = api_fixture(&[]).await;
    let lake_uri = format!("file://{}", f.lake_dir.path().display());
    let cfg = ApiExtractConfig::from_env(&env(&[
        ("LAKE_URI", &lake_uri),
        ("API_BASE_URL", &f.emulator.base_url),
    ]))
    .unwrap();
    let extractor =
        ApiExtractor::new(cfg, Lake::from_uri(&lake_uri, false).await.unwrap()).unwrap();
    let req = json!({"endpoint": "sessions", "start_date": "2020-01-01", "end_date": "2020-01-31"});
    let s: ExtractSummary = serde_json::from_value(extractor.handle(&req).await.unwrap()).unwrap();
    assert_eq!(s.objects.len(), 1);
    assert!(!s.removed.is_empty());
    let session_keys = lake.list("landing_zone/api/sessions/").await.unwrap();
    assert_eq!(session_keys, s.keys);
    assert_eq!(
        landed_records(lake, &session_keys).await.len(),
        f.dataset.sessions_between(start, end).len()
    );
    bigger.emulator.stop().await;
    f.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_window_lands_nothing() {
    let f = api_fixture(&[]).await;
    let s = extract(
        &f,
        json!({"endpoint": "sessions", "start_date": "2019-01-01", "end_date": "2019-01-31"}),
    )
    .await
    .unwrap();
    assert_eq!(s.records, 0);
    assert!(s.keys.is_empty());
    assert!(all_keys(f.extractor.lake()).await.is_empty());
    f.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_5xx_and_latency_are_retried_to_success() {
    let f = api_fixture(&[("API_MAX_ATTEMPTS", "4"), ("API_TIMEOUT_SECS", "1")]).await;
    let req = json!({"endpoint": "users", "start_date": "2020-02-01", "end_date": "2020-02-29"});
    let expected = f
        .dataset
        .users_between(d("2020-02-01"), d("2020-02-29"))
        .len() as u64;

    f.emulator.set_faults(Faults {
        error_next: 3,
        error_status: 503,
        ..Faults::default()
    });
    let s = extract(&f, req.clone()).await.unwrap();
    assert_eq!(s.records, expected);
    assert_eq!(
        f.emulator.faults().error_next,
        0,
        "all three injected errors were consumed"
    );

    // One answer far slower than the 1 s timeout, then normal answers: the slow one is
    // abandoned at the timeout and retried, not waited for.
    f.emulator.set_faults(Faults {
        latency_ms: 6_000,
        latency_next: 1,
        ..Faults::default()
    });
    let t = std::time::Instant::now();
    let s = extract(&f, req.clone()).await.unwrap();
    let took = t.elapsed();
    assert_eq!(s.records, expected);
    assert_eq!(
        f.emulator.faults().latency_next,
        0,
        "the slow answer was requested"
    );
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_millis(4_500),
        "timed out after ~1 s and retried, took {took:?}"
    );

    // A body that stops in the middle (read timeout after half the records) is retried from
    // scratch: the landing holds each record once.
    f.emulator.set_faults(Faults {
        stall_body_next: 1,
        ..Faults::default()
    });
    let s = extract(&f, req.clone()).await.unwrap();
    assert_eq!(s.records, expected);
    assert_eq!(
        f.emulator.faults().stall_body_next,
        0,
        "the stalled answer was requested"
    );
    let landed = landed_records(f.extractor.lake(), &s.keys).await;
    assert_eq!(landed.len() as u64, expected);

    let f8 = api_fixture(&[("API_MAX_ATTEMPTS", "12")]).await;
    f8.emulator.set_faults(Faults {
        error_rate: 0.5,
        error_status: 502,
        ..Faults::default()
    });
    for _ in 0..3 {
        assert_eq!(extract(&f8, req.clone()).await.unwrap().records, expected);
    }
    f.emulator.stop().await;
    f8.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_gives_a_retryable_error_after_the_attempts() {
    let f = api_fixture(&[("API_MAX_ATTEMPTS", "3")]).await;
    f.emulator.set_faults(Faults {
        error_next: 10,
        error_status: 500,
        ..Faults::default()
    });
    let e = extract(
        &f,
        json!({"endpoint": "users", "start_date": "2020-01-01", "end_date": "2020-01-31"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(
        f.emulator.faults().error_next,
        7,
        "exactly 3 attempts were made"
    );
    assert!(all_keys(f.extractor.lake()).await.is_empty());
    f.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let f = api_fixture(&[]).await;
    f.emulator.set_faults(Faults {
        error_next: 5,
        error_status: 404,
        ..Faults::default()
    });
    let e = extract(
        &f,
        json!({"endpoint": "users", "start_date": "2020-01-01", "end_date": "2020-01-31"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "SourceRejected", "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("404"), "{e}");
    assert_eq!(f.emulator.faults().error_next, 4, "a 404 is not retried");
    f.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_non_array_bodies_fail_clearly_and_publish_nothing() {
    let f = api_fixture(&[("PART_MAX_BYTES", "4096")]).await;
    let lake = f.extractor.lake();
    let req = json!({"endpoint": "sessions", "start_date": "2020-03-01", "end_date": "2020-03-31"});
    // A good earlier run of the same window must survive a failed rerun untouched.
    let good = extract(&f, req.clone()).await.unwrap();
    let before = landed_records(lake, &good.keys).await;

    f.emulator.set_faults(Faults {
        truncate: true,
        ..Faults::default()
    });
    let e = extract(&f, req.clone()).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidSourcePayload", "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(
        e.to_string().contains("/sessions"),
        "the error names the request: {e}"
    );
    assert_eq!(all_keys(lake).await, good.keys);
    assert_eq!(landed_records(lake, &good.keys).await, before);

    f.emulator.set_faults(Faults {
        non_array: true,
        ..Faults::default()
    });
    let e = extract(&f, req.clone()).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidSourcePayload", "{e}");
    assert!(e.to_string().contains("not a JSON array"), "{e}");
    assert_eq!(all_keys(lake).await, good.keys);

    // Another window that never succeeded has no object at all.
    f.emulator.set_faults(Faults {
        truncate: true,
        ..Faults::default()
    });
    let e = extract(
        &f,
        json!({"endpoint": "users", "start_date": "2020-01-01", "end_date": "2020-03-31"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "InvalidSourcePayload");
    assert!(lake
        .list("landing_zone/api/users/")
        .await
        .unwrap()
        .is_empty());
    assert!(
        std::fs::read_dir(f._spool.path()).unwrap().next().is_none(),
        "spool files are cleaned up"
    );
    f.emulator.stop().await;
}

/// A source whose responses wrap the record array (`records = "data"`) lands exactly the
/// wrapped records; a path the response does not have fails clearly and lands nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_path_reads_the_array_inside_a_wrapped_response() {
    let specs = tempfile::tempdir().unwrap();
    let (wrapped, wrong) = (specs.path().join("wrapped"), specs.path().join("wrong"));
    for (dir, path) in [(&wrapped, "data"), (&wrong, "data.items")] {
        common::pipeline_copy(dir, |s| {
            s.replace(
                "path = \"/users\"\n",
                &format!("path = \"/users\"\nrecords = \"{path}\"\n"),
            )
        });
    }
    let f = api_fixture(&[
        ("PIPELINE_DIR", wrapped.to_str().unwrap()),
        ("PART_MAX_BYTES", "8192"),
    ])
    .await;
    // The emulator's `non_array` answer is `{"data": [...]}`.
    f.emulator.set_faults(Faults {
        non_array: true,
        ..Faults::default()
    });
    let lake = f.extractor.lake();
    let req = json!({"endpoint": "users", "start_date": "2020-01-01", "end_date": "2020-02-29"});
    let s = extract(&f, req.clone()).await.unwrap();
    let expected: Vec<Value> = f
        .dataset
        .users_between(d("2020-01-01"), d("2020-02-29"))
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert!(expected.len() > 20);
    assert_eq!(s.records, expected.len() as u64);
    assert!(s.objects.len() > 1, "records are spooled into parts");
    assert_eq!(landed_records(lake, &s.keys).await, expected);

    let lake_uri = format!("file://{}", f.lake_dir.path().display());
    let cfg = ApiExtractConfig::from_env(&env(&[
        ("LAKE_URI", &lake_uri),
        ("API_BASE_URL", &f.emulator.base_url),
        ("PIPELINE_DIR", wrong.to_str().unwrap()),
    ]))
    .unwrap();
    let extractor =
        ApiExtractor::new(cfg, Lake::from_uri(&lake_uri, false).await.unwrap()).unwrap();
    let other = json!({"endpoint": "users", "start_date": "2020-03-01", "end_date": "2020-03-31"});
    let e = extractor.handle(&other).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidSourcePayload", "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("data.items") && msg.contains("no field \"items\" in an array"),
        "{msg}"
    );
    assert!(msg.contains("/users"), "the error names the request: {msg}");
    assert_eq!(
        lake.list("landing_zone/api/users/").await.unwrap(),
        s.keys,
        "the failed window lands nothing"
    );
    f.emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lake_dir = tempfile::tempdir().unwrap();
    let cfg = ApiExtractConfig::from_env(&env(&[
        ("LAKE_URI", &lake_dir.path().display().to_string()),
        ("API_BASE_URL", &format!("http://127.0.0.1:{port}/")),
        ("API_MAX_ATTEMPTS", "2"),
        ("API_RETRY_BASE_MS", "10"),
    ]))
    .unwrap();
    let ex = ApiExtractor::new(cfg, Lake::local(lake_dir.path())).unwrap();
    let e = ex.handle(&json!({"endpoint": "users"})).await.unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

// ---------------------------------------------------------------- songs

struct SongsFixture {
    dataset: Dataset,
    postgres: LocalPostgres,
    _pg_dir: tempfile::TempDir,
    lake_dir: tempfile::TempDir,
}

async fn songs_fixture() -> SongsFixture {
    let dataset = Dataset::generate(11, &small_scale());
    let pg_dir = tempfile::tempdir().unwrap();
    let postgres = LocalPostgres::start(pg_dir.path()).await.unwrap();
    let client = postgres.connect().await.unwrap();
    assert_eq!(
        pg::load_songs(&client, &dataset.songs).await.unwrap(),
        dataset.songs.len() as u64
    );
    SongsFixture {
        dataset,
        postgres,
        _pg_dir: pg_dir,
        lake_dir: tempfile::tempdir().unwrap(),
    }
}

/// The extractor's settings for the fixture's PostgreSQL and lake, with `overrides`.
fn songs_config(f: &SongsFixture, overrides: &[(&str, &str)]) -> SongsExtractConfig {
    let lake = f.lake_dir.path().display().to_string();
    let port = f.postgres.port().to_string();
    let mut vars = env(&[
        ("LAKE_URI", &lake),
        ("PG_HOST", f.postgres.host()),
        ("PG_PORT", &port),
        ("PG_USER", f.postgres.user()),
        ("PG_PASSWORD", f.postgres.password()),
        ("PG_DATABASE", f.postgres.database()),
        ("PG_SSLMODE", "disable"),
        ("PG_CONNECT_TIMEOUT_SECS", "3"),
        ("SQL_RETRY_BASE_MS", "10"),
    ]);
    vars.extend(env(overrides));
    SongsExtractConfig::from_env(&vars).unwrap()
}

fn songs_extractor(f: &SongsFixture, overrides: &[(&str, &str)]) -> SongsExtractor {
    SongsExtractor::new(
        songs_config(f, overrides),
        Lake::local(f.lake_dir.path()),
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_extract_lands_the_whole_table_with_types() {
    let f = songs_fixture().await;
    let ex = songs_extractor(&f, &[("PART_MAX_BYTES", "100000")]);
    let s: ExtractSummary = serde_json::from_value(
        ex.handle(&json!({"source": "songs", "ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(s.records, f.dataset.songs.len() as u64);
    assert!(s.objects.len() > 1, "expected several parts");
    assert!(s
        .keys
        .iter()
        .all(|k| k.starts_with("landing_zone/rds/songs/ingest_on=2020-01-01/songs.part-")));
    let lake = Lake::local(f.lake_dir.path());
    let rows = landed_records(&lake, &s.keys).await;
    let by_id: HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["track_id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        by_id.len(),
        f.dataset.songs.len(),
        "no duplicate or missing track_id"
    );
    for song in &f.dataset.songs {
        let row = by_id[song.track_id.as_str()];
        let cols: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(cols.len(), 14);
        assert_eq!(row["title"], json!(song.title));
        assert_eq!(row["artist_mbid"], json!(song.artist_mbid));
        assert_eq!(row["year"], json!(song.year), "integers stay integers");
        assert_eq!(row["shs_perf"], json!(song.shs_perf));
        assert_eq!(row["track_7digitalid"], json!(song.track_7digitalid));
        let duration = row["duration"].as_f64().expect("duration is a number");
        assert!(
            (duration - song.duration as f64).abs() < 1e-3,
            "{duration} vs {}",
            song.duration
        );
        assert!(row["artist_hotttnesss"].is_number());
    }
    // Rerun for the same day: same objects, same count.
    let again: ExtractSummary = serde_json::from_value(
        ex.handle(&json!({"ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(again.keys, s.keys);
    assert_eq!(again.records, s.records);
    assert_eq!(again.records, f.dataset.songs.len() as u64);
    assert_eq!(lake.list("landing_zone/").await.unwrap(), s.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_extract_failures_are_classified() {
    let mut f = songs_fixture().await;
    let e = songs_extractor(&f, &[("PG_PASSWORD", "wrong")])
        .handle(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        e.error_type(),
        "SourceRejected",
        "bad password is not retryable: {e}"
    );

    let e = songs_extractor(&f, &[("SONGS_TABLE", "deftunes.no_such_table")])
        .handle(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "SourceRejected", "{e}");
    assert!(e.to_string().contains("no_such_table"), "{e}");

    let e = songs_extractor(&f, &[("PG_SSLMODE", "require")])
        .handle(&json!({}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("connecting to"),
        "a server without TLS refuses sslmode=require: {e}"
    );
    assert_eq!(
        e.error_type(),
        "Configuration",
        "a TLS mismatch is not worth retrying: {e}"
    );

    // A read slower than PG_STATEMENT_TIMEOUT_SECS is cancelled by the server: retryable.
    f.postgres
        .connect()
        .await
        .unwrap()
        .batch_execute(
            "CREATE VIEW deftunes.slow_songs AS SELECT s.* FROM deftunes.songs s, pg_sleep(3) AS z",
        )
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let e = songs_extractor(
        &f,
        &[
            ("SONGS_TABLE", "deftunes.slow_songs"),
            ("PG_STATEMENT_TIMEOUT_SECS", "1"),
            // One read: this checks the classification, not the read retries.
            ("SQL_MAX_ATTEMPTS", "1"),
        ],
    )
    .handle(&json!({"ingest_date": "2020-01-05"}))
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(e.to_string().contains("statement timeout"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(2_900),
        "{:?}",
        t.elapsed()
    );

    // The database goes down: a retryable error, and nothing lands.
    f.postgres.stop().unwrap();
    let e = songs_extractor(&f, &[])
        .handle(&json!({"ingest_date": "2020-01-01"}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(e.is_retryable());
    assert!(Lake::local(f.lake_dir.path())
        .list("landing_zone/")
        .await
        .unwrap()
        .is_empty());
}

/// A pipeline whose SQL sources are a query and a table: each lands under its own folder, a
/// request names one, and a request without a name extracts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sources_of_a_spec_land_a_query_and_a_table_each_under_its_folder() {
    let f = songs_fixture().await;
    let spec_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        spec_dir.path().join("pipeline.toml"),
        r#"
name = "catalogue"
namespace = "catalogue"
[sources.recent]
kind = "sql"
landing = "rds/recent"
query = "SELECT track_id, title, year FROM deftunes.songs WHERE year >= 2000"
source_from = "postgres"
[sources.songs]
kind = "sql"
landing = "rds/all_songs"
table = "deftunes.songs"
source_from = "postgres"
[tables.recent]
source = "recent"
key = ["track_id"]
partition = { column = "ingest_on" }
columns = [
  { name = "track_id", type = "string" },
  { name = "title", type = "string" },
  { name = "year", type = "int" },
]
"#,
    )
    .unwrap();
    let dir = spec_dir.path().display().to_string();
    let ex = songs_extractor(&f, &[("PIPELINE_DIR", &dir)]);
    let recent: ExtractSummary = serde_json::from_value(
        ex.handle(&json!({"source": "recent", "ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    let expected = f.dataset.songs.iter().filter(|s| s.year >= 2000).count();
    assert!(expected > 0 && expected < f.dataset.songs.len());
    assert_eq!(recent.records, expected as u64);
    assert!(recent
        .keys
        .iter()
        .all(|k| k.starts_with("landing_zone/rds/recent/ingest_on=2020-01-01/recent.part-")));
    let lake = Lake::local(f.lake_dir.path());
    let rows = landed_records(&lake, &recent.keys).await;
    assert!(rows
        .iter()
        .all(|r| r.as_object().unwrap().len() == 3 && r["year"].as_i64().unwrap() >= 2000));

    let both = ex
        .handle(&json!({"ingest_date": "2020-01-02"}))
        .await
        .unwrap();
    let sources: Vec<&str> = both["extracts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["rds/recent", "rds/all_songs"]);
    assert_eq!(
        both["records"].as_u64().unwrap(),
        (expected + f.dataset.songs.len()) as u64
    );
    let e = ex.handle(&json!({"source": "users"})).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    assert!(e.to_string().contains("unknown source \"users\""), "{e}");
}

/// The sample scheduled EventBridge event (`events/api-extract-scheduled-event.json`) extracts
/// every REST source of the spec for the previous month, and its answer, handed to the transform
/// as the state machine hands it, commits every record of that month once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_extracts_every_rest_source_and_its_answer_feeds_the_transform() {
    use deftunes::transform::{TransformConfig, Transformer};
    let f = api_fixture(&[("WINDOW_GRANULARITY", "month")]).await;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/api-extract-scheduled-event.json");
    let event: Value = serde_json::from_slice(&std::fs::read(sample).unwrap()).unwrap();
    let batch = f.extractor.handle(&event).await.unwrap();
    let extracts = batch["extracts"].as_array().unwrap();
    let sources: Vec<&str> = extracts
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["api/sessions", "api/users"]);
    let (jan1, jan31) = (
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2020, 1, 31).unwrap(),
    );
    for e in extracts {
        assert_eq!(e["start_date"], json!("2020-01-01"), "{e}");
        assert_eq!(e["end_date"], json!("2020-01-31"), "{e}");
    }
    let users = f.dataset.users_between(jan1, jan31).len();
    let sessions = f.dataset.sessions_between(jan1, jan31);
    let items: usize = sessions.iter().map(|s| s.session_items.len()).sum();
    assert!(users > 0 && items > 0);
    assert_eq!(
        batch["records"].as_u64().unwrap(),
        (users + sessions.len()) as u64
    );
    assert_eq!(
        batch["keys"].as_array().unwrap().len(),
        all_keys(f.extractor.lake()).await.len()
    );

    let catalog = tempfile::tempdir().unwrap();
    let transform_env = env(&[
        (
            "LAKE_URI",
            &format!("file://{}", f.lake_dir.path().display()),
        ),
        ("CATALOG", "sql"),
        (
            "CATALOG_URI",
            &format!("sqlite:{}/catalog.db?mode=rwc", catalog.path().display()),
        ),
        ("SPOOL_DIR", &catalog.path().display().to_string()),
    ]);
    let transformer = Transformer::new(
        TransformConfig::from_env(&transform_env).unwrap(),
        &transform_env,
    )
    .await
    .unwrap();
    let answer = transformer
        .handle(&json!({ "extracts": batch["extracts"] }))
        .await
        .unwrap();
    let outcomes = answer["outcomes"].as_array().unwrap();
    let committed = |table: &str| -> u64 {
        outcomes
            .iter()
            .filter(|o| o["outcome"]["table"] == json!(table))
            .map(|o| o["outcome"]["rows_committed"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(committed("users"), users as u64, "{answer}");
    assert_eq!(committed("sessions"), items as u64, "{answer}");
}

/// An incremental SQL source, from the source table to the Iceberg table: runs land only the
/// rows from the watermark on, never replace an earlier range, re-read the rows equal to the
/// watermark (a row committed later with the same value is not lost), a crash between publishing
/// and moving the watermark re-lands the same range into the same objects, and `full` reads it
/// all. Through the transform, every source row is in the table exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_sql_source_lands_each_row_and_the_table_keeps_it_once() {
    use deftunes::transform::events::ObjectRef;
    use deftunes::transform::{TransformConfig, Transformer};
    let f = songs_fixture().await;
    let client = f.postgres.connect().await.unwrap();
    client
        .batch_execute(
            "CREATE SCHEMA shop;
             CREATE TABLE shop.orders (id integer PRIMARY KEY, placed_at timestamp NOT NULL,
                                       amount numeric(10,2) NOT NULL);",
        )
        .await
        .unwrap();
    // `first..last` placed a minute apart from 2020-01-01 00:00, then `ties` at `tie_at` minutes.
    let insert = |ids: std::ops::Range<i32>, tie_at: Option<i32>| {
        let sql = match tie_at {
            None => format!(
                "INSERT INTO shop.orders SELECT i, timestamp '2020-01-01' + i * interval '1 minute', i * 1.25
                 FROM generate_series({}, {}) i", ids.start, ids.end - 1),
            Some(m) => format!(
                "INSERT INTO shop.orders SELECT i, timestamp '2020-01-01' + {m} * interval '1 minute', i * 1.25
                 FROM generate_series({}, {}) i", ids.start, ids.end - 1),
        };
        let client = &client;
        async move { client.batch_execute(&sql).await.unwrap() }
    };
    insert(1..101, None).await;
    insert(101..104, Some(100)).await; // three rows share the maximum

    let work = tempfile::tempdir().unwrap();
    let spec_dir = work.path().join("shop");
    std::fs::create_dir_all(&spec_dir).unwrap();
    std::fs::write(
        spec_dir.join("pipeline.toml"),
        r#"
name = "shop"
namespace = "shop"
[sources.orders]
kind = "sql"
landing = "rds/orders"
table = "shop.orders"
incremental_column = "placed_at"
source_from = "postgres"
[tables.orders]
source = "orders"
key = ["id"]
partition = { column = "ingest_on" }
columns = [
  { name = "id", type = "int" },
  { name = "placed_at", type = "timestamp" },
  { name = "amount", type = "decimal(10,2)" },
]
"#,
    )
    .unwrap();
    let spec = spec_dir.display().to_string();
    // songs_extractor lands into the fixture's lake.
    let lake_root = f.lake_dir.path().to_path_buf();
    let lake_dir = lake_root.display().to_string();
    let ex = songs_extractor(&f, &[("PIPELINE_DIR", &spec)]);
    let lake = Lake::local(&lake_root);
    let run = |payload: Value| {
        let ex = &ex;
        async move {
            let v = ex.handle(&payload).await?;
            Ok::<ExtractSummary, deftunes::Error>(serde_json::from_value(v).unwrap())
        }
    };
    let ids = |rows: &[Value]| -> Vec<i64> {
        let mut v: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        v.sort();
        v
    };
    let state = "state/shop/orders.watermark.json";
    let day1 = json!({"ingest_date": "2020-01-01"});

    let first = run(day1.clone()).await.unwrap();
    assert_eq!(first.records, 103);
    assert!(first.keys[0]
        .starts_with("landing_zone/rds/orders/ingest_on=2020-01-01/orders.since-start.part-"));
    let w1: Value = serde_json::from_slice(&lake.get_bytes(state).await.unwrap()).unwrap();
    assert_eq!(w1["value"], "2020-01-01 01:40:00");
    assert_eq!(w1["type"], "timestamp without time zone");
    let w1_raw = lake.get_bytes(state).await.unwrap();

    // New rows, two of them committed later with the watermark's own value.
    insert(104..106, Some(100)).await;
    insert(200..250, None).await;
    let second = run(day1.clone()).await.unwrap();
    let landed = landed_records(&lake, &second.keys).await;
    let expected: Vec<i64> = [100].into_iter().chain(101..106).chain(200..250).collect();
    assert_eq!(
        ids(&landed),
        expected,
        "the watermark's rows and everything after"
    );
    assert!(second.removed.is_empty());
    for k in &first.keys {
        assert!(
            lake.get_bytes(k).await.is_ok(),
            "the first range stays: {k}"
        );
    }

    // A crash after publishing and before the watermark moved: the rerun lands the same range
    // into the same objects, adding nothing.
    lake.put_bytes(state, &w1_raw).await.unwrap();
    let again = run(day1.clone()).await.unwrap();
    assert_eq!(again.keys, second.keys);
    assert_eq!(again.records, second.records);
    assert!(again.removed.is_empty());

    // Nothing new: only the rows at the watermark are read again.
    let idle = run(json!({"ingest_date": "2020-01-02"})).await.unwrap();
    assert_eq!(ids(&landed_records(&lake, &idle.keys).await), vec![249]);

    // A full re-read lands everything once more under its own range.
    let full = run(json!({"ingest_date": "2020-01-03", "full": true}))
        .await
        .unwrap();
    assert_eq!(full.records, 155);
    assert!(full.keys[0].contains("/ingest_on=2020-01-03/orders.since-start."));

    // Through the transform, in landing order: one row per source row.
    let env = common::env_of(
        work.path(),
        &[
            ("PIPELINE_DIR", &spec),
            ("LAKE_URI", &format!("file://{lake_dir}")),
        ],
    );
    let cfg = TransformConfig::from_env(&env).unwrap();
    let t = Transformer::new(cfg, &env as &dyn deftunes::config::Env)
        .await
        .unwrap();
    let mut committed = 0;
    for key in all_keys(&lake).await {
        let o = t
            .transform_object(&ObjectRef {
                key: key.clone(),
                version: None,
            })
            .await
            .unwrap();
        committed += o.records_committed;
    }
    assert_eq!(committed, 155, "each source row committed once");
    let table = t
        .catalog()
        .load_table(&t.table_ident("orders"))
        .await
        .unwrap();
    let batches = common::read_table(&table, None).await;
    let mut per_id = std::collections::BTreeMap::<i32, usize>::new();
    for b in &batches {
        let c = common::col::<arrow_array::Int32Array>(b, "id");
        for i in 0..c.len() {
            *per_id.entry(c.value(i)).or_default() += 1;
        }
    }
    assert_eq!(per_id.len(), 155);
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");

    // A watermark that cannot be read is refused, naming it; nothing is landed.
    lake.put_bytes(state, b"{not json").await.unwrap();
    let before = all_keys(&lake).await;
    let e = run(day1).await.unwrap_err();
    assert_eq!(e.error_type(), "Configuration", "{e}");
    assert!(e.to_string().contains("orders.watermark.json"), "{e}");
    assert_eq!(all_keys(&lake).await, before);
}

/// An extraction emits one EMF line per source with the records and bytes it landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_extraction_emits_its_metric_line() {
    let f = songs_fixture().await;
    let mut cfg = songs_config(&f, &[]);
    let (metrics, lines) = deftunes::metrics::Metrics::captured("deftunes");
    cfg.metrics = metrics;
    let ex = SongsExtractor::new(cfg, Lake::local(f.lake_dir.path()), None);
    let s: ExtractSummary = serde_json::from_value(
        ex.handle(&json!({"ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1);
    let m: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        m["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Pipeline", "Source"], ["Pipeline"]])
    );
    assert_eq!(
        (m["Pipeline"].as_str(), m["Source"].as_str()),
        (Some("deftunes"), Some("songs"))
    );
    assert_eq!(m["RecordsExtracted"], f.dataset.songs.len());
    assert_eq!(m["Bytes"], s.bytes);
    assert_eq!(m["landing"], "rds/songs");
}
