//! `homing user add|passwd|edit|del|list|resolve`: the user store from the command line.
//!
//! Works on the file named by the config (`[accounts] path`) while homing runs: every
//! change is an atomic, fsynced rewrite under the store's lock, and the server picks it up
//! within `accounts.reload_interval`. Passwords are read from a no-echo prompt on the
//! terminal, or from standard input with `--password-stdin`; never from the command line,
//! where other users could read them in the process list. Exit status: 0 done, 1 no such
//! user or no owner, 2 an error (user exists, bad address, unreadable file).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use homing_smtp::sasl::MAX_FIELD;
use serde_json::json;

use crate::accounts::{self, Accounts, AccountsError, User, password, record};

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Create a user who may authenticate (AUTH) and send; asks for the password.
    Add {
        login: String,
        #[command(flatten)]
        addresses: AddressArgs,
        /// Mailbox quota in bytes (stored for local delivery; not enforced yet).
        #[arg(long)]
        quota: Option<u64>,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Set a user's password; asks for it.
    Passwd {
        login: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Add or remove a user's addresses, aliases and catch-all domains, or set the quota.
    Edit {
        login: String,
        #[command(flatten)]
        addresses: AddressArgs,
        /// Remove an address or alias of the user (repeatable).
        #[arg(long = "remove", value_name = "ADDRESS")]
        remove: Vec<String>,
        /// Stop being the catch-all of a domain (repeatable).
        #[arg(long = "remove-catch-all", value_name = "DOMAIN")]
        remove_catch_all: Vec<String>,
        /// Mailbox quota in bytes; 0 removes it.
        #[arg(long)]
        quota: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a user: AUTH as them fails from now on, their addresses belong to nobody.
    Del {
        login: String,
        #[command(flatten)]
        common: Common,
    },
    /// Every user with addresses, aliases and catch-all domains (never the password hashes).
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Who gets mail for an address, and whether that user may send from it.
    Resolve {
        address: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args, Debug)]
pub struct AddressArgs {
    /// An address of the user's own (repeatable).
    #[arg(long = "address", value_name = "ADDRESS")]
    address: Vec<String>,
    /// A further address that reaches the user (repeatable).
    #[arg(long = "alias", value_name = "ADDRESS")]
    alias: Vec<String>,
    /// Make the user the catch-all of a domain: mail to its addresses nobody owns (repeatable).
    #[arg(long = "catch-all", value_name = "DOMAIN")]
    catch_all: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Common {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print JSON (one object per line) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Add { login, addresses, quota, password: pw, common } => {
            let store = open(&common)?;
            let login = accounts::normalize_login(&login)?;
            let user = User {
                login: login.clone(),
                password: String::new(),
                addresses: checked_addresses(&addresses.address)?,
                aliases: checked_addresses(&addresses.alias)?,
                catch_all: checked_domains(&addresses.catch_all)?,
                quota,
            };
            // Refuse before asking for a password nobody will use.
            if store.users()?.iter().any(|u| u.login == login) {
                return Err(AccountsError::Exists(login).into());
            }
            let hash = password::hash(&read_password(&pw, &login)?)?;
            let user = store.add(User { password: hash, ..user })?;
            report(&common, "added", &user, &store);
            Ok(ExitCode::SUCCESS)
        }
        Action::Passwd { login, password: pw, common } => {
            let store = open(&common)?;
            let login = accounts::normalize_login(&login)?;
            if !store.users()?.iter().any(|u| u.login == login) {
                return Ok(unknown(&login, &store));
            }
            let hash = password::hash(&read_password(&pw, &login)?)?;
            let user = store.update(&login, |u| u.password = hash)?;
            report(&common, "changed the password of", &user, &store);
            Ok(ExitCode::SUCCESS)
        }
        Action::Edit { login, addresses, remove, remove_catch_all, quota, common } => {
            let store = open(&common)?;
            let add = checked_addresses(&addresses.address)?;
            let alias = checked_addresses(&addresses.alias)?;
            let catch_all = checked_domains(&addresses.catch_all)?;
            let remove: Vec<String> = remove.iter().map(|a| key(a)).collect::<Result<_, _>>()?;
            let remove_catch_all = checked_domains(&remove_catch_all)?;
            let result = store.update(&login, |u| {
                let keep = |a: &String| key(a).map(|k| !remove.contains(&k)).unwrap_or(true);
                u.addresses.retain(keep);
                u.aliases.retain(keep);
                u.catch_all.retain(|d| !remove_catch_all.contains(d));
                push_new(&mut u.addresses, add);
                push_new(&mut u.aliases, alias);
                push_new(&mut u.catch_all, catch_all);
                if let Some(q) = quota {
                    u.quota = (q > 0).then_some(q);
                }
            });
            match result {
                Ok(user) => report(&common, "updated", &user, &store),
                Err(AccountsError::Unknown(l)) => return Ok(unknown(&l, &store)),
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Del { login, common } => {
            let store = open(&common)?;
            match store.delete(&login) {
                Ok(user) => report(&common, "deleted", &user, &store),
                Err(AccountsError::Unknown(l)) => return Ok(unknown(&l, &store)),
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::List { common } => {
            let store = open(&common)?;
            let users = store.users()?;
            for u in &users {
                if common.json {
                    println!("{}", user_json(u));
                } else {
                    let mut line = u.login.clone();
                    for (label, list) in
                        [("addresses", &u.addresses), ("aliases", &u.aliases), ("catch-all", &u.catch_all)]
                    {
                        if !list.is_empty() {
                            line.push_str(&format!("  {label}: {}", list.join(", ")));
                        }
                    }
                    if let Some(q) = u.quota {
                        line.push_str(&format!("  quota: {q}"));
                    }
                    println!("{line}");
                }
            }
            let n = users.len();
            eprintln!("{n} user{} in {}", if n == 1 { "" } else { "s" }, store.path().display());
            Ok(ExitCode::SUCCESS)
        }
        Action::Resolve { address, common } => {
            let store = open(&common)?;
            let a = accounts::parse_address(&address)?;
            let Some((login, via)) = store.resolve(&a) else {
                if common.json {
                    println!("{}", json!({ "address": a.to_string(), "user": null }));
                }
                eprintln!("homing: nobody here receives mail for {a}");
                return Ok(ExitCode::from(1));
            };
            let may_send = store.owns(&login, &a);
            if common.json {
                println!(
                    "{}",
                    json!({ "address": a.to_string(), "user": login, "via": via, "may_send": may_send })
                );
            } else {
                let may = if may_send { "may" } else { "may not" };
                println!("{a} -> {login} ({via}); {login} {may} send from it");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(common: &Common) -> anyhow::Result<Accounts> {
    let config = super::load(common.config.as_ref())?;
    Ok(Accounts::open(&config.accounts_path(), accounts::Options::default())?)
}

fn key(a: &str) -> Result<String, record::RecordError> {
    accounts::parse_address(a).map(|a| record::address_key(&a))
}

/// Addresses as given, checked; the file keeps the operator's spelling.
fn checked_addresses(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter().map(|a| Ok(accounts::parse_address(a)?.to_string())).collect()
}

fn checked_domains(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter().map(|d| Ok(record::domain_key(d)?)).collect()
}

fn push_new(list: &mut Vec<String>, new: Vec<String>) {
    for n in new {
        if !list.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
            list.push(n);
        }
    }
}

/// The password: the first line of stdin with `--password-stdin`, else typed twice at a
/// no-echo prompt on the terminal.
fn read_password(args: &PasswordArgs, login: &str) -> anyhow::Result<String> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(
                "no terminal to ask for the password on: pass --password-stdin and write the password to standard input"
            );
        }
        let first = rpassword::prompt_password(format!("Password for {login}: "))
            .context("cannot read the password from the terminal")?;
        let again =
            rpassword::prompt_password("Again: ").context("cannot read the password from the terminal")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        first
    };
    if password.is_empty() {
        bail!("the password is empty; nothing changed");
    }
    if password.len() > MAX_FIELD || password.contains(['\0', '\r', '\n']) {
        bail!(
            "the password must be at most {MAX_FIELD} bytes without NUL or line breaks (SASL cannot carry more); nothing changed"
        );
    }
    Ok(password)
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "login": u.login,
        "addresses": u.addresses,
        "aliases": u.aliases,
        "catch_all": u.catch_all,
        "quota": u.quota,
    })
}

fn report(common: &Common, what: &str, user: &User, store: &Accounts) {
    if common.json {
        println!("{}", user_json(user));
    }
    eprintln!(
        "{what} user {} in {}; a running homing uses the change within its accounts.reload_interval",
        user.login,
        store.path().display()
    );
}

fn unknown(login: &str, store: &Accounts) -> ExitCode {
    eprintln!("homing: no user {login} in {}; `homing user list` shows who exists", store.path().display());
    ExitCode::from(1)
}
