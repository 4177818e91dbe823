//! The Compose file, read into the Compose Specification's model with positions kept.
//!
//! Loading follows Compose v2: YAML 1.2 with anchors and merge keys, interpolation from the
//! process environment and the project's `.env`, several `-f` files merged in order, `extends`
//! resolved (a service's `depends_on` is never inherited), and profiles deciding which services
//! are active. Anything the gates read is checked for its type here, so a bad file fails with
//! its file, line and a fix instead of a finding built on a misread value.

pub mod dotenv;
pub mod interpolate;
mod model;
mod ports;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use model::{
    Dependency, Expose, Healthcheck, Network, Project, Service, ServiceNetwork, UnsetVariable,
    Volume, parse_duration,
};
pub use ports::{Port, parse_port};

use crate::location::{InputError, InputErrors, Location};
use crate::yaml::{self, Entry, Kind, Node};

/// What to load and with which variables.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The Compose files, in override order.
    pub files: Vec<PathBuf>,
    /// Active profiles.
    pub profiles: Vec<String>,
    /// Variables that win over `.env` (the process environment, normally).
    pub environment: BTreeMap<String, String>,
}

impl LoadOptions {
    /// Options for `files` with the process environment.
    pub fn with_process_env(files: Vec<PathBuf>, profiles: Vec<String>) -> LoadOptions {
        LoadOptions { files, profiles, environment: std::env::vars().collect() }
    }
}

/// Loads and checks the Compose files.
pub fn load(options: &LoadOptions) -> anyhow::Result<Project> {
    let first = options.files.first().context("no Compose file given")?;
    let project_dir = first.parent().unwrap_or(Path::new(".")).to_path_buf();

    // Variables: the process environment wins over `.env` next to the first file.
    let mut variables = BTreeMap::new();
    let env_file = project_dir.join(".env");
    if env_file.is_file() {
        let text = std::fs::read_to_string(&env_file)
            .with_context(|| format!("failed to read {}", env_file.display()))?;
        let lookup = |name: &str| options.environment.get(name).cloned();
        let assignments = dotenv::parse(&text, &lookup).map_err(|error| {
            InputError::new(
                Location::line(&env_file, error.line),
                error.message,
                "write each line as KEY=value; quote values that contain spaces or #",
            )
        })?;
        for assignment in assignments {
            variables.insert(assignment.key, assignment.value);
        }
    }
    for (key, value) in &options.environment {
        variables.insert(key.clone(), value.clone());
    }

    let mut documents = Vec::new();
    let mut unset = Vec::new();
    let mut errors = Vec::new();
    for file in &options.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read Compose file {}", file.display()))?;
        let mut root = yaml::parse_file(&text, documents.len() as u16).map_err(|error| {
            InputError::new(
                Location::new(file, error.pos),
                format!("invalid YAML: {}", error.message),
                "fix the YAML syntax at that line (Compose's `config` command reports the same)",
            )
        })?;
        if root.as_map().is_none() {
            errors.push(InputError::new(
                Location::new(file, root.pos),
                format!("a Compose file is a mapping, this one is {}", root.type_name()),
                "start the file with `services:`",
            ));
            continue;
        }
        let lookup = |name: &str| variables.get(name).cloned();
        interpolate_tree(&mut root, file, "", &lookup, &mut unset, &mut errors);
        documents.push((file.clone(), root));
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    let mut project = model::build(documents, &options.profiles, &project_dir, &unset)?;
    project.unset_variables = unset;
    project.variables = variables;
    Ok(project)
}

/// Interpolates every scalar value (keys are never interpolated), recording unset variables.
fn interpolate_tree(
    node: &mut Node,
    file: &Path,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<UnsetVariable>,
    errors: &mut Vec<InputError>,
) {
    match &mut node.kind {
        Kind::Scalar(scalar) => {
            if !scalar.text.contains('$') {
                return;
            }
            let mut usage = interpolate::Usage::default();
            match interpolate::interpolate(&scalar.text, lookup, &mut usage) {
                Ok(text) => {
                    for variable in usage.unset {
                        unset.push(UnsetVariable {
                            variable,
                            path: path.to_owned(),
                            location: Location::new(file, node.pos),
                        });
                    }
                    scalar.text = text;
                }
                Err(message) => errors.push(InputError::new(
                    Location::new(file, node.pos),
                    format!("{message} at `{path}`"),
                    "write `$$` for a literal dollar sign, or close `${` with `}`",
                )),
            }
        }
        Kind::Seq(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, file, &format!("{path}[{index}]"), lookup, unset, errors);
            }
        }
        Kind::Map(entries) => {
            for Entry { key, value, .. } in entries.iter_mut() {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                interpolate_tree(value, file, &child, lookup, unset, errors);
            }
        }
    }
}
