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
    Discover,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct Gates {
    #[command(subcommand)]
    pub only: Option<GateCommand>,
    #[command(flatten)]
    pub run: RunFlags,
}

#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// Run only what needs no Docker and no test run (what the pre-commit hook runs).
    #[arg(long = "static", global = true)]
    pub static_only: bool,
    /// The enforcement mode, overriding meshgate.toml.
    #[arg(long, value_enum, global = true)]
    pub mode: Option<Mode>,
    /// Same as `--mode strict`.
    #[arg(long, global = true, conflicts_with = "mode")]
    pub strict: bool,
    /// Leave the mesh running afterwards and print how to inspect it.
    #[arg(long, global = true)]
    pub keep_up: bool,
    /// Use this meshgate.toml; its paths, and `logs/`, are relative to its folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Also print the report as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Who may talk to whom, on which ports and networks.
    NetworkContracts,
    /// The mesh comes up and every container is healthy in time.
    ServiceHealth,
    /// Logs, Dockerfile, Compose and repository hygiene.
    ArtifactHygiene,
    /// Per-service coverage thresholds.
    Coverage,
    /// Remove whatever killed runs left on the Docker host.
    Clean,
}
