//! Service contracts: what each service declares about its network, read from its crate's
//! `[package.metadata.meshgate]` (found through cargo_metadata) or, for services that are not
//! crates of this workspace, from `[external.<name>]` in meshgate.toml.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{LineIndex, line_of, toml_error};
use crate::location::{InputError, InputErrors, Location};

/// The contract as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractRaw {
    /// The service's name in the Compose file; the package name when absent.
    service: Option<String>,
    /// Whether the service may publish host ports.
    #[serde(default)]
    public: bool,
    /// Ports the service listens on: `8080`, or `"5353/udp"`.
    #[serde(default)]
    listen: Vec<Spanned<toml::Value>>,
    /// Networks the service joins.
    #[serde(default)]
    networks: Vec<Spanned<String>>,
    /// Edges the service may open, as `service:port`.
    #[serde(default)]
    talks_to: Vec<Spanned<String>>,
    /// Extra DNS names of the service.
    #[serde(default)]
    aliases: Vec<String>,
    /// The HTTP path that answers 2xx when the service is ready.
    readiness: Option<String>,
    /// A declared `network_mode` (`service:<name>`), when the service shares a namespace.
    network_mode: Option<String>,
    /// Coverage thresholds overriding meshgate.toml's.
    coverage: Option<Spanned<CoverageRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoverageRaw {
    lines: Option<f64>,
    regions: Option<f64>,
}

/// A port a service listens on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Listen {
    pub port: u16,
    pub protocol: String,
}

/// An edge a service may open.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Edge {
    pub service: String,
    pub port: u16,
    #[serde(skip)]
    pub location: Location,
}

/// The crate behind a contract.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub manifest_dir: PathBuf,
    /// The binary the image runs.
    pub binary: String,
}

/// A checked contract.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Contract {
    pub service: String,
    pub public: bool,
    pub listen: Vec<Listen>,
    pub networks: Vec<String>,
    /// Where the contract lists its networks (the contract itself when it lists none).
    pub networks_location: Location,
    /// Where each of `networks` is written, in the same order.
    #[serde(skip)]
    pub network_locations: Vec<Location>,
    pub talks_to: Vec<Edge>,
    pub aliases: Vec<String>,
    pub readiness: Option<String>,
    pub network_mode: Option<String>,
    pub coverage_lines: Option<f64>,
    pub coverage_regions: Option<f64>,
    /// Where `coverage = { … }` is written, when it is.
    #[serde(skip)]
    pub coverage_location: Option<Location>,
    /// Where the contract is written.
    pub location: Location,
    pub package: Option<Package>,
    /// Inferred from the Compose file as it stands (`--infer-contracts`), not declared.
    pub inferred: bool,
}

impl Contract {
    pub fn listens_on(&self, port: u16, protocol: &str) -> bool {
        self.listen.iter().any(|listen| listen.port == port && listen.protocol == protocol)
    }

    /// Checks a raw contract; `lines` indexes the file it came from, for line numbers.
    pub fn from_raw(
        default_name: String,
        raw: ContractRaw,
        location: Location,
        file: &Path,
        lines: &LineIndex,
    ) -> Result<Contract, Vec<InputError>> {
        let mut errors = Vec::new();
        let at = |span: std::ops::Range<usize>| Location::line(file, lines.line_of(span.start));

        let mut listen = Vec::new();
        for item in &raw.listen {
            let parsed = match item.get_ref() {
                toml::Value::Integer(port) => u16::try_from(*port)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|port| (port, "tcp".to_owned())),
                toml::Value::String(text) => {
                    let (port, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
                    port.parse::<u16>().ok().filter(|p| *p > 0).zip(
                        matches!(protocol, "tcp" | "udp" | "sctp").then(|| protocol.to_owned()),
                    )
                }
                _ => None,
            };
            match parsed {
                Some((port, protocol)) => listen.push(Listen { port, protocol }),
                None => errors.push(InputError::new(
                    at(item.span()),
                    format!("`listen` entry {} is not a port", item.get_ref()),
                    "write a port number (`8080`) or a port with its protocol (`\"5353/udp\"`)",
                )),
            }
        }

        let mut talks_to = Vec::new();
        for item in &raw.talks_to {
            let parsed = item
                .get_ref()
                .rsplit_once(':')
                .and_then(|(service, port)| {
                    Some((service, port.parse::<u16>().ok().filter(|p| *p > 0)?))
                })
                .filter(|(service, _)| !service.is_empty());
            match parsed {
                Some((service, port)) => talks_to.push(Edge {
                    service: service.to_owned(),
                    port,
                    location: at(item.span()),
                }),
                None => errors.push(InputError::new(
                    at(item.span()),
                    format!("`talks_to` entry {:?} is not `service:port`", item.get_ref()),
                    "name the target service and its port, e.g. \"catalog:8080\"",
                )),
            }
        }

        let coverage_location = raw.coverage.as_ref().map(|coverage| at(coverage.span()));
        let coverage = raw.coverage.map(Spanned::into_inner).unwrap_or_default();
        for threshold in [coverage.lines, coverage.regions].into_iter().flatten() {
            if !(0.0..=100.0).contains(&threshold) {
                errors.push(InputError::new(
                    coverage_location.clone().unwrap_or_else(|| location.clone()),
                    format!("coverage threshold {threshold} is outside 0 to 100"),
                    "give a percentage such as `coverage = { lines = 80 }`",
                ));
            }
        }
        if let Some(path) = raw.readiness.as_deref().filter(|path| !path.starts_with('/')) {
            errors.push(InputError::new(
                location.clone(),
                format!("readiness path {path:?} must start with `/`"),
                "write the HTTP path, e.g. \"/readyz\"",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Contract {
            service: raw.service.unwrap_or(default_name),
            public: raw.public,
            listen,
            networks_location: raw
                .networks
                .first()
                .map_or_else(|| location.clone(), |first| at(first.span())),
            network_locations: raw.networks.iter().map(|network| at(network.span())).collect(),
            networks: raw.networks.into_iter().map(Spanned::into_inner).collect(),
            talks_to,
            aliases: raw.aliases,
            readiness: raw.readiness,
            network_mode: raw.network_mode,
            coverage_lines: coverage.lines,
            coverage_regions: coverage.regions,
            coverage_location,
            location,
            package: None,
            inferred: false,
        })
    }
}

#[derive(Deserialize)]
struct ManifestDoc {
    package: Option<PackageDoc>,
}

#[derive(Deserialize)]
struct PackageDoc {
    metadata: Option<MetadataDoc>,
}

#[derive(Deserialize)]
struct MetadataDoc {
    meshgate: Option<Spanned<ContractRaw>>,
}

/// Reads the contracts of every workspace crate that declares one.
pub fn load_crate_contracts(root: &Path) -> anyhow::Result<Vec<Contract>> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("failed to read the workspace with `cargo metadata`")?;
    let mut contracts = Vec::new();
    let mut errors = Vec::new();
    for package in metadata.workspace_packages() {
        if package.metadata.get("meshgate").is_none() {
            continue;
        }
        let manifest = package.manifest_path.as_std_path();
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("failed to read {}", manifest.display()))?;
        let document: ManifestDoc = match toml::from_str(&text) {
            Ok(document) => document,
            Err(error) => {
                errors.push(toml_error(manifest, &text, &error));
                continue;
            }
        };
        let Some(raw) = document.package.and_then(|p| p.metadata).and_then(|m| m.meshgate) else {
            continue;
        };
        let location = Location::line(manifest, line_of(&text, raw.span().start));
        let binary =
            package.targets.iter().find(|target| target.is_bin()).map(|target| target.name.clone());
        match Contract::from_raw(
            package.name.to_string(),
            raw.into_inner(),
            location.clone(),
            manifest,
            &LineIndex::new(&text),
        ) {
            Ok(mut contract) => {
                let Some(binary) = binary else {
                    errors.push(InputError::new(
                        location,
                        format!(
                            "package `{}` declares a service contract but builds no binary",
                            package.name
                        ),
                        "add `src/main.rs`, or remove `[package.metadata.meshgate]` from a library",
                    ));
                    continue;
                };
                let manifest_dir = manifest.parent().unwrap_or(root).to_path_buf();
                contract.package =
                    Some(Package { name: package.name.to_string(), manifest_dir, binary });
                contracts.push(contract);
            }
            Err(mut contract_errors) => errors.append(&mut contract_errors),
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    Ok(contracts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract_of(text: &str) -> Result<Contract, Vec<InputError>> {
        let raw: ContractRaw = toml::from_str(text).unwrap();
        let file = Path::new("services/orders/Cargo.toml");
        Contract::from_raw(
            "orders".into(),
            raw,
            Location::line(file, 1),
            file,
            &LineIndex::new(text),
        )
    }

    #[test]
    fn coverage_overrides_keep_their_line() {
        let contract =
            contract_of("service = \"orders\"\n\ncoverage = { lines = 90, regions = 75 }\n")
                .unwrap();
        assert_eq!((contract.coverage_lines, contract.coverage_regions), (Some(90.0), Some(75.0)));
        assert_eq!(
            contract.coverage_location,
            Some(Location::line("services/orders/Cargo.toml", 3))
        );
        let errors = contract_of("coverage = { regions = 101 }\n").unwrap_err();
        assert!(errors[0].message.contains("101 is outside 0 to 100"), "{errors:?}");
        assert_eq!(errors[0].location.line, 1);
    }
}
