//! `cargo xtask bench coverage`: what the coverage gate costs next to a bare
//! `cargo llvm-cov --workspace --json` of the same packages on the same tree.
//!
//! After one untimed bare run (so both start from a built dependency tree), the two are
//! timed alternately, each pair in the other order than the one before:
//! - the gate: meshgate.toml and discovery, the tool and LLVM checks, the instrumented run,
//!   the export read, attributed and judged, the table rendered (logs go to a scratch folder,
//!   so the repository's history is untouched);
//! - bare: `cargo llvm-cov --workspace --exclude <the same> --locked --json --summary-only`.
//!
//! The median of the per-pair ratios is printed; the target is at most 1.05.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::gates::coverage::{self, toolchain};
use crate::term;

/// The most the gate may cost, as a multiple of the bare run.
const TARGET_RATIO: f64 = 1.05;

/// Runs `runs` pairs; returns the exit code (1 when the target is missed).
pub fn run(root: &Path, runs: u32) -> anyhow::Result<u8> {
    let config = crate::config::load(root)?;
    let mesh = crate::discover::discover(root, config)?;
    let tool = toolchain::ensure_cargo_llvm_cov(root)?;
    let scratch =
        std::env::temp_dir().join(format!("meshgate-bench-coverage-{}", std::process::id()));
    let result = measure(root, &mesh, &tool.program, &scratch, runs);
    let _ = std::fs::remove_dir_all(&scratch);
    let (mut ours, mut theirs) = result?;

    Ok(super::report_pairs(
        "coverage gate / bare cargo llvm-cov",
        &mut ours,
        &mut theirs,
        TARGET_RATIO,
    ))
}

fn measure(
    root: &Path,
    mesh: &crate::discover::Mesh,
    program: &Path,
    scratch: &Path,
    runs: u32,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    std::fs::create_dir_all(scratch)?;
    let bare = coverage::bare_command(program, mesh, &scratch.join("bare.json"))?;
    term::status("Warming", &format!("up with `{bare}`"));
    time_bare(&bare)?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 1..=runs {
        crate::teardown::ensure_not_interrupted()?;
        // Alternate which goes first, so neither always meets a warmer cache.
        let first_ours = run % 2 == 1;
        for ours_now in [first_ours, !first_ours] {
            if ours_now {
                ours.push(time_gate(root, scratch)?);
            } else {
                theirs.push(time_bare(&bare)?);
            }
        }
        term::status(
            "Measured",
            &format!(
                "pair {run}/{runs}: coverage gate {}, bare cargo llvm-cov {}",
                super::seconds(ours[ours.len() - 1]),
                super::seconds(theirs[theirs.len() - 1])
            ),
        );
    }
    Ok((ours, theirs))
}

/// One gate run as `cargo xtask gates coverage` does it, from reading meshgate.toml.
fn time_gate(root: &Path, scratch: &Path) -> anyhow::Result<Duration> {
    let clock = Instant::now();
    let config = crate::config::load(root)?;
    let mesh = crate::discover::discover(root, config)?;
    let report = coverage::run(root, &scratch.join("logs"), &mesh)?;
    let summary = report.coverage.as_ref().ok_or_else(|| {
        anyhow::anyhow!("the coverage gate measured nothing, so the timing means nothing")
    })?;
    let table = coverage::render_table(summary);
    let elapsed = clock.elapsed();
    term::verbose(&table);
    Ok(elapsed)
}

fn time_bare(command: &crate::process::ProcessBuilder) -> anyhow::Result<Duration> {
    let clock = Instant::now();
    command.read()?;
    Ok(clock.elapsed())
}
