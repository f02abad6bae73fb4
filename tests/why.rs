//! `homing why` end to end: the built binary reads bounces written for these tests (one per
//! kind of server, in `tests/why/`, all hand-made with `.example` names) from a temporary
//! directory, an mbox, a Maildir or stdin, and explains single SMTP replies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The hand-written messages, by file name.
const FIXTURES: &[(&str, &str)] = &[
    ("postfix-user-unknown.eml", include_str!("why/postfix-user-unknown.eml")),
    ("qmail.eml", include_str!("why/qmail.eml")),
    ("exim.eml", include_str!("why/exim.eml")),
    ("exim-custom-text.eml", include_str!("why/exim-custom-text.eml")),
    ("sendmail-after-data.eml", include_str!("why/sendmail-after-data.eml")),
    ("gmail-delay.eml", include_str!("why/gmail-delay.eml")),
    ("arf-abuse.eml", include_str!("why/arf-abuse.eml")),
    ("vacation.eml", include_str!("why/vacation.eml")),
    ("vacation-names-a-colleague.eml", include_str!("why/vacation-names-a-colleague.eml")),
    ("personal.eml", include_str!("why/personal.eml")),
    ("personal-lists-addresses.eml", include_str!("why/personal-lists-addresses.eml")),
];

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// What one run of `homing why` printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON objects printed, one per line.
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}\n{}", self.stderr))
            })
            .collect()
    }

    fn succeeded(&self) -> &Self {
        assert_eq!(self.code, Some(0), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// Runs `homing why ARGS`, feeding `stdin` (empty when `None`).
fn why(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_homing"))
        .arg("why")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run homing");
    let mut input = child.stdin.take().expect("stdin");
    // homing may stop reading early (over --max-size): a closed pipe is not a failure.
    if let Err(e) = input.write_all(stdin.unwrap_or_default())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        panic!("writing homing's stdin: {e}");
    }
    drop(input);
    let out = child.wait_with_output().expect("wait for homing");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary path as an argument (tempdirs have UTF-8 names).
fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

fn write(path: &Path, data: impl AsRef<[u8]>) -> PathBuf {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create directory");
    }
    std::fs::write(path, data).expect("write test message");
    path.to_path_buf()
}

/// `homing why --json` on one fixture: its one JSON line.
fn explain(name: &str) -> Value {
    explain_text(name, fixture(name))
}

fn explain_text(name: &str, text: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir.path().join(name), text);
    let run = why(&["--json", arg(&path)], None);
    let mut lines = run.succeeded().json();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    let v = lines.remove(0);
    assert_eq!(v["file"], path.display().to_string());
    assert!(v.get("message").is_none(), "a single message has no index: {v}");
    v
}

/// The one failed recipient of a report.
fn only_recipient(v: &Value) -> &Value {
    let r = v["recipients"].as_array().expect("recipients");
    assert_eq!(r.len(), 1, "{v:#}");
    &r[0]
}

#[test]
fn postfix_rfc3464_report_is_user_unknown() {
    let v = explain("postfix-user-unknown.eml");
    assert_eq!(v["kind"], "bounce");
    assert_eq!(v["reporting_mta"], "mx.sender.example");
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "bob@rcpt.example", "{r:#}");
    assert_eq!(r["reason"], "userunknown", "{r:#}");
    assert_eq!(r["status"], "5.1.1", "{r:#}");
    assert_eq!(r["replycode"], 550, "{r:#}");
    assert_eq!(r["rhost"], "mx1.rcpt.example", "{r:#}");
    assert_eq!(r["hard"], true, "{r:#}");
    assert_eq!(r["scope"], "recipient", "{r:#}");
    assert_eq!(
        r["diagnostic"],
        "550 5.1.1 <bob@rcpt.example>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert!(!r["rule"].as_str().unwrap_or("").is_empty(), "{r:#}");
}

#[test]
fn qmail_prose_bounce_explains_each_address() {
    let v = explain("qmail.eml");
    assert_eq!(v["kind"], "bounce");
    let r = v["recipients"].as_array().expect("recipients");
    assert_eq!(r.len(), 2, "{v:#}");
    assert_eq!(r[0]["recipient"], "carol@rcpt.example", "{v:#}");
    assert_eq!(r[0]["reason"], "mailboxfull", "{v:#}");
    assert_eq!(r[0]["status"], "5.2.2", "{v:#}");
    assert_eq!(r[0]["replycode"], 552, "{v:#}");
    assert_eq!(r[1]["recipient"], "dan@mail.sender.example", "{v:#}");
    assert_eq!(r[1]["reason"], "userunknown", "{v:#}");
    assert_eq!(r[1]["status"], "5.1.1", "{v:#}");
    assert_eq!(r[1]["replycode"], Value::Null, "qmail's local refusal quotes no reply code: {v:#}");
    assert_eq!(r[1]["hard"], true, "{v:#}");
}

#[test]
fn exim_prose_bounce_explains_each_address() {
    let v = explain("exim.eml");
    assert_eq!(v["kind"], "bounce");
    let r = v["recipients"].as_array().expect("recipients");
    let names: Vec<&str> = r.iter().filter_map(|r| r["recipient"].as_str()).collect();
    // The bounce's own To and Envelope-to (alice@sender.example) are not failures.
    assert_eq!(names, ["erin@rcpt.example", "fred@nowhere.example"], "{v:#}");
    assert_eq!(r[0]["reason"], "suspend", "{v:#}");
    assert_eq!(r[0]["status"], "5.2.1", "{v:#}");
    assert_eq!(r[0]["replycode"], 550, "{v:#}");
    assert_eq!(r[0]["rhost"], "mx.rcpt.example", "Exim names the remote host in its prose: {v:#}");
    assert_eq!(r[1]["reason"], "hostunknown", "{v:#}");
    assert_eq!(r[1]["rhost"], Value::Null, "no host was reached: {v:#}");
    assert_eq!(r[1]["status"], "5.0.912", "no code given: the reason's placeholder status: {v:#}");
    assert_eq!(r[1]["diagnostic"], "Unrouteable address", "{v:#}");
}

#[test]
fn exim_custom_text_falls_back_to_x_failed_recipients() {
    // A bounce_message_file that names no address: only the header says who failed.
    let v = explain("exim-custom-text.eml");
    assert_eq!(v["kind"], "bounce");
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "erin@rcpt.example", "{r:#}");
    assert_eq!(r["reason"], "userunknown", "{r:#}");
    assert_eq!(r["replycode"], 550, "{r:#}");
}

#[test]
fn exim_custom_text_status_comes_from_the_text() {
    let v = explain("exim-custom-text.eml");
    let r = only_recipient(&v);
    assert_eq!(r["status"], "5.1.1", "the server's own code, not a placeholder: {r:#}");
}

#[test]
fn sendmail_user_unknown_after_data_is_filtered() {
    let v = explain("sendmail-after-data.eml");
    assert_eq!(v["reporting_mta"], "relay.sender.example");
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "frank@rcpt.example", "{r:#}");
    // ">>> DATA" then "<<< 550 ... user unknown": the mailbox lookup passed at RCPT, so a
    // content filter answered.
    assert_eq!(r["reason"], "filtered", "{r:#}");
    assert_eq!(r["status"], "5.0.0", "{r:#}");
    assert_eq!(r["replycode"], 550, "{r:#}");
    assert_eq!(r["rhost"], "mx.rcpt.example", "{r:#}");
}

#[test]
fn sendmail_after_data_with_status_5_1_1_is_user_unknown() {
    let text = fixture("sendmail-after-data.eml").replace("Status: 5.0.0", "Status: 5.1.1");
    let v = explain_text("sendmail-5.1.1.eml", &text);
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "frank@rcpt.example", "{r:#}");
    assert_eq!(r["reason"], "userunknown", "a 5.1.x status names the address: {r:#}");
    assert_eq!(r["status"], "5.1.1", "{r:#}");
}

#[test]
fn sendmail_filtered_cause_agrees_with_the_reason() {
    let v = explain("sendmail-after-data.eml");
    let r = only_recipient(&v);
    assert_eq!(r["reason"], "filtered", "{r:#}");
    let cause = r["cause"].as_str().unwrap_or("");
    assert!(!cause.contains("does not exist"), "the cause contradicts reason filtered: {cause}");
}

#[test]
fn gmail_delay_is_expired_with_a_class_4_status() {
    let v = explain("gmail-delay.eml");
    assert_eq!(v["kind"], "bounce");
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "grace@rcpt.example", "{r:#}");
    assert_eq!(r["reason"], "expired", "{r:#}");
    let status = r["status"].as_str().unwrap_or("");
    assert!(status.starts_with("4."), "still retrying: status class 4, got {r:#}");
    assert_eq!(r["replycode"], Value::Null, "{r:#}");
}

#[test]
fn gmail_delay_is_soft() {
    let v = explain("gmail-delay.eml");
    let r = only_recipient(&v);
    assert_eq!(r["hard"], false, "a delay is not final: {r:#}");
}

#[test]
fn cause_quotes_no_reply_code_when_the_report_has_none() {
    for name in ["gmail-delay.eml", "exim.eml"] {
        let v = explain(name);
        for r in v["recipients"].as_array().expect("recipients") {
            let cause = r["cause"].as_str().unwrap_or("");
            assert!(!cause.contains("(0 "), "{name}: a reply code 0 in the cause: {cause}");
        }
    }
}

#[test]
fn arf_report_names_the_complaining_recipient() {
    let v = explain("arf-abuse.eml");
    assert_eq!(v["kind"], "feedback");
    let r = only_recipient(&v);
    // From Original-Rcpt-To, not the attached headers' To.
    assert_eq!(r["recipient"], "heidi@isp.example", "{r:#}");
    assert_eq!(r["reason"], "feedback", "{r:#}");
    assert_eq!(r["feedback_type"], "abuse", "{r:#}");
    assert_eq!(r["status"], "", "{r:#}");
    assert_eq!(r["hard"], false, "{r:#}");
}

#[test]
fn rfc3834_vacation_reply_is_an_auto_reply() {
    let v = explain("vacation.eml");
    assert_eq!(v["kind"], "auto_reply");
    let r = only_recipient(&v);
    assert_eq!(r["recipient"], "ivan@rcpt.example", "{r:#}");
    assert_eq!(r["reason"], "vacation", "{r:#}");
    assert_eq!(r["hard"], false, "{r:#}");
}

#[test]
fn vacation_reply_naming_a_colleague_is_still_an_auto_reply() {
    let v = explain("vacation-names-a-colleague.eml");
    assert_eq!(v["kind"], "auto_reply", "{v:#}");
    assert_eq!(only_recipient(&v)["recipient"], "ivan@rcpt.example", "{v:#}");
}

#[test]
fn personal_email_is_not_a_bounce() {
    let v = explain("personal.eml");
    assert_eq!(v["kind"], "not_a_bounce");
    assert_eq!(v["recipients"], serde_json::json!([]));
}

#[test]
fn personal_email_listing_addresses_is_not_a_bounce() {
    let v = explain("personal-lists-addresses.eml");
    assert_eq!(v["kind"], "not_a_bounce", "{v:#}");
    assert_eq!(v["recipients"], serde_json::json!([]));
}

/// Two bounces in mbox form (RFC 4155): `From ` separators, `>From ` quoting in a body.
fn mbox() -> String {
    let quoted = fixture("qmail.eml").replace("Minutes of Monday", ">From the minutes of Monday");
    format!(
        "From MAILER-DAEMON Mon Jan 15 10:00:05 2024\n{}\nFrom MAILER-DAEMON Mon Jan 15 10:00:06 2024\n{}\n",
        fixture("postfix-user-unknown.eml"),
        quoted
    )
}

#[test]
fn mbox_gives_one_line_per_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(&dir.path().join("bounces.mbox"), mbox());
    let run = why(&["--json", arg(&path)], None);
    let lines = run.succeeded().json();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["file"], path.display().to_string());
        assert_eq!(v["message"], i + 1);
    }
    assert_eq!(only_recipient(&lines[0])["recipient"], "bob@rcpt.example");
    let second: Vec<&str> = lines[1]["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(|r| r["recipient"].as_str())
        .collect();
    assert_eq!(second, ["carol@rcpt.example", "dan@mail.sender.example"]);
}

#[test]
fn mbox_larger_than_max_size_is_split_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = mbox();
    let path = write(&dir.path().join("bounces.mbox"), &text);
    // Each message fits, the whole file does not.
    let limit = (text.len() - 100).to_string();
    let run = why(&["--json", "--max-size", &limit, arg(&path)], None);
    assert_eq!(run.succeeded().json().len(), 2, "{}", run.stdout);
}

#[test]
fn maildir_is_read_recursively_and_tmp_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("Maildir");
    write(&md.join("cur/1705312805.M1P1.host:2,S"), fixture("postfix-user-unknown.eml"));
    write(&md.join("new/1705312806.M2P1.host"), fixture("arf-abuse.eml"));
    write(&md.join(".Bounces/new/1705312807.M3P1.host"), fixture("qmail.eml"));
    write(&md.join("tmp/1705312808.M4P1.host"), fixture("exim.eml"));
    std::fs::create_dir_all(md.join(".Bounces/cur")).expect("mkdir");
    let run = why(&["--json", arg(&md)], None);
    let lines = run.succeeded().json();
    let files: Vec<String> = lines
        .iter()
        .map(|v| v["file"].as_str().unwrap_or("").replace(&md.display().to_string(), ""))
        .collect();
    // Dot folders are Maildir++ subfolders, skipped like every hidden entry; tmp/ holds
    // messages still being written.
    assert_eq!(files, ["/cur/1705312805.M1P1.host:2,S", "/new/1705312806.M2P1.host"], "{}", run.stdout);
    assert_eq!(lines[0]["kind"], "bounce");
    assert_eq!(lines[1]["kind"], "feedback");
}

#[test]
fn stdin_is_read_without_inputs_and_for_dash() {
    // As it came over SMTP: CRLF line ends.
    let crlf = fixture("postfix-user-unknown.eml").replace('\n', "\r\n");
    for args in [&["--json"][..], &["--json", "-"][..]] {
        let run = why(args, Some(crlf.as_bytes()));
        let lines = run.succeeded().json();
        assert_eq!(lines.len(), 1, "{}", run.stdout);
        assert_eq!(lines[0]["file"], "-");
        let r = only_recipient(&lines[0]);
        assert_eq!(r["recipient"], "bob@rcpt.example", "{r:#}");
        assert_eq!(r["reason"], "userunknown", "{r:#}");
        assert_eq!(r["status"], "5.1.1", "{r:#}");
        assert_eq!(r["rhost"], "mx1.rcpt.example", "{r:#}");
    }
}

const DMARC: &str =
    "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy";

#[test]
fn reply_failing_dmarc_is_authfailure() {
    let run = why(&["--json", "--reply", DMARC], None);
    let lines = run.succeeded().json();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    let x = &lines[0];
    assert_eq!(x["reason"], "authfailure", "{x:#}");
    assert_eq!(x["status"], "5.7.26", "{x:#}");
    assert_eq!(x["hard"], true, "{x:#}");
    assert_eq!(x["evidence"]["reply"]["code"], 550, "{x:#}");
    assert_eq!(x["evidence"]["stage"], "rcpt", "the default stage: {x:#}");

    let run = why(&["--reply", DMARC, "--stage", "dot"], None);
    run.succeeded();
    assert!(run.stdout.contains("reason:  authfailure"), "{}", run.stdout);
    assert!(run.stdout.contains("cause:   ") && run.stdout.contains("DMARC"), "{}", run.stdout);
    assert!(run.stdout.contains("fix:     "), "{}", run.stdout);
}

#[test]
fn reply_without_a_reply_code_is_refused() {
    for garbage in ["hello world", "", "5", "5.7.26 no code"] {
        let run = why(&["--reply", garbage], None);
        assert_ne!(run.code, Some(0), "--reply {garbage:?} was accepted: {}", run.stdout);
        assert!(run.stderr.contains("does not start with an SMTP reply code"), "{garbage:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{:?}", garbage.trim())),
            "the error quotes the reply: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let run = why(&["--reply", DMARC, "--stage", "lunch"], None);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("--stage") && run.stderr.contains("lunch"), "{}", run.stderr);
}

#[test]
fn message_over_max_size_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = write(&dir.path().join("a-big.eml"), fixture("postfix-user-unknown.eml"));
    let small = write(&dir.path().join("b-small.eml"), fixture("personal.eml"));
    let args = ["--json", "--max-size", "1000", arg(dir.path())];
    let run = why(&args, None);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let lines = run.json();
    assert_eq!(lines.len(), 2, "the other file is still read: {}", run.stdout);
    assert_eq!(lines[0]["file"], big.display().to_string());
    let error = lines[0]["error"].as_str().unwrap_or("");
    assert!(error.contains("--max-size limit of 1000 bytes"), "{error}");
    assert_eq!(lines[0]["recipients"], serde_json::json!([]));
    assert_eq!(lines[1]["file"], small.display().to_string());
    assert_eq!(lines[1]["kind"], "not_a_bounce");

    // In text, the error goes to stderr; on stdin the same limit applies.
    let run = why(&["--max-size", "1000", arg(&big)], None);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("a-big.eml") && run.stderr.contains("limit of 1000 bytes"), "{}", run.stderr);
    let run = why(&["--max-size", "1000"], Some(fixture("postfix-user-unknown.eml").as_bytes()));
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("limit of 1000 bytes"), "{}", run.stderr);
}

#[test]
fn largest_max_size_still_reads_stdin() {
    // u64::MAX + 1 bytes to read once overflowed: a panic in debug builds, nothing read in
    // release builds.
    let max = u64::MAX.to_string();
    let run = why(&["--json", "--max-size", &max], Some(fixture("postfix-user-unknown.eml").as_bytes()));
    let lines = run.succeeded().json();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert_eq!(only_recipient(&lines[0])["recipient"], "bob@rcpt.example");
}

#[test]
fn missing_input_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such.eml");
    let run = why(&[arg(&missing)], None);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains(&missing.display().to_string()), "{}", run.stderr);
}

/// Deterministic noise: every byte value, NULs, lone CRs, invalid UTF-8.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 56) as u8
        })
        .collect()
}

#[test]
fn binary_garbage_is_not_a_bounce() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, len) in [0usize, 1, 77, 4096, 200_000].iter().enumerate() {
        write(&dir.path().join(format!("noise-{i}.bin")), noise(*len, i as u64));
    }
    let run = why(&["--json", arg(dir.path())], None);
    let lines = run.succeeded().json();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    for v in &lines {
        assert_eq!(v["kind"], "not_a_bounce", "{v}");
        assert_eq!(v["recipients"], serde_json::json!([]), "{v}");
    }
}

#[test]
fn truncated_mime_is_read_best_effort() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = fixture("postfix-user-unknown.eml").as_bytes();
    let report_end =
        fixture("postfix-user-unknown.eml").find("Content-Description: Undelivered").expect("marker");
    let cuts: Vec<usize> = (0..full.len()).step_by(61).chain([report_end]).collect();
    for cut in &cuts {
        write(&dir.path().join(format!("cut-{cut:05}.eml")), &full[..*cut]);
    }
    // A part header cut mid-line, a base64 body cut mid-quantum, a boundary never closed.
    write(
        &dir.path().join("open-boundary.eml"),
        "Content-Type: multipart/report; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\
         Content-Transfer-Encoding: base64\n\nVGhpcyBpcyB0aGUgbWFpbCBzeXN0ZW0=\nVGhp\n--b\nContent-Ty",
    );
    let run = why(&["--json", arg(dir.path())], None);
    let lines = run.succeeded().json();
    assert_eq!(lines.len(), cuts.len() + 1, "{}", run.stdout);
    for v in &lines {
        // Cuts inside the header section make an auto_reply of the bounce: a known bug,
        // see bounce_headers_alone_are_not_a_vacation.
        if v["kind"] == "bounce" {
            for r in v["recipients"].as_array().expect("recipients") {
                assert_eq!(r["recipient"], "bob@rcpt.example", "{v}");
            }
        } else {
            assert!(matches!(v["kind"].as_str(), Some("not_a_bounce" | "auto_reply")), "{v}");
        }
    }
    // Cut after the delivery-status part: everything about the failure is there.
    let whole = lines
        .iter()
        .find(|v| v["file"].as_str().is_some_and(|f| f.ends_with(&format!("cut-{report_end:05}.eml"))))
        .expect("the cut after the report");
    let r = only_recipient(whole);
    assert_eq!((&r["reason"], &r["status"]), (&Value::from("userunknown"), &Value::from("5.1.1")), "{r:#}");
}

#[test]
fn bounce_headers_alone_are_not_a_vacation() {
    let full = fixture("postfix-user-unknown.eml");
    let headers = &full[..full.find("\n\n").expect("header end") + 2];
    let v = explain_text("headers-only.eml", headers);
    assert_ne!(
        v["kind"], "auto_reply",
        "a mailer-daemon's \"Undelivered Mail\" is no vacation notice: {v:#}"
    );
    for r in v["recipients"].as_array().expect("recipients") {
        assert_ne!(r["recipient"], "MAILER-DAEMON@mx.sender.example", "{v:#}");
    }
}

#[test]
fn text_output_names_reason_cause_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bounce = write(&dir.path().join("1.eml"), fixture("postfix-user-unknown.eml"));
    write(&dir.path().join("2.eml"), fixture("arf-abuse.eml"));
    write(&dir.path().join("3.eml"), fixture("personal.eml"));
    let run = why(&[arg(dir.path())], None);
    run.succeeded();
    let out = &run.stdout;
    assert!(out.contains(&format!("{}: 1 failed recipient(s).", bounce.display())), "{out}");
    assert!(out.contains("  bob@rcpt.example\n"), "{out}");
    assert!(out.contains("    reason:  userunknown (hard"), "{out}");
    assert!(out.contains("    status:  5.1.1, reply 550\n"), "{out}");
    assert!(out.contains("    remote:  mx1.rcpt.example\n"), "{out}");
    assert!(out.contains("    cause:   The address does not exist at rcpt.example"), "{out}");
    assert!(out.contains("    fix:     The sender should correct the address"), "{out}");
    assert!(
        out.contains("2.eml: a complaint (feedback report).\n  heidi@isp.example\n    reason:  feedback"),
        "{out}"
    );
    assert!(out.contains("3.eml: not a bounce"), "{out}");
}

/// `--suppress` lists what the reports prove dead and every complaint, and nothing else;
/// `homing suppress list` (same config) shows them with the report as their source.
#[test]
fn suppress_adds_dead_addresses_and_complaints_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let config = write(&dir.path().join("homing.toml"), format!("spool_dir = {:?}\n", arg(&spool)));
    let reports = dir.path().join("reports");
    write(&reports.join("dead.eml"), fixture("postfix-user-unknown.eml"));
    write(&reports.join("complaint.eml"), fixture("arf-abuse.eml"));
    write(&reports.join("delay.eml"), fixture("gmail-delay.eml"));
    let run = why(&["--json", "--suppress", "--config", arg(&config), arg(&reports)], None);
    run.succeeded();
    assert!(run.stderr.contains("added to the suppression list"), "{}", run.stderr);

    let out = Command::new(env!("CARGO_BIN_EXE_homing"))
        .args(["suppress", "list", "--json", "--config", arg(&config)])
        .output()
        .expect("run homing suppress list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let reasons: Vec<&str> = listed.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"userunknown"), "{listed:?}");
    assert!(reasons.contains(&"feedback"), "{listed:?}");
    assert!(!reasons.contains(&"expired"), "a delay never suppresses: {listed:?}");
    assert!(
        listed.iter().all(|e| e["source"].as_str().is_some_and(|s| s.starts_with("report "))),
        "{listed:?}"
    );

    // Reading the same reports again adds nothing.
    let again = why(&["--json", "--suppress", "--config", arg(&config), arg(&reports)], None);
    again.succeeded();
    assert!(again.stderr.contains("0 address(es) added"), "{}", again.stderr);
}

/// On a terminal, reading many messages shows a progress line on stderr (and never on a
/// pipe: scripts read stdout and stderr clean). `script` gives homing a real terminal.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox: String = (0..300)
        .map(|i| {
            format!(
                "From a@example.org Mon Jan  1 00:00:00 2024\n{}\n",
                fixture("qmail.eml").replace("\r\n", "\n") + &format!("\nmessage {i}\n")
            )
        })
        .collect();
    let path = write(&dir.path().join("bounces.mbox"), mbox);
    let piped = why(&["--json", arg(&path)], None);
    piped.succeeded();
    assert_eq!(piped.json().len(), 300);
    assert!(!piped.stderr.contains("messages ("), "{}", piped.stderr);

    let command = format!("{} why --json {} > /dev/null", env!("CARGO_BIN_EXE_homing"), arg(&path));
    let out = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("run script(1)");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("homing why: 300/300 messages (100%)"), "{terminal}");
}
