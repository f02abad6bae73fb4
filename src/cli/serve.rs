//! `homing serve`: recover the spool, start the scheduler, open the user store and the
//! listeners, and reload certificates on SIGHUP or when their files change.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use homing_smtp::ServerConfig;
use homing_spool::{RecipientStatus, Spool, SpoolOptions};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::accounts::{self, Accounts};
use crate::config::{Config, ListenerConfig};
use crate::deliver::tls::ClientTls;
use crate::deliver::{Client, HostSlots};
use crate::policy::RelayPolicy;
use crate::receive::accept::Acceptor;
use crate::receive::tls::ListenerTls;
use crate::receive::{self, Context, Listener};
use crate::report::{EventLog, Reporter};
use crate::route::Router;
use crate::schedule::queue::{Queue, RcptState};
use crate::schedule::retry::RetryPolicy;
use crate::schedule::runner::Runner;
use crate::suppress::{self, SuppressionList};

pub fn run(config: Config) -> anyhow::Result<()> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(config))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOMING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or the journal gets plain `key=value` text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let options = SpoolOptions { recover_details: false, ..SpoolOptions::default() };
    let (spool, recovery) = Spool::open(&config.spool_dir, options)
        .with_context(|| format!("cannot open the spool at {}", config.spool_dir.display()))?;
    let events = EventLog::open(&config.event_log_path())?;
    let reporter = Reporter::new(events, config.hostname.clone(), config.queue.max_lifetime.get());
    for q in &recovery.quarantined {
        tracing::error!(path = %q.path.display(), reason = %q.reason, "corrupt spool entry moved to quarantine");
        reporter.events.emit(
            "quarantined",
            "",
            "",
            json!({ "path": q.path.display().to_string(), "reason": q.reason }),
        );
    }

    let suppression = if config.suppression.enabled {
        let options = suppress::Options {
            reload_interval: config.suppression.reload_interval.get(),
            ..suppress::Options::default()
        };
        let list = SuppressionList::open(&config.suppression_path(), options)?;
        tracing::info!(path = %list.path().display(), entries = list.entries()?.len(), "suppression list loaded");
        Some(Arc::new(list))
    } else {
        None
    };

    let own_addrs: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
    let router = Router::new(
        &config.dns.servers,
        config.dns.timeout.get(),
        config.dns.attempts,
        own_addrs,
        config.hostname.clone(),
        config.delivery.port,
    )?;
    let client = Client {
        host_slots: HostSlots::new(config.delivery.max_connections_per_host),
        helo: config.helo_name().to_string(),
        port: config.delivery.port,
        source: config.delivery.source_address,
        tls: if config.delivery.starttls { Some(Arc::new(ClientTls::new()?)) } else { None },
        connect_timeout: config.delivery.connect_timeout.get(),
        greeting_timeout: config.delivery.greeting_timeout.get(),
        command_timeout: config.delivery.command_timeout.get(),
        data_timeout: config.delivery.data_timeout.get(),
    };
    let policy = RetryPolicy {
        intervals: config.retry_intervals(),
        jitter: config.queue.retry_jitter,
        lifetime: config.queue.max_lifetime.get(),
        delay_warning: Some(config.queue.delay_warning.get()).filter(|d| !d.is_zero()),
    };
    let queue =
        Queue::new(policy, config.delivery.max_connections_per_domain, config.delivery.max_connections);
    let runner = Runner::new(
        queue,
        spool.clone(),
        reporter.clone(),
        router,
        client,
        config.delivery.max_messages_per_connection,
        suppression.clone(),
    )
    .context("cannot start the spool janitor thread")?;

    let recovered = recovery.messages.len();
    for m in recovery.messages {
        let states: Vec<RcptState> = m
            .recipients
            .iter()
            .map(|r| RcptState { status: r.status, attempts: r.attempts, delay_notified: r.delay_notified })
            .collect();
        let open: Vec<&homing_spool::RecipientState> = m
            .recipients
            .iter()
            .filter(|r| !matches!(r.status, RecipientStatus::Delivered | RecipientStatus::Failed))
            .collect();
        if open.is_empty() {
            // Every recipient was final before the crash; only the removal was lost.
            let _ = spool.remove(&m.id);
            continue;
        }
        // A recipient never tried (pending at the crash) is tried at once.
        let due = if open.iter().any(|r| r.next_attempt.is_none()) {
            None
        } else {
            open.iter().filter_map(|r| r.next_attempt).min()
        };
        runner.enqueue(m.id, Arc::new(m.envelope), states, due);
    }
    tracing::info!(
        recovered,
        quarantined = recovery.quarantined.len(),
        removed_tmp = recovery.removed_tmp,
        removed_spares = recovery.removed_spares,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "spool recovered"
    );

    let acceptor = Acceptor {
        hostname: config.hostname.clone(),
        committer: spool.committer(),
        spool: spool.clone(),
        runner: runner.clone(),
        reporter: reporter.clone(),
    };
    let accounts = Accounts::open(
        &config.accounts_path(),
        accounts::Options { reload_interval: config.accounts.reload_interval.get(), ..Default::default() },
    )?;
    let users = accounts.users()?.len();
    tracing::info!(path = %accounts.path().display(), users, "user store loaded");
    if users == 0 && config.listeners.iter().any(ListenerConfig::offers_auth) {
        tracing::warn!(
            path = %accounts.path().display(),
            "a listener offers AUTH but there are no users yet: every AUTH fails; add one with `homing user add`"
        );
    }
    let ctx = Arc::new(Context {
        policy: RelayPolicy::new(&config.relay.networks),
        accounts: Arc::new(accounts),
        verifications: Arc::new(Semaphore::new(config.accounts.max_parallel_verifications)),
        suppression,
        acceptor,
        command_timeout: config.smtp.command_timeout.get(),
        data_timeout: config.smtp.data_timeout.get(),
        sessions: Arc::new(Semaphore::new(config.smtp.max_sessions)),
        max_sessions: config.smtp.max_sessions,
    });

    // Caught from here on (the default action of SIGHUP would end the process).
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGHUP: certificates reload only when their files change");
            None
        }
    };
    let mut certificates = Vec::new();
    for l in &config.listeners {
        let socket = TcpListener::bind(l.address).await.with_context(|| {
            format!("cannot listen on {} (in use, or needs root for ports below 1024?)", l.address)
        })?;
        let listener = Arc::new(listener(&config, l)?);
        if let Some(t) = &listener.tls {
            certificates.push(t.clone());
        }
        tracing::info!(
            address = %l.address,
            mode = ?l.mode,
            starttls = listener.smtp.starttls,
            implicit_tls = listener.smtp.implicit_tls,
            auth = listener.smtp.auth,
            "listening for SMTP"
        );
        tokio::spawn(receive::serve(ctx.clone(), listener, socket));
    }
    tokio::spawn(reload_certificates(certificates, hup, config.tls.reload_interval.get()));
    tokio::spawn(runner.clone().run());
    tracing::info!(hostname = %config.hostname, spool = %config.spool_dir.display(), "homing is running");

    shutdown_signal().await;
    tracing::info!(queued = runner.queued_messages(), "shutting down; queued mail stays in the spool");
    Ok(())
}

/// One listener's session options and certificate.
fn listener(config: &Config, l: &ListenerConfig) -> anyhow::Result<Listener> {
    let smtp = ServerConfig {
        hostname: config.hostname.clone(),
        max_line_length: config.smtp.max_line_length,
        max_recipients: l.max_recipients.unwrap_or(config.smtp.max_recipients),
        max_message_size: l.max_message_size.unwrap_or(config.smtp.max_message_size),
        max_bad_commands: config.smtp.max_bad_commands,
        max_commands: config.smtp.max_commands,
        max_received_headers: config.smtp.max_received_headers,
        starttls: l.starttls && !l.mode.implicit_tls(),
        implicit_tls: l.mode.implicit_tls(),
        auth: l.offers_auth(),
        require_auth: l.mode.requires_auth(),
        ..ServerConfig::default()
    };
    let label = l.address.to_string();
    let tls = if l.tls() {
        let t = ListenerTls::new(&label, l.tls_cert.as_deref(), l.tls_key.as_deref(), &config.hostname)
            .with_context(|| format!("[[listener]] address = \"{}\": TLS certificate", l.address))?;
        Some(Arc::new(t))
    } else {
        None
    };
    let sessions = l.max_sessions.map(|n| (Arc::new(Semaphore::new(n)), n));
    Ok(Listener { label, mode: l.mode, smtp, tls, sessions })
}

/// Reloads changed certificates every `interval` (never when zero) and all of them on
/// SIGHUP, off the reactor; each listener keeps its old pair when the new one is bad.
async fn reload_certificates(
    certificates: Vec<Arc<ListenerTls>>,
    mut hup: Option<tokio::signal::unix::Signal>,
    interval: std::time::Duration,
) {
    loop {
        let force = tokio::select! {
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            () = tokio::time::sleep(interval), if !interval.is_zero() => false,
        };
        if force {
            tracing::info!(listeners = certificates.len(), "SIGHUP: reloading TLS certificates");
        }
        let certs = certificates.clone();
        let done = tokio::task::spawn_blocking(move || {
            for c in &certs {
                c.reload_logged(force);
            }
        });
        let _ = done.await;
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
