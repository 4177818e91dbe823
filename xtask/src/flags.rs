//! The command line of `cargo xtask`.

use clap::{Args, Parser, Subcommand};

use crate::config::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "meshgate: the quality gates of the service mesh"
)]
pub struct Xtask {
    /// Print debug output (commands run, engine calls).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the quality gates (all of them, or one).
    Gates(Gates),
    /// Print the discovered services and their contracts as JSON.
    Discover {
        /// Use this meshgate.toml; its paths are relative to its folder.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Print contracts inferred for the services that have none, as meshgate.toml
        /// `[external.<name>]` tables, instead of the JSON.
        #[arg(long)]
        infer_contracts: bool,
    },
    /// Time a gate next to the tool it builds on (network: `docker compose config`, health:
    /// `compose up --wait`, coverage: a bare `cargo llvm-cov`).
    #[command(after_help = BENCH_EXIT_CODES)]
    Bench(BenchFlags),
}

/// What `cargo xtask bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTarget {
    Network,
    Health,
    Coverage,
}

const BENCH_EXIT_CODES: &str = "Exit codes:
  0    the targets are met (network, 500 services: under 1 s and 100 MiB, or 500 was not
       measured; health: median ratio ≤ 1.10; coverage: median ratio ≤ 1.05)
  1    a target is missed
  2    the benchmark could not run (a generated mesh has findings, Compose rejects it, …)";

#[derive(Debug, Clone, Args)]
pub struct BenchFlags {
    /// What to time: the static network gate on generated meshes, the health gate on the
    /// repository's mesh against `docker compose up --wait` and `down`, or the coverage gate
    /// against a bare `cargo llvm-cov --workspace --json`.
    #[arg(value_enum, default_value_t = BenchTarget::Network)]
    pub target: BenchTarget,
    /// Mesh sizes in services, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,500",
        value_parser = clap::value_parser!(u32).range(1..=5000)
    )]
    pub sizes: Vec<u32>,
    /// Timed runs per size; the median is shown.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Seed of the mesh generator: the same seed gives the same meshes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the generated meshes into this folder and keep them (default: a temporary folder,
    /// removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Do not compare with `docker compose config` (nothing to find or install).
    #[arg(long)]
    pub no_compose: bool,
    /// Stop `docker compose config` on a mesh after this long and show the ratio as a bound.
    #[arg(long, default_value = "20s", value_name = "DURATION")]
    pub compose_timeout: humantime::Duration,
    /// Measure one generated mesh in this process and print the result as JSON (used by the
    /// benchmark itself, for peak memory).
    #[arg(long, value_name = "DIR", hide = true)]
    pub measure_child: Option<std::path::PathBuf>,
}

const EXIT_CODES: &str = "Exit codes:
  0    every gate passed, or the mode does not block (warning, monitoring)
  1    a gate failed, or could not be computed, in strict mode
  2    the gates could not run (bad configuration or Compose file, Docker unreachable, build failed)
  130  interrupted by SIGINT, 143 by SIGTERM; everything the run started was removed";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct Gates {
    #[command(subcommand)]
    pub only: Option<GateCommand>,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunFlags {
    /// Run only what needs no Docker and no test run (what the pre-commit hook runs).
    #[arg(long = "static")]
    pub static_only: bool,
    /// Skip the static network checks and judge the running mesh only.
    #[arg(long, conflicts_with = "static_only")]
    pub runtime_only: bool,
    /// The enforcement mode, overriding meshgate.toml.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Same as `--mode strict`.
    #[arg(long, conflicts_with = "mode")]
    pub strict: bool,
    /// Leave the mesh running afterwards and print how to inspect it.
    #[arg(long)]
    pub keep_up: bool,
    /// Use this meshgate.toml; its paths, and `logs/`, are relative to its folder.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Also print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Infer a contract from the Compose file for every service that declares none.
    #[arg(long)]
    pub infer_contracts: bool,
}

impl RunFlags {
    /// Flags given before the gate's name and after it, together.
    pub fn merge(self, other: RunFlags) -> RunFlags {
        RunFlags {
            static_only: self.static_only || other.static_only,
            runtime_only: self.runtime_only || other.runtime_only,
            mode: self.mode.or(other.mode),
            strict: self.strict || other.strict,
            keep_up: self.keep_up || other.keep_up,
            config: self.config.or(other.config),
            json: self.json || other.json,
            infer_contracts: self.infer_contracts || other.infer_contracts,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Who may talk to whom, on which ports and networks.
    #[command(after_help = EXIT_CODES)]
    NetworkContracts(RunFlags),
    /// The mesh comes up and every container is healthy in time.
    #[command(after_help = EXIT_CODES)]
    ServiceHealth(RunFlags),
    /// Logs, Dockerfile, Compose and repository hygiene.
    #[command(after_help = EXIT_CODES)]
    ArtifactHygiene(RunFlags),
    /// Per-service coverage thresholds.
    #[command(after_help = EXIT_CODES)]
    Coverage(RunFlags),
    /// Remove whatever killed runs left on the Docker host.
    Clean,
}
