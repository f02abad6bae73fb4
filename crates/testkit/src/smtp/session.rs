//! One SMTP session (RFC 5321 §4.1), as a small state machine over a TCP stream.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::wire::{Line, is_positive, read_line, wire_lines};
use super::{Received, Shared};

/// Longest command line accepted. LENIENT: RFC 5321 §4.5.3.1.4 says 512 octets;
/// MAIL and RCPT with several ESMTP parameters can be longer in the wild.
const MAX_COMMAND_LINE: usize = 4096;

/// Longest message line accepted. LENIENT: RFC 5321 §4.5.3.1.6 says 1000 octets.
const MAX_TEXT_LINE: usize = 64 * 1024;

/// Runs one session to its end; I/O errors just end it.
pub(crate) async fn run(stream: TcpStream, id: usize, shared: Arc<Shared>) {
    let (read, write) = stream.into_split();
    let mut session = Session {
        id,
        shared,
        reader: BufReader::new(read),
        writer: BufWriter::new(write),
        helo: None,
        transaction: None,
    };
    // The peer hanging up mid-session is an ordinary end for a test receiver.
    let _ = session.serve().await;
}

struct Session {
    id: usize,
    shared: Arc<Shared>,
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    helo: Option<String>,
    transaction: Option<Transaction>,
}

#[derive(Default)]
struct Transaction {
    mail_from: String,
    mail_params: String,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<String>,
}

/// What to do after a command.
enum Next {
    Reply(String),
    ReplyAndClose(String),
    ReadData,
}

impl Session {
    async fn serve(&mut self) -> io::Result<()> {
        let script = &self.shared.script;
        let greeting = script
            .greeting
            .clone()
            .unwrap_or_else(|| format!("220 {} ESMTP homing-testkit", script.hostname));
        let close = !is_positive(&greeting);
        self.reply(&greeting).await?;
        self.writer.flush().await?;
        if close {
            return self.writer.shutdown().await;
        }

        let mut line = Vec::new();
        loop {
            // Flush only when no whole command is waiting, so that replies to a
            // pipelined group go out together (RFC 2920 §3.1), as real servers do.
            if !self.reader.buffer().contains(&b'\n') {
                self.writer.flush().await?;
            }
            let next = match read_line(&mut self.reader, MAX_COMMAND_LINE, &mut line).await? {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    self.note_client(&line);
                    Next::Reply("500 5.5.2 Error: line too long".to_owned())
                }
                Line::Complete => {
                    self.note_client(&line);
                    let text = String::from_utf8_lossy(&line);
                    self.command(text.trim_end_matches(['\r', '\n']))
                }
            };
            match next {
                Next::Reply(reply) => self.reply(&reply).await?,
                Next::ReplyAndClose(reply) => {
                    self.reply(&reply).await?;
                    self.writer.flush().await?;
                    return self.writer.shutdown().await;
                }
                Next::ReadData => {
                    self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                    self.writer.flush().await?;
                    let reply = self.data().await?;
                    self.reply(&reply).await?;
                }
            }
        }
    }

    fn command(&mut self, line: &str) -> Next {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        let shared = Arc::clone(&self.shared);
        let script = &shared.script;
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" if script.reject_ehlo => "502 5.5.2 Error: command not recognized".to_owned(),
            "EHLO" | "HELO" if arg.is_empty() => format!("501 5.5.4 Syntax: {verb} hostname"),
            "EHLO" => {
                self.greet(arg);
                (script.ehlo_extensions.iter())
                    .fold(format!("250 {}", script.hostname), |reply, ext| reply + "\n" + ext)
            }
            "HELO" => {
                self.greet(arg);
                format!("250 {}", script.hostname)
            }
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => match &self.transaction {
                None => "503 5.5.1 Error: need MAIL command".to_owned(),
                Some(t) if t.rcpt_to.is_empty() => "554 5.5.1 Error: no valid recipients".to_owned(),
                Some(_) => return Next::ReadData,
            },
            "RSET" => {
                self.transaction = None;
                "250 2.0.0 Ok".to_owned()
            }
            "NOOP" => "250 2.0.0 Ok".to_owned(),
            "QUIT" => return Next::ReplyAndClose("221 2.0.0 Bye".to_owned()),
            _ => "502 5.5.2 Error: command not recognized".to_owned(),
        };
        Next::Reply(reply)
    }

    /// EHLO and HELO start over (RFC 5321 §4.1.4).
    fn greet(&mut self, name: &str) {
        self.helo = Some(name.to_owned());
        self.transaction = None;
    }

    fn mail(&mut self, arg: &str) -> String {
        if self.helo.is_none() {
            return "503 5.5.1 Error: send HELO/EHLO first".to_owned();
        }
        if self.transaction.is_some() {
            return "503 5.5.1 Error: nested MAIL command".to_owned();
        }
        let Some((path, params)) = path_arg(arg, "FROM:") else {
            return "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned();
        };
        let reply = (self.shared.script.mail_reply.clone()).unwrap_or_else(|| "250 2.1.0 Ok".to_owned());
        if is_positive(&reply) {
            self.transaction = Some(Transaction {
                mail_from: path.to_owned(),
                mail_params: params.to_owned(),
                ..Transaction::default()
            });
        }
        reply
    }

    fn rcpt(&mut self, arg: &str) -> String {
        let Some(transaction) = &mut self.transaction else {
            return "503 5.5.1 Error: need MAIL command".to_owned();
        };
        let Some((path, params)) = path_arg(arg, "TO:") else {
            return "501 5.5.4 Syntax: RCPT TO:<address>".to_owned();
        };
        let rule = self.shared.script.rcpt.as_ref();
        let reply = rule.and_then(|rule| rule(path)).unwrap_or_else(|| "250 2.1.5 Ok".to_owned());
        if is_positive(&reply) {
            transaction.rcpt_to.push(path.to_owned());
            transaction.rcpt_params.push(params.to_owned());
        }
        reply
    }

    /// Reads the message up to the lone dot (RFC 5321 §4.1.1.4), undoes dot-stuffing
    /// (§4.5.2), records the transaction and returns the reply to the dot.
    async fn data(&mut self) -> io::Result<String> {
        let max_size = self.shared.script.max_message_size();
        let mut data = Vec::new();
        let mut line = Vec::new();
        let (mut too_long, mut too_big) = (false, false);
        loop {
            match read_line(&mut self.reader, MAX_TEXT_LINE, &mut line).await? {
                Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                Line::TooLong => too_long = true,
                Line::Complete => {}
            }
            // LENIENT: ".\n" ends the data too (RFC 5321 §4.1.1.4 wants CRLF); a test
            // can still catch a client sending bare LF, since data keeps line ends as received.
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + unstuffed.len() > max_size {
                too_big = true;
            } else {
                data.extend_from_slice(unstuffed);
            }
        }
        self.note(format!("C: <{} bytes of message data>", data.len()));
        self.note("C: .".to_owned());

        let reply = if too_long {
            "500 5.5.0 Error: message line too long".to_owned()
        } else if too_big {
            "552 5.3.4 Error: message file too big".to_owned()
        } else {
            self.shared.next_data_reply()
        };
        let accepted = is_positive(&reply);
        let t = self.transaction.take().unwrap_or_default();
        self.shared.record(
            Received {
                connection: self.id,
                helo: self.helo.clone().unwrap_or_default(),
                mail_from: t.mail_from,
                rcpt_to: t.rcpt_to,
                data,
                mail_params: t.mail_params,
                rcpt_params: t.rcpt_params,
                reply: reply.clone(),
            },
            accepted,
        );
        Ok(reply)
    }

    /// Queues a reply; the caller decides when to flush.
    async fn reply(&mut self, reply: &str) -> io::Result<()> {
        for line in wire_lines(reply) {
            self.writer.write_all(line.as_bytes()).await?;
            self.writer.write_all(b"\r\n").await?;
            self.note(format!("S: {line}"));
        }
        Ok(())
    }

    fn note_client(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        self.note(format!("C: {}", text.trim_end_matches(['\r', '\n'])));
    }

    fn note(&self, line: String) {
        self.shared.note(self.id, line);
    }
}

/// Splits `FROM:<path> params` (or `TO:`) into the path inside `<>` and the parameters.
/// LENIENT: spaces after the colon are accepted (RFC 5321 §4.1.2 has none), as most
/// servers do.
fn path_arg<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start().strip_prefix('<')?;
    let (path, params) = rest.split_once('>')?;
    Some((path, params.trim()))
}

#[cfg(test)]
mod tests {
    use super::path_arg;

    #[test]
    fn paths_and_params() {
        assert_eq!(path_arg("FROM:<a@b> SIZE=10", "FROM:"), Some(("a@b", "SIZE=10")));
        assert_eq!(path_arg("from: <>", "FROM:"), Some(("", "")));
        assert_eq!(path_arg("TO:<x@y> NOTIFY=NEVER", "TO:"), Some(("x@y", "NOTIFY=NEVER")));
        assert_eq!(path_arg("TO:x@y", "TO:"), None);
        assert_eq!(path_arg("T", "TO:"), None);
        assert_eq!(path_arg("ÄÖ:<x>", "TO:"), None);
    }
}
