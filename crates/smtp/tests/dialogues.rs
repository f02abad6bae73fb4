//! Golden SMTP dialogues against `ServerSession`.
//!
//! Each `tests/dialogues/*.txt` file is a conversation:
//!
//! - `# ...` comments and blank lines are ignored.
//! - `! key=value` sets a `ServerConfig` field before the session starts (hostname is
//!   always `mx.test`).
//! - `C: text` the client sends `text` + CRLF; `\n` inside inserts a CRLF (a pipelined
//!   batch), `\\` is a backslash, `\xHH` an octet.
//! - `R: text` the client sends raw octets, nothing appended: `\r`, `\n`, `\t`, `\\`, `\xHH`.
//! - `T: timeout` the read times out.
//! - `S: line` an expected reply line as on the wire, without CRLF.
//! - `* EVENT` an expected event: `* STARTTLS`, `* CLOSE`,
//!   `* DELIVER <from>[params] -> <to>[params]; ...` and `* DATA <escaped content>`.
//!
//! The server's greeting comes first. The policy: every sender is accepted; recipients are
//! accepted unless the local part starts with `unknown` (550 5.1.1); deliveries are queued
//! as `TESTID`, and `* DELIVER` names the authenticated user as `auth=LOGIN`; AUTH succeeds
//! for user `tim` with password `tanstaaftanstaaf` (RFC 4616 §4) and `* AUTH MECH user`
//! records each check. `DIALOGUE_BLESS=1` prints the actual transcripts.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use homing_smtp::{Action, Cause, ServerConfig, ServerSession};

fn unescape(s: &str, raw: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') if raw => out.push(b'\n'),
            Some('n') => out.extend_from_slice(b"\r\n"),
            Some('r') if raw => out.push(b'\r'),
            Some('t') if raw => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).map_err(|_| format!("bad \\x{hex}"))?);
            }
            other => return Err(format!("unknown escape \\{other:?} in {s:?}")),
        }
    }
    if !raw {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            b' '..=b'~' => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

fn configure(config: &mut ServerConfig, line: &str) -> Result<(), String> {
    let (key, value) = line.split_once('=').ok_or(format!("bad config line {line:?}"))?;
    let (key, value) = (key.trim(), value.trim());
    let bad = |_| format!("bad value for {key}: {value:?}");
    match key {
        "max_line_length" => config.max_line_length = value.parse().map_err(bad)?,
        "max_recipients" => config.max_recipients = value.parse().map_err(bad)?,
        "max_message_size" => config.max_message_size = value.parse().map_err(bad)?,
        "max_bad_commands" => config.max_bad_commands = value.parse().map_err(bad)?,
        "max_commands" => config.max_commands = value.parse().map_err(bad)?,
        "max_received_headers" => config.max_received_headers = value.parse().map_err(bad)?,
        "max_buffered_input" => config.max_buffered_input = value.parse().map_err(bad)?,
        "starttls" => config.starttls = value.parse().map_err(|_| format!("bad bool {value}"))?,
        "implicit_tls" => config.implicit_tls = value.parse().map_err(|_| format!("bad bool {value}"))?,
        "auth" => config.auth = value.parse().map_err(|_| format!("bad bool {value}"))?,
        "require_auth" => config.require_auth = value.parse().map_err(|_| format!("bad bool {value}"))?,
        _ => return Err(format!("unknown config key {key:?}")),
    }
    Ok(())
}

struct Runner {
    session: ServerSession,
    closed: bool,
    out: Vec<String>,
}

impl Runner {
    fn emit_reply(&mut self, wire: &[u8]) {
        for line in String::from_utf8_lossy(wire).split_terminator("\r\n") {
            self.out.push(format!("S: {line}").trim_end().to_string());
        }
    }

    /// Runs the session until it wants input or closes, answering with the test policy.
    fn run(&mut self) {
        for _ in 0..1_000_000 {
            match self.session.next_action() {
                Action::Reply(r) => self.emit_reply(&r.to_wire()),
                Action::ReadMore => return,
                Action::CheckSender { .. } => self.session.respond(Cause::SenderOk.reply()),
                Action::CheckRecipient { to, .. } => {
                    let reply = if to.local_part.starts_with("unknown") {
                        Cause::NoSuchUser { address: to.to_string() }.reply()
                    } else {
                        Cause::RecipientOk.reply()
                    };
                    self.session.respond(reply);
                }
                Action::Deliver(tx) => {
                    let to: Vec<String> = tx
                        .recipients
                        .iter()
                        .map(|(a, p)| format!("{}{}", a.to_path(), p.to_wire()))
                        .collect();
                    let auth = tx.auth.as_deref().map(|a| format!(" auth={a}")).unwrap_or_default();
                    self.out.push(format!(
                        "* DELIVER {}{} -> {}{auth}",
                        tx.from,
                        tx.mail_params.to_wire(),
                        to.join("; ")
                    ));
                    self.out.push(format!("* DATA {}", escape(&tx.data)).trim_end().to_string());
                    self.session.respond(Cause::Queued { id: "TESTID".into() }.reply());
                }
                Action::Authenticate { mechanism, login, password } => {
                    self.out.push(format!("* AUTH {mechanism} {login}"));
                    let ok = login == "tim" && password.expose() == "tanstaaftanstaaf";
                    self.session.respond(if ok { Cause::AuthSucceeded } else { Cause::AuthFailed }.reply());
                }
                Action::StartTls => {
                    self.out.push("* STARTTLS".into());
                    self.session.tls_established();
                }
                Action::Close => {
                    self.out.push("* CLOSE".into());
                    self.closed = true;
                    return;
                }
            }
        }
        panic!("the session never asked for input");
    }
}

/// Runs one dialogue file; returns (expected, actual) transcripts.
fn run_file(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut config = ServerConfig { hostname: "mx.test".into(), ..ServerConfig::default() };
    let mut expected = Vec::new();
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(cfg) = line.strip_prefix("! ") {
            configure(&mut config, cfg).map_err(|e| format!("line {}: {e}", n + 1))?;
            continue;
        }
        let tag = match line.split_once(": ") {
            _ if line.starts_with("* ") => "*",
            _ if line == "C:" => "C",
            Some((tag, _)) => tag,
            None => return Err(format!("line {}: cannot read {line:?}", n + 1)),
        };
        match tag {
            "C" | "R" | "T" => steps.push(line.to_string()),
            "S" | "*" => {}
            _ => return Err(format!("line {}: unknown tag in {line:?}", n + 1)),
        }
        expected.push(line.to_string());
    }
    let mut session = ServerSession::new(config);
    let greeting = session.greeting().to_wire();
    let mut r = Runner { session, closed: false, out: Vec::new() };
    r.emit_reply(&greeting);
    for step in steps {
        r.out.push(step.clone());
        if r.closed {
            continue;
        }
        if let Some(text) = step.strip_prefix("C:") {
            let text = text.strip_prefix(' ').unwrap_or(text);
            r.session.push_input(&unescape(text, false)?);
        } else if let Some(text) = step.strip_prefix("R: ") {
            r.session.push_input(&unescape(text, true)?);
        } else {
            let reply = r.session.timeout();
            r.emit_reply(&reply.to_wire());
        }
        r.run();
    }
    Ok((expected, r.out))
}

#[test]
fn golden_dialogues() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogues");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("tests/dialogues exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected the dialogue files in {}", dir.display());
    let bless = std::env::var_os("DIALOGUE_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = fs::read_to_string(path).expect("dialogue file is UTF-8");
        let (expected, actual) = match run_file(&text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if bless {
            println!("=== {name}\n{}", actual.join("\n"));
        }
        if expected != actual {
            let mut report = format!("=== {name}: transcript differs\n");
            let first = expected.iter().zip(&actual).position(|(e, a)| e != a);
            let first = first.unwrap_or(expected.len().min(actual.len()));
            let _ = writeln!(report, "--- expected");
            for (i, l) in expected.iter().enumerate() {
                let mark = if i == first { ">>" } else { "  " };
                let _ = writeln!(report, "{mark} {l}");
            }
            let _ = writeln!(report, "--- actual");
            for (i, l) in actual.iter().enumerate() {
                let mark = if i == first { ">>" } else { "  " };
                let _ = writeln!(report, "{mark} {l}");
            }
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dialogues failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
