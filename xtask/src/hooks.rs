//! `cargo xtask hooks`: the git pre-commit hook. `install` writes the hook into the hooks
//! folder git uses (`core.hooksPath` respected); `run`, what the hook calls, runs the static
//! gates on the staged content: the index is exported into a temporary folder and judged
//! there, so the working tree is never touched and unstaged edits never count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::gates::Gate;
use crate::pipeline;
use crate::process::ProcessBuilder;
use crate::term;

/// The line that marks a hook as meshgate's: only such a hook is replaced without `--force`.
const MARKER: &str = "# meshgate pre-commit hook";

/// The hook: a built xtask named by `MESHGATE_XTASK` if set (no cargo freshness check),
/// else `cargo xtask`.
const HOOK: &str = r#"#!/bin/sh
# meshgate pre-commit hook, written by `cargo xtask hooks install`.
# Runs the static gates on what is staged. Skip once with `git commit --no-verify`.
# MESHGATE_XTASK: a built xtask binary to run instead of `cargo xtask` (faster, no build check).
# A hook that was here before (moved aside by `hooks install --force`) runs first.
local_hook="$(dirname "$0")/pre-commit.local"
if [ -x "$local_hook" ]; then
  "$local_hook" "$@" || exit $?
fi
if [ -n "${MESHGATE_XTASK:-}" ]; then
  exec "$MESHGATE_XTASK" hooks run
fi
exec cargo --quiet xtask hooks run
"#;

/// The repository `dir` is in: its top-level folder.
fn toplevel(dir: &Path) -> anyhow::Result<PathBuf> {
    let top = ProcessBuilder::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .dir(dir)
        .read()
        .with_context(|| format!("{} is not inside a git work tree", dir.display()))?;
    Ok(PathBuf::from(top.trim()))
}

/// The folder git runs hooks from: `core.hooksPath` if set, else `.git/hooks` (shared by
/// every worktree).
pub fn hooks_dir(top: &Path) -> anyhow::Result<PathBuf> {
    let path = ProcessBuilder::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"])
        .dir(top)
        .read()
        .context("failed to ask git where its hooks are")?;
    Ok(top.join(path.trim()))
}

/// Writes the pre-commit hook; refuses to replace somebody else's hook without `force`.
pub fn install(cwd: &Path, force: bool) -> anyhow::Result<u8> {
    let top = toplevel(cwd)?;
    let dir = hooks_dir(&top)?;
    let hook = dir.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&hook)
        && !existing.contains(MARKER)
    {
        if !force {
            anyhow::bail!(
                "{} exists and is not meshgate's hook: left unchanged; run \
                 `cargo xtask hooks install --force` to replace it (it is kept as \
                 pre-commit.local), or call `cargo xtask hooks run` from it",
                hook.display()
            );
        }
        let kept = dir.join("pre-commit.local");
        std::fs::rename(&hook, &kept)
            .with_context(|| format!("failed to move {} aside", hook.display()))?;
        term::warn(&format!(
            "the previous hook is kept as {} and runs before meshgate's",
            kept.display()
        ));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    crate::report::write_atomically(&hook, HOOK.as_bytes())?;
    make_executable(&hook)?;
    term::status("Installed", &format!("{} (the static gates on what is staged)", hook.display()));
    term::note("set MESHGATE_XTASK to a built xtask binary to skip cargo's build check");
    Ok(0)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The static gates on the staged content of the repository `cwd` is in; returns the exit
/// code (1 blocks the commit).
pub fn run(cwd: &Path) -> anyhow::Result<u8> {
    let clock = Instant::now();
    let top = toplevel(cwd)?;
    let staged = export_index(&top)?;
    let result = judge(&staged.0, &top.join("logs").join("pre-commit"));
    term::verbose(&format!("pre-commit verdict in {:.0?}", clock.elapsed()));
    result
}

/// The index exported into a temporary folder, removed on drop.
pub struct Staged(pub PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes every staged file into a fresh temporary folder. During `git commit`, git points
/// `GIT_INDEX_FILE` at the index being committed, which `checkout-index` reads.
pub fn export_index(top: &Path) -> anyhow::Result<Staged> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir =
        std::env::temp_dir().join(format!("meshgate-staged-{}-{nanos:x}", std::process::id()));
    let staged = Staged(dir.clone());
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let prefix = format!("{}/", dir.display());
    ProcessBuilder::new("git")
        .args(["checkout-index", "--all", "--force"])
        .arg(format!("--prefix={prefix}"))
        .dir(top)
        .read()
        .context("failed to export the staged files")?;
    // The export becomes a repository of its own whose index holds exactly the staged files,
    // so the hygiene gate judges what the commit would track, not the user's working tree.
    // Git's variables from the running commit must not point these at the user's repository.
    // `--force`: a file staged with `git add -f` despite `.gitignore` is staged all the same.
    for args in [&["init", "--quiet"][..], &["add", "--all", "--force"][..]] {
        ProcessBuilder::new("git")
            .args(args)
            .dir(&dir)
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE")
            .read()
            .context("failed to index the staged files")?;
    }
    Ok(staged)
}

/// The static gates on an exported tree, as `cargo xtask gates --static` there, with the
/// report and logs written to `logs`, which outlives the export.
fn judge(tree: &Path, logs: &Path) -> anyhow::Result<u8> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(tree);
    // Git run from here works on the export's own repository, never on the hook's GIT_DIR
    // and index (`git status` would refresh the user's index against the export).
    sh.set_var("GIT_DIR", tree.join(".git"));
    sh.set_var("GIT_INDEX_FILE", tree.join(".git/index"));
    let options = pipeline::Options {
        gates: Gate::ALL.to_vec(),
        static_only: true,
        runtime_only: false,
        keep_up: false,
        mode: None,
        json: false,
        config: None,
        infer_contracts: false,
        enforce_centralized_logs: None,
        logs: Some(logs.to_path_buf()),
    };
    let code = pipeline::run(&sh, tree, &options)?;
    if code != 0 {
        term::error(
            "the commit is blocked by the findings above (skip once: `git commit --no-verify`)",
        );
    }
    Ok(u8::try_from(code).unwrap_or(1))
}

/// `cargo xtask bench hook`: the hook's warm time to verdict on the repository's staged
/// content: `xtask hooks run` as the hook starts it (this binary, as with `MESHGATE_XTASK`),
/// timed `runs` times after one warm-up run; prints the median. Target: under 1 s.
pub fn bench(root: &Path, runs: u32) -> anyhow::Result<u8> {
    const TARGET: std::time::Duration = std::time::Duration::from_secs(1);
    let top = toplevel(root)?;
    let exe = std::env::current_exe().context("failed to find the running xtask binary")?;
    let hook = ProcessBuilder::new(exe).args(["hooks", "run"]).dir(&top).env("NO_COLOR", "1");
    let mut times = Vec::new();
    // Run 0 warms the file system cache and cargo's metadata; it is not counted.
    for run in 0..=runs {
        let clock = Instant::now();
        let output = hook.output()?;
        let elapsed = clock.elapsed();
        let verdict = match output.status.code() {
            Some(0) => "passes",
            Some(1) => "blocks",
            _ => return Err(hook.failure(&output)),
        };
        if run > 0 {
            times.push(elapsed);
            term::status("Measured", &format!("run {run}/{runs}: {elapsed:.0?} ({verdict})"));
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    term::status(
        "Median",
        &format!(
            "{median:.0?} from staged content to verdict over {runs} run(s); target under \
             {TARGET:?} (xtask built in {profile} mode)"
        ),
    );
    Ok(if median < TARGET { 0 } else { 1 })
}
