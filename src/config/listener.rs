//! `[[listener]]`: where homing accepts SMTP, and what kind of port each socket is.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerMode {
    /// Mail from other servers (port 25, RFC 5321): STARTTLS offered, no AUTH unless
    /// `auth = true`, relaying only for `relay.networks` and authenticated clients.
    Mx,
    /// Message submission (port 587, RFC 6409): STARTTLS, then AUTH, is required before MAIL
    /// (`530 5.7.0` otherwise, RFC 6409 §4.3 and §6.1).
    Submission,
    /// Submission over implicit TLS (port 465, RFC 8314 §3.3): TLS from the first octet,
    /// AUTH required before MAIL.
    Submissions,
}

impl ListenerMode {
    /// Clients must authenticate before MAIL.
    pub fn requires_auth(self) -> bool {
        !matches!(self, ListenerMode::Mx)
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, ListenerMode::Submissions)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port to listen on.
    pub address: SocketAddr,
    /// `mx` (default), `submission` or `submissions`.
    pub mode: ListenerMode,
    /// PEM certificate chain for TLS. Without one, a self-signed certificate is generated at
    /// start (fine for local use; logged as such). Reread on SIGHUP and when the file changes
    /// (`[tls] reload_interval`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Offer STARTTLS (RFC 3207). Default true; must stay true on a `submission` listener
    /// (AUTH is only offered over TLS); `submissions` is TLS from the start anyway.
    pub starttls: bool,
    /// Offer AUTH PLAIN LOGIN once TLS is active. Default: on for `submission` and
    /// `submissions` (where it cannot be turned off), off for `mx`.
    pub auth: Option<bool>,
    /// Concurrent sessions on this listener (within `smtp.max_sessions` for all). Default:
    /// `smtp.max_sessions`.
    pub max_sessions: Option<usize>,
    /// Largest message on this listener, in bytes. Default: `smtp.max_message_size`.
    pub max_message_size: Option<u64>,
    /// Recipients per message on this listener. Default: `smtp.max_recipients`.
    pub max_recipients: Option<usize>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 2525)),
            mode: ListenerMode::Mx,
            tls_cert: None,
            tls_key: None,
            starttls: true,
            auth: None,
            max_sessions: None,
            max_message_size: None,
            max_recipients: None,
        }
    }
}

impl ListenerConfig {
    /// Whether AUTH is offered (once TLS is active).
    pub fn offers_auth(&self) -> bool {
        self.auth.unwrap_or(self.mode.requires_auth())
    }

    /// Whether the listener does TLS at all (STARTTLS or implicit).
    pub fn tls(&self) -> bool {
        self.starttls || self.mode.implicit_tls()
    }
}

/// Checks the listeners; each error names the listener, the field and the fix.
pub fn validate(listeners: &[ListenerConfig]) -> anyhow::Result<()> {
    if listeners.is_empty() {
        bail!("no [[listener]]: add one, e.g. address = \"127.0.0.1:2525\"");
    }
    let mut seen = HashSet::new();
    for l in listeners {
        let at = format!("[[listener]] address = \"{}\"", l.address);
        if !seen.insert(l.address) {
            bail!("{at} is listed twice: give each listener its own address or port");
        }
        if l.tls_cert.is_some() != l.tls_key.is_some() {
            bail!("{at}: set both tls_cert and tls_key, or neither");
        }
        match l.mode {
            ListenerMode::Submission if !l.starttls => bail!(
                "{at}: mode = \"submission\" needs starttls = true (AUTH is only offered over TLS); \
                 remove starttls = false, or use mode = \"submissions\" for implicit TLS"
            ),
            ListenerMode::Submission | ListenerMode::Submissions if l.auth == Some(false) => bail!(
                "{at}: mode = \"{}\" requires AUTH (RFC 6409 §4.3); remove auth = false, or use mode = \"mx\"",
                if l.mode == ListenerMode::Submission { "submission" } else { "submissions" }
            ),
            ListenerMode::Mx if l.auth == Some(true) && !l.starttls => {
                bail!("{at}: auth = true needs starttls = true: homing offers AUTH only over TLS")
            }
            _ => {}
        }
        if l.max_sessions == Some(0) {
            bail!("{at}: max_sessions = 0 would refuse every client; use at least 1 or remove it");
        }
        if l.max_recipients == Some(0) {
            bail!("{at}: max_recipients = 0: RFC 5321 §4.5.3.1.8 needs at least 100 (1 for tests)");
        }
        if l.max_message_size.is_some_and(|s| s < 1024) {
            bail!("{at}: max_message_size is below 1024 bytes; use at least 1024 or remove it");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<ListenerConfig> {
        #[derive(Deserialize)]
        struct F {
            listener: Vec<ListenerConfig>,
        }
        toml::from_str::<F>(text).unwrap().listener
    }

    fn error(text: &str) -> String {
        format!("{:#}", validate(&parse(text)).unwrap_err())
    }

    #[test]
    fn three_kinds_of_port() {
        let l = parse(
            "[[listener]]\naddress = \"0.0.0.0:25\"\n\
             [[listener]]\naddress = \"0.0.0.0:587\"\nmode = \"submission\"\n\
             [[listener]]\naddress = \"0.0.0.0:465\"\nmode = \"submissions\"\nmax_message_size = 10485760\n",
        );
        validate(&l).unwrap();
        assert_eq!((l[0].mode, l[0].offers_auth()), (ListenerMode::Mx, false));
        assert_eq!((l[1].mode, l[1].offers_auth()), (ListenerMode::Submission, true));
        assert!(l[2].mode.implicit_tls() && l[2].offers_auth());
        assert_eq!(l[2].max_message_size, Some(10_485_760));
    }

    #[test]
    fn contradictions_name_the_listener_and_the_fix() {
        let e = error("[[listener]]\naddress = \"127.0.0.1:587\"\nmode = \"submission\"\nstarttls = false\n");
        assert!(e.contains("127.0.0.1:587") && e.contains("submissions"), "{e}");
        let e = error("[[listener]]\naddress = \"127.0.0.1:465\"\nmode = \"submissions\"\nauth = false\n");
        assert!(e.contains("requires AUTH"), "{e}");
        let e = error("[[listener]]\naddress = \"127.0.0.1:25\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n");
        assert!(e.contains("twice"), "{e}");
        let e = error("[[listener]]\naddress = \"127.0.0.1:25\"\ntls_cert = \"/x.pem\"\n");
        assert!(e.contains("tls_key"), "{e}");
        assert!(toml::from_str::<ListenerConfig>("mode = \"smtps\"").is_err());
    }
}
