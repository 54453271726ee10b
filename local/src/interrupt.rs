//! Ctrl-C and SIGTERM during a command.
//!
//! `main` races the command's future against the first signal. When the signal wins, the future
//! is dropped: its values' `Drop` stop what the command started (PostgreSQL through `pg_ctl
//! stop`, MariaDB, the process group of a running dbt or Python helper), remove its temporary
//! directories and release the run directory's lock. Then one message says what was interrupted,
//! the state left behind and the command to run next, and the tool exits 130 (SIGINT) or 143
//! (SIGTERM). A second signal while stopping is answered on stderr; a third exits at once.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// A signal that stops a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// 128 + the signal's number, as a shell reports a command the signal ended.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// The step a run is in (its last `[n/m]` line), for the message of an interruption.
static STEP: Mutex<Option<String>> = Mutex::new(None);

/// Prints a run's step line (`[2/6] ...`) and keeps it for the message of an interruption.
macro_rules! step {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $crate::interrupt::set_step(&line);
    }};
}
pub(crate) use step;

pub fn set_step(line: &str) {
    // The step's name, without its details (paths, counts in parentheses).
    let name = line.split(" (").next().unwrap_or(line).trim();
    if let Ok(mut step) = STEP.lock() {
        *step = Some(name.to_string());
    }
}

fn current_step() -> Option<String> {
    STEP.lock().ok().and_then(|s| s.clone())
}

/// SIGINT and SIGTERM, listened to from [`Signals::listen`] on (their default action, ending
/// the process on the spot, no longer applies).
pub struct Signals {
    first: oneshot::Receiver<Signal>,
}

impl Signals {
    /// Listens for the rest of the process. The first signal is handed to [`Signals::first`];
    /// the second says that stopping is under way; the third exits at once with the first's code.
    pub fn listen() -> std::io::Result<Signals> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, first) = oneshot::channel();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut received: Vec<Signal> = Vec::new();
            loop {
                let sig = tokio::select! {
                    Some(()) = int.recv() => Signal::Interrupt,
                    Some(()) = term.recv() => Signal::Terminate,
                    else => return,
                };
                received.push(sig);
                match received.len() {
                    1 => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(sig);
                        }
                    }
                    2 => eprintln!(
                        "deftunes: {} again: still stopping what was started, so that nothing is left running (a third signal exits at once and may leave servers and temporary directories behind)",
                        sig.name()
                    ),
                    _ => {
                        eprintln!(
                            "deftunes: forced exit: a local PostgreSQL or MariaDB may still be running, and temporary directories may remain (deftunes-pg-* in {}, mariadb-* in the run directory)",
                            std::env::temp_dir().display()
                        );
                        std::process::exit(i32::from(received[0].exit_code()));
                    }
                }
            }
        });
        Ok(Signals { first })
    }

    /// The first signal (never resolves if the listener has gone).
    pub async fn first(&mut self) -> Signal {
        match (&mut self.first).await {
            Ok(sig) => sig,
            Err(_) => std::future::pending().await,
        }
    }
}

/// What a command leaves behind when interrupted, and what to run next: the message printed once
/// everything it started is stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Aftermath {
    /// `deftunes run` of a pipeline in a run directory, `keep` for an incremental run.
    Run {
        pipeline: String,
        dir: std::path::PathBuf,
        keep: bool,
    },
    /// `deftunes up`: a stack that was not fully up is stopped again.
    Up { dir: std::path::PathBuf },
    /// Any other command: nothing of it runs on; running it again is the way on.
    Rerun,
}

impl Aftermath {
    /// The message, `command` being the interrupted command line as typed.
    pub fn message(&self, sig: Signal, command: &str) -> String {
        let mut m = String::new();
        let step = current_step();
        let during = step
            .as_deref()
            .map(|s| format!(" during {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            m,
            "deftunes: interrupted by {}{during}; everything it started is stopped.",
            sig.name()
        );
        match self {
            Aftermath::Run {
                pipeline,
                dir,
                keep,
            } => {
                let dir = dir.display();
                if step.is_none() {
                    let _ = writeln!(m, "  {dir}: unchanged (the run had not started on it).");
                    let _ = writeln!(m, "  To run it: {command}");
                } else if *keep {
                    let _ = writeln!(
                        m,
                        "  {dir}: the earlier run's lake, catalog and warehouse, plus what this run committed before it stopped (windows not finished are partly there or missing)."
                    );
                    let _ = writeln!(
                        m,
                        "  To continue: {command}\n  (it extracts the same windows again; records the tables already hold are counted unchanged, not added twice)"
                    );
                } else {
                    let _ = writeln!(
                        m,
                        "  {dir}: a partial {pipeline} run (its lake, catalog and warehouse as far as it got; an earlier run's were cleared at its start)."
                    );
                    let _ = writeln!(
                        m,
                        "  To start over: {command}\n  (a run without --keep clears the partial run first)"
                    );
                }
            }
            Aftermath::Up { dir } => {
                let _ = writeln!(
                    m,
                    "  The stack was not left up (no state in {}); PostgreSQL and the API emulator are stopped.",
                    dir.join("stack").display()
                );
                let _ = writeln!(m, "  To start it: {command}");
            }
            Aftermath::Rerun => {
                let _ = writeln!(m, "  To run it again: {command}");
            }
        }
        m
    }
}

/// `args` as a shell command line to copy (arguments quoted where the shell would split them).
pub fn command_line<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .map(|a| {
            let a = a.as_ref();
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The interrupted command as it was started: this executable and its arguments.
pub fn this_command() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    // The program as found on PATH keeps its bare name; a path is kept as given.
    if let Some(first) = args.first_mut() {
        if !first.contains('/') {
            *first = Path::new(first)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| first.clone());
        }
    }
    command_line(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_the_shell_would_split() {
        assert_eq!(
            command_line([
                "deftunes",
                "run",
                "--dir",
                "/tmp/a b",
                "--window-from",
                "2020-03-01"
            ]),
            "deftunes run --dir '/tmp/a b' --window-from 2020-03-01"
        );
        assert_eq!(command_line(["x", "it's", ""]), r"x 'it'\''s' ''");
    }

    #[test]
    fn the_message_says_how_to_go_on() {
        let fresh = Aftermath::Run {
            pipeline: "deftunes".into(),
            dir: "/tmp/r".into(),
            keep: false,
        };
        let keep = Aftermath::Run {
            pipeline: "deftunes".into(),
            dir: "/tmp/r".into(),
            keep: true,
        };
        let cmd = "deftunes run --dir /tmp/r";
        set_step("[3/6] extract -> transform, 3 monthly windows (landing zone: /x)");
        let m = fresh.message(Signal::Terminate, cmd);
        assert!(
            m.contains(
                "interrupted by SIGTERM during [3/6] extract -> transform, 3 monthly windows;"
            ),
            "{m}"
        );
        assert!(
            m.contains("To start over: deftunes run --dir /tmp/r"),
            "{m}"
        );
        let m = keep.message(Signal::Interrupt, cmd);
        assert!(m.contains("To continue: deftunes run --dir /tmp/r"), "{m}");
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }
}
