//! meshgate's integration tests, one binary.
//!
//! - `cases`: the failure modes of ../shared/cases, each loaded and checked.
//! - `enforcement`: modes, exceptions and the emergency override through the command line.
//! - `github`: the GitHub feedback loop against `fake_github`, a local server that follows
//!   GitHub's published REST description.
//! - `feedback`: annotations, job summary, SARIF and JUnit; the workflow linters; the hook.
//! - `coverage`: the coverage gate: the instrumented run, its tool install, its errors.
//! - `fixtures`: the network contracts gate on every mesh of `tests/fixtures/network/`.
//! - `hygiene_fixtures`: the artifact hygiene gate on every project of `tests/fixtures/hygiene/`.
//! - `hygiene`: hygiene cases, the external corpus, the public linters, the running mesh.
//! - `static_gates`: the static gates through the command line on fixture meshes.
//! - `mesh`: the real main job on the reference mesh and on broken copies (needs Docker).

mod cases;
mod coverage;
mod enforcement;
mod fake_github;
mod feedback;
mod fixtures;
mod github;
mod hygiene;
mod hygiene_fixtures;
mod mesh;
mod static_gates;
mod support;
