//! Turning a completed SMTP transaction into a spooled message: add the `Received:` trace
//! header (RFC 5321 §4.4), store durably through the group committer, and only then reply
//! `250` (ARCHITECTURE invariant 1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use homing_smtp::{
    Body, Cause, Protocol, ReceivedInfo, Reply, Ret, ReversePath, Transaction, received_header,
};
use homing_spool::{Committer, Envelope, MessageKind, NewMessage, RecipientRecord, Source, Spool};
use serde_json::json;
use tokio::sync::oneshot;

use crate::report::Reporter;
use crate::schedule::queue::RcptState;
use crate::schedule::runner::Runner;

pub struct Acceptor {
    pub hostname: String,
    pub spool: Spool,
    pub committer: Committer,
    pub runner: Arc<Runner>,
    pub reporter: Arc<Reporter>,
}

impl Acceptor {
    pub async fn accept(&self, tx: Transaction, peer: SocketAddr, helo: &str, tls: Option<&str>) -> Reply {
        let id = self.spool.new_id();
        let now = SystemTime::now();
        let single = (tx.recipients.len() == 1).then(|| tx.recipients[0].0.to_string());
        let header = received_header(&ReceivedInfo {
            helo: helo.to_string(),
            peer_ip: peer.ip(),
            peer_name: None,
            by: self.hostname.clone(),
            id: id.to_string(),
            // RFC 3848: ESMTPA/ESMTPSA when the client authenticated; the login itself is not
            // published in the header.
            protocol: Protocol::of_session(
                tx.esmtp,
                tls.is_some(),
                tx.auth.is_some(),
                tx.mail_params.smtputf8,
            ),
            tls: tls.map(str::to_string),
            for_rcpt: single,
            date: now,
        });
        let mut message_id = header_value(&tx.data, "message-id");
        let mut body = Vec::with_capacity(header.len() + tx.data.len() + 64);
        body.extend_from_slice(header.as_bytes());
        if message_id.is_none() {
            // RFC 5321 §6.4 lets a relay add a missing Message-ID; it makes the message traceable.
            let mid = format!("<{}@{}>", id, self.hostname);
            body.extend_from_slice(format!("Message-ID: {mid}\r\n").as_bytes());
            message_id = Some(mid);
        }
        body.extend_from_slice(&tx.data);
        let envelope = Envelope {
            received_at: now,
            return_path: match &tx.from {
                ReversePath::Null => String::new(),
                ReversePath::Address(a) => a.to_string(),
            },
            envid: tx.mail_params.envid.clone(),
            ret_full: tx.mail_params.ret.map(|r| r == Ret::Full),
            body_8bit: tx.mail_params.body == Body::EightBitMime,
            smtputf8: tx.mail_params.smtputf8,
            source: Source {
                peer_ip: peer.ip().to_string(),
                helo: helo.to_string(),
                tls: tls.map(str::to_string),
                auth: tx.auth.clone(),
            },
            recipients: tx
                .recipients
                .iter()
                .map(|(a, p)| RecipientRecord {
                    address: a.to_string(),
                    orcpt: p.orcpt.as_ref().map(|o| format!("{};{}", o.addr_type, o.addr)),
                    notify: crate::outcome::notify_bits(&p.notify),
                })
                .collect(),
            kind: MessageKind::Normal,
            message_id,
        };
        let size = body.len();
        let (done_tx, done_rx) = oneshot::channel();
        let msg = NewMessage { id: id.clone(), envelope: envelope.clone(), body };
        self.committer.submit(
            msg,
            Box::new(move |r| {
                let _ = done_tx.send(r);
            }),
        );
        match done_rx.await {
            Ok(Ok(_)) => {
                self.reporter.events.emit(
                    "received",
                    id.as_str(),
                    envelope.message_id.as_deref().unwrap_or(""),
                    json!({
                        "from": envelope.return_path,
                        "rcpts": envelope.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(),
                        "size": size,
                        "peer": peer.ip().to_string(),
                        "helo": helo,
                        "tls": tls,
                        "auth": envelope.source.auth,
                    }),
                );
                let rcpts = envelope.recipients.iter().map(|_| RcptState::pending()).collect();
                self.runner.enqueue(id.clone(), Arc::new(envelope), rcpts, None);
                Cause::Queued { id: id.to_string() }.reply()
            }
            Ok(Err(e)) => {
                tracing::error!(%peer, error = %e, "cannot spool a message; replied 452 4.3.1");
                if e.is_storage_full_or_unwritable() {
                    Cause::SpoolUnavailable { detail: e.to_string() }.reply()
                } else {
                    Cause::LocalError { detail: "the message could not be stored".into() }.reply()
                }
            }
            Err(_) => Cause::LocalError { detail: "the spool writer stopped".into() }.reply(),
        }
    }
}

/// The unfolded value of the first header field `name` (lowercase) in the header section.
pub fn header_value(data: &[u8], name: &str) -> Option<String> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2).unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..end]);
    let mut found: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut found {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((k, v)) = line.split_once(':')
                    && k.trim().eq_ignore_ascii_case(name)
                {
                    found = Some(v.trim().to_string());
                }
            }
        }
    }
    found.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::header_value;

    #[test]
    fn finds_folded_header_values() {
        let d = b"Subject: hi\r\nMessage-ID:\r\n <a@b>\r\nTo: x\r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(header_value(d, "message-id").as_deref(), Some("<a@b>"));
        assert_eq!(header_value(b"Subject: x\r\n\r\n", "message-id"), None);
    }
}
