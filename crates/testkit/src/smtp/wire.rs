//! Bytes on the wire: reply formatting and bounded line reading.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Formats a scripted reply for the wire (RFC 5321 §4.2.1): lines separated by `\n`
/// become `code-text` lines ending with one `code text` line, each ending in CRLF.
/// Continuation lines may repeat the code or leave it out.
pub(crate) fn wire_lines(reply: &str) -> Vec<String> {
    let lines: Vec<&str> =
        reply.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect();
    let Some(code) = lines.first().and_then(|l| reply_code(l)) else {
        // No code to repeat: the script author gets exactly what they wrote.
        return lines.into_iter().map(str::to_owned).collect();
    };
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let text = match line.strip_prefix(code) {
                Some("") => "",
                Some(rest) if rest.starts_with([' ', '-']) => &rest[1..],
                _ => line,
            };
            match (i == last, text.is_empty()) {
                (true, true) => code.to_owned(),
                (true, false) => format!("{code} {text}"),
                (false, _) => format!("{code}-{text}"),
            }
        })
        .collect()
}

/// The three-digit code a reply starts with.
fn reply_code(line: &str) -> Option<&str> {
    let code = line.get(..3)?;
    code.bytes().all(|b| b.is_ascii_digit()).then_some(code)
}

/// Whether a scripted reply is a positive completion (2xx).
pub(crate) fn is_positive(reply: &str) -> bool {
    reply.trim_start().starts_with('2')
}

/// What [`read_line`] got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, with its terminator, is in the buffer.
    Complete,
    /// The line was longer than allowed; the buffer holds its start and the rest was discarded.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// Reads one `\n`-terminated line into `out` (cleared first), keeping at most `max` bytes.
pub(crate) async fn read_line<R>(reader: &mut R, max: usize, out: &mut Vec<u8>) -> io::Result<Line>
where
    R: AsyncBufRead + Unpin,
{
    out.clear();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(out.len());
        if take > room {
            too_long = true;
        }
        out.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Complete });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply() {
        assert_eq!(wire_lines("250 2.0.0 Ok"), ["250 2.0.0 Ok"]);
    }

    #[test]
    fn multi_line_reply_with_and_without_codes() {
        assert_eq!(
            wire_lines("250 rx.test\nPIPELINING\n250 SIZE 10\n"),
            ["250-rx.test", "250-PIPELINING", "250 SIZE 10"]
        );
        assert_eq!(
            wire_lines("550-5.1.1 first\r\n550 5.1.1 second"),
            ["550-5.1.1 first", "550 5.1.1 second"]
        );
    }

    #[test]
    fn bare_code() {
        assert_eq!(wire_lines("250"), ["250"]);
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_discarded() {
        let mut input: &[u8] = b"0123456789\r\nok\r\npartial";
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, 4, &mut line).await.ok(), Some(Line::TooLong));
        assert_eq!(line, b"0123");
        assert_eq!(read_line(&mut input, 4, &mut line).await.ok(), Some(Line::Complete));
        assert_eq!(line, b"ok\r\n");
        assert_eq!(read_line(&mut input, 4, &mut line).await.ok(), Some(Line::Eof));
    }
}
