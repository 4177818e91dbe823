//! The cases of ../shared/cases/CASES.md that concern loading the Compose file and the
//! network contracts gate, and the real Compose files of ../shared/corpus/external.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use xtask::compose::{LoadOptions, Project, load};

use crate::support::{shared, stderr, temp_dir, xtask};

fn load_case(
    case: &str,
    environment: &[(&str, &str)],
    profiles: &[&str],
) -> anyhow::Result<Project> {
    let file = shared().join("cases/inputs").join(case).join("compose.yaml");
    let environment: BTreeMap<String, String> =
        environment.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    load(&LoadOptions {
        files: vec![file],
        profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
        environment,
    })
}

#[test]
fn c01_unquoted_port_is_read_as_yaml_1_2_and_flagged() {
    let project = load_case("C01-unquoted-ports", &[], &[]).unwrap();
    let ports = &project.services["sftp"].ports;
    assert_eq!((ports[0].published, ports[0].target), (Some((2122, 2122)), (22, 22)));
    assert!(ports[0].sexagesimal_risk);
    assert!(!ports[1].sexagesimal_risk);
}

#[test]
fn c02_protocol_and_family_pairs_parse_with_their_addresses() {
    let project = load_case("C02-port-protocol-family", &[], &[]).unwrap();
    let ports = &project.services["dns"].ports;
    let keys: Vec<(Option<&str>, &str)> =
        ports.iter().map(|p| (p.host_ip.as_deref(), p.protocol.as_str())).collect();
    assert_eq!(
        keys,
        [
            (Some("127.0.0.1"), "tcp"),
            (Some("127.0.0.1"), "udp"),
            (Some("0.0.0.0"), "tcp"),
            (Some("::"), "tcp")
        ]
    );
}

#[test]
fn c03_unset_port_variable_is_recorded_against_the_service() {
    let project = load_case("C03-port-variable", &[], &[]).unwrap();
    let port = &project.services["api"].ports[0];
    assert_eq!(
        (port.host_ip.as_deref(), port.published, port.target),
        (Some("127.0.0.1"), None, (8080, 8080))
    );
    assert_eq!(project.unset_variables.len(), 1);
    assert_eq!(project.unset_variables[0].variable, "API_PORT");
    assert!(project.unset_variables[0].path.starts_with("services.api.ports"));

    let project = load_case("C03-port-variable", &[("API_PORT", "18080")], &[]).unwrap();
    assert_eq!(project.services["api"].ports[0].published, Some((18080, 18080)));
    assert!(project.unset_variables.is_empty());
}

#[test]
fn c04_broken_interpolation_is_an_error_naming_the_key_path() {
    let error = load_case("C04-interpolation", &[], &[]).unwrap_err().to_string();
    assert!(error.contains("services.worker.environment.BROKEN"), "{error}");
    assert!(error.contains("compose.yaml:"), "{error}");
}

#[test]
fn c04_interpolation_follows_the_grammar_without_the_broken_key() {
    let dir = crate::support::temp_dir("c04");
    let text =
        std::fs::read_to_string(shared().join("cases/inputs/C04-interpolation/compose.yaml"))
            .unwrap();
    let text: String = text
        .lines()
        .filter(|line| !line.contains("BROKEN"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(dir.join("compose.yaml"), text).unwrap();
    let project =
        load(&LoadOptions { files: vec![dir.join("compose.yaml")], ..LoadOptions::default() })
            .unwrap();
    let worker = &project.services["worker"].node;
    let environment = worker.get("environment").unwrap();
    assert_eq!(environment.get("TEMPLATE").unwrap().text(), Some("{{ hello }}"));
    assert_eq!(environment.get("NESTED").unwrap().text(), Some("fallback"));
    assert_eq!(environment.get("LONE").unwrap().text(), Some("pa$"));
    let command: Vec<&str> =
        worker.get("command").unwrap().as_seq().unwrap().iter().filter_map(|n| n.text()).collect();
    assert_eq!(command, ["sh", "-c", "echo $HOME"]);
    assert!(
        project.unset_variables.iter().all(|unset| unset.variable != "HOME"),
        "$$HOME is not a variable"
    );
}

#[test]
fn c05_profiles_decide_which_services_are_active() {
    let project = load_case("C05-profile-dependency", &[], &[]).unwrap();
    assert!(!project.services["migrate"].active);
    assert!(project.services["api"].active);
    let project = load_case("C05-profile-dependency", &[], &["ci"]).unwrap();
    assert!(project.services["migrate"].active);
}

#[test]
fn c06_extends_never_inherits_depends_on() {
    let project = load_case("C06-extends-depends-on", &[], &[]).unwrap();
    let job = &project.services["job"];
    let dependencies: Vec<(&str, &str)> =
        job.depends_on.iter().map(|d| (d.service.as_str(), d.condition.as_str())).collect();
    assert_eq!(dependencies, [("db", "service_healthy")]);
    assert_eq!(job.image.as_ref().unwrap().0, "example/job:1.0", "other keys are inherited");
}

#[test]
fn c14_env_files_are_read_as_compose_reads_them() {
    let text =
        std::fs::read_to_string(shared().join("cases/inputs/C14-placeholder-secrets/.env.example"))
            .unwrap();
    let parsed = xtask::compose::dotenv::parse(&text, &|_| None).unwrap();
    let value = |key: &str| parsed.iter().find(|a| a.key == key).map(|a| a.value.as_str());
    assert_eq!(value("SECRET_KEY"), Some("change_me"));
    assert_eq!(value("DB_PASSWORD"), Some("postgres"));
    assert_eq!(value("PUBLIC_URL"), Some("http://localhost:8080#frag"));
    assert!(value("JWT_SECRET").is_some_and(|v| v.starts_with('#')), "{:?}", value("JWT_SECRET"));
}

/// The corpus's Compose file sets, as SOURCES.md says they go together (each loads the
/// `.env` beside its first file).
pub(crate) fn corpus_sets() -> Vec<(&'static str, Vec<PathBuf>)> {
    let corpus = shared().join("corpus/external");
    let set = |name: &'static str, files: &[&str]| {
        (name, files.iter().map(|file| corpus.join(file)).collect::<Vec<_>>())
    };
    let mut sets = vec![
        set("voting-app", &["example-voting-app/docker-compose.yml"]),
        set("voting-app-result-test", &["example-voting-app/result__docker-compose.test.yml"]),
        set("self-hosted", &["self-hosted/docker-compose.yml"]),
        set(
            "opentelemetry-demo",
            &["opentelemetry-demo/compose.yaml", "opentelemetry-demo/compose.tests.yaml"],
        ),
        set("quickwit", &["quickwit/docker-compose.yml"]),
        set("mastodon", &["mastodon/docker-compose.yml"]),
        set("hyperswitch", &["hyperswitch/docker-compose.yml"]),
    ];
    for file in std::fs::read_dir(corpus.join("awesome-compose")).unwrap() {
        let file = file.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let name: &'static str = Box::leak(name.into_boxed_str());
        sets.push((name, vec![file]));
    }
    sets
}

/// Runs the static network gate on `files` with `profiles` active and returns the exit code
/// and the findings' rule ids.
fn gate_on(
    name: &str,
    files: &[PathBuf],
    profiles: &[String],
    flags: &[&str],
) -> (i32, Vec<String>) {
    let dir = temp_dir(&format!("corpus-{name}"));
    let quoted = |items: Vec<String>| {
        items.iter().map(|item| format!("{item:?}")).collect::<Vec<_>>().join(", ")
    };
    let files = quoted(files.iter().map(|file| file.display().to_string()).collect());
    let config = dir.join("meshgate.toml");
    std::fs::write(
        &config,
        format!(
            "[mesh]\ncrate_contracts = false\ncompose_files = [{files}]\nprofiles = [{}]\n",
            quoted(profiles.to_vec())
        ),
    )
    .unwrap();
    let mut args = vec!["gates", "network-contracts", "--static", "--json", "--config"];
    args.push(config.to_str().unwrap());
    args.extend(flags);
    let output = xtask(&args);
    let code = output.status.code().unwrap();
    assert_ne!(code, 2, "{name}: the gate could not run:\n{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rules = report["gates"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| format!("{} at {}", finding["rule"], finding["location"]))
        .collect();
    (code, rules)
}

#[test]
fn external_corpus_gives_no_network_finding_with_inferred_contracts() {
    let covered: BTreeSet<PathBuf> =
        corpus_sets().into_iter().flat_map(|(_, files)| files).collect();
    for file in corpus_yaml_files() {
        assert!(covered.contains(&file), "{} belongs to no file set here", file.display());
    }
    for (name, files) in corpus_sets() {
        let project = load(&LoadOptions::with_process_env(files.clone(), Vec::new())).unwrap();
        let every_profile: Vec<String> = project
            .services
            .values()
            .flat_map(|service| service.profiles.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for profiles in [Vec::new(), every_profile] {
            let active = load(&LoadOptions::with_process_env(files.clone(), profiles.clone()))
                .unwrap()
                .active_services()
                .count();
            let (code, findings) = gate_on(name, &files, &profiles, &["--infer-contracts"]);
            assert_eq!((code, &findings), (0, &Vec::new()), "{name} with profiles {profiles:?}");

            // Without inferred contracts every active service lacks one, and only that is said.
            let (code, findings) = gate_on(name, &files, &profiles, &[]);
            assert_eq!(
                code,
                i32::from(active > 0),
                "{name} with profiles {profiles:?}: {findings:#?}"
            );
            assert_eq!(findings.len(), active, "{name} with profiles {profiles:?}: {findings:#?}");
            assert!(
                findings.iter().all(|finding| finding.starts_with("\"discovery/no-contract\"")),
                "{name} with profiles {profiles:?}: {findings:#?}"
            );
        }
    }
}

fn corpus_yaml_files() -> Vec<PathBuf> {
    let corpus = shared().join("corpus/external");
    let mut files = Vec::new();
    for project in std::fs::read_dir(&corpus).unwrap() {
        let project = project.unwrap().path();
        if !project.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&project).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                files.push(file);
            }
        }
    }
    files
}

#[test]
fn c07_published_port_on_an_internal_only_network_is_the_one_finding() {
    let dir = temp_dir("c07");
    let input = shared().join("cases/inputs/C07-internal-network-port/compose.yaml");
    std::fs::copy(&input, dir.join("compose.yaml")).unwrap();
    let config = dir.join("meshgate.toml");
    std::fs::write(&config, "[mesh]\ncrate_contracts = false\n").unwrap();
    let output = xtask(&[
        "gates",
        "network-contracts",
        "--static",
        "--json",
        "--infer-contracts",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings: Vec<(&str, u64)> = report["gates"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["location"]["line"].as_u64().unwrap()))
        .collect();
    let line = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .position(|line| line.contains("ports:"))
        .unwrap() as u64
        + 1;
    assert_eq!(findings, [("network/published-on-internal-only", line)]);
}

#[test]
fn external_corpus_loads_without_error() {
    let files = corpus_yaml_files();
    assert!(files.len() >= 10, "{files:?}");
    // An override file (opentelemetry-demo's compose.tests.yaml) is no project on its own:
    // Compose refuses it alone too, as its services depend on the base file's. It loads with
    // the files it goes with.
    let overrides: Vec<PathBuf> = corpus_sets()
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .flat_map(|(_, files)| files.into_iter().skip(1))
        .collect();
    for file in files.iter().filter(|file| !overrides.contains(file)) {
        let result = load(&LoadOptions { files: vec![file.clone()], ..LoadOptions::default() });
        assert!(result.is_ok(), "{}: {:#}", file.display(), result.unwrap_err());
    }
    assert!(overrides.iter().all(|file| files.contains(file)), "{overrides:?}");
    // The files that go together load together.
    for (name, files) in corpus_sets() {
        let result = load(&LoadOptions::with_process_env(files, Vec::new()));
        assert!(result.is_ok(), "{name}: {:#}", result.unwrap_err());
    }
}
