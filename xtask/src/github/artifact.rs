//! `cargo xtask github post --report-dir DIR`: posts the results of a run that could not post
//! them itself (a pull request from a fork, whose token is read-only), from the trusted
//! `workflow_run` workflow.
//!
//! The folder comes from an artifact of the untrusted run, so it is data: only
//! `report.json` is read, checked field by field, and nothing in it is executed or trusted
//! for who may do what. The pull request is found through the API from the commit the
//! `workflow_run` event names, and a PR number the artifact claims must agree with it. An
//! emergency override is decided here from API data alone.

use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use super::{Connected, PullRequest, Session, Status, api::ApiError};
use crate::config::Config;

/// The part of `report.json` that is posted.
#[derive(Debug, Deserialize)]
struct ArtifactReport {
    schema_version: u32,
    verdict: String,
    state: String,
    description: String,
    #[serde(default)]
    pull_request: Option<u64>,
    gates: Vec<ArtifactGate>,
}

#[derive(Debug, Deserialize)]
struct ArtifactGate {
    gate: String,
    #[serde(default)]
    findings: Vec<ArtifactFinding>,
    decision: Option<ArtifactDecision>,
}

#[derive(Debug, Deserialize)]
struct ArtifactDecision {
    state: Option<String>,
    description: String,
    blocks: bool,
}

#[derive(Debug, Deserialize)]
struct ArtifactFinding {
    rule: String,
    message: String,
    location: ArtifactLocation,
}

#[derive(Debug, Deserialize)]
struct ArtifactLocation {
    file: String,
    line: u32,
}

fn read(dir: &Path) -> anyhow::Result<ArtifactReport> {
    let file = dir.join("report.json");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!("failed to read {}: is it the folder of the run's artifact?", file.display())
    })?;
    let report: ArtifactReport = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{}:{}: not a meshgate report ({error}); post only artifacts of `cargo xtask gates`",
            file.display(),
            error.line()
        )
    })?;
    anyhow::ensure!(
        report.schema_version == crate::report::REPORT_SCHEMA_VERSION,
        "{}: report schema version {} is not {}: post with the meshgate that made it",
        file.display(),
        report.schema_version,
        crate::report::REPORT_SCHEMA_VERSION
    );
    let known_state = |state: &str| matches!(state, "success" | "failure" | "error");
    anyhow::ensure!(
        matches!(report.verdict.as_str(), "passed" | "failed" | "overridden")
            && known_state(&report.state),
        "{}: verdict `{}` / state `{}` is not one meshgate writes",
        file.display(),
        report.verdict,
        report.state
    );
    for gate in &report.gates {
        anyhow::ensure!(
            crate::gates::Gate::ALL.iter().any(|known| known.name() == gate.gate),
            "{}: unknown gate `{}`",
            file.display(),
            gate.gate
        );
        if let Some(state) = gate.decision.as_ref().and_then(|d| d.state.as_deref()) {
            anyhow::ensure!(known_state(state), "{}: unknown state `{state}`", file.display());
        }
    }
    Ok(report)
}

/// Posts a run's results from its artifact folder; returns the exit code.
pub fn post(dir: &Path, config: &Config) -> anyhow::Result<u8> {
    let report = read(dir)?;
    let session = Session::start(&config.github)?;
    let mut connected = match session {
        Session::On(connected) => connected,
        Session::Off => anyhow::bail!("`github post` runs on GitHub Actions (GITHUB_ACTIONS=true)"),
        Session::Silent { reason, .. } => anyhow::bail!("nothing can be posted: {reason}"),
    };
    if connected.context.pull_request.is_none() {
        let found = connected.block_on(find_pull_request(&connected));
        connected.context.pull_request = found.map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    if let (Some(claimed), Some(pull)) = (report.pull_request, &connected.context.pull_request) {
        anyhow::ensure!(
            claimed == pull.number,
            "the artifact names pull request #{claimed}, but commit {} belongs to #{}: not posted",
            connected.context.sha,
            pull.number
        );
    }

    let mut state = report.state.clone();
    let mut description = report.description.clone();
    if report.verdict == "failed" && connected.context.pull_request.is_some() {
        match connected.override_grant(config.emergency.max_expiry, std::time::SystemTime::now()) {
            Ok(grant) => {
                let log = &config.emergency.audit_log;
                crate::audit::append(log, &crate::audit::Event::Grant(grant.clone()))?;
                let blocking: Vec<&ArtifactGate> = report
                    .gates
                    .iter()
                    .filter(|gate| gate.decision.as_ref().is_some_and(|d| d.blocks))
                    .collect();
                let entry = crate::audit::Use {
                    commit: grant.commit.clone(),
                    at: crate::audit::rfc3339(std::time::SystemTime::now()),
                    by: crate::pipeline::operator(),
                    gates: blocking.iter().map(|gate| gate.gate.clone()).collect(),
                    findings: blocking
                        .iter()
                        .flat_map(|gate| gate.findings.iter().map(|f| f.rule.clone()))
                        .collect(),
                    reason: grant.reason.clone(),
                    approver: grant.approver.clone(),
                    expires_at: grant.expires_at.clone(),
                    source: grant.source.clone(),
                    verified: grant.verified,
                };
                crate::audit::append(log, &crate::audit::Event::Use(entry))?;
                state = "success".into();
                description =
                    format!("OVERRIDDEN by {}: {} ({description})", grant.approver, grant.reason);
                crate::term::warn(&description);
            }
            Err(reason) => crate::term::note(&format!("no emergency override: {reason}")),
        }
    }

    let context = connected.policy.context.clone();
    let mut statuses = vec![Status {
        context: context.clone(),
        state: static_state(&state),
        description: description.clone(),
    }];
    for gate in &report.gates {
        if let Some(decision) = &gate.decision {
            statuses.push(Status {
                context: format!("{context}/{}", gate.gate),
                state: static_state(decision.state.as_deref().unwrap_or("success")),
                description: decision.description.clone(),
            });
        }
    }
    connected.post_statuses(&statuses);
    connected.upsert_comment(&comment(&report, &description));
    let problems = std::mem::take(&mut connected.problems);
    for problem in &problems {
        crate::term::warn(&format!("GitHub: {problem}"));
    }
    crate::term::status(
        "Posted",
        &format!("{} status(es) on {}", statuses.len(), connected.context.sha),
    );
    Ok(if problems.is_empty() { 0 } else { 1 })
}

fn static_state(state: &str) -> &'static str {
    match state {
        "success" => "success",
        "failure" => "failure",
        _ => "error",
    }
}

/// The open pull request whose head is the event's commit.
async fn find_pull_request(connected: &Connected) -> Result<Option<PullRequest>, ApiError> {
    let sha = &connected.context.sha;
    let pulls =
        connected.api.get_all(&connected.context.route(&format!("commits/{sha}/pulls"))).await?;
    Ok(pulls
        .iter()
        .find(|pull| pull["head"]["sha"] == sha.as_str() && pull["state"] == "open")
        .map(|pull| PullRequest {
            number: pull["number"].as_u64().unwrap_or_default(),
            author: pull["user"]["login"].as_str().unwrap_or_default().to_owned(),
            fork: pull["head"]["repo"]["full_name"] != pull["base"]["repo"]["full_name"],
        }))
}

/// The PR comment, built from the report's fields only, each escaped for Markdown.
fn comment(report: &ArtifactReport, description: &str) -> String {
    let mut text = format!(
        "## meshgate: {}\n\n| gate | result | findings |\n|---|---|---|\n",
        escape(description)
    );
    for gate in &report.gates {
        let result = gate.decision.as_ref().map_or("-", |d| d.description.as_str());
        text.push_str(&format!(
            "| {} | {} | {} |\n",
            escape(&gate.gate),
            escape(result),
            gate.findings.len()
        ));
    }
    let findings: Vec<&ArtifactFinding> =
        report.gates.iter().flat_map(|gate| &gate.findings).collect();
    if !findings.is_empty() {
        text.push_str("\n| rule | where | message |\n|---|---|---|\n");
        for finding in findings.iter().take(50) {
            text.push_str(&format!(
                "| `{}` | `{}:{}` | {} |\n",
                escape(&finding.rule).replace('`', "'"),
                escape(&finding.location.file).replace('`', "'"),
                finding.location.line,
                escape(&finding.message)
            ));
        }
        if findings.len() > 50 {
            text.push_str(&format!("\n{} more in the run's artifact.\n", findings.len() - 50));
        }
    }
    text
}

/// Text from the artifact, made inert in Markdown: no tables broken, no HTML, no mentions.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('@', "@\u{200b}")
        .replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_text_cannot_break_out_of_the_comment() {
        assert_eq!(
            escape("a|b <img src=x> @admin\nnext"),
            "a\\|b &lt;img src=x&gt; @\u{200b}admin next"
        );
    }
}
