//! Shared helpers: paths, running the xtask binary, Docker presence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The product's cases, corpus and API description: `MESHGATE_SHARED`, else `../shared`
/// beside the repository (`.ci/run` sets the variable when the folder is elsewhere).
pub(crate) fn shared() -> PathBuf {
    let shared = std::env::var_os("MESHGATE_SHARED")
        .map_or_else(|| repo_root().parent().unwrap().join("shared"), PathBuf::from);
    assert!(
        shared.is_dir(),
        "{} is missing: the cases and corpus live there (set MESHGATE_SHARED to its folder)",
        shared.display()
    );
    shared
}

/// A fresh temporary folder for one test. A failing test's folder stays for a look; the
/// folders of test runs that have ended are removed when the next run makes its first one.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(remove_folders_of_ended_runs);
    let dir = std::env::temp_dir().join(format!("meshgate-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes `meshgate-it-*-<pid>` folders whose test process is no longer running.
fn remove_folders_of_ended_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("meshgate-it-") else { continue };
        let Some(pid) = rest.rsplit('-').next().and_then(|pid| pid.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies a folder and everything in it.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `cargo xtask <args>` as the built binary, with a scrubbed environment.
pub(crate) fn xtask(args: &[&str]) -> Output {
    xtask_with_env(args, &[])
}

/// `xtask` with extra environment variables.
pub(crate) fn xtask_with_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    #[allow(clippy::disallowed_methods, reason = "tests run the binary under test directly")]
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(repo_root())
        .env("CARGO_MANIFEST_DIR", repo_root().join("xtask"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TERM_COLOR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    output
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether Docker answers. In CI an unreachable Docker fails the test; elsewhere the test says
/// on stderr what it did not cover and returns.
pub(crate) fn docker_or_skip(test: &str) -> bool {
    #[allow(clippy::disallowed_methods, reason = "a presence check, not a gate step")]
    let reachable =
        Command::new("docker").arg("info").output().is_ok_and(|output| output.status.success());
    if reachable {
        return true;
    }
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: Docker is unreachable at {host} (tried `docker info`), and CI is set"
    );
    #[allow(clippy::print_stderr, reason = "a local run says what it did not cover")]
    {
        eprintln!("{test}: skipped, Docker is unreachable at {host}");
    }
    false
}

/// Docker resources of meshgate projects: containers, networks, volumes.
pub(crate) fn leftovers(project: &str) -> usize {
    let mut count = 0;
    for kind in [["ps", "-aq"], ["network", "ls -q"], ["volume", "ls -q"]] {
        let filter = format!("label=com.docker.compose.project={project}");
        let mut args: Vec<&str> = vec![kind[0]];
        args.extend(kind[1].split(' '));
        args.extend(["--filter", filter.as_str()]);
        #[allow(clippy::disallowed_methods, reason = "counting what the engine holds")]
        let output = Command::new("docker").args(&args).output().unwrap();
        count += String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
    }
    count
}

/// A copy of the reference mesh's configuration in a temporary folder, with the Compose file
/// changed by `edit`, so the run uses the real crates with another Compose file.
pub(crate) fn mesh_variant(name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let dir = temp_dir(name);
    let compose = std::fs::read_to_string(repo_root().join("compose.yaml")).unwrap();
    std::fs::write(dir.join("compose.yaml"), edit(compose)).unwrap();
    std::fs::copy(repo_root().join("meshgate.toml"), dir.join("meshgate.toml")).unwrap();
    dir
}

/// The fixture corpus of one gate: `tests/fixtures/<family>/`.
pub(crate) fn fixtures_of(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(family)
}

/// The names of a corpus's fixtures, sorted.
pub(crate) fn fixture_names(family: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_of(family))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fixture's `expect.toml`.
pub(crate) fn read_expect<T: serde::de::DeserializeOwned>(family: &str, name: &str) -> T {
    let file = fixtures_of(family).join(name).join("expect.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}
