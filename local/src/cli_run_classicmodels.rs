//! `deftunes run --pipeline classicmodels`: the classicmodels pipeline end to end on one machine.
//! A throwaway MariaDB holds the generated shop database; songs-extract's SQL extraction (the
//! Lambda's code) lands every table of the spec, new business arrives in the source, a second
//! extraction reads the fact tables from their watermarks on, the transform takes every landed
//! object, dbt builds the sales star on DuckDB, and the run checks the tables, the fact and the
//! revenue against the source database itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate};
use mysql_async::prelude::Queryable;

use crate::cli_run::{
    finish_run, local_transform_env, serve_pipeline, start_whole_source_run, transform_landed,
    RunOptions, RunReport, SourceTotals, Transformed, WholeSourceRun,
};
use crate::interrupt::step;
use deftunes::config::SongsExtractConfig;
use deftunes::extract::songs::SongsExtractor;
use deftunes::extract::ExtractBatch;
use deftunes::storage::Lake;
use deftunes_local::classicmodels::{self, ClassicModels, ClassicScale};
use deftunes_local::mariadb::LocalMariaDb;

const PIPELINE: &str = "classicmodels";

/// Revenue of the source's non-cancelled order lines, in cents (the BI views' definition).
const SOURCE_REVENUE_CENTS: &str =
    "SELECT CAST(COALESCE(SUM(d.quantityOrdered * d.priceEach), 0) * 100 AS SIGNED)
 FROM classicmodels.orderdetails d JOIN classicmodels.orders o ON o.orderNumber = d.orderNumber
 WHERE o.status <> 'Cancelled'";

pub async fn run(seed: u64, scale: usize, dir: &Path, opts: &RunOptions) -> Result<RunReport> {
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
        "classicmodels extracts whole tables and watermarks",
    )?;
    let mut timings = BTreeMap::new();
    let scale = ClassicScale::times(scale);
    // Half the business is in the source at the first extraction, the rest arrives before the second.
    let cut = scale.start + Days::new(((scale.end - scale.start).num_days() / 2).max(0) as u64);

    step!("[1/6] source: a local MariaDB with the classicmodels database (seed {seed})");
    let t = Instant::now();
    // The server's files are of no use after the run: removed with this directory, after the
    // server is stopped (`db` is dropped first), also when the run fails or is interrupted.
    let db_dir = tempfile::Builder::new()
        .prefix("mariadb-")
        .tempdir_in(&*dir)
        .with_context(|| format!("creating a directory for MariaDB in {}", dir.display()))?;
    let db = LocalMariaDb::start(db_dir.path()).await?;
    let mut conn = db.connect().await?;
    let data = ClassicModels::generate(seed, &scale);
    let first = classicmodels::load(&mut conn, &data, Some(cut), true).await?;
    println!(
        "      {} customers, {} products, {} orders up to {cut} ({} lines, {} payments)",
        first.tables["customers"],
        first.tables["products"],
        first.tables["orders"],
        first.tables["orderdetails"],
        first.tables["payments"]
    );
    timings.insert("source".to_string(), t.elapsed().as_millis());

    let mut env = local_transform_env(&lake_uri, &catalog_db, PIPELINE);
    env.extend(db.env());
    env.insert("SPOOL_DIR".into(), dir.join("spool").display().to_string());
    env.insert("PART_MAX_BYTES".into(), opts.part_max_bytes.to_string());
    env.insert("METRICS".into(), "off".into());
    std::fs::create_dir_all(dir.join("spool"))?;
    let extractor = SongsExtractor::new(
        SongsExtractConfig::from_env(&env)?,
        Lake::local(&lake_dir),
        None,
    );
    let mut landing: BTreeMap<String, SourceTotals> = BTreeMap::new();
    let mut keys = Vec::new();
    let t = Instant::now();
    let second_day = scale.end + Days::new(1);
    for (step, ingest) in [(2, cut + Days::new(1)), (3, second_day)] {
        if step == 3 {
            let all = classicmodels::load(&mut conn, &data, None, false).await?;
            step!(
                "[3/6] new business in the source ({} orders in all), extracted again: facts from their watermarks",
                all.tables["orders"]
            );
        } else {
            step!("[2/6] extract: every table of the spec (songs-extract's SQL extraction)");
        }
        let batch = extract_all(&extractor, ingest).await?;
        for s in &batch.extracts {
            let name = s.source.rsplit('/').next().unwrap_or(&s.source).to_string();
            let totals = landing.entry(name.clone()).or_default();
            totals.runs += 1;
            totals.objects += s.objects.len() as u64;
            totals.records += s.records;
            totals.bytes += s.bytes;
            println!("      {name:<14} {:>7} records", s.records);
        }
        keys.extend(batch.keys);
    }
    timings.insert("extract".to_string(), t.elapsed().as_millis());
    // What the source holds now: the expected table sizes.
    let mut source_rows = BTreeMap::new();
    for table in pipeline.spec.tables.keys() {
        let n: u64 = conn
            .query_first(format!("SELECT COUNT(*) FROM classicmodels.{table}"))
            .await?
            .unwrap_or(0);
        source_rows.insert(table.clone(), n);
        if let Some(t) = landing.get_mut(table) {
            t.expected = n;
        }
    }
    let source_revenue: i64 = conn.query_first(SOURCE_REVENUE_CENTS).await?.unwrap_or(0);
    let _ = conn.disconnect().await;
    drop(db);
    drop(db_dir);

    step!(
        "[4/6] transform: {} landed objects (namespace {})",
        keys.len(),
        pipeline.spec.namespace
    );
    let Transformed {
        tables: transform,
        mismatches,
        quality_failed,
    } = transform_landed(&env, keys, &mut timings).await?;
    let mut checks: Vec<(String, u64, u64)> = source_rows
        .iter()
        .map(|(table, n)| {
            (
                format!("{table}: table rows = source rows"),
                *n,
                transform.get(table).map_or(0, |t| t.table_rows),
            )
        })
        .collect();

    let mut report = RunReport::new(&lake_uri, &catalog_db, vec![], landing, transform, timings);
    let warehouse = crate::cli_run::warehouse_db(&dir);
    let served = serve_pipeline(
        "[5/6]",
        &pipeline_dir,
        &pipeline,
        opts,
        &quality_failed,
        &catalog_db,
        &warehouse,
        &[
            ("revenue_cents", "SELECT CAST(round(sum(line_amount) * 100) AS BIGINT) FROM classicmodels_serving.fact_orders WHERE status <> 'Cancelled'"),
            ("bi_revenue_cents", "SELECT CAST(round(sum(revenue) * 100) AS BIGINT) FROM classicmodels_bi.sales_by_product_line_monthly"),
        ],
        &mut report,
    )
    .await?;
    if let Some(queries) = &served {
        let found = |name: &str| report.row_counts.get(name).copied().unwrap_or(0);
        let query = |name: &str| queries[name].as_u64().unwrap_or(0);
        checks.push((
            "fact_orders = source order lines".into(),
            source_rows.get("orderdetails").copied().unwrap_or(0),
            found("classicmodels_serving.fact_orders"),
        ));
        checks.push((
            "revenue in cents = the source's".into(),
            source_revenue.max(0) as u64,
            query("revenue_cents"),
        ));
        checks.push((
            "BI revenue in cents = the source's".into(),
            source_revenue.max(0) as u64,
            query("bi_revenue_cents"),
        ));
    }
    step!("[6/6] report");
    finish_run(
        &dir,
        report,
        checks,
        mismatches,
        &quality_failed,
        served.is_some().then_some((
            "local/python/classicmodels_dashboard.py",
            warehouse.as_path(),
        )),
        started,
    )
    .await
}

/// Every SQL source of the spec, as the scheduled songs-extract invocation reads them.
async fn extract_all(extractor: &SongsExtractor, ingest: NaiveDate) -> Result<ExtractBatch> {
    let out = extractor
        .handle(&serde_json::json!({ "ingest_date": ingest.to_string() }))
        .await?;
    Ok(serde_json::from_value(out)?)
}
