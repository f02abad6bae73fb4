use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_explain::{Evidence, Reason, ReplyEvidence, Stage, explain};
use proptest::prelude::*;

use super::*;

fn addr(s: &str) -> Address {
    parse_address(s).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2026-11-23T14:03:19Z
const T: u64 = 1_795_442_599;

fn quick() -> Options {
    Options { reload_interval: Duration::ZERO, ..Options::default() }
}

fn bounce_entry(address: &str) -> Entry {
    let mut ev = Evidence::bare(Stage::Rcpt, "rx.test");
    ev.remote_host = Some("mx.rx.test".into());
    ev.reply = Some(ReplyEvidence { code: 550, status: Some("5.1.1".into()), text: "no such user".into() });
    let why = explain(&ev);
    assert!(why.suppresses_recipient(), "{why:?}");
    Entry::from_bounce(&addr(address), &why, "01QUEUEID", at(T))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn an_added_entry_is_one_json_line_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool/suppression.jsonl");
    let list = SuppressionList::open(&path, quick()).unwrap();
    assert!(list.entries().unwrap().is_empty());
    assert_eq!(list.remove(&addr("bob@rx.test"), Date(at(T))).unwrap(), None);
    assert!(!dir.path().join("spool").exists(), "reading and removing create nothing");
    let e = bounce_entry("bob@rx.test");
    assert_eq!(list.add(e.clone()).unwrap(), Added::New(e.clone()));
    let written = lines(&path);
    assert_eq!(written.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&written[0]).unwrap();
    assert_eq!(v["op"], "add");
    assert_eq!(v["address"], "bob@rx.test");
    assert_eq!(v["reason"], "userunknown");
    assert_eq!(v["status"], "5.1.1");
    assert_eq!(v["source"], "bounce 01QUEUEID");
    assert_eq!(v["date"], "2026-11-23T14:03:19Z");
    assert!(v["cause"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    drop(list);
    let again = SuppressionList::open(&path, quick()).unwrap();
    assert_eq!(again.get(&addr("bob@rx.test")).unwrap(), Some(e));
}

#[test]
fn adding_a_listed_address_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let list = SuppressionList::open(&path, quick()).unwrap();
    let first = bounce_entry("bob@rx.test");
    list.add(first.clone()).unwrap();
    let second = Entry::manual(&addr("BOB@rx.test"), None, Some("again".into()), at(T + 60));
    assert_eq!(list.add(second).unwrap(), Added::Already(first));
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn addresses_compare_case_insensitively_and_keep_their_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let list = SuppressionList::open(&dir.path().join("s.jsonl"), quick()).unwrap();
    list.add(Entry::manual(&addr("Bob.Smith@RX.Test"), None, None, at(T))).unwrap();
    let hit = list.lookup(&addr("bob.smith@rx.test")).expect("found in another case");
    assert_eq!(hit.address, "Bob.Smith@rx.test", "local part as given, domain lowercased");
    assert!(list.lookup(&addr("<BOB.SMITH@rx.TEST>")).is_some());
    assert!(list.lookup(&addr("bob.smith2@rx.test")).is_none());
    assert!(list.remove(&addr("BOB.smith@rx.test"), Date(at(T))).unwrap().is_some());
    assert!(list.lookup(&addr("Bob.Smith@rx.test")).is_none());
}

#[test]
fn remove_appends_a_tombstone_and_reports_unlisted_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let list = SuppressionList::open(&path, quick()).unwrap();
    list.add(bounce_entry("a@rx.test")).unwrap();
    assert_eq!(list.remove(&addr("nobody@rx.test"), Date(at(T))).unwrap(), None);
    let gone = list.remove(&addr("a@rx.test"), Date(at(T + 1))).unwrap().unwrap();
    assert_eq!(gone.address, "a@rx.test");
    let written = lines(&path);
    assert_eq!(written.len(), 2);
    assert_eq!(written[1], r#"{"op":"remove","address":"a@rx.test","date":"2026-11-23T14:03:20Z"}"#);
    drop(list);
    assert!(SuppressionList::open(&path, quick()).unwrap().entries().unwrap().is_empty());
}

#[test]
fn compaction_keeps_only_live_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let list = SuppressionList::open(&path, Options { compact_after: 3, ..quick() }).unwrap();
    for (i, a) in ["a@rx.test", "b@rx.test", "c@rx.test"].iter().enumerate() {
        list.add(Entry::manual(&addr(a), None, None, at(T + i as u64))).unwrap();
    }
    list.remove(&addr("a@rx.test"), Date(at(T))).unwrap();
    assert_eq!(lines(&path).len(), 4, "2 dead lines: not yet");
    list.remove(&addr("b@rx.test"), Date(at(T))).unwrap();
    let written = lines(&path);
    assert_eq!(written.len(), 1, "compacted after the 4th dead line: {written:?}");
    assert!(written[0].contains("c@rx.test"));
    assert!(!file::sibling(&path, "tmp").exists());
    list.add(Entry::manual(&addr("d@rx.test"), None, None, at(T))).unwrap();
    let other = SuppressionList::open(&path, quick()).unwrap();
    let names: Vec<String> = other.entries().unwrap().into_iter().map(|e| e.address).collect();
    assert_eq!(names, ["d@rx.test", "c@rx.test"], "oldest first");
}

#[test]
fn folding_applies_lines_in_order() {
    let text = concat!(
        r#"{"op":"add","address":"a@x.test","reason":"userunknown","source":"manual","date":"2026-01-01T00:00:00Z"}"#,
        "\n\n",
        r#"{"op":"add","address":"b@x.test","reason":"suspend","status":"5.2.1","source":"bounce Q1","date":"2026-01-02T00:00:00.5Z","future_field":1}"#,
        "\n",
        r#"{"op":"remove","address":"A@X.test","date":"2026-01-03T00:00:00Z"}"#,
        "\n",
        r#"{"op":"add","address":"b@x.test","reason":"feedback","source":"manual","date":"2026-01-04T00:00:00Z"}"#,
        "\n",
    );
    let f = fold(text.as_bytes());
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(f.lines, 4);
    assert_eq!(f.entries.len(), 1);
    assert_eq!(f.entries["b@x.test"].reason, Reason::Feedback, "a later add replaces");
}

#[test]
fn corrupt_lines_are_skipped_and_reported_never_fatal() {
    let good = r#"{"op":"add","address":"ok@x.test","reason":"userunknown","source":"manual","date":"2026-01-01T00:00:00Z"}"#;
    let text = [
        "not json",
        r#"{"op":"explode","address":"a@x.test"}"#,
        r#"{"op":"add","address":"no-at-sign","reason":"userunknown","source":"manual","date":"2026-01-01T00:00:00Z"}"#,
        r#"{"op":"add","address":"a@x.test","reason":"nosuchreason","source":"manual","date":"2026-01-01T00:00:00Z"}"#,
        r#"{"op":"add","address":"a@x.test","reason":"userunknown","source":"manual","date":"2026-02-30T00:00:00Z"}"#,
        r#"{"op":"add","address":"a@x.test","reason":"userunknown","source":"carrier pigeon","date":"2026-01-01T00:00:00Z"}"#,
        "\u{0}\u{ff}garbage",
        good,
    ]
    .join("\n")
        + "\n";
    let f = fold(text.as_bytes());
    assert_eq!(f.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
    assert!(f.skipped[2].error.contains("not an email address"), "{:?}", f.skipped[2]);
    assert!(f.skipped[3].error.contains("userunknown"), "names the expected values: {:?}", f.skipped[3]);
    assert!(f.skipped[4].error.contains("RFC 3339"), "{:?}", f.skipped[4]);
    assert_eq!(f.entries.len(), 1);
    assert!(f.entries.contains_key("ok@x.test"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, &text).unwrap();
    let list = SuppressionList::open(&path, quick()).unwrap();
    assert_eq!(list.skipped().len(), 7);
    assert_eq!(list.entries().unwrap().len(), 1);
}

#[test]
fn a_torn_last_line_is_ignored_and_cannot_swallow_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let torn = r#"{"op":"add","address":"torn@x.test","reason":"userun"#;
    let mut text = Line::Add(bounce_entry("a@rx.test")).to_bytes();
    text.extend_from_slice(torn.as_bytes());
    std::fs::write(&path, text).unwrap();
    let list = SuppressionList::open(&path, quick()).unwrap();
    assert_eq!(list.entries().unwrap().len(), 1);
    assert!(list.skipped().is_empty(), "an unfinished last line is not an error");
    list.add(bounce_entry("b@rx.test")).unwrap();
    drop(list);
    let list = SuppressionList::open(&path, quick()).unwrap();
    let names: Vec<String> = list.entries().unwrap().into_iter().map(|e| e.address).collect();
    assert_eq!(names, ["a@rx.test", "b@rx.test"]);
    assert_eq!(list.skipped().len(), 1, "the torn line is now a complete bad line");
    assert_eq!(list.skipped()[0].line, 2);
}

#[test]
fn another_writers_changes_are_seen_within_the_reload_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let server = SuppressionList::open(&path, quick()).unwrap();
    let slow =
        SuppressionList::open(&path, Options { reload_interval: Duration::from_secs(3600), ..quick() })
            .unwrap();
    assert!(slow.lookup(&addr("a@rx.test")).is_none());
    let cli = SuppressionList::open(&path, Options { compact_after: 1, ..quick() }).unwrap();
    cli.add(bounce_entry("a@rx.test")).unwrap();
    assert!(server.lookup(&addr("a@rx.test")).is_some(), "seen at the next lookup");
    assert!(slow.lookup(&addr("a@rx.test")).is_none(), "not checked again before the interval");
    // The server writes on top of the CLI's change without losing it.
    server.add(bounce_entry("b@rx.test")).unwrap();
    assert_eq!(cli.entries().unwrap().len(), 2);
    // This removal compacts: a new file (rename), which readers notice too.
    cli.remove(&addr("a@rx.test"), Date(at(T))).unwrap();
    assert_eq!(lines(&path).len(), 1, "compacted");
    assert!(server.lookup(&addr("a@rx.test")).is_none());
    assert!(server.lookup(&addr("b@rx.test")).is_some());
    cli.add(bounce_entry("c@rx.test")).unwrap();
    assert_eq!(server.entries().unwrap().len(), 2);
    // Deleting the file empties the list.
    std::fs::remove_file(&path).unwrap();
    assert!(server.lookup(&addr("b@rx.test")).is_none());
}

#[test]
fn refusals_use_the_listed_status_only_for_dead_addresses() {
    let wire = |e: &Entry| e.refusal(&e.address).reply().to_string();
    let bounced = bounce_entry("bob@rx.test");
    let r = wire(&bounced);
    assert!(r.starts_with("550 5.1.1 <bob@rx.test> is on this server's suppression list: it bounced on 2026-11-23 (userunknown: "), "{r}");
    assert!(
        r.ends_with("remove it with `homing suppress remove bob@rx.test` if the address works again"),
        "{r}"
    );
    let manual =
        Entry::manual(&addr("bob@rx.test"), Some(Reason::UserUnknown), Some("per ticket 42".into()), at(T));
    let r = wire(&manual);
    assert!(r.starts_with("550 5.7.1 "), "{r}");
    assert!(r.contains("added by hand on 2026-11-23 (userunknown: per ticket 42)"), "{r}");
    let complaint = Entry { reason: Reason::Feedback, ..bounced };
    assert!(wire(&complaint).starts_with("550 5.7.1 "));
    assert!(wire(&complaint).contains("the recipient complained"));
}

#[test]
fn dates_are_rfc3339_utc() {
    assert_eq!(Date(at(T)).to_string(), "2026-11-23T14:03:19Z");
    assert_eq!(Date(at(T)).day(), "2026-11-23");
    assert_eq!("2026-11-23T14:03:19Z".parse::<Date>(), Ok(Date(at(T))));
    assert_eq!("2026-11-23t14:03:19.999z".parse::<Date>(), Ok(Date(at(T))));
    assert_eq!("2000-02-29T00:00:00Z".parse::<Date>(), Ok(Date(at(951_782_400))));
    for bad in [
        "",
        "2026-11-23",
        "2026-11-23 14:03:19Z",
        "2026-11-23T14:03:19+01:00",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2026-11-23T14:03:1\u{e9}Z",
        "2026-11-23T24:00:00Z",
    ] {
        assert!(bad.parse::<Date>().is_err(), "{bad:?}");
    }
}

#[test]
fn bad_addresses_say_how_to_write_one() {
    for bad in ["", "bob", "bob@", "@rx.test", "bob@@rx.test", "b ob@rx.test"] {
        let e = parse_address(bad).unwrap_err().to_string();
        assert!(e.contains("user@example.com"), "{e}");
    }
}

fn op() -> impl Strategy<Value = (bool, usize, bool)> {
    (any::<bool>(), 0..4usize, any::<bool>())
}

proptest! {
    #[test]
    fn folding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let f = fold(&bytes);
        prop_assert!(f.entries.len() <= f.lines);
    }

    #[test]
    fn dates_parse_without_panicking_and_round_trip(s in "\\PC{0,30}", secs in 0u64..253_402_300_799) {
        let _ = s.parse::<Date>();
        let d = Date(at(secs));
        prop_assert_eq!(d.to_string().parse::<Date>(), Ok(d));
    }

    /// The file folds to what the operations did, whatever their order and case.
    #[test]
    fn folding_matches_a_model(ops in proptest::collection::vec(op(), 0..30)) {
        let names = ["a@x.test", "b@x.test", "c@y.test", "d@y.test"];
        let mut model: HashMap<String, ()> = HashMap::new();
        let mut text = Vec::new();
        for (add, i, upper) in ops {
            let name = if upper { names[i].to_uppercase() } else { names[i].to_string() };
            let line = if add {
                model.insert(names[i].to_string(), ());
                Line::Add(Entry::manual(&addr(&name), None, None, at(T)))
            } else {
                model.remove(names[i]);
                Line::Remove { address: name, date: Date(at(T)) }
            };
            text.extend(line.to_bytes());
        }
        let f = fold(&text);
        prop_assert!(f.skipped.is_empty());
        let mut got: Vec<&String> = f.entries.keys().collect();
        let mut want: Vec<&String> = model.keys().collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}
