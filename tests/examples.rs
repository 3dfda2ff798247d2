//! The deployment examples (`examples/`) are valid for the tools that consume them: Prometheus
//! and Alertmanager accept their configs, every YAML file parses, the Kubernetes PrometheusRule
//! carries exactly the groups of `alerts/sqlite_exporter.rules.yml`, and the sidecar, compose
//! stack and systemd unit keep the properties the exporter depends on.

#[path = "util/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};

use serde_yaml::Value;
use tools::{read, read_yaml, read_yaml_documents, repo_path, repo_root, run_ok, AMTOOL, PROMTOOL};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every document of every manifest under examples/kubernetes/.
fn kubernetes_documents() -> Vec<Value> {
    yaml_files(&repo_path("examples/kubernetes"))
        .iter()
        .flat_map(|file| read_yaml_documents(file))
        .collect()
}

fn kubernetes_object(kind: &str) -> Value {
    kubernetes_documents()
        .into_iter()
        .find(|doc| doc["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in examples/kubernetes/"))
}

#[test]
fn promtool_accepts_the_prometheus_config_and_its_rule_files() {
    let output = run_ok(
        &PROMTOOL,
        &repo_root(),
        &["check", "config", "examples/prometheus.yml"],
    );
    // The rule file is resolved relative to prometheus.yml, so this proves the path is right.
    assert!(
        output.contains("1 rule files found"),
        "promtool did not load the alert rules:\n{output}"
    );
}

#[test]
fn prometheus_config_scrapes_the_job_the_alerts_expect() {
    let config = read_yaml(&repo_path("examples/prometheus.yml"));
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    assert!(
        jobs.iter().any(|job| job["job_name"] == "sqlite"),
        "the alert rules select job=\"sqlite\"; prometheus.yml has no such job"
    );
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    run_ok(
        &AMTOOL,
        &repo_root(),
        &["check-config", "examples/alertmanager.yml"],
    );
}

#[test]
fn every_example_yaml_file_parses() {
    let files = yaml_files(&repo_path("examples"));
    assert!(files.len() >= 8, "too few YAML files found: {files:?}");
    for file in files {
        let documents = read_yaml_documents(&file);
        assert!(!documents.is_empty(), "{} is empty", file.display());
    }
}

#[test]
fn prometheusrule_embeds_exactly_the_alert_rule_groups() {
    let rule = kubernetes_object("PrometheusRule");
    let embedded = &rule["spec"]["groups"];
    let shipped = &read_yaml(&repo_path("alerts/sqlite_exporter.rules.yml"))["groups"];
    assert!(
        embedded == shipped,
        "examples/kubernetes/prometheusrule.yaml differs from alerts/sqlite_exporter.rules.yml; \
         regenerate it with `python3 examples/kubernetes/gen-prometheusrule.py`"
    );

    // And promtool accepts the groups as extracted from the manifest.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut groups = serde_yaml::Mapping::new();
    groups.insert("groups".into(), embedded.clone());
    let text = serde_yaml::to_string(&groups).expect("serialize groups");
    std::fs::write(dir.path().join("rules.yml"), text).expect("write rules");
    run_ok(&PROMTOOL, dir.path(), &["check", "rules", "rules.yml"]);
}

#[test]
fn kubernetes_sidecar_shares_the_database_volume_read_write() {
    let deployment = kubernetes_object("Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    let exporter = containers
        .iter()
        .find(|c| c["name"] == "sqlite-exporter")
        .expect("a sqlite-exporter container");
    let app = containers
        .iter()
        .find(|c| c["name"] != "sqlite-exporter")
        .expect("an application container");
    let app_volumes: Vec<&Value> = app["volumeMounts"]
        .as_sequence()
        .expect("app volumeMounts")
        .iter()
        .map(|m| &m["name"])
        .collect();
    let shared: Vec<&Value> = exporter["volumeMounts"]
        .as_sequence()
        .expect("exporter volumeMounts")
        .iter()
        .filter(|m| app_volumes.contains(&&m["name"]))
        .collect();
    assert!(
        !shared.is_empty(),
        "the sidecar does not mount the app's database volume"
    );
    for mount in shared {
        assert!(
            mount["readOnly"] != true,
            "the database volume must be mounted read-write (the -shm file): {mount:?}"
        );
    }
}

#[test]
fn kubernetes_sidecar_probes_the_database_with_check_failing_only_on_critical() {
    let deployment = kubernetes_object("Deployment");
    let exporter = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "sqlite-exporter")
        .expect("a sqlite-exporter container")
        .clone();
    let command: Vec<&str> = exporter["startupProbe"]["exec"]["command"]
        .as_sequence()
        .expect("the sidecar has an exec startupProbe")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command.get(1), Some(&"check"), "{command:?}");
    assert!(command.contains(&"--fail-on=critical"), "{command:?}");
    assert!(
        command.contains(&"--config.file=/etc/sqlite_exporter/sqlite_exporter.yml"),
        "{command:?}"
    );
    // The probe's command line works: on a database with a recommendation (no index) and the
    // ConfigMap's config pointed at it, it exits 0; a bad flag would exit 3.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(a);")
        .unwrap();
    let config = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        format!("databases:\n  - name: app\n    path: {}\n", db.display()),
    )
    .unwrap();
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| match a.strip_prefix("--config.file=") {
            Some(_) => format!("--config.file={}", config.display()),
            None => a.to_string(),
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqlite_exporter"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("add_indexes"), "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}");
    let image = exporter["image"].as_str().expect("image");
    assert!(
        !image.starts_with("ghcr.io/"),
        "{image}: no such image is published; the example says how to build one"
    );
}

#[test]
fn kubernetes_configmap_holds_the_minimal_exporter_config() {
    let configmap = kubernetes_object("ConfigMap");
    let text = configmap["data"]["sqlite_exporter.yml"]
        .as_str()
        .expect("data.sqlite_exporter.yml");
    let config: Value = serde_yaml::from_str(text).expect("embedded config is YAML");
    assert_eq!(config["databases"][0]["name"], "app");
    assert_eq!(config["databases"][0]["path"], "/data/app.db");
    assert_eq!(config["defaults"]["backup"]["dir"], "/backups");
}

#[test]
fn kubernetes_servicemonitor_sets_the_job_the_alerts_expect() {
    let monitor = kubernetes_object("ServiceMonitor");
    let relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
        .as_sequence()
        .expect("relabelings");
    assert!(
        relabelings
            .iter()
            .any(|r| r["targetLabel"] == "job" && r["replacement"] == "sqlite"),
        "the ServiceMonitor must set job=\"sqlite\" for the alert rules"
    );
}

#[test]
fn compose_stack_runs_the_four_services_with_the_dashboards() {
    let compose = read_yaml(&repo_path("examples/docker-compose.yml"));
    for service in ["sqlite-exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(
            compose["services"][service].is_mapping(),
            "docker-compose.yml has no service {service}"
        );
    }
    let grafana_volumes = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .expect("grafana volumes");
    let mounts = |source: &str| {
        grafana_volumes
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.starts_with(source)))
    };
    assert!(
        mounts("../dashboards:"),
        "grafana does not mount ../dashboards"
    );
    assert!(
        mounts("./grafana/provisioning:"),
        "grafana does not mount its provisioning"
    );
    for provisioning in ["datasources", "dashboards"] {
        let dir = repo_path("examples/grafana/provisioning").join(provisioning);
        assert!(!yaml_files(&dir).is_empty(), "{} is empty", dir.display());
    }
}

#[test]
fn systemd_unit_is_hardened_and_can_write_databases_and_backups() {
    let unit = read(&repo_path("examples/sqlite_exporter.service"));
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for required in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(directives.contains(&required), "unit lacks {required}");
    }
    let user = directives.iter().any(|l| l.starts_with("User="))
        || directives.contains(&"DynamicUser=yes");
    assert!(user, "unit runs as root");
    let rw = directives
        .iter()
        .find_map(|l| l.strip_prefix("ReadWritePaths="))
        .expect("ReadWritePaths=");
    assert!(
        rw.split_whitespace().any(|p| p == "/var/backups/sqlite"),
        "ReadWritePaths= lacks the backup directory: {rw}"
    );
}

#[test]
fn dockerfile_is_multi_stage() {
    let dockerfile = read(&repo_path("examples/Dockerfile"));
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "not multi-stage: {stages:?}");
    assert!(
        stages[0].contains("rust"),
        "first stage is not a Rust builder"
    );
    assert!(
        stages.last().unwrap().contains("debian") && stages.last().unwrap().contains("slim"),
        "runtime stage is not debian-slim"
    );
    assert!(
        dockerfile.contains("COPY --from="),
        "runtime does not copy the binary"
    );
    assert!(
        dockerfile.lines().any(|l| l.starts_with("USER ")),
        "runtime runs as root"
    );
    // The revision: build.rs reads it from .git, or from the REVISION build argument.
    let copies = |what: &str| {
        dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ") && l.split_whitespace().any(|w| w == what))
    };
    assert!(copies("build.rs"), "build.rs is not in the build");
    assert!(copies(".git"), ".git is not in the build");
    assert!(
        dockerfile.contains("ARG REVISION"),
        "no REVISION build argument"
    );
    let ignore = read(&repo_path("examples/Dockerfile.dockerignore"));
    assert!(
        !ignore.lines().any(|l| l.trim() == ".git"),
        ".dockerignore keeps .git out of the context"
    );
}
