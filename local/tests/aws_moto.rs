//! The AWS adapters against moto (a local AWS emulator): the API extract lands into S3 and the
//! transform commits into Iceberg tables registered in the Glue Data Catalog, all through the
//! standard `AWS_ENDPOINT_URL` / `AWS_REGION` / credentials variables the functions read in AWS.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`): its path comes from
//! `DEFTUNES_MOTO_SERVER`. Without it the test is skipped, except under CI (`CI` set), where a
//! missing emulator is an error rather than a silent pass.
//!
//! This file is its own test binary with a single test, so setting process environment variables
//! (which the AWS SDK default chain and OpenDAL read) affects nothing else.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

mod common;
use deftunes::config::{ApiExtractConfig, Env};
use deftunes::extract::api::ApiExtractor;
use deftunes::extract::ExtractSummary;
use deftunes::storage::Lake;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::{Status, TransformConfig, Transformer};
use deftunes_local::{emulator, Dataset, Scale};
use futures::TryStreamExt;
use serde_json::json;

const BUCKET: &str = "deftunes-moto-lake";
const LAKE_PREFIX: &str = "dev";

/// A running `moto_server`; killed when dropped, also when the test panics.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of the moto_server log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts moto, or returns `None` (skip) when it is not configured outside CI.
async fn start_moto() -> Option<Moto> {
    let bin = match std::env::var("DEFTUNES_MOTO_SERVER") {
        Ok(b) if !b.trim().is_empty() => b,
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but DEFTUNES_MOTO_SERVER is not: set it to the moto_server binary \
             (pip install 'moto[server]'), e.g. $HOME/.cache/deftunes/venv-tf-tests/bin/moto_server"
        ),
        _ => {
            eprintln!(
                "skipping the moto test: DEFTUNES_MOTO_SERVER is not set (path of moto_server)"
            );
            return None;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let port = free_port();
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        log,
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = moto.child.try_wait().unwrap() {
            panic!("{bin} exited early with {status}");
        }
        if http
            .get(format!("{}/moto-api/", moto.endpoint))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{bin} did not answer on {} within 30 s",
            moto.endpoint
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(moto)
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Every object under `prefix` in the bucket with its number of JSON lines, read through the SDK
/// directly (not through the pipeline's own storage layer).
async fn s3_objects(s3: &aws_sdk_s3::Client, prefix: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            let key = o.key().unwrap().to_string();
            let body = object_bytes(s3, &key).await;
            let text = String::from_utf8(body.to_vec()).unwrap();
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{key}: {e}: {line}"));
            }
            out.insert(key, text.lines().count());
        }
    }
    out
}

async fn s3_keys(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        out.extend(
            page.unwrap()
                .contents()
                .iter()
                .map(|o| o.key().unwrap().to_string()),
        );
    }
    out
}

async fn object_bytes(s3: &aws_sdk_s3::Client, key: &str) -> bytes::Bytes {
    s3.get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

async fn etag(s3: &aws_sdk_s3::Client, key: &str) -> Option<String> {
    s3.head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .e_tag()
        .map(str::to_string)
}

async fn users_table(t: &Transformer) -> iceberg::table::Table {
    t.catalog()
        .load_table(&t.table_ident("users"))
        .await
        .unwrap()
}

async fn users_rows(t: &Transformer) -> usize {
    let table = users_table(t).await;
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_to_s3_and_transform_into_glue_tables_against_moto() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let aws = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    // The SDK default chain and OpenDAL read the process environment; nothing else in this test
    // binary runs concurrently.
    for (k, v) in aws {
        std::env::set_var(k, v);
    }

    let shared = aws_config::load_from_env().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // 1. Extract: the API emulator into s3://BUCKET/dev.
    let dataset = Arc::new(Dataset::generate(
        7,
        &Scale {
            songs: 1_500,
            users: 300,
            sessions: 3_000,
            ..Scale::default()
        },
    ));
    let api = emulator::start(dataset.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let lake_uri = format!("s3://{BUCKET}/{LAKE_PREFIX}");
    let spool_dir = spool.path().display().to_string();
    let extract_env = vars(&[
        ("LAKE_URI", &lake_uri),
        ("API_BASE_URL", &api.base_url),
        ("SPOOL_DIR", &spool_dir),
        ("S3_FORCE_PATH_STYLE", "true"),
        (
            "PIPELINE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
        ),
        ("API_RETRY_BASE_MS", "20"),
        ("API_TIMEOUT_SECS", "5"),
    ]);
    let cfg = ApiExtractConfig::from_env(&extract_env).unwrap();
    let lake = Lake::from_uri(&cfg.landing.lake_uri, cfg.landing.s3_force_path_style)
        .await
        .unwrap();
    let extractor = ApiExtractor::new(cfg, lake).unwrap();

    let (start, end) = (d("2020-01-01"), d("2020-01-31"));
    let mut users_key = None;
    let mut users_records = 0;
    for endpoint in ["users", "sessions"] {
        let req =
            json!({"endpoint": endpoint, "start_date": "2020-01-01", "end_date": "2020-01-31"});
        let summary: ExtractSummary =
            serde_json::from_value(extractor.handle(&req).await.unwrap()).unwrap();
        let expected = match endpoint {
            "users" => dataset.users_between(start, end).len(),
            _ => dataset.sessions_between(start, end).len(),
        };
        assert!(expected > 50, "fixture too small for {endpoint}");
        assert_eq!(summary.records, expected as u64, "{endpoint}");

        let prefix = format!("{LAKE_PREFIX}/landing_zone/api/{endpoint}/");
        let landed = s3_objects(&s3, &prefix).await;
        let want_key = format!(
            "{prefix}ingest_on=2020-01-01/{endpoint}_2020-01-01_2020-01-31.part-00000.jsonl"
        );
        assert_eq!(
            landed.keys().collect::<Vec<_>>(),
            vec![&want_key],
            "{endpoint}"
        );
        assert_eq!(landed[&want_key], expected, "{endpoint}: records in S3");
        assert_eq!(
            summary.keys,
            vec![want_key.strip_prefix("dev/").unwrap().to_string()]
        );

        // A rerun of the window replaces the objects: same keys, same counts, nothing added.
        let again: ExtractSummary =
            serde_json::from_value(extractor.handle(&req).await.unwrap()).unwrap();
        assert_eq!(again.keys, summary.keys, "{endpoint}");
        assert!(again.removed.is_empty(), "{endpoint}: {:?}", again.removed);
        assert_eq!(s3_objects(&s3, &prefix).await, landed, "{endpoint}: rerun");

        if endpoint == "users" {
            users_key = Some(summary.keys[0].clone());
            users_records = expected;
        }
    }
    api.stop().await;
    let users_key = users_key.unwrap();

    // 2. Transform: the landed users object into the users table, catalogued in Glue (moto).
    let mut transform_env = vars(&[
        ("LAKE_URI", &lake_uri),
        ("CATALOG", "glue"),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("SPOOL_DIR", &spool_dir),
        (
            "PIPELINE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/deftunes"),
        ),
    ]);
    transform_env.extend(vars(&aws));
    let transformer = |env: HashMap<String, String>| async move {
        let cfg = TransformConfig::from_env(&env).unwrap();
        assert_eq!(
            cfg.warehouse,
            format!("s3://{BUCKET}/{LAKE_PREFIX}/transform_zone")
        );
        Transformer::new(cfg, &env as &dyn Env).await.unwrap()
    };
    let t = transformer(transform_env.clone()).await;
    let obj = ObjectRef {
        key: users_key.clone(),
        version: None,
    };
    let first = t.transform_object(&obj).await.unwrap();
    assert_eq!(first.status, Status::Committed, "{first:?}");
    assert_eq!(first.records_in, users_records as u64, "{first:?}");
    assert_eq!(first.records_quarantined, 0, "{first:?}");
    assert_eq!(first.rows_committed, users_records as u64, "{first:?}");
    assert!(first.quality_passed, "{first:?}");
    assert!(first.snapshot_id.is_some());
    assert_eq!(users_rows(&t).await, users_records);

    // The table is in the moto Glue catalog and its files in the moto bucket.
    let table = users_table(&t).await;
    let table_root = format!("s3://{BUCKET}/{LAKE_PREFIX}/transform_zone/");
    let metadata_location = table.metadata_location().unwrap().to_string();
    assert!(
        metadata_location.starts_with(&table_root),
        "{metadata_location}"
    );
    let written = s3_keys(&s3, &format!("{LAKE_PREFIX}/transform_zone/")).await;
    assert!(
        written.iter().any(|k| k.ends_with(".parquet")),
        "no data file in S3: {written:?}"
    );
    assert!(
        written.contains(
            &metadata_location
                .strip_prefix(&format!("s3://{BUCKET}/"))
                .unwrap()
                .to_string()
        ),
        "{metadata_location} not in S3: {written:?}"
    );
    drop(t);

    // 3. Redelivery to a fresh transformer (a new Lambda instance): the state lives in moto.
    let t2 = transformer(transform_env.clone()).await;
    let again = t2.transform_object(&obj).await.unwrap();
    assert_eq!(again.status, Status::AlreadyCommitted, "{again:?}");
    assert_eq!(again.snapshot_id, first.snapshot_id);
    assert_eq!(again.rows_committed, first.rows_committed);
    assert_eq!(users_rows(&t2).await, users_records);
    let table = users_table(&t2).await;
    assert_eq!(table.metadata().snapshots().count(), 1);
    assert_eq!(table.metadata_location().unwrap(), metadata_location);

    // 4. The same bytes rewritten under a new ETag (a multipart upload's ETag is not the MD5 of
    //    the content, as with SSE-KMS): a new content version, every record already held.
    let s3_key = format!("{LAKE_PREFIX}/{users_key}");
    let bytes = object_bytes(&s3, &s3_key).await;
    let old_etag = etag(&s3, &s3_key).await;
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(&s3_key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(&s3_key)
        .upload_id(upload_id)
        .part_number(1)
        .body(bytes.to_vec().into())
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(&s3_key)
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let new_etag = etag(&s3, &s3_key).await;
    assert_ne!(new_etag, old_etag, "the rewrite must change the ETag");
    let rewritten = t2.transform_object(&obj).await.unwrap();
    assert_eq!(rewritten.status, Status::Unchanged, "{rewritten:?}");
    assert_ne!(rewritten.version, first.version);
    assert_eq!(
        (rewritten.rows_committed, rewritten.records_unchanged),
        (0, users_records as u64)
    );
    assert_eq!(users_rows(&t2).await, users_records);

    // 5. Orphan-file maintenance on S3: a file nothing references, older than the safety age
    //    as far as the cleanup can tell, goes; everything referenced stays.
    let table = users_table(&t2).await;
    let table_key = t2.lake().key_of(table.metadata().location()).unwrap();
    let orphan = format!("{LAKE_PREFIX}/{table_key}/data/orphan.parquet");
    s3.put_object()
        .bucket(BUCKET)
        .key(&orphan)
        .body(b"not referenced".to_vec().into())
        .send()
        .await
        .unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(7200);
    let report = deftunes::transform::maintenance::remove_orphan_files(
        t2.lake(),
        &table,
        std::time::Duration::from_secs(3600),
        later,
    )
    .await
    .unwrap();
    assert_eq!(
        report.deleted,
        [orphan
            .trim_start_matches(&format!("{LAKE_PREFIX}/"))
            .to_string()],
        "{report:?}"
    );
    assert!(report.referenced >= 3, "{report:?}");
    assert_eq!(users_rows(&t2).await, users_records);
    drop(t2);

    // 6. Type widening on Glue: the spec widens songs' year (int to long) and duration (float
    //    to double); the next object evolves the table in place through Glue, whose columns
    //    follow, and the older rows read promoted.
    let spec_dir = spool.path().join("pipeline");
    common::pipeline_copy(&spec_dir, |s| s);
    let mut songs_env = transform_env.clone();
    songs_env.insert("PIPELINE_DIR".into(), spec_dir.display().to_string());
    let songs_key =
        |d: &str| format!("landing_zone/rds/songs/ingest_on={d}/songs.part-00000.jsonl");
    let (older, newer) = dataset.songs.split_at(20);
    let newer = &newer[..30];
    let land_songs = |t: Transformer, day: &'static str, body: Vec<u8>| async move {
        t.lake().put_bytes(&songs_key(day), &body).await.unwrap();
        let o = t
            .transform_object(&ObjectRef {
                key: songs_key(day),
                version: None,
            })
            .await
            .unwrap();
        assert_eq!(o.status, Status::Committed, "{o:?}");
        t
    };
    let t3 = land_songs(
        transformer(songs_env.clone()).await,
        "2020-01-01",
        common::ndjson(older),
    )
    .await;
    let ident = t3.table_ident("songs");
    let narrow = t3.catalog().load_table(&ident).await.unwrap();
    common::pipeline_copy(&spec_dir, |s| {
        s.replace(
            "{ name = \"year\", type = \"int\" }",
            "{ name = \"year\", type = \"long\" }",
        )
        .replace(
            "{ name = \"duration\", type = \"float\" }",
            "{ name = \"duration\", type = \"double\" }",
        )
    });
    let t4 = land_songs(
        transformer(songs_env).await,
        "2020-02-01",
        common::ndjson(newer),
    )
    .await;
    let wide = t4.catalog().load_table(&ident).await.unwrap();
    assert_eq!(wide.metadata().uuid(), narrow.metadata().uuid());
    assert_eq!(
        wide.metadata()
            .current_schema()
            .field_by_name("year")
            .unwrap()
            .field_type
            .to_string(),
        "long"
    );
    let glue = aws_sdk_glue::Client::new(&shared)
        .get_table()
        .database_name(ident.namespace().join("."))
        .name("songs")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let glue_type = |name: &str| {
        glue.storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .find(|c| c.name() == name)
            .and_then(|c| c.r#type().map(str::to_string))
    };
    assert_eq!(glue_type("year").as_deref(), Some("bigint"));
    assert_eq!(glue_type("duration").as_deref(), Some("double"));
    assert_eq!(
        glue.parameters().unwrap()["metadata_location"],
        wide.metadata_location().unwrap()
    );
    let mut years = std::collections::HashMap::new();
    for b in common::read_table(&wide, None).await {
        let ids = common::col::<arrow_array::StringArray>(&b, "song_id");
        let y = common::col::<arrow_array::Int64Array>(&b, "year");
        for i in 0..b.num_rows() {
            years.insert(ids.value(i).to_string(), y.value(i));
        }
    }
    assert_eq!(years.len(), older.len() + newer.len(), "every song once");
    for s in older.iter().chain(newer) {
        assert_eq!(years[&s.song_id], i64::from(s.year), "{}", s.song_id);
    }

    drop(moto);
}
