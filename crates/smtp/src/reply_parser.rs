//! Reading replies from an SMTP server (RFC 5321 §4.2), with enhanced status codes
//! (RFC 2034 §4). Bytes in, complete [`Reply`]s out.

use crate::reply::{EnhancedStatus, Reply};

/// Longest reply line accepted, without CRLF. RFC 5321 §4.5.3.1.5 sets 512; real servers
/// send longer text, so this is generous.
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
pub const MAX_REPLY_LINES: usize = 100;

/// Why the server's output could not be read as replies. The connection should be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    #[error("reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}: expected a three-digit code followed by ' ' or '-'")]
    Malformed(String),
    #[error("multi-line reply changes its code from {first} to {then}")]
    CodeChanged { first: u16, then: u16 },
}

/// Accumulates bytes from the server and yields complete replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Lines of the reply in progress: (code, text after the separator).
    lines: Vec<String>,
    code: Option<u16>,
    failed: Option<ReplyError>,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed. After an error, every
    /// call returns the same error.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.parse_next();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        result
    }

    /// Pushes `bytes` and returns every reply now complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        self.push(bytes);
        let mut out = Vec::new();
        while let Some(r) = self.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    fn parse_next(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(lf) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_REPLY_LINE + 1 {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
            line.pop();
            // LENIENT: a bare LF ends a reply line too.
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let (code, last, text) = parse_line(&line)?;
            match self.code {
                Some(first) if first != code => {
                    return Err(ReplyError::CodeChanged { first, then: code });
                }
                _ => self.code = Some(code),
            }
            if self.lines.len() >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
            self.lines.push(text);
            if last {
                self.code = None;
                let lines = std::mem::take(&mut self.lines);
                return Ok(Some(build(code, lines)));
            }
        }
    }
}

/// `Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF`
/// (RFC 5321 §4.2). Returns the code, whether this is the last line, and the text.
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let bad = || ReplyError::Malformed(String::from_utf8_lossy(line).chars().take(80).collect());
    let digits = line.get(..3).ok_or_else(bad)?;
    let valid =
        matches!(digits[0], b'2'..=b'5') && matches!(digits[1], b'0'..=b'5') && digits[2].is_ascii_digit();
    if !valid {
        return Err(bad());
    }
    let code = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(bad()),
    };
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// A leading `x.y.z ` whose class matches the reply code (RFC 3463 §2).
fn split_status(code: u16, text: &str) -> Option<(EnhancedStatus, &str)> {
    let (token, rest) = match text.split_once(' ') {
        Some((t, r)) => (t, r),
        None => (text, ""),
    };
    let status: EnhancedStatus = token.parse().ok()?;
    (u16::from(status.class) == code / 100).then_some((status, rest))
}

/// The status is taken from the first line when every line carries one (RFC 2034 §4);
/// otherwise the lines are kept verbatim.
fn build(code: u16, lines: Vec<String>) -> Reply {
    let Some((status, _)) = lines.first().and_then(|l| split_status(code, l)) else {
        return Reply::multiline(code, None, lines);
    };
    let stripped: Option<Vec<String>> =
        lines.iter().map(|l| split_status(code, l).map(|(_, rest)| rest.to_string())).collect();
    match stripped {
        Some(texts) => Reply::multiline(code, Some(status), texts),
        None => Reply::multiline(code, None, lines),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Reply {
        let mut p = ReplyParser::new();
        let mut r = p.feed(bytes).unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }

    #[test]
    fn single_and_multi_line() {
        let r = one(b"250 2.1.0 Sender OK\r\n");
        assert_eq!(
            (r.code, r.status, r.lines.clone()),
            (250, Some(EnhancedStatus::new(2, 1, 0)), vec!["Sender OK".to_string()])
        );
        let r = one(b"250-mx.example greets you\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        assert_eq!(r.status, None);
        assert_eq!(r.lines, ["mx.example greets you", "PIPELINING", "SIZE 100"]);
        let r = one(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n");
        assert_eq!(r.status, Some(EnhancedStatus::new(5, 1, 1)));
        assert_eq!(r.lines, ["no such", "user"]);
        assert_eq!(r.to_wire(), b"550-5.1.1 no such\r\n550 5.1.1 user\r\n");
        let r = one(b"550-5.1.1 first only\r\n550 second\r\n");
        assert_eq!((r.status, r.lines[0].as_str()), (None, "5.1.1 first only"));
        let r = one(b"250\r\n");
        assert_eq!(r.lines, [""]);
        let r = one(b"451 5.0.0 class mismatch\n");
        assert_eq!(r.status, None);
    }

    #[test]
    fn split_across_pushes_and_pipelined() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed(b"250-a\r").unwrap(), vec![]);
        assert_eq!(p.feed(b"\n250 b\r\n354 go").unwrap().len(), 1);
        let r = p.feed(b" ahead\r\n").unwrap();
        assert_eq!((r[0].code, r[0].lines[0].as_str()), (354, "go ahead"));
    }

    #[test]
    fn malformed_and_limits() {
        for bad in [&b"hello\r\n"[..], b"25\r\n", b"250x\r\n", b"650 x\r\n", b"2a0 x\r\n"] {
            let mut p = ReplyParser::new();
            assert!(matches!(p.feed(bad), Err(ReplyError::Malformed(_))), "{bad:?}");
            assert!(p.next_reply().is_err(), "errors are sticky");
        }
        let mut p = ReplyParser::new();
        assert_eq!(p.feed(b"250-a\r\n251 b\r\n"), Err(ReplyError::CodeChanged { first: 250, then: 251 }));
        let mut p = ReplyParser::new();
        assert_eq!(p.feed(&vec![b'2'; MAX_REPLY_LINE + 2]), Err(ReplyError::LineTooLong));
        let mut p = ReplyParser::new();
        let many = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(p.feed(&many), Err(ReplyError::TooManyLines));
    }
}
