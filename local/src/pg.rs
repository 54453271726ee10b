//! A throwaway local PostgreSQL cluster (the RDS stand-in) and the loader of `deftunes.songs`.
//!
//! The cluster lives in `<dir>/data`, listens on `127.0.0.1:<free port>` only, and requires a
//! password over TCP (scram-sha-256, like RDS); its Unix socket (in `<dir>/run`) trusts local
//! users. The generated password is kept in `<dir>/password` so that a cluster can be started
//! again from the same directory. The server log is `<dir>/postgres.log`.
//!
//! PostgreSQL binaries come from `PG_BIN_DIR`, else the `PATH` folder holding `initdb`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian). `initdb`
//! refuses to run as root: when the effective uid is 0, the directory is chowned to `postgres`
//! and the binaries run through `runuser -u postgres --` (parent directories must be
//! traversable by that user).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

use crate::child::GroupChild;
use crate::dataset::Song;

/// Default location of the PostgreSQL binaries (Debian's PostgreSQL 15).
pub const DEFAULT_PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "postgres";
const OS_USER: &str = "postgres";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the local PostgreSQL stack.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("PostgreSQL on {HOST}:{port} not ready after {waited:?}: {last_error}")]
    NotReady {
        port: u16,
        waited: Duration,
        last_error: String,
    },
    #[error("a PostgreSQL server is already running on {data_dir} (stop it first, e.g. with stop_detached)")]
    AlreadyRunning { data_dir: PathBuf },
    #[error("{0}")]
    Setup(String),
    #[error("{context}: {}", error_chain(.source))]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Io { context, source }
}

fn pg_err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Postgres { context, source }
}

/// What is needed to reach (and stop) a detached cluster from another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgHandle {
    /// The directory given to [`LocalPostgres::start`] (the cluster is in `dir/data`).
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl PgHandle {
    pub fn host(&self) -> &str {
        HOST
    }
    pub fn database(&self) -> &str {
        DATABASE
    }
    /// libpq-style `key=value` connection string (tokio-postgres accepts it).
    pub fn connection_string(&self) -> String {
        connection_string(self.port, &self.user, &self.password)
    }
    /// Connects over TCP with the password; the connection task is spawned on the runtime.
    pub async fn connect(&self) -> Result<Client, PgError> {
        connect(&self.connection_string()).await
    }
}

fn connection_string(port: u16, user: &str, password: &str) -> String {
    format!("host={HOST} port={port} user={user} password={password} dbname={DATABASE} connect_timeout=5")
}

async fn connect(conn: &str) -> Result<Client, PgError> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .map_err(pg_err("connecting to local PostgreSQL"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended with an error");
        }
    });
    Ok(client)
}

/// A running local cluster. Stopped by [`LocalPostgres::stop`] or on drop, unless detached.
#[derive(Debug)]
pub struct LocalPostgres {
    dir: PathBuf,
    port: u16,
    password: String,
    running: bool,
}

impl LocalPostgres {
    /// Initialises `dir/data` if needed, starts the server on a free `127.0.0.1` port and
    /// waits until it accepts password connections.
    pub async fn start(dir: &Path) -> Result<LocalPostgres, PgError> {
        make_dir(dir)?;
        let dir =
            std::fs::canonicalize(dir).map_err(io_err(format!("resolving {}", dir.display())))?;
        let data = dir.join("data");
        let run = dir.join("run");
        make_dir(&run)?;
        let as_postgres = is_root();
        if as_postgres {
            run_sync(chown_command(&dir))?;
        }

        let password_file = dir.join("password");
        let password = if data.join("PG_VERSION").exists() {
            if status_running(&data, as_postgres)? {
                return Err(PgError::AlreadyRunning { data_dir: data });
            }
            std::fs::read_to_string(&password_file)
                .map_err(io_err(format!(
                    "reading the password of the existing cluster from {}",
                    password_file.display()
                )))?
                .trim()
                .to_owned()
        } else {
            let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
            initdb(&dir, &data, &password, as_postgres).await?;
            write_private(&password_file, &password)?;
            password
        };

        let log = dir.join("postgres.log");
        // Owned from here on: a start that fails or is interrupted (its future dropped while
        // `pg_ctl start` runs) stops whatever server came up.
        let mut pg = LocalPostgres {
            dir: dir.clone(),
            port: 0,
            password,
            running: true,
        };
        let mut attempt = 0;
        pg.port = loop {
            attempt += 1;
            let port = free_port()?;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                shell_quote(&run.to_string_lossy())
            );
            let mut cmd = pg_command("pg_ctl", as_postgres, &dir);
            cmd.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(opts)
                .args(["-w", "-t", "30", "start"]);
            match run_async(cmd).await {
                Ok(_) => break port,
                Err(PgError::Command {
                    command,
                    status,
                    stderr,
                }) => {
                    let tail = log_tail(&log);
                    if attempt < 3 && tail.contains("Address already in use") {
                        tracing::warn!(port, "port taken while starting PostgreSQL, retrying");
                        continue;
                    }
                    return Err(PgError::Command {
                        command,
                        status,
                        stderr: format!("{stderr}\n--- {} ---\n{tail}", log.display()),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        pg.wait_ready().await?;
        tracing::info!(port = pg.port, dir = %pg.dir.display(), "local PostgreSQL started");
        Ok(pg)
    }

    async fn wait_ready(&self) -> Result<(), PgError> {
        let started = Instant::now();
        let conn = self.connection_string();
        loop {
            match tokio_postgres::connect(&conn, NoTls).await {
                Ok((client, connection)) => {
                    let task = tokio::spawn(connection);
                    let ok = client.simple_query("SELECT 1").await;
                    drop(client);
                    let _ = task.await;
                    match ok {
                        Ok(_) => return Ok(()),
                        Err(e) if started.elapsed() > READY_TIMEOUT => {
                            return Err(PgError::NotReady {
                                port: self.port,
                                waited: started.elapsed(),
                                last_error: error_chain(&e),
                            })
                        }
                        Err(_) => {}
                    }
                }
                Err(e) if started.elapsed() > READY_TIMEOUT => {
                    return Err(PgError::NotReady {
                        port: self.port,
                        waited: started.elapsed(),
                        last_error: error_chain(&e),
                    })
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn host(&self) -> &str {
        HOST
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn user(&self) -> &str {
        SUPERUSER
    }
    pub fn password(&self) -> &str {
        &self.password
    }
    pub fn database(&self) -> &str {
        DATABASE
    }
    /// The directory given to [`LocalPostgres::start`] (canonicalized).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// libpq-style `key=value` connection string (tokio-postgres accepts it).
    pub fn connection_string(&self) -> String {
        connection_string(self.port, SUPERUSER, &self.password)
    }
    /// Connects over TCP with the password; the connection task is spawned on the runtime.
    pub async fn connect(&self) -> Result<Client, PgError> {
        connect(&self.connection_string()).await
    }

    /// What another process needs to reach and stop this server once detached.
    pub fn handle(&self) -> PgHandle {
        PgHandle {
            dir: self.dir.clone(),
            port: self.port,
            user: SUPERUSER.to_owned(),
            password: self.password.clone(),
        }
    }

    /// Keeps the server running after this value is gone; the handle can stop it later.
    pub fn detach(mut self) -> PgHandle {
        self.running = false;
        self.handle()
    }

    /// `pg_ctl stop -m fast`. Idempotent.
    pub fn stop(&mut self) -> Result<(), PgError> {
        if !self.running {
            return Ok(());
        }
        stop_dir(&self.dir)?;
        self.running = false;
        tracing::info!(port = self.port, "local PostgreSQL stopped");
        Ok(())
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.running {
            if let Err(e) = self.stop() {
                tracing::warn!(error = %e, "stopping local PostgreSQL on drop failed");
            }
        }
    }
}

/// Stops a detached cluster. Succeeds if it is not running any more.
pub fn stop_detached(handle: &PgHandle) -> Result<(), PgError> {
    stop_dir(&handle.dir)
}

fn stop_dir(dir: &Path) -> Result<(), PgError> {
    let data = dir.join("data");
    let as_postgres = is_root();
    let mut cmd = pg_command("pg_ctl", as_postgres, dir);
    cmd.arg("-D")
        .arg(&data)
        .args(["-m", "fast", "-w", "-t", "60", "stop"]);
    match run_sync(cmd) {
        Ok(_) => Ok(()),
        Err(e) => match status_running(&data, as_postgres) {
            Ok(false) => Ok(()),
            _ => Err(e),
        },
    }
}

/// `pg_ctl status`: exit code 0 running, 3 not running, 4 no data directory.
fn status_running(data: &Path, as_postgres: bool) -> Result<bool, PgError> {
    let mut cmd = pg_command("pg_ctl", as_postgres, data.parent().unwrap_or(data));
    cmd.arg("-D").arg(data).arg("status");
    let command = describe(&cmd);
    let out = cmd
        .output()
        .map_err(io_err(format!("running `{command}`")))?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(3) | Some(4) => Ok(false),
        _ => Err(command_error(command, &out)),
    }
}

async fn initdb(dir: &Path, data: &Path, password: &str, as_postgres: bool) -> Result<(), PgError> {
    let pwfile = dir.join(".pwfile");
    write_private(&pwfile, password)?;
    if as_postgres {
        run_sync(chown_command(&pwfile))?;
    }
    let mut cmd = pg_command("initdb", as_postgres, dir);
    cmd.arg("-D")
        .arg(data)
        .args(["-U", SUPERUSER, "-E", "UTF8", "--no-locale", "--no-sync"])
        .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let result = run_async(cmd).await;
    let _ = std::fs::remove_file(&pwfile);
    result.map(|_| ())
}

/// Where the PostgreSQL binaries are, found once: see [`find_bin_dir`].
fn bin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        find_bin_dir(
            std::env::var_os("PG_BIN_DIR"),
            std::env::var_os("PATH"),
            Path::new("/usr/lib/postgresql"),
        )
    })
    .clone()
}

/// `PG_BIN_DIR` if set; else the `PATH` folder holding `initdb` (Homebrew, Nix, a distribution
/// that puts it there); else `pg_config --bindir` of the `pg_config` on `PATH`; else the newest
/// `<debian_root>/<version>/bin` (Debian and Ubuntu keep the server binaries off `PATH`); else
/// [`DEFAULT_PG_BIN_DIR`], whose absence the first command then reports by name.
fn find_bin_dir(
    explicit: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    debian_root: &Path,
) -> PathBuf {
    if let Some(dir) = explicit.filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let on_path: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let is_exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(dir) = on_path.iter().find(|d| is_exe(&d.join("initdb"))) {
        return dir.clone();
    }
    if let Some(pg_config) = on_path
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| is_exe(p))
    {
        let reported = Command::new(pg_config)
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        if let Some(dir) = reported.filter(|d| is_exe(&d.join("initdb"))) {
            return dir;
        }
    }
    let newest = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            is_exe(&bin.join("initdb")).then_some((version, bin))
        })
        .max_by_key(|(v, _)| *v);
    newest
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN_DIR))
}

/// A PostgreSQL binary, through `runuser -u postgres --` when running as root.
fn pg_command(program: &str, as_postgres: bool, cwd: &Path) -> Command {
    let bin = bin_dir().join(program);
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", OS_USER, "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    // The working directory must be accessible to the server's user.
    cmd.current_dir(cwd);
    // Out of the terminal's process group: a Ctrl-C reaches deftunes only, which then stops the
    // server itself (a `pg_ctl stop` killed half-way would leave it running).
    cmd.process_group(0);
    cmd
}

fn chown_command(path: &Path) -> Command {
    let mut cmd = Command::new("chown");
    cmd.arg("-R").arg(format!("{OS_USER}:")).arg(path);
    cmd
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn command_error(command: String, out: &Output) -> PgError {
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        let _ = write!(stderr, "\n(stdout) {}", stdout.trim());
    }
    PgError::Command {
        command,
        status: out.status.to_string(),
        stderr,
    }
}

fn check(command: String, out: Output) -> Result<Output, PgError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_error(command, &out))
    }
}

fn run_sync(mut cmd: Command) -> Result<Output, PgError> {
    let command = describe(&cmd);
    tracing::debug!(%command, "running");
    let out = cmd
        .output()
        .map_err(io_err(format!("running `{command}`")))?;
    check(command, out)
}

/// Runs `cmd` to its end; dropped before (an interrupted command), it stops it with its group.
async fn run_async(cmd: Command) -> Result<Output, PgError> {
    let command = describe(&cmd);
    tracing::debug!(%command, "running");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = GroupChild::run(&mut cmd)
        .await
        .map_err(io_err(format!("running `{command}`")))?;
    check(command, out)
}

fn make_dir(dir: &Path) -> Result<(), PgError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("setting mode 0755 on {}", dir.display())))
}

fn write_private(path: &Path, content: &str) -> Result<(), PgError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(io_err(format!("writing {}", path.display())))
}

fn free_port() -> Result<u16, PgError> {
    let listener = std::net::TcpListener::bind((HOST, 0))
        .map_err(io_err("finding a free port on 127.0.0.1"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io_err("finding a free port on 127.0.0.1"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// DDL of `deftunes.songs`: the 14 columns of the contract, in order.
pub const SONGS_DDL: &str = "CREATE TABLE deftunes.songs (
    track_id text PRIMARY KEY,
    title text,
    song_id text,
    release text,
    artist_id text,
    artist_mbid text,
    artist_name text,
    duration real,
    artist_familiarity real,
    artist_hotttnesss real,
    year integer,
    track_7digitalid integer,
    shs_perf integer,
    shs_work integer
)";

const SONGS_COPY: &str = "COPY deftunes.songs (track_id, title, song_id, release, artist_id, \
    artist_mbid, artist_name, duration, artist_familiarity, artist_hotttnesss, year, \
    track_7digitalid, shs_perf, shs_work) FROM STDIN (FORMAT binary)";

const SONGS_TYPES: [Type; 14] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
];

/// Creates schema `deftunes` if needed, (re)creates `deftunes.songs` and loads `songs` with a
/// binary COPY, all in one transaction (readers see the old table or the new one). Returns the
/// number of rows loaded.
pub async fn load_songs(client: &Client, songs: &[Song]) -> Result<u64, PgError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(pg_err("starting the load transaction"))?;
    match load_in_transaction(client, songs).await {
        Ok(n) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(pg_err("committing the songs load"))?;
            tracing::info!(rows = n, "loaded deftunes.songs");
            Ok(n)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn load_in_transaction(client: &Client, songs: &[Song]) -> Result<u64, PgError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS deftunes; DROP TABLE IF EXISTS deftunes.songs; {SONGS_DDL};"
        ))
        .await
        .map_err(pg_err("creating table deftunes.songs"))?;
    let sink = client
        .copy_in(SONGS_COPY)
        .await
        .map_err(pg_err("starting COPY into deftunes.songs"))?;
    let writer = BinaryCopyInWriter::new(sink, &SONGS_TYPES);
    let mut writer = std::pin::pin!(writer);
    for s in songs {
        let row: [&(dyn ToSql + Sync); 14] = [
            &s.track_id,
            &s.title,
            &s.song_id,
            &s.release,
            &s.artist_id,
            &s.artist_mbid,
            &s.artist_name,
            &s.duration,
            &s.artist_familiarity,
            &s.artist_hotttnesss,
            &s.year,
            &s.track_7digitalid,
            &s.shs_perf,
            &s.shs_work,
        ];
        writer
            .as_mut()
            .write(&row)
            .await
            .map_err(|e| PgError::Postgres {
                context: format!("copying song {}", s.track_id),
                source: e,
            })?;
    }
    writer
        .as_mut()
        .finish()
        .await
        .map_err(pg_err("finishing COPY into deftunes.songs"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn binaries_are_found_on_path_through_pg_config_or_in_debians_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = |p: &Path, body: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let debian = tmp.path().join("debian");
        exe(&debian.join("13/bin/initdb"), "");
        exe(&debian.join("15/bin/initdb"), "");
        std::fs::create_dir_all(debian.join("16/bin")).unwrap(); // no initdb: not a server
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let path = |dirs: &[&Path]| Some(std::env::join_paths(dirs).unwrap());
        assert_eq!(
            find_bin_dir(None, path(&[&empty]), &debian),
            debian.join("15/bin")
        );
        let brew = tmp.path().join("brew/bin");
        exe(&brew.join("initdb"), "");
        assert_eq!(find_bin_dir(None, path(&[&empty, &brew]), &debian), brew);
        let other = tmp.path().join("other/bin");
        exe(&other.join("initdb"), "");
        let tools = tmp.path().join("tools");
        exe(
            &tools.join("pg_config"),
            &format!("#!/bin/sh\necho {}\n", other.display()),
        );
        assert_eq!(find_bin_dir(None, path(&[&tools]), &debian), other);
        assert_eq!(
            find_bin_dir(Some("/opt/pg/bin".into()), path(&[&brew]), &debian),
            PathBuf::from("/opt/pg/bin")
        );
        assert_eq!(
            find_bin_dir(None, None, &tmp.path().join("none")),
            PathBuf::from(DEFAULT_PG_BIN_DIR)
        );
    }
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn handle_round_trips_through_json() {
        let h = PgHandle {
            dir: PathBuf::from("/tmp/x"),
            port: 5433,
            user: "postgres".into(),
            password: "secret".into(),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<PgHandle>(&json).unwrap(), h);
        assert!(h.connection_string().contains("port=5433"));
        assert!(h.connection_string().contains("password=secret"));
    }

    #[test]
    fn command_error_names_command_and_stderr() {
        let cmd = Command::new("/definitely/not/here/pg_ctl");
        let err = run_sync(cmd).unwrap_err().to_string();
        assert!(err.contains("/definitely/not/here/pg_ctl"), "{err}");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run_sync(cmd).unwrap_err().to_string();
        assert!(err.contains("sh -c") && err.contains("boom"), "{err}");
    }
}
