//! `--voice`: the headless voice client. Joins, enters voice, prints roster
//! and talking events, and leaves after `--duration`, on Ctrl-C, or (with a
//! WAV input and no duration) once the file has played plus a second of tail.

use std::time::Duration;

use client_core::audio::device::{Input, Output};
use client_core::voice::VoiceOptions;
use client_core::{Client, DisconnectReason, Event, Events};

use crate::Signals;
use crate::output::{Printer, exit_code};

/// How long to keep listening after a WAV input has been played.
const TAIL: Duration = Duration::from_secs(1);

/// Runs the voice client until it is done; returns the exit code.
pub async fn run(
    client: Client,
    mut events: Events,
    printer: std::sync::Arc<Printer>,
    options: VoiceOptions,
    duration: Option<Duration>,
    wav_input: bool,
) -> u8 {
    let mut signals = Signals::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut leaving = false;
    let mut voice_failed = false;
    let mut reconnected = false;
    let uses_device = matches!(options.input, Input::Device(_)) || matches!(options.output, Output::Device(_));
    let mut pending_options = Some(options);
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            ev = events.recv() => ev,
            () = signals.next() => {
                if leaving {
                    return 130;
                }
                leaving = true;
                let _ = client.leave_voice().await;
                let _ = client.quit().await;
                continue;
            }
            () = sleep, if !leaving => {
                leaving = true;
                let _ = client.leave_voice().await;
                let _ = client.quit().await;
                continue;
            }
        };
        let Some(event) = event else { return 5 };
        printer.print(&event);
        match &event {
            Event::Connected { .. } => {
                if let Some(opts) = pending_options.take() {
                    let _ = client.join_voice(opts).await;
                }
            }
            Event::VoiceJoined => {
                // Counted from the first join: a rejoin after reconnecting
                // does not start it over.
                if let Some(d) = duration
                    && deadline.is_none()
                {
                    deadline = Some(tokio::time::Instant::now() + d);
                }
            }
            Event::Reconnecting { .. } => reconnected = true,
            Event::VoiceInputEnded if wav_input && duration.is_none() => {
                deadline = Some(tokio::time::Instant::now() + TAIL);
            }
            Event::VoiceError(_) => {
                if uses_device && !reconnected {
                    eprintln!("client-cli: on a machine without a sound card use --input/--output FILE.wav (or null)");
                }
                voice_failed = true;
                leaving = true;
                let _ = client.quit().await;
            }
            Event::Disconnected { reason, .. } => {
                if voice_failed && matches!(reason, DisconnectReason::Quit) {
                    // Voice that could not come back after a lost connection
                    // is a lost connection; voice that never started is local.
                    return if reconnected { 5 } else { 2 };
                }
                return exit_code(reason);
            }
            _ => {}
        }
    }
}
