//! The GitHub feedback loop: commit statuses, the PR comment, issues for findings that
//! persist, and approvals and overrides read through the API.
//!
//! It runs only on GitHub Actions (`GITHUB_ACTIONS=true`) with a token (`GITHUB_TOKEN`).
//! Nothing here changes the verdict: a call that fails is reported, and the run's outputs on
//! disk stay complete. Without a token, or on a fork PR whose token cannot write, the run
//! says that statuses were not posted and why.

pub mod api;
pub mod artifact;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::config::GithubPolicy;
use crate::report::Report;
use api::{Api, ApiError, Repeat};

/// The marker of meshgate's PR comment; the comment is found by it and updated in place.
const COMMENT_MARKER: &str = "<!-- meshgate:pr-comment -->";

/// Where a run on GitHub is: repository, commit, pull request, run URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub owner: String,
    pub repo: String,
    pub api_url: String,
    /// The commit statuses go to: the PR head on PR events, never the merge commit.
    pub sha: String,
    /// Which variable or payload field gave `sha`.
    pub sha_source: &'static str,
    pub pull_request: Option<PullRequest>,
    pub run_url: Option<String>,
    /// A push (or scheduled or manual run) on the repository's default branch: the runs that
    /// count for persistent findings.
    pub default_branch: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub author: String,
    /// Opened from another repository: its token cannot write here.
    pub fork: bool,
}

impl Context {
    /// Reads the Actions environment; `None` outside Actions.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Context>> {
        if env("GITHUB_ACTIONS").as_deref() != Some("true") {
            return Ok(None);
        }
        let repository = env("GITHUB_REPOSITORY").context("GITHUB_REPOSITORY is not set")?;
        let (owner, repo) = repository
            .split_once('/')
            .with_context(|| format!("GITHUB_REPOSITORY `{repository}` is not owner/name"))?;
        let event_name = env("GITHUB_EVENT_NAME").unwrap_or_default();
        let payload: Value = match env("GITHUB_EVENT_PATH") {
            Some(path) if !path.is_empty() => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("failed to read the event payload {path}"))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("the event payload {path} is not JSON"))?
            }
            _ => Value::Null,
        };
        let pull = &payload["pull_request"];
        let (sha, sha_source, pull_request) = if pull.is_object() {
            let head = pull["head"]["sha"].as_str().with_context(|| {
                format!("the {event_name} payload has no pull_request.head.sha")
            })?;
            let fork = pull["head"]["repo"]["full_name"] != pull["base"]["repo"]["full_name"];
            let pull_request = PullRequest {
                number: pull["number"]
                    .as_u64()
                    .context("the payload has no pull_request.number")?,
                author: pull["user"]["login"].as_str().unwrap_or_default().to_owned(),
                fork,
            };
            (head.to_owned(), "pull_request.head.sha", Some(pull_request))
        } else if let Some(head) = payload["workflow_run"]["head_sha"].as_str() {
            (head.to_owned(), "workflow_run.head_sha", None)
        } else {
            (env("GITHUB_SHA").context("GITHUB_SHA is not set")?, "GITHUB_SHA", None)
        };
        let default_branch = pull_request.is_none()
            && payload["workflow_run"].is_null()
            && payload["repository"]["default_branch"]
                .as_str()
                .is_some_and(|branch| env("GITHUB_REF") == Some(format!("refs/heads/{branch}")));
        let server = env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let run_url =
            env("GITHUB_RUN_ID").map(|id| format!("{server}/{repository}/actions/runs/{id}"));
        Ok(Some(Context {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            api_url: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            sha,
            sha_source,
            pull_request,
            run_url,
            default_branch,
        }))
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repo)
    }
}

/// A run's connection to GitHub, or why there is none.
pub enum Session {
    Off,
    /// On GitHub, but nothing can be posted.
    Silent {
        reason: String,
        /// The pull request the run is for, which its report names for the posting half.
        pull_request: Option<u64>,
    },
    On(Box<Connected>),
}

pub struct Connected {
    pub context: Context,
    policy: GithubPolicy,
    api: Api,
    runtime: tokio::runtime::Runtime,
    /// Problems met while posting, shown at the end of the run.
    pub problems: Vec<String>,
}

impl Session {
    /// The number of the pull request the run is for, when it is for one.
    pub fn pull_request(&self) -> Option<u64> {
        match self {
            Session::Off => None,
            Session::Silent { pull_request, .. } => *pull_request,
            Session::On(connected) => {
                connected.context.pull_request.as_ref().map(|pull| pull.number)
            }
        }
    }

    /// Connects when running on Actions with a token.
    pub fn start(policy: &GithubPolicy) -> anyhow::Result<Session> {
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let Some(context) = Context::from_env(&env)? else { return Ok(Session::Off) };
        crate::term::status(
            "GitHub",
            &format!(
                "{}/{} at {} (from {})",
                context.owner, context.repo, context.sha, context.sha_source
            ),
        );
        let Some(token) = env("GITHUB_TOKEN") else {
            return Ok(Session::Silent {
                pull_request: context.pull_request.as_ref().map(|pull| pull.number),
                reason: "GITHUB_TOKEN is not set (pass `env: GITHUB_TOKEN: ${{ github.token }}` to the step)".into(),
            });
        };
        if context.pull_request.as_ref().is_some_and(|pull| pull.fork) {
            return Ok(Session::Silent {
                pull_request: context.pull_request.as_ref().map(|pull| pull.number),
                reason: "a pull request from a fork gets a read-only token; the `workflow_run` workflow posts its results".into(),
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?;
        let api = {
            let _entered = runtime.enter();
            Api::new(&context.api_url, &token, policy.retry_wait, policy.max_retries)?
        };
        Ok(Session::On(Box::new(Connected {
            context,
            policy: policy.clone(),
            api,
            runtime,
            problems: Vec::new(),
        })))
    }

    /// Says, once the run is over, what was not posted.
    pub fn report_problems(&self) {
        match self {
            Session::Off => {}
            Session::Silent { reason, .. } => {
                crate::term::warn(&format!("statuses and comments were not posted: {reason}"));
            }
            Session::On(connected) => {
                for problem in &connected.problems {
                    crate::term::warn(&format!("GitHub: {problem}"));
                }
            }
        }
    }
}

/// One commit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub context: String,
    pub state: &'static str,
    pub description: String,
}

impl Connected {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn note(&mut self, what: &str, result: Result<(), ApiError>) {
        if let Err(error) = result {
            self.problems.push(format!("{what}: {error}"));
        }
    }

    /// Posts statuses one after the other (GitHub asks for no concurrent writes), skipping
    /// those whose context already shows the same state and description: GitHub keeps at
    /// most 1000 statuses per commit and context.
    pub fn post_statuses(&mut self, statuses: &[Status]) {
        if !self.policy.statuses {
            return;
        }
        let combined = self.context.route(&format!("commits/{}/status", self.context.sha));
        let shown: Vec<(String, String, String)> = match self.block_on(self.api.get(&combined)) {
            Ok(answer) => answer.body["statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|status| {
                    let text = |key: &str| status[key].as_str().unwrap_or_default().to_owned();
                    (text("context").to_lowercase(), text("state"), text("description"))
                })
                .collect(),
            // Not knowing what is shown only costs a status that repeats one.
            Err(_) => Vec::new(),
        };
        for status in statuses {
            let description = crate::verdict::truncate(&status.description, 140);
            let current =
                (status.context.to_lowercase(), status.state.to_owned(), description.clone());
            if shown.contains(&current) {
                continue;
            }
            let body = json!({
                "state": status.state,
                "context": status.context,
                "description": description,
                "target_url": self.context.run_url,
            });
            let route = self.context.route(&format!("statuses/{}", self.context.sha));
            let result = self.block_on(self.api.post(&route, &body, Repeat::Safe)).map(drop);
            let failed = result.is_err();
            self.note(&format!("status {}", status.context), result);
            if failed {
                // The rest would fail the same way (permissions, the 1000-status limit).
                break;
            }
        }
    }

    /// `pending` on the overall context and each selected gate's.
    pub fn post_pending(&mut self, gates: &[crate::gates::Gate]) {
        let mut statuses = vec![Status {
            context: self.policy.context.clone(),
            state: "pending",
            description: "meshgate is running the gates".into(),
        }];
        statuses.extend(gates.iter().map(|gate| Status {
            context: format!("{}/{}", self.policy.context, gate.name()),
            state: "pending",
            description: "running".into(),
        }));
        self.post_statuses(&statuses);
    }

    /// The final statuses of a run that finished.
    pub fn post_final(&mut self, report: &Report) {
        let mut statuses = vec![Status {
            context: self.policy.context.clone(),
            state: state_name(report.state),
            description: report.description.clone(),
        }];
        for gate in &report.gates {
            let Some(decision) = &gate.decision else { continue };
            // A skipped gate has no status of its own; close the pending one it may have.
            let (state, description) = match decision.state {
                Some(state) => (state_name(state), decision.description.clone()),
                None => ("success", decision.description.clone()),
            };
            statuses.push(Status {
                context: format!("{}/{}", self.policy.context, gate.gate.name()),
                state,
                description,
            });
        }
        self.post_statuses(&statuses);
    }

    /// `error` on every context of a run that could not finish: never left pending.
    pub fn post_error(&mut self, gates: &[crate::gates::Gate], error: &str) {
        let description = format!("could not run: {error}");
        let mut statuses = vec![Status {
            context: self.policy.context.clone(),
            state: "error",
            description: description.clone(),
        }];
        statuses.extend(gates.iter().map(|gate| Status {
            context: format!("{}/{}", self.policy.context, gate.name()),
            state: "error",
            description: description.clone(),
        }));
        self.post_statuses(&statuses);
    }

    /// Creates meshgate's PR comment, or updates it in place when an earlier run made one.
    pub fn upsert_comment(&mut self, markdown: &str) {
        let Some(pull) = self.context.pull_request.clone() else { return };
        if !self.policy.pr_comment {
            return;
        }
        let body = truncate_body(&format!("{COMMENT_MARKER}\n{markdown}"));
        let result = self.block_on(async {
            let route =
                self.context.route(&format!("issues/{}/comments?per_page=100", pull.number));
            let find = || async {
                let comments = self.api.get_all(&route).await?;
                Ok::<_, ApiError>(comments.into_iter().find(|comment| {
                    comment["body"].as_str().is_some_and(|text| text.starts_with(COMMENT_MARKER))
                }))
            };
            match find().await? {
                Some(existing) => {
                    let id = existing["id"].as_u64().unwrap_or_default();
                    let route = self.context.route(&format!("issues/comments/{id}"));
                    self.api.patch(&route, &json!({ "body": body })).await.map(drop)
                }
                None => {
                    let route = self.context.route(&format!("issues/{}/comments", pull.number));
                    create_once(&self.api, &route, &json!({ "body": body }), || async {
                        Ok(find().await?.is_some())
                    })
                    .await
                }
            }
        });
        self.note("the PR comment", result);
    }

    /// Keeps one issue per finding that persists on the default branch: opened once the
    /// finding was in `issue_after_runs` runs in a row, commented on (once per run) while it
    /// stays, reopened when it returns, and closed with a comment once it was absent from
    /// `issue_close_after_runs` runs in a row that judged its rule. Issues are found
    /// again by the fingerprint marker in their body, among the issues with meshgate's label.
    /// `recent` holds the fingerprints of earlier default-branch runs, newest first.
    pub fn track_issues(&mut self, gates: &[crate::gates::GateReport], recent: &[Vec<String>]) {
        if !self.policy.issues || !self.context.default_branch {
            return;
        }
        let findings: Vec<&crate::finding::Finding> =
            gates.iter().flat_map(|gate| &gate.findings).collect();
        let current: std::collections::BTreeSet<String> =
            findings.iter().map(|f| f.fingerprint()).collect();
        let after = self.policy.issue_after_runs as usize - 1;
        let close_after = self.policy.issue_close_after_runs as usize - 1;
        let mut seen = std::collections::BTreeSet::new();
        let persistent: Vec<&crate::finding::Finding> = findings
            .into_iter()
            .filter(|finding| {
                let fingerprint = finding.fingerprint();
                recent.len() >= after
                    && recent[..after].iter().all(|run| run.contains(&fingerprint))
                    && seen.insert(fingerprint)
            })
            .collect();
        let label = self.policy.issue_label.clone();
        let limit = self.policy.max_issues_per_run as usize;
        let run = self.context.run_url.clone().unwrap_or_else(|| self.context.sha.clone());
        let result = self.block_on(async {
            ensure_label(&self.api, &self.context, &label).await?;
            let list = self.context.route(&format!("issues?state=all&labels={label}&per_page=100"));
            let existing: Vec<Value> = self
                .api
                .get_all(&list)
                .await?
                .into_iter()
                .filter(|issue| issue["pull_request"].is_null())
                .collect();
            let marker_of = |fingerprint: &str| format!("<!-- meshgate:fingerprint={fingerprint} -->");
            let mut created = 0;
            for finding in &persistent {
                let marker = marker_of(&finding.fingerprint());
                let found = existing
                    .iter()
                    .find(|issue| issue["body"].as_str().is_some_and(|body| body.contains(&marker)));
                match found {
                    Some(issue) => {
                        let number = issue["number"].as_u64().unwrap_or_default();
                        let text = if issue["state"] == "open" {
                            format!("Still found by {run} at `{}`.", self.context.sha)
                        } else {
                            let route = self.context.route(&format!("issues/{number}"));
                            self.api
                                .patch(&route, &json!({ "state": "open", "state_reason": "reopened" }))
                                .await?;
                            format!("Found again by {run} at `{}`: reopened.", self.context.sha)
                        };
                        self.comment_once(number, &run, &text).await?;
                    }
                    None if created < limit => {
                        let body = json!({
                            "title": crate::verdict::truncate(
                                &format!("[{}] {}", finding.rule.id(), finding.message),
                                200,
                            ),
                            "body": truncate_body(&issue_body(finding, &marker, self.policy.issue_after_runs)),
                            "labels": [label],
                        });
                        create_once(&self.api, &self.context.route("issues"), &body, || async {
                            let issues = self.api.get_all(&list).await?;
                            Ok(issues.iter().any(|issue| {
                                issue["body"].as_str().is_some_and(|body| body.contains(&marker))
                            }))
                        })
                        .await?;
                        created += 1;
                    }
                    None => {}
                }
            }
            // Issues whose finding has gone from enough runs in a row are closed.
            for issue in existing.iter().filter(|issue| issue["state"] == "open") {
                let body = issue["body"].as_str().unwrap_or_default();
                let Some(fingerprint) = marked(body, "fingerprint") else { continue };
                let rule = marked(body, "rule").and_then(|id| crate::finding::Rule::from_id(&id));
                let judged = rule.is_some_and(|rule| {
                    let gate = crate::exceptions::gate_of(rule);
                    gates.iter().any(|report| {
                        Some(report.gate) == gate && crate::exceptions::judged(report, rule)
                    })
                });
                let gone = !current.contains(&fingerprint)
                    && recent.len() >= close_after
                    && recent[..close_after].iter().all(|run| !run.contains(&fingerprint));
                if judged && gone {
                    let number = issue["number"].as_u64().unwrap_or_default();
                    let text = format!(
                        "Not found in the last {} runs on the default branch (last: {run} at `{}`): closing.",
                        close_after + 1,
                        self.context.sha
                    );
                    self.comment_once(number, &run, &text).await?;
                    let route = self.context.route(&format!("issues/{number}"));
                    self.api
                        .patch(&route, &json!({ "state": "closed", "state_reason": "completed" }))
                        .await?;
                }
            }
            Ok(())
        });
        self.note("issues for persistent findings", result);
    }

    /// Comments on an issue at most once per run, found again by the run's marker.
    async fn comment_once(&self, number: u64, run: &str, text: &str) -> Result<(), ApiError> {
        let marker = format!("<!-- meshgate:run={run} -->");
        let route = self.context.route(&format!("issues/{number}/comments"));
        let listed = format!("{route}?per_page=100");
        let already = |comments: &[Value]| {
            comments.iter().any(|c| c["body"].as_str().is_some_and(|body| body.contains(&marker)))
        };
        if already(&self.api.get_all(&listed).await?) {
            return Ok(());
        }
        let body = json!({ "body": format!("{marker}\n{text}") });
        create_once(&self.api, &route, &body, || async {
            Ok(already(&self.api.get_all(&listed).await?))
        })
        .await
    }

    /// Who approved this PR's warnings: a review approving the head commit, or the approval
    /// label, by someone with write access who did not open the PR.
    pub fn approval(&mut self) -> Option<String> {
        let pull = self.context.pull_request.clone()?;
        let result: Result<Option<String>, ApiError> = self.block_on(async {
            let reviews = self
                .api
                .get_all(
                    &self.context.route(&format!("pulls/{}/reviews?per_page=100", pull.number)),
                )
                .await?;
            // Each reviewer's latest review that is more than a comment counts.
            let mut latest: BTreeMap<String, &Value> = BTreeMap::new();
            for review in &reviews {
                let Some(login) = review["user"]["login"].as_str() else { continue };
                if review["state"] != "COMMENTED" {
                    latest.insert(login.to_owned(), review);
                }
            }
            for (login, review) in latest {
                if review["state"] == "APPROVED"
                    && review["commit_id"] == self.context.sha.as_str()
                    && login != pull.author
                    && can_write(&self.api, &self.context, &login).await?
                {
                    return Ok(Some(login));
                }
            }
            let label = self.policy.approval_label.clone();
            let Some(event) = labeled_by(&self.api, &self.context, pull.number, &label)
                .await?
                .filter(|event| event.actor != pull.author && !event.bot)
            else {
                return Ok(None);
            };
            let allowed = can_write(&self.api, &self.context, &event.actor).await?;
            Ok(allowed.then_some(event.actor))
        });
        match result {
            Ok(approver) => approver,
            Err(error) => {
                self.problems.push(format!("approval: {error}"));
                None
            }
        }
    }

    /// The emergency override of this PR head, read through the API: the override label's
    /// latest `labeled` event, by someone with write access who is not the PR's author and
    /// not a bot, with a reason in that person's latest `/meshgate-override <reason>` comment,
    /// within `max_expiry` of the label. `Err` says why there is none.
    pub fn override_grant(
        &mut self,
        max_expiry: Duration,
        now: SystemTime,
    ) -> Result<crate::audit::Grant, String> {
        let Some(pull) = self.context.pull_request.clone() else {
            return Err("not a pull request".into());
        };
        let label = self.policy.override_label.clone();
        let result: Result<Result<crate::audit::Grant, String>, ApiError> = self.block_on(async {
            let Some(event) = labeled_by(&self.api, &self.context, pull.number, &label).await? else {
                return Ok(Err(format!("the `{label}` label is not on the pull request")));
            };
            if event.bot {
                return Ok(Err(format!("`{}` is a bot: an override needs a person", event.actor)));
            }
            if event.actor == pull.author {
                return Ok(Err(format!(
                    "self-approval refused: `{}` opened the pull request and added `{label}`",
                    event.actor
                )));
            }
            if !can_write(&self.api, &self.context, &event.actor).await? {
                return Ok(Err(format!(
                    "`{}` added `{label}` but has no write access to the repository",
                    event.actor
                )));
            }
            let comments = self
                .api
                .get_all(&self.context.route(&format!("issues/{}/comments?per_page=100", pull.number)))
                .await?;
            let reason = comments.iter().rev().find_map(|comment| {
                if comment["user"]["login"] != event.actor.as_str() {
                    return None;
                }
                let text = comment["body"].as_str()?.trim();
                let reason = text.strip_prefix("/meshgate-override")?.trim();
                (!reason.is_empty()).then(|| reason.lines().next().unwrap_or(reason).to_owned())
            });
            let Some(reason) = reason else {
                return Ok(Err(format!(
                    "`{}` added `{label}` but gave no reason: comment `/meshgate-override <reason>`",
                    event.actor
                )));
            };
            let labeled_at = humantime::parse_rfc3339(&event.created_at).unwrap_or(now);
            let expires = labeled_at + max_expiry;
            if now >= expires {
                return Ok(Err(format!(
                    "the override by `{}` expired at {}",
                    event.actor,
                    crate::audit::rfc3339(expires)
                )));
            }
            Ok(Ok(crate::audit::Grant {
                commit: self.context.sha.clone(),
                reason,
                approver: event.actor.clone(),
                author: pull.author.clone(),
                expires_at: crate::audit::rfc3339(expires),
                source: "github".into(),
                verified: true,
                granted_by: event.actor,
                at: event.created_at,
            }))
        });
        match result {
            Ok(grant) => grant,
            Err(error) => Err(format!("could not read the override from GitHub: {error}")),
        }
    }
}

fn state_name(state: crate::verdict::State) -> &'static str {
    match state {
        crate::verdict::State::Success => "success",
        crate::verdict::State::Failure => "failure",
        crate::verdict::State::Error => "error",
    }
}

/// Sends a create once; when its effect is unknown (timeout, 5xx), looks with `exists`
/// whether it took effect before sending it again, so that nothing is created twice.
async fn create_once<F, Fut>(
    api: &Api,
    route: &str,
    body: &Value,
    exists: F,
) -> Result<(), ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    match api.post(route, body, Repeat::Never).await {
        Ok(_) => Ok(()),
        Err(error) if error.uncertain => {
            if exists().await? {
                return Ok(());
            }
            api.post(route, body, Repeat::Never).await.map(drop)
        }
        Err(error) => Err(error),
    }
}

async fn ensure_label(api: &Api, context: &Context, label: &str) -> Result<(), ApiError> {
    match api.get(&context.route(&format!("labels/{label}"))).await {
        Ok(_) => Ok(()),
        Err(error) if error.status == Some(http::StatusCode::NOT_FOUND) => {
            let body = json!({
                "name": label,
                "color": "b60205",
                "description": "A meshgate finding that persisted across runs",
            });
            match api.post(&context.route("labels"), &body, Repeat::Never).await {
                Ok(_) => Ok(()),
                // Created meanwhile by another run: what was wanted.
                Err(error) if error.status == Some(http::StatusCode::UNPROCESSABLE_ENTITY) => {
                    Ok(())
                }
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// The latest `labeled` event for `label`, unless a later `unlabeled` took it off.
struct LabelEvent {
    actor: String,
    bot: bool,
    created_at: String,
}

async fn labeled_by(
    api: &Api,
    context: &Context,
    number: u64,
    label: &str,
) -> Result<Option<LabelEvent>, ApiError> {
    let events =
        api.get_all(&context.route(&format!("issues/{number}/events?per_page=100"))).await?;
    let latest = events.iter().rfind(|event| {
        matches!(event["event"].as_str(), Some("labeled" | "unlabeled"))
            && event["label"]["name"] == label
    });
    Ok(latest.filter(|event| event["event"] == "labeled").map(|event| LabelEvent {
        actor: event["actor"]["login"].as_str().unwrap_or_default().to_owned(),
        bot: event["actor"]["type"] == "Bot" || !event["performed_via_github_app"].is_null(),
        created_at: event["created_at"].as_str().unwrap_or_default().to_owned(),
    }))
}

/// Whether `login` has write, maintain or admin on the repository (maintain reads as write).
async fn can_write(api: &Api, context: &Context, login: &str) -> Result<bool, ApiError> {
    match api.get(&context.route(&format!("collaborators/{login}/permission"))).await {
        Ok(answer) => Ok(matches!(answer.body["permission"].as_str(), Some("admin" | "write"))),
        Err(error) if error.status == Some(http::StatusCode::NOT_FOUND) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The value of a `<!-- meshgate:<key>=<value> -->` marker in a body.
fn marked(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("<!-- meshgate:{key}="))? + key.len() + 15;
    let rest = &body[start..];
    Some(rest[..rest.find(" -->")?].to_owned())
}

fn issue_body(finding: &crate::finding::Finding, marker: &str, runs: u32) -> String {
    format!(
        "{marker}\n<!-- meshgate:rule={} -->\nmeshgate found this in {runs} runs in a row.\n\n**{}** `{}`\n\n{}\n\n- location: `{}`\n- help: {}\n- fingerprint: `{}`\n\nThe issue is found again by its fingerprint; a run that still finds it leaves it open.",
        finding.rule.id(),
        finding.rule.id(),
        finding.service.as_deref().unwrap_or("-"),
        finding.message,
        finding.location,
        finding.remedy,
        finding.fingerprint()
    )
}

/// Issue and comment bodies are limited to 65536 characters.
fn truncate_body(text: &str) -> String {
    crate::verdict::truncate(text, 65_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_of(event_name: &str, payload: Value) -> Context {
        let dir = std::env::temp_dir()
            .join(format!("meshgate-event-{}-{event_name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("event.json");
        std::fs::write(&path, payload.to_string()).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let env = |name: &str| -> Option<String> {
            match name {
                "GITHUB_ACTIONS" => Some("true".into()),
                "GITHUB_REPOSITORY" => Some("octo-org/mesh".into()),
                "GITHUB_EVENT_NAME" => Some(event_name.into()),
                "GITHUB_EVENT_PATH" => Some(path.clone()),
                "GITHUB_SHA" => Some("merge-or-tip".into()),
                "GITHUB_RUN_ID" => Some("42".into()),
                _ => None,
            }
        };
        Context::from_env(&env).unwrap().unwrap()
    }

    #[test]
    fn markers_are_read_back_from_bodies() {
        let body = "<!-- meshgate:fingerprint=0123abcd -->\n<!-- meshgate:rule=network/host-network -->\ntext";
        assert_eq!(marked(body, "fingerprint").as_deref(), Some("0123abcd"));
        assert_eq!(marked(body, "rule").as_deref(), Some("network/host-network"));
        assert_eq!(marked("no markers", "rule"), None);
    }

    /// C22: statuses go where the PR shows them, and the source is named.
    #[test]
    fn the_commit_comes_from_the_event_that_started_the_run() {
        let pull = context_of(
            "pull_request",
            json!({"pull_request": {"number": 7, "user": {"login": "alice"},
                "head": {"sha": "head-sha", "repo": {"full_name": "octo-org/mesh"}},
                "base": {"repo": {"full_name": "octo-org/mesh"}}}}),
        );
        assert_eq!((pull.sha.as_str(), pull.sha_source), ("head-sha", "pull_request.head.sha"));
        assert_eq!(
            pull.pull_request.unwrap(),
            PullRequest { number: 7, author: "alice".into(), fork: false }
        );
        assert_eq!(
            pull.run_url.as_deref(),
            Some("https://github.com/octo-org/mesh/actions/runs/42")
        );
        let fork = context_of(
            "pull_request_target",
            json!({"pull_request": {"number": 8, "user": {"login": "eve"},
                "head": {"sha": "fork-sha", "repo": {"full_name": "eve/mesh"}},
                "base": {"repo": {"full_name": "octo-org/mesh"}}}}),
        );
        assert!(fork.pull_request.unwrap().fork);
        let run = context_of(
            "workflow_run",
            json!({"workflow_run": {"head_sha": "run-sha", "pull_requests": []}}),
        );
        assert_eq!((run.sha.as_str(), run.sha_source), ("run-sha", "workflow_run.head_sha"));
        let push = context_of("push", json!({"ref": "refs/heads/main"}));
        assert_eq!((push.sha.as_str(), push.sha_source), ("merge-or-tip", "GITHUB_SHA"));
        assert!(!push.default_branch, "GITHUB_REF is not set here");
        let outside = Context::from_env(&|_: &str| None).unwrap();
        assert!(outside.is_none());
    }
}
