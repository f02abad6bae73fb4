//! Submission with AUTH end to end: a real homing with submission (587-style, STARTTLS)
//! and submissions (465-style, implicit TLS) listeners, users made with `homing user`,
//! swaks and Python's smtplib as clients, a scripted receiver behind the in-process DNS.
//! Each test owns 127.0.N.0/24:
//!
//! | test | N |
//! |---|---|
//! | swaks_submits_over_starttls_and_the_mail_is_relayed | 80 |
//! | implicit_tls_submission_and_handshakes_that_fail_or_stall | 81 |
//! | python_smtplib_over_starttls_and_implicit_tls | 82 |
//! | certificates_reload_on_sighup_and_a_bad_pair_keeps_the_old | 83 (port 2465) |
//! | certificates_reload_when_their_files_change | 83 (port 2466) |
//! | user_cli_changes_reach_the_running_server | 84 |

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use homing_testkit::dns::{TestDns, zone_header};
use homing_testkit::smtp::{Receiver, Script};
use serde_json::Value;
use support::{Homing, Setup, Smtp, count};

const PORT: u16 = 2625;
const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery";

async fn dns(net: u8) -> TestDns {
    TestDns::builder()
        .empty_zone("test.")
        .zone(zone_header("rx.test") + &format!("@ MX 10 mx\nmx A 127.0.{net}.21\n"))
        .start()
        .await
        .expect("dns")
}

async fn receiver(net: u8) -> Receiver {
    Receiver::start(format!("127.0.{net}.21:{PORT}").parse().unwrap(), Script::default()).await.unwrap()
}

/// A homing whose first listener is `first` (the harness waits for it), more in `extra`.
/// It checks the user store for changes every 50 ms, so users added after the start count
/// at once.
fn homing(net: u8, dns: SocketAddr, port: u16, first: &'static str, extra: &str) -> Homing {
    let mut setup = Setup::new(&format!("127.0.{net}.1:{port}"), dns, PORT);
    setup.listener = first;
    let extra = format!("{extra}\n[accounts]\nreload_interval = \"50ms\"\n");
    setup.extra = &extra;
    Homing::start(&setup)
}

/// `homing user ARGS --config …`, with `stdin` written to its standard input.
fn user_cli(h: &Homing, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_homing"))
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(h.config())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run homing user");
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("homing user output")
}

fn add_user(h: &Homing, login: &str, addresses: &[&str]) {
    let mut args = vec!["add", login, "--password-stdin"];
    for a in addresses {
        args.extend(["--address", a]);
    }
    let out = user_cli(h, &args, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "homing user add: {}", text(&out.stderr));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs swaks; returns whether it succeeded and its transcript.
fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--helo", "client.test", "--timeout", "20"])
        .args(args)
        .output()
        .expect("run swaks (scripts/test installs it)");
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// swaks with AUTH: `tls` is `--tls` (STARTTLS) or `--tlsc` (implicit TLS).
fn swaks_auth(server: &str, tls: &str, mech: &str, password: &str, to: &str) -> (bool, String) {
    swaks(&[
        "--server",
        server,
        tls,
        "--auth",
        mech,
        "--auth-user",
        "alice",
        "--auth-password",
        password,
        "--from",
        "alice@example.org",
        "--to",
        to,
        "--header",
        &format!("Subject: swaks {mech} {tls}"),
    ])
}

/// The reply line that follows the client line `sent` in a swaks transcript.
fn after<'a>(transcript: &'a str, sent: &str) -> &'a str {
    let lines: Vec<&str> = transcript.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(sent))
        .unwrap_or_else(|| panic!("no {sent:?} in:\n{transcript}"));
    lines.get(i + 1).map(|l| l.trim()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_submits_over_starttls_and_the_mail_is_relayed() {
    let net = 80;
    let dns = dns(net).await;
    let rx = receiver(net).await;
    // Nobody relays by address: only AUTH lets a client send to rx.test.
    let h = homing(
        net,
        dns.addr,
        2587,
        "mode = \"submission\"\n",
        "[relay]\nnetworks = []\n[[listener]]\naddress = \"127.0.80.1:2525\"\nauth = true\n",
    );
    add_user(&h, "alice", &["alice@example.org"]);

    for mech in ["PLAIN", "LOGIN"] {
        let (ok, t) = swaks_auth("127.0.80.1:2587", "--tls", mech, PASSWORD, "bob@rx.test");
        assert!(ok, "swaks AUTH {mech} failed:\n{t}");
        assert!(t.contains("<~  250-AUTH PLAIN LOGIN"), "AUTH offered inside TLS:\n{t}");
        assert!(!t.contains("<-  250-AUTH"), "AUTH not offered before TLS:\n{t}");
        assert!(t.contains("<~  235 2.7.0 Authentication succeeded"), "{t}");
        assert!(after(&t, "~> .").starts_with("<~  250 2.0.0 Ok: queued as "), "{t}");
    }
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "{}", h.stderr());
    for m in &got {
        assert_eq!(m.mail_from, "alice@example.org");
        assert_eq!(m.rcpt_to, vec!["bob@rx.test".to_string()]);
        let data = m.data_text();
        assert!(data.contains("by homing.test (homing) with ESMTPSA id "), "{data}");
    }
    let ev = h.wait_events(WAIT, |e| count(e, "delivered") == 2);
    let received: Vec<&Value> = ev.iter().filter(|e| e["event"] == "received").collect();
    assert!(received.iter().all(|e| e["auth"] == "alice"), "{received:#?}");

    let (ok, t) = swaks_auth("127.0.80.1:2587", "--tls", "PLAIN", "Wr0ng-Passw0rd", "bob@rx.test");
    assert!(!ok);
    assert!(
        t.contains("535 5.7.8 Authentication credentials invalid: the user name and password were rejected"),
        "{t}"
    );
    let log = h.stderr();
    assert!(log.contains("authentication failed") && log.contains("peer=127.0.0.1"), "{log}");
    assert!(!log.contains("Wr0ng-Passw0rd") && !log.contains(PASSWORD), "passwords are never logged:\n{log}");

    // Plaintext on the submission port: no AUTH before TLS, no MAIL without AUTH.
    let mut c = Smtp::connect(h.addr);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        c.log.iter().any(|l| l.contains("STARTTLS")) && !c.log.iter().any(|l| l.contains("AUTH")),
        "{ehlo}"
    );
    let r = c.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==");
    assert!(r.starts_with("538 5.7.11 "), "{r}");
    let r = c.cmd("MAIL FROM:<alice@example.org>");
    assert!(r.starts_with("530 5.7.0 Authentication required"), "{r}");

    // The MX listener: unauthenticated relaying is refused, AUTH over STARTTLS allows it.
    let mut c = Smtp::connect("127.0.80.1:2525".parse().unwrap());
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"), "{:#?}", c.log);
    let r = c.cmd("RCPT TO:<bob@rx.test>");
    assert!(r.starts_with("554 5.7.1 Relay access denied"), "{r}");
    let (ok, t) = swaks_auth("127.0.80.1:2525", "--tls", "PLAIN", PASSWORD, "bob@rx.test");
    assert!(ok, "{t}");
    assert_eq!(rx.wait_for(3, WAIT).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_submission_and_handshakes_that_fail_or_stall() {
    let net = 81;
    let dns = dns(net).await;
    let rx = receiver(net).await;
    let h = homing(net, dns.addr, 2465, "mode = \"submissions\"\n", "[smtp]\ncommand_timeout = \"2s\"\n");
    add_user(&h, "alice", &["alice@example.org"]);

    // A client that stalls in the handshake and one that speaks plaintext to the TLS port.
    let stalled = TcpStream::connect(h.addr).unwrap();
    let mut plain = TcpStream::connect(h.addr).unwrap();
    plain.write_all(b"EHLO client.test\r\n").unwrap();

    for mech in ["PLAIN", "LOGIN"] {
        let (ok, t) = swaks_auth("127.0.81.1:2465", "--tlsc", mech, PASSWORD, "bob@rx.test");
        assert!(ok, "swaks --tlsc AUTH {mech} failed:\n{t}");
        assert!(t.contains("=== TLS started with cipher "), "{t}");
        assert!(!t.contains("STARTTLS"), "no STARTTLS inside implicit TLS:\n{t}");
        assert!(t.contains("<~  235 2.7.0 Authentication succeeded"), "{t}");
    }
    let (ok, t) = swaks_auth("127.0.81.1:2465", "--tlsc", "LOGIN", "nope", "bob@rx.test");
    assert!(!ok && t.contains("<~* 535 5.7.8 "), "{t}");
    assert_eq!(rx.wait_for(2, WAIT).await.len(), 2);

    let mut buf = [0u8; 64];
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(!text(&buf[..n]).starts_with("220"), "no plaintext greeting on an implicit-TLS port");
    let deadline = Instant::now() + WAIT;
    while !h.stderr().contains("TLS handshake timed out") {
        assert!(Instant::now() < deadline, "no log of the stalled handshake:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = h.stderr();
    let plaintext =
        log.lines().find(|l| l.contains("TLS handshake failed") && l.contains("InvalidContentType"));
    assert!(plaintext.is_some_and(|l| l.contains("peer=127.0.0.1:")), "{log}");
    let stall = log.lines().find(|l| l.contains("TLS handshake timed out"));
    assert!(stall.is_some_and(|l| l.contains("peer=127.0.0.1:")), "{log}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_smtplib_over_starttls_and_implicit_tls() {
    let net = 82;
    let dns = dns(net).await;
    let rx = receiver(net).await;
    let h = homing(
        net,
        dns.addr,
        2587,
        "mode = \"submission\"\n",
        "[[listener]]\naddress = \"127.0.82.1:2465\"\nmode = \"submissions\"\n",
    );
    add_user(&h, "alice", &["alice@example.org"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/submit.py");
    for (mode, port) in [("starttls", "2587"), ("tls", "2465")] {
        let out = Command::new("python3")
            .args([script, mode, "127.0.82.1", port, "Alice", PASSWORD, "alice@example.org", "bob@rx.test"])
            .output()
            .expect("python3");
        assert!(out.status.success(), "submit.py {mode}: {}{}", text(&out.stdout), text(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).expect("JSON from submit.py");
        let code = |k: &str| r[k][0].as_u64().unwrap_or_else(|| panic!("{k} in {r:#}"));
        let said = |k: &str| r[k][1].as_str().unwrap_or_default().to_string();
        if mode == "starttls" {
            assert_eq!(r["ehlo_auth_before_tls"], Value::Null, "{r:#}");
            assert_eq!(code("auth_before_tls"), 538, "{r:#}");
        }
        assert_eq!(r["ehlo_auth"], "PLAIN LOGIN", "{r:#}");
        assert_eq!(code("mail_before_auth"), 530, "{r:#}");
        assert_eq!(code("bad_base64"), 501);
        assert!(
            said("bad_base64")
                .starts_with("5.5.2 Cannot decode the AUTH response: the response is not valid base64")
        );
        assert!(said("bad_structure").contains("authzid NUL user NUL password"), "{r:#}");
        assert!(said("oversized").contains("password is longer than 512 octets"), "{r:#}");
        assert_eq!(code("unknown_mechanism"), 504);
        assert_eq!((code("challenge"), said("challenge")), (334, "VXNlcm5hbWU6".into()));
        assert_eq!((code("cancel"), said("cancel")), (501, "5.0.0 Authentication cancelled".into()));
        assert_eq!(code("wrong_password"), 535, "{r:#}");
        assert!(said("wrong_password").starts_with("5.7.8 Authentication credentials invalid"), "{r:#}");
        assert_eq!(code("auth"), 235, "login is case-insensitive: {r:#}");
        assert_eq!(code("auth_again"), 503, "{r:#}");
        assert_eq!(r["refused"], serde_json::json!({}), "{r:#}");
    }
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "{}", h.stderr());
    let ev = h.wait_events(WAIT, |e| count(e, "received") == 2);
    assert!(ev.iter().filter(|e| e["event"] == "received").all(|e| e["auth"] == "alice"), "{ev:#?}");
}

/// The PEM certificate `addr` presents on implicit TLS, from Python's ssl module.
fn served_certificate(addr: &str) -> String {
    let (host, port) = addr.split_once(':').unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import ssl,sys; print(ssl.get_server_certificate((sys.argv[1], int(sys.argv[2]))))",
            host,
            port,
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).split_whitespace().collect()
}

/// Writes a new self-signed pair for `name`; returns the certificate without whitespace.
fn write_pair(dir: &Path, name: &str) -> String {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    // The key first: a reader between the two writes sees a mismatched pair and keeps the old.
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    ck.cert.pem().split_whitespace().collect()
}

fn wait_for_certificate(h: &Homing, addr: &str, want: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    while served_certificate(addr) != want {
        assert!(Instant::now() < deadline, "{what}: the new certificate is not served\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_on_sighup_and_a_bad_pair_keeps_the_old() {
    let net = 83;
    let dns = dns(net).await;
    let certs = tempfile::tempdir().unwrap();
    let a = write_pair(certs.path(), "a.homing.test");
    let listener: &'static str = Box::leak(
        format!(
            "mode = \"submissions\"\ntls_cert = \"{0}/cert.pem\"\ntls_key = \"{0}/key.pem\"\n",
            certs.path().display()
        )
        .into_boxed_str(),
    );
    // Only SIGHUP at first: file changes are not polled.
    let h = homing(net, dns.addr, 2465, listener, "[tls]\nreload_interval = \"0s\"\n");
    let addr = "127.0.83.1:2465";
    assert_eq!(served_certificate(addr), a);

    let b = write_pair(certs.path(), "b.homing.test");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_certificate(addr), a, "no reload without SIGHUP when polling is off");
    h.signal("HUP");
    wait_for_certificate(&h, addr, &b, "after SIGHUP");
    assert!(h.stderr().contains("TLS certificate reloaded"), "{}", h.stderr());

    std::fs::write(certs.path().join("cert.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    h.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !h.stderr().contains("new TLS certificate not loaded; still using the previous one") {
        assert!(Instant::now() < deadline, "the bad certificate is not reported:\n{}", h.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served_certificate(addr), b, "a bad pair keeps the old one");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_when_their_files_change() {
    let net = 83;
    let dns = dns(net).await;
    let certs = tempfile::tempdir().unwrap();
    let a = write_pair(certs.path(), "a.homing.test");
    let listener: &'static str = Box::leak(
        format!(
            "mode = \"submissions\"\ntls_cert = \"{0}/cert.pem\"\ntls_key = \"{0}/key.pem\"\n",
            certs.path().display()
        )
        .into_boxed_str(),
    );
    let h = homing(net, dns.addr, 2466, listener, "[tls]\nreload_interval = \"1s\"\n");
    let addr = "127.0.83.1:2466";
    assert_eq!(served_certificate(addr), a);
    std::thread::sleep(Duration::from_millis(20));
    let b = write_pair(certs.path(), "b.homing.test");
    wait_for_certificate(&h, addr, &b, "after the files changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_cli_changes_reach_the_running_server() {
    let net = 84;
    let dns = dns(net).await;
    let h = homing(net, dns.addr, 2465, "mode = \"submissions\"\n", "");
    let auth = |password: &str| {
        let (ok, t) = swaks(&[
            "--server",
            "127.0.84.1:2465",
            "--tlsc",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            password,
            "--quit-after",
            "AUTH",
        ]);
        (ok, t)
    };
    assert!(!auth(PASSWORD).0, "no users yet");

    let out = user_cli(
        &h,
        &["add", "Alice", "--address", "alice@example.org", "--alias", "A@Example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, t) = auth(PASSWORD);
    assert!(ok, "the server sees the new user:\n{t}\n{}", h.stderr());

    let out = user_cli(&h, &["add", "alice", "--password-stdin"], "x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("user alice already exists"), "{}", text(&out.stderr));
    let out = user_cli(&h, &["add", "bob", "--address", "a@example.org", "--password-stdin"], "x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("belongs to both alice and bob"), "{}", text(&out.stderr));
    let out = user_cli(&h, &["add", "bob", "--address", "not an address", "--password-stdin"], "x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a valid address"), "{}", text(&out.stderr));
    let out = user_cli(&h, &["add", "bob"], "");
    assert_eq!(out.status.code(), Some(2), "no terminal and no --password-stdin");
    assert!(text(&out.stderr).contains("--password-stdin"), "{}", text(&out.stderr));
    let out = user_cli(&h, &["add", "bob", "--password-stdin"], "\n");
    assert!(text(&out.stderr).contains("password is empty"), "{}", text(&out.stderr));

    let out = user_cli(&h, &["list", "--json"], "");
    assert!(out.status.success());
    let users: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["login"], "alice");
    assert_eq!(users[0]["addresses"], serde_json::json!(["alice@example.org"]));
    assert_eq!(users[0]["aliases"], serde_json::json!(["A@example.org"]), "domains are lowercased");
    assert!(!text(&out.stdout).contains("argon2"), "hashes are never listed");
    let stored = std::fs::read_to_string(h.spool().join("users.toml")).unwrap();
    assert!(stored.contains("$argon2id$v=19$m=19456,t=2,p=1$") && !stored.contains(PASSWORD), "{stored}");

    let out = user_cli(&h, &["resolve", "a@example.ORG", "--json"], "");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["user"].as_str(), r["via"].as_str(), r["may_send"].as_bool()),
        (Some("alice"), Some("alias"), Some(true))
    );

    let out = user_cli(&h, &["passwd", "alice", "--password-stdin"], "a new password\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = Instant::now() + WAIT;
    while auth(PASSWORD).0 {
        assert!(Instant::now() < deadline, "the old password still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(auth("a new password").0);
    let out = user_cli(&h, &["passwd", "carol", "--password-stdin"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no user carol"), "{}", text(&out.stderr));

    let out = user_cli(&h, &["del", "alice"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = Instant::now() + WAIT;
    while auth("a new password").0 {
        assert!(Instant::now() < deadline, "a deleted user still authenticates");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(user_cli(&h, &["del", "alice"], "").status.code(), Some(1));
    let out = user_cli(&h, &["list"], "");
    assert!(text(&out.stdout).is_empty() && text(&out.stderr).contains("0 users"), "{}", text(&out.stderr));
}
