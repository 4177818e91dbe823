//! A local GitHub for the feedback-loop tests: it answers the operations of GitHub's
//! published REST description (`../shared/github/openapi-subset.json`), checks every request
//! against it (method and path, token and user agent, request body: required fields, types,
//! enums, lengths), keeps the state the calls build (statuses, comments, issues, labels) and
//! answers from the description's example payloads with that state filled in. Lists are
//! paginated with absolute `Link` headers, as GitHub does. Faults can be queued to answer the
//! next matching requests with rate limits or server errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) path: String,
    pub(crate) operation: String,
    pub(crate) body: Value,
    pub(crate) authorization: Option<String>,
}

/// An answer queued for the next requests that match.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub(crate) method: &'static str,
    /// Matches when the path ends with this.
    pub(crate) path_suffix: String,
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Value,
    /// Carry out the request first, then answer with the fault (a create whose answer is lost).
    pub(crate) after_effect: bool,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) requests: Vec<Request>,
    pub(crate) violations: Vec<String>,
    pub(crate) statuses: Vec<Value>,
    pub(crate) comments: Vec<Value>,
    pub(crate) issues: Vec<Value>,
    pub(crate) labels: Vec<String>,
    /// Issue events (labeled/unlabeled) of the pull request.
    pub(crate) events: Vec<Value>,
    pub(crate) reviews: Vec<Value>,
    /// Pull requests by head commit, for `commits/{sha}/pulls`.
    pub(crate) pulls: Vec<Value>,
    /// login → permission (admin, write, read, none).
    pub(crate) permissions: Vec<(String, String)>,
    pub(crate) faults: VecDeque<Fault>,
    next_id: u64,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        1000 + self.next_id
    }
}

pub(crate) struct FakeGithub {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<State>>,
}

struct Shared {
    spec: Value,
    base: String,
    state: Arc<Mutex<State>>,
}

impl FakeGithub {
    pub(crate) fn start() -> FakeGithub {
        let spec = description().clone();
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new(Shared { spec, base: url.clone(), state: state.clone() });
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let shared = shared.clone();
                        async move { handle(&shared, method, uri, headers, body) }
                    },
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        FakeGithub { url, state }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.with(|state| state.requests.clone())
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.with(|state| state.violations.clone())
    }
}

/// GitHub's REST description, read once.
fn description() -> &'static Value {
    static SPEC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let path = crate::support::shared().join("github/openapi-subset.json");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the REST description"))
            .unwrap()
    })
}

fn example(spec: &Value, name: &str) -> Value {
    spec["components"]["examples"][name]["value"].clone()
}

/// The operation whose path template matches, with its template.
fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> Option<(String, &'a Value)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    for (template, operations) in spec["paths"].as_object()? {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let matches = parts
            .iter()
            .zip(&segments)
            .all(|(part, segment)| part.starts_with('{') || part == segment);
        if matches && let Some(op) = operations.get(method) {
            return Some((template.clone(), op));
        }
    }
    None
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let mut node = spec;
            for part in reference.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            resolve(spec, node)
        }
        None => schema,
    }
}

/// Checks `value` against an OpenAPI 3.0 schema: the keywords the request bodies use.
fn validate(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema[key].as_array() {
            let fits = branches.iter().any(|branch| {
                let mut branch_errors = Vec::new();
                validate(spec, branch, value, at, &mut branch_errors);
                branch_errors.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: matches no branch of {key}"));
            }
        }
    }
    let kind = schema["type"].as_str();
    let fits_type = match kind {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !fits_type {
        errors.push(format!("{at}: expected {}, got {value}", kind.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(text), Some(max)) = (value.as_str(), schema["maxLength"].as_u64())
        && text.chars().count() as u64 > max
    {
        errors.push(format!("{at}: longer than {max} characters"));
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema["maxItems"].as_u64()
            && items.len() as u64 > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
        if let Some(min) = schema["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if schema.get("items").is_some() {
            for (index, item) in items.iter().enumerate() {
                validate(spec, &schema["items"], item, &format!("{at}[{index}]"), errors);
            }
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                errors.push(format!("{at}: required field `{name}` is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => validate(spec, property, field, &format!("{at}.{name}"), errors),
                None if properties.is_some() && schema["additionalProperties"] != true => {
                    errors.push(format!("{at}: `{name}` is not a field of this request"));
                }
                None => {}
            }
        }
    }
}

fn rate_headers() -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit", "1000".into()),
        ("x-ratelimit-remaining", "990".into()),
        ("x-ratelimit-used", "10".into()),
        ("x-ratelimit-resource", "core".into()),
        ("x-ratelimit-reset", "4102444800".into()),
    ]
}

fn answer(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (name, value) in rate_headers().into_iter().chain(headers) {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A page of `items` with GitHub's `Link` header.
fn page(base: &str, path: &str, query: &str, items: Vec<Value>) -> Response {
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.parse::<usize>().ok()).flatten()
        })
    };
    let per_page = param("per_page").unwrap_or(30).clamp(1, 100);
    let number = param("page").unwrap_or(1).max(1);
    let start = (number - 1) * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let mut headers = Vec::new();
    if start + per_page < items.len() {
        let others: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.starts_with("page=") && !pair.is_empty())
            .collect();
        let mut next = format!("{base}{path}?");
        for pair in others {
            next.push_str(pair);
            next.push('&');
        }
        next.push_str(&format!("page={}", number + 1));
        headers.push(("link", format!("<{next}>; rel=\"next\"")));
    }
    answer(200, headers, Value::Array(slice))
}

fn handle(shared: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let spec = &shared.spec;
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let method_name = method.as_str().to_ascii_lowercase();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<not JSON>".into()))
    };
    let mut state = shared.state.lock().unwrap();
    let Some((template, op)) = operation(spec, &method_name, &path) else {
        state.violations.push(format!("{method} {path}: no such operation in the description"));
        return answer(404, vec![], json!({ "message": "Not Found" }));
    };
    let operation_id = op["operationId"].as_str().unwrap_or_default().to_owned();
    let authorization =
        headers.get("authorization").and_then(|value| value.to_str().ok()).map(str::to_owned);
    if !authorization.as_deref().is_some_and(|value| value.starts_with("Bearer ")) {
        state.violations.push(format!("{method} {path}: no bearer token"));
    }
    if !headers.contains_key("user-agent") {
        state.violations.push(format!("{method} {path}: no User-Agent"));
    }
    if let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema") {
        let mut errors = Vec::new();
        validate(spec, schema, &body, "body", &mut errors);
        for error in errors {
            state.violations.push(format!("{operation_id}: {error}"));
        }
    }
    state.requests.push(Request {
        path: path.clone(),
        operation: operation_id.clone(),
        body: body.clone(),
        authorization,
    });

    let fault = state
        .faults
        .iter()
        .position(|fault| fault.method == method.as_str() && path.ends_with(&fault.path_suffix))
        .and_then(|index| state.faults.remove(index));
    if let Some(fault) = &fault
        && !fault.after_effect
    {
        return answer(fault.status, fault.headers.clone(), fault.body.clone());
    }
    let response = act(shared, &mut state, &template, &path, &query, &operation_id, body);
    match fault {
        Some(fault) => answer(fault.status, fault.headers, fault.body),
        None => response,
    }
}

/// Carries out an operation on the fake's state and answers it.
fn act(
    shared: &Shared,
    state: &mut State,
    _template: &str,
    path: &str,
    query: &str,
    operation: &str,
    body: Value,
) -> Response {
    let spec = &shared.spec;
    let segment =
        |index: usize| path.trim_matches('/').split('/').nth(index).unwrap_or("").to_owned();
    match operation {
        "repos/create-commit-status" => {
            if body["description"].as_str().is_some_and(|d| d.chars().count() > 140) {
                return answer(
                    422,
                    vec![],
                    json!({"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","field":"description","message":"description is too long (maximum is 140 characters)"}],"documentation_url":"https://docs.github.com/rest/commits/statuses#create-a-commit-status"}),
                );
            }
            let mut status = example(spec, "status");
            status["id"] = json!(state.id());
            status["state"] = body["state"].clone();
            status["context"] = body.get("context").cloned().unwrap_or(json!("default"));
            status["description"] = body["description"].clone();
            status["target_url"] = body["target_url"].clone();
            status["sha"] = json!(segment(4));
            state.statuses.push(status.clone());
            answer(201, vec![], status)
        }
        "repos/get-combined-status-for-ref" => {
            let sha = segment(4);
            let mut latest: Vec<Value> = Vec::new();
            for status in state.statuses.iter().filter(|status| status["sha"] == sha.as_str()) {
                latest.retain(|seen| seen["context"] != status["context"]);
                latest.push(status.clone());
            }
            let mut combined = example(spec, "combined-commit-status");
            combined["sha"] = json!(sha);
            combined["total_count"] = json!(latest.len());
            combined["statuses"] = Value::Array(latest);
            answer(200, vec![], combined)
        }
        "issues/list-comments" => {
            let number: u64 = segment(4).parse().unwrap_or(0);
            let items: Vec<Value> = state
                .comments
                .iter()
                .filter(|comment| comment["issue_number"] == number)
                .cloned()
                .collect();
            page(&shared.base, path, query, items)
        }
        "issues/create-comment" => {
            let mut comment = example(spec, "issue-comment");
            comment["id"] = json!(state.id());
            comment["body"] = body["body"].clone();
            comment["user"]["login"] = json!("github-actions[bot]");
            comment["issue_number"] = json!(segment(4).parse::<u64>().unwrap_or(0));
            state.comments.push(comment.clone());
            answer(201, vec![], comment)
        }
        "issues/update-comment" => {
            let id: u64 = segment(5).parse().unwrap_or(0);
            match state.comments.iter_mut().find(|comment| comment["id"] == id) {
                Some(comment) => {
                    comment["body"] = body["body"].clone();
                    answer(200, vec![], comment.clone())
                }
                None => answer(404, vec![], json!({ "message": "Not Found" })),
            }
        }
        "issues/get-label" => {
            let name = segment(4);
            if state.labels.contains(&name) {
                let mut label = example(spec, "label");
                label["name"] = json!(name);
                answer(200, vec![], label)
            } else {
                answer(404, vec![], json!({ "message": "Not Found" }))
            }
        }
        "issues/create-label" => {
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            if state.labels.contains(&name) {
                return answer(
                    422,
                    vec![],
                    json!({"message":"Validation Failed","errors":[{"resource":"Label","code":"already_exists","field":"name"}]}),
                );
            }
            state.labels.push(name.clone());
            let mut label = example(spec, "label");
            label["name"] = json!(name);
            answer(201, vec![], label)
        }
        "issues/list-for-repo" => {
            let label =
                query.split('&').find_map(|pair| pair.strip_prefix("labels=")).unwrap_or("");
            let items: Vec<Value> = state
                .issues
                .iter()
                .filter(|issue| {
                    label.is_empty()
                        || issue["labels"].as_array().unwrap().iter().any(|l| l["name"] == label)
                })
                .cloned()
                .collect();
            page(&shared.base, path, query, items)
        }
        "issues/create" => {
            let mut issue = example(spec, "issue");
            let id = state.id();
            issue["id"] = json!(id);
            issue["number"] = json!(state.issues.len() + 1);
            issue["title"] = body["title"].clone();
            issue["body"] = body["body"].clone();
            issue["state"] = json!("open");
            issue.as_object_mut().unwrap().remove("pull_request");
            let labels: Vec<Value> = body["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|name| {
                    let mut label = example(spec, "label");
                    label["name"] = name.clone();
                    label
                })
                .collect();
            issue["labels"] = Value::Array(labels);
            state.issues.push(issue.clone());
            answer(201, vec![], issue)
        }
        "issues/update" => {
            let number: u64 = segment(4).parse().unwrap_or(0);
            match state.issues.iter_mut().find(|issue| issue["number"] == number) {
                Some(issue) => {
                    for (key, value) in body.as_object().into_iter().flatten() {
                        issue[key] = value.clone();
                    }
                    answer(200, vec![], issue.clone())
                }
                None => answer(404, vec![], json!({ "message": "Not Found" })),
            }
        }
        "issues/list-events" => page(&shared.base, path, query, state.events.clone()),
        "pulls/list-reviews" => page(&shared.base, path, query, state.reviews.clone()),
        "repos/list-pull-requests-associated-with-commit" => {
            let sha = segment(4);
            let items = state
                .pulls
                .iter()
                .filter(|pull| pull["head"]["sha"] == sha.as_str())
                .cloned()
                .collect();
            page(&shared.base, path, query, items)
        }
        "repos/get-collaborator-permission-level" => {
            let login = segment(4);
            let permission = state
                .permissions
                .iter()
                .find(|(user, _)| *user == login)
                .map(|(_, permission)| permission.clone());
            match permission {
                Some(permission) => {
                    let mut answer_body = example(
                        spec,
                        "repository-collaborator-permission-response-if-user-has-admin-permissions",
                    );
                    answer_body["permission"] = json!(permission);
                    answer_body["role_name"] = json!(permission);
                    answer_body["user"]["login"] = json!(login);
                    answer(200, vec![], answer_body)
                }
                None => answer(404, vec![], json!({ "message": "Not Found" })),
            }
        }
        other => answer(
            501,
            vec![],
            json!({ "message": format!("the fake does not carry out {other}") }),
        ),
    }
}

/// A review as GitHub lists it, from the description's example.
pub(crate) fn review(spec_login: &str, state: &str, commit: &str) -> Value {
    let spec = description();
    let mut review = example(spec, "pull-request-review-items")[0].clone();
    review["user"]["login"] = json!(spec_login);
    review["state"] = json!(state);
    review["commit_id"] = json!(commit);
    review
}

/// A `labeled` or `unlabeled` issue event, from the description's example.
pub(crate) fn label_event(kind: &str, label: &str, actor: &str, created_at: &str) -> Value {
    let spec = description();
    let mut event = example(spec, "issue-event-for-issue-items")[0].clone();
    event["event"] = json!(kind);
    event["label"] = json!({ "name": label, "color": "b60205" });
    event["actor"]["login"] = json!(actor);
    event["actor"]["type"] = json!("User");
    event["performed_via_github_app"] = Value::Null;
    event["created_at"] = json!(created_at);
    event
}

/// An open pull request from a fork, as `commits/{sha}/pulls` lists it.
pub(crate) fn fork_pull(number: u64, author: &str, head: &str) -> Value {
    let spec = description();
    let mut pull = example(spec, "pull-request-simple-items")[0].clone();
    pull["number"] = json!(number);
    pull["state"] = json!("open");
    pull["user"]["login"] = json!(author);
    pull["head"]["sha"] = json!(head);
    pull["head"]["repo"]["full_name"] = json!("someone/mesh");
    pull["base"]["repo"]["full_name"] = json!("octo-org/mesh");
    pull
}

/// A PR comment by `login`.
pub(crate) fn comment(state: &mut State, number: u64, login: &str, body: &str) {
    let spec = description();
    let mut comment = example(spec, "issue-comment");
    comment["id"] = json!(state.id());
    comment["body"] = json!(body);
    comment["user"]["login"] = json!(login);
    comment["issue_number"] = json!(number);
    state.comments.push(comment);
}
