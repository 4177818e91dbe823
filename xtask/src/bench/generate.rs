//! Generated meshes for the benchmark: a Compose file, a meshgate.toml holding every service's
//! contract under `[external.<name>]`, and an empty Cargo workspace, so the folder is a
//! repository of its own whose static network gate gives no finding.
//!
//! The shape follows what the gates read in a real mesh: each service joins two to four
//! networks of a ring (so neighbours overlap), waits for every service it talks to with
//! `condition: service_healthy`, has a healthcheck, and takes its settings from an anchor
//! through a merge key; variables with defaults (`${VAR:-default}`) set the image tag, the
//! health interval and the published ports of the few public services. Least privilege holds:
//! every two services that share a network have a declared edge, from the later service to the
//! earlier one, so the dependencies form no cycle.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

const DOMAINS: &[&str] = &[
    "accounts",
    "billing",
    "catalog",
    "checkout",
    "inventory",
    "ledger",
    "media",
    "notify",
    "orders",
    "payments",
    "pricing",
    "reviews",
    "search",
    "shipping",
    "tax",
    "users",
];

/// Roles of services that are not public, with the port each listens on.
const ROLES: &[(&str, u16)] = &[("api", 8080), ("worker", 8080), ("cache", 6379), ("store", 5432)];

/// One service in every this many is public and publishes a port.
const PUBLIC_EVERY: usize = 50;

/// The first host port public services publish on.
const FIRST_HOST_PORT: usize = 20000;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshSpec {
    pub services: usize,
    pub networks: usize,
    pub seed: u64,
}

impl MeshSpec {
    /// The issue's proportions: 40 networks for 500 services, at least 4.
    pub fn for_size(services: usize, seed: u64) -> MeshSpec {
        MeshSpec { services, networks: (services * 40).div_ceil(500).max(4), seed }
    }
}

/// A generated mesh, as text.
#[derive(Clone, Debug)]
pub struct GeneratedMesh {
    pub compose: String,
    pub config: String,
    /// Declared edges (`talks_to` entries) over all services.
    pub edges: usize,
}

/// A small deterministic generator (SplitMix64): the same seed gives the same mesh.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` is small, so the modulo bias does not matter here.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

struct ServiceSpec {
    name: String,
    port: u16,
    public: bool,
    /// Indexes into the network list, ascending.
    networks: Vec<usize>,
    /// Indexes of earlier services it talks to, ascending.
    talks_to: Vec<usize>,
}

fn network_name(index: usize) -> String {
    format!("net-{index:02}")
}

/// One network in five is internal (no route out), like the data networks of a real mesh.
fn is_internal(network: usize) -> bool {
    network % 5 == 4
}

/// Generates the mesh `spec` describes.
pub fn generate(spec: MeshSpec) -> GeneratedMesh {
    let services = plan(spec);
    GeneratedMesh {
        compose: render_compose(spec, &services),
        config: render_config(spec, &services),
        edges: services.iter().map(|service| service.talks_to.len()).sum(),
    }
}

/// Writes the mesh into `dir` (created if needed) and returns its meshgate.toml.
pub fn write(spec: MeshSpec, dir: &Path) -> anyhow::Result<GeneratedMesh> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mesh = generate(spec);
    // No service is a crate: an empty workspace keeps cargo from looking further up.
    let files = [
        ("Cargo.toml", "# A generated mesh: every contract is in meshgate.toml.\n[workspace]\n"),
        ("compose.yaml", mesh.compose.as_str()),
        ("meshgate.toml", mesh.config.as_str()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(mesh)
}

fn plan(spec: MeshSpec) -> Vec<ServiceSpec> {
    let mut rng = SplitMix64(spec.seed);
    let width = spec.services.saturating_sub(1).to_string().len().max(3);
    let network_count = spec.networks.max(1);
    let mut services: Vec<ServiceSpec> = Vec::with_capacity(spec.services);
    for index in 0..spec.services {
        let domain = DOMAINS[rng.below(DOMAINS.len())];
        let home = rng.below(network_count);
        let joined = match rng.below(20) {
            0..10 => 2,
            10..17 => 3,
            _ => 4,
        };
        let networks: BTreeSet<usize> =
            (0..joined.min(network_count)).map(|step| (home + step) % network_count).collect();
        let networks: Vec<usize> = networks.into_iter().collect();
        // The last service, and one in fifty before it, is a public gateway, unless every
        // network it joins is internal (its port would not be reachable).
        let public = (spec.services - 1 - index).is_multiple_of(PUBLIC_EVERY)
            && networks.iter().any(|network| !is_internal(*network));
        let (role, port) = if public { ("gateway", 8080) } else { ROLES[rng.below(ROLES.len())] };
        let talks_to = services
            .iter()
            .enumerate()
            .filter(|(_, earlier)| earlier.networks.iter().any(|n| networks.contains(n)))
            .map(|(earlier, _)| earlier)
            .collect();
        services.push(ServiceSpec {
            name: format!("{domain}-{role}-{index:0width$}"),
            port,
            public,
            networks,
            talks_to,
        });
    }
    services
}

const COMPOSE_PRELUDE: &str = r#"x-logging: &logging
  driver: json-file
  options:
    max-size: "10m"
    max-file: "3"

x-service: &service
  restart: on-failure:3
  pull_policy: never
  read_only: true
  cap_drop: [ALL]
  security_opt: ["no-new-privileges:true"]
  logging: *logging
  healthcheck:
    test: ["CMD", "/app", "healthcheck"]
    interval: ${MESHGATE_BENCH_HEALTH_INTERVAL:-5s}
    timeout: 2s
    retries: 3
    start_period: 10s

services:
"#;

fn render_compose(spec: MeshSpec, services: &[ServiceSpec]) -> String {
    let mut out = String::with_capacity(services.len() * 1024);
    let _ = writeln!(
        out,
        "# Generated by `cargo xtask bench`: {} services over {} networks (seed {}).",
        spec.services, spec.networks, spec.seed
    );
    out.push_str(COMPOSE_PRELUDE);
    for (index, service) in services.iter().enumerate() {
        let name = &service.name;
        let image = name.rsplit_once('-').map_or(name.as_str(), |(prefix, _)| prefix);
        let _ = writeln!(out, "  {name}:\n    <<: *service");
        let _ = writeln!(out, "    image: meshgate/bench-{image}:${{MESHGATE_BENCH_TAG:-local}}");
        let _ = writeln!(out, "    environment:\n      RUST_LOG: ${{MESHGATE_BENCH_LOG:-info}}");
        let _ = writeln!(out, "      LISTEN_PORT: \"{}\"", service.port);
        if service.public {
            let variable = format!("{}_PORT", name.to_uppercase().replace('-', "_"));
            let host_port = FIRST_HOST_PORT + index;
            let _ = writeln!(
                out,
                "    ports:\n      - \"${{MESHGATE_BENCH_BIND:-127.0.0.1}}:${{{variable}:-{host_port}}}:{}\"",
                service.port
            );
        }
        let networks: Vec<String> = service.networks.iter().map(|n| network_name(*n)).collect();
        let _ = writeln!(out, "    networks: [{}]", networks.join(", "));
        if !service.talks_to.is_empty() {
            out.push_str("    depends_on:\n");
            for target in &service.talks_to {
                let _ = writeln!(
                    out,
                    "      {}: {{condition: service_healthy}}",
                    services[*target].name
                );
            }
        }
        out.push('\n');
    }
    out.push_str("networks:\n");
    for network in 0..spec.networks {
        let name = network_name(network);
        if is_internal(network) {
            let _ = writeln!(out, "  {name}:\n    internal: true");
        } else {
            let _ = writeln!(out, "  {name}: {{}}");
        }
    }
    out
}

fn render_config(spec: MeshSpec, services: &[ServiceSpec]) -> String {
    let mut out = String::with_capacity(services.len() * 512);
    let _ = writeln!(
        out,
        "# Generated by `cargo xtask bench`: {} services over {} networks (seed {}).\n\n[mesh]\ncompose_files = [\"compose.yaml\"]\nmode = \"strict\"\n",
        spec.services, spec.networks, spec.seed
    );
    for network in 0..spec.networks {
        let _ = writeln!(out, "[networks.{}]", network_name(network));
        if is_internal(network) {
            let _ = writeln!(out, "purpose = \"data of the services on it\"\ninternal = true\n");
        } else {
            let _ = writeln!(out, "purpose = \"requests between the services on it\"\n");
        }
    }
    out.push_str(
        "# Every two services that share a network declare an edge.\n[policy]\nleast_privilege = true\n\n",
    );
    for service in services {
        let quoted = |items: Vec<String>| {
            items.iter().map(|item| format!("\"{item}\"")).collect::<Vec<_>>().join(", ")
        };
        let networks = quoted(service.networks.iter().map(|n| network_name(*n)).collect());
        let talks_to = quoted(
            service
                .talks_to
                .iter()
                .map(|target| format!("{}:{}", services[*target].name, services[*target].port))
                .collect(),
        );
        let _ = writeln!(
            out,
            "[external.{}]\npublic = {}\nlisten = [{}]\nnetworks = [{networks}]\ntalks_to = [{talks_to}]\nreadiness = \"/readyz\"\n",
            service.name, service.public, service.port
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mesh() {
        let spec = MeshSpec::for_size(30, 7);
        let (first, second) = (generate(spec), generate(spec));
        assert_eq!(first.compose, second.compose);
        assert_eq!(first.config, second.config);
        assert_ne!(first.compose, generate(MeshSpec { seed: 8, ..spec }).compose);
    }

    #[test]
    fn sizes_follow_the_issue_proportions() {
        assert_eq!(MeshSpec::for_size(500, 1).networks, 40);
        assert_eq!(MeshSpec::for_size(100, 1).networks, 8);
        assert_eq!(MeshSpec::for_size(10, 1).networks, 4);
    }

    #[test]
    fn every_service_joins_two_to_four_networks_and_some_publish() {
        let services = plan(MeshSpec::for_size(500, 1));
        assert!(services.iter().all(|s| (2..=4).contains(&s.networks.len())));
        assert_eq!(services.iter().filter(|s| s.public).count(), 10);
        let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 500, "names are unique");
    }
}
