//! The command line: `homing serve`, `homing why`, `homing suppress`, `homing user`,
//! `homing config check|show`.

mod serve;
mod suppress;
mod user;
mod why;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "homing",
    version,
    about = "A mail transfer agent that delivers mail and explains every failure"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Accept mail over SMTP, queue it durably and deliver it (runs until stopped).
    Serve {
        /// TOML config file; without it homing runs on its built-in defaults
        /// (SMTP on 127.0.0.1:2525, spool in ./homing-spool).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Explain bounces (files, directories, mboxes, Maildirs or stdin) or one SMTP reply:
    /// per failed recipient, the reason, the cause and the fix.
    Why(why::WhyArgs),
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// List, show, add or remove suppressed recipient addresses.
    Suppress {
        #[command(subcommand)]
        action: suppress::Action,
    },
    /// Add, change, delete or list the users who may authenticate (SMTP AUTH) and their
    /// addresses.
    User {
        #[command(subcommand)]
        action: user::Action,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate a config file and report the first problem with the fix.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (defaults merged with the file) as TOML.
    Show {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let config = load(config.as_ref())?;
            serve::run(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Why(args) => why::run(args),
        Command::Config { action: ConfigAction::Check { config } } => {
            load(config.as_ref())?;
            println!("configuration ok");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { action: ConfigAction::Show { config } } => {
            let c = load(config.as_ref())?;
            print!("{}", toml::to_string(&c.effective())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Suppress { action } => suppress::run(action),
        Command::User { action } => user::run(action),
    }
}
