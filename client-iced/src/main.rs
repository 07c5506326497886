//! `client-iced`: the Socket Chatroom desktop client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Socket Chatroom desktop client: encrypted text and voice chat.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Client config file: read at start, written by "remember me" and
    /// Settings [default: $XDG_CONFIG_HOME/socket-chatroom/config.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli.config.or_else(client_core::config::default_path);
    match client_iced::app(client_iced::Options { config_path }).run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-iced: {e}");
            ExitCode::from(1)
        }
    }
}
