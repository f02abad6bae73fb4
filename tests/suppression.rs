//! The suppression list end to end: a real homing process, in-process DNS, scripted
//! receivers and the `homing suppress` CLI on the same spool. Each test uses its own
//! 127.0.N.0/24 (N in 60..69).

mod support;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use serde_json::Value;
use support::{Homing, Setup, Smtp, count, send};

const PORT: u16 = 2625;
const WAIT: Duration = Duration::from_secs(20);

async fn dns(net: u8) -> TestDns {
    TestDns::builder()
        .empty_zone("test.")
        .zone(zone_header("rx.test") + &format!("@ MX 10 mx\nmx A 127.0.{net}.21\n"))
        .zone(zone_header("sender.test") + &format!("@ MX 10 mx\nmx A 127.0.{net}.30\n"))
        .start()
        .await
        .expect("dns")
}

async fn receiver(net: u8, script: Script) -> Receiver {
    Receiver::start(format!("127.0.{net}.21:{PORT}").parse().unwrap(), script).await.unwrap()
}

async fn sender_box(net: u8) -> Receiver {
    Receiver::start(format!("127.0.{net}.30:{PORT}").parse().unwrap(), Script::default()).await.unwrap()
}

/// The reply to `RCPT TO:<rcpt>` in a fresh session.
fn rcpt_reply(addr: SocketAddr, rcpt: &str) -> String {
    let mut c = Smtp::connect(addr);
    assert!(c.cmd("EHLO client.test").starts_with("250"), "{:#?}", c.log);
    assert!(c.cmd("MAIL FROM:<alice@sender.test>").starts_with("250"), "{:#?}", c.log);
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    c.cmd("QUIT");
    r
}

/// Asks until the reply to `RCPT TO:<rcpt>` satisfies `pred` (the server rereads the list
/// at most once per `suppression.reload_interval`).
fn wait_rcpt(addr: SocketAddr, rcpt: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rcpt_reply(addr, rcpt);
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "RCPT TO:<{rcpt}> still answered {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cli(h: &Homing, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_homing"))
        .arg("suppress")
        .args(args)
        .arg("--config")
        .arg(h.config())
        .output()
        .expect("run homing suppress")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn list_file(h: &Homing) -> Vec<Value> {
    let text = std::fs::read_to_string(h.spool().join("suppression.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_address_is_listed_and_refused_at_rcpt_with_when_and_why() {
    let net = 60;
    let dns = dns(net).await;
    let rx = receiver(
        net,
        Script::default().rcpt(|a| a.starts_with("nobody@").then(|| "550 5.1.1 no such user".to_string())),
    )
    .await;
    let _mailbox = sender_box(net).await;
    let mut h = Homing::start(&Setup::new("127.0.60.1:2525", dns.addr, PORT));
    send(h.addr, "alice@sender.test", &["<nobody@rx.test>", "<bob@rx.test>"], "first");
    let ev = h.wait_events(WAIT, |e| count(e, "suppressed") == 1 && count(e, "bounced") == 1);
    assert_eq!(rx.messages().len(), 1);
    let received = ev.iter().find(|e| e["event"] == "received").unwrap();
    let s = ev.iter().find(|e| e["event"] == "suppressed").unwrap();
    assert_eq!(s["queue_id"], received["queue_id"], "{s}");
    assert_eq!(s["message_id"], received["message_id"], "{s}");
    assert_eq!(s["rcpt"], "nobody@rx.test", "{s}");
    assert_eq!(s["reason"], "userunknown", "{s}");
    assert_eq!(s["status"], "5.1.1", "{s}");
    let bounced = ev.iter().position(|e| e["event"] == "bounced").expect("a bounced event");
    let suppressed = ev.iter().position(|e| e["event"] == "suppressed").unwrap();
    assert!(suppressed < bounced, "listed before the failure is recorded: {ev:#?}");

    let entries = list_file(&h);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["op"], "add");
    assert_eq!(e["address"], "nobody@rx.test");
    assert_eq!(e["source"], format!("bounce {}", received["queue_id"].as_str().unwrap()));
    let day = e["date"].as_str().unwrap()[..10].to_string();

    let r = rcpt_reply(h.addr, "Nobody@rx.test");
    assert!(r.starts_with("550 5.1.1 <Nobody@rx.test> is on this server's suppression list: "), "{r}");
    assert!(r.contains(&format!("it bounced on {day} (userunknown: ")), "{r}");
    assert!(r.contains("`homing suppress remove Nobody@rx.test`"), "{r}");
    assert!(r.len() <= 510, "{} octets", r.len());
    assert!(rcpt_reply(h.addr, "bob@rx.test").starts_with("250"), "others are untouched");

    // The list is on disk: it survives a crash.
    h.restart();
    assert!(rcpt_reply(h.addr, "nobody@rx.test").starts_with("550 5.1.1 "));
}

#[tokio::test(flavor = "multi_thread")]
async fn full_mailboxes_blocklists_policy_refusals_and_expiry_never_list_anyone() {
    let net = 61;
    let dns = dns(net).await;
    let _rx = receiver(
        net,
        Script::default().rcpt(|a| match a.split('@').next() {
            Some("full") => Some("452 4.2.2 mailbox full".to_string()),
            Some("listed") => Some(
                "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
                    .to_string(),
            ),
            Some("policy") => Some("550 5.7.1 Denied".to_string()),
            _ => None,
        }),
    )
    .await;
    let _mailbox = sender_box(net).await;
    let mut setup = Setup::new("127.0.61.1:2525", dns.addr, PORT);
    setup.queue =
        "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\nmax_lifetime = \"3s\"\ndelay_warning = \"0s\"\n";
    let h = Homing::start(&setup);
    let rcpts = ["<full@rx.test>", "<listed@rx.test>", "<policy@rx.test>"];
    send(h.addr, "alice@sender.test", &rcpts, "soft, blocklisted and refused");
    let ev = h.wait_events(WAIT, |e| count(e, "expired") == 2 && count(e, "bounced") == 1);
    let bounced = ev.iter().find(|e| e["event"] == "bounced").unwrap();
    assert_eq!(bounced["rcpt"], "policy@rx.test");
    assert_eq!(bounced["result"]["explanation"]["reason"], "policyviolation", "{bounced}");
    assert_eq!(bounced["result"]["explanation"]["hard"], true, "{bounced}");
    let reasons: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "deferred")
        .map(|e| &e["result"]["explanation"]["reason"])
        .collect();
    assert!(reasons.contains(&&Value::from("mailboxfull")), "{reasons:?}");
    assert!(reasons.contains(&&Value::from("blocked")), "{reasons:?}");
    assert_eq!(count(&ev, "suppressed"), 0, "{ev:#?}");
    assert!(list_file(&h).is_empty());
    for r in ["full@rx.test", "listed@rx.test", "policy@rx.test"] {
        assert!(rcpt_reply(h.addr, r).starts_with("250"), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_adds_lists_shows_and_removes_and_the_server_follows() {
    let net = 62;
    let dns = dns(net).await;
    let h = Homing::start(&Setup::new("127.0.62.1:2525", dns.addr, PORT));
    assert!(rcpt_reply(h.addr, "carol@rx.test").starts_with("250"));

    let out =
        cli(&h, &["add", "Carol@RX.test", "--reason", "feedback", "--note", "complained to the abuse desk"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added Carol@rx.test"), "{}", text(&out.stdout));
    let out = cli(&h, &["add", "carol@rx.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already on the suppression list"), "{}", text(&out.stdout));
    let out = cli(&h, &["add", "dave@rx.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = cli(&h, &["list"]);
    assert!(out.status.success());
    let listed = text(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().next().unwrap().contains("Carol@rx.test  feedback  manual"), "{listed}");
    assert!(text(&out.stderr).contains("2 addresses"), "{}", text(&out.stderr));
    let out = cli(&h, &["list", "--json"]);
    let rows: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["address"], "Carol@rx.test");
    assert_eq!(rows[0]["reason"], "feedback");
    assert_eq!(rows[0]["source"], "manual");
    assert_eq!(rows[0]["note"], "complained to the abuse desk");
    assert_eq!(rows[1]["reason"], "suppressed", "the default reason");
    assert!(rows[0].get("op").is_none(), "{}", rows[0]);

    let out = cli(&h, &["show", "<carol@rx.TEST>", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let one: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(one, rows[0]);
    let out = cli(&h, &["show", "carol@rx.test"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("reason:  feedback (the recipient complained)"), "{shown}");
    assert!(shown.contains("reply:   550 5.7.1 "), "{shown}");

    // The running server picks up the CLI's changes.
    let r = wait_rcpt(h.addr, "carol@rx.test", |r| r.starts_with("550"));
    assert!(
        r.starts_with(
            "550 5.7.1 <carol@rx.test> is on this server's suppression list: the recipient complained on "
        ),
        "{r}"
    );
    assert!(r.contains("(feedback: complained to the abuse desk)"), "{r}");
    let r = rcpt_reply(h.addr, "dave@rx.test");
    assert!(r.starts_with("550 5.7.1 ") && r.contains("it was added by hand"), "{r}");

    let out = cli(&h, &["remove", "CAROL@rx.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("removed Carol@rx.test"), "{}", text(&out.stdout));
    wait_rcpt(h.addr, "carol@rx.test", |r| r.starts_with("250"));
    assert!(rcpt_reply(h.addr, "dave@rx.test").starts_with("550"), "only carol was lifted");

    // Not listed: exit 1 with a message; bad input: exit 2 naming the fix.
    for args in [&["remove", "carol@rx.test"][..], &["show", "carol@rx.test"]] {
        let out = cli(&h, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("carol@rx.test is not on the suppression list"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = cli(&h, &["add", "carol"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not an email address like user@example.com"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&h, &["add", "carol@rx.test", "--reason", "grumpy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("userunknown"), "lists the reasons: {}", text(&out.stderr));

    let lines = list_file(&h);
    let ops: Vec<&str> = lines.iter().map(|l| l["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["add", "add", "remove"], "appends and a tombstone: {lines:?}");
}
