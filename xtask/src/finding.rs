//! Findings: what a gate reports about the mesh. Every finding has a stable rule id, a
//! location and a remedy; the enforcement mode decides at the very end what they mean for the
//! exit code. Errors that stop a gate from running are `anyhow::Error`s, never findings.

use serde::Serialize;

use crate::location::Location;

/// How serious a finding is under `strict` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the gate.
    Error,
    /// Reported, never fails the gate on its own.
    Warning,
}

macro_rules! rules {
    ($( $(#[doc = $doc:literal])* $variant:ident = ($id:literal, $severity:ident), )*) => {
        /// Every rule the gates apply. Ids are stable: reports, exceptions and issue
        /// fingerprints refer to them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule { $( $(#[doc = $doc])* $variant, )* }

        impl Rule {
            pub const ALL: &[Rule] = &[$(Rule::$variant),*];

            pub fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            /// The rule with this id, as reports print it.
            pub fn from_id(id: &str) -> Option<Rule> {
                match id { $($id => Some(Rule::$variant),)* _ => None }
            }

            pub fn default_severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Rule::$variant => concat!($($doc),*).trim_ascii(),)* }
            }
        }
    };
}

rules! {
    /// A Compose service has no contract: no crate declares it and meshgate.toml lists no such external service.
    NoContract = ("discovery/no-contract", Error),
    /// A contract names a service the Compose file does not define.
    NotInCompose = ("discovery/not-in-compose", Error),
    /// A service crate has no Dockerfile next to its Cargo.toml.
    NoDockerfile = ("discovery/no-dockerfile", Error),
    /// A declared edge cannot connect: no shared network, or the target does not listen on the port.
    EdgeUnreachable = ("network/edge-unreachable", Error),
    /// Two services share a network without a declared edge between them (least privilege).
    UndeclaredReachability = ("network/undeclared-reachability", Error),
    /// A service that is not public publishes host ports.
    PublishNotPublic = ("network/publish-not-public", Error),
    /// A published container port is not one the contract listens on.
    PublishNotListened = ("network/publish-not-listened", Error),
    /// A service uses the host's network stack.
    HostNetwork = ("network/host-network", Error),
    /// A service joins another container's network namespace without declaring it.
    SharedNamespace = ("network/shared-namespace", Error),
    /// A declared edge has no `depends_on` entry with `condition: service_healthy`.
    DependencyNotHealthy = ("network/dependency-not-healthy", Error),
    /// A `depends_on` target is disabled by the active profiles.
    DependencyDisabled = ("network/dependency-disabled", Error),
    /// A contract names a network the Compose file does not define.
    UnknownNetwork = ("network/unknown-network", Error),
    /// A service's networks in the Compose file differ from its contract.
    NetworkMismatch = ("network/network-mismatch", Error),
    /// A service answers on a network to a name (alias) its contract does not declare.
    UndeclaredAlias = ("network/undeclared-alias", Error),
    /// A network meshgate.toml marks internal is not `internal: true` in the Compose file.
    NetworkNotInternal = ("network/network-not-internal", Error),
    /// A published port sits on a service attached only to internal networks, so it is unreachable.
    PublishedOnInternalOnly = ("network/published-on-internal-only", Error),
    /// A published port depends on a variable that is unset.
    PortUnsetVariable = ("network/port-unset-variable", Error),
    /// Two mappings publish the same host address, port and protocol.
    PortConflict = ("network/port-conflict", Error),
    /// An unquoted HOST:CONTAINER port that YAML 1.1 readers take for a base-60 number.
    UnquotedPort = ("network/unquoted-port", Warning),
    /// A container is attached to other networks than its contract lists (engine inspect).
    RuntimeAttachment = ("network/runtime-attachment", Error),
    /// A declared edge did not connect between the running containers.
    EdgeRefused = ("network/edge-refused", Error),
    /// A connection no contract allows succeeded between the running containers.
    ForbiddenConnects = ("network/forbidden-connects", Error),
    /// A connection probe could not run, so the edge is unproven either way.
    ProbeError = ("network/probe-error", Error),
    /// A service did not become healthy.
    Unhealthy = ("health/unhealthy", Error),
    /// A container exited or restarted while the mesh came up.
    Exited = ("health/exited", Error),
    /// A service did not become healthy within its time budget.
    HealthTimeout = ("health/timeout", Error),
    /// The healthcheck command does not exist in the image.
    HealthcheckMissing = ("health/healthcheck-missing", Error),
    /// A readiness endpoint did not answer 2xx.
    NotReady = ("health/not-ready", Error),
    /// A container had to be killed at teardown: it did not exit on its stop signal within its grace period.
    IgnoredStopSignal = ("health/ignored-stop-signal", Error),
    /// A healthcheck sets `start_interval`, which the engine is too old to honour.
    StartIntervalIgnored = ("health/start-interval-ignored", Warning),
    /// A reviewed exception has expired: it suppresses nothing any more.
    ExceptionExpired = ("exception/expired", Error),
    /// A reviewed exception expires soon.
    ExceptionExpiring = ("exception/expiring", Warning),
    /// A reviewed exception matches no finding.
    ExceptionStale = ("exception/stale", Warning),
    /// A tracked file is build output: a Cargo target folder, a coverage profile or report, or a binary above the size budget.
    TrackedBuildOutput = ("hygiene/tracked-build-output", Error),
    /// A log file is tracked.
    TrackedLog = ("hygiene/tracked-log", Error),
    /// `.gitignore` does not ignore `logs/`, where the gates write.
    LogsNotIgnored = ("hygiene/logs-not-ignored", Error),
    /// A tracked file holds a private key or a token with a provider's well-known prefix.
    SecretInFile = ("hygiene/secret", Error),
    /// A tracked env file gives secret-like keys non-empty values (placeholders included).
    SecretInEnvFile = ("hygiene/env-file-secret", Error),
    /// A Compose `environment:` entry gives a secret-like key a literal value.
    SecretInCompose = ("hygiene/compose-secret", Error),
    /// A base or service image is untagged or tagged `latest`.
    ImageLatest = ("hygiene/image-latest", Error),
    /// A base or service image is pinned by tag only, not by digest.
    ImageNotPinned = ("hygiene/image-not-pinned", Error),
    /// An image reference depends on a variable without a value, or is no reference.
    ImageUnresolved = ("hygiene/image-unresolved", Error),
    /// The final Dockerfile stage runs as root: no `USER`, or `USER root`.
    RootUser = ("hygiene/root-user", Error),
    /// A service has no healthcheck, in Compose or in its Dockerfile, or disables it.
    NoHealthcheck = ("hygiene/no-healthcheck", Error),
    /// A Dockerfile `HEALTHCHECK` in shell form.
    HealthcheckShellForm = ("hygiene/healthcheck-shell-form", Error),
    /// A healthcheck needs a shell or a tool that a scratch or distroless image lacks.
    HealthcheckNeedsShell = ("hygiene/healthcheck-needs-shell", Warning),
    /// An `apt-get install` package without a version, or a missing `&&` after the install.
    AptUnpinned = ("hygiene/apt-unpinned", Warning),
    /// A Dockerfile that cannot be read or parsed.
    DockerfileSyntax = ("hygiene/dockerfile-syntax", Error),
    /// A build context without a `.dockerignore`.
    DockerignoreMissing = ("hygiene/dockerignore-missing", Error),
    /// A `.dockerignore` that lets `target/` or `.git` into the build context.
    DockerignoreIncomplete = ("hygiene/dockerignore-incomplete", Error),
    /// A service without a restart policy.
    NoRestartPolicy = ("hygiene/no-restart-policy", Error),
    /// A service runs privileged.
    Privileged = ("hygiene/privileged", Error),
    /// A service mounts the Docker socket.
    DockerSocket = ("hygiene/docker-socket", Error),
    /// A service sets no logging, or discards its output.
    LoggingMissing = ("hygiene/logging-missing", Error),
    /// A service's logging differs from the mesh's shared definition.
    LoggingDiffers = ("hygiene/logging-differs", Error),
    /// A service writes out the mesh's logging definition again instead of sharing it.
    LoggingNotShared = ("hygiene/logging-not-shared", Warning),
    /// File-based logging (`json-file`) without a size limit.
    LoggingNoRotation = ("hygiene/logging-no-rotation", Error),
    /// A built image is above its size budget.
    ImageTooLarge = ("hygiene/image-too-large", Error),
    /// A built image runs as root.
    ImageRunsAsRoot = ("hygiene/image-runs-as-root", Error),
    /// A built image lacks the OCI revision label of the commit under test.
    ImageRevision = ("hygiene/image-revision", Error),
    /// A container printed a line that is not one JSON log object of its service.
    LogNotJson = ("hygiene/log-not-json", Error),
    /// A container wrote log files into its own filesystem (engine diff).
    LogFileWritten = ("hygiene/log-file-written", Error),
    /// A package's line or region coverage is below the threshold that applies to it.
    CoverageBelowThreshold = ("coverage/below-threshold", Error),
    /// A package's line coverage fell further below its last recorded figure than the ratchet allows.
    CoverageDropped = ("coverage/dropped", Error),
    /// A package of the coverage scope has no coverage data: none of its files is in the export.
    CoverageNoData = ("coverage/no-data", Error),
    /// A test of the instrumented run failed, so no coverage figure can be trusted.
    CoverageTestsFailed = ("coverage/tests-failed", Error),
    /// Some coverage profiles could not be merged: the figures come from the rest (a degraded run).
    CoverageProfilesSkipped = ("coverage/profiles-skipped", Warning),
}

impl Rule {
    /// Whether the rule judges running containers (so no static fixture can show it).
    pub fn needs_running_mesh(self) -> bool {
        matches!(
            self,
            Rule::RuntimeAttachment
                | Rule::EdgeRefused
                | Rule::ForbiddenConnects
                | Rule::ProbeError
                | Rule::Unhealthy
                | Rule::Exited
                | Rule::HealthTimeout
                | Rule::HealthcheckMissing
                | Rule::NotReady
                | Rule::IgnoredStopSignal
                | Rule::StartIntervalIgnored
                | Rule::ImageTooLarge
                | Rule::ImageRunsAsRoot
                | Rule::ImageRevision
                | Rule::LogNotJson
                | Rule::LogFileWritten
        )
    }
}

/// One thing a gate found. Serialized with its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// The Compose service concerned, if one is.
    pub service: Option<String>,
    pub message: String,
    pub location: Location,
    /// What to change to fix it.
    pub remedy: String,
    /// What the finding is about, whatever line it is on and whatever the run measured: the
    /// part of the fingerprint beyond rule, service and file. The message unless a gate whose
    /// messages carry figures (timings, exit codes, samples) sets something steadier.
    pub key: Option<String>,
}

impl Finding {
    pub fn new(
        rule: Rule,
        location: Location,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.default_severity(),
            service: None,
            message: message.into(),
            location,
            remedy: remedy.into(),
            key: None,
        }
    }

    pub fn service(mut self, service: impl Into<String>) -> Finding {
        self.service = Some(service.into());
        self
    }

    /// Sets what the finding is about for its fingerprint (see `key`).
    pub fn key(mut self, key: impl Into<String>) -> Finding {
        self.key = Some(key.into());
        self
    }

    /// A stable identity across runs: the same fault gives the same fingerprint when lines
    /// move or figures change. Exceptions and the issues opened for persistent violations
    /// refer to findings by it. Computed from the location as reported (repository-relative).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;

        let mut hasher = sha2::Sha256::new();
        for part in [
            self.rule.id(),
            self.service.as_deref().unwrap_or(""),
            &self.location.file.to_string_lossy(),
            self.key.as_deref().unwrap_or(&self.message),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        crate::tools::hex(&hasher.finalize()[..8])
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;

        let finding = self;
        let mut out = serializer.serialize_struct("Finding", 7)?;
        out.serialize_field("rule", finding.rule.id())?;
        out.serialize_field("severity", &finding.severity)?;
        out.serialize_field("service", &finding.service)?;
        out.serialize_field("message", &finding.message)?;
        out.serialize_field("location", &finding.location)?;
        out.serialize_field("remedy", &finding.remedy)?;
        out.serialize_field("fingerprint", &finding.fingerprint())?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_kebab_case_and_documented() {
        let mut ids: Vec<&str> = Rule::ALL.iter().map(|rule| rule.id()).collect();
        for id in &ids {
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'/'), "{id}");
        }
        for rule in Rule::ALL {
            assert!(!rule.description().is_empty(), "{rule:?}");
        }
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }

    #[test]
    fn fingerprints_ignore_lines_and_follow_the_key() {
        let at = |line| Location::line("compose.yaml", line);
        let finding = Finding::new(Rule::HostNetwork, at(3), "`api` uses the host network", "x")
            .service("api");
        let moved = Finding { location: at(40), ..finding.clone() };
        assert_eq!(finding.fingerprint(), moved.fingerprint());
        assert_eq!(finding.fingerprint().len(), 16);

        let other_service = finding.clone().service("web");
        assert_ne!(finding.fingerprint(), other_service.fingerprint());
        let other_file =
            Finding { location: Location::line("compose.prod.yaml", 3), ..finding.clone() };
        assert_ne!(finding.fingerprint(), other_file.fingerprint());

        let exited = |code| {
            Finding::new(Rule::Exited, at(1), format!("`api` exited with code {code}"), "x")
                .service("api")
        };
        assert_ne!(exited(1).fingerprint(), exited(2).fingerprint(), "the message is the key");
        assert_eq!(exited(1).key("exited").fingerprint(), exited(2).key("exited").fingerprint());

        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(json["rule"], "network/host-network");
        assert_eq!(json["fingerprint"], finding.fingerprint());
        assert!(json.get("key").is_none());
    }
}
