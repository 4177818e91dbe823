//! Service discovery: the Compose project, the crates' contracts and meshgate.toml's external
//! services, joined by service name and cross-checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compose::{self, LoadOptions, Project};
use crate::config::Config;
use crate::contract::{self, Contract};
use crate::finding::{Finding, Rule};
use crate::location::{InputError, InputErrors};

/// Everything the gates know about the mesh before anything runs.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub root: PathBuf,
    pub config: Config,
    pub project: Project,
    /// Contracts by Compose service name.
    pub contracts: BTreeMap<String, Contract>,
}

impl Mesh {
    /// The crate-built services, in name order.
    pub fn crate_services(&self) -> impl Iterator<Item = &Contract> {
        self.contracts.values().filter(|contract| contract.package.is_some())
    }
}

/// Loads the Compose files and the contracts named by `config`.
pub fn discover(root: &Path, config: Config) -> anyhow::Result<Mesh> {
    let options =
        LoadOptions::with_process_env(config.compose_files.clone(), config.profiles.clone());
    let project = compose::load(&options)?;

    let mut contracts = BTreeMap::new();
    let mut errors = Vec::new();
    let crate_contracts = match (&config.crate_contracts, &config.workspace) {
        (false, _) => Vec::new(),
        (true, Some(workspace)) => contract::load_crate_contracts(workspace)?,
        (true, None) => contract::load_crate_contracts(root)?,
    };
    for contract in crate_contracts.into_iter().chain(config.external.values().cloned()) {
        if let Some(first) = contracts.get(&contract.service) {
            let first: &Contract = first;
            errors.push(InputError::new(
                contract.location.clone(),
                format!(
                    "service `{}` has two contracts (the other at {})",
                    contract.service,
                    first.location.relative_to(root)
                ),
                "keep one contract per Compose service",
            ));
            continue;
        }
        contracts.insert(contract.service.clone(), contract);
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    Ok(Mesh { root: root.to_path_buf(), config, project, contracts })
}

/// Findings of the cross-check: every service has a contract and every contract a service.
pub fn check(mesh: &Mesh) -> Vec<Finding> {
    let mut findings = Vec::new();
    for service in mesh.project.active_services() {
        if !mesh.contracts.contains_key(&service.name) {
            findings.push(
                Finding::new(
                    Rule::NoContract,
                    service.location.clone(),
                    format!("service `{}` has no contract", service.name),
                    format!(
                        "add `[package.metadata.meshgate]` with `service = \"{}\"` to its crate, or `[external.{}]` to meshgate.toml",
                        service.name, service.name
                    ),
                )
                .service(&service.name),
            );
        }
    }
    for contract in mesh.contracts.values() {
        if !mesh.project.services.contains_key(&contract.service) {
            findings.push(
                Finding::new(
                    Rule::NotInCompose,
                    contract.location.clone(),
                    format!(
                        "contract for `{}` but the Compose file has no such service",
                        contract.service
                    ),
                    "add the service to the Compose file, or fix `service = …` in the contract",
                )
                .service(&contract.service),
            );
        }
        if let Some(package) = &contract.package {
            let dockerfile = package.manifest_dir.join("Dockerfile");
            if !dockerfile.is_file() {
                findings.push(
                    Finding::new(
                        Rule::NoDockerfile,
                        contract.location.clone(),
                        format!("service crate `{}` has no Dockerfile", package.name),
                        format!(
                            "add {} building `FROM scratch` around the `{}` binary",
                            dockerfile.display(),
                            package.binary
                        ),
                    )
                    .service(&contract.service),
                );
            }
        }
    }
    findings
}
