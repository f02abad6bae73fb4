//! `homing suppress list|show|add|remove`: the suppression list from the command line.
//!
//! Works on the file named by the config (`[suppression] path`) while homing runs: every
//! change is fsynced under the list's lock, and the server picks it up within
//! `suppression.reload_interval`. Exit status: 0 done, 1 the address is not on the list,
//! 2 an error (bad address, unreadable file).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Subcommand;
use homing_explain::Reason;
use homing_smtp::Address;

use crate::config::Config;
use crate::suppress::{self, Added, Date, Entry, SuppressionList};

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Every suppressed address, oldest first: date, address, reason, source, cause or note.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object per line (JSON Lines) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One address's entry: since when, why, and on whose word.
    Show {
        #[arg(value_parser = suppress::parse_address)]
        address: Address,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suppress an address by hand: homing refuses mail to it at RCPT.
    Add {
        #[arg(value_parser = suppress::parse_address)]
        address: Address,
        /// Why, as a homing failure reason (e.g. userunknown, feedback); default "suppressed".
        #[arg(long)]
        reason: Option<Reason>,
        /// Free text kept with the entry and quoted in the RCPT refusal.
        #[arg(long)]
        note: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Lift an address, e.g. after its owner fixed the mailbox; mail to it is accepted again.
    Remove {
        #[arg(value_parser = suppress::parse_address)]
        address: Address,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::List { config, json } => {
            let (_, list) = open(config)?;
            let entries = list.entries()?;
            for e in &entries {
                if json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    let words = e.cause.as_deref().or(e.note.as_deref()).unwrap_or("");
                    println!("{}  {}  {}  {}  {}", e.date, e.address, e.reason, e.source, words);
                }
            }
            eprintln!("{} suppressed in {}", plural(entries.len()), list.path().display());
            Ok(ExitCode::SUCCESS)
        }
        Action::Show { address, config, json } => {
            let (_, list) = open(config)?;
            let Some(e) = list.get(&address)? else { return Ok(not_listed(&address, &list)) };
            if json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!("address: {}", e.address);
                println!("reason:  {} ({})", e.reason, e.reason.phrase());
                if let Some(s) = &e.status {
                    println!("status:  {s}");
                }
                println!("since:   {}", e.date);
                println!("source:  {}", e.source);
                if let Some(c) = &e.cause {
                    println!("cause:   {c}");
                }
                if let Some(n) = &e.note {
                    println!("note:    {n}");
                }
                println!("reply:   {}", e.refusal(&e.address).reply());
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Add { address, reason, note, config } => {
            let (config, list) = open(config)?;
            warn_if_disabled(&config);
            let entry = Entry::manual(&address, reason, note, SystemTime::now());
            match list.add(entry)? {
                Added::New(e) => {
                    println!("added {} to the suppression list {}", e.address, list.path().display())
                }
                Added::Already(e) => println!(
                    "{} is already on the suppression list since {} ({}, {}); nothing changed",
                    e.address, e.date, e.reason, e.source
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Remove { address, config } => {
            let (config, list) = open(config)?;
            warn_if_disabled(&config);
            let Some(e) = list.remove(&address, Date(SystemTime::now()))? else {
                return Ok(not_listed(&address, &list));
            };
            println!(
                "removed {} (listed since {}, {}) from {}; a running homing accepts mail to it again within {}",
                e.address,
                e.date,
                e.reason,
                list.path().display(),
                config.suppression.reload_interval
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The config and the list it names; lines the list had to skip are reported on stderr.
fn open(config: Option<PathBuf>) -> anyhow::Result<(Config, SuppressionList)> {
    let config = super::load(config.as_ref())?;
    let list = SuppressionList::open(&config.suppression_path(), suppress::Options::default())?;
    for s in list.skipped() {
        eprintln!(
            "homing: warning: {}:{}: {}; the line is ignored (fix or delete it)",
            list.path().display(),
            s.line,
            s.error
        );
    }
    Ok((config, list))
}

fn not_listed(address: &Address, list: &SuppressionList) -> ExitCode {
    eprintln!(
        "homing: {address} is not on the suppression list {}; `homing suppress list` shows what is",
        list.path().display()
    );
    ExitCode::from(1)
}

fn warn_if_disabled(config: &Config) {
    if !config.suppression.enabled {
        eprintln!(
            "homing: warning: [suppression] enabled = false in the config: the list has no effect until it is enabled"
        );
    }
}

fn plural(n: usize) -> String {
    if n == 1 { "1 address".into() } else { format!("{n} addresses") }
}
