//! `deftunes run --pipeline spotify`: the spotify pipeline end to end on one machine. The
//! Spotify-style emulator serves the catalogue behind OAuth 2.0 client credentials, with token
//! expiry and rate limits switched on; api-extract's code (the Lambda's) reads every listing page
//! by page, twice: before and after the catalogue changes (popularity, followers, new playlist
//! additions). The transform keeps unchanged records once and changed ones as new versions, dbt
//! builds type-2 artists and albums and the playlist additions fact, and the run checks them
//! against what the emulator served.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::cli_run::{
    finish_run, local_transform_env, serve_pipeline, start_whole_source_run, transform_landed,
    RunOptions, RunReport, SourceTotals, Transformed, WholeSourceRun,
};
use crate::interrupt::step;
use deftunes::config::ApiExtractConfig;
use deftunes::extract::api::ApiExtractor;
use deftunes::extract::ExtractSummary;
use deftunes::storage::Lake;
use deftunes_local::spotify::{self, SpotifyConfig, SpotifyFaults};

const PIPELINE: &str = "spotify";
/// The two runs: the catalogue as first read, then a day later after it changed.
const RUNS: [(u32, &str); 2] = [(0, "2025-01-01"), (1, "2025-01-02")];

pub async fn run(seed: u64, dir: &Path, opts: &RunOptions) -> Result<RunReport> {
    let WholeSourceRun {
        pipeline_dir,
        pipeline,
        started,
        dir,
        lake_dir,
        catalog_db,
        lake_uri,
    } = start_whole_source_run(
        PIPELINE,
        dir,
        opts,
        "spotify reads the whole catalogue on each run",
    )?;
    let mut timings = BTreeMap::new();

    let api = spotify::start(
        SpotifyConfig {
            seed,
            ..SpotifyConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let scale = &api.data().scale;
    step!(
        "[1/5] source: the Spotify-style API emulator at {} (seed {seed}): {} artists, {} albums, {} tracks, {} playlists",
        api.base_url, scale.artists, scale.albums, scale.tracks, scale.playlists
    );
    // A flaky, strict API: tokens die every 7 requests, the first requests are rate limited.
    api.set_faults(SpotifyFaults {
        expire_tokens_after_requests: 7,
        rate_limit_next: 2,
        retry_after_secs: 1,
        ..SpotifyFaults::default()
    });
    let mut env = local_transform_env(&lake_uri, &catalog_db, PIPELINE);
    for (k, v) in [
        ("API_BASE_URL", api.base_url.clone()),
        ("OAUTH_TOKEN_URL", api.token_url()),
        ("OAUTH_CLIENT_ID", api.client_id.clone()),
        ("OAUTH_CLIENT_SECRET", api.client_secret.clone()),
        ("API_RETRY_BASE_MS", "50".into()),
        ("SPOOL_DIR", dir.join("spool").display().to_string()),
        ("PART_MAX_BYTES", opts.part_max_bytes.to_string()),
        ("METRICS", "off".into()),
    ] {
        env.insert(k.to_string(), v);
    }
    std::fs::create_dir_all(dir.join("spool"))?;
    let extractor = ApiExtractor::new(ApiExtractConfig::from_env(&env)?, Lake::local(&lake_dir))?;
    let mut landing: BTreeMap<String, SourceTotals> = BTreeMap::new();
    let mut keys = Vec::new();
    let t = Instant::now();
    let sources: Vec<String> = pipeline.spec.sources.keys().cloned().collect();
    for (step, (epoch, day)) in RUNS.iter().enumerate() {
        api.set_epoch(*epoch)
            .map_err(|e| anyhow::anyhow!("epoch {}: too large", e.0))?;
        println!(
            "[{}/5] extract on {day}: every listing, page by page{}",
            step + 2,
            if step == 0 {
                ""
            } else {
                " (the catalogue changed since)"
            }
        );
        let served = api.served();
        for source in &sources {
            let out = extractor
                .handle(&serde_json::json!({"source": source, "start_date": day, "end_date": day}))
                .await?;
            let s: ExtractSummary = serde_json::from_value(out)?;
            let expected = match source.as_str() {
                "artists" => served.artists.len(),
                "albums" => served.albums.len(),
                "tracks" => served.tracks.len(),
                "playlists" => served.playlists.len(),
                _ => 0,
            } as u64;
            let totals = landing.entry(source.clone()).or_default();
            totals.runs += 1;
            totals.objects += s.objects.len() as u64;
            totals.records += s.records;
            totals.bytes += s.bytes;
            totals.expected += expected;
            println!(
                "      {source:<10} {:>6} records (served {expected})",
                s.records
            );
            keys.extend(s.keys);
        }
    }
    let stats = api.stats();
    println!(
        "      {} tokens granted ({} expired mid-run), {} requests rate limited, {} retried early",
        stats.token_grants, stats.expired_tokens, stats.rate_limited, stats.early_retries
    );
    timings.insert("extract".to_string(), t.elapsed().as_millis());
    let first = api.data().at_epoch(RUNS[0].0);
    let last = api.served();
    api.stop().await;
    // What the tables must hold: each artist and album once per distinct version, every track
    // once, every playlist addition once.
    let versions = |a: usize, b: usize| a + b;
    let changed_artists = first
        .artists
        .iter()
        .zip(&last.artists)
        .filter(|(a, b)| a != b)
        .count();
    let changed_albums = first
        .albums
        .iter()
        .zip(&last.albums)
        .filter(|(a, b)| a != b)
        .count();
    let additions: usize = last.playlists.iter().map(|p| p.tracks.items.len()).sum();

    step!(
        "[4/5] transform: {} landed objects (namespace {})",
        keys.len(),
        pipeline.spec.namespace
    );
    let Transformed {
        tables: transform,
        mismatches,
        quality_failed,
    } = transform_landed(&env, keys, &mut timings).await?;
    let table_rows = |name: &str| transform.get(name).map_or(0, |t| t.table_rows);
    let mut checks: Vec<(String, u64, u64)> = vec![
        (
            "artists: one row per version".into(),
            versions(last.artists.len(), changed_artists) as u64,
            table_rows("artists"),
        ),
        (
            "albums: one row per version".into(),
            versions(last.albums.len(), changed_albums) as u64,
            table_rows("albums"),
        ),
        (
            "tracks: one row per track".into(),
            last.tracks.len() as u64,
            table_rows("tracks"),
        ),
        (
            "playlist_tracks: every addition once".into(),
            additions as u64,
            table_rows("playlist_tracks"),
        ),
        (
            "extraction retried early (Retry-After)".into(),
            0,
            stats.early_retries,
        ),
    ];

    let mut report = RunReport::new(&lake_uri, &catalog_db, vec![], landing, transform, timings);
    let warehouse = crate::cli_run::warehouse_db(&dir);
    let served = serve_pipeline(
        "[5/5]",
        &pipeline_dir,
        &pipeline,
        opts,
        &quality_failed,
        &catalog_db,
        &warehouse,
        &[
            (
                "current_artists",
                "SELECT count(*) FROM spotify_serving.dim_artists WHERE is_current",
            ),
            (
                "artist_versions",
                "SELECT count(*) FROM spotify_serving.dim_artists",
            ),
        ],
        &mut report,
    )
    .await?;
    if let Some(queries) = &served {
        let found = |name: &str| report.row_counts.get(name).copied().unwrap_or(0);
        let query = |name: &str| queries[name].as_u64().unwrap_or(0);
        checks.push((
            "dim_artists: one current row per artist".into(),
            last.artists.len() as u64,
            query("current_artists"),
        ));
        checks.push((
            "dim_artists: one row per change".into(),
            versions(last.artists.len(), changed_artists) as u64,
            query("artist_versions"),
        ));
        checks.push((
            "fact_playlist_additions = additions served".into(),
            additions as u64,
            found("spotify_serving.fact_playlist_additions"),
        ));
    }
    finish_run(
        &dir,
        report,
        checks,
        mismatches,
        &quality_failed,
        served
            .is_some()
            .then_some(("local/python/spotify_dashboard.py", warehouse.as_path())),
        started,
    )
    .await
}
