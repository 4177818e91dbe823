//! meshgate: the quality gates of a Docker Compose mesh of Rust services, run as
//! `cargo xtask gates`. The binary is a thin shell over this library, which the integration
//! tests drive directly.
//!
//! Exit codes: 0 the gates pass (or pass per mode), 1 a gate failed, 2 the gates could not run.

pub mod annotations;
pub mod audit;
pub mod bench;
pub mod compose;
pub mod config;
pub mod contract;
pub mod discover;
pub mod docker;
pub mod exceptions;
pub mod finding;
pub mod flags;
pub mod gates;
pub mod github;
pub mod hooks;
pub mod images;
pub mod infer;
pub mod junit;
pub mod location;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod report;
pub mod sarif;
pub mod teardown;
pub mod term;
pub mod tools;
pub mod verdict;
pub mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::config::Mode;
use crate::flags::{Command, GateCommand};
use crate::gates::Gate;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    term::set_verbose(flags.verbose);
    let result = try_main(flags);
    // An interrupted run exits with 128 + the signal, once its teardown has finished.
    if let Some(code) = teardown::finish() {
        term::error("interrupted; everything the run started was removed");
        return ExitCode::from(code);
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            term::error(&format!("{error:#}"));
            if annotations::on_github_actions() {
                annotations::emit_error(&format!("{error:#}"));
            }
            ExitCode::from(2)
        }
    }
}

/// A path given on the command line, made absolute against the caller's folder.
fn absolute(path: PathBuf) -> PathBuf {
    std::env::current_dir().map_or_else(|_| path.clone(), |dir| dir.join(&path))
}

/// The benchmark's flags with its paths made absolute.
fn absolute_flags(flags: flags::BenchFlags) -> flags::BenchFlags {
    flags::BenchFlags {
        out: flags.out.map(absolute),
        measure_child: flags.measure_child.map(absolute),
        ..flags
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn project_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map_or(manifest_dir.clone(), std::path::Path::to_path_buf)
}

fn load_config(root: &std::path::Path, file: Option<PathBuf>) -> anyhow::Result<config::Config> {
    match file {
        Some(file) => config::load_file(&absolute(file)),
        None => config::load(root),
    }
}

/// `cargo xtask gates override`: checks the approval and records a grant for one commit.
fn record_override(
    sh: &xshell::Shell,
    root: &std::path::Path,
    flags: flags::OverrideFlags,
) -> anyhow::Result<u8> {
    let config = load_config(root, flags.config)?;
    let policy = &config.emergency;
    let rev = format!("{}^{{commit}}", flags.commit);
    let commit = xshell::cmd!(sh, "git rev-parse --verify --quiet {rev}")
        .quiet()
        .read()
        .with_context(|| format!("`{}` is not a commit of this repository", flags.commit))?;
    let author = audit::Author::of_commit(sh, &commit)?;
    let expiry = flags.expires.map_or(policy.default_expiry, Into::into);
    audit::check_approval(&author, &flags.approver, &flags.reason, expiry, policy.max_expiry)?;
    let now = std::time::SystemTime::now();
    let grant = audit::Grant {
        commit: commit.clone(),
        reason: flags.reason.trim().to_owned(),
        approver: flags.approver.trim().to_owned(),
        author: format!("{} <{}>", author.name, author.email),
        expires_at: audit::rfc3339(now + expiry),
        source: "local".into(),
        verified: false,
        granted_by: pipeline::operator(),
        at: audit::rfc3339(now),
    };
    let head = audit::append(&policy.audit_log, &audit::Event::Grant(grant.clone()))?;
    term::warn(&format!(
        "override of {commit} recorded, UNVERIFIED (a local entry: nothing checked who `{}` is)",
        grant.approver
    ));
    term::status(
        "Recorded",
        &format!("in {} until {} (head {head})", policy.audit_log.display(), grant.expires_at),
    );
    Ok(0)
}

fn try_main(flags: flags::Xtask) -> anyhow::Result<u8> {
    let sh = xshell::Shell::new()?;
    let root = project_root();
    sh.change_dir(&root);
    match flags.command {
        Command::Discover { config, infer_contracts } => {
            let config = match config {
                Some(file) => config::load_file(&absolute(file))?,
                None => config::load(&root)?,
            };
            let mut mesh = discover::discover(&root, config)?;
            if infer_contracts {
                infer::infer_contracts(&mut mesh);
                let toml = infer::render_toml(&mesh);
                if toml.trim().is_empty() {
                    term::note("every Compose service has a contract: there is nothing to infer");
                } else {
                    term::stdout(toml.trim_end());
                }
                return Ok(0);
            }
            let services: Vec<_> = mesh.contracts.values().collect();
            term::stdout(&serde_json::to_string_pretty(&services)?);
            Ok(0)
        }
        Command::Github { action: flags::GithubAction::Post { report_dir, config } } => {
            let config = load_config(&root, config)?;
            github::artifact::post(&absolute(report_dir), &config)
        }
        Command::Hooks { action } => {
            // The repository the command is run in, which need not be this xtask's.
            let cwd = std::env::current_dir().context("failed to read the current folder")?;
            match action {
                flags::HooksAction::Install { force } => hooks::install(&cwd, force),
                flags::HooksAction::Run => hooks::run(&cwd),
            }
        }
        Command::Bench(bench) => {
            if bench.target == flags::BenchTarget::Health {
                teardown::install_signal_handler()?;
            }
            bench::run(&sh, &root, &absolute_flags(bench))
        }
        Command::Gates(gates) => {
            let mut enforce_centralized_logs = None;
            let (gate_list, run) = match gates.only {
                Some(GateCommand::Clean) => {
                    let removed = pipeline::clean()?;
                    term::status(
                        "Finished",
                        &format!(
                            "removed {removed} resource(s) of runs that are no longer running"
                        ),
                    );
                    return Ok(0);
                }
                Some(GateCommand::Override(flags)) => return record_override(&sh, &root, flags),
                Some(GateCommand::Audit { action: flags::AuditAction::Verify { config, log } }) => {
                    let log = match log {
                        Some(log) => absolute(log),
                        None => load_config(&root, config)?.emergency.audit_log,
                    };
                    anyhow::ensure!(
                        log.is_file(),
                        "no audit log at {}: nothing was overridden with this configuration, or the path is wrong",
                        log.display()
                    );
                    return match audit::verify(&log) {
                        Ok(verified) => {
                            term::status(
                                "Verified",
                                &format!(
                                    "{}: {} entries, chain intact, head {}",
                                    log.display(),
                                    verified.events.len(),
                                    verified.head
                                ),
                            );
                            Ok(0)
                        }
                        Err(error) => {
                            term::error(&format!("{error:#}"));
                            Ok(1)
                        }
                    };
                }
                None => (Gate::ALL.to_vec(), gates.run),
                Some(GateCommand::NetworkContracts(run)) => {
                    (vec![Gate::NetworkContracts], run.merge(gates.run))
                }
                Some(GateCommand::ServiceHealth(run)) => {
                    (vec![Gate::ServiceHealth], run.merge(gates.run))
                }
                Some(GateCommand::ArtifactHygiene(flags)) => {
                    enforce_centralized_logs = flags.enforce_centralized_logs.then_some(true);
                    (vec![Gate::ArtifactHygiene], flags.run.merge(gates.run))
                }
                Some(GateCommand::Coverage(run)) => (vec![Gate::Coverage], run.merge(gates.run)),
            };
            let options = pipeline::Options {
                gates: gate_list,
                static_only: run.static_only,
                runtime_only: run.runtime_only,
                keep_up: run.keep_up,
                mode: if run.strict { Some(Mode::Strict) } else { run.mode },
                json: run.json,
                config: run.config.map(absolute),
                infer_contracts: run.infer_contracts,
                enforce_centralized_logs,
                logs: None,
            };
            teardown::install_signal_handler()?;
            let code = pipeline::run(&sh, &root, &options)?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
    }
}
