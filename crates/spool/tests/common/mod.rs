//! Builders shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use homing_spool::{
    Envelope, MessageKind, NOTIFY_FAILURE, NewMessage, RecipientRecord, Recovery, Source, Spool, SpoolOptions,
};

pub fn envelope(rcpts: usize) -> Envelope {
    Envelope {
        received_at: UNIX_EPOCH + Duration::new(1_732_370_400, 42),
        return_path: "sender@example.com".into(),
        envid: Some("env-1".into()),
        message_id: Some("<m1@example.test>".into()),
        ret_full: Some(true),
        body_8bit: false,
        smtputf8: false,
        source: Source {
            peer_ip: "198.51.100.9".into(),
            helo: "client.example.com".into(),
            tls: None,
            auth: Some("sender".into()),
        },
        recipients: (0..rcpts)
            .map(|i| RecipientRecord {
                address: format!("rcpt{i}@example.org"),
                orcpt: None,
                notify: NOTIFY_FAILURE,
            })
            .collect(),
        kind: MessageKind::Normal,
    }
}

pub fn message(spool: &Spool, body: &[u8]) -> NewMessage {
    NewMessage { id: spool.new_id(), envelope: envelope(2), body: body.to_vec() }
}

pub fn open(root: &Path) -> (Spool, Recovery) {
    match Spool::open(root, SpoolOptions::default()) {
        Ok(x) => x,
        Err(e) => panic!("open {}: {e}", root.display()),
    }
}

pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
