//! `deftunes run` stopped by SIGTERM or Ctrl-C (SIGINT) half-way, as a user or `make demo`
//! does: nothing it started runs on, its temporary directories are gone, its run directory is
//! free for the next run, and it says how to go on.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SMALL: [&str; 6] = ["--songs", "800", "--users", "150", "--sessions", "1200"];

/// The tool, run from the repository's root as `make demo` does (dbt_modeling/, local/python/).
fn deftunes() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deftunes"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

/// A `deftunes` started in the background, its stdout followed line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = deftunes()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting deftunes");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The first stdout line `wanted` accepts, within `limit`.
    fn wait_for_line(&mut self, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no such line within {limit:?}; stdout so far:\n{}",
                    self.stdout.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let (status, _, stdout, stderr) = self.finish_now();
                    panic!("deftunes ended ({status}) before that line:\n{stdout}\n{stderr}")
                }
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn finish_now(&mut self) -> (ExitStatus, Duration, String, String) {
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the exit (at most `limit`) and returns it with the whole of stdout and stderr.
    fn finish(mut self, limit: Duration) -> (ExitStatus, Duration, String, String) {
        self.wait_exit(limit)
    }

    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "deftunes still running {limit:?} after the signal; stdout:\n{}",
                    self.stdout.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        self.stdout.extend(self.lines.try_iter());
        let stderr = match self.stderr.take() {
            Some(reader) => reader.join().unwrap(),
            None => String::new(),
        };
        (status, took, self.stdout.join("\n"), stderr)
    }
}

/// Whether process `pid` still runs (one that exited but is not reaped yet does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// Processes whose command line mentions `needle`, but for this test and its deftunes.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && running(*pid))
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            (cmdline.contains(needle) && !cmdline.contains(env!("CARGO_BIN_EXE_deftunes")))
                .then_some((pid, cmdline))
        })
        .collect()
}

/// `pid` gone within a few seconds: an exited server is reaped by init, not by us.
fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!running(pid), "{what} (pid {pid}) still runs");
}

fn pid_in(file: &Path) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// The run directory is free again: a run on it starts and completes.
fn a_new_run_is_not_refused(dir: &Path) {
    let out = deftunes()
        .args(["run", "--no-serving", "--window-to", "2020-01-31"])
        .args(SMALL)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the next run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory named by `key` in a stdout line (`... files in /tmp/x, ...`).
fn path_after(line: &str, key: &str) -> PathBuf {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    PathBuf::from(rest.split([',', ' ', ')']).next().unwrap())
}

#[test]
fn sigterm_after_postgres_started_stops_it_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let dir_arg = dir.to_str().unwrap();
    // Enough sessions that extract and transform take seconds: the signal lands in them.
    let mut run = Running::start(&[
        "run",
        "--no-serving",
        "--sessions",
        "200000",
        "--dir",
        dir_arg,
    ]);
    let line = run.wait_for_line(Duration::from_secs(60), |l| {
        l.contains("postgres 127.0.0.1:")
    });
    let pg_dir = path_after(&line, "files in ");
    run.wait_for_line(Duration::from_secs(10), |l| l.starts_with("[3/6]"));
    let postmaster = pid_in(&pg_dir.join("data/postmaster.pid"));
    assert!(running(postmaster), "PostgreSQL is not running: {line}");

    run.signal(libc::SIGTERM);
    let (status, took, stdout, stderr) = run.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    assert!(
        stderr.contains("interrupted by SIGTERM during [3/6]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("To start over: ") && stderr.contains(&format!("--dir {dir_arg}")),
        "{stderr}"
    );
    assert_gone(postmaster, "PostgreSQL");
    assert!(!pg_dir.exists(), "{} is still there", pg_dir.display());
    a_new_run_is_not_refused(&dir);
}

#[test]
fn ctrl_c_during_dbt_stops_dbt_and_its_children() {
    if std::env::var_os("DEFTUNES_PYTHON").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "DEFTUNES_PYTHON must be set in CI (make test sets it)"
        );
        eprintln!("DEFTUNES_PYTHON not set: skipping (make test runs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let dir_arg = dir.to_str().unwrap();
    let args: Vec<&str> = ["run", "--keep", "--dir", dir_arg]
        .into_iter()
        .chain(SMALL)
        .collect();
    let mut run = Running::start(&args);
    // dbt's first finished model: dbt runs (its children too, if any).
    run.wait_for_line(Duration::from_secs(60), |l| {
        l.contains(" of ") && l.contains(" OK created ")
    });
    let dbt = processes_mentioning(dir_arg);
    assert!(
        dbt.iter().any(|(_, cmd)| cmd.contains("dbt build")),
        "no dbt process of this run: {dbt:?}"
    );

    run.signal(libc::SIGINT);
    let (status, took, stdout, stderr) = run.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    assert!(
        stderr.contains("interrupted by SIGINT during [6/6] serving"),
        "{stderr}"
    );
    // A --keep run continues where it stopped.
    assert!(stderr.contains("To continue: "), "{stderr}");
    for (pid, cmd) in dbt {
        assert_gone(pid, &cmd);
    }
    assert_eq!(processes_mentioning(dir_arg), vec![]);
    a_new_run_is_not_refused(&dir);
}

#[test]
fn sigterm_while_mariadb_runs_stops_it_and_removes_its_files_a_second_one_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let dir_arg = dir.to_str().unwrap();
    // Ten times the sample database: loading and extracting take seconds.
    let mut run = Running::start(&[
        "run",
        "--pipeline",
        "classicmodels",
        "--scale",
        "10",
        "--no-serving",
        "--dir",
        dir_arg,
    ]);
    run.wait_for_line(Duration::from_secs(60), |l| l.starts_with("[1/6] source"));
    // The server's pid file: it is up or coming up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid_file = loop {
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("mysqld.pid"))
            .find(|p| p.exists() && std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "no mysqld.pid in {dir_arg}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let server = pid_in(&pid_file);
    let server_dir = pid_file.parent().unwrap().to_path_buf();
    assert!(running(server));

    run.signal(libc::SIGTERM);
    // Impatient: a second signal while the server shuts down is answered, and stopping goes on.
    std::thread::sleep(Duration::from_millis(50));
    run.signal(libc::SIGTERM);
    let (status, _, stdout, stderr) = run.finish(Duration::from_secs(45));
    assert_eq!(status.code(), Some(143), "{stdout}\n{stderr}");
    assert!(stderr.contains("SIGTERM again: still stopping"), "{stderr}");
    assert!(stderr.contains("To start over: "), "{stderr}");
    assert_gone(server, "MariaDB");
    assert!(
        !server_dir.exists(),
        "{} is still there",
        server_dir.display()
    );
    assert_eq!(processes_mentioning(dir_arg), vec![]);
}
