//! Interop with real peers on loopback: swaks and Postfix send to homing, homing sends to
//! Postfix. Each test owns its addresses in 127.0.20.0/24 and its own Postfix instance
//! (tests/peers/postfix.sh), so the tests run in parallel:
//!
//! | test | homing | Postfix | receivers |
//! |---|---|---|---|
//! | swaks_starttls_into_homing | .1 | | .21 rx.test |
//! | postfix_relays_into_homing_over_tls | .12 | .2 | .22 rx.test |
//! | homing_delivers_into_postfix_with_opportunistic_tls | .13 | .3 mx.pf.test | .23 behind Postfix |
//! | postfix_refusal_bounces_with_its_exact_reply | .14 | .4 mx.pf.test | .24 behind Postfix, .34 sender.test |

mod support;

use std::process::Command;
use std::time::Duration;

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use serde_json::Value;
use support::{Homing, Postfix, Setup, count, send};

/// homing's delivery port, so every MX and Postfix-relayed receiver listens here.
const PORT: u16 = 2625;
const WAIT: Duration = Duration::from_secs(20);

async fn dns(zones: &[(&str, &str)]) -> TestDns {
    let mut b = TestDns::builder().empty_zone("test.");
    for (origin, body) in zones {
        b = b.zone(zone_header(origin) + body);
    }
    b.start().await.expect("dns")
}

async fn receiver(ip: &str) -> Receiver {
    Receiver::start(format!("{ip}:{PORT}").parse().expect("address"), Script::default())
        .await
        .expect("receiver")
}

/// Runs swaks; returns whether it succeeded and its transcript (stdout and stderr).
fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--helo", "client.test", "--timeout", "20"])
        .args(args)
        .output()
        .expect("run swaks (scripts/test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The message's header section with folded lines joined (RFC 5322 §2.2.3).
fn unfolded_header(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    head.replace("\r\n ", " ").replace("\r\n\t", " ")
}

/// The `Received:` fields of a header section from `unfolded_header`, topmost first.
fn received_fields(head: &str) -> Vec<&str> {
    head.split("\r\n").filter(|l| l.starts_with("Received:")).collect()
}

/// The one event of `kind`, failing with every event when there is not exactly one.
fn only<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["event"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} event expected: {events:#?}");
    found[0]
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
fn queued_as(reply: &str) -> &str {
    reply.split("queued as ").nth(1).map(str::trim).unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_starttls_into_homing() {
    let dns = dns(&[("rx.test", "@ MX 10 mx\nmx A 127.0.20.21\n")]).await;
    let rx = receiver("127.0.20.21").await;
    let h = Homing::start(&Setup::new("127.0.20.1:2525", dns.addr, PORT));

    let (ok, transcript) = swaks(&[
        "--server",
        "127.0.20.1:2525",
        "--tls",
        "--from",
        "a@sender.test",
        "--to",
        "b@rx.test",
        "--header",
        "Subject: swaks over STARTTLS",
    ]);
    assert!(ok, "swaks failed:\n{transcript}");
    let lines: Vec<&str> = transcript.lines().collect();
    // swaks marks plaintext lines with -> and <-, lines inside TLS with ~> and <~.
    let starttls =
        lines.iter().position(|l| l.trim() == "-> STARTTLS").unwrap_or_else(|| panic!("{transcript}"));
    assert!(lines.get(starttls + 1).is_some_and(|l| l.starts_with("<-  220 2.0.0 ")), "{transcript}");
    let started = lines
        .iter()
        .find_map(|l| l.strip_prefix("=== TLS started with cipher "))
        .unwrap_or_else(|| panic!("no TLS negotiation in:\n{transcript}"));
    let version = started.split(':').next().unwrap_or_default();
    assert!(version.starts_with("TLSv1."), "{started}");
    let dot = lines.iter().position(|l| l.trim() == "~> .").unwrap_or_else(|| panic!("{transcript}"));
    let reply = lines.get(dot + 1).map(|l| l.trim()).unwrap_or_default();
    assert!(reply.starts_with("<~  250 2.0.0 Ok: queued as "), "reply to the dot: {transcript}");

    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{}", h.stderr());
    assert_eq!(got[0].mail_from, "a@sender.test");
    assert_eq!(got[0].rcpt_to, vec!["b@rx.test".to_string()]);
    let head = unfolded_header(&got[0].data_text());
    let received = received_fields(&head);
    assert_eq!(received.len(), 1, "{head}");
    assert!(
        received[0]
            .starts_with("Received: from client.test ([127.0.0.1]) by homing.test (homing) with ESMTPS id "),
        "{head}"
    );
    assert!(received[0].contains(&format!("version={version} ")), "names {version}: {head}");
    assert!(head.contains("Subject: swaks over STARTTLS"), "{head}");

    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 1);
    let r = only(&ev, "received");
    assert_eq!(r["queue_id"], queued_as(reply), "{r}");
    let tls = r["tls"].as_str().unwrap_or_else(|| panic!("received without TLS: {r}"));
    assert!(tls.starts_with(&format!("version={version} cipher=")), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_relays_into_homing_over_tls() {
    let dns = dns(&[("rx.test", "@ MX 10 mx\nmx A 127.0.20.22\n")]).await;
    let rx = receiver("127.0.20.22").await;
    let h = Homing::start(&Setup::new("127.0.20.12:2525", dns.addr, PORT));
    let pf = Postfix::start("pf2", "127.0.20.2:2625", &["relayhost = [127.0.20.12]:2525"]);

    let (ok, transcript) = swaks(&[
        "--server",
        "127.0.20.2:2625",
        "--from",
        "a@sender.test",
        "--to",
        "b@rx.test",
        "--header",
        "Subject: through Postfix",
    ]);
    assert!(ok, "swaks failed:\n{transcript}");
    let accepted = transcript
        .lines()
        .find_map(|l| l.trim().strip_prefix("<-  250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("Postfix did not queue it:\n{transcript}"));
    let pf_id = accepted.trim().to_string();

    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "Postfix log:\n{}\nhoming:\n{}", pf.log(), h.stderr());
    assert_eq!(got[0].mail_from, "a@sender.test");
    assert_eq!(got[0].rcpt_to, vec!["b@rx.test".to_string()]);
    let head = unfolded_header(&got[0].data_text());
    let received = received_fields(&head);
    assert_eq!(received.len(), 2, "homing's and Postfix's: {head}");
    assert!(
        received[0]
            .starts_with("Received: from pf2.test ([127.0.20.2]) by homing.test (homing) with ESMTPS id "),
        "{head}"
    );
    assert!(received[1].starts_with("Received: from client.test (unknown [127.0.0.1])"), "{head}");
    assert!(received[1].contains(&format!("by pf2.test (Postfix) with ESMTP id {pf_id} ")), "{head}");

    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 1);
    let r = only(&ev, "received");
    assert_eq!(r["peer"], "127.0.20.2", "{r}");
    assert_eq!(r["helo"], "pf2.test", "{r}");
    let tls = r["tls"].as_str().unwrap_or_else(|| panic!("Postfix did not use STARTTLS: {r}"));
    let homing_id = r["queue_id"].as_str().unwrap_or_default();

    let sent = format!("{pf_id}: to=<b@rx.test>, relay=127.0.20.12[127.0.20.12]:2525,");
    let log = pf.wait_log(WAIT, |l| l.contains(&sent));
    let line = log.lines().find(|l| l.contains(&sent)).unwrap_or_default();
    assert!(line.contains(&format!("status=sent (250 2.0.0 Ok: queued as {homing_id})")), "{line}");
    let version = tls.strip_prefix("version=").and_then(|t| t.split(' ').next()).unwrap_or_default();
    let handshake =
        format!("TLS connection established to 127.0.20.12[127.0.20.12]:2525: {version} with cipher");
    assert!(log.contains(&handshake), "wanted {handshake:?} in:\n{log}");
}

/// Postfix as the MX of pf.test: accepts pf.test and relays it to `relay_to`.
fn pf_mx(name: &str, listen: &str, relay_to: &str, extra: &[&str]) -> Postfix {
    let transport = format!("transport_maps = inline:{{ pf.test=smtp:[{relay_to}]:{PORT} }}");
    let mut params = vec!["relay_domains = pf.test", transport.as_str()];
    params.extend_from_slice(extra);
    Postfix::start(name, listen, &params)
}

#[tokio::test(flavor = "multi_thread")]
async fn homing_delivers_into_postfix_with_opportunistic_tls() {
    let dns = dns(&[("pf.test", "@ MX 10 mx\nmx A 127.0.20.3\n")]).await;
    let rx = receiver("127.0.20.23").await;
    let pf = pf_mx("pf3", &format!("127.0.20.3:{PORT}"), "127.0.20.23", &[]);
    let h = Homing::start(&Setup::new("127.0.20.13:2525", dns.addr, PORT));

    send(h.addr, "alice@sender.test", &["<someone@pf.test>"], "to Postfix");
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "Postfix log:\n{}\nhoming:\n{}", pf.log(), h.stderr());
    assert_eq!(got[0].mail_from, "alice@sender.test");
    assert_eq!(got[0].rcpt_to, vec!["someone@pf.test".to_string()]);
    assert_eq!(got[0].helo, "pf3.test");
    let head = unfolded_header(&got[0].data_text());
    let received = received_fields(&head);
    assert_eq!(received.len(), 2, "Postfix's and homing's: {head}");
    assert!(received[0].starts_with("Received: from homing.test ("), "{head}");
    assert!(received[0].contains("by pf3.test (Postfix) with ESMTPS id "), "Postfix saw TLS: {head}");
    assert!(received[1].contains("by homing.test (homing) with ESMTP id "), "{head}");

    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 1);
    let attempt = only(&ev, "attempt");
    assert_eq!(attempt["mx"], "mx.pf.test", "{attempt}");
    assert_eq!(attempt["ip"], "127.0.20.3", "{attempt}");
    let tls = attempt["tls"].as_str().unwrap_or_else(|| panic!("homing did not use STARTTLS: {attempt}"));
    assert!(tls.starts_with("TLSv1."), "{attempt}");
    assert!(
        tls.ends_with("(certificate not verified: invalid peer certificate: UnknownIssuer)"),
        "the self-signed certificate is recorded as untrusted: {attempt}"
    );
    let delivered = only(&ev, "delivered");
    assert_eq!(delivered["rcpt"], "someone@pf.test", "{delivered}");
    assert_eq!(delivered["result"]["tls"], tls, "{delivered}");
    let reply = delivered["result"]["reply"].as_str().unwrap_or_default();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{delivered}");
    let pf_id = queued_as(reply);

    let version = tls.split(' ').next().unwrap_or_default();
    let sent = format!("{pf_id}: to=<someone@pf.test>, relay=127.0.20.23[127.0.20.23]:{PORT},");
    let log = pf.wait_log(WAIT, |l| l.contains(&sent));
    let line = log.lines().find(|l| l.contains(&sent)).unwrap_or_default();
    assert!(line.contains("status=sent (250 2.0.0 Ok: queued)"), "{line}");
    let handshake = format!("TLS connection established from unknown[127.0.0.1]: {version} with cipher");
    assert!(log.contains(&handshake), "wanted {handshake:?} in:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_refusal_bounces_with_its_exact_reply() {
    let dns = dns(&[
        ("pf.test", "@ MX 10 mx\nmx A 127.0.20.4\n"),
        ("sender.test", "@ MX 10 mx\nmx A 127.0.20.34\n"),
    ])
    .await;
    let rx = receiver("127.0.20.24").await;
    let mailbox = receiver("127.0.20.34").await;
    let pf = pf_mx(
        "pf4",
        &format!("127.0.20.4:{PORT}"),
        "127.0.20.24",
        &["relay_recipient_maps = inline:{ someone@pf.test=ok }"],
    );
    let h = Homing::start(&Setup::new("127.0.20.14:2525", dns.addr, PORT));

    send(h.addr, "alice@sender.test", &["<nobody@pf.test>", "<someone@pf.test>"], "one is unknown");
    let dsn = mailbox.wait_for(1, WAIT).await;
    assert_eq!(dsn.len(), 1, "Postfix log:\n{}\nhoming's events:\n{:#?}", pf.log(), h.events());
    assert_eq!(dsn[0].mail_from, "", "DSNs come from the null sender");
    assert_eq!(dsn[0].rcpt_to, vec!["alice@sender.test".to_string()]);

    // Postfix's own record of what it answered.
    let log = pf.wait_log(WAIT, |l| l.contains("NOQUEUE: reject: RCPT"));
    let line = log.lines().find(|l| l.contains("NOQUEUE: reject: RCPT")).unwrap_or_default();
    // `… NOQUEUE: reject: RCPT from unknown[IP]: REPLY; from=<…> to=<…> …`
    let said = line
        .split_once("NOQUEUE: reject: RCPT from ")
        .and_then(|(_, r)| r.split_once("]: "))
        .and_then(|(_, r)| r.split_once("; from="))
        .map(|(reply, _)| reply)
        .unwrap_or_default();
    assert_eq!(
        said, "550 5.1.1 <nobody@pf.test>: Recipient address rejected: User unknown in relay recipient table",
        "{line}"
    );

    let text = dsn[0].data_text();
    let report = text.replace("\r\n ", " ").replace("\r\n\t", " ");
    assert!(report.contains("Final-Recipient: rfc822; nobody@pf.test\r\n"), "{text}");
    assert!(report.contains("Action: failed\r\n"), "{text}");
    assert!(report.contains("Status: 5.1.1\r\n"), "{text}");
    assert!(report.contains(&format!("Diagnostic-Code: smtp; {said}\r\n")), "{text}");
    assert!(!report.contains("Final-Recipient: rfc822; someone@pf.test"), "someone was delivered: {text}");

    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{}", pf.log());
    assert_eq!(got[0].rcpt_to, vec!["someone@pf.test".to_string()]);

    // The DSN is a message of its own, so its delivery is a second `delivered` event.
    let ev = h.wait_events(WAIT, |e| {
        e.iter().any(|e| e["event"] == "delivered" && e["rcpt"] == "someone@pf.test")
            && count(e, "bounced") == 1
    });
    let bounced = only(&ev, "bounced");
    assert_eq!(bounced["rcpt"], "nobody@pf.test", "{bounced}");
    let explanation = &bounced["result"]["explanation"];
    assert_eq!(explanation["reason"], "userunknown", "{bounced}");
    assert_eq!(explanation["status"], "5.1.1", "{bounced}");
    assert_eq!(explanation["hard"], true, "{bounced}");
    let attempt = ev.iter().find(|e| e["event"] == "attempt" && e["ip"] == "127.0.20.4").expect("attempt");
    let replies = attempt["recipients"].to_string();
    assert!(replies.contains(said), "the attempt records Postfix's reply: {attempt}");
}
