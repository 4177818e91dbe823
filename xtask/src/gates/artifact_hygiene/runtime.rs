//! The gate's checks of what was built and what ran: each service image is under its size
//! budget, runs as non-root and carries the revision under test; each container's output is
//! one JSON log object per line, and no container wrote log files into its own filesystem
//! (the engine's diff of the container against its image).

use std::path::Path;

use bollard::Docker;

use crate::discover::Mesh;
use crate::finding::{Finding, Rule};
use crate::location::Location;

/// The OCI label that names the commit an image was built from.
pub(crate) const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// The image rules, for every image meshgate built; and a line per image for the log.
pub async fn check_images(
    docker: &Docker,
    mesh: &Mesh,
    images: &[crate::images::BuiltImage],
    revision: &str,
) -> anyhow::Result<(Vec<Finding>, Vec<String>)> {
    let policy = &mesh.config.hygiene;
    let mut findings = Vec::new();
    let mut detail = Vec::new();
    for image in images {
        let dockerfile = mesh
            .contracts
            .get(&image.service)
            .and_then(|contract| contract.package.as_ref())
            .map(|package| package.manifest_dir.join("Dockerfile"))
            .unwrap_or_default();
        let inspected = docker
            .inspect_image(&image.tag)
            .await
            .map_err(|error| anyhow::anyhow!("failed to inspect image {}: {error}", image.tag))?;
        let config = inspected.config.unwrap_or_default();
        let facts = ImageFacts {
            service: &image.service,
            tag: &image.tag,
            size: inspected.size.unwrap_or_default().max(0) as u64,
            user: config.user.unwrap_or_default(),
            revision_label: config.labels.unwrap_or_default().remove(REVISION_LABEL),
        };
        detail.push(format!(
            "{}: image {} of {} (budget {}), user `{}`, revision label {}",
            image.service,
            image.tag,
            super::human_bytes(facts.size),
            super::human_bytes(policy.budget_of(&image.service)),
            facts.user,
            facts.revision_label.as_deref().unwrap_or("absent"),
        ));
        findings.extend(judge_image(&facts, policy, revision, Location::file(&dockerfile)));
    }
    Ok((findings, detail))
}

/// What the engine says of one built image.
pub struct ImageFacts<'a> {
    pub service: &'a str,
    pub tag: &'a str,
    pub size: u64,
    /// The configured user, `""` for none (root).
    pub user: String,
    pub revision_label: Option<String>,
}

/// The image rules on one image: its size budget, a non-root user, the revision label.
pub fn judge_image(
    image: &ImageFacts<'_>,
    policy: &crate::config::HygienePolicy,
    revision: &str,
    at: Location,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ImageFacts { service, tag, size, user, .. } = image;
    let budget = policy.budget_of(service);
    if *size > budget {
        findings.push(
            Finding::new(
                Rule::ImageTooLarge,
                at.clone(),
                format!("image {tag} of `{service}` is {}, above its budget of {}", super::human_bytes(*size), super::human_bytes(budget)),
                format!("trim what the image holds, or raise `gates.artifact_hygiene.services.{service}.image_size_budget`"),
            )
            .service(*service)
            .key("size"),
        );
    }
    let name = user.split(':').next().unwrap_or("").trim();
    if name.is_empty() || name == "root" || name == "0" {
        findings.push(
            Finding::new(
                Rule::ImageRunsAsRoot,
                at.clone(),
                format!("image {tag} of `{service}` runs as root (user `{user}`)"),
                "set `USER 65534:65534` in the final stage of its Dockerfile",
            )
            .service(*service),
        );
    }
    if image.revision_label.as_deref() != Some(revision) {
        let found = image
            .revision_label
            .as_ref()
            .map_or("no such label".to_owned(), |value| format!("`{value}`"));
        findings.push(
            Finding::new(
                Rule::ImageRevision,
                at,
                format!("image {tag} of `{service}` has {REVISION_LABEL} {found}, not the revision under test `{revision}`"),
                format!("declare `ARG REVISION` and `LABEL {REVISION_LABEL}=\"${{REVISION}}\"` in its Dockerfile; the gates pass the revision as that build argument"),
            )
            .service(*service)
            .key("revision"),
        );
    }
    findings
}

/// One saved container output against the log format: every line a JSON object with string
/// `timestamp`, `level`, `service` (equal to the Compose service) and `message`.
pub fn check_log_lines(service: &str, file: &Path, text: &str) -> Option<Finding> {
    let mut bad = 0;
    let mut first: Option<(u32, String, String)> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(why) = judge_line(service, line) {
            bad += 1;
            if first.is_none() {
                let sample: String = line.chars().take(160).collect();
                first = Some((index as u32 + 1, sample, why));
            }
        }
    }
    let (line, sample, why) = first?;
    Some(
        Finding::new(
            Rule::LogNotJson,
            Location::line(file, line),
            format!("`{service}` printed {bad} line(s) that are not one JSON log object ({why}); first: {sample:?}"),
            "write every line as one JSON object with `timestamp`, `level`, `service` and `message` (meshkit's `Logger` does)",
        )
        .service(service)
        .key("log format"),
    )
}

fn judge_line(service: &str, line: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| "not JSON".to_owned())?;
    let object = value.as_object().ok_or("JSON but not an object")?;
    for key in ["timestamp", "level", "service", "message"] {
        if !object.get(key).is_some_and(serde_json::Value::is_string) {
            return Err(format!("no string `{key}`"));
        }
    }
    match object.get("service").and_then(serde_json::Value::as_str) {
        Some(name) if name == service => Ok(()),
        Some(name) => Err(format!("`service` is `{name}`")),
        None => Err("no `service`".to_owned()),
    }
}

/// Whether a path the engine reports changed is a log file.
pub fn is_log_path(path: &str) -> bool {
    path.ends_with(".log") || path == "/var/log" || path.starts_with("/var/log/")
}

/// The engine's diff of every container of `project`: log files written inside them.
pub async fn check_container_changes(
    docker: &Docker,
    mesh: &Mesh,
    project: &str,
) -> anyhow::Result<(Vec<Finding>, Vec<String>)> {
    let mut findings = Vec::new();
    let mut detail = Vec::new();
    for container in crate::docker::project_containers(docker, project).await? {
        let service = crate::docker::service_of(&container).map(str::to_owned);
        let (Some(service), Some(id)) = (service, container.id) else { continue };
        let changes = docker
            .container_changes(&id)
            .await
            .map_err(|error| {
                anyhow::anyhow!("failed to read the filesystem changes of `{service}`: {error}")
            })?
            .unwrap_or_default();
        detail.push(format!("{service}: {} filesystem change(s) since start", changes.len()));
        let logs: Vec<&str> = changes
            .iter()
            .map(|change| change.path.as_str())
            .filter(|path| is_log_path(path))
            .collect();
        if logs.is_empty() {
            continue;
        }
        let location = mesh
            .project
            .services
            .get(&service)
            .map_or_else(|| Location::file(&mesh.config.file), |s| s.location.clone());
        findings.push(
            Finding::new(
                Rule::LogFileWritten,
                location,
                format!("`{service}` wrote log files inside its container: {}", logs.join(", ")),
                "log to stdout as JSON lines and let the engine collect them; no log files in the container",
            )
            .service(&service)
            .key(logs.join(",")),
        );
    }
    Ok((findings, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_one_object_with_the_four_keys_and_the_right_service() {
        let good =
            r#"{"timestamp":"2026-01-01T00:00:00Z","level":"info","service":"api","message":"up"}"#;
        assert!(
            check_log_lines("api", Path::new("api.log"), &format!("{good}\n\n{good}\n")).is_none()
        );
        let finding =
            check_log_lines("api", Path::new("api.log"), &format!("{good}\nlistening on 8080\n"))
                .unwrap();
        assert_eq!((finding.rule, finding.location.line), (Rule::LogNotJson, 2));
        assert!(finding.message.contains("listening on 8080"), "{}", finding.message);
        assert!(judge_line("web", good).unwrap_err().contains("`api`"));
        assert!(judge_line("api", r#"{"level":"info"}"#).is_err());
        assert!(judge_line("api", "[1,2]").is_err());
    }

    #[test]
    fn images_are_judged_on_size_user_and_revision() {
        let policy = crate::config::HygienePolicy::default();
        let facts = |size: u64, user: &str, label: Option<&str>| ImageFacts {
            service: "api",
            tag: "meshgate/api:local",
            size,
            user: user.to_owned(),
            revision_label: label.map(str::to_owned),
        };
        let rules = |facts: ImageFacts<'_>| -> Vec<Rule> {
            judge_image(&facts, &policy, "abc123", Location::file("Dockerfile"))
                .iter()
                .map(|finding| finding.rule)
                .collect()
        };
        assert_eq!(rules(facts(5 << 20, "65534:65534", Some("abc123"))), []);
        assert_eq!(rules(facts(100 << 20, "65534", Some("abc123"))), [Rule::ImageTooLarge]);
        assert_eq!(rules(facts(1, "", Some("abc123"))), [Rule::ImageRunsAsRoot]);
        assert_eq!(rules(facts(1, "0:0", Some("abc123"))), [Rule::ImageRunsAsRoot]);
        assert_eq!(rules(facts(1, "app", Some("unknown"))), [Rule::ImageRevision]);
        assert_eq!(rules(facts(1, "app", None)), [Rule::ImageRevision]);
    }

    #[test]
    fn log_paths() {
        assert!(is_log_path("/tmp/app.log"));
        assert!(is_log_path("/var/log") && is_log_path("/var/log/nginx/access"));
        assert!(!is_log_path("/tmp/catalog") && !is_log_path("/var/logger"));
    }
}
