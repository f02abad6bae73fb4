//! Client TLS for opportunistic STARTTLS (RFC 3207 §4.1, RFC 7435).
//!
//! The handshake accepts any certificate (a check that failed must not stop delivery when
//! TLS is opportunistic), but the certificate is then checked against the web PKI roots
//! for the MX host name and the result is recorded with the attempt.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What homing learned about a TLS session, for the attempt record.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// `"verified"` or why the certificate would fail a strict check.
    pub verification: String,
}

impl std::fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (certificate {})", self.version, self.cipher, self.verification)
    }
}

#[derive(Debug)]
struct Opportunistic {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client side, built once.
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    strict: Arc<WebPkiServerVerifier>,
}

impl ClientTls {
    pub fn new() -> anyhow::Result<ClientTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let strict = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the certificate verifier: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Opportunistic { provider }))
            .with_no_client_auth();
        Ok(ClientTls { config: Arc::new(config), strict })
    }

    /// Checks the peer's certificate chain as a strict client would, for the record.
    pub fn describe(&self, conn: &rustls::ClientConnection, host: &str) -> TlsInfo {
        let version = conn.protocol_version().map(|v| format!("{v:?}").replace('_', ".")).unwrap_or_default();
        let cipher = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
        let verification = match (conn.peer_certificates(), ServerName::try_from(host.to_string())) {
            (Some([end, rest @ ..]), Ok(name)) => {
                match self.strict.verify_server_cert(end, rest, &name, &[], UnixTime::now()) {
                    Ok(_) => "verified".to_string(),
                    Err(e) => format!("not verified: {e}"),
                }
            }
            (_, Err(_)) => format!("not verified: {host:?} is not a valid server name"),
            _ => "not verified: no certificate".to_string(),
        };
        TlsInfo { version, cipher, verification }
    }
}
