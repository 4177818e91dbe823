//! `meshgate-probe`: tries a TCP connection to each target given on the command line, all at
//! once, and prints one JSON line per target with what happened and how long it took.
//!
//! ```text
//! meshgate-probe --timeout-ms 2000 catalog:8080 10.0.3.4:8080
//! {"target":"catalog:8080","address":"10.0.2.3:8080","outcome":"connected","micros":412}
//! ```
//!
//! A target written as a URL (`http://catalog:8080/readyz`) is fetched with a GET instead,
//! and its line carries the answer's `status`; the health gate probes readiness endpoints
//! this way, over the mesh from a caller's namespace.
//!
//! Outcomes: `connected`, `answered` (a URL that gave an HTTP answer, whatever its status),
//! `refused`, `timeout`, `unreachable` (no route), `unresolved` (the name has no address
//! here) and `error` (anything else, with `detail`). The exit code is 0 when every target was
//! tried, whatever the outcomes, and 2 for a usage error: the gate tells a probe that ran
//! from one that could not.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

const USAGE: &str = "usage: meshgate-probe [--timeout-ms N] (HOST:PORT | http://HOST:PORT/PATH)...";

fn main() -> ExitCode {
    let mut timeout = Duration::from_secs(2);
    let mut targets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--timeout-ms" {
            match args.next().and_then(|value| value.parse::<u64>().ok()) {
                Some(millis) if millis > 0 => timeout = Duration::from_millis(millis),
                _ => return usage("--timeout-ms takes a positive number of milliseconds"),
            }
        } else if arg.starts_with('-') {
            return usage(&format!("unknown option {arg}"));
        } else {
            targets.push(arg);
        }
    }
    if targets.is_empty() {
        return usage("no target given");
    }
    let lines: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                scope.spawn(move || {
                    if target.starts_with("http://") {
                        fetch(target, timeout).to_string()
                    } else {
                        probe(target, timeout).to_string()
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&targets)
            .map(|(handle, target)| {
                handle.join().unwrap_or_else(|_| {
                    json!({ "target": target, "outcome": "error", "detail": "probe thread panicked" })
                        .to_string()
                })
            })
            .collect()
    });
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        if writeln!(stdout, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "meshgate-probe: {problem}\n{USAGE}");
    ExitCode::from(2)
}

/// One target: resolve, then connect to the first address within `timeout`.
fn probe(target: &str, timeout: Duration) -> serde_json::Value {
    let started = Instant::now();
    let address: SocketAddr = match target.to_socket_addrs() {
        Ok(mut addresses) => match addresses.next() {
            Some(address) => address,
            None => return outcome(target, None, "unresolved", started, None),
        },
        Err(error) => {
            return outcome(target, None, "unresolved", started, Some(error.to_string()));
        }
    };
    match TcpStream::connect_timeout(&address, timeout) {
        Ok(_) => outcome(target, Some(address), "connected", started, None),
        Err(error) => {
            use std::io::ErrorKind;
            let kind = match error.kind() {
                ErrorKind::ConnectionRefused => "refused",
                ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
                ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => "unreachable",
                _ => "error",
            };
            outcome(target, Some(address), kind, started, Some(error.to_string()))
        }
    }
}

/// One URL: a GET within `timeout`; any HTTP answer is `answered` with its status.
fn fetch(url: &str, timeout: Duration) -> serde_json::Value {
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(response) => {
            let mut value = outcome(url, None, "answered", started, None);
            value["status"] = json!(response.status().as_u16());
            value
        }
        Err(error) => {
            let kind = match &error {
                ureq::Error::Timeout(_) => "timeout",
                ureq::Error::HostNotFound => "unresolved",
                ureq::Error::Io(io) => match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "refused",
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timeout",
                    std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable => "unreachable",
                    _ => "error",
                },
                _ => "error",
            };
            outcome(url, None, kind, started, Some(error.to_string()))
        }
    }
}

fn outcome(
    target: &str,
    address: Option<SocketAddr>,
    outcome: &str,
    started: Instant,
    detail: Option<String>,
) -> serde_json::Value {
    let mut value = json!({
        "target": target,
        "address": address.map(|address| address.to_string()),
        "outcome": outcome,
        "micros": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    });
    if let Some(detail) = detail {
        value["detail"] = json!(detail);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_to_a_listener_and_is_refused_by_a_closed_port() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let open = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let result = probe(&open, Duration::from_secs(2));
        assert_eq!(result["outcome"], "connected", "{result}");
        assert_eq!(result["address"], open.as_str());

        // Port 1 is privileged and outside the ephemeral range: nothing listens there.
        let result = probe("127.0.0.1:1", Duration::from_secs(2));
        assert_eq!(result["outcome"], "refused", "{result}");
    }

    #[test]
    fn a_url_is_fetched_and_its_status_reported() {
        use std::io::{BufRead as _, BufReader};

        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut stream = reader.into_inner();
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            request_line
        });
        let result = fetch(&format!("http://127.0.0.1:{port}/readyz"), Duration::from_secs(2));
        assert_eq!(result["outcome"], "answered", "{result}");
        assert_eq!(result["status"], 503, "{result}");
        assert!(server.join().unwrap().starts_with("GET /readyz HTTP/1.1"));

        let result = fetch("http://127.0.0.1:1/readyz", Duration::from_secs(2));
        assert_eq!(result["outcome"], "refused", "{result}");
    }

    #[test]
    fn a_name_without_an_address_is_unresolved() {
        let result = probe("no-such-host.invalid:80", Duration::from_secs(2));
        assert_eq!(result["outcome"], "unresolved", "{result}");
        let result = probe("missing-port", Duration::from_secs(2));
        assert_eq!(result["outcome"], "unresolved", "{result}");
    }
}
