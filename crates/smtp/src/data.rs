//! The DATA decoder (RFC 5321 §4.1.1.4, §4.5.2): dot-unstuffing, the `CRLF.CRLF` terminator,
//! the message size limit, and the bare CR / bare LF refusal that closes SMTP smuggling
//! (RFC 5321 §2.3.8).

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    LineStart,
    /// The line began with `.`.
    Dot,
    /// The line is `.` followed by CR.
    DotCr,
    Mid,
    /// After a CR inside a line.
    Cr,
}

/// What the decoder has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// The terminator has not arrived yet.
    More,
    /// `CRLF.CRLF` arrived.
    Done,
    /// A CR or LF that was not part of a CRLF pair: refuse and close.
    BareLineEnding,
}

/// Decodes message content after `354`, in pieces as it arrives.
#[derive(Debug)]
pub struct DataDecoder {
    pos: Pos,
    status: DataStatus,
    data: Vec<u8>,
    max: u64,
    /// Octets of content seen, counted even after the limit was passed.
    seen: u64,
}

impl DataDecoder {
    /// A decoder that keeps at most `max` octets of unstuffed content.
    pub fn new(max: u64) -> Self {
        DataDecoder { pos: Pos::LineStart, status: DataStatus::More, data: Vec::new(), max, seen: 0 }
    }

    pub fn status(&self) -> DataStatus {
        self.status
    }

    /// True when the content was larger than the limit; it was discarded.
    pub fn oversize(&self) -> bool {
        self.seen > self.max
    }

    /// Octets held now; never more than the limit.
    pub fn buffered(&self) -> usize {
        self.data.len()
    }

    /// The unstuffed content with its final CRLF, without the terminator.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    fn push(&mut self, bytes: &[u8]) {
        self.seen = self.seen.saturating_add(bytes.len() as u64);
        if self.seen > self.max {
            // Free what was kept: the message will be refused, only the terminator matters.
            self.data = Vec::new();
        } else {
            self.data.extend_from_slice(bytes);
        }
    }

    /// Consumes input until the terminator or a bare line ending; returns how many octets
    /// of `input` were used. Octets after the terminator belong to the next command.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        if self.status != DataStatus::More {
            return 0;
        }
        let mut i = 0;
        while i < input.len() {
            // Inside a line every octet up to the next CR or LF is plain content: copy the
            // whole run at once instead of octet by octet.
            let plain = match self.pos {
                Pos::Mid => true,
                Pos::LineStart => !matches!(input[i], b'.' | b'\r' | b'\n'),
                _ => false,
            };
            if plain {
                let rest = &input[i..];
                let n = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if n > 0 {
                    self.push(&rest[..n]);
                    self.pos = Pos::Mid;
                    i += n;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            self.pos = match (self.pos, b) {
                (Pos::DotCr, b'\n') => {
                    self.status = DataStatus::Done;
                    return i;
                }
                (Pos::Cr, b'\n') => {
                    self.push(b"\r\n");
                    Pos::LineStart
                }
                (Pos::DotCr | Pos::Cr, _) | (_, b'\n') => {
                    self.status = DataStatus::BareLineEnding;
                    return i;
                }
                (Pos::LineStart, b'.') => Pos::Dot,
                (Pos::Dot, b'\r') => Pos::DotCr,
                (_, b'\r') => Pos::Cr,
                // RFC 5321 §4.5.2: a leading dot is removed; the byte after it is content.
                (_, _) => {
                    self.push(&[b]);
                    Pos::Mid
                }
            };
        }
        input.len()
    }
}

/// Counts the `Received:` fields in the header section (up to the first empty line), for
/// loop detection (RFC 5321 §6.3).
pub fn count_received(data: &[u8]) -> usize {
    let mut n = 0;
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        // RFC 5322 §4.5: obsolete syntax allows white space before the colon.
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"received") {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], max: u64) -> (DataStatus, usize, Vec<u8>, bool) {
        let mut d = DataDecoder::new(max);
        let used = d.feed(input);
        let (st, over) = (d.status(), d.oversize());
        (st, used, d.into_data(), over)
    }

    #[test]
    fn unstuffs_and_stops_at_terminator() {
        let (st, used, data, _) = decode(b"a\r\n..b\r\n.c\r\n\r\n.\r\nQUIT\r\n", 100);
        assert_eq!(st, DataStatus::Done);
        assert_eq!(used, 17);
        assert_eq!(data, b"a\r\n.b\r\nc\r\n\r\n");
        let (st, _, data, _) = decode(b".\r\n", 100);
        assert_eq!((st, data.len()), (DataStatus::Done, 0));
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let input = b"x\r\n..\r\n.\r\n";
        let mut d = DataDecoder::new(100);
        for b in input {
            d.feed(&[*b]);
        }
        assert_eq!(d.status(), DataStatus::Done);
        assert_eq!(d.into_data(), b"x\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_are_refused() {
        for input in
            [&b"a\n.\n"[..], b"a\r\n.\n", b"a\r.\r\n", b"a\rb\r\n.\r\n", b"\n", b".\rx", b"a\r\n\n.\r\n"]
        {
            assert_eq!(decode(input, 100).0, DataStatus::BareLineEnding, "{input:?}");
        }
    }

    #[test]
    fn oversize_is_discarded_but_terminator_found() {
        let (st, _, data, over) = decode(b"0123456789\r\n.\r\n", 5);
        assert_eq!((st, data.len(), over), (DataStatus::Done, 0, true));
        let (_, _, _, over) = decode(b"0123\r\n.\r\n", 6);
        assert!(!over);
    }

    #[test]
    fn counts_received_in_header_only() {
        let m = b"Received: a\r\n\tfolded\r\nRECEIVED : b\r\nSubject: x\r\n\r\nReceived: body\r\n";
        assert_eq!(count_received(m), 2);
    }
}
