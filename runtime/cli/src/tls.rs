//! How `ferry serve` and `ferry up` choose TLS: a given certificate, a
//! self-signed one kept in the data directory, or plaintext, which only
//! loopback gets without `--insecure`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_proto::tls::{fingerprint, read_pem};
use ferry_service::ServerTls;

#[derive(clap::Args, Clone, Default)]
pub struct TlsArgs {
    /// Serve TLS with this certificate (PEM, leaf first, then its chain).
    #[arg(long, requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate, made on first use and kept
    /// in the data directory (`tls/`), so that its fingerprint stays the
    /// same; clients trust it with `--ca <data>/tls/self-signed.pem`.
    #[arg(long)]
    self_signed: bool,
    /// Another name or address the self-signed certificate covers, besides
    /// localhost, loopback, the listen address and the host name.
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// Require a client certificate signed by this CA (mutual TLS).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Serve plaintext on an address beyond loopback: tokens then cross the
    /// network readable by anyone on the path.
    #[arg(long, conflicts_with_all = ["tls_cert", "self_signed"])]
    insecure: bool,
}

/// TLS as chosen, with what to tell the operator.
pub struct Chosen {
    pub tls: Option<ServerTls>,
    /// `https` or `http`.
    pub scheme: &'static str,
    pub banner: Option<String>,
}

impl TlsArgs {
    pub fn choose(&self, listen: SocketAddr, data_dir: &Path) -> anyhow::Result<Chosen> {
        let (cert, key, self_signed) = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => (
                read_pem(c, false, "certificate")?,
                read_pem(k, true, "key")?,
                None,
            ),
            _ if self.self_signed => {
                let (cert, key, path) = self_signed_cert(data_dir, listen, &self.tls_names)?;
                (cert, key, Some(path))
            }
            _ => {
                anyhow::ensure!(
                    self.client_ca.is_none(),
                    "--client-ca needs TLS: pass --tls-cert and --tls-key, or --self-signed"
                );
                anyhow::ensure!(
                    listen.ip().is_loopback() || self.insecure,
                    "ferry will not serve plaintext on {listen}: tokens and data would cross the network readable. \
                     Pass --tls-cert and --tls-key, or --self-signed; or --insecure to serve plaintext anyway"
                );
                let banner = (!listen.ip().is_loopback()).then(|| {
                    format!("warning: serving plaintext on {listen} (--insecure): tokens cross the network readable")
                });
                return Ok(Chosen {
                    tls: None,
                    scheme: "http",
                    banner,
                });
            }
        };
        let client_ca_pem = self
            .client_ca
            .as_deref()
            .map(|p| read_pem(p, false, "client CA"))
            .transpose()?;
        let print = fingerprint(&cert).unwrap_or_default();
        let banner = match &self_signed {
            Some(path) => format!(
                "TLS with the self-signed certificate {} (SHA-256 {print}); clients pass --ca with a copy of it",
                path.display()
            ),
            None => format!("TLS with certificate SHA-256 {print}"),
        };
        let banner = if client_ca_pem.is_some() {
            format!("{banner}; client certificates required (mutual TLS)")
        } else {
            banner
        };
        Ok(Chosen {
            tls: Some(ServerTls {
                cert_pem: cert,
                key_pem: key,
                client_ca_pem,
            }),
            scheme: "https",
            banner: Some(banner),
        })
    }
}

/// The self-signed certificate and key of `data_dir`, made now if missing.
fn self_signed_cert(
    data_dir: &Path,
    listen: SocketAddr,
    extra: &[String],
) -> anyhow::Result<(Vec<u8>, Vec<u8>, PathBuf)> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("self-signed.pem");
    let key_path = dir.join("self-signed.key");
    if cert_path.exists() && key_path.exists() {
        return Ok((
            read_pem(&cert_path, false, "self-signed certificate")?,
            read_pem(&key_path, true, "self-signed key")?,
            cert_path,
        ));
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.extend(extra.iter().cloned());
    names.dedup();
    let made =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = made.cert.pem();
    let key = made.signing_key.serialize_pem();
    write_private(&key_path, key.as_bytes())?;
    std::fs::write(&cert_path, cert.as_bytes())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok((cert.into_bytes(), key.into_bytes(), cert_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
