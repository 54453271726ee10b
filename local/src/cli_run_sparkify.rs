//! `deftunes run --pipeline sparkify`: the Sparkify pipeline end to end on one machine. Nothing
//! is extracted: a generator lands the song documents and event logs the way an upstream system
//! puts them in S3, the transform takes every landed object (as the object-created events would
//! trigger it), dbt builds the songplays star on DuckDB, and the run checks its counts against the
//! generated data and an independent count over the raw files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli_run::{
    check_pipeline, finish_run, local_transform_env, pipelines_dir, run_dir, serve_pipeline,
    transform_landed, RunOptions, RunReport, SourceTotals, Transformed,
};
use crate::interrupt::step;
use deftunes_local::sparkify::{count_plays_in_files, SparkifyData, SparkifyScale};

/// The demo's size: a month of events; songs kept to a few hundred because each song document
/// is its own landing object, so its own commit.
pub fn demo_scale() -> SparkifyScale {
    SparkifyScale {
        songs: 250,
        ..SparkifyScale::default()
    }
}

pub async fn run(seed: u64, dir: &Path, opts: &RunOptions) -> Result<RunReport> {
    let pipeline_dir = pipelines_dir().join("sparkify");
    let pipeline = check_pipeline(&pipeline_dir)?;
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    let dir = run_dir(dir, opts.keep)?;
    let lake_dir = dir.join("lake");
    let catalog_db = dir.join("catalog").join("catalog.db");
    let scale = demo_scale();

    step!(
        "[1/4] landing Sparkify's raw data: {} songs, {} users, {} days of event logs (seed {seed})",
        scale.songs, scale.users, scale.days
    );
    let t = Instant::now();
    let data = SparkifyData::generate(seed, &scale);
    let keys = data
        .land(&lake_dir)
        .with_context(|| format!("landing into {}", lake_dir.display()))?;
    // Counted back from the landed files, not from the generator's memory.
    let raw = count_plays_in_files(&lake_dir)?;
    timings.insert("land".to_string(), t.elapsed().as_millis());
    let mut landing = BTreeMap::new();
    for (source, objects, records, expected) in [
        (
            "song_data",
            data.songs.len(),
            raw.songs,
            data.songs.len() as u64,
        ),
        (
            "log_data",
            data.days.len(),
            raw.events,
            data.days.iter().map(|(_, e)| e.len() as u64).sum(),
        ),
    ] {
        landing.insert(
            source.to_string(),
            SourceTotals {
                runs: 1,
                objects: objects as u64,
                records,
                bytes: 0,
                expected,
            },
        );
    }
    println!(
        "      {} objects: {} songs, {} events ({} plays)",
        keys.len(),
        raw.songs,
        raw.events,
        raw.next_song
    );

    step!(
        "[2/4] transform: every landed object (namespace {})",
        pipeline.spec.namespace
    );
    let lake_uri = format!("file://{}", lake_dir.display());
    let env = local_transform_env(&lake_uri, &catalog_db, "sparkify");
    let Transformed {
        tables: transform,
        mismatches,
        quality_failed,
    } = transform_landed(&env, keys, &mut timings).await?;

    let mut report = RunReport::new(&lake_uri, &catalog_db, vec![], landing, transform, timings);
    let mut checks = Vec::new();
    let warehouse = crate::cli_run::warehouse_db(&dir);
    let served = serve_pipeline(
        "[3/4]",
        &pipeline_dir,
        &pipeline,
        opts,
        &quality_failed,
        &catalog_db,
        &warehouse,
        &[(
            "matched_plays",
            "SELECT count(*) FROM sparkify_serving.songplays WHERE song_id IS NOT NULL",
        )],
        &mut report,
    )
    .await?;
    if let Some(queries) = &served {
        let found = |name: &str| report.row_counts.get(name).copied().unwrap_or(0);
        checks = vec![
            (
                "songplays = NextSong events generated".to_string(),
                data.next_song_events(),
                found("sparkify_serving.songplays"),
            ),
            (
                "matched plays = count over the raw files".to_string(),
                raw.matched,
                queries["matched_plays"].as_u64().unwrap_or(0),
            ),
            (
                "staging_events = events landed".to_string(),
                raw.events,
                found("sparkify.staging_events"),
            ),
            (
                "staging_songs = songs landed".to_string(),
                raw.songs,
                found("sparkify.staging_songs"),
            ),
        ];
    }
    step!("[4/4] report");
    finish_run(
        &dir,
        report,
        checks,
        mismatches,
        &quality_failed,
        served
            .is_some()
            .then_some(("local/python/sparkify_dashboard.py", warehouse.as_path())),
        started,
    )
    .await
}
