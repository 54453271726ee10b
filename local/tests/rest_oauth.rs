//! OAuth 2.0 and paged REST sources against the Spotify-style emulator over real HTTP: every
//! record of every listing lands exactly once through token expiry mid-run, 429 storms with
//! `Retry-After`, failing pages and both paging styles; then the spotify pipeline's tables keep
//! one row per unchanged record and a new version per changed one across two runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deftunes::config::ApiExtractConfig;
use deftunes::extract::api::ApiExtractor;
use deftunes::extract::ExtractSummary;
use deftunes::storage::Lake;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::{TransformConfig, Transformer};
use deftunes_local::spotify::{self, RunningSpotify, SpotifyConfig, SpotifyFaults, SpotifyScale};
use serde_json::{json, Value};

mod common;

const SPOTIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/spotify");

fn scale() -> SpotifyScale {
    SpotifyScale {
        artists: 230,
        albums: 140,
        tracks: 420,
        playlists: 45,
        tracks_per_playlist: 12,
    }
}

async fn emulator() -> RunningSpotify {
    spotify::start(
        SpotifyConfig {
            seed: 9,
            scale: scale(),
            ..SpotifyConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn settings(
    work: &std::path::Path,
    api: &RunningSpotify,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env = common::env_of(work, &[("PIPELINE_DIR", SPOTIFY)]);
    for (k, v) in [
        ("API_BASE_URL", api.base_url.clone()),
        ("OAUTH_TOKEN_URL", api.token_url()),
        ("OAUTH_CLIENT_ID", api.client_id.clone()),
        ("OAUTH_CLIENT_SECRET", api.client_secret.clone()),
        ("API_RETRY_BASE_MS", "10".into()),
        ("API_MAX_ATTEMPTS", "6".into()),
        ("API_TIMEOUT_SECS", "5".into()),
    ] {
        env.insert(k.into(), v);
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn extractor(env: &HashMap<String, String>) -> ApiExtractor {
    let cfg = ApiExtractConfig::from_env(env).unwrap();
    let lake = Lake::from_uri(&env["LAKE_URI"], false).await.unwrap();
    ApiExtractor::new(cfg, lake).unwrap()
}

async fn extract(ex: &ApiExtractor, source: &str, day: &str) -> deftunes::Result<ExtractSummary> {
    let v = ex
        .handle(&json!({"source": source, "start_date": day, "end_date": day}))
        .await?;
    Ok(serde_json::from_value(v).unwrap())
}

async fn ids(lake: &Lake, keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        let body = lake.get_bytes(k).await.unwrap();
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).unwrap();
            out.push(v["id"].as_str().unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_lands_once_through_token_expiry_rate_limits_and_failing_pages() {
    let work = tempfile::tempdir().unwrap();
    let api = emulator().await;
    let env = settings(work.path(), &api, &[]);
    let ex = extractor(&env).await;
    let lake = Lake::local(work.path().join("lake"));
    let data = api.served();
    let expected: BTreeMap<&str, Vec<String>> = [
        (
            "artists",
            data.artists.iter().map(|a| a.id.clone()).collect(),
        ),
        ("albums", data.albums.iter().map(|a| a.id.clone()).collect()),
        ("tracks", data.tracks.iter().map(|t| t.id.clone()).collect()),
        (
            "playlists",
            data.playlists.iter().map(|p| p.id.clone()).collect(),
        ),
    ]
    .into_iter()
    .collect();

    // Tokens die every 4 requests, three 429s in a row (1 s, then 0 s), and a page fails once.
    api.set_faults(SpotifyFaults {
        expire_tokens_after_requests: 4,
        rate_limit_next: 3,
        retry_after_secs: 1,
        error_next: 0,
        ..SpotifyFaults::default()
    });
    for (source, want) in &expected {
        if *source == "tracks" {
            api.set_faults(SpotifyFaults {
                expire_tokens_after_requests: 4,
                error_next: 2,
                error_status: 503,
                ..SpotifyFaults::default()
            });
        }
        let s = extract(&ex, source, "2024-05-01").await.unwrap();
        let got = ids(&lake, &s.keys).await;
        assert_eq!(
            got.len(),
            want.len(),
            "{source}: no record lost or repeated"
        );
        let got_set: BTreeSet<&String> = got.iter().collect();
        assert_eq!(got_set.len(), got.len(), "{source}: each id once");
        assert_eq!(got_set, want.iter().collect(), "{source}: the source's ids");
    }
    let stats = api.stats();
    assert!(
        stats.token_grants >= 5,
        "tokens refreshed mid-run: {stats:?}"
    );
    assert!(stats.expired_tokens >= 1, "{stats:?}");
    assert_eq!(stats.rate_limited, 3, "{stats:?}");
    assert_eq!(stats.early_retries, 0, "Retry-After honoured: {stats:?}");
    assert_eq!(stats.injected_errors, 2, "{stats:?}");
    // Offset paging of 50 over 230 artists: 5 pages, plus the 3 rate-limited tries.
    assert_eq!(stats.ok_from("artists"), 5, "{stats:?}");

    // A Retry-After beyond API_RETRY_AFTER_MAX_SECS fails at once, for the state machine to
    // retry later; nothing lands.
    let short = settings(work.path(), &api, &[("API_RETRY_AFTER_MAX_SECS", "2")]);
    api.set_faults(SpotifyFaults {
        rate_limit_next: 1,
        retry_after_secs: 600,
        ..SpotifyFaults::default()
    });
    let started = std::time::Instant::now();
    let e = extract(&extractor(&short).await, "artists", "2024-05-02")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(e.to_string().contains("Retry-After"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(lake
        .list("landing_zone/spotify/artists/ingest_on=2024-05-02/")
        .await
        .unwrap()
        .is_empty());

    // Wrong client credentials: a configuration error naming the client, not a retry loop.
    api.set_faults(SpotifyFaults::default());
    let wrong = settings(
        work.path(),
        &api,
        &[("OAUTH_CLIENT_SECRET", "not-the-secret")],
    );
    let e = extract(&extractor(&wrong).await, "albums", "2024-05-03")
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "Configuration", "{e}");
    assert!(e.to_string().contains(&api.client_id), "{e}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_keep_unchanged_records_once_and_changed_ones_as_new_versions() {
    let work = tempfile::tempdir().unwrap();
    let api = emulator().await;
    let env = settings(work.path(), &api, &[]);
    let ex = extractor(&env).await;
    let t = Transformer::new(
        TransformConfig::from_env(&env).unwrap(),
        &env as &dyn deftunes::config::Env,
    )
    .await
    .unwrap();
    let mut per_run = Vec::new();
    for (epoch, day) in [(0, "2025-01-01"), (1, "2025-01-02")] {
        api.set_epoch(epoch).unwrap();
        let mut keys = Vec::new();
        for source in ["artists", "albums", "tracks", "playlists"] {
            keys.extend(extract(&ex, source, day).await.unwrap().keys);
        }
        for key in keys {
            let o = t
                .transform_object(&ObjectRef { key, version: None })
                .await
                .unwrap();
            assert_eq!(o.records_quarantined, 0, "{o:?}");
        }
        per_run.push(api.served());
    }
    let (e0, e1) = (&per_run[0], &per_run[1]);
    let changed = e0
        .artists
        .iter()
        .zip(&e1.artists)
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 0, "the epoch changed some artists");
    let rows = |table: &str| {
        let t = &t;
        let table = table.to_string();
        async move {
            let ice = t
                .catalog()
                .load_table(&t.table_ident(&table))
                .await
                .unwrap();
            common::read_table(&ice, None)
                .await
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        }
    };
    assert_eq!(
        rows("artists").await,
        e0.artists.len() + changed,
        "one version per change"
    );
    assert_eq!(
        rows("tracks").await,
        e1.tracks.len(),
        "unchanged tracks kept once"
    );
    let additions: usize = e1.playlists.iter().map(|p| p.tracks.items.len()).sum();
    assert!(
        additions
            > e0.playlists
                .iter()
                .map(|p| p.tracks.items.len())
                .sum::<usize>()
    );
    assert_eq!(
        rows("playlist_tracks").await,
        additions,
        "every addition once"
    );
    api.stop().await;
}
