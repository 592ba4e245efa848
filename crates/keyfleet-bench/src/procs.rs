//! The processes a benchmark measures: the real `keyfleet` release binary as `serve` and as `fake-aws`, each
//! in its own process so that its CPU time and memory can be read from `/proc` apart from the load
//! generator's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// The password of `admin` on every keyfleet a benchmark starts.
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// A child process that printed its URL; killed when dropped (stopped politely by [`Proc::stop`]).
pub struct Proc {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
    child: Child,
}

impl Proc {
    /// Starts `keyfleet serve` on a random port of 127.0.0.1 over HTTPS (the default), with `args` added.
    pub async fn keyfleet(bin: &Path, data_dir: &Path, log: &Path, args: &[String]) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir).args(args);
        cmd.env("KEYFLEET_ADMIN_PASSWORD", ADMIN_PASSWORD);
        // "keyfleet serving on https://127.0.0.1:PORT (data directory ...)"
        Self::spawn("keyfleet serve", cmd, log, |line| {
            line.strip_prefix("keyfleet serving on ").and_then(|rest| rest.split_whitespace().next()).map(str::to_owned)
        })
        .await
    }

    /// Starts `keyfleet fake-aws --port 0` with `args` added.
    pub async fn fake(bin: &Path, log: &Path, args: &[String]) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.arg("fake-aws").arg("--host").arg("127.0.0.1").arg("--port").arg("0").args(args);
        // "fake AWS KMS listening on http://127.0.0.1:PORT | ..."
        Self::spawn("keyfleet fake-aws", cmd, log, |line| {
            line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_owned)
        })
        .await
    }

    /// Starts `keyfleet fake-azure --port 0` with `args` added.
    pub async fn fake_azure(bin: &Path, log: &Path, args: &[String]) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.arg("fake-azure").arg("--host").arg("127.0.0.1").arg("--port").arg("0").args(args);
        // "fake Azure Key Vault listening on https://127.0.0.1:PORT | ..."
        Self::spawn("keyfleet fake-azure", cmd, log, |line| {
            line.strip_prefix("fake Azure Key Vault listening on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .await
    }

    async fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        url_of: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Proc> {
        let stderr = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("child has no pid")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    bail!("{name} exited before printing its URL; see {}", log.display())
                }
                Err(_) => bail!("{name} printed no URL within 120 s; see {}", log.display()),
            };
            if let Some(url) = url_of(&line) {
                // Keep draining stdout so that the child never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                eprintln!("  started {name} (pid {pid}) at {url}");
                return Ok(Proc { name, url, pid, child });
            }
        }
    }

    /// Memory and CPU time of the process now.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        ProcSample::read(self.pid)
    }

    /// SIGTERM, then up to `grace` for the process to exit (keyfleet finishes in-flight items), then SIGKILL.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                status.with_context(|| format!("waiting for {}", self.name))?;
            }
            Err(_) => {
                eprintln!("  {} did not stop within {grace:?} of SIGTERM; killing it", self.name);
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// One reading of `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far (VmHWM), KiB.
    pub hwm_kib: u64,
    /// User + system CPU time so far, seconds.
    pub cpu_secs: f64,
}

impl ProcSample {
    pub fn read(pid: u32) -> anyhow::Result<ProcSample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcSample { rss_kib: field("VmRSS:"), hwm_kib: field("VmHWM:"), cpu_secs: cpu_secs(pid)? })
    }
}

/// utime + stime of a process, in seconds (fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks).
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is fields[N - 3].
    let ticks = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((ticks(14) + ticks(15)) as f64 / clock_ticks() as f64)
}

/// CPU time of this (the load-generating) process, seconds.
pub fn own_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// A fresh directory under the work directory for one run.
pub fn fresh_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
