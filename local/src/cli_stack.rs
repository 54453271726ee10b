//! `deftunes up`, `down` and `serve-api`: a local source stack that outlives the command, for
//! developing a function with `cargo lambda watch`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::DataArgs;
use deftunes_local::{pg, Dataset, LocalPostgres, PgHandle};

#[derive(Debug, Serialize, Deserialize)]
struct StackState {
    postgres: PgHandle,
    api_pid: u32,
    api_url: String,
    lake: PathBuf,
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("stack").join("state.json")
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

pub async fn up(data: &DataArgs, dir: &Path, api_port: u16) -> Result<()> {
    if state_file(dir).exists() {
        bail!(
            "a stack is already up (state in {}); run `deftunes down --dir {}` first",
            state_file(dir).display(),
            dir.display()
        );
    }
    let stack_dir = dir.join("stack");
    std::fs::create_dir_all(&stack_dir)
        .with_context(|| format!("creating {}", stack_dir.display()))?;
    let stack_dir = stack_dir.canonicalize()?;
    let lake = dir.canonicalize()?.join("lake");
    std::fs::create_dir_all(&lake)?;

    eprintln!("generating the source data (seed {}) ...", data.seed);
    let dataset = Dataset::generate(data.seed, &data.scale());
    eprintln!("starting PostgreSQL ...");
    // Until the stack is up whole, what is started is stopped again on an error or an
    // interruption (this future dropped): PostgreSQL by its own drop, the rest by `starting`'s.
    let pg = LocalPostgres::start(&stack_dir.join("postgres")).await?;
    let client = pg.connect().await?;
    let loaded = pg::load_songs(&client, &dataset.songs).await?;
    drop(client);
    let mut starting = Starting::default();
    let (port, child, log_path) = spawn_api(data, api_port, &stack_dir)?;
    let api_pid = child.id();
    starting.api = Some(child);
    let api_url = format!("http://127.0.0.1:{port}/");
    let state = StackState {
        postgres: pg.handle(),
        api_pid,
        api_url: api_url.clone(),
        lake: lake.clone(),
    };
    std::fs::write(state_file(dir), serde_json::to_vec_pretty(&state)?)?;
    starting.state = Some(state_file(dir));
    wait_healthy(&api_url, &log_path).await?;
    // Up: from now on `down` stops it (a std Child is not killed when dropped).
    starting.api = None;
    starting.state = None;
    let pg = pg.detach();

    println!("DeFtunes local stack is up ({loaded} songs in deftunes.songs).");
    println!(
        "  API emulator : {api_url}  (OpenAPI: {api_url}openapi.json, log: {})",
        log_path.display()
    );
    println!(
        "  PostgreSQL   : postgresql://{}@127.0.0.1:{}/{}",
        pg.user,
        pg.port,
        pg.database()
    );
    println!("  Lake         : {}", lake.display());
    println!();
    let env_file = dir.canonicalize()?.join("functions.env");
    let settings = function_settings(&lake, &api_url, &pg);
    std::fs::write(&env_file, env_file_text(&settings))
        .with_context(|| format!("writing {}", env_file.display()))?;
    println!(
        "Every function's settings (lake, catalog, API, PostgreSQL, pipeline): {}",
        env_file.display()
    );
    println!("Serve the functions with them:");
    println!("  cargo lambda watch --env-file {}", env_file.display());
    println!("Then, in another shell, in this order on a fresh stack:");
    println!("  cargo lambda invoke api-extract --data-file events/api-extract-users.json");
    println!("  cargo lambda invoke api-extract --data-file events/api-extract-sessions.json");
    println!("  cargo lambda invoke songs-extract --data-file events/songs-extract.json");
    println!("  cargo lambda invoke transform --data-file events/transform-direct.json");
    println!("  cargo lambda invoke run-control --data-file events/run-control-report.json");
    println!("Stop with: deftunes down --dir {}", dir.display());
    Ok(())
}

/// What `up` has started besides PostgreSQL, stopped again when dropped: `up` empties it once
/// the stack is up.
#[derive(Default)]
struct Starting {
    api: Option<std::process::Child>,
    state: Option<PathBuf>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut api) = self.api.take() {
            let _ = api.kill();
            let _ = api.wait();
        }
        if let Some(state) = self.state.take() {
            let _ = std::fs::remove_file(state);
        }
    }
}

/// What the functions need to run against this stack, in `cargo lambda watch --env-file` form.
fn function_settings(lake: &Path, api_url: &str, pg: &PgHandle) -> Vec<(&'static str, String)> {
    let pipelines = crate::cli_run::pipelines_dir();
    vec![
        ("LAKE_URI", format!("file://{}", lake.display())),
        ("CATALOG", "sql".into()),
        (
            "CATALOG_URI",
            format!(
                "sqlite:{}?mode=rwc",
                lake.with_file_name("catalog").join("catalog.db").display()
            ),
        ),
        ("PIPELINES_ROOT", pipelines.display().to_string()),
        ("PIPELINE", "deftunes".into()),
        ("API_BASE_URL", api_url.to_string()),
        ("PG_HOST", "127.0.0.1".into()),
        ("PG_PORT", pg.port.to_string()),
        ("PG_USER", pg.user.clone()),
        ("PG_PASSWORD", pg.password.clone()),
        ("PG_DATABASE", pg.database().to_string()),
        ("PG_SSLMODE", "disable".into()),
        ("METRICS", "off".into()),
    ]
}

fn env_file_text(settings: &[(&str, String)]) -> String {
    settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

async fn wait_healthy(api_url: &str, log: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{api_url}health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the API emulator did not become healthy at {api_url}; see {}",
        log.display()
    )
}

pub fn down(dir: &Path) -> Result<()> {
    let path = state_file(dir);
    let raw = match std::fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no local stack is up (no {})", path.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let state: StackState =
        serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))?;
    let status = std::process::Command::new("kill")
        .arg(state.api_pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        eprintln!("the API emulator (pid {}) was not running", state.api_pid);
    }
    pg::stop_detached(&state.postgres)?;
    std::fs::remove_file(&path)?;
    println!(
        "DeFtunes local stack stopped (lake kept at {}).",
        state.lake.display()
    );
    Ok(())
}

pub async fn serve_api(data: &DataArgs, host: IpAddr, port: u16) -> Result<()> {
    let dataset = Arc::new(Dataset::generate(data.seed, &data.scale()));
    let emulator = deftunes_local::emulator::start(dataset, SocketAddr::new(host, port)).await?;
    tracing::info!(url = %emulator.base_url, "API emulator serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    emulator.stop().await;
    Ok(())
}

/// Starts `deftunes serve-api` in the background, logging to `stack_dir/api.log`.
fn spawn_api(
    data: &DataArgs,
    api_port: u16,
    stack_dir: &Path,
) -> Result<(u16, std::process::Child, std::path::PathBuf)> {
    let port = if api_port == 0 {
        free_port()?
    } else {
        api_port
    };
    let exe = std::env::current_exe().context("locating the deftunes executable")?;
    let log_path = stack_dir.join("api.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("serve-api")
        .args(["--port", &port.to_string()])
        .args(["--seed", &data.seed.to_string()])
        .args(["--songs", &data.songs.to_string()])
        .args(["--users", &data.users.to_string()])
        .args(["--sessions", &data.sessions.to_string()])
        .args([
            "--from",
            &data.from.to_string(),
            "--to",
            &data.to.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: Ctrl-C in this shell must not stop the background server.
        cmd.process_group(0);
    }
    let child = cmd.spawn().context("starting the API emulator")?;
    Ok((port, child, log_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The env file is enough for every function's start-up configuration.
    #[test]
    fn the_env_file_configures_every_function() {
        let pg = PgHandle {
            dir: "/tmp/pg".into(),
            port: 5499,
            user: "deftunes".into(),
            password: "pw".into(),
        };
        let text = env_file_text(&function_settings(
            Path::new("/tmp/stack/lake"),
            "http://127.0.0.1:8000/",
            &pg,
        ));
        let env: std::collections::HashMap<String, String> = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(
            env["CATALOG_URI"],
            "sqlite:/tmp/stack/catalog/catalog.db?mode=rwc"
        );
        deftunes::transform::TransformConfig::from_env(&env).unwrap();
        deftunes::config::ApiExtractConfig::from_env(&env).unwrap();
        let songs = deftunes::config::SongsExtractConfig::from_env(&env).unwrap();
        assert_eq!(songs.pg.as_ref().map(|p| p.port), Some(5499));
    }
}
