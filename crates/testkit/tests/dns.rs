//! The test DNS server answers real queries over real UDP and TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use homing_testkit::dns::{TestDns, zone_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

fn query(name: &str, rtype: RecordType, edns_payload: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_id(0x4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        msg.set_edns(edns);
    }
    msg.to_bytes().unwrap()
}

/// Sends one query over UDP; `None` if no answer within `wait`.
async fn udp(server: SocketAddr, name: &str, rtype: RecordType, wait: Duration) -> Option<Message> {
    udp_edns(server, name, rtype, wait, None).await
}

async fn udp_edns(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    wait: Duration,
    edns_payload: Option<u16>,
) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query(name, rtype, edns_payload), server).await.unwrap();
    let mut buf = vec![0; 65535];
    let (n, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await.ok()?.unwrap();
    Some(Message::from_bytes(&buf[..n]).unwrap())
}

/// Sends one query over TCP with the two-byte length prefix (RFC 1035 §4.2.2).
async fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let q = query(name, rtype, None);
    stream.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(WAIT, read).await.unwrap();
    Message::from_bytes(&buf).unwrap()
}

async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp(server, name, rtype, WAIT).await.expect("no answer over UDP")
}

fn mx_set(msg: &Message) -> Vec<(u16, String)> {
    let mut set: Vec<_> = msg
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::MX(mx) => Some((mx.preference(), mx.exchange().to_string())),
            _ => None,
        })
        .collect();
    set.sort();
    set
}

fn example_zone() -> String {
    zone_header("example.test")
        + "@ MX 10 mx1\n\
           @ MX 20 mx2\n\
           mx1 A 127.0.0.21\n\
           mx2 A 127.0.0.22\n\
           mx6 AAAA ::1\n\
           @ TXT \"v=spf1 ip4:127.0.0.0/8 -all\"\n\
           big TXT \""
        + &"a".repeat(250)
        + "\"\n\
           big TXT \""
        + &"b".repeat(250)
        + "\"\n\
           big TXT \""
        + &"c".repeat(250)
        + "\"\n"
}

async fn lab() -> TestDns {
    TestDns::builder()
        .zone(example_zone())
        .zone(zone_header("nullmx.test.") + "@ MX 0 .\n")
        .empty_zone("test.")
        .servfail("servfail.test")
        .blackhole("slow.test")
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn mx_a_aaaa_txt_answers() {
    let dns = lab().await;

    let mx = ask(dns.addr, "example.test.", RecordType::MX).await;
    assert_eq!(mx.response_code(), ResponseCode::NoError);
    assert!(mx.authoritative());
    assert_eq!(mx_set(&mx), [(10, "mx1.example.test.".to_owned()), (20, "mx2.example.test.".to_owned())]);

    let a = ask(dns.addr, "mx2.example.test.", RecordType::A).await;
    assert!(matches!(a.answers()[0].data(), RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 22)));

    let aaaa = ask(dns.addr, "MX6.Example.Test.", RecordType::AAAA).await;
    assert!(matches!(aaaa.answers()[0].data(), RData::AAAA(a) if a.0 == Ipv6Addr::LOCALHOST));

    let txt = ask(dns.addr, "example.test.", RecordType::TXT).await;
    assert_eq!(txt.answers()[0].data().to_string(), "v=spf1 ip4:127.0.0.0/8 -all");

    let null = ask(dns.addr, "nullmx.test.", RecordType::MX).await;
    assert_eq!(mx_set(&null), [(0, ".".to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nxdomain_servfail_refused() {
    let dns = lab().await;

    let under_zone = ask(dns.addr, "nohost.example.test.", RecordType::A).await;
    assert_eq!(under_zone.response_code(), ResponseCode::NXDomain);

    let under_parent = ask(dns.addr, "nosuchdomain.test.", RecordType::MX).await;
    assert_eq!(under_parent.response_code(), ResponseCode::NXDomain);

    let no_data = ask(dns.addr, "mx1.example.test.", RecordType::MX).await;
    assert_eq!(no_data.response_code(), ResponseCode::NoError);
    assert!(no_data.answers().is_empty());

    for name in ["servfail.test.", "a.b.servfail.test."] {
        let failed = ask(dns.addr, name, RecordType::MX).await;
        assert_eq!(failed.response_code(), ResponseCode::ServFail, "{name}");
    }

    let outside = ask(dns.addr, "example.org.", RecordType::MX).await;
    assert_eq!(outside.response_code(), ResponseCode::Refused);
}

#[tokio::test]
async fn blackhole_never_answers() {
    let dns = lab().await;
    for name in ["slow.test.", "mx.slow.test."] {
        let answer = udp(dns.addr, name, RecordType::MX, Duration::from_secs(1)).await;
        assert!(answer.is_none(), "{name} was answered: {answer:?}");
    }
    // The server is still serving others.
    assert_eq!(mx_set(&ask(dns.addr, "example.test.", RecordType::MX).await).len(), 2);
}

#[tokio::test]
async fn tcp_and_truncation() {
    let dns = lab().await;

    let mx = tcp(dns.addr, "example.test.", RecordType::MX).await;
    assert_eq!(mx_set(&mx).len(), 2);

    // 3 × 250 bytes do not fit the 512 bytes the client offers (RFC 6891 §6.2.3):
    // truncated, and complete over TCP.
    let udp_big = udp_edns(dns.addr, "big.example.test.", RecordType::TXT, WAIT, Some(512)).await;
    assert!(udp_big.expect("no answer over UDP").truncated());
    let tcp_big = tcp(dns.addr, "big.example.test.", RecordType::TXT).await;
    assert!(!tcp_big.truncated());
    assert_eq!(tcp_big.answers().len(), 3);

    let failed = tcp(dns.addr, "servfail.test.", RecordType::A).await;
    assert_eq!(failed.response_code(), ResponseCode::ServFail);
}

#[tokio::test]
async fn start_with_zone_texts_and_bad_zones() {
    let zone = example_zone();
    let dns = TestDns::start(&[&zone]).await.unwrap();
    assert_eq!(mx_set(&ask(dns.addr, "example.test.", RecordType::MX).await).len(), 2);
    // Without a parent zone, a sibling name is outside every zone.
    let outside = ask(dns.addr, "other.test.", RecordType::MX).await;
    assert_eq!(outside.response_code(), ResponseCode::Refused);

    let broken = TestDns::start(&["$ORIGIN x.test.\n@ A not-an-address\n"]).await;
    assert_eq!(broken.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    let twice = TestDns::start(&[&zone, &zone]).await;
    assert!(twice.unwrap_err().to_string().contains("given twice"));
}

#[tokio::test]
async fn shutdown_and_drop_stop_serving() {
    let dns = lab().await;
    let addr = dns.addr;
    dns.shutdown().await;
    assert!(udp(addr, "example.test.", RecordType::MX, Duration::from_millis(300)).await.is_none());
    assert!(TcpStream::connect(addr).await.is_err());

    let dns = lab().await;
    let addr = dns.addr;
    drop(dns);
    tokio::task::yield_now().await;
    assert!(udp(addr, "example.test.", RecordType::MX, Duration::from_millis(300)).await.is_none());
}
