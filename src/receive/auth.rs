//! Checking AUTH credentials (RFC 4954) for the session: argon2 runs on the blocking pool,
//! never on the async reactor, at most `accounts.max_parallel_verifications` at once.
//! Failures are logged with the peer and the login tried, never the password.

use std::net::SocketAddr;

use homing_smtp::{Cause, Mechanism, Password, Reply};

use super::Context;
use crate::accounts::Verdict;

/// The stored login when the credentials are right; otherwise the reply that refuses them.
pub async fn check(
    ctx: &Context,
    peer: SocketAddr,
    listener: &str,
    mechanism: Mechanism,
    login: String,
    password: Password,
) -> Result<String, Reply> {
    let temporary = |detail: &str| Cause::AuthTemporaryFailure { detail: detail.into() }.reply();
    let Ok(_permit) = ctx.verifications.acquire().await else {
        return Err(temporary("the server is stopping"));
    };
    let accounts = ctx.accounts.clone();
    let tried = login.clone();
    let verdict = tokio::task::spawn_blocking(move || accounts.verify(&tried, password.expose())).await;
    // The login is client input: Debug quotes and escapes it, and it is cut short.
    let shown: String = login.chars().take(64).collect();
    match verdict {
        Ok(Verdict::Accepted(user)) => {
            tracing::info!(%peer, listener, login = %user, %mechanism, "authenticated");
            Ok(user)
        }
        Ok(Verdict::Rejected) => {
            tracing::warn!(%peer, listener, login = ?shown, %mechanism, "authentication failed: credentials rejected");
            Err(Cause::AuthFailed.reply())
        }
        Err(e) => {
            tracing::error!(%peer, listener, error = %e, "password check did not complete");
            Err(temporary("the password check failed"))
        }
    }
}
