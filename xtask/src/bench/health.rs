//! `cargo xtask bench health`: what the health gate costs next to Compose's own waiting.
//!
//! On the repository's mesh, with its images built once beforehand, two ways of bringing the
//! mesh up healthy and removing it are timed alternately, each under a project of its own:
//! - the health gate: `compose up --detach`, waiting on engine events and container state,
//!   the readiness endpoints, timed stops, then teardown (`down --volumes` and the label sweep);
//! - Compose alone: `compose up --detach --wait`, then `down --volumes`.
//!
//! The median of the per-pair ratios is printed; the target is at most 1.10.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::discover::Mesh;
use crate::pipeline;
use crate::teardown::{self, Teardown, TeardownGuard};
use crate::term;
use crate::tools::{self, Compose};

/// The most the health gate may cost, as a multiple of Compose's own up, wait and down.
const TARGET_RATIO: f64 = 1.10;

/// Runs `runs` pairs; returns the exit code (1 when the target is missed).
pub fn run(sh: &xshell::Shell, root: &Path, runs: u32) -> anyhow::Result<u8> {
    let config = crate::config::load(root)?;
    let mesh = crate::discover::discover(root, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let docker = runtime.block_on(crate::docker::connect())?;
    let compose = tools::ensure_compose(root)?;
    term::status("Compiling", "service binaries (static, release)");
    let binaries = crate::images::build_binaries(&mesh)?;
    let revision = pipeline::revision(sh);
    let images =
        runtime.block_on(crate::images::build_images(&docker, &mesh, &binaries, &revision))?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 1..=runs {
        teardown::ensure_not_interrupted()?;
        // Alternate which goes first, so neither always meets a warmer engine.
        let first_ours = run % 2 == 1;
        for ours_now in [first_ours, !first_ours] {
            if ours_now {
                ours.push(time_gate(&runtime, &docker, &compose, &mesh, &images)?);
            } else {
                theirs.push(time_compose(&compose, &mesh, &images)?);
            }
        }
        term::status(
            "Measured",
            &format!(
                "pair {run}/{runs}: health gate {}, compose up --wait + down {}",
                super::seconds(ours[ours.len() - 1]),
                super::seconds(theirs[theirs.len() - 1])
            ),
        );
    }
    Ok(super::report_pairs(
        "health gate / compose up --wait + down",
        &mut ours,
        &mut theirs,
        TARGET_RATIO,
    ))
}

/// One health gate cycle: start, wait, readiness, teardown.
fn time_gate(
    runtime: &tokio::runtime::Runtime,
    docker: &bollard::Docker,
    compose: &Compose,
    mesh: &Mesh,
    images: &crate::images::Images,
) -> anyhow::Result<Duration> {
    let project = pipeline::project_name();
    let clock = Instant::now();
    let guard = TeardownGuard;
    let started = pipeline::start_and_wait(runtime, docker, compose, mesh, &project, images)?;
    // As in a gate run: each container is stopped on its own signal and timed, then removed.
    runtime.block_on(crate::gates::service_health::stop_containers(docker, mesh, &project))?;
    drop(guard);
    let elapsed = clock.elapsed();
    if let Some(finding) = started.outcome.findings.first() {
        anyhow::bail!(
            "the mesh is not healthy, so the timing means nothing: [{}] {}",
            finding.rule.id(),
            finding.message
        );
    }
    Ok(elapsed)
}

/// One Compose cycle: `up --detach --wait`, then `down --volumes`.
fn time_compose(
    compose: &Compose,
    mesh: &Mesh,
    images: &crate::images::Images,
) -> anyhow::Result<Duration> {
    let project = pipeline::project_name();
    let files = pipeline::run_files(mesh, images);
    let up = pipeline::compose_up(compose, mesh, &files, &project, &["--wait"]);
    let down = compose.command(&project, &files).args([
        "down",
        "--volumes",
        "--remove-orphans",
        "--timeout",
        "10",
    ]);
    // Registered like a gate run, so an interruption or error removes it all the same.
    let guard = TeardownGuard;
    let registration = Teardown { compose: compose.clone(), project, files: files.clone() };
    let clock = Instant::now();
    teardown::register_and_start(registration, || up.spawn())?;
    let finished = loop {
        if let Some(result) = teardown::poll_up(|output| up.failure(output)) {
            break result;
        }
        teardown::ensure_not_interrupted()?;
        std::thread::sleep(Duration::from_millis(5));
    };
    finished.context("`compose up --wait` failed on the mesh")?;
    down.read()?;
    let elapsed = clock.elapsed();
    // Removed by `down` already: nothing is left for the guard to do.
    teardown::keep_up();
    drop(guard);
    Ok(elapsed)
}
