#![doc = include_str!("../README.md")]

mod api;
mod azure;
mod client;
mod db;
mod load;
mod memory;
mod overhead;
mod procs;
mod quota;
mod report;
mod sync;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

/// Runs keyfleet's benchmarks against the real `keyfleet` binary and its fake AWS KMS on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(name = "keyfleet-bench")]
struct Cli {
    /// Benchmarks to run, in this order (default: all).
    #[arg(value_enum)]
    benches: Vec<Bench>,
    /// Smaller sizes and shorter runs (a smoke test of the suite, not figures to record).
    #[arg(long)]
    quick: bool,
    /// The `keyfleet` binary (default: `keyfleet` beside this program, i.e. target/release/keyfleet).
    #[arg(long, value_name = "PATH")]
    keyfleet: Option<PathBuf>,
    /// Python with boto3, for the baselines of the quota benchmark.
    #[arg(long, value_name = "PATH", default_value = ".venv-peers/bin/python")]
    python: PathBuf,
    /// Folder of the Python baselines.
    #[arg(long, value_name = "DIR", default_value = "bench/baselines")]
    baselines: PathBuf,
    /// Scratch folder for data directories and logs (wiped per benchmark).
    #[arg(long, value_name = "DIR", default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// How long the memory benchmark samples its job (default 60 s, 15 s with --quick).
    #[arg(long, value_name = "SECS")]
    memory_secs: Option<u64>,
    /// A PostgreSQL server (admin URL) the PostgreSQL halves of `overhead` and `api` create their databases
    /// on (`api`: `kf_bench_api`, dropped after). Default: a throwaway cluster started with
    /// scripts/pg-test-cluster (`overhead` also takes `KEYFLEET_TEST_DATABASE_URL`).
    #[arg(long, value_name = "URL", env = "KEYFLEET_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Also write the tables to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The keyfleet revision measured, for the captions (default: `git rev-parse --short HEAD`, with
    /// "+ local changes" when the work tree differs).
    #[arg(long, value_name = "TEXT", env = "KEYFLEET_BENCH_REVISION")]
    revision: Option<String>,
    /// How the run was invoked, for the captions (bench/run passes its own command line).
    #[arg(long, value_name = "TEXT")]
    command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    Overhead,
    Quota,
    Api,
    Memory,
    /// 100,000-key AWS sync (bench/RESULTS.md §6).
    Sync,
    /// Azure Key Vault at its quota (bench/RESULTS.md §7).
    Azure,
}

/// What every benchmark needs to know about its surroundings.
pub struct Env {
    pub keyfleet: PathBuf,
    pub python: PathBuf,
    pub baselines: PathBuf,
    pub work_dir: PathBuf,
    pub quick: bool,
    pub memory_secs: Option<u64>,
    pub database_url: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let keyfleet = match cli.keyfleet {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("keyfleet"),
    };
    anyhow::ensure!(
        keyfleet.exists(),
        "no keyfleet binary at {} (cargo build --release -p keyfleet-cli)",
        keyfleet.display()
    );
    std::fs::create_dir_all(&cli.work_dir).with_context(|| format!("creating {}", cli.work_dir.display()))?;
    let env = Env {
        keyfleet,
        python: cli.python,
        baselines: cli.baselines,
        work_dir: std::fs::canonicalize(&cli.work_dir)?,
        quick: cli.quick,
        memory_secs: cli.memory_secs,
        database_url: cli.database_url,
    };
    let benches = if cli.benches.is_empty() {
        vec![Bench::Overhead, Bench::Quota, Bench::Api, Bench::Memory, Bench::Sync, Bench::Azure]
    } else {
        cli.benches
    };
    let command = cli.command.unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let mut ctx = report::Context::detect(command);
    if let Some(revision) = cli.revision {
        ctx.commit = revision;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut sections = Vec::new();
    let mut failures = Vec::new();
    for bench in benches {
        eprintln!("== {bench:?}");
        let started = std::time::Instant::now();
        let load_before = load_average();
        let result = runtime.block_on(async {
            match bench {
                Bench::Overhead => overhead::run(&env).await,
                Bench::Quota => quota::run(&env).await,
                Bench::Api => api::run(&env).await,
                Bench::Memory => memory::run(&env).await,
                Bench::Sync => sync::run(&env).await,
                Bench::Azure => azure::run(&env).await,
            }
        });
        eprintln!("== {bench:?} took {:.0} s", started.elapsed().as_secs_f64());
        match result {
            Ok(mut section) => {
                section.notes.push(format!(
                    "Load average (1 min) of the machine before / after this benchmark: {load_before} / {}; took {:.0} s.",
                    load_average(),
                    started.elapsed().as_secs_f64()
                ));
                println!("{}", report::render_section(&ctx, &section));
                sections.push(section);
            }
            Err(e) => {
                eprintln!("benchmark {bench:?} failed: {e:#}");
                failures.push(format!("{bench:?}: {e:#}"));
            }
        }
    }
    let mut text = report::render(&ctx, &sections);
    for f in &failures {
        text.push_str(&format!("\n**Benchmark failed** — {f}\n"));
    }
    if let Some(out) = cli.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("tables written to {}", out.display());
    }
    anyhow::ensure!(failures.is_empty(), "{} benchmark(s) failed", failures.len());
    Ok(())
}

/// The 1-minute load average: other work on this shared machine shows here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
