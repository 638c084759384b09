//! TLS on the client's side of a connection: which roots a service's
//! certificate is checked against, and the certificate a client shows when
//! the service asks for one (mutual TLS).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The variables [`ClientTls::from_env`] reads, each a PEM file's path.
pub const CA_ENV: &str = "FERRY_CA";
pub const CLIENT_CERT_ENV: &str = "FERRY_CLIENT_CERT";
pub const CLIENT_KEY_ENV: &str = "FERRY_CLIENT_KEY";

/// How an `https://` service is trusted; an `http://` one ignores it.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// Roots to trust instead of the system's (a private CA, or a service's
    /// self-signed certificate).
    ca: Option<Certificate>,
    identity: Option<Identity>,
    /// The name the certificate must carry, when not the URL's host.
    domain: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// A file that could not be used, named in the message.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// Reads a PEM file that must hold a certificate (`key == false`) or a
/// private key; a wrong file is named here rather than at a handshake.
pub fn read_pem(path: &Path, key: bool, what: &str) -> Result<Vec<u8>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bytes = std::fs::read(path)
        .map_err(|e| TlsError(format!("reading the {what} {}: {e}", path.display())))?;
    let ok = if key {
        PrivateKeyDer::from_pem_slice(&bytes).is_ok()
    } else {
        let mut certs = CertificateDer::pem_slice_iter(&bytes);
        matches!(certs.next(), Some(Ok(_))) && certs.all(|c| c.is_ok())
    };
    if !ok {
        return Err(TlsError(format!(
            "the {what} {} holds no PEM {}",
            path.display(),
            if key { "private key" } else { "certificate" }
        )));
    }
    Ok(bytes)
}

/// The SHA-256 fingerprint of a PEM file's first certificate, as
/// `AB:CD:…`: what a browser or `openssl x509 -fingerprint -sha256` shows.
pub fn fingerprint(pem: &[u8]) -> Option<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Some(
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

impl ClientTls {
    /// The system's roots, no client certificate.
    pub fn system() -> ClientTls {
        ClientTls::default()
    }

    /// Trusts `pem` (one or more certificates) instead of the system roots.
    pub fn with_ca_pem(mut self, pem: impl AsRef<[u8]>) -> ClientTls {
        self.ca = Some(Certificate::from_pem(pem));
        self
    }

    /// Shows this certificate and key to a service that asks for one.
    pub fn with_identity_pem(mut self, cert: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> ClientTls {
        self.identity = Some(Identity::from_pem(cert, key));
        self
    }

    /// Checks the certificate for `name` instead of the URL's host (a
    /// service dialled by address whose certificate names it otherwise).
    pub fn with_domain(mut self, name: impl Into<String>) -> ClientTls {
        self.domain = Some(name.into());
        self
    }

    /// From files: a CA to trust, and a client certificate with its key
    /// (both or neither).
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, TlsError> {
        let mut tls = ClientTls::system();
        if let Some(ca) = ca {
            tls = tls.with_ca_pem(read_pem(ca, false, "CA file")?);
        }
        match (cert, key) {
            (Some(c), Some(k)) => {
                tls = tls.with_identity_pem(
                    read_pem(c, false, "client certificate")?,
                    read_pem(k, true, "client key")?,
                );
            }
            (None, None) => {}
            _ => {
                return Err(TlsError(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        }
        Ok(tls)
    }

    /// From `FERRY_CA`, `FERRY_CLIENT_CERT` and `FERRY_CLIENT_KEY`.
    pub fn from_env() -> Result<ClientTls, TlsError> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let (ca, cert, key) = (var(CA_ENV), var(CLIENT_CERT_ENV), var(CLIENT_KEY_ENV));
        ClientTls::from_files(ca.as_deref(), cert.as_deref(), key.as_deref())
    }

    /// Whether a client certificate is shown (mutual TLS).
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca {
            Some(ca) => c.ca_certificate(ca.clone()),
            None => c.with_native_roots(),
        };
        if let Some(id) = &self.identity {
            c = c.identity(id.clone());
        }
        if let Some(d) = &self.domain {
            c = c.domain_name(d.clone());
        }
        c
    }

    /// Applies to `endpoint` when `url` is `https://`.
    pub(crate) fn apply(
        &self,
        url: &str,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
        if url.starts_with("https://") {
            endpoint.tls_config(self.config())
        } else {
            Ok(endpoint)
        }
    }
}

/// What a client says when a connection fails in a way TLS explains: a
/// plaintext service dialled with `https://`, or a certificate not trusted.
pub fn explain(url: &str, error: &str) -> Option<String> {
    let e = error.to_ascii_lowercase();
    if url.starts_with("https://")
        && (e.contains("invalidcontenttype")
            || e.contains("corrupt message")
            || e.contains("received corrupt")
            || e.contains("invalid content type"))
    {
        return Some(format!(
            "{url} does not answer TLS; if the service is plaintext, dial it with http://"
        ));
    }
    if url.starts_with("https://")
        && (e.contains("unknownissuer") || e.contains("invalid peer certificate"))
    {
        return Some(format!(
            "the certificate of {url} is not trusted ({error}); pass the CA that signed it with --ca FILE (or FERRY_CA)"
        ));
    }
    None
}

/// What a client says when the first call over a fresh TLS session, made
/// without a client certificate, fails: under TLS 1.3 a service that wants
/// one refuses only after the client's side of the handshake is done.
pub fn explain_dropped(url: &str, error: &str) -> Option<String> {
    let e = error.to_ascii_lowercase();
    if url.starts_with("https://")
        && (e.contains("certificaterequired")
            || e.contains("connection closed")
            || e.contains("broken pipe")
            || e.contains("connection reset"))
    {
        return Some(format!(
            "{url} closed the connection after the TLS handshake, as a service that requires client \
             certificates (mutual TLS) does: pass --client-cert and --client-key (or FERRY_CLIENT_CERT \
             and FERRY_CLIENT_KEY) with a certificate signed by its client CA"
        ));
    }
    None
}
