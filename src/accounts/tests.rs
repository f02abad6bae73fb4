use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;

fn user(login: &str, password: &str, addresses: &[&str]) -> User {
    User {
        login: login.into(),
        password: password::hash(password).unwrap(),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        aliases: Vec::new(),
        catch_all: Vec::new(),
        quota: None,
    }
}

fn addr(s: &str) -> Address {
    parse_address(s).unwrap()
}

fn quick() -> Options {
    Options { reload_interval: Duration::ZERO, ..Options::default() }
}

#[test]
fn add_change_delete_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/users.toml");
    let a = Accounts::open(&path, quick()).unwrap();
    assert!(a.users().unwrap().is_empty(), "a missing file is an empty store");
    a.add(user("Alice", "pw1", &["alice@example.org"])).unwrap();
    assert!(matches!(a.add(user("alice", "x", &[])), Err(AccountsError::Exists(l)) if l == "alice"));
    assert!(matches!(
        a.add(user("bob", "x", &["ALICE@example.org"])),
        Err(AccountsError::Record(RecordError::SharedAddress { .. }))
    ));
    assert!(matches!(a.delete("carol"), Err(AccountsError::Unknown(_))));
    assert_eq!(a.verify("ALICE", "pw1"), Verdict::Accepted("alice".into()));

    let new_hash = password::hash("pw2").unwrap();
    a.update("alice", |u| {
        u.password = new_hash;
        u.aliases.push("a@example.org".into());
    })
    .unwrap();
    assert_eq!(a.verify("alice", "pw1"), Verdict::Rejected);
    assert_eq!(a.verify("alice", "pw2"), Verdict::Accepted("alice".into()));
    assert!(a.owns("alice", &addr("A@example.org")));
    assert!(!a.owns("bob", &addr("a@example.org")));

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "password hashes are private");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# homing users") && text.contains("[[user]]"), "{text}");

    assert_eq!(a.delete("alice").unwrap().login, "alice");
    assert!(a.users().unwrap().is_empty());
    assert_eq!(a.verify("alice", "pw2"), Verdict::Rejected);
}

#[test]
fn another_process_change_is_noticed_and_a_broken_file_keeps_the_last_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let server = Accounts::open(&path, quick()).unwrap();
    let cli = Accounts::open(&path, quick()).unwrap();
    cli.add(user("alice", "pw", &["alice@example.org"])).unwrap();
    assert_eq!(server.resolve(&addr("alice@example.org")), Some(("alice".into(), Via::Address)));
    assert_eq!(server.verify("alice", "pw"), Verdict::Accepted("alice".into()));

    std::fs::write(&path, "[[user]]\nlogin = \"x\"\nbogus = 1\n").unwrap();
    assert_eq!(server.resolve(&addr("alice@example.org")), Some(("alice".into(), Via::Address)));
    assert!(matches!(cli.add(user("bob", "pw", &[])), Err(AccountsError::Syntax { .. })), "writers refuse");
    assert!(matches!(Accounts::open(&path, quick()), Err(AccountsError::Syntax { .. })));
}

#[test]
fn catch_all_resolves_but_does_not_grant_senders() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(&dir.path().join("users.toml"), quick()).unwrap();
    let mut u = user("postmaster", "pw", &["postmaster@example.org"]);
    u.catch_all = vec!["example.org".into()];
    a.add(u).unwrap();
    assert_eq!(a.resolve(&addr("nobody@Example.org")), Some(("postmaster".into(), Via::CatchAll)));
    assert!(!a.owns("postmaster", &addr("nobody@example.org")));
    assert_eq!(a.resolve(&addr("nobody@example.com")), None);
}

#[test]
fn unknown_users_cost_the_same_work_as_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(&dir.path().join("users.toml"), quick()).unwrap();
    a.add(user("alice", "pw", &[])).unwrap();
    a.verify("nobody", "warm-up");
    let time = |login: &str| {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            assert_eq!(a.verify(login, "guess"), Verdict::Rejected);
            best = best.min(t.elapsed());
        }
        best
    };
    let (known, unknown) = (time("alice"), time("nobody"));
    // Loose bounds: tests run in parallel on a busy machine; skipping the work would make
    // the unknown login take microseconds, not milliseconds.
    assert!(unknown * 4 > known && known * 4 > unknown, "known {known:?}, unknown {unknown:?}");
    assert!(password::decoy().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "same parameters");
}
