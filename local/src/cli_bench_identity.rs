//! `deftunes bench`, record identity: what the identity check costs when a day of sessions is
//! committed into a sessions table that already holds many rows, next to the same commit into an
//! empty table.
//!
//! The prefilled tables are built directly (generated sessions -> the transform's own row
//! parsing, `record_hash` and Parquet writer -> `fast_append`), one data file per event day,
//! `--identity-days-per-commit` days per snapshot (1: one snapshot and one manifest per day, as a
//! daily landing object makes). They are kept under the bench directory, keyed by their size,
//! layout and generator version. Iceberg metadata holds absolute paths, so a prefilled table is
//! not copied: each measured commit runs on it in place and the table is then put back (the
//! catalog database restored from its pristine copy, the files the commit wrote removed).
//!
//! Two objects of one day each (as many rows as a prefill day) are committed:
//! - *new day*: sessions of the day after the prefill: the check plans that day and reads no file;
//! - *held day*: new sessions of the prefill's last day, plus every 100th session of that day
//!   already in the table: the check reads that day's file and must find those rows held.
//!
//! Each commit runs in its own `bench-worker` process (peak RSS of its own). A wrong result (a
//! row committed twice or treated as held, a quarantined record, a table not put back) fails the
//! command; a cost that grows with the table is reported, not failed.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use arrow_array::RecordBatch;
use chrono::{Days, NaiveDate, NaiveTime};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use iceberg::expr::Reference;
use iceberg::spec::{DataFile, Datum};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;

use deftunes::config::Env;
use deftunes::transform::catalog::ensure_table;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::identity::record_hash;
use deftunes::transform::records::RowBuffer;
use deftunes::transform::tables::TableDef;
use deftunes::transform::writer::{BatchBuilder, FileLayout, ObjectWriter, RowMeta};
use deftunes::transform::{Preparation, Transformer};
use deftunes_local::{Dataset, Scale, Session};

use super::{peak_rss_bytes, run_worker_line, scratch_env, verdict, Phase, MB};

/// Bumped when the generated prefill or objects change, so a stale prefill is not reused.
const GENERATOR: &str = "identity-v2";
/// Sessions per day (about 3 items each: ~27,400 rows, 10 M rows in 365 days).
const SESSIONS_PER_DAY: usize = 9_133;
const ROWS_PER_DAY: u64 = 27_400;
const SEED: u64 = 20_201_231;
/// The prefill's last event day; the *new day* object is the day after.
const LAST_DAY: (i32, u32, u32) = (2020, 12, 31);
/// Every this many sessions of the prefill's last day are replayed in the *held day* object.
const REPLAY_EVERY: usize = 100;
const BATCH_ROWS: usize = 8192;
/// One data file per day, whatever its size.
const PREFILL_FILE_BYTES: usize = 1 << 30;
/// The growth of the prefilled-minus-empty difference from the small to the large table that
/// is still read as flat: this share of the empty commit's time (noise on a small machine),
/// and at least this many seconds.
const FLAT_SHARE: f64 = 0.15;
const FLAT_MIN_SECONDS: f64 = 0.03;

/// Options of `deftunes bench` for the identity phases.
#[derive(Args, Clone, Debug)]
pub struct IdentityArgs {
    /// Rows of the prefilled sessions table the identity phases commit into (a table of a tenth
    /// of it is measured too); 0 skips the identity phases.
    #[arg(long = "identity-rows", default_value_t = 10_000_000)]
    pub rows: u64,
    /// Event days per snapshot of the prefill (1: one snapshot and manifest per day, as daily
    /// landing objects make; more: fewer, larger manifests).
    #[arg(long = "identity-days-per-commit", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub days_per_commit: u32,
}

/// Worker options of the identity phases.
#[derive(Args, Clone, Debug, Default)]
pub struct IdentityWorkerArgs {
    /// A prefilled table's directory (`lake/`, `catalog/`); without it, an empty table in a
    /// scratch directory.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// identity-commit: the landing key the object is committed as.
    #[arg(long)]
    pub key: Option<String>,
    /// identity-commit: the object's event day (for the planning diagnostics).
    #[arg(long)]
    pub day: Option<NaiveDate>,
    /// identity-prefill: rows to generate.
    #[arg(long)]
    pub rows: Option<u64>,
    /// identity-prefill: days per commit.
    #[arg(long)]
    pub days_per_commit: Option<u32>,
}

/// What an identity-commit worker prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitMeasurement {
    pub status: String,
    pub records_in: u64,
    pub records_committed: u64,
    pub records_unchanged: u64,
    pub records_quarantined: u64,
    pub rows_committed: u64,
    pub rows_unchanged: u64,
    pub data_files: u64,
    /// `transform_object` (= prepare + commit), the table loaded and the catalog open before.
    pub seconds: f64,
    /// Reading, the identity check, writing the data files.
    pub prepare_seconds: f64,
    /// The exactly-once commit.
    pub commit_seconds: f64,
    /// `VmHWM` right after the commit (in the report: the highest of all runs).
    pub peak_rss_bytes: Option<u64>,
    /// `VmHWM` right after prepare (before the commit).
    #[serde(default)]
    pub prepare_peak_rss_bytes: Option<u64>,
    /// The table before the commit (snapshot summary totals; `None` when not recorded).
    pub table_rows_before: Option<u64>,
    pub table_files_before: Option<u64>,
    pub snapshots_before: u64,
    pub manifests_before: u64,
    /// Data files whose `session_start_time` bounds overlap the object's day (what the check
    /// reads), planned again after the measurement, and how long that planning took.
    pub day_files_planned: u64,
    pub plan_seconds: f64,
    /// Off the clock too: loading the table (metadata JSON) and reading every manifest of the
    /// snapshot, as `fast_append`'s duplicate-file check does on each commit attempt.
    #[serde(default)]
    pub load_table_seconds: f64,
    #[serde(default)]
    pub manifests_read_seconds: f64,
    /// Size of the metadata JSON the table was loaded from.
    #[serde(default)]
    pub metadata_json_bytes: u64,
}

/// What an identity-prefill worker prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrefillMeasurement {
    pub rows: u64,
    pub days: u64,
    pub data_files: u64,
    pub commits: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PrefillStamp {
    generator: String,
    target_rows: u64,
    days_per_commit: u32,
    /// Iceberg metadata holds absolute paths: a moved directory is built again.
    dir: PathBuf,
    first_day: NaiveDate,
    last_day: NaiveDate,
    #[serde(flatten)]
    built: PrefillMeasurement,
}

struct Prefill {
    label: String,
    dir: PathBuf,
    stamp: PrefillStamp,
    reused: bool,
}

/// One landing object of the identity phases.
#[derive(Debug, Clone, Serialize)]
struct Object {
    name: &'static str,
    key: String,
    path: PathBuf,
    day: NaiveDate,
    bytes: u64,
    records: u64,
    rows: u64,
    /// Sessions (and their rows) already in the prefill's last day.
    replayed_records: u64,
    replayed_rows: u64,
}

fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(LAST_DAY.0, LAST_DAY.1, LAST_DAY.2).unwrap_or_default()
}

fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Event days of a prefill of `rows` rows: whole days of ~[`ROWS_PER_DAY`] rows, ending on
/// [`LAST_DAY`].
fn prefill_days(rows: u64) -> Vec<NaiveDate> {
    let n = (rows as f64 / ROWS_PER_DAY as f64).round().max(1.0) as u64;
    let last = last_day();
    (0..n)
        .rev()
        .filter_map(|i| last.checked_sub_days(Days::new(i)))
        .collect()
}

/// The sessions of one event day: the prefill's (`fresh: false`) or new ones (`fresh: true`).
fn day_sessions(day: NaiveDate, fresh: bool) -> Vec<Session> {
    let seed = SEED
        .wrapping_mul(1_000_003)
        .wrapping_add(epoch_days(day) as u64)
        .wrapping_add(if fresh { 1 << 40 } else { 0 });
    Dataset::generate(
        seed,
        &Scale {
            songs: 2_000,
            users: 1_000,
            sessions: SESSIONS_PER_DAY,
            start: day,
            end: day,
        },
    )
    .sessions
}

/// Landing key of a day's object, extracted the next day.
fn landing_key(day: NaiveDate, tag: &str) -> String {
    let ingest_on = day.succ_opt().unwrap_or(day);
    format!("landing_zone/api/sessions/ingest_on={ingest_on}/sessions_{day}_{day}.{tag}.part-00000.jsonl")
}

// ---------------------------------------------------------------------------------------------
// Parent: prefills, objects, runs, report
// ---------------------------------------------------------------------------------------------

/// Runs the identity phases; returns the report section and the correctness errors found (the
/// caller writes the report, then fails on errors).
pub async fn run(
    dir: &Path,
    args: &IdentityArgs,
    runs: u32,
) -> Result<(serde_json::Value, Vec<String>)> {
    let base = dir.join("identity");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let objects = tokio::task::spawn_blocking({
        let base = base.clone();
        move || write_objects(&base)
    })
    .await??;
    let mut sizes = vec![args.rows / 10, args.rows];
    sizes.retain(|&n| n >= ROWS_PER_DAY / 2);
    sizes.dedup();
    let mut prefills = Vec::new();
    for n in sizes {
        let p = ensure_prefill(dir, &base, n, args.days_per_commit).await?;
        let s = &p.stamp.built;
        if p.reused {
            println!(
                "reusing the {} sessions table ({} rows, {} days, {} snapshots, {:.1} MB)",
                p.label,
                s.rows,
                s.days,
                s.commits,
                s.bytes as f64 / MB
            );
        } else {
            println!(
                "prefilled the {} sessions table ({} rows, {} days, {} snapshots, {:.1} MB) in {:.1} s, peak RSS {}",
                p.label,
                s.rows,
                s.days,
                s.commits,
                s.bytes as f64 / MB,
                s.seconds,
                fmt_mb(s.peak_rss_bytes)
            );
        }
        prefills.push(p);
    }

    // (object, table label) -> runs.
    let mut results: BTreeMap<(usize, usize), Vec<CommitMeasurement>> = BTreeMap::new();
    for run in 1..=runs {
        for (oi, obj) in objects.iter().enumerate() {
            let m = commit_run(dir, obj, None).await?;
            println!(
                "run {run}/{runs}: identity {:<8} into the empty table: {:.2} s",
                obj.name, m.seconds
            );
            results.entry((oi, 0)).or_default().push(m);
            for (pi, p) in prefills.iter().enumerate() {
                let m = commit_run(dir, obj, Some(p)).await?;
                println!(
                    "run {run}/{runs}: identity {:<8} into the {} table: {:.2} s",
                    obj.name, p.label, m.seconds
                );
                results.entry((oi, pi + 1)).or_default().push(m);
            }
        }
    }

    let mut errors = Vec::new();
    let mut medians: BTreeMap<(usize, usize), CommitMeasurement> = BTreeMap::new();
    for (&(oi, ti), ms) in &results {
        let obj = &objects[oi];
        let prefill = ti.checked_sub(1).map(|i| &prefills[i]);
        for m in ms {
            check(obj, prefill, m, &mut errors);
        }
        medians.insert((oi, ti), super::median(ms)?);
    }
    errors.dedup();

    let table_label = |ti: usize| match ti {
        0 => "empty".to_string(),
        i => prefills[i - 1].label.clone(),
    };
    print_table(&objects, &prefills, &medians, &table_label);

    // The difference prefilled - empty per object and table, and its growth small -> large.
    let mut comparisons = Vec::new();
    let mut flat_all = true;
    for (oi, obj) in objects.iter().enumerate() {
        let Some(empty) = medians.get(&(oi, 0)) else {
            continue;
        };
        let diffs: Vec<(String, f64, Option<i64>)> = (1..=prefills.len())
            .filter_map(|ti| {
                let m = medians.get(&(oi, ti))?;
                Some((
                    table_label(ti),
                    m.seconds - empty.seconds,
                    rss_diff(m.peak_rss_bytes, empty.peak_rss_bytes),
                ))
            })
            .collect();
        let growth = match (diffs.first(), diffs.last()) {
            (Some(small), Some(large)) if diffs.len() > 1 => {
                Some((large.1 - small.1, large.2.zip(small.2).map(|(l, s)| l - s)))
            }
            _ => None,
        };
        let tolerance = (FLAT_SHARE * empty.seconds).max(FLAT_MIN_SECONDS);
        let flat = growth.map(|(g, _)| g <= tolerance);
        flat_all &= flat.unwrap_or(true);
        let parts: Vec<String> = diffs
            .iter()
            .map(|(label, s, r)| format!("{label} {s:+.3} s {}", fmt_mb_signed(*r)))
            .collect();
        println!(
            "{:<8} prefilled - empty: {}{}",
            obj.name,
            parts.join(", "),
            match growth {
                Some((g, r)) => format!(
                    "; growth {} -> {}: {g:+.3} s {} (flat if <= {tolerance:.3} s)   {}",
                    diffs[0].0,
                    diffs[diffs.len() - 1].0,
                    fmt_mb_signed(r),
                    if flat == Some(true) { "FLAT" } else { "GROWS" }
                ),
                None => String::new(),
            }
        );
        comparisons.push(json!({
            "object": obj.name,
            "empty_seconds": empty.seconds,
            "empty_peak_rss_bytes": empty.peak_rss_bytes,
            "prefilled_minus_empty": diffs.iter().map(|(label, s, r)| json!({
                "table": label, "seconds": s, "peak_rss_bytes": r,
            })).collect::<Vec<_>>(),
            "growth_small_to_large": growth.map(|(s, r)| json!({ "seconds": s, "peak_rss_bytes": r })),
            "flat_tolerance_seconds": tolerance,
            "flat": flat,
        }));
    }
    println!(
        "identity cost independent of the table's size (beyond the day it touches): {}",
        verdict(Some(flat_all))
    );
    for e in &errors {
        println!("error: {e}");
    }

    let measurements: Vec<serde_json::Value> = medians
        .iter()
        .map(|(&(oi, ti), m)| {
            json!({
                "object": objects[oi].name,
                "table": table_label(ti),
                "median": m,
                "all_runs_seconds": results[&(oi, ti)].iter().map(|m| m.seconds).collect::<Vec<_>>(),
            })
        })
        .collect();
    let report = json!({
        "generator": GENERATOR,
        "objects": objects,
        "prefills": prefills.iter().map(|p| json!({
            "label": p.label,
            "dir": p.dir,
            "reused": p.reused,
            "first_day": p.stamp.first_day,
            "last_day": p.stamp.last_day,
            "days_per_commit": p.stamp.days_per_commit,
            "build": p.stamp.built,
        })).collect::<Vec<_>>(),
        "runs": runs,
        "measurements": measurements,
        "comparisons": comparisons,
        "flat": flat_all,
        "errors": errors,
    });
    Ok((report, errors))
}

/// Correctness of one measured commit (a benchmark whose own run is wrong measures nothing).
fn check(obj: &Object, prefill: Option<&Prefill>, m: &CommitMeasurement, errors: &mut Vec<String>) {
    let table = prefill.map_or("empty", |p| p.label.as_str());
    let mut fail =
        |what: String| errors.push(format!("{} into the {table} table: {what}", obj.name));
    let (held_rows, held_records) = match prefill {
        Some(_) => (obj.replayed_rows, obj.replayed_records),
        None => (0, 0),
    };
    if m.status != "committed" {
        fail(format!("status {} (expected committed)", m.status));
    }
    if m.records_quarantined != 0 {
        fail(format!("{} records quarantined", m.records_quarantined));
    }
    if m.records_in != obj.records {
        fail(format!(
            "{} records read, the object has {}",
            m.records_in, obj.records
        ));
    }
    if m.rows_committed != obj.rows - held_rows || m.rows_unchanged != held_rows {
        fail(format!(
            "rows committed {} / unchanged {}, expected {} / {}",
            m.rows_committed,
            m.rows_unchanged,
            obj.rows - held_rows,
            held_rows
        ));
    }
    if m.records_unchanged != held_records {
        fail(format!(
            "records unchanged {}, expected {held_records}",
            m.records_unchanged
        ));
    }
    let expected_rows = prefill.map_or(0, |p| p.stamp.built.rows);
    if m.table_rows_before.is_some_and(|r| r != expected_rows) {
        fail(format!(
            "the table held {:?} rows before the commit, expected {expected_rows} (not put back?)",
            m.table_rows_before
        ));
    }
    let expected_planned = match prefill {
        Some(p) if (p.stamp.first_day..=p.stamp.last_day).contains(&obj.day) => 1,
        _ => 0,
    };
    if m.day_files_planned != expected_planned {
        fail(format!(
            "{} data files planned for {}, expected {expected_planned} (column bounds not pruning?)",
            m.day_files_planned, obj.day
        ));
    }
}

impl super::Timed for CommitMeasurement {
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn peak_rss(&mut self) -> &mut Option<u64> {
        &mut self.peak_rss_bytes
    }
}

fn rss_diff(a: Option<u64>, b: Option<u64>) -> Option<i64> {
    Some(a? as i64 - b? as i64)
}

fn fmt_mb(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MB", b as f64 / MB))
        .unwrap_or_else(|| "?".into())
}

fn fmt_mb_signed(b: Option<i64>) -> String {
    b.map(|b| format!("{:+.1} MB", b as f64 / MB))
        .unwrap_or_else(|| "? MB".into())
}

fn print_table(
    objects: &[Object],
    prefills: &[Prefill],
    medians: &BTreeMap<(usize, usize), CommitMeasurement>,
    table_label: &dyn Fn(usize) -> String,
) {
    println!();
    for o in objects {
        println!(
            "identity object {:<8} {} ({:.1} MB, {} sessions, {} rows{})",
            o.name,
            o.day,
            o.bytes as f64 / MB,
            o.records,
            o.rows,
            if o.replayed_rows > 0 {
                format!(
                    "; {} sessions / {} rows of them already in a prefilled table",
                    o.replayed_records, o.replayed_rows
                )
            } else {
                String::new()
            }
        );
    }
    for p in prefills {
        println!(
            "table {:<6} {} rows, {} days ({}..{}), {} data files, {} snapshots",
            p.label,
            p.stamp.built.rows,
            p.stamp.built.days,
            p.stamp.first_day,
            p.stamp.last_day,
            p.stamp.built.data_files,
            p.stamp.built.commits
        );
    }
    println!(
        "{:<8} {:<6} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "object",
        "table",
        "table rows",
        "manifests",
        "day files",
        "seconds",
        "prepare",
        "commit",
        "peak RSS",
        "committed",
        "unchanged"
    );
    for (&(oi, ti), m) in medians {
        println!(
            "{:<8} {:<6} {:>10} {:>9} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>10} {:>9} {:>9}",
            objects[oi].name,
            table_label(ti),
            m.table_rows_before
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            m.manifests_before,
            m.day_files_planned,
            m.seconds,
            m.prepare_seconds,
            m.commit_seconds,
            fmt_mb(m.peak_rss_bytes),
            m.rows_committed,
            m.rows_unchanged,
        );
    }
    println!();
    println!("where it goes (off the clock, on the table before the commit; seconds; \"all manifests\" reads");
    println!("every manifest: what planning would pay if the manifest list could not prune by event day):");
    println!(
        "{:<8} {:<6} {:>13} {:>10} {:>9} {:>15} {:>14}",
        "object", "table", "metadata KB", "load", "plan day", "all manifests", "RSS prepared"
    );
    for (&(oi, ti), m) in medians {
        println!(
            "{:<8} {:<6} {:>13.0} {:>10.3} {:>9.3} {:>15.3} {:>14}",
            objects[oi].name,
            table_label(ti),
            m.metadata_json_bytes as f64 / 1000.0,
            m.load_table_seconds,
            m.plan_seconds,
            m.manifests_read_seconds,
            fmt_mb(m.prepare_peak_rss_bytes),
        );
    }
}

/// Writes the two objects (deterministic, cheap: written again on every run).
fn write_objects(base: &Path) -> Result<Vec<Object>> {
    let dir = base.join("objects");
    std::fs::create_dir_all(&dir)?;
    let last = last_day();
    let next = last.succ_opt().context("date overflow")?;
    let mut out = Vec::new();
    // New sessions of the day after the prefill.
    let new_day = day_sessions(next, true);
    // New sessions of the prefill's last day, plus every REPLAY_EVERY-th session already held.
    let mut held_day = day_sessions(last, true);
    let replayed: Vec<Session> = day_sessions(last, false)
        .into_iter()
        .step_by(REPLAY_EVERY)
        .collect();
    let replayed_records = replayed.len() as u64;
    let replayed_rows = replayed.iter().map(|s| s.session_items.len() as u64).sum();
    held_day.extend(replayed);
    held_day.sort_by_key(|s| s.session_start_time);
    for (name, day, sessions, rr, rrows) in [
        ("new-day", next, new_day, 0, 0),
        ("held-day", last, held_day, replayed_records, replayed_rows),
    ] {
        let path = dir.join(format!("{name}.jsonl"));
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut bytes = 0u64;
        let mut line = Vec::with_capacity(4096);
        for s in &sessions {
            line.clear();
            serde_json::to_writer(&mut line, s)?;
            line.push(b'\n');
            f.write_all(&line)?;
            bytes += line.len() as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        out.push(Object {
            name,
            key: landing_key(day, name),
            path,
            day,
            bytes,
            records: sessions.len() as u64,
            rows: sessions.iter().map(|s| s.session_items.len() as u64).sum(),
            replayed_records: rr,
            replayed_rows: rrows,
        });
    }
    Ok(out)
}

/// Builds the prefilled table of `rows` rows unless a complete one is there.
async fn ensure_prefill(
    bench_dir: &Path,
    base: &Path,
    rows: u64,
    days_per_commit: u32,
) -> Result<Prefill> {
    let label = if rows >= 1_000_000 && rows.is_multiple_of(1_000_000) {
        format!("{}M", rows / 1_000_000)
    } else {
        rows.to_string()
    };
    let dir = base.join(format!("sessions-{rows}-{days_per_commit}dpc-{GENERATOR}"));
    let stamp_path = dir.join("stamp.json");
    let days = prefill_days(rows);
    let (first_day, last_day) = (
        *days.first().context("no day")?,
        *days.last().context("no day")?,
    );
    let existing: Option<PrefillStamp> = std::fs::read(&stamp_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(stamp) = existing {
        if stamp.generator == GENERATOR
            && stamp.target_rows == rows
            && stamp.days_per_commit == days_per_commit
            && stamp.dir == dir
            && dir.join("catalog.pristine").is_dir()
            && dir.join("files.json").is_file()
        {
            let p = Prefill {
                label,
                dir,
                stamp,
                reused: true,
            };
            reset(&p.dir)?;
            return Ok(p);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "prefilling the {label} sessions table ({} days, {days_per_commit} per snapshot; once, then reused)...",
        days.len()
    );
    let worker_args: Vec<OsString> = vec![
        Phase::IdentityPrefill.name().into(),
        "--dir".into(),
        bench_dir.into(),
        "--table".into(),
        dir.clone().into(),
        "--rows".into(),
        rows.to_string().into(),
        "--days-per-commit".into(),
        days_per_commit.to_string().into(),
    ];
    let line = run_worker_line("identity-prefill", &worker_args).await?;
    let built: PrefillMeasurement = serde_json::from_str(&line)
        .with_context(|| format!("parsing the prefill worker's line: {line}"))?;
    // The pristine state: the catalog database and the list of the lake's files.
    copy_dir(&dir.join("catalog"), &dir.join("catalog.pristine"))?;
    let files: Vec<String> = list_files(&dir.join("lake"))?.into_iter().collect();
    std::fs::write(dir.join("files.json"), serde_json::to_vec(&files)?)?;
    let stamp = PrefillStamp {
        generator: GENERATOR.to_string(),
        target_rows: rows,
        days_per_commit,
        dir: dir.clone(),
        first_day,
        last_day,
        built,
    };
    std::fs::write(&stamp_path, serde_json::to_vec_pretty(&stamp)?)?;
    Ok(Prefill {
        label,
        dir,
        stamp,
        reused: false,
    })
}

/// Puts a prefilled table back as built: the catalog from its pristine copy, and every file of
/// the lake that the build did not write removed.
fn reset(dir: &Path) -> Result<()> {
    let catalog = dir.join("catalog");
    if catalog.exists() {
        std::fs::remove_dir_all(&catalog)?;
    }
    copy_dir(&dir.join("catalog.pristine"), &catalog)?;
    let keep: HashSet<String> = serde_json::from_slice(&std::fs::read(dir.join("files.json"))?)?;
    let lake = dir.join("lake");
    for f in list_files(&lake)? {
        if !keep.contains(&f) {
            std::fs::remove_file(lake.join(&f)).with_context(|| format!("removing {f}"))?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Files under `root`, relative to it.
fn list_files(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else if let Ok(rel) = e.path().strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One measured commit of `obj` in a worker; a prefilled table is put back before and after.
async fn commit_run(
    bench_dir: &Path,
    obj: &Object,
    prefill: Option<&Prefill>,
) -> Result<CommitMeasurement> {
    let mut args: Vec<OsString> = vec![
        Phase::IdentityCommit.name().into(),
        obj.path.clone().into(),
        "--dir".into(),
        bench_dir.into(),
        "--key".into(),
        obj.key.clone().into(),
        "--day".into(),
        obj.day.to_string().into(),
    ];
    if let Some(p) = prefill {
        reset(&p.dir)?;
        args.extend(["--table".into(), p.dir.clone().into()]);
    }
    let line = run_worker_line("identity-commit", &args).await;
    if let Some(p) = prefill {
        reset(&p.dir)?;
    }
    let line = line?;
    serde_json::from_str(&line)
        .with_context(|| format!("parsing the identity-commit worker's line: {line}"))
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/// `bench-worker identity-prefill`: builds the prefilled table in `--table`.
pub async fn prefill_worker(
    args: &IdentityWorkerArgs,
    scratch: &Path,
) -> Result<PrefillMeasurement> {
    let dir = args
        .table
        .as_deref()
        .context("identity-prefill needs --table")?;
    let rows = args.rows.context("identity-prefill needs --rows")?;
    let per_commit = args.days_per_commit.unwrap_or(1).max(1) as usize;
    let env = scratch_env(&dir.join("lake"), &dir.join("catalog"), scratch);
    let transformer = Transformer::new(
        deftunes::transform::TransformConfig::from_env(&env)?,
        &env as &dyn Env,
    )
    .await?;
    let catalog = transformer.catalog().clone();
    let sessions = transformer
        .tables()
        .get("sessions")
        .context("the deftunes pipeline has no sessions table")?
        .clone();
    let mut table = ensure_table(
        catalog.as_ref(),
        &transformer.config().catalog,
        &transformer.config().namespace,
        &sessions,
    )
    .await?;
    ensure!(
        table.metadata().current_snapshot().is_none(),
        "{} already holds a snapshot",
        dir.display()
    );
    let schema = table.metadata().current_schema().clone();
    let days = prefill_days(rows);
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let start = Instant::now();
    let writer_table = table.clone();
    let mut stream = futures::stream::iter(days.clone())
        .map(|day| {
            tokio::spawn(write_day(
                writer_table.clone(),
                sessions.clone(),
                schema.clone(),
                day,
            ))
        })
        .buffered(parallel);
    let (mut total_rows, mut data_files, mut commits, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut pending: Vec<DataFile> = Vec::new();
    let mut pending_days = 0;
    while let Some(day) = stream.next().await {
        let (files, n) = day??;
        total_rows += n;
        data_files += files.len() as u64;
        bytes += files.iter().map(|f| f.file_size_in_bytes()).sum::<u64>();
        pending.extend(files);
        pending_days += 1;
        if pending_days == per_commit {
            table = append(&table, &*catalog, std::mem::take(&mut pending)).await?;
            commits += 1;
            pending_days = 0;
        }
    }
    if !pending.is_empty() {
        append(&table, &*catalog, pending).await?;
        commits += 1;
    }
    Ok(PrefillMeasurement {
        rows: total_rows,
        days: days.len() as u64,
        data_files,
        commits,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes: None,
    })
}

async fn append(
    table: &Table,
    catalog: &dyn iceberg::Catalog,
    files: Vec<DataFile>,
) -> Result<Table> {
    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        .with_check_duplicate(false)
        .add_data_files(files)
        .apply(tx)?;
    Ok(tx.commit(catalog).await?)
}

/// The data file of one prefill day: the day's sessions through the transform's own parsing,
/// `record_hash` and writer, so a replayed record hashes as the transform hashes it.
async fn write_day(
    table: Table,
    kind: TableDef,
    schema: iceberg::spec::SchemaRef,
    day: NaiveDate,
) -> Result<(Vec<DataFile>, u64)> {
    let ingest_on = day.succ_opt().unwrap_or(day);
    let (batches, rows) =
        tokio::task::spawn_blocking(move || day_batches(&kind, day, ingest_on, schema)).await??;
    let layout = FileLayout {
        target_file_size: PREFILL_FILE_BYTES,
        compressed: true,
        write_rows: BATCH_ROWS,
    };
    let mut w = ObjectWriter::new(&table, format!("prefill-{day}"), layout);
    for b in batches {
        w.write(b).await?;
    }
    Ok((w.close().await?, rows))
}

fn day_batches(
    kind: &TableDef,
    day: NaiveDate,
    ingest_on: NaiveDate,
    schema: iceberg::spec::SchemaRef,
) -> Result<(Vec<RecordBatch>, u64)> {
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
    let meta = RowMeta {
        ingest_on_days: epoch_days(ingest_on),
        processing_micros: ingest_on
            .and_time(NaiveTime::from_hms_opt(1, 0, 0).unwrap_or_default())
            .and_utc()
            .timestamp_micros(),
        source_from: kind.source_from().to_string(),
        source_object: landing_key(day, "prefill"),
    };
    let mut builder = BatchBuilder::new(kind, schema, BATCH_ROWS, &[], meta)?;
    let shape = kind.shape();
    let mut batches = Vec::new();
    let (mut unknown, mut rejected) = (Vec::new(), Vec::new());
    let mut hash_buf = Vec::with_capacity(256);
    let mut total = 0u64;
    for s in day_sessions(day, false) {
        let line = serde_json::to_string(&s)?;
        let value = shape.read(&line)?;
        let mut rows = shape.rows(RowBuffer::default());
        shape
            .parse(&value, &mut rows, &mut unknown, &mut rejected)
            .map_err(|e| anyhow::anyhow!("generated session {}: {e}", s.session_id))?;
        ensure!(
            rejected.is_empty() && unknown.is_empty(),
            "generated session {} has rejected items {rejected:?} or unknown fields {unknown:?}",
            s.session_id
        );
        for r in rows.iter() {
            let h = record_hash(r, &mut hash_buf);
            builder.push(r, h)?;
            total += 1;
        }
        if builder.len() >= BATCH_ROWS {
            batches.push(builder.finish()?);
        }
    }
    if !builder.is_empty() {
        batches.push(builder.finish()?);
    }
    Ok((batches, total))
}

/// `bench-worker identity-commit`: `transform_object` of one object, into the prefilled table
/// `--table` or into an empty one in `scratch`.
pub async fn commit_worker(
    file: &Path,
    args: &IdentityWorkerArgs,
    scratch: &Path,
) -> Result<CommitMeasurement> {
    let key = args.key.as_deref().context("identity-commit needs --key")?;
    let day = args.day.context("identity-commit needs --day")?;
    let root = args.table.clone().unwrap_or_else(|| scratch.to_path_buf());
    let lake = root.join("lake");
    let landed = lake.join(key);
    if let Some(parent) = landed.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(file, &landed).with_context(|| format!("landing {} as {key}", file.display()))?;
    let env = scratch_env(&lake, &root.join("catalog"), scratch);
    let transformer = Transformer::new(
        deftunes::transform::TransformConfig::from_env(&env)?,
        &env as &dyn Env,
    )
    .await?;
    let catalog = transformer.catalog().clone();
    // Created (empty) before the clock starts: the comparison is about the check, not creation.
    let sessions = transformer
        .tables()
        .get("sessions")
        .context("the deftunes pipeline has no sessions table")?;
    let before = ensure_table(
        catalog.as_ref(),
        &transformer.config().catalog,
        &transformer.config().namespace,
        sessions,
    )
    .await?;
    let obj = ObjectRef {
        key: key.to_string(),
        version: None,
    };

    let start = Instant::now();
    let staged = match transformer.prepare(&obj).await? {
        Preparation::Staged(s) => s,
        Preparation::Recorded(o) => bail!("{key} was already committed: {o:?}"),
    };
    let prepare_seconds = start.elapsed().as_secs_f64();
    let prepare_peak_rss_bytes = peak_rss_bytes();
    let outcome = transformer.commit_staged(staged).await?;
    let seconds = start.elapsed().as_secs_f64();
    let peak_rss_bytes = peak_rss_bytes();

    // Diagnostics, off the clock, on the table as it was before the commit.
    let snapshot = before.metadata().current_snapshot().cloned();
    let total = |name: &str| {
        snapshot.as_ref().map_or(Some(0), |s| {
            s.summary()
                .additional_properties
                .get(name)
                .and_then(|v| v.parse().ok())
        })
    };
    let (table_rows_before, table_files_before) =
        (total("total-records"), total("total-data-files"));
    let manifests_before = match &snapshot {
        Some(s) => before.manifest_list_reader(s).load().await?.entries().len() as u64,
        None => 0,
    };
    let ident = transformer.table_ident("sessions");
    let t = Instant::now();
    let _ = catalog.load_table(&ident).await?;
    let load_table_seconds = t.elapsed().as_secs_f64();
    let metadata_json_bytes = before
        .metadata_location()
        .and_then(|l| l.strip_prefix("file://"))
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let manifests_read_seconds = match &snapshot {
        Some(s) => {
            let fresh = catalog.load_table(&ident).await?;
            let list = fresh.manifest_list_reader(s).load().await?;
            let io = fresh.file_io().clone();
            let t = Instant::now();
            futures::stream::iter(list.entries().iter().cloned())
                .map(|m| {
                    let io = io.clone();
                    async move { m.load_manifest(&io).await }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
            t.elapsed().as_secs_f64()
        }
        None => 0.0,
    };
    let (day_files_planned, plan_seconds) = match &snapshot {
        Some(s) => {
            // A fresh load, as an invocation plans with a cold manifest cache.
            let fresh = catalog.load_table(&ident).await?;
            let t = Instant::now();
            let lo = day.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
            let hi = lo + 86_400_000_000;
            let filter = Reference::new("session_start_time")
                .greater_than_or_equal_to(Datum::timestamp_micros(lo))
                .and(Reference::new("session_start_time").less_than(Datum::timestamp_micros(hi)));
            let tasks: Vec<_> = fresh
                .scan()
                .snapshot_id(s.snapshot_id())
                .select([
                    "session_id",
                    "item_index",
                    "record_hash",
                    "ingest_on",
                    "processing_timestamp",
                ])
                .with_filter(filter)
                .build()?
                .plan_files()
                .await?
                .try_collect()
                .await?;
            (tasks.len() as u64, t.elapsed().as_secs_f64())
        }
        None => (0, 0.0),
    };
    let snapshots_before = before.metadata().snapshots().len() as u64;
    Ok(CommitMeasurement {
        status: serde_json::to_value(outcome.status)?
            .as_str()
            .unwrap_or_default()
            .to_string(),
        records_in: outcome.records_in,
        records_committed: outcome.records_committed,
        records_unchanged: outcome.records_unchanged,
        records_quarantined: outcome.records_quarantined,
        rows_committed: outcome.rows_committed,
        rows_unchanged: outcome.rows_unchanged,
        data_files: outcome.data_files,
        seconds,
        prepare_seconds,
        commit_seconds: seconds - prepare_seconds,
        peak_rss_bytes,
        prepare_peak_rss_bytes,
        table_rows_before,
        table_files_before,
        snapshots_before,
        manifests_before,
        day_files_planned,
        plan_seconds,
        load_table_seconds,
        manifests_read_seconds,
        metadata_json_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_days_end_on_the_last_day() {
        let d = prefill_days(10_000_000);
        assert_eq!(d.len(), 365);
        assert_eq!(d.last(), Some(&last_day()));
        assert!(d.windows(2).all(|w| w[0].succ_opt() == Some(w[1])));
        assert_eq!(prefill_days(1_000_000).len(), 36);
        assert_eq!(prefill_days(1).len(), 1);
    }
}
