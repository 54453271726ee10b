//! `deftunes load-songs` into a PostgreSQL given by the `PG_*` variables (here the local
//! cluster, as a fresh RDS would be): the generated songs, idempotently.

use std::process::{Command, Output};

use deftunes_local::{Dataset, LocalPostgres};
use tokio_postgres::Client;

fn load_songs(pg: &LocalPostgres, args: &[&str]) -> Output {
    let port = pg.port().to_string();
    Command::new(env!("CARGO_BIN_EXE_deftunes"))
        .arg("load-songs")
        .args(args)
        .env("PG_HOST", pg.host())
        .env("PG_PORT", &port)
        .env("PG_USER", pg.user())
        .env("PG_PASSWORD", pg.password())
        .env("PG_DATABASE", pg.database())
        .env("PG_SSLMODE", "disable")
        .env("PG_CONNECT_TIMEOUT_SECS", "5")
        .env_remove("PG_SECRET_ARN")
        .env_remove("PG_SSL_ROOT_CERT")
        .output()
        .expect("running deftunes load-songs")
}

fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The table as rows of JSON, by track id.
async fn table(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT row_to_json(s)::text FROM deftunes.songs s ORDER BY track_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_songs_is_deterministic_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = LocalPostgres::start(tmp.path()).await.unwrap();
    let client = pg.connect().await.unwrap();
    let small = ["--seed", "11", "--songs", "700"];

    let stdout = assert_ok(&load_songs(&pg, &small));
    assert!(
        stdout.contains("Loaded 700 songs (seed 11) into deftunes.songs"),
        "{stdout}"
    );
    let first = table(&client).await;
    assert_eq!(first.len(), 700);
    // Exactly the songs the generator gives for this seed (the ones the emulator's sessions use).
    let mut expected: Vec<_> = Dataset::generate_songs(11, 700)
        .into_iter()
        .map(|s| (s.track_id, s.title, s.artist_id, s.year))
        .collect();
    expected.sort();
    let got: Vec<(String, String, String, i32)> = client
        .query(
            "SELECT track_id, title, artist_id, year FROM deftunes.songs ORDER BY track_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got, expected);
    let full = Dataset::generate(
        11,
        &deftunes_local::Scale {
            songs: 700,
            ..deftunes_local::Scale::default()
        },
    );
    assert_eq!(full.songs, Dataset::generate_songs(11, 700));

    // A rerun leaves the same rows, not twice as many.
    assert_ok(&load_songs(&pg, &small));
    assert_eq!(table(&client).await, first);

    // Rows this seed does not generate are kept unless --replace says otherwise.
    client
        .execute(
            "INSERT INTO deftunes.songs (track_id, title) VALUES ('TRNOTGENERATED00001', 'x')",
            &[],
        )
        .await
        .unwrap();
    let out = load_songs(&pg, &small);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 rows") && stderr.contains("--replace"),
        "{stderr}"
    );
    assert_eq!(table(&client).await.len(), 701);

    assert_ok(&load_songs(&pg, &[&small[..], &["--replace"]].concat()));
    assert_eq!(table(&client).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_songs_reports_a_bad_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = LocalPostgres::start(tmp.path()).await.unwrap();
    let port = pg.port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_deftunes"))
        .args(["load-songs", "--songs", "10"])
        .env("PG_HOST", pg.host())
        .env("PG_PORT", &port)
        .env("PG_PASSWORD", "wrong")
        .env("PG_SSLMODE", "disable")
        .env_remove("PG_SECRET_ARN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_deftunes"))
        .args(["load-songs", "--songs", "10"])
        .env_remove("PG_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PG_HOST"));
}
