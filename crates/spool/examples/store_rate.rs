//! How fast the spool stores and recovers, on the disk you point it at.
//!
//! ```text
//! cargo run --release -p homing-spool --example store_rate [DIR] [MESSAGES] [THREADS] [WRITE_THREADS]
//! ```
//!
//! Stores MESSAGES (default 2000) bodies of 1 KiB with real fsync, first via
//! the group committer from THREADS (default 20) threads, each waiting for its
//! message like an SMTP session, then one by one with `Spool::store` from one
//! thread; prints both rates and the number of commit rounds. WRITE_THREADS
//! sets `SpoolOptions::write_threads` (default 8). Then it fills a spool with
//! 100,000 small messages (fsync off, to save time) and times `Spool::open`
//! recovering them.
//!
//! It works in a fresh subdirectory of DIR (default: the system temp dir),
//! removed at the end. Use a DIR on the disk production will use: fsync cost
//! is the whole story.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use homing_spool::{
    Envelope, MessageKind, NewMessage, RecipientRecord, Source, Spool, SpoolError, SpoolOptions,
};

fn main() -> Result<(), SpoolError> {
    let args: Vec<String> = std::env::args().collect();
    // A fresh subdirectory, removed at the end, so DIR itself is never touched.
    let base = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("homing-store-rate-{}", std::process::id()));
    let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20).max(1);
    let write_threads: usize =
        args.get(4).and_then(|s| s.parse().ok()).unwrap_or(SpoolOptions::default().write_threads);
    println!("spool under {}", base.display());

    let (rate_gc, commits) = committer_rate(&base.join("group"), count, threads, write_threads)?;
    println!(
        "committer, {threads} threads: {count} x 1 KiB in {:.2?} = {:.0} msg/s, {commits} commits",
        rate_gc,
        count as f64 / rate_gc.as_secs_f64()
    );
    let single = single_rate(&base.join("single"), count)?;
    println!(
        "store(), 1 thread:          {count} x 1 KiB in {single:.2?} = {:.0} msg/s",
        count as f64 / single.as_secs_f64()
    );
    println!("group commit speed-up: {:.1}x", single.as_secs_f64() / rate_gc.as_secs_f64());

    recovery_time(&base.join("recover"), 100_000)?;
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

fn message(spool: &Spool) -> NewMessage {
    NewMessage {
        id: spool.new_id(),
        envelope: Envelope {
            received_at: UNIX_EPOCH + Duration::from_secs(1_732_370_400),
            return_path: "sender@example.com".into(),
            envid: None,
            message_id: Some("<m1@example.test>".into()),
            ret_full: None,
            body_8bit: false,
            smtputf8: false,
            source: Source {
                peer_ip: "192.0.2.1".into(),
                helo: "client.example.com".into(),
                tls: None,
                auth: None,
            },
            recipients: vec![RecipientRecord { address: "rcpt@example.org".into(), orcpt: None, notify: 0 }],
            kind: MessageKind::Normal,
        },
        body: vec![b'x'; 1024],
    }
}

fn committer_rate(
    dir: &Path,
    count: usize,
    threads: usize,
    write_threads: usize,
) -> Result<(Duration, u64), SpoolError> {
    let opts = SpoolOptions { write_threads, ..SpoolOptions::default() };
    let (spool, _) = Spool::open(dir, opts)?;
    let committer = spool.committer();
    let start = Instant::now();
    let failures: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (spool, committer) = (spool.clone(), committer.clone());
                let mine = count / threads + usize::from(t < count % threads);
                s.spawn(move || {
                    // Each thread is an SMTP session: one message at a time,
                    // waiting for its 250 before the next.
                    let mut failed = 0;
                    for _ in 0..mine {
                        let (tx, rx) = mpsc::sync_channel(1);
                        committer.submit(
                            message(&spool),
                            Box::new(move |r| {
                                let _ = tx.send(r.is_ok());
                            }),
                        );
                        if !rx.recv().unwrap_or(false) {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(usize::MAX)).sum()
    });
    let elapsed = start.elapsed();
    if failures > 0 {
        eprintln!("{failures} stores failed");
    }
    Ok((elapsed, spool.stats().commits))
}

fn single_rate(dir: &Path, count: usize) -> Result<Duration, SpoolError> {
    let (spool, _) = Spool::open(dir, SpoolOptions::default())?;
    let start = Instant::now();
    for _ in 0..count {
        spool.store(message(&spool))?;
    }
    Ok(start.elapsed())
}

fn recovery_time(dir: &Path, count: usize) -> Result<(), SpoolError> {
    {
        let opts = SpoolOptions { fsync: false, ..SpoolOptions::default() };
        let (spool, _) = Spool::open(dir, opts)?;
        let committer = spool.committer();
        let (tx, rx) = mpsc::channel();
        for _ in 0..count {
            let tx = tx.clone();
            committer.submit(
                message(&spool),
                Box::new(move |r| {
                    let _ = tx.send(r.is_ok());
                }),
            );
        }
        drop(tx);
        let ok = rx.iter().filter(|ok| *ok).count();
        println!("filled {ok} messages for the recovery test");
    }
    // Best effort: drop the page cache so the timing includes disk reads.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let start = Instant::now();
    let (_spool, rec) = Spool::open(dir, SpoolOptions::default())?;
    let elapsed = start.elapsed();
    let per_msg = std::mem::size_of::<homing_spool::RecoveredMessage>()
        + std::mem::size_of::<RecipientRecord>()
        + std::mem::size_of::<homing_spool::RecipientState>();
    println!(
        "recovered {} messages in {elapsed:.2?} ({} quarantined); in-memory record ~{per_msg} bytes + strings",
        rec.messages.len(),
        rec.quarantined.len()
    );
    Ok(())
}
