//! The service health gate: the mesh comes up under a run's own project name, and every
//! container must turn healthy within its budget. Waiting follows the engine's events and
//! container state, and fails at once on a container that exits, restarts or turns unhealthy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt as _;

use crate::discover::Mesh;
use crate::docker::{self, PROJECT_LABEL};
use crate::finding::{Finding, Rule};
use crate::location::Location;

/// Engine defaults for a healthcheck's timing.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u64 = 3;

/// After a first failure, how long other services may take to show theirs before the gate
/// reports what it has.
const SETTLE: Duration = Duration::from_secs(2);

/// How one service fared.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ServiceState {
    pub container: String,
    pub status: String,
    /// From the start of `compose up` to the container's start, by the engine's clock.
    pub time_to_running_ms: Option<u64>,
    /// From the start of `compose up` to the end of the first passing health probe.
    pub time_to_healthy_ms: Option<u64>,
    pub restarts: i64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub last_health_output: Option<String>,
    /// How it stopped at the end of the run.
    pub stop: Option<Stop>,
}

/// What the wait saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub services: BTreeMap<String, ServiceState>,
}

/// The budget of a container: at least `start_period + interval × (retries + 1) + timeout`.
pub fn budget(inspect: &ContainerInspectResponse) -> Duration {
    let healthcheck = inspect.config.as_ref().and_then(|config| config.healthcheck.as_ref());
    let nanos = |value: Option<i64>, default: Duration| match value {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    };
    let Some(healthcheck) = healthcheck else { return Duration::from_secs(30) };
    let interval = nanos(healthcheck.interval, DEFAULT_INTERVAL);
    let timeout = nanos(healthcheck.timeout, DEFAULT_TIMEOUT);
    let start_period = nanos(healthcheck.start_period, Duration::ZERO);
    let retries = healthcheck.retries.filter(|r| *r > 0).map_or(DEFAULT_RETRIES, |r| r as u64);
    let probes = u32::try_from(retries.saturating_add(1)).unwrap_or(u32::MAX);
    start_period.saturating_add(interval.saturating_mul(probes)).saturating_add(timeout)
}

/// Waits for every active service of the project to be ready.
///
/// `up_finished` reports the `compose up` process: `Some(Err)` when it failed.
pub async fn wait_for_health(
    docker: &Docker,
    mesh: &Mesh,
    project: &str,
    started: Instant,
    mut up_finished: impl FnMut() -> Option<anyhow::Result<()>>,
) -> anyhow::Result<Outcome> {
    let expected: Vec<String> =
        mesh.project.active_services().map(|service| service.name.clone()).collect();
    let overall = mesh.config.health_timeout;
    let filters = std::collections::HashMap::from([
        ("label".to_owned(), vec![format!("{PROJECT_LABEL}={project}")]),
        ("type".to_owned(), vec!["container".to_owned()]),
    ]);
    let run_start = std::time::SystemTime::now() - started.elapsed();
    let since = run_start.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let options =
        EventsOptionsBuilder::default().since(&since.to_string()).filters(&filters).build();
    let mut events = docker.events(Some(options));
    let mut events_open = true;
    let mut up_error: Option<anyhow::Error> = None;
    let mut outcome = Outcome::default();
    // The first failure of each service, and when the first of all was seen.
    let mut failures: BTreeMap<String, Finding> = BTreeMap::new();
    let mut failing_since: Option<Instant> = None;

    loop {
        crate::teardown::ensure_not_interrupted()?;
        let mut waiting = Vec::new();
        let containers = docker::project_containers(docker, project).await?;
        for name in &expected {
            let summary = containers.iter().find(|c| docker::service_of(c) == Some(name.as_str()));
            let Some(id) = summary.and_then(|c| c.id.clone()) else {
                waiting.push(name.clone());
                continue;
            };
            let inspect = match docker.inspect_container(&id, None).await {
                Ok(inspect) => inspect,
                // Compose replaced the container between listing and inspecting: look again.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    waiting.push(name.clone());
                    continue;
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("failed to inspect `{name}`"));
                }
            };
            let (mut state, finding) = judge(mesh, name, &inspect, started, overall);
            // The first time a service was seen healthy is kept; later looks only add.
            if let Some(earlier) = outcome.services.get(name) {
                state.time_to_healthy_ms = earlier.time_to_healthy_ms.or(state.time_to_healthy_ms);
            }
            if state.time_to_healthy_ms.is_none() && matches!(finding, Judgement::Ready) {
                state.time_to_healthy_ms =
                    first_healthy(&inspect, run_start).or_else(|| Some(millis(started.elapsed())));
            }
            state.time_to_running_ms = state.time_to_running_ms.or_else(|| {
                engine_time_since(inspect.state.as_ref()?.started_at.as_deref()?, run_start)
            });
            outcome.services.insert(name.clone(), state);
            match finding {
                Judgement::Ready => {}
                Judgement::Waiting if failures.contains_key(name) => {}
                Judgement::Waiting => waiting.push(name.clone()),
                Judgement::Failed(finding) => {
                    failures.entry(name.clone()).or_insert(*finding);
                }
            }
        }
        if !failures.is_empty() {
            // Fail fast, but name the other failures already under way (a dependency that
            // crashed and the dependant that turns unhealthy because of it) in the same run.
            let first = *failing_since.get_or_insert_with(Instant::now);
            if waiting.is_empty() || first.elapsed() >= SETTLE {
                outcome.findings = failures.into_values().collect();
                return Ok(outcome);
            }
        } else if waiting.is_empty() {
            return Ok(outcome);
        }
        if failing_since.is_some() {
            // `compose up` fails too once a dependency failed: the findings say why.
            let _ = up_finished();
        } else if up_error.is_none() {
            if let Some(Err(error)) = up_finished() {
                up_error = Some(error);
                // One more look at the containers names the cause; then give up.
                continue;
            }
        } else {
            let error = up_error.take().unwrap_or_else(|| anyhow::anyhow!("compose up failed"));
            return Err(error.context(format!(
                "the mesh did not come up; still waiting for: {}",
                waiting.join(", ")
            )));
        }
        if started.elapsed() > overall {
            outcome.findings = failures.into_values().collect();
            for name in waiting {
                outcome.findings.push(timeout_finding(mesh, &name, overall));
            }
            return Ok(outcome);
        }
        // Wake on the next event of the project, or re-check within a second (sooner while
        // other failures are being collected).
        let tick = if failing_since.is_some() { SETTLE / 4 } else { Duration::from_secs(1) };
        if events_open {
            match tokio::time::timeout(tick, events.next()).await {
                Ok(None) => events_open = false,
                Ok(Some(Err(error))) => {
                    crate::term::verbose(&format!(
                        "engine events stopped ({error}); polling instead"
                    ));
                    events_open = false;
                }
                Ok(Some(Ok(_))) | Err(_) => {}
            }
        } else {
            // Without the event stream, state is polled once a second.
            tokio::time::sleep(tick).await;
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds from `run_start` to an engine timestamp (RFC 3339, nanoseconds); `None` for
/// the engine's zero time or a time before the run.
fn engine_time_since(timestamp: &str, run_start: std::time::SystemTime) -> Option<u64> {
    if timestamp.starts_with("0001") {
        return None;
    }
    let at = humantime::parse_rfc3339_weak(timestamp).ok()?;
    at.duration_since(run_start).ok().map(millis)
}

/// When the first passing health probe the engine still remembers ended.
fn first_healthy(
    inspect: &ContainerInspectResponse,
    run_start: std::time::SystemTime,
) -> Option<u64> {
    let log = inspect.state.as_ref()?.health.as_ref()?.log.as_ref()?;
    let passed = log.iter().find(|entry| entry.exit_code == Some(0))?;
    engine_time_since(passed.end.as_deref()?, run_start)
}

enum Judgement {
    Ready,
    Waiting,
    Failed(Box<Finding>),
}

fn service_location(mesh: &Mesh, name: &str) -> Location {
    mesh.project.services.get(name).map(|service| service.location.clone()).unwrap_or_default()
}

/// Where a health finding points: the service's `healthcheck:` when the Compose file has one
/// (the image's HEALTHCHECK applies otherwise), else the service.
fn healthcheck_location(mesh: &Mesh, name: &str) -> Location {
    let service = mesh.project.services.get(name);
    match service.and_then(|service| service.healthcheck.as_ref()) {
        Some(healthcheck) => healthcheck.location.clone(),
        None => service_location(mesh, name),
    }
}

fn timeout_finding(mesh: &Mesh, name: &str, budget: Duration) -> Finding {
    Finding::new(
        Rule::HealthTimeout,
        healthcheck_location(mesh, name),
        format!("`{name}` did not become healthy within {}", humantime::format_duration(budget)),
        "read its log under logs/services/, or rerun with --keep-up and use the `logs` command it prints",
    )
    .service(name)
    .key("timeout")
}

fn judge(
    mesh: &Mesh,
    name: &str,
    inspect: &ContainerInspectResponse,
    started: Instant,
    overall: Duration,
) -> (ServiceState, Judgement) {
    let state = inspect.state.clone().unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let last_output = health.log.as_ref().and_then(|log| log.last()).map(|entry| {
        (
            entry.exit_code.unwrap_or_default(),
            entry.output.clone().unwrap_or_default().trim().to_owned(),
        )
    });
    let record = ServiceState {
        container: inspect.name.clone().unwrap_or_default().trim_start_matches('/').to_owned(),
        status: format!(
            "{:?}",
            state.status.unwrap_or(bollard::models::ContainerStateStatusEnum::EMPTY)
        )
        .to_lowercase(),
        restarts: inspect.restart_count.unwrap_or_default(),
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or_default(),
        last_health_output: last_output.as_ref().map(|(_, output)| output.clone()),
        time_to_running_ms: None,
        time_to_healthy_ms: None,
        stop: None,
    };
    let fail = |rule: Rule, message: String, remedy: &str| {
        let location = match rule {
            Rule::Exited => service_location(mesh, name),
            _ => healthcheck_location(mesh, name),
        };
        Judgement::Failed(Box::new(
            Finding::new(rule, location, message, remedy).service(name).key(rule.id()),
        ))
    };

    let running = state.running.unwrap_or_default();
    if !running || state.restarting.unwrap_or_default() || record.restarts > 0 {
        let code = state.exit_code.unwrap_or_default();
        if !running && code == 0 && !state.restarting.unwrap_or_default() && record.restarts == 0 {
            // Created but not started yet: Compose starts it once its dependencies are ready.
            if state.started_at.as_deref().is_none_or(|at| at.starts_with("0001")) {
                return (record, Judgement::Waiting);
            }
        }
        let cause = if record.oom_killed {
            "was killed for running out of memory".to_owned()
        } else if record.restarts > 0 {
            format!("restarted {} time(s) (last exit code {code})", record.restarts)
        } else {
            format!("exited with code {code}")
        };
        let judgement = fail(
            Rule::Exited,
            format!("`{name}` {cause}"),
            "read its log under logs/services/ to see why it stopped",
        );
        return (record, judgement);
    }

    let has_healthcheck = inspect
        .config
        .as_ref()
        .and_then(|config| config.healthcheck.as_ref())
        .and_then(|hc| hc.test.as_ref())
        .is_some_and(|test| !test.is_empty() && test[0] != "NONE");
    match health.status {
        Some(HealthStatusEnum::HEALTHY) => (record, Judgement::Ready),
        _ if !has_healthcheck => (record, Judgement::Ready),
        Some(HealthStatusEnum::UNHEALTHY) => {
            let output = record.last_health_output.clone().unwrap_or_default();
            let judgement = fail(
                Rule::Unhealthy,
                format!(
                    "`{name}` is unhealthy (last probe output: {})",
                    if output.is_empty() { "none" } else { &output }
                ),
                "fix what the healthcheck reports; --keep-up leaves the mesh running to look closer",
            );
            (record, judgement)
        }
        _ => {
            if let Some((code, output)) = &last_output {
                let missing = output.contains("executable file not found")
                    || output.contains("no such file or directory");
                if (*code == -1 || *code == 126 || *code == 127) && missing {
                    let judgement = fail(
                        Rule::HealthcheckMissing,
                        format!("`{name}`: healthcheck command missing in image ({output})"),
                        "use an exec-form healthcheck that runs a binary the image has, e.g. [\"CMD\", \"/app\", \"healthcheck\"]",
                    );
                    return (record, judgement);
                }
            }
            let limit = mesh
                .config
                .service_health_timeouts
                .get(name)
                .copied()
                .unwrap_or_else(|| budget(inspect))
                .min(overall);
            let since_start = container_age(&state.started_at).unwrap_or_else(|| started.elapsed());
            if since_start > limit {
                return (record, Judgement::Failed(Box::new(timeout_finding(mesh, name, limit))));
            }
            (record, Judgement::Waiting)
        }
    }
}

/// How long ago the container started, from the engine's RFC 3339 timestamp.
fn container_age(started_at: &Option<String>) -> Option<Duration> {
    let text = started_at.as_deref()?;
    // The engine writes nanoseconds; humantime reads at most nine fraction digits.
    let started = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    std::time::SystemTime::now().duration_since(started).ok()
}

/// How long one readiness request may take: a service's `/readyz` asks its own dependencies
/// first, so it gets longer than a bare connect probe.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches every declared readiness endpoint over the mesh: from the network namespace of a
/// running service whose contract declares an edge to it (a real caller), or from the
/// service's own namespace by its service name when nothing calls it (a public entry point).
/// Each source's requests go out at once from one `meshgate-probe` helper container; sources
/// run in parallel. Only a 2xx answer is ready.
pub async fn check_readiness(
    docker: &Docker,
    mesh: &Mesh,
    project: &str,
    probe_image: &str,
) -> anyhow::Result<Vec<Finding>> {
    let running: BTreeMap<String, String> = docker::project_containers(docker, project)
        .await?
        .into_iter()
        .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
        .filter_map(|c| Some((docker::service_of(&c)?.to_owned(), c.id?)))
        .collect();
    let mut findings = Vec::new();
    // source service → (target service, URL)
    let mut by_source: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for contract in mesh.contracts.values() {
        let Some(path) = &contract.readiness else { continue };
        if !running.contains_key(&contract.service) {
            // Not part of this run (an inactive profile): the wait judged what should run.
            continue;
        }
        let Some(port) = contract.listen.iter().find(|l| l.protocol == "tcp").map(|l| l.port)
        else {
            findings.push(
                Finding::new(
                    Rule::NotReady,
                    contract.location.clone(),
                    format!(
                        "`{}` declares readiness {path} but listens on no TCP port to ask it on",
                        contract.service
                    ),
                    "add the HTTP port to the contract's `listen`, or remove `readiness`",
                )
                .service(&contract.service),
            );
            continue;
        };
        let caller = mesh
            .contracts
            .values()
            .filter(|other| running.contains_key(&other.service))
            .find(|other| {
                other.talks_to.iter().any(|e| e.service == contract.service && e.port == port)
            })
            .map_or_else(|| contract.service.clone(), |other| other.service.clone());
        let url = format!("http://{}:{port}{path}", contract.service);
        by_source.entry(caller).or_default().push((contract.service.clone(), url));
    }

    let running = &running;
    let runs = by_source.iter().map(|(source, requests)| async move {
        let urls: Vec<String> = requests.iter().map(|(_, url)| url.clone()).collect();
        let name = format!("{project}-ready-{source}");
        let result = crate::gates::network_runtime::run_probe_container(
            docker,
            project,
            probe_image,
            &name,
            &running[source],
            &urls,
            READINESS_TIMEOUT,
        )
        .await;
        (source, requests, result)
    });
    for (source, requests, result) in futures_util::future::join_all(runs).await {
        for (service, url) in requests {
            let contract = &mesh.contracts[service];
            let seen = result
                .as_ref()
                .map(|outcomes| outcomes.iter().find(|outcome| &outcome.target == url));
            let problem = match seen {
                Ok(Some(outcome)) => match outcome.status {
                    Some(status) if outcome.outcome == "answered" => {
                        if (200..300).contains(&status) {
                            continue;
                        }
                        format!("answered {status}")
                    }
                    _ => format!(
                        "got no answer: {}{}",
                        outcome.outcome,
                        outcome.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                    ),
                },
                Ok(None) => "got no answer: the probe printed no result for it".to_owned(),
                Err(reason) => format!("could not be asked: {reason}"),
            };
            let from = if source == service {
                "its own namespace".to_owned()
            } else {
                format!("`{source}`")
            };
            findings.push(
                Finding::new(
                    Rule::NotReady,
                    contract.location.clone(),
                    format!("`{service}` is healthy but GET {url} from {from} {problem}"),
                    "check that the service's dependencies answer over the mesh; `--keep-up` leaves the mesh running to look",
                )
                .service(service),
            );
        }
    }
    Ok(findings)
}

/// How a container stopped when the run ended.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stop {
    pub duration_ms: u64,
    pub exit_code: Option<i64>,
    /// How long the engine waited after the stop signal before it sent SIGKILL.
    pub grace_ms: u64,
}

/// The grace period the engine gives a container that sets none (`stop_grace_period`).
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Stops every running service container of the project at once, each with its own stop
/// signal and grace period (as `compose down` would), and records how each one stopped. A
/// container the engine had to kill once its grace period ran out ignored its stop signal: a
/// service that loses in-flight work, and the coverage profile of an instrumented binary,
/// whenever it is stopped.
pub async fn stop_containers(
    docker: &Docker,
    mesh: &Mesh,
    project: &str,
) -> anyhow::Result<(BTreeMap<String, Stop>, Vec<Finding>)> {
    let containers = docker::project_containers(docker, project).await?;
    let running = containers.into_iter().filter_map(|container| {
        let service = docker::service_of(&container)?.to_owned();
        let running = container.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
        running.then_some((service, container.id?))
    });
    let stops = running.map(|(service, id)| async move {
        let stopped =
            stop_one(docker, &id).await.with_context(|| format!("failed to stop `{service}`"));
        (service, stopped)
    });
    let mut stopped = BTreeMap::new();
    let mut findings = Vec::new();
    for (service, stop) in futures_util::future::join_all(stops).await {
        let (stop, ignored_signal) = stop?;
        if ignored_signal {
            findings.push(
                Finding::new(
                    Rule::IgnoredStopSignal,
                    service_location(mesh, &service),
                    format!(
                        "`{service}` did not exit within its {} grace period after its stop signal and was killed (exit code 137)",
                        humantime::format_duration(Duration::from_millis(stop.grace_ms))
                    ),
                    "handle SIGTERM (or the service's `stop_signal`) by finishing in-flight work and exiting; raise `stop_grace_period` if it needs longer",
                )
                .service(&service)
                .key("ignored-stop-signal"),
            );
        }
        stopped.insert(service, stop);
    }
    Ok((stopped, findings))
}

/// Stops one container and says whether it had to be killed after its grace period.
async fn stop_one(docker: &Docker, id: &str) -> anyhow::Result<(Stop, bool)> {
    let inspect = docker.inspect_container(id, None).await?;
    let grace = inspect
        .config
        .as_ref()
        .and_then(|config| config.stop_timeout)
        .filter(|seconds| *seconds >= 0)
        .map_or(DEFAULT_STOP_GRACE, |seconds| Duration::from_secs(seconds as u64));
    // The engine answers once the container is gone: allow for the whole grace period.
    let docker = docker.clone().with_timeout(grace + Duration::from_secs(60));
    let clock = Instant::now();
    // Without `t` the engine applies the container's own stop signal and grace period.
    docker.stop_container(id, None).await?;
    let duration = clock.elapsed();
    let state = docker.inspect_container(id, None).await?.state.unwrap_or_default();
    let exit_code = state.exit_code;
    let killed = exit_code == Some(137) && !state.oom_killed.unwrap_or_default();
    // Killed with the grace period spent: the stop signal was not acted on in time.
    let ignored_signal = killed && duration + Duration::from_millis(250) >= grace;
    let stop = Stop { duration_ms: millis(duration), exit_code, grace_ms: millis(grace) };
    Ok((stop, ignored_signal))
}

/// Warnings about healthcheck settings the engine will not honour: `start_interval` needs
/// Engine 25 (API 1.44); older engines probe at `interval` throughout the start period.
pub fn check_engine_support(project: &crate::compose::Project, api_version: &str) -> Vec<Finding> {
    let mut parts = api_version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (1, 44) {
        return Vec::new();
    }
    project
        .active_services()
        .filter_map(|service| {
            let healthcheck = service.healthcheck.as_ref()?;
            healthcheck.start_interval?;
            let interval = healthcheck.interval.unwrap_or(DEFAULT_INTERVAL);
            Some(
                Finding::new(
                    Rule::StartIntervalIgnored,
                    healthcheck.location.clone(),
                    format!(
                        "`{}` sets `start_interval`, which this engine (API {api_version}) ignores: it probes every {} from the start",
                        service.name,
                        humantime::format_duration(interval)
                    ),
                    "shorten `interval` if the first probe comes too late, or run Docker Engine 25 or newer",
                )
                .service(&service.name),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c16_project() -> crate::compose::Project {
        let shared = std::env::var_os("MESHGATE_SHARED").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            std::path::PathBuf::from,
        );
        let file = shared.join("cases/inputs/C16-healthcheck-timing/compose.yaml");
        let options = crate::compose::LoadOptions::with_process_env(vec![file], Vec::new());
        crate::compose::load(&options).unwrap()
    }

    #[test]
    fn start_interval_is_flagged_on_engines_before_api_1_44() {
        let project = c16_project();
        let findings = check_engine_support(&project, "1.41");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, Rule::StartIntervalIgnored);
        assert_eq!(findings[0].service.as_deref(), Some("db"));
        assert!(findings[0].message.contains("every 30s"), "{}", findings[0].message);
        assert!(findings[0].location.line > 0);
        assert!(check_engine_support(&project, "1.44").is_empty());
        assert!(check_engine_support(&project, "1.47").is_empty());
    }

    #[test]
    fn budgets_follow_the_healthcheck_timing_with_engine_defaults() {
        use bollard::models::{ContainerConfig, HealthConfig};

        let with = |healthcheck: Option<HealthConfig>| ContainerInspectResponse {
            config: Some(ContainerConfig { healthcheck, ..Default::default() }),
            ..Default::default()
        };
        let seconds = |s: i64| Some(s * 1_000_000_000);
        // C16: start_period 60s with the defaults interval 30s, timeout 30s, retries 3.
        let c16 = HealthConfig { start_period: seconds(60), ..Default::default() };
        assert_eq!(budget(&with(Some(c16))), Duration::from_secs(60 + 30 * 4 + 30));
        let fast = HealthConfig {
            interval: seconds(1),
            timeout: seconds(2),
            retries: Some(2),
            start_period: seconds(10),
            ..Default::default()
        };
        assert_eq!(budget(&with(Some(fast))), Duration::from_secs(10 + 3 + 2));
        assert_eq!(budget(&with(None)), Duration::from_secs(30));
        // Extreme values saturate instead of overflowing.
        let extreme = HealthConfig {
            interval: Some(i64::MAX),
            retries: Some(i64::from(u32::MAX)),
            ..Default::default()
        };
        assert_eq!(budget(&with(Some(extreme))), Duration::MAX);
    }
}
