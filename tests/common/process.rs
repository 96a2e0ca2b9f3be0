//! Child process wrapper: own process group, log file, signals, bounded waits,
//! kill on drop.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A spawned client or server process. It runs in its own process group (so a
/// signal reaches helpers it forks, e.g. nginx's worker), with stdout and stderr
/// appended to a log file. Dropping it sends SIGTERM to the group, waits briefly,
/// then SIGKILLs the group, so a failing test never leaves processes behind.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `program args...` with stdin closed and output to `log`.
    /// Panics (the test fails) if the program cannot be started.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Proc {
        let out = File::create(log)
            .unwrap_or_else(|e| panic!("{name}: create log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot spawn `{program}`: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
            status: None,
        }
    }

    /// The short name given at spawn time (used in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Path of the combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        super::tail(&self.log, n)
    }

    /// Non-blocking: the exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().ok().flatten();
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` and asserts the process exited successfully;
    /// panics with its log tail otherwise (e.g. a publisher that failed).
    pub fn wait_success(&mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(st) if st.success() => {}
            Some(st) => panic!(
                "{} exited with {st}\n--- log tail ---\n{}",
                self.name,
                self.log_tail(30)
            ),
            None => panic!(
                "{} still running after {timeout:?}\n--- log tail ---\n{}",
                self.name,
                self.log_tail(30)
            ),
        }
    }

    /// Sends `signal` (a `kill -s` name such as "INT", "TERM", "KILL") to the
    /// process group. No-op once the process has been reaped.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_some() {
            return;
        }
        let pid = self.pid();
        if pid == 0 {
            return;
        }
        // Negative pid = the whole process group (the child is its leader).
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Graceful stop: `signal`, wait up to `grace`, then SIGKILL. Returns the exit
    /// status (None only if even SIGKILL could not be reaped).
    pub fn stop_with(&mut self, signal: &str, grace: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.try_wait() {
            return Some(st);
        }
        self.signal(signal);
        if let Some(st) = self.wait_timeout(grace) {
            return Some(st);
        }
        self.signal("KILL");
        self.wait_timeout(Duration::from_secs(5))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM/SIGKILL go to the whole group while the leader is alive, so
        // helpers it forked (nginx's worker) die with it.
        let _ = self.stop_with("TERM", Duration::from_secs(3));
    }
}
