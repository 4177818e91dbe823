//! Helpers for the services' integration tests: run a service binary as a real process.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// A service binary running on a loopback port, stopped when dropped: SIGTERM, then SIGKILL
/// if it has not exited within `STOP_GRACE`.
///
/// A process killed with SIGKILL writes no coverage profile, so a test that let the drop
/// kill the service would lose everything the service ran (the coverage gate measures these
/// binaries through the tests that start them).
pub struct ServiceProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// What the service logged before it reported its port.
    logged: String,
    pub port: u16,
    pub base_url: String,
}

impl ServiceProcess {
    /// Starts `binary serve` with `envs` on a port the kernel picks, and returns once the
    /// service has logged that it listens.
    ///
    /// The port comes from the service itself (`PORT=0`): probing a port picked in advance
    /// can connect the probe to itself and report a service that is not there.
    pub fn start(binary: &str, envs: &[(&str, &str)]) -> anyhow::Result<ServiceProcess> {
        // Tests own this process directly; the workspace's process wrapper lives in xtask.
        #[allow(clippy::disallowed_methods)]
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("PORT", "0")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().with_context(|| format!("failed to start {binary}"))?;
        let stdout = child.stdout.take().context("the service's stdout is not piped")?;
        let mut stdout = BufReader::new(stdout);
        let mut logged = String::new();
        let port = loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).context("failed to read the service's log")?;
            if read == 0 {
                let _ = child.kill();
                let status = child.wait().context("failed to wait for the service")?;
                anyhow::bail!("{binary} exited ({status}) before listening; it logged:\n{logged}");
            }
            logged.push_str(&line);
            if let Some(port) = listening_port(&line) {
                break port;
            }
        };
        Ok(ServiceProcess {
            child,
            stdout,
            logged,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
        })
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
        let mut output = std::mem::take(&mut self.logged);
        self.stdout.read_to_string(&mut output).context("failed to read the service's output")?;
        Ok((status, output))
    }
}

/// How long a dropped service may take to exit on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        #[allow(clippy::disallowed_methods)]
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while sent && std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of a `listening` log line.
fn listening_port(line: &str) -> Option<u16> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["message"] != "listening" {
        return None;
    }
    event["port"].as_u64().and_then(|port| u16::try_from(port).ok())
}

/// A URL where nothing answers: port 1 on loopback is privileged, so no unprivileged
/// service holds it, and outside the ephemeral range, so a connection cannot meet itself.
pub const DEAD_URL: &str = "http://127.0.0.1:1";

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
