//! The repository's half of the gate: what git tracks and what is staged (from `git ls-files`
//! and `git diff --cached`), whatever `.gitignore` claims. Build outputs, logs and secrets
//! must not be tracked, and `logs/` must be ignored.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::secrets;
use crate::config::HygienePolicy;
use crate::finding::{Finding, Rule};
use crate::location::Location;
use crate::process::ProcessBuilder;

/// Coverage profiles and reports, by file name.
const COVERAGE_OUTPUTS: &[&str] = &[
    "**/*.profraw",
    "**/*.profdata",
    "**/lcov.info",
    "**/*.lcov",
    "**/cobertura.xml",
    "**/tarpaulin-report.*",
    "**/*.gcda",
    "**/*.gcno",
];

/// What Cargo writes directly inside a target folder: a profile, a triple or its own files.
const TARGET_CHILDREN: &[&str] = &[
    "debug",
    "release",
    "doc",
    "tmp",
    "package",
    "build",
    "deps",
    "incremental",
    ".fingerprint",
    "llvm-cov-target",
    "nextest",
    "criterion",
    "CACHEDIR.TAG",
    ".rustc_info.json",
];

/// The tracked files of the repository holding `dir`, relative to `dir`; `None` when `dir`
/// is in no git repository.
pub(crate) fn tracked_files(dir: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let inside = ProcessBuilder::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .dir(dir)
        .output()
        .context("failed to run git")?;
    if !inside.status.success() {
        return Ok(None);
    }
    let listed = ProcessBuilder::new("git").args(["ls-files", "-z"]).dir(dir).read()?;
    Ok(Some(listed.split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect()))
}

/// The files staged for the next commit, relative to `dir`.
pub(crate) fn staged_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let listed = ProcessBuilder::new("git")
        .args(["diff", "--cached", "--name-only", "-z", "--relative", "--diff-filter=ACMR"])
        .dir(dir)
        .read()?;
    Ok(listed.split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
}

/// Every repository finding for the files tracked under `dir`.
pub(crate) fn check(
    dir: &Path,
    files: &[PathBuf],
    staged: &[PathBuf],
    policy: &HygienePolicy,
) -> anyhow::Result<Vec<Finding>> {
    let coverage = globs(COVERAGE_OUTPUTS)?;
    let env_files = globs(&["**/.env", "**/.env.*", "**/*.env"])?;
    let mut findings = Vec::new();
    for relative in files {
        let path = dir.join(relative);
        let state = if staged.contains(relative) { " (staged)" } else { "" };
        let shown = relative.display();
        if relative.extension().is_some_and(|ext| ext == "log") {
            findings.push(Finding::new(
                Rule::TrackedLog,
                Location::file(&path),
                format!("log file `{shown}` is tracked{state}"),
                format!("`git rm --cached {shown}` and keep logs out of the repository: ignore `*.log` or the folder it is in"),
            ));
        } else if let Some(folder) = target_folder(relative) {
            findings.push(Finding::new(
                Rule::TrackedBuildOutput,
                Location::file(&path),
                format!("`{shown}` is Cargo build output (folder `{folder}`) and is tracked{state}"),
                format!("`git rm -r --cached {folder}` and ignore it with `target*/` or `**/target/` (an anchored `/target` misses nested and renamed target folders)"),
            ).key(folder));
        } else if coverage.is_match(relative) {
            findings.push(Finding::new(
                Rule::TrackedBuildOutput,
                Location::file(&path),
                format!("coverage output `{shown}` is tracked{state}"),
                format!("`git rm --cached {shown}` and ignore coverage outputs (`*.profraw`, `*.profdata`, `lcov.info`)"),
            ));
        }
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if !metadata.is_file() {
            continue;
        }
        let head = read_head(&path)?;
        if head.contains(&0) {
            if metadata.len() > policy.max_tracked_binary {
                findings.push(Finding::new(
                    Rule::TrackedBuildOutput,
                    Location::file(&path),
                    format!("binary file `{shown}` of {} is tracked{state}, above the budget of {}", super::human_bytes(metadata.len()), super::human_bytes(policy.max_tracked_binary)),
                    "build it instead of tracking it, or store it with Git LFS; raise `gates.artifact_hygiene.max_tracked_binary` if it belongs in the repository",
                ).key(format!("{shown}")));
            }
            continue;
        }
        // Text beyond this size is data, not configuration or source a secret hides in.
        if metadata.len() > MAX_SCANNED_TEXT {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        scan_secrets(&path, &text, &mut findings);
        if env_files.is_match(relative) {
            check_env_file(&path, &text, &mut findings);
        }
    }
    check_logs_ignored(dir, &mut findings)?;
    Ok(findings)
}

/// The largest text file scanned for secrets.
const MAX_SCANNED_TEXT: u64 = 8 << 20;

/// The first 8 KiB of a file, where a NUL byte tells a binary file, as git decides.
fn read_head(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path)
        .and_then(|file| file.take(8192).read_to_end(&mut head))
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(head)
}

fn globs(patterns: &[&str]) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern).with_context(|| format!("invalid glob {pattern}"))?);
    }
    builder.build().context("failed to build the glob set")
}

/// The Cargo target folder a path lies in: a component named `target` or `target-*` whose
/// next component is one Cargo writes there (a profile, a target triple or its own files).
fn target_folder(path: &Path) -> Option<String> {
    let parts: Vec<&str> = path.iter().filter_map(|part| part.to_str()).collect();
    for (index, part) in parts.iter().enumerate() {
        let is_target = *part == "target" || part.starts_with("target-");
        let Some(next) = parts.get(index + 1) else { break };
        if is_target && (TARGET_CHILDREN.contains(next) || is_triple(next)) {
            return Some(parts[..=index].join("/"));
        }
    }
    None
}

/// `x86_64-unknown-linux-gnu`, `aarch64-apple-darwin`, `wasm32-unknown-unknown`.
fn is_triple(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && [
            "x86_64",
            "i686",
            "aarch64",
            "arm",
            "armv7",
            "wasm32",
            "riscv64gc",
            "powerpc64le",
            "s390x",
        ]
        .iter()
        .any(|arch| parts[0] == *arch || parts[0].starts_with("armv"))
}

fn scan_secrets(path: &Path, text: &str, findings: &mut Vec<Finding>) {
    for (index, line) in text.lines().enumerate() {
        let line_number = index as u32 + 1;
        if let Some(column) = secrets::private_key_at(line) {
            findings.push(Finding::new(
                Rule::SecretInFile,
                Location { file: path.to_path_buf(), line: line_number, column: column as u32 + 1 },
                "a private key is tracked",
                "remove the key from the repository and its history, revoke it, and load it at run time (a Compose secret or a mounted file); list a test key in the allow-list with its reason",
            ).key("private key"));
        }
        for token in secrets::tokens(line) {
            findings.push(Finding::new(
                Rule::SecretInFile,
                Location { file: path.to_path_buf(), line: line_number, column: token.column as u32 + 1 },
                format!("a {} is tracked", token.kind),
                "revoke the token, remove it from the repository and its history, and read it from the environment at run time",
            ).key(token.kind));
        }
    }
}

/// A tracked env file that gives secret-like keys non-empty values, read as Compose reads it.
fn check_env_file(path: &Path, text: &str, findings: &mut Vec<Finding>) {
    let Ok(assignments) = crate::compose::dotenv::parse(text, &|_| None) else {
        return;
    };
    let secret: Vec<_> = assignments
        .iter()
        .filter(|assignment| {
            secrets::is_secret_key(&assignment.key)
                && !assignment.value.is_empty()
                && !secrets::is_switch(&assignment.value)
        })
        .collect();
    let Some(first) = secret.first() else { return };
    let keys: Vec<&str> = secret.iter().map(|a| a.key.as_str()).collect();
    let placeholders = secret.iter().any(|a| secrets::looks_like_placeholder(&a.value));
    let note = if placeholders {
        "; a placeholder such as `change_me` satisfies a `${VAR:?}` guard, so it would ship"
    } else {
        ""
    };
    findings.push(Finding::new(
        Rule::SecretInEnvFile,
        Location::line(path, first.line),
        format!("tracked env file assigns non-empty values to secret-like keys ({}){note}", keys.join(", ")),
        "leave secret values empty in tracked env files (`KEY=`) and supply them from the environment or an untracked file; mind that `KEY=   # comment` gives the comment as the value",
    ).key(keys.join(",")));
}

/// `logs/` must be ignored, so run logs never end up in a commit. The `.gitignore` files
/// from `dir` up to the work tree's top and `.git/info/exclude` are read; the nearest file
/// that decides wins, as in git.
fn check_logs_ignored(dir: &Path, findings: &mut Vec<Finding>) -> anyhow::Result<()> {
    let top = ProcessBuilder::new("git").args(["rev-parse", "--show-toplevel"]).dir(dir).read()?;
    let top = PathBuf::from(top.trim());
    let logs = dir.join("logs");
    // (the folder patterns are relative to, the file)
    let mut sources: Vec<(PathBuf, PathBuf)> = Vec::new();
    for ancestor in dir.ancestors() {
        sources.push((ancestor.to_path_buf(), ancestor.join(".gitignore")));
        if ancestor == top || !ancestor.starts_with(&top) {
            break;
        }
    }
    // A matcher panics on a path outside its folder; git's top may be spelled differently
    // (a symlinked temporary folder), and then its exclude file is not consulted.
    if logs.starts_with(&top) {
        sources.push((top.clone(), top.join(".git/info/exclude")));
    }
    let mut ignored = false;
    for (root, file) in &sources {
        if !file.is_file() {
            continue;
        }
        let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
        if let Some(error) = builder.add(file) {
            return Err(error).with_context(|| format!("failed to read {}", file.display()));
        }
        let matcher =
            builder.build().with_context(|| format!("failed to read {}", file.display()))?;
        let decided = matcher.matched_path_or_any_parents(&logs, true);
        if decided.is_ignore() || decided.is_whitelist() {
            ignored = decided.is_ignore();
            break;
        }
    }
    if !ignored {
        let file = dir.join(".gitignore");
        findings.push(Finding::new(
            Rule::LogsNotIgnored,
            Location::file(&file),
            "`logs/` (where the gates write their logs) is not ignored",
            "add `/logs` to .gitignore",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_folders_anywhere_and_renamed_but_not_source_folders_named_target() {
        let folder = |path: &str| target_folder(Path::new(path));
        assert_eq!(folder("crates/api/target/debug/api").as_deref(), Some("crates/api/target"));
        assert_eq!(folder("target-release/release/api").as_deref(), Some("target-release"));
        assert_eq!(folder("target/x86_64-unknown-linux-gnu/release/x").as_deref(), Some("target"));
        assert_eq!(folder("src/target/mod.rs"), None);
        assert_eq!(folder("docs/target"), None);
    }
}
