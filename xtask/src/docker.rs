//! The Docker engine through bollard: connecting, labelling, reading container state and
//! logs, and removing what a run left behind. Async only here, driven by the caller's runtime.

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures_util::StreamExt as _;

/// The label Compose puts on everything of a project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label Compose puts on a container naming its service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// The Compose service a container belongs to.
pub fn service_of(container: &ContainerSummary) -> Option<&str> {
    container.labels.as_ref()?.get(SERVICE_LABEL).map(String::as_str)
}

/// The prefix of every project name meshgate creates; `gates clean` finds leftovers by it.
pub const PROJECT_PREFIX: &str = "meshgate-";

/// How long the engine may take to answer its first requests.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Connects to `DOCKER_HOST` (unix or tcp) or the default socket, at the engine's API version.
pub async fn connect() -> anyhow::Result<Docker> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let hint = || {
        format!(
            "cannot reach the Docker engine at {host}: start it, or point DOCKER_HOST at it (unix:///path or tcp://host:port)"
        )
    };
    let docker = Docker::connect_with_defaults().with_context(hint)?;
    // An endpoint that accepts but never answers is not an engine: say so long before
    // bollard's two-minute request timeout.
    let answered = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let docker = docker.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    })
    .await;
    match answered {
        Ok(result) => result.with_context(hint),
        Err(_) => Err(anyhow::anyhow!("no answer within {ANSWER_TIMEOUT:?}")).with_context(hint),
    }
}

/// The engine's release and API version.
#[derive(Clone, Debug)]
pub struct Engine {
    pub version: String,
    pub api_version: String,
}

impl std::fmt::Display for Engine {
    /// `Engine 20.10.24 (API 1.41)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine {} (API {})", self.version, self.api_version)
    }
}

pub async fn describe_engine(docker: &Docker) -> anyhow::Result<Engine> {
    let version = docker.version().await.context("failed to read the engine version")?;
    Ok(Engine {
        version: version.version.unwrap_or_else(|| "unknown".into()),
        api_version: version.api_version.unwrap_or_else(|| "unknown".into()),
    })
}

fn label_filter(label: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])])
}

/// The service containers of a Compose project (not one-off or probe containers).
pub async fn project_containers(
    docker: &Docker,
    project: &str,
) -> anyhow::Result<Vec<ContainerSummary>> {
    let mut filters = label_filter(PROJECT_LABEL, project);
    if let Some(labels) = filters.get_mut("label") {
        labels.push("com.docker.compose.oneoff=False".into())
    }
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("failed to list the containers of {project}"))
}

/// A container's output, stdout and stderr interleaved as the engine kept them.
pub async fn container_logs(docker: &Docker, id: &str) -> anyhow::Result<String> {
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("failed to read the logs of container {id}"))?;
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    Ok(text)
}

/// What removal found and removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

impl Removed {
    pub fn total(&self) -> usize {
        self.containers + self.networks + self.volumes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResourceKind {
    Container,
    Network,
    Volume,
}

/// A container, network or volume and its labels.
struct Resource {
    kind: ResourceKind,
    id: String,
    labels: HashMap<String, String>,
}

/// Every container, network and volume matching a `label` filter (`key` or `key=value`),
/// containers first, so they can be removed in that order.
async fn list_labelled(docker: &Docker, label: &str) -> anyhow::Result<Vec<Resource>> {
    let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    let mut resources = Vec::new();

    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers =
        docker.list_containers(Some(options)).await.context("failed to list containers")?;
    resources.extend(containers.into_iter().filter_map(|container| {
        let labels = container.labels.unwrap_or_default();
        Some(Resource { kind: ResourceKind::Container, id: container.id?, labels })
    }));
    let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
    let networks = docker.list_networks(Some(options)).await.context("failed to list networks")?;
    resources.extend(networks.into_iter().filter_map(|network| {
        let labels = network.labels.unwrap_or_default();
        Some(Resource { kind: ResourceKind::Network, id: network.id?, labels })
    }));
    let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
    let volumes = docker.list_volumes(Some(options)).await.context("failed to list volumes")?;
    resources.extend(volumes.volumes.unwrap_or_default().into_iter().map(|volume| Resource {
        kind: ResourceKind::Volume,
        id: volume.name,
        labels: volume.labels,
    }));
    Ok(resources)
}

/// Removes every container, network and volume with `label=value`, containers first.
pub async fn remove_labelled(docker: &Docker, label: &str, value: &str) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    for resource in list_labelled(docker, &format!("{label}={value}")).await? {
        let result = match resource.kind {
            ResourceKind::Container => {
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                docker.remove_container(&resource.id, Some(options)).await
            }
            ResourceKind::Network => docker.remove_network(&resource.id).await,
            ResourceKind::Volume => {
                let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                docker.remove_volume(&resource.id, Some(options)).await
            }
        };
        match result {
            Ok(()) => match resource.kind {
                ResourceKind::Container => removed.containers += 1,
                ResourceKind::Network => removed.networks += 1,
                ResourceKind::Volume => removed.volumes += 1,
            },
            Err(error) if is_not_found(&error) => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("failed to remove {:?} {}", resource.kind, resource.id)
                });
            }
        }
    }
    Ok(removed)
}

/// The Compose projects meshgate created that still hold a container, network or volume.
pub async fn leftover_projects(
    docker: &Docker,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    Ok(list_labelled(docker, PROJECT_LABEL)
        .await?
        .into_iter()
        .filter_map(|resource| resource.labels.get(PROJECT_LABEL).cloned())
        .filter(|project| project.starts_with(PROJECT_PREFIX))
        .collect())
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
