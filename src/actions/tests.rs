//! Tests of the parent module.

use super::*;
use crate::config::IntegrityMode;

/// One valid body per route and the action it decodes to; every route of [`ACTIONS`] must
/// have one (checked below).
fn valid_bodies() -> Vec<(&'static str, &'static str, Action)> {
    vec![
        (
            "checkpoint",
            r#"{"mode": "truncate"}"#,
            Action::Checkpoint(checkpoint::Request::new(checkpoint::Mode::Truncate)),
        ),
        (
            "backup",
            r#"{"label": "nightly"}"#,
            Action::Backup(backup::Request {
                label: Some("nightly".into()),
            }),
        ),
        (
            "restore",
            r#"{"backup": "app-2024-01-02_03-04-05.db"}"#,
            Action::Restore(restore::Request::new("app-2024-01-02_03-04-05.db")),
        ),
        (
            "recover",
            r#"{"dry_run": true}"#,
            Action::Recover(recover::Request { dry_run: true }),
        ),
        ("vacuum", "{}", Action::Vacuum(vacuum::Request {})),
        (
            "integrity-check",
            r#"{"mode": "full"}"#,
            Action::IntegrityCheck(integrity_check::Request {
                mode: Some(IntegrityMode::Full),
            }),
        ),
        ("optimize", "{}", Action::Optimize(optimize::Request {})),
        ("drill", "{}", Action::Drill(drill::Request {})),
    ]
}

fn kind(r: Result<Action, ActionError>) -> ErrorKind {
    r.expect_err("expected an error").kind
}

#[test]
fn each_route_decodes_its_body() {
    let cases = valid_bodies();
    for spec in ACTIONS {
        assert!(
            cases.iter().any(|(route, _, _)| *route == spec.route),
            "no test body for {}",
            spec.route
        );
    }
    for (route, body, expected) in cases {
        let action = Action::from_json(route, body.as_bytes()).unwrap();
        assert_eq!(action, expected, "{route}");
        assert_eq!(action.spec().route, route);
    }
}

#[test]
fn an_empty_body_means_defaults() {
    for spec in ACTIONS.iter().filter(|s| s.route != "restore") {
        for body in ["", "  \n"] {
            let action = Action::from_json(spec.route, body.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", spec.route));
            assert_eq!(action.spec().route, spec.route);
        }
    }
    assert_eq!(
        Action::from_json("checkpoint", b"").unwrap(),
        Action::Checkpoint(checkpoint::Request { mode: None })
    );
    assert_eq!(
        Action::from_json("checkpoint", b"").unwrap().mode(),
        Some("passive"),
        "a checkpoint without a mode is PASSIVE"
    );
    assert_eq!(
        Action::from_json("recover", b"").unwrap(),
        Action::Recover(recover::Request { dry_run: false }),
        "a recovery is a real one unless asked for a dry run"
    );
    assert_eq!(
        Action::from_json("backup", b"").unwrap(),
        Action::Backup(backup::Request { label: None })
    );
    assert_eq!(
        Action::from_json("integrity-check", b"").unwrap(),
        Action::IntegrityCheck(integrity_check::Request { mode: None })
    );
}

#[test]
fn an_unknown_key_is_invalid_input() {
    for spec in ACTIONS {
        let body = if spec.route == "restore" {
            r#"{"backup": "a.db", "bogus": 1}"#
        } else {
            r#"{"bogus": 1}"#
        };
        assert_eq!(
            kind(Action::from_json(spec.route, body.as_bytes())),
            ErrorKind::InvalidInput,
            "{}",
            spec.route
        );
    }
}

#[test]
fn malformed_bodies_are_invalid_input() {
    for (route, body) in [
        ("checkpoint", r#"{"mode": "sideways"}"#),
        ("checkpoint", r#"{"mode": 3}"#),
        ("restore", ""),
        ("restore", "{}"),
        ("recover", r#"{"dry_run": "yes"}"#),
        ("integrity-check", r#"{"mode": "thorough"}"#),
        ("vacuum", "not json"),
        ("backup", "[]"),
    ] {
        let e = Action::from_json(route, body.as_bytes()).expect_err(route);
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{route} {body}: {e}");
    }
    let e = Action::from_json("checkpoint", br#"{"mode": "sideways"}"#).unwrap_err();
    assert!(e.error.contains("sideways"), "{e}");
    let e = Action::from_json("restore", b"{}").unwrap_err();
    assert!(e.error.contains("backup"), "{e}");
}

#[test]
fn an_unknown_route_is_not_found() {
    for route in ["reboot", "", "Checkpoint", "integrity_check", "recovery"] {
        let e = Action::from_json(route, b"{}").expect_err(route);
        assert_eq!(e.kind, ErrorKind::NotFound, "{route:?}");
    }
}

#[test]
fn routes_and_names_are_unique_and_each_action_finds_its_spec() {
    for (i, a) in ACTIONS.iter().enumerate() {
        for b in &ACTIONS[i + 1..] {
            assert_ne!(a.route, b.route);
            assert_ne!(a.name, b.name);
        }
    }
    for (route, body, _) in valid_bodies() {
        let action = Action::from_json(route, body.as_bytes()).unwrap();
        let spec = action.spec();
        assert_eq!(spec.name, action.name());
        assert_eq!(spec.route, route);
    }
}

fn from_args(args: &[&str]) -> Option<Result<Action, clap::Error>> {
    let route = args[0];
    let spec = ACTIONS.iter().find(|s| s.route == route)?;
    let matches = (spec.args)(clap::Command::new(spec.route)).try_get_matches_from(args);
    match matches {
        Ok(m) => Action::from_subcommand(route, &m),
        Err(e) => Some(Err(e)),
    }
}

#[test]
fn each_route_round_trips_through_clap() {
    let cases: Vec<(&[&str], Action)> = vec![
        (
            &["checkpoint", "--mode=full"],
            Action::Checkpoint(checkpoint::Request::new(checkpoint::Mode::Full)),
        ),
        (
            &["checkpoint"],
            Action::Checkpoint(checkpoint::Request::new(checkpoint::Mode::Passive)),
        ),
        (
            &["backup", "--label", "nightly"],
            Action::Backup(backup::Request {
                label: Some("nightly".into()),
            }),
        ),
        (&["backup"], Action::Backup(backup::Request { label: None })),
        (
            &["restore", "app-2024-01-02_03-04-05.db"],
            Action::Restore(restore::Request::new("app-2024-01-02_03-04-05.db")),
        ),
        (
            &["recover", "--dry-run"],
            Action::Recover(recover::Request { dry_run: true }),
        ),
        (
            &["recover"],
            Action::Recover(recover::Request { dry_run: false }),
        ),
        (&["vacuum"], Action::Vacuum(vacuum::Request {})),
        (
            &["integrity-check", "--mode", "full"],
            Action::IntegrityCheck(integrity_check::Request {
                mode: Some(IntegrityMode::Full),
            }),
        ),
        (&["optimize"], Action::Optimize(optimize::Request {})),
        (&["drill"], Action::Drill(drill::Request {})),
    ];
    for spec in ACTIONS {
        assert!(
            cases.iter().any(|(args, _)| args[0] == spec.route),
            "no CLI case for {}",
            spec.route
        );
    }
    for (args, expected) in cases {
        let action = from_args(args)
            .expect("an action subcommand")
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(action, expected, "{args:?}");
        assert_eq!(action.spec().route, args[0]);
    }
}

#[test]
fn the_cli_and_the_api_decode_the_same_request() {
    for (args, body) in [
        (
            &["checkpoint", "--mode=truncate"][..],
            r#"{"mode": "truncate"}"#,
        ),
        (&["backup", "--label=x"][..], r#"{"label": "x"}"#),
        (&["restore", "a.db"][..], r#"{"backup": "a.db"}"#),
        (&["recover", "--dry-run"][..], r#"{"dry_run": true}"#),
        (
            &["integrity-check", "--mode=quick"][..],
            r#"{"mode": "quick"}"#,
        ),
    ] {
        assert_eq!(
            from_args(args).unwrap().unwrap(),
            Action::from_json(args[0], body.as_bytes()).unwrap(),
            "{args:?}"
        );
    }
}

#[test]
fn the_cli_refuses_bad_requests() {
    for args in [
        &["checkpoint", "--mode=sideways"][..],
        &["restore"][..],
        &["integrity-check", "--mode=thorough"][..],
        &["vacuum", "--bogus"][..],
    ] {
        assert!(from_args(args).unwrap().is_err(), "{args:?}");
    }
    let m = clap::Command::new("reboot").get_matches_from(["reboot"]);
    assert!(
        Action::from_subcommand("reboot", &m).is_none(),
        "not an action subcommand"
    );
}
