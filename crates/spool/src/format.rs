//! The message file, `queue/<id>.msg` (see `FORMAT.md` beside `Cargo.toml`):
//!
//! ```text
//! HOMING-SPOOL 1\r\n                      magic and version
//! id: 01JD3M0Q7Z8K4T2N6B5C9X1Y0W\r\n      envelope as `key: value` lines,
//! received-at: 1732370400.123456789\r\n   values percent-encoded
//! ...
//! rcpt: bob@example.org notify=6 orcpt=rfc822;bob@example.org\r\n
//! body-length: 1234\r\n
//! \r\n                                    end of header
//! <body-length bytes of body>
//! \r\nHOMING-END <20-digit body length> <header CRC-32> <file CRC-32>\r\n
//! ```
//!
//! The trailer has a fixed size and sits at `header length + body length`, so
//! recovery reads the header, seeks over the body and checks the trailer and
//! the header checksum without touching the body; [`decode_message`] (used by
//! `read_body`) also checks the CRC over the whole file before the trailer.
//! A crash mid-write cannot produce a file that passes: truncation changes the
//! length, and the file only enters `queue/` after it was fsynced.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::codec::{parse_hex32, parse_u64, pct_decode, pct_encode, time_decode, time_encode};
use crate::crc::{Crc32, crc32};
use crate::{Envelope, MessageId, MessageKind, RecipientRecord, Source};

pub const MAGIC_PREFIX: &[u8] = b"HOMING-SPOOL ";
pub const VERSION: &str = "1";
const TRAILER_TAG: &[u8] = b"\r\nHOMING-END ";
/// Tag, 20 digits, space, 8 hex, space, 8 hex, CRLF.
pub const TRAILER_LEN: u64 = 13 + 20 + 1 + 8 + 1 + 8 + 2;
/// A header bigger than this is garbage, not an envelope (100k recipients fit).
pub const MAX_HEADER_BYTES: u64 = 32 << 20;

/// Why a spool file was judged corrupt. The text goes into the quarantine report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("bad magic: not a homing spool file")]
    BadMagic,
    #[error("unknown spool format version {0:?}; this homing reads version {VERSION}")]
    UnknownVersion(String),
    #[error("header line {line}: {reason}")]
    BadHeader { line: usize, reason: String },
    #[error("header lacks the {0:?} field")]
    MissingField(&'static str),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("{0} unexpected bytes after the trailer")]
    TrailingData(u64),
    #[error("trailer is missing or malformed")]
    BadTrailer,
    #[error("trailer says body length {trailer} but header says {header}")]
    LengthMismatch { header: u64, trailer: u64 },
    #[error("header checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    HeaderChecksum { stored: u32, computed: u32 },
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x}): bit rot or torn write")]
    Checksum { stored: u32, computed: u32 },
    #[error("file is named for id {file} but holds id {inside}")]
    IdMismatch { file: String, inside: String },
}

/// A read failed: either the bytes are bad, or the disk would not give them.
#[derive(Debug)]
pub enum ReadError {
    Corrupt(Corruption),
    Io(io::Error),
}

impl From<Corruption> for ReadError {
    fn from(c: Corruption) -> Self {
        ReadError::Corrupt(c)
    }
}

/// Everything before the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub id: MessageId,
    pub envelope: Envelope,
    pub body_len: u64,
}

/// A fully checked message file.
#[derive(Debug)]
pub struct DecodedMessage<'a> {
    pub header: Header,
    pub body: &'a [u8],
}

/// The header bytes, ending with the blank line.
pub fn encode_header(id: &MessageId, env: &Envelope, body_len: u64) -> Vec<u8> {
    let mut s = String::with_capacity(256 + 64 * env.recipients.len());
    s.push_str("HOMING-SPOOL ");
    s.push_str(VERSION);
    s.push_str("\r\nid: ");
    s.push_str(id.as_str());
    s.push_str("\r\nreceived-at: ");
    time_encode(env.received_at, &mut s);
    s.push_str("\r\nkind: ");
    s.push_str(match env.kind {
        MessageKind::Normal => "normal",
        MessageKind::Dsn => "dsn",
    });
    field(&mut s, "return-path", Some(&env.return_path));
    field(&mut s, "envid", env.envid.as_deref());
    field(&mut s, "message-id", env.message_id.as_deref());
    if let Some(full) = env.ret_full {
        s.push_str(if full { "\r\nret: full" } else { "\r\nret: hdrs" });
    }
    s.push_str(if env.body_8bit { "\r\nbody-type: 8bitmime" } else { "\r\nbody-type: 7bit" });
    s.push_str(if env.smtputf8 { "\r\nsmtputf8: yes" } else { "\r\nsmtputf8: no" });
    field(&mut s, "peer-ip", Some(&env.source.peer_ip));
    field(&mut s, "helo", Some(&env.source.helo));
    field(&mut s, "tls", env.source.tls.as_deref());
    field(&mut s, "auth", env.source.auth.as_deref());
    for r in &env.recipients {
        field(&mut s, "rcpt", Some(&r.address));
        s.push_str(" notify=");
        s.push_str(&r.notify.to_string());
        if let Some(orcpt) = &r.orcpt {
            s.push_str(" orcpt=");
            pct_encode(orcpt, &mut s);
        }
    }
    s.push_str("\r\nbody-length: ");
    s.push_str(&body_len.to_string());
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

fn field(s: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        s.push_str("\r\n");
        s.push_str(key);
        s.push_str(": ");
        pct_encode(v, s);
    }
}

pub fn encode_trailer(body_len: u64, header_crc: u32, crc: u32) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRAILER_LEN as usize);
    t.extend_from_slice(TRAILER_TAG);
    t.extend_from_slice(format!("{body_len:020} {header_crc:08x} {crc:08x}\r\n").as_bytes());
    t
}

/// A whole message file in memory (tools and tests; the spool writes the
/// three parts separately to avoid copying large bodies).
pub fn encode_message(id: &MessageId, env: &Envelope, body: &[u8]) -> Vec<u8> {
    let body_len = body.len() as u64;
    let mut out = encode_header(id, env, body_len);
    let header_crc = crc32(&out);
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&encode_trailer(body_len, header_crc, crc));
    out
}

/// Check every byte of a message file and return its parts.
pub fn decode_message(bytes: &[u8]) -> Result<DecodedMessage<'_>, Corruption> {
    let mut cursor = io::Cursor::new(bytes);
    let (header, header_len, header_crc) = match read_header(&mut cursor) {
        Ok(h) => h,
        Err(ReadError::Corrupt(c)) => return Err(c),
        // A cursor over a slice only fails by running out.
        Err(ReadError::Io(e)) => return Err(Corruption::Truncated(e.to_string())),
    };
    let body_end = check_layout(header_len, header.body_len, bytes.len() as u64)?;
    // check_layout proved these offsets lie within `bytes`.
    let (before, trailer) = bytes.split_at(body_end as usize);
    check_trailer(trailer, header.body_len, header_crc, Some(crc32(before)))?;
    let body = &before[header_len as usize..];
    Ok(DecodedMessage { header, body })
}

/// Read the header and check the trailer without reading the body: what
/// recovery does for every message at startup.
pub fn read_envelope<R: Read + Seek>(file: R, file_len: u64) -> Result<Header, ReadError> {
    let mut r = io::BufReader::with_capacity(4096, file);
    let (header, header_len, header_crc) = read_header(&mut r)?;
    let body_end = check_layout(header_len, header.body_len, file_len)?;
    r.seek(SeekFrom::Start(body_end)).map_err(ReadError::Io)?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    r.read_exact(&mut trailer).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            ReadError::Corrupt(Corruption::Truncated("file shrank while reading".into()))
        }
        _ => ReadError::Io(e),
    })?;
    check_trailer(&trailer, header.body_len, header_crc, None)?;
    Ok(header)
}

/// Where the trailer must start, given what the header says.
fn check_layout(header_len: u64, body_len: u64, file_len: u64) -> Result<u64, Corruption> {
    let body_end = header_len
        .checked_add(body_len)
        .ok_or_else(|| Corruption::Truncated(format!("impossible body length {body_len}")))?;
    let expected = body_end.saturating_add(TRAILER_LEN);
    if file_len < body_end {
        return Err(Corruption::Truncated(format!(
            "body has {} of {body_len} bytes",
            file_len - header_len.min(file_len)
        )));
    }
    if file_len < expected {
        return Err(Corruption::Truncated(format!(
            "trailer has {} of {TRAILER_LEN} bytes",
            file_len - body_end
        )));
    }
    if file_len > expected {
        return Err(Corruption::TrailingData(file_len - expected));
    }
    Ok(body_end)
}

fn check_trailer(t: &[u8], body_len: u64, header_crc: u32, whole_crc: Option<u32>) -> Result<(), Corruption> {
    let rest = t.strip_prefix(TRAILER_TAG).ok_or(Corruption::BadTrailer)?;
    let rest = rest.strip_suffix(b"\r\n").ok_or(Corruption::BadTrailer)?;
    let mut parts = rest.split(|&b| b == b' ');
    let (Some(len), Some(hcrc), Some(crc), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Corruption::BadTrailer);
    };
    if len.len() != 20 {
        return Err(Corruption::BadTrailer);
    }
    let len = parse_u64(len).ok_or(Corruption::BadTrailer)?;
    let hcrc = parse_hex32(hcrc).ok_or(Corruption::BadTrailer)?;
    let crc = parse_hex32(crc).ok_or(Corruption::BadTrailer)?;
    if len != body_len {
        return Err(Corruption::LengthMismatch { header: body_len, trailer: len });
    }
    if hcrc != header_crc {
        return Err(Corruption::HeaderChecksum { stored: hcrc, computed: header_crc });
    }
    if let Some(computed) = whole_crc
        && computed != crc
    {
        return Err(Corruption::Checksum { stored: crc, computed });
    }
    Ok(())
}

/// Parse the header; returns it with its length in bytes and its CRC-32.
pub fn read_header<R: BufRead>(r: &mut R) -> Result<(Header, u64, u32), ReadError> {
    let mut crc = Crc32::new();
    let mut consumed: u64 = 0;
    let mut line = Vec::with_capacity(128);
    let mut fields = Fields::default();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let budget = MAX_HEADER_BYTES.saturating_sub(consumed);
        if budget == 0 {
            return Err(Corruption::BadHeader {
                line: line_no,
                reason: format!("header exceeds {MAX_HEADER_BYTES} bytes"),
            }
            .into());
        }
        let n = r.take(budget).read_until(b'\n', &mut line).map_err(ReadError::Io)?;
        consumed += n as u64;
        crc.update(&line);
        line_no += 1;
        let Some(content) = line.strip_suffix(b"\r\n") else {
            if line_no == 1 && !line.starts_with(MAGIC_PREFIX) {
                return Err(Corruption::BadMagic.into());
            }
            return Err(Corruption::Truncated(format!("header ends inside line {line_no}")).into());
        };
        if line_no == 1 {
            let version = content.strip_prefix(MAGIC_PREFIX).ok_or(Corruption::BadMagic)?;
            if version != VERSION.as_bytes() {
                let shown = String::from_utf8_lossy(&version[..version.len().min(32)]);
                return Err(Corruption::UnknownVersion(shown.into_owned()).into());
            }
            continue;
        }
        if content.is_empty() {
            break;
        }
        fields.apply(content).map_err(|reason| Corruption::BadHeader { line: line_no, reason })?;
    }
    Ok((fields.finish()?, consumed, crc.finish()))
}

/// Header fields as they are found; `finish` checks the required ones.
#[derive(Default)]
struct Fields {
    id: Option<MessageId>,
    received_at: Option<std::time::SystemTime>,
    kind: Option<MessageKind>,
    return_path: Option<String>,
    envid: Option<String>,
    message_id: Option<String>,
    ret_full: Option<bool>,
    body_8bit: Option<bool>,
    smtputf8: Option<bool>,
    peer_ip: Option<String>,
    helo: Option<String>,
    tls: Option<String>,
    auth: Option<String>,
    recipients: Vec<RecipientRecord>,
    body_len: Option<u64>,
}

fn set<T>(slot: &mut Option<T>, v: T, key: &str) -> Result<(), String> {
    if slot.replace(v).is_some() {
        return Err(format!("duplicate field {key:?}"));
    }
    Ok(())
}

fn text(v: &[u8]) -> Result<String, String> {
    pct_decode(v).map_err(str::to_owned)
}

impl Fields {
    fn apply(&mut self, line: &[u8]) -> Result<(), String> {
        let sep = line.windows(2).position(|w| w == b": ").ok_or("expected `key: value`")?;
        let (key, v) = (&line[..sep], &line[sep + 2..]);
        let key = std::str::from_utf8(key).map_err(|_| "field name is not ASCII")?;
        let choice = |yes: &[u8], no: &[u8]| -> Result<bool, String> {
            match v {
                _ if v == yes => Ok(true),
                _ if v == no => Ok(false),
                _ => Err(format!("bad value for {key:?}")),
            }
        };
        match key {
            "id" => {
                let id = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or("bad message id")?;
                set(&mut self.id, id, key)
            }
            "received-at" => set(&mut self.received_at, time_decode(v)?, key),
            "kind" => {
                let k = if choice(b"dsn", b"normal")? { MessageKind::Dsn } else { MessageKind::Normal };
                set(&mut self.kind, k, key)
            }
            "return-path" => set(&mut self.return_path, text(v)?, key),
            "envid" => set(&mut self.envid, text(v)?, key),
            "message-id" => set(&mut self.message_id, text(v)?, key),
            "ret" => set(&mut self.ret_full, choice(b"full", b"hdrs")?, key),
            "body-type" => set(&mut self.body_8bit, choice(b"8bitmime", b"7bit")?, key),
            "smtputf8" => set(&mut self.smtputf8, choice(b"yes", b"no")?, key),
            "peer-ip" => set(&mut self.peer_ip, text(v)?, key),
            "helo" => set(&mut self.helo, text(v)?, key),
            "tls" => set(&mut self.tls, text(v)?, key),
            "auth" => set(&mut self.auth, text(v)?, key),
            "rcpt" => {
                let r = parse_rcpt(v)?;
                self.recipients.push(r);
                Ok(())
            }
            "body-length" => set(&mut self.body_len, parse_u64(v).ok_or("bad body length")?, key),
            _ => Err(format!("unknown field {key:?}")),
        }
    }

    fn finish(self) -> Result<Header, Corruption> {
        use Corruption::MissingField as M;
        Ok(Header {
            id: self.id.ok_or(M("id"))?,
            body_len: self.body_len.ok_or(M("body-length"))?,
            envelope: Envelope {
                received_at: self.received_at.ok_or(M("received-at"))?,
                return_path: self.return_path.ok_or(M("return-path"))?,
                envid: self.envid,
                message_id: self.message_id,
                ret_full: self.ret_full,
                body_8bit: self.body_8bit.ok_or(M("body-type"))?,
                smtputf8: self.smtputf8.ok_or(M("smtputf8"))?,
                source: Source {
                    peer_ip: self.peer_ip.ok_or(M("peer-ip"))?,
                    helo: self.helo.ok_or(M("helo"))?,
                    tls: self.tls,
                    auth: self.auth,
                },
                recipients: self.recipients,
                kind: self.kind.ok_or(M("kind"))?,
            },
        })
    }
}

fn parse_rcpt(v: &[u8]) -> Result<RecipientRecord, String> {
    let mut tokens = v.split(|&b| b == b' ');
    let address = text(tokens.next().unwrap_or_default())?;
    let mut notify = None;
    let mut orcpt = None;
    for t in tokens {
        if let Some(n) = t.strip_prefix(b"notify=") {
            let n = parse_u64(n).and_then(|n| u8::try_from(n).ok()).ok_or("bad notify")?;
            set(&mut notify, n, "notify")?;
        } else if let Some(o) = t.strip_prefix(b"orcpt=") {
            set(&mut orcpt, text(o)?, "orcpt")?;
        } else {
            return Err("unknown recipient parameter".into());
        }
    }
    Ok(RecipientRecord { address, orcpt, notify: notify.ok_or("recipient lacks notify=")? })
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
