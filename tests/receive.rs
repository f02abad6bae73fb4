//! The SMTP server over real TCP: the glue around the sans-IO session (timeouts, TLS,
//! pipelining, limits, relay refusal), checked against a running homing.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use homing_testkit::dns::TestDns;
use support::{Homing, Setup, Smtp, count};

async fn homing(addr: &str, extra: &'static str) -> (TestDns, Homing) {
    let dns = TestDns::builder().empty_zone("test.").start().await.expect("dns");
    let mut setup = Setup::new(addr, dns.addr, 2627);
    setup.extra = extra;
    let h = Homing::start(&setup);
    (dns, h)
}

fn closed(c: &mut Smtp) -> bool {
    c.reply().is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_gets_421_after_the_command_timeout() {
    let (_dns, h) = homing("127.0.40.1:2525", "[smtp]\ncommand_timeout = \"1s\"\n").await;
    let mut c = Smtp::connect(h.addr);
    let start = Instant::now();
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{:#?}", c.log);
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(closed(&mut c), "the connection is closed after 421");
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_with_bare_lf_is_refused_and_nothing_is_queued() {
    let (_dns, h) = homing("127.0.40.2:2525", "").await;
    let mut c = Smtp::connect(h.addr);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@sender.test>");
    c.cmd("RCPT TO:<b@rx.test>");
    assert!(c.cmd("DATA").starts_with("354"));
    // The classic smuggling payload: "\n.\n" would end DATA for a lenient server and the
    // rest would be read as a second, forged transaction.
    c.raw(b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<admin@bank.test>\r\nRCPT TO:<b@rx.test>\r\nDATA\r\nforged\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("554 5.5.2"), "{:#?}", c.log);
    assert!(closed(&mut c), "closed after a bare line ending");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&h.events(), "received"), 0, "nothing was queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_outside_the_relay_networks_cannot_relay() {
    let (_dns, h) = homing("127.0.40.3:2525", "[relay]\nnetworks = [\"192.0.2.0/24\"]\n").await;
    let mut c = Smtp::connect(h.addr);
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<victim@elsewhere.test>");
    assert!(r.starts_with("554 5.7.1"), "{:#?}", c.log);
    assert!(r.contains("elsewhere.test"), "names the domain: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn size_limits_apply_to_the_declaration_and_the_data() {
    let (_dns, h) = homing("127.0.40.4:2525", "[smtp]\nmax_message_size = 2000\n").await;
    let mut c = Smtp::connect(h.addr);
    c.cmd("EHLO client.test");
    assert!(c.log.iter().any(|l| l.contains("SIZE 2000")), "{:#?}", c.log);
    assert!(c.cmd("MAIL FROM:<a@sender.test> SIZE=5000").starts_with("552 5.3.4"), "{:#?}", c.log);
    assert!(c.cmd("MAIL FROM:<a@sender.test>").starts_with("250"));
    c.cmd("RCPT TO:<b@rx.test>");
    c.cmd("DATA");
    let line = format!("{}\r\n", "y".repeat(70));
    c.raw(format!("Subject: big\r\n\r\n{}.\r\n", line.repeat(50)).as_bytes());
    let r = c.reply();
    assert!(r.starts_with("552 5.3.4"), "{:#?}", c.log);
    assert!(c.cmd("NOOP").starts_with("250"), "the session goes on after an oversize message");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_commands_are_answered_in_order() {
    let (_dns, h) = homing("127.0.40.5:2525", "").await;
    let mut c = Smtp::connect(h.addr);
    let r = c.cmd("EHLO client.test");
    assert!(c.log.iter().any(|l| l.contains("PIPELINING")), "{r}");
    c.raw(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@rx.test>\r\nRCPT TO:<bad address>\r\nDATA\r\n");
    let replies: Vec<String> = (0..4).map(|_| c.reply()).collect();
    assert!(replies[0].starts_with("250 2.1.0"), "{replies:#?}");
    assert!(replies[1].starts_with("250 2.1.5"), "{replies:#?}");
    assert!(replies[2].starts_with("501") || replies[2].starts_with("553"), "{replies:#?}");
    assert!(replies[3].starts_with("354"), "{replies:#?}");
    c.raw(b"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0"), "{:#?}", c.log);
    assert!(c.reply().starts_with("221"), "{:#?}", c.log);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_gets_errors_then_a_disconnect_and_the_server_keeps_serving() {
    let (_dns, h) = homing("127.0.40.6:2525", "[smtp]\nmax_bad_commands = 3\n").await;
    let mut c = Smtp::connect(h.addr);
    for _ in 0..3 {
        let r = c.cmd("\u{1}\u{2}garbage \u{ff}");
        assert!(r.starts_with("500"), "{:#?}", c.log);
    }
    assert!(c.cmd("NOOP").starts_with("250"), "good commands do not count");
    let r = c.cmd("MAIL FROM:<broken");
    assert!(r.starts_with("421"), "past max_bad_commands: {:#?}", c.log);
    let mut rest = Vec::new();
    let _ = c_stream(h.addr).read_to_end(&mut rest);
    let mut again = Smtp::connect(h.addr);
    assert!(again.cmd("EHLO ok.test").starts_with("250"), "other sessions are unaffected");
}

fn c_stream(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_sessions_a_client_is_told_to_come_back_later() {
    let (_dns, h) = homing("127.0.40.7:2525", "[smtp]\nmax_sessions = 1\n").await;
    // The harness's readiness probe is a session too; wait until it has ended and the one
    // slot is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut first = loop {
        let c = Smtp::connect(h.addr);
        if c.log.last().is_some_and(|l| l.starts_with("S: 220")) {
            break c;
        }
        assert!(Instant::now() < deadline, "the session slot never came free: {:#?}", c.log);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(first.cmd("EHLO one.test").starts_with("250"));
    let second = Smtp::connect(h.addr);
    let greeting = second.log.last().cloned().unwrap_or_default();
    assert!(greeting.starts_with("S: 421 4.3.2 Too many connections (1)"), "{:#?}", second.log);
    first.cmd("QUIT");
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut third = Smtp::connect(h.addr);
    assert!(
        third.cmd("EHLO three.test").starts_with("250"),
        "a freed slot is usable again: {:#?}",
        third.log
    );
}
