//! Server certificates for STARTTLS (RFC 3207) and implicit TLS (RFC 8314 §3.3): from
//! configured PEM files, or a self-signed one generated at start for local use (logged as
//! such: real senders will not verify it).
//!
//! A listener's certificate can be replaced without a restart: [`ListenerTls::reload`] reads
//! the files again when they changed (or when forced, on SIGHUP) and swaps the new pair in
//! for new connections; sessions already in TLS keep theirs. A pair that does not load (a
//! bad file, a key that does not match, the cert written but not yet the key) is logged and
//! the old one kept; it is tried again when a file changes again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::durable::{self, Stamp};

/// The TLS side of one listener.
pub struct ListenerTls {
    /// The listener, for logs.
    label: String,
    /// `None` for a self-signed certificate: nothing to reload.
    files: Option<(PathBuf, PathBuf)>,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' stamps at the last load attempt, good or bad.
    seen: Mutex<Option<(Stamp, Stamp)>>,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The files did not change (or the certificate is self-signed).
    Unchanged,
    /// New connections get the new pair.
    Loaded,
    /// The new pair did not load; the old one stays.
    Failed(anyhow::Error),
}

impl ListenerTls {
    /// Loads the configured pair, or generates a self-signed certificate for `hostname`.
    pub fn new(
        label: &str,
        cert: Option<&Path>,
        key: Option<&Path>,
        hostname: &str,
    ) -> anyhow::Result<ListenerTls> {
        let (files, config, seen) = match (cert, key) {
            (Some(c), Some(k)) => {
                let seen = stamps(c, k);
                let config = server_config(load(c, k)?)?;
                (Some((c.to_path_buf(), k.to_path_buf())), config, seen)
            }
            _ => {
                tracing::warn!(
                    listener = label,
                    hostname,
                    "no TLS certificate configured: using a self-signed certificate generated now; \
                     set tls_cert and tls_key on the listener for production"
                );
                (None, server_config(self_signed(hostname)?)?, None)
            }
        };
        Ok(ListenerTls {
            label: label.to_string(),
            files,
            current: RwLock::new(config),
            seen: Mutex::new(seen),
        })
    }

    /// The acceptor for a new connection, with the certificate loaded last.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        TlsAcceptor::from(config)
    }

    /// Loads the files again if they changed since the last attempt, or always with
    /// `force`. Blocking file I/O: call it off the async reactor.
    pub fn reload(&self, force: bool) -> Reloaded {
        let Some((cert, key)) = &self.files else { return Reloaded::Unchanged };
        let now = stamps(cert, key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return Reloaded::Unchanged;
            }
            *seen = now;
        }
        match load(cert, key).and_then(server_config) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
                Reloaded::Loaded
            }
            Err(e) => Reloaded::Failed(e),
        }
    }

    /// [`reload`](Self::reload), logged.
    pub fn reload_logged(&self, force: bool) {
        match self.reload(force) {
            Reloaded::Unchanged => {}
            Reloaded::Loaded => tracing::info!(
                listener = %self.label,
                cert = %self.files.as_ref().map(|f| f.0.display().to_string()).unwrap_or_default(),
                "TLS certificate reloaded; new connections use it"
            ),
            Reloaded::Failed(e) => tracing::error!(
                listener = %self.label,
                error = %format!("{e:#}"),
                "new TLS certificate not loaded; still using the previous one"
            ),
        }
    }
}

/// Both files' stamps; `None` when either cannot be read (then any later state differs).
fn stamps(cert: &Path, key: &Path) -> Option<(Stamp, Stamp)> {
    match (durable::stamp(cert), durable::stamp(key)) {
        (Ok(Some(c)), Ok(Some(k))) => Some((c, k)),
        _ => None,
    }
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn server_config((chain, key): Pair) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol setup")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match or are unsupported")?;
    Ok(Arc::new(config))
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<Pair> {
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

fn self_signed(hostname: &str) -> anyhow::Result<Pair> {
    let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .context("cannot generate a self-signed certificate")?;
    let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der())
        .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?;
    Ok((vec![ck.cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, ck.cert.pem()).unwrap();
        std::fs::write(&k, ck.key_pair.serialize_pem()).unwrap();
        (c, k)
    }

    fn served(t: &ListenerTls) -> Arc<ServerConfig> {
        t.current.read().unwrap().clone()
    }

    #[test]
    fn a_changed_pair_is_loaded_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a.test");
        let t = ListenerTls::new("test", Some(&c), Some(&k), "x").unwrap();
        assert!(matches!(t.reload(false), Reloaded::Unchanged));
        let first = served(&t);

        std::thread::sleep(std::time::Duration::from_millis(10));
        write_pair(dir.path(), "b.test");
        assert!(matches!(t.reload(false), Reloaded::Loaded));
        let second = served(&t);
        assert!(!Arc::ptr_eq(&first, &second));

        std::fs::write(&k, "not a key").unwrap();
        assert!(matches!(t.reload(false), Reloaded::Failed(_)));
        assert!(Arc::ptr_eq(&served(&t), &second), "the old pair stays");
        assert!(matches!(t.reload(false), Reloaded::Unchanged), "a bad pair is not retried until it changes");
        assert!(matches!(t.reload(true), Reloaded::Failed(_)), "SIGHUP retries");
    }
}
