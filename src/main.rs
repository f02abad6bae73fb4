//! homing: a mail transfer agent that gets mail delivered and, when it cannot, says why
//! and what to do. One binary; see `homing --help`.

mod accounts;
mod cli;
mod config;
mod deliver;
mod durable;
mod duration;
mod outcome;
mod policy;
mod receive;
mod report;
mod route;
mod schedule;
mod suppress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("homing: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
