//! The Compose half: every active service has a healthcheck (its own or its Dockerfile's), a
//! restart policy, no `privileged` and no Docker socket; logging is set on every service,
//! the same everywhere, with rotation limits; images are pinned; `environment:` holds no
//! literal secrets.
//!
//! A one-shot job (a service another one waits for with `service_completed_successfully`)
//! is meant to exit, so it needs neither a healthcheck nor a restart policy.

use std::collections::{BTreeMap, BTreeSet};

use super::build_files::{self, Summary};
use super::secrets;
use crate::compose::{Project, Service};
use crate::config::HygienePolicy;
use crate::finding::{Finding, Rule};
use crate::location::Location;
use crate::yaml::{Node, Typed};

/// Where a node of the merged project was written.
fn at(project: &Project, node: &Node) -> Location {
    let file = project.files.get(usize::from(node.pos.file)).cloned().unwrap_or_default();
    Location::new(file, node.pos)
}

/// The services that others wait for to complete: jobs, not long-running services.
fn one_shot_jobs(project: &Project) -> BTreeSet<&str> {
    project
        .active_services()
        .flat_map(|service| &service.depends_on)
        .filter(|dependency| dependency.condition == "service_completed_successfully")
        .map(|dependency| dependency.service.as_str())
        .collect()
}

/// Every Compose finding; `dockerfiles` has what each built service's Dockerfile gives.
pub(crate) fn check(
    project: &Project,
    policy: &HygienePolicy,
    built: &BTreeMap<String, Option<Summary>>,
    findings: &mut Vec<Finding>,
) {
    let jobs = one_shot_jobs(project);
    for service in project.active_services() {
        let name = service.name.as_str();
        let summary = built.get(name);
        let job = jobs.contains(name);
        // The image name of a service Compose or meshgate builds is what the build is tagged.
        if !built.contains_key(name) && service.build.is_none() {
            check_image(project, service, policy, findings);
        }
        if !job {
            check_healthcheck(service, summary, findings);
            check_restart(service, findings);
        }
        check_shell_healthcheck(service, summary, findings);
        check_privileged(project, service, findings);
        check_socket(project, service, findings);
    }
    check_logging(project, findings);
    check_environment(project, findings);
}

fn check_image(
    project: &Project,
    service: &Service,
    policy: &HygienePolicy,
    findings: &mut Vec<Finding>,
) {
    let Some((image, location)) = &service.image else { return };
    let path = format!("services.{}.image", service.name);
    if let Some(unset) = project.unset_variables.iter().find(|unset| unset.path == path) {
        findings.push(
            Finding::new(
                Rule::ImageUnresolved,
                location.clone(),
                format!("image of `{}` depends on unset variable {}", service.name, unset.variable),
                format!("set {} or give it a default pinned by digest: `${{{}:-name:tag@sha256:<digest>}}`", unset.variable, unset.variable),
            )
            .service(&service.name),
        );
        return;
    }
    build_files::image_findings(image, location.clone(), &service.name, policy, findings);
}

fn check_healthcheck(
    service: &Service,
    summary: Option<&Option<Summary>>,
    findings: &mut Vec<Finding>,
) {
    let from_dockerfile =
        summary.is_some_and(|summary| summary.as_ref().is_some_and(|s| s.healthcheck));
    // An unreadable Dockerfile is reported on its own; no guess about its healthcheck.
    let unknown = summary.is_some_and(Option::is_none);
    match &service.healthcheck {
        Some(healthcheck) if healthcheck.disable => findings.push(
            Finding::new(
                Rule::NoHealthcheck,
                healthcheck.location.clone(),
                format!("the healthcheck of `{}` is disabled", service.name),
                "give the service a healthcheck in exec form, so the mesh knows when it is ready",
            )
            .service(&service.name),
        ),
        Some(_) => {}
        None if from_dockerfile || unknown => {}
        None => findings.push(
            Finding::new(
                Rule::NoHealthcheck,
                service.location.clone(),
                format!("`{}` has no healthcheck, in Compose or in its Dockerfile", service.name),
                "add `healthcheck: {test: [\"CMD\", \"/app\", \"healthcheck\"]}` (exec form) or an exec-form `HEALTHCHECK` to its Dockerfile",
            )
            .service(&service.name),
        ),
    }
}

/// A `CMD-SHELL` healthcheck, or one running curl or a shell, in a scratch or distroless
/// image: the engine cannot run it and the service stays unhealthy.
fn check_shell_healthcheck(
    service: &Service,
    summary: Option<&Option<Summary>>,
    findings: &mut Vec<Finding>,
) {
    let no_shell = summary.is_some_and(|summary| summary.as_ref().is_some_and(|s| s.no_shell));
    let Some(healthcheck) = &service.healthcheck else { return };
    if !no_shell || healthcheck.disable {
        return;
    }
    let needs = match healthcheck.test.first().map(String::as_str) {
        Some("CMD-SHELL") => Some("/bin/sh (`CMD-SHELL`)".to_owned()),
        Some("CMD") => healthcheck
            .test
            .get(1)
            .and_then(|program| build_files::shell_tool(program))
            .map(|tool| format!("`{tool}`")),
        Some("NONE") | None => None,
        Some(_) => Some("/bin/sh (a command written as a string)".to_owned()),
    };
    if let Some(needs) = needs {
        findings.push(
            Finding::new(
                Rule::HealthcheckNeedsShell,
                healthcheck.location.clone(),
                format!("the healthcheck of `{}` needs {needs}, but its final image stage is scratch or distroless", service.name),
                "run the service's own binary in exec form: `test: [\"CMD\", \"/app\", \"healthcheck\"]`",
            )
            .service(&service.name),
        );
    }
}

fn check_restart(service: &Service, findings: &mut Vec<Finding>) {
    let restart = service.node.get("restart").and_then(Node::text);
    let deploy = service.node.get("deploy").and_then(|deploy| deploy.get("restart_policy"));
    let set =
        restart.is_some_and(|policy| !policy.is_empty() && policy != "no") || deploy.is_some();
    if !set {
        let location = service.node.get("restart").map_or(service.location.clone(), |node| {
            Location { line: node.pos.line, column: node.pos.column, ..service.location.clone() }
        });
        findings.push(
            Finding::new(
                Rule::NoRestartPolicy,
                location,
                format!("`{}` has no restart policy", service.name),
                "add `restart: on-failure:3` (or `unless-stopped`), once for all services through an `x-` anchor",
            )
            .service(&service.name),
        );
    }
}

fn check_privileged(project: &Project, service: &Service, findings: &mut Vec<Finding>) {
    let Some(node) = service.node.get("privileged") else { return };
    let on = matches!(node.typed(), Some(Typed::Bool(true))) || node.text() == Some("true");
    if on {
        findings.push(
            Finding::new(
                Rule::Privileged,
                at(project, node),
                format!(
                    "`{}` runs privileged: it has every capability and the host's devices",
                    service.name
                ),
                "remove `privileged: true`; add only the capabilities it needs with `cap_add`",
            )
            .service(&service.name),
        );
    }
}

fn check_socket(project: &Project, service: &Service, findings: &mut Vec<Finding>) {
    let Some(volumes) = service.node.get("volumes").and_then(Node::as_seq) else { return };
    for volume in volumes {
        let source = match volume.text() {
            Some(short) => short.split(':').next().unwrap_or(short).to_owned(),
            None => volume.get("source").and_then(Node::text).unwrap_or("").to_owned(),
        };
        if source.ends_with("/docker.sock") || source.ends_with("/docker.sock/") {
            findings.push(
                Finding::new(
                    Rule::DockerSocket,
                    at(project, volume),
                    format!("`{}` mounts the Docker socket `{source}`, which gives root on the host", service.name),
                    "remove the mount; if the service must talk to an engine, give it a socket proxy that allows only the calls it needs",
                )
                .service(&service.name),
            );
        }
    }
}

/// A node's content without positions, to compare definitions.
fn canonical(node: &Node) -> String {
    match &node.kind {
        crate::yaml::Kind::Scalar(scalar) => format!("{:?}", scalar.text),
        crate::yaml::Kind::Seq(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        crate::yaml::Kind::Map(entries) => {
            let mut parts: Vec<String> =
                entries.iter().map(|e| format!("{:?}:{}", e.key, canonical(&e.value))).collect();
            parts.sort();
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// Logging: on every service, one definition, with rotation when it writes files.
fn check_logging(project: &Project, findings: &mut Vec<Finding>) {
    let mut definitions: BTreeMap<String, Vec<(&Service, &Node)>> = BTreeMap::new();
    for service in project.active_services() {
        let Some(logging) = service.node.get("logging") else {
            findings.push(
                Finding::new(
                    Rule::LoggingMissing,
                    service.location.clone(),
                    format!("`{}` sets no logging: the engine's default keeps its output in files without a size limit", service.name),
                    "define logging once (`x-logging: &logging {driver: json-file, options: {max-size: \"10m\", max-file: \"3\"}}`) and give every service `logging: *logging`",
                )
                .service(&service.name),
            );
            continue;
        };
        let driver = logging.get("driver").and_then(Node::text).unwrap_or("json-file");
        if driver == "none" {
            findings.push(
                Finding::new(
                    Rule::LoggingMissing,
                    at(project, logging),
                    format!(
                        "`{}` discards its output (`driver: none`), so it is never collected",
                        service.name
                    ),
                    "use the mesh's shared logging definition",
                )
                .service(&service.name),
            );
            continue;
        }
        let options = logging.get("options");
        let option = |key: &str| options.and_then(|o| o.get(key)).and_then(Node::text);
        if driver == "json-file" && option("max-size").is_none() {
            findings.push(
                Finding::new(
                    Rule::LoggingNoRotation,
                    at(project, logging),
                    format!("the `json-file` logging of `{}` has no `max-size`, so its log grows without limit", service.name),
                    "set `options: {max-size: \"10m\", max-file: \"3\"}`",
                )
                .service(&service.name),
            );
        }
        definitions.entry(canonical(logging)).or_default().push((service, logging));
    }
    if definitions.len() > 1 {
        // The definition most services share is the mesh's; the others differ from it.
        let (common, _) = definitions
            .iter()
            .max_by_key(|(_, users)| users.len())
            .map(|(key, users)| (key.clone(), users.len()))
            .unwrap_or_default();
        let first = definitions[&common]
            .first()
            .map(|(service, _)| service.name.clone())
            .unwrap_or_default();
        for (key, users) in &definitions {
            if *key == common {
                continue;
            }
            for (service, logging) in users {
                findings.push(
                    Finding::new(
                        Rule::LoggingDiffers,
                        at(project, logging),
                        format!(
                            "the logging of `{}` differs from the mesh's (as on `{first}`)",
                            service.name
                        ),
                        "give every service the one shared definition: `logging: *logging`",
                    )
                    .service(&service.name),
                );
            }
        }
    }
    check_logging_shared(project, &definitions, findings);
}

/// The mesh's logging is written once and shared (an anchor, or an `x-` service merged in):
/// an identical copy written out again is a second definition to keep in step.
fn check_logging_shared(
    project: &Project,
    definitions: &BTreeMap<String, Vec<(&Service, &Node)>>,
    findings: &mut Vec<Finding>,
) {
    let Some(users) = definitions.values().max_by_key(|users| users.len()) else { return };
    let mut sources: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut written: BTreeMap<(u16, u32, u32), &Service> = BTreeMap::new();
    for (service, logging) in users {
        let pos = logging.pos;
        let lines = sources.entry(pos.file).or_insert_with(|| {
            let file = project.files.get(usize::from(pos.file));
            let text = file.and_then(|file| std::fs::read_to_string(file).ok()).unwrap_or_default();
            text.lines().map(str::to_owned).collect()
        });
        let line = lines.get(pos.line.saturating_sub(1) as usize).map_or("", String::as_str);
        let first = line.chars().nth(pos.column.saturating_sub(1) as usize);
        // An alias (`*logging`) shares the definition; anything else writes one.
        if first != Some('*') {
            written.entry((pos.file, pos.line, pos.column)).or_insert(service);
        }
    }
    // One service per definition written, in file order; the first is the mesh's.
    let mut copies: Vec<&(&Service, &Node)> = users
        .iter()
        .filter(|(service, logging)| {
            let key = (logging.pos.file, logging.pos.line, logging.pos.column);
            written.get(&key).is_some_and(|first| first.name == service.name)
        })
        .collect();
    copies.sort_by_key(|(_, logging)| (logging.pos.file, logging.pos.line, logging.pos.column));
    for (service, logging) in copies.into_iter().skip(1) {
        findings.push(
            Finding::new(
                Rule::LoggingNotShared,
                at(project, logging),
                format!("`{}` writes out the mesh's logging again instead of sharing one definition", service.name),
                "define it once (`x-logging: &logging …`) and give every service `logging: *logging`",
            )
            .service(&service.name),
        );
    }
}

/// Literal secrets in `environment:`, read from the files as written: a `${VAR}` reference
/// (with or without a `:?` guard) is not a literal, whatever the variable holds.
fn check_environment(project: &Project, findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for (index, file) in project.files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let Ok(root) = crate::yaml::parse_file(&text, index as u16) else { continue };
        let Some(services) = root.get("services").and_then(Node::as_map) else { continue };
        for entry in services {
            let active = project.services.get(&entry.key).is_some_and(|s| s.active);
            let Some(environment) = entry.value.get("environment") else { continue };
            if !active {
                continue;
            }
            let mut literal = |key: &str, value: &Node| {
                let Some(text) = value.text() else { return };
                if text.is_empty()
                    || text.contains('$')
                    || secrets::is_switch(text)
                    || !secrets::is_secret_key(key)
                {
                    return;
                }
                if !seen.insert((entry.key.clone(), key.to_owned(), value.pos)) {
                    return;
                }
                findings.push(
                    Finding::new(
                        Rule::SecretInCompose,
                        Location::new(file, value.pos),
                        format!(
                            "`{}` gets a literal value for secret-like `{key}` in `environment:`{}",
                            entry.key,
                            if secrets::looks_like_placeholder(text) {
                                " (a placeholder, which ships as the value all the same)"
                            } else {
                                ""
                            }
                        ),
                        format!("read it from the environment with a guard, `{key}: ${{{key}:?set {key}}}`, or use a Compose secret"),
                    )
                    .service(&entry.key)
                    .key(key),
                );
            };
            if let Some(map) = environment.as_map() {
                for item in map {
                    literal(&item.key, &item.value);
                }
            } else if let Some(list) = environment.as_seq() {
                for item in list {
                    let Some((key, value)) = item.text().and_then(|t| t.split_once('=')) else {
                        continue;
                    };
                    let value_node = Node {
                        kind: crate::yaml::Kind::Scalar(crate::yaml::Scalar {
                            text: value.to_owned(),
                            plain: false,
                        }),
                        pos: item.pos,
                    };
                    literal(key, &value_node);
                }
            }
        }
    }
}
