//! Contracts inferred from the Compose file as it stands (`--infer-contracts`), for services
//! that declare none: third-party meshes can then run the gate, and a team can start its
//! contracts from what `cargo xtask discover --infer-contracts` prints.
//!
//! For a service without a contract: `networks` are the networks it joins (`default` when it
//! names none; none when it shares a namespace), `listen` is its `expose` and published
//! container ports plus the ports declared edges name on it where their source's `depends_on`
//! names it too, `public` is whether it publishes ports, `talks_to` is every `depends_on`
//! target on each TCP port that target listens on, and `network_mode` is copied. The network
//! gate treats these contracts as descriptions, not intent (see `gates::network_contracts`).

use std::collections::{BTreeMap, BTreeSet};

use crate::compose::Service;
use crate::contract::{Contract, Edge, Listen};
use crate::discover::Mesh;

/// Adds an inferred contract for every active service that has none.
pub fn infer_contracts(mesh: &mut Mesh) {
    let project = &mesh.project;
    let missing: Vec<&Service> =
        project.active_services().filter(|s| !mesh.contracts.contains_key(&s.name)).collect();

    // Listen first: the edges of every inferred contract need their targets' ports.
    let mut listen: BTreeMap<&str, BTreeSet<Listen>> = BTreeMap::new();
    for service in &missing {
        listen.insert(&service.name, listened_in_file(service));
    }
    for source in mesh.contracts.values() {
        let Some(source_service) = project.services.get(&source.service) else { continue };
        for edge in &source.talks_to {
            let depends = source_service.depends_on.iter().any(|d| d.service == edge.service);
            if let Some(ports) = listen.get_mut(edge.service.as_str()).filter(|_| depends) {
                ports.insert(Listen { port: edge.port, protocol: "tcp".into() });
            }
        }
    }

    let mut inferred = Vec::new();
    for service in &missing {
        let mut talks_to = Vec::new();
        for dependency in service.depends_on.iter().filter(|d| !d.implicit) {
            let ports = match (
                listen.get(dependency.service.as_str()),
                mesh.contracts.get(&dependency.service),
            ) {
                (Some(ports), _) => ports.iter().cloned().collect(),
                (None, Some(contract)) => contract.listen.clone(),
                (None, None) => Vec::new(),
            };
            for port in ports.iter().filter(|listen| listen.protocol == "tcp") {
                talks_to.push(Edge {
                    service: dependency.service.clone(),
                    port: port.port,
                    location: dependency.location.clone(),
                });
            }
        }
        let networks: Vec<String> =
            service.networks.iter().map(|network| network.name.clone()).collect();
        inferred.push(Contract {
            service: service.name.clone(),
            public: !service.ports.is_empty(),
            listen: listen.get(service.name.as_str()).into_iter().flatten().cloned().collect(),
            network_locations: service.networks.iter().map(|n| n.location.clone()).collect(),
            networks,
            networks_location: service.location.clone(),
            talks_to,
            aliases: {
                let mut aliases: Vec<String> =
                    service.networks.iter().flat_map(|n| n.aliases.iter().cloned()).collect();
                aliases.sort();
                aliases.dedup();
                aliases
            },
            readiness: None,
            network_mode: service.network_mode.as_ref().map(|(mode, _)| mode.clone()),
            coverage_lines: None,
            coverage_regions: None,
            coverage_location: None,
            location: service.location.clone(),
            package: None,
            inferred: true,
        });
    }
    for contract in inferred {
        mesh.contracts.insert(contract.service.clone(), contract);
    }
}

/// What the file shows a service listening on: `expose` and published container ports.
fn listened_in_file(service: &Service) -> BTreeSet<Listen> {
    let exposed = service.expose.iter().map(|e| (e.low, e.high, e.protocol.as_str()));
    let published = service.ports.iter().map(|p| (p.target.0, p.target.1, p.protocol.as_str()));
    exposed
        .chain(published)
        .flat_map(|(low, high, protocol)| {
            (low..=high).map(move |port| Listen { port, protocol: protocol.to_owned() })
        })
        .collect()
}

/// The inferred contracts as meshgate.toml `[external.<name>]` tables, ready to paste.
pub fn render_toml(mesh: &Mesh) -> String {
    let mut out = String::new();
    for contract in mesh.contracts.values().filter(|contract| contract.inferred) {
        let mut table = toml::Table::new();
        table.insert("public".into(), contract.public.into());
        let listen: Vec<toml::Value> = contract
            .listen
            .iter()
            .map(|listen| match listen.protocol.as_str() {
                "tcp" => toml::Value::Integer(i64::from(listen.port)),
                protocol => toml::Value::String(format!("{}/{protocol}", listen.port)),
            })
            .collect();
        table.insert("listen".into(), listen.into());
        table.insert("networks".into(), contract.networks.clone().into());
        let talks_to: Vec<String> = contract
            .talks_to
            .iter()
            .map(|edge| format!("{}:{}", edge.service, edge.port))
            .collect();
        table.insert("talks_to".into(), talks_to.into());
        if !contract.aliases.is_empty() {
            table.insert("aliases".into(), contract.aliases.clone().into());
        }
        if let Some(mode) = &contract.network_mode {
            table.insert("network_mode".into(), mode.clone().into());
        }
        let mut external = toml::Table::new();
        external.insert(contract.service.clone(), table.into());
        let mut document = toml::Table::new();
        document.insert("external".into(), external.into());

        out.push_str(&format!("# inferred from {}\n", contract.location.relative_to(&mesh.root)));
        let service = mesh.project.services.get(&contract.service);
        for dependency in service.map(|s| s.depends_on.as_slice()).unwrap_or_default() {
            let has_edge = contract.talks_to.iter().any(|edge| edge.service == dependency.service);
            if !dependency.implicit && !has_edge {
                out.push_str(&format!(
                    "# depends on `{}`, whose ports the Compose file does not show: add \"{}:<port>\" to talks_to\n",
                    dependency.service, dependency.service
                ));
            }
        }
        out.push_str(&toml::to_string(&document).unwrap_or_default());
        out.push('\n');
    }
    out
}
