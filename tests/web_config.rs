//! `--web.config.file` end to end: the real binary serving HTTPS with certificates generated
//! by rcgen, basic auth, headers, mutual TLS and certificate rotation. Every web config used
//! here is also accepted by `promtool check web-config`, so the format is exporter-toolkit's.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/tools.rs"]
mod tools;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use exporter::{build_db, Exporter};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key.
struct Issued {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sqlite_exporter test CA");
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `localhost` and 127.0.0.1 (also usable as a client certificate).
    fn issue(&self, cn: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }
}

impl Issued {
    /// Writes certificate and key the way cert-manager and certbot replace them: new files
    /// renamed over the old.
    fn install(&self, dir: &Path) {
        for (name, text) in [
            ("tls.key", self.key.serialize_pem()),
            ("tls.crt", self.pem.clone()),
        ] {
            let tmp = dir.join(format!(".{name}.new"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
    }
}

/// What one HTTPS request returned.
struct Reply {
    status: u16,
    head: String,
    body: String,
    /// The server's certificate (DER).
    served: Vec<u8>,
}

/// GET `path` over TLS, trusting `ca`, with an optional `Authorization` value and client
/// certificate. Errors (refused handshakes) are returned as text.
fn https(
    addr: &str,
    path: &str,
    ca: &Ca,
    authorization: Option<&str>,
    client: Option<&Issued>,
) -> Result<Reply, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.serialize_der())),
            )
            .unwrap(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw) {
        // A server that closes without close_notify still sent a complete response.
        if raw.is_empty() {
            return Err(e.to_string());
        }
    }
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    Ok(Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
        served,
    })
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// A temp dir with a database, a CA, a server certificate and the shipped example web config
/// (password `example`).
struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Issued,
}

impl Setup {
    fn new(web_config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        build_db(
            &dir.path().join("app.db"),
            "CREATE TABLE t(id INTEGER PRIMARY KEY);",
        );
        let ca = Ca::new();
        ca.write(&dir.path().join("ca.crt"));
        let server = ca.issue("first");
        server.install(dir.path());
        std::fs::write(dir.path().join("web.yml"), web_config).unwrap();
        exporter::write_token(&dir.path().join("token"), "s3cret\n");
        std::fs::write(
            dir.path().join("sqlite_exporter.yml"),
            "databases:\n  - path: app.db\ncontrol:\n  enabled: true\n  token_file: token\n",
        )
        .unwrap();
        tools::run_ok(
            &tools::PROMTOOL,
            dir.path(),
            &["check", "web-config", "web.yml"],
        );
        Setup { dir, ca, server }
    }

    fn start(&self) -> Exporter {
        let d = self.dir.path();
        Exporter::start(&[
            &format!("--web.config.file={}", d.join("web.yml").display()),
            &format!("--config.file={}", d.join("sqlite_exporter.yml").display()),
        ])
    }
}

fn example() -> String {
    tools::read(&tools::repo_path("examples/web-config.yml"))
}

#[test]
fn https_with_basic_auth_and_headers_and_plain_http_refused() {
    let s = Setup::new(&example());
    let e = s.start();
    let ok = https(
        &e.addr,
        "/metrics",
        &s.ca,
        Some(&basic("prometheus", "example")),
        None,
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(
        ok.body.contains("sqlite_up{database=\"app\"} 1"),
        "{}",
        ok.body
    );
    assert!(
        ok.head
            .to_ascii_lowercase()
            .contains("x-frame-options: deny"),
        "{}",
        ok.head
    );
    assert_eq!(ok.served, s.server.der.to_vec());

    for auth in [
        Some(basic("prometheus", "wrong")),
        Some(basic("nobody", "example")),
        None,
    ] {
        let r = https(&e.addr, "/metrics", &s.ca, auth.as_deref(), None).unwrap();
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert!(r.head.contains("Basic"), "{}", r.head);
    }
    // Every endpoint, not just /metrics.
    assert_eq!(
        https(&e.addr, "/health", &s.ca, None, None).unwrap().status,
        401
    );

    let plain = ureq::get(&format!("http://{}/metrics", e.addr))
        .timeout(Duration::from_secs(10))
        .call();
    assert!(
        matches!(plain, Err(ureq::Error::Transport(_))),
        "plain HTTP must fail the handshake, got {plain:?}"
    );
}

#[test]
fn the_control_api_takes_its_bearer_token_instead_of_basic_auth() {
    let s = Setup::new(&example());
    let e = s.start();
    let get = |path: &str, auth: &str| https(&e.addr, path, &s.ca, Some(auth), None).unwrap();
    assert_eq!(get("/api/v1/databases", "Bearer s3cret").status, 200);
    assert_eq!(get("/api/v1/databases", "Bearer wrong").status, 401);
    // Basic auth alone does not open the control API, and a bearer token opens nothing else.
    assert_eq!(
        get("/api/v1/databases", &basic("prometheus", "example")).status,
        401
    );
    assert_eq!(get("/metrics", "Bearer s3cret").status, 401);
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let s = Setup::new(&example());
    let e = s.start();
    let auth = basic("prometheus", "example");
    let served = || {
        https(&e.addr, "/-/healthy", &s.ca, Some(&auth), None)
            .unwrap()
            .served
    };
    assert_eq!(served(), s.server.der.to_vec());
    let renewed = s.ca.issue("second");
    renewed.install(s.dir.path());
    let deadline = Instant::now() + Duration::from_secs(5);
    while served() != renewed.der.to_vec() {
        assert!(
            Instant::now() < deadline,
            "still serving the old certificate; log:\n{}",
            e.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mutual_tls_requires_a_client_certificate_signed_by_the_ca() {
    let s = Setup::new(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         min_version: TLS13\n",
    );
    let e = s.start();
    let client = s.ca.issue("prometheus");
    let r = https(&e.addr, "/-/healthy", &s.ca, None, Some(&client)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        https(&e.addr, "/-/healthy", &s.ca, None, None).is_err(),
        "a client without a certificate must be refused"
    );
    let stranger = Ca::new().issue("stranger");
    assert!(
        https(&e.addr, "/-/healthy", &s.ca, None, Some(&stranger)).is_err(),
        "a certificate from another CA must be refused"
    );
}

#[test]
fn a_bad_web_config_fails_start_with_file_and_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build_db(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY);");
    for (text, expected) in [
        (
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  foo: 1\n",
            "web.yml: tls_server_config.foo: unknown field `foo`",
        ),
        (
            "basic_auth_users:\n  admin: plaintext\n",
            "web.yml: basic_auth_users.admin: expected a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "web.yml: tls_server_config.cert_file:",
        ),
    ] {
        let web = dir.path().join("web.yml");
        std::fs::write(&web, text).unwrap();
        let out = std::process::Command::new(exporter::binary())
            .arg("--web.listen-address=127.0.0.1:0")
            .arg(format!("--web.config.file={}", web.display()))
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{text}: expected {expected:?} in {stderr}"
        );
    }
}
