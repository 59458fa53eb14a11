//! `--web-config FILE`: TLS and basic authentication in the format of Prometheus's
//! exporter-toolkit (the file node_exporter and friends take), so operators reuse theirs.
//! Options zeek-probe does not implement are refused by name rather than silently ignored:
//! a security setting that is ignored is worse than an error.
use std::{
    collections::{BTreeMap, HashSet},
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read the web config {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("web config {path}: {error}")]
    Parse { path: PathBuf, error: serde_yaml::Error },
    #[error("web config {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Accepted for compatibility; zeek-probe serves HTTP/1.1, which Prometheus uses.
    #[serde(default, rename = "http2")]
    _http2: Option<bool>,
}

/// What the HTTP server enforces.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<BasicAuth>,
    /// Extra response headers (e.g. Strict-Transport-Security).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = fs::read_to_string(path).map_err(|source| WebConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// The web config in `text`, read from `path` (relative file names are relative to it).
    pub fn parse(text: &str, path: &Path) -> Result<Self, WebConfigError> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml::from_str(text).map_err(|error| WebConfigError::Parse { path: path.into(), error })?
        };
        let invalid = |detail: String| WebConfigError::Invalid { path: path.into(), detail };
        // Relative paths are relative to the config file, as in exporter-toolkit.
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = file.tls_server_config.map(|t| tls_acceptor(&t, base)).transpose().map_err(invalid)?;
        let auth = if file.basic_auth_users.is_empty() {
            None
        } else {
            for (user, hash) in &file.basic_auth_users {
                if hash.parse::<bcrypt::HashParts>().is_err() {
                    return Err(invalid(format!(
                        "basic_auth_users: the password of {user} is not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`)"
                    )));
                }
            }
            Some(BasicAuth { users: Arc::new(file.basic_auth_users), verified: Arc::default() })
        };
        let headers = file
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                (Ok(n), Ok(v)) => Ok((n, v)),
                _ => Err(invalid(format!("http_server_config.headers: {name}: {value} is not a valid HTTP header"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tls, auth, headers })
    }
}

fn tls_acceptor(t: &TlsFile, base: &Path) -> Result<TlsAcceptor, String> {
    let cert_file = base.join(&t.cert_file);
    let key_file = base.join(&t.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("cert_file {} holds no PEM certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        match (t.min_version.as_deref().unwrap_or("TLS12"), t.max_version.as_deref().unwrap_or("TLS13")) {
            ("TLS12", "TLS13") => vec![&rustls::version::TLS12, &rustls::version::TLS13],
            ("TLS12", "TLS12") => vec![&rustls::version::TLS12],
            ("TLS13", "TLS13") => vec![&rustls::version::TLS13],
            (min, max) => return Err(format!("TLS versions {min}..{max}: zeek-probe supports TLS12 and TLS13")),
        };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let client_ca = || -> Result<Arc<rustls::RootCertStore>, String> {
        let path = base.join(t.client_ca_file.as_ref().ok_or("client_auth_type needs client_ca_file")?);
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(&path).map_err(|e| format!("client_ca_file {}: {e}", path.display()))?
        {
            roots
                .add(cert.map_err(|e| format!("client_ca_file {}: {e}", path.display()))?)
                .map_err(|e| e.to_string())?;
        }
        Ok(Arc::new(roots))
    };
    let builder = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(client_ca()?, provider).build().map_err(|e| e.to_string())?,
        ),
        "VerifyClientCertIfGiven" => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(client_ca()?, provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!(
                "client_auth_type {other} is not supported (use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ));
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("cert_file/key_file: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Users and their bcrypt hashes. bcrypt is slow on purpose (tens of ms), so credentials that
/// verified once are remembered (as the exporter-toolkit does) rather than re-hashed per scrape.
#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<String>>>,
}

/// Remembered credentials at most; past that nothing more is remembered (only slower).
const MAX_REMEMBERED: usize = 64;

impl BasicAuth {
    /// Whether an `Authorization` header value names a user with the right password.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|a| a.strip_prefix("Basic ")) else { return false };
        if self.verified.lock().is_ok_and(|v| v.contains(encoded)) {
            return true;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let Ok(decoded) = String::from_utf8(decoded) else { return false };
        let Some((user, password)) = decoded.split_once(':') else { return false };
        let ok = self.users.get(user).is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if ok
            && let Ok(mut v) = self.verified.lock()
            && v.len() < MAX_REMEMBERED
        {
            v.insert(encoded.to_owned());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn basic_auth_checks_bcrypt_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let config =
            WebConfig::load(&write(dir.path(), "web.yml", &format!("basic_auth_users:\n  alice: '{hash}'\n"))).unwrap();
        let auth = config.auth.unwrap();
        let header = |creds: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds));
        assert!(auth.allows(Some(&header("alice:s3cret"))));
        assert!(auth.allows(Some(&header("alice:s3cret"))), "remembered");
        assert!(!auth.allows(Some(&header("alice:wrong"))));
        assert!(!auth.allows(Some(&header("bob:s3cret"))));
        assert!(!auth.allows(Some("Basic !!!")));
        assert!(!auth.allows(None));
        assert!(config.tls.is_none());
    }

    #[test]
    fn loads_tls_with_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        write(dir.path(), "server.crt", &cert.cert.pem());
        write(dir.path(), "server.key", &cert.key_pair.serialize_pem());
        let path =
            write(dir.path(), "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
        assert!(WebConfig::load(&path).unwrap().tls.is_some());
    }

    #[test]
    fn refuses_what_it_would_otherwise_ignore() {
        let dir = tempfile::tempdir().unwrap();
        let one_line = |yaml: &str| {
            let err = WebConfig::load(&write(dir.path(), "web.yml", yaml)).err().expect("must fail");
            let text = format!("{:#}", anyhow::Error::from(err));
            assert!(!text.contains('\n'), "{text}");
            let (_, detail) = text.split_once(": ").unwrap_or_default();
            assert!(!detail.is_empty() && text.matches(detail).count() == 1, "said once: {text}");
            text
        };
        assert!(
            one_line("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n")
                .contains("cipher_suites")
        );
        assert!(one_line("basic_auth_users:\n  alice: plaintext\n").contains("not a bcrypt hash"));
        assert!(
            one_line("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n").contains("missing.crt")
        );
        assert!(one_line("basic_auth_users: [").contains("web.yml"));
    }
}
