//! What the scripted receiver answers: a well-behaved ESMTP server unless told otherwise.

use std::fmt;
use std::sync::Arc;

/// Decides the reply to one `RCPT TO`, given the address inside `<>`;
/// `None` keeps the default `250 2.1.5 Ok`.
pub type RcptRule = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The receiver's behaviour. Replies are full reply strings with their code;
/// lines separated by `\n` are sent as one multi-line reply (`250-…`/`250 …`).
///
/// ```
/// use homing_testkit::smtp::Script;
/// let script = Script::default()
///     .rcpt(|addr| (addr == "nobody@rx.test").then(|| "550 5.1.1 User unknown".to_owned()))
///     .data_replies(["451 4.3.0 Try again later"]);
/// assert_eq!(script.data_replies.len(), 1);
/// ```
#[derive(Clone)]
pub struct Script {
    /// Named in the greeting and the EHLO reply.
    pub hostname: String,
    /// Replaces the `220` greeting. A greeting that is not 2xx (e.g. `421 4.7.0 Try again
    /// later`) is sent and the connection closed at once.
    pub greeting: Option<String>,
    /// EHLO keywords after the hostname line.
    pub ehlo_extensions: Vec<String>,
    /// Answer EHLO with `502`, so the client must fall back to HELO (RFC 5321 §4.1.4).
    pub reject_ehlo: bool,
    /// Per-recipient reply override.
    pub rcpt: Option<RcptRule>,
    /// Replies to the final dot of the 1st, 2nd, … DATA across all connections, in
    /// order; past the end, `250 2.0.0 Ok: queued`.
    pub data_replies: Vec<String>,
    /// Replaces the reply to every `MAIL FROM`; a transaction starts only if it is 2xx.
    pub mail_reply: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            hostname: "rx.test".to_owned(),
            greeting: None,
            ehlo_extensions: [
                "PIPELINING",
                "8BITMIME",
                "SIZE 52428800",
                "ENHANCEDSTATUSCODES",
                "SMTPUTF8",
                "DSN",
            ]
            .map(str::to_owned)
            .to_vec(),
            reject_ehlo: false,
            rcpt: None,
            data_replies: Vec::new(),
            mail_reply: None,
        }
    }
}

impl Script {
    /// Sets [`Script::hostname`].
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Sets [`Script::greeting`].
    pub fn greeting(mut self, reply: impl Into<String>) -> Self {
        self.greeting = Some(reply.into());
        self
    }

    /// Sets [`Script::ehlo_extensions`].
    pub fn ehlo_extensions<I, S>(mut self, extensions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ehlo_extensions = extensions.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`Script::reject_ehlo`].
    pub fn reject_ehlo(mut self) -> Self {
        self.reject_ehlo = true;
        self
    }

    /// Sets [`Script::rcpt`].
    pub fn rcpt<F>(mut self, rule: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.rcpt = Some(Arc::new(rule));
        self
    }

    /// Sets [`Script::data_replies`].
    pub fn data_replies<I, S>(mut self, replies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.data_replies = replies.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`Script::mail_reply`].
    pub fn mail_reply(mut self, reply: impl Into<String>) -> Self {
        self.mail_reply = Some(reply.into());
        self
    }

    /// The largest message accepted: the advertised `SIZE`, else [`DEFAULT_MAX_MESSAGE`].
    pub(crate) fn max_message_size(&self) -> usize {
        self.ehlo_extensions
            .iter()
            .find_map(|ext| {
                let (keyword, value) = ext.split_once(' ')?;
                keyword.eq_ignore_ascii_case("SIZE").then(|| value.trim().parse::<usize>().ok())?
            })
            .filter(|&size| size > 0)
            .unwrap_or(DEFAULT_MAX_MESSAGE)
    }
}

/// Cap on one message when no `SIZE` is advertised, so a runaway client cannot exhaust memory.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("hostname", &self.hostname)
            .field("greeting", &self.greeting)
            .field("ehlo_extensions", &self.ehlo_extensions)
            .field("reject_ehlo", &self.reject_ehlo)
            .field("rcpt", &self.rcpt.as_ref().map(|_| "<rule>"))
            .field("data_replies", &self.data_replies)
            .field("mail_reply", &self.mail_reply)
            .finish()
    }
}
