//! Shared harness for the end-to-end tests: runs the real `homing` binary on loopback with
//! a config pointing at an in-process DNS server and scripted receivers.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One running homing process with its own spool and config.
pub struct Homing {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    config: PathBuf,
    child: Option<Child>,
}

/// Config for a test instance: `extra` is TOML appended after the generated settings
/// (tables only, e.g. "[queue]\nmax_lifetime = \"3s\"").
pub struct Setup<'a> {
    pub addr: SocketAddr,
    pub dns: SocketAddr,
    pub delivery_port: u16,
    pub hostname: &'a str,
    pub queue: &'a str,
    pub extra: &'a str,
    /// More keys for the first `[[listener]]` (the one the harness waits for), e.g.
    /// "mode = \"submission\"\n".
    pub listener: &'a str,
}

impl<'a> Setup<'a> {
    pub fn new(addr: &str, dns: SocketAddr, delivery_port: u16) -> Self {
        Setup {
            addr: addr.parse().expect("test address"),
            dns,
            delivery_port,
            hostname: "homing.test",
            queue: "retry_intervals = [\"1s\"]\nretry_jitter = 0.0\n",
            extra: "",
            listener: "",
        }
    }
}

impl Homing {
    pub fn start(setup: &Setup<'_>) -> Homing {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("homing.toml");
        let text = format!(
            "hostname = \"{host}\"\nspool_dir = \"{spool}\"\n\n[[listener]]\naddress = \"{addr}\"\n{listener}\n\
             [dns]\nservers = [\"{dns}\"]\ntimeout = \"2s\"\nattempts = 1\n\n\
             [delivery]\nport = {port}\nconnect_timeout = \"2s\"\n\n[queue]\n{queue}\n{extra}\n",
            host = setup.hostname,
            spool = dir.path().join("spool").display(),
            addr = setup.addr,
            dns = setup.dns,
            port = setup.delivery_port,
            queue = setup.queue,
            extra = setup.extra,
            listener = setup.listener,
        );
        std::fs::write(&config, text).expect("write config");
        let mut h = Homing { dir, addr: setup.addr, config, child: None };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("stderr.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_homing"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("HOMING_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn homing");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("homing exited with {status} at start:\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "homing did not listen on {}:\n{}", self.addr, self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up, like a power cut for the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (e.g. "HUP") to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().map(|c| c.id()).expect("homing is running");
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// The config file the process runs with, for CLI subcommands against the same spool.
    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.spool().join("events.jsonl")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Waits until `pred` holds for some event; returns the matching events.
    pub fn wait_events(&self, timeout: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events();
            if pred(&ev) {
                return ev;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for events; have:\n{}\n--- stderr:\n{}",
                    ev.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Homing {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// A minimal SMTP client for tests: sends one message and returns every reply line.
pub struct Smtp {
    r: BufReader<TcpStream>,
    w: TcpStream,
    pub log: Vec<String>,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        let s = TcpStream::connect(addr).expect("connect to homing");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut c = Smtp { r: BufReader::new(s.try_clone().expect("clone")), w: s, log: Vec::new() };
        c.reply();
        c
    }

    /// Reads one (possibly multi-line) reply; returns its last line.
    pub fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                self.log.push("S: <closed>".into());
                return String::new();
            }
            let line = line.trim_end().to_string();
            self.log.push(format!("S: {line}"));
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line;
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.log.push(format!("C: {line}"));
        self.w.write_all(format!("{line}\r\n").as_bytes()).expect("write");
        self.reply()
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// EHLO, MAIL, RCPTs, DATA; returns the reply to the final dot. Panics with the
    /// transcript when a step is refused unexpectedly.
    pub fn send(&mut self, from: &str, rcpts: &[&str], body: &str) -> String {
        let r = self.cmd("EHLO client.test");
        assert!(r.starts_with("250"), "{:#?}", self.log);
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "{:#?}", self.log);
        for rc in rcpts {
            let r = self.cmd(&format!("RCPT TO:{rc}"));
            assert!(r.starts_with("250"), "{:#?}", self.log);
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "{:#?}", self.log);
        self.raw(body.replace('\n', "\r\n").as_bytes());
        self.raw(b"\r\n.\r\n");
        self.reply()
    }
}

/// Sends one message in its own session and checks it was accepted.
pub fn send(addr: SocketAddr, from: &str, rcpts: &[&str], subject: &str) -> String {
    let mut c = Smtp::connect(addr);
    let body = format!(
        "From: <{from}>\nTo: {}\nSubject: {subject}\n\nHello from the homing tests.\n",
        rcpts.join(", ")
    );
    let r = c.send(from, rcpts, &body);
    assert!(r.starts_with("250"), "not accepted: {:#?}", c.log);
    c.cmd("QUIT");
    r
}

pub fn read_all(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s)).ok();
    s
}

/// A private Postfix instance (`tests/peers/postfix.sh`) with its own config, queue and log
/// in a temporary directory. Dropping it stops Postfix and waits until the master has
/// exited, also when the test failed or the start did not complete.
pub struct Postfix {
    pub name: String,
    pub listen: SocketAddr,
    dir: tempfile::TempDir,
}

impl Postfix {
    const SCRIPT: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/postfix.sh");

    /// Starts Postfix as `NAME.test` with smtpd on `listen` only; each of `params`
    /// (`"relayhost = [127.0.0.1]:2525"`) is added to the generated main.cf. Returns once
    /// smtpd accepts connections.
    pub fn start(name: &str, listen: &str, params: &[&str]) -> Postfix {
        let pf = Postfix {
            name: name.to_string(),
            listen: listen.parse().expect("Postfix listen address"),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let params: Vec<String> = params
            .iter()
            .map(|p| match p.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => panic!("Postfix parameter {p:?} is not NAME = VALUE"),
            })
            .collect();
        let out = Command::new("bash")
            .arg(Self::SCRIPT)
            .args(["start", name])
            .arg(pf.dir.path())
            .arg(listen)
            .args(&params)
            .output()
            .expect("run tests/peers/postfix.sh (needs bash)");
        assert!(
            out.status.success(),
            "postfix.sh start {name} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pf
    }

    /// Everything Postfix logged so far (its `maillog_file`).
    pub fn log(&self) -> String {
        read_all(&self.dir.path().join("maillog"))
    }

    /// Waits until `pred` holds for the log; returns the log.
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if pred(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "timed out waiting for the Postfix {} log:\n{log}", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let out = Command::new("bash").arg(Self::SCRIPT).arg("stop").arg(self.dir.path()).output();
        match out {
            Ok(o) if o.status.success() => {}
            // Not a panic: this may run while a failed test unwinds.
            Ok(o) => eprintln!(
                "postfix.sh stop {} failed ({}): {}",
                self.dir.path().display(),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run postfix.sh stop: {e}"),
        }
    }
}
