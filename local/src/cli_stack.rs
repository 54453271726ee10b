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
    let pg = LocalPostgres::start(&stack_dir.join("postgres")).await?;
    let client = pg.connect().await?;
    let loaded = pg::load_songs(&client, &dataset.songs).await?;
    drop(client);
    let pg = pg.detach();
    // Until the state file is written, nothing but this process knows of the detached server:
    // stop it on any failure, so `up` can be run again.
    let spawned = spawn_api(data, api_port, &stack_dir);
    let (port, child, log_path) = match spawned {
        Ok(v) => v,
        Err(e) => {
            let _ = pg::stop_detached(&pg);
            return Err(e);
        }
    };
    let api_url = format!("http://127.0.0.1:{port}/");
    let state = StackState {
        postgres: pg.clone(),
        api_pid: child.id(),
        api_url: api_url.clone(),
        lake: lake.clone(),
    };
    std::fs::write(state_file(dir), serde_json::to_vec_pretty(&state)?)?;
    wait_healthy(&api_url, &log_path).await?;

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
    println!("Settings for `cargo lambda watch` (export them in that shell):");
    println!("  export LAKE_URI=file://{}", lake.display());
    println!("  export API_BASE_URL={api_url}");
    println!(
        "  export PG_HOST=127.0.0.1 PG_PORT={} PG_USER={} PG_PASSWORD={} PG_SSLMODE=disable",
        pg.port, pg.user, pg.password
    );
    println!("Then: cargo lambda invoke api-extract --data-file events/api-extract-users.json");
    println!("Stop with: deftunes down --dir {}", dir.display());
    Ok(())
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
