//! The tools the coverage gate needs, found or installed without manual steps:
//!
//! - cargo-llvm-cov, pinned, installed by `cargo install --locked` into the project-local
//!   tool directory (`.meshgate/tools/cargo-llvm-cov-<version>`) when missing. Its build
//!   folder is kept beside it, so reinstalling after the binary is removed only relinks.
//! - llvm-cov and llvm-profdata of the same LLVM major version as rustc's: `LLVM_COV` and
//!   `LLVM_PROFDATA` when both are set, else rustup's `llvm-tools` component of the
//!   toolchain in use (added with `rustup component add llvm-tools` when missing).
//!
//! Anything that cannot be had is an error saying which tool is missing and what to do.
//!
//! Runs of the gate and installs share a lock file in the tool directory: a run holds it
//! shared from the moment it has found the tool until it is done, an install holds it
//! exclusively, so a tool is never replaced or removed under a run.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::process::ProcessBuilder;
use crate::term;

/// The cargo-llvm-cov release the gate is written against (its JSON export and flags).
pub const CARGO_LLVM_COV_VERSION: &str = "0.9.1";

/// Where the pinned cargo-llvm-cov is installed (`<dir>/bin/cargo-llvm-cov`).
pub fn install_root(root: &Path) -> PathBuf {
    crate::tools::tools_dir(root).join(format!("cargo-llvm-cov-{CARGO_LLVM_COV_VERSION}"))
}

/// The lock shared by runs of the gate and taken exclusively by installs.
pub fn lock_path(root: &Path) -> PathBuf {
    crate::tools::tools_dir(root).join("cargo-llvm-cov.lock")
}

/// The cargo-llvm-cov to run, with the shared lock that keeps it in place while held.
pub struct CargoLlvmCov {
    pub program: PathBuf,
    pub version: String,
    _lock: File,
}

/// Finds the pinned cargo-llvm-cov in the tool directory, installing it when missing.
pub fn ensure_cargo_llvm_cov(root: &Path) -> anyhow::Result<CargoLlvmCov> {
    let dir = crate::tools::tools_dir(root);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let lock_path = lock_path(root);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("failed to open {}", lock_path.display()))?;
    let program = install_root(root).join("bin").join("cargo-llvm-cov");
    let mut installed = false;
    loop {
        lock.lock_shared().with_context(|| format!("failed to lock {}", lock_path.display()))?;
        if let Some(version) = installed_version(&program) {
            return Ok(CargoLlvmCov { program, version, _lock: lock });
        }
        anyhow::ensure!(
            !installed,
            "{} does not report version {CARGO_LLVM_COV_VERSION} after its install; remove {} \
             and rerun",
            program.display(),
            install_root(root).display()
        );
        lock.unlock().with_context(|| format!("failed to unlock {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("failed to lock {}", lock_path.display()))?;
        // Another run may have installed it while this one waited for the lock.
        if installed_version(&program).is_none() {
            install(root)?;
        }
        installed = true;
        lock.unlock().with_context(|| format!("failed to unlock {}", lock_path.display()))?;
    }
}

/// The version of the binary at `program` when it is the pinned one.
fn installed_version(program: &Path) -> Option<String> {
    if !program.is_file() {
        return None;
    }
    // Called as cargo calls it: `--version` alone is refused when `CARGO` is set.
    let output = ProcessBuilder::new(program).args(["llvm-cov", "--version"]).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().strip_prefix("cargo-llvm-cov ")?;
    (output.status.success() && version == CARGO_LLVM_COV_VERSION).then(|| version.to_owned())
}

fn install(root: &Path) -> anyhow::Result<()> {
    let install_root = install_root(root);
    let build_dir = crate::tools::tools_dir(root).join("cargo-llvm-cov-build");
    term::status(
        "Installing",
        &format!(
            "cargo-llvm-cov v{CARGO_LLVM_COV_VERSION} into {} (a few minutes the first time)",
            install_root.display()
        ),
    );
    let progress = term::Progress::start("installing cargo-llvm-cov");
    let mut command = ProcessBuilder::cargo()
        .args(["install", "cargo-llvm-cov", "--locked", "--force", "--version"])
        .arg(CARGO_LLVM_COV_VERSION)
        .arg("--root")
        .arg(&install_root)
        .arg("--target-dir")
        .arg(&build_dir)
        .dir(root);
    for variable in super::instrumentation_env() {
        command = command.env_remove(variable);
    }
    let result = command.read();
    drop(progress);
    result.with_context(|| {
        format!(
            "failed to install cargo-llvm-cov v{CARGO_LLVM_COV_VERSION}; make crates.io reachable \
             and rerun, or install it yourself with `cargo install cargo-llvm-cov --locked \
             --version {CARGO_LLVM_COV_VERSION} --root {}`",
            install_root.display()
        )
    })?;
    Ok(())
}

/// The LLVM tools cargo-llvm-cov will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlvmTools {
    /// Where they come from, for the report.
    pub source: String,
    /// Their LLVM version, e.g. `22.1.2`.
    pub version: String,
    /// rustc's LLVM version.
    pub rustc_llvm: String,
}

/// Checks that llvm-cov and llvm-profdata of rustc's LLVM major version can be had, adding
/// rustup's component when needed. Run in `workspace` so its toolchain file applies.
pub fn ensure_llvm_tools(workspace: &Path) -> anyhow::Result<LlvmTools> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let verbose = ProcessBuilder::new(&rustc).arg("-vV").dir(workspace).read()?;
    let rustc_llvm = field(&verbose, "LLVM version: ")
        .context("`rustc -vV` names no LLVM version, so llvm-cov cannot be matched to it")?;

    let from_env = (std::env::var_os("LLVM_COV"), std::env::var_os("LLVM_PROFDATA"));
    if let (Some(cov), Some(profdata)) = from_env {
        let cov = tool_version(Path::new(&cov), "LLVM_COV")?;
        let profdata = tool_version(Path::new(&profdata), "LLVM_PROFDATA")?;
        for (variable, version) in [("LLVM_COV", &cov), ("LLVM_PROFDATA", &profdata)] {
            check_same_major(variable, version, &rustc_llvm)?;
        }
        return Ok(LlvmTools {
            source: "LLVM_COV and LLVM_PROFDATA".into(),
            version: cov,
            rustc_llvm,
        });
    }

    let libdir =
        ProcessBuilder::new(&rustc).args(["--print", "target-libdir"]).dir(workspace).read()?;
    let bin = Path::new(libdir.trim()).parent().unwrap_or(Path::new("/")).join("bin");
    let component = [bin.join("llvm-cov"), bin.join("llvm-profdata")];
    if !component.iter().all(|tool| tool.is_file()) {
        term::status("Installing", "the rustup component llvm-tools");
        let added = ProcessBuilder::new("rustup")
            .args(["component", "add", "llvm-tools"])
            .dir(workspace)
            .read();
        if let Err(error) = added {
            term::verbose(&format!("{error:#}"));
        }
    }
    if let Some(missing) = component.iter().find(|tool| !tool.is_file()) {
        anyhow::bail!(
            "{} is missing: the coverage gate needs llvm-cov and llvm-profdata of LLVM \
             {rustc_llvm} (rustc's); run `rustup component add llvm-tools` for the toolchain \
             in use, or set both LLVM_COV and LLVM_PROFDATA to tools of LLVM {}",
            missing.display(),
            major(&rustc_llvm)
        );
    }
    let version = tool_version(&component[0], "the llvm-tools component")?;
    check_same_major("the llvm-tools component", &version, &rustc_llvm)?;
    Ok(LlvmTools { source: "rustup component llvm-tools".into(), version, rustc_llvm })
}

fn field(text: &str, prefix: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix(prefix)).map(|value| value.trim().to_owned())
}

/// The LLVM version a tool reports (`LLVM version 22.1.2-rust-1.95.0-stable`).
fn tool_version(program: &Path, what: &str) -> anyhow::Result<String> {
    let output = ProcessBuilder::new(program).arg("--version").read().with_context(|| {
        format!("{what} ({}) does not run; point it at llvm-cov/llvm-profdata", program.display())
    })?;
    parse_tool_version(&output).with_context(|| {
        format!("{what} ({}) printed no LLVM version: {output:?}", program.display())
    })
}

fn parse_tool_version(output: &str) -> Option<String> {
    let rest =
        output.lines().find_map(|line| line.split_once("LLVM version ").map(|(_, rest)| rest))?;
    let version = rest.split(['-', ' ']).next()?.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

fn check_same_major(what: &str, version: &str, rustc_llvm: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        major(version) == major(rustc_llvm),
        "{what} is LLVM {version} but rustc uses LLVM {rustc_llvm}: profiles of one LLVM \
         major version cannot be read by another; use tools of LLVM {} (`rustup component add \
         llvm-tools`, or LLVM_COV and LLVM_PROFDATA of that version)",
        major(rustc_llvm)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions_are_read_from_their_banner() {
        let banner = "LLVM (http://llvm.org/):\n  LLVM version 22.1.2-rust-1.95.0-stable\n  Optimized build.";
        assert_eq!(parse_tool_version(banner).as_deref(), Some("22.1.2"));
        let debian = "Debian LLVM version 14.0.6\n\n  Optimized build.";
        assert_eq!(parse_tool_version(debian).as_deref(), Some("14.0.6"));
        assert_eq!(parse_tool_version("llvm-cov: unknown option"), None);
    }

    #[test]
    fn another_llvm_major_version_is_refused_with_the_fix() {
        check_same_major("LLVM_COV", "22.1.0", "22.1.2").unwrap();
        let error = check_same_major("LLVM_COV", "14.0.6", "22.1.2").unwrap_err().to_string();
        assert!(error.contains("LLVM_COV is LLVM 14.0.6"), "{error}");
        assert!(error.contains("rustc uses LLVM 22.1.2"), "{error}");
        assert!(error.contains("rustup component add llvm-tools"), "{error}");
    }

    #[test]
    fn the_install_goes_into_the_project_tool_directory() {
        let root = Path::new("/repo");
        assert_eq!(
            install_root(root),
            Path::new("/repo/.meshgate/tools/cargo-llvm-cov-0.9.1"),
            "the README names this folder"
        );
    }
}
