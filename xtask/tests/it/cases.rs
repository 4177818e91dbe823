//! The cases of ../shared/cases/CASES.md that concern loading the Compose file.

use std::collections::BTreeMap;

use xtask::compose::{LoadOptions, Project, load};

use crate::support::shared;

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

#[test]
fn external_corpus_loads_without_error() {
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
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let result = load(&LoadOptions { files: vec![file.clone()], ..LoadOptions::default() });
        assert!(result.is_ok(), "{}: {:#}", file.display(), result.unwrap_err());
    }
}
