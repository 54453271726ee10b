//! Child processes that end with the command that started them.
//!
//! Each child runs in its own process group: a terminal's Ctrl-C then reaches only `deftunes`,
//! which stops its children in order (a server must not die under a client still using it), and
//! the whole group (a shell script's dbt, dbt's own children) can be signalled at once. A child
//! whose handle is dropped before it exited (an interrupted or failed command) is stopped with
//! its group: SIGTERM, then SIGKILL for what is left after a grace period.

use std::io;
use std::process::{ExitStatus, Output};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// How long a dropped child's group has to exit on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running child in its own process group; see the module documentation.
#[derive(Debug)]
pub struct GroupChild {
    child: tokio::process::Child,
    /// The group's id: the child's pid, as it leads its group.
    pgid: libc::pid_t,
    /// Its exit status was collected: the group is then left alone (its id may be reused).
    exited: bool,
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut tokio::process::Command) -> io::Result<GroupChild> {
        cmd.process_group(0).kill_on_drop(true);
        let child = cmd.spawn()?;
        let pgid = child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .ok_or_else(|| io::Error::other("the spawned child has no pid"))?;
        Ok(GroupChild {
            child,
            pgid,
            exited: false,
        })
    }

    /// Runs `cmd` to its end in a group of its own and collects its output (pipe stdout and
    /// stderr first to capture them). Dropped before the end, it stops the child's group.
    pub async fn run(cmd: &mut tokio::process::Command) -> io::Result<Output> {
        GroupChild::spawn(cmd)?.output().await
    }

    /// The child's pid (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// The child's pipes, as `tokio::process::Child` holds them.
    pub fn inner(&mut self) -> &mut tokio::process::Child {
        &mut self.child
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.exited = true;
        Ok(status)
    }

    /// Collects the child's stdout and stderr (piped by the caller) and its exit status. Dropped
    /// before the end, it stops the child's group.
    pub async fn output(mut self) -> io::Result<Output> {
        async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                p.read_to_end(&mut buf).await?;
            }
            Ok(buf)
        }
        let (stdout, stderr) = (self.child.stdout.take(), self.child.stderr.take());
        let (stdout, stderr) = tokio::try_join!(read_all(stdout), read_all(stderr))?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Stops the group now: SIGTERM, up to [`GRACE`] for the child and then its group to exit,
    /// SIGKILL for what remains. Blocking, for `Drop`.
    fn stop_group(&mut self) {
        let pgid = self.pgid;
        // SAFETY: killpg has no memory preconditions; the group is our child's, not yet reaped
        // (its id cannot have been reused).
        unsafe { libc::killpg(pgid, libc::SIGTERM) };
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The leader is gone or late; its group (e.g. dbt under a shell script) gets the rest of
        // the grace period. A member that exited but nobody reaped still answers signal 0, hence
        // the bound.
        // SAFETY: as above; signal 0 only checks that the group exists.
        while Instant::now() < deadline && unsafe { libc::killpg(pgid, 0) } == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.try_wait();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.exited {
            self.stop_group();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A zombie (exited, not reaped by its new parent) counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    /// A dropped child takes its own children with it; one that ignores SIGTERM is killed.
    #[tokio::test]
    async fn a_dropped_child_stops_its_whole_group() {
        let mut cmd = tokio::process::Command::new("sh");
        // The grandchild ignores SIGTERM (from before it prints its pid), so only the SIGKILL
        // after the grace period ends it.
        cmd.args([
            "-c",
            "sh -c 'trap \"\" TERM; echo $$; exec sleep 60' & wait",
        ])
        .stdout(std::process::Stdio::piped());
        let mut child = GroupChild::spawn(&mut cmd).unwrap();
        let mut line = String::new();
        let mut out = tokio::io::BufReader::new(child.inner().stdout.take().unwrap());
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
            .await
            .unwrap();
        let (leader, grandchild): (u32, u32) = (child.pid(), line.trim().parse().unwrap());
        assert!(alive(leader) && alive(grandchild));
        let started = Instant::now();
        drop(child);
        let took = started.elapsed();
        assert!(
            took >= GRACE && took < GRACE + Duration::from_secs(2),
            "{took:?}"
        );
        for _ in 0..100 {
            if !alive(grandchild) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(leader), "the shell is still running");
        assert!(!alive(grandchild), "its child is still running");
    }

    /// A child that exited is left alone, and its output is collected.
    #[tokio::test]
    async fn output_collects_both_pipes_and_the_status() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = GroupChild::spawn(&mut cmd).unwrap().output().await.unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }
}
