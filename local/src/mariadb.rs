//! A throwaway local MariaDB (or MySQL) server: the stand-in for a team's operational MySQL
//! database (classicmodels).
//!
//! The server lives in `<dir>/data`, listens on `127.0.0.1:<free port>` only (its socket in
//! `<dir>`), and is stopped when the handle is dropped. It is initialised with a passwordless
//! `root` reachable from localhost only, then an application account `deftunes` with a random
//! password is created: extraction connects over TCP with a password, as against RDS. The
//! server log is `<dir>/mariadb.log`.
//!
//! Binaries: `MARIADB_BIN_DIR`, else `mariadbd` (or `mysqld`) on `PATH`, else `/usr/sbin`
//! (Debian's `mariadb-server` package; `make mariadb` installs it). As root the server runs
//! with `--user=root` (it refuses root otherwise).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use rand::distr::{Alphanumeric, SampleString};

use crate::child::GroupChild;

const HOST: &str = "127.0.0.1";
/// The account extraction and loading use.
pub const USER: &str = "deftunes";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct LocalMariaDb {
    dir: PathBuf,
    port: u16,
    password: String,
    child: Option<Child>,
}

/// `name` in `MARIADB_BIN_DIR`, else on `PATH`, else in Debian's folders.
fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var_os("MARIADB_BIN_DIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_else(|| {
            let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default();
            dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"].map(PathBuf::from));
            dirs
        });
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((HOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl LocalMariaDb {
    /// Initialises a server in `dir` (which must not hold one yet) and starts it.
    pub async fn start(dir: &Path) -> Result<LocalMariaDb> {
        Self::start_with(dir, None).await
    }

    /// [`Self::start`] serving TLS with `tls` (certificate and key PEM files); the application
    /// account then connects over TLS only (`REQUIRE SSL`), as on RDS with `require_secure_transport`.
    pub async fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Result<LocalMariaDb> {
        let server = find_binary(&["mariadbd", "mysqld"]).context(
            "no MariaDB/MySQL server found (mariadbd or mysqld on PATH, in MARIADB_BIN_DIR or /usr/sbin): run `make mariadb` or install Debian's mariadb-server",
        )?;
        let data = dir.join("data");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let log = dir.join("mariadb.log");
        // Its own temporary folder: servers set up side by side (tests run in parallel) must not
        // share /tmp's `#sql-temptable-*` files.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let as_root = is_root();
        let mut init = match find_binary(&["mariadb-install-db", "mysql_install_db"]) {
            Some(install) => {
                let mut c = tokio::process::Command::new(install);
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg("--auth-root-authentication-method=normal")
                    .arg("--skip-test-db")
                    .arg(format!("--tmpdir={}", tmp.display()));
                c
            }
            // MySQL 8 initialises through the server itself.
            None => {
                let mut c = tokio::process::Command::new(&server);
                c.arg("--no-defaults")
                    .arg("--initialize-insecure")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}", tmp.display()));
                c
            }
        };
        if as_root {
            init.arg("--user=root");
        }
        init.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Awaited, and stopped if the start is dropped half-way (an interrupted run).
        let program = init.as_std().get_program().to_owned();
        let out = GroupChild::run(&mut init)
            .await
            .with_context(|| format!("running {program:?}"))?;
        if !out.status.success() {
            bail!(
                "initialising the MariaDB data directory {} failed: {}{}",
                data.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let mut cmd = Command::new(&server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--bind-address={HOST}"))
            .arg("--skip-name-resolve")
            .arg("--skip-log-bin")
            .arg("--character-set-server=utf8mb4")
            .arg("--innodb-buffer-pool-size=64M")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if as_root {
            cmd.arg("--user=root");
        }
        // Out of the terminal's process group: a Ctrl-C reaches deftunes only, whose `stop` then
        // shuts the server down cleanly and waits for it.
        cmd.process_group(0);
        if let Some((cert, key)) = tls {
            cmd.arg(format!("--ssl-cert={}", cert.display()))
                .arg(format!("--ssl-key={}", key.display()));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let mut db = LocalMariaDb {
            dir: dir.clone(),
            port,
            password: Alphanumeric.sample_string(&mut rand::rng(), 24),
            child: Some(child),
        };
        let mut root = db.wait_ready(&log).await?;
        let require = if tls.is_some() { " REQUIRE SSL" } else { "" };
        root.query_drop(format!(
            "CREATE USER '{USER}'@'{HOST}' IDENTIFIED BY '{}'{require}; \
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{HOST}'",
            db.password
        ))
        .await
        .context("creating the deftunes account")?;
        let _ = root.disconnect().await;
        Ok(db)
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<mysql_async::Conn> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the MariaDB server exited ({status}) while starting; {}:\n{}",
                        log.display(),
                        log_tail(log)
                    );
                }
            }
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(HOST)
                .tcp_port(self.port)
                .user(Some("root"))
                .prefer_socket(false);
            match mysql_async::Conn::new(opts).await {
                Ok(conn) => return Ok(conn),
                Err(e) if started.elapsed() > READY_TIMEOUT => bail!(
                    "the MariaDB server did not accept connections within {READY_TIMEOUT:?} ({e}); {}:\n{}",
                    log.display(),
                    log_tail(log)
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        USER
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `MYSQL_*` settings of songs-extract and `load-classicmodels` for this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("MYSQL_HOST", HOST.to_string()),
            ("MYSQL_PORT", self.port.to_string()),
            ("MYSQL_USER", USER.to_string()),
            ("MYSQL_PASSWORD", self.password.clone()),
            ("MYSQL_SSLMODE", "disable".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A connection as the application account.
    pub async fn connect(&self) -> Result<mysql_async::Conn> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(HOST)
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(self.password.clone()))
            .prefer_socket(false);
        mysql_async::Conn::new(opts)
            .await
            .with_context(|| format!("connecting to MariaDB on {HOST}:{}", self.port))
    }

    /// Stops the server (SIGTERM, then a clean InnoDB shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // SAFETY: kill has no memory preconditions; pid is our own child's.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}
