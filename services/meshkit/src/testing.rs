//! Helpers for the services' integration tests: run a service binary as a real process.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A service binary running on a loopback port, stopped (SIGKILL) when dropped.
pub struct ServiceProcess {
    child: Child,
    pub port: u16,
    pub base_url: String,
}

impl ServiceProcess {
    /// Starts `binary serve` on a free port with `envs` and waits until `/healthz` answers.
    pub fn start(binary: &str, envs: &[(&str, &str)]) -> anyhow::Result<ServiceProcess> {
        let port = free_port()?;
        // Tests own this process directly; the workspace's process wrapper lives in xtask.
        #[allow(clippy::disallowed_methods)]
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("PORT", port.to_string())
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = command.spawn().with_context(|| format!("failed to start {binary}"))?;
        let process = ServiceProcess { child, port, base_url: format!("http://127.0.0.1:{port}") };
        process.wait_until_listening()?;
        Ok(process)
    }

    fn wait_until_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("service did not listen on port {} within 10 s", self.port)
    }

    /// Runs `binary healthcheck` against this process and returns its exit status.
    pub fn run_healthcheck(&self, binary: &str) -> anyhow::Result<ExitStatus> {
        #[allow(clippy::disallowed_methods)]
        let status = Command::new(binary)
            .arg("healthcheck")
            .env("PORT", self.port.to_string())
            .stdout(Stdio::null())
            .status()
            .context("failed to run healthcheck")?;
        Ok(status)
    }

    /// Sends SIGTERM, waits for the exit and returns the status with everything logged.
    pub fn terminate(mut self) -> anyhow::Result<(ExitStatus, String)> {
        #[allow(clippy::disallowed_methods)]
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("failed to run kill")?;
        anyhow::ensure!(sent.success(), "kill -TERM failed");
        let status = self.child.wait().context("failed to wait for the service")?;
        let mut output = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut output).context("failed to read the service's output")?;
        }
        Ok((status, output))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("no free port")?;
    Ok(listener.local_addr().context("listener has no address")?.port())
}

/// A blocking HTTP GET for tests, so they need no async runtime of their own.
pub fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    http_call("GET", url, None)
}

/// A blocking HTTP POST of a JSON body for tests.
pub fn http_post_json(url: &str, body: &serde_json::Value) -> anyhow::Result<(u16, String)> {
    http_call("POST", url, Some(body.to_string()))
}

fn http_call(method: &str, url: &str, body: Option<String>) -> anyhow::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start a runtime")?;
    runtime.block_on(async {
        let client = crate::Client::new(Duration::from_secs(5));
        let mut request = axum::http::Request::builder().method(method).uri(url);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(axum::body::Body::from(body.unwrap_or_default()))
            .context("invalid request")?;
        let (status, bytes) = client.send(request).await?;
        Ok((status.as_u16(), String::from_utf8_lossy(&bytes).into_owned()))
    })
}
