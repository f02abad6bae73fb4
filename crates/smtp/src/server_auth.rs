//! AUTH in the server session (RFC 4954 §4): the command's restrictions and the SASL
//! exchange of PLAIN (RFC 4616) and LOGIN. The credentials that come out of it go to the glue
//! as `Action::Authenticate`; the session keeps only the login of a successful one.

use std::mem;

use super::{Action, Owed, ServerSession, State};
use crate::cause::Cause;
use crate::sasl::{self, Mechanism};

/// Where a SASL exchange stands (RFC 4954 §4): the next line is a base64 response.
#[derive(Debug)]
pub(super) enum Sasl {
    /// `334 ` was sent; the PLAIN message comes next.
    Plain,
    /// `334 VXNlcm5hbWU6` ("Username:") was sent.
    LoginUser,
    /// `334 UGFzc3dvcmQ6` ("Password:") was sent.
    LoginPassword(String),
}

impl ServerSession {
    /// The answer to `Authenticate` when the credentials are right: replies `235 2.7.0` and
    /// records `login` (the user store's spelling of it, which may differ from what the
    /// client typed) as the session's authenticated user.
    pub fn accept_auth(&mut self, login: String) {
        if !matches!(self.state, State::Owed(Owed::Auth(_))) {
            return;
        }
        self.state = State::Command;
        self.authenticated = Some(login);
        self.reply(Cause::AuthSucceeded);
    }

    /// RFC 4954 §4: AUTH, in the order of its restrictions. TLS comes before anything about
    /// the mechanism, so nothing of the exchange happens in plaintext.
    pub(super) fn auth(&mut self, mechanism: &str, initial: Option<&str>) -> Option<Action> {
        if !self.config.auth {
            self.bad(Cause::AuthNotAvailable);
        } else if !self.tls {
            self.bad(Cause::AuthNeedsTls);
        } else if !self.esmtp {
            let detail = "send EHLO first (AUTH is an ESMTP extension)".to_string();
            self.bad(Cause::BadSequence { detail });
        } else if self.authenticated.is_some() {
            self.bad(Cause::AlreadyAuthenticated);
        } else if self.envelope.is_some() {
            self.bad(Cause::AuthInTransaction);
        } else {
            let Some(mechanism) = Mechanism::from_name(mechanism) else {
                self.bad(Cause::AuthMechanismUnknown { name: mechanism.to_string() });
                return None;
            };
            let step = match mechanism {
                Mechanism::Plain => Sasl::Plain,
                Mechanism::Login => Sasl::LoginUser,
            };
            match initial {
                // RFC 4954 §4: `=` is the empty initial response.
                Some(r) => return self.sasl_step(step, if r == "=" { "" } else { r }),
                None => self.challenge(step),
            }
        }
        None
    }

    /// Sends the challenge that asks for the response `step` expects.
    fn challenge(&mut self, step: Sasl) {
        let challenge = match step {
            Sasl::Plain => String::new(),
            Sasl::LoginUser => sasl::encode_base64(b"Username:"),
            Sasl::LoginPassword(_) => sasl::encode_base64(b"Password:"),
        };
        self.reply(Cause::AuthChallenge { challenge });
        self.state = State::Sasl(step);
    }

    /// A line read during a SASL exchange.
    pub(super) fn sasl_line(&mut self, line: &[u8]) -> Option<Action> {
        self.commands = self.commands.saturating_add(1);
        let State::Sasl(step) = mem::replace(&mut self.state, State::Command) else {
            return None;
        };
        if line == b"*" {
            self.reply(Cause::AuthCancelled);
            return None;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return self.sasl_malformed(sasl::SaslError::Base64);
        };
        self.sasl_step(step, text)
    }

    /// Decodes one base64 response for `step`: asks for the next one, or hands the
    /// credentials to the glue.
    fn sasl_step(&mut self, step: Sasl, response: &str) -> Option<Action> {
        let bytes = match sasl::decode_base64(response) {
            Ok(b) => b,
            Err(e) => return self.sasl_malformed(e),
        };
        let (mechanism, login, password) = match step {
            Sasl::Plain => match sasl::parse_plain(&bytes) {
                // RFC 4616 §2: an authzid equal to the user's own login is no proxying.
                Ok(p) if p.authzid.as_ref().is_some_and(|z| !z.eq_ignore_ascii_case(&p.login)) => {
                    self.bad(Cause::AuthzidRefused);
                    return None;
                }
                Ok(p) => (Mechanism::Plain, p.login, p.password),
                Err(e) => return self.sasl_malformed(e),
            },
            Sasl::LoginUser => match sasl::parse_login_user(&bytes) {
                Ok(user) => {
                    self.challenge(Sasl::LoginPassword(user));
                    return None;
                }
                Err(e) => return self.sasl_malformed(e),
            },
            Sasl::LoginPassword(login) => match sasl::parse_login_password(&bytes) {
                Ok(password) => (Mechanism::Login, login, password),
                Err(e) => return self.sasl_malformed(e),
            },
        };
        self.state = State::Owed(Owed::Auth(login.clone()));
        Some(Action::Authenticate { mechanism, login, password })
    }

    /// RFC 4954 §4: an undecodable response fails the AUTH command with `501 5.5.2`.
    fn sasl_malformed(&mut self, e: sasl::SaslError) -> Option<Action> {
        self.bad(Cause::AuthMalformed { detail: e.to_string() });
        None
    }
}
