//! A small reader for the reports `dsn::build` writes: enough MIME (RFC 2045/2046) to split
//! the parts and read header fields back.

#![allow(dead_code)]

pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Report {
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
}

impl Report {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header fields of a CRLF header block, unfolded.
pub fn fields(block: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(block).map_err(|e| e.to_string())?;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = out.last_mut().ok_or("continuation without a field")?;
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').ok_or(format!("no colon in {line:?}"))?;
            out.push((name.to_string(), value.trim().to_string()));
        }
    }
    Ok(out)
}

fn split_head(data: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if let Some(rest) = data.strip_prefix(b"\r\n") {
        return Ok((b"", rest));
    }
    let i = find(data, b"\r\n\r\n").ok_or("no empty line after the header")?;
    Ok((&data[..i + 2], &data[i + 4..]))
}

/// Splits a multipart/report into its parts, checking line endings on the way.
pub fn parse(msg: &[u8]) -> Result<Report, String> {
    for (i, &b) in msg.iter().enumerate() {
        let lf_ok = b != b'\n' || (i > 0 && msg[i - 1] == b'\r');
        let cr_ok = b != b'\r' || msg.get(i + 1) == Some(&b'\n');
        if !lf_ok || !cr_ok {
            return Err(format!("bare CR or LF at byte {i}"));
        }
    }
    let (head, body) = split_head(msg)?;
    let headers = fields(head)?;
    let ct = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v.clone())
        .ok_or("no Content-Type")?;
    let boundary =
        ct.split("boundary=\"").nth(1).and_then(|s| s.split('"').next()).ok_or("no boundary")?.to_string();
    let delimiter = format!("\r\n--{boundary}");
    let mut chunks = Vec::new();
    let mut rest = body;
    while let Some(i) = find(rest, delimiter.as_bytes()) {
        chunks.push(&rest[..i]);
        rest = &rest[i + delimiter.len()..];
    }
    if rest != b"--\r\n" {
        return Err(format!("bad close delimiter: {:?}", String::from_utf8_lossy(rest)));
    }
    let mut parts = Vec::new();
    for chunk in chunks.into_iter().skip(1) {
        let chunk = chunk.strip_prefix(b"\r\n").ok_or("delimiter not followed by CRLF")?;
        let (h, b) = split_head(chunk)?;
        parts.push(Part { headers: fields(h)?, body: b.to_vec() });
    }
    Ok(Report { headers, parts })
}

/// Decodes quoted-printable (RFC 2045 §6.7).
pub fn unqp(data: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'=' {
            if data.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = std::str::from_utf8(&data[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap().replace("\r\n", "\n")
}

/// The groups of a message/delivery-status body: per-message first, then per-recipient.
pub fn groups(body: &[u8]) -> Result<Vec<Vec<(String, String)>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    text.split("\r\n\r\n").filter(|g| !g.trim().is_empty()).map(|g| fields(g.as_bytes())).collect()
}

pub fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}
