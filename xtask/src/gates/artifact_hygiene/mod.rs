//! The artifact hygiene gate: what the repository tracks, how the services' images are built
//! and configured, and what the running containers log.
//!
//! The static half (`check_static`) needs no Docker: tracked and staged files
//! (`repository`), each built service's Dockerfile and `.dockerignore` (`build_files`) and
//! the Compose file (`compose_rules`). After the build, `runtime::check_images` judges the
//! images; on the running mesh, `runtime` checks each container's output and filesystem.
//! Reviewed exceptions come from the allow-list file (`gates.artifact_hygiene.allow_list`).
//!
//! On a Compose file of another project (no crates, no repository of ours), the Compose and
//! Dockerfile rules apply as they are: each finding states a fact of the file.

pub mod build_files;
pub mod compose_rules;
pub mod dockerfile;
pub mod image_ref;
pub mod repository;
pub mod runtime;
pub mod secrets;

use std::collections::BTreeMap;

use crate::config::HygienePolicy;
use crate::discover::Mesh;
use crate::finding::Finding;

/// Every static hygiene finding, and what the gate's log should say beyond them.
pub fn check_static(mesh: &Mesh) -> anyhow::Result<(Vec<Finding>, Vec<String>)> {
    let policy = &mesh.config.hygiene;
    let mut findings = Vec::new();
    let mut detail = Vec::new();

    // Dockerfiles first: the Compose rules read what they hold.
    let mut built = BTreeMap::new();
    for service in mesh.project.active_services() {
        let Some((dockerfile, context)) = build_files::build_of(mesh, service) else { continue };
        // A remote context (a git or HTTP URL) or an inline Dockerfile is not a file here.
        let remote =
            context.to_string_lossy().contains("://") || context.to_string_lossy().contains("git@");
        let inline =
            service.node.get("build").is_some_and(|b| b.get("dockerfile_inline").is_some());
        if remote || inline {
            detail.push(format!(
                "{}: builds from a remote context or an inline Dockerfile, not read",
                service.name
            ));
            built.insert(service.name.clone(), None);
            continue;
        }
        let shown = dockerfile.strip_prefix(&mesh.root).unwrap_or(&dockerfile);
        detail.push(format!("{}: Dockerfile {}", service.name, shown.display()));
        let summary =
            build_files::check_dockerfile(&dockerfile, &service.name, policy, &mut findings);
        build_files::check_dockerignore(&context, &service.name, &mut findings);
        built.insert(service.name.clone(), summary);
    }
    compose_rules::check(&mesh.project, policy, &built, &mut findings);
    check_repository(mesh, &mut findings, &mut detail)?;

    apply_allow_list(mesh, &mut findings, &mut detail);
    findings.sort_by(|a, b| (&a.location, a.rule).cmp(&(&b.location, b.rule)));
    findings.dedup();
    Ok((findings, detail))
}

/// The Compose rules alone, as they apply to a Compose file of another project: its build
/// contexts are not ours to read, so a service it builds is not judged on its image name or
/// on a healthcheck its Dockerfile may declare.
pub fn check_compose_file(
    project: &crate::compose::Project,
    policy: &HygienePolicy,
) -> Vec<Finding> {
    let built = project
        .active_services()
        .filter(|service| service.build.is_some())
        .map(|service| (service.name.clone(), None))
        .collect();
    let mut findings = Vec::new();
    compose_rules::check(project, policy, &built, &mut findings);
    findings.sort_by(|a, b| (&a.location, a.rule).cmp(&(&b.location, b.rule)));
    findings.dedup();
    findings
}

/// The repository rules on the git work tree holding meshgate.toml's folder.
fn check_repository(
    mesh: &Mesh,
    findings: &mut Vec<Finding>,
    detail: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dir = &mesh.config.dir;
    let Some(files) = repository::tracked_files(dir)? else {
        let skipped =
            format!("{} is in no git repository: tracked-file rules not applied", dir.display());
        crate::term::warn(&skipped);
        detail.push(skipped);
        return Ok(());
    };
    let staged = repository::staged_files(dir)?;
    detail.push(format!("{} tracked file(s), {} staged", files.len(), staged.len()));
    findings.extend(repository::check(dir, &files, &staged, &mesh.config.hygiene)?);
    Ok(())
}

/// Drops the findings a reviewed exception covers, and says so in the log.
pub fn apply_allow_list(mesh: &Mesh, findings: &mut Vec<Finding>, detail: &mut Vec<String>) {
    let policy: &HygienePolicy = &mesh.config.hygiene;
    findings.retain(|finding| {
        let relative = finding.location.relative_to(&mesh.config.dir);
        let Some(allowance) = policy.allow.iter().find(|allowance| {
            allowance.rule.is_match(finding.rule.id()) && allowance.path.is_match(&relative.file)
        }) else {
            return true;
        };
        detail.push(format!(
            "allowed by {}: {} [{}] ({})",
            allowance.location.relative_to(&mesh.config.dir),
            relative,
            finding.rule.id(),
            allowance.reason
        ));
        false
    });
}

/// `12.3 MiB` for a byte count.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
