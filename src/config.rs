//! homing's configuration: one TOML file, every field optional, every default documented.
//!
//! `homing serve` without `--config` runs on [`Config::default`]; a file overrides any subset.
//! Unknown keys are errors (a typo must not silently fall back to a default).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

mod listener;
pub use listener::{ListenerConfig, ListenerMode};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The name homing uses in its greeting, EHLO, `Received:` headers and DSNs. Default: the
    /// machine's host name.
    pub hostname: String,
    /// Where messages are stored (created if missing). Default: `homing-spool` in the working
    /// directory.
    pub spool_dir: PathBuf,
    /// The JSON-lines event log. Relative paths are inside `spool_dir`. Default `events.jsonl`.
    pub event_log: PathBuf,
    /// Listening sockets. Default: one SMTP listener on 127.0.0.1:2525.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    pub smtp: SmtpLimits,
    pub relay: RelayConfig,
    pub dns: DnsConfig,
    pub delivery: DeliveryConfig,
    pub queue: QueueConfig,
    pub suppression: SuppressionConfig,
    pub accounts: AccountsConfig,
    pub tls: TlsConfig,
}

/// Limits on what an SMTP client may send (RFC 5321 §4.5.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpLimits {
    /// Longest command line accepted, in bytes (RFC 5321 §4.5.3.1.4 requires at least 512).
    pub max_line_length: usize,
    /// Recipients per message; past it RCPT gets `452 4.5.3` (RFC 5321 §4.5.3.1.8).
    pub max_recipients: usize,
    /// Largest message accepted, in bytes (advertised with SIZE, RFC 1870): `552 5.3.4` past it.
    pub max_message_size: u64,
    /// Bad commands (syntax errors, wrong order) before homing says `421` and disconnects.
    pub max_bad_commands: u32,
    /// Commands in one session before homing says `421` and disconnects.
    pub max_commands: u32,
    /// `Received:` headers beyond which a message is refused as looping (`554 5.4.6`).
    pub max_received_headers: usize,
    /// How long homing waits for the next command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub command_timeout: HumanDuration,
    /// How long homing waits for more message data during DATA (RFC 5321 §4.5.3.2.7).
    pub data_timeout: HumanDuration,
    /// Most concurrent SMTP sessions; further connections get `421 4.3.2` and are closed.
    pub max_sessions: usize,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        Self {
            max_line_length: 2048,
            max_recipients: 1000,
            max_message_size: 26_214_400,
            max_bad_commands: 20,
            max_commands: 10_000,
            max_received_headers: 50,
            command_timeout: HumanDuration::from_secs(300),
            data_timeout: HumanDuration::from_secs(600),
            max_sessions: 1000,
        }
    }
}

/// Who may send mail through homing to other domains. Everyone else is refused with
/// `554 5.7.1`: homing is never an open relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Client networks (CIDR) allowed to relay. Default: loopback only.
    pub networks: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { networks: vec!["127.0.0.0/8".into(), "::1/128".into()] }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers to ask (`"127.0.0.1:53"`); empty means the system's `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
    /// Time allowed for one DNS query before it counts as a temporary failure.
    pub timeout: HumanDuration,
    /// Tries per query.
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self { servers: Vec::new(), timeout: HumanDuration::from_secs(5), attempts: 2 }
    }
}

/// Outbound SMTP (RFC 5321 §4.5.3.2 timeouts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Port of remote MX hosts. Always 25 on the internet; tests use others.
    pub port: u16,
    /// Name sent in EHLO/HELO. Default: `hostname`.
    pub helo_name: Option<String>,
    /// Source address for outgoing connections. Default: chosen by the kernel.
    pub source_address: Option<IpAddr>,
    /// Concurrent connections to one destination domain.
    pub max_connections_per_domain: usize,
    /// Concurrent connections to one MX host address, whatever the domain.
    pub max_connections_per_host: usize,
    /// Concurrent connections in total.
    pub max_connections: usize,
    /// Messages sent over one connection before it is closed and a new one opened.
    pub max_messages_per_connection: usize,
    /// Use STARTTLS when the server offers it (certificates are checked and the result
    /// recorded, but an invalid one does not stop delivery: opportunistic TLS, RFC 3207 §4.1).
    pub starttls: bool,
    pub connect_timeout: HumanDuration,
    /// Initial 220 greeting (RFC 5321 §4.5.3.2.1: 5 minutes).
    pub greeting_timeout: HumanDuration,
    /// MAIL, RCPT and other commands (RFC 5321 §4.5.3.2.2-3: 5 minutes).
    pub command_timeout: HumanDuration,
    /// The reply to the final dot (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub data_timeout: HumanDuration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            port: 25,
            helo_name: None,
            source_address: None,
            max_connections_per_domain: 20,
            max_connections_per_host: 20,
            max_connections: 200,
            max_messages_per_connection: 100,
            starttls: true,
            connect_timeout: HumanDuration::from_secs(30),
            greeting_timeout: HumanDuration::from_secs(300),
            command_timeout: HumanDuration::from_secs(300),
            data_timeout: HumanDuration::from_secs(600),
        }
    }
}

/// Retry, expiry and delay warnings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Waits between attempts; the last one repeats. Like Postfix: minutes growing to hours.
    pub retry_intervals: Vec<HumanDuration>,
    /// Each wait is varied by up to this fraction either way so retries do not stampede.
    pub retry_jitter: f64,
    /// How long homing keeps trying before it gives up and bounces (RFC 5321 §4.5.4.1
    /// suggests at least 4-5 days).
    pub max_lifetime: HumanDuration,
    /// After this long undelivered, the sender gets a delay warning DSN (once; not with
    /// NOTIFY=NEVER or without DELAY). `0s` turns warnings off.
    pub delay_warning: HumanDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry_intervals: ["5m", "10m", "20m", "40m", "1h20m", "2h40m", "4h"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            retry_jitter: 0.2,
            max_lifetime: HumanDuration::from_secs(5 * 86_400),
            delay_warning: HumanDuration::from_secs(4 * 3600),
        }
    }
}

/// The suppression list (docs/suppression.md): recipients whose address is dead or who
/// complained; relaying clients get `550` at RCPT for them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuppressionConfig {
    /// Add dead addresses after a final hard failure, and refuse listed recipients at RCPT.
    /// `homing suppress` works on the file either way.
    pub enabled: bool,
    /// The list's file. Relative paths are inside `spool_dir`. Default `suppression.jsonl`.
    pub path: PathBuf,
    /// How often, at most, a running server checks the file for changes made by
    /// `homing suppress` (a stat per interval, a reload only when it changed).
    pub reload_interval: HumanDuration,
}

impl Default for SuppressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::from("suppression.jsonl"),
            reload_interval: HumanDuration::from_secs(1),
        }
    }
}

/// The user store (docs/submission.md): who may authenticate, and which addresses each user
/// owns. Managed with `homing user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// The users file. Relative paths are inside `spool_dir`. Default `users.toml`.
    pub path: PathBuf,
    /// How often, at most, a running server checks the file for changes made by
    /// `homing user` (a stat per interval, a reload only when it changed).
    pub reload_interval: HumanDuration,
    /// Password checks (argon2id, 19 MiB of memory each) running at once; further AUTH
    /// commands wait their turn. Bounds the memory and CPU a burst of logins can take.
    pub max_parallel_verifications: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("users.toml"),
            reload_interval: HumanDuration::from_secs(1),
            max_parallel_verifications: 4,
        }
    }
}

/// Certificates of the listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// How often homing checks whether a listener's `tls_cert` or `tls_key` file changed and
    /// loads the new pair for new connections; `0s` checks only on SIGHUP. A pair that does
    /// not load is logged and the old one kept.
    pub reload_interval: HumanDuration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { reload_interval: HumanDuration::from_secs(60) }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: system_hostname(),
            spool_dir: PathBuf::from("homing-spool"),
            event_log: PathBuf::from("events.jsonl"),
            listeners: vec![ListenerConfig::default()],
            smtp: SmtpLimits::default(),
            relay: RelayConfig::default(),
            dns: DnsConfig::default(),
            delivery: DeliveryConfig::default(),
            queue: QueueConfig::default(),
            suppression: SuppressionConfig::default(),
            accounts: AccountsConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        config.validate().with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    /// Checks values serde cannot: each error names the field, the value and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            bail!("hostname = {:?}: set a fully qualified host name like \"mx.example.com\"", self.hostname);
        }
        listener::validate(&self.listeners)?;
        if self.smtp.max_line_length < 512 {
            bail!(
                "smtp.max_line_length = {}: RFC 5321 §4.5.3.1.4 needs at least 512",
                self.smtp.max_line_length
            );
        }
        if self.smtp.max_recipients < 1 {
            bail!("smtp.max_recipients = 0: RFC 5321 §4.5.3.1.8 needs at least 100 (1 for tests)");
        }
        if self.smtp.command_timeout.get().is_zero() || self.smtp.data_timeout.get().is_zero() {
            bail!("smtp.command_timeout and smtp.data_timeout must be longer than 0s");
        }
        for n in &self.relay.networks {
            crate::policy::Cidr::parse(n)
                .with_context(|| format!("relay.networks: {n:?} is not a network like \"192.0.2.0/24\""))?;
        }
        if self.delivery.max_connections_per_domain == 0
            || self.delivery.max_connections_per_host == 0
            || self.delivery.max_connections == 0
        {
            bail!(
                "delivery.max_connections, max_connections_per_domain and max_connections_per_host must be at least 1"
            );
        }
        if self.delivery.max_messages_per_connection == 0 {
            bail!("delivery.max_messages_per_connection must be at least 1");
        }
        if self.queue.retry_intervals.is_empty() {
            bail!("queue.retry_intervals is empty: give at least one wait, e.g. [\"5m\", \"1h\"]");
        }
        const WEEK: Duration = Duration::from_secs(7 * 86_400);
        for d in &self.queue.retry_intervals {
            if d.get() < Duration::from_secs(1) || d.get() > WEEK {
                bail!("queue.retry_intervals: {d} is out of range: use waits between 1s and 7d");
            }
        }
        if !(0.0..=0.5).contains(&self.queue.retry_jitter) {
            bail!("queue.retry_jitter = {}: use a fraction between 0 and 0.5", self.queue.retry_jitter);
        }
        if self.queue.max_lifetime.get().is_zero() || self.queue.max_lifetime.get() > 10 * WEEK {
            bail!(
                "queue.max_lifetime = {}: use a time between 1s and 70d (default 5d)",
                self.queue.max_lifetime
            );
        }
        if self.queue.delay_warning.get() > 10 * WEEK {
            bail!(
                "queue.delay_warning = {}: use at most 70d, or 0s for no warnings",
                self.queue.delay_warning
            );
        }
        if self.suppression.path.as_os_str().is_empty() || self.suppression.path.ends_with("..") {
            bail!(
                "suppression.path = {:?}: name a file, e.g. \"suppression.jsonl\" (inside spool_dir) or an absolute path",
                self.suppression.path
            );
        }
        if self.suppression.reload_interval.get() > Duration::from_secs(3600) {
            bail!(
                "suppression.reload_interval = {}: use at most 1h so `homing suppress` changes take effect",
                self.suppression.reload_interval
            );
        }
        if self.accounts.path.as_os_str().is_empty() || self.accounts.path.ends_with("..") {
            bail!(
                "accounts.path = {:?}: name a file, e.g. \"users.toml\" (inside spool_dir) or \"/etc/homing/users.toml\"",
                self.accounts.path
            );
        }
        if self.accounts.reload_interval.get() > Duration::from_secs(3600) {
            bail!(
                "accounts.reload_interval = {}: use at most 1h so `homing user` changes take effect",
                self.accounts.reload_interval
            );
        }
        if !(1..=256).contains(&self.accounts.max_parallel_verifications) {
            bail!(
                "accounts.max_parallel_verifications = {}: use 1 to 256 (each check takes 19 MiB; default 4)",
                self.accounts.max_parallel_verifications
            );
        }
        Ok(())
    }

    /// The configuration as it takes effect: per-listener settings left to their defaults
    /// (`auth`, the limits) are filled in, so `homing config show` shows every value.
    pub fn effective(&self) -> Config {
        let mut c = self.clone();
        for l in &mut c.listeners {
            l.auth = Some(l.offers_auth());
            l.max_sessions = Some(l.max_sessions.unwrap_or(self.smtp.max_sessions));
            l.max_message_size = Some(l.max_message_size.unwrap_or(self.smtp.max_message_size));
            l.max_recipients = Some(l.max_recipients.unwrap_or(self.smtp.max_recipients));
        }
        c
    }

    /// The user store's path, relative paths taken inside the spool directory.
    pub fn accounts_path(&self) -> PathBuf {
        if self.accounts.path.is_absolute() {
            self.accounts.path.clone()
        } else {
            self.spool_dir.join(&self.accounts.path)
        }
    }

    /// The suppression list's path, relative paths taken inside the spool directory.
    pub fn suppression_path(&self) -> PathBuf {
        if self.suppression.path.is_absolute() {
            self.suppression.path.clone()
        } else {
            self.spool_dir.join(&self.suppression.path)
        }
    }

    /// The event log's path, relative paths taken inside the spool directory.
    pub fn event_log_path(&self) -> PathBuf {
        if self.event_log.is_absolute() {
            self.event_log.clone()
        } else {
            self.spool_dir.join(&self.event_log)
        }
    }

    pub fn helo_name(&self) -> &str {
        self.delivery.helo_name.as_deref().unwrap_or(&self.hostname)
    }

    pub fn retry_intervals(&self) -> Vec<Duration> {
        self.queue.retry_intervals.iter().map(|d| d.get()).collect()
    }
}

/// The kernel's host name, or `localhost` when it cannot be read.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.queue.max_lifetime.get(), Duration::from_secs(5 * 86_400));
        assert_eq!(back.retry_intervals()[0], Duration::from_secs(300));
    }

    #[test]
    fn a_file_overrides_a_subset() {
        let c: Config = toml::from_str(
            "hostname = \"mx.test\"\n[queue]\nmax_lifetime = \"2h\"\n[[listener]]\naddress = \"127.0.0.5:25\"\n",
        )
        .unwrap();
        assert_eq!(c.hostname, "mx.test");
        assert_eq!(c.queue.max_lifetime.get(), Duration::from_secs(7200));
        assert_eq!(c.listeners[0].address.port(), 25);
        assert_eq!(c.smtp.max_recipients, 1000);
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(toml::from_str::<Config>("hostnme = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[queue]\nmax_lifetime = \"5 parsecs\"").is_err());
        let c: Config = toml::from_str("[relay]\nnetworks = [\"10.0.0.0/33\"]").unwrap();
        let e = format!("{:#}", c.validate().unwrap_err());
        assert!(e.contains("relay.networks"), "{e}");
        let c: Config = toml::from_str("[suppression]\npath = \"\"").unwrap();
        let e = format!("{:#}", c.validate().unwrap_err());
        assert!(e.contains("suppression.path"), "{e}");
    }

    #[test]
    fn the_suppression_list_lives_in_the_spool_by_default() {
        let c: Config = toml::from_str("spool_dir = \"/var/spool/homing\"").unwrap();
        assert!(c.suppression.enabled);
        assert_eq!(c.suppression_path(), Path::new("/var/spool/homing/suppression.jsonl"));
        let c: Config = toml::from_str("[suppression]\npath = \"/etc/homing/suppressed.jsonl\"").unwrap();
        assert_eq!(c.suppression_path(), Path::new("/etc/homing/suppressed.jsonl"));
    }
}
