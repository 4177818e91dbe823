//! The Dockerfile and `.dockerignore` of each service that meshgate or Compose builds: base
//! images pinned, a non-root `USER`, an exec-form `HEALTHCHECK`, apt packages pinned, and a
//! build context that leaves out `target/` and `.git`.

use std::path::{Path, PathBuf};

use super::dockerfile::{self, Stage};
use super::image_ref::{self, Pin};
use crate::config::HygienePolicy;
use crate::finding::{Finding, Rule};
use crate::location::Location;

/// What the Compose rules need to know of a service's Dockerfile.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    /// The final stage has a `HEALTHCHECK` (other than `NONE`).
    pub healthcheck: bool,
    /// The final stage is `scratch` or a distroless image: no shell, no curl.
    pub no_shell: bool,
}

/// Checks one Dockerfile; `None` in the summary when it could not be read or parsed.
pub(crate) fn check_dockerfile(
    path: &Path,
    service: &str,
    policy: &HygienePolicy,
    findings: &mut Vec<Finding>,
) -> Option<Summary> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            findings.push(
                Finding::new(
                    Rule::DockerfileSyntax,
                    Location::file(path),
                    format!("the Dockerfile of `{service}` cannot be read: {error}"),
                    "check the path in the service's `build:` or add the Dockerfile",
                )
                .service(service),
            );
            return None;
        }
    };
    let parsed = dockerfile::instructions(&text)
        .and_then(|instructions| dockerfile::stages(instructions, &[("REVISION", "revision")]));
    let stages = match parsed {
        Ok(stages) => stages,
        Err(error) => {
            findings.push(
                Finding::new(
                    Rule::DockerfileSyntax,
                    Location::line(path, error.line),
                    format!("the Dockerfile of `{service}` does not parse: {}", error.message),
                    "fix the instruction; `docker build` reports the same",
                )
                .service(service)
                .key(error.message),
            );
            return None;
        }
    };

    for stage in &stages {
        check_base(path, service, stage, policy, findings);
        for instruction in &stage.instructions {
            if instruction.keyword == "RUN" {
                check_apt(path, service, instruction, findings);
            }
        }
    }
    let last = stages.last()?;
    let last_index = stages.len() - 1;
    let lineage = lineage(&stages, last_index);
    let find_last = |keyword: &str| {
        lineage.iter().find_map(|index| {
            stages[*index].instructions.iter().rev().find(|i| i.keyword == keyword)
        })
    };

    match find_last("USER") {
        None => findings.push(
            Finding::new(
                Rule::RootUser,
                Location::line(path, last.line),
                format!("the final stage of `{service}` sets no `USER`, so it runs as root"),
                "add `USER 65534:65534` (or another unprivileged uid:gid) to the final stage",
            )
            .service(service),
        ),
        Some(user) if is_root(&user.arguments) => findings.push(
            Finding::new(
                Rule::RootUser,
                Location::line(path, user.line),
                format!("the final stage of `{service}` runs as root (`USER {}`)", user.arguments),
                "switch to an unprivileged user: `USER 65534:65534`",
            )
            .service(service),
        ),
        Some(_) => {}
    }

    let healthcheck = find_last("HEALTHCHECK");
    let mut has_healthcheck = false;
    if let Some(instruction) = healthcheck {
        let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
        let none = words.first().is_some_and(|w| w.eq_ignore_ascii_case("NONE"));
        if !none {
            has_healthcheck = true;
            let command = instruction
                .arguments
                .split_whitespace()
                .position(|w| w.eq_ignore_ascii_case("CMD"))
                .map(|at| {
                    instruction
                        .arguments
                        .split_whitespace()
                        .skip(at + 1)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            if !dockerfile::is_exec_form(&command) {
                findings.push(
                    Finding::new(
                        Rule::HealthcheckShellForm,
                        Location::line(path, instruction.line),
                        format!("the `HEALTHCHECK` of `{service}` is in shell form, so it needs `/bin/sh` in the image"),
                        "write it in exec form: `HEALTHCHECK CMD [\"/app\", \"healthcheck\"]`",
                    )
                    .service(service),
                );
            }
        }
    }
    let root_base = lineage.last().map(|index| &stages[*index]);
    let no_shell = root_base.and_then(|stage| stage.base.as_deref()).is_some_and(is_shell_less);
    // An exec-form HEALTHCHECK that runs a tool the scratch or distroless image lacks.
    if let (true, Some(instruction)) = (no_shell, healthcheck) {
        let program = instruction
            .arguments
            .split_once('[')
            .and_then(|(_, rest)| serde_json::from_str::<Vec<String>>(&format!("[{rest}")).ok())
            .and_then(|words| words.into_iter().next());
        if let Some(tool) = program.as_deref().and_then(shell_tool) {
            findings.push(
                Finding::new(
                    Rule::HealthcheckNeedsShell,
                    Location::line(path, instruction.line),
                    format!("the `HEALTHCHECK` of `{service}` runs `{tool}`, which a scratch or distroless image does not have"),
                    "run the service's own binary: `HEALTHCHECK CMD [\"/app\", \"healthcheck\"]`",
                )
                .service(service),
            );
        }
    }
    Some(Summary { healthcheck: has_healthcheck, no_shell })
}

/// The final stage and the earlier stages it builds on, nearest first.
fn lineage(stages: &[Stage], last: usize) -> Vec<usize> {
    let mut chain = vec![last];
    let mut current = last;
    while let Some(parent) = stages[current].parent {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        current = parent;
    }
    chain
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user).trim();
    name == "root" || name == "0"
}

/// The shell or tool a healthcheck program names, if it is one images without a shell lack.
pub(crate) fn shell_tool(program: &str) -> Option<&str> {
    let base = program.rsplit('/').next().unwrap_or(program);
    matches!(base, "sh" | "bash" | "curl" | "wget" | "nc").then_some(base)
}

/// `scratch` and the distroless families ship neither a shell nor curl.
pub(crate) fn is_shell_less(image: &str) -> bool {
    image.eq_ignore_ascii_case("scratch")
        || image.contains("/distroless/")
        || image.starts_with("distroless/")
        || image.starts_with("cgr.dev/chainguard/static")
}

fn check_base(
    path: &Path,
    service: &str,
    stage: &Stage,
    policy: &HygienePolicy,
    findings: &mut Vec<Finding>,
) {
    if stage.parent.is_some() {
        return;
    }
    let at = Location::line(path, stage.line);
    let Some(base) = &stage.base else {
        let variable = stage.unresolved.as_deref().unwrap_or("?");
        findings.push(
            Finding::new(
                Rule::ImageUnresolved,
                at,
                format!("base image `{}` of `{service}` cannot be resolved: `{variable}` has no default", stage.base_written),
                format!("give the `ARG {variable}` before the first `FROM` a default, pinned by digest"),
            )
            .service(service),
        );
        return;
    };
    image_findings(base, at, service, policy, findings);
}

/// The image rules for one reference, from a `FROM` or a Compose `image:`.
pub(crate) fn image_findings(
    image: &str,
    at: Location,
    service: &str,
    policy: &HygienePolicy,
    findings: &mut Vec<Finding>,
) {
    match image_ref::pin(image) {
        Some(Pin::Scratch | Pin::Digest) => {}
        Some(Pin::Latest { explicit }) => {
            let what = if explicit { "is tagged `latest`" } else { "has no tag, so it means `latest`" };
            findings.push(
                Finding::new(
                    Rule::ImageLatest,
                    at,
                    format!("image `{image}` of `{service}` {what}"),
                    format!("pin it by digest: `{}@sha256:<digest>` (a version tag at least)", image.trim_end_matches(":latest")),
                )
                .service(service)
                .key(image),
            );
        }
        Some(Pin::Tag(tag)) if policy.require_digest => findings.push(
            Finding::new(
                Rule::ImageNotPinned,
                at,
                format!("image `{image}` of `{service}` is pinned by tag `{tag}` only, which can be moved"),
                format!("add its digest: `{image}@sha256:<digest>`; or set `gates.artifact_hygiene.require_digest = false`"),
            )
            .service(service)
            .key(image),
        ),
        Some(Pin::Tag(_)) => {}
        None => findings.push(
            Finding::new(
                Rule::ImageUnresolved,
                at,
                format!("`{image}` of `{service}` is not an image reference"),
                "write `name:tag@sha256:<digest>`",
            )
            .service(service)
            .key(image),
        ),
    }
}

/// Options of `apt-get install` that take a value, which is not a package.
const APT_VALUE_OPTIONS: &[&str] =
    &["-t", "--target-release", "-o", "--option", "-c", "--config-file"];

/// Words that are commands, not packages: after an `apt-get install` they mean a missing `&&`.
const COMMANDS: &[&str] =
    &["apt-get", "apt", "rm", "clean", "autoremove", "update", "echo", "mkdir"];

/// `apt-get install` packages without a version (`pkg=1.2`): variables are unknown, not
/// unpinned, and paths (`./x.deb`) are files, not packages.
fn check_apt(
    path: &Path,
    service: &str,
    instruction: &dockerfile::Instruction,
    findings: &mut Vec<Finding>,
) {
    let mut scripts = vec![instruction.arguments.clone()];
    scripts.extend(instruction.heredocs.iter().cloned());
    for script in scripts {
        for command in script
            .split(['\n', ';'])
            .flat_map(|part| part.split("&&"))
            .flat_map(|part| part.split("||"))
        {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(install) = words
                .windows(2)
                .position(|pair| matches!(pair[0], "apt-get" | "apt") && pair[1] == "install")
            else {
                continue;
            };
            let mut unpinned = Vec::new();
            let mut commands = Vec::new();
            let mut skip_next = false;
            for word in &words[install + 2..] {
                if skip_next {
                    skip_next = false;
                    continue;
                }
                if APT_VALUE_OPTIONS.contains(word) {
                    skip_next = true;
                    continue;
                }
                if word.starts_with('-')
                    || word.contains('$')
                    || word.contains('/')
                    || word.ends_with(".deb")
                    || word.contains('=')
                    || *word == "\\"
                {
                    continue;
                }
                if COMMANDS.contains(word) {
                    commands.push(*word);
                }
                unpinned.push(*word);
            }
            if unpinned.is_empty() {
                continue;
            }
            let message = if commands.is_empty() {
                format!(
                    "`apt-get install` of `{service}` installs {} without a version",
                    unpinned.join(", ")
                )
            } else {
                format!(
                    "`apt-get install` of `{service}` takes {} for packages: a `&&` is missing before the next command",
                    commands.join(", ")
                )
            };
            findings.push(
                Finding::new(
                    Rule::AptUnpinned,
                    Location::line(path, instruction.line),
                    message,
                    "pin each package (`pkg=1.2.3-1`), and separate commands with `&&`",
                )
                .service(service)
                .key(unpinned.join(",")),
            );
        }
    }
}

/// The `.dockerignore` of a build context must exclude `target/` and `.git`: an allow-list
/// (`*` then `!Dockerfile`) that does not let them back in excludes them.
pub(crate) fn check_dockerignore(context: &Path, service: &str, findings: &mut Vec<Finding>) {
    // A missing context is reported with its Dockerfile, which cannot be read either.
    if !context.is_dir() {
        return;
    }
    let file = context.join(".dockerignore");
    if !file.is_file() {
        findings.push(
            Finding::new(
                Rule::DockerignoreMissing,
                Location::file(context.join("Dockerfile")),
                format!("the build context of `{service}` ({}) has no .dockerignore", context.display()),
                format!("add {} excluding at least `target/` and `.git` (or listing only what the image needs: `*` then `!Dockerfile`)", file.display()),
            )
            .service(service),
        );
        return;
    }
    let matcher = match crate::images::dockerignore(context) {
        Ok(matcher) => matcher,
        Err(error) => {
            findings.push(
                Finding::new(
                    Rule::DockerignoreIncomplete,
                    Location::file(&file),
                    format!("the .dockerignore of `{service}` cannot be read: {error:#}"),
                    "fix the pattern; Docker rejects it too",
                )
                .service(service),
            );
            return;
        }
    };
    let kept: Vec<&str> = ["target", ".git"]
        .into_iter()
        .filter(|name| !matcher.matched(context.join(name), true).is_ignore())
        .collect();
    if !kept.is_empty() {
        findings.push(
            Finding::new(
                Rule::DockerignoreIncomplete,
                Location::file(&file),
                format!(
                    "the .dockerignore of `{service}` does not exclude {}",
                    kept.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                ),
                format!(
                    "add {} to it",
                    kept.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                ),
            )
            .service(service),
        );
    }
}

/// Where a service's Dockerfile and build context are: its crate's folder, or its `build:`.
pub(crate) fn build_of(
    mesh: &crate::discover::Mesh,
    service: &crate::compose::Service,
) -> Option<(PathBuf, PathBuf)> {
    if let Some(package) = mesh.contracts.get(&service.name).and_then(|c| c.package.as_ref()) {
        return Some((package.manifest_dir.join("Dockerfile"), package.manifest_dir.clone()));
    }
    service.build.as_ref().map(|build| (build.dockerfile.clone(), build.context.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apt(run: &str) -> Vec<Finding> {
        let instruction = dockerfile::Instruction {
            keyword: "RUN".into(),
            arguments: run.into(),
            heredocs: Vec::new(),
            line: 2,
        };
        let mut findings = Vec::new();
        check_apt(Path::new("Dockerfile"), "api", &instruction, &mut findings);
        findings
    }

    #[test]
    fn apt_variables_and_local_debs_are_not_unpinned_packages() {
        let run = "apt-get update && PKGS=\"ca-certificates=20230311\" && apt-get install -y --no-install-recommends $PKGS ./vendor/tool_1.2.3_amd64.deb && rm -rf /var/lib/apt/lists/*";
        assert!(apt(run).is_empty());
        assert!(apt("apt-get install -y -t bookworm-backports curl=8.1").is_empty());
        assert_eq!(apt("apt-get install -y curl").len(), 1);
    }

    #[test]
    fn apt_flags_a_missing_separator() {
        let findings = apt("apt-get install -y pkg=1 apt-get clean");
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("`&&` is missing"), "{}", findings[0].message);
    }

    #[test]
    fn root_users() {
        assert!(is_root("root") && is_root("0:0") && is_root("root:root"));
        assert!(!is_root("65534:65534") && !is_root("app"));
    }
}
