//! The JSON every action answers, recorded: for each action through the control API (the CLI
//! prints the same values), the shape of its answer — every key path with the type of its
//! value — is compared with `tests/testdata/action_json.txt`. Values that depend on time are
//! not compared, keys and types are: a renamed, dropped or retyped key fails here. Set
//! `UPDATE_GOLDEN=1` to rewrite the file after an intended change, and review the diff.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/golden.rs"]
mod golden;

use std::collections::BTreeSet;

use exporter::{api, app_db, Setup};
use serde_json::Value;

/// Every key path of `v` with the JSON type found there (`[]` stands for any array element).
fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(format!("{path}: {kind}"));
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| shape(i, &format!("{path}[]"), out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, i)| shape(i, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

fn record(out: &mut String, what: &str, code: u16, v: &Value) {
    let mut lines = BTreeSet::new();
    shape(v, "", &mut lines);
    out.push_str(&format!("== {what} -> {code}\n"));
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
}

#[test]
fn every_action_answers_the_recorded_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let setup = Setup::new(dir, &[("app", &db)], "", true);
    let e = setup.start(&[]);
    let t = Some(setup.token.as_str());
    let mut out = String::new();
    let mut call = |what: &str, method: &str, path: &str, body: Option<&str>| -> Value {
        let (code, v) = api(&e, method, path, t, body);
        record(&mut out, what, code, &v);
        v
    };
    call(
        "checkpoint passive",
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(r#"{"mode":"passive"}"#),
    );
    call(
        "checkpoint truncate",
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(r#"{"mode":"truncate"}"#),
    );
    call(
        "checkpoint bad mode",
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(r#"{"mode":"bogus"}"#),
    );
    let backup = call(
        "backup",
        "POST",
        "/api/v1/databases/app/backup",
        Some(r#"{"label":"daily"}"#),
    );
    call("backups", "GET", "/api/v1/databases/app/backups", None);
    let file = backup["file_name"].as_str().expect("backup file_name");
    call(
        "restore",
        "POST",
        "/api/v1/databases/app/restore",
        Some(&format!(r#"{{"backup":"{file}"}}"#)),
    );
    call(
        "restore unknown backup",
        "POST",
        "/api/v1/databases/app/restore",
        Some(r#"{"backup":"app-nope.db"}"#),
    );
    call(
        "recover dry run",
        "POST",
        "/api/v1/databases/app/recover",
        Some(r#"{"dry_run":true}"#),
    );
    call(
        "recover",
        "POST",
        "/api/v1/databases/app/recover",
        Some(r#"{"dry_run":false}"#),
    );
    call("vacuum", "POST", "/api/v1/databases/app/vacuum", None);
    call(
        "integrity-check",
        "POST",
        "/api/v1/databases/app/integrity-check",
        Some(r#"{"mode":"quick"}"#),
    );
    call("drill", "POST", "/api/v1/databases/app/drill", None);
    call(
        "unknown database",
        "POST",
        "/api/v1/databases/nope/vacuum",
        None,
    );
    let job = call(
        "async backup",
        "POST",
        "/api/v1/databases/app/backup?async=true",
        None,
    );
    let id = job["job"]["id"].as_str().expect("job id").to_string();
    let mut finished = Value::Null;
    for _ in 0..200 {
        let (_, v) = api(&e, "GET", &format!("/api/v1/jobs/{id}"), t, None);
        if v["state"] != "running" {
            finished = v;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    record(&mut out, "finished job", 200, &finished);

    golden::compare("action_json.txt", "the action JSON", &out);
}
