//! TLS configuration from PEM files (rustls with the ring provider).

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from a certificate chain and a private key, both PEM.
pub fn server_config_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(io::Error::other("no certificate in the PEM"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| io::Error::other(format!("key PEM: {e}")))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(cfg))
}

/// A server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let c =
        std::fs::read(cert).map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?;
    let k = std::fs::read(key).map_err(|e| io::Error::other(format!("{}: {e}", key.display())))?;
    server_config_pem(&c, &k)
}

/// A client configuration trusting the CA certificates in `ca_pem`.
pub fn client_config_pem(ca_pem: &[u8]) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| io::Error::other(format!("CA PEM: {e}")))?;
        roots.add(c).map_err(io::Error::other)?;
    }
    if roots.is_empty() {
        return Err(io::Error::other("no CA certificate in the PEM"));
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A client configuration trusting the CA certificates in a PEM file.
pub fn client_config(ca: &Path) -> io::Result<Arc<ClientConfig>> {
    let c = std::fs::read(ca).map_err(|e| io::Error::other(format!("{}: {e}", ca.display())))?;
    client_config_pem(&c)
}
