//! A full disk: homing answers `452 4.3.1` and loses nothing it already accepted.
//! The spool lives on a small tmpfs mounted by the test (needs root, as CI has).

mod support;

use std::process::Command;
use std::time::Duration;

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use support::{Homing, Setup, Smtp};

const PORT: u16 = 2626;

/// Unmounts the tmpfs when the test ends, whatever happens.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_refuses_with_452_and_keeps_what_it_accepted() {
    let dns = TestDns::builder()
        .zone(zone_header("rx.test") + "@ MX 10 mx1\nmx1 A 127.0.30.21\n")
        .start()
        .await
        .expect("dns");
    let mut setup = Setup::new("127.0.30.1:2525", dns.addr, PORT);
    // Keep the destination "down" (nothing listens yet) and retry quickly once it is up.
    setup.queue = "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\n";
    setup.extra = "[smtp]\nmax_message_size = 1000000\n";
    let mut h = Homing::start(&setup);
    h.kill9();
    let spool = h.spool();
    std::fs::remove_dir_all(&spool).ok();
    std::fs::create_dir_all(&spool).expect("spool dir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&spool)
        .status()
        .expect("run mount");
    assert!(ok.success(), "this test mounts a 1 MiB tmpfs for the spool and needs root (CI runs as root)");
    let _mount = Mount(spool.clone());
    h.restart();

    let line = format!("{}\r\n", "x".repeat(76));
    let body = format!("Subject: filler\r\n\r\n{}", line.repeat(1000));
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..40 {
        let mut c = Smtp::connect(h.addr);
        c.cmd("EHLO client.test");
        c.cmd("MAIL FROM:<alice@sender.test>");
        c.cmd(&format!("RCPT TO:<user{i}@rx.test>"));
        assert!(c.cmd("DATA").starts_with("354"), "{:#?}", c.log);
        c.raw(body.as_bytes());
        c.raw(b".\r\n");
        let r = c.reply();
        if r.starts_with("250") {
            accepted.push(format!("user{i}@rx.test"));
        } else {
            refused = Some((r, c.log.clone()));
            break;
        }
    }
    let (reply, log) = refused.expect("the 1 MiB spool must fill up within 40 messages of ~80 KiB");
    assert!(reply.starts_with("452 4.3.1"), "a full disk is a temporary 452 4.3.1: {log:#?}");
    assert!(accepted.len() >= 3, "some messages fit before the disk filled: {accepted:?}");

    // Crash now, bring the destination up, restart: every accepted message arrives.
    h.kill9();
    let rx =
        Receiver::start(format!("127.0.30.21:{PORT}").parse().unwrap(), Script::default()).await.unwrap();
    h.restart();
    let got = rx.wait_for(accepted.len(), Duration::from_secs(30)).await;
    let mut delivered: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    delivered.dedup();
    accepted.sort();
    assert_eq!(
        delivered,
        accepted,
        "every message that got 250 is delivered\n{}\n{:#?}",
        h.stderr(),
        h.events()
    );
    for m in &got {
        assert!(m.data_text().contains("Subject: filler"), "the body survived intact");
    }

    // Delivered messages leave their files in tmp/ as spares to write over. They must not
    // cost a 452: a message larger than any of them is accepted once they are given back.
    let queued = || std::fs::read_dir(spool.join("queue")).map(|d| d.count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queued() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let spares = std::fs::read_dir(spool.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert!(spares > 0, "delivered messages' files are kept as spares");
    let mut c = Smtp::connect(h.addr);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<alice@sender.test>");
    c.cmd("RCPT TO:<big@rx.test>");
    assert!(c.cmd("DATA").starts_with("354"), "{:#?}", c.log);
    c.raw(format!("Subject: larger than any spare\r\n\r\n{}", line.repeat(4000)).as_bytes());
    c.raw(b".\r\n");
    let r = c.reply();
    assert!(r.starts_with("250"), "the spares were given back for it: {r}\n{}", h.stderr());
    let got = rx.wait_for(accepted.len() + 1, Duration::from_secs(30)).await;
    assert!(got.iter().any(|m| m.data_text().contains("larger than any spare")), "{}", h.stderr());
}
