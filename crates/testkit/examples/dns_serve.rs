//! A stand-alone authoritative DNS server on loopback, for benchmarks and manual tests.
//!
//! ```text
//! dns_serve [--bind IP] [--port N] [--empty-zone ORIGIN]... ZONE_FILE...
//! ```
//!
//! Serves each ZONE_FILE (master-file text with `$ORIGIN`, `$TTL` and an SOA; see
//! [`homing_testkit::dns::zone_header`]) over UDP and TCP on IP:N (default 127.0.0.1:5353)
//! until SIGTERM or Ctrl-C. `--empty-zone test.` makes every unknown name under `test.`
//! NXDOMAIN instead of REFUSED. Once both sockets are bound it prints
//! `dns_serve listening on IP:PORT` on standard output, so a script can wait for that line.

use std::net::IpAddr;
use std::process::ExitCode;

use homing_testkit::dns::TestDns;

const USAGE: &str = "usage: dns_serve [--bind IP] [--port N] [--empty-zone ORIGIN]... ZONE_FILE...";

struct Args {
    bind: IpAddr,
    port: u16,
    empty_zones: Vec<String>,
    zone_files: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: IpAddr::from([127, 0, 0, 1]),
        port: 5353,
        empty_zones: Vec::new(),
        zone_files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bind" => {
                let v = value("--bind")?;
                args.bind = v.parse().map_err(|e| format!("--bind {v:?}: {e}"))?;
            }
            "--port" => {
                let v = value("--port")?;
                args.port = v.parse().map_err(|e| format!("--port {v:?}: {e}"))?;
            }
            "--empty-zone" => args.empty_zones.push(value("--empty-zone")?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => args.zone_files.push(arg),
        }
    }
    if args.zone_files.is_empty() && args.empty_zones.is_empty() {
        return Err("no zone given".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dns_serve: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = TestDns::builder().bind(args.bind).port(args.port);
    for origin in &args.empty_zones {
        builder = builder.empty_zone(origin);
    }
    for path in &args.zone_files {
        match std::fs::read_to_string(path) {
            Ok(text) => builder = builder.zone(text),
            Err(e) => {
                eprintln!("dns_serve: cannot read zone file {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let dns = match builder.start().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dns_serve: cannot serve on {}:{}: {e}", args.bind, args.port);
            return ExitCode::FAILURE;
        }
    };
    println!("dns_serve listening on {}", dns.addr);

    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    dns.shutdown().await;
    ExitCode::SUCCESS
}
