//! The network contracts gate, static half: the Compose file against every service's
//! contract, with no Docker needed. Who may talk to whom, on which ports and networks.
//!
//! Contracts inferred with `--infer-contracts` describe the file as it stands, so the rules
//! that judge declared intent skip them: their edges are not checked for reachability or a
//! healthy dependency, and least privilege judges only pairs where at least one side has a
//! declared contract. Rules about the file alone (host network, port conflicts, unset
//! variables, internal networks, …) apply to every service.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::compose::{Port, Project, Service};
use crate::contract::Contract;
use crate::discover::Mesh;
use crate::finding::{Finding, Rule};
use crate::location::Location;

/// Every static network finding for the mesh.
pub fn check_static(mesh: &Mesh) -> Vec<Finding> {
    let mut findings = crate::discover::check(mesh);
    let project = &mesh.project;
    for service in project.active_services() {
        let Some(contract) = mesh.contracts.get(&service.name) else { continue };
        check_namespace(service, contract, &mut findings);
        check_networks(mesh, service, contract, &mut findings);
        check_ports(project, service, contract, &mut findings);
        check_dependencies(mesh, service, contract, &mut findings);
    }
    check_internal_networks(mesh, &mut findings);
    check_port_conflicts(project, &mut findings);
    if mesh.config.least_privilege {
        check_least_privilege(mesh, &mut findings);
    }
    findings.sort_by(|a, b| (&a.location, a.rule).cmp(&(&b.location, b.rule)));
    findings.dedup();
    findings
}

fn check_namespace(service: &Service, contract: &Contract, findings: &mut Vec<Finding>) {
    let Some((mode, location)) = &service.network_mode else { return };
    if mode == "host" {
        findings.push(
            Finding::new(
                Rule::HostNetwork,
                location.clone(),
                format!("`{}` uses the host's network stack (`network_mode: host`)", service.name),
                "remove `network_mode: host` and attach the service to the networks of its contract",
            )
            .service(&service.name),
        );
    } else if (mode.starts_with("service:") || mode.starts_with("container:"))
        && contract.network_mode.as_deref() != Some(mode.as_str())
    {
        findings.push(
            Finding::new(
                Rule::SharedNamespace,
                location.clone(),
                format!("`{}` joins another network namespace (`network_mode: {mode}`) its contract does not declare", service.name),
                format!("declare `network_mode = \"{mode}\"` in the contract if this is intended, or remove it"),
            )
            .service(&service.name),
        );
    }
}

fn service_networks(service: &Service) -> BTreeSet<&str> {
    service.networks.iter().map(|network| network.name.as_str()).collect()
}

/// The networks a service's traffic uses: its own, or those of the service whose namespace
/// it joins (`network_mode: service:x`, followed through chains); none of the project's with
/// `network_mode: none` or `bridge`. `None` when that cannot be judged from the file: the
/// host's stack or another container's namespace.
fn effective_networks<'a>(project: &'a Project, service: &'a Service) -> Option<BTreeSet<&'a str>> {
    let mut current = service;
    for _ in 0..=project.services.len() {
        let Some((mode, _)) = &current.network_mode else {
            return Some(service_networks(current));
        };
        if matches!(mode.as_str(), "none" | "bridge") {
            return Some(BTreeSet::new());
        }
        current = project.services.get(mode.strip_prefix("service:")?)?;
    }
    None
}

/// Sorts by where things are written: Compose files in override order, then line and column.
fn file_order(project: &Project, location: &Location) -> (usize, u32, u32) {
    let file = project.files.iter().position(|file| *file == location.file);
    (file.unwrap_or(usize::MAX), location.line, location.column)
}

fn check_networks(
    mesh: &Mesh,
    service: &Service,
    contract: &Contract,
    findings: &mut Vec<Finding>,
) {
    for (index, network) in contract.networks.iter().enumerate() {
        if !mesh.project.networks.contains_key(network) {
            let location = contract
                .network_locations
                .get(index)
                .unwrap_or(&contract.networks_location)
                .clone();
            findings.push(
                Finding::new(
                    Rule::UnknownNetwork,
                    location,
                    format!("contract of `{}` names network `{network}`, which the Compose file does not define", service.name),
                    format!("define `{network}` under the top-level `networks:` of the Compose file, or fix the contract"),
                )
                .service(&service.name),
            );
        }
    }
    let declared: BTreeSet<&str> = contract.networks.iter().map(String::as_str).collect();
    match &service.network_mode {
        // Namespace sharing and the host's stack are judged on their own.
        Some((mode, _)) if !matches!(mode.as_str(), "none" | "bridge") => return,
        // No network of the project at all: every network the contract lists is missing.
        Some((mode, location)) => {
            for missing in declared.iter().filter(|n| mesh.project.networks.contains_key(**n)) {
                findings.push(
                    Finding::new(
                        Rule::NetworkMismatch,
                        location.clone(),
                        format!(
                            "`{}` uses `network_mode: {mode}`, so it is not attached to network `{missing}`, which its contract lists",
                            service.name
                        ),
                        format!("remove `network_mode: {mode}` and attach the service to `{missing}`, or remove `{missing}` from the contract"),
                    )
                    .service(&service.name),
                );
            }
            return;
        }
        None => {}
    }
    let attached = service_networks(service);
    for extra in attached.difference(&declared) {
        let location = service
            .networks
            .iter()
            .find(|n| n.name == *extra)
            .map(|n| n.location.clone())
            .unwrap_or_else(|| service.location.clone());
        findings.push(
            Finding::new(
                Rule::NetworkMismatch,
                location,
                format!("`{}` is attached to network `{extra}`, which its contract does not list", service.name),
                format!("remove `{extra}` from the service's `networks:`, or add it to the contract's `networks` at {}", contract.networks_location.relative_to(&mesh.root)),
            )
            .service(&service.name),
        );
    }
    // An alias is a name other services reach this one by: it may not pose as another.
    for network in &service.networks {
        for alias in network.aliases.iter().filter(|alias| !contract.aliases.contains(alias)) {
            findings.push(
                Finding::new(
                    Rule::UndeclaredAlias,
                    network.location.clone(),
                    format!(
                        "`{}` answers to `{alias}` on network `{}`, a name its contract does not declare",
                        service.name, network.name
                    ),
                    format!("add \"{alias}\" to the contract's `aliases`, or remove it from the service's `networks.{}.aliases`", network.name),
                )
                .service(&service.name),
            );
        }
    }
    // A network the file does not define is reported once, as unknown.
    let defined = |network: &&&str| mesh.project.networks.contains_key(**network);
    for missing in declared.difference(&attached).filter(defined) {
        findings.push(
            Finding::new(
                Rule::NetworkMismatch,
                service.location.clone(),
                format!(
                    "`{}` is not attached to network `{missing}`, which its contract lists",
                    service.name
                ),
                format!("add `{missing}` to the service's `networks:` in the Compose file"),
            )
            .service(&service.name),
        );
    }
}

fn check_ports(
    project: &Project,
    service: &Service,
    contract: &Contract,
    findings: &mut Vec<Finding>,
) {
    let ports_path = format!("services.{}.ports", service.name);
    for unset in project.unset_variables.iter().filter(|unset| unset.path.starts_with(&ports_path))
    {
        findings.push(
            Finding::new(
                Rule::PortUnsetVariable,
                unset.location.clone(),
                format!(
                    "published port of `{}` depends on unset variable {}",
                    service.name, unset.variable
                ),
                format!(
                    "set {} in the environment or `.env`, or give it a default: `${{{}:-<port>}}`",
                    unset.variable, unset.variable
                ),
            )
            .service(&service.name),
        );
    }
    let all_internal = !service.networks.is_empty()
        && service
            .networks
            .iter()
            .all(|n| project.networks.get(&n.name).is_some_and(|network| network.internal));
    for port in &service.ports {
        if port.sexagesimal_risk {
            findings.push(
                Finding::new(
                    Rule::UnquotedPort,
                    port.location.clone(),
                    format!("unquoted port mapping {} of `{}`: YAML 1.1 readers take it for a base-60 number", port.raw, service.name),
                    format!("quote it: \"{}\"", port.raw),
                )
                .service(&service.name),
            );
        }
        if !contract.public {
            findings.push(
                Finding::new(
                    Rule::PublishNotPublic,
                    port.location.clone(),
                    format!("`{}` publishes {} on the host but its contract is not public", service.name, port.raw),
                    "remove the `ports:` entry (use `expose:` for the mesh), or set `public = true` in the contract",
                )
                .service(&service.name),
            );
        } else if !(port.target.0..=port.target.1)
            .all(|target| contract.listens_on(target, &port.protocol))
        {
            findings.push(
                Finding::new(
                    Rule::PublishNotListened,
                    port.location.clone(),
                    format!("`{}` publishes container port {}/{}, which its contract does not listen on", service.name, port.target.0, port.protocol),
                    format!("publish a port of the contract's `listen`, or add {} to it", port.target.0),
                )
                .service(&service.name),
            );
        }
        if all_internal {
            findings.push(
                Finding::new(
                    Rule::PublishedOnInternalOnly,
                    port.location.clone(),
                    format!("`{}` publishes {} but is attached only to internal networks; the port will not be reachable", service.name, port.raw),
                    "attach the service to a non-internal network as well, or stop publishing the port",
                )
                .service(&service.name),
            );
        }
    }
}

fn check_dependencies(
    mesh: &Mesh,
    service: &Service,
    contract: &Contract,
    findings: &mut Vec<Finding>,
) {
    let project = &mesh.project;
    for dependency in service.depends_on.iter().filter(|d| d.required) {
        if let Some(target) = project.services.get(&dependency.service).filter(|t| !t.active) {
            findings.push(
                Finding::new(
                    Rule::DependencyDisabled,
                    dependency.location.clone(),
                    format!(
                        "`{}` depends_on `{}`, which is disabled (profiles: [{}]; active: [{}])",
                        service.name,
                        target.name,
                        target.profiles.join(", "),
                        project.profiles.join(", ")
                    ),
                    "activate one of its profiles in meshgate.toml `mesh.profiles`, or mark the dependency `required: false`".to_string(),
                )
                .service(&service.name),
            );
        }
    }
    // Inferred edges mirror `depends_on` as it stands: there is no declared intent to check.
    if contract.inferred {
        return;
    }
    for edge in &contract.talks_to {
        let Some(target) = project.services.get(&edge.service) else {
            findings.push(
                Finding::new(
                    Rule::EdgeUnreachable,
                    edge.location.clone(),
                    format!(
                        "`{}` may talk to `{}:{}`, but no service `{}` is in the mesh",
                        service.name, edge.service, edge.port, edge.service
                    ),
                    "fix the edge in `talks_to`, or add the service to the Compose file",
                )
                .service(&service.name),
            );
            continue;
        };
        if !target.active {
            // A dependency on it is already reported as disabled, or it is optional
            // (`required: false`) and the edge is dropped with the service.
            if service.depends_on.iter().any(|d| d.service == edge.service) {
                continue;
            }
            findings.push(
                Finding::new(
                    Rule::EdgeUnreachable,
                    edge.location.clone(),
                    format!(
                        "`{}` may talk to `{}:{}`, but `{}` is disabled (profiles: [{}]; active: [{}])",
                        service.name,
                        edge.service,
                        edge.port,
                        edge.service,
                        target.profiles.join(", "),
                        project.profiles.join(", ")
                    ),
                    "activate one of its profiles in meshgate.toml `mesh.profiles`, or remove the edge",
                )
                .service(&service.name),
            );
            continue;
        };
        let networks =
            effective_networks(project, service).zip(effective_networks(project, target));
        if let Some((ours, theirs)) = networks
            && ours.is_disjoint(&theirs)
        {
            findings.push(
                Finding::new(
                    Rule::EdgeUnreachable,
                    edge.location.clone(),
                    format!(
                        "edge {} → {}:{} cannot connect: the two services share no network",
                        service.name, edge.service, edge.port
                    ),
                    format!(
                        "attach `{}` and `{}` to a common network in the Compose file",
                        service.name, edge.service
                    ),
                )
                .service(&service.name),
            );
        }
        if !target_listens(mesh, target, edge.port) {
            findings.push(
                Finding::new(
                    Rule::EdgeUnreachable,
                    edge.location.clone(),
                    format!(
                        "edge {} → {}:{}: `{}` does not listen on {}",
                        service.name, edge.service, edge.port, edge.service, edge.port
                    ),
                    format!(
                        "fix the port in `talks_to`, or add {} to the `listen` of `{}`",
                        edge.port, edge.service
                    ),
                )
                .service(&service.name),
            );
        }
        let healthy = service
            .depends_on
            .iter()
            .any(|d| d.service == edge.service && d.condition == "service_healthy");
        if !healthy {
            let location = service
                .depends_on
                .iter()
                .find(|d| d.service == edge.service)
                .map_or_else(|| service.location.clone(), |d| d.location.clone());
            findings.push(
                Finding::new(
                    Rule::DependencyNotHealthy,
                    location,
                    format!(
                        "`{}` talks to `{}` but does not wait for it to be healthy",
                        service.name, edge.service
                    ),
                    format!(
                        "add `depends_on: {{{}: {{condition: service_healthy}}}}` to `{}`",
                        edge.service, service.name
                    ),
                )
                .service(&service.name),
            );
        }
    }
}

/// Whether `target` listens on TCP `port`: by its contract, else by its Compose ports.
fn target_listens(mesh: &Mesh, target: &Service, port: u16) -> bool {
    match mesh.contracts.get(&target.name) {
        Some(contract) => contract.listens_on(port, "tcp"),
        None => {
            target.expose.iter().any(|e| e.low <= port && port <= e.high && e.protocol == "tcp")
                || target.ports.iter().any(|p: &Port| p.contains_target(port))
        }
    }
}

fn check_internal_networks(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for (name, policy) in &mesh.config.networks {
        let Some(network) = mesh.project.networks.get(name) else {
            findings.push(Finding::new(
                Rule::UnknownNetwork,
                policy.location.clone(),
                format!("meshgate.toml describes network `{name}`, which the Compose file does not define"),
                format!("fix the name in `[networks.{name}]`, or define `{name}` under the Compose file's `networks:`"),
            ));
            continue;
        };
        if policy.internal && !network.internal && !network.external {
            findings.push(Finding::new(
                Rule::NetworkNotInternal,
                network.location.clone(),
                format!(
                    "network `{name}` ({}) must be internal but is not",
                    if policy.purpose.is_empty() { "no purpose given" } else { &policy.purpose }
                ),
                format!("set `internal: true` on network `{name}` in the Compose file"),
            ));
        }
    }
}

/// Two published ports clash when protocol and port overlap and the addresses can collide;
/// an unspecified address collides with every address.
fn check_port_conflicts(project: &Project, findings: &mut Vec<Finding>) {
    let mut published: Vec<(&Service, &Port)> = project
        .active_services()
        .flat_map(|service| service.ports.iter().map(move |port| (service, port)))
        .filter(|(_, port)| port.published.is_some())
        .collect();
    // The mapping written later is the one that clashes.
    published.sort_by_key(|(_, port)| file_order(project, &port.location));
    for (index, (service_a, a)) in published.iter().enumerate() {
        for (service_b, b) in &published[index + 1..] {
            let (Some(pa), Some(pb)) = (a.published, b.published) else { continue };
            let overlap = pa.0 <= pb.1 && pb.0 <= pa.1;
            if overlap
                && a.protocol == b.protocol
                && addresses_collide(a.host_ip.as_deref(), b.host_ip.as_deref())
            {
                findings.push(
                    Finding::new(
                        Rule::PortConflict,
                        b.location.clone(),
                        format!(
                            "`{}` publishes {} which clashes with {} of `{}` at {}",
                            service_b.name,
                            b.raw,
                            a.raw,
                            service_a.name,
                            a.location.relative_to(&project.project_dir)
                        ),
                        "publish on another host port, or bind each to a different address",
                    )
                    .service(&service_b.name),
                );
            }
        }
    }
}

fn addresses_collide(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return true };
    let v6 = |ip: &str| ip.contains(':');
    if v6(a) != v6(b) {
        return false;
    }
    a == b || matches!(a, "0.0.0.0" | "::") || matches!(b, "0.0.0.0" | "::")
}

/// Pairs of services that share a network with no edge declared in either direction. Only
/// pairs where at least one side has a declared contract are judged: with inferred contracts
/// or none (already a `discovery/no-contract` finding) on both sides, nothing was declared.
///
/// Every pair is looked at, so the per-pair work is kept to a few word operations: networks
/// are numbered in name order and held as bit sets, and edges as a set of index pairs.
fn check_least_privilege(mesh: &Mesh, findings: &mut Vec<Finding>) {
    // FIXME: a service in another's namespace (`network_mode: service:x`) is not judged here;
    // it reaches whatever its host service reaches.
    let mut services: Vec<&Service> =
        mesh.project.active_services().filter(|s| s.network_mode.is_none()).collect();
    // The later of two services in the file is the one that joined the other's network.
    services.sort_by_key(|service| file_order(&mesh.project, &service.location));
    let declared =
        |service: &Service| mesh.contracts.get(&service.name).is_some_and(|c| !c.inferred);
    let network_names: Vec<&str> = services
        .iter()
        .flat_map(|service| service.networks.iter().map(|network| network.name.as_str()))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .collect();
    let words = network_names.len().div_ceil(64);
    let network_sets: Vec<Vec<u64>> = services
        .iter()
        .map(|service| {
            let mut set = vec![0u64; words];
            for network in &service.networks {
                if let Ok(id) = network_names.binary_search(&network.name.as_str()) {
                    set[id / 64] |= 1 << (id % 64);
                }
            }
            set
        })
        .collect();
    let index_of: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(index, service)| (service.name.as_str(), index))
        .collect();
    let mut edges: HashSet<(usize, usize)> = HashSet::new();
    for (from, service) in services.iter().enumerate() {
        let Some(contract) = mesh.contracts.get(&service.name) else { continue };
        for edge in &contract.talks_to {
            if let Some(&to) = index_of.get(edge.service.as_str()) {
                edges.insert((from, to));
            }
        }
    }
    for (index, a) in services.iter().enumerate() {
        for (later, b) in services.iter().enumerate().skip(index + 1) {
            // The first network both join, in name order.
            let Some(shared) = network_sets[index]
                .iter()
                .zip(&network_sets[later])
                .enumerate()
                .find(|(_, (set_a, set_b))| *set_a & *set_b != 0)
                .map(|(word, (set_a, set_b))| {
                    network_names[word * 64 + (set_a & set_b).trailing_zeros() as usize]
                })
            else {
                continue;
            };
            if edges.contains(&(index, later))
                || edges.contains(&(later, index))
                || !(declared(a) || declared(b))
            {
                continue;
            }
            // Point at the attachment that breaks its own contract, if one does; otherwise at
            // the later of the two.
            let outside_contract = |service: &Service| {
                mesh.contracts
                    .get(&service.name)
                    .is_some_and(|c| !c.networks.iter().any(|n| n == shared))
            };
            let culprit = if outside_contract(a) && !outside_contract(b) { a } else { b };
            let location = culprit
                .networks
                .iter()
                .find(|n| n.name == *shared)
                .map_or_else(|| culprit.location.clone(), |n| n.location.clone());
            findings.push(
                Finding::new(
                    Rule::UndeclaredReachability,
                    location,
                    format!("`{}` and `{}` share network `{shared}` but neither contract declares an edge between them", a.name, b.name),
                    format!("move one of them off `{shared}`, or declare the edge in `talks_to`; set `policy.least_privilege = false` in meshgate.toml to allow shared networks"),
                )
                .service(&culprit.name),
            );
        }
    }
}
