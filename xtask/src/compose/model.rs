//! The model the gates read: services, networks and volumes with their positions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::location::{InputError, InputErrors, Location};
use crate::yaml::{Entry, Kind, Node, Pos, Scalar, Typed};

use super::ports::{Port, parse_port};

/// The top-level keys the Compose Specification allows.
const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

/// The service keys the Compose Specification allows.
const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

const NETWORK_KEYS: &[&str] = &[
    "attachable",
    "driver",
    "driver_opts",
    "enable_ipv4",
    "enable_ipv6",
    "external",
    "internal",
    "ipam",
    "labels",
    "name",
];

const HEALTHCHECK_KEYS: &[&str] =
    &["disable", "interval", "retries", "start_interval", "start_period", "test", "timeout"];

/// The loaded, merged and checked Compose project.
#[derive(Clone, Debug, Default)]
pub struct Project {
    pub files: Vec<PathBuf>,
    pub project_dir: PathBuf,
    /// Every service, active or not, by name.
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub profiles: Vec<String>,
    /// Variables used without a value and without a default.
    pub unset_variables: Vec<UnsetVariable>,
    /// The variables interpolation saw (environment over `.env`).
    pub variables: BTreeMap<String, String>,
}

impl Project {
    /// The services the active profiles enable.
    pub fn active_services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().filter(|service| service.active)
    }
}

/// A variable that was used unset, where, and at which key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsetVariable {
    pub variable: String,
    pub path: String,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub location: Location,
    pub active: bool,
    pub profiles: Vec<String>,
    pub image: Option<(String, Location)>,
    pub build: Option<Build>,
    pub ports: Vec<Port>,
    pub expose: Vec<Expose>,
    /// The networks the service joins; `default` when the file names none.
    pub networks: Vec<ServiceNetwork>,
    pub network_mode: Option<(String, Location)>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    /// The service's resolved tree, for rules that read other keys.
    pub node: Node,
}

/// One `expose:` entry: a port or range the service offers on its networks only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expose {
    pub low: u16,
    pub high: u16,
    pub protocol: String,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Build {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNetwork {
    pub name: String,
    pub aliases: Vec<String>,
    pub location: Location,
    /// Whether the file named it or Compose added `default`.
    pub implicit: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: String,
    pub required: bool,
    pub location: Location,
    /// Added by `links`, `volumes_from` or `network_mode: service:x`, not by `depends_on`.
    pub implicit: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub disable: bool,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Network {
    pub key: String,
    pub internal: bool,
    pub external: bool,
    pub driver: Option<String>,
    pub location: Location,
    /// Whether the file declared it (the `default` network may be implicit).
    pub declared: bool,
}

#[derive(Clone, Debug)]
pub struct Volume {
    pub key: String,
    pub external: bool,
    pub location: Location,
}

pub(super) fn locate(files: &[PathBuf], pos: Pos) -> Location {
    let file = files.get(usize::from(pos.file)).cloned().unwrap_or_default();
    Location::new(file, pos)
}

/// Builds the project from interpolated documents, in override order.
pub(super) fn build(
    documents: Vec<(PathBuf, Node)>,
    profiles: &[String],
    project_dir: &Path,
    unset: &[UnsetVariable],
) -> anyhow::Result<Project> {
    let files: Vec<PathBuf> = documents.iter().map(|(file, _)| file.clone()).collect();
    let mut errors = Vec::new();
    let mut merged: Option<Node> = None;
    for (_, root) in documents {
        check_keys(&root, TOP_LEVEL_KEYS, "top level", &files, &mut errors);
        // FIXME: `include:` is refused, not loaded: its files must be listed in meshgate.toml.
        if let Some(include) = root.get("include") {
            errors.push(InputError::new(
                locate(&files, include.pos),
                "a top-level `include:` is not supported",
                "list the included Compose files in `mesh.compose_files` of meshgate.toml instead",
            ));
        }
        merged = Some(match merged {
            None => root,
            Some(base) => merge_nodes(base, root, ""),
        });
    }
    let root = merged.unwrap_or(Node { kind: Kind::Map(Vec::new()), pos: Pos::default() });
    let cx = Cx { files: &files, project_dir, unset };

    let mut project = Project {
        files: files.clone(),
        project_dir: project_dir.to_path_buf(),
        profiles: profiles.to_vec(),
        ..Project::default()
    };
    let no_entries: &[Entry] = &[];

    let services_node = root.get("services");
    if let Some(node) = services_node.filter(|node| node.as_map().is_none() && !node.is_null()) {
        errors.push(cx.error(
            node.pos,
            "`services` must be a mapping of service names",
            "write `services:` followed by indented service names",
        ));
    }
    let service_entries = services_node.and_then(Node::as_map).unwrap_or(no_entries);
    for entry in service_entries {
        let resolved = match resolve_extends(entry, service_entries, &cx, 0) {
            Ok(node) => node,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        match read_service(&entry.key, entry.key_pos, &resolved, profiles, &cx) {
            Ok(service) => {
                project.services.insert(entry.key.clone(), service);
            }
            Err(mut service_errors) => errors.append(&mut service_errors),
        }
    }

    for entry in root.get("networks").and_then(Node::as_map).unwrap_or(no_entries) {
        check_keys(
            &entry.value,
            NETWORK_KEYS,
            &format!("network `{}`", entry.key),
            &files,
            &mut errors,
        );
        let flag = |key: &str| entry.value.get(key).and_then(Node::typed).is_some_and(is_true);
        let external =
            flag("external") || entry.value.get("external").is_some_and(|n| n.as_map().is_some());
        project.networks.insert(
            entry.key.clone(),
            Network {
                key: entry.key.clone(),
                internal: flag("internal"),
                external,
                driver: entry.value.get("driver").and_then(Node::text).map(str::to_owned),
                location: locate(&files, entry.key_pos),
                declared: true,
            },
        );
    }
    for entry in root.get("volumes").and_then(Node::as_map).unwrap_or(no_entries) {
        let external = entry.value.get("external").and_then(Node::typed).is_some_and(is_true);
        project.volumes.insert(
            entry.key.clone(),
            Volume { key: entry.key.clone(), external, location: locate(&files, entry.key_pos) },
        );
    }

    // Compose creates `default` for services that name no network.
    let uses_default =
        project.services.values().any(|s| s.networks.iter().any(|n| n.name == "default"));
    if uses_default && !project.networks.contains_key("default") {
        let location = files.first().map(Location::file).unwrap_or_default();
        project.networks.insert(
            "default".into(),
            Network {
                key: "default".into(),
                internal: false,
                external: false,
                driver: None,
                location,
                declared: false,
            },
        );
    }

    if errors.is_empty() {
        check_references(&project, &root, &cx, &mut errors);
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    Ok(project)
}

/// A boolean as Compose reads one: YAML's `true`, or a string it casts (`"true"`, `"1"`).
fn is_true(value: Typed<'_>) -> bool {
    match value {
        Typed::Bool(flag) => flag,
        Typed::Str(text) => matches!(text.trim(), "true" | "True" | "TRUE" | "t" | "T" | "1"),
        Typed::Int(n) => n == 1,
        _ => false,
    }
}

/// What Compose itself refuses in a project whose parts each read well: an empty file, a
/// service on a network the file does not define, `networks` together with `network_mode`,
/// a dependency on a service that does not exist, and dependency cycles.
fn check_references(project: &Project, root: &Node, cx: &Cx<'_>, errors: &mut Vec<InputError>) {
    if root.as_map().is_none_or(|entries| entries.is_empty()) {
        errors.push(cx.error(
            root.pos,
            "the Compose file is empty",
            "define the mesh's `services:` in it, or name the right file in `mesh.compose_files`",
        ));
        return;
    }
    for service in project.services.values() {
        for network in service.networks.iter().filter(|n| !n.implicit) {
            if network.name != "default" && !project.networks.contains_key(&network.name) {
                errors.push(InputError::new(
                    network.location.clone(),
                    format!(
                        "service `{}` joins network `{}`, which the file does not define",
                        service.name, network.name
                    ),
                    format!(
                        "define `{}` under the top-level `networks:`, or fix the name",
                        network.name
                    ),
                ));
            }
        }
        if let Some((mode, location)) = &service.network_mode
            && service.networks.iter().any(|n| !n.implicit)
        {
            errors.push(InputError::new(
                location.clone(),
                format!(
                    "service `{}` sets both `network_mode: {mode}` and `networks`",
                    service.name
                ),
                "keep one of them: Compose refuses a service with both",
            ));
        }
        for dependency in service.depends_on.iter().filter(|d| d.required && !d.implicit) {
            if !project.services.contains_key(&dependency.service) {
                errors.push(InputError::new(
                    dependency.location.clone(),
                    format!(
                        "service `{}` depends on `{}`, which the file does not define",
                        service.name, dependency.service
                    ),
                    "fix the name, or remove the dependency",
                ));
            }
        }
    }
    if let Some(cycle) = dependency_cycle(project) {
        let first = &project.services[&cycle[0]];
        let location = first
            .depends_on
            .iter()
            .find(|d| d.service == cycle[1])
            .map_or_else(|| first.location.clone(), |d| d.location.clone());
        errors.push(InputError::new(
            location,
            format!("dependency cycle: {}", cycle.join(" → ")),
            "remove one `depends_on` of the cycle; Compose cannot start any of these services",
        ));
    }
}

/// A cycle of `depends_on` (implicit ones included), as the services around it.
fn dependency_cycle(project: &Project) -> Option<Vec<String>> {
    fn visit<'a>(
        project: &'a Project,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = path[start..].iter().map(|n| (*n).to_owned()).collect();
            cycle.push(name.to_owned());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        for dependency in
            project.services.get(name).map(|s| s.depends_on.as_slice()).unwrap_or_default()
        {
            if let Some(cycle) = visit(project, &dependency.service, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    project.services.keys().find_map(|name| visit(project, name, &mut Vec::new(), &mut done))
}

struct Cx<'a> {
    files: &'a [PathBuf],
    project_dir: &'a Path,
    /// Variables that had no value, where they were used.
    unset: &'a [UnsetVariable],
}

impl Cx<'_> {
    fn loc(&self, pos: Pos) -> Location {
        locate(self.files, pos)
    }

    fn error(&self, pos: Pos, message: impl Into<String>, help: impl Into<String>) -> InputError {
        InputError::new(self.loc(pos), message, help)
    }
}

fn check_keys(
    node: &Node,
    allowed: &[&str],
    what: &str,
    files: &[PathBuf],
    errors: &mut Vec<InputError>,
) {
    for entry in node.as_map().unwrap_or_default() {
        if !allowed.contains(&entry.key.as_str()) && !entry.key.starts_with("x-") {
            let suggestion = closest(&entry.key, allowed).map_or_else(
                || "remove it, or prefix it with `x-` to keep it as an extension".to_owned(),
                |near| format!("did you mean `{near}`?"),
            );
            errors.push(InputError::new(
                locate(files, entry.key_pos),
                format!("unknown key `{}` at {what}", entry.key),
                suggestion,
            ));
        }
    }
}

/// The allowed key nearest to a misspelt one, if any is close.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// Merges an override document into a base as Compose does for several `-f` files.
fn merge_nodes(base: Node, over: Node, key: &str) -> Node {
    // `networks` and `depends_on` may be written as a list in one file and a mapping in the
    // other; Compose merges them as mappings.
    let (base, over) = match (&base.kind, &over.kind) {
        (Kind::Seq(_), Kind::Map(_)) | (Kind::Map(_), Kind::Seq(_))
            if matches!(key, "networks" | "depends_on") =>
        {
            (list_as_map(base), list_as_map(over))
        }
        _ => (base, over),
    };
    match (base.kind, over.kind) {
        (Kind::Map(mut base_entries), Kind::Map(over_entries)) => {
            for entry in over_entries {
                match base_entries.iter().position(|existing| existing.key == entry.key) {
                    Some(index) => {
                        let existing = base_entries.remove(index);
                        let value = merge_nodes(existing.value, entry.value, &entry.key);
                        base_entries.insert(index, Entry { value, ..existing });
                    }
                    None => base_entries.push(entry),
                }
            }
            Node { kind: Kind::Map(base_entries), pos: base.pos }
        }
        // Commands and health tests are replaced; other lists (ports, volumes, …) accumulate.
        (Kind::Seq(mut base_items), Kind::Seq(over_items))
            if !matches!(key, "command" | "entrypoint" | "test" | "profiles") =>
        {
            for item in over_items {
                let same = |existing: &Node| {
                    existing.kind == item.kind || (key == "ports" && same_port(existing, &item))
                };
                if !base_items.iter().any(same) {
                    base_items.push(item);
                }
            }
            Node { kind: Kind::Seq(base_items), pos: base.pos }
        }
        (_, kind) => Node { kind, pos: over.pos },
    }
}

/// Whether two `ports:` entries are one mapping, however each is written: Compose merges
/// them on address, published port, target and protocol.
fn same_port(a: &Node, b: &Node) -> bool {
    let key = |node: &Node| {
        parse_port(node, Location::default())
            .ok()
            .map(|port| (port.host_ip, port.published, port.target, port.protocol))
    };
    matches!((key(a), key(b)), (Some(a), Some(b)) if a == b)
}

/// `[a, b]` as `{a: null, b: null}`, each key keeping its item's position.
fn list_as_map(node: Node) -> Node {
    let Kind::Seq(items) = node.kind else { return node };
    let entries = items
        .into_iter()
        .filter_map(|item| {
            let key = item.text()?.to_owned();
            let value = Node {
                kind: Kind::Scalar(Scalar { text: String::new(), plain: true }),
                pos: item.pos,
            };
            Some(Entry { key, key_pos: item.pos, value })
        })
        .collect();
    Node { kind: Kind::Map(entries), pos: node.pos }
}

/// Applies `extends` (same file) to a service; the base's `depends_on` is not inherited.
fn resolve_extends(
    entry: &Entry,
    services: &[Entry],
    cx: &Cx<'_>,
    depth: usize,
) -> Result<Node, InputError> {
    let Some(extends) = entry.value.get("extends") else { return Ok(entry.value.clone()) };
    if depth > 16 {
        return Err(cx.error(
            extends.pos,
            format!("`extends` of service `{}` loops", entry.key),
            "remove the cycle of `extends`",
        ));
    }
    let base_name = match (extends.text(), extends.get("service").and_then(Node::text)) {
        (Some(name), _) | (_, Some(name)) => name,
        _ => {
            return Err(cx.error(
                extends.pos,
                "`extends` needs a service name",
                "write `extends: {service: <name>}`",
            ));
        }
    };
    if extends.get("file").is_some() {
        // FIXME: `extends` from another file is not read; only same-file bases are resolved.
        return Err(cx.error(
            extends.pos,
            "`extends` with `file:` is not supported by meshgate",
            "move the base service into this Compose file, or list its file with the others in `meshgate.toml`",
        ));
    }
    let base_entry =
        services.iter().find(|candidate| candidate.key == base_name).ok_or_else(|| {
            cx.error(
                extends.pos,
                format!("`extends` names unknown service `{base_name}`"),
                "name a service defined in this file",
            )
        })?;
    let mut base = resolve_extends(base_entry, services, cx, depth + 1)?;
    if let Kind::Map(entries) = &mut base.kind {
        entries.retain(|e| e.key != "depends_on" && e.key != "extends");
    }
    let mut own = entry.value.clone();
    if let Kind::Map(entries) = &mut own.kind {
        entries.retain(|e| e.key != "extends");
    }
    let mut merged = merge_nodes(base, own, "");
    merged.pos = entry.value.pos;
    Ok(merged)
}

fn read_service(
    name: &str,
    key_pos: Pos,
    node: &Node,
    profiles: &[String],
    cx: &Cx<'_>,
) -> Result<Service, Vec<InputError>> {
    let mut errors = Vec::new();
    let what = format!("service `{name}`");
    if node.as_map().is_none() {
        let error = cx.error(
            node.pos,
            format!("{what} must be a mapping, not {}", node.type_name()),
            "indent the service's keys below its name",
        );
        return Err(vec![error]);
    }
    check_keys(node, SERVICE_KEYS, &what, cx.files, &mut errors);

    let service_profiles = string_list(node.get("profiles"), cx, &mut errors);
    let active =
        service_profiles.is_empty() || service_profiles.iter().any(|p| profiles.contains(p));

    let image = node.get("image").and_then(|image| match image.text() {
        Some(text) => Some((text.to_owned(), cx.loc(image.pos))),
        None => {
            errors.push(cx.error(
                image.pos,
                format!("`image` of {what} must be a string"),
                "write `image: name:tag`",
            ));
            None
        }
    });
    let build = node.get("build").map(|build| {
        let (context, dockerfile) = match build.text() {
            Some(context) => (context.to_owned(), "Dockerfile".to_owned()),
            None => (
                build.get("context").and_then(Node::text).unwrap_or(".").to_owned(),
                build.get("dockerfile").and_then(Node::text).unwrap_or("Dockerfile").to_owned(),
            ),
        };
        let context = cx.project_dir.join(context);
        Build { dockerfile: context.join(dockerfile), context, location: cx.loc(build.pos) }
    });

    let mut ports = Vec::new();
    if let Some(list) = node.get("ports") {
        match list.as_seq() {
            Some(items) => {
                for item in items {
                    let location = cx.loc(item.pos);
                    match parse_port(item, location.clone()) {
                        Ok(port) => ports.push(port),
                        // A mapping made of unset variables is no port yet; the network gate
                        // reports the variable there (`network/port-unset-variable`).
                        Err(_) if cx.unset.iter().any(|u| u.location == location) => {}
                        Err(error) => errors.push(error),
                    }
                }
            }
            None => errors.push(cx.error(
                list.pos,
                format!("`ports` of {what} must be a list"),
                "write each mapping as a `- \"HOST:CONTAINER\"` item",
            )),
        }
    }
    let mut expose = Vec::new();
    for item in node.get("expose").and_then(Node::as_seq).unwrap_or_default() {
        let text = item.text().unwrap_or_default();
        let (number, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
        let protocol = protocol.to_ascii_lowercase();
        let range = match number.split_once('-') {
            Some((low, high)) => low.parse().ok().zip(high.parse().ok()),
            None => number.parse().ok().map(|port| (port, port)),
        };
        match range.filter(|_| matches!(protocol.as_str(), "tcp" | "udp" | "sctp")) {
            Some((low, high)) => {
                expose.push(Expose { low, high, protocol, location: cx.loc(item.pos) });
            }
            None => errors.push(cx.error(
                item.pos,
                format!("`expose` entry {text:?} of {what} is not a port"),
                "write a port number such as `8080` or `8080/udp`",
            )),
        }
    }

    let network_mode = node
        .get("network_mode")
        .and_then(|mode| mode.text().map(|text| (text.to_owned(), cx.loc(mode.pos))));
    let networks = read_networks(node, key_pos, network_mode.is_some(), cx, &what, &mut errors);
    let mut depends_on = read_depends_on(node, cx, &what, &mut errors);
    add_implicit_dependencies(node, &network_mode, cx, &mut depends_on);
    let healthcheck =
        node.get("healthcheck").and_then(|hc| read_healthcheck(hc, cx, &what, &mut errors));

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Service {
        name: name.to_owned(),
        location: cx.loc(key_pos),
        active,
        profiles: service_profiles,
        image,
        build,
        ports,
        expose,
        networks,
        network_mode,
        depends_on,
        healthcheck,
        node: node.clone(),
    })
}

fn string_list(node: Option<&Node>, cx: &Cx<'_>, errors: &mut Vec<InputError>) -> Vec<String> {
    let Some(node) = node else { return Vec::new() };
    match node.as_seq() {
        Some(items) => items.iter().filter_map(|item| item.text().map(str::to_owned)).collect(),
        None => {
            errors.push(cx.error(
                node.pos,
                format!("expected a list, found {}", node.type_name()),
                "write one `- item` per line",
            ));
            Vec::new()
        }
    }
}

fn read_networks(
    node: &Node,
    key_pos: Pos,
    has_mode: bool,
    cx: &Cx<'_>,
    what: &str,
    errors: &mut Vec<InputError>,
) -> Vec<ServiceNetwork> {
    let Some(list) = node.get("networks") else {
        if has_mode {
            return Vec::new();
        }
        // Compose attaches the service to `default`; point at the service's name.
        return vec![ServiceNetwork {
            name: "default".into(),
            aliases: Vec::new(),
            location: cx.loc(key_pos),
            implicit: true,
        }];
    };
    match &list.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| {
                item.text().map(|name| ServiceNetwork {
                    name: name.to_owned(),
                    aliases: Vec::new(),
                    location: cx.loc(item.pos),
                    implicit: false,
                })
            })
            .collect(),
        Kind::Map(entries) => entries
            .iter()
            .map(|entry| {
                let aliases = entry
                    .value
                    .get("aliases")
                    .and_then(Node::as_seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|alias| alias.text().map(str::to_owned))
                    .collect();
                ServiceNetwork {
                    name: entry.key.clone(),
                    aliases,
                    location: cx.loc(entry.key_pos),
                    implicit: false,
                }
            })
            .collect(),
        Kind::Scalar(_) => {
            errors.push(cx.error(
                list.pos,
                format!("`networks` of {what} must be a list or a mapping"),
                "write `networks: [backend]`",
            ));
            Vec::new()
        }
    }
}

fn read_depends_on(
    node: &Node,
    cx: &Cx<'_>,
    what: &str,
    errors: &mut Vec<InputError>,
) -> Vec<Dependency> {
    let Some(list) = node.get("depends_on") else { return Vec::new() };
    match &list.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| {
                item.text().map(|service| Dependency {
                    service: service.to_owned(),
                    condition: "service_started".into(),
                    required: true,
                    location: cx.loc(item.pos),
                    implicit: false,
                })
            })
            .collect(),
        Kind::Map(entries) => entries
            .iter()
            .filter_map(|entry| {
                let condition =
                    entry.value.get("condition").and_then(Node::text).unwrap_or("service_started");
                if !matches!(
                    condition,
                    "service_started" | "service_healthy" | "service_completed_successfully"
                ) {
                    errors.push(cx.error(
                        entry.value.get("condition").map_or(entry.key_pos, |c| c.pos),
                        format!("unknown `depends_on` condition {condition:?} in {what}"),
                        "use service_started, service_healthy or service_completed_successfully",
                    ));
                    return None;
                }
                let required = !matches!(
                    entry.value.get("required").and_then(Node::typed),
                    Some(Typed::Bool(false))
                );
                Some(Dependency {
                    service: entry.key.clone(),
                    condition: condition.to_owned(),
                    required,
                    location: cx.loc(entry.key_pos),
                    implicit: false,
                })
            })
            .collect(),
        Kind::Scalar(_) => {
            errors.push(cx.error(
                list.pos,
                format!("`depends_on` of {what} must be a list or a mapping"),
                "write `depends_on: {db: {condition: service_healthy}}`",
            ));
            Vec::new()
        }
    }
}

/// `links`, `volumes_from` and `network_mode: service:x` start their target first too.
fn add_implicit_dependencies(
    node: &Node,
    network_mode: &Option<(String, Location)>,
    cx: &Cx<'_>,
    dependencies: &mut Vec<Dependency>,
) {
    let mut add = |service: &str, location: Location| {
        if !dependencies.iter().any(|d| d.service == service) {
            dependencies.push(Dependency {
                service: service.to_owned(),
                condition: "service_started".into(),
                required: true,
                location,
                implicit: true,
            });
        }
    };
    for link in node.get("links").and_then(Node::as_seq).unwrap_or_default() {
        if let Some(text) = link.text() {
            add(text.split(':').next().unwrap_or(text), cx.loc(link.pos));
        }
    }
    for source in node.get("volumes_from").and_then(Node::as_seq).unwrap_or_default() {
        if let Some(text) = source.text().filter(|t| !t.starts_with("container:")) {
            add(text.split(':').next().unwrap_or(text), cx.loc(source.pos));
        }
    }
    if let Some((mode, location)) = network_mode
        && let Some(service) = mode.strip_prefix("service:")
    {
        add(service, location.clone());
    }
}

fn read_healthcheck(
    node: &Node,
    cx: &Cx<'_>,
    what: &str,
    errors: &mut Vec<InputError>,
) -> Option<Healthcheck> {
    check_keys(node, HEALTHCHECK_KEYS, &format!("healthcheck of {what}"), cx.files, errors);
    let test = match node.get("test") {
        None => Vec::new(),
        Some(test) => match (&test.kind, test.text()) {
            (Kind::Seq(items), _) => {
                items.iter().filter_map(|item| item.text().map(str::to_owned)).collect()
            }
            (_, Some(text)) => vec!["CMD-SHELL".to_owned(), text.to_owned()],
            _ => {
                errors.push(cx.error(
                    test.pos,
                    "healthcheck `test` must be a string or a list",
                    "write `test: [\"CMD\", \"/app\", \"healthcheck\"]`",
                ));
                Vec::new()
            }
        },
    };
    let mut duration = |key: &str| {
        let value = node.get(key)?;
        let text = value.text().unwrap_or_default();
        match parse_duration(text) {
            Some(duration) => Some(duration),
            None => {
                errors.push(cx.error(
                    value.pos,
                    format!("healthcheck `{key}` of {what} is not a duration: {text:?}"),
                    "write a duration with its unit, such as `5s`, `1m30s` or `500ms`",
                ));
                None
            }
        }
    };
    let interval = duration("interval");
    let timeout = duration("timeout");
    let start_period = duration("start_period");
    let start_interval = duration("start_interval");
    let retries = node.get("retries").and_then(|value| match value.typed() {
        Some(Typed::Int(n)) if n >= 0 => u32::try_from(n).ok(),
        // Compose casts a quoted number, as it does with interpolated values.
        Some(Typed::Str(text)) if text.trim().parse::<u32>().is_ok() => text.trim().parse().ok(),
        _ => {
            errors.push(cx.error(
                value.pos,
                format!("healthcheck `retries` of {what} must be a whole number"),
                "write `retries: 3`",
            ));
            None
        }
    });
    let disable = node.get("disable").and_then(Node::typed).is_some_and(is_true)
        || test.first().is_some_and(|first| first == "NONE");
    Some(Healthcheck {
        test,
        disable,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
        location: cx.loc(node.pos),
    })
}

/// Parses a Compose duration (Go syntax: `1m30s`, `1.5s`, `500ms`, `1h`; `0` alone).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    // Too long for any clock (or not a number) is not a duration either.
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10"), None, "a unit is required");
        assert_eq!(parse_duration("5 s"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999h"), None, "beyond any clock");
    }

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(closest("netwroks", SERVICE_KEYS), Some("networks"));
        assert_eq!(closest("zzzzzzzz", SERVICE_KEYS), None);
    }
}
