//! The network contracts gate, runtime half: the running mesh against every contract.
//!
//! Once the mesh is healthy, this module reads which networks each container is attached to
//! (engine inspect) and probes connections from inside each service's network namespace: a
//! helper container running `meshgate-probe` joins the source container's namespace
//! (`network_mode: container:<id>`), so the probe sees exactly the routes, names and
//! firewall the service sees, whatever its image holds. Every declared edge must connect by
//! name; every pair the policy forbids must fail to connect to any of the target's addresses.
//! All sources are probed at once.
//!
//! Planning and judging are plain functions over [`Container`]s and probe outcomes; only
//! [`check`] talks to the engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::discover::Mesh;
use crate::docker;
use crate::finding::{Finding, Rule};
use crate::location::Location;

/// The label that marks probe containers, beside the run's project label.
const ROLE_LABEL: &str = "dev.meshgate.role";

/// A running service container as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub service: String,
    pub id: String,
    /// Compose network key → the container's IPv4 address on it (empty when it has none).
    pub networks: BTreeMap<String, String>,
}

/// What the contracts expect of a connection from one service to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expected {
    /// A declared edge: must connect.
    Connect,
    /// No contract allows it: must not connect to any of the target's addresses.
    Refuse,
    /// Not declared in this direction, but reachable by design: the two share a network for
    /// an edge the other way (networks are symmetric), or least privilege is off. Measured,
    /// not judged.
    Incidental,
}

/// What one probe saw, as `meshgate-probe` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Outcome {
    pub target: String,
    #[serde(default)]
    pub address: Option<String>,
    /// `connected`, `answered` (a URL target), `refused`, `timeout`, `unreachable`,
    /// `unresolved` or `error`.
    pub outcome: String,
    #[serde(default)]
    pub micros: u64,
    /// The HTTP status of a URL target that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Outcome {
    fn connected(&self) -> bool {
        self.outcome == "connected"
    }

    fn failed_to_run(&self) -> bool {
        self.outcome == "error"
    }
}

/// One source → target:port cell of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    pub source: String,
    pub target: String,
    pub port: u16,
    pub expected: Expected,
    /// `connected`, or why not; `probe-error` when the probe could not run.
    pub observed: String,
    /// The address that answered (or was tried, for a single-address probe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Time to connect, or to give up, in milliseconds.
    pub latency_ms: f64,
    /// Every probe behind this cell: one by name for an edge, one per target address else.
    #[serde(skip)]
    pub probes: Vec<Outcome>,
}

/// The probes planned for one source container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePlan {
    pub source: String,
    pub container_id: String,
    /// Each cell and the `host:port` targets probed for it.
    pub cells: Vec<(String, u16, Expected, Vec<String>)>,
}

/// What the runtime half found, and the matrix behind it.
#[derive(Debug, Default)]
pub struct RuntimeOutcome {
    pub findings: Vec<Finding>,
    pub matrix: Vec<Cell>,
    /// Lines for the gate's detailed log.
    pub detail: Vec<String>,
}

/// Whether `a` and `b` share a network by their contracts (by the Compose file for a
/// service without one).
fn share_declared_network(mesh: &Mesh, a: &str, b: &str) -> bool {
    let networks = |name: &str| -> BTreeSet<String> {
        match mesh.contracts.get(name) {
            Some(contract) => contract.networks.iter().cloned().collect(),
            None => mesh
                .project
                .services
                .get(name)
                .map(|service| service.networks.iter().map(|n| n.name.clone()).collect())
                .unwrap_or_default(),
        }
    };
    networks(a).intersection(&networks(b)).next().is_some()
}

fn declares_edge_to(mesh: &Mesh, from: &str, to: &str) -> bool {
    mesh.contracts.get(from).is_some_and(|c| c.talks_to.iter().any(|edge| edge.service == to))
}

/// The TCP ports `service` listens on: by its contract, else by its Compose `expose`/`ports`.
fn listen_ports(mesh: &Mesh, service: &str) -> BTreeSet<u16> {
    if let Some(contract) = mesh.contracts.get(service) {
        return contract
            .listen
            .iter()
            .filter(|listen| listen.protocol == "tcp")
            .map(|listen| listen.port)
            .collect();
    }
    let Some(service) = mesh.project.services.get(service) else { return BTreeSet::new() };
    let published = service.ports.iter().filter(|port| port.protocol == "tcp");
    service
        .expose
        .iter()
        .filter(|expose| expose.protocol == "tcp")
        .flat_map(|expose| expose.low..=expose.high)
        .chain(published.flat_map(|port| port.target.0..=port.target.1))
        .collect()
}

/// Every probe to run: for each running source, each other running service.
pub fn plan(mesh: &Mesh, containers: &[Container]) -> Vec<SourcePlan> {
    let mut plans = Vec::new();
    for source in containers {
        let mut cells = Vec::new();
        for target in containers.iter().filter(|target| target.service != source.service) {
            let edges: Vec<u16> = mesh
                .contracts
                .get(&source.service)
                .map(|contract| {
                    contract
                        .talks_to
                        .iter()
                        .filter(|edge| edge.service == target.service)
                        .map(|edge| edge.port)
                        .collect()
                })
                .unwrap_or_default();
            if !edges.is_empty() {
                for port in edges {
                    let by_name = format!("{}:{port}", target.service);
                    cells.push((target.service.clone(), port, Expected::Connect, vec![by_name]));
                }
                continue;
            }
            let shared = share_declared_network(mesh, &source.service, &target.service);
            // Least privilege judges a pair only where one side declares its contract, as
            // the static half does; inferred contracts describe the file, not an intent.
            let declared = |name: &str| mesh.contracts.get(name).is_some_and(|c| !c.inferred);
            let tolerated = shared
                && (declares_edge_to(mesh, &target.service, &source.service)
                    || !mesh.config.least_privilege
                    || !(declared(&source.service) || declared(&target.service)));
            let expected = if tolerated { Expected::Incidental } else { Expected::Refuse };
            for port in listen_ports(mesh, &target.service) {
                let addresses: BTreeSet<&String> =
                    target.networks.values().filter(|ip| !ip.is_empty()).collect();
                let probes: Vec<String> =
                    addresses.into_iter().map(|ip| format!("{ip}:{port}")).collect();
                if !probes.is_empty() {
                    cells.push((target.service.clone(), port, expected, probes));
                }
            }
        }
        if !cells.is_empty() {
            plans.push(SourcePlan {
                source: source.service.clone(),
                container_id: source.id.clone(),
                cells,
            });
        }
    }
    plans
}

/// The findings for containers attached to other networks than their contracts list.
pub fn check_attachments(mesh: &Mesh, containers: &[Container]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for container in containers {
        let Some(contract) = mesh.contracts.get(&container.service) else { continue };
        let Some(service) = mesh.project.services.get(&container.service) else { continue };
        if contract.network_mode.is_some() || service.network_mode.is_some() {
            continue;
        }
        let declared: BTreeSet<&str> = contract.networks.iter().map(String::as_str).collect();
        let attached: BTreeSet<&str> = container.networks.keys().map(String::as_str).collect();
        if declared == attached {
            continue;
        }
        let list = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(", ");
        // The Compose entry of an extra network, if the file has one; else the service.
        let location = attached
            .difference(&declared)
            .find_map(|extra| service.networks.iter().find(|n| n.name == *extra && !n.implicit))
            .map_or_else(|| service.location.clone(), |network| network.location.clone());
        findings.push(
            Finding::new(
                Rule::RuntimeAttachment,
                location,
                format!(
                    "container of `{}` is attached to [{}] but its contract lists [{}]",
                    container.service,
                    list(&attached),
                    list(&declared)
                ),
                "make the service's `networks:` in the Compose file match the contract; if they already match, look for a `docker network connect` or an override file adding networks",
            )
            .service(&container.service),
        );
    }
    findings
}

/// Turns each source's probe outcomes into matrix cells and findings.
///
/// `results` maps a source to its probes' outcomes, or to why its probe could not run.
pub fn judge(
    mesh: &Mesh,
    containers: &[Container],
    plans: &[SourcePlan],
    results: &HashMap<String, Result<Vec<Outcome>, String>>,
) -> RuntimeOutcome {
    let mut outcome = RuntimeOutcome::default();
    for plan in plans {
        let result = results.get(&plan.source);
        for (target, port, expected, probes) in &plan.cells {
            let seen: Vec<Outcome> = match result {
                Some(Ok(outcomes)) => probes
                    .iter()
                    .map(|probe| {
                        outcomes.iter().find(|o| &o.target == probe).cloned().unwrap_or_else(|| {
                            Outcome {
                                target: probe.clone(),
                                address: None,
                                outcome: "error".into(),
                                micros: 0,
                                status: None,
                                detail: Some("the probe printed no result for it".into()),
                            }
                        })
                    })
                    .collect(),
                Some(Err(reason)) => probes
                    .iter()
                    .map(|probe| Outcome {
                        target: probe.clone(),
                        address: None,
                        outcome: "error".into(),
                        micros: 0,
                        status: None,
                        detail: Some(reason.clone()),
                    })
                    .collect(),
                None => Vec::new(),
            };
            let cell = cell(&plan.source, target, *port, *expected, seen);
            outcome.detail.push(format!(
                "probe {} -> {target}:{port}: expected {expected:?}, observed {} ({})",
                plan.source,
                cell.observed,
                cell.probes
                    .iter()
                    .map(|p| format!(
                        "{} {}{}",
                        p.target,
                        p.outcome,
                        p.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            if let Some(finding) = finding_for(mesh, containers, &cell) {
                outcome.findings.push(finding);
            }
            outcome.matrix.push(cell);
        }
    }
    outcome
        .matrix
        .sort_by(|a, b| (&a.source, &a.target, a.port).cmp(&(&b.source, &b.target, b.port)));
    outcome
}

fn cell(source: &str, target: &str, port: u16, expected: Expected, probes: Vec<Outcome>) -> Cell {
    let winner = probes.iter().find(|p| p.connected());
    let errored = probes.iter().find(|p| p.failed_to_run());
    let observed = match (winner, errored) {
        (Some(_), _) => "connected".to_owned(),
        (None, Some(_)) => "probe-error".to_owned(),
        (None, None) => {
            let kinds: BTreeSet<&str> = probes.iter().map(|p| p.outcome.as_str()).collect();
            kinds.into_iter().collect::<Vec<_>>().join("+")
        }
    };
    let shown = winner.or(errored).or_else(|| probes.iter().max_by_key(|p| p.micros));
    Cell {
        source: source.to_owned(),
        target: target.to_owned(),
        port,
        expected,
        observed,
        address: shown.and_then(|p| p.address.clone()),
        latency_ms: shown.map_or(0.0, |p| p.micros as f64 / 1000.0),
        probes,
    }
}

fn service_location(mesh: &Mesh, service: &str) -> Location {
    mesh.project.services.get(service).map(|s| s.location.clone()).unwrap_or_default()
}

fn finding_for(mesh: &Mesh, containers: &[Container], cell: &Cell) -> Option<Finding> {
    let Cell { source, target, port, .. } = cell;
    if cell.observed == "probe-error" {
        let reason =
            cell.probes.iter().find_map(|p| p.detail.clone()).unwrap_or_else(|| "no detail".into());
        return Some(
            Finding::new(
                Rule::ProbeError,
                service_location(mesh, source),
                format!("the probe {source} → {target}:{port} could not run: {reason}"),
                "see logs/validate_network_contracts_*.log; the probe image must start in the service's network namespace",
            )
            .service(source)
            .key(format!("{source}->{target}:{port}")),
        );
    }
    match cell.expected {
        Expected::Connect if cell.observed != "connected" => {
            let location = mesh
                .contracts
                .get(source)
                .and_then(|c| c.talks_to.iter().find(|e| e.service == *target && e.port == *port))
                .map_or_else(|| service_location(mesh, source), |edge| edge.location.clone());
            Some(
                Finding::new(
                    Rule::EdgeRefused,
                    location,
                    format!(
                        "declared edge {source} → {target}:{port} did not connect in the running mesh: {}",
                        cell.observed
                    ),
                    format!(
                        "check that `{target}` listens on {port} on every interface and shares a network with `{source}`; its output is in logs/services/{target}.log"
                    ),
                )
                .service(source)
            .key(format!("{source}->{target}:{port}")),
            )
        }
        Expected::Refuse if cell.observed == "connected" => {
            let address = cell.address.clone().unwrap_or_default();
            let ip = address.rsplit_once(':').map_or(address.as_str(), |(ip, _)| ip);
            let network = containers
                .iter()
                .find(|c| c.service == *target)
                .and_then(|c| c.networks.iter().find(|(_, addr)| *addr == ip))
                .map(|(network, _)| network.clone());
            let location = network
                .as_ref()
                .and_then(|network| {
                    mesh.project
                        .services
                        .get(source)?
                        .networks
                        .iter()
                        .find(|n| &n.name == network && !n.implicit)
                        .map(|n| n.location.clone())
                })
                .unwrap_or_else(|| service_location(mesh, source));
            let via = network.map(|n| format!(" on network `{n}`")).unwrap_or_default();
            Some(
                Finding::new(
                    Rule::ForbiddenConnects,
                    location,
                    format!(
                        "`{source}` connected to `{target}` at {address}{via}, which no contract allows"
                    ),
                    format!(
                        "take `{source}` or `{target}` off the shared network, or declare the edge in the contract of `{source}` (`talks_to = [\"{target}:{port}\"]`)"
                    ),
                )
                .service(source)
            .key(format!("{source}->{target}:{port}")),
            )
        }
        _ => None,
    }
}

/// The project's running service containers with their networks by Compose key.
async fn containers(docker: &Docker, mesh: &Mesh, project: &str) -> anyhow::Result<Vec<Container>> {
    // Runtime network names (`<project>_<key>`, or a `name:`) → Compose keys, by label.
    let filters =
        HashMap::from([("label".to_owned(), vec![format!("{}={project}", docker::PROJECT_LABEL)])]);
    let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
    let networks = docker.list_networks(Some(options)).await.context("failed to list networks")?;
    let keys: HashMap<String, String> = networks
        .into_iter()
        .filter_map(|network| {
            let key = network.labels?.get("com.docker.compose.network")?.clone();
            Some((network.name?, key))
        })
        .collect();

    let mut found = Vec::new();
    for summary in docker::project_containers(docker, project).await? {
        let service = docker::service_of(&summary).map(str::to_owned);
        let (Some(service), Some(id)) = (service, summary.id) else { continue };
        if summary.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
            continue;
        }
        let inspect = docker
            .inspect_container(&id, None)
            .await
            .with_context(|| format!("failed to inspect the container of {service}"))?;
        let attached = inspect.network_settings.and_then(|s| s.networks).unwrap_or_default();
        let networks = attached
            .into_iter()
            .map(|(name, endpoint)| {
                let key = keys.get(&name).cloned().unwrap_or_else(|| {
                    // An external network keeps its own name.
                    mesh.project.networks.keys().find(|key| **key == name).cloned().unwrap_or(name)
                });
                (key, endpoint.ip_address.unwrap_or_default())
            })
            .collect();
        found.push(Container { service, id, networks });
    }
    found.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(found)
}

/// Runs one source's probes in a helper container in its network namespace.
async fn run_probes(
    docker: &Docker,
    project: &str,
    image: &str,
    plan: &SourcePlan,
    timeout: Duration,
) -> Result<Vec<Outcome>, String> {
    let mut targets: Vec<String> =
        plan.cells.iter().flat_map(|(_, _, _, probes)| probes.iter().cloned()).collect();
    targets.sort();
    targets.dedup();
    let name = format!("{project}-probe-{}", plan.source);
    run_probe_container(docker, project, image, &name, &plan.container_id, &targets, timeout).await
}

/// Runs `meshgate-probe` on `targets` (`host:port` to connect, `http://…` to fetch) in a
/// helper container named `name` that joins the network namespace of `container_id`, and
/// removes the helper again. The helper carries the project's label, so teardown finds it
/// whatever happens; an `Err` says why the probe could not run, never what it saw.
pub async fn run_probe_container(
    docker: &Docker,
    project: &str,
    image: &str,
    name: &str,
    container_id: &str,
    targets: &[String],
    timeout: Duration,
) -> Result<Vec<Outcome>, String> {
    let mut command = vec!["--timeout-ms".to_owned(), timeout.as_millis().to_string()];
    command.extend(targets.iter().cloned());
    let labels = HashMap::from([
        (docker::PROJECT_LABEL.to_owned(), project.to_owned()),
        (ROLE_LABEL.to_owned(), "probe".to_owned()),
    ]);
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(command),
        labels: Some(labels),
        network_disabled: None,
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{container_id}")),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|error| format!("failed to create probe container {name}: {error}"))?;
    let result = async {
        docker
            .start_container(&created.id, None)
            .await
            .map_err(|error| format!("failed to start probe container {name}: {error}"))?;
        let code = match docker.wait_container(&created.id, None).next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => return Err(format!("failed to wait for {name}: {error}")),
            None => return Err(format!("the engine ended the wait for {name} without a status")),
        };
        let output = docker::container_logs(docker, &created.id)
            .await
            .map_err(|error| format!("{error:#}"))?;
        // The exit code decides whether the probe ran (C17); its output, what it saw.
        if code != 0 {
            return Err(format!("probe exited with {code}: {}", output.trim()));
        }
        output
            .lines()
            .map(|line| {
                serde_json::from_str::<Outcome>(line)
                    .map_err(|error| format!("unreadable probe output {line:?}: {error}"))
            })
            .collect()
    }
    .await;
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    if let Err(error) = docker.remove_container(&created.id, Some(options)).await {
        crate::term::warn(&format!("failed to remove probe container {name}: {error}"));
    }
    result
}

/// How long to wait before probing a forbidden connection again.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// The runtime half: attachments and probes on the running project.
pub async fn check(
    docker: &Docker,
    mesh: &Mesh,
    project: &str,
    probe_image: &str,
    timeout: Duration,
) -> anyhow::Result<RuntimeOutcome> {
    let containers = containers(docker, mesh, project).await?;
    let plans = plan(mesh, &containers);
    let runs = plans.iter().map(|plan| async {
        (plan.source.clone(), run_probes(docker, project, probe_image, plan, timeout).await)
    });
    let mut results: HashMap<String, Result<Vec<Outcome>, String>> =
        futures_util::future::join_all(runs).await.into_iter().collect();
    let mut outcome = judge(mesh, &containers, &plans, &results);
    // A forbidden connection is confirmed before it is reported: while the engine rewrites
    // its isolation rules for another project's network, a retried SYN can cross for a
    // moment. A real path connects again; the sources that saw one are probed once more.
    let violating: BTreeSet<String> = outcome
        .matrix
        .iter()
        .filter(|cell| cell.expected == Expected::Refuse && cell.observed == "connected")
        .map(|cell| cell.source.clone())
        .collect();
    if !violating.is_empty() {
        tokio::time::sleep(CONFIRM_AFTER).await;
        for plan in plans.iter().filter(|plan| violating.contains(&plan.source)) {
            let again = run_probes(docker, project, probe_image, plan, timeout).await;
            results.insert(plan.source.clone(), again);
        }
        outcome = judge(mesh, &containers, &plans, &results);
        let sources: Vec<String> = violating.into_iter().collect();
        outcome.detail.push(format!(
            "forbidden connections seen from {} were probed again after {CONFIRM_AFTER:?}",
            sources.join(", ")
        ));
    }
    let mut findings = check_attachments(mesh, &containers);
    findings.append(&mut outcome.findings);
    outcome.findings = findings;
    for container in &containers {
        let networks: Vec<String> =
            container.networks.iter().map(|(key, ip)| format!("{key}={ip}")).collect();
        outcome
            .detail
            .insert(0, format!("attached {}: {}", container.service, networks.join(", ")));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference mesh of this repository, as discovered from its files.
    fn reference() -> Mesh {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let config = crate::config::load(root).unwrap();
        crate::discover::discover(root, config).unwrap()
    }

    fn container(service: &str, networks: &[(&str, &str)]) -> Container {
        Container {
            service: service.into(),
            id: format!("id-{service}"),
            networks: networks.iter().map(|(k, ip)| ((*k).to_owned(), (*ip).to_owned())).collect(),
        }
    }

    fn running(gateway_networks: &[(&str, &str)]) -> Vec<Container> {
        vec![
            container("catalog", &[("backend", "10.0.1.2")]),
            container("gateway", gateway_networks),
            container("ledger", &[("data", "10.0.2.2")]),
            container("orders", &[("backend", "10.0.1.3"), ("data", "10.0.2.3")]),
        ]
    }

    fn expectations(plans: &[SourcePlan]) -> Vec<(String, String, Expected, Vec<String>)> {
        plans
            .iter()
            .flat_map(|plan| {
                plan.cells.iter().map(|(target, _, expected, probes)| {
                    (plan.source.clone(), target.clone(), *expected, probes.clone())
                })
            })
            .collect()
    }

    fn outcome(target: &str, result: &str) -> Outcome {
        Outcome {
            target: target.into(),
            address: Some(target.replace("ledger", "10.0.2.2").replace("catalog", "10.0.1.2")),
            outcome: result.into(),
            micros: 300,
            status: None,
            detail: None,
        }
    }

    #[test]
    fn edges_are_probed_by_name_and_forbidden_pairs_at_every_address() {
        let mesh = reference();
        let containers = running(&[("edge", "10.0.0.2"), ("backend", "10.0.1.4")]);
        let cells = expectations(&plan(&mesh, &containers));
        let find = |source: &str, target: &str| {
            cells.iter().find(|c| c.0 == source && c.1 == target).cloned().unwrap()
        };
        assert_eq!(find("gateway", "catalog").2, Expected::Connect);
        assert_eq!(find("gateway", "catalog").3, ["catalog:8080"]);
        assert_eq!(find("orders", "ledger").3, ["ledger:8080"]);
        // Forbidden probes target the container's own addresses, never a bridge gateway (C07).
        assert_eq!(find("gateway", "ledger").2, Expected::Refuse);
        assert_eq!(find("gateway", "ledger").3, ["10.0.2.2:8080"]);
        assert_eq!(find("catalog", "ledger").2, Expected::Refuse);
        assert_eq!(find("ledger", "orders").3, ["10.0.1.3:8080", "10.0.2.3:8080"]);
        // The other direction of a declared edge shares its network: measured, not judged.
        assert_eq!(find("catalog", "orders").2, Expected::Incidental);
        assert_eq!(find("ledger", "orders").2, Expected::Incidental);
        assert_eq!(find("ledger", "catalog").2, Expected::Refuse);
    }

    #[test]
    fn a_probe_that_could_not_run_is_an_error_never_a_refusal() {
        let mesh = reference();
        let containers = running(&[("edge", "10.0.0.2"), ("backend", "10.0.1.4")]);
        let plans: Vec<SourcePlan> =
            plan(&mesh, &containers).into_iter().filter(|p| p.source == "gateway").collect();
        let results = HashMap::from([(
            "gateway".to_owned(),
            Err("probe exited with 127: exec /meshgate-probe: no such file".to_owned()),
        )]);
        let judged = judge(&mesh, &containers, &plans, &results);
        assert!(judged.matrix.iter().all(|cell| cell.observed == "probe-error"));
        assert!(
            judged.findings.iter().all(|f| f.rule == Rule::ProbeError),
            "{:?}",
            judged.findings
        );
        assert!(!judged.findings.is_empty());
    }

    #[test]
    fn a_forbidden_connection_points_at_the_attachment_and_a_refused_edge_at_the_contract() {
        let mesh = reference();
        let containers =
            running(&[("edge", "10.0.0.2"), ("backend", "10.0.1.4"), ("data", "10.0.2.9")]);
        let plans: Vec<SourcePlan> =
            plan(&mesh, &containers).into_iter().filter(|p| p.source == "gateway").collect();
        let results = HashMap::from([(
            "gateway".to_owned(),
            Ok(vec![
                outcome("catalog:8080", "refused"),
                outcome("orders:8080", "connected"),
                outcome("10.0.2.2:8080", "connected"),
            ]),
        )]);
        let judged = judge(&mesh, &containers, &plans, &results);
        let rules: Vec<(Rule, String)> = judged
            .findings
            .iter()
            .map(|f| (f.rule, f.location.file.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            rules,
            [
                (Rule::EdgeRefused, "Cargo.toml".to_owned()),
                (Rule::ForbiddenConnects, "compose.yaml".to_owned())
            ]
        );
        let forbidden = &judged.findings[1];
        assert!(forbidden.message.contains("network `data`"), "{}", forbidden.message);

        // The reference attachments match every contract; the extra `data` does not.
        assert!(check_attachments(&mesh, &running(&[("edge", "a"), ("backend", "b")])).is_empty());
        let attachments = check_attachments(&mesh, &containers);
        assert_eq!(attachments.len(), 1);
        assert_eq!(attachments[0].rule, Rule::RuntimeAttachment);
    }
}
