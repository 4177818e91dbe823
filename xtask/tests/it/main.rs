//! meshgate's integration tests, one binary.
//!
//! - `cases`: the failure modes of ../shared/cases, each loaded and checked.
//! - `coverage`: the coverage gate: the instrumented run, its tool install, its errors.
//! - `fixtures`: the network contracts gate on every mesh of `tests/fixtures/network/`.
//! - `static_gates`: the static gates through the command line on fixture meshes.
//! - `mesh`: the real main job on the reference mesh and on broken copies (needs Docker).

mod cases;
mod coverage;
mod fixtures;
mod mesh;
mod static_gates;
mod support;
