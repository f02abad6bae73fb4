//! End to end on loopback: a real homing process, an in-process DNS server (hickory) and
//! scripted SMTP receivers. Each test uses its own 127.0.N.0/24 so tests run in parallel.

mod support;

use std::time::Duration;

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use support::{Homing, Setup, count, send};

const PORT: u16 = 2625;
const WAIT: Duration = Duration::from_secs(20);

fn zone(origin: &str, body: &str) -> String {
    zone_header(origin) + body
}

async fn dns(zones: Vec<String>) -> TestDns {
    let mut b = TestDns::builder().empty_zone("test.");
    for z in zones {
        b = b.zone(z);
    }
    b.servfail("servfail.test").start().await.expect("dns")
}

fn sender_zone(net: u8) -> String {
    zone("sender.test", &format!("@ MX 10 mx\nmx A 127.0.{net}.30\n"))
}

async fn sender_box(net: u8) -> Receiver {
    Receiver::start(format!("127.0.{net}.30:{PORT}").parse().unwrap(), Script::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_through_mx_with_trace_events() {
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.1.21\n")]).await;
    let rx = Receiver::start(format!("127.0.1.21:{PORT}").parse().unwrap(), Script::default()).await.unwrap();
    let h = Homing::start(&Setup::new("127.0.1.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<bob@rx.test>"], "hello");
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{:#?}\n{}", rx.transcript(), h.stderr());
    assert_eq!(got[0].mail_from, "alice@sender.test");
    assert_eq!(got[0].rcpt_to, vec!["bob@rx.test".to_string()]);
    let text = got[0].data_text();
    assert!(text.starts_with("Received: from client.test"), "{text}");
    assert!(text.contains("by homing.test"), "{text}");
    assert!(text.contains("Subject: hello"), "{text}");
    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 1);
    let qid = ev.iter().find(|e| e["event"] == "received").unwrap()["queue_id"].clone();
    let mid = ev.iter().find(|e| e["event"] == "received").unwrap()["message_id"].clone();
    assert!(mid.as_str().is_some_and(|m| m.starts_with('<')), "{ev:#?}");
    for e in &ev {
        assert_eq!(e["queue_id"], qid, "every event names the queue id: {e}");
        assert_eq!(e["message_id"], mid, "every event names the Message-ID: {e}");
    }
    let attempt = ev.iter().find(|e| e["event"] == "attempt").unwrap();
    assert_eq!(attempt["mx"], "mx1.rx.test");
    assert_eq!(attempt["ip"], "127.0.1.21");
}

#[tokio::test(flavor = "multi_thread")]
async fn next_mx_is_used_when_the_first_refuses() {
    // Best MX: no listener. Second: answers 421 at greeting. Third: works.
    let dns = dns(vec![zone(
        "rx.test",
        "@ MX 5 dead\n@ MX 10 busy\n@ MX 20 good\ndead A 127.0.2.99\nbusy A 127.0.2.22\ngood A 127.0.2.23\n",
    )])
    .await;
    let busy = Receiver::start(
        format!("127.0.2.22:{PORT}").parse().unwrap(),
        Script::default().greeting("421 4.7.0 busy.rx.test Too many connections, try again later"),
    )
    .await
    .unwrap();
    let good =
        Receiver::start(format!("127.0.2.23:{PORT}").parse().unwrap(), Script::default()).await.unwrap();
    let h = Homing::start(&Setup::new("127.0.2.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<bob@rx.test>"], "fallback");
    let got = good.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{}", h.stderr());
    assert!(busy.connections() >= 1, "the 421 host was tried first");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deferral_is_retried_until_it_succeeds() {
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.3.21\n")]).await;
    let rx = Receiver::start(
        format!("127.0.3.21:{PORT}").parse().unwrap(),
        Script::default().data_replies(["451 4.3.0 Temporary local problem, try again later"]),
    )
    .await
    .unwrap();
    let h = Homing::start(&Setup::new("127.0.3.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<bob@rx.test>"], "retry me");
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "{:#?}", rx.transcript());
    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 1);
    let deferred = ev.iter().find(|e| e["event"] == "deferred").expect("a deferred event");
    assert!(deferred["result"]["explanation"]["cause"].as_str().is_some_and(|c| !c.is_empty()), "{deferred}");
    // A deferral says when homing tries again and when it gives up.
    let gives_up = deferred["gives_up_at"].as_str().expect("gives_up_at");
    assert!(gives_up > deferred["next_attempt"].as_str().unwrap(), "{deferred}");
    assert!(deferred["retry"].as_str().is_some_and(|r| r.contains(gives_up)), "{deferred}");
    assert_eq!(count(&ev, "bounced"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_refusal_bounces_with_reply_and_explanation() {
    let net = 4;
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.4.21\n"), sender_zone(net)]).await;
    let rx = Receiver::start(
        format!("127.0.4.21:{PORT}").parse().unwrap(),
        Script::default().rcpt(|a| {
            a.starts_with("nobody@").then(|| {
                format!("550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table")
            })
        }),
    )
    .await
    .unwrap();
    let mailbox = sender_box(net).await;
    let h = Homing::start(&Setup::new("127.0.4.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<nobody@rx.test>", "<bob@rx.test>"], "partly wrong");
    let dsn = mailbox.wait_for(1, WAIT).await;
    assert_eq!(dsn.len(), 1, "{}", h.stderr());
    assert_eq!(dsn[0].mail_from, "", "DSNs come from the null sender");
    assert_eq!(dsn[0].rcpt_to, vec!["alice@sender.test".to_string()]);
    let text = dsn[0].data_text();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(text.contains("Final-Recipient: rfc822; nobody@rx.test"), "{text}");
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1"), "{text}");
    assert!(text.contains("User unknown in virtual mailbox table"), "{text}");
    assert!(!text.contains("Final-Recipient: rfc822; bob@rx.test"), "bob was delivered: {text}");
    assert_eq!(rx.wait_for(1, WAIT).await[0].rcpt_to, vec!["bob@rx.test".to_string()]);
    // The DSN to alice may be delivered before or after bob's delivery is logged.
    let bob_delivered =
        |e: &[serde_json::Value]| e.iter().any(|x| x["event"] == "delivered" && x["rcpt"] == "bob@rx.test");
    let ev = h.wait_events(WAIT, |e| count(e, "bounced") == 1 && bob_delivered(e));
    let b = ev.iter().find(|e| e["event"] == "bounced").unwrap();
    assert_eq!(b["result"]["explanation"]["reason"], "userunknown", "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_failures_bounce_with_the_right_reason() {
    let net = 5;
    let dns = dns(vec![
        zone("nullmx.test", "@ MX 0 .\n@ A 127.0.5.21\n"),
        zone("nomx.test", "@ TXT \"v=spf1 -all\"\n"),
        sender_zone(net),
    ])
    .await;
    let mailbox = sender_box(net).await;
    let h = Homing::start(&Setup::new("127.0.5.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<a@nxdomain.test>", "<b@nullmx.test>", "<c@nomx.test>"], "dns");
    let dsns = mailbox.wait_for(3, WAIT).await;
    assert_eq!(dsns.len(), 3, "{}", h.stderr());
    let all: String = dsns.iter().map(|d| d.data_text()).collect();
    assert!(all.contains("Final-Recipient: rfc822; a@nxdomain.test"), "{all}");
    assert!(all.contains("Status: 5.1.2"), "{all}");
    assert!(all.contains("Final-Recipient: rfc822; b@nullmx.test"), "{all}");
    assert!(all.contains("Status: 5.1.10"), "{all}");
    assert!(all.contains("Final-Recipient: rfc822; c@nomx.test"), "{all}");
    let ev = h.wait_events(WAIT, |e| count(e, "bounced") == 3);
    let reasons: Vec<String> = ev
        .iter()
        .filter(|e| e["event"] == "bounced")
        .map(|e| e["result"]["explanation"]["reason"].to_string())
        .collect();
    assert!(reasons.contains(&"\"hostunknown\"".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"\"notaccept\"".to_string()), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn servfail_defers_and_a_loop_bounces() {
    let net = 6;
    // loop.test's MX is homing itself (same IP and the delivery port).
    let dns = dns(vec![zone("loop.test", "@ MX 10 me\nme A 127.0.6.1\n"), sender_zone(net)]).await;
    let mailbox = sender_box(net).await;
    let mut setup = Setup::new(&format!("127.0.6.1:{PORT}"), dns.addr, PORT);
    setup.queue = "retry_intervals = [\"1h\"]\n";
    let h = Homing::start(&setup);
    send(h.addr, "alice@sender.test", &["<a@servfail.test>", "<b@loop.test>"], "trouble");
    let dsn = mailbox.wait_for(1, WAIT).await;
    let text = dsn[0].data_text();
    assert!(text.contains("Final-Recipient: rfc822; b@loop.test"), "{text}");
    assert!(text.contains("Status: 5.4.6"), "{text}");
    let ev = h.wait_events(WAIT, |e| count(e, "deferred") == 1);
    let d = ev.iter().find(|e| e["event"] == "deferred").unwrap();
    assert_eq!(d["rcpt"], "a@servfail.test");
    assert_eq!(d["result"]["explanation"]["hard"], false, "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn undeliverable_mail_expires_into_a_bounce_with_the_last_error() {
    let net = 7;
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.7.99\n"), sender_zone(net)]).await;
    let mailbox = sender_box(net).await;
    let mut setup = Setup::new("127.0.7.1:2525", dns.addr, PORT);
    setup.queue =
        "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\nmax_lifetime = \"3s\"\ndelay_warning = \"0s\"\n";
    let h = Homing::start(&setup);
    send(h.addr, "alice@sender.test", &["<bob@rx.test>"], "never arrives");
    let dsn = mailbox.wait_for(1, WAIT).await;
    assert_eq!(dsn.len(), 1, "{}", h.stderr());
    let text = dsn[0].data_text();
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "the last error is named: {text}");
    let ev = h.wait_events(WAIT, |e| count(e, "expired") == 1);
    assert!(count(&ev, "deferred") >= 2, "retried before expiring");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_warning_is_sent_once_and_never_with_notify_never() {
    let net = 8;
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.8.99\n"), sender_zone(net)]).await;
    let mailbox = sender_box(net).await;
    let mut setup = Setup::new("127.0.8.1:2525", dns.addr, PORT);
    setup.queue = "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\ndelay_warning = \"2s\"\n";
    let h = Homing::start(&setup);
    send(h.addr, "alice@sender.test", &["<warn@rx.test>", "<quiet@rx.test> NOTIFY=NEVER"], "slow");
    let dsn = mailbox.wait_for(1, WAIT).await;
    let text = dsn[0].data_text();
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains("Final-Recipient: rfc822; warn@rx.test"), "{text}");
    assert!(!text.contains("Final-Recipient: rfc822; quiet@rx.test"), "NOTIFY=NEVER: {text}");
    assert!(text.contains("Will-Retry-Until:"), "{text}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mailbox.messages().len(), 1, "one warning only");
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_accepted_is_lost_across_kill_9() {
    let dns = dns(vec![zone("rx.test", "@ MX 10 mx1\nmx1 A 127.0.9.21\n")]).await;
    let mut h = Homing::start(&Setup::new("127.0.9.1:2525", dns.addr, PORT));
    // The receiver is down: everything is accepted and queued.
    let n = 40;
    for i in 0..n {
        send(h.addr, "alice@sender.test", &[&format!("<user{i}@rx.test>")], &format!("msg {i}"));
    }
    h.kill9();
    let rx = Receiver::start(format!("127.0.9.21:{PORT}").parse().unwrap(), Script::default()).await.unwrap();
    h.restart();
    let got = rx.wait_for(n, Duration::from_secs(30)).await;
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), n, "every accepted message is delivered after the crash\n{}", h.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_success_is_passed_on_or_reported_as_relayed() {
    let net = 10;
    let dns = dns(vec![
        zone("plain.test", "@ MX 10 mx\nmx A 127.0.10.21\n"),
        zone("dsn.test", "@ MX 10 mx\nmx A 127.0.10.22\n"),
        sender_zone(net),
    ])
    .await;
    let no_dsn =
        Script::default().ehlo_extensions(["PIPELINING", "8BITMIME", "SIZE 52428800", "ENHANCEDSTATUSCODES"]);
    let plain = Receiver::start(format!("127.0.10.21:{PORT}").parse().unwrap(), no_dsn).await.unwrap();
    let with_dsn =
        Receiver::start(format!("127.0.10.22:{PORT}").parse().unwrap(), Script::default()).await.unwrap();
    let mailbox = sender_box(net).await;
    let h = Homing::start(&Setup::new("127.0.10.1:2525", dns.addr, PORT));
    send(
        h.addr,
        "alice@sender.test",
        &["<a@plain.test> NOTIFY=SUCCESS", "<b@dsn.test> NOTIFY=SUCCESS"],
        "ack",
    );
    assert_eq!(plain.wait_for(1, WAIT).await.len(), 1);
    let passed = with_dsn.wait_for(1, WAIT).await;
    assert!(
        passed[0].rcpt_params.iter().any(|p| p.contains("NOTIFY=SUCCESS")),
        "{:?}",
        passed[0].rcpt_params
    );
    let dsn = mailbox.wait_for(1, WAIT).await;
    let text = dsn[0].data_text();
    assert!(text.contains("Final-Recipient: rfc822; a@plain.test"), "{text}");
    assert!(text.contains("Action: relayed"), "{text}");
    assert!(!text.contains("Final-Recipient: rfc822; b@dsn.test"), "the DSN-capable hop reports b: {text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailbox.messages().len(), 1, "exactly one success notice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_backup_mx_does_not_bounce_mail_the_primary_may_still_take() {
    let dns = dns(vec![zone(
        "rx.test",
        "@ MX 10 primary\n@ MX 20 backup\nprimary A 127.0.11.99\nbackup A 127.0.11.22\n",
    )])
    .await;
    let backup = Receiver::start(
        format!("127.0.11.22:{PORT}").parse().unwrap(),
        Script::default().greeting("554 5.7.1 backup.rx.test does not relay for you"),
    )
    .await
    .unwrap();
    let mut setup = Setup::new("127.0.11.1:2525", dns.addr, PORT);
    setup.queue = "retry_intervals = [\"1h\"]\n";
    let h = Homing::start(&setup);
    send(h.addr, "alice@sender.test", &["<bob@rx.test>"], "primary down");
    let ev = h.wait_events(WAIT, |e| count(e, "deferred") == 1);
    assert_eq!(count(&ev, "bounced"), 0, "deferred, not bounced: {ev:#?}");
    assert!(backup.connections() >= 1, "the backup was tried");
    let d = ev.iter().find(|e| e["event"] == "deferred").unwrap();
    assert_eq!(
        d["result"]["explanation"]["evidence"]["remote_ip"], "127.0.11.99",
        "the primary's failure is reported: {d}"
    );
}
