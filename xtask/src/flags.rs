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
    /// Talk to GitHub outside a gates run.
    Github {
        #[command(subcommand)]
        action: GithubAction,
    },
    /// Time a gate next to the tool it builds on (network: `docker compose config`, health:
    /// `compose up --wait`, coverage: a bare `cargo llvm-cov`).
    #[command(after_help = BENCH_EXIT_CODES)]
    Bench(BenchFlags),
    /// The git pre-commit hook: the static gates on what is staged.
    Hooks {
        #[command(subcommand)]
        action: HooksAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Write `pre-commit` into git's hooks folder (`core.hooksPath` if set).
    Install {
        /// Replace a pre-commit hook that is not meshgate's (kept as `pre-commit.local`).
        #[arg(long)]
        force: bool,
    },
    /// What the hook runs: `gates --static` on the staged content, not the working tree.
    Run,
}

#[derive(Debug, Subcommand)]
pub enum GithubAction {
    /// Post the statuses and PR comment of a run from its artifact folder (the `workflow_run`
    /// half of a fork PR's checks); the folder is read as data.
    Post {
        /// The folder holding the run's `report.json`.
        #[arg(long, value_name = "DIR")]
        report_dir: std::path::PathBuf,
        /// Use this meshgate.toml; its paths are relative to its folder.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
}

/// What `cargo xtask bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTarget {
    Network,
    Health,
    /// The pre-commit hook's time to verdict (median of `--runs`).
    Hook,
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
    /// repository's mesh against `docker compose up --wait` and `down`, the coverage gate
    /// against a bare `cargo llvm-cov --workspace --json`, or the pre-commit hook.
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
  0    nothing blocks: every gate passed, the mode does not block, or an override covers the commit
  1    a gate blocks: failing findings, or a gate not computed (Docker unreachable), in strict mode
  2    the gates could not run (bad configuration, Compose or exception file, build failed)
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

/// The artifact hygiene gate's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct HygieneFlags {
    #[command(flatten)]
    pub run: RunFlags,
    /// Judge the running containers' output (one JSON object per line) and filesystem (no
    /// log files), whatever `gates.artifact_hygiene.enforce_centralized_logs` says.
    #[arg(long)]
    pub enforce_centralized_logs: bool,
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
    ArtifactHygiene(HygieneFlags),
    /// Per-service coverage thresholds.
    #[command(after_help = EXIT_CODES)]
    Coverage(RunFlags),
    /// Remove whatever killed runs left on the Docker host.
    Clean,
    /// Record an emergency override of one commit's blocking verdict (unverified, local).
    Override(OverrideFlags),
    /// Check the override audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Debug, Args)]
pub struct OverrideFlags {
    /// Why the commit must land despite its findings.
    #[arg(long)]
    pub reason: String,
    /// Who approves: a maintainer who is not the commit's author (name or email).
    #[arg(long)]
    pub approver: String,
    /// The commit to override (default: HEAD).
    #[arg(long, default_value = "HEAD")]
    pub commit: String,
    /// How long the override lasts (default: `override.default_expiry`).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<humantime::Duration>,
    /// Use this meshgate.toml; its paths are relative to its folder.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain; exit 1 at the first edited, removed or reordered entry.
    Verify {
        /// Use this meshgate.toml; its paths are relative to its folder.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Check this log instead of the configured one.
        #[arg(long, value_name = "FILE")]
        log: Option<std::path::PathBuf>,
    },
}
