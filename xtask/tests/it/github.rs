//! The GitHub feedback loop against the local fake GitHub: statuses on the PR head, one PR
//! comment, retries without duplicates, approvals and overrides read through the API, issues
//! for persistent findings, and runs that cannot post. Every request must match GitHub's
//! published REST description.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::fake_github::{FakeGithub, Fault, comment, fork_pull, label_event, review};
use crate::support::{mesh_variant, stderr, xtask_with_env};

/// A made-up token: the fake checks that every request carries it and no output does.
const TOKEN: &str = "test-token-that-must-never-be-printed-7f3a9c";
const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const MERGE: &str = "e5bd3914e2e596debea16f433f57875b5b90bcd6";
const AUTHOR: &str = "alice";

/// A copy of the mesh with one violation (catalog attached to `data`) and fast retries.
fn violated(name: &str, extra_config: &str) -> PathBuf {
    let dir = mesh_variant(name, |compose| {
        compose.replace("networks: [backend]\n", "networks: [backend, data]\n")
    });
    let config = dir.join("meshgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[github]\nretry_wait = \"10ms\"\n");
    text.push_str(extra_config);
    std::fs::write(&config, text).unwrap();
    dir
}

fn payload(dir: &Path, fork: bool) -> PathBuf {
    let head_repo = if fork { "someone/mesh" } else { "octo-org/mesh" };
    let event = json!({
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "user": { "login": AUTHOR },
            "head": { "sha": HEAD, "ref": "feature", "repo": { "full_name": head_repo } },
            "base": { "sha": "0000", "ref": "main", "repo": { "full_name": "octo-org/mesh" } },
        },
    });
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    path
}

/// The environment of a step on GitHub Actions, for an event whose payload is at `event`.
fn actions_env(
    fake: &FakeGithub,
    event_name: &str,
    event: &Path,
    sha: &str,
    run_id: &str,
    token: bool,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("GITHUB_REPOSITORY", "octo-org/mesh".to_owned()),
        ("GITHUB_API_URL", fake.url.clone()),
        ("GITHUB_SERVER_URL", "https://github.example".to_owned()),
        ("GITHUB_EVENT_NAME", event_name.to_owned()),
        ("GITHUB_EVENT_PATH", event.to_str().unwrap().to_owned()),
        ("GITHUB_SHA", sha.to_owned()),
        ("GITHUB_RUN_ID", run_id.to_owned()),
    ];
    if token {
        env.push(("GITHUB_TOKEN", TOKEN.to_owned()));
    }
    env
}

fn xtask_on_actions(args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    xtask_with_env(args, &env)
}

fn run(dir: &Path, fake: &FakeGithub, token: bool, fork: bool) -> std::process::Output {
    let event = payload(dir, fork);
    let config = dir.join("meshgate.toml");
    let mut env = actions_env(fake, "pull_request", &event, MERGE, "42", token);
    env.push(("GITHUB_STEP_SUMMARY", dir.join("step-summary.md").to_str().unwrap().to_owned()));
    xtask_on_actions(&["gates", "--static", "--config", config.to_str().unwrap()], &env)
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("logs/report.json")).unwrap()).unwrap()
}

/// The last status of each context.
fn current(fake: &FakeGithub) -> std::collections::BTreeMap<String, Value> {
    fake.with(|state| {
        state
            .statuses
            .iter()
            .map(|status| (status["context"].as_str().unwrap().to_owned(), status.clone()))
            .collect()
    })
}

fn assert_clean(fake: &FakeGithub, dir: &Path, outputs: &[&std::process::Output]) {
    assert_eq!(fake.violations(), Vec::<String>::new(), "requests that GitHub would refuse");
    for output in outputs {
        assert!(!String::from_utf8_lossy(&output.stdout).contains(TOKEN));
        assert!(!stderr(output).contains(TOKEN), "the token leaked: {}", stderr(output));
    }
    for entry in walk(&dir.join("logs")).into_iter().chain(walk(&dir.join(".meshgate"))) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(!text.contains(TOKEN), "the token leaked into {}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn statuses_go_to_the_pr_head_and_one_comment_is_kept_up_to_date() {
    let fake = FakeGithub::start();
    let dir = violated("gh-statuses", "");
    let first = run(&dir, &fake, true, false);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));

    let statuses = fake.with(|state| state.statuses.clone());
    assert!(statuses.iter().all(|status| status["sha"] == HEAD), "never the merge commit");
    assert_eq!(statuses[0]["context"], "ci/quality-gates");
    assert_eq!(statuses[0]["state"], "pending");
    let now = current(&fake);
    assert_eq!(now["ci/quality-gates"]["state"], "failure");
    assert_eq!(now["ci/quality-gates"]["description"], "failed: network-contracts");
    assert_eq!(
        now["ci/quality-gates"]["target_url"],
        "https://github.example/octo-org/mesh/actions/runs/42"
    );
    assert_eq!(now["ci/quality-gates/network-contracts"]["state"], "failure");
    assert!(now.values().all(|status| status["state"] != "pending"), "{now:#?}");
    assert!(now.values().all(|s| s["description"].as_str().unwrap().chars().count() <= 140));

    let comments = fake.with(|state| state.comments.clone());
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0]["body"].as_str().unwrap().contains("network/network-mismatch")
            || comments[0]["body"].as_str().unwrap().contains("network-contracts")
    );

    // The next run updates the same comment instead of adding one.
    let second = run(&dir, &fake, true, false);
    assert_eq!(second.status.code(), Some(1));
    assert_eq!(fake.with(|state| state.comments.len()), 1);
    assert!(fake.requests().iter().any(|r| r.operation == "issues/update-comment"));
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "every request carries the token, in the header only"
    );
    assert_clean(&fake, &dir, &[&first, &second]);
}

#[test]
fn rate_limits_are_waited_out_and_a_lost_create_is_not_repeated() {
    let fake = FakeGithub::start();
    let dir = violated("gh-retries", "");
    fake.with(|state| {
        state.faults.push_back(Fault {
            method: "POST",
            path_suffix: format!("/statuses/{HEAD}"),
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: json!({ "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." }),
            after_effect: false,
        });
        state.faults.push_back(Fault {
            method: "POST",
            path_suffix: "/issues/7/comments".into(),
            status: 502,
            headers: vec![],
            body: json!({ "message": "Server Error" }),
            after_effect: true,
        });
    });
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let requests = fake.requests();
    let status_posts = requests
        .iter()
        .filter(|r| r.operation == "repos/create-commit-status")
        .inspect(|r| assert!(r.path.ends_with(HEAD) && r.body["context"].is_string(), "{r:?}"))
        .count();
    assert_eq!(status_posts, fake.with(|state| state.statuses.len()) + 1, "the limited one again");
    // The comment was made although its answer was lost: it is found, not made twice.
    assert_eq!(fake.with(|state| state.comments.len()), 1);
    assert_eq!(requests.iter().filter(|r| r.operation == "issues/create-comment").count(), 1);
    assert_eq!(current(&fake)["ci/quality-gates"]["state"], "failure");
    assert!(!stderr(&output).contains("GitHub: "), "{}", stderr(&output));
    assert_clean(&fake, &dir, &[&output]);
}

#[test]
fn a_failed_post_is_reported_and_never_changes_the_verdict() {
    let fake = FakeGithub::start();
    let dir = mesh_variant("gh-forbidden", |compose| compose);
    let config = dir.join("meshgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[github]\nretry_wait = \"10ms\"\n");
    std::fs::write(&config, text).unwrap();
    for _ in 0..20 {
        fake.with(|state| {
            state.faults.push_back(Fault {
                method: "POST",
                path_suffix: format!("/statuses/{HEAD}"),
                status: 403,
                headers: vec![],
                body: json!({ "message": "Resource not accessible by integration" }),
                after_effect: false,
            })
        });
    }
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(0), "the mesh is fine: {}", stderr(&output));
    assert!(
        stderr(&output).contains("Resource not accessible by integration"),
        "{}",
        stderr(&output)
    );
    assert_eq!(report(&dir)["verdict"], "passed");
    assert_clean(&fake, &dir, &[&output]);
}

#[test]
fn without_a_token_or_from_a_fork_the_run_completes_and_says_why_nothing_was_posted() {
    let fake = FakeGithub::start();
    let dir = violated("gh-silent", "");
    let output = run(&dir, &fake, false, false);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("were not posted: GITHUB_TOKEN is not set"),
        "{}",
        stderr(&output)
    );
    let output = run(&dir, &fake, true, true);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("from a fork"), "{}", stderr(&output));
    assert!(fake.requests().is_empty(), "nothing was sent");
    assert!(dir.join("logs/report.json").is_file() && dir.join("logs/summary.md").is_file());
}

#[test]
fn warnings_need_an_approving_review_of_the_head_by_a_writer_who_is_not_the_author() {
    let fake = FakeGithub::start();
    let dir = violated("gh-approval", "\n");
    let config = dir.join("meshgate.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("mode = \"strict\"", "mode = \"warning\"\nrequire_approval = true");
    std::fs::write(&config, text).unwrap();
    fake.with(|state| {
        state.permissions = vec![
            (AUTHOR.into(), "write".into()),
            ("carol".into(), "write".into()),
            ("dave".into(), "read".into()),
        ];
        state.reviews = vec![
            review(AUTHOR, "APPROVED", HEAD),
            review("dave", "APPROVED", HEAD),
            review("carol", "APPROVED", "0123456789abcdef0123456789abcdef01234567"),
        ];
    });
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        report(&dir)["gates"][0]["decision"]["description"]
            .as_str()
            .unwrap()
            .contains("await approval")
    );

    fake.with(|state| state.reviews.push(review("carol", "APPROVED", HEAD)));
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let decision = &report(&dir)["gates"][0]["decision"];
    assert_eq!(decision["approved_by"], "carol", "{decision:#}");
    assert_eq!(current(&fake)["ci/quality-gates/network-contracts"]["state"], "success");
    assert_clean(&fake, &dir, &[&output]);
}

#[test]
fn an_override_label_needs_a_writer_who_is_not_the_author_and_a_reason() {
    let fake = FakeGithub::start();
    let dir = violated("gh-override", "");
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    fake.with(|state| {
        state.permissions = vec![
            (AUTHOR.into(), "admin".into()),
            ("mia".into(), "write".into()),
            ("dave".into(), "read".into()),
        ];
    });
    let attempt = |actor: &str| {
        fake.with(|state| {
            state.events = vec![label_event("labeled", "meshgate-override", actor, &now)];
        });
        run(&dir, &fake, true, false)
    };
    let output = attempt(AUTHOR);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("self-approval refused"), "{}", stderr(&output));
    let output = attempt("dave");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no write access"), "{}", stderr(&output));
    let output = attempt("mia");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("gave no reason"), "{}", stderr(&output));
    // Taken off again, the label approves nothing.
    fake.with(|state| {
        comment(state, 7, "mia", "/meshgate-override hotfix for the checkout outage");
        state.events = vec![
            label_event("labeled", "meshgate-override", "mia", &now),
            label_event("unlabeled", "meshgate-override", "mia", &now),
        ];
    });
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    let output = attempt("mia");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = report(&dir);
    assert_eq!(report["verdict"], "overridden");
    assert_eq!(report["override"]["verified"], true);
    assert!(
        report["description"]
            .as_str()
            .unwrap()
            .starts_with("OVERRIDDEN by mia: hotfix for the checkout outage"),
        "{report:#}"
    );
    let overall = &current(&fake)["ci/quality-gates"];
    assert_eq!(overall["state"], "success");
    assert!(overall["description"].as_str().unwrap().starts_with("OVERRIDDEN by mia"));
    let comment = fake.with(|state| {
        state.comments.iter().find(|c| c["user"]["login"] == "github-actions[bot]").cloned()
    });
    assert!(comment.unwrap()["body"].as_str().unwrap().contains("OVERRIDDEN by mia"));
    let log = std::fs::read_to_string(dir.join(".meshgate/audit.jsonl")).unwrap();
    let entries: Vec<Value> = log.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["grant", "use"]);
    assert_eq!(entries[0]["event"]["source"], "github");
    assert_eq!(entries[1]["event"]["commit"], HEAD);
    assert_clean(&fake, &dir, &[&output]);
}

/// A push to the default branch: the runs that count for persistent findings.
fn run_push(dir: &Path, fake: &FakeGithub) -> std::process::Output {
    let event = dir.join("push.json");
    let payload = json!({ "ref": "refs/heads/main", "repository": { "default_branch": "main" } });
    std::fs::write(&event, payload.to_string()).unwrap();
    let config = dir.join("meshgate.toml");
    // Each run of the workflow has an id of its own.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
    let run_id = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_string();
    let mut env = actions_env(fake, "push", &event, HEAD, &run_id, true);
    env.push(("GITHUB_REF", "refs/heads/main".to_owned()));
    xtask_on_actions(&["gates", "--static", "--config", config.to_str().unwrap()], &env)
}

#[test]
fn the_lifecycle_of_an_issue_for_a_persistent_finding() {
    let fake = FakeGithub::start();
    let dir = violated("gh-issues", "issue_after_runs = 2\nissue_close_after_runs = 2\n");
    let issues = || fake.with(|state| state.issues.clone());
    let comments_on = |number: u64| {
        fake.with(|state| state.comments.iter().filter(|c| c["issue_number"] == number).count())
    };
    // Pull request runs do not count: only the default branch's history does.
    run(&dir, &fake, true, false);
    run(&dir, &fake, true, false);
    run_push(&dir, &fake);
    assert!(issues().is_empty(), "one run on the default branch is not persistence");

    // The second opens one issue per finding; the first create's answer is lost (a timeout
    // at the gateway), and it is not made twice.
    fake.with(|state| {
        state.faults.push_back(Fault {
            method: "POST",
            path_suffix: "/repos/octo-org/mesh/issues".into(),
            status: 504,
            headers: vec![],
            body: json!({ "message": "Gateway Timeout" }),
            after_effect: true,
        })
    });
    let output = run_push(&dir, &fake);
    assert!(!stderr(&output).contains("GitHub: "), "{}", stderr(&output));
    let filed = issues();
    assert_eq!(filed.len(), 2, "one per finding: {filed:#?}");
    assert!(filed.iter().all(|issue| issue["labels"][0]["name"] == "meshgate"));
    assert!(filed[0]["body"].as_str().unwrap().contains("<!-- meshgate:fingerprint="));
    assert!(fake.with(|state| state.labels.contains(&"meshgate".to_owned())));

    // While it stays, each run adds one comment, never an issue.
    run_push(&dir, &fake);
    assert_eq!(issues().len(), 2, "no duplicates");
    assert_eq!(comments_on(1), 1);

    // Fixed: closed with a comment once absent from two runs in a row.
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let clean = std::fs::read_to_string(crate::support::repo_root().join("compose.yaml")).unwrap();
    std::fs::write(dir.join("compose.yaml"), clean).unwrap();
    run_push(&dir, &fake);
    assert_eq!(issues()[0]["state"], "open", "one clean run is not enough");
    let output = run_push(&dir, &fake);
    assert!(
        issues().iter().all(|issue| issue["state"] == "closed"),
        "{}\n{:#?}",
        stderr(&output),
        issues().iter().map(|i| (&i["state"], &i["body"])).collect::<Vec<_>>()
    );
    assert_eq!(issues()[0]["state_reason"], "completed");
    assert_eq!(comments_on(1), 2, "a comment says why it was closed");

    // Back again for two runs: the closed issue is reopened, not filed anew.
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    run_push(&dir, &fake);
    let output = run_push(&dir, &fake);
    assert_eq!(issues().len(), 2);
    assert_eq!(issues()[0]["state"], "open", "reopened");
    assert_eq!(issues()[0]["state_reason"], "reopened");
    assert_eq!(comments_on(1), 3);
    assert_clean(&fake, &dir, &[&output]);
}

#[test]
fn a_run_that_cannot_finish_leaves_every_context_in_error() {
    let fake = FakeGithub::start();
    let dir = violated("gh-error", "");
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    std::fs::write(dir.join("compose.yaml"), compose.replace("services:", "services:\n  bad: ["))
        .unwrap();
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // Found before the run read its settings: the overall context says so all the same.
    assert_eq!(current(&fake)["ci/quality-gates"]["state"], "error");

    // Broken after the pending statuses went out: a bad exception file.
    let dir = violated("gh-error-late", "");
    std::fs::write(dir.join("meshgate-exceptions.toml"), "[[exception]]\nrule = 1\n").unwrap();
    let fake = FakeGithub::start();
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let statuses = fake.with(|state| state.statuses.clone());
    assert_eq!(statuses[0]["state"], "pending", "the run had started");
    let now = current(&fake);
    assert!(now.len() > 1 && now.values().all(|status| status["state"] == "error"), "{now:#?}");
    assert_clean(&fake, &dir, &[&output]);
}

#[test]
fn a_fork_prs_results_are_posted_from_its_artifact_as_data() {
    let fake = FakeGithub::start();
    let dir = violated("gh-fork-split", "");
    // The untrusted run: read-only, it posts nothing and leaves its report.
    let output = run(&dir, &fake, true, true);
    assert_eq!(output.status.code(), Some(1));
    assert!(fake.requests().is_empty());

    // The artifact, with a finding whose text tries to be more than text.
    let artifact = dir.join("artifact");
    std::fs::create_dir_all(&artifact).unwrap();
    let mut report = report(&dir);
    assert_eq!(report["pull_request"], 7, "the report names the pull request it checked");
    report["gates"][0]["findings"][0]["message"] = json!("<img src=x> @octo-org/admins | cell");
    std::fs::write(artifact.join("report.json"), report.to_string()).unwrap();
    fake.with(|state| state.pulls = vec![fork_pull(7, "outsider", HEAD)]);

    let event = dir.join("workflow-run.json");
    let post = |event_body: Value| {
        std::fs::write(&event, event_body.to_string()).unwrap();
        let env = actions_env(
            &fake,
            "workflow_run",
            &event,
            "1111111111111111111111111111111111111111",
            "44",
            true,
        );
        let config = dir.join("meshgate.toml");
        let artifact = artifact.to_str().unwrap();
        xtask_on_actions(
            &["github", "post", "--report-dir", artifact, "--config", config.to_str().unwrap()],
            &env,
        )
    };
    let workflow_run = json!({ "workflow_run": { "head_sha": HEAD, "pull_requests": [] } });
    let output = post(workflow_run.clone());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let now = current(&fake);
    assert_eq!(now["ci/quality-gates"]["state"], "failure");
    assert!(fake.with(|state| state.statuses.iter().all(|s| s["sha"] == HEAD)));
    let body = fake.with(|state| state.comments[0]["body"].as_str().unwrap().to_owned());
    assert!(body.contains("&lt;img src=x&gt; @\u{200b}octo-org/admins \\| cell"), "{body}");

    // Posted again, nothing changes, so no status is repeated (GitHub keeps at most 1000).
    let shown = fake.with(|state| state.statuses.len());
    let output = post(workflow_run.clone());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(fake.with(|state| state.statuses.len()), shown);
    assert_eq!(fake.with(|state| state.comments.len()), 1);

    // An artifact that claims another pull request, or is not a report, posts nothing.
    let before = fake.requests().len();
    report["pull_request"] = json!(8);
    std::fs::write(artifact.join("report.json"), report.to_string()).unwrap();
    let output = post(workflow_run.clone());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("names pull request #8"), "{}", stderr(&output));
    std::fs::write(artifact.join("report.json"), "{\"schema_version\": 1, \"verdict\": \"pwned\"}")
        .unwrap();
    let output = post(workflow_run);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("report.json"), "{}", stderr(&output));
    let writes = fake.requests()[before..]
        .iter()
        .filter(|r| r.operation.contains("create") || r.operation.contains("update"))
        .count();
    assert_eq!(writes, 0);
    assert_clean(&fake, &dir, &[&output]);
}

/// C23 and C25: unchanged statuses are not posted again; a secondary rate limit without
/// `retry-after` is waited out; a 422 (the 1000-status limit) is never retried, is shown with
/// GitHub's field errors, and does not change the verdict.
#[test]
fn statuses_repeat_nothing_wait_out_secondary_limits_and_stop_at_a_422() {
    let fake = FakeGithub::start();
    let dir = violated("gh-limits", "");
    run(&dir, &fake, true, false);
    let after_first = fake.with(|state| state.statuses.len());
    // The same result again: only the pending statuses and the return to the same final
    // states are posted, never a status a context already shows.
    run(&dir, &fake, true, false);
    let posted = fake.with(|state| state.statuses.clone());
    let final_overall = posted
        .iter()
        .filter(|s| s["context"] == "ci/quality-gates" && s["state"] == "failure")
        .count();
    assert_eq!(final_overall, 2, "pending in between makes the final state a change");
    assert_eq!(posted.len(), after_first * 2);

    fake.with(|state| {
        state.faults.push_back(Fault {
            method: "POST",
            path_suffix: format!("/statuses/{HEAD}"),
            status: 403,
            headers: vec![],
            body: json!({ "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." }),
            after_effect: false,
        });
        state.faults.push_back(Fault {
            method: "POST",
            path_suffix: format!("/statuses/{HEAD}"),
            status: 422,
            headers: vec![],
            body: json!({"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","field":"context","message":"This SHA and context has reached the maximum number of statuses."}],"documentation_url":"https://docs.github.com/rest/commits/statuses#create-a-commit-status"}),
            after_effect: false,
        });
    });
    let before = fake.requests().len();
    let output = run(&dir, &fake, true, false);
    assert_eq!(output.status.code(), Some(1), "the verdict stands: {}", stderr(&output));
    let posts: Vec<_> = fake.requests()[before..]
        .iter()
        .filter(|r| r.operation == "repos/create-commit-status")
        .cloned()
        .collect();
    assert_eq!(posts.len(), 2, "the limited post once more, then the 422 and no more: {posts:?}");
    assert!(
        stderr(&output).contains("Validation Failed (context: This SHA and context has reached the maximum number of statuses.)"),
        "{}",
        stderr(&output)
    );
    assert_clean(&fake, &dir, &[&output]);
}
