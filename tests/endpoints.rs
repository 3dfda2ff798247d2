//! Which path gets what, over real HTTP to the real binary: unknown paths get a plain 404
//! whatever the control API's state, a path under the control API that is no route gets its
//! JSON 404, and `--web.telemetry-path` is checked before anything listens.

#[path = "util/exporter.rs"]
mod exporter;

use exporter::{api, app_db, binary, raw, Exporter, Setup};

const UNKNOWN: &[&str] = &["/favicon.ico", "/nope", "/metrics/", "/api", "/-/nope"];

#[test]
fn unknown_paths_get_a_plain_404_and_only_control_routes_ask_for_a_token() {
    for control in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let db = app_db(dir.path());
        let s = Setup::new(dir, &[("app", &db)], "", control);
        let e = s.start(&[]);
        for path in UNKNOWN {
            for token in ["", "Authorization: Bearer wrong\r\n"] {
                let r = raw(
                    &e.addr,
                    &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{token}Connection: close\r\n\r\n"),
                );
                assert_eq!(
                    r.status, 404,
                    "control {control}: {path} {token:?}: {}",
                    r.head
                );
                assert!(!r.head.contains("www-authenticate"), "{}", r.head);
                assert_eq!(r.body, b"404 page not found\n");
            }
        }
        for token in [None, Some("wrong"), Some(s.token.as_str())] {
            let (code, v) = api(&e, "GET", "/api/v1/nope", token, None);
            assert_eq!(code, 404, "control {control}: {v}");
            assert!(v["error"].as_str().unwrap().contains("/api/v1/nope"), "{v}");
        }
        // The control routes themselves still ask.
        let (code, _) = api(&e, "GET", "/api/v1/databases", None, None);
        assert_eq!(code, if control { 401 } else { 403 });
    }
}

#[test]
fn a_bad_telemetry_path_fails_start_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    for path in [
        "metrics",
        "",
        "/-/healthy",
        "/health",
        "/api/v1/x",
        "/m?x=1",
        "/{x}",
    ] {
        let out = std::process::Command::new(binary())
            .args(["--web.listen-address=127.0.0.1:0", db.to_str().unwrap()])
            .arg(format!("--web.telemetry-path={path}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {stderr}");
        assert!(
            stderr.contains("--web.telemetry-path"),
            "{path:?}: {stderr}"
        );
        assert!(!stderr.contains("listening"), "{path:?}: {stderr}");
    }
}

#[test]
fn metrics_at_the_root_take_the_landing_page_s_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let e = Exporter::start(&[db.to_str().unwrap(), "--web.telemetry-path=/"]);
    let (code, body) = e.get("/");
    assert_eq!(code, 200);
    assert!(body.contains("sqlite_up{database=\"app\"} 1"), "{body}");
    assert_eq!(e.get("/metrics").0, 404);
    assert_eq!(e.get("/-/healthy").0, 200);
}

/// `--web.systemd-socket` serves on the socket systemd passes (here systemd's own
/// `systemd-socket-activate`, Debian package `systemd`), and refuses to start without one.
#[test]
fn systemd_socket_activation_serves_on_the_passed_socket_and_fails_without_one() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &listen])
        .arg(binary())
        .args(["--web.systemd-socket", db.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run systemd-socket-activate ({e}); it is in the Debian package systemd")
    });
    // systemd-socket-activate starts the exporter at the first connection.
    let first = std::thread::spawn({
        let listen = listen.clone();
        move || {
            for _ in 0..50 {
                if let Ok(s) = std::net::TcpStream::connect(&listen) {
                    return s;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            panic!("nothing listens on {listen}");
        }
    });
    let daemon = exporter::Daemon::watch(child, "msg=listening");
    drop(first.join().unwrap());
    assert_eq!(daemon.addr, listen, "serves on the passed socket");
    let (code, body) = daemon.get("/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("sqlite_up{database=\"app\"} 1"), "{body}");
    drop(daemon);

    let out = Command::new(binary())
        .args(["--web.systemd-socket", db.to_str().unwrap()])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("systemd passed no sockets"), "{stderr}");
}
