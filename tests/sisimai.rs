//! Interop with the de facto bounce classifier: every bounce homing sends must be classified
//! for the right reason by Debian's Sisimai (`libsisimai-perl`, which `scripts/test`
//! installs). homing names failure reasons in Sisimai's vocabulary, and whoever receives
//! its bounces may well sort them with Sisimai. Without perl and Sisimai this test fails.
//!
//! Each case is a real message through the real server: homing delivers to a scripted
//! receiver (or fails in DNS), bounces, and delivers the bounce to the sender's MX, where it
//! is saved as a mailbox file would be and handed to Sisimai. Addresses: 127.0.70.0/24.
//!
//! | case | recipient domain | what the remote side does |
//! |---|---|---|
//! | userunknown | unknown.test (.21) | `550 5.1.1` at RCPT, Postfix's wording |
//! | mailboxfull | full.test (.22) | `552 5.2.2` at RCPT; homing retries, then expires it |
//! | hostunknown | nxdomain.test | the domain does not exist |
//! | notaccept | nullmx.test | null MX (RFC 7505) |
//! | blocked | blocked.test (.23) | `554 5.7.1` at RCPT naming a DNSBL, Postfix's wording; homing retries, then expires it |
//! | authfailure | auth.test (.24) | `550 5.7.26` after DATA, Gmail's wording |
//! | expired | expired.test (.99) | nothing listens; homing retries, then expires it |

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use support::{Homing, Setup, count, send};

const PORT: u16 = 2625;
const WAIT: Duration = Duration::from_secs(40);

/// One kind of failure: the recipient to send to and the reason Sisimai must report.
struct Case {
    rcpt: &'static str,
    reason: &'static str,
    /// What Sisimai reports instead while it lacks `reason` altogether (Sisimai 4 has no
    /// `authfailure`; its status table maps X.7.26 to `securityerror`).
    without: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case { rcpt: "nobody@unknown.test", reason: "userunknown", without: None },
    Case { rcpt: "stuffed@full.test", reason: "mailboxfull", without: None },
    Case { rcpt: "anyone@nxdomain.test", reason: "hostunknown", without: None },
    Case { rcpt: "anyone@nullmx.test", reason: "notaccept", without: None },
    Case { rcpt: "listed@blocked.test", reason: "blocked", without: None },
    Case { rcpt: "strict@auth.test", reason: "authfailure", without: Some("securityerror") },
    Case { rcpt: "patient@expired.test", reason: "expired", without: None },
];

/// Sisimai's verdict on one recipient of one bounce.
#[derive(Debug)]
struct Verdict {
    file: String,
    reason: String,
    status: String,
    agent: String,
}

/// What Sisimai said: the reasons it knows, and its verdicts by recipient.
struct Sisimai {
    reasons: Vec<String>,
    verdicts: BTreeMap<String, Vec<Verdict>>,
    /// Its output as printed, for failure messages.
    raw: String,
}

/// Runs Sisimai over each file.
fn sisimai(files: &[PathBuf]) -> Sisimai {
    // First line: the reasons this Sisimai knows. Then one line per recipient: file,
    // recipient, reason, status, the module that parsed it.
    const SCRIPT: &str = r#"
        use strict; use warnings; use Sisimai;
        print join("\t", "reasons", sort map { lc } keys %{ Sisimai->reason }), "\n";
        for my $f (@ARGV) {
            my $list = Sisimai->make($f) // [];
            print "$f\t-\tunparsed\t-\t-\n" unless @$list;
            for my $d (@$list) {
                print join("\t", $f, $d->recipient->address, $d->reason,
                    $d->deliverystatus, $d->smtpagent), "\n";
            }
        }
    "#;
    let out = Command::new("perl").arg("-e").arg(SCRIPT).args(files).output().unwrap_or_else(|e| {
        panic!("cannot run perl ({e}); install Debian's libsisimai-perl (scripts/test does)")
    });
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Sisimai failed ({}); install Debian's libsisimai-perl (scripts/test does):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = raw.lines();
    let reasons: Vec<String> = match lines.next().map(|l| l.split('\t').collect::<Vec<_>>()) {
        Some(fields) if fields.first() == Some(&"reasons") => {
            fields[1..].iter().map(|r| r.to_string()).collect()
        }
        _ => panic!("Sisimai did not list its reasons:\n{raw}"),
    };
    let mut verdicts: BTreeMap<String, Vec<Verdict>> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let [file, rcpt, reason, status, agent] = f[..] else {
            panic!("unexpected Sisimai output line {line:?}");
        };
        verdicts.entry(rcpt.to_string()).or_default().push(Verdict {
            file: file.to_string(),
            reason: reason.to_string(),
            status: status.to_string(),
            agent: agent.to_string(),
        });
    }
    Sisimai { reasons, verdicts, raw }
}

/// Saves a message as a local delivery agent writes it to a mailbox file: LF line endings.
fn save(dir: &Path, n: usize, data: &[u8]) -> PathBuf {
    let path = dir.join(format!("{n:02}.eml"));
    let text = String::from_utf8_lossy(data).replace("\r\n", "\n");
    std::fs::write(&path, text).expect("write bounce");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn sisimai_classifies_every_bounce_homing_sends() {
    let zones = [
        ("sender.test", "@ MX 10 mx\nmx A 127.0.70.30\n"),
        ("unknown.test", "@ MX 10 mx\nmx A 127.0.70.21\n"),
        ("full.test", "@ MX 10 mx\nmx A 127.0.70.22\n"),
        ("nullmx.test", "@ MX 0 .\n@ A 127.0.70.25\n"),
        ("blocked.test", "@ MX 10 mx\nmx A 127.0.70.23\n"),
        ("auth.test", "@ MX 10 mx\nmx A 127.0.70.24\n"),
        ("expired.test", "@ MX 10 mx\nmx A 127.0.70.99\n"),
    ];
    let mut b = TestDns::builder().empty_zone("test.");
    for (origin, body) in zones {
        b = b.zone(zone_header(origin) + body);
    }
    let dns = b.start().await.expect("dns");

    let at = |ip: &str| format!("127.0.70.{ip}:{PORT}").parse().expect("address");
    let rcpt_reply = |reply: fn(&str) -> String| Script::default().rcpt(move |a| Some(reply(a)));
    let _unknown = Receiver::start(
        at("21"),
        rcpt_reply(|a| {
            format!("550 5.1.1 <{a}>: Recipient address rejected: User unknown in local recipient table")
        }),
    )
    .await
    .expect("receiver");
    let _full = Receiver::start(at("22"), rcpt_reply(|a| format!("552 5.2.2 <{a}>: Mailbox full")))
        .await
        .expect("receiver");
    let _blocked = Receiver::start(
        at("23"),
        rcpt_reply(|_| {
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
                .to_string()
        }),
    )
    .await
    .expect("receiver");
    let _auth = Receiver::start(
        at("24"),
        Script::default().data_replies([
            "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n\
             550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n\
             550-5.7.26 authenticate with at least one of SPF or DKIM. For more\n\
             550-5.7.26 information, go to\n\
             550 5.7.26  https://support.google.com/mail/answer/81126#authentication mx.auth.test - gsmtp",
        ]),
    )
    .await
    .expect("receiver");
    let mailbox = Receiver::start(at("30"), Script::default()).await.expect("receiver");

    let mut setup = Setup::new("127.0.70.1:2525", dns.addr, PORT);
    setup.queue =
        "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\nmax_lifetime = \"3s\"\ndelay_warning = \"0s\"\n";
    let h = Homing::start(&setup);
    for case in CASES {
        send(h.addr, "alice@sender.test", &[&format!("<{}>", case.rcpt)], &format!("to {}", case.rcpt));
    }
    let bounces = mailbox.wait_for(CASES.len(), WAIT).await;
    assert_eq!(bounces.len(), CASES.len(), "one bounce per case\n{}", h.stderr());
    let ev = h.wait_events(WAIT, |e| count(e, "bounced") + count(e, "expired") == CASES.len());
    assert_eq!(
        count(&ev, "expired"),
        3,
        "mailboxfull, blocked and expired are retried until they expire: {ev:#?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> = bounces.iter().enumerate().map(|(n, m)| save(dir.path(), n, &m.data)).collect();
    let sisimai = sisimai(&files);
    let raw = &sisimai.raw;
    println!("Sisimai's verdicts (cargo test -- --nocapture shows them):\n{raw}");
    for case in CASES {
        let expected = match case.without {
            Some(instead) if !sisimai.reasons.iter().any(|r| r == case.reason) => instead,
            _ => case.reason,
        };
        let got = sisimai.verdicts.get(case.rcpt).map(Vec::as_slice).unwrap_or_default();
        let [v] = got else {
            panic!("Sisimai found {} results for {}, expected one:\n{raw}", got.len(), case.rcpt);
        };
        assert_eq!(
            v.reason,
            expected,
            "Sisimai classifies homing's bounce for {} as {} (status {}, parsed by {}):\n{}",
            case.rcpt,
            v.reason,
            v.status,
            v.agent,
            std::fs::read_to_string(&v.file).unwrap_or_default()
        );
    }
    assert_eq!(sisimai.verdicts.len(), CASES.len(), "no other recipients:\n{raw}");
}
