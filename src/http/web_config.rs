//! `--web.config.file`: TLS, basic auth and response headers in the Prometheus
//! exporter-toolkit format (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! so one file serves node_exporter, Prometheus and this exporter alike.
//!
//! Decoded strictly like the main config: unknown keys are errors naming the file and key path.
//! Relative paths are relative to the web config file (as in exporter-toolkit).
//!
//! The file and the files it names (certificate, key, client CA) are looked at again — one
//! `stat` each — at every new connection and request, and re-read when one changed, so a
//! certificate renewed on disk (cert-manager, certbot) is served without a restart. A change
//! that does not load (a half-written key) is logged and the previous configuration keeps
//! serving. Whether the listeners speak TLS at all is decided at start.
//!
//! Basic auth verifies bcrypt hashes, which is slow by design (~50 ms at cost 10), so each
//! (user, password, hash) verdict is cached under its SHA-256: the plain password is never
//! stored, and a scrape every 15 s costs one hash, not one bcrypt.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use crate::config::ConfigError;

/// Verdicts kept by the basic auth cache before it is cleared.
const AUTH_CACHE_ENTRIES: usize = 4096;

/// A bcrypt hash of a random password, verified for unknown users so that a wrong user name
/// costs as long as a wrong password and does not reveal which users exist.
const DUMMY_HASH: &str = "$2b$10$t/KAgI4sMuuju7nqhGuGLOHoPP/NYMxi10jxv2Mt4SUhUJzUGUogO";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted for compatibility; rustls chooses its own safe lists (logged when set).
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    // Accepted for compatibility; HTTP/2 is always offered (after ALPN with TLS).
    http2: Option<bool>,
}

/// One loaded web configuration.
pub struct Loaded {
    /// The TLS settings, when `tls_server_config` names a certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// user → bcrypt hash; empty means no basic auth.
    users: BTreeMap<String, String>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files the configuration names (certificate, key, client CA), watched for rotation.
    files: Vec<PathBuf>,
}

/// (mtime, length, inode) of each file a configuration was read from.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

/// The web configuration file, re-read when it or a file it names changes.
pub struct WebConfig {
    file: PathBuf,
    state: Mutex<State>,
    auth_cache: Mutex<HashMap<[u8; 32], bool>>,
}

struct State {
    stamp: Stamp,
    loaded: Arc<Loaded>,
}

impl WebConfig {
    /// Reads and validates `file` (certificates included): an error here fails start-up.
    pub fn load(file: &Path) -> Result<WebConfig, ConfigError> {
        let (loaded, stamp) = read(file)?;
        Ok(WebConfig {
            file: file.to_path_buf(),
            state: Mutex::new(State {
                stamp,
                loaded: Arc::new(loaded),
            }),
            auth_cache: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration now: re-read if the file or a file it names changed since.
    pub fn current(&self) -> Arc<Loaded> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp_of(&self.file, &state.loaded.files);
        if now == state.stamp {
            return state.loaded.clone();
        }
        // Remember the stamp even on failure: the same broken files are not re-read per request.
        state.stamp = now;
        match read(&self.file) {
            Ok((loaded, stamp)) => {
                info!(file = %self.file.display(), "web configuration reloaded");
                state.stamp = stamp;
                state.loaded = Arc::new(loaded);
                self.auth_cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            Err(e) => {
                error!(error = %e, "web configuration NOT reloaded; keeping the previous one")
            }
        }
        state.loaded.clone()
    }

    /// The verdict on `authorization` when it needs no bcrypt: no users configured, no or
    /// malformed credentials, or a verdict cached from an earlier request.
    pub fn basic_auth_cached(&self, loaded: &Loaded, authorization: Option<&str>) -> Option<bool> {
        if loaded.users.is_empty() {
            return Some(true);
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Some(false);
        };
        let key = cache_key(loaded, &user, &password);
        self.auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
    }

    /// Whether `authorization` (the header's value) carries valid basic auth credentials, or
    /// none are needed. Runs bcrypt on a cache miss: call it off the async workers.
    pub fn basic_auth_ok(&self, loaded: &Loaded, authorization: Option<&str>) -> bool {
        if let Some(verdict) = self.basic_auth_cached(loaded, authorization) {
            return verdict;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let hash = loaded.users.get(&user);
        let key = cache_key(loaded, &user, &password);
        let verified = bcrypt::verify(&password, hash.map_or(DUMMY_HASH, String::as_str));
        let ok = hash.is_some() && verified.unwrap_or(false);
        // Only successes are cached: their number is bounded by the real credentials, so a
        // client guessing passwords can neither grow the cache nor evict real users from it.
        if ok {
            let mut cache = self.auth_cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= AUTH_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, ok);
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn stamp_of(file: &Path, others: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::iter::once(file)
        .chain(others.iter().map(PathBuf::as_path))
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len(), m.ino()))
        })
        .collect()
}

/// Reads `file` and everything it names; returns the configuration and the stamp of the files.
fn read(file: &Path) -> Result<(Loaded, Stamp), ConfigError> {
    let err = |path: &str, message: String| ConfigError {
        file: file.display().to_string(),
        path: path.to_string(),
        message,
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| err(".", format!("cannot read web config file: {e}")))?;
    let raw: RawWebConfig = if text.trim().is_empty() {
        RawWebConfig::default()
    } else {
        let de = serde_yaml::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            err(
                &e.path().to_string(),
                crate::config::yaml_message(e.inner()),
            )
        })?
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let tls = match raw.tls_server_config {
        Some(t) => tls_config(t, base, &mut files).map_err(|(p, m)| err(&p, m))?,
        None => None,
    };
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if !is_bcrypt(hash) {
            return Err(err(
                &format!("basic_auth_users.{user}"),
                "expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters), e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`".into(),
            ));
        }
        if user.contains(':') {
            return Err(err(
                &format!("basic_auth_users.{user}"),
                "a user name may not contain `:`".into(),
            ));
        }
    }
    let mut headers = Vec::new();
    let http = raw.http_server_config.unwrap_or_default();
    if http.http2.is_some() {
        info!("http_server_config.http2 is accepted and ignored: HTTP/2 is always offered");
    }
    for (name, value) in http.headers {
        let at = format!("http_server_config.headers.{name}");
        let n = HeaderName::try_from(name.as_str())
            .map_err(|e| err(&at, format!("invalid header name: {e}")))?;
        let v = HeaderValue::try_from(value.as_str())
            .map_err(|e| err(&at, format!("invalid header value: {e}")))?;
        headers.push((n, v));
    }
    let stamp = stamp_of(file, &files);
    Ok((
        Loaded {
            tls,
            users,
            headers,
            files,
        },
        stamp,
    ))
}

/// The cache key of a (user, password) pair against its configured hash: a SHA-256, so the
/// password itself is never stored.
fn cache_key(loaded: &Loaded, user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user.as_bytes(), password.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(loaded.users.get(user).map(String::as_bytes).unwrap_or(b"-"));
    h.finalize().into()
}

fn is_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

type KeyError = (String, String);

fn tls_config(
    t: RawTls,
    base: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Arc<ServerConfig>>, KeyError> {
    const AT: &str = "tls_server_config";
    let key_err = |k: &str, m: String| (format!("{AT}.{k}"), m);
    let (cert_file, key_file) = match (t.cert_file, t.key_file) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (base.join(c), base.join(k)),
        (None, Some(_)) => return Err(key_err("cert_file", "missing cert_file".into())),
        (Some(_), None) => return Err(key_err("key_file", "missing key_file".into())),
    };
    for (key, set) in [
        ("cipher_suites", t.cipher_suites.is_some()),
        (
            "prefer_server_cipher_suites",
            t.prefer_server_cipher_suites.is_some(),
        ),
        ("curve_preferences", t.curve_preferences.is_some()),
    ] {
        if set {
            warn!(key = %format!("{AT}.{key}"), "ignored: rustls offers only its own modern, safe choices");
        }
    }
    let version = |k: &str, v: Option<&str>| -> Result<Option<u8>, KeyError> {
        match v {
            None => Ok(None),
            Some("TLS12") => Ok(Some(12)),
            Some("TLS13") => Ok(Some(13)),
            Some(other) => Err(key_err(
                k,
                format!("unsupported TLS version {other:?}; expected TLS12 or TLS13"),
            )),
        }
    };
    let min = version("min_version", t.min_version.as_deref())?.unwrap_or(12);
    let max = version("max_version", t.max_version.as_deref())?.unwrap_or(13);
    if min > max {
        return Err(key_err("max_version", "lower than min_version".into()));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&cert_file).map_err(|m| key_err("cert_file", m))?;
    let key = read_key(&key_file).map_err(|m| key_err("key_file", m))?;
    files.extend([cert_file, key_file]);
    let client_auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let verifier = match client_auth {
        "NoClientCert" => None,
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let Some(ca) = t.client_ca_file.map(|c| base.join(c)) else {
                return Err(key_err(
                    "client_ca_file",
                    format!("client_auth_type {client_auth} needs client_ca_file"),
                ));
            };
            let mut roots = RootCertStore::empty();
            for c in read_certs(&ca).map_err(|m| key_err("client_ca_file", m))? {
                roots
                    .add(c)
                    .map_err(|e| key_err("client_ca_file", format!("{}: {e}", ca.display())))?;
            }
            files.push(ca);
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if client_auth == "VerifyClientCertIfGiven" {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(b.build().map_err(|e| key_err("client_ca_file", e.to_string()))?)
        }
        "RequestClientCert" | "RequireAnyClientCert" => return Err(key_err(
            "client_auth_type",
            format!("{client_auth} (client certificates taken without verification) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
        )),
        other => return Err(key_err(
            "client_auth_type",
            format!("unknown client_auth_type {other:?}; expected one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
        )),
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| key_err("min_version", e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| key_err("key_file", format!("does not match cert_file: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no PEM private key found", path.display()),
        e => format!("{}: {e}", path.display()),
    })
}
