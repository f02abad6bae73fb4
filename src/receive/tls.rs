//! Server certificates for STARTTLS (RFC 3207): from configured PEM files, or a self-signed
//! one generated at start for local use (logged as such: real senders will not verify it).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the TLS acceptor configuration for one listener.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    hostname: &str,
) -> anyhow::Result<Arc<ServerConfig>> {
    let (chain, key) = match (cert, key) {
        (Some(c), Some(k)) => load(c, k)?,
        _ => {
            tracing::warn!(
                hostname,
                "no TLS certificate configured: using a self-signed certificate generated now; \
                 set tls_cert and tls_key on the listener for production"
            );
            self_signed(hostname)?
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol setup")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match or are unsupported")?;
    Ok(Arc::new(config))
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let pem = std::fs::read(cert).with_context(|| format!("cannot read tls_cert {}", cert.display()))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls_cert {} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("tls_cert {} holds no certificate", cert.display());
    }
    let pem = std::fs::read(key).with_context(|| format!("cannot read tls_key {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("tls_key {} is not a PEM private key", key.display()))?
        .with_context(|| format!("tls_key {} holds no private key", key.display()))?;
    Ok((chain, key))
}

fn self_signed(hostname: &str) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .context("cannot generate a self-signed certificate")?;
    let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der())
        .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?;
    Ok((vec![ck.cert.der().clone()], key))
}
