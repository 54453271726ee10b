//! `deftunes`: the DeFtunes pipeline on one machine.
//!
//! - `deftunes up` / `down`: a long-lived local source stack (PostgreSQL + API emulator) for
//!   `cargo lambda watch` sessions.
//! - `deftunes run`: the whole pipeline end to end, with a throwaway stack, through the same
//!   `deftunes` (shared crate) code the Lambdas run.
//! - `deftunes bench`: transform throughput and peak memory next to a plain arrow-json baseline.
//! - `deftunes load-songs`: the generated songs into any PostgreSQL (e.g. an RDS for the demo
//!   source of the AWS deployment).

mod cli_bench;
mod cli_load;
mod cli_run;
mod cli_run_classicmodels;
mod cli_run_sparkify;
mod cli_run_spotify;
mod cli_stack;
mod interrupt;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "deftunes",
    version,
    about = "Run the DeFtunes pipeline locally",
    after_help = "Examples:
  deftunes run                                   the DeFtunes pipeline end to end into .deftunes/
  deftunes run --window-to 2020-02-29            only January and February
  deftunes run --keep --window-from 2020-03-01   then March, on top of that run
  deftunes run --pipeline classicmodels --dir /tmp/cm   the MySQL shop on a throwaway MariaDB
  deftunes up                                    a long-lived stack for `cargo lambda watch`
  deftunes check-pipeline pipelines/sparkify     validate a pipeline folder

Dates are YYYY-MM-DD. `make deftunes ARGS=\"...\"` runs this tool from the demo's own build."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How much source data to generate.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = deftunes_local::dataset::DEFAULT_SEED)]
    pub seed: u64,
    /// Songs in the catalogue (deftunes.songs).
    #[arg(long, default_value_t = 10_000)]
    pub songs: usize,
    /// Users of the purchases API.
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    /// Purchase sessions over --from..--to.
    #[arg(long, default_value_t = 20_000)]
    pub sessions: usize,
    /// First day of source activity (YYYY-MM-DD).
    #[arg(long, default_value = "2020-01-01")]
    pub from: chrono::NaiveDate,
    /// Last day of source activity, inclusive (YYYY-MM-DD).
    #[arg(long, default_value = "2020-03-31")]
    pub to: chrono::NaiveDate,
}

impl DataArgs {
    pub fn scale(&self) -> deftunes_local::Scale {
        deftunes_local::Scale {
            songs: self.songs,
            users: self.users,
            sessions: self.sessions,
            start: self.from,
            end: self.to,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL (with deftunes.songs) and the API emulator in the background.
    Up {
        #[command(flatten)]
        data: DataArgs,
        /// State directory (database files, logs, the local lake, functions.env).
        #[arg(long, default_value = ".deftunes")]
        dir: PathBuf,
        /// Port of the API emulator (0 = any free port).
        #[arg(long, default_value_t = 0)]
        api_port: u16,
    },
    /// Stop what `up` started.
    Down {
        /// The state directory `up` used.
        #[arg(long, default_value = ".deftunes")]
        dir: PathBuf,
    },
    /// Run the pipeline end to end on a throwaway local stack, month by month.
    Run {
        #[command(flatten)]
        data: DataArgs,
        /// The pipeline to run (a folder of pipelines/ with a local data generator): deftunes
        /// (API and PostgreSQL sources), sparkify (files landed in S3), classicmodels (a MySQL
        /// shop database, on a throwaway local MariaDB) or spotify (an OAuth 2.0, paged
        /// catalogue API, on its emulator).
        #[arg(long, default_value = "deftunes")]
        pipeline: String,
        /// classicmodels only: the source's size as a multiple of the sample database's (1:
        /// 122 customers, 326 orders, about 3,000 order lines).
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Run directory. A run (without --keep) first deletes its lake/, catalog/, warehouse/,
        /// dashboard.html and run-summary.json, after checking every other option; nothing else
        /// in it is touched.
        #[arg(long, default_value = ".deftunes")]
        dir: PathBuf,
        /// Maximum size of one landing object, in bytes.
        #[arg(long, default_value_t = deftunes::config::DEFAULT_PART_MAX_BYTES)]
        part_max_bytes: u64,
        /// Stop after transform and quality (skip the local warehouse and `dbt build`).
        #[arg(long)]
        no_serving: bool,
        /// Only run the monthly windows from this date, YYYY-MM-DD (default: --from).
        #[arg(long)]
        window_from: Option<chrono::NaiveDate>,
        /// Only run the monthly windows up to this date, YYYY-MM-DD (default: --to).
        #[arg(long)]
        window_to: Option<chrono::NaiveDate>,
        /// Keep the lake, catalog and warehouse of an earlier run in --dir: an incremental run
        /// (e.g. `--keep --window-from 2020-03-01` after a run up to February).
        #[arg(long)]
        keep: bool,
    },
    /// Transform landing objects of a run directory's lake into its catalog, as the transform
    /// function's direct invocation does; prints the per-key outcomes.
    Transform {
        /// The run directory whose lake and catalog to use.
        #[arg(long, default_value = ".deftunes")]
        dir: PathBuf,
        /// The pipeline (a folder of pipelines/) the keys belong to.
        #[arg(long, default_value = "deftunes")]
        pipeline: String,
        /// Landing keys, relative to the lake (`landing_zone/...`).
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Delete the files no snapshot references (crashed or abandoned commits) from every table
    /// of a run directory's catalog, as the transform function's scheduled maintenance does.
    RemoveOrphanFiles {
        /// The run directory whose catalog to clean.
        #[arg(long, default_value = ".deftunes")]
        dir: PathBuf,
        /// The pipeline (a folder of pipelines/) whose tables to clean.
        #[arg(long, default_value = "deftunes")]
        pipeline: String,
        /// Keep unreferenced files younger than this (a commit in flight); at least 1.
        #[arg(long, default_value_t = 72)]
        older_than_hours: u64,
    },
    /// Serve the API emulator in the foreground (what `up` starts in the background).
    ServeApi {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port to listen on.
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Load the generated songs into the PostgreSQL given by PG_HOST, PG_PORT, PG_DATABASE,
    /// PG_USER, PG_PASSWORD or PG_SECRET_ARN, PG_SSLMODE (default require): replaces
    /// deftunes.songs, so a rerun leaves the same rows.
    LoadSongs {
        #[command(flatten)]
        data: DataArgs,
        /// Also drop rows of deftunes.songs that this seed and scale do not generate.
        #[arg(long)]
        replace: bool,
    },
    /// Load the generated classicmodels shop database into the MySQL or MariaDB given by
    /// MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD or MYSQL_SECRET_ARN, MYSQL_SSLMODE
    /// (default require): drops and recreates the `classicmodels` schema, so a rerun leaves the
    /// same rows.
    LoadClassicmodels {
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = deftunes_local::dataset::DEFAULT_SEED)]
        seed: u64,
        /// Size as a multiple of the sample database's (1: 122 customers, 326 orders).
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// Only orders (and their lines and payments) dated up to this day (YYYY-MM-DD): a later
        /// load with `--append` adds the rest, as new business for an incremental extraction.
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Add what is missing to an existing schema instead of recreating it.
        #[arg(long)]
        append: bool,
    },
    /// Validate a pipeline folder (its pipeline.toml, rule files and dbt project) and list what
    /// it declares; an error names the file, the line and what is wrong.
    CheckPipeline {
        /// The pipeline folder, e.g. pipelines/deftunes.
        dir: PathBuf,
    },
    /// Print the JSON Schema of pipeline.toml (published as pipelines/pipeline.schema.json).
    PipelineSchema,
    /// Benchmark the transform on a large sessions file against plain arrow-json to Parquet.
    Bench(cli_bench::BenchArgs),
    /// The transform against a reference build of deftunes, in turns on the same file: CPU and
    /// time ratios (`make bench-before`).
    BenchAgainst(cli_bench::AgainstArgs),
    /// One measurement of `bench`, in its own process (internal).
    #[command(hide = true)]
    BenchWorker(cli_bench::WorkerArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `run` and `up` print their own progress; a server logs every request.
    let default_level = match cli.command {
        Command::ServeApi { .. } => "info",
        _ => "warn",
    };
    deftunes::telemetry::init_local(default_level);
    // A foreground server's normal stop is a signal: serve-api handles its own.
    if matches!(cli.command, Command::ServeApi { .. }) {
        return exit_code(execute(cli.command).await);
    }
    let mut signals = match interrupt::Signals::listen() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: listening for SIGINT and SIGTERM: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let aftermath = aftermath(&cli.command);
    let mut work = Box::pin(execute(cli.command));
    let sig = tokio::select! {
        result = &mut work => return exit_code(result),
        sig = signals.first() => sig,
    };
    if let Some(aftermath) = &aftermath {
        eprintln!(
            "\ndeftunes: {}: stopping what this command started ...",
            sig.name()
        );
        // Dropping the command's future runs the Drop of everything it holds: servers stopped
        // and waited for, child process groups ended, temporary directories removed, the lock
        // released.
        drop(work);
        eprint!("{}", aftermath.message(sig, &interrupt::this_command()));
    } else {
        drop(work);
    }
    std::process::ExitCode::from(sig.exit_code())
}

/// What an interruption of `command` leaves, for its message; `None` for bench's worker, whose
/// bench says it.
fn aftermath(command: &Command) -> Option<interrupt::Aftermath> {
    Some(match command {
        Command::Run {
            pipeline,
            dir,
            keep,
            ..
        } => interrupt::Aftermath::Run {
            pipeline: pipeline.clone(),
            dir: dir.clone(),
            keep: *keep,
        },
        Command::Up { dir, .. } => interrupt::Aftermath::Up { dir: dir.clone() },
        Command::BenchWorker(_) => return None,
        _ => interrupt::Aftermath::Rerun,
    })
}

fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up {
            data,
            dir,
            api_port,
        } => cli_stack::up(&data, &dir, api_port).await,
        Command::Down { dir } => cli_stack::down(&dir),
        Command::Run {
            data,
            pipeline,
            scale,
            dir,
            part_max_bytes,
            no_serving,
            window_from,
            window_to,
            keep,
        } => {
            let opts = cli_run::RunOptions {
                part_max_bytes,
                serving: !no_serving,
                window_from,
                window_to,
                keep,
            };
            match pipeline.as_str() {
                "deftunes" => cli_run::run(&data, &dir, &opts).await.map(|_| ()),
                "sparkify" => cli_run_sparkify::run(data.seed, &dir, &opts)
                    .await
                    .map(|_| ()),
                "classicmodels" => cli_run_classicmodels::run(data.seed, scale, &dir, &opts)
                    .await
                    .map(|_| ()),
                "spotify" => cli_run_spotify::run(data.seed, &dir, &opts)
                    .await
                    .map(|_| ()),
                other => Err(anyhow::anyhow!(
                    "no local run for pipeline {other:?}: deftunes, sparkify, classicmodels and spotify have data generators"
                )),
            }
        }
        Command::Transform {
            dir,
            pipeline,
            keys,
        } => {
            cli_run::transform_payload(&dir, &pipeline, &serde_json::json!({ "keys": keys })).await
        }
        Command::RemoveOrphanFiles {
            dir,
            pipeline,
            older_than_hours,
        } => {
            let request = serde_json::json!({
                "maintenance": "remove_orphan_files",
                "older_than_hours": older_than_hours,
            });
            cli_run::transform_payload(&dir, &pipeline, &request).await
        }
        Command::ServeApi { data, host, port } => cli_stack::serve_api(&data, host, port).await,
        Command::LoadSongs { data, replace } => cli_load::load_songs(&data, replace).await,
        Command::LoadClassicmodels {
            seed,
            scale,
            until,
            append,
        } => cli_load::load_classicmodels(seed, scale, until, append).await,
        Command::CheckPipeline { dir } => cli_run::check_pipeline(&dir).map(|_| ()),
        Command::PipelineSchema => {
            print!("{}", deftunes::pipeline::json_schema());
            Ok(())
        }
        Command::Bench(args) => cli_bench::bench(&args).await,
        Command::BenchWorker(args) => cli_bench::worker(&args).await,
        Command::BenchAgainst(args) => cli_bench::against(&args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag of every command says what it is for.
    #[test]
    fn every_flag_has_help() {
        fn visit(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
                visit(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        visit(&Cli::command(), "deftunes", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Examples:"), "{help}");
    }
}
