//! `homing why`: explain bounces from any server — one file, stdin, a directory, an mbox
//! or a Maildir — or a single SMTP reply (`--reply`).

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use homing_explain::bounce::{self, Finding, Kind, Report};
use homing_explain::{Evidence, Reason, ReplyEvidence, Stage, explain};

use crate::suppress::{self, Added, Entry, SuppressionList};
use serde_json::json;

/// Messages read before a progress line is worth showing.
const PROGRESS_FROM: usize = 200;

#[derive(clap::Args, Debug)]
pub struct WhyArgs {
    /// Bounce files, directories (read recursively, Maildirs included) or mbox files;
    /// none or `-` reads one message from stdin.
    pub inputs: Vec<PathBuf>,
    /// Print JSON: one object per message, one line each.
    #[arg(long)]
    pub json: bool,
    /// Explain one SMTP reply instead, e.g. --reply "550 5.7.26 Unauthenticated email".
    #[arg(long, value_name = "REPLY", conflicts_with = "inputs")]
    pub reply: Option<String>,
    /// The stage the --reply came at: connect, greeting, ehlo, mail, rcpt, data or dot.
    #[arg(long, default_value = "rcpt", requires = "reply")]
    pub stage: String,
    /// Add what the reports prove dead (userunknown, hostunknown, notaccept, suspend, hard)
    /// and every complaint to the suppression list of the configuration in --config.
    #[arg(long)]
    pub suppress: bool,
    /// The configuration whose suppression list --suppress adds to (default: built-in).
    #[arg(long, short, requires = "suppress")]
    pub config: Option<PathBuf>,
    /// Refuse messages larger than this many bytes (mailbox files are split first).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    pub max_size: u64,
}

pub fn run(args: WhyArgs) -> anyhow::Result<std::process::ExitCode> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if let Some(reply) = &args.reply {
        explain_reply(reply, &args.stage, args.json, &mut out)?;
        out.flush()?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let inputs = if args.inputs.is_empty() { vec![PathBuf::from("-")] } else { args.inputs.clone() };
    let sources = split_mboxes(collect(&inputs)?, args.max_size);
    let total = sources.len();
    let progress = total >= PROGRESS_FROM && io::stderr().is_terminal();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS);
    let mut failed_to_read = 0usize;
    let mut done = 0usize;
    let list = match args.suppress {
        true => Some(open_suppression_list(args.config.as_ref())?),
        false => None,
    };
    let mut suppressed = 0usize;
    // Messages are read in parallel a batch at a time and printed in input order, so the
    // output is the same whatever the number of cores, and memory stays bounded.
    for batch in sources.chunks(BATCH) {
        let rendered = render_batch(batch, &args, workers);
        for (source, result) in batch.iter().zip(rendered) {
            match result {
                Ok(r) => {
                    out.write_all(r.text.as_bytes())?;
                    if let Some(list) = &list {
                        suppressed += suppress_findings(list, &source.label, &r.dead)?;
                    }
                }
                Err(e) => {
                    failed_to_read += 1;
                    if args.json {
                        writeln!(out, "{}", json!({"file": source.label, "error": e, "recipients": []}))?;
                    } else {
                        eprintln!("homing why: {}: {e}", source.label);
                    }
                }
            }
        }
        done += batch.len();
        if progress {
            eprint!("\rhoming why: {done}/{total} messages ({}%)", done * 100 / total);
        }
    }
    if progress {
        eprintln!();
    }
    out.flush()?;
    if let Some(list) = &list {
        eprintln!(
            "homing why: {suppressed} address(es) added to the suppression list {}",
            list.path().display()
        );
    }
    Ok(if failed_to_read > 0 { std::process::ExitCode::from(1) } else { std::process::ExitCode::SUCCESS })
}

/// Most threads reading messages at once.
const MAX_WORKERS: usize = 8;
/// Sources read in parallel before their output is printed.
const BATCH: usize = 256;

/// Reads and explains a batch of sources on `workers` threads; one output text (or read
/// error) per source, in order.
fn render_batch(batch: &[Source], args: &WhyArgs, workers: usize) -> Vec<Result<Rendered, String>> {
    let mut results: Vec<Option<Result<Rendered, String>>> = vec![None; batch.len()];
    if workers <= 1 || batch.len() < 2 {
        for (slot, source) in results.iter_mut().zip(batch) {
            *slot = Some(render(source, args));
        }
    } else {
        let per = batch.len().div_ceil(workers);
        std::thread::scope(|scope| {
            for (slots, sources) in results.chunks_mut(per).zip(batch.chunks(per)) {
                scope.spawn(move || {
                    for (slot, source) in slots.iter_mut().zip(sources) {
                        *slot = Some(render(source, args));
                    }
                });
            }
        });
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err("not read".into()))).collect()
}

/// The output for one source: its messages explained, as JSON lines or text.
fn render(source: &Source, args: &WhyArgs) -> Result<Rendered, String> {
    let (first, messages) = match &source.message {
        Some((index, raw)) => (*index, vec![raw.clone()]),
        None => (1, source.load(args.max_size).map_err(|e| format!("{e:#}"))?),
    };
    let numbered = messages.len() > 1 || source.message.is_some();
    let mut out: Vec<u8> = Vec::new();
    let mut dead = Vec::new();
    for (i, raw) in messages.iter().enumerate() {
        let report = bounce::read(raw);
        let findings = bounce::explain_report(&report);
        if args.suppress {
            dead.extend(
                findings
                    .iter()
                    .filter(|f| f.hard && f.reason.kills_address() || f.reason == Reason::Feedback)
                    .cloned(),
            );
        }
        let index = numbered.then_some(first + i);
        let written = if args.json {
            print_json(&mut out, &source.label, index, &report, &findings)
        } else {
            print_text(&mut out, &source.label, index, &report, &findings)
        };
        written.map_err(|e| format!("{e:#}"))?;
    }
    Ok(Rendered { text: String::from_utf8_lossy(&out).into_owned(), dead })
}

/// What one source gave: the text to print and the findings `--suppress` would list.
#[derive(Clone)]
struct Rendered {
    text: String,
    dead: Vec<Finding>,
}

/// The suppression list of the configuration (`--config`, else the built-in one).
fn open_suppression_list(config: Option<&PathBuf>) -> anyhow::Result<SuppressionList> {
    let config = super::load(config)?;
    let path = config.suppression_path();
    SuppressionList::open(&path, suppress::Options::default())
        .with_context(|| format!("opening the suppression list {}", path.display()))
}

/// Adds each finding's recipient to the list (once); returns how many were new.
fn suppress_findings(list: &SuppressionList, label: &str, findings: &[Finding]) -> anyhow::Result<usize> {
    let mut added = 0;
    for f in findings {
        let Ok(address) = suppress::parse_address(&f.recipient) else {
            eprintln!(
                "homing why: {label}: {:?} is not an address that can be suppressed; skipped",
                f.recipient
            );
            continue;
        };
        let entry = Entry::from_report(&address, f.reason, &f.status, &f.cause, label, SystemTime::now());
        if matches!(list.add(entry)?, Added::New(_)) {
            added += 1;
        }
    }
    Ok(added)
}

/// One input to read: a file (a message or an mbox) or stdin.
struct Source {
    label: String,
    path: Option<PathBuf>,
    /// One message of an mbox, already split out: its 1-based position and its bytes.
    message: Option<(usize, Vec<u8>)>,
}

impl Source {
    /// The messages in this source: one, or every message of an mbox.
    fn load(&self, max: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        let data = match &self.path {
            None => {
                let mut buf = Vec::new();
                io::stdin()
                    .lock()
                    .take(max.saturating_add(1))
                    .read_to_end(&mut buf)
                    .context("reading stdin")?;
                buf
            }
            Some(p) => {
                let data = fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                let len = data.len() as u64;
                if len > max && !is_mbox(&data) {
                    bail!(
                        "{len} bytes is over the --max-size limit of {max} bytes; raise --max-size to read it"
                    );
                }
                data
            }
        };
        let messages = if is_mbox(&data) { split_mbox(&data) } else { vec![data] };
        if let Some(big) = messages.iter().find(|m| m.len() as u64 > max) {
            bail!(
                "a message of {} bytes is over the --max-size limit of {max} bytes; raise --max-size to read it",
                big.len()
            );
        }
        Ok(messages)
    }
}

/// Turns each mbox file into one source per message, so a large mbox is read in parallel
/// and its progress shown message by message. A file that cannot be read stays as it is
/// (its error is reported in order when it is rendered).
fn split_mboxes(sources: Vec<Source>, max: u64) -> Vec<Source> {
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        let starts_like_mbox = source.path.as_ref().is_some_and(|p| {
            let mut head = [0u8; 256];
            fs::File::open(p).and_then(|mut f| f.read(&mut head)).is_ok_and(|n| is_mbox(&head[..n]))
        });
        match starts_like_mbox.then(|| source.load(max)) {
            Some(Ok(messages)) if messages.len() > 1 => {
                out.extend(messages.into_iter().enumerate().map(|(i, raw)| Source {
                    label: source.label.clone(),
                    path: None,
                    message: Some((i + 1, raw)),
                }))
            }
            _ => out.push(source),
        }
    }
    out
}

/// Expands the command line into sources: directories recursively (sorted, so output is
/// stable; Maildir `tmp/` skipped), files as given, `-` as stdin.
fn collect(inputs: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            out.push(Source { label: "-".into(), path: None, message: None });
            continue;
        }
        let meta = fs::metadata(input).with_context(|| format!("cannot read {}", input.display()))?;
        if meta.is_dir() {
            walk(input, &mut out).with_context(|| format!("reading directory {}", input.display()))?;
        } else {
            out.push(Source { label: input.display().to_string(), path: Some(input.clone()), message: None });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Source>) -> io::Result<()> {
    let mut entries: Vec<(PathBuf, fs::FileType)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().and_then(|e| Some((e.path(), e.file_type().ok()?))))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, kind) in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || (name == "tmp" && dir.join("cur").is_dir()) {
            continue;
        }
        // Symbolic links to directories are not followed (a link loop would never end);
        // links to files are read.
        if kind.is_dir() {
            walk(&p, out)?;
        } else if kind.is_file() || (kind.is_symlink() && p.is_file()) {
            out.push(Source { label: p.display().to_string(), path: Some(p), message: None });
        }
    }
    Ok(())
}

/// An mbox starts with a `From ` separator line (RFC 4155).
fn is_mbox(data: &[u8]) -> bool {
    data.starts_with(b"From ")
        && data.iter().take(200).position(|&c| c == b'\n').is_some_and(|nl| {
            let line = &data[..nl];
            !line.contains(&b':') || line.windows(2).any(|w| w[0].is_ascii_digit() && w[1] == b':')
        })
}

/// Splits an mbox at `From ` lines that follow an empty line (RFC 4155 §2), undoing
/// `>From ` quoting.
fn split_mbox(data: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut prev_blank = true;
    for line in data.split_inclusive(|&c| c == b'\n') {
        if line.starts_with(b"From ") && prev_blank {
            if !current.is_empty() {
                messages.push(std::mem::take(&mut current));
            }
            prev_blank = false;
            continue;
        }
        let body = line.strip_prefix(b">").filter(|l| l.starts_with(b"From ")).unwrap_or(line);
        current.extend_from_slice(body);
        prev_blank = line == b"\n" || line == b"\r\n";
    }
    if !current.is_empty() {
        messages.push(current);
    }
    messages
}

fn print_json(
    out: &mut impl Write,
    label: &str,
    index: Option<usize>,
    report: &Report,
    findings: &[Finding],
) -> anyhow::Result<()> {
    let mut obj = json!({
        "file": label,
        "kind": report.kind,
        "reporting_mta": report.reporting_mta,
        "recipients": findings,
    });
    if let Some(i) = index {
        obj["message"] = json!(i);
    }
    serde_json::to_writer(&mut *out, &obj)?;
    writeln!(out)?;
    Ok(())
}

fn print_text(
    out: &mut impl Write,
    label: &str,
    index: Option<usize>,
    report: &Report,
    findings: &[Finding],
) -> anyhow::Result<()> {
    let at = index.map(|i| format!(" (message {i})")).unwrap_or_default();
    match report.kind {
        Kind::NotABounce => {
            writeln!(out, "{label}{at}: not a bounce — no failed delivery is reported in it.")?;
            return Ok(());
        }
        Kind::AutoReply => writeln!(out, "{label}{at}: an automatic reply (e.g. vacation), not a failure.")?,
        Kind::Feedback => writeln!(out, "{label}{at}: a complaint (feedback report).")?,
        Kind::Bounce => writeln!(out, "{label}{at}: {} failed recipient(s).", findings.len())?,
    }
    for f in findings {
        writeln!(out, "  {}", if f.recipient.is_empty() { "(recipient not named)" } else { &f.recipient })?;
        writeln!(
            out,
            "    reason:  {} ({}, {})",
            f.reason,
            if f.hard { "hard: retrying will not help" } else { "soft: may succeed later" },
            f.reason.phrase()
        )?;
        let code = f.reply_code.map(|c| format!(", reply {c}")).unwrap_or_default();
        if !f.status.is_empty() {
            writeln!(out, "    status:  {}{code}", f.status)?;
        }
        if let Some(h) = &f.remote_host {
            writeln!(out, "    remote:  {h}")?;
        }
        if !f.diagnostic.is_empty() {
            writeln!(out, "    said:    {}", f.diagnostic)?;
        }
        writeln!(out, "    cause:   {}", f.cause)?;
        writeln!(out, "    fix:     {}", f.fix)?;
    }
    Ok(())
}

/// The reply code a reply line opens with: three digits, the first 2 to 5 and the second
/// 0 to 5 (RFC 5321 §4.2), then the end, a space or a `-`.
fn leading_reply_code(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    let ok = b.len() >= 3
        && (b'2'..=b'5').contains(&b[0])
        && (b'0'..=b'5').contains(&b[1])
        && b[2].is_ascii_digit()
        && b.get(3).is_none_or(|c| *c == b' ' || *c == b'-');
    ok.then(|| text[..3].parse().ok()).flatten()
}

/// `--reply`: one SMTP reply, e.g. `550 5.7.26 ...`, explained at `stage`.
fn explain_reply(reply: &str, stage: &str, as_json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let stage: Stage = stage.parse().map_err(|e| anyhow::anyhow!("--stage: {e}"))?;
    let text = reply.trim();
    let code = leading_reply_code(text).with_context(|| {
        format!(
            "--reply {text:?} does not start with an SMTP reply code (2xx-5xx, RFC 5321 §4.2); give it as the \
             server sent it, e.g. \"550 5.1.1 User unknown\""
        )
    })?;
    let rest = text[3..].trim_start_matches(['-', ' ']);
    let status = bounce::status_in(rest.split_whitespace().next().unwrap_or(""));
    let body = match &status {
        Some(s) => rest.trim_start().strip_prefix(s.as_str()).unwrap_or(rest).trim().to_string(),
        None => rest.to_string(),
    };
    let mut ev = Evidence::bare(stage, "");
    ev.reply = Some(ReplyEvidence { code, status, text: body });
    let x = explain(&ev);
    if as_json {
        serde_json::to_writer(&mut *out, &x)?;
        writeln!(out)?;
    } else {
        writeln!(out, "reason:  {} ({})", x.reason, if x.hard { "hard" } else { "soft" })?;
        writeln!(out, "status:  {}", x.status)?;
        writeln!(out, "scope:   {}; who acts: {}", x.scope, x.actor)?;
        writeln!(out, "cause:   {}", x.cause)?;
        writeln!(out, "fix:     {}", x.fix)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_splits_and_unquotes() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nx\n";
        assert!(is_mbox(mbox));
        let m = split_mbox(mbox);
        assert_eq!(m.len(), 2);
        assert!(m[0].windows(10).any(|w| w == b"From here\n"));
        assert!(!is_mbox(b"From: someone@example.com\n\nbody"));
    }
}
