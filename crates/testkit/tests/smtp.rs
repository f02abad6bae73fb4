//! The scripted receiver, driven by a plain TCP client.

use std::net::SocketAddr;
use std::time::Duration;

use homing_testkit::smtp::{Receiver, Script};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WAIT: Duration = Duration::from_secs(5);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Client, Vec<String>) {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = Client { reader: BufReader::new(read), writer };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Reads one (possibly multi-line) reply; empty if the server closed.
    async fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await.unwrap().unwrap();
            if n == 0 {
                return lines;
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.unwrap();
    }

    /// Sends one command and returns the last line of its reply.
    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await.pop().unwrap_or_default()
    }
}

#[tokio::test]
async fn pipelined_transaction() {
    let rx = Receiver::start(any_port(), Script::default()).await.unwrap();
    let (mut c, greeting) = Client::connect(rx.addr()).await;
    assert_eq!(greeting, ["220 rx.test ESMTP homing-testkit"]);

    let ehlo = {
        c.send("EHLO client.test\r\n").await;
        c.reply().await
    };
    assert_eq!(
        ehlo,
        [
            "250-rx.test",
            "250-PIPELINING",
            "250-8BITMIME",
            "250-SIZE 52428800",
            "250-ENHANCEDSTATUSCODES",
            "250-SMTPUTF8",
            "250 DSN"
        ]
    );

    // One write, as a pipelining client does (RFC 2920 §3.1).
    c.send(
        "MAIL FROM:<sender@example.test> SIZE=40 BODY=8BITMIME\r\n\
         RCPT TO:<a@rx.test> NOTIFY=FAILURE\r\n\
         RCPT TO:<b@rx.test>\r\n\
         DATA\r\n",
    )
    .await;
    assert_eq!(c.reply().await, ["250 2.1.0 Ok"]);
    assert_eq!(c.reply().await, ["250 2.1.5 Ok"]);
    assert_eq!(c.reply().await, ["250 2.1.5 Ok"]);
    assert_eq!(c.reply().await, ["354 End data with <CR><LF>.<CR><LF>"]);
    c.send("Subject: hi\r\n\r\n..dotted\r\n.\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["250 2.0.0 Ok: queued"]);
    assert_eq!(c.reply().await, ["221 2.0.0 Bye"]);
    assert!(c.reply().await.is_empty(), "connection should be closed after QUIT");

    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.connection, 1);
    assert_eq!(m.helo, "client.test");
    assert_eq!(m.mail_from, "sender@example.test");
    assert_eq!(m.mail_params, "SIZE=40 BODY=8BITMIME");
    assert_eq!(m.rcpt_to, ["a@rx.test", "b@rx.test"]);
    assert_eq!(m.rcpt_params, ["NOTIFY=FAILURE", ""]);
    assert_eq!(m.data, b"Subject: hi\r\n\r\n.dotted\r\n");
    assert_eq!(rx.connections(), 1);

    let transcript = rx.transcript();
    assert!(transcript[0].starts_with("== connection 1 from 127.0.0.1:"));
    assert!(transcript.contains(&"C: RCPT TO:<b@rx.test>".to_owned()), "{transcript:#?}");
    assert!(transcript.contains(&"S: 221 2.0.0 Bye".to_owned()), "{transcript:#?}");
}

#[tokio::test]
async fn per_recipient_rejection() {
    let script = Script::default().rcpt(|addr| {
        (addr == "nobody@rx.test")
            .then(|| format!("550 5.1.1 <{addr}>: Recipient address rejected: User unknown"))
    });
    let rx = Receiver::start(any_port(), script).await.unwrap();
    let (mut c, _) = Client::connect(rx.addr()).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<>").await, "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<nobody@rx.test>").await,
        "550 5.1.1 <nobody@rx.test>: Recipient address rejected: User unknown"
    );
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 Error: no valid recipients");
    assert_eq!(c.cmd("RCPT TO:<user@rx.test>").await, "250 2.1.5 Ok");
    assert_eq!(c.cmd("DATA").await, "354 End data with <CR><LF>.<CR><LF>");
    assert_eq!(c.cmd("hello\r\n.").await, "250 2.0.0 Ok: queued");

    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].mail_from, "");
    assert_eq!(got[0].rcpt_to, ["user@rx.test"]);
    assert_eq!(got[0].data_text(), "hello\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_replies_span_connections() {
    let script = Script::default().data_replies(["451 4.3.0 Try again later", "250 2.0.0 Ok: id=2"]);
    let rx = Receiver::start(any_port(), script).await.unwrap();

    let mut replies = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = Client::connect(rx.addr()).await;
        c.cmd("EHLO client.test").await;
        c.cmd("MAIL FROM:<s@example.test>").await;
        c.cmd("RCPT TO:<u@rx.test>").await;
        c.cmd("DATA").await;
        replies.push(c.cmd("body\r\n.").await);
        c.cmd("QUIT").await;
    }
    assert_eq!(replies, ["451 4.3.0 Try again later", "250 2.0.0 Ok: id=2", "250 2.0.0 Ok: queued"]);
    assert_eq!(rx.connections(), 3);

    let accepted = rx.messages();
    assert_eq!(accepted.iter().map(|m| m.connection).collect::<Vec<_>>(), [2, 3]);
    let rejected = rx.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].connection, 1);
    assert_eq!(rejected[0].reply, "451 4.3.0 Try again later");
}

#[tokio::test]
async fn greeting_421_closes() {
    let script = Script::default().greeting("421 4.7.0 Try again later");
    let rx = Receiver::start(any_port(), script).await.unwrap();
    let (mut c, greeting) = Client::connect(rx.addr()).await;
    assert_eq!(greeting, ["421 4.7.0 Try again later"]);
    assert!(c.reply().await.is_empty(), "connection should be closed");
    assert_eq!(rx.connections(), 1);
    assert!(rx.wait_for(1, Duration::from_millis(50)).await.is_empty());
}

#[tokio::test]
async fn ehlo_rejected_then_helo() {
    let rx = Receiver::start(any_port(), Script::default().reject_ehlo()).await.unwrap();
    let (mut c, _) = Client::connect(rx.addr()).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("502 "));
    assert_eq!(c.cmd("MAIL FROM:<s@example.test>").await, "503 5.5.1 Error: send HELO/EHLO first");
    assert_eq!(c.cmd("HELO client.test").await, "250 rx.test");
    c.cmd("MAIL FROM:<s@example.test>").await;
    c.cmd("RCPT TO:<u@rx.test>").await;
    c.cmd("DATA").await;
    assert_eq!(c.cmd(".").await, "250 2.0.0 Ok: queued");
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].helo, "client.test");
    assert!(got[0].data.is_empty());
}

#[tokio::test]
async fn multi_line_replies_rset_noop_and_bad_input() {
    let script = Script::default()
        .mail_reply("250-2.1.0 first line\n250 2.1.0 second line")
        .data_replies(["554-5.7.1 Rejected\n5.7.1 for policy reasons"]);
    let rx = Receiver::start(any_port(), script).await.unwrap();
    let (mut c, _) = Client::connect(rx.addr()).await;
    c.cmd("EHLO client.test").await;
    c.send("MAIL FROM:<s@example.test>\r\n").await;
    assert_eq!(c.reply().await, ["250-2.1.0 first line", "250 2.1.0 second line"]);
    assert_eq!(c.cmd("MAIL FROM:<s@example.test>").await, "503 5.5.1 Error: nested MAIL command");
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 Ok");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<u@rx.test>").await, "503 5.5.1 Error: need MAIL command");
    assert_eq!(c.cmd("MAIL FROM:s@example.test").await, "501 5.5.4 Syntax: MAIL FROM:<address>");
    assert_eq!(c.cmd("STARTTLS").await, "502 5.5.2 Error: command not recognized");
    assert_eq!(c.cmd(&"X".repeat(10_000)).await, "500 5.5.2 Error: line too long");
    c.writer.write_all(b"\xff\x00\xc3 garbage\r\n").await.unwrap();
    assert!(c.reply().await[0].starts_with("502 "));

    c.cmd("MAIL FROM:<s@example.test>").await;
    c.cmd("RCPT TO:<u@rx.test>").await;
    c.cmd("DATA").await;
    c.send("x\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["554-5.7.1 Rejected", "554 5.7.1 for policy reasons"]);
    assert!(rx.messages().is_empty());
    assert_eq!(rx.rejected().len(), 1);
}

#[tokio::test]
async fn oversized_message_is_refused_without_using_a_scripted_reply() {
    let script = Script::default().ehlo_extensions(["SIZE 100"]).data_replies(["250 2.0.0 scripted"]);
    let rx = Receiver::start(any_port(), script).await.unwrap();
    let (mut c, _) = Client::connect(rx.addr()).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<s@example.test>").await;
    c.cmd("RCPT TO:<u@rx.test>").await;
    c.cmd("DATA").await;
    c.send(&format!("{}\r\n.\r\n", "y".repeat(200))).await;
    assert_eq!(c.reply().await, ["552 5.3.4 Error: message file too big"]);
    c.cmd("MAIL FROM:<s@example.test>").await;
    c.cmd("RCPT TO:<u@rx.test>").await;
    c.cmd("DATA").await;
    assert_eq!(c.cmd("small\r\n.").await, "250 2.0.0 scripted");
}

#[tokio::test]
async fn shutdown_frees_the_port_and_drops_sessions() {
    let rx = Receiver::start(any_port(), Script::default()).await.unwrap();
    let addr = rx.addr();
    let (mut c, _) = Client::connect(addr).await;
    rx.shutdown().await;
    assert!(c.reply().await.is_empty(), "open session should be closed");
    assert!(TcpStream::connect(addr).await.is_err());
    let again = Receiver::start(addr, Script::default()).await.unwrap();
    assert_eq!(again.addr(), addr);
}

#[tokio::test]
async fn binds_exactly_the_given_address() {
    let addr: SocketAddr = "127.0.0.21:0".parse().unwrap();
    let rx = Receiver::start(addr, Script::default()).await.unwrap();
    assert_eq!(rx.addr().ip(), addr.ip());
    let (_c, greeting) = Client::connect(rx.addr()).await;
    assert_eq!(greeting.len(), 1);
}
