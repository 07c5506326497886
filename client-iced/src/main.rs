//! `client-iced`: the Socket Chatroom desktop client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slog::{Drain, Logger, o};

/// Socket Chatroom desktop client: encrypted text and voice chat.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Client config file: read at start, written by "remember me" and
    /// Settings [default: $XDG_CONFIG_HOME/socket-chatroom/config.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log connection details on stderr (never keys, passwords or messages).
    #[arg(long, short = 'v')]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let level = if cli.verbose { slog::Level::Debug } else { slog::Level::Info };
    let log = Logger::root(drain.filter_level(level).fuse(), o!());
    let config_path = cli.config.or_else(client_core::config::default_path);
    match client_iced::app(client_iced::Options { config_path, log }).run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-iced: {e}");
            ExitCode::from(1)
        }
    }
}
