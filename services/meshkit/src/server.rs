//! Service start-up: the command line (`serve`, `healthcheck`), the listener, the shared
//! `/healthz` and `/readyz` routes, request logging, and shutdown on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Client, Logger};

/// The port a service listens on when `PORT` is not set.
pub const DEFAULT_PORT: u16 = 8080;

/// Another service this one calls, by its base URL.
#[derive(Clone, Debug)]
pub struct Dependency {
    pub name: &'static str,
    pub url: String,
}

/// What a running service knows about itself; handed to its routes as state.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub logger: Logger,
    pub client: Client,
    pub dependencies: Vec<Dependency>,
}

impl Service {
    /// Reads the port and the dependency URLs from the environment.
    ///
    /// `dependencies` pairs a service name with the variable that may override its URL; the
    /// default URL is `http://<name>:8080`, the name the mesh's DNS answers.
    pub fn from_env(
        name: &'static str,
        dependencies: &[(&'static str, &'static str)],
    ) -> anyhow::Result<Service> {
        let port = match std::env::var("PORT") {
            Ok(text) => {
                text.parse().with_context(|| format!("PORT is not a port number: {text:?}"))?
            }
            Err(_) => DEFAULT_PORT,
        };
        let dependencies = dependencies
            .iter()
            .map(|&(dependency, variable)| Dependency {
                name: dependency,
                url: std::env::var(variable)
                    .unwrap_or_else(|_| format!("http://{dependency}:{DEFAULT_PORT}")),
            })
            .collect();
        Ok(Service {
            name,
            port,
            logger: Logger::new(name),
            client: Client::new(Duration::from_secs(2)),
            dependencies,
        })
    }

    /// The base URL of a declared dependency.
    pub fn dependency_url(&self, name: &str) -> &str {
        self.dependencies
            .iter()
            .find(|dependency| dependency.name == name)
            .map_or("", |dependency| dependency.url.as_str())
    }
}

/// Runs a service binary: `serve` (the default) or `healthcheck`.
///
/// `routes` adds the service's own routes; meshkit adds `/healthz`, `/readyz` and logging.
pub fn main_with(
    name: &'static str,
    dependencies: &[(&'static str, &'static str)],
    routes: impl FnOnce(Router<Arc<Service>>) -> Router<Arc<Service>>,
) -> ExitCode {
    let service = match Service::from_env(name, dependencies) {
        Ok(service) => service,
        Err(error) => {
            Logger::new(name).error(&format!("{error:#}"), &[]);
            return ExitCode::from(2);
        }
    };
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            service.logger.error(&format!("failed to start the async runtime: {error}"), &[]);
            return ExitCode::FAILURE;
        }
    };
    match command.as_str() {
        "serve" => {
            let logger = service.logger.clone();
            match runtime.block_on(serve(service, routes)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    logger.error(&format!("{error:#}"), &[]);
                    ExitCode::FAILURE
                }
            }
        }
        // Quiet on success: the engine keeps this output in the container's health log.
        "healthcheck" => match runtime.block_on(healthcheck(&service)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                service.logger.error(&format!("healthcheck failed: {error:#}"), &[]);
                ExitCode::FAILURE
            }
        },
        other => {
            service
                .logger
                .error(&format!("unknown command {other:?}: use `serve` or `healthcheck`"), &[]);
            ExitCode::from(2)
        }
    }
}

/// Builds the complete router: shared routes, the service's own, request logging.
pub fn router(
    service: Arc<Service>,
    routes: impl FnOnce(Router<Arc<Service>>) -> Router<Arc<Service>>,
) -> Router {
    let shared = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    routes(shared)
        .layer(middleware::from_fn_with_state(service.clone(), log_request))
        .with_state(service)
}

async fn serve(
    service: Service,
    routes: impl FnOnce(Router<Arc<Service>>) -> Router<Arc<Service>>,
) -> anyhow::Result<()> {
    let address = SocketAddr::from(([0, 0, 0, 0], service.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address}"))?;
    // `PORT=0` asks the kernel for a free port; the log line names the one it chose.
    let port = listener.local_addr().context("listener has no address")?.port();
    let service = Arc::new(Service { port, ..service });
    service.logger.info("listening", &[("port", json!(port))]);

    let logger = service.logger.clone();
    axum::serve(listener, router(service, routes))
        .with_graceful_shutdown(shutdown_signal(logger.clone()))
        .await
        .context("server failed")?;
    logger.info("stopped", &[]);
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal(logger: Logger) {
    use tokio::signal::unix::{SignalKind, signal};

    let (Ok(mut terminate), Ok(mut interrupt)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        logger.error("cannot watch for SIGTERM or SIGINT; stop the service with SIGKILL", &[]);
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    logger.info("shutting down", &[("signal", json!(name))]);
}

/// Serves `routes` on an ephemeral loopback port for tests; returns the base URL.
///
/// The server runs on the caller's runtime until that runtime ends.
pub async fn spawn_on_loopback(
    name: &'static str,
    dependencies: Vec<Dependency>,
    routes: impl FnOnce(Router<Arc<Service>>) -> Router<Arc<Service>>,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("failed to listen on a loopback port")?;
    let port = listener.local_addr().context("listener has no address")?.port();
    let service = Arc::new(Service {
        name,
        port,
        logger: Logger::new(name),
        client: Client::new(Duration::from_secs(2)),
        dependencies,
    });
    let app = router(service, routes);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://127.0.0.1:{port}"))
}

/// Probes this service's own port: `/healthz`, or the path given after the command (the
/// gates run `<binary> healthcheck /readyz` inside the container to test readiness).
async fn healthcheck(service: &Service) -> anyhow::Result<()> {
    let path = std::env::args().nth(2).unwrap_or_else(|| "/healthz".to_owned());
    anyhow::ensure!(path.starts_with('/'), "the path to probe must start with `/`, got {path:?}");
    let url = format!("http://127.0.0.1:{}{path}", service.port);
    let status = service.client.probe(&url).await?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when every declared dependency answers its own `/healthz`.
async fn readyz(State(service): State<Arc<Service>>) -> Response {
    let mut failing = Vec::new();
    for dependency in &service.dependencies {
        let url = format!("{}/healthz", dependency.url);
        match service.client.probe(&url).await {
            Ok(status) if status.is_success() => {}
            Ok(status) => {
                failing.push(json!({ "dependency": dependency.name, "status": status.as_u16() }))
            }
            Err(error) => failing
                .push(json!({ "dependency": dependency.name, "error": format!("{error:#}") })),
        }
    }
    if failing.is_empty() {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        let body = json!({ "status": "not ready", "failing": failing });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// Logs every request but the health probes, which the engine sends every few seconds.
async fn log_request(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    if path != "/healthz" && path != "/readyz" {
        let fields: [(&str, Value); 4] = [
            ("method", json!(method)),
            ("path", json!(path)),
            ("status", json!(response.status().as_u16())),
            ("duration_ms", json!(started.elapsed().as_secs_f64() * 1000.0)),
        ];
        let message = "request handled";
        if response.status().is_server_error() {
            service.logger.warn(message, &fields);
        } else {
            service.logger.info(message, &fields);
        }
    }
    response
}
