//! Integration test of the local stack: PostgreSQL with `deftunes.songs`, and the API emulator
//! with its fault modes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use deftunes_local::dataset::{Dataset, Scale, Session, User};
use deftunes_local::emulator::{self, Faults};
use deftunes_local::pg::{self, LocalPostgres};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_loads_songs() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = Dataset::generate(42, &Scale::default());
    let mut pg = LocalPostgres::start(tmp.path()).await.unwrap();
    assert_eq!(pg.host(), "127.0.0.1");
    assert_eq!(pg.user(), "postgres");
    assert_eq!(pg.database(), "postgres");
    assert!(!pg.password().is_empty());

    // A wrong password is rejected: TCP really uses password auth.
    let wrong = format!(
        "host=127.0.0.1 port={} user=postgres password=nope dbname=postgres",
        pg.port()
    );
    assert!(tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
        .await
        .is_err());

    let client = pg.connect().await.unwrap();
    let loaded = pg::load_songs(&client, &dataset.songs).await.unwrap();
    assert_eq!(loaded, 10_000);
    // Reloading replaces the table.
    let loaded = pg::load_songs(&client, &dataset.songs).await.unwrap();
    assert_eq!(loaded, 10_000);
    let count: i64 = client
        .query_one("SELECT count(*) FROM deftunes.songs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);

    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'deftunes' AND table_name = 'songs' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [
        ("track_id", "text"),
        ("title", "text"),
        ("song_id", "text"),
        ("release", "text"),
        ("artist_id", "text"),
        ("artist_mbid", "text"),
        ("artist_name", "text"),
        ("duration", "real"),
        ("artist_familiarity", "real"),
        ("artist_hotttnesss", "real"),
        ("year", "integer"),
        ("track_7digitalid", "integer"),
        ("shs_perf", "integer"),
        ("shs_work", "integer"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(types, want);

    for song in [&dataset.songs[0], &dataset.songs[9_999]] {
        let row = client
            .query_one(
                "SELECT * FROM deftunes.songs WHERE track_id = $1",
                &[&song.track_id],
            )
            .await
            .unwrap();
        let back = deftunes_local::dataset::Song {
            track_id: row.get(0),
            title: row.get(1),
            song_id: row.get(2),
            release: row.get(3),
            artist_id: row.get(4),
            artist_mbid: row.get(5),
            artist_name: row.get(6),
            duration: row.get(7),
            artist_familiarity: row.get(8),
            artist_hotttnesss: row.get(9),
            year: row.get(10),
            track_7digitalid: row.get(11),
            shs_perf: row.get(12),
            shs_work: row.get(13),
        };
        assert_eq!(&back, song);
    }
    drop(client);

    // Detach, then stop from the handle (what `deftunes up`/`down` do across processes).
    let handle = pg.detach();
    let json = serde_json::to_string(&handle).unwrap();
    let handle: pg::PgHandle = serde_json::from_str(&json).unwrap();
    let client = handle.connect().await.unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM deftunes.songs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);
    drop(client);
    pg::stop_detached(&handle).unwrap();
    assert!(handle.connect().await.is_err());
    // Idempotent.
    pg::stop_detached(&handle).unwrap();

    // Restart from the same directory: same password, data kept.
    pg = LocalPostgres::start(tmp.path()).await.unwrap();
    assert_eq!(pg.password(), handle.password);
    let client = pg.connect().await.unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM deftunes.songs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);
    drop(client);
    pg.stop().unwrap();
    pg.stop().unwrap();
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_serves_contract_and_faults() {
    let dataset = Arc::new(Dataset::generate(42, &Scale::default()));
    let emu = emulator::start(dataset.clone(), localhost()).await.unwrap();
    assert!(emu.base_url.starts_with("http://127.0.0.1:"));
    assert_eq!(emu.base_url, format!("http://{}", emu.addr));
    let http = reqwest::Client::new();
    let base = emu.base_url.clone();

    let (status, _) = get(&http, &format!("{base}/health")).await;
    assert_eq!(status, 200);

    // Sessions for February: same records as the dataset filter, byte-identical JSON.
    let url = format!("{base}/sessions?start_date=2020-02-01&end_date=2020-02-29");
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body = resp.text().await.unwrap();
    let want = dataset.sessions_between(d(2020, 2, 1), d(2020, 2, 29));
    assert!(want.len() > 1_000);
    let got: Vec<Session> = serde_json::from_str(&body).unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(body, serde_json::to_string(want).unwrap());

    // Users, one day, inclusive.
    let (status, body) = get(
        &http,
        &format!("{base}/users?start_date=2020-01-10&end_date=2020-01-10"),
    )
    .await;
    assert_eq!(status, 200);
    let got: Vec<User> = serde_json::from_str(&body).unwrap();
    assert_eq!(got, dataset.users_between(d(2020, 1, 10), d(2020, 1, 10)));
    assert!(!got.is_empty());

    // Empty window outside the data: empty array.
    let (status, body) = get(
        &http,
        &format!("{base}/users?start_date=2030-01-01&end_date=2030-01-31"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "[]"));

    // 422 on missing, malformed or reversed dates, naming the parameter.
    for (query, param) in [
        ("end_date=2020-01-31", "start_date"),
        ("start_date=2020-01-01", "end_date"),
        ("start_date=2020-13-01&end_date=2020-01-31", "start_date"),
        ("start_date=2020-01-01&end_date=yesterday", "end_date"),
        ("start_date=2020-02-01&end_date=2020-01-01", "start_date"),
        ("", "start_date"),
    ] {
        for ep in ["users", "sessions"] {
            let (status, body) = get(&http, &format!("{base}/{ep}?{query}")).await;
            assert_eq!(status, 422, "{ep}?{query}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let detail = v["detail"].as_str().unwrap();
            assert!(detail.contains(param), "{ep}?{query}: {detail}");
        }
    }

    // OpenAPI document.
    let (status, body) = get(&http, &format!("{base}/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert!(doc["paths"]["/users"]["get"].is_object());
    assert!(doc["paths"]["/sessions"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Session"].is_object());

    let users_url = format!("{base}/users?start_date=2020-01-01&end_date=2020-01-31");
    let n_jan_users = dataset.users_between(d(2020, 1, 1), d(2020, 1, 31)).len();

    // error_next = 2: two 503, then 200.
    emu.set_faults(Faults {
        error_next: 2,
        ..Faults::default()
    });
    assert_eq!(get(&http, &users_url).await.0, 503);
    assert_eq!(get(&http, &url).await.0, 503);
    assert_eq!(get(&http, &users_url).await.0, 200);
    assert_eq!(emu.faults().error_next, 0);

    // Custom status, set over HTTP; readable back.
    let resp = http
        .put(format!("{base}/_emulator/faults"))
        .header("content-type", "application/json")
        .body(r#"{"error_next": 1, "error_status": 500}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (status, body) = get(&http, &format!("{base}/_emulator/faults")).await;
    assert_eq!(status, 200);
    let f: Faults = serde_json::from_str(&body).unwrap();
    assert_eq!((f.error_next, f.error_status), (1, 500));
    // Non-data endpoints are not affected by faults.
    assert_eq!(get(&http, &format!("{base}/health")).await.0, 200);
    assert_eq!(get(&http, &users_url).await.0, 500);
    assert_eq!(get(&http, &users_url).await.0, 200);

    // error_rate = 1: every data request fails.
    emu.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..3 {
        assert_eq!(get(&http, &users_url).await.0, 503);
    }

    // truncate: 200 OK, chunked, about half the bytes, not valid JSON.
    emu.set_faults(Faults::default());
    let full = get(&http, &users_url).await.1;
    emu.set_faults(Faults {
        truncate: true,
        ..Faults::default()
    });
    let resp = http.get(&users_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let body = resp.text().await.unwrap();
    assert!(body.len() >= full.len() / 2 - 1 && body.len() <= full.len() / 2 + 1);
    assert!(full.starts_with(&body));
    assert!(!body.ends_with(']'));
    assert!(serde_json::from_str::<Vec<User>>(&body).is_err());
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());

    // non_array: {"data": [...]}.
    emu.set_faults(Faults {
        non_array: true,
        ..Faults::default()
    });
    let (status, body) = get(&http, &users_url).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.is_object());
    assert_eq!(v["data"].as_array().unwrap().len(), n_jan_users);
    assert!(serde_json::from_str::<Vec<User>>(&body).is_err());

    // latency for the next request only.
    emu.set_faults(Faults {
        latency_ms: 400,
        latency_next: 1,
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(get(&http, &users_url).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(get(&http, &users_url).await.0, 200);
    assert!(t.elapsed() < Duration::from_millis(400));
    // ...and for all requests while latency_ms > 0; a client timeout sees it.
    emu.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    for _ in 0..2 {
        let t = Instant::now();
        assert_eq!(get(&http, &users_url).await.0, 200);
        assert!(t.elapsed() >= Duration::from_millis(300));
    }
    let err = http
        .get(&users_url)
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    emu.set_faults(Faults::default());
    let addr = emu.addr;
    emu.stop().await;
    // Stopped: nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn default_scale_generates_fast() {
    let t = Instant::now();
    let ds = Dataset::generate(1, &Scale::default());
    let took = t.elapsed();
    assert_eq!(ds.sessions.len(), 20_000);
    // Optimised build: well under a second. Debug builds of this crate are slower; be lenient.
    assert!(took < Duration::from_secs(5), "{took:?}");
}
