//! `deftunes run --pipeline sparkify`: the Sparkify pipeline end to end on one machine. Nothing
//! is extracted: a generator lands the song documents and event logs the way an upstream system
//! puts them in S3, the transform takes every landed object (as the object-created events would
//! trigger it), dbt builds the songplays star on DuckDB, and the run checks its counts against the
//! generated data and an independent count over the raw files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli_run::{
    check_pipeline, dbt_build_locally, local_transform_env, pipelines_dir, print_transform,
    python_script, read_table_rows, run_dir, transform_keys, write_dashboard, Check, RunOptions,
    RunReport, SourceTotals,
};
use deftunes::transform::{TransformConfig, Transformer};
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

    println!(
        "[1/5] landing Sparkify's raw data: {} songs, {} users, {} days of event logs (seed {seed})",
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

    println!(
        "[2/5] transform: every landed object (namespace {})",
        pipeline.spec.namespace
    );
    let t = Instant::now();
    let lake_uri = format!("file://{}", lake_dir.display());
    let env = local_transform_env(&lake_uri, &catalog_db, "sparkify");
    let transformer = Transformer::new(TransformConfig::from_env(&env)?, &env).await?;
    let mut transform = BTreeMap::new();
    let quarantined = transform_keys(&transformer, keys, &mut transform).await?;
    read_table_rows(&transformer, &mut transform).await?;
    timings.insert("transform".to_string(), t.elapsed().as_millis());
    println!(
        "      {:.1}s, quarantined {quarantined}",
        t.elapsed().as_secs_f64()
    );
    let mut mismatches = Vec::new();
    let quality_failed = print_transform(&transform, &mut mismatches);

    let mut report = RunReport::new(&lake_uri, &catalog_db, vec![], landing, transform, timings);
    let warehouse = dir.join("warehouse").join("warehouse.duckdb");
    let serving = opts.serving && quality_failed.is_empty();
    if !quality_failed.is_empty() {
        println!("      serving skipped: a dataset quality rule failed");
    }
    if serving {
        println!(
            "[3/5] serving: dbt build of {} on {}",
            pipeline
                .spec
                .dbt
                .as_ref()
                .map_or("(none)", |d| d.project.as_str()),
            warehouse.display()
        );
        let t = Instant::now();
        let project = match &pipeline.spec.dbt {
            Some(d) => pipeline_dir.join(&d.project),
            None => bail!("pipeline sparkify declares no dbt project (or pass --no-serving)"),
        };
        dbt_build_locally(&project, &catalog_db, &warehouse)?;
        report
            .timings_ms
            .insert("serving".to_string(), t.elapsed().as_millis());

        println!("[4/5] row counts and checks");
        let out = python_script(
            "local/python/row_counts.py",
            &[
                warehouse.as_os_str(),
                "--schema".as_ref(),
                "sparkify".as_ref(),
                "--schema".as_ref(),
                "sparkify_serving".as_ref(),
                "--query".as_ref(),
                "matched_plays=SELECT count(*) FROM sparkify_serving.songplays WHERE song_id IS NOT NULL".as_ref(),
            ],
        )?;
        let counts: serde_json::Value = serde_json::from_str(out.trim())
            .with_context(|| format!("row_counts.py printed {out:?}"))?;
        report.row_counts = serde_json::from_value(counts["row_counts"].clone())?;
        for (table, rows) in &report.row_counts {
            println!("      {table:<32} {rows:>9}");
        }
        let found = |name: &str| report.row_counts.get(name).copied().unwrap_or(0);
        let checks = [
            (
                "songplays = NextSong events generated",
                data.next_song_events(),
                found("sparkify_serving.songplays"),
            ),
            (
                "matched plays = count over the raw files",
                raw.matched,
                counts["queries"]["matched_plays"].as_u64().unwrap_or(0),
            ),
            (
                "staging_events = events landed",
                raw.events,
                found("sparkify.staging_events"),
            ),
            (
                "staging_songs = songs landed",
                raw.songs,
                found("sparkify.staging_songs"),
            ),
        ];
        for (name, expected, found) in checks {
            let passed = expected == found;
            println!(
                "      {name:<44} expected {expected:>7}, found {found:>7}  {}",
                if passed { "ok" } else { "MISMATCH" }
            );
            if !passed {
                mismatches.push(name.to_string());
            }
            report.checks.insert(
                name.to_string(),
                Check {
                    expected,
                    found,
                    passed,
                },
            );
        }
    }
    report
        .timings_ms
        .insert("total".to_string(), started.elapsed().as_millis());
    let report_path = dir.join("run-summary.json");
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)?;
    if !report.row_counts.is_empty() {
        // The original ETL's report file: rows per table, one per line.
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let results = dir.join(format!("etl_{stamp}.results"));
        let lines: String = report
            .row_counts
            .iter()
            .map(|(t, n)| format!("{t}\t{n}\n"))
            .collect();
        std::fs::write(&results, lines)?;
        println!("      row-count report: {}", results.display());
    }
    println!("      run summary: {}", report_path.display());
    if serving {
        println!("[5/5] dashboard");
        write_dashboard(
            "local/python/sparkify_dashboard.py",
            &warehouse,
            &report_path,
            &dir,
        )?;
    }
    if !mismatches.is_empty() {
        bail!("the run's counts differ: {}", mismatches.join(", "));
    }
    if !quality_failed.is_empty() {
        bail!(
            "data quality failed (DataQualityFailed), nothing served:\n  {}",
            quality_failed.join("\n  ")
        );
    }
    Ok(report)
}
