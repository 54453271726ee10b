//! `deftunes run`: the pipeline end to end on one machine, stage by stage in the order the state
//! machine runs them, month by month as a catch-up would.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use crate::interrupt::step;
use crate::DataArgs;
use deftunes::config::{ApiExtractConfig, SongsExtractConfig};
use deftunes::extract::api::ApiExtractor;
use deftunes::extract::songs::SongsExtractor;
use deftunes::extract::ExtractSummary;
use deftunes::storage::Lake;
use deftunes::transform::catalog::current_rows;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::quality::QualityReport;
use deftunes::transform::totals::{observe_rule, OutcomeTotals, RuleSummary};
use deftunes::transform::{TransformConfig, Transformer};
use deftunes::window::Window;
use deftunes_local::child::GroupChild;
use deftunes_local::{pg, Dataset, LocalPostgres};

#[derive(Debug, Default, Serialize)]
pub struct SourceTotals {
    pub runs: u64,
    pub objects: u64,
    pub records: u64,
    pub bytes: u64,
    /// Records the source holds for the same windows.
    pub expected: u64,
}

/// What the transform stage did to one table, summed over the run.
#[derive(Debug, Default, Serialize)]
pub struct TableTotals {
    #[serde(flatten)]
    pub outcomes: OutcomeTotals,
    /// Rows in the table's current snapshot, read back from the catalog.
    pub table_rows: u64,
    pub quality_failures: Vec<String>,
    /// Dataset rules, with the worst value seen over the run's objects.
    pub dataset_rules: BTreeMap<String, RuleSummary>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub lake: String,
    pub catalog: String,
    pub windows: Vec<Window>,
    pub landing: BTreeMap<String, SourceTotals>,
    pub transform: BTreeMap<String, TableTotals>,
    /// Late-arriving dimension members of the star schema (absent without serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingSummary>,
    /// Rows per warehouse table after serving (`<schema>.<table>`), the run's row-count report.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub row_counts: BTreeMap<String, u64>,
    /// The end-to-end checks of the run: what was expected, what was found.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    pub timings_ms: BTreeMap<String, u128>,
}

impl RunReport {
    /// What the stages before serving found; serving, row counts and checks are filled later.
    pub fn new(
        lake_uri: &str,
        catalog_db: &Path,
        windows: Vec<Window>,
        landing: BTreeMap<String, SourceTotals>,
        transform: BTreeMap<String, TableTotals>,
        timings_ms: BTreeMap<String, u128>,
    ) -> RunReport {
        RunReport {
            lake: lake_uri.to_string(),
            catalog: catalog_db.display().to_string(),
            windows,
            landing,
            transform,
            serving: None,
            row_counts: BTreeMap::new(),
            checks: BTreeMap::new(),
            timings_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub expected: u64,
    pub found: u64,
    pub passed: bool,
}

/// Dimension members the star schema inferred from the facts because their record has not
/// landed yet (completed when it does).
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct ServingSummary {
    pub inferred_users: u64,
    pub inferred_songs: u64,
    pub inferred_artists: u64,
}

pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The venv with DuckDB and dbt (`make python`), as the Makefile exports it.
pub(crate) fn python() -> Result<String> {
    let python = std::env::var("DEFTUNES_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/deftunes/venv-py/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    if !Path::new(&python).exists() {
        bail!("no Python venv with dbt and DuckDB at {python}: run `make python` (or pass --no-serving)");
    }
    Ok(python)
}

/// The repository this tool was built from: its dbt projects, pipelines and Python helpers, found
/// from any working directory.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs one of the repository's Python helpers (`script`, relative to its root); its stdout is
/// returned, its failure is an error carrying what it printed. Dropped before it ends (an
/// interrupted run), the helper is stopped.
pub(crate) async fn python_script(script: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let mut cmd = tokio::process::Command::new(python()?);
    cmd.arg(repo_root().join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = GroupChild::run(&mut cmd)
        .await
        .with_context(|| format!("running {script}"))?;
    if !out.status.success() {
        bail!(
            "{script} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dbt build --target local` of a pipeline's dbt project on the DuckDB warehouse, whose source
/// views its on-run-start hook points at the current Iceberg snapshots (the stand-in for Redshift
/// Spectrum). Prints dbt's tally. Dropped before it ends (an interrupted run), dbt is stopped
/// with the runner script.
pub(crate) async fn dbt_build_locally(
    project: &Path,
    catalog_db: &Path,
    warehouse: &Path,
) -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    if !project.join("dbt_project.yml").exists() {
        bail!(
            "{}: no dbt project (dbt_project.yml) there (or pass --no-serving)",
            project.display()
        );
    }
    let runner = repo_root().join("dbt_modeling/run_local.sh");
    let log_dir = warehouse.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let log_path = log_dir.join("dbt-build.log");
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = tokio::process::Command::new(&runner);
    cmd.arg("--project")
        .arg(project)
        .arg(catalog_db)
        .arg(warehouse)
        .env("DEFTUNES_PYTHON", python()?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        GroupChild::spawn(&mut cmd).with_context(|| format!("running {}", runner.display()))?;
    tracing::debug!(pid = child.pid(), "dbt build started");
    let (stdout, stderr) = (child.inner().stdout.take(), child.inner().stderr.take());
    // stderr drained beside stdout: a full pipe would stall dbt.
    let drain_stderr = async {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text).await;
        }
        text
    };
    let (mut failures, mut tally) = (Vec::new(), Vec::new());
    let follow_stdout = async {
        if let Some(stdout) = stdout {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Some(line) = lines
                .next_line()
                .await
                .with_context(|| format!("reading the output of {}", runner.display()))?
            {
                writeln!(log, "{line}")?;
                match classify_dbt_line(&line) {
                    DbtLine::Progress(p) => println!("      {p}"),
                    DbtLine::Failure(f) => failures.push(f),
                    DbtLine::Tally(t) => tally.push(t),
                    DbtLine::Other => {}
                }
            }
        }
        anyhow::Ok(())
    };
    let (followed, stderr) = tokio::join!(follow_stdout, drain_stderr);
    followed?;
    let status = child.wait().await?;
    log.write_all(stderr.as_bytes())?;
    if !status.success() {
        if failures.is_empty() {
            failures.extend(stderr.lines().rev().take(5).map(str::to_string));
        }
        bail!(
            "dbt build failed ({}):\n  {}\nfull log: {}",
            if tally.is_empty() {
                "no tally".to_string()
            } else {
                tally.join("; ")
            },
            failures.join("\n  "),
            log_path.display()
        );
    }
    for t in tally {
        println!("      {t}");
    }
    println!("      dbt log: {}", log_path.display());
    Ok(())
}

/// What a line of `dbt build` output is to the run's console.
#[derive(Debug, PartialEq)]
enum DbtLine {
    /// `12 of 30 OK created sql table model main.dim_users [OK in 0.10s]`: shown as it comes.
    Progress(String),
    /// A failing test or model, or the error that names it: kept for the failure message.
    Failure(String),
    /// dbt's closing tally (`Done. PASS=.. WARN=.. ERROR=..`) or the runner's timing.
    Tally(String),
    Other,
}

/// `line` without its terminal colour codes (`ESC [ ... m`), which dbt writes even into a pipe.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn classify_dbt_line(line: &str) -> DbtLine {
    let line = strip_ansi(line);
    // dbt prefixes its lines with a `HH:MM:SS` time.
    let text = match line.trim().split_once("  ") {
        Some((time, rest)) if time.len() == 8 && time.as_bytes()[2] == b':' => rest.trim(),
        _ => line.trim(),
    };
    if text.contains("Done. PASS=") || text.starts_with("dbt build:") {
        return DbtLine::Tally(text.to_string());
    }
    if text.starts_with("Failure in ")
        || text.contains(" Error in ")
        || text.starts_with("Compilation Error")
        || text.starts_with("Runtime Error")
    {
        return DbtLine::Failure(text.to_string());
    }
    let mut words = text.split_whitespace();
    let progress = matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(n), Some("of"), Some(m), Some(what))
            if n.parse::<u32>().is_ok() && m.parse::<u32>().is_ok() && what != "START"
    );
    if progress {
        // Drop dbt's dotted padding: `model main.x ........ [OK in 0.1s]`.
        let compact = text
            .split_whitespace()
            .filter(|w| !w.chars().all(|c| c == '.'))
            .collect::<Vec<_>>()
            .join(" ");
        if compact.contains(" FAIL ") || compact.contains(" ERROR ") {
            return DbtLine::Failure(compact);
        }
        return DbtLine::Progress(compact);
    }
    DbtLine::Other
}

/// DeFtunes' serving stage locally: the dbt build, then the first rows of the BI views.
async fn serve_locally(catalog_db: &Path, warehouse: &Path) -> Result<ServingSummary> {
    step!(
        "[6/6] serving: local warehouse {} and dbt build",
        warehouse.display()
    );
    dbt_build_locally(&repo_root().join("dbt_modeling"), catalog_db, warehouse).await?;
    print!(
        "{}",
        python_script("local/python/bi_preview.py", &[warehouse.as_os_str()]).await?
    );
    let counts = python_script(
        "local/python/bi_preview.py",
        &[warehouse.as_os_str(), "--json".as_ref()],
    )
    .await?;
    serde_json::from_str(counts.trim())
        .with_context(|| format!("bi_preview.py --json printed {counts:?}"))
}

fn env_map(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// How `deftunes run` runs, beyond the source data.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub part_max_bytes: u64,
    /// Warehouse and `dbt build` after the transform zone.
    pub serving: bool,
    /// Only the monthly windows within these dates (default: the whole source period).
    pub window_from: Option<chrono::NaiveDate>,
    pub window_to: Option<chrono::NaiveDate>,
    /// Keep the lake, catalog and warehouse of an earlier run in the same directory (an
    /// incremental run); otherwise all three start empty.
    pub keep: bool,
}

/// The transform function's settings for `pipeline` (a folder of [`pipelines_dir`]), the local
/// lake `lake_uri` and the SQLite catalog `catalog_db`.
pub fn local_transform_env(
    lake_uri: &str,
    catalog_db: &Path,
    pipeline: &str,
) -> HashMap<String, String> {
    env_map(&[
        ("LAKE_URI", lake_uri.to_string()),
        ("CATALOG", "sql".into()),
        (
            "CATALOG_URI",
            format!("sqlite:{}?mode=rwc", catalog_db.display()),
        ),
        (
            "PIPELINE_DIR",
            pipelines_dir().join(pipeline).display().to_string(),
        ),
    ])
}

/// `deftunes transform`: the given landing keys of `dir`'s lake into its catalog, through the
/// transform function's direct invocation (`{"keys": [...]}`); prints its per-key outcomes.
/// Hands `payload` to a transformer of the run directory `dir`, as the transform function would
/// get it (landing keys, or a maintenance request), and prints the answer.
pub async fn transform_payload(
    dir: &Path,
    pipeline: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no run directory {}", dir.display()))?;
    let lake_uri = format!("file://{}", dir.join("lake").display());
    let env = local_transform_env(&lake_uri, &dir.join("catalog").join("catalog.db"), pipeline);
    let transformer = Transformer::new(TransformConfig::from_env(&env)?, &env).await?;
    let out = transformer.handle(payload).await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Transforms `keys` one by one as the state machine's transform step does, adding each outcome
/// to its table's totals; returns the records quarantined.
pub(crate) async fn transform_keys(
    transformer: &Transformer,
    keys: Vec<String>,
    transform: &mut BTreeMap<String, TableTotals>,
) -> Result<u64> {
    let mut quarantined = 0;
    for key in keys {
        let table = transformer.tables().locate(&key)?.0.name().to_string();
        let outcome = transformer
            .transform_object(&ObjectRef {
                key: key.clone(),
                version: None,
            })
            .await;
        let totals = transform.entry(table).or_default();
        match outcome {
            Ok(o) => {
                quarantined += o.records_quarantined;
                totals.outcomes.add(&o);
                let raw = transformer.lake().get_bytes(&o.quality_report_key).await?;
                let report: QualityReport = serde_json::from_slice(&raw)?;
                for r in &report.dataset_rules {
                    observe_rule(&mut totals.dataset_rules, r, None);
                }
            }
            Err(e) if e.error_type() == "DataQualityFailed" => {
                totals.quality_failures.push(e.to_string())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(quarantined)
}

/// Each table's row count at its current snapshot, from the catalog.
pub(crate) async fn read_table_rows(
    transformer: &Transformer,
    transform: &mut BTreeMap<String, TableTotals>,
) -> Result<()> {
    for (name, totals) in transform.iter_mut() {
        let ident = transformer.table_ident(name);
        let table = transformer.catalog().load_table(&ident).await?;
        totals.table_rows = current_rows(&table);
    }
    Ok(())
}

/// Prints the transform stage's totals and dataset rules; adds inconsistent tables to
/// `mismatches` and returns the dataset-rule failures.
pub(crate) fn print_transform(
    transform: &BTreeMap<String, TableTotals>,
    mismatches: &mut Vec<String>,
) -> Vec<String> {
    println!(
        "      {:<14} {:>8} {:>10} {:>10} {:>11} {:>10} {:>11}  quality",
        "table", "objects", "records", "unchanged", "quarantined", "rows", "table rows"
    );
    let mut quality_failed = Vec::new();
    for (name, t) in transform {
        println!(
            "      {:<14} {:>8} {:>10} {:>10} {:>11} {:>10} {:>11}  {}",
            name,
            t.outcomes.objects,
            t.outcomes.records_in,
            t.outcomes.records_unchanged,
            t.outcomes.records_quarantined,
            t.outcomes.rows_committed,
            t.table_rows,
            if t.quality_failures.is_empty() {
                "passed"
            } else {
                "FAILED"
            }
        );
        if !t.outcomes.balanced() {
            mismatches.push(format!(
                "{}: records in != committed + unchanged + quarantined",
                name
            ));
        }
        quality_failed.extend(t.quality_failures.iter().cloned());
    }
    for (name, t) in transform {
        for (rule, r) in &t.dataset_rules {
            println!(
                "      rule {:<14} {:<28} worst {:.4} (threshold {})  {}",
                name,
                rule,
                r.worst_value,
                r.threshold,
                if r.passed { "passed" } else { "FAILED" }
            );
        }
    }
    quality_failed
}

/// Writes `<dir>/dashboard.html` with a dashboard script (`--warehouse --summary --out`).
pub(crate) async fn write_dashboard(
    script: &str,
    warehouse: &Path,
    summary: &Path,
    dir: &Path,
) -> Result<()> {
    let dashboard = dir.join("dashboard.html");
    python_script(
        script,
        &[
            "--warehouse".as_ref(),
            warehouse.as_os_str(),
            "--summary".as_ref(),
            summary.as_os_str(),
            "--out".as_ref(),
            dashboard.as_os_str(),
        ],
    )
    .await?;
    println!("      dashboard: file://{}", dashboard.display());
    Ok(())
}

/// The start of a local run that reads its whole source each time (no windows, no `--keep`):
/// its spec, checked, and its fresh run directory.
pub(crate) struct WholeSourceRun {
    pub pipeline_dir: PathBuf,
    pub pipeline: deftunes::pipeline::Pipeline,
    pub started: Instant,
    pub dir: RunDir,
    pub lake_dir: PathBuf,
    pub catalog_db: PathBuf,
    pub lake_uri: String,
}

/// Refuses the deftunes-only options (`why`: how the pipeline reads instead), checks the
/// pipeline's spec, then takes and clears the run directory.
pub(crate) fn start_whole_source_run(
    name: &str,
    dir: &Path,
    opts: &RunOptions,
    why: &str,
) -> Result<WholeSourceRun> {
    if opts.window_from.is_some() || opts.window_to.is_some() || opts.keep {
        bail!("--window-from, --window-to and --keep are for the deftunes pipeline: {why}");
    }
    let pipeline_dir = pipelines_dir().join(name);
    let pipeline = check_pipeline(&pipeline_dir)?;
    let started = Instant::now();
    let dir = run_dir(dir, false)?;
    let lake_dir = dir.join("lake");
    let catalog_db = dir.join("catalog").join("catalog.db");
    let lake_uri = format!("file://{}", lake_dir.display());
    Ok(WholeSourceRun {
        pipeline_dir,
        pipeline,
        started,
        dir,
        lake_dir,
        catalog_db,
        lake_uri,
    })
}

/// What the transform stage of a local run found: totals per table, the tables whose counts
/// disagree and the dataset rules that failed.
pub(crate) struct Transformed {
    pub tables: BTreeMap<String, TableTotals>,
    pub mismatches: Vec<String>,
    pub quality_failed: Vec<String>,
}

/// Transforms every landed key (sorted, as the transform takes them in landing order) with a
/// transformer of `env`, reads each table's row count back and prints the totals.
pub(crate) async fn transform_landed(
    env: &HashMap<String, String>,
    mut keys: Vec<String>,
    timings: &mut BTreeMap<String, u128>,
) -> Result<Transformed> {
    let t = Instant::now();
    let transformer = Transformer::new(TransformConfig::from_env(env)?, env).await?;
    let mut tables = BTreeMap::new();
    keys.sort();
    let quarantined = transform_keys(&transformer, keys, &mut tables).await?;
    read_table_rows(&transformer, &mut tables).await?;
    timings.insert("transform".to_string(), t.elapsed().as_millis());
    println!(
        "      {:.1}s, quarantined {quarantined}",
        t.elapsed().as_secs_f64()
    );
    let mut mismatches = Vec::new();
    let quality_failed = print_transform(&tables, &mut mismatches);
    Ok(Transformed {
        tables,
        mismatches,
        quality_failed,
    })
}

/// Serving of a pipeline's local run, unless turned off or a dataset rule failed (as in the
/// state machine): `dbt build` of its project, then [`serve_and_count`] into `report`; returns
/// the named queries' values, `None` when not served.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_pipeline(
    step: &str,
    pipeline_dir: &Path,
    pipeline: &deftunes::pipeline::Pipeline,
    opts: &RunOptions,
    quality_failed: &[String],
    catalog_db: &Path,
    warehouse: &Path,
    queries: &[(&str, &str)],
    report: &mut RunReport,
) -> Result<Option<serde_json::Value>> {
    if !quality_failed.is_empty() {
        println!("      serving skipped: a dataset quality rule failed");
    }
    if !opts.serving || !quality_failed.is_empty() {
        return Ok(None);
    }
    let name = &pipeline.spec.name;
    let project = match &pipeline.spec.dbt {
        Some(d) => pipeline_dir.join(&d.project),
        None => bail!("pipeline {name} declares no dbt project (or pass --no-serving)"),
    };
    step!(
        "{step} serving: dbt build of {} on {}",
        project.display(),
        warehouse.display()
    );
    let t = Instant::now();
    let namespace = &pipeline.spec.namespace;
    let serving_schema = format!("{namespace}_serving");
    let (rows, values) = serve_and_count(
        &project,
        catalog_db,
        warehouse,
        &[namespace.as_str(), serving_schema.as_str()],
        queries,
    )
    .await?;
    report
        .timings_ms
        .insert("serving".to_string(), t.elapsed().as_millis());
    report.row_counts = rows;
    Ok(Some(values))
}

/// `dbt build` of `project` on `warehouse`, then the rows of every table of `schemas` and the
/// value of each named query (`name=SQL`, a number) from `row_counts.py`.
pub(crate) async fn serve_and_count(
    project: &Path,
    catalog_db: &Path,
    warehouse: &Path,
    schemas: &[&str],
    queries: &[(&str, &str)],
) -> Result<(BTreeMap<String, u64>, serde_json::Value)> {
    dbt_build_locally(project, catalog_db, warehouse).await?;
    let mut args: Vec<std::ffi::OsString> = vec![warehouse.as_os_str().to_owned()];
    for s in schemas {
        args.push("--schema".into());
        args.push((*s).into());
    }
    for (name, sql) in queries {
        args.push("--query".into());
        args.push(format!("{name}={sql}").into());
    }
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = python_script("local/python/row_counts.py", &refs).await?;
    let counts: serde_json::Value = serde_json::from_str(out.trim())
        .with_context(|| format!("row_counts.py printed {out:?}"))?;
    let rows: BTreeMap<String, u64> = serde_json::from_value(counts["row_counts"].clone())?;
    for (table, n) in &rows {
        println!("      {table:<40} {n:>9}");
    }
    Ok((rows, counts["queries"].clone()))
}

/// The end of a pipeline's local run: prints and records `checks` (name, expected, found),
/// writes the run summary and the row-count report, draws the dashboard with `dashboard` (a
/// script of local/python, when served) and fails on any mismatch or quality failure.
pub(crate) async fn finish_run(
    dir: &Path,
    mut report: RunReport,
    checks: Vec<(String, u64, u64)>,
    mut mismatches: Vec<String>,
    quality_failed: &[String],
    dashboard: Option<(&str, &Path)>,
    started: Instant,
) -> Result<RunReport> {
    if !checks.is_empty() {
        println!("      checks against the source");
    }
    for (name, expected, found) in checks {
        let passed = expected == found;
        println!(
            "      {name:<44} expected {expected:>9}, found {found:>9}  {}",
            if passed { "ok" } else { "MISMATCH" }
        );
        if !passed {
            mismatches.push(name.clone());
        }
        report.checks.insert(
            name,
            Check {
                expected,
                found,
                passed,
            },
        );
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
    if let Some((script, warehouse)) = dashboard {
        println!("      dashboard");
        write_dashboard(script, warehouse, &report_path, dir).await?;
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

/// A run directory in use: held for the whole run, released (and the lock file left, harmless)
/// when dropped, also when the process dies.
pub struct RunDir {
    pub path: PathBuf,
    _lock: std::fs::File,
}

impl std::ops::Deref for RunDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// The local warehouse (DuckDB) of a run directory: what dbt builds and the dashboards read.
pub(crate) fn warehouse_db(dir: &Path) -> PathBuf {
    dir.join("warehouse").join("warehouse.duckdb")
}

/// The outputs of a run in its directory: a fresh run removes them all first, so a stale
/// dashboard or summary never describes the new (or a wiped) warehouse.
const RUN_OUTPUTS: [&str; 5] = [
    "lake",
    "catalog",
    "warehouse",
    "dashboard.html",
    "run-summary.json",
];

/// The run directory, made absolute and locked against a second run. A fresh run starts from
/// an empty lake, catalog and warehouse, so its summary and the star schema describe this run
/// only (an incremental dbt model would keep older rows); `keep` keeps them (an incremental
/// run). Callers validate every input before: this is where an earlier run's data goes.
pub(crate) fn run_dir(dir: &Path, keep: bool) -> Result<RunDir> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.canonicalize()?;
    let lock_path = path.join(".run.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another deftunes run is using {} (it holds {}): wait for it to finish, or give this one another --dir",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
    if !keep {
        for stale in RUN_OUTPUTS.map(|d| path.join(d)) {
            let removed = if stale.is_dir() {
                std::fs::remove_dir_all(&stale)
            } else if stale.exists() {
                std::fs::remove_file(&stale)
            } else {
                Ok(())
            };
            removed.with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    Ok(RunDir { path, _lock: lock })
}

/// The monthly windows of a run, refused before anything is touched when they are reversed or
/// outside the generated data (`from`..=`to`), with what to pass instead.
pub(crate) fn run_windows(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    opts: &RunOptions,
) -> Result<Vec<Window>> {
    let (start, end) = (
        opts.window_from.unwrap_or(from),
        opts.window_to.unwrap_or(to),
    );
    if start > end {
        bail!(
            "--window-from {start} is after --window-to {end}: nothing was changed; give the first day before the last"
        );
    }
    if end < from || start > to {
        bail!(
            "the windows {start}..{end} are outside the generated data ({from}..{to}, set by --from and --to): nothing was changed; choose windows within it, or generate other dates with --from/--to"
        );
    }
    Ok(Window::monthly(start, end)?)
}

/// What a run into an empty catalog whose first window starts after the data's first day
/// (`from`) should know: users are extracted by sign-up date, so those of the earlier months
/// never land and their sessions get inferred users (unknown country in the BI views).
fn late_start_note(
    from: chrono::NaiveDate,
    windows: &[Window],
    has_catalog: bool,
) -> Option<String> {
    let start = windows.first()?.start_date;
    (start > from && !has_catalog).then(|| {
        format!(
            "      note: this run starts on {start} with an empty catalog, so users who signed up from {from} to {} are not landed: their sessions count as inferred users (country unknown) until those windows run. For the whole picture, run the earlier windows first (`--window-to {}`), then this one with --keep.",
            start - chrono::Days::new(1),
            start - chrono::Days::new(1),
        )
    })
}

/// The repository's `pipelines/` folder (`DEFTUNES_PIPELINES` overrides it).
pub fn pipelines_dir() -> PathBuf {
    std::env::var_os("DEFTUNES_PIPELINES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("pipelines"))
}

/// Loads and validates a pipeline folder, and prints what it declares.
pub fn check_pipeline(dir: &Path) -> Result<deftunes::pipeline::Pipeline> {
    let p = deftunes::pipeline::Pipeline::load(dir)?;
    println!(
        "pipeline {} (namespace {}): {} sources, {} tables",
        p.spec.name,
        p.spec.namespace,
        p.spec.sources.len(),
        p.spec.tables.len()
    );
    for (name, t) in &p.spec.tables {
        let t = t.get_ref();
        println!(
            "  {name}: {} columns from {}, key ({}), partitioned by {:?}({})",
            t.columns.len(),
            t.source,
            t.key.join(", "),
            t.partition.transform,
            t.partition.column
        );
    }
    Ok(p)
}

pub async fn run(data: &DataArgs, dir: &Path, opts: &RunOptions) -> Result<RunReport> {
    let (part_max_bytes, serving) = (opts.part_max_bytes, opts.serving);
    // The spec is validated before anything starts: a broken one stops the run here.
    check_pipeline(&pipelines_dir().join("deftunes"))?;
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    // Every input is checked before run_dir clears the previous run.
    let windows = run_windows(data.from, data.to, opts)?;
    let dir = run_dir(dir, opts.keep)?;
    let lake_dir = dir.join("lake");
    let catalog_db = dir.join("catalog").join("catalog.db");
    if let Some(note) = late_start_note(data.from, &windows, catalog_db.exists()) {
        println!("{note}");
    }

    step!(
        "[1/6] generating source data: {} songs, {} users, {} sessions (seed {})",
        data.songs,
        data.users,
        data.sessions,
        data.seed
    );
    let t = Instant::now();
    let dataset = Arc::new(Dataset::generate(data.seed, &data.scale()));
    timings.insert("generate".to_string(), t.elapsed().as_millis());

    step!("[2/6] starting the local source stack (PostgreSQL, API emulator)");
    let t = Instant::now();
    // PostgreSQL lives in the system temp dir: its server user must be able to traverse it.
    let pg_dir = tempfile::Builder::new()
        .prefix("deftunes-pg-")
        .tempdir()
        .context("creating a temp dir for PostgreSQL")?;
    let mut postgres = LocalPostgres::start(pg_dir.path()).await?;
    let client = postgres.connect().await?;
    let loaded = pg::load_songs(&client, &dataset.songs).await?;
    drop(client);
    let emulator =
        deftunes_local::emulator::start(dataset.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?;
    println!(
        "      postgres 127.0.0.1:{} ({loaded} songs; files in {}, removed at the end), API {}",
        postgres.port(),
        pg_dir.path().display(),
        emulator.base_url
    );
    timings.insert("source_stack".to_string(), t.elapsed().as_millis());

    // The same configuration path as the Lambdas' cold start, fed from a map instead of the env.
    let lake_uri = format!("file://{}", lake_dir.display());
    let common = [
        ("LAKE_URI", lake_uri.clone()),
        ("PART_MAX_BYTES", part_max_bytes.to_string()),
        (
            "PIPELINE_DIR",
            pipelines_dir().join("deftunes").display().to_string(),
        ),
    ];
    let api_cfg = ApiExtractConfig::from_env(&env_map(
        &[
            &common[..],
            &[
                ("API_BASE_URL", emulator.base_url.clone()),
                ("API_RETRY_BASE_MS", "200".into()),
            ],
        ]
        .concat(),
    ))?;
    let songs_cfg = SongsExtractConfig::from_env(&env_map(
        &[
            &common[..],
            &[
                ("PG_HOST", postgres.host().to_string()),
                ("PG_PORT", postgres.port().to_string()),
                ("PG_USER", postgres.user().to_string()),
                ("PG_PASSWORD", postgres.password().to_string()),
                ("PG_DATABASE", postgres.database().to_string()),
                ("PG_SSLMODE", "disable".into()),
            ],
        ]
        .concat(),
    ))?;
    let transform_env = local_transform_env(&lake_uri, &catalog_db, "deftunes");
    let transformer =
        Transformer::new(TransformConfig::from_env(&transform_env)?, &transform_env).await?;
    let lake = Lake::from_uri(&lake_uri, false).await?;
    let api = ApiExtractor::new(api_cfg, lake.clone())?;
    let songs = SongsExtractor::new(songs_cfg, lake, None);
    let mut transform: BTreeMap<String, TableTotals> = BTreeMap::new();
    let mut transform_ms = 0u128;

    step!(
        "[3/6] extract -> transform, {} monthly windows (landing zone: {}, catalog: {})",
        windows.len(),
        lake_dir.join("landing_zone").display(),
        catalog_db.display()
    );
    let t = Instant::now();
    let mut landing: BTreeMap<String, SourceTotals> = BTreeMap::new();
    for (i, w) in windows.iter().enumerate() {
        let tw = Instant::now();
        // The payloads the state machine's three parallel branches send.
        let users_req =
            json!({"source": "users", "start_date": w.start_date, "end_date": w.end_date});
        let sessions_req =
            json!({"source": "sessions", "start_date": w.start_date, "end_date": w.end_date});
        let songs_req = json!({"source": "songs", "ingest_date": w.start_date});
        let (users, sessions, song_rows) = tokio::join!(
            api.handle(&users_req),
            api.handle(&sessions_req),
            songs.handle(&songs_req)
        );
        let users: ExtractSummary = serde_json::from_value(users?)?;
        let sessions: ExtractSummary = serde_json::from_value(sessions?)?;
        let song_rows: ExtractSummary = serde_json::from_value(song_rows?)?;
        let expected = [
            dataset.users_between(w.start_date, w.end_date).len() as u64,
            dataset.sessions_between(w.start_date, w.end_date).len() as u64,
            dataset.songs.len() as u64,
        ];
        for (s, exp) in [&users, &sessions, &song_rows].into_iter().zip(expected) {
            let tot = landing.entry(s.source.clone()).or_default();
            tot.runs += 1;
            tot.objects += s.objects.len() as u64;
            tot.records += s.records;
            tot.bytes += s.bytes;
            tot.expected += exp;
        }
        let extract_s = tw.elapsed().as_secs_f64();

        // The state machine's next step: transform every key the three branches landed.
        let tt = Instant::now();
        let keys: Vec<String> = [&users, &sessions, &song_rows]
            .iter()
            .flat_map(|s| s.keys.clone())
            .collect();
        let quarantined = transform_keys(&transformer, keys, &mut transform).await?;
        transform_ms += tt.elapsed().as_millis();
        println!(
            "      [{}/{}] {w}: users {:>5}  sessions {:>6}  songs {:>6}  extract {:.1}s, transform {:.1}s, quarantined {}",
            i + 1,
            windows.len(),
            users.records,
            sessions.records,
            song_rows.records,
            extract_s,
            tt.elapsed().as_secs_f64(),
            quarantined
        );
    }
    timings.insert(
        "extract".to_string(),
        t.elapsed().as_millis() - transform_ms,
    );
    timings.insert("transform".to_string(), transform_ms);
    read_table_rows(&transformer, &mut transform).await?;

    emulator.stop().await;
    postgres.stop()?;
    step!("[4/6] landing zone");
    println!(
        "      {:<14} {:>5} {:>8} {:>10} {:>11} {:>10}",
        "source", "runs", "objects", "records", "bytes", "expected"
    );
    let mut mismatches = Vec::new();
    for (source, t) in &landing {
        let ok = t.records == t.expected;
        println!(
            "      {:<14} {:>5} {:>8} {:>10} {:>11} {:>10}  {}",
            source,
            t.runs,
            t.objects,
            t.records,
            human_bytes(t.bytes),
            t.expected,
            if ok { "ok" } else { "MISMATCH" }
        );
        if !ok {
            mismatches.push(source.clone());
        }
    }
    step!(
        "[5/6] transform zone (Iceberg, namespace {}) and data quality",
        transformer.config().namespace
    );
    let quality_failed = print_transform(&transform, &mut mismatches);
    println!(
        "      quality reports: {}, quarantine: {}",
        lake_dir.join("quality").display(),
        lake_dir.join("quarantine").display()
    );
    let mut report = RunReport::new(&lake_uri, &catalog_db, windows, landing, transform, timings);
    let warehouse = warehouse_db(&dir);
    // As in the state machine, a failed dataset rule stops the run before serving.
    let serving = serving && quality_failed.is_empty();
    if !quality_failed.is_empty() {
        println!("      serving skipped: a dataset quality rule failed");
    }
    if serving {
        let t = Instant::now();
        report.serving = Some(serve_locally(&catalog_db, &warehouse).await?);
        report
            .timings_ms
            .insert("serving".to_string(), t.elapsed().as_millis());
    }
    report
        .timings_ms
        .insert("total".to_string(), started.elapsed().as_millis());
    let report_path = dir.join("run-summary.json");
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)?;
    let timing_line: Vec<String> = report
        .timings_ms
        .iter()
        .map(|(k, v)| format!("{k} {:.1}s", *v as f64 / 1000.0))
        .collect();
    println!("      timings: {}", timing_line.join(", "));
    println!("      run summary: {}", report_path.display());
    if serving {
        write_dashboard("local/python/dashboard.py", &warehouse, &report_path, &dir).await?;
    }
    if !mismatches.is_empty() {
        bail!(
            "landed record counts differ from the source for: {}",
            mismatches.join(", ")
        );
    }
    if !quality_failed.is_empty() {
        bail!(
            "data quality failed (DataQualityFailed), nothing served:\n  {}",
            quality_failed.join("\n  ")
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbt_lines_are_progress_failures_or_the_tally() {
        use DbtLine::*;
        assert_eq!(
            classify_dbt_line("07:15:01  12 of 30 OK created sql table model main.dim_users ........ [OK in 0.10s]"),
            Progress("12 of 30 OK created sql table model main.dim_users [OK in 0.10s]".into())
        );
        assert_eq!(
            classify_dbt_line(
                "07:15:01  12 of 30 START sql table model main.dim_users ..... [RUN]"
            ),
            Other
        );
        assert_eq!(
            classify_dbt_line(
                "07:15:02  13 of 30 FAIL 3 not_null_dim_users_user_id ........ [FAIL 3 in 0.02s]"
            ),
            Failure("13 of 30 FAIL 3 not_null_dim_users_user_id [FAIL 3 in 0.02s]".into())
        );
        assert_eq!(
            classify_dbt_line(
                "07:15:03  Failure in test not_null_dim_users_user_id (models/schema.yml)"
            ),
            Failure("Failure in test not_null_dim_users_user_id (models/schema.yml)".into())
        );
        assert_eq!(
            classify_dbt_line(
                "07:15:03  Database Error in model fact_session (models/fact_session.sql)"
            ),
            Failure("Database Error in model fact_session (models/fact_session.sql)".into())
        );
        assert_eq!(
            classify_dbt_line("07:15:04  Done. PASS=28 WARN=0 ERROR=1 SKIP=1 TOTAL=30"),
            Tally("Done. PASS=28 WARN=0 ERROR=1 SKIP=1 TOTAL=30".into())
        );
        assert_eq!(classify_dbt_line("07:15:00  Running with dbt=1.9.4"), Other);
        // As dbt writes them into a pipe: with colour codes.
        assert_eq!(
            classify_dbt_line("\u{1b}[0m07:32:07  1 of 118 \u{1b}[32mOK\u{1b}[0m created sql view model main.stg_users ... [\u{1b}[32mOK\u{1b}[0m in 0.05s]"),
            Progress("1 of 118 OK created sql view model main.stg_users [OK in 0.05s]".into())
        );
        assert_eq!(
            classify_dbt_line("\u{1b}[0m07:32:07  Done. PASS=118 WARN=0 ERROR=0 SKIP=0 TOTAL=118"),
            Tally("Done. PASS=118 WARN=0 ERROR=0 SKIP=0 TOTAL=118".into())
        );
    }

    fn opts(from: Option<&str>, to: Option<&str>) -> RunOptions {
        RunOptions {
            part_max_bytes: 1,
            serving: false,
            window_from: from.map(|d| d.parse().unwrap()),
            window_to: to.map(|d| d.parse().unwrap()),
            keep: false,
        }
    }

    #[test]
    fn windows_are_checked_against_the_data_before_anything_is_touched() {
        let (from, to) = ("2020-01-01".parse().unwrap(), "2020-03-31".parse().unwrap());
        assert_eq!(run_windows(from, to, &opts(None, None)).unwrap().len(), 3);
        assert_eq!(
            run_windows(from, to, &opts(Some("2020-03-01"), None))
                .unwrap()
                .len(),
            1
        );
        let e = run_windows(from, to, &opts(Some("2020-03-01"), Some("2020-01-31"))).unwrap_err();
        assert!(e.to_string().contains("is after --window-to"), "{e}");
        let e = run_windows(from, to, &opts(Some("2021-01-01"), Some("2021-02-28"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("outside the generated data (2020-01-01..2020-03-31"),
            "{e}"
        );
    }

    #[test]
    fn a_late_first_window_into_an_empty_catalog_is_explained() {
        let from = "2020-01-01".parse().unwrap();
        let march =
            Window::monthly("2020-03-01".parse().unwrap(), "2020-03-31".parse().unwrap()).unwrap();
        let note = late_start_note(from, &march, false).expect("a note");
        assert!(note.contains("from 2020-01-01 to 2020-02-29"), "{note}");
        assert!(note.contains("`--window-to 2020-02-29`"), "{note}");
        // Nothing to say with the earlier windows in the catalog, or from the first day on.
        assert_eq!(late_start_note(from, &march, true), None);
        let all = Window::monthly(from, "2020-03-31".parse().unwrap()).unwrap();
        assert_eq!(late_start_note(from, &all, false), None);
    }

    #[test]
    fn a_second_run_in_one_directory_is_refused_and_a_fresh_one_clears_old_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["lake/landing_zone", "catalog", "warehouse", "mine"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("dashboard.html"), "old").unwrap();
        std::fs::write(tmp.path().join("run-summary.json"), "{}").unwrap();
        let kept = run_dir(tmp.path(), true).unwrap();
        assert!(tmp.path().join("dashboard.html").exists());
        let e = run_dir(tmp.path(), false)
            .err()
            .expect("the directory is locked");
        assert!(
            e.to_string().contains("another deftunes run is using"),
            "{e}"
        );
        assert!(
            tmp.path().join("lake").exists(),
            "a refused run removes nothing"
        );
        drop(kept);
        let fresh = run_dir(tmp.path(), false).unwrap();
        for gone in [
            "lake",
            "catalog",
            "warehouse",
            "dashboard.html",
            "run-summary.json",
        ] {
            assert!(!fresh.join(gone).exists(), "{gone}");
        }
        assert!(fresh.join("mine").exists(), "only the run's own outputs go");
    }
}
